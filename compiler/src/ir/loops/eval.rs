//! A reference evaluator of the loop IR: the oracle that loop passes and the lowering from
//! tensor IR are tested against. Simple and obviously correct rather than fast.
//!
//! A call binds the dims from the inputs' shapes exactly as the tensor interpreter does (the
//! same function), allocates each output and temporary as a C-contiguous array, and runs the
//! body instruction by instruction. Element arithmetic uses the tensor interpreter's scalar
//! semantics; vector operations apply them lane by lane, `fma` rounds once (`mul_add`), and
//! `reduce_lanes` combines lanes in the halving order of `docs/ir.md` (lane `i` with lane
//! `i + n/2`, recursively), which compiled code follows too.
//!
//! Like a kernel's entry point, [`run_function`] runs the first variant of the kernel whose
//! stride facts the arguments meet (the outputs it allocates are C order), else the general
//! function; [`run_body`] runs one chosen function, after checking that its facts hold.
//!
//! The evaluator is strict where compiled code would silently misbehave: a load or store
//! outside its buffer, a load of an output, temporary or scoped element that nothing has
//! written yet (a scoped buffer starts unwritten at each execution of its block), an output
//! element the kernel never writes, and a micro-kernel call that reads outside its operands
//! (B over the kernel's full width) or exceeds its tile are errors, as is any ill-typed
//! operand. It does not run the verifier and never panics on a malformed function.

use super::printer::{buffer_ref, value_ref};
use super::{
    Block, BufferDef, BufferId, BufferKind, CmpOp, Coord, For, Function, IndexOp, Inst, Layout,
    Module, Op, ReduceKind, StrideFact, TileOperand, Ukernel, ValueId,
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
    /// The run-time operands break an instruction's contract (a micro-kernel tile larger than
    /// the kernel's, a negative `kc`), or a chosen variant's stride facts do not hold for the
    /// arguments.
    Contract {
        /// The function.
        func: String,
        /// What is wrong.
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
            LoopEvalError::Overflow { func, message }
            | LoopEvalError::Contract { func, message } => write!(f, "@{func}: {message}"),
            LoopEvalError::Malformed { func, message } => {
                write!(f, "@{func}: malformed loop IR: {message}")
            }
        }
    }
}

impl std::error::Error for LoopEvalError {}

/// Evaluates kernel `f` (a general function) on host arrays (inputs in order; returns outputs
/// in order), binding dims from input shapes; strided buffers honour the arrays' strides. Runs
/// the variant [`select`] picks, as the compiled entry point does.
pub fn run_function(
    m: &Module,
    f: &Function,
    inputs: &[Array],
) -> Result<Vec<Array>, LoopEvalError> {
    run_body(m, select(m, f, inputs)?, inputs)
}

/// The function a call of kernel `f` with `inputs` runs: the first variant of `f` (in module
/// order) whose stride facts hold for the inputs and for C-order outputs, else `f`.
pub fn select<'m>(
    m: &'m Module,
    f: &'m Function,
    inputs: &[Array],
) -> Result<&'m Function, LoopEvalError> {
    for v in m.variants_of(&f.name) {
        if facts_hold(m, v, inputs)? {
            return Ok(v);
        }
    }
    Ok(f)
}

