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
//!    signed strides) that does not overflow (`BAD_SHAPE`); for arguments the IR declares
//!    contiguous, C-order strides (`BAD_SHAPE`);
//! 3. no output's byte range intersects another argument's (`ALIASING`; arguments with no
//!    elements are exempt).
//!
//! Then it fills the body's frame, allocates temporaries with `malloc` (freeing those already
//! allocated and returning `OUT_OF_MEMORY` if one fails), runs the body, frees the temporaries
//! and returns `OK`.

use super::libcall::{Libcall, Libcalls};
use super::{unsupported, CodegenError, Ext, Frame};
use crate::ir::loops::{self, BufferKind, Inst, Layout, Op};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, InstBuilder, MemFlagsData, Signature, StackSlotData,
    StackSlotKind, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FuncInstBuilder, FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Module};
use einc_runtime::abi::{status, tensor_offsets, TENSOR_SIZE};

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
    strides: Vec<Value>,
}

/// Builds the entry point of kernel `f` into `ctx.func`; `body` is its body function.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build<M: Module>(
    module: &mut M,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    libs: &mut Libcalls,
    m: &loops::Module,
    f: &loops::Function,
    frame: &Frame,
    body: FuncId,
) -> Result<(), CodegenError> {
    check_dims_bound(m, f, frame)?;
    ctx.func.signature = signature(module);
    libs.begin_function();
    let mut fb = FunctionBuilder::new(&mut ctx.func, fctx);
    let start = fb.create_block();
    fb.append_block_params_for_function_params(start);
    let fail = fb.create_block();
    fb.switch_to_block(start);
    let (args, nargs) = (fb.block_params(start)[0], fb.block_params(start)[1]);
    let mut v = Validator { fb, fail };
    let n = i64::try_from(f.params.len()).map_err(|_| unsupported(f, "too many parameters"))?;
    let bad = v.fb.ins().icmp_imm_s(IntCC::NotEqual, nargs, n);
    v.check(bad, status::BAD_ARG_COUNT);
    if n > 0 {
        let bad = v.fb.ins().icmp_imm_s(IntCC::Equal, args, 0);
        v.check(bad, status::BAD_ARG_COUNT);
    }

    let mut dims: Vec<Option<Value>> = vec![None; frame.dims.len()];
    let mut checked = Vec::with_capacity(f.params.len());
    for (i, &p) in f.params.iter().enumerate() {
        let b = f
            .buffer(p)
            .ok_or_else(|| unsupported(f, format!("parameter {} is not a buffer", p.0)))?;
        let shape = &frame.shapes[p.0 as usize];
        let offset =
            i64::try_from(i * TENSOR_SIZE).map_err(|_| unsupported(f, "too many parameters"))?;
        let desc = v.fb.ins().iadd_imm_s(args, offset);
        checked.push(v.argument(desc, b, shape, &mut dims)?);
    }

    // Outputs come after inputs, so every pair with an output is (anything earlier, output).
    for (j, &p) in f.params.iter().enumerate() {
        if f.buffer(p).map(|b| b.kind) != Some(BufferKind::Output) {
            continue;
        }
        for i in 0..j {
            let (a, b) = (&checked[i], &checked[j]);
            let a_before_b = v.fb.ins().icmp(IntCC::UnsignedLessThan, a.lo, b.hi);
            let b_before_a = v.fb.ins().icmp(IntCC::UnsignedLessThan, b.lo, a.hi);
            let either_empty = v.fb.ins().bor(a.empty, b.empty);
            let both_nonempty = v.fb.ins().bxor_imm_s(either_empty, 1);
            let overlap = v.fb.ins().band(a_before_b, b_before_a);
            let bad = v.fb.ins().band(overlap, both_nonempty);
            v.check(bad, status::ALIASING);
        }
    }

    // The frame: data pointers, caller strides, dims (see `Frame`).
    let size =
        u32::try_from(frame.slots.max(1) * 8).map_err(|_| unsupported(f, "frame too large"))?;
    let slot =
        v.fb.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 3));
    let frame_ptr = v.fb.ins().stack_addr(types::I64, slot, 0);
    let store = MemFlagsData::trusted();
    for (a, &p) in checked.iter().zip(&f.params) {
        let id = p.0 as usize;
        v.fb.ins().store(
            store,
            a.data,
            frame_ptr,
            Frame::offset(frame.data_slot[id])?,
        );
        if let Some(first) = frame.stride_slot[id] {
            for (k, s) in a.strides.iter().enumerate() {
                v.fb.ins()
                    .store(store, *s, frame_ptr, Frame::offset(first + k)?);
            }
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

    // Temporaries: on failure free the ones already allocated.
    let mut temps: Vec<Value> = Vec::new();
    let mut failures: Vec<(Block, usize)> = Vec::new();
    for (id, b) in f.buffers.iter().enumerate() {
        if b.kind != BufferKind::Temp {
            continue;
        }
        let mut bytes = v.fb.ins().iconst(types::I64, b.dtype.size_bytes() as i64);
        let mut overflow = v.fb.ins().iconst(types::I8, 0);
        for e in &frame.shapes[id] {
            let e = match *e {
                Ext::Fixed(n) => v.fb.ins().iconst(types::I64, n),
                Ext::Sym(n) => {
                    dims[n].ok_or_else(|| unsupported(f, "unbound dim in a temporary"))?
                }
            };
            let (prod, o) = v.fb.ins().umul_overflow(bytes, e);
            bytes = prod;
            overflow = v.fb.ins().bor(overflow, o);
        }
        let one = v.fb.ins().iconst(types::I64, 1);
        // malloc(0) may return null; ask for at least one byte.
        let bytes = v.fb.ins().umax(bytes, one);
        // Filled in at the end: it frees the temporaries allocated before this one.
        let oom = v.fb.create_block();
        failures.push((oom, temps.len()));
        let ok = v.fb.create_block();
        v.fb.ins().brif(overflow, oom, &[], ok, &[]);
        v.fb.switch_to_block(ok);
        let ptr = libs
            .call(module, &mut v.fb, Libcall::Malloc, &[bytes])?
            .ok_or_else(|| unsupported(f, "malloc without a result"))?;
        let ok = v.fb.create_block();
        v.fb.ins().brif(ptr, ok, &[], oom, &[]);
        v.fb.switch_to_block(ok);
        v.fb.ins()
            .store(store, ptr, frame_ptr, Frame::offset(frame.data_slot[id])?);
        temps.push(ptr);
    }

    let body = module.declare_func_in_func(body, v.fb.func);
    v.fb.ins().call(body, &[frame_ptr]);
    for t in &temps {
        libs.call(module, &mut v.fb, Libcall::Free, &[*t])?;
    }
    let ok = v.fb.ins().iconst(types::I32, i64::from(status::OK));
    v.fb.ins().return_(&[ok]);
    for (block, allocated) in failures {
        v.fb.switch_to_block(block);
        for t in temps.iter().take(allocated) {
            libs.call(module, &mut v.fb, Libcall::Free, &[*t])?;
        }
        let code =
            v.fb.ins()
                .iconst(types::I32, i64::from(status::OUT_OF_MEMORY));
        v.fb.ins().return_(&[code]);
    }
    v.fb.switch_to_block(fail);
    let code = v.fb.append_block_param(fail, types::I32);
    v.fb.ins().return_(&[code]);
    v.fb.seal_all_blocks();
    v.fb.finalize(module.target_config());
    Ok(())
}

/// Every symbolic dim that a temporary's shape or an `Op::Dim` uses must be bound by some
/// argument's shape: the entry point learns dims only from its arguments.
fn check_dims_bound(
    m: &loops::Module,
    f: &loops::Function,
    frame: &Frame,
) -> Result<(), CodegenError> {
    let mut bound = vec![false; frame.dims.len()];
    for &p in &f.params {
        for e in frame.shapes.get(p.0 as usize).into_iter().flatten() {
            if let Ext::Sym(n) = e {
                bound[*n] = true;
            }
        }
    }
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
    for (b, shape) in f.buffers.iter().zip(&frame.shapes) {
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
                Inst::Assign { .. } | Inst::Store { .. } => {}
            }
        }
    }
    Ok(())
}

