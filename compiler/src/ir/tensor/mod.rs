//! The tensor IR: a module of functions whose bodies are SSA tensor values defined by one
//! structured operation, [`Generic`] (in the spirit of MLIR's `linalg.generic`).
//!
//! A `Generic` names an iteration space of indices with extents, reads each input through an
//! indexing map (which index, or which fixed position, addresses each axis; an index may repeat
//! to address a diagonal), evaluates a scalar [`Expr`] body per point, and either writes each
//! point (a map) or combines the points that differ only in the reduced indices (a contraction
//! or reduction). A matmul, a Hadamard product, a row max and a fused `exp(S - m)` are all one
//! `Generic` with different maps and bodies, so later passes reason about one operation.
//!
//! The text form is documented in `docs/ir.md`; [`printer`] writes it, [`parser`] reads it back
//! and [`verify`] checks the invariants listed on each type.

pub mod builder;
pub mod parser;
pub mod printer;
pub mod schedule;
pub mod verify;
pub mod visit;

pub use crate::ir::scalar::{BinaryFn, CmpOp, ReduceKind, UnaryFn};
use einc_runtime::{DType, Scalar};

/// An extent: a literal size or a dim bound at call time (or fixed by the module).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Extent {
    /// A literal size.
    Fixed(u64),
    /// A named dim of the module.
    Dim(String),
}

/// A module-level dim: symbolic (`value == None`) or fixed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimDef {
    /// The dim's name.
    pub name: String,
    /// The fixed extent, if any.
    pub value: Option<u64>,
}

/// A tensor type: element dtype and one extent per axis (rank 0 is a scalar).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Axis extents.
    pub shape: Vec<Extent>,
}

/// The largest extent: the ABI passes extents as `int64_t` (`docs/limits.md`).
pub const MAX_EXTENT: u64 = i64::MAX as u64;

/// The largest rank of a tensor: numpy's (`NPY_MAXDIMS` in numpy 2). Each output's rank costs
/// its kernel's entry point a number of checks quadratic in it ([`Function::entry_checks`]).
pub const MAX_RANK: usize = 64;

/// The most checks a kernel's entry point may need ([`Function::entry_checks`]): enough for
/// one output of the largest rank among 64 arguments. The checks are emitted as straight-line
/// code, and code generation time grows faster than linearly with their number: about 3 s for
/// a rank-64 output, 1 s for 32 scalar inputs and 32 scalar outputs (`docs/limits.md`).
pub const MAX_ENTRY_CHECKS: usize = MAX_RANK * MAX_RANK + MAX_RANK;

/// The largest byte size a tensor may have: a kernel addresses its elements with signed 64-bit
/// offsets, and the ABI passes extents and strides as `int64_t` (`docs/limits.md`).
pub const MAX_TENSOR_BYTES: u64 = i64::MAX as u64;

impl TensorType {
    /// The bytes this type needs with every symbolic dim (and every zero extent) taken as 1, or
    /// `None` when that exceeds [`MAX_TENSOR_BYTES`]: a lower bound on the size of any tensor
    /// of this type that could hold an element, known before the call. `dims` resolves
    /// [`Extent::Dim`]s that the module fixes. The verifier and sema reject types where this
    /// is `None`, so passes may multiply the fixed extents of a verified type without overflow.
    pub fn fixed_bytes(&self, dims: &[DimDef]) -> Option<u64> {
        let mut bytes = self.dtype.size_bytes() as u64;
        for e in &self.shape {
            let n = match e {
                Extent::Fixed(n) => *n,
                Extent::Dim(d) => dims
                    .iter()
                    .find(|x| &x.name == d)
                    .and_then(|x| x.value)
                    .unwrap_or(1),
            };
            bytes = bytes.checked_mul(n.max(1))?;
        }
        (bytes <= MAX_TENSOR_BYTES).then_some(bytes)
    }
}

