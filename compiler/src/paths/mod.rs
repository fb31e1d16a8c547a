//! Contraction paths: in which order to multiply the operands of an N-ary product (an einsum
//! of many operands, or a `.ein` term with many factors) so that the FLOP count is small. The
//! `contraction-path` pass turns the chosen path into pairwise `generic` ops; `einc explain`
//! prints it the way opt_einsum's `PathInfo` does.
//!
//! A product is a [`Network`]: each operand is the set of indices it carries (a repeated index
//! counts once), the output is the set of indices kept, and every index has an extent. A
//! [`Plan`] is a list of [`Step`]s in SSA numbering: operands `0..n` are the inputs and step
//! `k` defines operand `n + k`; [`Plan::linear_path`] gives numpy's `einsum_path` format.
//!
//! [`plan`] does single-operand work first: an index carried by one operand only and not kept
//! is summed out of that operand on its own (a trace, or a sum over a free-standing index),
//! which is never more expensive than carrying the index into a pairwise step. Then one of the
//! search algorithms orders the pairwise steps; each has the same signature (operand sets,
//! output, extents, memory limit) and returns pairs in SSA numbering, or `None` when no path
//! keeps every step's result within the limit:
//!
//! | algorithm | search | used by `auto` |
//! | --- | --- | --- |
//! | [`optimal`] | depth-first over every pair at every step, pruned by the best cost found and by partitions already reached more cheaply | — |
//! | [`dp`] | dynamic programming over connected subsets of operands (pairs that share an index), components joined by an exact search over their results | 13 to 18 operands |
//! | [`dp_all`](dp::dp_all) | dynamic programming over all subsets (every pairwise tree, outer products included): the exact optimum, like `optimal` | up to 12 operands |
//! | [`greedy`] | repeatedly the pair whose result removes the most memory, outer products last | more than 18 operands |
//!
//! The cost model is opt_einsum's ([`cost`]). The memory limit bounds the size of every step's
//! result (in elements, the product's result included, as opt_einsum counts it). When no
//! pairwise path meets the limit, [`plan`] uses the smallest limit some path meets instead and
//! says so in [`Plan::memory`]: the limit is then as tight as it can be, and `explain` shows
//! which steps exceed the one asked for.

pub mod cost;
pub mod dp;
pub mod greedy;
pub mod optimal;
#[cfg(test)]
mod tests;

pub use dp::dp;
pub use greedy::greedy;
pub use optimal::optimal;

/// The extent a symbolic dim is planned with when nothing fixes it (no fixed value, no
/// specialisation, no `--dims` hint): a "large" dim, so that costs compare mainly by how many
/// unknown dims they multiply while known extents still count. Plans made with it are good
/// whenever the unknown dims are large compared with the fixed ones, the usual case (sequence
/// lengths, batch sizes); `Kernel::specialize` or `--dims` replan with real extents.
pub const ASSUMED_EXTENT: u64 = 1000;

/// A set of indices, one bit per index (so a product has at most [`MAX_INDICES`]).
pub type IndexSet = u128;

/// The most distinct indices a product may have to be planned.
pub const MAX_INDICES: usize = 128;

/// The indices of `set`, in increasing order.
pub fn members(set: IndexSet) -> impl Iterator<Item = usize> {
    let mut rest = set;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let i = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        Some(i)
    })
}

/// An N-ary product to plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The indices of each operand.
    pub inputs: Vec<IndexSet>,
    /// The indices of the result.
    pub output: IndexSet,
    /// The extent of each index (by bit position).
    pub sizes: Vec<u64>,
}

/// A search algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Exact where affordable, greedy beyond (see the module docs).
    #[default]
    Auto,
    /// [`optimal`].
    Optimal,
    /// [`dp`].
    Dp,
    /// [`greedy`].
    Greedy,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Auto,
        Algorithm::Optimal,
        Algorithm::Dp,
        Algorithm::Greedy,
    ];

    /// The name as `--optimize` and pipeline strings spell it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::Optimal => "optimal",
            Algorithm::Dp => "dp",
            Algorithm::Greedy => "greedy",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// How to plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathOptions {
    /// The search algorithm.
    pub algorithm: Algorithm,
    /// The largest step result allowed, in elements (`None`: no limit).
    pub memory_limit: Option<u128>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The operands multiplied, in SSA numbering (one for a single-operand sum, else two).
    pub operands: Vec<usize>,
    /// Every index of the step (the union of the operands').
    pub indices: IndexSet,
    /// The indices of its result.
    pub result: IndexSet,
    /// The indices it sums over.
    pub summed: IndexSet,
    /// Its FLOPs.
    pub flops: u128,
    /// The elements of its result.
    pub size: u128,
}

