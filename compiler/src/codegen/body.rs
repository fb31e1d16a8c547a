//! Loop IR → CLIF: a body function of a kernel (its general function or a variant),
//! `int32 body(const int64 *frame)`.
//!
//! The body lays out the function's temporaries in one block, each at an offset aligned to 64
//! bytes (or its `align`, if larger), and takes the block from [`super::scratch`] (the calling
//! thread's block, kept between calls); when it cannot be had, or its size does not fit in 64
//! bits, the body records why for `einc_last_error` and returns `OUT_OF_MEMORY` before
//! anything is written. It then runs the loop nests, hands the block back and returns `OK`. Scoped buffers are stack slots of the body (rounded up the same way); stack probes keep
//! a large frame from jumping over a guard page. A `ukernel` instruction fills an argument block
//! in a stack slot and calls the micro-kernel's function ([`super::ukernel`]).
//!
//! Loop-IR values map one to one to CLIF values: both are SSA and a loop-IR value is visible
//! only where its definition dominates, so no variables are needed. A `for` loop becomes a
//! guarded, rotated loop (`if lower < upper { do body while next < upper }`) whose block
//! parameters are the induction variable and the carried values. Element addresses are
//! `base + (sum idx_k * stride_k) * size` in signed 64-bit arithmetic; strides come from the
//! caller (run-time stride facts), are 1 (unit facts) or come from the extents (C-order facts).
//!
//! Semantics that differ from Cranelift's defaults: integer division never traps (division by
//! zero gives 0, `MIN / -1` wraps), float max/min propagate NaN (Cranelift's `fmax`/`fmin`
//! follow the WebAssembly rules, which do; on x86-64 vectors use the shorter
//! `math::x86_vector_max_min`, whose NaN payloads are not canonical), float → int casts
//! saturate with NaN → 0 (the `_sat` conversions).

use super::last_error::{ErrorSupport, Failure, A};
use super::libcall::{FloatWidth, Libcall, Libcalls, MathFn};
use super::math::{self, Transcendental};
use super::scratch::{Scratch, SCRATCH_ALIGN};
use super::ukernel::{self, Ukernels};
use super::{buffer_type, clif_scalar, unsupported, CodegenError, Ext, Frame};
use crate::ir::loops::{
    self, BinaryFn, BufferId, BufferKind, CmpOp, Coord, IndexOp, Inst, Op, ReduceKind, StrideFact,
    TileOperand, Type, UnaryFn, ValueId,
};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, Block, BlockArg, FuncRef, InstBuilder, MemFlagsData, Signature, StackSlot,
    StackSlotData, StackSlotKind, Type as ClifType, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FuncInstBuilder, FunctionBuilder, FunctionBuilderContext};
use cranelift_module::Module;
use einc_runtime::abi::status;
use einc_runtime::{DType, Scalar};
use std::collections::HashMap;

mod parallel;
pub(crate) use parallel::{Task, PARALLEL_FOR_SYMBOL};

/// The signature of a body function: one pointer to the frame; returns a status code.
pub fn signature<M: Module>(module: &M) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

/// What building a body needs from the module being defined.
pub(crate) struct Codegen<'a, M: Module> {
    pub module: &'a mut M,
    pub ctx: &'a mut Context,
    pub fctx: &'a mut FunctionBuilderContext,
    pub libs: &'a mut Libcalls,
    pub ukernels: &'a mut Ukernels,
    pub errors: &'a mut ErrorSupport,
    /// The module's scratch functions, when some body has temporaries.
    pub scratch: Option<Scratch>,
    pub has_fma: bool,
    /// Whether parallel loops become tasks run through `parallel_for` ([`parallel`]); when
    /// not, they run as ordinary loops.
    pub threads: bool,
}

/// The CLIF type of a loop-IR type, if code generation supports it (vectors must be 128 bits).
pub fn clif_type(t: Type) -> Option<ClifType> {
    match t {
        // A pointer is the element's address.
        Type::Index | Type::Ptr => Some(types::I64),
        Type::Bool => Some(types::I8),
        Type::Scalar(d) => Some(clif_scalar(d)),
        Type::Vector(d, lanes) => {
            let lane = clif_scalar(d);
            (u64::from(lanes) * u64::from(lane.bytes()) == 16)
                .then(|| lane.by(lanes))
                .flatten()
        }
    }
}

impl<M: Module> Codegen<'_, M> {
    /// Builds the body `f` (the general function of the frame's kernel, or one of its
    /// variants), the function called `name`, into `ctx.func`. Returns the task functions its
    /// parallel loops were outlined into ([`parallel`]), declared but not defined.
    pub(crate) fn build(
        &mut self,
        m: &loops::Module,
        f: &loops::Function,
        frame: &Frame,
        name: &str,
    ) -> Result<Vec<Task>, CodegenError> {
        let shapes = frame.shapes(m, f)?;
        self.ctx.func.signature = signature(self.module);
        self.libs.begin_function();
        self.ukernels.begin_function();
        let mut tasks = Vec::new();
        let mut fb = FunctionBuilder::new(&mut self.ctx.func, self.fctx);
        let start = fb.create_block();
        fb.append_block_params_for_function_params(start);
        fb.switch_to_block(start);
        let frame_ptr = fb.block_params(start)[0];
        let shared = Shared {
            module: &mut *self.module,
            libs: &mut *self.libs,
            ukernels: &mut *self.ukernels,
            errors: &mut *self.errors,
            scratch: self.scratch,
            has_fma: self.has_fma,
        };
        let outline = self.threads.then_some(name);
        let mut g = Gen::new(
            shared,
            fb,
            (m, f, frame),
            shapes,
            frame_ptr,
            outline,
            &mut tasks,
        );
        let temps = g.prologue(frame_ptr, None)?;
        g.block(&f.body)?;
        let release = |g: &mut Gen<'_, '_, M>| {
            if let (Some((block, _)), Some(scratch)) = (temps, g.scratch) {
                let release = g.module.declare_func_in_func(scratch.release, g.fb.func);
                g.fb.ins().call(release, &[block]);
            }
        };
        release(&mut g);
        let ok = g.fb.ins().iconst(types::I32, i64::from(status::OK));
        g.fb.ins().return_(&[ok]);
        if let Some(failed) = g.failed {
            // A parallel loop's pool returned a non-zero status: pass it on.
            g.fb.switch_to_block(failed);
            let code = g.fb.block_params(failed)[0];
            release(&mut g);
            g.fb.ins().return_(&[code]);
        }
        if let Some((_, oom)) = temps {
            g.fb.switch_to_block(oom);
            let code =
                g.fb.ins()
                    .iconst(types::I32, i64::from(status::OUT_OF_MEMORY));
            g.fb.ins().return_(&[code]);
        }
        g.fb.seal_all_blocks();
        let config = g.module.target_config();
        g.fb.finalize(config);
        Ok(tasks)
    }
}

