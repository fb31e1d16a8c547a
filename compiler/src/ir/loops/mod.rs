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
//! Buffers are addressed with one index per axis. Each axis has a stride fact ([`Layout`]): a
//! run-time stride from the caller, a unit stride, or the C-order stride from the extents.
//! Vector loads and stores read `lanes` consecutive elements along the last axis and need a
//! unit stride there. Temporaries are allocated on entry ([`BufferKind::Temp`]); scoped buffers
//! ([`BufferKind::Scoped`]) live on the stack for one execution of the block declaring them.
//!
//! A module may hold, besides each kernel's general function, *variants* of it
//! ([`Function::variant_of`]): functions with the same parameters whose stride facts are
//! stronger. The kernel's entry point calls the first variant whose facts the arguments meet,
//! else the general function. A [`Ukernel`] instruction computes one register tile of a matrix
//! product (`docs/ukernel.md`).
//!
//! The text form is documented in `docs/ir.md`; [`printer`] writes it, [`parser`] reads it back
//! and [`verify`] checks the invariants documented here; [`eval`] runs a function on host
//! arrays, as the reference that compiled code is tested against.

pub mod eval;
pub mod parser;
pub mod printer;
pub mod rewrite;
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
    /// The position of an element of one buffer (`ptr`): made by `addr`, moved by `advance`,
    /// read and written by `load at` and `store at`. Its buffer is the one its definition
    /// names (through `advance` and loop-carried values); it may lie outside the buffer until
    /// it is used.
    Ptr,
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
            Type::Index | Type::Bool | Type::Ptr => None,
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
    /// A buffer on the stack, declared by an [`Inst::Scoped`] inside a block: it lives for one
    /// execution of that block (its elements are undefined at each start) and has fixed
    /// extents and a bounded size ([`MAX_SCOPED_BYTES`]).
    Scoped,
}

/// The largest total size in bytes of the scoped buffers of one function: they live in the
/// function's stack frame, which must fit any thread's stack.
pub const MAX_SCOPED_BYTES: u64 = 1 << 20;

/// The largest alignment a buffer may ask for, in bytes.
pub const MAX_ALIGN: u32 = 4096;

/// What is known at compile time about the element stride of one buffer axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrideFact {
    /// Given by the caller at run time (any value, including negative and 0). Printed `_`.
    Runtime,
    /// 1. Printed `1`.
    Unit,
    /// The C-order stride: the product of the extents of the later axes (1 on the last axis).
    /// Printed `c`.
    COrder,
}

impl StrideFact {
    /// Whether a function that assumes `self` may be replaced by one that assumes `stronger`
    /// on an axis (`last`: whether it is the last axis, where C order is a unit stride).
    pub fn implied_by(self, stronger: StrideFact, last: bool) -> bool {
        let unitish = |f: StrideFact| f == StrideFact::Unit || (last && f == StrideFact::COrder);
        self == StrideFact::Runtime || self == stronger || (unitish(self) && unitish(stronger))
    }
}

/// How a buffer's elements are laid out: a stride fact per axis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// C order (last axis fastest), no gaps: every axis [`StrideFact::COrder`].
    Contiguous,
    /// Element strides given by the caller at run time (any values, including negative): every
    /// axis [`StrideFact::Runtime`].
    Strided,
    /// One fact per axis (`strides[_, c, 1]`). Canonical only when the facts are neither all
    /// `COrder` (written [`Layout::Contiguous`]) nor all `Runtime` ([`Layout::Strided`]).
    Axes(Vec<StrideFact>),
}

impl Layout {
    /// The stride fact of axis `axis` of a buffer of rank `rank` (C order on the last axis is
    /// reported as [`StrideFact::Unit`]); `Runtime` for an axis out of range.
    pub fn fact(&self, axis: usize, rank: usize) -> StrideFact {
        let f = match self {
            Layout::Contiguous => StrideFact::COrder,
            Layout::Strided => StrideFact::Runtime,
            Layout::Axes(facts) => facts.get(axis).copied().unwrap_or(StrideFact::Runtime),
        };
        if f == StrideFact::COrder && axis + 1 == rank {
            StrideFact::Unit
        } else {
            f
        }
    }

    /// Whether the last axis of a buffer of rank `rank` has a unit stride (what vector loads
    /// and stores need).
    pub fn unit_last(&self, rank: usize) -> bool {
        rank > 0 && self.fact(rank - 1, rank) == StrideFact::Unit
    }
}

/// A buffer.
///
/// Invariants: names are unique in the function; a `Temp` or `Scoped` buffer is `Contiguous`;
/// only they may ask for an alignment.
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
    /// The alignment of element 0 in bytes (a power of two, at most [`MAX_ALIGN`]), for
    /// temporaries and scoped buffers (`align 64`); `None` is the element size.
    pub align: Option<u32>,
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
/// A variant has the parameters of the function it specialises (names, kinds, dtypes, shapes)
/// with facts at least as strong on every axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// The kernel's name (a variant has a name of its own, e.g. `K.contiguous`).
    pub name: String,
    /// For a variant, the name of the general function of its kernel (`variant of @K`).
    pub variant_of: Option<String>,
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