/// Emits checks that branch to the failure block.
struct Validator<'a> {
    fb: FunctionBuilder<'a>,
    /// Returns its `i32` parameter.
    fail: Block,
}

impl<'a> Validator<'a> {
    fn ins(&mut self) -> FuncInstBuilder<'_, 'a> {
        self.fb.ins()
    }

    /// Returns `code` if `bad` (an `i8` boolean) holds; continues in a new block otherwise.
    fn check(&mut self, bad: Value, code: i32) {
        let code = self.fb.ins().iconst(types::I32, i64::from(code));
        let next = self.fb.create_block();
        self.fb
            .ins()
            .brif(bad, self.fail, &[BlockArg::from(code)], next, &[]);
        self.fb.switch_to_block(next);
    }

    /// Validates one argument whose descriptor is at `desc`.
    fn argument(
        &mut self,
        desc: Value,
        b: &loops::BufferDef,
        shape: &[Ext],
        dims: &mut [Option<Value>],
    ) -> Result<Arg, CodegenError> {
        // The caller promises `nargs` readable descriptors and `rank` extents and strides.
        let flags = MemFlagsData::trusted().with_readonly();
        let i32_field = |v: &mut Self, off: i32| v.fb.ins().load(types::I32, flags, desc, off);
        let dtype = i32_field(self, tensor_offsets::DTYPE);
        let bad = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::NotEqual, dtype, i64::from(b.dtype.code()));
        self.check(bad, status::BAD_DTYPE);
        let rank = i32_field(self, tensor_offsets::RANK);
        let bad = self
            .fb
            .ins()
            .icmp_imm_s(IntCC::NotEqual, rank, shape.len() as i64);
        self.check(bad, status::BAD_RANK);

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
            self.check(bad, status::NULL_POINTER);
            for (k, ext) in shape.iter().enumerate() {
                let off = i32::try_from(k * 8)
                    .map_err(|_| CodegenError::Target("rank too large".into()))?;
                let e = self.fb.ins().load(types::I64, flags, shape_ptr, off);
                let bad = self.fb.ins().icmp_imm_s(IntCC::SignedLessThan, e, 0);
                self.check(bad, status::BAD_SHAPE);
                match *ext {
                    Ext::Fixed(n) => {
                        let bad = self.fb.ins().icmp_imm_s(IntCC::NotEqual, e, n);
                        self.check(bad, status::BAD_SHAPE);
                    }
                    Ext::Sym(d) => match dims[d] {
                        Some(bound) => {
                            let bad = self.fb.ins().icmp(IntCC::NotEqual, e, bound);
                            self.check(bad, status::BAD_SHAPE);
                        }
                        None => dims[d] = Some(e),
                    },
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
        self.check(bad, status::NULL_POINTER);

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
        self.check(bad, status::BAD_SHAPE);

        if b.layout == Layout::Contiguous {
            // The body addresses this argument in C order: the caller's strides must agree
            // (axes of extent 1 may have any stride).
            let mut expected = one;
            let mut wrong = self.ins().iconst(types::I8, 0);
            for (e, s) in extents.iter().zip(&strides).rev() {
                let long = self.ins().icmp_imm_s(IntCC::SignedGreaterThan, *e, 1);
                let differs = self.ins().icmp(IntCC::NotEqual, *s, expected);
                let w = self.ins().band(long, differs);
                wrong = self.ins().bor(wrong, w);
                expected = self.ins().imul(expected, *e);
            }
            let bad = self.ins().band(wrong, nonempty);
            self.check(bad, status::BAD_SHAPE);
        }

        Ok(Arg {
            data,
            empty,
            lo: lo_addr,
            hi: hi_addr,
            strides,
        })
    }
}
