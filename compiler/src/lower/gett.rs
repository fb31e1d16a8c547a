//! A contraction under a `gemm` schedule → a GETT nest: BLIS's five loops around a micro-kernel
//! call (TBLIS's layering), for any layout of the operands.
//!
//! ```text
//! for outer indices (batch, unfused M/N/K indices), in schedule order
//!   for jc in 0..N step nc            (N columns of C per block)
//!     for pc in 0..K step kc          (K depth per block)
//!       pack B[pc.., jc..] into Bp: nc/nr panels of kc x nr, zero-padded past N
//!                                   (or read B in place: `pack` without `b`, N = nr)
//!       for ic in 0..M step mc        (M rows per block)
//!         pack A[ic.., pc..] into Ap: mc/mr panels of kc x mr     (or read A in place)
//!         for jr in 0..nc' step nr
//!           for ir in 0..mc' step mr
//!             ukernel: C[ic+ir.., jc+jr..] (+)= Ap panel · Bp panel   (mr' x nr' tile)
//! ```
//!
//! Every index keeps its own axis in every operand, so transposed, permuted and sliced inputs
//! cost only the packing, which reads any strides, and a repeated index (`A[i, i, j]`) reads
//! the diagonal in place. Edge tiles pass their true size to the micro-kernel (`mr' <= mr`,
//! `nr' <= nr`); only B's panels are padded (the kernel reads `nr` full columns). A schedule
//! whose `pack` leaves out `b` reads B in place where it already is one such panel: N is `nr`
//! when compiling, and B's columns are its last axis with a unit stride (the contiguous
//! variant); elsewhere (the strided variant, any other N) B is packed as usual.
//!
//! `init` is set on the first K block (and the first iteration of every outer reduced loop),
//! so C is overwritten there and accumulated after: each element sums its K range in `kc`
//! blocks, in order. When K (or an outer reduced extent) is 0 the K loop still runs once with
//! an empty block, which writes zeros.
//!
//! C is written by the kernel directly when its `n` axis has a unit stride (a temporary, or
//! the contiguous kernel variant); otherwise the kernel writes a scoped `mr x nr` tile and a
//! copy loop adds it into C (`first ? t : C + t`, the kernel's own rounding).
//!
//! **Pack buffers.** A packed block takes `min(block, extent)` along each GEMM dimension whose
//! extent is known when compiling (rounded up to whole panels), the block otherwise. The
//! packed A and B blocks are temporaries that every GETT nest of the function shares (one per
//! dtype and tile width, grown to the largest request: the nests run one after another), so a
//! kernel with several contractions allocates and touches one of each per call. When a loop of
//! the nest runs in parallel, each task gets its own blocks instead (docs/threads.md): the
//! packed A block is scoped to the `ic` iteration, the packed B block to the `jc` iteration
//! when `jc` is parallel, else to the innermost outer loop when an outer loop is parallel.
//!
//! **Epilogues.** With an epilogue (`docs/schedules.md`), the nest stores the epilogue's last
//! value instead of C: on the last K block (of the last iteration of every outer reduced
//! loop) the micro-kernel call carries the factor, the bias and `relu`, so each tile is
//! finished in registers as it is stored; the earlier blocks store partial sums as before (two
//! calls, each in a loop that runs once or never, when more than one K block may run). Through
//! the tile buffer (C without a unit-stride `n` axis, or a `cast`), the copy loop applies the
//! steps element by element, the cast last; a `cast` needs the whole sum in one K block (the
//! verifier's rule), so no partial sum is ever stored in the cast's dtype.

use super::{FnLowerer, LowerError};
use crate::ir::loops::{
    self, BufferDef, BufferId, BufferKind, Carried, CmpOp, Coord, For, IndexOp, Inst, Layout, Op,
    StrideFact, TileOperand, Type, Ukernel, UkernelShape, ValueId,
};
use crate::ir::tensor::schedule::epilogue::Epilogue;
use crate::ir::tensor::schedule::{self, BlockLoop, GemmSchedule};
use crate::ir::tensor::{AxisMap, Extent, Generic, IndexId, UnaryFn};
use einc_runtime::{DType, Scalar};

/// How the panels of B are copied into the packed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PanelCopy {
    /// Every panel is full and B's columns have a unit stride: `nr / lanes` vector copies per
    /// row.
    Full,
    /// The columns inside N element by element (any strides).
    Elements,
    /// The columns inside N as whole vectors, then the rest element by element (the last,
    /// partial panel where B's columns have a unit stride).
    VectorsThenElements,
}

/// Where one row of a B panel is copied: the packed panel and row (`panel`, `kk`), and B's K
/// index and first column there (`k`, `j0`).
#[derive(Clone, Copy)]
struct PanelRow {
    panel: ValueId,
    kk: ValueId,
    k: ValueId,
    j0: ValueId,
}

/// A complete `gemm` schedule resolved for one op.
struct Plan {
    outer: Vec<IndexId>,
    m: IndexId,
    n: IndexId,
    k: IndexId,
    /// The inputs (body positions) playing A and B.
    a: usize,
    b: usize,
    mr: u64,
    nr: u64,
    mc: u64,
    kc: u64,
    nc: u64,
    pack_a: bool,
    /// Whether B is packed even where it already is one panel (see [`Gett::b_in_place`]).
    pack_b: bool,
    parallel: Vec<IndexId>,
    blocks: Vec<BlockLoop>,
}

impl Plan {
    fn new(g: &Generic, s: &GemmSchedule) -> Result<Plan, String> {
        let missing = || "incomplete `gemm` schedule".to_string();
        let one = |ids: &Option<Vec<IndexId>>, what: &str| match ids.as_deref() {
            Some([i]) => Ok(*i),
            _ => Err(format!("`{what}` must list one index")),
        };
        let operands = schedule::gemm_operands(g)?;
        let m = one(&s.m, "m")?;
        let reads = |input: u32| {
            g.inputs
                .get(input as usize)
                .is_some_and(|inp| inp.map.contains(&AxisMap::Index(m)))
        };
        let (a, b) = if reads(operands.first) {
            (operands.first, operands.second)
        } else {
            (operands.second, operands.first)
        };
        let pack = s.pack.ok_or_else(missing)?;
        Ok(Plan {
            outer: s.outer.clone().ok_or_else(missing)?,
            m,
            n: one(&s.n, "n")?,
            k: one(&s.k, "k")?,
            a: a as usize,
            b: b as usize,
            mr: s.mr.ok_or_else(missing)?,
            nr: s.nr.ok_or_else(missing)?,
            mc: s.mc.ok_or_else(missing)?,
            kc: s.kc.ok_or_else(missing)?,
            nc: s.nc.ok_or_else(missing)?,
            pack_a: pack.a,
            pack_b: pack.b,
            parallel: s.parallel.clone().ok_or_else(missing)?,
            blocks: s.parallel_blocks.clone().ok_or_else(missing)?,
        })
    }
}

