//! An attention chain under an `attention` schedule (`analysis::attention`) → one blocked nest
//! with an online softmax (FlashAttention's forward), the score matrix never stored:
//!
//! ```text
//! for batch indices:
//!     m[:] = lowest finite, l[:] = 0, acc[:, :] = 0
//!     for j0 in 0..Tk step kb:
//!         pack K[j0.., :] into Kp, V[j0.., :] into Vp       (panel-major, once per key block)
//!         for i0 in 0..T step qb (parallel): scoped S[qb, kb]
//!             S = Q[i0.., :] · Kp                  (micro-kernel tiles, per head chunk of hb)
//!             per row r: x = maps(S[r, c]) (scale, mask, ...), m' = max(m, max_c x),
//!                 P[r, c] = exp(x - m') (into S), l = l·exp(m - m') + Σ_c P[r, c],
//!                 acc[r, :] *= exp(m - m'), m = m'
//!             acc[i0.., :] += P · Vp                (micro-kernel tiles)
//!     O[:, :] = acc / l
//! ```
//!
//! Each key block is packed once per batch point and read by every query block (packing it per
//! query block cost more than the multiplications at `qb = 32`). The query blocks of a key
//! block run in parallel; they write disjoint rows of `acc`, `m` and `l`. `acc` is the output
//! itself when it is contiguous with the value index last (the kernel's contiguous variant, or
//! a temporary), else a temporary of the output's size: O(T·E) memory besides the `O(kb·(d +
//! E))` packed blocks and the `O(T)` maxima and sums, never O(T²).
//!
//! **Numerics.** The running maxima start at the lowest finite value, not -inf, so a masked
//! (-inf) score gives `exp(-inf - m) = 0` and never `exp(-inf + inf)`; every exponent is at most
//! 0, so scores of any magnitude stay finite. A row whose scores are all -inf has `l = 0` and
//! `acc = 0`, so its output is `0 / 0 = NaN`, what the interpreter computes (its softmax of an
//! all -inf row is NaN). An empty key range gives 0, as an empty sum does. The result differs
//! from the unfused program only in rounding: the scores' sums are blocked by `hb`, each row's
//! sum of exponentials is accumulated block by block and rescaled, and `P·V` is summed per key
//! block (`docs/attention.md` gives the tolerance the tests use).

use super::body::{unit_last, vectorisable, BodyLowerer};
use super::{FnLowerer, LowerError};
use crate::analysis::{AttentionChain, Role};
use crate::ir::loops::{
    BinaryFn, BufferDef, BufferId, BufferKind, CmpOp, Coord, IndexOp, Inst, Layout, Op, ReduceKind,
    TileOperand, Type, UkernelShape, UnaryFn, ValueId,
};
use crate::ir::tensor::schedule::AttentionSchedule;
use crate::ir::tensor::{AxisMap, Extent, Generic, IndexId, OpKind};
use einc_runtime::DType;
use emit::{impl_emit, tile_shape, Emit};

/// What an axis of an operand of the chain is indexed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    /// A batch index (by its number) or the row or the key.
    Chain(Role),
    /// The scores' summed head index.
    Head,
    /// The output's value index.
    Value,
}

/// The current value of every index of the chain, where an operand is addressed.
#[derive(Clone, Debug)]
struct Point {
    batch: Vec<ValueId>,
    row: ValueId,
    key: ValueId,
    head: ValueId,
    value: ValueId,
}

impl Point {
    /// The point with axis `a` at `v`.
    fn with(&self, a: Axis, v: ValueId) -> Point {
        let mut p = self.clone();
        match a {
            Axis::Chain(Role::Batch(n)) => {
                if let Some(x) = p.batch.get_mut(n) {
                    *x = v;
                }
            }
            Axis::Chain(Role::Row) => p.row = v,
            Axis::Chain(Role::Key) => p.key = v,
            Axis::Head => p.head = v,
            Axis::Value => p.value = v,
        }
        p
    }

    fn of(&self, a: Axis) -> Option<ValueId> {
        match a {
            Axis::Chain(Role::Batch(n)) => self.batch.get(n).copied(),
            Axis::Chain(Role::Row) => Some(self.row),
            Axis::Chain(Role::Key) => Some(self.key),
            Axis::Head => Some(self.head),
            Axis::Value => Some(self.value),
        }
    }
}

