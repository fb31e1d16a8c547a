//! Closed forms for derived bodies: a body is read as a sum of monomials (a coefficient times
//! a product of factors with integer powers), like terms are collected, constants folded, and
//! the result is written back with its common factors taken out.
//!
//! The derivation builds bodies mechanically, and the product rule leaves them long: least
//! squares gives `0.5 * dL * (R - Y) + 0.5 * (R - Y) * dL`, which is `dL * (R - Y)`. Reading
//! the body as a polynomial and writing it back canonically gets there:
//!
//! - `+`, `-` and negation add terms; a product of a monomial and a sum is distributed (a
//!   product of two sums is kept as one: expanding it could grow without bound); `/` by a
//!   monomial multiplies by its reciprocal. Anything else (`exp(...)`, an input, `select`, a
//!   sum in a denominator) is a factor, with its own operands simplified.
//! - Terms with the same factors and powers (in any order) are collected and their
//!   coefficients added; a term with coefficient 0 goes, a factor whose powers cancel goes
//!   (`x / x` is 1). Coefficients are folded in f64; a division by a literal that has no exact
//!   reciprocal (`x / 3`) keeps the literal as a factor, so no inexact constant appears.
//! - Written back, a sum takes out the factors common to all its terms (`dL * (R - Y)`), and
//!   a coefficient all terms share; the rest of the sum goes where the first term had its
//!   first other factor (`df * (A[i, j] + A[j, i]) * x[j]`). Factors keep their order of
//!   first appearance, so the seed stays where the derivation put it; powers are written as
//!   repeated factors (`x * x`) and negative powers as a division.
//!
//! These are identities of real numbers; in floating point the result can differ by rounding,
//! and, as everywhere in symbolic differentiation, `x / x` and `0 * x` are taken to be 1 and 0
//! even where `x` is 0 or not finite. Bodies of integer ops are left alone (their division
//! truncates).

use crate::ir::tensor::{BinaryFn, Cond, Expr, UnaryFn};
use einc_runtime::{DType, Scalar};

/// A monomial: `coef · Π factor^power`, factors in order of first appearance.
#[derive(Clone, Debug)]
struct Term {
    coef: f64,
    factors: Vec<(Expr, i32)>,
}

impl Term {
    fn constant(coef: f64) -> Term {
        Term {
            coef,
            factors: Vec::new(),
        }
    }

    fn atom(e: Expr) -> Term {
        Term {
            coef: 1.0,
            factors: vec![(e, 1)],
        }
    }

    /// The product of two monomials (`self` first).
    fn times(&self, other: &Term) -> Term {
        let mut out = self.clone();
        out.coef *= other.coef;
        for (f, p) in &other.factors {
            out.multiply_factor(f, *p);
        }
        out
    }

    fn multiply_factor(&mut self, f: &Expr, p: i32) {
        match self.factors.iter().position(|(g, _)| g == f) {
            Some(at) => {
                self.factors[at].1 += p;
                if self.factors[at].1 == 0 {
                    self.factors.remove(at);
                }
            }
            None => self.factors.push((f.clone(), p)),
        }
    }

    /// Whether both have the same factors with the same powers, in any order.
    fn like(&self, other: &Term) -> bool {
        self.factors.len() == other.factors.len()
            && self
                .factors
                .iter()
                .all(|(f, p)| other.factors.iter().any(|(g, q)| g == f && p == q))
    }

    fn power_of(&self, f: &Expr) -> i32 {
        self.factors
            .iter()
            .find(|(g, _)| g == f)
            .map_or(0, |(_, p)| *p)
    }
}

/// A sum of monomials; empty is 0.
type Poly = Vec<Term>;

/// Simplifies a body of dtype `dtype` (see the module doc); integer bodies are returned as
/// they are.
pub(super) fn simplify(e: &Expr, dtype: DType) -> Expr {
    if !dtype.is_float() {
        return e.clone();
    }
    let cx = Cx { dtype };
    cx.write(&cx.poly(e))
}

struct Cx {
    dtype: DType,
}

/// Whether `1 / c` is exact: `c` is a normal power of two (its mantissa bits are all zero).
fn exact_reciprocal(c: f64) -> bool {
    c.is_normal() && (1.0 / c).is_normal() && c.to_bits() & ((1 << 52) - 1) == 0
}