/// An epilogue with its operands lowered.
struct EpilogueOps {
    /// The factor (a scalar of the op's dtype) and whether it divides.
    factor: Option<(ValueId, bool)>,
    /// The bias's buffer and, per axis, the op's index or a fixed position reading it.
    bias: Option<(BufferId, Vec<AxisMap>)>,
    relu: bool,
    cast: Option<DType>,
    /// Whether the whole sum is always one K block, so that every store is the last.
    single_block: bool,
}

/// The loops and values shared by the parts of one GETT nest.
struct Gett<'a> {
    g: &'a Generic,
    plan: Plan,
    out: BufferId,
    /// Each index's current loop variable (or start value), by `IndexId`.
    at: Vec<ValueId>,
    shape: UkernelShape,
    epilogue: Option<EpilogueOps>,
}

/// Converts a schedule number to an index constant's value.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Lowers contraction `g` under the complete `gemm` schedule `s` into a nest storing into
/// buffer `out` (with `epilogue`, the epilogue's last value).
pub(super) fn lower_gett(
    fl: &mut FnLowerer,
    g: &Generic,
    out: BufferId,
    s: &GemmSchedule,
    epilogue: Option<&Epilogue>,
) -> Result<Vec<Inst>, LowerError> {
    let plan = Plan::new(g, s).map_err(|e| fl.error(e))?;
    let mut entry = Vec::new();
    let epilogue = match epilogue {
        Some(e) => Some(epilogue_ops(fl, g, &plan, e, &mut entry)?),
        None => None,
    };
    let shape = UkernelShape {
        dtype: g.dtype,
        mr: u32::try_from(plan.mr).map_err(|_| fl.error("mr is too large"))?,
        nr: u32::try_from(plan.nr).map_err(|_| fl.error("nr is too large"))?,
    };
    let zero = fl.index_const(0);
    let one = fl.index_const(1);
    let mut at = vec![zero; g.indices.len()];
    for &i in &plan.outer {
        let name = &g
            .indices
            .get(i.0 as usize)
            .ok_or_else(|| fl.error(format!("index #{} is out of range", i.0)))?
            .name;
        at[i.0 as usize] = fl.named_value(name, Type::Index);
    }
    let mut x = Gett {
        g,
        plan,
        out,
        at,
        shape,
        epilogue,
    };
    let extent = |fl: &mut FnLowerer, i: IndexId| -> Result<ValueId, LowerError> {
        let def = g
            .indices
            .get(i.0 as usize)
            .ok_or_else(|| fl.error(format!("index #{} is out of range", i.0)))?;
        fl.extent(&def.extent)
    };
    let index_op = |fl: &mut FnLowerer, block: &mut Vec<Inst>, name: &str, op, a, b| {
        fl.assign(block, name, Op::IndexArith(op, a, b), Type::Index)
    };
    let m_ext = extent(fl, x.plan.m)?;
    let n_ext = extent(fl, x.plan.n)?;
    let k_ext = extent(fl, x.plan.k)?;
    // Operands are read only at points of the iteration space, as the interpreter reads them:
    // no column block runs when M is empty (N' = N min(M, 1)), and no K step when an outer
    // reduced loop is empty (K' = K min(E, 1)). The K loop still runs once when K' is 0, with
    // an empty block, so that the kernel writes C's zeros.
    let m_any = index_op(fl, &mut entry, "any", IndexOp::Min, m_ext, one);
    let n_eff = index_op(fl, &mut entry, "n", IndexOp::Mul, n_ext, m_any);
    let mut k_eff = k_ext;
    let mut outer_uppers = Vec::new();
    let mut reduced_outer = Vec::new();
    for &i in &x.plan.outer.clone() {
        let e = extent(fl, i)?;
        if g.output.contains(&i) {
            outer_uppers.push(e);
        } else {
            reduced_outer.push(i);
            let any = index_op(fl, &mut entry, "any", IndexOp::Min, e, one);
            k_eff = index_op(fl, &mut entry, "k", IndexOp::Mul, k_eff, any);
            outer_uppers.push(index_op(fl, &mut entry, "runs", IndexOp::Max, e, one));
        }
    }
    let k_runs = index_op(fl, &mut entry, "kruns", IndexOp::Max, k_eff, one);

    // The packed B block: scoped per `jc` iteration when those are parallel, else per
    // iteration of the innermost outer loop when an outer loop is parallel, else the
    // function's shared B pack.
    let jc_parallel = x.plan.blocks.contains(&BlockLoop::Jc);
    let outer_parallel = x.outer_parallel(g);
    let kc = x.block_of(fl, x.plan.k, x.plan.kc);
    let bp_shape = [
        x.block_of(fl, x.plan.n, x.plan.nc).div_ceil(x.plan.nr),
        kc,
        x.plan.nr,
    ];
    let bp = if x.b_in_place(fl)? {
        None
    } else if jc_parallel || outer_parallel {
        Some(fl.add_scratch("Bp", g.dtype, &bp_shape, BufferKind::Scoped))
    } else {
        Some(fl.shared_pack("Bp", g.dtype, bp_shape))
    };
    let dims = Dims {
        m: m_ext,
        n: n_ext,
        k: k_eff,
    };
    let jc = fl.named_value("jc", Type::Index);
    let mut jc_body = Vec::new();
    if let Some(bp) = bp.filter(|_| jc_parallel) {
        jc_body.push(Inst::Scoped(bp));
    }
    let reduced_outer: Vec<(IndexId, ValueId)> = x
        .plan
        .outer
        .iter()
        .zip(&outer_uppers)
        .filter(|(i, _)| reduced_outer.contains(i))
        .map(|(&i, &u)| (i, u))
        .collect();
    jc_body.extend(x.jc_body(fl, jc, dims, k_runs, bp, &reduced_outer)?);
    let mut nest = vec![for_loop(jc, zero, n_eff, x.plan.nc, jc_parallel, jc_body)];
    if let Some(bp) = bp.filter(|_| outer_parallel && !jc_parallel) {
        nest.insert(0, Inst::Scoped(bp));
    }
    for (pos, &i) in x.plan.outer.iter().enumerate().rev() {
        let parallel = x.plan.parallel.contains(&i) && g.output.contains(&i);
        let var = x.at[i.0 as usize];
        nest = vec![for_loop(var, zero, outer_uppers[pos], 1, parallel, nest)];
    }
    entry.extend(nest);
    Ok(entry)
}

