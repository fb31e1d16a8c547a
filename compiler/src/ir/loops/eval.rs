//! A reference evaluator of the loop IR: the oracle that loop passes and the lowering from
//! tensor IR are tested against. Simple and obviously correct rather than fast.
//!
//! A call binds the dims from the inputs' shapes exactly as the tensor interpreter does (the
//! same function), allocates each output and temporary as a C-contiguous array, and runs the
//! body instruction by instruction. Element arithmetic uses the tensor interpreter's scalar
//! semantics; vector operations apply them lane by lane, `fma` rounds once (`mul_add`), and
//! `reduce_lanes` combines lanes from lane 0 upwards.
//!
//! The evaluator is strict where compiled code would silently misbehave: a load or store
//! outside its buffer, a load of an output or temporary element that nothing has written yet,
//! and an output element the kernel never writes are errors, as is any ill-typed operand. It
//! does not run the verifier and never panics on a malformed function.

use super::printer::{buffer_ref, value_ref};
use super::{
    Block, BufferDef, BufferId, BufferKind, CmpOp, For, Function, IndexOp, Inst, Module, Op,
    ValueId,
};
use crate::ir::call::{bind_dims, CallError};
use crate::ir::scalar::{binary, compare, unary};
use crate::ir::tensor::Extent;
use einc_runtime::array::{c_strides, element_count};
use einc_runtime::{Array, DType, Scalar};
use std::collections::HashMap;
use std::fmt;

/// Why a loop-IR function could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoopEvalError {
    /// The inputs do not fit the parameters (count, dtype, rank, extents or dim bindings),
    /// reported exactly as the tensor interpreter reports it.
    Call(CallError),
    /// A load or store reaches outside its buffer.
    OutOfBounds {
        /// The function.
        func: String,
        /// The buffer, as `%name`.
        buffer: String,
        /// The index values of the access.
        index: Vec<i64>,
        /// How many consecutive elements along the last axis the access touches.
        lanes: u32,
        /// The buffer's shape.
        shape: Vec<usize>,
    },
    /// A load of an output or temporary element that no store has written.
    ReadBeforeWrite {
        /// The function.
        func: String,
        /// The buffer, as `%name`.
        buffer: String,
        /// The element read.
        index: Vec<usize>,
    },
    /// An output element that the function never writes.
    NotWritten {
        /// The function.
        func: String,
        /// The output, as `%name`.
        buffer: String,
        /// The first such element in C order.
        index: Vec<usize>,
    },
    /// Index arithmetic or a dim value overflows `i64`.
    Overflow {
        /// The function.
        func: String,
        /// What overflowed.
        message: String,
    },
    /// The function breaks an invariant of the loop IR (the verifier would reject it), or a
    /// buffer's shape uses a dim that no input binds.
    Malformed {
        /// The function.
        func: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for LoopEvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopEvalError::Call(e) => e.fmt(f),
            LoopEvalError::OutOfBounds {
                func,
                buffer,
                index,
                lanes,
                shape,
            } => {
                write!(f, "@{func}: access {buffer}{index:?}")?;
                if *lanes > 1 {
                    write!(f, " of {lanes} lanes")?;
                }
                write!(f, " is outside the buffer's shape {shape:?}")
            }
            LoopEvalError::ReadBeforeWrite {
                func,
                buffer,
                index,
            } => write!(
                f,
                "@{func}: load of {buffer}{index:?} before anything stores it"
            ),
            LoopEvalError::NotWritten {
                func,
                buffer,
                index,
            } => write!(f, "@{func}: output {buffer}{index:?} is never written"),
            LoopEvalError::Overflow { func, message } => write!(f, "@{func}: {message}"),
            LoopEvalError::Malformed { func, message } => {
                write!(f, "@{func}: malformed loop IR: {message}")
            }
        }
    }
}

impl std::error::Error for LoopEvalError {}

