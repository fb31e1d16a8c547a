//! `optimal`: a depth-first search over every pairwise step at every point (outer products
//! included), like opt_einsum's `optimal`. A branch is cut when its cost so far reaches the best
//! complete path found, when a step's result exceeds the memory limit, or when the same
//! partition of the operands was already reached at no greater cost (the memo makes the search
//! a walk over partitions rather than over orders). Exact; beyond [`MAX_OPERANDS`] operands the
//! subset search [`super::dp::dp_all`] finds the same optimum faster and is used instead (and
//! beyond its reach, [`super::dp`], then [`super::greedy`]).

use super::{cost, pair_cost, IndexSet, Pairs};
use std::collections::HashMap;

/// The most operands searched depth-first.
pub const MAX_OPERANDS: usize = 10;

/// The cheapest path within `limit`; `None` when no path meets it.
pub fn optimal(
    sets: &[IndexSet],
    output: IndexSet,
    sizes: &[u64],
    limit: Option<u128>,
) -> Option<Pairs> {
    let m = sets.len();
    if m > MAX_OPERANDS {
        return super::dp::dp_all(sets, output, sizes, limit)
            .or_else(|| super::dp(sets, output, sizes, limit))
            .or_else(|| super::greedy(sets, output, sizes, limit));
    }
    let mut s = Search {
        output,
        sizes,
        limit,
        best: u128::MAX,
        best_path: None,
        seen: HashMap::new(),
        path: Vec::new(),
    };
    let mut nodes: Vec<Node> = sets
        .iter()
        .enumerate()
        .map(|(k, &set)| Node {
            id: k,
            set,
            members: 1 << k,
        })
        .collect();
    s.go(&mut nodes, 0, m);
    s.best_path
}

/// An operand of the current partition: its SSA id, indices and the inputs it covers.
#[derive(Clone, Copy)]
struct Node {
    id: usize,
    set: IndexSet,
    members: u64,
}

struct Search<'a> {
    output: IndexSet,
    sizes: &'a [u64],
    limit: Option<u128>,
    best: u128,
    best_path: Option<Pairs>,
    /// The cheapest cost at which each partition was reached.
    seen: HashMap<Vec<u64>, u128>,
    path: Pairs,
}

impl Search<'_> {
    fn go(&mut self, nodes: &mut Vec<Node>, cost_so_far: u128, next_id: usize) {
        if nodes.len() <= 1 {
            if cost_so_far < self.best {
                self.best = cost_so_far;
                self.best_path = Some(self.path.clone());
            }
            return;
        }
        let mut key: Vec<u64> = nodes.iter().map(|n| n.members).collect();
        key.sort_unstable();
        match self.seen.get(&key) {
            Some(&c) if c <= cost_so_far => return,
            _ => {
                self.seen.insert(key, cost_so_far);
            }
        }
        for i in 0..nodes.len() {
            for j in i + 1..nodes.len() {
                let keep = nodes
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i && k != j)
                    .fold(self.output, |acc, (_, n)| acc | n.set);
                let (a, b) = (nodes[i], nodes[j]);
                let (result, flops) = pair_cost(a.set, b.set, keep, self.sizes);
                let total = cost_so_far.saturating_add(flops);
                if total >= self.best {
                    continue;
                }
                if self
                    .limit
                    .is_some_and(|l| cost::size(result, self.sizes) > l)
                {
                    continue;
                }
                // Contract i and j (j > i, so remove j first), recurse, and restore.
                nodes.remove(j);
                nodes.remove(i);
                nodes.push(Node {
                    id: next_id,
                    set: result,
                    members: a.members | b.members,
                });
                self.path.push((a.id, b.id));
                self.go(nodes, total, next_id + 1);
                self.path.pop();
                nodes.pop();
                nodes.insert(i, a);
                nodes.insert(j, b);
            }
        }
    }
}
