//! The one FLOP cost model, shared by the path algorithms, the `contraction-path` pass and
//! `einc explain`. It counts as opt_einsum counts (`helpers.flop_count`), so that numbers can be
//! compared with it directly:
//!
//! - a step that multiplies `terms` operands together over the index set `I` costs
//!   `Π_{i ∈ I} extent(i) × (max(1, terms - 1) + [something is summed])`: one multiplication per
//!   point and factor after the first, plus one addition per point when the step sums. A
//!   pairwise step costs the product of all its extents, twice when it sums; a single-operand
//!   sum (a trace, or a sum over an index only that operand carries) costs twice its size.
//! - the naive cost of a whole product of `n` operands is one step over every index with
//!   `terms = n`, counted as summing when some index is shared by two operands (opt_einsum's
//!   `inner_product` rule; in an einsum every shared index that is not in the output is summed).
//!
//! Counts are `u128` and saturate instead of overflowing (an astronomically large count is
//! still larger than every realistic one, which is all a comparison needs).

use super::IndexSet;
use std::fmt;

/// The FLOPs per point of a step multiplying `terms` operands, summing or not.
pub fn flop_factor(terms: usize, sums: bool) -> u128 {
    (terms.saturating_sub(1).max(1) + usize::from(sums)) as u128
}

/// The number of elements of a tensor over the indices in `set` (1 for the empty set).
pub fn size(set: IndexSet, sizes: &[u64]) -> u128 {
    super::members(set).fold(1u128, |acc, i| {
        acc.saturating_mul(u128::from(sizes.get(i).copied().unwrap_or(1)))
    })
}

/// The FLOPs of one step over the indices `indices` multiplying `terms` operands.
pub fn step_flops(indices: IndexSet, terms: usize, sums: bool, sizes: &[u64]) -> u128 {
    size(indices, sizes).saturating_mul(flop_factor(terms, sums))
}

/// The naive cost of evaluating the whole product in one step (what a single `generic` over
/// every index does), with opt_einsum's rule for whether it sums.
pub fn naive_flops(inputs: &[IndexSet], sizes: &[u64]) -> u128 {
    let all = inputs.iter().fold(0, |a, &s| a | s);
    let shared = inputs.iter().map(|s| s.count_ones()).sum::<u32>() > all.count_ones();
    step_flops(all, inputs.len(), shared, sizes)
}

/// A cost written with symbolic extents: `coefficient × Π dims`, e.g. `2*T^2*K`, for `explain`
/// when some extents are unknown. Built with the same factor as the numeric count. A dim that
/// occurs several times is written once with its power (`P^6*X^10`, not `P*X*P*X*...`), in
/// the order of first occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formula {
    /// The product of the known extents and the per-point factor.
    pub coefficient: u128,
    /// The unknown extents, in the order given.
    pub dims: Vec<String>,
}

impl Formula {
    /// The cost of a step with the given extents (a number, or a dim name when unknown).
    pub fn step(extents: &[Result<u64, String>], terms: usize, sums: bool) -> Formula {
        let mut f = Formula {
            coefficient: flop_factor(terms, sums),
            dims: Vec::new(),
        };
        for e in extents {
            match e {
                Ok(n) => f.coefficient = f.coefficient.saturating_mul(u128::from(*n)),
                Err(name) => f.dims.push(name.clone()),
            }
        }
        f
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dims.is_empty() {
            return write!(f, "{}", self.coefficient);
        }
        if self.coefficient != 1 {
            write!(f, "{}*", self.coefficient)?;
        }
        let mut powers: Vec<(&str, usize)> = Vec::new();
        for d in &self.dims {
            match powers.iter_mut().find(|(name, _)| name == d) {
                Some((_, n)) => *n += 1,
                None => powers.push((d, 1)),
            }
        }
        let factors: Vec<String> = powers
            .iter()
            .map(|&(d, n)| {
                if n == 1 {
                    d.to_string()
                } else {
                    format!("{d}^{n}")
                }
            })
            .collect();
        f.write_str(&factors.join("*"))
    }
}