/// `p` with like terms collected and zero terms dropped.
fn collect(p: Poly) -> Poly {
    let mut out: Poly = Vec::new();
    for t in p {
        match out.iter_mut().find(|o| o.like(&t)) {
            Some(o) => o.coef += t.coef,
            None => out.push(t),
        }
    }
    out.retain(|t| t.coef != 0.0);
    out
}

fn negate(p: Poly) -> Poly {
    p.into_iter()
        .map(|mut t| {
            t.coef = -t.coef;
            t
        })
        .collect()
}

impl Cx {
    fn lit(&self, v: f64) -> Expr {
        Expr::Lit(Scalar::F64(v).cast(self.dtype))
    }

    /// `e` as a polynomial.
    fn poly(&self, e: &Expr) -> Poly {
        match e {
            Expr::Lit(s) if s.dtype().is_float() => collect(vec![Term::constant(s.to_f64())]),
            Expr::Binary(BinaryFn::Add, a, b) => {
                let mut p = self.poly(a);
                p.extend(self.poly(b));
                collect(p)
            }
            Expr::Binary(BinaryFn::Sub, a, b) => {
                let mut p = self.poly(a);
                p.extend(negate(self.poly(b)));
                collect(p)
            }
            Expr::Unary(UnaryFn::Neg, a) => negate(self.poly(a)),
            Expr::Binary(BinaryFn::Mul, a, b) => self.mul(self.poly(a), self.poly(b)),
            Expr::Binary(BinaryFn::Div, a, b) => self.div(self.poly(a), self.poly(b)),
            other => vec![Term::atom(self.atom(other))],
        }
    }

    fn mul(&self, p: Poly, q: Poly) -> Poly {
        if p.is_empty() || q.is_empty() {
            return Vec::new();
        }
        match (p.len(), q.len()) {
            (1, _) => collect(q.iter().map(|t| p[0].times(t)).collect()),
            (_, 1) => collect(p.iter().map(|t| t.times(&q[0])).collect()),
            _ => {
                let mut t = Term::atom(self.write(&p));
                t.multiply_factor(&self.write(&q), 1);
                vec![t]
            }
        }
    }

    fn div(&self, p: Poly, q: Poly) -> Poly {
        let reciprocal = match q.as_slice() {
            [t] => {
                let mut r = Term::constant(1.0);
                if exact_reciprocal(t.coef) {
                    r.coef = 1.0 / t.coef;
                } else {
                    r.multiply_factor(&self.lit(t.coef), -1);
                }
                for (f, power) in &t.factors {
                    r.multiply_factor(f, -power);
                }
                r
            }
            // A sum (or 0) in a denominator stays one factor.
            _ => {
                let mut r = Term::constant(1.0);
                r.multiply_factor(&self.write(&q), -1);
                r
            }
        };
        self.mul(p, vec![reciprocal])
    }

    /// A factor with its operands simplified.
    fn atom(&self, e: &Expr) -> Expr {
        let s = |x: &Expr| Box::new(self.write(&self.poly(x)));
        match e {
            Expr::Unary(f, x) => Expr::Unary(*f, s(x)),
            Expr::Binary(f, a, b) => Expr::Binary(*f, s(a), s(b)),
            Expr::Select(c, a, b) => Expr::Select(Box::new(self.cond(c)), s(a), s(b)),
            // A cast's operand has its own dtype; leave it as it is.
            other => other.clone(),
        }
    }

    fn cond(&self, c: &Cond) -> Cond {
        match c {
            Cond::Cmp(op, a, b) => Cond::Cmp(*op, a.clone(), b.clone()),
            Cond::And(a, b) => Cond::And(Box::new(self.cond(a)), Box::new(self.cond(b))),
            Cond::Or(a, b) => Cond::Or(Box::new(self.cond(a)), Box::new(self.cond(b))),
            Cond::Not(a) => Cond::Not(Box::new(self.cond(a))),
        }
    }

