//! The C ABI entry point of a kernel: `int32_t einc_K(const einc_tensor *args, int64_t nargs)`.
//!
//! It checks the call before touching any argument's data, in this order, returning the first
//! failing rule's [`status`] code:
//! 1. `nargs` is the kernel's argument count and `args` is non-null (`BAD_ARG_COUNT`);
//! 2. for each argument in order: its dtype code (`BAD_DTYPE`), its rank (`BAD_RANK`),
//!    non-null `shape` and `strides` when the rank is positive (`NULL_POINTER`), each extent
//!    non-negative, equal to a fixed extent, and equal to the value its symbolic dim was bound
//!    to by an earlier extent (the first occurrence binds it) (`BAD_SHAPE`); a non-null `data`
//!    unless some extent is 0 (`NULL_POINTER`); an addressed byte range `[lo, hi)` (from the
//!    signed strides) that does not overflow (`BAD_SHAPE`); the stride facts the kernel's
//!    general function declares (a unit stride, or the C-order stride, on each axis longer
//!    than 1) (`BAD_SHAPE`); an extent larger than every fixed position the kernel reads or
//!    writes on that axis in any of its bodies (`A[0, j]` needs at least one row), so no access
//!    can fall outside the argument (`BAD_SHAPE`);
//! 3. no output's byte range intersects another argument's, and no output addresses one
//!    element through two index tuples (a stride of 0, or strides that interleave)
//!    (`ALIASING`; arguments with no elements are exempt).
//!
//! Then it fills the frame and calls the body of the first variant whose extra stride facts the
//! arguments meet (in module order), else the general body, and returns the body's status (the
//! body allocates the temporaries and may return `OUT_OF_MEMORY`).
//!
//! Every failure also records a message naming the argument, axis and values at fault for
//! `einc_last_error()` ([`last_error`](super::last_error)); the recording code sits in cold
//! blocks, off the path of a valid call.

use super::last_error::{ErrorSupport, Failure, A, B, DTYPE_A};
use super::{buffer_type, unsupported, CodegenError, Ext, Frame};
use crate::ir::loops::{self, BufferId, BufferKind, Extent, Inst, Layout, Op, StrideFact};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, InstBuilder, MemFlagsData, Signature, StackSlotData,
    StackSlotKind, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FuncInstBuilder, FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Module};
use einc_runtime::abi::{status, tensor_offsets, TENSOR_SIZE};
use std::collections::HashMap;

/// The signature of an entry point: `(const einc_tensor *args, int64_t nargs) -> int32_t`.
pub fn signature<M: Module>(module: &M) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

/// One validated argument.
struct Arg {
    data: Value,
    /// Whether some extent is 0 (an `i8` boolean).
    empty: Value,
    /// First byte addressed.
    lo: Value,
    /// One past the last byte addressed.
    hi: Value,
    extents: Vec<Value>,
    strides: Vec<Value>,
}

/// The signature of the function that compiles a deferred general body and calls it
/// ([`GeneralBody::Lazy`]): `(state, int64 n, const int64 *frame) -> int32_t`.
pub(crate) fn compile_and_call_signature<M: Module>(module: &M) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(types::I64); 3]);
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

/// How an entry point calls its kernel's general body.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GeneralBody {
    /// Defined in the module: a direct call.
    Defined(FuncId),
    /// Compiled on its first call (JIT only, see [`super::LazyGeneral`]): the entry point
    /// loads the word at address `slot`; when it is non-zero it is the body's code address,
    /// called indirectly; else it calls `compile(state, index, frame)`, which compiles the
    /// body, stores its address at `slot` and runs it.
    Lazy {
        slot: i64,
        state: i64,
        index: i64,
        compile: FuncId,
    },
}

