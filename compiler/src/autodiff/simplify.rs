//! Builders for scalar body expressions that simplify as they build, and [`simplify`], which
//! rebuilds a whole expression through them.
//!
//! Derivative bodies are full of multiplications by a structural 1 or 0, additions of 0 and
//! double negations; removing them as the derivative is built keeps the derived IR readable
//! (the matmul adjoint is `mul(%0, %1)`, not `add(mul(%0, %1), mul(%2, 0))`).
//!
//! The rules are the algebraic identities of real numbers, which float arithmetic breaks only
//! for non-finite values: `0 * x` becomes `0` even where `x` would be infinite or NaN. That is
//! the usual convention of symbolic differentiation (a term that does not depend on a variable
//! contributes nothing to its gradient), and it is what makes `pow(x, 2)`'s gradient defined
//! for negative `x` (the `log(x)` term of the exponent's derivative is dropped).

use crate::ir::tensor::{BinaryFn, CmpOp, Cond, Expr, UnaryFn};
use einc_runtime::{DType, Scalar};

/// The float literal `v` of dtype `t` (an integer dtype gets `v` truncated).
pub(super) fn lit(v: f64, t: DType) -> Expr {
    Expr::Lit(Scalar::F64(v).cast(t))
}

/// The value of `e` when it is a literal.
fn lit_value(e: &Expr) -> Option<f64> {
    match e {
        Expr::Lit(s) => Some(s.to_f64()),
        _ => None,
    }
}

fn is_lit(e: &Expr, v: f64) -> bool {
    lit_value(e) == Some(v)
}

/// The dtype of `e`, given the dtypes of the op's inputs (valid for verified bodies; an input
/// out of range, which the verifier rejects, is taken as `f64`).
pub(super) fn dtype_of(e: &Expr, inputs: &[DType]) -> DType {
    match e {
        Expr::Input(n) => inputs.get(*n as usize).copied().unwrap_or(DType::F64),
        Expr::Index(_) => DType::I64,
        Expr::Lit(s) => s.dtype(),
        Expr::DimValue(_, t) | Expr::Cast(t, _) | Expr::Delta(_, t) | Expr::Eps(_, t) => *t,
        Expr::Unary(_, x) | Expr::Binary(_, x, _) | Expr::Select(_, x, _) => dtype_of(x, inputs),
    }
}

/// Folds a binary function of two float literals of one dtype (in that dtype's arithmetic).
fn fold(f: BinaryFn, a: &Expr, b: &Expr) -> Option<Expr> {
    let op = |x: f64, y: f64| match f {
        BinaryFn::Add => Some(x + y),
        BinaryFn::Sub => Some(x - y),
        BinaryFn::Mul => Some(x * y),
        BinaryFn::Div => Some(x / y),
        BinaryFn::Max | BinaryFn::Min | BinaryFn::Pow => None,
    };
    match (a, b) {
        (Expr::Lit(Scalar::F64(x)), Expr::Lit(Scalar::F64(y))) => {
            op(*x, *y).map(|v| Expr::Lit(Scalar::F64(v)))
        }
        (Expr::Lit(Scalar::F32(x)), Expr::Lit(Scalar::F32(y))) => {
            // f32 results of + - * / are the f64 results rounded once, so this matches f32
            // arithmetic exactly.
            op(f64::from(*x), f64::from(*y)).map(|v| Expr::Lit(Scalar::F32(v as f32)))
        }
        _ => None,
    }
}

fn binary(f: BinaryFn, a: Expr, b: Expr) -> Expr {
    Expr::Binary(f, Box::new(a), Box::new(b))
}

/// `-a`.
pub(super) fn neg(a: Expr) -> Expr {
    match a {
        Expr::Unary(UnaryFn::Neg, x) => *x,
        Expr::Lit(Scalar::F32(v)) => Expr::Lit(Scalar::F32(-v)),
        Expr::Lit(Scalar::F64(v)) => Expr::Lit(Scalar::F64(-v)),
        Expr::Binary(BinaryFn::Sub, x, y) => binary(BinaryFn::Sub, *y, *x),
        a => Expr::Unary(UnaryFn::Neg, Box::new(a)),
    }
}

/// Strips a negation: `(x, true)` for `-x`.
fn split_neg(a: Expr) -> (Expr, bool) {
    match a {
        Expr::Unary(UnaryFn::Neg, x) => (*x, true),
        a => (a, false),
    }
}

/// `a + b`.
pub(super) fn add(a: Expr, b: Expr) -> Expr {
    if let Some(c) = fold(BinaryFn::Add, &a, &b) {
        return c;
    }
    if is_lit(&a, 0.0) {
        return b;
    }
    if is_lit(&b, 0.0) {
        return a;
    }
    match (split_neg(a), split_neg(b)) {
        ((a, false), (b, true)) => binary(BinaryFn::Sub, a, b),
        ((a, true), (b, false)) => binary(BinaryFn::Sub, b, a),
        ((a, true), (b, true)) => neg(binary(BinaryFn::Add, a, b)),
        ((a, false), (b, false)) => binary(BinaryFn::Add, a, b),
    }
}

