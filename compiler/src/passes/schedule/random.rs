//! Random legal schedules (`schedule{random=SEED}`), as Halide tests its schedules: each op gets
//! a schedule drawn at random among those that fit it, so that tests running the result
//! against the interpreter exercise every tiling, packing and loop-order path. Small tiles and
//! blocks are favoured, so that small test extents cross many tile boundaries.
//!
//! Keys a schedule already sets (from a `.ein` annotation) are kept; the pipeline's `gemm`
//! overrides apply before the draw.

use super::GemmOverrides;
use crate::analysis::{Contraction, OpClass};
use crate::ir::tensor::schedule::{
    self, BlockLoop, GemmSchedule, LoopsSchedule, MicroKernel, Packing, Schedule,
    MAX_UNROLLED_COPIES,
};
use crate::ir::tensor::{Generic, IndexId};
pub use crate::rng::Rng;

/// A random legal schedule for `g` (of class `class`), keeping the keys its own schedule sets.
pub fn schedule(
    rng: &mut Rng,
    g: &Generic,
    class: &OpClass,
    overrides: &GemmOverrides,
) -> Schedule {
    match (&g.schedule, class) {
        (Some(Schedule::Naive), _) => Schedule::Naive,
        (Some(Schedule::Gemm(partial)), OpClass::Contraction(c)) => {
            Schedule::Gemm(gemm(rng, g, c, partial, overrides))
        }
        (Some(Schedule::Gemm(partial)), _) => Schedule::Gemm(partial.clone()),
        (Some(Schedule::Loops(partial)), _) => Schedule::Loops(loops(rng, g, partial)),
        (Some(Schedule::Softmax(partial)), _) => Schedule::Softmax(softmax(rng, g, partial)),
        (Some(Schedule::Attention(partial)), _) => {
            let machine = crate::target::Machine::defaults(crate::target::Isa::X86_64);
            Schedule::Attention(crate::passes::flash_attention::complete(
                &machine, g, partial, None,
            ))
        }
        // The division of a row-softmax group (the only op of the group with its shape).
        (None, OpClass::RowSoftmax(_))
            if schedule::softmax_rows(g).is_ok() && rng.below(4) != 0 =>
        {
            Schedule::Softmax(softmax(rng, g, &LoopsSchedule::default()))
        }
        (None, OpClass::Contraction(c)) if super::gemm_shaped(g, c) && rng.below(2) == 0 => {
            Schedule::Gemm(gemm(rng, g, c, &GemmSchedule::default(), overrides))
        }
        (None, _) => match rng.below(4) {
            0 => Schedule::Naive,
            _ => Schedule::Loops(loops(rng, g, &LoopsSchedule::default())),
        },
    }
}

/// A uniformly chosen element of `items` (which is not empty).
fn one<T: Copy>(rng: &mut Rng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.below(items.len())])
}

/// `items` shuffled.
fn shuffled<T>(rng: &mut Rng, mut items: Vec<T>) -> Vec<T> {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
    items
}

/// Each element of `items` kept with probability 1/2.
fn subset<T: Copy>(rng: &mut Rng, items: &[T]) -> Vec<T> {
    items
        .iter()
        .copied()
        .filter(|_| rng.below(2) == 0)
        .collect()
}

/// A number in `lo..=hi`.
fn between(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.below((hi - lo + 1) as usize) as u64
}

