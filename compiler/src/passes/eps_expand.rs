//! `eps-expand`: expands a Levi-Civita symbol over summed indices into its non-zero terms.
//!
//! For a `generic` whose reduction is `add` and whose body is a product with a factor
//! `eps(i1, ..., in)` (reachable from the root through `mul` nodes only; the indices distinct,
//! each of extent n, n at most `max-rank`) of which at least one index is summed: the summed
//! eps indices are dropped from the iteration space and the body becomes the sum, over the n!
//! permutations σ in the order the original reduction visits them, of the remaining product
//! with each summed eps index fixed to its value under σ — in input maps (`A[0, i]` becomes
//! `A[0, 2]`; an input is duplicated once per distinct fixed map) and in index values — negated
//! for odd σ. `det3 = sum_{ijk} eps(i,j,k) A[0,i] A[1,j] A[2,k]` becomes one map of six
//! products of fixed elements.
//!
//! An eps index that is an output (`c[i] = eps(i,j,k) a[j] b[k]`) cannot be fixed, since each
//! output element needs other terms and input maps cannot compute indices; such a term is
//! instead guarded by `select(eq(i, σ(i)), term, 0)`, so the cross product becomes a map over
//! `i` with six guarded terms instead of a 27-point reduction.
//!
//! Requires: verified tensor IR; no other delta or eps of the body mentions the summed eps
//! indices (otherwise the op is left alone). Guarantees: verified tensor IR with no eps factor
//! over a summed index left in an `add` reduction of rank ≤ `max-rank`. When the eps indices
//! are all the summed indices, the results are bit-identical to the original's for finite
//! inputs up to the sign of zero (zero terms are dropped, the others summed in the original
//! order); when other indices remain summed, the terms are added in a different order, so
//! floating-point results may differ by rounding.

use super::rewrite::{
    any_node, fixed_extent, remove_indices, rewrite_to_fixpoint, split_factor, transform,
};
use super::TensorPass;
use crate::ir::tensor::{
    AxisMap, BinaryFn, CmpOp, Cond, Expr, Generic, IndexId, Input, Module, ReduceKind, UnaryFn,
};
use einc_runtime::Scalar;

/// The default of the `max-rank` option: rank 4 gives 24 terms.
pub const DEFAULT_MAX_RANK: u64 = 4;
/// The largest `max-rank` accepted: rank 6 already gives 720 terms.
pub const LIMIT_MAX_RANK: u64 = 6;

/// The `eps-expand` pass.
#[derive(Debug)]
pub struct EpsExpand {
    /// Expand eps of at most this many indices.
    pub max_rank: u64,
}

impl TensorPass for EpsExpand {
    fn run_tensor(&self, m: &mut Module) -> bool {
        rewrite_to_fixpoint(m, |dims, g| self.expand_one(dims, g))
    }
}

impl EpsExpand {
    /// Whether `e` is an eps factor this pass expands in `g`.
    fn eligible(&self, m: &Module, g: &Generic, e: &Expr) -> bool {
        let Expr::Eps(ids, _) = e else {
            return false;
        };
        let n = ids.len() as u64;
        let Some(r) = g.reduce.as_ref().filter(|r| r.kind == ReduceKind::Add) else {
            return false;
        };
        let distinct = ids.iter().enumerate().all(|(k, i)| !ids[..k].contains(i));
        (2..=self.max_rank).contains(&n)
            && distinct
            && ids.iter().any(|i| r.over.contains(i))
            && ids.iter().all(|&i| fixed_extent(m, g, i) == Some(n))
    }