/// When the memory limit asked for cannot be met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryShortfall {
    /// The limit asked for.
    pub asked: u128,
    /// The smallest limit some path meets, which the plan was made with.
    pub smallest: u128,
}

/// A contraction path and its costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The FLOPs of one step over everything (see [`cost::naive_flops`]).
    pub naive_flops: u128,
    /// The FLOPs of the steps.
    pub opt_flops: u128,
    /// The largest step result, in elements (1 without steps).
    pub largest_intermediate: u128,
    /// Set when no path meets the memory limit asked for.
    pub memory: Option<MemoryShortfall>,
}

impl Plan {
    /// The path in numpy's `einsum_path` format: per step, the positions of its operands in
    /// the current operand list (inputs first), whose result is appended to the list.
    pub fn linear_path(&self, inputs: usize) -> Vec<Vec<usize>> {
        let mut current: Vec<usize> = (0..inputs).collect();
        let mut path = Vec::with_capacity(self.steps.len());
        for (next, step) in (inputs..).zip(&self.steps) {
            let mut positions: Vec<usize> = step
                .operands
                .iter()
                .filter_map(|id| current.iter().position(|c| c == id))
                .collect();
            positions.sort_unstable();
            for &p in positions.iter().rev() {
                current.remove(p);
            }
            current.push(next);
            path.push(positions);
        }
        path
    }

    /// The steps whose result exceeds `limit` elements.
    pub fn steps_over(&self, limit: u128) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&k| self.steps[k].size > limit)
            .collect()
    }
}

/// A path in numpy's `einsum_path` format (positions in the current operand list, each
/// result appended) in SSA numbering (inputs `0..inputs`, step `k`'s result `inputs + k`), or
/// `None` when a position is out of range or repeated within a step.
pub fn ssa_path(linear: &[Vec<usize>], inputs: usize) -> Option<Vec<Vec<usize>>> {
    let mut current: Vec<usize> = (0..inputs).collect();
    let mut out = Vec::with_capacity(linear.len());
    for (k, step) in linear.iter().enumerate() {
        let mut positions = step.clone();
        positions.sort_unstable();
        positions.dedup();
        if positions.len() != step.len() || positions.iter().any(|&p| p >= current.len()) {
            return None;
        }
        out.push(step.iter().map(|&p| current[p]).collect());
        for &p in positions.iter().rev() {
            current.remove(p);
        }
        current.push(inputs + k);
    }
    Some(out)
}

/// Pairwise steps over operands numbered `0..m`, results numbered from `m` (SSA).
type Pairs = Vec<(usize, usize)>;

/// Plans `net`: single-operand sums first, then the pairwise order of `opts.algorithm` within
/// the memory limit (or, when no path meets it, the smallest limit that some path meets).
pub fn plan(net: &Network, opts: &PathOptions) -> Plan {
    let n = net.inputs.len();
    let mut steps: Vec<Vec<usize>> = Vec::new();
    // Operand k of the pairwise search is SSA operand `ids[k]` with indices `sets[k]`.
    let mut ids: Vec<usize> = Vec::with_capacity(n);
    let mut sets: Vec<IndexSet> = Vec::with_capacity(n);
    let mut unary_peak = 0u128;
    for (k, &s) in net.inputs.iter().enumerate() {
        let others = net
            .inputs
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .fold(net.output, |acc, (_, &t)| acc | t);
        let lone = s & !others;
        if lone != 0 || (n == 1 && s != net.output) {
            ids.push(n + steps.len());
            steps.push(vec![k]);
            sets.push(s & !lone);
            unary_peak = unary_peak.max(cost::size(s & !lone, &net.sizes));
        } else {
            ids.push(k);
            sets.push(s);
        }
    }
    let search = |limit: Option<u128>| {
        // A restricted search (`dp` without outer products, `greedy`) can miss a path that
        // meets the limit: then the exact subset search, then greedy, which finds one whenever
        // the limit is at least the smallest feasible one.
        search(opts.algorithm, &sets, net.output, &net.sizes, limit)
            .or_else(|| limit.and_then(|_| dp::dp_all(&sets, net.output, &net.sizes, limit)))
            .or_else(|| limit.and_then(|_| greedy(&sets, net.output, &net.sizes, limit)))
    };
    let mut memory = None;
    let pairs = match opts.memory_limit {
        Some(limit) => match search(Some(limit)).filter(|_| unary_peak <= limit) {
            Some(pairs) => pairs,
            None => {
                let smallest = min_peak(&sets, net.output, &net.sizes).max(unary_peak);
                memory = Some(MemoryShortfall {
                    asked: limit,
                    smallest,
                });
                search(Some(smallest))
                    .or_else(|| search(None))
                    .unwrap_or_default()
            }
        },
        None => search(None).unwrap_or_default(),
    };
    let m = sets.len();
    let first_pair = n + steps.len();
    for (a, b) in pairs {
        let global = |k: usize| {
            if k < m {
                ids[k]
            } else {
                first_pair + (k - m)
            }
        };
        steps.push(vec![global(a), global(b)]);
    }
    evaluate(net, steps, memory)
}