impl Block {
    /// The value of every `index` constant defined in this block and the blocks nested in it.
    pub fn index_consts(&self) -> std::collections::HashMap<ValueId, i64> {
        let mut out = std::collections::HashMap::new();
        let mut stack = vec![self];
        while let Some(b) = stack.pop() {
            for inst in &b.insts {
                match inst {
                    Inst::Assign {
                        result,
                        op: Op::IndexConst(c),
                    } => {
                        out.insert(*result, *c);
                    }
                    Inst::For(l) => stack.push(&l.body),
                    _ => {}
                }
            }
        }
        out
    }
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
    /// `scoped %t: f32[4, 8] contiguous align 64`: declares a [`BufferKind::Scoped`] buffer,
    /// usable from here to the end of the enclosing block (and in blocks nested in it).
    Scoped(BufferId),
    /// A micro-kernel call: one register tile of a matrix product.
    Ukernel(Box<Ukernel>),
    /// `store %v at %p`: writes a scalar, or a vector's lanes along the last axis, at a
    /// pointer's position (the rules of [`Inst::Store`] apply to the pointer's buffer).
    StoreAt {
        /// A `ptr` value.
        ptr: ValueId,
        /// The scalar or vector written.
        value: ValueId,
    },
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
    /// A request to unroll the loop by this factor (`unroll 4`, at least 1; `unroll 1` asks to
    /// keep it rolled); `None` leaves the choice to the unroll pass.
    pub unroll: Option<u32>,
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
    /// larger of the two
    Max,
    /// `a / b` rounded toward zero; 0 when `b == 0`, and `i64::MIN` for `i64::MIN / -1`
    Div,
    /// `a - b * (a / b)` with the `Div` above: `a` when `b == 0`, 0 for `i64::MIN % -1`
    Rem,
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
    /// `addr %B[%i, %j]`: the position of an element of a buffer, as a `ptr`.
    Addr {
        /// The buffer.
        buffer: BufferId,
        /// One `Index` value per axis.
        index: Vec<ValueId>,
    },
    /// `advance %p by %n along [0, 1]`: the position `%n` steps further along each of the
    /// given axes (several axes advance together along a diagonal).
    Advance {
        /// A `ptr` value.
        ptr: ValueId,
        /// How many steps (an `Index`, any sign).
        by: ValueId,
        /// The axes that advance.
        axes: Vec<u32>,
    },
    /// `load at %p`: reads one element, or `lanes` consecutive elements along the last axis, at
    /// a pointer's position (the rules of [`Op::Load`] apply to the pointer's buffer).
    LoadAt {
        /// A `ptr` value.
        ptr: ValueId,
        /// 1 for a scalar load.
        lanes: u32,
    },
}

/// The coordinates of a micro-kernel tile: rows `m`, columns `n`, and the summed `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coord {
    /// Rows of A and C.
    M,
    /// Columns of B and C.
    N,
    /// The summed coordinate: columns of A, rows of B.
    K,
    /// A's m-tile: advances by one from each `MR` rows of A to the next (the panel axis of a
    /// packed A). Without it, A's `m` axes advance by `MR` instead.
    MTile,
}

impl Coord {
    /// The name in the text: `m`, `n` or `k`.
    pub fn name(self) -> &'static str {
        match self {
            Coord::M => "m",
            Coord::N => "n",
            Coord::K => "k",
            Coord::MTile => "mt",
        }
    }
}

/// A micro-kernel: `gemm.<dtype>.<MR>x<NR>`, computing tiles of at most `mr` rows and `nr`
/// columns with `MR * NR / lanes` vector accumulators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UkernelShape {
    /// Element type of every operand (a float).
    pub dtype: DType,
    /// Rows of the register tile (`MR`).
    pub mr: u32,
    /// Columns of the register tile (`NR`, a multiple of the vector lanes).
    pub nr: u32,
}

impl UkernelShape {
    /// `gemm.f32.4x8`.
    pub fn name(self) -> String {
        format!("gemm.{}.{}x{}", self.dtype.name(), self.mr, self.nr)
    }

    /// Reads a name written by [`UkernelShape::name`].
    pub fn parse(name: &str) -> Option<UkernelShape> {
        let rest = name.strip_prefix("gemm.")?;
        let (dtype, tile) = rest.split_once('.')?;
        let (mr, nr) = tile.split_once('x')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(mr) || !digits(nr) {
            return None;
        }
        Some(UkernelShape {
            dtype: DType::from_name(dtype)?,
            mr: mr.parse().ok()?,
            nr: nr.parse().ok()?,
        })
    }