/// A whole program: dims and functions (one per kernel).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    /// Dims, in declaration order. Every `Extent::Dim` in the module names one of these.
    pub dims: Vec<DimDef>,
    /// Functions, in declaration order; names are unique.
    pub funcs: Vec<Function>,
}

/// Identifies an SSA value within one [`Function`]: an index into [`Function::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// An SSA value: its printed name (unique in the function, without the `%`) and type.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueDef {
    /// Name, e.g. `Q` or `P.max`.
    pub name: String,
    /// Type.
    pub ty: TensorType,
}

/// A kernel: parameters, a straight-line list of ops, and named results.
///
/// Invariants (checked by [`verify`]): every value is defined exactly once, either as a
/// parameter or as one op's result; ops use only values defined before them; every result
/// refers to a defined value whose type equals the declared output type.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// The kernel's name.
    pub name: String,
    /// Every value of the function; `ValueId(n)` is `values[n]`.
    pub values: Vec<ValueDef>,
    /// The parameters, in call order.
    pub params: Vec<ValueId>,
    /// The ops, in execution order.
    pub ops: Vec<Op>,
    /// The outputs, in call order.
    pub results: Vec<ResultDef>,
}

/// One named output of a function.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultDef {
    /// The output's name in the kernel signature (e.g. `O`).
    pub name: String,
    /// The value returned.
    pub value: ValueId,
}

/// An operation defining one SSA value.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The value this op defines.
    pub result: ValueId,
    /// What it computes.
    pub kind: OpKind,
}

/// The operations of the tensor IR.
#[derive(Clone, Debug, PartialEq)]
pub enum OpKind {
    /// The structured operation.
    Generic(Generic),
}

/// Identifies an index of one [`Generic`]: an index into [`Generic::indices`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexId(pub u32);

/// An index of an iteration space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexDef {
    /// Name (unique within the op), e.g. `i`.
    pub name: String,
    /// Number of values it takes.
    pub extent: Extent,
}

/// What addresses one axis of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AxisMap {
    /// The current value of an index (the axis extent must equal the index extent).
    Index(IndexId),
    /// A fixed position (used for size-1 broadcasting, written `0`, and literal positions).
    Fixed(u64),
}

/// One input of a [`Generic`] and its indexing map.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// The tensor read.
    pub value: ValueId,
    /// One entry per axis of the tensor.
    pub map: Vec<AxisMap>,
}

/// The structured operation.
///
/// Semantics: for every point of the iteration space (every combination of index values),
/// evaluate `body`; the result element addressed by the `output` indices is the `reduce`
/// combination of the body values at all points with those output index values (starting from
/// the reduction's identity), or simply the body value when there is no reduction.
///
/// Invariants (checked by [`verify`]): index names are unique; `output` has no repeats; the
/// indices not in `output` are exactly those that the reduction is over (so a map has every
/// index in `output`); each input map has one entry per axis of the input, and an axis mapped
/// by an index has that index's extent (a `Fixed(p)` entry needs `p` < the axis extent); the
/// body is well typed with type `dtype`, which is also the result's dtype; the result's shape
/// is the extents of the `output` indices; the schedule, if any, fits the op
/// ([`schedule::check`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Generic {
    /// The iteration space.
    pub indices: Vec<IndexDef>,
    /// Inputs and their indexing maps; the body refers to them by position.
    pub inputs: Vec<Input>,
    /// The indices addressing the result's axes, in axis order.
    pub output: Vec<IndexId>,
    /// The reduction, when some indices are not in `output`; `None` makes the op an
    /// elementwise map. The verifier rejects `Some` with an empty `over`, so that every
    /// computation has one spelling.
    pub reduce: Option<Reduce>,
    /// The scalar computation at each point.
    pub body: Expr,
    /// Element type of the body and the result.
    pub dtype: DType,
    /// How the op executes (`None`: the naive nest). Changes speed, never the result
    /// ([`schedule`]).
    pub schedule: Option<schedule::Schedule>,
}

/// The reduction part of a [`Generic`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduce {
    /// How values combine.
    pub kind: ReduceKind,
    /// The indices combined over (exactly the indices not in `output`), in loop order.
    pub over: Vec<IndexId>,
}