/// Builds the entry point of kernel `f` into `ctx.func`; `variants` are its variants with their
/// body functions, in the order to try them, and `general` says how to call its general body.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build<M: Module>(
    module: &mut M,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    m: &loops::Module,
    f: &loops::Function,
    frame: &Frame,
    variants: &[(&loops::Function, FuncId)],
    general: GeneralBody,
    errors: &mut ErrorSupport,
) -> Result<(), CodegenError> {
    let bodies: Vec<&loops::Function> = std::iter::once(f)
        .chain(variants.iter().map(|(v, _)| *v))
        .collect();
    for b in &bodies {
        check_dims_bound(m, b, frame)?;
    }
    ctx.func.signature = signature(module);
    let mut fb = FunctionBuilder::new(&mut ctx.func, fctx);
    let start = fb.create_block();
    fb.append_block_params_for_function_params(start);
    fb.switch_to_block(start);
    let (args, nargs) = (fb.block_params(start)[0], fb.block_params(start)[1]);
    let names = Names::of(f);
    let mut v = Validator {
        fb,
        pending: Vec::new(),
        binders: vec![None; frame.dims.len()],
        frame_dims: &frame.dims,
    };
    let n = i64::try_from(f.params.len()).map_err(|_| unsupported(f, "too many parameters"))?;
    let bad = v.fb.ins().icmp_imm_s(IntCC::NotEqual, nargs, n);
    v.check(
        bad,
        Failure::new(
            status::BAD_ARG_COUNT,
            format!(
                "kernel `{}` takes {n} arguments ({}), but nargs is {A}",
                f.name,
                names.listing()
            ),
        )
        .with_a(nargs),
    );
    if n > 0 {
        let bad = v.fb.ins().icmp_imm_s(IntCC::Equal, args, 0);
        v.check(
            bad,
            Failure::new(
                status::BAD_ARG_COUNT,
                format!("kernel `{}` was called with a null args array", f.name),
            ),
        );
    }

    let mut dims: Vec<Option<Value>> = vec![None; frame.dims.len()];
    let mut fixed: HashMap<(usize, usize), u64> = HashMap::new();
    for b in &bodies {
        for ((param, axis), p) in fixed_positions(b) {
            let e = fixed.entry((param, axis)).or_insert(p);
            *e = (*e).max(p);
        }
    }
    let mut checked = Vec::with_capacity(f.params.len());
    for (i, &p) in f.params.iter().enumerate() {
        let b = f
            .buffer(p)
            .ok_or_else(|| unsupported(f, format!("parameter {} is not a buffer", p.0)))?;
        let shape = &frame.param_shapes[i];
        let offset =
            i64::try_from(i * TENSOR_SIZE).map_err(|_| unsupported(f, "too many parameters"))?;
        let desc = v.fb.ins().iadd_imm_s(args, offset);
        let needs: Vec<Option<u64>> = (0..shape.len())
            .map(|axis| fixed.get(&(i, axis)).copied())
            .collect();
        checked.push(v.argument(desc, b, &names.who[i], shape, &needs, &mut dims)?);
    }

    // Outputs come after inputs, so every pair with an output is (anything earlier, output).
    for (j, &p) in f.params.iter().enumerate() {
        if f.buffer(p).map(|b| b.kind) != Some(BufferKind::Output) {
            continue;
        }
        let bad = v.self_overlap(&checked[j]);
        v.check(
            bad,
            Failure::new(
                status::ALIASING,
                format!(
                    "{} reaches one element through two index tuples (a stride of 0, or \
                     strides that interleave)",
                    names.who[j]
                ),
            ),
        );
        for i in 0..j {
            let (a, b) = (&checked[i], &checked[j]);
            let a_before_b = v.fb.ins().icmp(IntCC::UnsignedLessThan, a.lo, b.hi);
            let b_before_a = v.fb.ins().icmp(IntCC::UnsignedLessThan, b.lo, a.hi);
            let either_empty = v.fb.ins().bor(a.empty, b.empty);
            let both_nonempty = v.fb.ins().bxor_imm_s(either_empty, 1);
            let overlap = v.fb.ins().band(a_before_b, b_before_a);
            let bad = v.fb.ins().band(overlap, both_nonempty);
            v.check(
                bad,
                Failure::new(
                    status::ALIASING,
                    format!("{} overlaps {} in memory", names.who[j], names.who[i]),
                ),
            );
        }
    }

    // The frame: data pointers, caller strides, dims (see `Frame`).
    let size =
        u32::try_from(frame.slots.max(1) * 8).map_err(|_| unsupported(f, "frame too large"))?;
    let slot =
        v.fb.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 3));
    let frame_ptr = v.fb.ins().stack_addr(types::I64, slot, 0);
    let store = MemFlagsData::trusted();
    for (n, a) in checked.iter().enumerate() {
        v.fb.ins()
            .store(store, a.data, frame_ptr, Frame::offset(frame.data_slot[n])?);
        for (k, s) in a.strides.iter().enumerate() {
            v.fb.ins().store(
                store,
                *s,
                frame_ptr,
                Frame::offset(frame.stride_slot[n] + k)?,
            );
        }
    }
    for (n, d) in dims.iter().enumerate() {
        // An unbound dim is used nowhere (`check_dims_bound`); store 0 to keep the frame defined.
        let d = match d {
            Some(d) => *d,
            None => v.fb.ins().iconst(types::I64, 0),
        };
        v.fb.ins()
            .store(store, d, frame_ptr, Frame::offset(frame.dim_base + n)?);
    }

    // The first variant whose extra facts hold, else the general body; either returns the
    // call's status.
    for (variant, id) in variants {
        let mut broken = v.fb.ins().iconst(types::I8, 0);
        for ((a, &p), &q) in checked.iter().zip(&variant.params).zip(&f.params) {
            let (Some(vb), Some(gb)) = (variant.buffer(p), f.buffer(q)) else {
                return Err(unsupported(variant, "a parameter is not a buffer"));
            };
            let b = v.facts_broken(a, &vb.layout, Some(&gb.layout));
            broken = v.fb.ins().bor(broken, b);
        }
        let call = v.fb.create_block();
        let next = v.fb.create_block();
        v.fb.ins().brif(broken, next, &[], call, &[]);
        v.fb.switch_to_block(call);
        let fref = module.declare_func_in_func(*id, v.fb.func);
        let inst = v.fb.ins().call(fref, &[frame_ptr]);
        let code = v.fb.inst_results(inst)[0];
        v.fb.ins().return_(&[code]);
        v.fb.switch_to_block(next);
    }
    let code = match general {
        GeneralBody::Defined(body) => {
            let fref = module.declare_func_in_func(body, v.fb.func);
            let inst = v.fb.ins().call(fref, &[frame_ptr]);
            v.fb.inst_results(inst)[0]
        }
        GeneralBody::Lazy {
            slot,
            state,
            index,
            compile,
        } => {
            let slot = v.fb.ins().iconst(types::I64, slot);
            // Acquire: the compiling thread stores the address after the code is executable.
            let body =
                v.fb.ins()
                    .atomic_load(types::I64, MemFlagsData::trusted(), slot);
            let compiled = v.fb.create_block();
            let first = v.fb.create_block();
            let done = v.fb.create_block();
            let code = v.fb.append_block_param(done, types::I32);
            v.fb.ins().brif(body, compiled, &[], first, &[]);
            v.fb.switch_to_block(compiled);
            let sig = v.fb.import_signature(super::body::signature(module));
            let inst = v.fb.ins().call_indirect(sig, body, &[frame_ptr]);
            let result = v.fb.inst_results(inst)[0];
            v.fb.ins().jump(done, &[BlockArg::Value(result)]);
            v.fb.switch_to_block(first);
            v.fb.set_cold_block(first);
            let fref = module.declare_func_in_func(compile, v.fb.func);
            let state = v.fb.ins().iconst(types::I64, state);
            let index = v.fb.ins().iconst(types::I64, index);
            let inst = v.fb.ins().call(fref, &[state, index, frame_ptr]);
            let result = v.fb.inst_results(inst)[0];
            v.fb.ins().jump(done, &[BlockArg::Value(result)]);
            v.fb.switch_to_block(done);
            code
        }
    };
    v.fb.ins().return_(&[code]);
    let record = module.declare_func_in_func(errors.record, v.fb.func);
    for (block, failure) in std::mem::take(&mut v.pending) {
        v.fb.switch_to_block(block);
        v.fb.set_cold_block(block);
        let code = errors.emit_record(module, &mut v.fb, record, &failure)?;
        v.fb.ins().return_(&[code]);
    }
    v.fb.seal_all_blocks();
    v.fb.finalize(module.target_config());
    Ok(())
}