/// How to address one buffer.
struct Buf {
    /// The address of element 0; `None` for a scoped buffer until its `scoped` instruction,
    /// and in a task for the local buffers its loop does not use.
    base: Option<Value>,
    /// Element stride of each axis (an `i64` value).
    strides: Vec<Value>,
    /// log2 of the element size.
    shift: i64,
    flags: MemFlagsData,
    /// Whether vector accesses are allowed (a unit stride on the last axis).
    unit_last: bool,
}

/// The state of building one body.
struct Gen<'a, 'b, M: Module> {
    module: &'a mut M,
    fb: FunctionBuilder<'b>,
    libs: &'a mut Libcalls,
    ukernels: &'a mut Ukernels,
    /// Records why an allocation failed, for `einc_last_error`.
    errors: &'a mut ErrorSupport,
    /// The module's scratch functions, which hold the temporaries (when some body has any).
    scratch: Option<Scratch>,
    /// This function's import of the error recorder, once a failure needs it.
    record: Option<FuncRef>,
    m: &'a loops::Module,
    f: &'a loops::Function,
    frame: &'a Frame,
    /// Resolved extents of each buffer of `f`.
    shapes: Vec<Vec<Ext>>,
    has_fma: bool,
    /// The CLIF value of each loop-IR value, once defined.
    values: Vec<Option<Value>>,
    /// The values of `index` constants, for divisions by a known divisor.
    consts: HashMap<ValueId, i64>,
    bufs: Vec<Buf>,
    /// Symbolic dims, by number.
    dims: Vec<Value>,
    /// The stack slot holding a micro-kernel's argument block, once a call needs it.
    ukernel_args: Option<StackSlot>,
    /// The buffer each `ptr` value points into.
    points_into: HashMap<ValueId, BufferId>,
    /// The name of the function being built when its parallel loops are outlined into tasks
    /// (a body's, with threads on), else `None` (a task's own function, or threads off: its
    /// parallel loops run serially).
    outline: Option<&'a str>,
    /// The tasks outlined so far.
    tasks: &'a mut Vec<Task>,
    /// The function's frame pointer (a task's is loaded from its closure).
    frame_ptr: Value,
    /// The block that returns the status in its parameter, once a parallel loop needs it.
    failed: Option<Block>,
}

/// What every function built into a module borrows from it: the module and the imports it
/// shares.
struct Shared<'a, M: Module> {
    module: &'a mut M,
    libs: &'a mut Libcalls,
    ukernels: &'a mut Ukernels,
    errors: &'a mut ErrorSupport,
    scratch: Option<Scratch>,
    has_fma: bool,
}

/// The function being built: `f` of `m`, for `frame`.
type Source<'a> = (&'a loops::Module, &'a loops::Function, &'a Frame);

impl<'a, 'b, M: Module> Gen<'a, 'b, M> {
    /// The state of building function `f` (a body, or a task outlined from one) with `fb`: no
    /// value defined yet, the frame at `frame_ptr`, parallel loops outlined into `tasks` when
    /// `outline` names the function.
    fn new(
        shared: Shared<'a, M>,
        fb: FunctionBuilder<'b>,
        (m, f, frame): Source<'a>,
        shapes: Vec<Vec<Ext>>,
        frame_ptr: Value,
        outline: Option<&'a str>,
        tasks: &'a mut Vec<Task>,
    ) -> Self {
        Gen {
            module: shared.module,
            fb,
            libs: shared.libs,
            ukernels: shared.ukernels,
            errors: shared.errors,
            scratch: shared.scratch,
            record: None,
            m,
            f,
            frame,
            shapes,
            has_fma: shared.has_fma,
            values: vec![None; f.values.len()],
            consts: HashMap::new(),
            bufs: Vec::with_capacity(f.buffers.len()),
            dims: Vec::with_capacity(frame.dims.len()),
            ukernel_args: None,
            points_into: HashMap::new(),
            frame_ptr,
            outline,
            tasks,
            failed: None,
        }
    }
}

