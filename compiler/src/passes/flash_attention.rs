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
//! the tile is the `gemm` schedule's 128-bit `4 x (2 vectors)`. The pass options `qb`, `kb` and
//! `hb` override the model (tests use small blocks to cross every block boundary).
//!
//! Requires: verified tensor IR (run after `schedule`, which it overrides on the chain). Guarantees:
//! verified tensor IR computing the same values up to summation order (`docs/attention.md`):
//! only schedules change.

use super::TensorPass;
use crate::analysis::attention_chains;
use crate::ir::tensor::schedule::{AttentionSchedule, Schedule, MAX_SCOPED_BLOCK_BYTES};
use crate::ir::tensor::{Extent, Generic, Module, OpKind};
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
    let lanes = u64::from(machine.lanes(bytes as usize)).max(1);
    let mr = partial.mr.unwrap_or(4);
    let nr = partial.nr.unwrap_or(2 * lanes);
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
                let extent = |k: usize, i: crate::ir::tensor::IndexId| {
                    f.ops.get(k).and_then(|op| {
                        let OpKind::Generic(g) = &op.kind;
                        g.indices.get(i.0 as usize).and_then(|d| known(&d.extent))
                    })
                };
                let head = match (
                    extent(chain.scores, chain.head),
                    extent(chain.output, chain.value),
                ) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                let Some(op) = f.ops.get_mut(chain.output) else {
                    continue;
                };
                let OpKind::Generic(g) = &mut op.kind;
                let partial = match &g.schedule {
                    Some(Schedule::Naive) => continue,
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
                let s = Some(Schedule::Attention(complete(
                    &self.machine,
                    g,
                    &merged,
                    head,
                )));
                if g.schedule != s {
                    g.schedule = s;
                    changed = true;
                }
                for &k in &chain.ops() {
                    if k == chain.output {
                        continue;
                    }
                    if let Some(op) = f.ops.get_mut(k) {
                        let OpKind::Generic(g) = &mut op.kind;
                        if g.schedule.take().is_some() {
                            changed = true;
                        }
                    }
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests;