/// Fixed sizes of the nest, from the schedule.
#[derive(Clone, Copy, Debug)]
struct Blocks {
    qb: u64,
    kb: u64,
    hb: u64,
    mr: u64,
    nr: u64,
}

/// Lowers `chain` under schedule `s`, writing the output into `out`.
pub(super) fn lower_attention(
    fl: &mut FnLowerer,
    chain: &AttentionChain,
    s: &AttentionSchedule,
    out: BufferId,
) -> Result<Vec<Inst>, LowerError> {
    let src = fl.src;
    let op = |k: usize| -> Result<&Generic, LowerError> {
        match src.ops.get(k).map(|o| &o.kind) {
            Some(OpKind::Generic(g)) => Ok(g),
            None => Err(fl_error(fl, "an op of the attention chain is missing")),
        }
    };
    let (scores, output) = (op(chain.scores)?, op(chain.output)?);
    let maps: Vec<&Generic> = chain
        .maps
        .iter()
        .map(|&k| op(k))
        .collect::<Result<_, _>>()?;
    let (Some(qb), Some(kb), Some(hb), Some(mr), Some(nr)) = (s.qb, s.kb, s.hb, s.mr, s.nr) else {
        return Err(fl.error("the attention schedule is not complete"));
    };
    let blocks = Blocks { qb, kb, hb, mr, nr };
    let dtype = output.dtype;
    // The role of each index of the scores and of the output.
    let scores_axis = |i: IndexId| -> Option<Axis> {
        if i == chain.head {
            return Some(Axis::Head);
        }
        let n = scores.output.iter().position(|&o| o == i)?;
        chain.axes.get(n).map(|&r| Axis::Chain(r))
    };
    let output_axis = |i: IndexId| -> Option<Axis> {
        if i == chain.value {
            return Some(Axis::Value);
        }
        chain
            .output_roles
            .get(i.0 as usize)
            .copied()
            .flatten()
            .map(Axis::Chain)
    };
    let axes_of = |g: &Generic, n: usize, role: &dyn Fn(IndexId) -> Option<Axis>| {
        let input = g.inputs.get(n)?;
        let value = input.value;
        let axes = input
            .map
            .iter()
            .map(|a| match a {
                AxisMap::Index(i) => role(*i),
                AxisMap::Fixed(_) => None,
            })
            .collect::<Option<Vec<Axis>>>()?;
        Some((value, axes))
    };
    let missing = || {
        fl_error(
            fl,
            "the attention chain's operands are not read at its indices",
        )
    };
    let (q_value, q_axes) = axes_of(scores, chain.q, &scores_axis).ok_or_else(missing)?;
    let (k_value, k_axes) = axes_of(scores, chain.k, &scores_axis).ok_or_else(missing)?;
    let (v_value, v_axes) = axes_of(output, chain.v, &output_axis).ok_or_else(missing)?;
    let o_axes = output
        .output
        .iter()
        .map(|&i| output_axis(i))
        .collect::<Option<Vec<Axis>>>()
        .ok_or_else(missing)?;
    // Extents by role.
    let extent_of = |g: &Generic, i: Option<IndexId>| -> Option<Extent> {
        g.indices.get(i?.0 as usize).map(|d| d.extent.clone())
    };
    let batch_extents = (0..chain.batch_rank())
        .map(|n| extent_of(scores, chain.index_of(scores, Role::Batch(n))))
        .collect::<Option<Vec<Extent>>>()
        .ok_or_else(missing)?;
    let row_extent = extent_of(scores, chain.index_of(scores, Role::Row)).ok_or_else(missing)?;
    let key_extent = extent_of(scores, chain.index_of(scores, Role::Key)).ok_or_else(missing)?;
    let head_extent = extent_of(scores, Some(chain.head)).ok_or_else(missing)?;
    let value_extent = extent_of(output, Some(chain.value)).ok_or_else(missing)?;

    let (q, k, v) = (
        fl.buffer_of(q_value)?,
        fl.buffer_of(k_value)?,
        fl.buffer_of(v_value)?,
    );
    // The accumulator: the output itself when its value axis has a unit stride.
    let out_def = fl.buffer_def(out)?;
    let in_place = out_def.layout == Layout::Contiguous && o_axes.last() == Some(&Axis::Value);
    let (acc, acc_axes) = if in_place {
        (out, o_axes.clone())
    } else {
        let mut shape = batch_extents.clone();
        shape.extend([row_extent.clone(), value_extent.clone()]);
        let def = BufferDef {
            name: fl.names.fresh("attn.acc"),
            dtype,
            shape,
            layout: Layout::Contiguous,
            kind: BufferKind::Temp,
            align: None,
        };
        let mut axes: Vec<Axis> = (0..batch_extents.len())
            .map(|n| Axis::Chain(Role::Batch(n)))
            .collect();
        axes.extend([Axis::Chain(Role::Row), Axis::Value]);
        (fl.out.add_buffer(def), axes)
    };
    let shape = tile_shape(fl, dtype, (mr, nr))?;
    let mut n = Nest {
        fl,
        cur: Vec::new(),
        outer: Vec::new(),
        dtype,
        blocks,
        shape,
        operands: Operands {
            q: (q, q_axes),
            k: (k, k_axes),
            v: (v, v_axes),
            acc: (acc, acc_axes),
            out: (out, o_axes),
        },
        extents: Extents {
            batch: batch_extents,
            row: row_extent,
            key: key_extent,
            head: head_extent,
            value: value_extent,
        },
        chain,
        maps,
    };
    let temps = n.temps()?;
    n.batch_loops(0, Vec::new(), temps)?;
    Ok(n.cur)
}

