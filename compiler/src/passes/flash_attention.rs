//! `flash-attention`: finds attention chains — a contraction of scores, elementwise maps on them
//! (a scale, a `where` mask), a row softmax over the key axis, and a contraction of the softmax
//! with values (`analysis::attention`, recognised structurally, with any batch and head indices)
//! — and gives each chain's output contraction an `attention` schedule, so that lowering emits
//! one blocked nest with an online softmax instead of materialising the `T x T` scores and
//! softmax (`docs/attention.md`):
//!
//! ```text
//! %O = generic (i: T, a: K, j: T) ins(%P[i, j], %V[j, a]) -> [i, a] reduce add over (j) { mul(%0, %1) } : f32
//!   schedule attention(qb=32, kb=256, hb=64, mr=4, nr=8)
//! ```
//!
//! The chain's other ops lose their schedules (they run inside the nest; `dce` leaves them, as
//! the output still reads them in the IR). A chain whose output has an explicit `naive`
//! schedule is left alone; an existing `attention` schedule is completed, its keys kept.
//!
//! **Blocks** ([`complete`]) come from the cache model (`target.rs`): `hb` covers the head
//! dimension when it is known (else 64, rounded to the tile), `qb = 32` query rows (PyTorch's
//! CPU flash attention uses 32–256), and `kb` keys, at most 512, as many as keep the `qb x kb`
//! score block in L1 and the score block plus the packed key and value blocks in half of L2;
//! the register tile is the `schedule` pass's choice for the micro-kernels of the compilation. The pass options `qb`, `kb` and
//! `hb` override the model (tests use small blocks to cross every block boundary).
//!
//! **Backward groups** (`analysis::attention::backward`): the ops a derived gradient computes
//! over the `T x T` plane (the scores and softmax again, `dP`, `dS`, the row values) with the
//! contractions leaving it (`dV`, `dK`, `dQ`) get one `attention` schedule on the group's
//! anchor (its first op after everything it reads is defined, normally the scores), completed
//! by [`complete_backward`]: its blocks of `qb` query rows are the columns of the nest's
//! panels, so `qb` is a whole number of `nr`-wide tiles and `mr` divides `nr`. The group's
//! other ops and its exits lose their schedules (they run inside the nest,
//! `lower/attention/backward.rs`, which stores no `T x T` value).
//!
//! Requires: verified tensor IR (run after `schedule`, which it overrides on the chain). Guarantees:
//! verified tensor IR computing the same values up to summation order (`docs/attention.md`):
//! only schedules change.

use super::schedule::cost::{self, GemmExtents};
use super::TensorPass;
use crate::analysis::{attention_chains, backward_groups, MemberKind};
use crate::ir::tensor::schedule::{AttentionSchedule, Schedule, MAX_SCOPED_BLOCK_BYTES};
use crate::ir::tensor::{Extent, Function, Generic, IndexId, Module, OpKind};
use crate::target::Machine;
use std::collections::BTreeMap;

/// The `flash-attention` pass.
#[derive(Clone, Debug)]
pub struct FlashAttention {
    /// The machine blocks are chosen for.
    pub machine: Machine,
    /// Extents known for symbolic dims.
    pub dims: BTreeMap<String, u64>,
    /// Blocks set by the pipeline (the model chooses the rest).
    pub overrides: AttentionSchedule,
}

/// The head dimension assumed when it is not known while compiling.
pub const ASSUMED_HEAD: u64 = 64;
/// Query rows per block.
pub const QUERY_BLOCK: u64 = 32;
/// The most keys per block.
pub const MAX_KEY_BLOCK: u64 = 512;
/// The largest head chunk.
pub const MAX_HEAD_BLOCK: u64 = 256;

/// `partial` with every key set: the register tile, then `hb` from the head dimension (`head`,
/// when known), `qb`, and `kb` from the caches of `machine` (module docs). Blocks that
/// `partial` sets are rounded up to a multiple of the tile.
pub fn complete(
    machine: &Machine,
    g: &Generic,
    partial: &AttentionSchedule,
    head: Option<u64>,
) -> AttentionSchedule {
    let bytes = g.dtype.size_bytes() as u64;
    // The tile of a `qb x kb` block of scores over the head dimension, for the micro-kernels
    // the compilation uses (6x16 f32 with the AVX2 kernels, 4x8 with Cranelift's).
    let (cmr, cnr) = cost::register_tile(
        machine,
        bytes,
        GemmExtents {
            m: Some(QUERY_BLOCK),
            n: Some(MAX_KEY_BLOCK / 2),
            k: Some(head.unwrap_or(ASSUMED_HEAD)),
        },
    );
    let mr = partial.mr.unwrap_or(cmr);
    let nr = partial.nr.unwrap_or(cnr);
    let round = |n: u64, to: u64| n.div_ceil(to).max(1) * to;
    let hb = round(
        partial
            .hb
            .unwrap_or_else(|| head.unwrap_or(ASSUMED_HEAD).min(MAX_HEAD_BLOCK)),
        nr,
    );
    let qb = round(partial.qb.unwrap_or(QUERY_BLOCK), mr);
    let kb = partial.kb.map(|kb| round(kb, nr)).unwrap_or_else(|| {
        let caches = machine.caches;
        let mut kb = (MAX_KEY_BLOCK / nr).max(1) * nr;
        let fits =
            |kb: u64| qb * kb * bytes <= caches.l1d && (qb + 2 * hb) * kb * bytes <= caches.l2 / 2;
        while kb > nr && !fits(kb) {
            kb -= nr;
        }
        kb
    });
    // Blocks set by hand still fit the stack: the key block shrinks first, then the head
    // chunk, then the query block.
    let schedule = |[kb, hb, qb]: [u64; 3]| AttentionSchedule {
        qb: Some(qb),
        kb: Some(kb),
        hb: Some(hb),
        mr: Some(mr),
        nr: Some(nr),
    };
    let over = |b: [u64; 3]| {
        schedule(b)
            .scratch_bytes(bytes)
            .is_none_or(|x| x > MAX_SCOPED_BLOCK_BYTES)
    };
    let mut blocks = [kb, hb, qb];
    for (k, step) in [nr, nr, mr].into_iter().enumerate() {
        while blocks[k] > step && over(blocks) {
            blocks[k] -= step;
        }
    }
    schedule(blocks)
}

