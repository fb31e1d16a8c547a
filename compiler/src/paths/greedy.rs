//! `greedy`: repeatedly contracts the pair of operands that share an index and whose result
//! removes the most memory (`size(result) - size(a) - size(b)` smallest, then fewest FLOPs),
//! like opt_einsum's default greedy cost; when no pair shares an index, the pair with the
//! smallest result (an outer product). Pairs whose result exceeds the memory limit are skipped;
//! when every remaining pair does, there is no path (`None`). `O(n³)` per step: fast for any
//! realistic product, with no guarantee of optimality.

use super::{cost, pair_cost, IndexSet, Pairs};
use std::cmp::Ordering;

/// A greedy path within `limit`; `None` when it gets stuck on the limit.
pub fn greedy(
    sets: &[IndexSet],
    output: IndexSet,
    sizes: &[u64],
    limit: Option<u128>,
) -> Option<Pairs> {
    let m = sets.len();
    let mut nodes: Vec<(usize, IndexSet)> = sets.iter().copied().enumerate().collect();
    let mut pairs = Vec::with_capacity(m.saturating_sub(1));
    while nodes.len() > 1 {
        let mut best: Option<Candidate> = None;
        for i in 0..nodes.len() {
            for j in i + 1..nodes.len() {
                let keep = nodes
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i && k != j)
                    .fold(output, |acc, (_, n)| acc | n.1);
                let (a, b) = (nodes[i].1, nodes[j].1);
                let (result, flops) = pair_cost(a, b, keep, sizes);
                let size = cost::size(result, sizes);
                if limit.is_some_and(|l| size > l) {
                    continue;
                }
                let c = Candidate {
                    shares: a & b != 0,
                    size,
                    inputs: cost::size(a, sizes).saturating_add(cost::size(b, sizes)),
                    flops,
                    i,
                    j,
                    result,
                };
                if best.as_ref().is_none_or(|b| c.better_than(b)) {
                    best = Some(c);
                }
            }
        }
        let c = best?;
        let (a, b) = (nodes[c.i].0, nodes[c.j].0);
        nodes.remove(c.j);
        nodes.remove(c.i);
        pairs.push((a, b));
        nodes.push((m + pairs.len() - 1, c.result));
    }
    Some(pairs)
}

/// A pair that could be contracted next.
struct Candidate {
    shares: bool,
    size: u128,
    inputs: u128,
    flops: u128,
    i: usize,
    j: usize,
    result: IndexSet,
}

impl Candidate {
    /// Pairs sharing an index first; among those the most memory removed; among outer
    /// products the smallest result; then the fewest FLOPs; then the first pair.
    fn better_than(&self, other: &Candidate) -> bool {
        if self.shares != other.shares {
            return self.shares;
        }
        let memory = if self.shares {
            // size - inputs < other.size - other.inputs, without leaving unsigned arithmetic.
            self.size
                .saturating_add(other.inputs)
                .cmp(&other.size.saturating_add(self.inputs))
        } else {
            self.size.cmp(&other.size)
        };
        match memory.then(self.flops.cmp(&other.flops)) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => (self.i, self.j) < (other.i, other.j),
        }
    }
}