/// The current `(jc, pc)` block: where it starts, its size, and whether it is the first
/// (the last) K block of the whole sum.
#[derive(Clone, Copy)]
struct Block {
    jc: ValueId,
    nc: ValueId,
    pc: ValueId,
    kc: ValueId,
    first: ValueId,
    last: ValueId,
}

/// The epilogue's operands, lowered into `entry`: the factor computed once, the bias's buffer.
fn epilogue_ops(
    fl: &mut FnLowerer,
    g: &Generic,
    plan: &Plan,
    e: &Epilogue,
    entry: &mut Vec<Inst>,
) -> Result<EpilogueOps, LowerError> {
    use crate::ir::tensor::schedule::EpilogueStep;
    let factor = match &e.factor {
        Some(f) => {
            // The factor reads no index and no input: a body of its own, at level 0.
            let alone = Generic {
                indices: Vec::new(),
                inputs: Vec::new(),
                output: Vec::new(),
                reduce: None,
                body: f.clone(),
                dtype: g.dtype,
                schedule: None,
            };
            let mut bl = super::body::BodyLowerer::new(fl, &alone, Vec::new());
            let (v, _) = bl.expr_of_type(f, g.dtype)?;
            entry.extend(bl.close());
            Some((v, e.steps.contains(&EpilogueStep::Divide)))
        }
        None => None,
    };
    let bias = match &e.bias {
        Some(b) => Some((fl.buffer_of(b.value)?, b.map.clone())),
        None => None,
    };
    let known = |i: IndexId| {
        g.indices
            .get(i.0 as usize)
            .and_then(|d| fl.known_extent(&d.extent))
    };
    let reduced_outer = plan.outer.iter().any(|i| !g.output.contains(i));
    let single_block = !reduced_outer && known(plan.k).is_some_and(|k| k <= plan.kc);
    if e.cast.is_some() && !single_block {
        return Err(fl.error("a `cast` epilogue needs the whole sum in one K block"));
    }
    Ok(EpilogueOps {
        factor,
        bias,
        relu: e.steps.contains(&EpilogueStep::Relu),
        cast: e.cast,
        single_block,
    })
}

/// The GEMM's extents at run time (K as the blocks see it).
#[derive(Clone, Copy)]
struct Dims {
    m: ValueId,
    n: ValueId,
    k: ValueId,
}

/// A loop that carries nothing.
fn for_loop(
    var: ValueId,
    lower: ValueId,
    upper: ValueId,
    step: u64,
    parallel: bool,
    insts: Vec<Inst>,
) -> Inst {
    Inst::For(Box::new(For {
        var,
        lower,
        upper,
        step,
        parallel,
        unroll: None,
        carried: Vec::new(),
        body: loops::Block { insts },
        yields: Vec::new(),
    }))
}