fn gemm(
    rng: &mut Rng,
    g: &Generic,
    c: &Contraction,
    partial: &GemmSchedule,
    o: &GemmOverrides,
) -> GemmSchedule {
    let lanes = 16 / g.dtype.size_bytes() as u64;
    let swap = match partial.m.as_deref().and_then(|m| m.first()) {
        Some(i) => c.n.contains(i),
        None => rng.below(2) == 0,
    };
    let (m_group, n_group) = if swap { (&c.n, &c.m) } else { (&c.m, &c.n) };
    let mut pick = |given: &Option<Vec<IndexId>>, group: &[IndexId]| match given {
        Some(ids) => ids.clone(),
        None => one(rng, group).into_iter().collect(),
    };
    let m = pick(&partial.m, m_group);
    let n = pick(&partial.n, n_group);
    let k = pick(&partial.k, &c.k);
    let outer = partial.outer.clone().unwrap_or_else(|| {
        let rest = (0..g.indices.len())
            .map(|i| IndexId(i as u32))
            .filter(|i| !m.contains(i) && !n.contains(i) && !k.contains(i))
            .collect();
        shuffled(rng, rest)
    });
    let mr = partial.mr.or(o.mr).unwrap_or_else(|| between(rng, 1, 8));
    let nr = partial
        .nr
        .or(o.nr)
        .unwrap_or_else(|| lanes * between(rng, 1, 3));
    let outer_output: Vec<IndexId> = outer
        .iter()
        .copied()
        .filter(|i| g.output.contains(i))
        .collect();
    GemmSchedule {
        mc: partial.mc.or(o.mc).or(Some(mr * between(rng, 1, 4))),
        kc: partial.kc.or(o.kc).or(Some(match rng.below(4) {
            0 => between(rng, 64, 512),
            _ => between(rng, 1, 24),
        })),
        nc: partial.nc.or(o.nc).or(Some(nr * between(rng, 1, 4))),
        pack: partial.pack.or(Some(Packing {
            a: rng.below(2) == 0,
            b: rng.below(2) == 0,
        })),
        ukernel: partial.ukernel.or(Some(MicroKernel::Simd128)),
        parallel: partial
            .parallel
            .clone()
            .or_else(|| Some(subset(rng, &outer_output))),
        parallel_blocks: partial
            .parallel_blocks
            .clone()
            .or_else(|| Some(subset(rng, &BlockLoop::ALL))),
        outer: Some(outer),
        m: Some(m),
        n: Some(n),
        k: Some(k),
        mr: Some(mr),
        nr: Some(nr),
        epilogue: partial.epilogue.clone(),
    }
}

/// A random `softmax` schedule for the division `g` of a row-softmax group: the row indices
/// shuffled, then the normalised ones shuffled; the last maybe vectorised; normalised indices
/// unrolled by 1..4; a subset of the rows parallel. A `g` of another shape keeps `partial`.
fn softmax(rng: &mut Rng, g: &Generic, partial: &LoopsSchedule) -> LoopsSchedule {
    match super::softmax_indices(g) {
        Some((rows, normalised)) => {
            drawn(rng, g, partial, &[&rows, &normalised], &normalised, &rows)
        }
        None => partial.clone(),
    }
}

/// Unroll factors 1..4 for a random subset of `indices`, within the legal number of jammed
/// copies of the body (their product, [`MAX_UNROLLED_COPIES`]).
fn unroll_factors(rng: &mut Rng, indices: &[IndexId]) -> Vec<(IndexId, u64)> {
    let mut copies_left = MAX_UNROLLED_COPIES;
    subset(rng, indices)
        .into_iter()
        .map(|i| {
            let u = between(rng, 1, copies_left.min(4));
            copies_left /= u;
            (i, u)
        })
        .collect()
}

fn loops(rng: &mut Rng, g: &Generic, partial: &LoopsSchedule) -> LoopsSchedule {
    let all: Vec<IndexId> = (0..g.indices.len()).map(|i| IndexId(i as u32)).collect();
    drawn(rng, g, partial, &[&all], &all, &g.output)
}

/// A loop nest drawn at random, keeping the keys `partial` sets: `order` each of `groups`
/// shuffled, in turn; the innermost index maybe vectorised; a subset of `unrollable` unrolled by
/// 1..4; a subset of `parallelisable` parallel.
fn drawn(
    rng: &mut Rng,
    g: &Generic,
    partial: &LoopsSchedule,
    groups: &[&[IndexId]],
    unrollable: &[IndexId],
    parallelisable: &[IndexId],
) -> LoopsSchedule {
    let lanes = 16 / g.dtype.size_bytes() as u64;
    let order = partial.order.clone().unwrap_or_else(|| {
        groups
            .iter()
            .flat_map(|group| shuffled(rng, group.to_vec()))
            .collect()
    });
    let vector = partial.vector.unwrap_or_else(|| {
        let last = order.last().copied()?;
        // Any index may be vectorised: where the body or the layout does not allow it, the
        // lowering runs the same loops in scalar code (that path is tested too).
        (rng.below(3) != 0).then_some((last, lanes))
    });
    let unroll = partial
        .unroll
        .clone()
        .unwrap_or_else(|| unroll_factors(rng, unrollable));
    let parallel = partial
        .parallel
        .clone()
        .unwrap_or_else(|| subset(rng, parallelisable));
    LoopsSchedule {
        order: Some(order),
        vector: Some(vector),
        unroll: Some(unroll),
        parallel: Some(parallel),
    }
}