/// Every symbolic dim that a temporary's shape or an `Op::Dim` of body `f` uses must be bound
/// by some argument's shape: the entry point learns dims only from its arguments.
fn check_dims_bound(
    m: &loops::Module,
    f: &loops::Function,
    frame: &Frame,
) -> Result<(), CodegenError> {
    let mut bound = vec![false; frame.dims.len()];
    for e in frame.param_shapes.iter().flatten() {
        if let Ext::Sym(n) = e {
            bound[*n] = true;
        }
    }
    let shapes = frame.shapes(m, f)?;
    let check = |e: Option<Ext>| match e {
        Some(Ext::Sym(n)) if !bound[n] => Err(unsupported(
            f,
            format!(
                "dim `{}` is used but bound by no argument's shape",
                frame.dims[n]
            ),
        )),
        _ => Ok(()),
    };
    for (b, shape) in f.buffers.iter().zip(&shapes) {
        if b.kind == BufferKind::Temp {
            for e in shape {
                check(Some(*e))?;
            }
        }
    }
    let mut stack = vec![&f.body];
    while let Some(block) = stack.pop() {
        for inst in &block.insts {
            match inst {
                Inst::Assign {
                    op: Op::Dim(name), ..
                } => check(frame.dim(m, name))?,
                Inst::For(l) => stack.push(&l.body),
                Inst::Assign { .. }
                | Inst::Store { .. }
                | Inst::StoreAt { .. }
                | Inst::Scoped(_)
                | Inst::Ukernel(_) => {}
            }
        }
    }
    Ok(())
}