impl Gett<'_> {
    /// Whether the loops over `nr` panels (B's packing, the `jr` tiles) are parallel: with the
    /// `ic` blocks. Each iteration writes its own panel of the packed B block, or its own
    /// columns of C; code generation runs `jr` in parallel when there are few `ic` blocks
    /// (docs/threads.md).
    fn panels_parallel(&self) -> bool {
        self.plan.blocks.contains(&BlockLoop::Ic)
    }

    /// Whether an outer loop of the nest (an output index of `g`) runs in parallel.
    fn outer_parallel(&self, g: &Generic) -> bool {
        self.plan.parallel.iter().any(|i| g.output.contains(i))
    }

    /// The body of the `jc` loop: `nc'`, then the `pc` loop with B's packing and the `ic`
    /// loop.
    fn jc_body(
        &mut self,
        fl: &mut FnLowerer,
        jc: ValueId,
        dims: Dims,
        k_runs: ValueId,
        bp: Option<BufferId>,
        reduced_outer: &[(IndexId, ValueId)],
    ) -> Result<Vec<Inst>, LowerError> {
        let mut insts = Vec::new();
        let nc = fl.index_const(int(self.plan.nc));
        let n_left = fl.assign(
            &mut insts,
            "nleft",
            Op::IndexArith(IndexOp::Sub, dims.n, jc),
            Type::Index,
        );
        let nc_cur = fl.assign(
            &mut insts,
            "ncb",
            Op::IndexArith(IndexOp::Min, nc, n_left),
            Type::Index,
        );

        let pc = fl.named_value("pc", Type::Index);
        let mut pc_body = Vec::new();
        let kc = fl.index_const(int(self.plan.kc));
        let k_left = fl.assign(
            &mut pc_body,
            "kleft",
            Op::IndexArith(IndexOp::Sub, dims.k, pc),
            Type::Index,
        );
        let k_left = {
            let zero = fl.index_const(0);
            fl.assign(
                &mut pc_body,
                "kleft",
                Op::IndexArith(IndexOp::Max, k_left, zero),
                Type::Index,
            )
        };
        let kc_cur = fl.assign(
            &mut pc_body,
            "kcb",
            Op::IndexArith(IndexOp::Min, kc, k_left),
            Type::Index,
        );
        // `init`: the first K block of the first iteration of every outer reduced loop.
        let zero = fl.index_const(0);
        let mut first = fl.assign(
            &mut pc_body,
            "first",
            Op::Cmp(CmpOp::Eq, pc, zero),
            Type::Bool,
        );
        // `last`: the block that ends the sum (`kleft <= kc`) in the last iteration of every
        // outer reduced loop; only needed by an epilogue.
        let mut last = match self.epilogue {
            Some(_) => fl.assign(
                &mut pc_body,
                "last",
                Op::Cmp(CmpOp::Le, k_left, kc),
                Type::Bool,
            ),
            None => first,
        };
        let one = fl.index_const(1);
        for &(r, upper) in reduced_outer {
            let var = self.at[r.0 as usize];
            let is0 = fl.assign(
                &mut pc_body,
                "first",
                Op::Cmp(CmpOp::Eq, var, zero),
                Type::Bool,
            );
            first = fl.assign(&mut pc_body, "first", Op::And(first, is0), Type::Bool);
            if self.epilogue.is_some() {
                let next = fl.assign(
                    &mut pc_body,
                    "next",
                    Op::IndexArith(IndexOp::Add, var, one),
                    Type::Index,
                );
                let ends = fl.assign(
                    &mut pc_body,
                    "last",
                    Op::Cmp(CmpOp::Ge, next, upper),
                    Type::Bool,
                );
                last = fl.assign(&mut pc_body, "last", Op::And(last, ends), Type::Bool);
            }
        }
        let block = Block {
            jc,
            nc: nc_cur,
            pc,
            kc: kc_cur,
            first,
            last,
        };
        if let Some(bp) = bp {
            pc_body.extend(self.pack_b(fl, bp, block, dims.n)?);
        }

        let ic = fl.named_value("ic", Type::Index);
        let ic_body = self.ic_body(fl, ic, dims.m, block, bp)?;
        let ic_parallel = self.plan.blocks.contains(&BlockLoop::Ic);
        pc_body.push(for_loop(
            ic,
            zero,
            dims.m,
            self.plan.mc,
            ic_parallel,
            ic_body,
        ));
        insts.push(for_loop(pc, zero, k_runs, self.plan.kc, false, pc_body));
        Ok(insts)
    }

    /// The index tuple of input `input` at the point where index `a_idx` is `a_val` and
    /// `b_idx` is `b_val` (every other index at its current value in `self.at`).
    fn operand_index(
        &self,
        fl: &mut FnLowerer,
        input: usize,
        set: &[(IndexId, ValueId)],
    ) -> Result<Vec<ValueId>, LowerError> {
        let inp = self
            .g
            .inputs
            .get(input)
            .ok_or_else(|| fl.error(format!("input %{input} is missing")))?;
        inp.map
            .iter()
            .map(|a| match *a {
                AxisMap::Index(i) => Ok(set
                    .iter()
                    .find(|(x, _)| *x == i)
                    .map_or(self.at[i.0 as usize], |&(_, v)| v)),
                AxisMap::Fixed(p) => fl.index_const_u64(p),
            })
            .collect()
    }

    /// The axes of input `input` that index `i` addresses.
    fn axes(&self, input: usize, i: IndexId) -> Vec<u32> {
        self.g.inputs.get(input).map_or(Vec::new(), |inp| {
            inp.map
                .iter()
                .enumerate()
                .filter(|(_, a)| **a == AxisMap::Index(i))
                .map(|(n, _)| n as u32)
                .collect()
        })
    }

    /// Whether B's columns (the `n` index) are its last axis, on no other, with a unit stride
    /// in this variant of the kernel.
    fn b_columns_unit(&self, fl: &FnLowerer, b_buf: BufferId) -> bool {
        let last = self.g.inputs[self.plan.b].map.len() as u32 - 1;
        self.axes(self.plan.b, self.plan.n) == [last] && super::body::unit_last(fl, b_buf)
    }

    /// Whether the micro-kernel reads B in place: the schedule does not pack it, and B already
    /// is one `nr`-column panel here (N is `nr` when compiling, and B's columns have a unit
    /// stride), so every call may read `nr` full columns of it. B is packed otherwise.
    fn b_in_place(&self, fl: &FnLowerer) -> Result<bool, LowerError> {
        if self.plan.pack_b {
            return Ok(false);
        }
        let b_buf = fl.buffer_of(self.input_value(fl, self.plan.b)?)?;
        let n = self
            .g
            .indices
            .get(self.plan.n.0 as usize)
            .and_then(|d| fl.known_extent(&d.extent));
        Ok(n == Some(self.plan.nr) && self.b_columns_unit(fl, b_buf))
    }

    /// Packs B's block (`kc' x nc'` from `(pc, jc)`) into `bp`: panel `p` holds columns
    /// `jc + p nr ..` as `bp[p, kk, jj]`, zero past N. Where B's columns are its last axis with
    /// a unit stride (the contiguous variant), full panels are copied with vector loads and
    /// stores and only the last, partial panel element by element.
    fn pack_b(
        &self,
        fl: &mut FnLowerer,
        bp: BufferId,
        block: Block,
        n_ext: ValueId,
    ) -> Result<Vec<Inst>, LowerError> {
        let zero = fl.index_const(0);
        let b_buf = fl.buffer_of(self.input_value(fl, self.plan.b)?)?;
        let lanes = 16 / self.g.dtype.size_bytes() as u64;
        let vector = self.b_columns_unit(fl, b_buf) && self.plan.nr.is_multiple_of(lanes);
        if !vector {
            return self.pack_b_panels(fl, bp, block, n_ext, [zero, block.nc], PanelCopy::Elements);
        }
        let mut insts = Vec::new();
        let nr = fl.index_const(int(self.plan.nr));
        let rem = fl.assign(
            &mut insts,
            "partial",
            Op::IndexArith(IndexOp::Rem, block.nc, nr),
            Type::Index,
        );
        let full = fl.assign(
            &mut insts,
            "full",
            Op::IndexArith(IndexOp::Sub, block.nc, rem),
            Type::Index,
        );
        insts.extend(self.pack_b_panels(fl, bp, block, n_ext, [zero, full], PanelCopy::Full)?);
        insts.extend(self.pack_b_panels(
            fl,
            bp,
            block,
            n_ext,
            [full, block.nc],
            PanelCopy::VectorsThenElements,
        )?);
        Ok(insts)
    }

    /// The panels of B's block from column `from` to `to` (multiples of `nr` from `jc`), copied
    /// as `how` says, with zero padding past N.
    fn pack_b_panels(
        &self,
        fl: &mut FnLowerer,
        bp: BufferId,
        block: Block,
        n_ext: ValueId,
        [from, to]: [ValueId; 2],
        how: PanelCopy,
    ) -> Result<Vec<Inst>, LowerError> {
        let Block { jc, pc, kc, .. } = block;
        let b_buf = fl.buffer_of(self.input_value(fl, self.plan.b)?)?;
        let zero = fl.index_const(0);
        let nr = fl.index_const(int(self.plan.nr));
        let dtype = self.g.dtype;
        let p = fl.named_value("jp", Type::Index);
        let kk = fl.named_value("kk", Type::Index);
        // Panel p: its first column, and how many of its columns are inside N.
        let mut p_body = Vec::new();
        let j0 = fl.assign(
            &mut p_body,
            "j",
            Op::IndexArith(IndexOp::Add, jc, p),
            Type::Index,
        );
        let panel = fl.assign(
            &mut p_body,
            "panel",
            Op::IndexArith(IndexOp::Div, p, nr),
            Type::Index,
        );
        let mut kk_body = Vec::new();
        let k = fl.assign(
            &mut kk_body,
            "k",
            Op::IndexArith(IndexOp::Add, pc, kk),
            Type::Index,
        );
        let lanes = 16 / dtype.size_bytes() as u64;
        let at = PanelRow { panel, kk, k, j0 };
        if how == PanelCopy::Full {
            for t in 0..self.plan.nr / lanes {
                let off = fl.index_const(int(t * lanes));
                self.copy_vector(fl, &mut kk_body, [b_buf, bp], at, off)?;
            }
        } else {
            let jj = fl.named_value("jj", Type::Index);
            let jj0 = fl.named_value("jj", Type::Index);
            let left = fl.assign(
                &mut p_body,
                "nleft",
                Op::IndexArith(IndexOp::Sub, n_ext, j0),
                Type::Index,
            );
            let valid = fl.assign(
                &mut p_body,
                "nvalid",
                Op::IndexArith(IndexOp::Min, nr, left),
                Type::Index,
            );
            // The columns inside N: whole vectors first (where B's columns have a unit stride),
            // then element by element.
            let mut start = zero;
            if how == PanelCopy::VectorsThenElements {
                let lanes_v = fl.index_const(int(lanes));
                let rem = fl.assign(
                    &mut p_body,
                    "vrem",
                    Op::IndexArith(IndexOp::Rem, valid, lanes_v),
                    Type::Index,
                );
                start = fl.assign(
                    &mut p_body,
                    "vend",
                    Op::IndexArith(IndexOp::Sub, valid, rem),
                    Type::Index,
                );
                let jv = fl.named_value("jv", Type::Index);
                let mut vcopy = Vec::new();
                self.copy_vector(fl, &mut vcopy, [b_buf, bp], at, jv)?;
                kk_body.push(for_loop(jv, zero, start, lanes, false, vcopy));
            }
            let mut copy = Vec::new();
            let j = fl.assign(
                &mut copy,
                "j",
                Op::IndexArith(IndexOp::Add, j0, jj),
                Type::Index,
            );
            let index =
                self.operand_index(fl, self.plan.b, &[(self.plan.k, k), (self.plan.n, j)])?;
            let v = fl.assign(
                &mut copy,
                "ld",
                Op::Load {
                    buffer: b_buf,
                    index,
                    lanes: 1,
                },
                Type::Scalar(dtype),
            );
            copy.push(Inst::Store {
                buffer: bp,
                index: vec![panel, kk, jj],
                value: v,
            });
            kk_body.push(for_loop(jj, start, valid, 1, false, copy));
            // The padding past N: zeros.
            let zero_v = fl.scalar_const(Scalar::zero(dtype));
            let pad = vec![Inst::Store {
                buffer: bp,
                index: vec![panel, kk, jj0],
                value: zero_v,
            }];
            kk_body.push(for_loop(jj0, valid, nr, 1, false, pad));
        }
        p_body.push(for_loop(kk, zero, kc, 1, false, kk_body));
        let parallel = self.panels_parallel();
        Ok(vec![for_loop(p, from, to, self.plan.nr, parallel, p_body)])
    }

    /// Copies one vector of B's row `at.k` from column `at.j0 + off` into the packed panel
    /// `bp[at.panel, at.kk, off..]` (`[b, bp]`: B's buffer and the packed block).
    fn copy_vector(
        &self,
        fl: &mut FnLowerer,
        block: &mut Vec<Inst>,
        [b_buf, bp]: [BufferId; 2],
        at: PanelRow,
        off: ValueId,
    ) -> Result<(), LowerError> {
        let dtype = self.g.dtype;
        let lanes = u32::try_from(16 / dtype.size_bytes()).unwrap_or(1);
        let j = if fl.index_const(0) == off {
            at.j0
        } else {
            fl.assign(
                block,
                "j",
                Op::IndexArith(IndexOp::Add, at.j0, off),
                Type::Index,
            )
        };
        let index =
            self.operand_index(fl, self.plan.b, &[(self.plan.k, at.k), (self.plan.n, j)])?;
        let load = Op::Load {
            buffer: b_buf,
            index,
            lanes,
        };
        let v = fl.assign(block, "ld", load, Type::Vector(dtype, lanes));
        block.push(Inst::Store {
            buffer: bp,
            index: vec![at.panel, at.kk, off],
            value: v,
        });
        Ok(())
    }

    /// How much of a block of `block` along index `i` can be used: the block, or the index's
    /// extent when that is known and smaller (at least 1).
    fn block_of(&self, fl: &FnLowerer, i: IndexId, block: u64) -> u64 {
        let extent = self
            .g
            .indices
            .get(i.0 as usize)
            .and_then(|d| fl.known_extent(&d.extent));
        extent.map_or(block, |e| e.clamp(1, block))
    }

    /// The tensor value of input `input`.
    fn input_value(
        &self,
        fl: &FnLowerer,
        input: usize,
    ) -> Result<crate::ir::tensor::ValueId, LowerError> {
        self.g
            .inputs
            .get(input)
            .map(|i| i.value)
            .ok_or_else(|| fl.error(format!("input %{input} is missing")))
    }

    /// The body of the `ic` loop: `mc'`, A's packing, and the register-tile loops.
    fn ic_body(
        &mut self,
        fl: &mut FnLowerer,
        ic: ValueId,
        m_ext: ValueId,
        block: Block,
        bp: Option<BufferId>,
    ) -> Result<Vec<Inst>, LowerError> {
        let Block {
            jc,
            nc: nc_cur,
            pc,
            kc: kc_cur,
            first,
            last,
        } = block;
        let zero = fl.index_const(0);
        let mut insts = Vec::new();
        let mc = fl.index_const(int(self.plan.mc));
        let m_left = fl.assign(
            &mut insts,
            "mleft",
            Op::IndexArith(IndexOp::Sub, m_ext, ic),
            Type::Index,
        );
        let mc_cur = fl.assign(
            &mut insts,
            "mcb",
            Op::IndexArith(IndexOp::Min, mc, m_left),
            Type::Index,
        );
        let a_buf = fl.buffer_of(self.input_value(fl, self.plan.a)?)?;
        let mr = fl.index_const(int(self.plan.mr));
        let nr = fl.index_const(int(self.plan.nr));
        let dtype = self.g.dtype;

        let ap = if self.plan.pack_a {
            // Scoped to the `ic` iteration when some loop of the nest runs in parallel, so
            // each task has its own; else the function's shared A pack.
            let scoped = !self.plan.blocks.is_empty() || self.outer_parallel(self.g);
            let panels = self
                .block_of(fl, self.plan.m, self.plan.mc)
                .div_ceil(self.plan.mr);
            let kc = self.block_of(fl, self.plan.k, self.plan.kc);
            let shape = [panels, kc, self.plan.mr];
            let ap = if scoped {
                let ap = fl.add_scratch("Ap", dtype, &shape, BufferKind::Scoped);
                insts.push(Inst::Scoped(ap));
                ap
            } else {
                fl.shared_pack("Ap", dtype, shape)
            };
            insts.extend(self.pack_a(fl, ap, a_buf, ic, mc_cur, block)?);
            Some(ap)
        } else {
            None
        };

        // C: written by the kernel when its n axis has a unit stride, else through a tile.
        let out_def = fl.buffer_def(self.out)?;
        let rank = out_def.shape.len();
        let n_axis = self.g.output.iter().position(|&i| i == self.plan.n);
        let m_axis = self.g.output.iter().position(|&i| i == self.plan.m);
        let (Some(n_axis), Some(m_axis)) = (n_axis, m_axis) else {
            return Err(fl.error("the m or n index is not an output index"));
        };
        let direct = out_def.layout.fact(n_axis, rank) == StrideFact::Unit;

        let par = self.panels_parallel();
        let jr = fl.named_value("jr", Type::Index);
        let mut jr_body = Vec::new();
        let n_left = fl.assign(
            &mut jr_body,
            "nleft",
            Op::IndexArith(IndexOp::Sub, nc_cur, jr),
            Type::Index,
        );
        let nr_cur = fl.assign(
            &mut jr_body,
            "nrt",
            Op::IndexArith(IndexOp::Min, nr, n_left),
            Type::Index,
        );
        let j = fl.assign(
            &mut jr_body,
            "j",
            Op::IndexArith(IndexOp::Add, jc, jr),
            Type::Index,
        );
        let b = match bp {
            Some(bp) => {
                let panel_b = fl.assign(
                    &mut jr_body,
                    "bpanel",
                    Op::IndexArith(IndexOp::Div, jr, nr),
                    Type::Index,
                );
                TileOperand {
                    buffer: bp,
                    start: vec![panel_b, zero, zero],
                    axes: vec![(Coord::K, vec![1]), (Coord::N, vec![2])],
                }
            }
            None => TileOperand {
                buffer: fl.buffer_of(self.input_value(fl, self.plan.b)?)?,
                start: self.operand_index(
                    fl,
                    self.plan.b,
                    &[(self.plan.k, pc), (self.plan.n, j)],
                )?,
                axes: vec![
                    (Coord::K, self.axes(self.plan.b, self.plan.k)),
                    (Coord::N, self.axes(self.plan.b, self.plan.n)),
                ],
            },
        };
        let out_at = |x: &Self, i: ValueId, j: ValueId| -> Vec<ValueId> {
            x.g.output
                .iter()
                .map(|&o| {
                    if o == x.plan.m {
                        i
                    } else if o == x.plan.n {
                        j
                    } else {
                        x.at[o.0 as usize]
                    }
                })
                .collect()
        };
        let cast = self.epilogue.as_ref().is_some_and(|e| e.cast.is_some());
        if direct && !cast {
            // One call covers the whole `mc` block: the kernel walks its `MR`-row tiles itself
            // (A's packed panels are its m-tiles), so the call's set-up is paid once per `jr`
            // step rather than once per register tile (docs/ukernel.md).
            let a = self.a_operand(fl, ap.map(|ap| (ap, zero)), a_buf, ic, pc)?;
            let c = TileOperand {
                buffer: self.out,
                start: out_at(self, ic, j),
                axes: vec![
                    (Coord::M, vec![m_axis as u32]),
                    (Coord::N, vec![n_axis as u32]),
                ],
            };
            let plain = Ukernel::plain(self.shape, [kc_cur, mc_cur, nr_cur], a, b, c, first);
            match &self.epilogue {
                None => jr_body.push(Inst::Ukernel(Box::new(plain))),
                Some(e) => {
                    let mut finished = plain.clone();
                    finished.scale = e.factor.map(|(s, _)| s);
                    finished.divide = e.factor.is_some_and(|(_, divide)| divide);
                    finished.bias = match &e.bias {
                        Some((buffer, map)) => Some(self.bias_operand(fl, *buffer, map, ic, j)?),
                        None => None,
                    };
                    finished.relu = e.relu;
                    if e.single_block {
                        jr_body.push(Inst::Ukernel(Box::new(finished)));
                    } else {
                        // Partial sums before the last K block, the finished tile on it.
                        let partial = vec![Inst::Ukernel(Box::new(plain))];
                        jr_body.extend(when(fl, last, false, partial));
                        let finished = vec![Inst::Ukernel(Box::new(finished))];
                        jr_body.extend(when(fl, last, true, finished));
                    }
                }
            }
            insts.push(for_loop(jr, zero, nc_cur, self.plan.nr, par, jr_body));
            return Ok(insts);
        }
        let ir = fl.named_value("ir", Type::Index);
        let mut ir_body = Vec::new();
        let m_left = fl.assign(
            &mut ir_body,
            "mleft",
            Op::IndexArith(IndexOp::Sub, mc_cur, ir),
            Type::Index,
        );
        let mr_cur = fl.assign(
            &mut ir_body,
            "mrt",
            Op::IndexArith(IndexOp::Min, mr, m_left),
            Type::Index,
        );
        let i = fl.assign(
            &mut ir_body,
            "i",
            Op::IndexArith(IndexOp::Add, ic, ir),
            Type::Index,
        );
        let packed = match ap {
            Some(ap) => {
                let panel = fl.assign(
                    &mut ir_body,
                    "apanel",
                    Op::IndexArith(IndexOp::Div, ir, mr),
                    Type::Index,
                );
                Some((ap, panel))
            }
            None => None,
        };
        let a = self.a_operand(fl, packed, a_buf, i, pc)?;
        let sizes = [kc_cur, mr_cur, nr_cur];
        let tile = fl.add_scratch(
            "Ct",
            dtype,
            &[self.plan.mr, self.plan.nr],
            BufferKind::Scoped,
        );
        ir_body.push(Inst::Scoped(tile));
        let c = TileOperand {
            buffer: tile,
            start: vec![zero, zero],
            axes: vec![(Coord::M, vec![0]), (Coord::N, vec![1])],
        };
        let always = fl.assign(
            &mut ir_body,
            "init",
            Op::Cmp(CmpOp::Eq, zero, zero),
            Type::Bool,
        );
        let into_tile = Ukernel::plain(self.shape, sizes, a, b, c, always);
        ir_body.push(Inst::Ukernel(Box::new(into_tile)));
        // C[i + ii, j + jj] = first ? t : C + t
        let ii = fl.named_value("ii", Type::Index);
        let jj = fl.named_value("jj", Type::Index);
        let mut cell = Vec::new();
        let ci = fl.assign(
            &mut cell,
            "ci",
            Op::IndexArith(IndexOp::Add, i, ii),
            Type::Index,
        );
        let cj = fl.assign(
            &mut cell,
            "cj",
            Op::IndexArith(IndexOp::Add, j, jj),
            Type::Index,
        );
        let t = fl.assign(
            &mut cell,
            "t",
            Op::Load {
                buffer: tile,
                index: vec![ii, jj],
                lanes: 1,
            },
            Type::Scalar(dtype),
        );
        let at = out_at(self, ci, cj);
        // C is read only when it is accumulated into (it may be unwritten before); under a
        // cast every store is the first.
        let sum = if cast {
            t
        } else {
            self.accumulate(fl, &mut cell, first, t, at.clone())?
        };
        let sum = match &self.epilogue {
            None => sum,
            Some(e) => {
                let done = self.finish(fl, &mut cell, e, sum, ci, cj)?;
                if e.single_block {
                    done
                } else {
                    let ty = Type::Scalar(dtype);
                    fl.assign(&mut cell, "v", Op::Select(last, done, sum), ty)
                }
            }
        };
        cell.push(Inst::Store {
            buffer: self.out,
            index: at,
            value: sum,
        });
        let row = vec![for_loop(jj, zero, nr_cur, 1, false, cell)];
        ir_body.push(for_loop(ii, zero, mr_cur, 1, false, row));
        jr_body.push(for_loop(ir, zero, mc_cur, self.plan.mr, false, ir_body));
        insts.push(for_loop(jr, zero, nc_cur, self.plan.nr, par, jr_body));
        Ok(insts)
    }

    /// The micro-kernel's A operand: the packed buffer from `panel` on (its panels are the
    /// kernel's m-tiles, read through `mt`), else the input from row `i` and column `pc`.
    fn a_operand(
        &self,
        fl: &mut FnLowerer,
        packed: Option<(BufferId, ValueId)>,
        a_buf: BufferId,
        i: ValueId,
        pc: ValueId,
    ) -> Result<TileOperand, LowerError> {
        Ok(match packed {
            Some((ap, panel)) => {
                let zero = fl.index_const(0);
                TileOperand {
                    buffer: ap,
                    start: vec![panel, zero, zero],
                    axes: vec![
                        (Coord::M, vec![2]),
                        (Coord::K, vec![1]),
                        (Coord::MTile, vec![0]),
                    ],
                }
            }
            None => TileOperand {
                buffer: a_buf,
                start: self.operand_index(
                    fl,
                    self.plan.a,
                    &[(self.plan.m, i), (self.plan.k, pc)],
                )?,
                axes: vec![
                    (Coord::M, self.axes(self.plan.a, self.plan.m)),
                    (Coord::K, self.axes(self.plan.a, self.plan.k)),
                ],
            },
        })
    }

    /// `first ? t : C[at] + t`, reading C only when it is not the first block: a loop that
    /// runs once unless `first` carries the sum.
    fn accumulate(
        &self,
        fl: &mut FnLowerer,
        block: &mut Vec<Inst>,
        first: ValueId,
        t: ValueId,
        at: Vec<ValueId>,
    ) -> Result<ValueId, LowerError> {
        let dtype = self.g.dtype;
        let zero = fl.index_const(0);
        let one = fl.index_const(1);
        // runs = first ? 0 : 1
        let runs = fl.assign(block, "runs", Op::Select(first, zero, one), Type::Index);
        let x = fl.named_value("once", Type::Index);
        let arg = fl.new_value("acc", Type::Scalar(dtype));
        let result = fl.new_value("sum", Type::Scalar(dtype));
        let mut body = Vec::new();
        let c = fl.assign(
            &mut body,
            "c",
            Op::Load {
                buffer: self.out,
                index: at,
                lanes: 1,
            },
            Type::Scalar(dtype),
        );
        let next = fl.assign(
            &mut body,
            "v",
            Op::Binary(crate::ir::loops::BinaryFn::Add, c, arg),
            Type::Scalar(dtype),
        );
        block.push(Inst::For(Box::new(For {
            var: x,
            lower: zero,
            upper: runs,
            step: 1,
            parallel: false,
            unroll: None,
            carried: vec![Carried {
                arg,
                init: t,
                result,
            }],
            body: loops::Block { insts: body },
            yields: vec![next],
        })));
        Ok(result)
    }

    /// Packs A's block (`mc' x kc'` from `(ic, pc)`) into `ap`: panel `q` holds rows
    /// `ic + q mr ..` as `ap[q, kk, ii]` (rows past M are never read, so they are not
    /// written).
    fn pack_a(
        &self,
        fl: &mut FnLowerer,
        ap: BufferId,
        a_buf: BufferId,
        ic: ValueId,
        mc_cur: ValueId,
        block: Block,
    ) -> Result<Vec<Inst>, LowerError> {
        let (pc, kc_cur) = (block.pc, block.kc);
        let zero = fl.index_const(0);
        let mr = fl.index_const(int(self.plan.mr));
        let dtype = self.g.dtype;
        let q = fl.named_value("ip", Type::Index);
        let ii = fl.named_value("ii", Type::Index);
        let kk = fl.named_value("kk", Type::Index);
        let mut q_body = Vec::new();
        let left = fl.assign(
            &mut q_body,
            "mleft",
            Op::IndexArith(IndexOp::Sub, mc_cur, q),
            Type::Index,
        );
        let rows = fl.assign(
            &mut q_body,
            "rows",
            Op::IndexArith(IndexOp::Min, mr, left),
            Type::Index,
        );
        let panel = fl.assign(
            &mut q_body,
            "panel",
            Op::IndexArith(IndexOp::Div, q, mr),
            Type::Index,
        );
        let mut ii_body = Vec::new();
        let row = fl.assign(
            &mut ii_body,
            "i",
            Op::IndexArith(IndexOp::Add, ic, q),
            Type::Index,
        );
        let i = fl.assign(
            &mut ii_body,
            "i",
            Op::IndexArith(IndexOp::Add, row, ii),
            Type::Index,
        );
        let mut kk_body = Vec::new();
        let k = fl.assign(
            &mut kk_body,
            "k",
            Op::IndexArith(IndexOp::Add, pc, kk),
            Type::Index,
        );
        let index = self.operand_index(fl, self.plan.a, &[(self.plan.m, i), (self.plan.k, k)])?;
        let v = fl.assign(
            &mut kk_body,
            "ld",
            Op::Load {
                buffer: a_buf,
                index,
                lanes: 1,
            },
            Type::Scalar(dtype),
        );
        kk_body.push(Inst::Store {
            buffer: ap,
            index: vec![panel, kk, ii],
            value: v,
        });
        ii_body.push(for_loop(kk, zero, kc_cur, 1, false, kk_body));
        q_body.push(for_loop(ii, zero, rows, 1, false, ii_body));
        Ok(vec![for_loop(q, zero, mc_cur, self.plan.mr, false, q_body)])
    }

    /// The index of the bias (per axis `map`) where the GEMM's M index is `i` and N index `j`.
    fn bias_index(
        &self,
        fl: &mut FnLowerer,
        map: &[AxisMap],
        i: ValueId,
        j: ValueId,
    ) -> Result<Vec<ValueId>, LowerError> {
        map.iter()
            .map(|a| match *a {
                AxisMap::Index(o) if o == self.plan.m => Ok(i),
                AxisMap::Index(o) if o == self.plan.n => Ok(j),
                AxisMap::Index(o) => self
                    .at
                    .get(o.0 as usize)
                    .copied()
                    .ok_or_else(|| fl.error("the bias reads an index out of range")),
                AxisMap::Fixed(p) => fl.index_const_u64(p),
            })
            .collect()
    }

    /// The bias of the tile at `(i, j)` as a micro-kernel operand: along M where it reads the
    /// M index, else along N (an empty axis list when it reads neither: one element).
    fn bias_operand(
        &self,
        fl: &mut FnLowerer,
        buffer: BufferId,
        map: &[AxisMap],
        i: ValueId,
        j: ValueId,
    ) -> Result<TileOperand, LowerError> {
        let axes_of = |x: IndexId| -> Vec<u32> {
            (0..map.len())
                .filter(|&n| map[n] == AxisMap::Index(x))
                .map(|n| n as u32)
                .collect()
        };
        let along_m = axes_of(self.plan.m);
        let axes = if along_m.is_empty() {
            vec![(Coord::N, axes_of(self.plan.n))]
        } else {
            vec![(Coord::M, along_m)]
        };
        Ok(TileOperand {
            buffer,
            start: self.bias_index(fl, map, i, j)?,
            axes,
        })
    }

    /// The epilogue's steps applied to element `v` of C at `(i, j)`, in order: the factor, the
    /// bias, `relu`, the cast.
    fn finish(
        &self,
        fl: &mut FnLowerer,
        block: &mut Vec<Inst>,
        e: &EpilogueOps,
        v: ValueId,
        i: ValueId,
        j: ValueId,
    ) -> Result<ValueId, LowerError> {
        use crate::ir::loops::BinaryFn;
        let ty = Type::Scalar(self.g.dtype);
        let mut v = v;
        if let Some((s, divide)) = e.factor {
            let f = if divide { BinaryFn::Div } else { BinaryFn::Mul };
            v = fl.assign(block, "v", Op::Binary(f, v, s), ty);
        }
        if let Some((buffer, map)) = &e.bias {
            let index = self.bias_index(fl, map, i, j)?;
            let load = Op::Load {
                buffer: *buffer,
                index,
                lanes: 1,
            };
            let b = fl.assign(block, "ld", load, ty);
            v = fl.assign(block, "v", Op::Binary(BinaryFn::Add, v, b), ty);
        }
        if e.relu {
            v = fl.assign(block, "v", Op::Unary(UnaryFn::Relu, v), ty);
        }
        if let Some(t) = e.cast {
            v = fl.assign(block, "v", Op::Cast(t, v), Type::Scalar(t));
        }
        Ok(v)
    }
}

