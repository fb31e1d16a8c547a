//! Scalar operations shared by every IR level: the functions a tensor body or a loop-level
//! instruction applies to elements, the comparisons, and the reduction kinds. Their meaning is
//! the same at every level, so lowering maps them one to one; it is defined here once, by
//! [`unary`], [`binary`], [`compare`] and [`permutation_sign`], which the tensor interpreter,
//! the loop-IR evaluator and constant folding all call.
//!
//! Floats compute in their own precision (an `f32` op never widens, like numpy). Integers wrap
//! on overflow, integer division truncates toward zero and gives 0 for a zero divisor (so
//! `i32::MIN / -1` wraps to `i32::MIN`), and `Max`/`Min` follow numpy's `maximum`/`minimum`:
//! a NaN operand gives NaN. Errors are operand dtypes the IR does not allow (mixed dtypes, a
//! transcendental function or `Pow` on integers); the caller adds the context.

use einc_runtime::{DType, Scalar};
use std::ops::{Add, Div, Mul, Neg, Sub};

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

/// The float operations the IR needs, implemented for `f32` and `f64`.
trait Float:
    Copy
    + PartialOrd
    + Neg<Output = Self>
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn abs(self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn powf(self, e: Self) -> Self;
}

/// The integer operations the IR needs, implemented for `i32` and `i64`.
trait Int: Copy + Ord {
    const ZERO: Self;
    fn wrapping_neg(self) -> Self;
    fn wrapping_abs(self) -> Self;
    fn wrapping_add(self, b: Self) -> Self;
    fn wrapping_sub(self, b: Self) -> Self;
    fn wrapping_mul(self, b: Self) -> Self;
    fn wrapping_div(self, b: Self) -> Self;
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn powf(self, e: Self) -> Self {
                <$t>::powf(self, e)
            }
        }
    };
}
impl_float!(f32);
impl_float!(f64);

macro_rules! impl_int {
    ($t:ty) => {
        impl Int for $t {
            const ZERO: Self = 0;
            fn wrapping_neg(self) -> Self {
                <$t>::wrapping_neg(self)
            }
            fn wrapping_abs(self) -> Self {
                <$t>::wrapping_abs(self)
            }
            fn wrapping_add(self, b: Self) -> Self {
                <$t>::wrapping_add(self, b)
            }
            fn wrapping_sub(self, b: Self) -> Self {
                <$t>::wrapping_sub(self, b)
            }
            fn wrapping_mul(self, b: Self) -> Self {
                <$t>::wrapping_mul(self, b)
            }
            fn wrapping_div(self, b: Self) -> Self {
                <$t>::wrapping_div(self, b)
            }
        }
    };
}
impl_int!(i32);
impl_int!(i64);

/// True for a NaN; false for every integer (a value unordered with itself is a NaN).
fn is_nan<T: PartialOrd>(a: T) -> bool {
    a.partial_cmp(&a).is_none()
}

/// numpy's `maximum`: the larger operand, or NaN when either is NaN.
fn maximum<T: PartialOrd + Copy>(a: T, b: T) -> T {
    if is_nan(a) || a >= b {
        a
    } else {
        b
    }
}

/// numpy's `minimum`: the smaller operand, or NaN when either is NaN.
fn minimum<T: PartialOrd + Copy>(a: T, b: T) -> T {
    if is_nan(a) || a <= b {
        a
    } else {
        b
    }
}

fn float_unary<T: Float>(f: UnaryFn, x: T) -> T {
    match f {
        UnaryFn::Neg => -x,
        UnaryFn::Abs => x.abs(),
        UnaryFn::Exp => x.exp(),
        UnaryFn::Log => x.ln(),
        UnaryFn::Sqrt => x.sqrt(),
        UnaryFn::Rsqrt => T::ONE / x.sqrt(),
        UnaryFn::Tanh => x.tanh(),
        UnaryFn::Sigmoid => T::ONE / (T::ONE + (-x).exp()),
        UnaryFn::Relu => maximum(x, T::ZERO),
    }
}

/// `None` for the float-only functions.
fn int_unary<T: Int>(f: UnaryFn, x: T) -> Option<T> {
    match f {
        UnaryFn::Neg => Some(x.wrapping_neg()),
        UnaryFn::Abs => Some(x.wrapping_abs()),
        UnaryFn::Relu => Some(x.max(T::ZERO)),
        UnaryFn::Exp
        | UnaryFn::Log
        | UnaryFn::Sqrt
        | UnaryFn::Rsqrt
        | UnaryFn::Tanh
        | UnaryFn::Sigmoid => None,
    }
}