/// `a - b`.
pub(super) fn sub(a: Expr, b: Expr) -> Expr {
    if let Some(c) = fold(BinaryFn::Sub, &a, &b) {
        return c;
    }
    if is_lit(&b, 0.0) {
        return a;
    }
    if is_lit(&a, 0.0) {
        return neg(b);
    }
    match split_neg(b) {
        (b, true) => add(a, b),
        (b, false) => binary(BinaryFn::Sub, a, b),
    }
}

/// `a * b`.
pub(super) fn mul(a: Expr, b: Expr) -> Expr {
    if let Some(c) = fold(BinaryFn::Mul, &a, &b) {
        return c;
    }
    if is_lit(&a, 0.0) {
        return a;
    }
    if is_lit(&b, 0.0) {
        return b;
    }
    if is_lit(&a, 1.0) {
        return b;
    }
    if is_lit(&b, 1.0) {
        return a;
    }
    if is_lit(&a, -1.0) {
        return neg(b);
    }
    if is_lit(&b, -1.0) {
        return neg(a);
    }
    let ((a, na), (b, nb)) = (split_neg(a), split_neg(b));
    let product = binary(BinaryFn::Mul, a, b);
    if na != nb {
        neg(product)
    } else {
        product
    }
}

/// `a / b`.
pub(super) fn div(a: Expr, b: Expr) -> Expr {
    if let Some(c) = fold(BinaryFn::Div, &a, &b) {
        return c;
    }
    if is_lit(&b, 1.0) || is_lit(&a, 0.0) {
        return a;
    }
    match split_neg(a) {
        (a, true) => neg(binary(BinaryFn::Div, a, b)),
        (a, false) => binary(BinaryFn::Div, a, b),
    }
}

/// `pow(a, b)`.
pub(super) fn pow(a: Expr, b: Expr) -> Expr {
    if is_lit(&b, 1.0) {
        a
    } else {
        binary(BinaryFn::Pow, a, b)
    }
}

/// `f(a)` for a unary function.
pub(super) fn unary(f: UnaryFn, a: Expr) -> Expr {
    match f {
        UnaryFn::Neg => neg(a),
        f => Expr::Unary(f, Box::new(a)),
    }
}

/// `c ? a : b`.
pub(super) fn select(c: Cond, a: Expr, b: Expr) -> Expr {
    if a == b {
        a
    } else {
        Expr::Select(Box::new(c), Box::new(a), Box::new(b))
    }
}

/// The comparison `a op b`.
pub(super) fn cmp(op: CmpOp, a: Expr, b: Expr) -> Cond {
    Cond::Cmp(op, Box::new(a), Box::new(b))
}

/// `a` converted to `t`, where `a` has dtype `from`.
pub(super) fn cast(t: DType, a: Expr, from: DType) -> Expr {
    match a {
        a if from == t => a,
        Expr::Lit(s) => Expr::Lit(s.cast(t)),
        a => Expr::Cast(t, Box::new(a)),
    }
}

/// Rebuilds `e` bottom-up through the simplifying builders (conditions are kept as they are,
/// their operands simplified). `inputs` are the dtypes of the op's inputs.
pub(super) fn simplify(e: &Expr, inputs: &[DType]) -> Expr {
    let s = |x: &Expr| simplify(x, inputs);
    match e {
        Expr::Unary(f, x) => unary(*f, s(x)),
        Expr::Binary(f, a, b) => {
            let (a, b) = (s(a), s(b));
            match f {
                BinaryFn::Add => add(a, b),
                BinaryFn::Sub => sub(a, b),
                BinaryFn::Mul => mul(a, b),
                BinaryFn::Div => div(a, b),
                BinaryFn::Pow => pow(a, b),
                BinaryFn::Max | BinaryFn::Min => binary(*f, a, b),
            }
        }
        Expr::Select(c, a, b) => select(simplify_cond(c, inputs), s(a), s(b)),
        Expr::Cast(t, x) => cast(*t, s(x), dtype_of(x, inputs)),
        Expr::Input(_)
        | Expr::Index(_)
        | Expr::Lit(_)
        | Expr::DimValue(..)
        | Expr::Delta(..)
        | Expr::Eps(..) => e.clone(),
    }
}

fn simplify_cond(c: &Cond, inputs: &[DType]) -> Cond {
    let s = |x: &Cond| Box::new(simplify_cond(x, inputs));
    match c {
        Cond::Cmp(op, a, b) => cmp(*op, simplify(a, inputs), simplify(b, inputs)),
        Cond::And(a, b) => Cond::And(s(a), s(b)),
        Cond::Or(a, b) => Cond::Or(s(a), s(b)),
        Cond::Not(a) => Cond::Not(s(a)),
    }
}