/// The largest fixed position accessed on each axis of each parameter (by position in the call),
/// found in the body's loads and stores whose index is an index constant.
fn fixed_positions(f: &loops::Function) -> HashMap<(usize, usize), u64> {
    let mut consts: HashMap<loops::ValueId, i64> = HashMap::new();
    let mut accesses: Vec<(BufferId, &[loops::ValueId])> = Vec::new();
    let mut stack = vec![&f.body];
    while let Some(block) = stack.pop() {
        for inst in &block.insts {
            match inst {
                Inst::Assign {
                    result,
                    op: Op::IndexConst(c),
                } => {
                    consts.insert(*result, *c);
                }
                Inst::Assign {
                    op: Op::Load { buffer, index, .. },
                    ..
                }
                | Inst::Store { buffer, index, .. } => accesses.push((*buffer, index)),
                Inst::For(l) => stack.push(&l.body),
                // A micro-kernel's start index and an `addr` are positions, read only when
                // the tile or loop is not empty (an empty K block starts past the end of A's k
                // axis); `strength-reduce` keeps every fixed position of a load or store.
                Inst::Assign { .. } | Inst::Scoped(_) | Inst::Ukernel(_) | Inst::StoreAt { .. } => {
                }
            }
        }
    }
    let mut fixed: HashMap<(usize, usize), u64> = HashMap::new();
    for (buffer, index) in accesses {
        let Some(param) = f.params.iter().position(|&p| p == buffer) else {
            continue;
        };
        for (axis, v) in index.iter().enumerate() {
            if let Some(&c) = consts.get(v) {
                let c = u64::try_from(c).unwrap_or(0);
                let e = fixed.entry((param, axis)).or_insert(c);
                *e = (*e).max(c);
            }
        }
    }
    fixed
}

/// Emits checks that branch to the failure block.
struct Validator<'a> {
    fb: FunctionBuilder<'a>,
    /// Cold blocks still to fill: each records its failure, then returns its code.
    pending: Vec<(Block, Failure)>,
    /// For each symbolic dim, the argument and axis whose extent bound it.
    binders: Vec<Option<(String, usize)>>,
    /// The names of the symbolic dims.
    frame_dims: &'a [String],
}

impl<'a> Validator<'a> {
    fn ins(&mut self) -> FuncInstBuilder<'_, 'a> {
        self.fb.ins()
    }

    /// Fails with `failure` if `bad` (an `i8` boolean) holds; continues in a new block
    /// otherwise.
    fn check(&mut self, bad: Value, failure: Failure) {
        let cold = self.fb.create_block();
        self.pending.push((cold, failure));
        let next = self.fb.create_block();
        self.fb.ins().brif(bad, cold, &[], next, &[]);
        self.fb.switch_to_block(next);
    }