impl<'b, M: Module> Gen<'_, 'b, M> {
    fn ins(&mut self) -> FuncInstBuilder<'_, 'b> {
        self.fb.ins()
    }

    fn err(&self, message: impl Into<String>) -> CodegenError {
        unsupported(self.f, message)
    }

    /// Reads the frame (dims, then data pointers and run-time strides) and places the
    /// temporaries in the scratch block, or, in a task, takes the addresses of the temporaries
    /// and of the scoped buffers declared outside its loop from `captured` (by buffer number).
    /// Scoped buffers get their stack slot at their `scoped` instruction. Returns, when a body
    /// has temporaries, the scratch block (to release) and the block that returns
    /// `OUT_OF_MEMORY` (to fill).
    fn prologue(
        &mut self,
        frame_ptr: Value,
        captured: Option<Vec<Option<Value>>>,
    ) -> Result<Option<(Value, Block)>, CodegenError> {
        // The frame is valid, aligned and never written while the body runs, so its loads may
        // be moved and merged freely.
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        for n in 0..self.frame.dims.len() {
            let off = Frame::offset(self.frame.dim_base + n)?;
            let v = self.fb.ins().load(types::I64, flags, frame_ptr, off);
            self.dims.push(v);
        }
        // A task has the addresses of the local buffers its loop uses, and only those.
        let in_task = captured.is_some();
        let (temps, mut addresses) = match captured {
            Some(addresses) => (None, addresses),
            None => self.temporaries()?,
        };
        for (i, b) in self.f.buffers.iter().enumerate() {
            let id = BufferId(u32::try_from(i).unwrap_or(u32::MAX));
            let shape = self.shapes[i].clone();
            let param = self.f.params.iter().position(|&p| p == id);
            let base =
                match (b.kind, param) {
                    (BufferKind::Input | BufferKind::Output, Some(n)) => {
                        let off = Frame::offset(self.frame.data_slot[n])?;
                        Some(self.fb.ins().load(types::I64, flags, frame_ptr, off))
                    }
                    (BufferKind::Temp, _) if in_task => addresses[i].take(),
                    (BufferKind::Temp, _) => Some(addresses[i].take().ok_or_else(|| {
                        self.err(format!("temporary `{}` was not placed", b.name))
                    })?),
                    (BufferKind::Scoped, _) => addresses[i].take(),
                    (BufferKind::Input | BufferKind::Output, None) => {
                        return Err(self.err(format!("buffer `{}` is not a parameter", b.name)))
                    }
                };
            let rank = shape.len();
            let mut strides = Vec::with_capacity(rank);
            // The product of the extents after axis k: its C-order stride, whatever the
            // facts of the axes in between.
            let mut later: Option<Value> = None;
            for k in (0..rank).rev() {
                let stride = match (b.layout.fact(k, rank), param, later) {
                    (StrideFact::Runtime, Some(n), _) => {
                        let off = Frame::offset(self.frame.stride_slot[n] + k)?;
                        self.fb.ins().load(types::I64, flags, frame_ptr, off)
                    }
                    (StrideFact::Runtime, None, _) => {
                        return Err(
                            self.err(format!("local buffer `{}` has run-time strides", b.name))
                        )
                    }
                    (StrideFact::COrder, _, Some(product)) => product,
                    (StrideFact::Unit | StrideFact::COrder, _, _) => {
                        self.fb.ins().iconst(types::I64, 1)
                    }
                };
                strides.push(stride);
                if (0..k).any(|j| b.layout.fact(j, rank) == StrideFact::COrder) {
                    let e = self.extent(shape[k]);
                    later = Some(match later {
                        Some(p) => self.fb.ins().imul(p, e),
                        None => e,
                    });
                }
            }
            strides.reverse();
            // Data pointers are valid for every element the body addresses (the entry point
            // checked the ranges), and inputs are never written (no output overlaps them).
            let flags = match b.kind {
                BufferKind::Input => MemFlagsData::new().with_notrap().with_readonly(),
                BufferKind::Output | BufferKind::Temp | BufferKind::Scoped => {
                    MemFlagsData::new().with_notrap()
                }
            };
            self.bufs.push(Buf {
                base,
                strides,
                shift: i64::from(b.dtype.size_bytes().trailing_zeros()),
                flags,
                unit_last: b.layout.unit_last(rank),
            });
        }
        Ok(temps)
    }

    /// Lays out the temporaries in one block (in buffer order, each at an offset aligned to
    /// [`SCRATCH_ALIGN`] or its own `align`) and takes the block from the scratch functions.
    /// Returns the scratch block and the `OUT_OF_MEMORY` block (when there are temporaries),
    /// and each temporary's address by buffer number. A size that overflows, or a block that
    /// cannot be had, records why and branches to the `OUT_OF_MEMORY` block.
    #[allow(clippy::type_complexity)]
    fn temporaries(
        &mut self,
    ) -> Result<(Option<(Value, Block)>, Vec<Option<Value>>), CodegenError> {
        let f = self.f;
        let temps: Vec<usize> = (0..f.buffers.len())
            .filter(|&i| f.buffers[i].kind == BufferKind::Temp)
            .collect();
        let mut addresses = vec![None; f.buffers.len()];
        if temps.is_empty() {
            return Ok((None, addresses));
        }
        let scratch = self
            .scratch
            .ok_or_else(|| self.err("temporaries without the scratch functions"))?;
        let oom = self.fb.create_block();
        let what = |i: usize| format!("`{}` ({})", f.buffers[i].name, buffer_type(&f.buffers[i]));
        let all = match temps.as_slice() {
            [one] => format!("the temporary {}", what(*one)),
            many => format!(
                "the temporaries {}",
                many.iter().map(|&i| what(i)).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut end = self.ins().iconst(types::I64, 0);
        let mut total_overflow = self.ins().iconst(types::I8, 0);
        let mut offsets = Vec::with_capacity(temps.len());
        let mut block_align = SCRATCH_ALIGN;
        for &i in &temps {
            let b = &f.buffers[i];
            let mut bytes = self.ins().iconst(types::I64, b.dtype.size_bytes() as i64);
            let mut overflow = self.ins().iconst(types::I8, 0);
            for e in self.shapes[i].clone() {
                let e = self.extent(e);
                let (prod, o) = self.ins().umul_overflow(bytes, e);
                bytes = prod;
                overflow = self.ins().bor(overflow, o);
            }
            let too_large = Failure::new(
                status::OUT_OF_MEMORY,
                format!(
                    "cannot allocate the temporary {}: its size in bytes does not fit in 64 bits",
                    what(i)
                ),
            );
            self.fail_to(overflow, too_large, oom)?;
            let align = i64::from(b.align.unwrap_or(1)).max(SCRATCH_ALIGN);
            block_align = block_align.max(align);
            let pad = self.ins().iconst(types::I64, align - 1);
            let (bumped, o1) = self.ins().uadd_overflow(end, pad);
            let offset = self.ins().band_imm_s(bumped, -align);
            let (next, o2) = self.ins().uadd_overflow(offset, bytes);
            for o in [o1, o2] {
                total_overflow = self.ins().bor(total_overflow, o);
            }
            offsets.push(offset);
            end = next;
        }
        // The block is 64-aligned: a larger alignment needs room to round its start up.
        let room = self.ins().iconst(types::I64, block_align - SCRATCH_ALIGN);
        let (request, o) = self.ins().uadd_overflow(end, room);
        total_overflow = self.ins().bor(total_overflow, o);
        let too_large = Failure::new(
            status::OUT_OF_MEMORY,
            format!("cannot allocate {all}: their size in bytes does not fit in 64 bits"),
        );
        self.fail_to(total_overflow, too_large, oom)?;
        let acquire = self
            .module
            .declare_func_in_func(scratch.acquire, self.fb.func);
        let inst = self.ins().call(acquire, &[request]);
        let block = self.fb.inst_results(inst)[0];
        let null = self.ins().icmp_imm_s(IntCC::Equal, block, 0);
        let refused = Failure::new(
            status::OUT_OF_MEMORY,
            format!("cannot allocate {A} bytes for {all}"),
        )
        .with_a(end);
        self.fail_to(null, refused, oom)?;
        let base = if block_align > SCRATCH_ALIGN {
            self.align_up(block, block_align)
        } else {
            block
        };
        for (&i, offset) in temps.iter().zip(offsets) {
            addresses[i] = Some(self.ins().iadd(base, offset));
        }
        Ok((Some((block, oom)), addresses))
    }

    /// If `bad` holds, records `failure` (in a cold block) and jumps to `then`; continues in a
    /// new block otherwise.
    fn fail_to(&mut self, bad: Value, failure: Failure, then: Block) -> Result<(), CodegenError> {
        let cold = self.fb.create_block();
        let next = self.fb.create_block();
        self.fb.ins().brif(bad, cold, &[], next, &[]);
        self.fb.switch_to_block(cold);
        self.fb.set_cold_block(cold);
        let record = match self.record {
            Some(r) => r,
            None => {
                let r = self
                    .module
                    .declare_func_in_func(self.errors.record, self.fb.func);
                self.record = Some(r);
                r
            }
        };
        self.errors
            .emit_record(self.module, &mut self.fb, record, &failure)?;
        self.fb.ins().jump(then, &[]);
        self.fb.switch_to_block(next);
        Ok(())
    }

    /// `addr` rounded up to a multiple of `align` when that is above 8 (stack slots are
    /// 8-aligned and scratch blocks 64-aligned already, and both are one `align` larger than
    /// needed when they need rounding).
    fn align_up(&mut self, addr: Value, align: i64) -> Value {
        if align <= 8 {
            return addr;
        }
        let bumped = self.ins().iadd_imm_s(addr, align - 1);
        self.ins().band_imm_s(bumped, -align)
    }

    /// A stack slot for a scoped buffer (fixed extents), and its aligned address.
    fn scoped(&mut self, b: &loops::BufferDef, shape: &[Ext]) -> Result<Value, CodegenError> {
        let mut bytes = b.dtype.size_bytes() as u64;
        for e in shape {
            let Ext::Fixed(n) = *e else {
                return Err(self.err(format!("scoped buffer `{}` has a symbolic extent", b.name)));
            };
            bytes = u64::try_from(n)
                .ok()
                .and_then(|n| bytes.checked_mul(n))
                .filter(|&n| n <= loops::MAX_SCOPED_BYTES)
                .ok_or_else(|| self.err(format!("scoped buffer `{}` is too large", b.name)))?;
        }
        let align = i64::from(b.align.unwrap_or(1)).max(1);
        let size = bytes + if align > 8 { align as u64 } else { 0 };
        let size = u32::try_from(size.max(1))
            .map_err(|_| self.err(format!("scoped buffer `{}` is too large", b.name)))?;
        let slot = self.fb.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            size,
            3,
        ));
        let addr = self.fb.ins().stack_addr(types::I64, slot, 0);
        Ok(self.align_up(addr, align))
    }

    fn extent(&mut self, e: Ext) -> Value {
        match e {
            Ext::Fixed(n) => self.fb.ins().iconst(types::I64, n),
            Ext::Sym(n) => self.dims[n],
        }
    }

    fn val(&self, id: ValueId) -> Result<Value, CodegenError> {
        self.values
            .get(id.0 as usize)
            .copied()
            .flatten()
            .ok_or_else(|| {
                self.err(format!(
                    "value {} is used before it is defined",
                    self.name(id)
                ))
            })
    }

    fn name(&self, id: ValueId) -> String {
        match self.f.value(id) {
            Some(v) => format!("%{}", v.name),
            None => format!("#{}", id.0),
        }
    }

    fn ty(&self, id: ValueId) -> Result<Type, CodegenError> {
        self.f
            .value(id)
            .map(|v| v.ty)
            .ok_or_else(|| self.err(format!("value #{} does not exist", id.0)))
    }

    fn clif_ty(&self, id: ValueId) -> Result<ClifType, CodegenError> {
        let t = self.ty(id)?;
        clif_type(t).ok_or_else(|| {
            self.err(format!(
                "value {} has type {t:?}, which is not a 128-bit vector",
                self.name(id)
            ))
        })
    }

    fn define(&mut self, id: ValueId, v: Value) -> Result<(), CodegenError> {
        match self.values.get_mut(id.0 as usize) {
            Some(slot @ None) => {
                *slot = Some(v);
                Ok(())
            }
            Some(Some(_)) => Err(self.err(format!("value {} is defined twice", self.name(id)))),
            None => Err(self.err(format!("value #{} does not exist", id.0))),
        }
    }

    fn block(&mut self, b: &loops::Block) -> Result<(), CodegenError> {
        for inst in &b.insts {
            match inst {
                Inst::Assign { result, op } => {
                    let v = self.op(*result, op)?;
                    self.define(*result, v)?;
                }
                Inst::Store {
                    buffer,
                    index,
                    value,
                } => {
                    if self.f.buffer(*buffer).map(|b| b.kind) == Some(BufferKind::Input) {
                        return Err(self.err("a store writes an input buffer"));
                    }
                    let lanes = self.clif_ty(*value)?.lane_count();
                    let (addr, flags) = self.address(*buffer, index, lanes)?;
                    let v = self.val(*value)?;
                    self.fb.ins().store(flags, v, addr, 0);
                }
                Inst::For(l) => self.for_loop(l)?,
                // A stack slot of the function being built (so each task of a parallel loop
                // that declares it has its own); its elements are undefined at each start.
                Inst::Scoped(id) => {
                    let i = id.0 as usize;
                    let b = self
                        .f
                        .buffer(*id)
                        .ok_or_else(|| self.err(format!("buffer #{i} does not exist")))?;
                    let shape = self.shapes[i].clone();
                    let base = self.scoped(b, &shape)?;
                    self.bufs[i].base = Some(base);
                }
                Inst::StoreAt { ptr, value } => {
                    let buffer = self.target(*ptr)?;
                    if self.f.buffer(buffer).map(|b| b.kind) == Some(BufferKind::Input) {
                        return Err(self.err("a store writes an input buffer"));
                    }
                    let lanes = self.clif_ty(*value)?.lane_count();
                    let (addr, flags) = self.pointer(*ptr, lanes)?;
                    let v = self.val(*value)?;
                    self.fb.ins().store(flags, v, addr, 0);
                }
                Inst::Ukernel(u) => self.ukernel(u)?,
            }
        }
        Ok(())
    }

    /// A micro-kernel call: the argument block of `docs/ukernel.md` in a stack slot, then the
    /// call.
    fn ukernel(&mut self, u: &loops::Ukernel) -> Result<(), CodegenError> {
        use ukernel::{args, flags as bits};
        let slot = match self.ukernel_args {
            Some(s) => s,
            None => {
                let s = self.fb.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    args::SIZE,
                    3,
                ));
                self.ukernel_args = Some(s);
                s
            }
        };
        let p = self.fb.ins().stack_addr(types::I64, slot, 0);
        let store = MemFlagsData::trusted();
        let put = |g: &mut Self, off: i32, v: Value| {
            g.fb.ins().store(store, v, p, off);
        };
        for (off, id) in [(args::KC, u.kc), (args::MR, u.mr), (args::NR, u.nr)] {
            let v = self.val(id)?;
            put(self, off, v);
        }
        let (a, a_ms, a_ks) = self.tile_operand(&u.a, Coord::M, Coord::K)?;
        put(self, args::A, a);
        put(self, args::A_MS, a_ms);
        put(self, args::A_KS, a_ks);
        // From one m-tile to the next: the `mt` axes (a packed A's panels), else `MR` rows.
        let a_ts = if u.a.axes_of(Coord::MTile).is_empty() {
            self.fb.ins().imul_imm_s(a_ms, i64::from(u.shape.mr))
        } else {
            self.tile_operand(&u.a, Coord::MTile, Coord::MTile)?.1
        };
        put(self, args::A_TS, a_ts);
        let (b, b_ks, _) = self.tile_operand(&u.b, Coord::K, Coord::N)?;
        put(self, args::B, b);
        put(self, args::B_KS, b_ks);
        let (c, c_ms, _) = self.tile_operand(&u.c, Coord::M, Coord::N)?;
        put(self, args::C, c);
        put(self, args::C_MS, c_ms);
        let mut static_flags = 0;
        let (bias, bias_s) = match &u.bias {
            Some(t) => {
                let along_m = !t.axes_of(Coord::M).is_empty() || t.axes_of(Coord::N).is_empty();
                let coord = if along_m { Coord::M } else { Coord::N };
                static_flags |= bits::BIAS | if along_m { bits::BIAS_M } else { 0 };
                let (addr, s, _) = self.tile_operand(t, coord, coord)?;
                (addr, s)
            }
            None => {
                let zero = self.fb.ins().iconst(types::I64, 0);
                (zero, zero)
            }
        };
        put(self, args::BIAS, bias);
        put(self, args::BIAS_S, bias_s);
        if let Some(s) = u.scale {
            static_flags |= if u.divide { bits::DIVIDE } else { bits::SCALE };
            let v = self.val(s)?;
            put(self, args::SCALE, v);
        }
        if u.relu {
            static_flags |= bits::RELU;
        }
        let init = self.val(u.init)?;
        let init = self.fb.ins().uextend(types::I64, init);
        let flags = self.fb.ins().bor_imm_s(init, static_flags);
        put(self, args::FLAGS, flags);
        let fref = self.ukernels.func_ref(self.module, &mut self.fb, u.shape)?;
        self.fb.ins().call(fref, &[p]);
        Ok(())
    }

    /// The address of a tile operand's first element and its element strides along coordinates
    /// `x` and `y` (the sum of the strides of the axes advancing with each).
    fn tile_operand(
        &mut self,
        t: &TileOperand,
        x: Coord,
        y: Coord,
    ) -> Result<(Value, Value, Value), CodegenError> {
        let (addr, _) = self.address(t.buffer, &t.start, 1)?;
        let strides = self.bufs[t.buffer.0 as usize].strides.clone();
        let along = |g: &mut Self, c: Coord| -> Result<Value, CodegenError> {
            let mut sum = g.fb.ins().iconst(types::I64, 0);
            for &axis in t.axes_of(c) {
                let s = *strides
                    .get(axis as usize)
                    .ok_or_else(|| g.err("a micro-kernel operand names a missing axis"))?;
                sum = g.fb.ins().iadd(sum, s);
            }
            Ok(sum)
        };
        let sx = along(self, x)?;
        let sy = along(self, y)?;
        Ok((addr, sx, sy))
    }

    fn for_loop(&mut self, l: &loops::For) -> Result<(), CodegenError> {
        if l.parallel && l.carried.is_empty() {
            if let Some(name) = self.outline {
                return self.parallel_loop(l, name);
            }
        }
        let lower = self.val(l.lower)?;
        let upper = self.val(l.upper)?;
        self.loop_over(l, lower, upper)
    }

    /// Loop `l` run from `lower` to `upper` (CLIF values).
    fn loop_over(
        &mut self,
        l: &loops::For,
        lower: Value,
        upper: Value,
    ) -> Result<(), CodegenError> {
        let step = self.step(l)?;
        if l.yields.len() != l.carried.len() {
            return Err(self.err("a loop yields a different number of values than it carries"));
        }
        let body = self.fb.create_block();
        let exit = self.fb.create_block();
        let iv = self.fb.append_block_param(body, types::I64);
        self.define(l.var, iv)?;
        let mut inits = Vec::with_capacity(l.carried.len());
        for c in &l.carried {
            let t = self.clif_ty(c.arg)?;
            let arg = self.fb.append_block_param(body, t);
            self.define(c.arg, arg)?;
            if let Some(&b) = self.points_into.get(&c.init) {
                self.points_into.insert(c.arg, b);
                self.points_into.insert(c.result, b);
            }
            let result = self.fb.append_block_param(exit, t);
            self.define(c.result, result)?;
            inits.push(BlockArg::from(self.val(c.init)?));
        }
        let mut entry_args = vec![BlockArg::from(lower)];
        entry_args.extend(inits.iter().copied());
        let go = self.fb.ins().icmp(IntCC::SignedLessThan, lower, upper);
        self.fb.ins().brif(go, body, &entry_args, exit, &inits);

        self.fb.switch_to_block(body);
        self.block(&l.body)?;
        let next = self.fb.ins().iadd_imm_s(iv, step);
        let yields = l
            .yields
            .iter()
            .map(|y| self.val(*y).map(BlockArg::from))
            .collect::<Result<Vec<_>, _>>()?;
        let mut back_args = vec![BlockArg::from(next)];
        back_args.extend(yields.iter().copied());
        let again = self.fb.ins().icmp(IntCC::SignedLessThan, next, upper);
        self.fb.ins().brif(again, body, &back_args, exit, &yields);
        self.fb.switch_to_block(exit);
        Ok(())
    }

    /// The step of loop `l`, checked.
    fn step(&self, l: &loops::For) -> Result<i64, CodegenError> {
        i64::try_from(l.step)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| self.err(format!("loop step {} is out of range", l.step)))
    }

    /// The address a `ptr` value holds and the flags to access its buffer with, for an access
    /// of `lanes` elements (which needs a unit stride along the last axis).
    fn pointer(&mut self, ptr: ValueId, lanes: u32) -> Result<(Value, MemFlagsData), CodegenError> {
        let buffer = self.target(ptr)?;
        let b = &self.bufs[buffer.0 as usize];
        if lanes > 1 && !b.unit_last {
            let name = self.f.buffer(buffer).map_or("?", |b| b.name.as_str());
            return Err(self.err(format!(
                "vector access to `{name}`, whose last axis has no unit stride"
            )));
        }
        let flags = b.flags;
        Ok((self.val(ptr)?, flags))
    }

    /// The buffer a `ptr` value points into.
    fn target(&self, ptr: ValueId) -> Result<BufferId, CodegenError> {
        self.points_into
            .get(&ptr)
            .copied()
            .filter(|b| (b.0 as usize) < self.bufs.len())
            .ok_or_else(|| self.err(format!("{} is not a pointer into a buffer", self.name(ptr))))
    }

    /// The address of element `index` of `buffer` and the flags to access it with, for an
    /// access of `lanes` elements.
    fn address(
        &mut self,
        buffer: BufferId,
        index: &[ValueId],
        lanes: u32,
    ) -> Result<(Value, MemFlagsData), CodegenError> {
        let b = self
            .bufs
            .get(buffer.0 as usize)
            .ok_or_else(|| self.err(format!("buffer #{} does not exist", buffer.0)))?;
        let name = self.f.buffer(buffer).map_or("?", |b| b.name.as_str());
        if index.len() != b.strides.len() {
            return Err(self.err(format!(
                "buffer `{name}` has rank {} but is indexed with {} indices",
                b.strides.len(),
                index.len()
            )));
        }
        if lanes > 1 && !b.unit_last {
            return Err(self.err(format!(
                "vector access to `{name}`, whose last axis has no unit stride"
            )));
        }
        let (shift, flags) = (b.shift, b.flags);
        let base = b.base.ok_or_else(|| {
            self.err(format!(
                "scoped buffer `{name}` is used before its `scoped` instruction"
            ))
        })?;
        let strides = b.strides.clone();
        let mut offset: Option<Value> = None;
        for (i, s) in index.iter().zip(strides) {
            let i = self.val(*i)?;
            let term = self.fb.ins().imul(i, s);
            offset = Some(match offset {
                Some(o) => self.fb.ins().iadd(o, term),
                None => term,
            });
        }
        let addr = match offset {
            Some(o) => {
                let bytes = self.fb.ins().ishl_imm_s(o, shift);
                self.fb.ins().iadd(base, bytes)
            }
            None => base,
        };
        Ok((addr, flags))
    }

    /// The element dtype of a scalar or vector value.
    fn dtype(&self, id: ValueId) -> Result<DType, CodegenError> {
        self.ty(id)?
            .dtype()
            .ok_or_else(|| self.err(format!("value {} is not a number", self.name(id))))
    }

    fn op(&mut self, result: ValueId, op: &Op) -> Result<Value, CodegenError> {
        let rty = self.clif_ty(result)?;
        Ok(match op {
            Op::IndexConst(c) => {
                self.consts.insert(result, *c);
                self.ins().iconst(types::I64, *c)
            }
            Op::Dim(name) => match self.frame.dim(self.m, name) {
                Some(e) => self.extent(e),
                None => return Err(self.err(format!("unknown dim `{name}`"))),
            },
            Op::IndexArith(o, a, b) => {
                // A known divisor other than 0 and -1 cannot trap, and Cranelift turns the
                // division into multiplications and shifts.
                let safe_divisor = self.consts.get(b).is_some_and(|&d| d != 0 && d != -1);
                let (a, b) = (self.val(*a)?, self.val(*b)?);
                match o {
                    IndexOp::Add => self.ins().iadd(a, b),
                    IndexOp::Sub => self.ins().isub(a, b),
                    IndexOp::Mul => self.ins().imul(a, b),
                    IndexOp::Min => self.ins().smin(a, b),
                    IndexOp::Max => self.ins().smax(a, b),
                    IndexOp::Div if safe_divisor => self.ins().sdiv(a, b),
                    IndexOp::Rem if safe_divisor => self.ins().srem(a, b),
                    IndexOp::Div => self.int_div(a, b),
                    IndexOp::Rem => {
                        let q = self.int_div(a, b);
                        let p = self.ins().imul(b, q);
                        self.ins().isub(a, p)
                    }
                }
            }
            Op::Const(s) => {
                let v = self.scalar_const(*s);
                if self.fb.func.dfg.value_type(v) != rty {
                    return Err(self.err(format!(
                        "constant {s:?} does not match {}",
                        self.name(result)
                    )));
                }
                v
            }
            Op::Splat(x, _) => {
                let x = self.val(*x)?;
                self.ins().splat(rty, x)
            }
            Op::Unary(fun, x) => {
                let d = self.dtype(*x)?;
                let x = self.val(*x)?;
                self.unary(*fun, x, d)?
            }
            Op::Binary(fun, a, b) => {
                let d = self.dtype(*a)?;
                let (a, b) = (self.val(*a)?, self.val(*b)?);
                self.binary(*fun, a, b, d)?
            }
            Op::Fma(a, b, c) => {
                let d = self.dtype(*a)?;
                let (a, b, c) = (self.val(*a)?, self.val(*b)?, self.val(*c)?);
                if d.is_float() && self.has_fma {
                    self.ins().fma(a, b, c)
                } else {
                    let p = self.binary(BinaryFn::Mul, a, b, d)?;
                    self.binary(BinaryFn::Add, p, c, d)?
                }
            }
            Op::Cmp(cmp, a, b) => {
                let ta = self.ty(*a)?;
                let (a, b) = (self.val(*a)?, self.val(*b)?);
                match ta {
                    Type::Scalar(d) if d.is_float() => self.ins().fcmp(float_cc(*cmp), a, b),
                    Type::Scalar(_) | Type::Index => self.ins().icmp(int_cc(*cmp), a, b),
                    Type::Bool | Type::Vector(..) | Type::Ptr => {
                        return Err(self.err(format!("comparison of {ta:?} values")))
                    }
                }
            }
            Op::And(a, b) => {
                let (a, b) = (self.val(*a)?, self.val(*b)?);
                self.ins().band(a, b)
            }
            Op::Or(a, b) => {
                let (a, b) = (self.val(*a)?, self.val(*b)?);
                self.ins().bor(a, b)
            }
            // Booleans are 0 or 1 (what `icmp`/`fcmp` produce).
            Op::Not(a) => {
                let a = self.val(*a)?;
                self.ins().bxor_imm_s(a, 1)
            }
            Op::Select(c, a, b) => {
                let (c, a, b) = (self.val(*c)?, self.val(*a)?, self.val(*b)?);
                self.ins().select(c, a, b)
            }
            Op::Cast(to, x) => self.cast(*to, *x, rty)?,
            Op::Load {
                buffer,
                index,
                lanes,
            } => {
                if rty.lane_count() != *lanes {
                    return Err(self.err(format!(
                        "a load of {lanes} lanes defines {}",
                        self.name(result)
                    )));
                }
                let (addr, flags) = self.address(*buffer, index, *lanes)?;
                self.ins().load(rty, flags, addr, 0)
            }
            Op::ReduceLanes(kind, v) => {
                let d = self.dtype(*v)?;
                let n = self.clif_ty(*v)?.lane_count();
                let v = self.val(*v)?;
                let f = match kind {
                    ReduceKind::Add => BinaryFn::Add,
                    ReduceKind::Mul => BinaryFn::Mul,
                    ReduceKind::Max => BinaryFn::Max,
                    ReduceKind::Min => BinaryFn::Min,
                };
                let mut lanes: Vec<Value> = (0..n)
                    .map(|i| self.ins().extractlane(v, lane_index(i)))
                    .collect();
                // The halving order of `docs/ir.md`: lane i with lane i + n/2, recursively,
                // exactly as the evaluator combines them.
                while lanes.len() > 1 {
                    let half = lanes.len() / 2;
                    let mut next = Vec::with_capacity(half);
                    for i in 0..half {
                        next.push(self.binary(f, lanes[i], lanes[i + half], d)?);
                    }
                    lanes = next;
                }
                lanes
                    .pop()
                    .ok_or_else(|| self.err("reduction of a vector with no lanes"))?
            }
            Op::Addr { buffer, index } => {
                self.points_into.insert(result, *buffer);
                self.address(*buffer, index, 1)?.0
            }
            Op::Advance { ptr, by, axes } => {
                let buffer = self.target(*ptr)?;
                self.points_into.insert(result, buffer);
                let b = &self.bufs[buffer.0 as usize];
                let (shift, strides) = (b.shift, b.strides.clone());
                let mut step: Option<Value> = None;
                for &a in axes {
                    let s = *strides
                        .get(a as usize)
                        .ok_or_else(|| self.err(format!("`advance` along missing axis {a}")))?;
                    step = Some(match step {
                        Some(t) => self.ins().iadd(t, s),
                        None => s,
                    });
                }
                let p = self.val(*ptr)?;
                match step {
                    Some(step) => {
                        let by = self.val(*by)?;
                        let elems = self.ins().imul(by, step);
                        let bytes = self.ins().ishl_imm_s(elems, shift);
                        self.ins().iadd(p, bytes)
                    }
                    None => p,
                }
            }
            Op::LoadAt { ptr, lanes } => {
                if rty.lane_count() != *lanes {
                    return Err(self.err(format!(
                        "a load of {lanes} lanes defines {}",
                        self.name(result)
                    )));
                }
                let (addr, flags) = self.pointer(*ptr, *lanes)?;
                self.ins().load(rty, flags, addr, 0)
            }
        })
    }

    fn scalar_const(&mut self, s: Scalar) -> Value {
        match s {
            Scalar::F32(x) => self.fb.ins().f32const(x),
            Scalar::F64(x) => self.fb.ins().f64const(x),
            Scalar::I32(x) => self.fb.ins().iconst(types::I32, i64::from(x)),
            Scalar::I64(x) => self.fb.ins().iconst(types::I64, x),
        }
    }

    /// A constant of type `ty` (a scalar or a vector of equal lanes) with value `x`.
    fn constant(&mut self, ty: ClifType, x: f64) -> Value {
        let lane = ty.lane_type();
        let s = if lane == types::F32 {
            self.fb.ins().f32const(x as f32)
        } else if lane == types::F64 {
            self.fb.ins().f64const(x)
        } else {
            self.fb.ins().iconst(lane, x as i64)
        };
        if ty.is_vector() {
            self.fb.ins().splat(ty, s)
        } else {
            s
        }
    }

    fn float_only(&self, d: DType, what: &str) -> Result<(), CodegenError> {
        if d.is_float() {
            Ok(())
        } else {
            Err(self.err(format!("{what} of an integer ({d}) value")))
        }
    }

    fn unary(&mut self, fun: UnaryFn, x: Value, d: DType) -> Result<Value, CodegenError> {
        let ty = self.fb.func.dfg.value_type(x);
        let float = d.is_float();
        Ok(match fun {
            UnaryFn::Neg if float => self.fb.ins().fneg(x),
            UnaryFn::Neg => self.fb.ins().ineg(x),
            UnaryFn::Abs if float => self.fb.ins().fabs(x),
            UnaryFn::Abs => self.fb.ins().iabs(x),
            UnaryFn::Relu => {
                let zero = self.constant(ty, 0.0);
                if float && ty.is_vector() && self.x86_64() {
                    math::x86_vector_max_min(&mut self.fb, true, x, zero)
                } else if float {
                    self.fb.ins().fmax(x, zero)
                } else {
                    self.fb.ins().smax(x, zero)
                }
            }
            UnaryFn::Sqrt => {
                self.float_only(d, "sqrt")?;
                self.fb.ins().sqrt(x)
            }
            UnaryFn::Rsqrt => {
                self.float_only(d, "rsqrt")?;
                let one = self.constant(ty, 1.0);
                let s = self.fb.ins().sqrt(x);
                self.fb.ins().fdiv(one, s)
            }
            UnaryFn::Exp | UnaryFn::Log | UnaryFn::Tanh | UnaryFn::Sigmoid => {
                self.float_only(d, "a transcendental function")?;
                self.transcendental(fun, x)
            }
        })
    }

    /// Whether the code is for x86-64 (where vector float max/min have a shorter sequence than
    /// Cranelift's, [`math::x86_vector_max_min`]).
    fn x86_64(&self) -> bool {
        self.module.isa().triple().architecture == target_lexicon::Architecture::X86_64
    }

    /// exp, log, tanh and sigmoid, inline (see `codegen::math`).
    fn transcendental(&mut self, fun: UnaryFn, x: Value) -> Value {
        let f = match fun {
            UnaryFn::Exp => Transcendental::Exp,
            UnaryFn::Log => Transcendental::Log,
            UnaryFn::Tanh => Transcendental::Tanh,
            _ => Transcendental::Sigmoid,
        };
        math::emit(&mut self.fb, f, x, self.has_fma)
    }

    fn binary(
        &mut self,
        fun: BinaryFn,
        a: Value,
        b: Value,
        d: DType,
    ) -> Result<Value, CodegenError> {
        let float = d.is_float();
        let ty = self.fb.func.dfg.value_type(a);
        Ok(match fun {
            BinaryFn::Add if float => self.ins().fadd(a, b),
            BinaryFn::Add => self.ins().iadd(a, b),
            BinaryFn::Sub if float => self.ins().fsub(a, b),
            BinaryFn::Sub => self.ins().isub(a, b),
            BinaryFn::Mul if float => self.ins().fmul(a, b),
            BinaryFn::Mul => self.ins().imul(a, b),
            BinaryFn::Div if float => self.ins().fdiv(a, b),
            BinaryFn::Div => self.lanewise(&[a, b], ty, |g, v| Ok(g.int_div(v[0], v[1])))?,
            BinaryFn::Max if float && ty.is_vector() && self.x86_64() => {
                math::x86_vector_max_min(&mut self.fb, true, a, b)
            }
            BinaryFn::Max if float => self.ins().fmax(a, b),
            BinaryFn::Max => self.ins().smax(a, b),
            BinaryFn::Min if float && ty.is_vector() && self.x86_64() => {
                math::x86_vector_max_min(&mut self.fb, false, a, b)
            }
            BinaryFn::Min if float => self.ins().fmin(a, b),
            BinaryFn::Min => self.ins().smin(a, b),
            BinaryFn::Pow => {
                self.float_only(d, "pow")?;
                let call = Libcall::Math(MathFn::Pow, float_width(d));
                self.lanewise(&[a, b], ty, |g, v| {
                    let r = g.libs.call(g.module, &mut g.fb, call, v)?;
                    r.ok_or_else(|| g.err("libm call without a result"))
                })?
            }
        })
    }

    /// Scalar integer division that never traps: `a / 0 == 0`, `MIN / -1 == MIN`.
    fn int_div(&mut self, a: Value, b: Value) -> Value {
        let ty = self.fb.func.dfg.value_type(a);
        let zero = self.ins().iconst(ty, 0);
        let one = self.ins().iconst(ty, 1);
        let is_zero = self.ins().icmp_imm_s(IntCC::Equal, b, 0);
        let is_minus_one = self.ins().icmp_imm_s(IntCC::Equal, b, -1);
        let special = self.ins().bor(is_zero, is_minus_one);
        let safe = self.ins().select(special, one, b);
        let q = self.ins().sdiv(a, safe);
        let neg = self.ins().ineg(a);
        let q = self.ins().select(is_minus_one, neg, q);
        self.ins().select(is_zero, zero, q)
    }

    /// Applies `f` to each lane of `args` (all of the same vector type) and gathers the results
    /// into a value of type `result`; on scalars, applies `f` once.
    fn lanewise(
        &mut self,
        args: &[Value],
        result: ClifType,
        mut f: impl FnMut(&mut Self, &[Value]) -> Result<Value, CodegenError>,
    ) -> Result<Value, CodegenError> {
        let first = args
            .first()
            .ok_or_else(|| self.err("lane-wise operation without operands"))?;
        let ty = self.fb.func.dfg.value_type(*first);
        if !ty.is_vector() {
            return f(self, args);
        }
        let mut acc: Option<Value> = None;
        for lane in 0..ty.lane_count() {
            let idx = lane_index(lane);
            let elems: Vec<Value> = args
                .iter()
                .map(|a| self.fb.ins().extractlane(*a, idx))
                .collect();
            let r = f(self, &elems)?;
            acc = Some(match acc {
                None => self.fb.ins().splat(result, r),
                Some(v) => self.fb.ins().insertlane(v, r, idx),
            });
        }
        acc.ok_or_else(|| self.err("vector with no lanes"))
    }

    /// numpy `astype`: ints widen by sign extension and narrow by truncation, floats → ints
    /// saturate (NaN → 0), ints → floats round to nearest; `Index` converts like `i64` and a
    /// `Bool` to 0 or 1.
    fn cast(&mut self, to: DType, x: ValueId, rty: ClifType) -> Result<Value, CodegenError> {
        let from = match self.ty(x)? {
            Type::Index => DType::I64,
            Type::Scalar(d) | Type::Vector(d, _) => d,
            Type::Ptr => return Err(self.err(format!("cast of the pointer {}", self.name(x)))),
            Type::Bool => {
                let c = self.val(x)?;
                let one = self.constant(rty, 1.0);
                let zero = self.constant(rty, 0.0);
                return Ok(self.fb.ins().select(c, one, zero));
            }
        };
        let v = self.val(x)?;
        let ty = self.fb.func.dfg.value_type(v);
        if ty.is_vector() && ty.lane_bits() == 64 && from != to {
            // 64-bit lane conversions have no SSE lowering; convert each lane.
            let lane = rty.lane_type();
            return self.lanewise(&[v], rty, |g, a| Ok(g.convert(a[0], from, to, lane)));
        }
        if ty.lane_count() != rty.lane_count() {
            return Err(self.err(format!(
                "cast changes the number of lanes of {}",
                self.name(x)
            )));
        }
        Ok(self.convert(v, from, to, rty))
    }

    /// Converts `v` (of dtype `from`) to `to`, giving type `rty`.
    fn convert(&mut self, v: Value, from: DType, to: DType, rty: ClifType) -> Value {
        let ins = self.fb.ins();
        match (from.is_float(), to.is_float()) {
            _ if from == to => v,
            (false, false) if to.size_bytes() > from.size_bytes() => ins.sextend(rty, v),
            (false, false) => ins.ireduce(rty, v),
            (false, true) => ins.fcvt_from_sint(rty, v),
            (true, false) => ins.fcvt_to_sint_sat(rty, v),
            (true, true) if to == DType::F64 => ins.fpromote(rty, v),
            (true, true) => ins.fdemote(rty, v),
        }
    }
}

fn lane_index(lane: u32) -> u8 {
    // Vectors are 128 bits, so there are at most 16 lanes.
    u8::try_from(lane).unwrap_or(u8::MAX)
}

fn float_width(d: DType) -> FloatWidth {
    if d == DType::F32 {
        FloatWidth::F32
    } else {
        FloatWidth::F64
    }
}

fn float_cc(c: CmpOp) -> FloatCC {
    match c {
        CmpOp::Lt => FloatCC::LessThan,
        CmpOp::Le => FloatCC::LessThanOrEqual,
        CmpOp::Gt => FloatCC::GreaterThan,
        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
        CmpOp::Eq => FloatCC::Equal,
        // True when either operand is NaN, like numpy's `!=`.
        CmpOp::Ne => FloatCC::NotEqual,
    }
}

fn int_cc(c: CmpOp) -> IntCC {
    match c {
        CmpOp::Lt => IntCC::SignedLessThan,
        CmpOp::Le => IntCC::SignedLessThanOrEqual,
        CmpOp::Gt => IntCC::SignedGreaterThan,
        CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
        CmpOp::Eq => IntCC::Equal,
        CmpOp::Ne => IntCC::NotEqual,
    }
}
