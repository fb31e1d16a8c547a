//! Classification of `generic` ops: what kind of computation each one is, so that the passes
//! after it (contraction paths, schedules) and `einc explain` choose a strategy per class.
//!
//! | class | what it is |
//! | --- | --- |
//! | [`OpClass::Contraction`] | `mul(%a, %b)` of two inputs (no casts), summed by `reduce add` over indices both carry; or, with no reduction, an outer product (each operand has an index of its own) |
//! | [`OpClass::RowSoftmax`] | one of the four ops `max` / `exp(x - max)` / `sum` / `div` that `softmax` lowers to, recognised together |
//! | [`OpClass::Map`] | any other op without a reduction |
//! | [`OpClass::Reduction`] | any other op with a reduction (one input or any body) |
//! | [`OpClass::Other`] | a body that still holds `delta` or `eps` (evaluated per point), or an op the classifier cannot read (unverified IR) |
//!
//! A contraction's indices fall into four groups, as in a batched GEMM `C[b, m, n] = Σ_k
//! A[b, m, k] B[b, k, n]`: **batch** (in the output and both operands), **m** (output and `a`
//! only), **n** (output and `b` only) and **k** (reduced, in both operands). `m` or `n` may be
//! empty (a matrix-vector product); `k` is empty exactly for an outer product. An op whose
//! product sums an index only one operand carries, or that has an output index neither carries,
//! is not a contraction: the `contraction-path` pass does such single-operand work first, and
//! until then the op is a [`OpClass::Reduction`] (or a [`OpClass::Map`]).
//!
//! Everything here is a pure function of the IR; it never panics, even on IR the verifier
//! would reject (such ops are [`OpClass::Other`]).

use crate::ir::tensor::{
    AxisMap, BinaryFn, Expr, Function, Generic, IndexId, OpKind, ReduceKind, UnaryFn, ValueId,
};
use einc_runtime::DType;
use std::collections::HashMap;

/// What kind of computation a `generic` op is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpClass {
    /// A pairwise contraction (or outer product) with its index groups.
    Contraction(Contraction),
    /// An elementwise map (no reduction) that is not one of the other classes.
    Map,
    /// A reduction that is not a contraction.
    Reduction {
        /// How values combine.
        kind: ReduceKind,
        /// The reduced indices, in the op's reduction order.
        over: Vec<IndexId>,
    },
    /// A member of a row-softmax group (the group is the same for its four ops).
    RowSoftmax(RowSoftmax),
    /// An op whose body still holds `delta` or `eps`, or that the classifier cannot read.
    Other,
}

/// The index groups of a contraction `mul(%a, %b)`. Each group lists op indices: `batch`,
/// `m` and `n` in output order, `k` in reduction order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contraction {
    /// In the output and both operands.
    pub batch: Vec<IndexId>,
    /// In the output and operand `a` only.
    pub m: Vec<IndexId>,
    /// In the output and operand `b` only.
    pub n: Vec<IndexId>,
    /// Reduced, and in both operands.
    pub k: Vec<IndexId>,
    /// The position (among the op's inputs) of the left factor of the `mul`.
    pub a: usize,
    /// The position of the right factor.
    pub b: usize,
}

/// A row softmax: `P = exp(X - max(X)) / sum(exp(X - max(X)))` over some axes, as the four ops
/// that `softmax[j](...)` lowers to:
///
/// ```text
/// %P.max = generic (i: T, j: T) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : f32
/// %P.exp = generic (i: T, j: T) ins(%S[i, j], %P.max[i]) -> [i, j] { exp(sub(%0, %1)) } : f32
/// %P.sum = generic (i: T, j: T) ins(%P.exp[i, j]) -> [i] reduce add over (j) { %0 } : f32
/// %P = generic (i: T, j: T) ins(%P.exp[i, j], %P.sum[i]) -> [i, j] { div(%0, %1) } : f32
/// ```
///
/// Recognised structurally, whatever the names: the ops read one another through maps that
/// line their indices up (checked per axis), over any number of softmax axes, with the source
/// read through any map, and `P` has the layout of `exp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSoftmax {
    /// The tensor normalised (`%S` above).
    pub source: ValueId,
    /// The position in the function's ops of the row maximum.
    pub max: usize,
    /// The position of the shifted exponential.
    pub exp: usize,
    /// The position of the row sum.
    pub sum: usize,
    /// The position of the division, whose result is the softmax.
    pub div: usize,
    /// The normalised axes, as positions in the result's (and `exp`'s) shape.
    pub axes: Vec<usize>,
    /// The intermediate values (`max`, `exp`, `sum`) that something outside the group reads or
    /// the function returns: a fused lowering must still write them.
    pub escapes: Vec<ValueId>,
}