    /// An `i8` that holds when a non-empty argument reaches one element through two index
    /// tuples. With the axes of extent > 1 sorted by |stride|, the layout is one-to-one when each
    /// stride exceeds the span of all smaller-strided axes, `sum (e_j - 1) * |s_j|`; equal
    /// strides are ordered by axis so that two equal strides always fail. The spans cannot
    /// overflow: the byte-range check bounded their sum.
    fn self_overlap(&mut self, a: &Arg) -> Value {
        let zero = self.ins().iconst(types::I64, 0);
        let abs: Vec<Value> = a.strides.iter().map(|&s| self.ins().iabs(s)).collect();
        let long: Vec<Value> = a
            .extents
            .iter()
            .map(|&e| self.ins().icmp_imm_s(IntCC::SignedGreaterThan, e, 1))
            .collect();
        let mut bad = self.ins().iconst(types::I8, 0);
        for k in 0..abs.len() {
            let mut span = zero;
            for j in (0..abs.len()).filter(|&j| j != k) {
                let smaller = if j < k {
                    self.ins()
                        .icmp(IntCC::UnsignedLessThanOrEqual, abs[j], abs[k])
                } else {
                    self.ins().icmp(IntCC::UnsignedLessThan, abs[j], abs[k])
                };
                let counts = self.ins().band(smaller, long[j]);
                let last = self.ins().iadd_imm_s(a.extents[j], -1);
                let reach = self.ins().imul(last, abs[j]);
                let add = self.ins().select(counts, reach, zero);
                span = self.ins().iadd(span, add);
            }
            let covered = self
                .ins()
                .icmp(IntCC::UnsignedLessThanOrEqual, abs[k], span);
            let b = self.ins().band(covered, long[k]);
            bad = self.ins().bor(bad, b);
        }
        let nonempty = self.ins().bxor_imm_s(a.empty, 1);
        self.ins().band(bad, nonempty)
    }