fn float_binary<T: Float>(f: BinaryFn, a: T, b: T) -> T {
    match f {
        BinaryFn::Add => a + b,
        BinaryFn::Sub => a - b,
        BinaryFn::Mul => a * b,
        BinaryFn::Div => a / b,
        BinaryFn::Max => maximum(a, b),
        BinaryFn::Min => minimum(a, b),
        BinaryFn::Pow => a.powf(b),
    }
}

/// `None` for `Pow`, which is float-only.
fn int_binary<T: Int>(f: BinaryFn, a: T, b: T) -> Option<T> {
    match f {
        BinaryFn::Add => Some(a.wrapping_add(b)),
        BinaryFn::Sub => Some(a.wrapping_sub(b)),
        BinaryFn::Mul => Some(a.wrapping_mul(b)),
        // A zero divisor gives 0 rather than trapping, so every input has a defined result.
        BinaryFn::Div if b == T::ZERO => Some(T::ZERO),
        BinaryFn::Div => Some(a.wrapping_div(b)),
        BinaryFn::Max => Some(a.max(b)),
        BinaryFn::Min => Some(a.min(b)),
        BinaryFn::Pow => None,
    }
}

/// True when the function is defined for integer operands.
pub fn unary_accepts_int(f: UnaryFn) -> bool {
    int_unary(f, 0i32).is_some()
}

/// True when the function is defined for integer operands.
pub fn binary_accepts_int(f: BinaryFn) -> bool {
    int_binary(f, 0i32, 1i32).is_some()
}

/// Applies a unary function.
pub fn unary(f: UnaryFn, x: Scalar) -> Result<Scalar, String> {
    let result = match x {
        Scalar::F32(v) => Some(Scalar::F32(float_unary(f, v))),
        Scalar::F64(v) => Some(Scalar::F64(float_unary(f, v))),
        Scalar::I32(v) => int_unary(f, v).map(Scalar::I32),
        Scalar::I64(v) => int_unary(f, v).map(Scalar::I64),
    };
    result.ok_or_else(|| format!("`{}` is not defined on {}", f.name(), x.dtype()))
}

/// Applies a binary function to two operands of the same dtype.
pub fn binary(f: BinaryFn, a: Scalar, b: Scalar) -> Result<Scalar, String> {
    let result = match (a, b) {
        (Scalar::F32(a), Scalar::F32(b)) => Some(Scalar::F32(float_binary(f, a, b))),
        (Scalar::F64(a), Scalar::F64(b)) => Some(Scalar::F64(float_binary(f, a, b))),
        (Scalar::I32(a), Scalar::I32(b)) => int_binary(f, a, b).map(Scalar::I32),
        (Scalar::I64(a), Scalar::I64(b)) => int_binary(f, a, b).map(Scalar::I64),
        _ => None,
    };
    result.ok_or_else(|| {
        format!(
            "`{}` is not defined on {} and {}",
            f.name(),
            a.dtype(),
            b.dtype()
        )
    })
}

fn holds<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    }
}

/// Compares two operands of the same dtype (a NaN makes every comparison but `!=` false).
pub fn compare(op: CmpOp, a: Scalar, b: Scalar) -> Result<bool, String> {
    match (a, b) {
        (Scalar::F32(a), Scalar::F32(b)) => Ok(holds(op, a, b)),
        (Scalar::F64(a), Scalar::F64(b)) => Ok(holds(op, a, b)),
        (Scalar::I32(a), Scalar::I32(b)) => Ok(holds(op, a, b)),
        (Scalar::I64(a), Scalar::I64(b)) => Ok(holds(op, a, b)),
        _ => Err(format!("cannot compare {} with {}", a.dtype(), b.dtype())),
    }
}

/// The Levi-Civita symbol of `values`: 0 when two are equal, else the sign of the permutation
/// that sorts them (+1 for an even number of inversions, -1 for odd).
pub fn permutation_sign(values: &[usize]) -> i64 {
    let mut sign = 1;
    for (n, a) in values.iter().enumerate() {
        for b in &values[n + 1..] {
            match a.cmp(b) {
                std::cmp::Ordering::Equal => return 0,
                std::cmp::Ordering::Greater => sign = -sign,
                std::cmp::Ordering::Less => {}
            }
        }
    }
    sign
}