/// `partial` completed for a backward group (`lower/attention/backward.rs`), whose blocks of
/// `qb` query rows are the columns of its panels and the `n` side of its micro-kernel tiles:
/// `qb` a whole number of tiles `nr` wide (at least [`QUERY_BLOCK`] rows), `mr` the largest
/// divisor of `nr` up to the register tile's rows (so that `qb` is a multiple of both), and
/// `kb` (the keys of one micro-kernel call) and `hb` as for the forward.
pub fn complete_backward(
    machine: &Machine,
    g: &Generic,
    partial: &AttentionSchedule,
    head: Option<u64>,
) -> AttentionSchedule {
    let tile = complete(machine, g, &AttentionSchedule::default(), head);
    let nr = partial.nr.or(tile.nr).unwrap_or(1);
    let mr = partial.mr.unwrap_or_else(|| {
        let most = tile.mr.unwrap_or(1);
        (1..=most)
            .rev()
            .find(|&m| nr.is_multiple_of(m))
            .unwrap_or(1)
    });
    let qb = partial
        .qb
        .unwrap_or(QUERY_BLOCK.max(nr))
        .div_ceil(nr)
        .max(1)
        * nr;
    let s = complete(
        machine,
        g,
        &AttentionSchedule {
            qb: Some(qb),
            mr: Some(mr),
            nr: Some(nr),
            ..partial.clone()
        },
        head,
    );
    // The forward's stack bound may have shrunk `qb` off a whole number of tiles.
    let qb = s.qb.map(|q| (q / nr).max(1) * nr);
    AttentionSchedule { qb, ..s }
}

impl TensorPass for FlashAttention {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let mut changed = false;
        let module_dims = m.dims.clone();
        let known = |e: &Extent| match e {
            Extent::Fixed(n) => Some(*n),
            Extent::Dim(d) => module_dims
                .iter()
                .find(|x| &x.name == d)
                .and_then(|x| x.value)
                .or_else(|| self.dims.get(d).copied()),
        };
        for f in &mut m.funcs {
            for chain in attention_chains(f) {
                // The head dimension: the larger of the scores' summed extent and the values'.
                let head = [(chain.scores, chain.head), (chain.output, chain.value)];
                let head = largest_extent(f, &head, &known);
                changed |= self.schedule_nest(f, chain.output, &chain.ops(), |g, s| {
                    complete(&self.machine, g, s, head)
                });
            }
            for group in backward_groups(f) {
                // The head dimension: the largest product's head and exit's free extent.
                let mut head: Vec<(usize, IndexId)> = group
                    .members
                    .iter()
                    .filter_map(|m| match m.kind {
                        MemberKind::Product { head, .. } => Some((m.op, head)),
                        _ => None,
                    })
                    .collect();
                head.extend(group.exits.iter().map(|e| (e.op, e.free)));
                let head = largest_extent(f, &head, &known);
                changed |= self.schedule_nest(f, group.anchor, &group.ops(), |g, s| {
                    complete_backward(&self.machine, g, s, head)
                });
            }
        }
        changed
    }
}

impl FlashAttention {
    /// Gives op `anchor` of `f` the `attention` schedule `complete` makes of its partial one
    /// (the pass options filling what it leaves unset), unless it is `naive`, and drops the
    /// schedules of the other ops of `ops` (they run inside its nest); whether anything
    /// changed.
    fn schedule_nest(
        &self,
        f: &mut Function,
        anchor: usize,
        ops: &[usize],
        complete: impl Fn(&Generic, &AttentionSchedule) -> AttentionSchedule,
    ) -> bool {
        let Some(op) = f.ops.get_mut(anchor) else {
            return false;
        };
        let OpKind::Generic(g) = &mut op.kind;
        let partial = match &g.schedule {
            Some(Schedule::Naive) => return false,
            Some(Schedule::Attention(s)) => s.clone(),
            _ => AttentionSchedule::default(),
        };
        let merged = AttentionSchedule {
            qb: partial.qb.or(self.overrides.qb),
            kb: partial.kb.or(self.overrides.kb),
            hb: partial.hb.or(self.overrides.hb),
            mr: partial.mr,
            nr: partial.nr,
        };
        let s = Some(Schedule::Attention(complete(g, &merged)));
        let mut changed = false;
        if g.schedule != s {
            g.schedule = s;
            changed = true;
        }
        for &k in ops.iter().filter(|&&k| k != anchor) {
            if let Some(op) = f.ops.get_mut(k) {
                let OpKind::Generic(g) = &mut op.kind;
                changed |= g.schedule.take().is_some();
            }
        }
        changed
    }
}

/// The largest extent of the indices `at` (op position, index) of `f`, when all are known.
fn largest_extent(
    f: &Function,
    at: &[(usize, IndexId)],
    known: &dyn Fn(&Extent) -> Option<u64>,
) -> Option<u64> {
    at.iter().try_fold(0, |most, &(k, i)| {
        let OpKind::Generic(g) = &f.ops.get(k)?.kind;
        let n = known(&g.indices.get(i.0 as usize)?.extent)?;
        Some(most.max(n))
    })
}

#[cfg(test)]
mod tests;
