//! Scalar operations shared by every IR level: the functions a tensor body or a loop-level
//! instruction applies to elements, the comparisons, and the reduction kinds. Their meaning is
//! the same at every level, so lowering maps them one to one.

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
