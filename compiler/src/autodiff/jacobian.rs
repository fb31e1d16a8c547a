//! Jacobians and Hessians: whole derivative tensors, built from the reverse-mode derivation by
//! evaluating it on every basis seed at once.
//!
//! A derived kernel `dx = J^T dy` is linear in its seed `dy`. Replacing the seed by the basis
//! tensor `dy[m] = δ(m, e)` over new leading indices `e` (one per axis of `dy`) evaluates it on
//! every basis vector in one function: `dx[e, ...] = J[e, ...]`. [`basis`] does this op by op:
//! every op that reads the seed, directly or through another such op, gets the indices `e`
//! added to its iteration space and in front of its output; a read of the seed becomes
//! `δ(e_0, m_0) · δ(e_1, m_1) · ...` in its body (a fixed position `p` in the seed's map
//! becomes `e_k == p ? 1 : 0`); a read of another such value reads it at `[e, m]`. For a
//! scalar seed there are no `e` indices and the seed becomes 1. Delta elimination
//! ([`super::tidy`]) then substitutes the deltas away, so that the Jacobian of
//! `y[i] = A[i, j] * x[j]` prints as `dy_dx[i, j] = A[i, j]`.
//!
//! - `jacobian(f, wrt: [x])`, for `f` with one output `y`: `dy_dx[e, a] = ∂y[e]/∂x[a]`, of
//!   shape `y ++ x` (one output per `wrt` input, named `d<y>_d<x>`).
//! - `hessian(f, wrt: [x])`, for `f` with one scalar output `s`: the gradient with its seed
//!   set to 1, differentiated again and evaluated on the basis:
//!   `d2s_dx2[e, a] = ∂²s/∂x[e]∂x[a]`, of shape `x ++ x`. Symmetric where the second
//!   derivatives are continuous (Schwarz), which [`super::symmetry`] reports.

use super::{drop_dead_ops, grad_function, GradError};
use crate::ir::tensor::builder::keep_used_inputs;
use crate::ir::tensor::{
    AxisMap, CmpOp, Cond, Expr, Function, Generic, IndexDef, IndexId, Input, Module, Op, OpKind,
    ResultDef, TensorType, ValueId,
};
use einc_runtime::{DType, Scalar};

/// The Jacobian of `func`'s one output with respect to each `wrt` parameter: a function named
/// `name` with `func`'s parameters and one output `d<y>_d<x>` per `wrt` input, of shape
/// `y ++ x` (see the module doc).
pub fn jacobian_function(
    module: &Module,
    func: &Function,
    wrt: &[&str],
    name: &str,
) -> Result<Function, GradError> {
    let y = one_output(func, "jacobian")?;
    let vjp = grad_function(module, func, wrt, name)?;
    let mut f = basis(&vjp, seed(&vjp, func));
    for r in &mut f.results {
        // `dx` -> `dy_dx`.
        let x = r.name.strip_prefix('d').unwrap_or(&r.name);
        rename_result(r, &mut f.values, format!("d{y}_d{x}"));
    }
    check_names(&f)?;
    Ok(f)
}

/// The Hessian of `func`'s one scalar output `s` with respect to the one parameter in `wrt`:
/// a function named `name` with `func`'s parameters and the output `d2s_dx2` of shape `x ++ x`.
pub fn hessian_function(
    module: &Module,
    func: &Function,
    wrt: &[&str],
    name: &str,
) -> Result<Function, GradError> {
    let s = one_output(func, "hessian")?;
    let s_rank = func
        .results
        .first()
        .map_or(0, |r| func.value(r.value).ty.shape.len());
    if s_rank != 0 {
        return Err(GradError::NotScalar {
            func: func.name.clone(),
            output: s,
            rank: s_rank,
        });
    }
    let [x] = wrt else {
        return Err(GradError::NotOneWrt { count: wrt.len() });
    };
    // The gradient with seed 1, `ds_dx`, as a function of the parameters alone...
    let vjp = grad_function(module, func, wrt, name)?;
    let mut gradient = basis(&vjp, seed(&vjp, func));
    if let Some(r) = gradient.results.first_mut() {
        rename_result(r, &mut gradient.values, format!("d{s}_d{x}"));
    }
    check_names(&gradient)?;
    // ... differentiated again with respect to `x` and evaluated on the basis.
    let vjp = grad_function(module, &gradient, wrt, name)?;
    let mut f = basis(&vjp, seed(&vjp, &gradient));
    if let Some(r) = f.results.first_mut() {
        rename_result(r, &mut f.values, format!("d2{s}_d{x}2"));
    }
    check_names(&f)?;
    Ok(f)
}

