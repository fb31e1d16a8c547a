//! A backward attention group (`analysis::attention::backward`) under an `attention` schedule
//! → one nest over blocks of `qb` query rows that stores no `T x T` value:
//!
//! ```text
//! zero the row-summed exits' accumulators (dV, dK)
//! for batch indices, for i0 in 0..T step qb (serial):
//!     pack each product's row operand for the block: Qp, dOp       ([qb/nr, d, nr], zero-padded)
//!     in op order, over the block's panel [Tk, qb] (key-major: a key's rows are contiguous):
//!         product    S[c, r] = Σ_a K[c, a] · Q[i0 + r, a]       micro-kernel, m = keys
//!         map        X[c, r] = body(...)                        r vectorised where possible
//!         row reduce x[r] = ⊕_c body(...),  row map x[r] = body(...)
//!     exits:
//!         summed over the row: dV[c, :] += Σ_r P[c, r] · dO[i0 + r, :]   (dO's block packed)
//!         summed over the key: dQ[i0 + r, :] = Σ_c dS[c, r] · K[c, :]     (into [d, qb], copied)
//! copy accumulators that are not the output itself
//! ```
//!
//! **Why key-major panels.** A panel's element `(row r, key c)` is at `[c, r]`: the products
//! then take the `O(T·d)` operands read along the key (`K`, `V`) in place as the micro-kernel's
//! A, whose rows may have any stride, and only the block's `qb` rows of the other operand are
//! packed (B must be zero-padded to the tile width): `O(T·d)` packing per call instead of the
//! `O(T²·d / qb)` of packing the keys once per block. The row-summed exits read a panel as A
//! (`m` = keys, `k` = the block's rows), the key-summed ones as B (`k` = keys, `n` = rows:
//! `qb` is a whole number of tiles, and the panel is zeroed once so that a short last block
//! reads only written memory past its rows).
//!
//! **Memory.** One `[Tk, qb]` panel per `T x T` value of the group and one `[qb]` vector per row
//! value, the packed row blocks (`qb x d` each), a `[d, qb]` block per key-summed exit, and an
//! accumulator of the output's size for a row-summed exit whose output is not contiguous with
//! its free index last: `O(T·qb + T·d)`, never `O(T²)` (`BackwardGroup::scratch_elements`).
//!
//! **Numerics.** Products sum the head in chunks of `hb` (one fused multiply-add per step, as
//! every micro-kernel), row reductions run key by key from the identity, the row-summed
//! exits add one block of rows at a time in row order and the key-summed ones one block of
//! `kb` keys at a time: only summation orders differ from the unfused program, and none
//! depends on anything but the schedule (the loops are serial).

use super::super::body::{unit_last, vectorisable, BodyLowerer};
use super::super::{FnLowerer, LowerError};
use super::emit::{impl_emit, tile_shape, Emit};
use crate::analysis::{BackwardGroup, Exit, ExitSum, Member, MemberKind, Role};
use crate::ir::loops::{
    BufferId, CmpOp, Coord, IndexOp, Inst, Layout, Op, TileOperand, Type, UkernelShape, ValueId,
};
use crate::ir::tensor::schedule::AttentionSchedule;
use crate::ir::tensor::{self, AxisMap, Extent, Generic, IndexId, OpKind};
use einc_runtime::DType;
use std::collections::HashMap;

