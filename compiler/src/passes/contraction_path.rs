//! `contraction-path`: turns an N-ary product into a tree of pairwise contractions, in the order
//! of least FLOPs ([`crate::paths`]). The Tucker reconstruction `T[i,j,k] = G[a,b,c] U[i,a]
//! V[j,b] W[k,c]` is one 6-deep nest as written; planned, it is three contractions of 4-deep
//! nests, each multiplying one factor matrix in:
//!
//! ```text
//! %T = generic (i: I, j: J, k: K, a: P, b: Q, c: S) ins(%G[a, b, c], %U[i, a], %V[j, b], %W[k, c]) -> [i, j, k] reduce add over (a, b, c) { mul(mul(mul(%0, %1), %2), %3) } : f32
//!   ==>
//! %T.p1 = generic (i: I, a: P, b: Q, c: S) ins(%G[a, b, c], %U[i, a]) -> [i, b, c] reduce add over (a) { mul(%0, %1) } : f32
//! %T.p2 = generic (i: I, j: J, b: Q, c: S) ins(%V[j, b], %T.p1[i, b, c]) -> [i, j, c] reduce add over (b) { mul(%0, %1) } : f32
//! %T = generic (i: I, j: J, k: K, c: S) ins(%W[k, c], %T.p2[i, j, c]) -> [i, j, k] reduce add over (c) { mul(%0, %1) } : f32
//! ```
//!
//! An op is planned when it has no schedule and its body is a product of input reads (each
//! possibly cast to the op's dtype: [`crate::analysis::product_factors`]) summed by `reduce add`
//! or not summed at all, with at least two factors and every index carried by some factor.
//! Each factor is an operand carrying the distinct indices of its map (fixed positions and
//! repeated indices stay in its map); the planner does single-operand sums first (a trace, a
//! sum over an index only one factor carries), then pairwise steps. The op is rewritten only
//! when the plan costs fewer FLOPs than the op as it stands. Each step becomes a `generic` over
//! its indices (in the op's index order) reading its two operands (or one) through their maps,
//! multiplying them and summing what no later step needs; intermediates are named `<name>.p1`,
//! `<name>.p2`, ... and are laid out in the op's index order; the last step defines the op's
//! own value with its output order.
//!
//! Extents: a fixed extent is used as is; a symbolic dim with a known extent (specialisation,
//! `--dims`) is planned with it; any other dim is planned as [`paths::ASSUMED_EXTENT`]
//! (`docs/passes.md` says why). The plan changes only the order of the arithmetic, never what
//! the kernel computes for any extent.
//!
//! Options: `optimize=auto|optimal|dp|greedy` (default `auto`), `memory-limit=N|none` (the
//! largest intermediate, in elements; default none). When no path meets the limit, the smallest
//! limit that some path meets is used (`einc explain` reports it).
//!
//! Requires: verified tensor IR. Guarantees: verified tensor IR computing the same values:
//! integer results are identical (wrapping products and sums are associative and commutative);
//! float results are equal in exact arithmetic and may differ by rounding (the products and sums
//! are grouped differently).

use super::TensorPass;
use crate::analysis::{product_factors, Factor};
use crate::ir::tensor::builder::Builder;
use crate::ir::tensor::{
    AxisMap, BinaryFn, Expr, Extent, Function, Generic, IndexDef, IndexId, Input, Module, OpKind,
    Reduce, ReduceKind, ValueId,
};
use crate::paths::{self, cost, IndexSet, Network, PathOptions, Plan};
use std::collections::BTreeMap;

/// The `contraction-path` pass.
#[derive(Debug)]
pub struct ContractionPath {
    /// The algorithm and memory limit.
    pub options: PathOptions,
    /// Extents known for symbolic dims.
    pub dims: BTreeMap<String, u64>,
}

impl TensorPass for ContractionPath {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let dims = m.dims.clone();
        let extent = |e: &Extent| -> u64 {
            match e {
                Extent::Fixed(n) => *n,
                Extent::Dim(d) => dims
                    .iter()
                    .find(|def| &def.name == d)
                    .and_then(|def| def.value)
                    .or_else(|| self.dims.get(d).copied())
                    .unwrap_or(paths::ASSUMED_EXTENT),
            }
        };
        let mut changed = false;
        for f in &mut m.funcs {
            changed |= self.plan_function(f, &extent);
        }
        changed
    }
}

/// An op read as a network: the operands are its product's factors.
#[derive(Clone, Debug)]
pub struct Product {
    /// The network (index `k` is the op's `IndexId(k)`).
    pub network: Network,
    /// The factor behind each operand.
    pub factors: Vec<Factor>,
}