/// `insts` in a loop that runs once when `cond` is `holds`, else never.
fn when(fl: &mut FnLowerer, cond: ValueId, holds: bool, insts: Vec<Inst>) -> Vec<Inst> {
    let (zero, one) = (fl.index_const(0), fl.index_const(1));
    let (yes, no) = if holds { (one, zero) } else { (zero, one) };
    let mut out = Vec::new();
    let runs = fl.assign(&mut out, "runs", Op::Select(cond, yes, no), Type::Index);
    let once = fl.named_value("once", Type::Index);
    out.push(for_loop(once, zero, runs, 1, false, insts));
    out
}

impl FnLowerer<'_> {
    /// The function's packed-panel buffer `name` (`Ap` or `Bp`) of `dtype`, with room for
    /// `[panels, kc, tile]`: one temporary per name, dtype and tile width that every GETT nest
    /// of the function shares (they run one after the other), grown to the largest request.
    /// Panels are indexed through the buffer's own extents, so a nest may use a part of it.
    pub(super) fn shared_pack(&mut self, name: &str, dtype: DType, shape: [u64; 3]) -> BufferId {
        let key = (name.to_string(), dtype, shape[2]);
        if let Some(&(_, id)) = self.packs.iter().find(|(k, _)| *k == key) {
            if let Some(def) = self.out.buffers.get_mut(id.0 as usize) {
                for (old, new) in def.shape.iter_mut().zip(shape) {
                    if let Extent::Fixed(n) = old {
                        *n = (*n).max(new);
                    }
                }
            }
            return id;
        }
        let id = self.add_scratch(name, dtype, &shape, BufferKind::Temp);
        self.packs.push((key, id));
        id
    }

    /// A contiguous, 64-byte aligned scratch buffer of fixed extents (a temporary, or a scoped
    /// buffer that the caller declares where it lives).
    pub(super) fn add_scratch(
        &mut self,
        name: &str,
        dtype: einc_runtime::DType,
        shape: &[u64],
        kind: BufferKind,
    ) -> BufferId {
        let def = BufferDef {
            name: self.names.fresh(name),
            dtype,
            shape: shape.iter().map(|&n| Extent::Fixed(n)).collect(),
            layout: Layout::Contiguous,
            kind,
            align: Some(64),
        };
        self.out.add_buffer(def)
    }
}

#[cfg(test)]
mod tests;