/// A boolean condition, used by [`Expr::Select`].
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// A comparison of two scalar expressions of the same type (index values are `i64`).
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// Both hold.
    And(Box<Cond>, Box<Cond>),
    /// Either holds.
    Or(Box<Cond>, Box<Cond>),
    /// Does not hold.
    Not(Box<Cond>),
}

/// A scalar expression: the body of a [`Generic`]. Every node has a dtype, computed
/// bottom-up: an input has its tensor's dtype, an index value is `i64`, a literal or dim value
/// carries its dtype, `Cast` has its target, and every other node has the (equal) dtype of its
/// operands.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// The element of input `n` (printed `%n`) at the current point.
    Input(u32),
    /// The current value of an index, as `i64`.
    Index(IndexId),
    /// A constant.
    Lit(Scalar),
    /// The extent of a dim, as the given dtype (`sqrt(K)` in source).
    DimValue(String, DType),
    /// A unary function.
    Unary(UnaryFn, Box<Expr>),
    /// A binary function.
    Binary(BinaryFn, Box<Expr>, Box<Expr>),
    /// `cond ? a : b`.
    Select(Box<Cond>, Box<Expr>, Box<Expr>),
    /// Conversion to a dtype (numpy `astype` rules).
    Cast(DType, Box<Expr>),
    /// Kronecker delta of index values: 1 when all are equal, else 0, in the given dtype.
    /// Present only until delta elimination.
    Delta(Vec<IndexId>, DType),
    /// Levi-Civita symbol of index values (extent n each, n indices): the sign of the
    /// permutation, or 0 when two are equal, in the given dtype. Present only until eps
    /// expansion.
    Eps(Vec<IndexId>, DType),
}

impl Function {
    /// How many pairwise checks the kernel's entry point makes: for each output, one per pair
    /// of its axes (does it reach an element twice?) and one per other argument (do they
    /// overlap?). Bounded by [`MAX_ENTRY_CHECKS`].
    pub fn entry_checks(&self) -> usize {
        let args = self.params.len() + self.results.len();
        self.results
            .iter()
            .map(|r| {
                let rank = self
                    .values
                    .get(r.value.0 as usize)
                    .map_or(0, |v| v.ty.shape.len());
                rank * rank + args
            })
            .sum()
    }

    /// The definition of a value.
    pub fn value(&self, id: ValueId) -> &ValueDef {
        &self.values[id.0 as usize]
    }

    /// Adds a value and returns its id (the caller must define it as a parameter or op result).
    pub fn add_value(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let id = ValueId(u32::try_from(self.values.len()).expect("fewer than 2^32 values"));
        self.values.push(ValueDef {
            name: name.into(),
            ty,
        });
        id
    }
}

impl Generic {
    /// The definition of an index.
    pub fn index_def(&self, id: IndexId) -> &IndexDef {
        &self.indices[id.0 as usize]
    }

    /// The type of the result: the op's dtype and the extents of its output indices (`None`
    /// when an output index is out of range, which the verifier reports).
    pub fn result_type(&self) -> Option<TensorType> {
        let shape = self
            .output
            .iter()
            .map(|i| self.indices.get(i.0 as usize).map(|d| d.extent.clone()))
            .collect::<Option<Vec<_>>>()?;
        Some(TensorType {
            dtype: self.dtype,
            shape,
        })
    }

    /// The shape of the result: the extents of the output indices.
    pub fn result_shape(&self) -> Vec<Extent> {
        self.output
            .iter()
            .map(|&i| self.index_def(i).extent.clone())
            .collect()
    }
}

impl Module {
    /// The function with this name.
    pub fn func(&self, name: &str) -> Option<&Function> {
        self.funcs.iter().find(|f| f.name == name)
    }

    /// The fixed value of a dim, if the module fixes it.
    pub fn dim_value(&self, name: &str) -> Option<u64> {
        self.dims
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.value)
    }
}