/// Evaluates a loop-IR function on host arrays (inputs in order; returns outputs in order),
/// binding dims from input shapes; strided buffers honour the arrays' strides.
pub fn run_function(
    m: &Module,
    f: &Function,
    inputs: &[Array],
) -> Result<Vec<Array>, LoopEvalError> {
    let mut e = Eval {
        f,
        dims: HashMap::new(),
        values: vec![None; f.values.len()],
        buffers: Vec::new(),
    };
    let input_ids: Vec<BufferId> = f
        .params
        .iter()
        .copied()
        .filter(|&b| f.buffer(b).is_some_and(|b| b.kind == BufferKind::Input))
        .collect();
    let input_params: Vec<&BufferDef> = input_ids.iter().filter_map(|&b| f.buffer(b)).collect();
    let params: Vec<(&str, DType, &[Extent])> = input_params
        .iter()
        .map(|b| (b.name.as_str(), b.dtype, b.shape.as_slice()))
        .collect();
    e.dims = bind_dims(&m.dims, &f.name, &params, inputs).map_err(LoopEvalError::Call)?;
    for (n, b) in f.buffers.iter().enumerate() {
        let id = BufferId(u32::try_from(n).unwrap_or(u32::MAX));
        let memory = match b.kind {
            BufferKind::Input => input_ids
                .iter()
                .position(|&p| p == id)
                .and_then(|k| inputs.get(k))
                .map(Memory::Input),
            BufferKind::Output if !f.params.contains(&id) => None,
            BufferKind::Output | BufferKind::Temp => Some(e.allocate(id, b)?),
        };
        e.buffers.push(memory);
    }
    e.block(&f.body)?;
    let mut outputs = Vec::new();
    for (&id, memory) in f.params.iter().zip(e.params_memory()) {
        if let Some(Memory::Owned { array, written }) = memory {
            if let Some(pos) = written.iter().position(|&w| !w) {
                return Err(LoopEvalError::NotWritten {
                    func: f.name.clone(),
                    buffer: buffer_ref(f, id),
                    index: unflatten(pos, array.shape()),
                });
            }
            outputs.push(array);
        }
    }
    Ok(outputs)
}

/// The index of the element at C-order position `pos` of `shape`.
fn unflatten(mut pos: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &n) in index.iter_mut().zip(shape).rev() {
        if n > 0 {
            *i = pos % n;
            pos /= n;
        }
    }
    index
}

/// A run-time value.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Index(i64),
    Bool(bool),
    Scalar(Scalar),
    Vector(Vec<Scalar>),
}

/// A buffer's elements during a call.
enum Memory<'a> {
    /// A caller's input, read through its own strides.
    Input(&'a Array),
    /// An output or temporary: C-contiguous, with which elements have been stored.
    Owned { array: Array, written: Vec<bool> },
}

struct Eval<'a> {
    f: &'a Function,
    dims: HashMap<String, u64>,
    values: Vec<Option<Val>>,
    /// By buffer id; `None` for a buffer that is not usable (an input or output that is not a
    /// parameter, which the verifier rejects).
    buffers: Vec<Option<Memory<'a>>>,
}

type EResult<T> = Result<T, LoopEvalError>;

impl<'a> Eval<'a> {
    fn malformed(&self, message: impl Into<String>) -> LoopEvalError {
        LoopEvalError::Malformed {
            func: self.f.name.clone(),
            message: message.into(),
        }
    }