/// One factor of an N-ary product body: input `input` of the op, read as is or converted to
/// the op's dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Factor {
    /// The input's position in the op's inputs (the body's `%n`).
    pub input: u32,
    /// `Some(dtype)` when the body converts the element (`cast<dtype>(%n)`).
    pub cast: Option<DType>,
}

/// The class of op number `op` of `func` (its position in `func.ops`); [`OpClass::Other`] when
/// there is no such op.
pub fn classify(func: &Function, op: usize) -> OpClass {
    let groups = softmax_groups(func);
    class_of(func, op, &groups)
}

/// The class of every op of `func`, in op order (cheaper than calling [`classify`] per op).
pub fn classify_function(func: &Function) -> Vec<OpClass> {
    let groups = softmax_groups(func);
    (0..func.ops.len())
        .map(|op| class_of(func, op, &groups))
        .collect()
}

fn class_of(func: &Function, op: usize, groups: &[RowSoftmax]) -> OpClass {
    if let Some(g) = groups
        .iter()
        .find(|g| [g.max, g.exp, g.sum, g.div].contains(&op))
    {
        return OpClass::RowSoftmax(g.clone());
    }
    let Some(o) = func.ops.get(op) else {
        return OpClass::Other;
    };
    let OpKind::Generic(g) = &o.kind;
    classify_generic(g)
}

/// The class of one op on its own: every class but [`OpClass::RowSoftmax`], which needs the
/// ops around it.
pub fn classify_generic(g: &Generic) -> OpClass {
    if !readable(g) || has_delta_or_eps(&g.body) {
        return OpClass::Other;
    }
    if let Some(c) = contraction(g) {
        return OpClass::Contraction(c);
    }
    match &g.reduce {
        None => OpClass::Map,
        Some(r) => OpClass::Reduction {
            kind: r.kind,
            over: r.over.clone(),
        },
    }
}

/// The factors of `g`'s body when it is a product (`mul` nodes only) of input reads, each
/// possibly cast, and `g` is a map or sums with `reduce add`: the shape the
/// `contraction-path` pass splits into pairwise steps. Factors are in left-to-right order; an
/// input read twice (`mul(%0, %0)`) is two factors. `None` for any other body.
pub fn product_factors(g: &Generic) -> Option<Vec<Factor>> {
    if g.reduce.as_ref().is_some_and(|r| r.kind != ReduceKind::Add) {
        return None;
    }
    let mut factors = Vec::new();
    collect_factors(&g.body, g.inputs.len(), &mut factors)?;
    Some(factors)
}

fn collect_factors(e: &Expr, ninputs: usize, out: &mut Vec<Factor>) -> Option<()> {
    match e {
        Expr::Binary(BinaryFn::Mul, x, y) => {
            collect_factors(x, ninputs, out)?;
            collect_factors(y, ninputs, out)
        }
        Expr::Input(n) if (*n as usize) < ninputs => {
            out.push(Factor {
                input: *n,
                cast: None,
            });
            Some(())
        }
        Expr::Cast(t, inner) => match **inner {
            Expr::Input(n) if (n as usize) < ninputs => {
                out.push(Factor {
                    input: n,
                    cast: Some(*t),
                });
                Some(())
            }
            _ => None,
        },
        _ => None,
    }
}

/// The index groups when `g` is a clean pairwise contraction or outer product.
fn contraction(g: &Generic) -> Option<Contraction> {
    let factors = product_factors(g)?;
    let [fa, fb] = factors.as_slice() else {
        return None;
    };
    if fa.cast.is_some() || fb.cast.is_some() || fa.input == fb.input {
        return None;
    }
    let (a, b) = (fa.input as usize, fb.input as usize);
    let carries = |input: usize, i: IndexId| {
        g.inputs
            .get(input)
            .is_some_and(|inp| inp.map.contains(&AxisMap::Index(i)))
    };
    let mut c = Contraction {
        batch: Vec::new(),
        m: Vec::new(),
        n: Vec::new(),
        k: Vec::new(),
        a,
        b,
    };
    for &i in &g.output {
        match (carries(a, i), carries(b, i)) {
            (true, true) => c.batch.push(i),
            (true, false) => c.m.push(i),
            (false, true) => c.n.push(i),
            (false, false) => return None,
        }
    }
    match &g.reduce {
        Some(r) => {
            for &i in &r.over {
                if !(carries(a, i) && carries(b, i)) {
                    return None;
                }
                c.k.push(i);
            }
        }
        None if c.m.is_empty() || c.n.is_empty() => return None,
        None => {}
    }
    Some(c)
}

