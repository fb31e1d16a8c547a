//! `canonicalize`: moves the factors of a sum that do not vary with the summed indices out of
//! the sum, into an elementwise map applied to its result. `S = Q·Kᵀ / sqrt(K)` becomes a pure
//! contraction and a scale:
//!
//! ```text
//! %S = generic (i: T, j: T, a: K) ins(%Q[i, a], %Kx[j, a]) -> [i, j] reduce add over (a) { div(mul(%0, %1), sqrt(dim(K):f32)) } : f32
//!   ==>
//! %S.unscaled = generic (i: T, j: T, a: K) ins(%Q[i, a], %Kx[j, a]) -> [i, j] reduce add over (a) { mul(%0, %1) } : f32
//! %S = generic (i: T, j: T) ins(%S.unscaled[i, j]) -> [i, j] { div(%0, sqrt(dim(K):f32)) } : f32
//! ```
//!
//! so that the classifier sees a contraction, the path pass sees a pure product, and a later
//! pass can fold the scale into an operand or the contraction's epilogue. The invariant work is
//! also done once per result element instead of once per summed point.
//!
//! The body of an `add` reduction is read as a signed product of factors: through `mul` and
//! `neg` nodes, and for floats also through `div` (a divisor's factors are inverse factors);
//! for integers a `div` node is one factor, since integer division does not distribute over
//! sums. A factor is *invariant* when nothing in it depends on a summed index: no input read
//! through a map that uses one, no index value, delta or eps of one. When there are invariant
//! factors (or a sign) and at least one varying factor, the op is split: the sum keeps the
//! varying factors (in their order; its inputs are those it still reads) and is defined first
//! as `<name>.unscaled`; the original value becomes a map over the output indices that reads
//! the sum at the same point and applies the sign and the invariant factors (reading their
//! inputs through the same maps). Uses of the original value are untouched, and a schedule on
//! the op stays with the sum.
//!
//! Requires: verified tensor IR. Guarantees: verified tensor IR in which no `add` reduction
//! has an invariant factor or a sign at the root of its body. Integer results are identical
//! (wrapping multiplication and negation distribute over wrapping sums). Float results are
//! equal in exact arithmetic; rounding may differ (`Σ x/c` is not bit-identical to `(Σ x)/c`),
//! and with infinities, NaNs or a zero divisor they may differ outright (`Σ x/0` over `x` of
//! both signs is NaN, `(Σ x)/0` is an infinity or NaN by the sign of the sum).

use super::TensorPass;
use crate::ir::tensor::builder::{keep_used_inputs, Builder};
use crate::ir::tensor::visit::any_node;
use crate::ir::tensor::{
    AxisMap, BinaryFn, Expr, Function, Generic, IndexDef, IndexId, Input, Module, OpKind,
    ReduceKind, UnaryFn,
};
use einc_runtime::Scalar;

/// The `canonicalize` pass.
#[derive(Debug)]
pub struct Canonicalize;

impl TensorPass for Canonicalize {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let mut changed = false;
        for f in &mut m.funcs {
            changed |= canonicalize_function(f);
        }
        changed
    }
}

fn canonicalize_function(f: &mut Function) -> bool {
    let mut changed = false;
    let mut k = 0;
    while k < f.ops.len() {
        let OpKind::Generic(g) = &f.ops[k].kind;
        if let Some((sum, scale)) = split(g) {
            let result = f.ops[k].result;
            let mut b = Builder::new(f);
            let base = format!("{}.unscaled", b.func().value(result).name);
            let unscaled = b.insert_op(k, &base, sum);
            let mut scale = scale;
            // The map reads the sum as its input 0.
            scale.inputs[0].value = unscaled;
            f.ops[k + 1].kind = OpKind::Generic(scale);
            changed = true;
            k += 1;
        }
        k += 1;
    }
    changed
}

/// A factor of a body read as a product, and whether it divides (for floats).
struct Factor {
    expr: Expr,
    inverse: bool,
}

/// The factors of `e` as a signed product: through `mul` and `neg`, and through `div` when
/// `through_div`. Returns whether the product is negated.
fn factors(e: &Expr, through_div: bool, inverse: bool, out: &mut Vec<Factor>) -> bool {
    match e {
        Expr::Binary(BinaryFn::Mul, a, b) => {
            factors(a, through_div, inverse, out) ^ factors(b, through_div, inverse, out)
        }
        Expr::Binary(BinaryFn::Div, a, b) if through_div => {
            factors(a, through_div, inverse, out) ^ factors(b, through_div, !inverse, out)
        }
        Expr::Unary(UnaryFn::Neg, a) => !factors(a, through_div, inverse, out),
        other => {
            out.push(Factor {
                expr: other.clone(),
                inverse,
            });
            false
        }
    }
}

