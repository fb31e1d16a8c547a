//! Stabilising maxima: reductions whose value the function's results do not depend on, so
//! that their gradient is exactly zero and is not computed.
//!
//! `softmax[j](s)` and `logsumexp[j](s)` subtract the row maximum `m = max_j s` before `exp`,
//! only to keep `exp` from overflowing: `exp(s - m) / Σ exp(s - m)` and `m + log Σ exp(s - m)`
//! are the same for every `m`. Differentiating through `m` anyway gives terms that cancel
//! exactly (`dP.max` and a `select` on where `s` equals its maximum) but still cost an extra
//! pass and a comparison per element. [`stabilizers`] finds such values by checking that
//! invariance rather than by their names.
//!
//! **The check.** For a candidate `m` (the result of a `max` or `min` reduction), perturb it:
//! `m[a] -> m[a] + c[a]` for an arbitrary `c` over its axes, and follow the perturbation
//! through the ops after it. Every value gets a class: unchanged ([`Class::Same`]); shifted,
//! `v + Σ k·c[...]` ([`Class::Shift`]); scaled, `v · exp(Σ k·c[...])` ([`Class::Scale`]); or
//! anything else ([`Class::Other`]). The classes combine by the algebra of shifts and scales:
//! `exp` turns a shift into a scale and `log` a scale into a shift; `+` adds shifts, `*` and
//! `/` add scales; a shift minus the same shift, or a scale over the same scale, is unchanged;
//! a sum over indices the perturbation does not depend on keeps a scale, a max or min keeps
//! both (`exp(...) > 0`). Perturbations are tracked per element (`c[i]` read through each op's
//! maps), so terms cancel only when they refer to the same element. When every result of the
//! function is unchanged, the results do not depend on `m`: its gradient is zero exactly, and
//! the derivation skips it. Anything the algebra does not cover makes the class `Other`, and
//! `m` is then differentiated as usual: the check can miss a stabiliser, never invent one.

use crate::ir::tensor::{
    AxisMap, BinaryFn, Cond, Expr, Function, Generic, IndexId, OpKind, ReduceKind, UnaryFn, ValueId,
};
use std::collections::BTreeMap;

/// Where a perturbation comes from, read in some index space: `c[entries]`.
type Key = Vec<AxisMap>;

/// How a value changes under the perturbation of the candidate.
#[derive(Clone, Debug, PartialEq)]
enum Class {
    /// Not at all.
    Same,
    /// By `+ Σ coeff · c[key]`.
    Shift(BTreeMap<KeyOrd, i64>),
    /// By `· exp(Σ coeff · c[key])`.
    Scale(BTreeMap<KeyOrd, i64>),
    /// In a way the algebra does not follow.
    Other,
}

/// A [`Key`] with an order, so that it can index a map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct KeyOrd(Vec<(u8, u64)>);

impl KeyOrd {
    fn of(key: &Key) -> KeyOrd {
        KeyOrd(
            key.iter()
                .map(|a| match a {
                    AxisMap::Index(i) => (0, u64::from(i.0)),
                    AxisMap::Fixed(p) => (1, *p),
                })
                .collect(),
        )
    }

    fn entries(&self) -> Vec<AxisMap> {
        self.0
            .iter()
            .map(|&(kind, n)| match kind {
                0 => AxisMap::Index(IndexId(u32::try_from(n).unwrap_or(u32::MAX))),
                _ => AxisMap::Fixed(n),
            })
            .collect()
    }
}

/// `a + sign · b` of two coefficient maps, without zero entries.
fn combine(
    a: &BTreeMap<KeyOrd, i64>,
    b: &BTreeMap<KeyOrd, i64>,
    sign: i64,
) -> BTreeMap<KeyOrd, i64> {
    let mut out = a.clone();
    for (k, v) in b {
        *out.entry(k.clone()).or_insert(0) += sign * v;
    }
    out.retain(|_, v| *v != 0);
    out
}

fn shift(m: BTreeMap<KeyOrd, i64>) -> Class {
    if m.is_empty() {
        Class::Same
    } else {
        Class::Shift(m)
    }
}

