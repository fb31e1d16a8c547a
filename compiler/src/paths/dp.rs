//! Dynamic programming over subsets of operands: the cheapest way to contract a subset `S` is
//! the cheapest split `S = A ∪ B` into two parts contracted first, plus the pairwise step that
//! joins them. Each subset's result has the indices of `S` that the output or an operand
//! outside `S` still needs, so every subset is solved once.
//!
//! - [`dp_all`] considers every subset and every split (outer products included): the exact
//!   optimum over all pairwise paths, in `3^m` split evaluations for `m` operands.
//! - [`dp`] considers only connected subsets (operands linked by shared indices) and splits
//!   whose parts share an index, like opt_einsum's `dp` (which also allows Hadamard-like joins
//!   over kept indices here); disconnected components are solved apart and their results
//!   joined by [`dp_all`] over the components. Much faster on sparse networks (chains,
//!   matrix product states), exact among paths without outer products.
//! - [`min_peak`] minimises the largest step result instead of the FLOPs: the smallest memory
//!   limit that some path meets.

use super::{cost, IndexSet, Pairs};

/// The most operands [`dp`] accepts (its tables have `2^m` entries).
pub const MAX_OPERANDS: usize = 18;
/// The most operands [`dp_all`] and [`min_peak`] accept (they evaluate `3^m` splits).
pub const MAX_ALL: usize = 14;

/// The cheapest path over every pairwise tree, within `limit`; `None` when no path meets it
/// (or there are more than [`MAX_ALL`] operands).
pub fn dp_all(
    sets: &[IndexSet],
    output: IndexSet,
    sizes: &[u64],
    limit: Option<u128>,
) -> Option<Pairs> {
    if sets.len() > MAX_ALL {
        return None;
    }
    let t = Tables::new(sets, output, sizes);
    let full = t.full();
    let solved = t.solve(|_| true, false, Objective::Flops, limit);
    solved.pairs(full, sets.len())
}

/// The cheapest path among those that only join operands sharing an index (components joined
/// last, exactly), within `limit`; `None` when no such path meets it (or there are more than
/// [`MAX_OPERANDS`] operands).
pub fn dp(
    sets: &[IndexSet],
    output: IndexSet,
    sizes: &[u64],
    limit: Option<u128>,
) -> Option<Pairs> {
    let m = sets.len();
    if m > MAX_OPERANDS {
        return None;
    }
    let t = Tables::new(sets, output, sizes);
    let connected = t.connected(sets);
    let solved = t.solve(|s| connected[s], true, Objective::Flops, limit);
    // The components, each solved on its own; then their results joined.
    let components = components(sets);
    let mut pairs: Pairs = Vec::new();
    let mut roots: Vec<usize> = Vec::with_capacity(components.len());
    for &c in &components {
        let sub = solved.pairs(c, m)?;
        let offset = m + pairs.len();
        for (a, b) in sub {
            let shift = |k: usize| if k < m { k } else { k - m + offset };
            pairs.push((shift(a), shift(b)));
        }
        roots.push(if c.count_ones() == 1 {
            c.trailing_zeros() as usize
        } else {
            m + pairs.len() - 1
        });
    }
    if roots.len() > 1 {
        let results: Vec<IndexSet> = components.iter().map(|&c| t.result[c]).collect();
        let joins = dp_all(&results, output, sizes, limit)
            .or_else(|| super::greedy(&results, output, sizes, limit))?;
        let mut ids = roots;
        for (a, b) in joins {
            pairs.push((ids[a], ids[b]));
            ids.push(m + pairs.len() - 1);
        }
    }
    Some(pairs)
}

/// The smallest largest-step-result over every pairwise path (0 for fewer than two operands;
/// `u128::MAX` beyond [`MAX_ALL`] operands).
pub fn min_peak(sets: &[IndexSet], output: IndexSet, sizes: &[u64]) -> u128 {
    if sets.len() < 2 {
        return 0;
    }
    if sets.len() > MAX_ALL {
        return u128::MAX;
    }
    let t = Tables::new(sets, output, sizes);
    let full = t.full();
    t.solve(|_| true, false, Objective::Peak, None).best[full]
}

/// What a subset search minimises.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Objective {
    /// The sum of the steps' FLOPs.
    Flops,
    /// The largest step result.
    Peak,
}

/// Per subset of operands (a bitmask): the union of their indices, the indices of their
/// contracted result, and its size.
struct Tables<'a> {
    result: Vec<IndexSet>,
    size: Vec<u128>,
    sizes: &'a [u64],
}

/// The best cost and split of every subset.
struct Solved {
    best: Vec<u128>,
    split: Vec<u32>,
}

