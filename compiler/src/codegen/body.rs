//! Loop IR → CLIF: the body function of a kernel, `void body(const int64 *frame)`.
//!
//! Loop-IR values map one to one to CLIF values: both are SSA and a loop-IR value is visible
//! only where its definition dominates, so no variables are needed. A `for` loop becomes a
//! guarded, rotated loop (`if lower < upper { do body while next < upper }`) whose block
//! parameters are the induction variable and the carried values. Element addresses are
//! `base + (sum idx_k * stride_k) * size` in signed 64-bit arithmetic; strides come from the
//! caller (strided buffers) or from the extents (C order).
//!
//! Semantics that differ from Cranelift's defaults: integer division never traps (division by
//! zero gives 0, `MIN / -1` wraps), float max/min propagate NaN (Cranelift's `fmax`/`fmin`
//! follow the WebAssembly rules, which do), float → int casts saturate with NaN → 0 (the
//! `_sat` conversions).

use super::libcall::{FloatWidth, Libcall, Libcalls, MathFn};
use super::math::{self, Transcendental};
use super::{clif_scalar, unsupported, CodegenError, Ext, Frame};
use crate::ir::loops::{
    self, BinaryFn, BufferId, BufferKind, CmpOp, IndexOp, Inst, Op, ReduceKind, Type, UnaryFn,
    ValueId,
};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, InstBuilder, MemFlagsData, Signature, Type as ClifType, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FuncInstBuilder, FunctionBuilder, FunctionBuilderContext};
use cranelift_module::Module;
use einc_runtime::{DType, Scalar};

/// The signature of a body function: one pointer to the frame.
pub fn signature<M: Module>(module: &M) -> Signature {
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    sig
}