    /// Validates one argument whose descriptor is at `desc`.
    fn argument(
        &mut self,
        desc: Value,
        b: &loops::BufferDef,
        who: &str,
        shape: &[Ext],
        fixed: &[Option<u64>],
        dims: &mut [Option<Value>],
    ) -> Result<Arg, CodegenError> {
        let declared = buffer_type(b);
        // The caller promises `nargs` readable descriptors and `rank` extents and strides.
        let flags = MemFlagsData::trusted().with_readonly();
        let i32_field = |v: &mut Self, off: i32| v.fb.ins().load(types::I32, flags, desc, off);
        let dtype = i32_field(self, tensor_offsets::DTYPE);
        let bad = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::NotEqual, dtype, i64::from(b.dtype.code()));
        let dtype64 = self.fb.ins().sextend(types::I64, dtype);
        self.check(
            bad,
            Failure::new(
                status::BAD_DTYPE,
                format!("{who} has dtype {DTYPE_A}, but the kernel declares {declared}"),
            )
            .with_a(dtype64),
        );
        let rank = i32_field(self, tensor_offsets::RANK);
        let bad = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::NotEqual, rank, shape.len() as i64);
        let rank64 = self.fb.ins().sextend(types::I64, rank);
        self.check(
            bad,
            Failure::new(
                status::BAD_RANK,
                format!("{who} has rank {A}, but the kernel declares {declared}"),
            )
            .with_a(rank64),
        );

        let mut extents = Vec::with_capacity(shape.len());
        let mut strides = Vec::with_capacity(shape.len());
        if !shape.is_empty() {
            let shape_ptr = self
                .fb
                .ins()
                .load(types::I64, flags, desc, tensor_offsets::SHAPE);
            let strides_ptr = self
                .fb
                .ins()
                .load(types::I64, flags, desc, tensor_offsets::STRIDES);
            let a = self.fb.ins().icmp_imm_s(IntCC::Equal, shape_ptr, 0);
            let c = self.fb.ins().icmp_imm_s(IntCC::Equal, strides_ptr, 0);
            let bad = self.fb.ins().bor(a, c);
            self.check(
                bad,
                Failure::new(
                    status::NULL_POINTER,
                    format!("{who} has a null shape or strides pointer"),
                ),
            );
            for (k, ext) in shape.iter().enumerate() {
                let off = i32::try_from(k * 8)
                    .map_err(|_| CodegenError::Target("rank too large".into()))?;
                let e = self.fb.ins().load(types::I64, flags, shape_ptr, off);
                let at = format!("{who} axis {k} has extent {A}");
                let bad = self.fb.ins().icmp_imm_s(IntCC::SignedLessThan, e, 0);
                self.check(
                    bad,
                    Failure::new(status::BAD_SHAPE, format!("{at}, which is negative")).with_a(e),
                );
                match *ext {
                    Ext::Fixed(n) => {
                        let bad = self.fb.ins().icmp_imm_s(IntCC::NotEqual, e, n);
                        let why = match b.shape.get(k) {
                            Some(Extent::Dim(d)) => format!("dim `{d}` is fixed to {n}"),
                            _ => format!("its declared extent is {n}"),
                        };
                        self.check(
                            bad,
                            Failure::new(status::BAD_SHAPE, format!("{at}, but {why}")).with_a(e),
                        );
                    }
                    Ext::Sym(d) => match dims[d] {
                        Some(bound) => {
                            let bad = self.fb.ins().icmp(IntCC::NotEqual, e, bound);
                            let dim = self.frame_dims.get(d).map_or("?", String::as_str);
                            let by = match &self.binders[d] {
                                Some((by, axis)) => format!(", as bound by {by} axis {axis}"),
                                None => String::new(),
                            };
                            self.check(
                                bad,
                                Failure::new(
                                    status::BAD_SHAPE,
                                    format!("{at}, but dim `{dim}` is {B}{by}"),
                                )
                                .with_a(e)
                                .with_b(bound),
                            );
                        }
                        None => {
                            dims[d] = Some(e);
                            self.binders[d] = Some((who.to_string(), k));
                        }
                    },
                }
                if let (Some(Some(p)), Ext::Sym(_)) = (fixed.get(k), ext) {
                    let p = i64::try_from(*p).unwrap_or(i64::MAX);
                    let bad = self.fb.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, e, p);
                    self.check(
                        bad,
                        Failure::new(
                            status::BAD_SHAPE,
                            format!(
                                "{at}, but the kernel reads position {p} on that axis, so it \
                                 needs at least {}",
                                p.saturating_add(1)
                            ),
                        )
                        .with_a(e),
                    );
                }
                extents.push(e);
                strides.push(self.fb.ins().load(types::I64, flags, strides_ptr, off));
            }
        }

        let data = self
            .fb
            .ins()
            .load(types::I64, flags, desc, tensor_offsets::DATA);
        let mut empty = self.fb.ins().iconst(types::I8, 0);
        for e in &extents {
            let z = self.fb.ins().icmp_imm_s(IntCC::Equal, *e, 0);
            empty = self.fb.ins().bor(empty, z);
        }
        let nonempty = self.fb.ins().bxor_imm_s(empty, 1);
        let null = self.fb.ins().icmp_imm_s(IntCC::Equal, data, 0);
        let bad = self.fb.ins().band(null, nonempty);
        self.check(
            bad,
            Failure::new(
                status::NULL_POINTER,
                format!("{who} has a null data pointer but has elements"),
            ),
        );

        // Element offsets of the lowest and highest elements, then bytes, then addresses; any
        // overflow on the way is an error unless the argument has no elements.
        let zero = self.ins().iconst(types::I64, 0);
        let mut overflow = self.ins().iconst(types::I8, 0);
        let (mut lo, mut hi) = (zero, zero);
        for (e, s) in extents.iter().zip(&strides) {
            let last = self.ins().iadd_imm_s(*e, -1);
            let (reach, o1) = self.ins().smul_overflow(last, *s);
            let negative = self.ins().icmp_imm_s(IntCC::SignedLessThan, reach, 0);
            let down = self.ins().select(negative, reach, zero);
            let up = self.ins().select(negative, zero, reach);
            let (l, o2) = self.ins().sadd_overflow(lo, down);
            let (h, o3) = self.ins().sadd_overflow(hi, up);
            (lo, hi) = (l, h);
            for o in [o1, o2, o3] {
                overflow = self.ins().bor(overflow, o);
            }
        }
        let size = self.ins().iconst(types::I64, b.dtype.size_bytes() as i64);
        let one = self.ins().iconst(types::I64, 1);
        let (hi, o1) = self.ins().sadd_overflow(hi, one);
        let (lo_bytes, o2) = self.ins().smul_overflow(lo, size);
        let (hi_bytes, o3) = self.ins().smul_overflow(hi, size);
        // `lo_bytes <= 0`; its negation read as unsigned is its magnitude, even for i64::MIN.
        let down = self.ins().ineg(lo_bytes);
        let (lo_addr, o4) = self.ins().usub_overflow(data, down);
        let (hi_addr, o5) = self.ins().uadd_overflow(data, hi_bytes);
        for o in [o1, o2, o3, o4, o5] {
            overflow = self.ins().bor(overflow, o);
        }
        let bad = self.ins().band(overflow, nonempty);
        self.check(
            bad,
            Failure::new(
                status::BAD_SHAPE,
                format!("{who}: its extents and strides address memory beyond the address space"),
            ),
        );

        let arg = Arg {
            data,
            empty,
            lo: lo_addr,
            hi: hi_addr,
            extents,
            strides,
        };
        if b.layout != Layout::Strided {
            // The body addresses this argument with these facts: the caller's strides must
            // agree (axes of extent 1 may have any stride).
            let bad = self.facts_broken(&arg, &b.layout, None);
            let what = if b.layout == Layout::Contiguous {
                "must be in C order (row-major), but its strides are not".to_string()
            } else {
                format!(
                    "must have the strides {} (`1`: unit, `c`: C order from the extents), but \
                     its strides differ",
                    crate::ir::loops::printer::print_layout(&b.layout)
                )
            };
            self.check(
                bad,
                Failure::new(status::BAD_SHAPE, format!("{who} {what}")),
            );
        }
        Ok(arg)
    }

    /// An `i8` that holds when non-empty argument `a` breaks a stride fact of `layout` on an
    /// axis longer than 1 (whose stride must then be 1, or the product of the later extents).
    /// Facts `known` already states (checked at validation) are skipped.
    fn facts_broken(&mut self, a: &Arg, layout: &Layout, known: Option<&Layout>) -> Value {
        let rank = a.extents.len();
        let one = self.ins().iconst(types::I64, 1);
        let mut later = one;
        let mut wrong = self.ins().iconst(types::I8, 0);
        for k in (0..rank).rev() {
            let fact = layout.fact(k, rank);
            let checked = known.is_some_and(|g| g.fact(k, rank) == fact);
            let want = match fact {
                StrideFact::Runtime => None,
                StrideFact::Unit => Some(one),
                StrideFact::COrder => Some(later),
            };
            if let (Some(want), false) = (want, checked) {
                let long = self
                    .ins()
                    .icmp_imm_s(IntCC::SignedGreaterThan, a.extents[k], 1);
                let differs = self.ins().icmp(IntCC::NotEqual, a.strides[k], want);
                let w = self.ins().band(long, differs);
                wrong = self.ins().bor(wrong, w);
            }
            if k > 0 {
                later = self.ins().imul(later, a.extents[k]);
            }
        }
        let nonempty = self.ins().bxor_imm_s(a.empty, 1);
        self.ins().band(wrong, nonempty)
    }
}

/// How messages name a kernel's arguments.
struct Names {
    /// Per parameter: "input `X`" or "output `O`".
    who: Vec<String>,
    /// Input and output names, in order.
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl Names {
    fn of(f: &loops::Function) -> Names {
        let mut names = Names {
            who: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        for &p in &f.params {
            let Some(b) = f.buffer(p) else {
                names.who.push(format!("argument {}", names.who.len()));
                continue;
            };
            if b.kind == BufferKind::Output {
                names.who.push(format!("output `{}`", b.name));
                names.outputs.push(b.name.clone());
            } else {
                names.who.push(format!("input `{}`", b.name));
                names.inputs.push(b.name.clone());
            }
        }
        names
    }

    /// "inputs X, WQ; output O", for the argument count message.
    fn listing(&self) -> String {
        let part = |names: &[String], one: &str, many: &str| match names.len() {
            0 => format!("no {many}"),
            1 => format!("{one} {}", names[0]),
            _ => format!("{many} {}", names.join(", ")),
        };
        format!(
            "{}; {}",
            part(&self.inputs, "input", "inputs"),
            part(&self.outputs, "output", "outputs")
        )
    }
}
