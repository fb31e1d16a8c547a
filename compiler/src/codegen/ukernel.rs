//! Micro-kernels: one register tile of a matrix product, `C (+)= A · B` followed by an
//! epilogue, each a function of its own with the fixed calling convention of
//! `docs/ukernel.md`, so that machine-code kernels (iced-x86, issue #11) can replace these
//! Cranelift-generated ones function for function.
//!
//! The generated kernel `gemm.<dtype>.<MR>x<NR>` keeps the tile in `MR * NR / lanes` 128-bit
//! accumulators. Each step of the k loop loads one row of B (`NR / lanes` vectors at
//! `b + kk * b_ks`) and broadcasts each of the `MR` elements of A's column `kk`, then does one
//! fused multiply-add per accumulator; the loop runs [`UNROLL`] steps per iteration, then the
//! remaining steps one at a time. A row `ii` at or beyond `mr` reads row `mr - 1` of A instead
//! (so A needs no padding), and its products land in accumulators that are never stored. B is
//! read over its full width `NR`.
//!
//! The function is compiled without Cranelift's mid-end optimiser (`opt_level=none`, the rest
//! of the target's settings unchanged): its e-graph treats the loads and multiply-adds as pure
//! and re-places them at their last use, which interleaves the unrolled steps and keeps every
//! step's B vectors live at once (the 4x8 f32 kernel then spilled most accumulators). Built in
//! program order, one step's values die before the next step's are loaded.
//!
//! The epilogue writes a full tile (`mr == MR`, `nr == NR`) straight from the accumulators with
//! vector operations, each optional step one branch per tile; an edge tile, or a bias along `n`
//! whose stride is not 1, goes through a stack copy of the accumulators and a scalar loop over
//! the `mr x nr` elements. Both compute each element as the loop IR's semantics state (the same
//! operations in the same order), so results equal the evaluator's bit for bit.

use super::wide::{dispatch, UkernelIsa, UkernelPlan};
use super::{clif_scalar, declare, CodegenError, Listing};
use crate::ir::loops::UkernelShape;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, FuncRef, InstBuilder, MemFlagsData, Signature, StackSlotData,
    StackSlotKind, Type as ClifType, Value,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use einc_runtime::DType;

/// Byte offsets of the fields of the argument block (`einc_ukernel_args` in
/// `docs/ukernel.md`); every field is 8 bytes.
pub mod args {
    /// `int64_t kc`: steps of the k loop (a negative value counts as 0).
    pub const KC: i32 = 0;
    /// `int64_t mr`: rows of the tile, `>= 0` (0 writes nothing; more than `MR` are done as
    /// `ceil(mr / MR)` register tiles, see [`A_TS`]).
    pub const MR: i32 = 8;
    /// `int64_t nr`: columns of the tile, `0 ..= NR` (0 writes nothing).
    pub const NR: i32 = 16;
    /// `const T *a`: element `A(0, 0)`.
    pub const A: i32 = 24;
    /// `int64_t a_ms`: element stride of A along m.
    pub const A_MS: i32 = 32;
    /// `int64_t a_ks`: element stride of A along k.
    pub const A_KS: i32 = 40;
    /// `const T *b`: element `B(0, 0)`; B's n stride is 1.
    pub const B: i32 = 48;
    /// `int64_t b_ks`: element stride of B along k.
    pub const B_KS: i32 = 56;
    /// `T *c`: element `C(0, 0)`; C's n stride is 1.
    pub const C: i32 = 64;
    /// `int64_t c_ms`: element stride of C along m.
    pub const C_MS: i32 = 72;
    /// `const T *bias`: element 0 of the bias (read only with [`super::flags::BIAS`]).
    pub const BIAS: i32 = 80;
    /// `int64_t bias_s`: element stride of the bias.
    pub const BIAS_S: i32 = 88;
    /// `T scale` in the low bytes of an 8-byte field (read only with [`super::flags::SCALE`] or
    /// [`super::flags::DIVIDE`]).
    pub const SCALE: i32 = 96;
    /// `int64_t flags`: a combination of [`super::flags`].
    pub const FLAGS: i32 = 104;
    /// `int64_t a_ts`: element stride of A from one m-tile (`MR` rows) to the next; read only
    /// when `mr > MR`. Row `ii` of A is `a + (ii / MR) * a_ts + (ii % MR) * a_ms`; C's and an
    /// m-bias's rows advance by `MR` rows per m-tile.
    pub const A_TS: i32 = 112;
    /// The size of the block in bytes.
    pub const SIZE: u32 = 120;
}

/// Bits of the `flags` field.
pub mod flags {
    /// Overwrite C with the product (else add the product to C).
    pub const INIT: i64 = 1;
    /// Multiply by `scale`.
    pub const SCALE: i64 = 2;
    /// Add the bias.
    pub const BIAS: i64 = 4;
    /// The bias is indexed by the row (else by the column).
    pub const BIAS_M: i64 = 8;
    /// Replace negative results by 0.
    pub const RELU: i64 = 16;
    /// Divide by `scale` (instead of [`SCALE`]'s multiplication).
    pub const DIVIDE: i64 = 32;
}

