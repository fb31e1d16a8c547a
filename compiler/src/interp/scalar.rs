//! The scalar semantics of the tensor IR: what each unary and binary function, comparison and
//! reduction computes on one element, per dtype.
//!
//! Floats compute in their own precision (an `f32` op never widens, like numpy). Integers wrap
//! on overflow, integer division truncates toward zero and gives 0 for a zero divisor (so
//! `i32::MIN / -1` wraps to `i32::MIN`), and `Max`/`Min` follow numpy's `maximum`/`minimum`:
//! a NaN operand gives NaN. Errors are operand dtypes the IR does not allow (mixed dtypes, a
//! transcendental function or `Pow` on integers); the caller adds the context.

use crate::ir::tensor::{BinaryFn, CmpOp, UnaryFn};
use einc_runtime::Scalar;
use std::ops::{Add, Div, Mul, Neg, Sub};

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
pub(crate) fn unary_accepts_int(f: UnaryFn) -> bool {
    int_unary(f, 0i32).is_some()
}

/// True when the function is defined for integer operands.
pub(crate) fn binary_accepts_int(f: BinaryFn) -> bool {
    int_binary(f, 0i32, 1i32).is_some()
}

/// Applies a unary function.
pub(crate) fn unary(f: UnaryFn, x: Scalar) -> Result<Scalar, String> {
    let result = match x {
        Scalar::F32(v) => Some(Scalar::F32(float_unary(f, v))),
        Scalar::F64(v) => Some(Scalar::F64(float_unary(f, v))),
        Scalar::I32(v) => int_unary(f, v).map(Scalar::I32),
        Scalar::I64(v) => int_unary(f, v).map(Scalar::I64),
    };
    result.ok_or_else(|| format!("`{}` is not defined on {}", f.name(), x.dtype()))
}

/// Applies a binary function to two operands of the same dtype.
pub(crate) fn binary(f: BinaryFn, a: Scalar, b: Scalar) -> Result<Scalar, String> {
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
pub(crate) fn compare(op: CmpOp, a: Scalar, b: Scalar) -> Result<bool, String> {
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
pub(super) fn permutation_sign(values: &[usize]) -> i64 {
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
