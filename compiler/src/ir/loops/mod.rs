//! The loop IR: explicit loop nests over buffers, in the spirit of MLIR's `scf` + `memref` +
//! `vector` dialects. It is what tensor IR lowers to and what code generation reads.
//!
//! A [`Function`] owns buffers (the kernel's inputs and outputs, and temporaries it allocates)
//! and a body [`Block`] of instructions. Values are SSA: each [`ValueId`] is defined once, by an
//! [`Inst::Assign`], as a loop's induction variable, or as a loop-carried argument or result, and
//! is visible in the block that defines it and in the blocks nested in it, after its definition.
//! Loops carry values (accumulators) explicitly: `for` takes initial values, its body yields the
//! next ones, and the loop's results are the last yielded values (the initial ones when the loop
//! runs zero times). Memory is touched only by `load`/`vload` and `store`.
//!
//! Buffers are addressed with one index per axis. A [`Layout::Strided`] buffer (a kernel
//! argument) takes its element strides from the caller at run time; a [`Layout::Contiguous`]
//! buffer is C order. Vector loads and stores read `lanes` consecutive elements along the last
//! axis and are only allowed on contiguous buffers.
//!
//! The text form is documented in `docs/ir.md`; [`printer`] writes it, [`parser`] reads it back
//! and [`verify`] checks the invariants documented here; [`eval`] runs a function on host
//! arrays, as the reference that compiled code is tested against.

pub mod eval;
pub mod parser;
pub mod printer;
pub mod verify;

pub use crate::ir::scalar::{BinaryFn, CmpOp, ReduceKind, UnaryFn};
pub use crate::ir::tensor::{DimDef, Extent};
use einc_runtime::{DType, Scalar};

/// The type of a loop-IR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// A loop counter or address computation: a signed 64-bit integer.
    Index,
    /// The result of a comparison.
    Bool,
    /// One element.
    Scalar(DType),
    /// `lanes` elements in one SIMD register (`vector<4xf32>`, `vector<2xf64>`, ...). The
    /// vector is 128 bits wide: 4 lanes of f32/i32, 2 lanes of f64/i64.
    Vector(DType, u32),
}

impl Type {
    /// The widest vector of `dtype` that code generation supports (128 bits).
    pub fn simd(dtype: DType) -> Type {
        let lanes = 16 / dtype.size_bytes();
        Type::Vector(dtype, u32::try_from(lanes).unwrap_or(1))
    }

    /// The element dtype of a scalar or vector type.
    pub fn dtype(self) -> Option<DType> {
        match self {
            Type::Scalar(d) | Type::Vector(d, _) => Some(d),
            Type::Index | Type::Bool => None,
        }
    }
}

/// A whole program at loop level: the module's dims and one function per kernel.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    /// Dims, as in the tensor module this was lowered from.
    pub dims: Vec<DimDef>,
    /// Functions, in declaration order.
    pub funcs: Vec<Function>,
}

/// Identifies a buffer of a [`Function`]: an index into [`Function::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub u32);

/// Identifies a value of a [`Function`]: an index into [`Function::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// What a buffer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// A kernel input: read only.
    Input,
    /// A kernel output: written by the kernel (and may be read back after being written).
    Output,
    /// A temporary the kernel allocates on entry and frees on exit.
    Temp,
}

/// How a buffer's elements are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// C order (last axis fastest), no gaps.
    Contiguous,
    /// Element strides given by the caller at run time (any values, including negative).
    Strided,
}

/// A buffer.
///
/// Invariants: names are unique in the function; a `Temp` buffer is `Contiguous`.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferDef {
    /// Name (printed `%name`), e.g. `X` or `P.max`.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Axis extents.
    pub shape: Vec<Extent>,
    /// Layout.
    pub layout: Layout,
    /// Role.
    pub kind: BufferKind,
}

/// A value: its printed name (unique in the function, without `%`) and type.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueDef {
    /// Name, e.g. `acc` or `i`.
    pub name: String,
    /// Type.
    pub ty: Type,
}

/// A kernel at loop level.
///
/// Invariants (checked by [`verify`]): `params` lists every `Input` buffer and then every
/// `Output` buffer, each once, in the kernel's call order; every value is defined once and used
/// only where visible (see the module docs); every operand has the type its instruction needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// The kernel's name.
    pub name: String,
    /// Every buffer; `BufferId(n)` is `buffers[n]`.
    pub buffers: Vec<BufferDef>,
    /// The kernel's arguments, inputs first, then outputs.
    pub params: Vec<BufferId>,
    /// Every value; `ValueId(n)` is `values[n]`.
    pub values: Vec<ValueDef>,
    /// The body.
    pub body: Block,
}

/// A sequence of instructions.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Block {
    /// In execution order.
    pub insts: Vec<Inst>,
}