/// The name of `func`'s only output (`item` names the derivative asked for).
fn one_output(func: &Function, item: &'static str) -> Result<String, GradError> {
    match func.results.as_slice() {
        [r] => Ok(r.name.clone()),
        rs => Err(GradError::NotOneOutput {
            func: func.name.clone(),
            item,
            count: rs.len(),
        }),
    }
}

/// The seed parameter of `vjp`, derived from `func` (the one after `func`'s parameters).
fn seed(vjp: &Function, func: &Function) -> ValueId {
    vjp.params[func.params.len()]
}

fn rename_result(r: &mut ResultDef, values: &mut [crate::ir::tensor::ValueDef], to: String) {
    if let Some(v) = values.get_mut(r.value.0 as usize) {
        v.name.clone_from(&to);
    }
    r.name = to;
}

/// A derived output name must not name another value of the function.
fn check_names(f: &Function) -> Result<(), GradError> {
    for r in &f.results {
        let uses = f.values.iter().filter(|v| v.name == r.name).count();
        if uses > 1 {
            return Err(GradError::NameTaken {
                name: r.name.clone(),
            });
        }
    }
    Ok(())
}

/// `g` evaluated on every basis tensor of its parameter `seed` (see the module doc): `seed`
/// is no longer a parameter, and every value computed from it has `seed`'s axes in front.
fn basis(g: &Function, seed: ValueId) -> Function {
    let seed_shape = g.value(seed).ty.shape.clone();
    let mut f = g.clone();
    let mut batched = vec![false; f.values.len()];
    batched[seed.0 as usize] = true;
    for op in &mut f.ops {
        let OpKind::Generic(gen) = &mut op.kind;
        if !gen.inputs.iter().any(|i| batched[i.value.0 as usize]) {
            continue;
        }
        let first = gen.indices.len();
        let es: Vec<IndexId> = (0..seed_shape.len())
            .map(|k| IndexId(u32::try_from(first + k).unwrap_or(u32::MAX)))
            .collect();
        for (k, ext) in seed_shape.iter().enumerate() {
            let name = fresh_index(gen, k);
            gen.indices.push(IndexDef {
                name,
                extent: ext.clone(),
            });
        }
        let dtype = gen.dtype;
        let mut body = gen.body.clone();
        for (n, input) in gen.inputs.iter_mut().enumerate() {
            if input.value == seed {
                let e = basis_element(&es, &input.map, dtype);
                body = substitute_input(&body, n, &e);
            } else if batched[input.value.0 as usize] {
                input
                    .map
                    .splice(0..0, es.iter().map(|&e| AxisMap::Index(e)));
            }
        }
        let (inputs, body) = keep_used_inputs(std::mem::take(&mut gen.inputs), &body);
        gen.inputs = inputs;
        gen.body = body;
        gen.output.splice(0..0, es.iter().copied());
        gen.schedule = None;
        let ty = &mut f.values[op.result.0 as usize].ty;
        ty.shape.splice(0..0, seed_shape.iter().cloned());
        batched[op.result.0 as usize] = true;
    }
    // A result that does not read the seed is a zero gradient: broadcast it over the basis.
    let results = f.results.clone();
    for r in results {
        if batched[r.value.0 as usize] {
            continue;
        }
        let ty = f.value(r.value).ty.clone();
        let mut shape = seed_shape.clone();
        shape.extend(ty.shape.iter().cloned());
        let indices: Vec<IndexDef> = shape
            .iter()
            .enumerate()
            .map(|(k, e)| IndexDef {
                name: format!("i{k}"),
                extent: e.clone(),
            })
            .collect();
        let ids: Vec<IndexId> = (0..indices.len())
            .map(|k| IndexId(u32::try_from(k).unwrap_or(u32::MAX)))
            .collect();
        // The broadcast takes the result's name; the value it reads is renamed.
        let name = f.value(r.value).name.clone();
        f.values[r.value.0 as usize].name = format!("{name}.one");
        let v = f.add_value(
            name,
            TensorType {
                dtype: ty.dtype,
                shape,
            },
        );
        f.ops.push(Op {
            result: v,
            kind: OpKind::Generic(Generic {
                indices,
                inputs: vec![Input {
                    value: r.value,
                    map: ids[seed_shape.len()..]
                        .iter()
                        .map(|&i| AxisMap::Index(i))
                        .collect(),
                }],
                output: ids,
                reduce: None,
                body: Expr::Input(0),
                dtype: ty.dtype,
                schedule: None,
            }),
        });
        for res in &mut f.results {
            if res.value == r.value {
                res.value = v;
            }
        }
    }
    f.params.retain(|&p| p != seed);
    drop_dead_ops(f)
}