    /// Expands one eligible eps factor of `g`; returns whether there was one.
    fn expand_one(&self, m: &Module, g: &mut Generic) -> bool {
        let Some((Expr::Eps(ids, _), rest)) = split_factor(&g.body, &|e| self.eligible(m, g, e))
        else {
            return false;
        };
        let over: Vec<IndexId> = g
            .reduce
            .as_ref()
            .map(|r| r.over.clone())
            .unwrap_or_default();
        // The summed eps indices in reduction order, and the eps positions of the others.
        let summed: Vec<IndexId> = over.iter().copied().filter(|i| ids.contains(i)).collect();
        let rest = rest.unwrap_or_else(|| Expr::Lit(Scalar::I64(1).cast(g.dtype)));
        let clash = any_node(&rest, &mut |e| match e {
            Expr::Delta(x, _) | Expr::Eps(x, _) => x.iter().any(|i| summed.contains(i)),
            _ => false,
        });
        if clash {
            return false;
        }
        let position = |i: IndexId| ids.iter().position(|&x| x == i).unwrap_or(0);
        let mut perms = permutations(ids.len());
        // Visit the terms in the order the original reduction does: by the values of the
        // summed indices, the first in `over` slowest.
        perms.sort_by_key(|(p, _)| summed.iter().map(|&i| p[position(i)]).collect::<Vec<_>>());

        let mut inputs: Vec<Input> = Vec::new();
        let mut total: Option<Expr> = None;
        for (perm, odd) in &perms {
            let value_of = |i: IndexId| ids.iter().position(|&x| x == i).map(|k| perm[k]);
            let fixed = |i: IndexId| summed.contains(&i).then(|| value_of(i)).flatten();
            // This term's inputs, with the summed eps indices fixed, shared between terms.
            let mut slot = Vec::with_capacity(g.inputs.len());
            for input in &g.inputs {
                let map: Vec<AxisMap> = input
                    .map
                    .iter()
                    .map(|&a| match a {
                        AxisMap::Index(i) => fixed(i).map_or(a, AxisMap::Fixed),
                        AxisMap::Fixed(_) => a,
                    })
                    .collect();
                let new = Input {
                    value: input.value,
                    map,
                };
                let pos = inputs.iter().position(|x| *x == new).unwrap_or_else(|| {
                    inputs.push(new);
                    inputs.len() - 1
                });
                slot.push(u32::try_from(pos).unwrap_or(u32::MAX));
            }
            let mut term = transform(&rest, &mut |e| match e {
                Expr::Input(n) => Expr::Input(slot.get(n as usize).copied().unwrap_or(n)),
                Expr::Index(i) => match fixed(i) {
                    Some(v) => Expr::Lit(Scalar::I64(v as i64)),
                    None => e,
                },
                other => other,
            });
            if *odd {
                term = Expr::Unary(UnaryFn::Neg, Box::new(term));
            }
            let guard = ids
                .iter()
                .filter(|i| !summed.contains(i))
                .filter_map(|&i| {
                    let v = value_of(i)?;
                    Some(Cond::Cmp(
                        CmpOp::Eq,
                        Box::new(Expr::Index(i)),
                        Box::new(Expr::Lit(Scalar::I64(v as i64))),
                    ))
                })
                .reduce(|a, b| Cond::And(Box::new(a), Box::new(b)));
            if let Some(c) = guard {
                term = Expr::Select(
                    Box::new(c),
                    Box::new(term),
                    Box::new(Expr::Lit(Scalar::zero(g.dtype))),
                );
            }
            total = Some(match total {
                None => term,
                Some(t) => Expr::Binary(BinaryFn::Add, Box::new(t), Box::new(term)),
            });
        }
        let Some(total) = total else {
            return false;
        };
        g.inputs = inputs;
        g.body = total;
        remove_indices(g, &summed);
        true
    }
}

/// Every permutation of `0..n` with whether it is odd.
fn permutations(n: usize) -> Vec<(Vec<u64>, bool)> {
    let mut out = Vec::new();
    let mut current: Vec<u64> = Vec::with_capacity(n);
    fn go(n: usize, current: &mut Vec<u64>, out: &mut Vec<(Vec<u64>, bool)>) {
        if current.len() == n {
            let inversions = (0..n)
                .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                .filter(|&(a, b)| current[a] > current[b])
                .count();
            out.push((current.clone(), inversions % 2 == 1));
            return;
        }
        for v in 0..n as u64 {
            if !current.contains(&v) {
                current.push(v);
                go(n, current, out);
                current.pop();
            }
        }
    }
    go(n, &mut current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::permutations;

    #[test]
    fn permutations_come_with_their_parity() {
        let p = permutations(3);
        let expect: Vec<(Vec<u64>, bool)> = vec![
            (vec![0, 1, 2], false),
            (vec![0, 2, 1], true),
            (vec![1, 0, 2], true),
            (vec![1, 2, 0], false),
            (vec![2, 0, 1], false),
            (vec![2, 1, 0], true),
        ];
        assert_eq!(p, expect);
    }
}