/// The argument block as a Rust type, for callers outside generated code (benchmarks, tests of
/// replacement kernels); its layout is the one [`args`] gives.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UkernelArgs {
    /// Steps of the k loop.
    pub kc: i64,
    /// Rows of the tile.
    pub mr: i64,
    /// Columns of the tile.
    pub nr: i64,
    /// `A(0, 0)`.
    pub a: *const u8,
    /// A's element stride along m.
    pub a_ms: i64,
    /// A's element stride along k.
    pub a_ks: i64,
    /// `B(0, 0)`.
    pub b: *const u8,
    /// B's element stride along k.
    pub b_ks: i64,
    /// `C(0, 0)`.
    pub c: *mut u8,
    /// C's element stride along m.
    pub c_ms: i64,
    /// Element 0 of the bias.
    pub bias: *const u8,
    /// The bias's element stride.
    pub bias_s: i64,
    /// The scale's bits (an `f32` in the low 32 bits, or an `f64`).
    pub scale: u64,
    /// A combination of [`flags`].
    pub flags: i64,
    /// A's element stride from one m-tile to the next.
    pub a_ts: i64,
}

/// A micro-kernel's function: `void k(const einc_ukernel_args *)`.
pub type UkernelFn = unsafe extern "C" fn(*const UkernelArgs);

/// Steps of the k loop per iteration of its main loop (a power of two).
pub const UNROLL: i64 = 4;

/// The symbol of a micro-kernel: `einc_ukernel_gemm_f32_4x8`.
pub fn symbol(shape: UkernelShape) -> String {
    format!("einc_ukernel_{}", shape.name().replace('.', "_"))
}

/// The signature of every micro-kernel: `void k(const einc_ukernel_args *args)` in the
/// platform's C calling convention.
pub fn signature<M: Module>(module: &M) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig
}

/// The micro-kernels one Cranelift module calls: declared at their first call, defined once at
/// the end ([`Ukernels::define_all`]).
#[derive(Default)]
pub(crate) struct Ukernels {
    ids: Vec<(UkernelShape, FuncId)>,
    refs: Vec<(UkernelShape, FuncRef)>,
}

impl Ukernels {
    /// Forgets the imports of the previous function; call before building a new one.
    pub(crate) fn begin_function(&mut self) {
        self.refs.clear();
    }

    /// The micro-kernel `shape`, imported into the function being built.
    pub(crate) fn func_ref<M: Module>(
        &mut self,
        module: &mut M,
        fb: &mut FunctionBuilder,
        shape: UkernelShape,
    ) -> Result<FuncRef, CodegenError> {
        if let Some((_, r)) = self.refs.iter().find(|(s, _)| *s == shape) {
            return Ok(*r);
        }
        let id = match self.ids.iter().find(|(s, _)| *s == shape) {
            Some((_, id)) => *id,
            None => {
                let id = declare(module, &symbol(shape), Linkage::Local, signature(module))?;
                self.ids.push((shape, id));
                id
            }
        };
        let r = module.declare_func_in_func(id, fb.func);
        self.refs.push((shape, r));
        Ok(r)
    }

    /// Defines every micro-kernel that was called: as `plan.isa`'s machine code where it
    /// covers the shape (behind a CPU dispatch beside Cranelift's kernel with
    /// `plan.dispatch`), else as a Cranelift function.
    pub(crate) fn define_all<M: Module>(
        &self,
        module: &mut M,
        ctx: &mut Context,
        fctx: &mut FunctionBuilderContext,
        mut listing: Listing<'_>,
        plan: UkernelPlan,
    ) -> Result<(), CodegenError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let isa = unoptimised(module.isa())?;
        let mut define_cranelift =
            |module: &mut M, id: FuncId, name: &str, shape, listing: Listing<'_>| {
                build(module, ctx, fctx, shape)?;
                super::finish_with(module, Some(&*isa), ctx, id, name, listing)
            };
        let mut level = None;
        for &(shape, id) in &self.ids {
            let name = symbol(shape);
            if !plan.isa.covers(shape) {
                define_cranelift(module, id, &name, shape, listing.reborrow())?;
            } else if !plan.dispatch {
                define_wide(module, plan.isa, shape, (id, &name), listing.reborrow())?;
            } else {
                let wide_name = format!("{name}.{}", plan.isa);
                let base_name = format!("{name}.cranelift");
                let wide = declare(module, &wide_name, Linkage::Local, signature(module))?;
                let base = declare(module, &base_name, Linkage::Local, signature(module))?;
                define_wide(
                    module,
                    plan.isa,
                    shape,
                    (wide, &wide_name),
                    listing.reborrow(),
                )?;
                define_cranelift(module, base, &base_name, shape, listing.reborrow())?;
                let level = match level {
                    Some(level) => level,
                    None => *level.insert(dispatch::CpuLevel::define(module, listing.reborrow())?),
                };
                let mut ctx = module.make_context();
                dispatch::define(
                    module,
                    &mut ctx,
                    &mut FunctionBuilderContext::new(),
                    (id, &name),
                    (wide, plan.isa.cpu_level()),
                    base,
                    level,
                    listing.reborrow(),
                )?;
            }
        }
        Ok(())
    }
}