/// Whether every id `g` mentions is in range, so the rest of the analysis can index freely.
fn readable(g: &Generic) -> bool {
    let n = g.indices.len();
    let ok = |i: &IndexId| (i.0 as usize) < n;
    g.output.iter().all(ok)
        && g.reduce.as_ref().is_none_or(|r| r.over.iter().all(ok))
        && g.inputs.iter().all(|inp| {
            inp.map.iter().all(|a| match a {
                AxisMap::Index(i) => ok(i),
                AxisMap::Fixed(_) => true,
            })
        })
}

fn has_delta_or_eps(e: &Expr) -> bool {
    crate::ir::tensor::visit::any_node(e, &mut |n| matches!(n, Expr::Delta(..) | Expr::Eps(..)))
}

/// Every row-softmax group of `func`, each op in at most one group (the first found, in op
/// order of the divisions).
fn softmax_groups(func: &Function) -> Vec<RowSoftmax> {
    let def: HashMap<ValueId, usize> = func
        .ops
        .iter()
        .enumerate()
        .map(|(k, op)| (op.result, k))
        .collect();
    let mut groups: Vec<RowSoftmax> = Vec::new();
    for div in 0..func.ops.len() {
        if let Some(mut g) = softmax_at(func, &def, div) {
            let taken = |k: usize| {
                groups
                    .iter()
                    .any(|h| [h.max, h.exp, h.sum, h.div].contains(&k))
            };
            if [g.max, g.exp, g.sum, g.div].iter().any(|&k| taken(k)) {
                continue;
            }
            g.escapes = escapes(func, &g);
            groups.push(g);
        }
    }
    groups
}

/// The generic op at position `k`.
fn generic_at(func: &Function, k: usize) -> Option<&Generic> {
    let OpKind::Generic(g) = &func.ops.get(k)?.kind;
    readable(g).then_some(g)
}

/// The two input positions `(x, y)` when `e` is `f(%x, %y)` for the binary function `f`, with
/// distinct inputs.
fn binary_of_inputs(e: &Expr, f: BinaryFn) -> Option<(usize, usize)> {
    match e {
        Expr::Binary(g, x, y) if *g == f => match (&**x, &**y) {
            (Expr::Input(x), Expr::Input(y)) if x != y => Some((*x as usize, *y as usize)),
            _ => None,
        },
        _ => None,
    }
}

/// The softmax group whose division is op `div`, if it is one (escapes not yet filled in).
fn softmax_at(func: &Function, def: &HashMap<ValueId, usize>, div: usize) -> Option<RowSoftmax> {
    let d = generic_at(func, div)?;
    if d.reduce.is_some() || d.inputs.len() != 2 {
        return None;
    }
    let (de, ds) = binary_of_inputs(&d.body, BinaryFn::Div)?;
    let exp = *def.get(&d.inputs.get(de)?.value)?;
    let sum = *def.get(&d.inputs.get(ds)?.value)?;
    let e = generic_at(func, exp)?;
    if e.reduce.is_some() || e.inputs.len() != 2 {
        return None;
    }
    let Expr::Unary(UnaryFn::Exp, shifted) = &e.body else {
        return None;
    };
    let (ex, em) = binary_of_inputs(shifted, BinaryFn::Sub)?;
    let source = e.inputs.get(ex)?.value;
    let max = *def.get(&e.inputs.get(em)?.value)?;
    let m = generic_at(func, max)?;
    let s = generic_at(func, sum)?;
    let single_read = |g: &Generic, kind: ReduceKind| {
        g.inputs.len() == 1
            && g.body == Expr::Input(0)
            && g.reduce
                .as_ref()
                .is_some_and(|r| r.kind == kind && !r.over.is_empty())
    };
    let dtype = d.dtype;
    if !single_read(m, ReduceKind::Max)
        || !single_read(s, ReduceKind::Add)
        || m.inputs[0].value != source
        || s.inputs[0].value != func.ops[exp].result
        || !dtype.is_float()
        || [e.dtype, m.dtype, s.dtype].iter().any(|&t| t != dtype)
    {
        return None;
    }
    // Line the indices of max, sum and div up with exp's, which covers the whole space.
    let n = e.indices.len();
    let exp_axes = index_map(&e.output);
    let sigma = correspond(m, &m.inputs[0].map, &e.inputs[ex].map, n)?;
    let tau = correspond(e, &exp_axes, &s.inputs[0].map, s.indices.len())?;
    let rho = correspond(e, &exp_axes, &d.inputs[de].map, d.indices.len())?;
    if m.indices.len() != n || s.indices.len() != n || d.indices.len() != n {
        return None;
    }
    // exp reads max at max's output indices; the softmax axes are max's reduced ones.
    let max_out: Vec<IndexId> = m.output.iter().map(|i| sigma[i.0 as usize]).collect();
    if e.inputs[em].map != index_map(&max_out) {
        return None;
    }
    let over = &m.reduce.as_ref()?.over;
    let axes_e: Vec<IndexId> = over.iter().map(|i| sigma[i.0 as usize]).collect();
    // sum reduces exactly those axes.
    let mut want: Vec<IndexId> = axes_e.iter().map(|i| tau[i.0 as usize]).collect();
    let mut got = s.reduce.as_ref()?.over.clone();
    want.sort();
    got.sort();
    if want != got {
        return None;
    }
    // div reads sum at sum's output indices (translated to div's), and writes exp's layout.
    let tau_inv = invert(&tau, n)?;
    let sum_out: Vec<IndexId> = s
        .output
        .iter()
        .map(|i| rho[tau_inv[i.0 as usize].0 as usize])
        .collect();
    let div_out: Vec<IndexId> = e.output.iter().map(|i| rho[i.0 as usize]).collect();
    if d.inputs[ds].map != index_map(&sum_out) || d.output != div_out {
        return None;
    }
    let axes = axes_e
        .iter()
        .filter_map(|i| e.output.iter().position(|o| o == i))
        .collect();
    Some(RowSoftmax {
        source,
        max,
        exp,
        sum,
        div,
        axes,
        escapes: Vec::new(),
    })
}

