//! `delta-elim`: eliminates Kronecker deltas over summed indices by index substitution.
//!
//! For a `generic` whose reduction is `add` and whose body is a product with a factor
//! `delta(i, j, ...)` (reachable from the root through `mul` nodes only), where at least one of
//! the delta's indices is summed: every summed index of the delta is replaced by one
//! representative — the first of its indices that is an output index, or else the first of
//! them in the reduction order — in the input maps and the body, and dropped from the
//! iteration space. `sum_j delta(i, j) * x[j]` becomes `x[i]` (and the op a map when nothing
//! else is summed); `sum_{i,j} delta(i, j) * A[i, j]` becomes `sum_i A[i, i]`. The delta factor
//! disappears, or shrinks to the output indices when two or more of those remain
//! (`delta(i, j, k)` with outputs `i, j` and `k` summed becomes `delta(i, j)`). A delta of one
//! distinct index (`delta(i, i)`) is 1 and is removed in any op.
//!
//! Requires: verified tensor IR; the delta's indices have equal extents (otherwise the op is
//! left alone). Guarantees: verified tensor IR; no delta factor over a summed index remains in
//! an `add` reduction; the results are bit-identical to the original's for finite inputs up to
//! the sign of zero (the dropped terms are exact zeros, the kept ones are summed in the same
//! order, and multiplying by 1 is exact). With infinite or NaN inputs the original may give NaN
//! where the rewrite does not (`0 * inf` is no longer computed).

use super::rewrite::{
    fixed_extent, remove_indices, rename_indices, rewrite_to_fixpoint, split_factor,
};
use super::TensorPass;
use crate::ir::tensor::{Expr, Extent, Generic, IndexId, Module, ReduceKind};

/// The `delta-elim` pass.
#[derive(Debug)]
pub struct DeltaElim;

impl TensorPass for DeltaElim {
    fn run_tensor(&self, m: &mut Module) -> bool {
        rewrite_to_fixpoint(m, eliminate_one)
    }
}

/// The distinct indices of a delta, in order of first appearance.
fn distinct(ids: &[IndexId]) -> Vec<IndexId> {
    let mut out: Vec<IndexId> = Vec::new();
    for &i in ids {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Whether `e` is a delta this pass can remove from `g`.
fn eligible(m: &Module, g: &Generic, e: &Expr) -> bool {
    let Expr::Delta(ids, _) = e else {
        return false;
    };
    let ids = distinct(ids);
    if ids.len() == 1 {
        return true;
    }
    let summed = g
        .reduce
        .as_ref()
        .is_some_and(|r| r.kind == ReduceKind::Add && ids.iter().any(|i| r.over.contains(i)));
    // Equal extents: compare fixed values where the module fixes them, names otherwise.
    let extent = |i: IndexId| match fixed_extent(m, g, i) {
        Some(n) => Some(Extent::Fixed(n)),
        None => g.indices.get(i.0 as usize).map(|d| d.extent.clone()),
    };
    summed
        && ids
            .iter()
            .all(|&i| extent(i).is_some() && extent(i) == extent(ids[0]))
}

/// Removes one eligible delta factor from `g`; returns whether there was one.
fn eliminate_one(m: &Module, g: &mut Generic) -> bool {
    let Some((Expr::Delta(ids, dtype), rest)) = split_factor(&g.body, &|e| eligible(m, g, e))
    else {
        return false;
    };
    let ids = distinct(&ids);
    let over: Vec<IndexId> = g
        .reduce
        .as_ref()
        .map(|r| r.over.clone())
        .unwrap_or_default();
    let outputs: Vec<IndexId> = ids.iter().copied().filter(|i| !over.contains(i)).collect();
    let rep = match outputs.first() {
        Some(&o) => o,
        None => over
            .iter()
            .copied()
            .find(|i| ids.contains(i))
            .unwrap_or(ids[0]),
    };
    let gone: Vec<IndexId> = ids
        .iter()
        .copied()
        .filter(|&i| i != rep && over.contains(&i))
        .collect();
    let subst = |i: IndexId| if gone.contains(&i) { rep } else { i };
    let kept_delta = (outputs.len() >= 2).then(|| Expr::Delta(outputs.clone(), dtype));
    let body = match (kept_delta, rest) {
        (Some(d), Some(r)) => {
            Expr::Binary(crate::ir::tensor::BinaryFn::Mul, Box::new(d), Box::new(r))
        }
        (Some(d), None) => d,
        (None, Some(r)) => r,
        (None, None) => Expr::Lit(einc_runtime::Scalar::I64(1).cast(g.dtype)),
    };
    g.body = rename_indices(&body, &subst);
    for input in &mut g.inputs {
        for a in &mut input.map {
            if let crate::ir::tensor::AxisMap::Index(i) = a {
                *i = subst(*i);
            }
        }
    }
    remove_indices(g, &gone);
    true
}