/// Defines micro-kernel `shape` as `wide`'s machine code for `id` (named `name`), recording
/// it in `listing`.
fn define_wide<M: Module>(
    module: &mut M,
    wide: UkernelIsa,
    shape: UkernelShape,
    (id, name): (FuncId, &str),
    listing: Listing<'_>,
) -> Result<(), CodegenError> {
    let code = super::wide::assemble(wide, shape)?;
    module
        .define_function_bytes(id, 64, &code.bytes, &[])
        .map_err(|e| CodegenError::Cranelift {
            function: name.into(),
            message: format!("{e:?}"),
        })?;
    let head = format!(
        "; {name} ({wide} machine code, {} bytes)\n",
        code.bytes.len()
    );
    match listing {
        Listing::None => {}
        Listing::Clif(text) => text.push_str(&format!("{head}; (generated without CLIF)\n\n")),
        Listing::Asm(text) => {
            text.push_str(&head);
            text.push_str(&super::wide::disassemble(&code));
            text.push('\n');
        }
    }
    Ok(())
}

/// The target `isa` with the mid-end optimiser off.
fn unoptimised(isa: &dyn TargetIsa) -> Result<OwnedTargetIsa, CodegenError> {
    super::isa::with_settings(isa, &[("opt_level", "none")])
}

/// Builds micro-kernel `shape` into `ctx.func`.
pub(crate) fn build<M: Module>(
    module: &M,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    shape: UkernelShape,
) -> Result<(), CodegenError> {
    let bad = |m: &str| CodegenError::Unsupported {
        kernel: symbol(shape),
        message: m.into(),
    };
    if !shape.dtype.is_float() || shape.mr == 0 || shape.nr == 0 {
        return Err(bad(
            "a micro-kernel needs a float dtype and a non-empty tile",
        ));
    }
    let lanes = shape.lanes();
    if !shape.nr.is_multiple_of(lanes) {
        return Err(bad("the tile width is not a multiple of the vector lanes"));
    }
    ctx.func.signature = signature(module);
    let elem = clif_scalar(shape.dtype);
    let mut fb = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let p = fb.block_params(entry)[0];
    let mut k = Kernel {
        fb,
        p,
        elem,
        vec: elem.by(lanes).ok_or_else(|| bad("no vector type"))?,
        rows: shape.mr as usize,
        nv: (shape.nr / lanes) as usize,
        lanes: lanes as usize,
        shift: i64::from(shape.dtype.size_bytes().trailing_zeros()),
        size: shape.dtype.size_bytes() as i64,
        f64: shape.dtype == DType::F64,
        tile_c: p,
        tile_bias: p,
    };
    k.body(shape);
    k.fb.seal_all_blocks();
    k.fb.finalize(module.target_config());
    Ok(())
}

/// The state of building one micro-kernel.
struct Kernel<'a> {
    fb: FunctionBuilder<'a>,
    /// The argument block.
    p: Value,
    elem: ClifType,
    vec: ClifType,
    /// `MR`.
    rows: usize,
    /// Vectors per row: `NR / lanes`.
    nv: usize,
    lanes: usize,
    /// log2 of the element size.
    shift: i64,
    size: i64,
    f64: bool,
    /// The current m-tile's `C(0, 0)` and bias element 0.
    tile_c: Value,
    tile_bias: Value,
}

/// The operands of the k loop that stay fixed across its steps.
struct Panels {
    /// Bytes from A's row 0 to row `ii` (clamped to `mr - 1`), for `ii < MR`.
    row_offsets: Vec<Value>,
    /// Bytes between consecutive columns of A and rows of B.
    a_step: Value,
    b_step: Value,
}

