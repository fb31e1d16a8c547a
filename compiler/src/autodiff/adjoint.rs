//! The adjoint of one input of one `Generic`: the rule of reverse-mode differentiation in
//! index notation.
//!
//! For `y[out] = reduce_R body(x_1[m_1], ..., x_n[m_n])` over the iteration space `I`, the
//! contribution to the gradient of `x_k` is a new `Generic` over the same `I`:
//!
//! ```text
//! dx_k[m_k] += sum over I \ m_k of  ∂body/∂x_k · dy[out] · w
//! ```
//!
//! where `w` is the derivative of the reduction with respect to one of its terms: 1 for a
//! map or a sum, `[body == y]` for a max or min (every position equal to the extremum gets the
//! gradient), and the product of the other terms for a product (see [`ProductAux`]). The
//! output indices are `m_k`'s indices, so a matmul's adjoint is the textbook contraction. A map
//! entry that is not a fresh index gets a fresh output index and a factor that scatters the
//! gradient to where the input was read: a repeated index `x[i, i]` gives output `[i, i_1]`
//! and the factor `delta(i_1, i)`; a fixed position `x[0, j]` gives output `[p_1, j]` and the
//! factor `p_1 == 0 ? · : 0`.

use super::derivative::Diff;
use super::simplify::{cast, cmp, div, lit, mul, select, simplify};
use crate::ir::names::suffixed_in;
use crate::ir::tensor::builder::keep_used_inputs;
use crate::ir::tensor::{
    AxisMap, CmpOp, Expr, Function, Generic, IndexDef, IndexId, Input, Reduce, ReduceKind,
    TensorType, ValueId,
};
use einc_runtime::{DType, Scalar};
use std::collections::HashSet;

/// The forward values a product reduction's adjoint reads, per output point: how many terms
/// are zero, and the product of the non-zero terms.
///
/// The derivative of a product with respect to one term is the product of the others. Dividing
/// the product by the term fails when the term is 0, so the rule counts the zeros instead: with
/// no zero term it is `nonzero_prod / term`; at the only zero term it is `nonzero_prod`; at
/// every other term (or when two or more terms are zero) it is 0. This is exact, including at
/// zeros, for one extra pass over the terms.
#[derive(Clone, Copy)]
pub(super) struct ProductAux {
    /// The number of zero terms (in the op's dtype).
    pub zeros: ValueId,
    /// The product of the non-zero terms.
    pub nonzero_prod: ValueId,
}

/// The two ops computing [`ProductAux`] for a product reduction `g`: `(zeros, nonzero_prod)`.
pub(super) fn product_aux_ops(g: &Generic, inputs: &[DType]) -> (Generic, Generic) {
    let t = g.dtype;
    let body = simplify(&g.body, inputs);
    let is_zero = || cmp(CmpOp::Eq, body.clone(), lit(0.0, t));
    let with = |kind: ReduceKind, body: Expr| Generic {
        reduce: g.reduce.as_ref().map(|r| Reduce {
            kind,
            over: r.over.clone(),
        }),
        body,
        schedule: None,
        ..g.clone()
    };
    (
        with(ReduceKind::Add, select(is_zero(), lit(1.0, t), lit(0.0, t))),
        with(
            ReduceKind::Mul,
            select(is_zero(), lit(1.0, t), body.clone()),
        ),
    )
}

/// What the adjoint of a reduction reads besides `dy`.
#[derive(Clone, Copy)]
pub(super) enum ReduceAux {
    /// A map or a sum: nothing.
    None,
    /// A max or min: the forward result `y`.
    Extremum(ValueId),
    /// A product.
    Product(ProductAux),
}