    /// The memory of each parameter, in parameter order (taken out of the evaluator).
    fn params_memory(&mut self) -> Vec<Option<Memory<'a>>> {
        let params = self.f.params.clone();
        params
            .iter()
            .map(|p| self.buffers.get_mut(p.0 as usize).and_then(Option::take))
            .collect()
    }

    fn allocate(&self, id: BufferId, b: &BufferDef) -> EResult<Memory<'a>> {
        let shape = b
            .shape
            .iter()
            .map(|e| {
                let n = match e {
                    Extent::Fixed(n) => Some(*n),
                    Extent::Dim(d) => self.dims.get(d).copied(),
                };
                n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                    self.malformed(format!(
                        "the shape of {} uses a dim that no input binds",
                        buffer_ref(self.f, id)
                    ))
                })
            })
            .collect::<EResult<Vec<usize>>>()?;
        let too_large = || {
            LoopEvalError::Call(CallError::TooLarge {
                value: b.name.clone(),
                dtype: b.dtype,
                shape: shape.iter().map(|&n| n as u64).collect(),
            })
        };
        let len = element_count(&shape).ok_or_else(too_large)?;
        let array = Array::zeros(b.dtype, &shape).map_err(|_| too_large())?;
        let mut written = Vec::new();
        written.try_reserve_exact(len).map_err(|_| too_large())?;
        written.resize(len, false);
        Ok(Memory::Owned { array, written })
    }

    fn get(&self, id: ValueId) -> EResult<&Val> {
        self.values
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                self.malformed(format!(
                    "{} is used before it has a value",
                    value_ref(self.f, id)
                ))
            })
    }

    fn set(&mut self, id: ValueId, v: Val) -> EResult<()> {
        match self.values.get_mut(id.0 as usize) {
            Some(slot) => {
                *slot = Some(v);
                Ok(())
            }
            None => Err(self.malformed(format!("value #{} does not exist", id.0))),
        }
    }

    fn index(&self, id: ValueId) -> EResult<i64> {
        match self.get(id)? {
            Val::Index(n) => Ok(*n),
            v => Err(self.malformed(format!(
                "{} should be an index but is {v:?}",
                value_ref(self.f, id)
            ))),
        }
    }

    fn block(&mut self, b: &Block) -> EResult<()> {
        for inst in &b.insts {
            match inst {
                Inst::Assign { result, op } => {
                    let v = self.op(op).map_err(|e| match e {
                        Fault::Error(e) => e,
                        Fault::Message(m) => self.malformed(format!(
                            "the op defining {}: {m}",
                            value_ref(self.f, *result)
                        )),
                    })?;
                    self.set(*result, v)?;
                }
                Inst::Store {
                    buffer,
                    index,
                    value,
                } => {
                    let v = self.get(*value)?.clone();
                    let lanes = match &v {
                        Val::Scalar(s) => vec![*s],
                        Val::Vector(l) => l.clone(),
                        v => {
                            return Err(self.malformed(format!(
                                "store of {v:?}, which is not a scalar or vector"
                            )))
                        }
                    };
                    let positions = self.locate(*buffer, index, lanes.len())?;
                    self.write(*buffer, &positions, &lanes)?;
                }
                Inst::For(l) => self.for_loop(l)?,
            }
        }
        Ok(())
    }

    fn for_loop(&mut self, l: &For) -> EResult<()> {
        let lower = self.index(l.lower)?;
        let upper = self.index(l.upper)?;
        let step = i64::try_from(l.step)
            .ok()
            .filter(|&s| s > 0)
            .ok_or_else(|| self.malformed(format!("loop step {} is not positive", l.step)))?;
        for c in &l.carried {
            let init = self.get(c.init)?.clone();
            self.set(c.arg, init)?;
        }
        let mut i = lower;
        while i < upper {
            self.set(l.var, Val::Index(i))?;
            self.block(&l.body)?;
            if l.yields.len() != l.carried.len() {
                return Err(
                    self.malformed("a loop yields a different number of values than it carries")
                );
            }
            let next = l
                .yields
                .iter()
                .map(|&y| self.get(y).cloned())
                .collect::<EResult<Vec<Val>>>()?;
            for (c, v) in l.carried.iter().zip(next) {
                self.set(c.arg, v)?;
            }
            // Past `i64::MAX` there is no further iteration below `upper`.
            match i.checked_add(step) {
                Some(n) => i = n,
                None => break,
            }
        }
        for c in &l.carried {
            let last = self.get(c.arg)?.clone();
            self.set(c.result, last)?;
        }
        Ok(())
    }

    /// Checks an access of `lanes` consecutive elements along the last axis and returns the
    /// index of each element.
    fn locate(
        &self,
        buffer: BufferId,
        index: &[ValueId],
        lanes: usize,
    ) -> EResult<Vec<Vec<usize>>> {
        let idx = index
            .iter()
            .map(|&i| self.index(i))
            .collect::<EResult<Vec<i64>>>()?;
        let shape = match self.buffers.get(buffer.0 as usize).and_then(Option::as_ref) {
            Some(Memory::Input(a)) => a.shape().to_vec(),
            Some(Memory::Owned { array, .. }) => array.shape().to_vec(),
            None => {
                return Err(self.malformed(format!(
                    "{} is not a usable buffer",
                    buffer_ref(self.f, buffer)
                )))
            }
        };
        let out_of_bounds = || LoopEvalError::OutOfBounds {
            func: self.f.name.clone(),
            buffer: buffer_ref(self.f, buffer),
            index: idx.clone(),
            lanes: u32::try_from(lanes).unwrap_or(u32::MAX),
            shape: shape.clone(),
        };
        if idx.len() != shape.len() || (lanes > 1 && shape.is_empty()) {
            return Err(out_of_bounds());
        }
        let first: Vec<usize> = idx
            .iter()
            .zip(&shape)
            .map(|(&i, &n)| usize::try_from(i).ok().filter(|&i| i < n))
            .collect::<Option<_>>()
            .ok_or_else(out_of_bounds)?;
        (0..lanes)
            .map(|lane| {
                let mut at = first.clone();
                if let (Some(last), Some(&n)) = (at.last_mut(), shape.last()) {
                    *last = last
                        .checked_add(lane)
                        .filter(|&x| x < n)
                        .ok_or_else(out_of_bounds)?;
                }
                Ok(at)
            })
            .collect()
    }

    fn read(&self, buffer: BufferId, positions: &[Vec<usize>]) -> EResult<Vec<Scalar>> {
        positions
            .iter()
            .map(
                |at| match self.buffers.get(buffer.0 as usize).and_then(Option::as_ref) {
                    Some(Memory::Input(a)) => Ok(a.get(at)),
                    Some(Memory::Owned { array, written }) => {
                        if flat(at, array.shape()).and_then(|p| written.get(p)) == Some(&true) {
                            Ok(array.get(at))
                        } else {
                            Err(LoopEvalError::ReadBeforeWrite {
                                func: self.f.name.clone(),
                                buffer: buffer_ref(self.f, buffer),
                                index: at.clone(),
                            })
                        }
                    }
                    None => Err(self.malformed("load of an unusable buffer")),
                },
            )
            .collect()
    }

    fn write(
        &mut self,
        buffer: BufferId,
        positions: &[Vec<usize>],
        lanes: &[Scalar],
    ) -> EResult<()> {
        let name = buffer_ref(self.f, buffer);
        let malformed = |m: String| LoopEvalError::Malformed {
            func: self.f.name.clone(),
            message: m,
        };
        match self
            .buffers
            .get_mut(buffer.0 as usize)
            .and_then(Option::as_mut)
        {
            Some(Memory::Owned { array, written }) => {
                for (at, &s) in positions.iter().zip(lanes) {
                    if s.dtype() != array.dtype() {
                        return Err(malformed(format!(
                            "store of a {} value to {name} of dtype {}",
                            s.dtype(),
                            array.dtype()
                        )));
                    }
                    array.set(at, s);
                    if let Some(w) = flat(at, array.shape()).and_then(|p| written.get_mut(p)) {
                        *w = true;
                    }
                }
                Ok(())
            }
            _ => Err(malformed(format!(
                "store to {name}, which is not an output or temporary"
            ))),
        }
    }

    fn op(&self, op: &Op) -> Result<Val, Fault> {
        Ok(match op {
            Op::IndexConst(n) => Val::Index(*n),
            Op::Dim(d) => {
                let n = self
                    .dims
                    .get(d)
                    .ok_or_else(|| Fault::Message(format!("dim `{d}` has no value")))?;
                Val::Index(i64::try_from(*n).map_err(|_| {
                    Fault::Error(LoopEvalError::Overflow {
                        func: self.f.name.clone(),
                        message: format!("dim `{d}` = {n} does not fit in i64"),
                    })
                })?)
            }
            Op::IndexArith(o, a, b) => {
                let (a, b) = (self.index(*a)?, self.index(*b)?);
                let r = match o {
                    IndexOp::Add => a.checked_add(b),
                    IndexOp::Sub => a.checked_sub(b),
                    IndexOp::Mul => a.checked_mul(b),
                    IndexOp::Min => Some(a.min(b)),
                };
                Val::Index(r.ok_or_else(|| {
                    Fault::Error(LoopEvalError::Overflow {
                        func: self.f.name.clone(),
                        message: format!("index arithmetic {o:?} of {a} and {b} overflows"),
                    })
                })?)
            }
            Op::Const(s) => Val::Scalar(*s),
            // A vector is 128 bits; the bound keeps a malformed lane count from allocating.
            Op::Splat(_, n) if *n > 16 => {
                return Err(Fault::Message(format!("splat to {n} lanes")))
            }
            Op::Splat(x, n) => match self.get(*x)? {
                Val::Scalar(s) => Val::Vector(vec![*s; *n as usize]),
                v => return Err(Fault::Message(format!("splat of {v:?}"))),
            },
            Op::Unary(u, x) => lanewise(&[self.get(*x)?], |s| unary(*u, s[0]))?,
            Op::Binary(b, x, y) => {
                lanewise(&[self.get(*x)?, self.get(*y)?], |s| binary(*b, s[0], s[1]))?
            }
            Op::Fma(a, b, c) => {
                lanewise(&[self.get(*a)?, self.get(*b)?, self.get(*c)?], |s| {
                    match (s[0], s[1], s[2]) {
                        (Scalar::F32(a), Scalar::F32(b), Scalar::F32(c)) => {
                            Ok(Scalar::F32(a.mul_add(b, c)))
                        }
                        (Scalar::F64(a), Scalar::F64(b), Scalar::F64(c)) => {
                            Ok(Scalar::F64(a.mul_add(b, c)))
                        }
                        (a, b, c) => Err(format!(
                            "`fma` is not defined on {}, {} and {}",
                            a.dtype(),
                            b.dtype(),
                            c.dtype()
                        )),
                    }
                })?
            }
            Op::Cmp(c, x, y) => Val::Bool(self.compare(*c, self.get(*x)?, self.get(*y)?)?),
            Op::And(x, y) => Val::Bool(self.boolean(*x)? && self.boolean(*y)?),
            Op::Or(x, y) => Val::Bool(self.boolean(*x)? || self.boolean(*y)?),
            Op::Not(x) => Val::Bool(!self.boolean(*x)?),
            Op::Select(c, x, y) => {
                if self.boolean(*c)? {
                    self.get(*x)?.clone()
                } else {
                    self.get(*y)?.clone()
                }
            }
            Op::Cast(d, x) => match self.get(*x)? {
                Val::Index(n) => Val::Scalar(Scalar::I64(*n).cast(*d)),
                v => lanewise(&[v], |s| Ok(s[0].cast(*d)))?,
            },
            Op::Load {
                buffer,
                index,
                lanes,
            } => {
                let positions = self.locate(*buffer, index, *lanes as usize)?;
                let mut elements = self.read(*buffer, &positions)?;
                match (*lanes, elements.pop()) {
                    (1, Some(s)) if elements.is_empty() => Val::Scalar(s),
                    (_, Some(s)) => {
                        elements.push(s);
                        Val::Vector(elements)
                    }
                    (_, None) => return Err(Fault::Message("a load of 0 lanes".into())),
                }
            }
            Op::ReduceLanes(k, x) => match self.get(*x)? {
                Val::Vector(lanes) => {
                    let mut it = lanes.iter();
                    let first = *it
                        .next()
                        .ok_or_else(|| Fault::Message("reduce_lanes of 0 lanes".into()))?;
                    let r = it.try_fold(first, |acc, &s| binary(k.combine_fn(), acc, s));
                    Val::Scalar(r.map_err(Fault::Message)?)
                }
                v => return Err(Fault::Message(format!("reduce_lanes of {v:?}"))),
            },
        })
    }

    fn boolean(&self, id: ValueId) -> Result<bool, Fault> {
        match self.get(id)? {
            Val::Bool(b) => Ok(*b),
            v => Err(Fault::Message(format!(
                "{} should be a bool but is {v:?}",
                value_ref(self.f, id)
            ))),
        }
    }

    fn compare(&self, c: CmpOp, x: &Val, y: &Val) -> Result<bool, Fault> {
        match (x, y) {
            (Val::Index(a), Val::Index(b)) => Ok(compare(c, Scalar::I64(*a), Scalar::I64(*b))?),
            (Val::Scalar(a), Val::Scalar(b)) => Ok(compare(c, *a, *b)?),
            _ => Err(Fault::Message(format!("cannot compare {x:?} with {y:?}"))),
        }
    }
}