impl Kernel<'_> {
    /// A field of the argument block (valid and never written while the kernel runs).
    fn field(&mut self, ty: ClifType, offset: i32) -> Value {
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        self.fb.ins().load(ty, flags, self.p, offset)
    }

    /// The function body: for each m-tile of `MR` rows (the last one `mr % MR` rows, if
    /// that is not 0), the k loop, then the epilogue.
    fn body(&mut self, shape: UkernelShape) {
        let kc = self.field(types::I64, args::KC);
        let mr = self.field(types::I64, args::MR);
        let nr = self.field(types::I64, args::NR);
        let done = self.fb.create_block();
        let go = self.fb.create_block();
        let no_rows = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::SignedLessThanOrEqual, mr, 0);
        let no_cols = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::SignedLessThanOrEqual, nr, 0);
        let empty = self.fb.ins().bor(no_rows, no_cols);
        self.fb.ins().brif(empty, done, &[], go, &[]);
        self.fb.switch_to_block(go);

        // Per m-tile, A advances by `a_ts`, C by `MR` rows, an m-bias by `MR` elements.
        let a = self.field(types::I64, args::A);
        let c = self.field(types::I64, args::C);
        let bias = self.field(types::I64, args::BIAS);
        let big_mr = i64::from(shape.mr);
        let a_ts = self.field(types::I64, args::A_TS);
        let a_tile = self.fb.ins().ishl_imm_s(a_ts, self.shift);
        let c_ms = self.field(types::I64, args::C_MS);
        let c_tile = self.fb.ins().imul_imm_s(c_ms, big_mr << self.shift);
        let flags = self.field(types::I64, args::FLAGS);
        let along_m = self.flag(flags, flags::BIAS_M);
        let bias_s = self.field(types::I64, args::BIAS_S);
        let bias_rows = self.fb.ins().imul_imm_s(bias_s, big_mr << self.shift);
        let zero = self.fb.ins().iconst(types::I64, 0);
        let bias_tile = self.fb.ins().select(along_m, bias_rows, zero);
        let tile = self.fb.create_block();
        for _ in 0..4 {
            self.fb.append_block_param(tile, types::I64);
        }
        self.fb.ins().jump(tile, &args_of(&[&[a, c, bias, mr]]));

        self.fb.switch_to_block(tile);
        let params = self.fb.block_params(tile).to_vec();
        let (a, left) = (params[0], params[3]);
        (self.tile_c, self.tile_bias) = (params[1], params[2]);
        let rows = self.fb.ins().iconst(types::I64, big_mr);
        let mr = self.fb.ins().smin(left, rows);
        let next = self.fb.create_block();
        self.tile(shape, kc, mr, nr, a, next);

        self.fb.switch_to_block(next);
        let left = self.fb.ins().iadd_imm_s(left, -big_mr);
        let a = self.fb.ins().iadd(a, a_tile);
        let c = self.fb.ins().iadd(self.tile_c, c_tile);
        let bias = self.fb.ins().iadd(self.tile_bias, bias_tile);
        let more = self.fb.ins().icmp_imm_s(IntCC::SignedGreaterThan, left, 0);
        self.fb
            .ins()
            .brif(more, tile, &args_of(&[&[a, c, bias, left]]), done, &[]);

        self.fb.switch_to_block(done);
        self.fb.ins().return_(&[]);
    }

    /// One m-tile of `mr <= MR` rows whose A starts at `a` (C and the bias at
    /// `tile_c`/`tile_bias`): the k loop, then the epilogue; then jumps to `next`.
    fn tile(
        &mut self,
        shape: UkernelShape,
        kc: Value,
        mr: Value,
        nr: Value,
        a: Value,
        next: Block,
    ) {
        let a_ms = self.field(types::I64, args::A_MS);
        let a_ks = self.field(types::I64, args::A_KS);
        let b = self.field(types::I64, args::B);
        let b_ks = self.field(types::I64, args::B_KS);
        let a_ms_elems = a_ms;
        let a_ms = self.fb.ins().ishl_imm_s(a_ms, self.shift);
        let a_step = self.fb.ins().ishl_imm_s(a_ks, self.shift);
        let b_step = self.fb.ins().ishl_imm_s(b_ks, self.shift);
        let last = self.fb.ins().iadd_imm_s(mr, -1);
        let mut row_offsets = Vec::with_capacity(self.rows);
        for ii in 0..self.rows {
            let row = self.fb.ins().iconst(types::I64, ii as i64);
            let row = self.fb.ins().smin(row, last);
            row_offsets.push(self.fb.ins().imul(row, a_ms));
        }
        let panels = Panels {
            row_offsets,
            a_step,
            b_step,
        };
        let zero = self.fb.ins().iconst(types::I64, 0);
        let kc = self.fb.ins().smax(kc, zero);
        let iterations = self.fb.ins().sshr_imm_s(kc, UNROLL.trailing_zeros() as i64);
        let tail_steps = self.fb.ins().band_imm_s(kc, UNROLL - 1);
        let zero = self.splat_const(0.0);
        let accs = vec![zero; self.rows * self.nv];

        // Packed panels (A: `a_ms = 1`, `a_ks = MR`; B: `b_ks = NR`) in a full-height tile
        // address every element at a constant offset from two pointers: fewer instructions
        // per step than the general strides, which need a register per row.
        let full_rows = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::Equal, mr, i64::from(shape.mr));
        let unit_m = self.fb.ins().icmp_imm_s(IntCC::Equal, a_ms_elems, 1);
        let packed_a = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::Equal, a_ks, i64::from(shape.mr));
        let packed_b = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::Equal, b_ks, i64::from(shape.nr));
        let packed = self.fb.ins().band(full_rows, unit_m);
        let packed = self.fb.ins().band(packed, packed_a);
        let packed = self.fb.ins().band(packed, packed_b);
        let packed_entry = self.fb.create_block();
        let strided_entry = self.fb.create_block();
        let join = self.fb.create_block();
        for _ in 0..2 {
            self.fb.append_block_param(join, types::I64);
        }
        for _ in 0..accs.len() {
            self.fb.append_block_param(join, self.vec);
        }
        self.fb
            .ins()
            .brif(packed, packed_entry, &[], strided_entry, &[]);

        self.fb.switch_to_block(packed_entry);
        let out = self.k_loop(a, b, iterations, &accs, |k, pa, pb, accs| {
            for s in 0..UNROLL as usize {
                k.packed_step(pa, pb, s, accs);
            }
            let a_bytes = UNROLL * i64::from(shape.mr) * k.size;
            let b_bytes = UNROLL * i64::from(shape.nr) * k.size;
            let pa = k.fb.ins().iadd_imm_s(pa, a_bytes);
            let pb = k.fb.ins().iadd_imm_s(pb, b_bytes);
            (pa, pb)
        });
        self.fb.ins().jump(join, &args_of(&[&out]));

        self.fb.switch_to_block(strided_entry);
        let out = self.k_loop(a, b, iterations, &accs, |k, mut pa, mut pb, accs| {
            for _ in 0..UNROLL {
                (pa, pb) = k.step(&panels, pa, pb, accs);
            }
            (pa, pb)
        });
        self.fb.ins().jump(join, &args_of(&[&out]));

        // The last `kc % UNROLL` steps, one at a time.
        self.fb.switch_to_block(join);
        let joined = self.fb.block_params(join).to_vec();
        let out = self.k_loop(
            joined[0],
            joined[1],
            tail_steps,
            &joined[2..],
            |k, pa, pb, accs| k.step(&panels, pa, pb, accs),
        );
        self.epilogue(shape, mr, nr, &out[2..], next);
    }

    /// A counted loop over the k steps: `n` iterations (none when `n <= 0`) of `body`, which
    /// emits its steps from the pointers `(pa, pb)` into the accumulators and returns the next
    /// pointers. Returns `[pa, pb, accs...]` after the loop, in the block the caller continues
    /// in.
    ///
    /// The loop is a header deciding whether to run the body, which jumps back with the next
    /// values: then every multiply-add result has one use (the jump), which lets the loads of
    /// A sink into their broadcasts (Cranelift never sinks a load feeding a value that is used
    /// twice, as by a conditional branch passing it to both of its targets). The header
    /// branches to the exit when done, so that the body follows it in the code and an
    /// iteration takes one branch.
    fn k_loop(
        &mut self,
        pa: Value,
        pb: Value,
        n: Value,
        accs: &[Value],
        body: impl FnOnce(&mut Self, Value, Value, &mut [Value]) -> (Value, Value),
    ) -> Vec<Value> {
        let head = self.fb.create_block();
        let run = self.fb.create_block();
        let exit = self.fb.create_block();
        for _ in 0..3 {
            self.fb.append_block_param(head, types::I64);
        }
        for _ in accs {
            self.fb.append_block_param(head, self.vec);
        }
        self.fb.ins().jump(head, &args_of(&[&[pa, pb, n], accs]));

        self.fb.switch_to_block(head);
        let params = self.fb.block_params(head).to_vec();
        let finished = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::SignedLessThanOrEqual, params[2], 0);
        self.fb.ins().brif(finished, exit, &[], run, &[]);

        self.fb.switch_to_block(run);
        let mut next = params[3..].to_vec();
        let (pa, pb) = body(self, params[0], params[1], &mut next);
        let n = self.fb.ins().iadd_imm_s(params[2], -1);
        self.fb.ins().jump(head, &args_of(&[&[pa, pb, n], &next]));

        self.fb.switch_to_block(exit);
        let mut out = vec![params[0], params[1]];
        out.extend_from_slice(&params[3..]);
        out
    }

    /// Step `s` of an unrolled iteration over packed panels: A's column at `pa + s * MR` and
    /// B's row at `pb + s * NR` (in elements), every address a constant offset.
    fn packed_step(&mut self, pa: Value, pb: Value, s: usize, accs: &mut [Value]) {
        let ro = MemFlagsData::new()
            .with_notrap()
            .with_readonly()
            .with_can_move();
        let size = self.size as usize;
        let width = self.nv * self.lanes;
        let bv: Vec<Value> = (0..self.nv)
            .map(|v| {
                let off = ((s * width + v * self.lanes) * size) as i32;
                self.fb.ins().load(self.vec, ro, pb, off)
            })
            .collect();
        for ii in 0..self.rows {
            let off = ((s * self.rows + ii) * size) as i32;
            for (v, b) in bv.iter().enumerate() {
                let x = self.fb.ins().load(self.elem, ro, pa, off);
                let x = self.fb.ins().splat(self.vec, x);
                let acc = &mut accs[ii * self.nv + v];
                *acc = self.fb.ins().fma(x, *b, *acc);
            }
        }
    }

    /// One step of the k loop: `acc[ii][v] += A(ii, kk) * B(kk, v)`; returns the pointers to the
    /// next column of A and row of B.
    fn step(
        &mut self,
        panels: &Panels,
        pa: Value,
        pb: Value,
        accs: &mut [Value],
    ) -> (Value, Value) {
        // A and B are never written while the kernel runs (C is another buffer).
        let ro = MemFlagsData::new()
            .with_notrap()
            .with_readonly()
            .with_can_move();
        let bv: Vec<Value> = (0..self.nv)
            .map(|v| self.fb.ins().load(self.vec, ro, pb, (v * 16) as i32))
            .collect();
        for ii in 0..self.rows {
            let addr = if ii == 0 {
                pa
            } else {
                self.fb.ins().iadd(pa, panels.row_offsets[ii])
            };
            for (v, b) in bv.iter().enumerate() {
                // One load and splat per use: a splat used once lets its load sink into it
                // (`vbroadcastss` from memory, which needs no shuffle unit), and the splat's
                // register becomes the multiply-add's result without a copy.
                let x = self.fb.ins().load(self.elem, ro, addr, 0);
                let s = self.fb.ins().splat(self.vec, x);
                let acc = &mut accs[ii * self.nv + v];
                *acc = self.fb.ins().fma(s, *b, *acc);
            }
        }
        let pa = self.fb.ins().iadd(pa, panels.a_step);
        let pb = self.fb.ins().iadd(pb, panels.b_step);
        (pa, pb)
    }

    fn splat_const(&mut self, x: f64) -> Value {
        let s = if self.f64 {
            self.fb.ins().f64const(x)
        } else {
            self.fb.ins().f32const(x as f32)
        };
        self.fb.ins().splat(self.vec, s)
    }

    fn scalar_const(&mut self, x: f64) -> Value {
        if self.f64 {
            self.fb.ins().f64const(x)
        } else {
            self.fb.ins().f32const(x as f32)
        }
    }

    /// `max(v, 0)` as numpy's `maximum` (`-0.0` gives `0.0`, NaN stays NaN).
    fn relu(&mut self, v: Value, zero: Value) -> Value {
        self.fb.ins().fmax(v, zero)
    }

    /// An `i8` that holds when `bit` is set in `flags`.
    fn flag(&mut self, flags: Value, bit: i64) -> Value {
        let b = self.fb.ins().band_imm_s(flags, bit);
        self.fb.ins().icmp_imm_s(IntCC::NotEqual, b, 0)
    }

    /// Writes the tile: the vector path for a full tile, else the scalar path; then jumps to
    /// `done`.
    fn epilogue(&mut self, shape: UkernelShape, mr: Value, nr: Value, accs: &[Value], done: Block) {
        let flags = self.field(types::I64, args::FLAGS);
        let bias_s = self.field(types::I64, args::BIAS_S);
        let full_m = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::Equal, mr, i64::from(shape.mr));
        let full_n = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::Equal, nr, i64::from(shape.nr));
        let full = self.fb.ins().band(full_m, full_n);
        let bias = self.flag(flags, flags::BIAS);
        let along_m = self.flag(flags, flags::BIAS_M);
        let along_n = self.fb.ins().bxor_imm_s(along_m, 1);
        let not_unit = self.fb.ins().icmp_imm_s(IntCC::NotEqual, bias_s, 1);
        let gather = self.fb.ins().band(bias, along_n);
        let gather = self.fb.ins().band(gather, not_unit);
        let no_gather = self.fb.ins().bxor_imm_s(gather, 1);
        let fast = self.fb.ins().band(full, no_gather);
        let vector = self.fb.create_block();
        let scalar = self.fb.create_block();
        self.fb.ins().brif(fast, vector, &[], scalar, &[]);

        self.fb.switch_to_block(vector);
        self.vector_epilogue(flags, accs);
        self.fb.ins().jump(done, &[]);

        self.fb.switch_to_block(scalar);
        self.scalar_epilogue(flags, mr, nr, accs, done);
    }

    /// Runs `then` on the accumulators when `cond` holds; returns the accumulators after it.
    fn stage(
        &mut self,
        cond: Value,
        accs: &[Value],
        then: impl FnOnce(&mut Self, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let body = self.fb.create_block();
        let join = self.fb.create_block();
        for _ in accs {
            self.fb.append_block_param(join, self.vec);
        }
        let skip = args_of(&[accs]);
        self.fb.ins().brif(cond, body, &[], join, &skip);
        self.fb.switch_to_block(body);
        let new = then(self, accs);
        self.fb.ins().jump(join, &args_of(&[&new]));
        self.fb.switch_to_block(join);
        self.fb.block_params(join).to_vec()
    }

    /// The full-tile epilogue from the accumulators: `+ C` unless `init`, `* scale` or
    /// `/ scale`, `+ bias`, `max(·, 0)`, then the stores.
    fn vector_epilogue(&mut self, flags: Value, accs: &[Value]) {
        let c = self.tile_c;
        let c_ms = self.field(types::I64, args::C_MS);
        let c_step = self.fb.ins().ishl_imm_s(c_ms, self.shift);
        let rw = MemFlagsData::new().with_notrap();
        let ro = MemFlagsData::new().with_notrap().with_readonly();
        let mut rows = Vec::with_capacity(self.rows);
        for ii in 0..self.rows {
            let off = self.fb.ins().imul_imm_s(c_step, ii as i64);
            rows.push(self.fb.ins().iadd(c, off));
        }
        let nv = self.nv;
        let vec = self.vec;
        let accumulate = self.flag(flags, flags::INIT);
        let accumulate = self.fb.ins().bxor_imm_s(accumulate, 1);
        let accs = self.stage(accumulate, accs, |k, accs| {
            let mut out = accs.to_vec();
            for (ii, row) in rows.iter().enumerate() {
                for v in 0..nv {
                    let old = k.fb.ins().load(vec, rw, *row, (v * 16) as i32);
                    let acc = &mut out[ii * nv + v];
                    *acc = k.fb.ins().fadd(old, *acc);
                }
            }
            out
        });
        let scale = self.flag(flags, flags::SCALE);
        let accs = self.stage(scale, &accs, |k, accs| {
            let s = k.field(k.elem, args::SCALE);
            let s = k.fb.ins().splat(vec, s);
            accs.iter().map(|a| k.fb.ins().fmul(*a, s)).collect()
        });
        let divide = self.flag(flags, flags::DIVIDE);
        let accs = self.stage(divide, &accs, |k, accs| {
            let s = k.field(k.elem, args::SCALE);
            let s = k.fb.ins().splat(vec, s);
            accs.iter().map(|a| k.fb.ins().fdiv(*a, s)).collect()
        });
        let bias = self.flag(flags, flags::BIAS);
        let accs = self.stage(bias, &accs, |k, accs| {
            let base = k.tile_bias;
            let along_m = k.flag(flags, flags::BIAS_M);
            let by_row = k.fb.create_block();
            let by_col = k.fb.create_block();
            let join = k.fb.create_block();
            for _ in accs {
                k.fb.append_block_param(join, vec);
            }
            k.fb.ins().brif(along_m, by_row, &[], by_col, &[]);

            k.fb.switch_to_block(by_row);
            let s = k.field(types::I64, args::BIAS_S);
            let step = k.fb.ins().ishl_imm_s(s, k.shift);
            let mut out = accs.to_vec();
            for ii in 0..k.rows {
                let off = k.fb.ins().imul_imm_s(step, ii as i64);
                let addr = k.fb.ins().iadd(base, off);
                let x = k.fb.ins().load(k.elem, ro, addr, 0);
                let x = k.fb.ins().splat(vec, x);
                for v in 0..nv {
                    let acc = &mut out[ii * nv + v];
                    *acc = k.fb.ins().fadd(*acc, x);
                }
            }
            k.fb.ins().jump(join, &args_of(&[&out]));

            // Along n with a unit stride (a strided one takes the scalar path).
            k.fb.switch_to_block(by_col);
            let cols: Vec<Value> = (0..nv)
                .map(|v| k.fb.ins().load(vec, ro, base, (v * 16) as i32))
                .collect();
            let mut out = accs.to_vec();
            for ii in 0..k.rows {
                for (v, col) in cols.iter().enumerate() {
                    let acc = &mut out[ii * nv + v];
                    *acc = k.fb.ins().fadd(*acc, *col);
                }
            }
            k.fb.ins().jump(join, &args_of(&[&out]));
            k.fb.switch_to_block(join);
            k.fb.block_params(join).to_vec()
        });
        let relu = self.flag(flags, flags::RELU);
        let accs = self.stage(relu, &accs, |k, accs| {
            let zero = k.splat_const(0.0);
            accs.iter().map(|a| k.relu(*a, zero)).collect()
        });
        for (ii, row) in rows.iter().enumerate() {
            for v in 0..nv {
                self.fb
                    .ins()
                    .store(rw, accs[ii * nv + v], *row, (v * 16) as i32);
            }
        }
    }

    /// The edge-tile epilogue: the accumulators go to a stack tile, then each element
    /// `ii < mr`, `jj < nr` is finished and stored on its own; then jumps to `done`.
    fn scalar_epilogue(&mut self, flags: Value, mr: Value, nr: Value, accs: &[Value], done: Block) {
        let width = self.nv * self.lanes;
        let bytes = (self.rows * width) as u32 * self.size as u32;
        let slot = self.fb.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            bytes,
            4,
        ));
        let tile = self.fb.ins().stack_addr(types::I64, slot, 0);
        let local = MemFlagsData::trusted();
        for (n, acc) in accs.iter().enumerate() {
            self.fb.ins().store(local, *acc, tile, (n * 16) as i32);
        }
        let c = self.tile_c;
        let c_ms = self.field(types::I64, args::C_MS);
        let bias_base = self.tile_bias;
        let bias_s = self.field(types::I64, args::BIAS_S);
        let init = self.flag(flags, flags::INIT);
        let scale = self.flag(flags, flags::SCALE);
        let divide = self.flag(flags, flags::DIVIDE);
        let bias = self.flag(flags, flags::BIAS);
        let along_m = self.flag(flags, flags::BIAS_M);
        let relu = self.flag(flags, flags::RELU);
        let rw = MemFlagsData::new().with_notrap();
        let ro = MemFlagsData::new().with_notrap().with_readonly();

        // for ii in 0..mr { for jj in 0..nr { ... } } as do-while loops (mr, nr >= 1).
        let row = self.fb.create_block();
        let ii = self.fb.append_block_param(row, types::I64);
        let zero = self.fb.ins().iconst(types::I64, 0);
        self.fb.ins().jump(row, &[BlockArg::from(zero)]);
        self.fb.switch_to_block(row);
        let col = self.fb.create_block();
        let jj = self.fb.append_block_param(col, types::I64);
        let zero = self.fb.ins().iconst(types::I64, 0);
        self.fb.ins().jump(col, &[BlockArg::from(zero)]);
        self.fb.switch_to_block(col);

        let at = self.fb.ins().imul_imm_s(ii, width as i64);
        let at = self.fb.ins().iadd(at, jj);
        let at = self.fb.ins().ishl_imm_s(at, self.shift);
        let at = self.fb.ins().iadd(tile, at);
        let t = self.fb.ins().load(self.elem, local, at, 0);
        let off = self.fb.ins().imul(ii, c_ms);
        let off = self.fb.ins().iadd(off, jj);
        let off = self.fb.ins().ishl_imm_s(off, self.shift);
        let addr = self.fb.ins().iadd(c, off);
        let elem = self.elem;
        let accumulate = self.fb.ins().bxor_imm_s(init, 1);
        let v = self.scalar_stage(accumulate, t, |k, v| {
            let old = k.fb.ins().load(elem, rw, addr, 0);
            k.fb.ins().fadd(old, v)
        });
        let v = self.scalar_stage(scale, v, |k, v| {
            let s = k.field(elem, args::SCALE);
            k.fb.ins().fmul(v, s)
        });
        let v = self.scalar_stage(divide, v, |k, v| {
            let s = k.field(elem, args::SCALE);
            k.fb.ins().fdiv(v, s)
        });
        let v = self.scalar_stage(bias, v, |k, v| {
            let idx = k.fb.ins().select(along_m, ii, jj);
            let off = k.fb.ins().imul(idx, bias_s);
            let off = k.fb.ins().ishl_imm_s(off, k.shift);
            let addr = k.fb.ins().iadd(bias_base, off);
            let b = k.fb.ins().load(elem, ro, addr, 0);
            k.fb.ins().fadd(v, b)
        });
        let v = self.scalar_stage(relu, v, |k, v| {
            let zero = k.scalar_const(0.0);
            k.relu(v, zero)
        });
        self.fb.ins().store(rw, v, addr, 0);
        let next_col = self.fb.ins().iadd_imm_s(jj, 1);
        let more = self.fb.ins().icmp(IntCC::SignedLessThan, next_col, nr);
        let next_row = self.fb.create_block();
        self.fb
            .ins()
            .brif(more, col, &[BlockArg::from(next_col)], next_row, &[]);
        self.fb.switch_to_block(next_row);
        let ii1 = self.fb.ins().iadd_imm_s(ii, 1);
        let more = self.fb.ins().icmp(IntCC::SignedLessThan, ii1, mr);
        self.fb
            .ins()
            .brif(more, row, &[BlockArg::from(ii1)], done, &[]);
    }

    /// `cond ? then(v) : v` on one element, with a branch.
    fn scalar_stage(
        &mut self,
        cond: Value,
        v: Value,
        then: impl FnOnce(&mut Self, Value) -> Value,
    ) -> Value {
        let body = self.fb.create_block();
        let join = self.fb.create_block();
        let out = self.fb.append_block_param(join, self.elem);
        self.fb
            .ins()
            .brif(cond, body, &[], join, &[BlockArg::from(v)]);
        self.fb.switch_to_block(body);
        let new = then(self, v);
        self.fb.ins().jump(join, &[BlockArg::from(new)]);
        self.fb.switch_to_block(join);
        out
    }
}