/// Whether the stride facts of `f`'s parameters hold for `inputs` and for outputs allocated in
/// C order (an argument with no elements meets every fact, as at the entry point).
fn facts_hold(m: &Module, f: &Function, inputs: &[Array]) -> Result<bool, LoopEvalError> {
    let mut e = Eval::new(f);
    e.bind(m, inputs)?;
    let mut inputs = inputs.iter();
    for &p in &f.params {
        let Some(b) = f.buffer(p) else { continue };
        let (shape, strides) = match b.kind {
            BufferKind::Input => match inputs.next() {
                Some(a) => (a.shape().to_vec(), a.strides().to_vec()),
                None => continue,
            },
            _ => {
                let shape = e.shape(p, b)?;
                let strides = c_strides(&shape).unwrap_or_default();
                (shape, strides)
            }
        };
        if !meets(&b.layout, &shape, &strides) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether an array of `shape` and element `strides` meets `layout`: each axis longer than 1
/// has the stride its fact says (1, or the product of the later extents).
fn meets(layout: &Layout, shape: &[usize], strides: &[usize]) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let rank = shape.len();
    (0..rank).all(|k| {
        let want = match layout.fact(k, rank) {
            StrideFact::Runtime => return true,
            StrideFact::Unit => 1,
            StrideFact::COrder => shape[k + 1..].iter().product(),
        };
        shape[k] <= 1 || strides.get(k) == Some(&want)
    })
}

/// Evaluates one function (a kernel's general function or one of its variants) on host arrays,
/// after checking that its stride facts hold for them; a test forces a variant this way.
pub fn run_body(m: &Module, f: &Function, inputs: &[Array]) -> Result<Vec<Array>, LoopEvalError> {
    if !facts_hold(m, f, inputs)? {
        return Err(LoopEvalError::Contract {
            func: f.name.clone(),
            message: "the arguments do not meet the function's stride facts".into(),
        });
    }
    let mut e = Eval::new(f);
    e.bind(m, inputs)?;
    let input_ids = e.input_ids();
    for (n, b) in f.buffers.iter().enumerate() {
        let id = BufferId(u32::try_from(n).unwrap_or(u32::MAX));
        let memory = match b.kind {
            BufferKind::Input => input_ids
                .iter()
                .position(|&p| p == id)
                .and_then(|k| inputs.get(k))
                .map(Memory::Input),
            BufferKind::Output if !f.params.contains(&id) => None,
            // Allocated by the instruction that declares it, at each execution.
            BufferKind::Scoped => None,
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

impl<'a> Eval<'a> {
    fn new(f: &'a Function) -> Eval<'a> {
        Eval {
            f,
            dims: HashMap::new(),
            values: vec![None; f.values.len()],
            buffers: Vec::new(),
        }
    }

    /// The input parameters, in order.
    fn input_ids(&self) -> Vec<BufferId> {
        let f = self.f;
        f.params
            .iter()
            .copied()
            .filter(|&b| f.buffer(b).is_some_and(|b| b.kind == BufferKind::Input))
            .collect()
    }

    /// Binds the dims from the inputs' shapes.
    fn bind(&mut self, m: &Module, inputs: &[Array]) -> Result<(), LoopEvalError> {
        let f = self.f;
        let input_ids = self.input_ids();
        let input_params: Vec<&BufferDef> = input_ids.iter().filter_map(|&b| f.buffer(b)).collect();
        let params: Vec<(&str, DType, &[Extent])> = input_params
            .iter()
            .map(|b| (b.name.as_str(), b.dtype, b.shape.as_slice()))
            .collect();
        self.dims = bind_dims(&m.dims, &f.name, &params, inputs).map_err(LoopEvalError::Call)?;
        Ok(())
    }
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
    /// A position in a buffer (its logical index, which may lie outside the buffer).
    Ptr(BufferId, Vec<i64>),
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

    /// The extents of buffer `id` in this call.
    fn shape(&self, id: BufferId, b: &BufferDef) -> EResult<Vec<usize>> {
        b.shape
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
            .collect()
    }

    fn allocate(&self, id: BufferId, b: &BufferDef) -> EResult<Memory<'a>> {
        let shape = self.shape(id, b)?;
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
        let mut scoped = Vec::new();
        let result = self.block_insts(b, &mut scoped);
        // A scoped buffer ends with its block.
        for id in scoped {
            if let Some(slot) = self.buffers.get_mut(id.0 as usize) {
                *slot = None;
            }
        }
        result
    }

    fn block_insts(&mut self, b: &Block, scoped: &mut Vec<BufferId>) -> EResult<()> {
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
                    let lanes = self.stored(*value)?;
                    let positions = self.locate(*buffer, index, lanes.len())?;
                    self.write(*buffer, &positions, &lanes)?;
                }
                Inst::StoreAt { ptr, value } => {
                    let lanes = self.stored(*value)?;
                    let (buffer, at) = self.ptr(*ptr)?;
                    let positions = self.locate_at(buffer, at, lanes.len())?;
                    self.write(buffer, &positions, &lanes)?;
                }
                Inst::For(l) => self.for_loop(l)?,
                Inst::Scoped(id) => {
                    let b = self.f.buffer(*id).filter(|b| b.kind == BufferKind::Scoped);
                    let b = b.ok_or_else(|| {
                        self.malformed(format!(
                            "`scoped` declares {}, which is not a scoped buffer",
                            buffer_ref(self.f, *id)
                        ))
                    })?;
                    let memory = self.allocate(*id, b)?;
                    match self.buffers.get_mut(id.0 as usize) {
                        Some(slot) => *slot = Some(memory),
                        None => return Err(self.malformed("a scoped buffer out of range")),
                    }
                    scoped.push(*id);
                }
                Inst::Ukernel(u) => self.ukernel(u)?,
            }
        }
        Ok(())
    }

    /// The elements a store writes: a scalar, or a vector's lanes.
    fn stored(&self, value: ValueId) -> EResult<Vec<Scalar>> {
        match self.get(value)? {
            Val::Scalar(s) => Ok(vec![*s]),
            Val::Vector(l) => Ok(l.clone()),
            v => Err(self.malformed(format!("store of {v:?}, which is not a scalar or vector"))),
        }
    }

    /// A `ptr` value's buffer and position.
    fn ptr(&self, id: ValueId) -> EResult<(BufferId, Vec<i64>)> {
        match self.get(id)? {
            Val::Ptr(b, at) => Ok((*b, at.clone())),
            v => Err(self.malformed(format!(
                "{} should be a ptr but is {v:?}",
                value_ref(self.f, id)
            ))),
        }
    }

    /// A micro-kernel call, exactly as `docs/ukernel.md` states it: every element it reads
    /// (A rows below `mr`, B columns below the kernel's full width `NR`, C when accumulating,
    /// the bias) is loaded through the checked path, so a tile that leaves its operands is an
    /// error.
    fn ukernel(&mut self, u: &Ukernel) -> EResult<()> {
        let contract = |m: String| LoopEvalError::Contract {
            func: self.f.name.clone(),
            message: format!("ukernel @{}: {m}", u.shape.name()),
        };
        let (kc, mr, nr) = (self.index(u.kc)?, self.index(u.mr)?, self.index(u.nr)?);
        let (big_mr, big_nr) = (i64::from(u.shape.mr), i64::from(u.shape.nr));
        if kc < 0 || mr < 0 || !(0..=big_nr).contains(&nr) {
            return Err(contract(format!(
                "kc {kc} and tile {mr} x {nr} must satisfy kc >= 0, mr >= 0, \
                 0 <= nr <= {big_nr}"
            )));
        }
        let init = match self.get(u.init)? {
            Val::Bool(b) => *b,
            v => return Err(self.malformed(format!("ukernel init is {v:?}, not a bool"))),
        };
        let scale = match u.scale {
            Some(s) => match self.get(s)? {
                Val::Scalar(x) => Some(*x),
                v => return Err(self.malformed(format!("ukernel scale is {v:?}"))),
            },
            None => None,
        };
        let mut a = self.tile_reader(&u.a)?;
        a.m_tile = big_mr;
        let b = self.tile_reader(&u.b)?;
        let c = self.tile_reader(&u.c)?;
        let zero = Scalar::zero(u.shape.dtype);
        let mut tile = vec![vec![zero; nr as usize]; mr as usize];
        for kk in 0..kc {
            // The full width of B is read, whatever `nr` is.
            let brow = (0..big_nr)
                .map(|jj| self.read_one(&b, &[(Coord::K, kk), (Coord::N, jj)]))
                .collect::<EResult<Vec<Scalar>>>()?;
            for (ii, row) in (0..mr).zip(tile.iter_mut()) {
                let x = self.read_one(&a, &[(Coord::M, ii), (Coord::K, kk)])?;
                for (t, &y) in row.iter_mut().zip(&brow) {
                    *t = fma(x, y, *t).map_err(|m| self.malformed(m))?;
                }
            }
        }
        let bias = match &u.bias {
            Some(t) => Some(self.tile_reader(t)?),
            None => None,
        };
        let combine = |f: crate::ir::scalar::BinaryFn, x: Scalar, y: Scalar| {
            binary(f, x, y).map_err(|m| self.malformed(m))
        };
        use crate::ir::scalar::BinaryFn as B;
        let mut results = Vec::new();
        for (ii, row) in (0..mr).zip(&tile) {
            for (jj, &t) in (0..nr).zip(row) {
                let at = [(Coord::M, ii), (Coord::N, jj)];
                let mut v = if init {
                    t
                } else {
                    combine(B::Add, self.read_one(&c, &at)?, t)?
                };
                if let Some(s) = scale {
                    v = combine(if u.divide { B::Div } else { B::Mul }, v, s)?;
                }
                if let Some(bias) = &bias {
                    v = combine(B::Add, v, self.read_one(bias, &at)?)?;
                }
                if u.relu {
                    v = relu(v);
                }
                results.push((self.position(&c, &at)?, v));
            }
        }
        for (at, v) in results {
            self.write(u.c.buffer, &[at], &[v])?;
        }
        Ok(())
    }

    /// The start index and per-axis coordinates of a tile operand.
    fn tile_reader(&self, t: &TileOperand) -> EResult<TileReader> {
        let start = t
            .start
            .iter()
            .map(|&i| self.index(i))
            .collect::<EResult<Vec<i64>>>()?;
        let mut coord = vec![None; start.len()];
        for (c, axes) in &t.axes {
            for &a in axes {
                match coord.get_mut(a as usize) {
                    Some(slot) => *slot = Some(*c),
                    None => return Err(self.malformed("a tile operand names a missing axis")),
                }
            }
        }
        Ok(TileReader {
            buffer: t.buffer,
            start,
            coord,
            m_tile: 0,
        })
    }

    /// The element of a tile operand at the given coordinates (a coordinate the operand does
    /// not have is ignored), checked to lie in its buffer.
    fn position(&self, t: &TileReader, at: &[(Coord, i64)]) -> EResult<Vec<usize>> {
        let get = |c: Coord| at.iter().find(|(x, _)| *x == c).map_or(0, |p| p.1);
        let tiled = t.m_tile > 0 && t.coord.contains(&Some(Coord::MTile));
        let index: Vec<i64> = t
            .start
            .iter()
            .zip(&t.coord)
            .map(|(&s, c)| {
                let d = match c {
                    None => 0,
                    Some(Coord::M) if tiled => get(Coord::M).rem_euclid(t.m_tile),
                    Some(Coord::MTile) if tiled => get(Coord::M).div_euclid(t.m_tile),
                    Some(c) => get(*c),
                };
                s.saturating_add(d)
            })
            .collect();
        let mut positions = self.locate_at(t.buffer, index, 1)?;
        positions
            .pop()
            .ok_or_else(|| self.malformed("a tile element with no position"))
    }

    fn read_one(&self, t: &TileReader, at: &[(Coord, i64)]) -> EResult<Scalar> {
        let p = self.position(t, at)?;
        let mut v = self.read(t.buffer, &[p])?;
        v.pop()
            .ok_or_else(|| self.malformed("a tile element with no value"))
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
        self.locate_at(buffer, idx, lanes)
    }

    /// [`Eval::locate`] with the index values given.
    fn locate_at(&self, buffer: BufferId, idx: Vec<i64>, lanes: usize) -> EResult<Vec<Vec<usize>>> {
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
                    IndexOp::Max => Some(a.max(b)),
                    IndexOp::Div => Some(index_div(a, b)),
                    IndexOp::Rem => Some(a.wrapping_sub(b.wrapping_mul(index_div(a, b)))),
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
            Op::Fma(a, b, c) => lanewise(&[self.get(*a)?, self.get(*b)?, self.get(*c)?], |s| {
                fma(s[0], s[1], s[2])
            })?,
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
                self.loaded(*buffer, &positions, *lanes)?
            }
            Op::ReduceLanes(k, x) => match self.get(*x)? {
                Val::Vector(lanes) => Val::Scalar(reduce_halving(*k, lanes)?),
                v => return Err(Fault::Message(format!("reduce_lanes of {v:?}"))),
            },
            Op::Addr { buffer, index } => {
                let at = index
                    .iter()
                    .map(|&i| self.index(i))
                    .collect::<EResult<Vec<i64>>>()?;
                Val::Ptr(*buffer, at)
            }
            Op::Advance { ptr, by, axes } => {
                let (buffer, mut at) = self.ptr(*ptr)?;
                let by = self.index(*by)?;
                for &a in axes {
                    let slot = at
                        .get_mut(a as usize)
                        .ok_or_else(|| Fault::Message(format!("advance along axis {a}")))?;
                    *slot = slot.checked_add(by).ok_or_else(|| {
                        Fault::Error(LoopEvalError::Overflow {
                            func: self.f.name.clone(),
                            message: format!("advance of a pointer by {by} overflows"),
                        })
                    })?;
                }
                Val::Ptr(buffer, at)
            }
            Op::LoadAt { ptr, lanes } => {
                let (buffer, at) = self.ptr(*ptr)?;
                let positions = self.locate_at(buffer, at, *lanes as usize)?;
                self.loaded(buffer, &positions, *lanes)?
            }
        })
    }

    /// The value a load of `lanes` elements at `positions` gives.
    fn loaded(&self, buffer: BufferId, positions: &[Vec<usize>], lanes: u32) -> Result<Val, Fault> {
        let mut elements = self.read(buffer, positions)?;
        match (lanes, elements.pop()) {
            (1, Some(s)) if elements.is_empty() => Ok(Val::Scalar(s)),
            (_, Some(s)) => {
                elements.push(s);
                Ok(Val::Vector(elements))
            }
            (_, None) => Err(Fault::Message("a load of 0 lanes".into())),
        }
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

/// `a / b` rounded toward zero, 0 when `b == 0`, wrapping for `i64::MIN / -1` (`idiv`).
fn index_div(a: i64, b: i64) -> i64 {
    if b == 0 {
        0
    } else {
        a.wrapping_div(b)
    }
}

/// Combines the lanes of a vector in the halving order of `docs/ir.md`: lane `i` with lane
/// `i + n/2` for `i < n/2`, then the same on the `n/2` results, down to one value. For four
/// lanes: `(l0 + l2) + (l1 + l3)`.
fn reduce_halving(k: ReduceKind, lanes: &[Scalar]) -> Result<Scalar, String> {
    let mut v = lanes.to_vec();
    while v.len() > 1 {
        if !v.len().is_multiple_of(2) {
            return Err(format!("reduce_lanes of {} lanes", lanes.len()));
        }
        let half = v.len() / 2;
        v = (0..half)
            .map(|i| binary(k.combine_fn(), v[i], v[i + half]))
            .collect::<Result<_, _>>()?;
    }
    v.pop().ok_or_else(|| "reduce_lanes of 0 lanes".to_string())
}

/// A micro-kernel's `relu`: numpy's `maximum(v, 0)`, so `-0.0` gives `0.0` and NaN stays NaN
/// (as compiled code's `fmax` does).
fn relu(v: Scalar) -> Scalar {
    match v {
        Scalar::F32(x) if !x.is_nan() && x <= 0.0 => Scalar::F32(0.0),
        Scalar::F64(x) if !x.is_nan() && x <= 0.0 => Scalar::F64(0.0),
        v => v,
    }
}

/// `a * b + c` rounded once.
fn fma(a: Scalar, b: Scalar, c: Scalar) -> Result<Scalar, String> {
    match (a, b, c) {
        (Scalar::F32(a), Scalar::F32(b), Scalar::F32(c)) => Ok(Scalar::F32(a.mul_add(b, c))),
        (Scalar::F64(a), Scalar::F64(b), Scalar::F64(c)) => Ok(Scalar::F64(a.mul_add(b, c))),
        (a, b, c) => Err(format!(
            "`fma` is not defined on {}, {} and {}",
            a.dtype(),
            b.dtype(),
            c.dtype()
        )),
    }
}

/// A micro-kernel operand during a call: where the tile starts, and the coordinate (if any)
/// that advances each axis.
struct TileReader {
    buffer: BufferId,
    start: Vec<i64>,
    coord: Vec<Option<Coord>>,
    /// `MR`, when row `ii` lies in m-tile `ii / MR` at row `ii % MR` (an operand whose
    /// `mt` axes advance per m-tile); 0 when the `m` axes advance by `ii` itself.
    m_tile: i64,
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