/// The product of `factors` in order, dividing by the inverse ones, negated when `negated`
/// (`one` stands in for an empty numerator).
fn rebuild(factors: Vec<Expr>, inverses: Vec<Expr>, negated: bool, one: Expr) -> Expr {
    let product = |v: Vec<Expr>| {
        v.into_iter()
            .reduce(|a, b| Expr::Binary(BinaryFn::Mul, Box::new(a), Box::new(b)))
    };
    let num = product(factors).unwrap_or(one);
    let e = match product(inverses) {
        Some(den) => Expr::Binary(BinaryFn::Div, Box::new(num), Box::new(den)),
        None => num,
    };
    if negated {
        Expr::Unary(UnaryFn::Neg, Box::new(e))
    } else {
        e
    }
}

/// Whether `e` depends on a summed index of `g`.
fn varies(g: &Generic, e: &Expr) -> bool {
    let summed = |i: &IndexId| g.reduce.as_ref().is_some_and(|r| r.over.contains(i));
    any_node(e, &mut |n| match n {
        Expr::Input(k) => g.inputs.get(*k as usize).is_none_or(|input| {
            input
                .map
                .iter()
                .any(|a| matches!(a, AxisMap::Index(i) if summed(i)))
        }),
        Expr::Index(i) => summed(i),
        Expr::Delta(ids, _) | Expr::Eps(ids, _) => ids.iter().any(summed),
        _ => false,
    })
}

/// The sum without its invariant factors and the map that applies them (whose input 0 is a
/// placeholder for the sum), when `g` has any to move.
fn split(g: &Generic) -> Option<(Generic, Generic)> {
    g.reduce.as_ref().filter(|r| r.kind == ReduceKind::Add)?;
    let mut parts = Vec::new();
    let negated = factors(&g.body, g.dtype.is_float(), false, &mut parts);
    let (varying, invariant): (Vec<Factor>, Vec<Factor>) =
        parts.into_iter().partition(|p| varies(g, &p.expr));
    if varying.is_empty() || (invariant.is_empty() && !negated) {
        return None;
    }
    let one = Expr::Lit(Scalar::I32(1).cast(g.dtype));
    let split_by = |v: Vec<Factor>| -> (Vec<Expr>, Vec<Expr>) {
        let (inv, fwd): (Vec<Factor>, Vec<Factor>) = v.into_iter().partition(|p| p.inverse);
        (
            fwd.into_iter().map(|p| p.expr).collect(),
            inv.into_iter().map(|p| p.expr).collect(),
        )
    };
    let (num, den) = split_by(varying);
    let body = rebuild(num, den, false, one.clone());
    let (inputs, body) = keep_used_inputs(g.inputs.clone(), &body);
    // The sum keeps a schedule the op has: it is the heavy part, over the same indices.
    let sum = Generic {
        inputs,
        body,
        ..g.clone()
    };

    // The map: the output indices only, renumbered in output order.
    let position = |i: IndexId| g.output.iter().position(|&o| o == i);
    let to_map_index = |i: IndexId| IndexId(position(i).map_or(u32::MAX, |p| p as u32));
    let indices: Vec<IndexDef> = g
        .output
        .iter()
        .filter_map(|&i| g.indices.get(i.0 as usize).cloned())
        .collect();
    let output: Vec<IndexId> = (0..g.output.len() as u32).map(IndexId).collect();
    let mut inputs = vec![Input {
        value: crate::ir::tensor::ValueId(u32::MAX),
        map: output.iter().map(|&i| AxisMap::Index(i)).collect(),
    }];
    inputs.extend(g.inputs.iter().map(|input| {
        Input {
            value: input.value,
            map: input
                .map
                .iter()
                .map(|a| match a {
                    AxisMap::Index(i) => AxisMap::Index(to_map_index(*i)),
                    fixed => *fixed,
                })
                .collect(),
        }
    }));
    let (num, den) = split_by(invariant);
    // The sum is input 0; the op's own inputs move up by one.
    let shift = |e: Expr| {
        let e = crate::ir::tensor::visit::rename_inputs(&e, &|n| n + 1);
        crate::ir::tensor::visit::rename_indices(&e, &to_map_index)
    };
    let num: Vec<Expr> = std::iter::once(Expr::Input(0))
        .chain(num.into_iter().map(shift))
        .collect();
    let den: Vec<Expr> = den.into_iter().map(shift).collect();
    let body = rebuild(num, den, negated, one);
    let (inputs, body) = keep_used_inputs(inputs, &body);
    let scale = Generic {
        indices,
        inputs,
        output,
        reduce: None,
        body,
        dtype: g.dtype,
        schedule: None,
    };
    Some((sum, scale))
}

#[cfg(test)]
mod tests;