/// Lowers `group` under schedule `s` (its exits' results bound to buffers by `result_buffer`).
pub(in crate::lower) fn lower_backward<'m>(
    fl: &mut FnLowerer<'m>,
    group: &BackwardGroup,
    s: &AttentionSchedule,
    result_buffer: &mut dyn FnMut(
        &mut FnLowerer<'m>,
        tensor::ValueId,
    ) -> Result<BufferId, LowerError>,
) -> Result<Vec<Inst>, LowerError> {
    let (Some(qb), Some(kb), Some(hb), Some(mr), Some(nr)) = (s.qb, s.kb, s.hb, s.mr, s.nr) else {
        return Err(fl.error("the attention schedule is not complete"));
    };
    if qb % nr != 0 || nr % mr != 0 {
        return Err(fl.error(format!(
            "a backward attention nest needs qb a multiple of nr and nr of mr (qb = {qb}, mr = {mr}, nr = {nr})"
        )));
    }
    let src = fl.src;
    let op = |k: usize| -> Option<&Generic> {
        src.ops.get(k).map(|o| {
            let OpKind::Generic(g) = &o.kind;
            g
        })
    };
    let first = group
        .members
        .first()
        .and_then(|m| op(m.op).map(|g| (g, m)))
        .ok_or_else(|| fl.error("a backward attention group has no ops"))?;
    let dtype = first.0.dtype;
    // Extents by role, from the first member (the scores).
    let extent = |role: Role| -> Option<Extent> {
        let (g, m) = first;
        let n = m.roles.iter().position(|&r| r == Some(role))?;
        g.indices.get(n).map(|d| d.extent.clone())
    };
    let missing = || fl.error("the backward attention group lacks an axis");
    let batch = (0..group.batch_rank)
        .map(|n| extent(Role::Batch(n)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(missing)?;
    let rows = extent(Role::Row).ok_or_else(missing)?;
    let keys = extent(Role::Key).ok_or_else(missing)?;
    let shape = tile_shape(fl, dtype, (mr, nr))?;
    let mut exit_out = Vec::new();
    for e in &group.exits {
        let value = src
            .ops
            .get(e.op)
            .map(|o| o.result)
            .ok_or_else(|| fl.error("an exit of the backward group is missing"))?;
        exit_out.push(result_buffer(fl, value)?);
    }
    let mut n = Nest {
        fl,
        cur: Vec::new(),
        outer: Vec::new(),
        dtype,
        shape,
        blocks: Blocks { qb, kb, hb, nr },
        group,
        rows,
        keys,
        batch,
        values: HashMap::new(),
    };
    n.build(&exit_out)?;
    Ok(n.cur)
}

/// Fixed sizes of the nest, from the schedule.
#[derive(Clone, Copy, Debug)]
struct Blocks {
    qb: u64,
    kb: u64,
    hb: u64,
    nr: u64,
}

/// The current point of the roles: batch indices, the block's first row (`i0`) and local row
/// (`r`), and the key.
#[derive(Clone, Debug)]
struct At {
    batch: Vec<ValueId>,
    i0: ValueId,
    r: ValueId,
    key: ValueId,
}

/// Where a group value lives: a `[Tk, qb]` panel or a `[qb]` row vector.
#[derive(Clone, Copy, Debug)]
enum Stored {
    Panel(BufferId),
    Rows(BufferId),
}

/// Per exit: what its nest needs besides the output.
#[derive(Clone, Copy, Debug)]
enum ExitScratch {
    /// A row-summed exit: the packed block of `Y`'s rows and the accumulator (the output
    /// itself, or a temporary copied into it at the end).
    Row {
        yp: BufferId,
        acc: BufferId,
        copy: bool,
    },
    /// A key-summed exit: the `[free, qb]` block of the output's rows.
    Key { block: BufferId },
}

struct Nest<'a, 'f, 'm> {
    fl: &'f mut FnLowerer<'m>,
    cur: Vec<Inst>,
    outer: Vec<Vec<Inst>>,
    dtype: DType,
    shape: UkernelShape,
    blocks: Blocks,
    group: &'a BackwardGroup,
    rows: Extent,
    keys: Extent,
    batch: Vec<Extent>,
    /// The buffer of each group value.
    values: HashMap<tensor::ValueId, Stored>,
}

impl_emit!(Nest);

impl<'m> Nest<'_, '_, 'm> {
    fn op(&self, k: usize) -> Result<&'m Generic, LowerError> {
        let src: &'m tensor::Function = self.fl.src;
        match src.ops.get(k).map(|o| &o.kind) {
            Some(OpKind::Generic(g)) => Ok(g),
            None => Err(self.fl.error("an op of the backward group is missing")),
        }
    }

    fn result(&self, k: usize) -> Result<tensor::ValueId, LowerError> {
        self.fl
            .src
            .ops
            .get(k)
            .map(|o| o.result)
            .ok_or_else(|| self.fl.error("an op of the backward group is missing"))
    }

    /// The extent of index `i` of op `g`.
    fn extent_of(&self, g: &Generic, i: IndexId) -> Result<Extent, LowerError> {
        g.indices
            .get(i.0 as usize)
            .map(|d| d.extent.clone())
            .ok_or_else(|| self.fl.error("an index of the backward group is missing"))
    }

    fn build(&mut self, exit_out: &[BufferId]) -> Result<(), LowerError> {
        let Blocks { qb, nr, .. } = self.blocks;
        let group = self.group;
        // Scratch: panels and row vectors, packed row blocks, exit blocks.
        let mut packs = Vec::new();
        for m in &group.members {
            let name = format!("bwd.{}", self.value_name(m.op)?);
            let stored = match m.kind {
                MemberKind::Product { .. } | MemberKind::Map => {
                    Stored::Panel(self.temp(&name, vec![self.keys.clone(), Extent::Fixed(qb)]))
                }
                MemberKind::RowReduce | MemberKind::RowMap => {
                    Stored::Rows(self.temp(&name, vec![Extent::Fixed(qb)]))
                }
            };
            if let MemberKind::Product { rows, head, .. } = m.kind {
                let g = self.op(m.op)?;
                let heads = self.extent_of(g, head)?;
                let pack = self.temp(
                    "bwd.rows",
                    vec![Extent::Fixed(qb / nr), heads, Extent::Fixed(nr)],
                );
                packs.push((m, rows, head, pack));
            }
            self.values.insert(self.result(m.op)?, stored);
        }
        let mut exits = Vec::new();
        for (e, &out) in group.exits.iter().zip(exit_out) {
            let g = self.op(e.op)?;
            let free = self.extent_of(g, e.free)?;
            let scratch = match e.sum {
                ExitSum::Row => {
                    let panels = match free {
                        Extent::Fixed(n) => Extent::Fixed(n.div_ceil(nr)),
                        // At most one panel per free value (`ceil(n / nr)` is no extent);
                        // only the first `ceil(n / nr)` panels are touched.
                        ref e => e.clone(),
                    };
                    let yp = self.temp(
                        "bwd.pack",
                        vec![panels, Extent::Fixed(qb), Extent::Fixed(nr)],
                    );
                    let def = self.fl.buffer_def(out)?;
                    let last = g.output.last() == Some(&e.free);
                    let in_place = def.layout == Layout::Contiguous && last;
                    let acc = if in_place {
                        out
                    } else {
                        let mut shape = self.batch.clone();
                        shape.extend([self.keys.clone(), free]);
                        self.temp("bwd.acc", shape)
                    };
                    ExitScratch::Row {
                        yp,
                        acc,
                        copy: !in_place,
                    }
                }
                ExitSum::Key => ExitScratch::Key {
                    block: self.temp("bwd.block", vec![free, Extent::Fixed(qb)]),
                },
            };
            exits.push((e, out, scratch));
        }
        // Panels a key-summed exit reads as B, `nr` rows at a time: zeroed once, so that a
        // short block reads written memory past its rows.
        for (e, _, _) in &exits {
            if e.sum == ExitSum::Key {
                let g = self.op(e.op)?;
                let v = g.inputs.get(e.group_input).map(|i| i.value);
                if let Some(Stored::Panel(p)) = v.and_then(|v| self.values.get(&v).copied()) {
                    self.zero(p)?;
                }
            }
        }
        self.batch_loops(0, Vec::new(), &packs, &exits)
    }

    fn value_name(&self, k: usize) -> Result<String, LowerError> {
        let v = self.result(k)?;
        Ok(self.fl.value_def(v)?.name.clone())
    }

    /// `panel[c, r] = 0` for every key `c` and every `r < qb`.
    fn zero(&mut self, panel: BufferId) -> Result<(), LowerError> {
        let fzero = self.scalar(0.0);
        let zero = self.konst(0)?;
        let end = self.konst(self.blocks.qb)?;
        let keys = self.fl.extent(&self.keys.clone())?;
        self.each("c", (zero, keys, 1), false, |nest, c| {
            nest.each("r", (zero, end, 1), false, |nest, r| {
                nest.store(panel, vec![c, r], fzero);
                Ok(())
            })
        })
    }

    /// The batch loops (serial), then each batch point's blocks of rows.
    fn batch_loops(
        &mut self,
        n: usize,
        batch: Vec<ValueId>,
        packs: &[(&Member, usize, IndexId, BufferId)],
        exits: &[(&Exit, BufferId, ExitScratch)],
    ) -> Result<(), LowerError> {
        let Some(extent) = self.batch.get(n).cloned() else {
            return self.row_blocks(batch, packs, exits);
        };
        let zero = self.konst(0)?;
        let upper = self.fl.extent(&extent)?;
        self.each("b", (zero, upper, 1), false, |nest, var| {
            let mut batch = batch;
            batch.push(var);
            nest.batch_loops(n + 1, batch, packs, exits)
        })
    }

    /// One batch point: the row-summed accumulators zeroed, every block of rows, the
    /// accumulators that are not the outputs copied into them.
    fn row_blocks(
        &mut self,
        batch: Vec<ValueId>,
        packs: &[(&Member, usize, IndexId, BufferId)],
        exits: &[(&Exit, BufferId, ExitScratch)],
    ) -> Result<(), LowerError> {
        let qb = self.blocks.qb;
        let zero = self.konst(0)?;
        let fzero = self.scalar(0.0);
        let rows = self.fl.extent(&self.rows.clone())?;
        let base = At {
            batch,
            i0: zero,
            r: zero,
            key: zero,
        };
        for &(e, _, scratch) in exits {
            if let ExitScratch::Row { acc, .. } = scratch {
                self.every_key(e, &base, |nest, at, x| {
                    let index = nest.exit_index(e, acc, at, x)?;
                    nest.store(acc, index, fzero);
                    Ok(())
                })?;
            }
        }
        self.each("i0", (zero, rows, qb), false, |nest, i0| {
            let mb = nest.block_size(i0, rows, qb)?;
            let at = At { i0, ..base.clone() };
            for &(m, operand, head, pack) in packs {
                nest.pack_rows(m, operand, head, pack, &at, mb)?;
            }
            let group = nest.group;
            for m in &group.members {
                match m.kind {
                    MemberKind::Product { rows, keys, head } => {
                        let pack = packs
                            .iter()
                            .find(|p| p.0.op == m.op)
                            .map(|p| p.3)
                            .ok_or_else(|| nest.fl.error("a product has no packed rows"))?;
                        nest.product(m, (rows, keys, head), pack, &at)?;
                    }
                    MemberKind::Map | MemberKind::RowMap | MemberKind::RowReduce => {
                        nest.elementwise(m, &at, mb)?;
                    }
                }
            }
            for &(e, out, scratch) in exits {
                match scratch {
                    ExitScratch::Row { yp, acc, .. } => nest.row_exit(e, yp, acc, &at, mb)?,
                    ExitScratch::Key { block } => nest.key_exit(e, block, out, &at, mb)?,
                }
            }
            Ok(())
        })?;
        for &(e, out, scratch) in exits {
            if let ExitScratch::Row {
                acc, copy: true, ..
            } = scratch
            {
                self.every_key(e, &base, |nest, at, x| {
                    let from = nest.exit_index(e, acc, at, x)?;
                    let to = nest.exit_index(e, out, at, x)?;
                    let v = nest.load(acc, from);
                    nest.store(out, to, v);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Runs `body` at every key and free index `x` of row-summed exit `e` (`base` giving the
    /// batch point).
    fn every_key(
        &mut self,
        e: &Exit,
        base: &At,
        body: impl Fn(&mut Self, &At, ValueId) -> Result<(), LowerError>,
    ) -> Result<(), LowerError> {
        let zero = self.konst(0)?;
        let keys = self.fl.extent(&self.keys.clone())?;
        let free = self.free_extent(e)?;
        self.each("c", (zero, keys, 1), false, |nest, c| {
            nest.each("e", (zero, free, 1), false, |nest, x| {
                let at = At {
                    key: c,
                    ..base.clone()
                };
                body(nest, &at, x)
            })
        })
    }

    fn free_extent(&mut self, e: &Exit) -> Result<ValueId, LowerError> {
        let g = self.op(e.op)?;
        let free = self.extent_of(g, e.free)?;
        self.fl.extent(&free)
    }

    /// The index of exit `e`'s output element at `at` (its row `i0 + r` or its key), free
    /// index `x`, in buffer `b`: the output itself (the op's output axes) or a temporary
    /// accumulator (batch indices, key, free index).
    fn exit_index(
        &mut self,
        e: &Exit,
        b: BufferId,
        at: &At,
        x: ValueId,
    ) -> Result<Vec<ValueId>, LowerError> {
        let g = self.op(e.op)?;
        let out = self.result(e.op)?;
        if self.fl.buffer_of(out).ok() == Some(b) {
            let axes: Vec<Option<Role>> = g
                .output
                .iter()
                .map(|i| e.roles.get(i.0 as usize).copied().flatten())
                .collect();
            let row = self.index(IndexOp::Add, at.i0, at.r);
            return Ok(axes
                .iter()
                .map(|r| match r {
                    Some(Role::Batch(n)) => at.batch.get(*n).copied().unwrap_or(at.key),
                    Some(Role::Row) => row,
                    Some(Role::Key) => at.key,
                    None => x,
                })
                .collect());
        }
        let mut index = at.batch.clone();
        index.extend([at.key, x]);
        Ok(index)
    }

    /// The value of each index of op `m` (by role) at `at`, `other` for an index without one.
    fn vars(&mut self, roles: &[Option<Role>], at: &At, other: ValueId) -> Vec<ValueId> {
        let row = self.index(IndexOp::Add, at.i0, at.r);
        roles
            .iter()
            .map(|r| match r {
                Some(Role::Batch(n)) => at.batch.get(*n).copied().unwrap_or(other),
                Some(Role::Row) => row,
                Some(Role::Key) => at.key,
                None => other,
            })
            .collect()
    }

    /// A tile operand of input `n` of `g` (index values `vars`), coordinate `c` advancing the
    /// axes read by index `i` for each `(c, i)`.
    fn input_tile(
        &self,
        g: &Generic,
        n: usize,
        vars: &[ValueId],
        coords: &[(Coord, IndexId)],
    ) -> Result<TileOperand, LowerError> {
        let input = g
            .inputs
            .get(n)
            .ok_or_else(|| self.fl.error("an operand of the backward group is missing"))?;
        let buffer = self.fl.buffer_of(input.value)?;
        let mut start = Vec::new();
        for a in &input.map {
            match a {
                AxisMap::Index(i) => start.push(
                    *vars
                        .get(i.0 as usize)
                        .ok_or_else(|| self.fl.error("an index is out of range"))?,
                ),
                AxisMap::Fixed(_) => {
                    return Err(self
                        .fl
                        .error("a backward operand is read at a fixed position"))
                }
            }
        }
        let axes = coords
            .iter()
            .map(|&(c, i)| {
                let along = input
                    .map
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| **a == AxisMap::Index(i))
                    .filter_map(|(n, _)| u32::try_from(n).ok())
                    .collect();
                (c, along)
            })
            .collect();
        Ok(TileOperand {
            buffer,
            start,
            axes,
        })
    }

    /// `pack[r / nr, a, r % nr] = R[row i0 + r, head a]` for the block's rows, zero for the
    /// rows past `mb` up to `qb`.
    fn pack_rows(
        &mut self,
        m: &Member,
        operand: usize,
        head: IndexId,
        pack: BufferId,
        at: &At,
        mb: ValueId,
    ) -> Result<(), LowerError> {
        let Blocks { qb, nr, .. } = self.blocks;
        let g = self.op(m.op)?;
        let heads = self.extent_of(g, head)?;
        let heads = self.fl.extent(&heads)?;
        let zero = self.konst(0)?;
        let end = self.konst(qb)?;
        let width = self.konst(nr)?;
        let fzero = self.scalar(0.0);
        let one = self.konst(1)?;
        let past = self.index(IndexOp::Add, at.i0, mb);
        let input = g
            .inputs
            .get(operand)
            .ok_or_else(|| self.fl.error("a product operand is missing"))?;
        let buffer = self.fl.buffer_of(input.value)?;
        let roles = m.roles.clone();
        self.each("r", (zero, end, 1), false, |nest, r| {
            let panel = nest.index(IndexOp::Div, r, width);
            let lane = nest.index(IndexOp::Rem, r, width);
            let inside = nest.emit("inside", Op::Cmp(CmpOp::Lt, r, mb), Type::Bool);
            // Rows past the block read its last row (the block is not empty).
            let row = nest.index(IndexOp::Add, at.i0, r);
            let last = nest.index(IndexOp::Sub, past, one);
            let safe = nest.index(IndexOp::Min, row, last);
            nest.each("a", (zero, heads, 1), false, |nest, a| {
                let mut vars = nest.vars(&roles, at, a);
                if let Some(n) = roles.iter().position(|&x| x == Some(Role::Row)) {
                    vars[n] = safe;
                }
                let index = read_index(input, &vars).ok_or_else(|| {
                    nest.fl
                        .error("a product operand is read at a fixed position")
                })?;
                let x = nest.load(buffer, index);
                let x = nest.float(Op::Select(inside, x, fzero));
                nest.store(pack, vec![panel, a, lane], x);
                Ok(())
            })
        })
    }

    /// `Y[c, r] = Σ_a K[key c, a] · R[row i0 + r, a]` over the whole panel (rows past the block
    /// give 0: their packed rows are 0), head chunks of `hb`, `kb` keys per call.
    fn product(
        &mut self,
        m: &Member,
        (_, keys_operand, head): (usize, usize, IndexId),
        pack: BufferId,
        at: &At,
    ) -> Result<(), LowerError> {
        let Blocks { qb, kb, hb, nr } = self.blocks;
        let g = self.op(m.op)?;
        let Some(Stored::Panel(panel)) = self.values.get(&self.result(m.op)?).copied() else {
            return Err(self.fl.error("a product has no panel"));
        };
        let heads = self.extent_of(g, head)?;
        let heads = self.fl.extent(&heads)?;
        let keys = self.fl.extent(&self.keys.clone())?;
        let zero = self.konst(0)?;
        let one = self.konst(1)?;
        let end = self.konst(qb)?;
        let width = self.konst(nr)?;
        let full = self.konst(nr)?;
        let key_index = key_of(m);
        // At least one chunk, so that an empty head range still writes 0.
        let chunks_end = self.index(IndexOp::Max, heads, one);
        let roles = m.roles.clone();
        self.each("a0", (zero, chunks_end, hb), false, |nest, a0| {
            let hc = nest.block_size(a0, heads, hb)?;
            let first = nest.emit("first", Op::Cmp(CmpOp::Eq, a0, zero), Type::Bool);
            nest.each("c0", (zero, keys, kb), false, |nest, c0| {
                let tm = nest.block_size(c0, keys, kb)?;
                let vars = nest.vars(
                    &roles,
                    &At {
                        key: c0,
                        ..at.clone()
                    },
                    a0,
                );
                let key = key_index.ok_or_else(|| nest.fl.error("a product lacks the key"))?;
                let a =
                    nest.input_tile(g, keys_operand, &vars, &[(Coord::M, key), (Coord::K, head)])?;
                nest.each("r0", (zero, end, nr), false, |nest, r0| {
                    let p = nest.index(IndexOp::Div, r0, width);
                    let b = TileOperand {
                        buffer: pack,
                        start: vec![p, a0, zero],
                        axes: vec![(Coord::K, vec![1]), (Coord::N, vec![2])],
                    };
                    let c = nest.block_tile(panel, [c0, r0], [Coord::M, Coord::N]);
                    nest.ukernel(hc, (tm, full), (a.clone(), b, c), first);
                    Ok(())
                })
            })
        })
    }

    /// A map, row map or row reduction over the block's rows (and every key for the first
    /// and the last): in vectors of rows where the body allows it ([`Nest::row_lanes`]), the
    /// last `mb % lanes` rows one at a time.
    fn elementwise(&mut self, m: &Member, at: &At, mb: ValueId) -> Result<(), LowerError> {
        let g = self.op(m.op)?;
        let result = self.result(m.op)?;
        let stored = self
            .values
            .get(&result)
            .copied()
            .ok_or_else(|| self.fl.error("a group value has no buffer"))?;
        let zero = self.konst(0)?;
        let keys = self.fl.extent(&self.keys.clone())?;
        let lanes = self.row_lanes(m, g);
        let whole = match lanes {
            Some(n) => self.round_down(mb, u64::from(n))?,
            None => zero,
        };
        // The vectors of rows, then the rest one row at a time.
        let parts = [(zero, whole, lanes), (whole, mb, None)];
        match (m.kind.clone(), stored) {
            (MemberKind::Map, Stored::Panel(p)) => {
                self.each("c", (zero, keys, 1), false, |nest, c| {
                    for (from, to, lanes) in parts {
                        let step = lanes.map_or(1, u64::from);
                        nest.each("r", (from, to, step), false, |nest, r| {
                            let at = At {
                                r,
                                key: c,
                                ..at.clone()
                            };
                            let x = nest.body(m, g, &at, lanes)?;
                            nest.store(p, vec![c, r], x);
                            Ok(())
                        })?;
                    }
                    Ok(())
                })
            }
            (MemberKind::RowMap, Stored::Rows(v)) => {
                for (from, to, lanes) in parts {
                    let step = lanes.map_or(1, u64::from);
                    self.each("r", (from, to, step), false, |nest, r| {
                        let at = At { r, ..at.clone() };
                        let x = nest.body(m, g, &at, lanes)?;
                        nest.store(v, vec![r], x);
                        Ok(())
                    })?;
                }
                Ok(())
            }
            (MemberKind::RowReduce, Stored::Rows(v)) => {
                let kind = g
                    .reduce
                    .as_ref()
                    .map(|r| r.kind)
                    .ok_or_else(|| self.fl.error("a row reduction without a reduction"))?;
                let identity = self.fl.scalar_const(kind.identity(self.dtype));
                let combine = kind.combine_fn();
                for (from, to, lanes) in parts {
                    let step = lanes.map_or(1, u64::from);
                    self.each("r", (from, to, step), false, |nest, r| {
                        let init = match lanes {
                            Some(n) => {
                                let ty = Type::Vector(nest.dtype, n);
                                nest.emit("v", Op::Splat(identity, n), ty)
                            }
                            None => identity,
                        };
                        let range = (zero, keys, 1);
                        let acc = nest.looped("c", range, false, &[init], |nest, c, acc| {
                            let at = At {
                                r,
                                key: c,
                                ..at.clone()
                            };
                            let x = nest.body(m, g, &at, lanes)?;
                            let ty = nest.fl.type_of(x)?;
                            Ok(vec![nest.emit("v", Op::Binary(combine, acc[0], x), ty)])
                        })?;
                        nest.store(v, vec![r], acc[0]);
                        Ok(())
                    })?;
                }
                Ok(())
            }
            _ => Err(self.fl.error("a group value is stored in the wrong shape")),
        }
    }

    /// The vector width at which member `m` (op `g`) can run along the rows: its values of
    /// the group are read from contiguous rows of their panels, so only its other inputs
    /// and its body decide (`body::vectorisable` on the op with those inputs' reads
    /// dropped); `None` when it cannot (a causal mask compares the row index).
    fn row_lanes(&self, m: &Member, g: &Generic) -> Option<u32> {
        let lanes = u32::try_from(16 / self.dtype.size_bytes()).ok()?;
        let row = m.roles.iter().position(|&r| r == Some(Role::Row))?;
        let row = IndexId(u32::try_from(row).ok()?);
        let mut outside = g.clone();
        for input in &mut outside.inputs {
            if self.values.contains_key(&input.value) {
                input.map.clear();
            }
        }
        let grouped = |n: usize| {
            g.inputs
                .get(n)
                .is_some_and(|i| self.values.contains_key(&i.value))
        };
        let buffer = |n: usize| {
            g.inputs
                .get(n)
                .and_then(|i| self.fl.buffer_of(i.value).ok())
        };
        let dtype_of = |n: usize| {
            if grouped(n) {
                return Some(self.dtype);
            }
            buffer(n).and_then(|b| self.fl.buffer_def(b).ok().map(|d| d.dtype))
        };
        let unit = |n: usize| grouped(n) || buffer(n).is_some_and(|b| unit_last(self.fl, b));
        vectorisable(&outside, row, lanes, &dtype_of, &unit)
            .is_none()
            .then_some(lanes)
    }

    /// The body of member `m` (op `g`) at `at`, for `lanes` rows from `at.r` when given:
    /// group values loaded from their buffers, the rest by the body lowerer.
    fn body(
        &mut self,
        m: &Member,
        g: &Generic,
        at: &At,
        lanes: Option<u32>,
    ) -> Result<ValueId, LowerError> {
        let zero = self.konst(0)?;
        let vars = self.vars(&m.roles, at, zero);
        let mut given = Vec::new();
        for (n, input) in g.inputs.iter().enumerate() {
            let (buffer, index) = match self.values.get(&input.value).copied() {
                Some(Stored::Panel(p)) => (p, vec![at.key, at.r]),
                Some(Stored::Rows(v)) => (v, vec![at.r]),
                None => continue,
            };
            let x = match lanes {
                Some(l) => self.vload(buffer, index, l),
                None => self.load(buffer, index),
            };
            let n = u32::try_from(n).map_err(|_| self.fl.error("too many inputs"))?;
            given.push((n, x));
        }
        let row = m.roles.iter().position(|&r| r == Some(Role::Row));
        let mut b = BodyLowerer::new(self.fl, g, vec![0; g.indices.len()]);
        for (i, &v) in vars.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| b.fl.error("too many indices"))?;
            b.set_var(IndexId(i), v);
        }
        if let (Some(l), Some(row)) = (lanes, row) {
            let row = u32::try_from(row).map_err(|_| b.fl.error("too many indices"))?;
            b.set_vector(Some((IndexId(row), l)));
        }
        for (n, x) in given {
            b.give_input(n, (x, 0));
        }
        let (y, _) = b.expr_of_type(&g.body, self.dtype)?;
        let insts = b.close();
        self.cur.extend(insts);
        // A body that reads no group value varies with no row: the same in every lane.
        match (lanes, self.fl.type_of(y)?) {
            (Some(l), Type::Scalar(d)) => Ok(self.emit("v", Op::Splat(y, l), Type::Vector(d, l))),
            _ => Ok(y),
        }
    }

    /// `acc[key c, :] += Σ_r G[c, r] · Y[row i0 + r, :]` for every key: the block's rows of
    /// `Y` packed panel-major (`[n / nr, r, n % nr]`), the panel read as A.
    fn row_exit(
        &mut self,
        e: &Exit,
        yp: BufferId,
        acc: BufferId,
        at: &At,
        mb: ValueId,
    ) -> Result<(), LowerError> {
        let Blocks { kb, nr, .. } = self.blocks;
        let g = self.op(e.op)?;
        let panel = self.group_panel(e, g)?;
        let free = self.free_extent(e)?;
        let keys = self.fl.extent(&self.keys.clone())?;
        let zero = self.konst(0)?;
        let width = self.konst(nr)?;
        let fzero = self.scalar(0.0);
        let one = self.konst(1)?;
        let input = g
            .inputs
            .get(e.other)
            .ok_or_else(|| self.fl.error("an exit operand is missing"))?;
        let y = self.fl.buffer_of(input.value)?;
        let padded = self.round_up(free, nr)?;
        // Pack: Yp[x / nr, r, x % nr] = Y[row i0 + r, x], zero past the free extent.
        self.each("r", (zero, mb, 1), false, |nest, r| {
            nest.each("x", (zero, padded, 1), false, |nest, x| {
                let panel = nest.index(IndexOp::Div, x, width);
                let lane = nest.index(IndexOp::Rem, x, width);
                let inside = nest.emit("inside", Op::Cmp(CmpOp::Lt, x, free), Type::Bool);
                let last = nest.index(IndexOp::Sub, free, one);
                let safe = nest.index(IndexOp::Min, x, last);
                let vars = nest.vars(&e.roles, &At { r, ..at.clone() }, safe);
                let index = read_index(input, &vars)
                    .ok_or_else(|| nest.fl.error("an exit operand is read at a fixed position"))?;
                // An empty free range reads nothing.
                let v = nest.emit(
                    "v",
                    Op::Load {
                        buffer: y,
                        index,
                        lanes: 1,
                    },
                    Type::Scalar(nest.dtype),
                );
                let v = nest.float(Op::Select(inside, v, fzero));
                nest.store(yp, vec![panel, r, lane], v);
                Ok(())
            })
        })?;
        let never = self.emit("never", Op::Cmp(CmpOp::Ne, zero, zero), Type::Bool);
        self.each("c0", (zero, keys, kb), false, |nest, c0| {
            let tm = nest.block_size(c0, keys, kb)?;
            nest.each("x0", (zero, free, nr), false, |nest, x0| {
                let tn = nest.block_size(x0, free, nr)?;
                let p = nest.index(IndexOp::Div, x0, width);
                let a = nest.block_tile(panel, [c0, zero], [Coord::M, Coord::K]);
                let b = TileOperand {
                    buffer: yp,
                    start: vec![p, zero, zero],
                    axes: vec![(Coord::K, vec![1]), (Coord::N, vec![2])],
                };
                let c = nest.exit_tile(
                    e,
                    acc,
                    &At {
                        key: c0,
                        ..at.clone()
                    },
                    x0,
                    Coord::M,
                )?;
                nest.ukernel(mb, (tm, tn), (a, b, c), never);
                Ok(())
            })
        })
    }

    /// The C tile of exit `e` in buffer `b` at `at`, free index from `x0`: `along` advancing
    /// its key (or row) axes, `n` its free axes.
    fn exit_tile(
        &mut self,
        e: &Exit,
        b: BufferId,
        at: &At,
        x0: ValueId,
        along: Coord,
    ) -> Result<TileOperand, LowerError> {
        let g = self.op(e.op)?;
        let start = self.exit_index(e, b, at, x0)?;
        let kept = match e.sum {
            ExitSum::Row => Role::Key,
            ExitSum::Key => Role::Row,
        };
        let out = self.result(e.op)?;
        let (m_axes, n_axes): (Vec<u32>, Vec<u32>) = if self.fl.buffer_of(out).ok() == Some(b) {
            let axis_of = |want: Option<Role>| {
                g.output
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| e.roles.get(i.0 as usize).copied().flatten() == want)
                    .filter_map(|(n, _)| u32::try_from(n).ok())
                    .collect()
            };
            (axis_of(Some(kept)), axis_of(None))
        } else {
            let rank = u32::try_from(self.batch.len()).map_err(|_| self.fl.error("rank"))?;
            (vec![rank], vec![rank + 1])
        };
        Ok(TileOperand {
            buffer: b,
            start,
            axes: vec![(along, m_axes), (Coord::N, n_axes)],
        })
    }

    /// `out[row i0 + r, :] = Σ_c G[c, r] · Y[key c, :]` for the block's rows: `block[x, r]`
    /// accumulated over blocks of `kb` keys (`Y` read as A, the panel as B), then copied.
    fn key_exit(
        &mut self,
        e: &Exit,
        block: BufferId,
        out: BufferId,
        at: &At,
        mb: ValueId,
    ) -> Result<(), LowerError> {
        let Blocks { qb, kb, nr, .. } = self.blocks;
        let g = self.op(e.op)?;
        let panel = self.group_panel(e, g)?;
        let free = self.free_extent(e)?;
        let keys = self.fl.extent(&self.keys.clone())?;
        let zero = self.konst(0)?;
        let one = self.konst(1)?;
        let end = self.konst(qb)?;
        let full = self.konst(nr)?;
        let over = e.roles.iter().position(|&r| r == Some(Role::Key));
        let key = over
            .and_then(|n| u32::try_from(n).ok())
            .map(IndexId)
            .ok_or_else(|| self.fl.error("a key-summed exit lacks the key"))?;
        // At least one block of keys, so that an empty key range still writes 0.
        let chunks_end = self.index(IndexOp::Max, keys, one);
        let roles = e.roles.clone();
        self.each("c0", (zero, chunks_end, kb), false, |nest, c0| {
            let kc = nest.block_size(c0, keys, kb)?;
            let first = nest.emit("first", Op::Cmp(CmpOp::Eq, c0, zero), Type::Bool);
            let vars = nest.vars(
                &roles,
                &At {
                    key: c0,
                    ..at.clone()
                },
                zero,
            );
            let a = nest.input_tile(g, e.other, &vars, &[(Coord::M, e.free), (Coord::K, key)])?;
            nest.each("r0", (zero, end, nr), false, |nest, r0| {
                let b = nest.block_tile(panel, [c0, r0], [Coord::K, Coord::N]);
                let c = nest.block_tile(block, [zero, r0], [Coord::M, Coord::N]);
                nest.ukernel(kc, (free, full), (a.clone(), b, c), first);
                Ok(())
            })
        })?;
        self.each("r", (zero, mb, 1), false, |nest, r| {
            nest.each("x", (zero, free, 1), false, |nest, x| {
                let v = nest.load(block, vec![x, r]);
                let index = nest.exit_index(e, out, &At { r, ..at.clone() }, x)?;
                nest.store(out, index, v);
                Ok(())
            })
        })
    }

    /// The panel of the group value exit `e` (op `g`) reads.
    fn group_panel(&self, e: &Exit, g: &Generic) -> Result<BufferId, LowerError> {
        let v = g.inputs.get(e.group_input).map(|i| i.value);
        match v.and_then(|v| self.values.get(&v).copied()) {
            Some(Stored::Panel(p)) => Ok(p),
            _ => Err(self.fl.error("an exit reads a group value without a panel")),
        }
    }
}

/// The index of a product member with the key role.
fn key_of(m: &Member) -> Option<IndexId> {
    let n = m.roles.iter().position(|&r| r == Some(Role::Key))?;
    u32::try_from(n).ok().map(IndexId)
}

/// The element of `input` at index values `vars` (`None` when it reads a fixed position).
fn read_index(input: &tensor::Input, vars: &[ValueId]) -> Option<Vec<ValueId>> {
    input
        .map
        .iter()
        .map(|x| match x {
            AxisMap::Index(i) => vars.get(i.0 as usize).copied(),
            AxisMap::Fixed(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