/// The product `g` computes, when it is one the pass can plan (see the module docs; one factor
/// is a product too, which `explain` shows, though the pass leaves it alone), with the extents
/// `extent` gives.
pub fn product(g: &Generic, extent: &dyn Fn(&Extent) -> u64) -> Option<Product> {
    if g.schedule.is_some() || g.indices.len() > paths::MAX_INDICES {
        return None;
    }
    let factors = product_factors(g)?;
    let n = g.indices.len();
    let in_range = |m: &[AxisMap]| {
        m.iter()
            .all(|a| !matches!(a, AxisMap::Index(i) if i.0 as usize >= n))
    };
    if !g.inputs.iter().all(|i| in_range(&i.map)) || g.output.iter().any(|i| i.0 as usize >= n) {
        return None;
    }
    let bit = |i: IndexId| -> IndexSet { 1 << i.0 };
    let inputs: Vec<IndexSet> = factors
        .iter()
        .map(|f| {
            g.inputs[f.input as usize]
                .map
                .iter()
                .fold(0, |acc, a| match a {
                    AxisMap::Index(i) => acc | bit(*i),
                    AxisMap::Fixed(_) => acc,
                })
        })
        .collect();
    let all: IndexSet = inputs.iter().fold(0, |a, &s| a | s);
    let every = (0..n).fold(0, |a, k| a | (1 << k));
    if all != every {
        return None;
    }
    Some(Product {
        network: Network {
            inputs,
            output: g.output.iter().fold(0, |a, &i| a | bit(i)),
            sizes: g.indices.iter().map(|d| extent(&d.extent)).collect(),
        },
        factors,
    })
}

impl ContractionPath {
    fn plan_function(&self, f: &mut Function, extent: &dyn Fn(&Extent) -> u64) -> bool {
        let mut changed = false;
        let mut k = 0;
        while k < f.ops.len() {
            let OpKind::Generic(g) = &f.ops[k].kind;
            let planned = product(g, extent)
                .filter(|p| p.factors.len() >= 2)
                .and_then(|p| {
                    let plan = paths::plan(&p.network, &self.options);
                    let sums = g.reduce.is_some();
                    let as_is = cost::step_flops(
                        p.network.inputs.iter().fold(0, |a, &s| a | s),
                        p.factors.len(),
                        sums,
                        &p.network.sizes,
                    );
                    (plan.opt_flops < as_is).then_some((p, plan))
                });
            if let Some((p, plan)) = planned {
                let g = g.clone();
                let added = rewrite(f, k, &g, &p, &plan);
                changed = true;
                k += added;
            }
            k += 1;
        }
        changed
    }
}

/// Replaces op `k` (computing `g`) by the steps of `plan`; returns how many ops were inserted
/// before it.
fn rewrite(f: &mut Function, k: usize, g: &Generic, p: &Product, plan: &Plan) -> usize {
    let n = p.factors.len();
    let name = f.value(f.ops[k].result).name.clone();
    let mut b = Builder::new(f);
    // The value of every SSA operand: factors are read from the op's inputs; step results
    // from the values defined here.
    let mut values: Vec<Option<ValueId>> = vec![None; n];
    let mut results: Vec<IndexSet> = p.network.inputs.clone();
    let last = plan.steps.len().saturating_sub(1);
    for (s, step) in plan.steps.iter().enumerate() {
        let ids: Vec<usize> = paths::members(step.indices).collect();
        let local = |i: usize| IndexId(ids.iter().position(|&x| x == i).unwrap_or(0) as u32);
        let indices: Vec<IndexDef> = ids.iter().map(|&i| g.indices[i].clone()).collect();
        let mut inputs = Vec::with_capacity(step.operands.len());
        let mut reads = Vec::with_capacity(step.operands.len());
        for &o in &step.operands {
            let position = inputs.len() as u32;
            if o < n {
                let factor = p.factors[o];
                let input = &g.inputs[factor.input as usize];
                inputs.push(Input {
                    value: input.value,
                    map: input
                        .map
                        .iter()
                        .map(|a| match a {
                            AxisMap::Index(i) => AxisMap::Index(local(i.0 as usize)),
                            fixed => *fixed,
                        })
                        .collect(),
                });
                reads.push(match factor.cast {
                    Some(t) => Expr::Cast(t, Box::new(Expr::Input(position))),
                    None => Expr::Input(position),
                });
            } else {
                inputs.push(Input {
                    value: values[o].unwrap_or(ValueId(u32::MAX)),
                    map: paths::members(results[o])
                        .map(|i| AxisMap::Index(local(i)))
                        .collect(),
                });
                reads.push(Expr::Input(position));
            }
        }
        let output: Vec<IndexId> = if s == last {
            g.output.iter().map(|i| local(i.0 as usize)).collect()
        } else {
            paths::members(step.result).map(local).collect()
        };
        let over: Vec<IndexId> = paths::members(step.summed).map(local).collect();
        let body = reads
            .into_iter()
            .reduce(|x, y| Expr::Binary(BinaryFn::Mul, Box::new(x), Box::new(y)))
            .unwrap_or(Expr::Input(0));
        let generic = Generic {
            indices,
            inputs,
            output,
            reduce: (!over.is_empty()).then_some(Reduce {
                kind: ReduceKind::Add,
                over,
            }),
            body,
            dtype: g.dtype,
            schedule: None,
        };
        results.push(step.result);
        if s == last {
            b.func_mut().ops[k + s].kind = OpKind::Generic(generic);
        } else {
            let v = b.insert_op(k + s, &format!("{name}.p{}", s + 1), generic);
            values.push(Some(v));
        }
    }
    last
}
#[cfg(test)]
pub(crate) mod tests;