fn fl_error(fl: &FnLowerer, message: &str) -> LowerError {
    fl.error(message)
}

/// The buffers the nest reads and writes, each with the role of each axis.
struct Operands {
    q: (BufferId, Vec<Axis>),
    k: (BufferId, Vec<Axis>),
    v: (BufferId, Vec<Axis>),
    acc: (BufferId, Vec<Axis>),
    out: (BufferId, Vec<Axis>),
}

struct Extents {
    batch: Vec<Extent>,
    row: Extent,
    key: Extent,
    head: Extent,
    value: Extent,
}

/// The temporaries of the nest: the packed key and value blocks of the current key block,
/// and the running maximum and sum of each query row.
#[derive(Clone, Copy)]
struct Temps {
    kp: BufferId,
    vp: BufferId,
    m: BufferId,
    l: BufferId,
}

/// What one query block works on: its scoped score block and the temporaries.
#[derive(Clone, Copy)]
struct Scratch {
    s: BufferId,
    kp: BufferId,
    vp: BufferId,
    m: BufferId,
    l: BufferId,
}

/// The nest being built: the open blocks (`cur` innermost).
struct Nest<'a, 'f, 'm> {
    fl: &'f mut FnLowerer<'m>,
    cur: Vec<Inst>,
    outer: Vec<Vec<Inst>>,
    dtype: DType,
    blocks: Blocks,
    shape: UkernelShape,
    operands: Operands,
    extents: Extents,
    chain: &'a AttentionChain,
    maps: Vec<&'m Generic>,
}

impl_emit!(Nest);