    /// Elements in one 128-bit vector of the dtype.
    pub fn lanes(self) -> u32 {
        u32::try_from(16 / self.dtype.size_bytes()).unwrap_or(1)
    }
}

/// One operand of a micro-kernel call: a buffer, the index of the tile's element `(0, 0)`, and
/// for each coordinate of the operand, the axes that advance with it (several axes advancing
/// together read a diagonal in place; an empty list reads the same element all along).
#[derive(Clone, Debug, PartialEq)]
pub struct TileOperand {
    /// The buffer.
    pub buffer: BufferId,
    /// One `Index` value per axis: where the tile starts.
    pub start: Vec<ValueId>,
    /// The coordinates in the text's order, each with its axes.
    pub axes: Vec<(Coord, Vec<u32>)>,
}

impl TileOperand {
    /// The axes that advance with coordinate `c` (empty when the operand does not have it).
    pub fn axes_of(&self, c: Coord) -> &[u32] {
        self.axes
            .iter()
            .find(|(x, _)| *x == c)
            .map_or(&[], |(_, a)| a.as_slice())
    }
}

/// `ukernel @gemm.f32.4x8 kc %kc, tile %mr x %nr, a ..., b ..., c ..., init %first
/// [, scale %s | , divide %s] [, bias ...] [, relu]`: for every `ii < mr` (any number of rows:
/// the kernel walks them `MR` at a time), `jj < nr`,
/// `t = 0; for kk < kc { t = fma(A(ii, kk), B(kk, jj), t) }`, `v = init ? t : C(ii, jj) + t`,
/// then `v = v * scale` (or `v = v / scale` with `divide`), `v = v + bias(ii or jj)`,
/// `v = max(v, 0)` where given, and
/// `C(ii, jj) = v`. It reads A rows `ii < mr`, B columns `jj < NR` (the full width, which the
/// caller makes readable) and writes exactly the `mr x nr` tile (see `docs/ukernel.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct Ukernel {
    /// Which micro-kernel.
    pub shape: UkernelShape,
    /// Length of the summed range (`Index`).
    pub kc: ValueId,
    /// Rows of the tile (`Index`, `>= 0`; more than `MR` are done as several register tiles).
    pub mr: ValueId,
    /// Columns of the tile (`Index`, `0 ..= NR`).
    pub nr: ValueId,
    /// A, with coordinates `(m, k)`.
    pub a: TileOperand,
    /// B, with coordinates `(k, n)`; its `n` axis has a unit stride.
    pub b: TileOperand,
    /// C, with coordinates `(m, n)`; its `n` axis has a unit stride.
    pub c: TileOperand,
    /// `Bool`: overwrite C with the product (else add it to C).
    pub init: ValueId,
    /// A scalar of the dtype that multiplies the result (divides it with `divide`).
    pub scale: Option<ValueId>,
    /// Whether the result is divided by `scale` rather than multiplied (printed `divide %s`):
    /// `x / s` and `x * (1 / s)` round differently, and a GEMM epilogue must compute what its
    /// division computes.
    pub divide: bool,
    /// A vector added along `m` or `n` (its one coordinate).
    pub bias: Option<TileOperand>,
    /// Whether negative results become 0.
    pub relu: bool,
}

impl Ukernel {
    /// A call of `shape`'s kernel for a `kc x mr x nr` tile (`[kc, mr, nr]`), without an
    /// epilogue.
    pub fn plain(
        shape: UkernelShape,
        [kc, mr, nr]: [ValueId; 3],
        a: TileOperand,
        b: TileOperand,
        c: TileOperand,
        init: ValueId,
    ) -> Ukernel {
        Ukernel {
            shape,
            kc,
            mr,
            nr,
            a,
            b,
            c,
            init,
            scale: None,
            divide: false,
            bias: None,
            relu: false,
        }
    }
}

impl Function {
    /// An empty general function called `name`.
    pub fn new(name: impl Into<String>) -> Function {
        Function {
            name: name.into(),
            variant_of: None,
            buffers: Vec::new(),
            params: Vec::new(),
            values: Vec::new(),
            body: Block::default(),
        }
    }

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

impl Module {
    /// The general functions: one per kernel, each with its own entry point.
    pub fn kernels(&self) -> impl Iterator<Item = &Function> {
        self.funcs.iter().filter(|f| f.variant_of.is_none())
    }

    /// The variants of kernel `name`, in module order (the order the entry point tries them).
    pub fn variants_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Function> {
        self.funcs
            .iter()
            .filter(move |f| f.variant_of.as_deref() == Some(name))
    }
}

/// Converts a position in an id-indexed table to `u32`.
fn index_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a function has fewer than 2^32 values and buffers")
}