/// An instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Inst {
    /// `%result = op`: defines one value.
    Assign {
        /// The value defined.
        result: ValueId,
        /// What it computes.
        op: Op,
    },
    /// `store %value, %buffer[%i, %j]`: writes a scalar, or a vector to `lanes` consecutive
    /// elements along the last axis (contiguous buffers only). Never writes an `Input`.
    Store {
        /// The buffer written.
        buffer: BufferId,
        /// One `Index` value per axis.
        index: Vec<ValueId>,
        /// The scalar or vector written (its dtype is the buffer's).
        value: ValueId,
    },
    /// A counted loop.
    For(Box<For>),
}

/// A loop-carried value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carried {
    /// The value as seen inside the body (defined by the loop).
    pub arg: ValueId,
    /// Its value on entry (defined before the loop).
    pub init: ValueId,
    /// Its value after the loop (defined by the loop, visible after it).
    pub result: ValueId,
}

/// `for %var = %lower to %upper step N [parallel] iter(...) { body; yield ... }`.
///
/// Runs `body` for `var = lower, lower + step, ...` while `var < upper`. Invariants: `var`,
/// `lower` and `upper` are `Index` values; `step > 0`; `yields` has one entry per `carried`, of
/// the same type as its `arg`, `init` and `result`; a `parallel` loop has no carried values and
/// its iterations write disjoint elements (the marker is a promise lowering makes and
/// parallelisation relies on).
#[derive(Clone, Debug, PartialEq)]
pub struct For {
    /// The induction variable.
    pub var: ValueId,
    /// First value (inclusive).
    pub lower: ValueId,
    /// Bound (exclusive).
    pub upper: ValueId,
    /// Increment, at least 1.
    pub step: u64,
    /// Whether iterations are independent.
    pub parallel: bool,
    /// Loop-carried values.
    pub carried: Vec<Carried>,
    /// The body.
    pub body: Block,
    /// The next values of the carried values, computed by the body.
    pub yields: Vec<ValueId>,
}

/// Integer arithmetic on `Index` values (addresses, loop bounds, tiling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// smaller of the two
    Min,
}

/// The operations that define a value.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// An `Index` constant.
    IndexConst(i64),
    /// The run-time extent of a dim, as an `Index`.
    Dim(String),
    /// Index arithmetic.
    IndexArith(IndexOp, ValueId, ValueId),
    /// A scalar constant.
    Const(Scalar),
    /// A vector with every lane equal to a scalar value.
    Splat(ValueId, u32),
    /// A unary function, on a scalar or lane-wise on a vector.
    Unary(UnaryFn, ValueId),
    /// A binary function on operands of equal type.
    Binary(BinaryFn, ValueId, ValueId),
    /// `a * b + c` with one rounding where the target has FMA (floats only).
    Fma(ValueId, ValueId, ValueId),
    /// A comparison of two scalars or two `Index` values of equal type, giving `Bool`.
    Cmp(CmpOp, ValueId, ValueId),
    /// Both `Bool` values hold.
    And(ValueId, ValueId),
    /// Either holds.
    Or(ValueId, ValueId),
    /// Does not hold.
    Not(ValueId),
    /// `cond ? a : b` with a `Bool` condition and equal-typed branches.
    Select(ValueId, ValueId, ValueId),
    /// Conversion of a scalar, vector or `Index` value to a dtype (numpy `astype` rules; an
    /// `Index` converts like an `i64`).
    Cast(DType, ValueId),
    /// Reads one element (`lanes == 1`, a scalar) or `lanes` consecutive elements along the last
    /// axis (a vector; contiguous buffers only).
    Load {
        /// The buffer read.
        buffer: BufferId,
        /// One `Index` value per axis.
        index: Vec<ValueId>,
        /// 1 for a scalar load.
        lanes: u32,
    },
    /// Combines the lanes of a vector into a scalar.
    ReduceLanes(ReduceKind, ValueId),
}

impl Function {
    /// The definition of a value, if the id is in range.
    pub fn value(&self, id: ValueId) -> Option<&ValueDef> {
        self.values.get(id.0 as usize)
    }

    /// The definition of a buffer, if the id is in range.
    pub fn buffer(&self, id: BufferId) -> Option<&BufferDef> {
        self.buffers.get(id.0 as usize)
    }

    /// Adds a value and returns its id (the caller then defines it exactly once).
    pub fn add_value(&mut self, name: impl Into<String>, ty: Type) -> ValueId {
        self.values.push(ValueDef {
            name: name.into(),
            ty,
        });
        ValueId(index_u32(self.values.len() - 1))
    }

    /// Adds a buffer and returns its id.
    pub fn add_buffer(&mut self, buffer: BufferDef) -> BufferId {
        self.buffers.push(buffer);
        BufferId(index_u32(self.buffers.len() - 1))
    }
}

/// Converts a position in an id-indexed table to `u32`.
fn index_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a function has fewer than 2^32 values and buffers")
}
