//! Lowers an [`EinsumPlan`] to tensor IR: one [`Generic`] whose iteration space is every label,
//! reading each operand through its term (a repeated label repeats the index; a broadcast
//! size-1 axis is read at position 0), multiplying the operands in the promoted dtype and
//! summing over the dummy labels.

use super::{EinsumError, EinsumPlan};
use crate::ir::tensor::{
    AxisMap, BinaryFn, DimDef, Expr, Function, Generic, IndexDef, IndexId, Input, Module, Op,
    OpKind, Reduce, ReduceKind, ResultDef, TensorType, ValueId, MAX_ENTRY_CHECKS, MAX_RANK,
};
use einc_runtime::Scalar;

/// Rejects operands and results that no kernel can take: more than [`MAX_RANK`] axes, or a
/// result of more than [`MAX_TENSOR_BYTES`](crate::ir::tensor::MAX_TENSOR_BYTES) bytes
/// (`docs/limits.md`).
fn check_limits(plan: &EinsumPlan) -> Result<(), EinsumError> {
    for (n, t) in plan.operands.iter().enumerate() {
        if t.shape.len() > MAX_RANK {
            return Err(EinsumError::whole(format!(
                "operand {n} has {} axes; einc takes at most {MAX_RANK} (docs/limits.md)",
                t.shape.len()
            )));
        }
    }
    if plan.result.shape.len() > MAX_RANK {
        return Err(EinsumError::whole(format!(
            "the result would have {} axes; einc allows at most {MAX_RANK} (docs/limits.md)",
            plan.result.shape.len()
        )));
    }
    if plan.result.fixed_bytes(&[]).is_none() {
        return Err(EinsumError::whole(
            "the result would need more than 2^63 - 1 bytes (docs/limits.md)",
        ));
    }
    Ok(())
}

/// The Generic op computing the plan, reading operand i from `args[i]`.
///
/// `args` must have one value per operand of the plan (extra values are ignored; a missing
/// one leaves that operand out of the product, which the verifier then reports).
pub fn to_generic(plan: &EinsumPlan, args: &[ValueId]) -> Generic {
    let index = |n: usize| IndexId(u32::try_from(n).unwrap_or(u32::MAX));
    let indices = plan
        .labels
        .iter()
        .map(|l| IndexDef {
            name: l.kind.index_name(),
            extent: l.extent.clone(),
        })
        .collect();
    let mut maps: Vec<Vec<AxisMap>> = plan
        .operands
        .iter()
        .map(|t| vec![AxisMap::Fixed(0); t.shape.len()])
        .collect();
    for (n, l) in plan.labels.iter().enumerate() {
        for o in &l.occurrences {
            if let Some(slot) = maps.get_mut(o.operand).and_then(|m| m.get_mut(o.axis)) {
                // Every axis has exactly one label; broadcast axes keep `Fixed(0)`.
                if !o.broadcast {
                    *slot = AxisMap::Index(index(n));
                }
            }
        }
    }
    let inputs: Vec<Input> = args
        .iter()
        .zip(maps)
        .map(|(&value, map)| Input { value, map })
        .collect();
    let dtype = plan.result.dtype;
    let body = plan
        .operands
        .iter()
        .zip(0u32..)
        .take(inputs.len())
        .map(|(t, n)| {
            let e = Expr::Input(n);
            if t.dtype == dtype {
                e
            } else {
                Expr::Cast(dtype, Box::new(e))
            }
        })
        .reduce(|a, b| Expr::Binary(BinaryFn::Mul, Box::new(a), Box::new(b)))
        .unwrap_or(Expr::Lit(Scalar::I32(1).cast(dtype)));
    let over: Vec<IndexId> = plan
        .labels
        .iter()
        .enumerate()
        .filter(|(_, l)| l.summed)
        .map(|(n, _)| index(n))
        .collect();
    Generic {
        indices,
        inputs,
        output: plan.output.iter().map(|&n| index(n)).collect(),
        reduce: (!over.is_empty()).then_some(Reduce {
            kind: ReduceKind::Add,
            over,
        }),
        body,
        dtype,
        schedule: None,
    }
}

/// A whole function `einsum(%0, ...) -> (out)` for `einc eval` and tests: parameters named
/// `0`, `1`, ... with the operand types, one Generic op defining `out`.
///
/// The module declares every symbolic dim of the operand types (unbound) and holds the
/// function; the function is also returned on its own for convenience.
pub fn einsum_function(
    subscripts: &str,
    operands: &[TensorType],
) -> Result<(Module, Function), EinsumError> {
    let plan = super::analyze(subscripts, operands)?;
    check_limits(&plan)?;
    let mut func = Function {
        name: "einsum".to_string(),
        values: Vec::new(),
        params: Vec::new(),
        ops: Vec::new(),
        results: Vec::new(),
    };
    for (n, t) in operands.iter().enumerate() {
        let id = func.add_value(n.to_string(), t.clone());
        func.params.push(id);
    }
    let generic = to_generic(&plan, &func.params);
    let out = func.add_value("out", plan.result.clone());
    func.ops.push(Op {
        result: out,
        kind: OpKind::Generic(generic),
    });
    func.results.push(ResultDef {
        name: "out".to_string(),
        value: out,
    });
    if func.entry_checks() > MAX_ENTRY_CHECKS {
        return Err(EinsumError::whole(format!(
            "the kernel would need {} argument checks, more than {MAX_ENTRY_CHECKS} \
             (docs/limits.md): use fewer operands or a result of fewer axes",
            func.entry_checks()
        )));
    }
    let mut dims: Vec<DimDef> = Vec::new();
    for e in operands.iter().flat_map(|t| &t.shape) {
        if let crate::ir::tensor::Extent::Dim(name) = e {
            if !dims.iter().any(|d| &d.name == name) {
                dims.push(DimDef {
                    name: name.clone(),
                    value: None,
                });
            }
        }
    }
    let module = Module {
        dims,
        funcs: vec![func.clone()],
    };
    Ok((module, func))
}