/// The C-order position of `at` in `shape`.
fn flat(at: &[usize], shape: &[usize]) -> Option<usize> {
    let strides = c_strides(shape)?;
    Some(at.iter().zip(strides).map(|(&i, s)| i * s).sum())
}

/// Why an op failed: an error already complete, or a message the caller places in context.
enum Fault {
    Error(LoopEvalError),
    Message(String),
}

impl From<LoopEvalError> for Fault {
    fn from(e: LoopEvalError) -> Fault {
        Fault::Error(e)
    }
}

impl From<String> for Fault {
    fn from(m: String) -> Fault {
        Fault::Message(m)
    }
}

/// Applies `f` to scalars, or lane by lane to vectors of one length.
fn lanewise(args: &[&Val], f: impl Fn(&[Scalar]) -> Result<Scalar, String>) -> Result<Val, String> {
    if let Some(scalars) = args
        .iter()
        .map(|v| match v {
            Val::Scalar(s) => Some(*s),
            _ => None,
        })
        .collect::<Option<Vec<Scalar>>>()
    {
        return f(&scalars).map(Val::Scalar);
    }
    let vectors = args
        .iter()
        .map(|v| match v {
            Val::Vector(l) => Some(l.as_slice()),
            _ => None,
        })
        .collect::<Option<Vec<&[Scalar]>>>()
        .ok_or_else(|| format!("operands {args:?} are not all scalars or all vectors"))?;
    let lanes = vectors.first().map_or(0, |v| v.len());
    if vectors.iter().any(|v| v.len() != lanes) {
        return Err(format!("vector operands {args:?} differ in lane count"));
    }
    (0..lanes)
        .map(|lane| {
            let scalars: Vec<Scalar> = vectors
                .iter()
                .filter_map(|v| v.get(lane).copied())
                .collect();
            f(&scalars)
        })
        .collect::<Result<Vec<Scalar>, String>>()
        .map(Val::Vector)
}

#[cfg(test)]
mod tests;