impl<'a> Tables<'a> {
    fn new(sets: &[IndexSet], output: IndexSet, sizes: &'a [u64]) -> Tables<'a> {
        let m = sets.len();
        let n = 1usize << m;
        let mut union = vec![0 as IndexSet; n];
        for s in 1..n {
            let low = s.trailing_zeros() as usize;
            union[s] = union[s & (s - 1)] | sets[low];
        }
        let full = n - 1;
        let result: Vec<IndexSet> = (0..n)
            .map(|s| union[s] & (output | union[full ^ s]))
            .collect();
        let size = result.iter().map(|&r| cost::size(r, sizes)).collect();
        Tables {
            result,
            size,
            sizes,
        }
    }

    fn full(&self) -> usize {
        self.result.len() - 1
    }

    /// Whether each subset is connected (its operands linked by shared indices).
    fn connected(&self, sets: &[IndexSet]) -> Vec<bool> {
        let n = self.result.len();
        let mut conn = vec![false; n];
        let mut queue: Vec<usize> = Vec::new();
        for k in 0..sets.len() {
            conn[1 << k] = true;
            queue.push(1 << k);
        }
        // Grow every connected subset by one neighbour at a time.
        while let Some(s) = queue.pop() {
            let indices = super::members(s as IndexSet).fold(0, |a, k| a | sets[k]);
            for (k, &set) in sets.iter().enumerate() {
                let t = s | (1 << k);
                if t != s && set & indices != 0 && !conn[t] {
                    conn[t] = true;
                    queue.push(t);
                }
            }
        }
        conn
    }

    /// Solves every subset `allowed` admits, in increasing order (parts before wholes).
    /// `shared`: only join parts whose results share an index.
    fn solve(
        &self,
        allowed: impl Fn(usize) -> bool,
        shared: bool,
        objective: Objective,
        limit: Option<u128>,
    ) -> Solved {
        let n = self.result.len();
        let mut best = vec![u128::MAX; n];
        let mut split = vec![0u32; n];
        for s in 1..n {
            if !allowed(s) {
                continue;
            }
            if s.count_ones() == 1 {
                best[s] = 0;
                continue;
            }
            if limit.is_some_and(|l| self.size[s] > l) {
                continue;
            }
            let low = s & s.wrapping_neg();
            let rest = s ^ low;
            // Every split into A (holding the lowest operand) and B = S \ A, both non-empty.
            let mut sub = rest;
            loop {
                let a = sub | low;
                let b = s ^ a;
                if b != 0 && best[a] != u128::MAX && best[b] != u128::MAX {
                    let (ra, rb) = (self.result[a], self.result[b]);
                    if !shared || ra & rb != 0 {
                        let union = ra | rb;
                        let c = match objective {
                            Objective::Flops => {
                                let step = cost::step_flops(
                                    union,
                                    2,
                                    union & !self.result[s] != 0,
                                    self.sizes,
                                );
                                best[a].saturating_add(best[b]).saturating_add(step)
                            }
                            Objective::Peak => best[a].max(best[b]).max(self.size[s]),
                        };
                        if c < best[s] {
                            best[s] = c;
                            split[s] = a as u32;
                        }
                    }
                }
                if sub == 0 {
                    break;
                }
                sub = (sub - 1) & rest;
            }
        }
        Solved { best, split }
    }
}

impl Solved {
    /// The pairs contracting subset `s` of `m` operands in SSA numbering (results from `m`),
    /// or `None` when it has no solution.
    fn pairs(&self, s: usize, m: usize) -> Option<Pairs> {
        if *self.best.get(s)? == u128::MAX {
            return None;
        }
        let mut pairs = Vec::new();
        self.emit(s, m, &mut pairs);
        Some(pairs)
    }

    /// Appends the pairs of `s` and returns the SSA id of its result.
    fn emit(&self, s: usize, m: usize, pairs: &mut Pairs) -> usize {
        if s.count_ones() == 1 {
            return s.trailing_zeros() as usize;
        }
        let a = self.split[s] as usize;
        let x = self.emit(a, m, pairs);
        let y = self.emit(s ^ a, m, pairs);
        pairs.push((x, y));
        m + pairs.len() - 1
    }
}

/// The connected components of the operands (linked by shared indices), as bitmasks in order
/// of their lowest operand.
fn components(sets: &[IndexSet]) -> Vec<usize> {
    let mut comp: Vec<usize> = Vec::new();
    let mut seen = 0usize;
    for start in 0..sets.len() {
        if seen & (1 << start) != 0 {
            continue;
        }
        let mut c = 1usize << start;
        let mut indices = sets[start];
        loop {
            let grown = sets
                .iter()
                .enumerate()
                .filter(|&(_, &s)| s & indices != 0)
                .fold(c, |acc, (k, _)| acc | (1 << k));
            if grown == c {
                break;
            }
            c = grown;
            indices = super::members(c as IndexSet).fold(0, |a, k| a | sets[k]);
        }
        seen |= c;
        comp.push(c);
    }
    comp
}