/// The CLIF type of a loop-IR type, if code generation supports it (vectors must be 128 bits).
pub fn clif_type(t: Type) -> Option<ClifType> {
    match t {
        Type::Index => Some(types::I64),
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

/// Builds the body of kernel `f` into `ctx.func`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build<M: Module>(
    module: &mut M,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    libs: &mut Libcalls,
    m: &loops::Module,
    f: &loops::Function,
    frame: &Frame,
    has_fma: bool,
) -> Result<(), CodegenError> {
    ctx.func.signature = signature(module);
    libs.begin_function();
    let mut fb = FunctionBuilder::new(&mut ctx.func, fctx);
    let start = fb.create_block();
    fb.append_block_params_for_function_params(start);
    fb.switch_to_block(start);
    let frame_ptr = fb.block_params(start)[0];
    let mut g = Gen {
        module,
        fb,
        libs,
        m,
        f,
        frame,
        has_fma,
        values: vec![None; f.values.len()],
        bufs: Vec::with_capacity(f.buffers.len()),
        dims: Vec::with_capacity(frame.dims.len()),
    };
    g.prologue(frame_ptr)?;
    g.block(&f.body)?;
    g.fb.ins().return_(&[]);
    g.fb.seal_all_blocks();
    let config = g.module.target_config();
    g.fb.finalize(config);
    Ok(())
}

/// How to address one buffer.
struct Buf {
    base: Value,
    /// Element stride of each axis (an `i64` value).
    strides: Vec<Value>,
    /// log2 of the element size.
    shift: i64,
    flags: MemFlagsData,
    /// Whether vector accesses are allowed (C order).
    contiguous: bool,
}

/// The state of building one body.
struct Gen<'a, 'b, M: Module> {
    module: &'a mut M,
    fb: FunctionBuilder<'b>,
    libs: &'a mut Libcalls,
    m: &'a loops::Module,
    f: &'a loops::Function,
    frame: &'a Frame,
    has_fma: bool,
    /// The CLIF value of each loop-IR value, once defined.
    values: Vec<Option<Value>>,
    bufs: Vec<Buf>,
    /// Symbolic dims, by number.
    dims: Vec<Value>,
}

impl<'b, M: Module> Gen<'_, 'b, M> {
    fn ins(&mut self) -> FuncInstBuilder<'_, 'b> {
        self.fb.ins()
    }

    fn err(&self, message: impl Into<String>) -> CodegenError {
        unsupported(self.f, message)
    }

    /// Reads the frame: dims, then data pointers and strides.
    fn prologue(&mut self, frame_ptr: Value) -> Result<(), CodegenError> {
        // The frame is valid, aligned and never written while the body runs, so its loads may
        // be moved and merged freely.
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        for n in 0..self.frame.dims.len() {
            let off = Frame::offset(self.frame.dim_base + n)?;
            let v = self.fb.ins().load(types::I64, flags, frame_ptr, off);
            self.dims.push(v);
        }
        for (i, b) in self.f.buffers.iter().enumerate() {
            let off = Frame::offset(self.frame.data_slot[i])?;
            let base = self.fb.ins().load(types::I64, flags, frame_ptr, off);
            let shape = &self.frame.shapes[i];
            let strides = match self.frame.stride_slot[i] {
                Some(first) => (0..shape.len())
                    .map(|k| {
                        let off = Frame::offset(first + k)?;
                        Ok(self.fb.ins().load(types::I64, flags, frame_ptr, off))
                    })
                    .collect::<Result<Vec<_>, CodegenError>>()?,
                None => {
                    let mut strides = vec![self.fb.ins().iconst(types::I64, 1); shape.len()];
                    for k in (0..shape.len().saturating_sub(1)).rev() {
                        let e = self.extent(shape[k + 1]);
                        strides[k] = self.fb.ins().imul(strides[k + 1], e);
                    }
                    strides
                }
            };
            // Data pointers are valid for every element the body addresses (the entry point
            // checked the ranges), and inputs are never written (no output overlaps them).
            let flags = match b.kind {
                BufferKind::Input => MemFlagsData::new().with_notrap().with_readonly(),
                BufferKind::Output | BufferKind::Temp => MemFlagsData::new().with_notrap(),
            };
            self.bufs.push(Buf {
                base,
                strides,
                shift: i64::from(b.dtype.size_bytes().trailing_zeros()),
                flags,
                contiguous: self.frame.stride_slot[i].is_none(),
            });
        }
        Ok(())
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
            }
        }
        Ok(())
    }

    fn for_loop(&mut self, l: &loops::For) -> Result<(), CodegenError> {
        let step = i64::try_from(l.step)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| self.err(format!("loop step {} is out of range", l.step)))?;
        if l.yields.len() != l.carried.len() {
            return Err(self.err("a loop yields a different number of values than it carries"));
        }
        let lower = self.val(l.lower)?;
        let upper = self.val(l.upper)?;
        let body = self.fb.create_block();
        let exit = self.fb.create_block();
        let iv = self.fb.append_block_param(body, types::I64);
        self.define(l.var, iv)?;
        let mut inits = Vec::with_capacity(l.carried.len());
        for c in &l.carried {
            let t = self.clif_ty(c.arg)?;
            let arg = self.fb.append_block_param(body, t);
            self.define(c.arg, arg)?;
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
        if lanes > 1 && !b.contiguous {
            return Err(self.err(format!("vector access to strided buffer `{name}`")));
        }
        let (base, shift, flags) = (b.base, b.shift, b.flags);
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
            Op::IndexConst(c) => self.ins().iconst(types::I64, *c),
            Op::Dim(name) => match self.frame.dim(self.m, name) {
                Some(e) => self.extent(e),
                None => return Err(self.err(format!("unknown dim `{name}`"))),
            },
            Op::IndexArith(o, a, b) => {
                let (a, b) = (self.val(*a)?, self.val(*b)?);
                match o {
                    IndexOp::Add => self.ins().iadd(a, b),
                    IndexOp::Sub => self.ins().isub(a, b),
                    IndexOp::Mul => self.ins().imul(a, b),
                    IndexOp::Min => self.ins().smin(a, b),
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
                    Type::Bool | Type::Vector(..) => {
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
                // Pairwise, so that the rounding is balanced like a tree reduction.
                while lanes.len() > 1 {
                    let mut next = Vec::with_capacity(lanes.len().div_ceil(2));
                    for pair in lanes.chunks(2) {
                        next.push(match *pair {
                            [a, b] => self.binary(f, a, b, d)?,
                            [a] => a,
                            _ => continue,
                        });
                    }
                    lanes = next;
                }
                lanes
                    .pop()
                    .ok_or_else(|| self.err("reduction of a vector with no lanes"))?
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
                if float {
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

    /// exp, log, tanh and sigmoid, inline (see `codegen::math`).
    fn transcendental(&mut self, fun: UnaryFn, x: Value) -> Value {
        let f = match fun {
            UnaryFn::Exp => Transcendental::Exp,
            UnaryFn::Log => Transcendental::Log,
            UnaryFn::Tanh => Transcendental::Tanh,
            _ => Transcendental::Sigmoid,
        };
        math::emit(&mut self.fb, f, x)
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
            BinaryFn::Max if float => self.ins().fmax(a, b),
            BinaryFn::Max => self.ins().smax(a, b),
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
