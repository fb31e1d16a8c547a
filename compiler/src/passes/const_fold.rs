//! `const-fold`: evaluates what is constant at compile time.
//!
//! - In every body, a function, conversion or comparison of literals becomes its value, a
//!   `select` whose condition folds becomes the branch taken, and `dim(K)` becomes a literal
//!   when the module fixes `K`. Values are computed by the scalar semantics of
//!   [`crate::ir::scalar`], the interpreter's, so a folded body gives exactly what the
//!   interpreter gave.
//! - Identities that hold bit for bit are applied: `x * 1`, `1 * x`, `x / 1`, `neg(neg(x))`;
//!   for integers `x + 0`, `x - 0`, `x * 0 = 0` and `x / 0 = 0` (the IR's rule); for floats
//!   `x + -0.0`, `-0.0 + x` and `x - 0.0` (but not `x + 0.0`, which turns `-0.0` into `0.0`,
//!   nor `x * 0.0`, which is NaN for an infinite `x`).
//! - A map whose body is a literal is a constant tensor: every read of it in another op's body
//!   becomes the literal, and the input the reader no longer reads is dropped (the constant
//!   op itself is left to `dce`).
//!
//! Requires: verified tensor IR. Guarantees: verified tensor IR whose results are identical to
//! the original's, bit for bit, in the interpreter. (Compiled code evaluates transcendental
//! functions with its own approximations, so a folded `exp(1.0)` can differ from what the
//! unfolded kernel would have computed by about one unit in the last place.)

use super::TensorPass;
use crate::ir::scalar;
use crate::ir::tensor::builder::drop_unread_inputs;
use crate::ir::tensor::visit::{any_node, transform};
use crate::ir::tensor::{BinaryFn, Cond, Expr, Function, Module, OpKind, UnaryFn, ValueId};
use einc_runtime::Scalar;
use std::collections::HashMap;

/// The `const-fold` pass.
#[derive(Debug)]
pub struct ConstFold;

impl TensorPass for ConstFold {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let fixed: HashMap<String, u64> = m
            .dims
            .iter()
            .filter_map(|d| Some((d.name.clone(), d.value?)))
            .collect();
        let mut changed = false;
        for f in &mut m.funcs {
            // Folding can make a map constant, whose readers can then fold further. This ends:
            // every round that reports a change removes a node, turns a fixed `dim` into a
            // literal or drops a constant input, and none of these is ever undone.
            while fold_function(f, &fixed) {
                changed = true;
            }
        }
        changed
    }
}

/// One round over `f`: folds every body, then propagates constant maps into their readers.
fn fold_function(f: &mut Function, fixed: &HashMap<String, u64>) -> bool {
    let mut changed = false;
    for op in &mut f.ops {
        let OpKind::Generic(g) = &mut op.kind;
        // Change is what the rewrites report, never `folded != g.body`: a NaN literal is not
        // equal to itself, so that comparison said "changed" forever (issue #13, found by the
        // tensor_ir fuzz target).
        let (folded, rewrote) = fold(&g.body, fixed);
        if rewrote {
            g.body = folded;
            changed = true;
        }
    }
    let constants: HashMap<ValueId, Scalar> = f
        .ops
        .iter()
        .filter_map(|op| {
            let OpKind::Generic(g) = &op.kind;
            match (&g.reduce, &g.body) {
                (None, Expr::Lit(s)) => Some((op.result, *s)),
                _ => None,
            }
        })
        .collect();
    if constants.is_empty() {
        return changed;
    }
    for op in &mut f.ops {
        let OpKind::Generic(g) = &mut op.kind;
        let reads: Vec<Option<Scalar>> = g
            .inputs
            .iter()
            .map(|i| constants.get(&i.value).copied())
            .collect();
        let reads_constant = |e: &Expr| matches!(e, Expr::Input(k) if reads.get(*k as usize).is_some_and(Option::is_some));
        if !any_node(&g.body, &mut |e| reads_constant(e)) {
            continue;
        }
        let body = transform(&g.body, &mut |e| match e {
            Expr::Input(k) => match reads.get(k as usize).copied().flatten() {
                Some(s) => Expr::Lit(s),
                None => Expr::Input(k),
            },
            other => other,
        });
        g.body = fold(&body, fixed).0;
        drop_unread_inputs(g);
        changed = true;
    }
    changed
}

/// `e` with every constant subexpression evaluated and the exact identities applied, and
/// whether any of that rewrote something.
fn fold(e: &Expr, fixed: &HashMap<String, u64>) -> (Expr, bool) {
    let mut rewrote = false;
    let folded = transform(e, &mut |n| match fold_node(n, fixed) {
        Fold::Rewritten(n) => {
            rewrote = true;
            n
        }
        Fold::Kept(n) => n,
    });
    (folded, rewrote)
}