    /// Writes a polynomial back as an expression (see the module doc).
    fn write(&self, p: &Poly) -> Expr {
        let Some(first) = p.first() else {
            return self.lit(0.0);
        };
        if p.len() == 1 {
            return self.write_term(first);
        }
        // Factors every term has, with the smallest power they have (for factors in the
        // denominator, the one closest to 0), and a coefficient every term shares.
        let mut common = Term::constant(1.0);
        for (f, pw) in &first.factors {
            let powers: Vec<i32> = p.iter().map(|t| t.power_of(f)).collect();
            let shared = if *pw > 0 {
                powers.iter().copied().min().filter(|&m| m > 0)
            } else {
                powers.iter().copied().max().filter(|&m| m < 0)
            };
            if let Some(m) = shared {
                common.factors.push((f.clone(), m));
            }
        }
        let magnitude = first.coef.abs();
        if magnitude != 1.0 && p.iter().all(|t| t.coef.abs() == magnitude) {
            common.coef = magnitude;
        }
        if p.iter().all(|t| t.coef < 0.0) {
            common.coef = -common.coef;
        }
        if common.factors.is_empty() && common.coef == 1.0 {
            return self.write_sum(p);
        }
        let rest: Poly = p
            .iter()
            .map(|t| {
                let mut r = t.clone();
                r.coef /= common.coef;
                for (f, m) in &common.factors {
                    r.multiply_factor(f, -m);
                }
                r
            })
            .collect();
        let rest = self.write(&rest);
        // The rest of the sum goes where the first term had its first factor that is not
        // common (or last).
        let mut factors: Vec<(Expr, i32)> = Vec::new();
        let mut placed = false;
        for (f, pw) in &first.factors {
            match common.factors.iter().find(|(g, _)| g == f) {
                Some((_, m)) => {
                    factors.push((f.clone(), *m));
                    if !placed && pw != m {
                        factors.push((rest.clone(), 1));
                        placed = true;
                    }
                }
                None if !placed => {
                    factors.push((rest.clone(), 1));
                    placed = true;
                }
                None => {}
            }
        }
        if !placed {
            factors.push((rest, 1));
        }
        self.write_term(&Term {
            coef: common.coef,
            factors,
        })
    }

    /// `t1 + t2 - t3 ...`, each term written on its own.
    fn write_sum(&self, p: &Poly) -> Expr {
        let mut out: Option<Expr> = None;
        for t in p {
            let negative = t.coef < 0.0;
            let magnitude = Term {
                coef: t.coef.abs(),
                factors: t.factors.clone(),
            };
            let e = self.write_term(&magnitude);
            out = Some(match out {
                None if negative => Expr::Unary(UnaryFn::Neg, Box::new(e)),
                None => e,
                Some(acc) => Expr::Binary(
                    if negative {
                        BinaryFn::Sub
                    } else {
                        BinaryFn::Add
                    },
                    Box::new(acc),
                    Box::new(e),
                ),
            });
        }
        out.unwrap_or_else(|| self.lit(0.0))
    }

    /// `coef * f1 * f2 / (d1 * d2)`, or its negation.
    fn write_term(&self, t: &Term) -> Expr {
        let mul = |a: Expr, b: Expr| Expr::Binary(BinaryFn::Mul, Box::new(a), Box::new(b));
        let product = |fs: Vec<Expr>| fs.into_iter().reduce(mul);
        let repeat = |f: &Expr, n: i32| std::iter::repeat_n(f.clone(), n.unsigned_abs() as usize);
        let mut num: Vec<Expr> = Vec::new();
        if t.coef.abs() != 1.0 {
            num.push(self.lit(t.coef.abs()));
        }
        num.extend(
            t.factors
                .iter()
                .filter(|(_, p)| *p > 0)
                .flat_map(|(f, p)| repeat(f, *p)),
        );
        let den: Vec<Expr> = t
            .factors
            .iter()
            .filter(|(_, p)| *p < 0)
            .flat_map(|(f, p)| repeat(f, *p))
            .collect();
        let num = product(num).unwrap_or_else(|| self.lit(1.0));
        let e = match product(den) {
            Some(d) => Expr::Binary(BinaryFn::Div, Box::new(num), Box::new(d)),
            None => num,
        };
        if t.coef < 0.0 {
            Expr::Unary(UnaryFn::Neg, Box::new(e))
        } else {
            e
        }
    }
}
