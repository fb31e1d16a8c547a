//! Scalar operations shared by every IR level: the functions a tensor body or a loop-level
//! instruction applies to elements, the comparisons, and the reduction kinds. Their meaning is
//! the same at every level, so lowering maps them one to one.

use einc_runtime::{DType, Scalar};

/// How a reduction combines values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// Sum (identity 0).
    Add,
    /// Product (identity 1).
    Mul,
    /// Maximum (identity -inf, or the dtype's minimum for integers).
    Max,
    /// Minimum (identity +inf, or the dtype's maximum for integers).
    Min,
}

impl ReduceKind {
    /// The binary function that combines two partial results.
    pub fn combine_fn(self) -> BinaryFn {
        match self {
            ReduceKind::Add => BinaryFn::Add,
            ReduceKind::Mul => BinaryFn::Mul,
            ReduceKind::Max => BinaryFn::Max,
            ReduceKind::Min => BinaryFn::Min,
        }
    }

    /// The value a reduction starts from, and its result over nothing: 0 for `Add`, 1 for
    /// `Mul`, -inf (or the integer minimum) for `Max`, +inf (or the integer maximum) for `Min`.
    pub fn identity(self, dtype: DType) -> Scalar {
        match (self, dtype) {
            (ReduceKind::Add, _) => Scalar::zero(dtype),
            (ReduceKind::Mul, _) => Scalar::I32(1).cast(dtype),
            (ReduceKind::Max, DType::F32) => Scalar::F32(f32::NEG_INFINITY),
            (ReduceKind::Max, DType::F64) => Scalar::F64(f64::NEG_INFINITY),
            (ReduceKind::Max, DType::I32) => Scalar::I32(i32::MIN),
            (ReduceKind::Max, DType::I64) => Scalar::I64(i64::MIN),
            (ReduceKind::Min, DType::F32) => Scalar::F32(f32::INFINITY),
            (ReduceKind::Min, DType::F64) => Scalar::F64(f64::INFINITY),
            (ReduceKind::Min, DType::I32) => Scalar::I32(i32::MAX),
            (ReduceKind::Min, DType::I64) => Scalar::I64(i64::MAX),
        }
    }
}

/// Unary scalar functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryFn {
    /// `-x`
    Neg,
    /// `|x|`
    Abs,
    /// `e^x` (floats only, like the other transcendental functions)
    Exp,
    /// natural logarithm
    Log,
    /// square root
    Sqrt,
    /// `1 / sqrt(x)`
    Rsqrt,
    /// hyperbolic tangent
    Tanh,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `max(x, 0)`
    Relu,
}

/// Binary scalar functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryFn {
    /// `a + b` (integers wrap)
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b` (integers: truncating; division by zero gives 0)
    Div,
    /// larger of the two (NaN propagates)
    Max,
    /// smaller of the two (NaN propagates)
    Min,
    /// `a` raised to `b` (floats only)
    Pow,
}

/// Comparisons, used in [`Cond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl ReduceKind {
    /// Every reduction kind, in declaration order (for parsers matching names).
    pub const ALL: [ReduceKind; 4] = [
        ReduceKind::Add,
        ReduceKind::Mul,
        ReduceKind::Max,
        ReduceKind::Min,
    ];
}

impl UnaryFn {
    /// Every unary function, in declaration order.
    pub const ALL: [UnaryFn; 9] = [
        UnaryFn::Neg,
        UnaryFn::Abs,
        UnaryFn::Exp,
        UnaryFn::Log,
        UnaryFn::Sqrt,
        UnaryFn::Rsqrt,
        UnaryFn::Tanh,
        UnaryFn::Sigmoid,
        UnaryFn::Relu,
    ];
}

impl BinaryFn {
    /// Every binary function, in declaration order.
    pub const ALL: [BinaryFn; 7] = [
        BinaryFn::Add,
        BinaryFn::Sub,
        BinaryFn::Mul,
        BinaryFn::Div,
        BinaryFn::Max,
        BinaryFn::Min,
        BinaryFn::Pow,
    ];
}

impl CmpOp {
    /// Every comparison, in declaration order.
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Eq,
        CmpOp::Ne,
    ];
}

impl ReduceKind {
    /// The keyword in IR text (`add`, `mul`, `max`, `min`).
    pub fn name(self) -> &'static str {
        match self {
            ReduceKind::Add => "add",
            ReduceKind::Mul => "mul",
            ReduceKind::Max => "max",
            ReduceKind::Min => "min",
        }
    }
}

impl UnaryFn {
    /// The name in IR text and in `.ein` source (`exp`, `relu`, ...).
    pub fn name(self) -> &'static str {
        match self {
            UnaryFn::Neg => "neg",
            UnaryFn::Abs => "abs",
            UnaryFn::Exp => "exp",
            UnaryFn::Log => "log",
            UnaryFn::Sqrt => "sqrt",
            UnaryFn::Rsqrt => "rsqrt",
            UnaryFn::Tanh => "tanh",
            UnaryFn::Sigmoid => "sigmoid",
            UnaryFn::Relu => "relu",
        }
    }
}

impl BinaryFn {
    /// The name in IR text (`add`, `pow`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BinaryFn::Add => "add",
            BinaryFn::Sub => "sub",
            BinaryFn::Mul => "mul",
            BinaryFn::Div => "div",
            BinaryFn::Max => "max",
            BinaryFn::Min => "min",
            BinaryFn::Pow => "pow",
        }
    }
}

impl CmpOp {
    /// The name in IR text (`lt`, `le`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
        }
    }
}