fn scale(m: BTreeMap<KeyOrd, i64>) -> Class {
    if m.is_empty() {
        Class::Same
    } else {
        Class::Scale(m)
    }
}

fn negate(m: &BTreeMap<KeyOrd, i64>) -> BTreeMap<KeyOrd, i64> {
    m.iter().map(|(k, v)| (k.clone(), -v)).collect()
}

/// The stabilising values of `f`: results of `max`/`min` reductions that no result of `f`
/// depends on (see the module doc).
pub(super) fn stabilizers(f: &Function) -> Vec<ValueId> {
    f.ops
        .iter()
        .filter(|op| {
            let OpKind::Generic(g) = &op.kind;
            matches!(
                g.reduce.as_ref().map(|r| r.kind),
                Some(ReduceKind::Max | ReduceKind::Min)
            )
        })
        .map(|op| op.result)
        .filter(|&m| results_ignore(f, m))
        .collect()
}

/// Whether every result of `f` is unchanged by any perturbation of value `m`.
fn results_ignore(f: &Function, m: ValueId) -> bool {
    let mut classes: Vec<Class> = vec![Class::Same; f.values.len()];
    let Some(rank) = f.values.get(m.0 as usize).map(|v| v.ty.shape.len()) else {
        return false;
    };
    // `m` itself is shifted by c over its own axes: key = its axes, named by position.
    let own: Key = (0..rank)
        .filter_map(|a| u32::try_from(a).ok().map(|a| AxisMap::Index(IndexId(a))))
        .collect();
    classes[m.0 as usize] = Class::Shift(BTreeMap::from([(KeyOrd::of(&own), 1)]));
    for op in &f.ops {
        if op.result == m {
            continue;
        }
        let OpKind::Generic(g) = &op.kind;
        if g.inputs
            .iter()
            .all(|i| classes.get(i.value.0 as usize) == Some(&Class::Same))
        {
            continue;
        }
        let class = op_class(g, &classes);
        if let Some(c) = classes.get_mut(op.result.0 as usize) {
            *c = class;
        }
    }
    f.results
        .iter()
        .all(|r| classes.get(r.value.0 as usize) == Some(&Class::Same))
}

/// The class of an op's result, in terms of its own axes (key entries are axis positions).
fn op_class(g: &Generic, classes: &[Class]) -> Class {
    // Each input's class re-expressed in the op's index space, through its map.
    let inputs: Vec<Class> = g
        .inputs
        .iter()
        .map(|input| {
            let class = classes
                .get(input.value.0 as usize)
                .cloned()
                .unwrap_or(Class::Other);
            rekey(&class, |axis| input.map.get(axis).copied())
        })
        .collect();
    let body = expr_class(&g.body, &inputs);
    let reduced = match (g.reduce.as_ref().map(|r| r.kind), &body) {
        (_, Class::Same | Class::Other) | (None, _) => body.clone(),
        (Some(ReduceKind::Max | ReduceKind::Min), Class::Shift(_) | Class::Scale(_)) => {
            body.clone()
        }
        (Some(ReduceKind::Add), Class::Scale(_)) => body.clone(),
        _ => Class::Other,
    };
    // Re-expressed on the result's axes; a perturbation that varies along a reduced index has
    // no image there (it does not factor out of the reduction), which makes it `Other`.
    rekey(&reduced, |index| {
        let id = IndexId(u32::try_from(index).ok()?);
        let pos = g.output.iter().position(|&o| o == id)?;
        Some(AxisMap::Index(IndexId(u32::try_from(pos).ok()?)))
    })
}

/// `class` with every key entry `Index(n)` replaced by `to(n)` (fixed entries stay); `Other`
/// when some entry has no image.
fn rekey(class: &Class, to: impl Fn(usize) -> Option<AxisMap>) -> Class {
    let map = |m: &BTreeMap<KeyOrd, i64>| -> Option<BTreeMap<KeyOrd, i64>> {
        let mut out = BTreeMap::new();
        for (k, v) in m {
            let entries = k
                .entries()
                .iter()
                .map(|a| match a {
                    AxisMap::Index(i) => to(i.0 as usize),
                    AxisMap::Fixed(p) => Some(AxisMap::Fixed(*p)),
                })
                .collect::<Option<Key>>()?;
            *out.entry(KeyOrd::of(&entries)).or_insert(0) += v;
        }
        out.retain(|_, v| *v != 0);
        Some(out)
    };
    match class {
        Class::Same | Class::Other => class.clone(),
        Class::Shift(m) => map(m).map_or(Class::Other, shift),
        Class::Scale(m) => map(m).map_or(Class::Other, scale),
    }
}