/// The contribution of op `g` (reading `inputs`' values of `f`) to the gradient of its input
/// `k`, given the gradient `dy` of its result: the op and its result type, or `None` when the
/// body does not depend on input `k` differentiably.
pub(super) fn adjoint(
    f: &Function,
    g: &Generic,
    k: usize,
    dy: ValueId,
    aux: ReduceAux,
) -> Option<(Generic, TensorType)> {
    let x = g.inputs.get(k)?;
    let x_ty = f.values.get(x.value.0 as usize)?.ty.clone();
    let mut inputs = g.inputs.clone();
    let out_map: Vec<AxisMap> = g.output.iter().map(|&i| AxisMap::Index(i)).collect();
    let mut read = |value: ValueId| {
        inputs.push(Input {
            value,
            map: out_map.clone(),
        });
        Expr::Input(u32::try_from(inputs.len() - 1).unwrap_or(u32::MAX))
    };
    let dy_ref = read(dy);
    let aux_refs = match aux {
        ReduceAux::None => None,
        ReduceAux::Extremum(y) => Some((read(y), None)),
        ReduceAux::Product(p) => Some((read(p.zeros), Some(read(p.nonzero_prod)))),
    };
    let dtypes: Vec<DType> = inputs
        .iter()
        .map(|i| {
            f.values
                .get(i.value.0 as usize)
                .map_or(DType::F64, |v| v.ty.dtype)
        })
        .collect();

    let seed = cast(x_ty.dtype, dy_ref, g.dtype);
    let diff = Diff {
        k: u32::try_from(k).ok()?,
        seed: &seed,
        inputs: &dtypes,
    };
    let mut body = diff.of(&g.body)?;
    let t = g.dtype;
    let zero = || lit(0.0, t);
    let term = || simplify(&g.body, &dtypes);
    body = match (g.reduce.as_ref().map(|r| r.kind), aux_refs) {
        (Some(ReduceKind::Max | ReduceKind::Min), Some((y, _))) => {
            select(cmp(CmpOp::Eq, term(), y), body, zero())
        }
        (Some(ReduceKind::Mul), Some((zeros, Some(prod)))) => {
            let is_zero = cmp(CmpOp::Eq, term(), zero());
            let zeros_are = |n: f64| cmp(CmpOp::Eq, zeros.clone(), lit(n, t));
            let others = select(
                is_zero,
                select(zeros_are(1.0), prod.clone(), zero()),
                select(zeros_are(0.0), div(prod, term()), zero()),
            );
            mul(body, others)
        }
        _ => body,
    };
    body = cast(x_ty.dtype, body, t);

    // The output indices: the input's map, with fresh indices where the map repeats an index
    // or reads a fixed position.
    let mut indices = g.indices.clone();
    let mut output: Vec<IndexId> = Vec::with_capacity(x.map.len());
    for (axis, entry) in x.map.iter().enumerate() {
        let (base, extent) = match *entry {
            AxisMap::Index(i) if !output.contains(&i) => {
                output.push(i);
                continue;
            }
            AxisMap::Index(i) => {
                let def = indices.get(i.0 as usize)?;
                (def.name.clone(), def.extent.clone())
            }
            AxisMap::Fixed(_) => ("p".to_string(), x_ty.shape.get(axis)?.clone()),
        };
        let fresh = IndexId(u32::try_from(indices.len()).ok()?);
        let mut taken: HashSet<String> = indices.iter().map(|d| d.name.clone()).collect();
        let name = suffixed_in(&mut taken, &base, '_');
        indices.push(IndexDef { name, extent });
        output.push(fresh);
        body = match *entry {
            AxisMap::Index(i) => mul(body, Expr::Delta(vec![fresh, i], x_ty.dtype)),
            AxisMap::Fixed(p) => {
                let at = Expr::Lit(Scalar::I64(i64::try_from(p).ok()?));
                let here = cmp(CmpOp::Eq, Expr::Index(fresh), at);
                select(here, body, lit(0.0, x_ty.dtype))
            }
        };
    }
    let over: Vec<IndexId> = (0..indices.len())
        .filter_map(|n| u32::try_from(n).ok().map(IndexId))
        .filter(|i| !output.contains(i))
        .collect();
    let body = simplify(&body, &dtypes);
    let (inputs, body) = keep_used_inputs(inputs, &body);
    let shape = output
        .iter()
        .filter_map(|i| indices.get(i.0 as usize).map(|d| d.extent.clone()))
        .collect();
    let generic = Generic {
        indices,
        inputs,
        output,
        reduce: (!over.is_empty()).then_some(Reduce {
            kind: ReduceKind::Add,
            over,
        }),
        body,
        dtype: x_ty.dtype,
        schedule: None,
    };
    let ty = TensorType {
        dtype: x_ty.dtype,
        shape,
    };
    Some((generic, ty))
}