/// Block arguments from lists of values.
fn args_of(parts: &[&[Value]]) -> Vec<BlockArg> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|v| BlockArg::from(*v)))
        .collect()
}

/// One micro-kernel compiled on its own for the host: the function `wide` kernels must be able
/// to replace, callable directly (benchmarks, comparisons).
pub struct JitUkernel {
    module: Option<cranelift_jit::JITModule>,
    entry: UkernelFn,
}

impl JitUkernel {
    /// Compiles Cranelift's micro-kernel `shape` for the host.
    pub fn compile(shape: UkernelShape) -> Result<JitUkernel, CodegenError> {
        JitUkernel::compile_with(shape, UkernelIsa::Cranelift)
    }

    /// Compiles micro-kernel `shape` for the host as `wide`'s machine code where it covers the
    /// shape, else as Cranelift's kernel.
    pub fn compile_with(shape: UkernelShape, wide: UkernelIsa) -> Result<JitUkernel, CodegenError> {
        super::wide::resolve(&super::Target::Host, Some(wide))?;
        let isa = super::isa::build_isa(&super::Target::Host, false)?;
        let builder =
            cranelift_jit::JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        let mut module = cranelift_jit::JITModule::new(builder);
        let sig = signature(&module);
        let id = declare(&mut module, &symbol(shape), Linkage::Local, sig)?;
        if wide.covers(shape) {
            define_wide(
                &mut module,
                wide,
                shape,
                (id, &symbol(shape)),
                Listing::None,
            )?;
        } else {
            let mut ctx = module.make_context();
            let mut fctx = FunctionBuilderContext::new();
            build(&module, &mut ctx, &mut fctx, shape)?;
            let isa = unoptimised(module.isa())?;
            super::finish_with(
                &mut module,
                Some(&*isa),
                &mut ctx,
                id,
                &symbol(shape),
                Listing::None,
            )?;
        }
        module
            .finalize_definitions()
            .map_err(|e| CodegenError::Cranelift {
                function: symbol(shape),
                message: e.to_string(),
            })?;
        let ptr = module.get_finalized_function(id);
        // SAFETY: `ptr` is the finalized code of a function with the CLIF signature `(i64)` in
        // the host's default calling convention, which is `UkernelFn`.
        let entry = unsafe { std::mem::transmute::<*const u8, UkernelFn>(ptr) };
        Ok(JitUkernel {
            module: Some(module),
            entry,
        })
    }

    /// The function. Calling it is sound when the block describes memory the caller owns,
    /// with every element the contract of `docs/ukernel.md` reads and writes in bounds.
    pub fn entry(&self) -> UkernelFn {
        self.entry
    }
}

impl Drop for JitUkernel {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the function pointer handed out by `entry` must not outlive `self`; that
            // is the documented contract of this type.
            unsafe { module.free_memory() };
        }
    }
}