/// The class of a body expression given its inputs' classes (keys over the op's indices).
fn expr_class(e: &Expr, inputs: &[Class]) -> Class {
    let c = |x: &Expr| expr_class(x, inputs);
    match e {
        Expr::Input(n) => inputs.get(*n as usize).cloned().unwrap_or(Class::Other),
        Expr::Index(_) | Expr::Lit(_) | Expr::DimValue(..) | Expr::Delta(..) | Expr::Eps(..) => {
            Class::Same
        }
        Expr::Unary(f, x) => match (f, c(x)) {
            (_, Class::Same) => Class::Same,
            (UnaryFn::Exp, Class::Shift(m)) => scale(m),
            (UnaryFn::Log, Class::Scale(m)) => shift(m),
            (UnaryFn::Neg, Class::Shift(m)) => shift(negate(&m)),
            (UnaryFn::Neg, Class::Scale(m)) => scale(m),
            _ => Class::Other,
        },
        Expr::Binary(f, x, y) => match (f, c(x), c(y)) {
            (_, Class::Same, Class::Same) => Class::Same,
            (BinaryFn::Add, Class::Shift(m), Class::Same)
            | (BinaryFn::Add, Class::Same, Class::Shift(m))
            | (BinaryFn::Sub, Class::Shift(m), Class::Same) => shift(m),
            (BinaryFn::Sub, Class::Same, Class::Shift(m)) => shift(negate(&m)),
            (BinaryFn::Add, Class::Shift(a), Class::Shift(b)) => shift(combine(&a, &b, 1)),
            (BinaryFn::Sub, Class::Shift(a), Class::Shift(b)) => shift(combine(&a, &b, -1)),
            (BinaryFn::Mul, Class::Scale(m), Class::Same)
            | (BinaryFn::Mul, Class::Same, Class::Scale(m))
            | (BinaryFn::Div, Class::Scale(m), Class::Same) => scale(m),
            (BinaryFn::Div, Class::Same, Class::Scale(m)) => scale(negate(&m)),
            (BinaryFn::Mul, Class::Scale(a), Class::Scale(b)) => scale(combine(&a, &b, 1)),
            (BinaryFn::Div, Class::Scale(a), Class::Scale(b)) => scale(combine(&a, &b, -1)),
            // e^k x ± e^k y = e^k (x ± y); max(x + c, y + c) = max(x, y) + c; likewise for
            // positive scales.
            (BinaryFn::Add | BinaryFn::Sub, Class::Scale(a), Class::Scale(b)) if a == b => scale(a),
            (BinaryFn::Max | BinaryFn::Min, Class::Shift(a), Class::Shift(b)) if a == b => shift(a),
            (BinaryFn::Max | BinaryFn::Min, Class::Scale(a), Class::Scale(b)) if a == b => scale(a),
            _ => Class::Other,
        },
        Expr::Select(cond, x, y) => {
            if cond_class(cond, inputs) != Class::Same {
                return Class::Other;
            }
            match (c(x), c(y)) {
                (a, b) if a == b => a,
                _ => Class::Other,
            }
        }
        Expr::Cast(t, x) => match c(x) {
            Class::Same => Class::Same,
            // A float-to-float cast keeps the algebra (up to rounding).
            other if t.is_float() => other,
            _ => Class::Other,
        },
    }
}

fn cond_class(c: &Cond, inputs: &[Class]) -> Class {
    let same = match c {
        Cond::Cmp(_, a, b) => {
            expr_class(a, inputs) == Class::Same && expr_class(b, inputs) == Class::Same
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            cond_class(a, inputs) == Class::Same && cond_class(b, inputs) == Class::Same
        }
        Cond::Not(a) => cond_class(a, inputs) == Class::Same,
    };
    if same {
        Class::Same
    } else {
        Class::Other
    }
}