fn index_map(ids: &[IndexId]) -> Vec<AxisMap> {
    ids.iter().map(|&i| AxisMap::Index(i)).collect()
}

/// Lines the indices of `from` up with those of another op (of `to_len` indices) through two
/// maps of the same tensor (`from_map` in `from`'s indices, `to_map` in the other's): index
/// `a` of `from` corresponds to `b` when they address the same axis. The correspondence must
/// be a bijection between the two index lists, and fixed positions must agree.
fn correspond(
    from: &Generic,
    from_map: &[AxisMap],
    to_map: &[AxisMap],
    to_len: usize,
) -> Option<Vec<IndexId>> {
    if from_map.len() != to_map.len() || from.indices.len() != to_len {
        return None;
    }
    let mut sigma: Vec<Option<IndexId>> = vec![None; from.indices.len()];
    for (a, b) in from_map.iter().zip(to_map) {
        match (a, b) {
            (AxisMap::Index(a), AxisMap::Index(b)) if (b.0 as usize) < to_len => {
                let slot = sigma.get_mut(a.0 as usize)?;
                match slot {
                    Some(prev) if prev != b => return None,
                    _ => *slot = Some(*b),
                }
            }
            (AxisMap::Fixed(p), AxisMap::Fixed(q)) if p == q => {}
            _ => return None,
        }
    }
    let sigma: Vec<IndexId> = sigma.into_iter().collect::<Option<_>>()?;
    invert(&sigma, to_len)?;
    Some(sigma)
}

/// The inverse of a permutation of `0..n`, or `None` when `p` is not one.
fn invert(p: &[IndexId], n: usize) -> Option<Vec<IndexId>> {
    let mut inv: Vec<Option<IndexId>> = vec![None; n];
    for (from, to) in p.iter().enumerate() {
        let slot = inv.get_mut(to.0 as usize)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(IndexId(u32::try_from(from).ok()?));
    }
    inv.into_iter().collect()
}

/// The intermediates of group `g` read outside it or returned.
fn escapes(func: &Function, g: &RowSoftmax) -> Vec<ValueId> {
    let inside = |k: usize, reader: usize| match k {
        _ if k == g.max => reader == g.exp,
        _ if k == g.exp => reader == g.sum || reader == g.div,
        _ => reader == g.div,
    };
    [g.max, g.exp, g.sum]
        .into_iter()
        .filter(|&k| {
            let v = func.ops[k].result;
            func.results.iter().any(|r| r.value == v)
                || func.ops.iter().enumerate().any(|(reader, op)| {
                    let OpKind::Generic(h) = &op.kind;
                    !inside(k, reader) && h.inputs.iter().any(|i| i.value == v)
                })
        })
        .map(|k| func.ops[k].result)
        .collect()
}

#[cfg(test)]
mod tests;
