//! Tidying a derived function for people to read: Kronecker deltas eliminated by index
//! substitution, elementwise temporaries fused into the ops that read them, and bodies
//! simplified. [`tidy`] keeps the function's meaning exactly; `einc grad` prints its result
//! as `.ein` source.
//!
//! **Delta elimination.** The `delta-elim` pass's rule, op by op: in a sum, a delta that names
//! a summed index substitutes that index away wherever the body is zero off the delta's
//! diagonal (`Σ_i δ(i, j) f(i) = f(j)`, also inside quotients, negations and sums of such
//! terms); a delta between two free indices is a genuine scatter onto a diagonal and stays.
//!
//! **Fusion.** An elementwise op (a map) whose value is not a result is substituted into its
//! readers when it is read once by another map (a gradient contribution into its total), when
//! it only copies or transposes one input, or when one of its indices addresses no tensor axis
//! of its inputs (a broadcast such as `dE[i, j] = dZ[i]`, which `.ein` cannot write as a
//! statement of its own).

use super::algebra;
use super::drop_dead_ops;
use super::simplify::simplify;
use crate::ir::tensor::builder::keep_used_inputs;
use crate::ir::tensor::{AxisMap, Cond, Expr, Function, Generic, IndexId, Input, OpKind, ValueId};
use einc_runtime::{DType, Scalar};

/// The tidied function: deltas over summed indices eliminated, elementwise temporaries fused
/// into their readers, bodies simplified. Computes the same values as `f`.
pub fn tidy(f: &Function) -> Function {
    let mut f = f.clone();
    // Simplifying can turn an op into a copy or a transpose (a delta substituted away), which
    // fusion then removes; two rounds reach that.
    for _ in 0..2 {
        while let Some(next) = fuse_one(&f) {
            f = next;
        }
        for n in 0..f.ops.len() {
            let dtypes = input_dtypes(&f, n);
            let OpKind::Generic(g) = &mut f.ops[n].kind;
            eliminate_deltas(g);
            g.body = algebra::simplify(&simplify(&g.body, &dtypes), g.dtype);
            let (inputs, body) = keep_used_inputs(std::mem::take(&mut g.inputs), &g.body);
            g.inputs = inputs;
            g.body = body;
        }
    }
    drop_dead_ops(f)
}

/// The dtypes of the inputs of op `n` of `f`.
fn input_dtypes(f: &Function, n: usize) -> Vec<DType> {
    let OpKind::Generic(g) = &f.ops[n].kind;
    g.inputs
        .iter()
        .map(|i| {
            f.values
                .get(i.value.0 as usize)
                .map_or(DType::F64, |v| v.ty.dtype)
        })
        .collect()
}

