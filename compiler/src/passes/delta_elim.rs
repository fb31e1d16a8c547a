//! `delta-elim`: eliminates Kronecker deltas by index substitution.
//!
//! For a `generic` whose reduction is `add`, a delta `delta(i, j, ...)` with a summed index
//! `j` lets `j` be substituted away when the body is zero wherever `j` differs from the delta's
//! representative `i` (the first of its indices that is an output index, or else the first of
//! them in the reduction order): then `sum_j body(j) = body(i)`. The body is zero off that
//! diagonal when the delta is a factor of it, and more generally (structurally) when it is: a
//! delta with both indices; a product with such a factor; a quotient with such a numerator; a
//! negation, cast, `relu`, `abs`, `sqrt` or `tanh` of such an operand (each maps 0 to 0); or a
//! sum, difference or `select` whose every operand or branch is such. So
//! `sum_j delta(i, j) * x[j]` becomes `x[i]` (and the op a map when nothing else is summed),
//! `sum_j delta(i, j) * x[j] / 2` becomes `x[i] / 2`, `sum_j (delta(i, j) * x[j] + delta(i, j) *
//! y[j])` becomes `x[i] + y[i]`, and `sum_{i,j} delta(i, j) * A[i, j]` becomes `sum_i A[i, i]`.
//! The index is replaced in the input maps and everywhere in the body, and dropped from the
//! iteration space. A delta left with one distinct index (`delta(i, i)`) is 1, in any op and
//! anywhere in a body, and a factor 1 disappears; a delta left with two or more output indices
//! stays (`delta(i, j, k)` with outputs `i, j` and `k` summed becomes `delta(i, j)`): it is a
//! scatter onto a diagonal.
//!
//! Requires: verified tensor IR; the delta's indices have equal extents (otherwise the op is
//! left alone). Guarantees: verified tensor IR; no delta over a summed index of an `add`
//! reduction remains where the body is zero off its diagonal; the results are bit-identical to
//! the original's for finite inputs up to the sign of zero (the dropped terms are exact zeros,
//! the kept ones are summed in the same order, and multiplying by 1 is exact). With infinite or
//! NaN inputs, or a denominator that is 0 off the diagonal, the original may give NaN where the
//! rewrite does not (`0 * inf` and `0 / 0` are no longer computed).

use super::rewrite::{
    any_node, fixed_extent, remove_indices, rename_indices, rewrite_to_fixpoint, transform,
};
use super::TensorPass;
use crate::ir::tensor::{
    AxisMap, BinaryFn, Expr, Extent, Generic, IndexId, Module, ReduceKind, UnaryFn,
};
use einc_runtime::Scalar;

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

/// Rewrites one delta of `g` (see the module doc); returns whether there was one.
pub(crate) fn eliminate_one(m: &Module, g: &mut Generic) -> bool {
    if collapse_trivial(g) {
        return true;
    }
    let Some((rep, gone)) = substitution(m, g) else {
        return false;
    };
    let subst = |i: IndexId| if gone.contains(&i) { rep } else { i };
    g.body = rename_indices(&g.body, &subst);
    for input in &mut g.inputs {
        for a in &mut input.map {
            if let AxisMap::Index(i) = a {
                *i = subst(*i);
            }
        }
    }
    remove_indices(g, &gone);
    collapse_trivial(g);
    true
}

/// Replaces every delta of one distinct index by 1 and deduplicates the indices of the others;
/// drops factors 1. Returns whether anything changed.
fn collapse_trivial(g: &mut Generic) -> bool {
    let dtype = g.dtype;
    let mut changed = false;
    let body = transform(&g.body, &mut |n| match n {
        Expr::Delta(ids, t) => {
            let d = distinct(&ids);
            if d.len() == 1 {
                changed = true;
                Expr::Lit(Scalar::I64(1).cast(t))
            } else {
                changed |= d.len() != ids.len();
                Expr::Delta(d, t)
            }
        }
        Expr::Binary(BinaryFn::Mul, x, y) if is_one(&x) => {
            changed = true;
            *y
        }
        Expr::Binary(BinaryFn::Mul | BinaryFn::Div, x, y) if is_one(&y) => {
            changed = true;
            *x
        }
        other => other,
    });
    // A body that was only the delta is now the literal 1 of the op's dtype.
    g.body = match body {
        Expr::Lit(s) if s.dtype() != dtype => Expr::Lit(s.cast(dtype)),
        b => b,
    };
    changed
}

fn is_one(e: &Expr) -> bool {
    matches!(e, Expr::Lit(s) if s.to_f64() == 1.0)
}

/// The representative and the summed indices a delta of `g`'s body lets the pass substitute
/// away, if any.
fn substitution(m: &Module, g: &Generic) -> Option<(IndexId, Vec<IndexId>)> {
    let over = match &g.reduce {
        Some(r) if r.kind == ReduceKind::Add => r.over.clone(),
        _ => return None,
    };
    // Equal extents: compare fixed values where the module fixes them, names otherwise.
    let extent = |i: IndexId| match fixed_extent(m, g, i) {
        Some(n) => Some(Extent::Fixed(n)),
        None => g.indices.get(i.0 as usize).map(|d| d.extent.clone()),
    };
    let mut deltas = Vec::new();
    any_node(&g.body, &mut |n| {
        if let Expr::Delta(ids, _) = n {
            deltas.push(distinct(ids));
        }
        false
    });
    deltas.into_iter().find_map(|ids| {
        if !ids.iter().any(|i| over.contains(i))
            || !ids
                .iter()
                .all(|&i| extent(i).is_some() && extent(i) == extent(ids[0]))
        {
            return None;
        }
        let rep = ids
            .iter()
            .copied()
            .find(|i| !over.contains(i))
            .or_else(|| over.iter().copied().find(|i| ids.contains(i)))?;
        let gone: Vec<IndexId> = ids
            .iter()
            .copied()
            .filter(|&r| r != rep && over.contains(&r) && zero_off_diagonal(&g.body, r, rep))
            .collect();
        (!gone.is_empty()).then_some((rep, gone))
    })
}

/// Whether `e` is zero, structurally, wherever indices `r` and `rep` differ (see the module
/// doc for the forms recognised).
fn zero_off_diagonal(e: &Expr, r: IndexId, rep: IndexId) -> bool {
    let z = |x: &Expr| zero_off_diagonal(x, r, rep);
    match e {
        Expr::Delta(ids, _) => ids.contains(&r) && ids.contains(&rep),
        Expr::Binary(BinaryFn::Mul, x, y) => z(x) || z(y),
        Expr::Binary(BinaryFn::Div, x, _) => z(x),
        Expr::Binary(BinaryFn::Add | BinaryFn::Sub, x, y) => z(x) && z(y),
        Expr::Select(_, x, y) => z(x) && z(y),
        Expr::Unary(
            UnaryFn::Neg | UnaryFn::Relu | UnaryFn::Abs | UnaryFn::Sqrt | UnaryFn::Tanh,
            x,
        )
        | Expr::Cast(_, x) => z(x),
        _ => false,
    }
}