/// The result of folding one node.
enum Fold {
    Rewritten(Expr),
    Kept(Expr),
}

/// Folds one node whose children are already folded.
fn fold_node(e: Expr, fixed: &HashMap<String, u64>) -> Fold {
    match e {
        Expr::DimValue(ref name, dtype) => {
            match fixed.get(name).and_then(|&v| i64::try_from(v).ok()) {
                Some(v) => Fold::Rewritten(Expr::Lit(Scalar::I64(v).cast(dtype))),
                None => Fold::Kept(e),
            }
        }
        Expr::Unary(f, x) => match *x {
            Expr::Lit(s) => match scalar::unary(f, s) {
                Ok(v) => Fold::Rewritten(Expr::Lit(v)),
                Err(_) => Fold::Kept(Expr::Unary(f, Box::new(Expr::Lit(s)))),
            },
            Expr::Unary(UnaryFn::Neg, inner) if f == UnaryFn::Neg => Fold::Rewritten(*inner),
            x => Fold::Kept(Expr::Unary(f, Box::new(x))),
        },
        Expr::Binary(f, a, b) => fold_binary(f, *a, *b),
        Expr::Cast(t, x) => match *x {
            Expr::Lit(s) => Fold::Rewritten(Expr::Lit(s.cast(t))),
            x => Fold::Kept(Expr::Cast(t, Box::new(x))),
        },
        Expr::Select(c, a, b) => match fold_cond(&c, fixed) {
            Some(true) => Fold::Rewritten(*a),
            Some(false) => Fold::Rewritten(*b),
            None => Fold::Kept(Expr::Select(c, a, b)),
        },
        other => Fold::Kept(other),
    }
}

fn fold_binary(f: BinaryFn, a: Expr, b: Expr) -> Fold {
    if let (Expr::Lit(x), Expr::Lit(y)) = (&a, &b) {
        if let Ok(v) = scalar::binary(f, *x, *y) {
            return Fold::Rewritten(Expr::Lit(v));
        }
    }
    let one = |e: &Expr| matches!(e, Expr::Lit(s) if is(*s, 1.0, false));
    let zero_int =
        |e: &Expr| matches!(e, Expr::Lit(s) if !s.dtype().is_float() && is(*s, 0.0, false));
    let neg_zero =
        |e: &Expr| matches!(e, Expr::Lit(s) if s.dtype().is_float() && is(*s, 0.0, true));
    let pos_zero =
        |e: &Expr| matches!(e, Expr::Lit(s) if s.dtype().is_float() && is(*s, 0.0, false));
    Fold::Rewritten(match f {
        // Integers only: `x * 0` is 0, and so is `x / 0` by the IR's rule.
        BinaryFn::Mul | BinaryFn::Div if zero_int(&b) => b,
        BinaryFn::Mul if zero_int(&a) => a,
        BinaryFn::Mul | BinaryFn::Div if one(&b) => a,
        BinaryFn::Mul if one(&a) => b,
        BinaryFn::Add if zero_int(&b) || neg_zero(&b) => a,
        BinaryFn::Add if zero_int(&a) || neg_zero(&a) => b,
        BinaryFn::Sub if zero_int(&b) || pos_zero(&b) => a,
        _ => return Fold::Kept(Expr::Binary(f, Box::new(a), Box::new(b))),
    })
}

/// Whether `s` is exactly `v` (for floats, with the sign of zero given by `negative`).
fn is(s: Scalar, v: f64, negative: bool) -> bool {
    match s {
        Scalar::F32(x) => x == v as f32 && x.is_sign_negative() == negative,
        Scalar::F64(x) => x == v && x.is_sign_negative() == negative,
        Scalar::I32(x) => f64::from(x) == v,
        Scalar::I64(x) => x as f64 == v,
    }
}

/// The value of a condition when it is constant.
fn fold_cond(c: &Cond, fixed: &HashMap<String, u64>) -> Option<bool> {
    match c {
        Cond::Cmp(op, a, b) => match (fold(a, fixed).0, fold(b, fixed).0) {
            (Expr::Lit(x), Expr::Lit(y)) => scalar::compare(*op, x, y).ok(),
            _ => None,
        },
        Cond::And(a, b) => match (fold_cond(a, fixed), fold_cond(b, fixed)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Cond::Or(a, b) => match (fold_cond(a, fixed), fold_cond(b, fixed)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Cond::Not(a) => fold_cond(a, fixed).map(|v| !v),
    }
}

#[cfg(test)]
mod tests;