/// The plan of the steps given in SSA numbering, costed by the one cost model.
pub fn evaluate(net: &Network, ssa: Vec<Vec<usize>>, memory: Option<MemoryShortfall>) -> Plan {
    let mut sets: Vec<IndexSet> = net.inputs.clone();
    let mut alive: Vec<bool> = vec![true; sets.len()];
    let mut steps = Vec::with_capacity(ssa.len());
    for operands in ssa {
        for &o in &operands {
            if let Some(a) = alive.get_mut(o) {
                *a = false;
            }
        }
        let indices = operands
            .iter()
            .filter_map(|&o| sets.get(o))
            .fold(0, |acc, &s| acc | s);
        let keep = sets
            .iter()
            .zip(&alive)
            .filter(|(_, &a)| a)
            .fold(net.output, |acc, (&s, _)| acc | s);
        let result = indices & keep;
        let summed = indices & !keep;
        steps.push(Step {
            flops: cost::step_flops(indices, operands.len(), summed != 0, &net.sizes),
            size: cost::size(result, &net.sizes),
            operands,
            indices,
            result,
            summed,
        });
        sets.push(result);
        alive.push(true);
    }
    Plan {
        naive_flops: cost::naive_flops(&net.inputs, &net.sizes),
        opt_flops: steps.iter().fold(0u128, |a, s| a.saturating_add(s.flops)),
        largest_intermediate: steps.iter().map(|s| s.size).max().unwrap_or(1),
        steps,
        memory,
    }
}

/// The pairwise order chosen by `algorithm` (`auto`: the exact subset search up to 12
/// operands, the connected-subset search up to 18 ([`dp::MAX_OPERANDS`]), greedy beyond).
fn search(
    algorithm: Algorithm,
    sets: &[IndexSet],
    output: IndexSet,
    sizes: &[u64],
    limit: Option<u128>,
) -> Option<Pairs> {
    if sets.len() < 2 {
        return Some(Vec::new());
    }
    let found = match algorithm {
        Algorithm::Optimal => optimal(sets, output, sizes, limit),
        Algorithm::Dp if sets.len() <= dp::MAX_OPERANDS => dp(sets, output, sizes, limit),
        Algorithm::Auto if sets.len() <= AUTO_EXACT => dp::dp_all(sets, output, sizes, limit),
        Algorithm::Auto if sets.len() <= dp::MAX_OPERANDS => dp(sets, output, sizes, limit),
        _ => None,
    };
    // Beyond an algorithm's reach (`dp` past its size), greedy: without a limit it always
    // finds a path.
    found.or_else(|| greedy(sets, output, sizes, limit))
}

/// `auto` searches every pairwise tree up to this many operands.
const AUTO_EXACT: usize = 12;

/// The smallest memory limit some pairwise path meets: exact (over every tree) up to
/// [`dp::MAX_ALL`] operands, else the peak of the greedy path.
fn min_peak(sets: &[IndexSet], output: IndexSet, sizes: &[u64]) -> u128 {
    if sets.len() < 2 {
        return 0;
    }
    if sets.len() <= dp::MAX_ALL {
        return dp::min_peak(sets, output, sizes);
    }
    let pairs = greedy(sets, output, sizes, None).unwrap_or_default();
    let net = Network {
        inputs: sets.to_vec(),
        output,
        sizes: sizes.to_vec(),
    };
    let ssa = pairs.into_iter().map(|(a, b)| vec![a, b]).collect();
    evaluate(&net, ssa, None).largest_intermediate
}

/// The result of a pairwise step joining operands with indices `a` and `b` when `keep` holds
/// every index still needed after it (the output's and the other operands'): the result's
/// indices and the step's FLOPs.
pub(crate) fn pair_cost(
    a: IndexSet,
    b: IndexSet,
    keep: IndexSet,
    sizes: &[u64],
) -> (IndexSet, u128) {
    let union = a | b;
    let result = union & keep;
    let flops = cost::step_flops(union, 2, union & !keep != 0, sizes);
    (result, flops)
}