/// Whether index `i` of `g` addresses an axis of some input, directly or through a delta with
/// an index that does (the indices whose extent `.ein` can infer from the statement).
pub(crate) fn anchored(g: &Generic) -> Vec<bool> {
    let mut anchored = vec![false; g.indices.len()];
    for input in &g.inputs {
        for entry in &input.map {
            if let AxisMap::Index(i) = entry {
                if let Some(a) = anchored.get_mut(i.0 as usize) {
                    *a = true;
                }
            }
        }
    }
    let mut groups = Vec::new();
    collect_deltas(&g.body, &mut groups);
    loop {
        let mut changed = false;
        for group in &groups {
            let any = group
                .iter()
                .any(|i| anchored.get(i.0 as usize).copied().unwrap_or(false));
            for i in group {
                if let Some(a) = anchored.get_mut(i.0 as usize) {
                    if any && !*a {
                        *a = true;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return anchored;
        }
    }
}

fn collect_deltas(e: &Expr, out: &mut Vec<Vec<IndexId>>) {
    match e {
        Expr::Delta(ids, _) => out.push(ids.clone()),
        Expr::Unary(_, x) | Expr::Cast(_, x) => collect_deltas(x, out),
        Expr::Binary(_, a, b) => {
            collect_deltas(a, out);
            collect_deltas(b, out);
        }
        Expr::Select(_, a, b) => {
            collect_deltas(a, out);
            collect_deltas(b, out);
        }
        Expr::Input(_) | Expr::Index(_) | Expr::Lit(_) | Expr::DimValue(..) | Expr::Eps(..) => {}
    }
}

/// Fuses one elementwise op into its readers (see the module doc), or `None` when no op
/// qualifies.
fn fuse_one(f: &Function) -> Option<Function> {
    let readers = |v: ValueId| -> Vec<(usize, usize)> {
        f.ops
            .iter()
            .enumerate()
            .flat_map(|(n, op)| {
                let OpKind::Generic(g) = &op.kind;
                g.inputs
                    .iter()
                    .enumerate()
                    .filter(move |(_, i)| i.value == v)
                    .map(move |(k, _)| (n, k))
            })
            .collect()
    };
    for (p, op) in f.ops.iter().enumerate() {
        let OpKind::Generic(producer) = &op.kind;
        if producer.reduce.is_some() || f.results.iter().any(|r| r.value == op.result) {
            continue;
        }
        let uses = readers(op.result);
        let broadcast = anchored(producer).contains(&false);
        let into_one_map = matches!(uses.as_slice(), [(n, _)] if {
            let OpKind::Generic(c) = &f.ops[*n].kind;
            c.reduce.is_none()
        });
        let copy = matches!(producer.body, Expr::Input(_));
        if uses.is_empty() || !(broadcast || into_one_map || copy) {
            continue;
        }
        let mut out = f.clone();
        let mut fused_all = true;
        for op in out.ops.iter_mut().skip(p + 1) {
            let OpKind::Generic(c) = &mut op.kind;
            while let Some(k) = c.inputs.iter().position(|i| i.value == f.ops[p].result) {
                match fuse_into(producer, c, k) {
                    Some(fused) => *c = fused,
                    None => {
                        fused_all = false;
                        break;
                    }
                }
            }
        }
        if fused_all {
            return Some(drop_dead_ops(out));
        }
    }
    None
}

/// What an index of the producer becomes in the consumer.
#[derive(Clone, Copy)]
enum Place {
    Index(IndexId),
    Fixed(u64),
}

/// `c` with its input `k` (the value of the map `p`) replaced by `p`'s body, read through
/// `c`'s map of that input. `None` when a delta or eps of `p` would land on a fixed position.
fn fuse_into(p: &Generic, c: &Generic, k: usize) -> Option<Generic> {
    let read = c.inputs.get(k)?;
    let mut place: Vec<Option<Place>> = vec![None; p.indices.len()];
    for (axis, &pi) in p.output.iter().enumerate() {
        let entry = match read.map.get(axis)? {
            AxisMap::Index(ci) => Place::Index(*ci),
            AxisMap::Fixed(n) => Place::Fixed(*n),
        };
        *place.get_mut(pi.0 as usize)? = Some(entry);
    }
    let at = |i: IndexId| place.get(i.0 as usize).copied().flatten();
    let mut inputs: Vec<Input> = c.inputs.clone();
    let base = u32::try_from(inputs.len()).ok()?;
    for input in &p.inputs {
        let map = input
            .map
            .iter()
            .map(|e| match e {
                AxisMap::Fixed(n) => Some(AxisMap::Fixed(*n)),
                AxisMap::Index(i) => Some(match at(*i)? {
                    Place::Index(ci) => AxisMap::Index(ci),
                    Place::Fixed(n) => AxisMap::Fixed(n),
                }),
            })
            .collect::<Option<Vec<_>>>()?;
        inputs.push(Input {
            value: input.value,
            map,
        });
    }
    let inlined = rewrite(&p.body, &|n| Some(Expr::Input(base + n)), &at)?;
    let k = u32::try_from(k).ok()?;
    let body = rewrite(
        &c.body,
        &|n| {
            Some(if n == k {
                inlined.clone()
            } else {
                Expr::Input(n)
            })
        },
        &|i| Some(Place::Index(i)),
    )?;
    let (inputs, body) = keep_used_inputs(inputs, &body);
    Some(Generic {
        inputs,
        body,
        schedule: None,
        ..c.clone()
    })
}

/// `e` with its inputs replaced through `input` and its indices moved through `index`.
fn rewrite(
    e: &Expr,
    input: &dyn Fn(u32) -> Option<Expr>,
    index: &dyn Fn(IndexId) -> Option<Place>,
) -> Option<Expr> {
    let r = |x: &Expr| rewrite(x, input, index).map(Box::new);
    let ids = |list: &[IndexId]| -> Option<Vec<IndexId>> {
        list.iter()
            .map(|&i| match index(i)? {
                Place::Index(j) => Some(j),
                Place::Fixed(_) => None,
            })
            .collect()
    };
    Some(match e {
        Expr::Input(n) => input(*n)?,
        Expr::Index(i) => match index(*i)? {
            Place::Index(j) => Expr::Index(j),
            Place::Fixed(n) => Expr::Lit(Scalar::I64(i64::try_from(n).ok()?)),
        },
        Expr::Lit(_) | Expr::DimValue(..) => e.clone(),
        Expr::Unary(f, x) => Expr::Unary(*f, r(x)?),
        Expr::Cast(t, x) => Expr::Cast(*t, r(x)?),
        Expr::Binary(f, a, b) => Expr::Binary(*f, r(a)?, r(b)?),
        Expr::Select(c, a, b) => {
            Expr::Select(Box::new(rewrite_cond(c, input, index)?), r(a)?, r(b)?)
        }
        Expr::Delta(list, t) => Expr::Delta(ids(list)?, *t),
        Expr::Eps(list, t) => Expr::Eps(ids(list)?, *t),
    })
}

fn rewrite_cond(
    c: &Cond,
    input: &dyn Fn(u32) -> Option<Expr>,
    index: &dyn Fn(IndexId) -> Option<Place>,
) -> Option<Cond> {
    let r = |x: &Cond| rewrite_cond(x, input, index).map(Box::new);
    Some(match c {
        Cond::Cmp(op, a, b) => Cond::Cmp(
            *op,
            Box::new(rewrite(a, input, index)?),
            Box::new(rewrite(b, input, index)?),
        ),
        Cond::And(a, b) => Cond::And(r(a)?, r(b)?),
        Cond::Or(a, b) => Cond::Or(r(a)?, r(b)?),
        Cond::Not(a) => Cond::Not(r(a)?),
    })
}

/// Substitutes away every summed index that a delta ties to another index where the body is
/// zero off its diagonal (the `delta-elim` pass's rule, applied to one op).
fn eliminate_deltas(g: &mut Generic) {
    // Extents are compared by name: the derived function's dims are the module's.
    let dims = crate::ir::tensor::Module {
        dims: Vec::new(),
        funcs: Vec::new(),
    };
    while crate::passes::delta_elim::eliminate_one(&dims, g) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::tensor::parser::parse_module;
    use crate::ir::tensor::printer::print_module;
    use crate::ir::tensor::verify::verify_module;
    use crate::ir::tensor::Module;

    fn tidied(text: &str) -> String {
        let m = parse_module(text).unwrap();
        let m = Module {
            funcs: m.funcs.iter().map(tidy).collect(),
            ..m
        };
        verify_module(&m).unwrap();
        print_module(&m)
    }

    #[test]
    fn a_delta_over_a_summed_index_is_substituted_away() {
        let text = "dims N\n\nfunc @f(%x: f64[N]) -> (y: f64[N]) {\n  \
            %y = generic (i: N, j: N) ins(%x[j]) -> [i] reduce add over (j) { mul(delta<f64>(i, j), %0) } : f64\n  \
            return y = %y\n}\n";
        assert!(
            tidied(text).contains("%y = generic (i: N) ins(%x[i]) -> [i] { %0 } : f64"),
            "{}",
            tidied(text)
        );
    }

    #[test]
    fn a_delta_between_free_indices_stays() {
        let text = "dims N\n\nfunc @f(%t: f64) -> (y: f64[N, N]) {\n  \
            %y = generic (i: N, j: N) ins(%t[]) -> [i, j] { mul(%0, delta<f64>(j, i)) } : f64\n  \
            return y = %y\n}\n";
        assert!(tidied(text).contains("{ mul(%0, delta<f64>(j, i)) }"));
    }

    #[test]
    fn a_broadcast_is_fused_into_its_reader_and_a_contribution_into_its_total() {
        let text = "dims N\n\nfunc @f(%a: f64[N, N], %b: f64[N]) -> (y: f64[N, N]) {\n  \
            %c = generic (i: N, j: N) ins(%b[i]) -> [i, j] { %0 } : f64\n  \
            %e = generic (i: N, j: N) ins(%a[i, j]) -> [i, j] { exp(%0) } : f64\n  \
            %y = generic (i: N, j: N) ins(%e[i, j], %c[j, i]) -> [i, j] { add(%0, %1) } : f64\n  \
            return y = %y\n}\n";
        let out = tidied(text);
        assert!(
            out.contains("%y = generic (i: N, j: N) ins(%a[i, j], %b[j]) -> [i, j] { add(exp(%0), %1) } : f64"),
            "{out}"
        );
        assert_eq!(out.matches("generic").count(), 1, "{out}");
    }
}