/// A name for the `k`th basis index of `g`, unique among its indices.
fn fresh_index(g: &Generic, k: usize) -> String {
    let mut name = format!("e{k}");
    while g.indices.iter().any(|i| i.name == name) {
        name.push('_');
    }
    name
}

/// `δ(e_0, m_0) · δ(e_1, m_1) · ...` in `dtype` (1 for a scalar seed).
fn basis_element(es: &[IndexId], map: &[AxisMap], dtype: DType) -> Expr {
    let one = || Expr::Lit(Scalar::F64(1.0).cast(dtype));
    let zero = Expr::Lit(Scalar::F64(0.0).cast(dtype));
    es.iter()
        .zip(map)
        .map(|(&e, m)| match m {
            AxisMap::Index(i) => Expr::Delta(vec![e, *i], dtype),
            AxisMap::Fixed(p) => Expr::Select(
                Box::new(Cond::Cmp(
                    CmpOp::Eq,
                    Box::new(Expr::Index(e)),
                    Box::new(Expr::Lit(Scalar::I64(
                        i64::try_from(*p).unwrap_or(i64::MAX),
                    ))),
                )),
                Box::new(one()),
                Box::new(zero.clone()),
            ),
        })
        .reduce(|a, b| Expr::Binary(crate::ir::tensor::BinaryFn::Mul, Box::new(a), Box::new(b)))
        .unwrap_or_else(one)
}

/// `e` with `Input(n)` replaced by `by`.
fn substitute_input(e: &Expr, n: usize, by: &Expr) -> Expr {
    let s = |x: &Expr| Box::new(substitute_input(x, n, by));
    match e {
        Expr::Input(k) if *k as usize == n => by.clone(),
        Expr::Unary(f, x) => Expr::Unary(*f, s(x)),
        Expr::Binary(f, a, b) => Expr::Binary(*f, s(a), s(b)),
        Expr::Select(c, a, b) => Expr::Select(Box::new(substitute_cond(c, n, by)), s(a), s(b)),
        Expr::Cast(t, x) => Expr::Cast(*t, s(x)),
        other => other.clone(),
    }
}

fn substitute_cond(c: &Cond, n: usize, by: &Expr) -> Cond {
    match c {
        Cond::Cmp(op, a, b) => Cond::Cmp(
            *op,
            Box::new(substitute_input(a, n, by)),
            Box::new(substitute_input(b, n, by)),
        ),
        Cond::And(a, b) => Cond::And(
            Box::new(substitute_cond(a, n, by)),
            Box::new(substitute_cond(b, n, by)),
        ),
        Cond::Or(a, b) => Cond::Or(
            Box::new(substitute_cond(a, n, by)),
            Box::new(substitute_cond(b, n, by)),
        ),
        Cond::Not(a) => Cond::Not(Box::new(substitute_cond(a, n, by))),
    }
}
