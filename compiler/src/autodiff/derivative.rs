//! Symbolic differentiation of a scalar body with respect to one of its inputs.
//!
//! [`Diff::of`] returns the derivative of a body `e` with respect to input `%k`, multiplied by
//! a seed: the linearisation of `e` with `d%k = seed` and every other input held fixed. Putting
//! the seed where the input was (rather than multiplying by it afterwards) keeps the operands
//! in the order the textbook writes them: the derivative of `mul(%0, %1)` with respect to
//! `%1` is `mul(%0, seed)`, so the matmul gradient reads `dB[k,j] = A[i,k] * dC[i,j]`.
//!
//! `None` means "structurally zero": the body does not depend on `%k` along any
//! differentiable path (through an integer cast, a comparison or a constant).
//!
//! Conventions at points where a function is not differentiable (documented in
//! `docs/autodiff.md`): `abs'(0) = 0`, `relu'(0) = 0`; `max(a, b)` passes the gradient to `a`
//! when `a >= b` and `min(a, b)` to `a` when `a <= b`; `select` passes it to the taken branch.

use super::simplify::{
    add, cast, cmp, div, dtype_of, lit, mul, neg, pow, select, simplify, sub, unary,
};
use crate::ir::tensor::{BinaryFn, CmpOp, Expr, UnaryFn};
use einc_runtime::DType;

/// Differentiation with respect to one input of an op.
pub(super) struct Diff<'a> {
    /// The input differentiated against.
    pub k: u32,
    /// The tangent of input `k`, in its dtype.
    pub seed: &'a Expr,
    /// The dtypes of the op's inputs.
    pub inputs: &'a [DType],
}

impl Diff<'_> {
    fn dtype(&self, e: &Expr) -> DType {
        dtype_of(e, self.inputs)
    }

    /// The linearisation of `e` (see the module doc), or `None` when it is zero.
    pub(super) fn of(&self, e: &Expr) -> Option<Expr> {
        match e {
            Expr::Input(n) => (*n == self.k).then(|| self.seed.clone()),
            Expr::Index(_)
            | Expr::Lit(_)
            | Expr::DimValue(..)
            | Expr::Delta(..)
            | Expr::Eps(..) => None,
            Expr::Unary(f, x) => {
                let d = self.of(x)?;
                Some(self.unary(*f, x, d))
            }
            Expr::Binary(f, a, b) => {
                let (da, db) = (self.of(a), self.of(b));
                if da.is_none() && db.is_none() {
                    return None;
                }
                Some(self.binary(*f, a, b, da, db))
            }
            Expr::Select(c, a, b) => {
                let (da, db) = (self.of(a), self.of(b));
                if da.is_none() && db.is_none() {
                    return None;
                }
                let t = self.dtype(a);
                let zero = || lit(0.0, t);
                let c = c.as_ref().clone();
                Some(select(c, da.unwrap_or_else(zero), db.unwrap_or_else(zero)))
            }
            Expr::Cast(t, x) => {
                let from = self.dtype(x);
                if !t.is_float() || !from.is_float() {
                    return None;
                }
                Some(cast(*t, self.of(x)?, from))
            }
        }
    }

    /// The linearisation of `f(x)` given the tangent `d` of `x`.
    fn unary(&self, f: UnaryFn, x: &Expr, d: Expr) -> Expr {
        let t = self.dtype(x);
        let x = simplify(x, self.inputs);
        let positive = || cmp(CmpOp::Gt, x.clone(), lit(0.0, t));
        match f {
            UnaryFn::Neg => neg(d),
            UnaryFn::Abs => select(
                positive(),
                d.clone(),
                select(cmp(CmpOp::Lt, x.clone(), lit(0.0, t)), neg(d), lit(0.0, t)),
            ),
            UnaryFn::Relu => select(positive(), d, lit(0.0, t)),
            UnaryFn::Exp => mul(d, unary(UnaryFn::Exp, x)),
            UnaryFn::Log => div(d, x),
            UnaryFn::Sqrt => div(d, mul(lit(2.0, t), unary(UnaryFn::Sqrt, x))),
            // d(x^-1/2) = -x^-1/2 / (2x)
            UnaryFn::Rsqrt => neg(div(
                mul(d, unary(UnaryFn::Rsqrt, x.clone())),
                mul(lit(2.0, t), x),
            )),
            UnaryFn::Tanh => {
                let th = unary(UnaryFn::Tanh, x);
                mul(d, sub(lit(1.0, t), mul(th.clone(), th)))
            }
            UnaryFn::Sigmoid => {
                let s = unary(UnaryFn::Sigmoid, x);
                mul(d, mul(s.clone(), sub(lit(1.0, t), s)))
            }
        }
    }

    /// The linearisation of `f(a, b)` given the tangents of `a` and `b` (not both zero).
    fn binary(&self, f: BinaryFn, a: &Expr, b: &Expr, da: Option<Expr>, db: Option<Expr>) -> Expr {
        let t = self.dtype(a);
        let zero = || lit(0.0, t);
        let (a, b) = (simplify(a, self.inputs), simplify(b, self.inputs));
        // Sums of optional terms: a missing term is zero.
        let plus = |x: Option<Expr>, y: Option<Expr>| match (x, y) {
            (Some(x), Some(y)) => add(x, y),
            (x, y) => x.or(y).unwrap_or_else(zero),
        };
        let minus = |x: Option<Expr>, y: Option<Expr>| match (x, y) {
            (Some(x), Some(y)) => sub(x, y),
            (Some(x), None) => x,
            (None, Some(y)) => neg(y),
            (None, None) => zero(),
        };
        match f {
            BinaryFn::Add => plus(da, db),
            BinaryFn::Sub => minus(da, db),
            BinaryFn::Mul => plus(da.map(|d| mul(d, b.clone())), db.map(|d| mul(a, d))),
            // d(a/b) = da/b - a*db/(b*b)
            BinaryFn::Div => minus(
                da.map(|d| div(d, b.clone())),
                db.map(|d| div(mul(a, d), mul(b.clone(), b))),
            ),
            BinaryFn::Max | BinaryFn::Min => {
                let op = if f == BinaryFn::Max {
                    CmpOp::Ge
                } else {
                    CmpOp::Le
                };
                select(
                    cmp(op, a, b),
                    da.unwrap_or_else(zero),
                    db.unwrap_or_else(zero),
                )
            }
            // d(a^b) = b * a^(b-1) * da + a^b * log(a) * db
            BinaryFn::Pow => plus(
                da.map(|d| {
                    let b_minus_1 = sub(b.clone(), lit(1.0, t));
                    mul(d, mul(b.clone(), pow(a.clone(), b_minus_1)))
                }),
                db.map(|d| {
                    mul(
                        d,
                        mul(pow(a.clone(), b.clone()), unary(UnaryFn::Log, a.clone())),
                    )
                }),
            ),
        }
    }
}