impl Nest<'_, '_, '_> {
    /// The index of an operand with axes `axes` at `p`.
    fn at(&self, axes: &[Axis], p: &Point) -> Result<Vec<ValueId>, LowerError> {
        axes.iter()
            .map(|&a| p.of(a))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                self.fl
                    .error("an operand has an axis the attention nest lacks")
            })
    }

    /// A tile operand of a buffer with axes `axes` starting at `p`, coordinate `c` advancing the
    /// axes of role `role` (each coordinate given in the text's order).
    fn tile(
        &self,
        (buffer, axes): &(BufferId, Vec<Axis>),
        p: &Point,
        coords: [(Coord, Axis); 2],
    ) -> Result<TileOperand, LowerError> {
        let along = |a: Axis| -> Vec<u32> {
            axes.iter()
                .enumerate()
                .filter(|(_, &x)| x == a)
                .filter_map(|(n, _)| u32::try_from(n).ok())
                .collect()
        };
        Ok(TileOperand {
            buffer: *buffer,
            start: self.at(axes, p)?,
            axes: coords.iter().map(|&(c, a)| (c, along(a))).collect(),
        })
    }

    /// The B operand of a panel-major block `[panels, k, nr]` for the tile whose columns start
    /// at `at` (a multiple of `nr`) and whose rows start at `k_at`: its panel, k along axis 1,
    /// n along axis 2.
    fn panel_tile(
        &mut self,
        buffer: BufferId,
        at: ValueId,
        k_at: ValueId,
    ) -> Result<TileOperand, LowerError> {
        let zero = self.konst(0)?;
        let width = self.konst(self.blocks.nr)?;
        let panel = self.index(IndexOp::Div, at, width);
        Ok(TileOperand {
            buffer,
            start: vec![panel, k_at, zero],
            axes: vec![(Coord::K, vec![1]), (Coord::N, vec![2])],
        })
    }

    /// Packs `count` elements of an operand along axis `n` (from `n_at`) by `rows` along axis
    /// `k` (from `k_at`), the other axes at `p`, into the panel-major block `dst`
    /// (`[panels, rows, nr]`: element `(kk, x)` at `[x / nr, kk, x % nr]`), zero-padded to
    /// whole panels, as GETT packs B.
    fn pack_panels(
        &mut self,
        dst: BufferId,
        (src, axes): &(BufferId, Vec<Axis>),
        p: &Point,
        (n, n_at, count): (Axis, ValueId, ValueId),
        (k, k_at, rows): (Axis, ValueId, ValueId),
    ) -> Result<(), LowerError> {
        let nr = self.blocks.nr;
        let zero = self.konst(0)?;
        let width = self.konst(nr)?;
        let fzero = self.scalar(0.0);
        let padded = self.round_up(count, nr)?;
        self.each("p0", (zero, padded, nr), false, |nest, p0| {
            let panel = nest.index(IndexOp::Div, p0, width);
            let w = nest.block_size(p0, count, nr)?;
            nest.each("kk", (zero, rows, 1), false, |nest, kk| {
                let at_k = nest.index(IndexOp::Add, k_at, kk);
                nest.each("l", (zero, w, 1), false, |nest, l| {
                    let x = nest.index(IndexOp::Add, p0, l);
                    let at_n = nest.index(IndexOp::Add, n_at, x);
                    let at = p.with(n, at_n).with(k, at_k);
                    let index = nest.at(axes, &at)?;
                    let x = nest.load(*src, index);
                    nest.store(dst, vec![panel, kk, l], x);
                    Ok(())
                })?;
                nest.each("l", (w, width, 1), false, |nest, l| {
                    nest.store(dst, vec![panel, kk, l], fzero);
                    Ok(())
                })
            })
        })
    }

    /// The temporaries shared by the query blocks of a batch point: the packed key and value
    /// blocks and each query row's running maximum and sum.
    fn temps(&mut self) -> Result<Temps, LowerError> {
        let Blocks { kb, nr, .. } = self.blocks;
        let values = match &self.extents.value {
            Extent::Fixed(n) => Extent::Fixed(n.div_ceil(nr)),
            // At most one panel per value (`ceil(E / nr)` is no extent); a panel's pages are
            // touched only when used.
            e => e.clone(),
        };
        let head = self.extents.head.clone();
        let row = self.extents.row.clone();
        Ok(Temps {
            kp: self.temp(
                "attn.kp",
                vec![Extent::Fixed(kb / nr), head, Extent::Fixed(nr)],
            ),
            vp: self.temp(
                "attn.vp",
                vec![values, Extent::Fixed(kb), Extent::Fixed(nr)],
            ),
            m: self.temp("attn.m", vec![row.clone()]),
            l: self.temp("attn.l", vec![row]),
        })
    }

    /// The loops over the batch indices from the `n`-th on (serial: the query blocks of a
    /// batch point share its temporaries), then the key blocks.
    fn batch_loops(
        &mut self,
        n: usize,
        mut batch: Vec<ValueId>,
        temps: Temps,
    ) -> Result<(), LowerError> {
        let Some(extent) = self.extents.batch.get(n).cloned() else {
            return self.key_blocks(batch, temps);
        };
        let zero = self.konst(0)?;
        let upper = self.fl.extent(&extent)?;
        self.each("b", (zero, upper, 1), false, |nest, var| {
            batch.push(var);
            nest.batch_loops(n + 1, batch, temps)
        })
    }

    /// The key blocks of a batch point, each packed once, and in each the (parallel) loop
    /// over blocks of query rows, each with its own score block.
    fn key_blocks(&mut self, batch: Vec<ValueId>, temps: Temps) -> Result<(), LowerError> {
        let Blocks { qb, kb, .. } = self.blocks;
        let zero = self.konst(0)?;
        let rows = self.fl.extent(&self.extents.row.clone())?;
        let keys = self.fl.extent(&self.extents.key.clone())?;
        let heads = self.fl.extent(&self.extents.head.clone())?;
        let values = self.fl.extent(&self.extents.value.clone())?;
        let p = Point {
            batch,
            row: zero,
            key: zero,
            head: zero,
            value: zero,
        };
        self.start_rows(&p, rows, temps)?;
        self.each("j0", (zero, keys, kb), false, |nest, j0| {
            let nb = nest.block_size(j0, keys, kb)?;
            let p = p.with(Axis::Chain(Role::Key), j0);
            // Panel-major, as GETT packs B: Kp[c / nr, a, c % nr] = K[key j0 + c, head a],
            // Vp[e / nr, c, e % nr] = V[key j0 + c, value e].
            let key_range = (Axis::Chain(Role::Key), j0, nb);
            let (k, v) = (nest.operands.k.clone(), nest.operands.v.clone());
            nest.pack_panels(temps.kp, &k, &p, key_range, (Axis::Head, zero, heads))?;
            nest.pack_panels(temps.vp, &v, &p, (Axis::Value, zero, values), key_range)?;
            nest.each("i0", (zero, rows, qb), true, |nest, i0| {
                let sc = Scratch {
                    s: nest.scoped("attn.s", &[qb, kb]),
                    kp: temps.kp,
                    vp: temps.vp,
                    m: temps.m,
                    l: temps.l,
                };
                let mb = nest.block_size(i0, rows, qb)?;
                let p = p.with(Axis::Chain(Role::Row), i0);
                nest.scores(&p, (mb, nb), sc)?;
                nest.softmax_rows(&p, (mb, nb), sc)?;
                nest.accumulate(&p, (mb, nb), sc)
            })
        })?;
        self.finish_rows(&p, rows, keys, temps)
    }

    /// Every row of the block: running maximum the lowest finite value, sum 0, accumulator 0.
    fn start_rows(&mut self, p: &Point, mb: ValueId, sc: Temps) -> Result<(), LowerError> {
        let zero = self.konst(0)?;
        let lowest = self.scalar(if self.dtype == DType::F32 {
            f64::from(f32::MIN)
        } else {
            f64::MIN
        });
        let fzero = self.scalar(0.0);
        let values = self.fl.extent(&self.extents.value.clone())?;
        self.each("r", (zero, mb, 1), false, |nest, r| {
            let row = nest.index(IndexOp::Add, p.row, r);
            nest.store(sc.m, vec![row], lowest);
            nest.store(sc.l, vec![row], fzero);
            nest.each("e", (zero, values, 1), false, |nest, e| {
                let at = Point {
                    row,
                    value: e,
                    ..p.clone()
                };
                let index = nest.at(&nest.operands.acc.1.clone(), &at)?;
                let acc = nest.operands.acc.0;
                nest.store(acc, index, fzero);
                Ok(())
            })
        })
    }

    /// `S[r, c] = Σ_a Q[row r, a] K[key c, a]` for the block, over head chunks of `hb`.
    fn scores(
        &mut self,
        p: &Point,
        (mb, nb): (ValueId, ValueId),
        sc: Scratch,
    ) -> Result<(), LowerError> {
        let hb = self.blocks.hb;
        let zero = self.konst(0)?;
        let one = self.konst(1)?;
        let heads = self.fl.extent(&self.extents.head.clone())?;
        // At least one chunk, so that an empty head range still writes S = 0.
        let chunks_end = self.index(IndexOp::Max, heads, one);
        self.each("a0", (zero, chunks_end, hb), false, |nest, a0| {
            let hc = nest.block_size(a0, heads, hb)?;
            let first = nest.emit("first", Op::Cmp(CmpOp::Eq, a0, zero), Type::Bool);
            nest.tiles((mb, nb), hc, first, |nest, r0, c0| {
                let row = nest.index(IndexOp::Add, p.row, r0);
                let a = nest.tile(
                    &nest.operands.q.clone(),
                    &p.with(Axis::Chain(Role::Row), row).with(Axis::Head, a0),
                    [(Coord::M, Axis::Chain(Role::Row)), (Coord::K, Axis::Head)],
                )?;
                let b = nest.panel_tile(sc.kp, c0, a0)?;
                let c = nest.block_tile(sc.s, [r0, c0], [Coord::M, Coord::N]);
                Ok((a, b, c))
            })
        })
    }

    /// Micro-kernel calls over the `rows x cols` block in register tiles, each summing `kc`
    /// products (`init`: overwrite C), with the operands `operands` gives for the tile at
    /// `(r0, c0)`.
    fn tiles(
        &mut self,
        (rows, cols): (ValueId, ValueId),
        kc: ValueId,
        init: ValueId,
        operands: impl Fn(
            &mut Self,
            ValueId,
            ValueId,
        ) -> Result<(TileOperand, TileOperand, TileOperand), LowerError>,
    ) -> Result<(), LowerError> {
        let Blocks { mr, nr, .. } = self.blocks;
        let zero = self.konst(0)?;
        self.each("r0", (zero, rows, mr), false, |nest, r0| {
            let tm = nest.block_size(r0, rows, mr)?;
            nest.each("c0", (zero, cols, nr), false, |nest, c0| {
                let tn = nest.block_size(c0, cols, nr)?;
                let abc = operands(nest, r0, c0)?;
                nest.ukernel(kc, (tm, tn), abc, init);
                Ok(())
            })
        })
    }

    /// The online softmax step of each row of the block: the maps applied to its scores, the
    /// new maximum, `P = exp(x - max)` written over the scores, the sum and the accumulator
    /// rescaled. The maximum and the exponentials run in vectors over the row rounded up to
    /// whole vectors: the columns past the block's keys are set to -inf first, which changes
    /// no maximum and adds `exp(-inf) = 0` to the sum.
    fn softmax_rows(
        &mut self,
        p: &Point,
        (mb, nb): (ValueId, ValueId),
        sc: Scratch,
    ) -> Result<(), LowerError> {
        let zero = self.konst(0)?;
        let lowest = self.scalar(if self.dtype == DType::F32 {
            f64::from(f32::MIN)
        } else {
            f64::MIN
        });
        let fzero = self.scalar(0.0);
        let ninf = self.scalar(f64::NEG_INFINITY);
        let lanes = u32::try_from(16 / self.dtype.size_bytes())
            .map_err(|_| self.fl.error("a dtype wider than a vector"))?;
        let vector = Type::Vector(self.dtype, lanes);
        let nbv = self.round_up(nb, u64::from(lanes))?;
        let vector_maps = self.maps_vectorise(lanes);
        self.each("r", (zero, mb, 1), false, |nest, r| {
            let row = nest.index(IndexOp::Add, p.row, r);
            if !nest.maps.is_empty() {
                // In vectors where the maps allow it (not across a block's last keys: the
                // maps' other inputs end there), one key at a time for the rest.
                let at_row = p.with(Axis::Chain(Role::Row), row);
                let whole = if vector_maps {
                    let whole = nest.round_down(nb, u64::from(lanes))?;
                    nest.each("c", (zero, whole, u64::from(lanes)), false, |nest, c| {
                        nest.map_scores(sc.s, [r, c], &at_row, Some(lanes))
                    })?;
                    whole
                } else {
                    zero
                };
                nest.each("c", (whole, nb, 1), false, |nest, c| {
                    nest.map_scores(sc.s, [r, c], &at_row, None)
                })?;
            }
            nest.each("c", (nb, nbv, 1), false, |nest, c| {
                nest.store(sc.s, vec![r, c], ninf);
                Ok(())
            })?;
            let vlowest = nest.emit("v", Op::Splat(lowest, lanes), vector);
            let step = (zero, nbv, u64::from(lanes));
            let maxed = nest.looped("c", step, false, &[vlowest], |nest, c, acc| {
                let x = nest.vload(sc.s, vec![r, c], lanes);
                Ok(vec![nest.emit(
                    "v",
                    Op::Binary(BinaryFn::Max, acc[0], x),
                    vector,
                )])
            })?;
            let maxed = nest.float(Op::ReduceLanes(ReduceKind::Max, maxed[0]));
            let old = nest.load(sc.m, vec![row]);
            let new = nest.float(Op::Binary(BinaryFn::Max, old, maxed));
            let shift = nest.float(Op::Binary(BinaryFn::Sub, old, new));
            let alpha = nest.float(Op::Unary(UnaryFn::Exp, shift));
            let vnew = nest.emit("v", Op::Splat(new, lanes), vector);
            let vzero = nest.emit("v", Op::Splat(fzero, lanes), vector);
            let sum = nest.looped("c", step, false, &[vzero], |nest, c, acc| {
                let x = nest.vload(sc.s, vec![r, c], lanes);
                let d = nest.emit("v", Op::Binary(BinaryFn::Sub, x, vnew), vector);
                let e = nest.emit("v", Op::Unary(UnaryFn::Exp, d), vector);
                nest.store(sc.s, vec![r, c], e);
                Ok(vec![nest.emit(
                    "v",
                    Op::Binary(BinaryFn::Add, acc[0], e),
                    vector,
                )])
            })?;
            let sum = nest.float(Op::ReduceLanes(ReduceKind::Add, sum[0]));
            nest.store(sc.m, vec![row], new);
            let l = nest.load(sc.l, vec![row]);
            let scaled = nest.float(Op::Binary(BinaryFn::Mul, l, alpha));
            let l = nest.float(Op::Binary(BinaryFn::Add, scaled, sum));
            nest.store(sc.l, vec![row], l);
            nest.rescale_row(&p.with(Axis::Chain(Role::Row), row), alpha, lanes)
        })
    }

    /// `acc[row, :] *= alpha` at `p`'s row, in vectors (the accumulator is contiguous along
    /// the value index), the last `E % lanes` values one at a time.
    fn rescale_row(&mut self, p: &Point, alpha: ValueId, lanes: u32) -> Result<(), LowerError> {
        let zero = self.konst(0)?;
        let values = self.fl.extent(&self.extents.value.clone())?;
        let vector = Type::Vector(self.dtype, lanes);
        let valpha = self.emit("v", Op::Splat(alpha, lanes), vector);
        let whole = self.round_down(values, u64::from(lanes))?;
        let (acc, axes) = self.operands.acc.clone();
        self.each("e", (zero, whole, u64::from(lanes)), false, |nest, e| {
            let index = nest.at(&axes, &p.with(Axis::Value, e))?;
            let x = nest.vload(acc, index.clone(), lanes);
            let y = nest.emit("v", Op::Binary(BinaryFn::Mul, x, valpha), vector);
            nest.store(acc, index, y);
            Ok(())
        })?;
        self.each("e", (whole, values, 1), false, |nest, e| {
            let index = nest.at(&axes, &p.with(Axis::Value, e))?;
            let x = nest.load(acc, index.clone());
            let y = nest.float(Op::Binary(BinaryFn::Mul, x, alpha));
            nest.store(acc, index, y);
            Ok(())
        })
    }

    /// `S[r, c..] = maps(S[r, c..])` for one key (`lanes: None`) or `lanes` keys from
    /// `[r, c]`, `p` at the block's row.
    fn map_scores(
        &mut self,
        s: BufferId,
        [r, c]: [ValueId; 2],
        p: &Point,
        lanes: Option<u32>,
    ) -> Result<(), LowerError> {
        let x = match lanes {
            Some(n) => self.vload(s, vec![r, c], n),
            None => self.load(s, vec![r, c]),
        };
        let key = self.index(IndexOp::Add, p.key, c);
        let y = self.apply_maps(x, &p.with(Axis::Chain(Role::Key), key), lanes)?;
        self.store(s, vec![r, c], y);
        Ok(())
    }

    /// Whether every map can run in vectors of `lanes` along the key (`body::vectorisable`:
    /// its other inputs read along the key on a unit-stride last axis, no comparison on it).
    fn maps_vectorise(&self, lanes: u32) -> bool {
        let mut prev = self.fl.src.ops.get(self.chain.scores).map(|o| o.result);
        for (g, &k) in self.maps.iter().zip(&self.chain.maps) {
            let Some(key) = self.key_index(g) else {
                return false;
            };
            let buffer = |n: usize| {
                g.inputs
                    .get(n)
                    .filter(|i| Some(i.value) != prev)
                    .and_then(|i| self.fl.buffer_of(i.value).ok())
            };
            let is_prev = |n: usize| g.inputs.get(n).is_some_and(|i| Some(i.value) == prev);
            let dtype_of = |n: usize| {
                if is_prev(n) {
                    return Some(self.dtype);
                }
                buffer(n).and_then(|b| self.fl.buffer_def(b).ok().map(|d| d.dtype))
            };
            let unit = |n: usize| is_prev(n) || buffer(n).is_some_and(|b| unit_last(self.fl, b));
            if vectorisable(g, key, lanes, &dtype_of, &unit).is_some() {
                return false;
            }
            prev = self.fl.src.ops.get(k).map(|o| o.result);
        }
        true
    }

    /// The index of map `g` at the key axis of the scores.
    fn key_index(&self, g: &Generic) -> Option<IndexId> {
        let axis = self.chain.axes.iter().position(|&r| r == Role::Key)?;
        g.output.get(axis).copied()
    }

    /// The chain's maps applied to a score `x` at point `at` (their other inputs loaded there).
    fn apply_maps(
        &mut self,
        mut x: ValueId,
        at: &Point,
        lanes: Option<u32>,
    ) -> Result<ValueId, LowerError> {
        let maps = self.maps.clone();
        let chain = self.chain;
        let mut prev = self
            .fl
            .src
            .ops
            .get(chain.scores)
            .map(|o| o.result)
            .ok_or_else(|| self.fl.error("the scores op is missing"))?;
        for (g, &k) in maps.iter().zip(&chain.maps) {
            let vector = match (lanes, self.key_index(g)) {
                (Some(n), Some(key)) => Some((key, n)),
                _ => None,
            };
            let mut b = BodyLowerer::new(self.fl, g, vec![0; g.indices.len()]);
            b.set_vector(vector);
            for (axis, &role) in chain.axes.iter().enumerate() {
                let (Some(&i), Some(v)) = (g.output.get(axis), at.of(Axis::Chain(role))) else {
                    return Err(b.fl.error("a map of the attention chain lacks an axis"));
                };
                b.set_var(i, v);
            }
            for (n, input) in g.inputs.iter().enumerate() {
                if input.value == prev {
                    let n = u32::try_from(n).map_err(|_| b.fl.error("too many inputs"))?;
                    b.give_input(n, (x, 0));
                }
            }
            let (y, _) = b.expr_of_type(&g.body, self.dtype)?;
            let insts = b.close();
            self.cur.extend(insts);
            x = y;
            prev = self
                .fl
                .src
                .ops
                .get(k)
                .map(|o| o.result)
                .ok_or_else(|| self.fl.error("a map op is missing"))?;
        }
        Ok(x)
    }

    /// `acc[rows of the block, :] += P · V[keys of the block, :]`.
    fn accumulate(
        &mut self,
        p: &Point,
        (mb, nb): (ValueId, ValueId),
        sc: Scratch,
    ) -> Result<(), LowerError> {
        let zero = self.konst(0)?;
        let values = self.fl.extent(&self.extents.value.clone())?;
        let never = self.emit("never", Op::Cmp(CmpOp::Ne, zero, zero), Type::Bool);
        self.tiles((mb, values), nb, never, |nest, r0, e1| {
            let row = nest.index(IndexOp::Add, p.row, r0);
            let a = nest.block_tile(sc.s, [r0, zero], [Coord::M, Coord::K]);
            let b = nest.panel_tile(sc.vp, e1, zero)?;
            let c = nest.tile(
                &nest.operands.acc.clone(),
                &p.with(Axis::Chain(Role::Row), row).with(Axis::Value, e1),
                [(Coord::M, Axis::Chain(Role::Row)), (Coord::N, Axis::Value)],
            )?;
            Ok((a, b, c))
        })
    }

    /// `O[rows of the block, :] = acc / l` (an empty key range divides by 1: its sums are 0).
    fn finish_rows(
        &mut self,
        p: &Point,
        mb: ValueId,
        keys: ValueId,
        sc: Temps,
    ) -> Result<(), LowerError> {
        let zero = self.konst(0)?;
        let fone = self.scalar(1.0);
        let values = self.fl.extent(&self.extents.value.clone())?;
        let empty = self.emit("empty", Op::Cmp(CmpOp::Eq, keys, zero), Type::Bool);
        self.each("r", (zero, mb, 1), false, |nest, r| {
            let row = nest.index(IndexOp::Add, p.row, r);
            let l = nest.load(sc.l, vec![row]);
            let l = nest.float(Op::Select(empty, fone, l));
            nest.each("e", (zero, values, 1), false, |nest, e| {
                let at = Point {
                    row,
                    value: e,
                    ..p.clone()
                };
                let from = nest.at(&nest.operands.acc.1.clone(), &at)?;
                let to = nest.at(&nest.operands.out.1.clone(), &at)?;
                let x = nest.load(nest.operands.acc.0, from);
                let y = nest.float(Op::Binary(BinaryFn::Div, x, l));
                nest.store(nest.operands.out.0, to, y);
                Ok(())
            })
        })
    }
}

mod backward;
mod emit;

pub(super) use backward::lower_backward;

#[cfg(test)]
mod tests;
