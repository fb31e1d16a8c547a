//! One `generic` → one loop nest.
//!
//! The nest has one loop per index, outermost first: the output indices in output order (marked
//! `parallel`: each iteration writes its own element), then the reduced indices in `over`
//! order. Each reduction loop carries the accumulator, initialised to the reduction's identity
//! outside the outermost reduction loop, so a reduction with no iterations leaves the identity.
//! The innermost body combines the accumulator with the body value (an `add` reduction of a
//! float `mul` becomes one `fma`), and the result is stored after the reduction loops, at the
//! output position. Without a reduction the body value is stored in the innermost loop.
//!
//! Each loop level has its own block of instructions ("level" `d` is the body of the `d`-th
//! loop, level 0 is before the nest); [`body`](super::body) places every body instruction at
//! the outermost level where its operands are available, which hoists loads and arithmetic
//! that do not depend on the inner loops.

use super::body::BodyLowerer;
use super::{FnLowerer, LowerError};
use crate::ir::loops::{BinaryFn, BufferId, Carried, For, Inst, Op, ReduceKind, Type, ValueId};
use crate::ir::tensor::schedule::Schedule;
use crate::ir::tensor::{self, Expr, Generic};

/// Lowers `g`, which defines tensor value `result`, into a nest storing into buffer `out`.
pub(super) fn lower_generic(
    fl: &mut FnLowerer,
    result: tensor::ValueId,
    g: &Generic,
    out: BufferId,
) -> Result<Vec<Inst>, LowerError> {
    let result_def = fl.value_def(result)?;
    let context = format!("the op defining %{}", result_def.name);
    let fail = |fl: &FnLowerer, message: String| fl.error(format!("{context}: {message}"));
    if let Some(s) = g.schedule.as_ref().filter(|s| **s != Schedule::Naive) {
        return Err(fail(
            fl,
            format!("`{}` schedules are not lowered yet", s.kind_name()),
        ));
    }
    if result_def.ty.dtype != g.dtype {
        return Err(fail(
            fl,
            format!(
                "the op has dtype {} but the value is declared {}",
                g.dtype, result_def.ty.dtype
            ),
        ));
    }

    // Loop order: output indices, then reduced ones; every index exactly once.
    let over = g.reduce.as_ref().map_or(&[][..], |r| &r.over[..]);
    let order: Vec<tensor::IndexId> = g.output.iter().chain(over).copied().collect();
    let mut depth_of: Vec<Option<usize>> = vec![None; g.indices.len()];
    for (pos, id) in order.iter().enumerate() {
        match depth_of.get_mut(id.0 as usize) {
            None => return Err(fail(fl, format!("index #{} is out of range", id.0))),
            Some(Some(_)) => {
                return Err(fail(
                    fl,
                    format!(
                        "index `{}` is looped over twice",
                        g.indices[id.0 as usize].name
                    ),
                ))
            }
            Some(slot) => *slot = Some(pos + 1),
        }
    }
    let depth_of = depth_of
        .iter()
        .zip(&g.indices)
        .map(|(d, def)| {
            d.ok_or_else(|| {
                fail(
                    fl,
                    format!(
                        "index `{}` is neither an output index nor reduced",
                        def.name
                    ),
                )
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;

    let zero = fl.index_const(0);
    let mut loops = Vec::with_capacity(order.len());
    let mut vars = vec![zero; g.indices.len()];
    for &id in &order {
        let def = &g.indices[id.0 as usize];
        let upper = fl.extent(&def.extent)?;
        let var = fl.named_value(&def.name, Type::Index);
        vars[id.0 as usize] = var;
        loops.push((var, upper));
    }

    let n_out = g.output.len();
    let innermost = order.len();
    let ty = Type::Scalar(g.dtype);
    let mut levels: Vec<Vec<Inst>> = vec![Vec::new(); innermost + 1];
    let mut body = BodyLowerer::new(fl, g, &mut levels, &vars, &depth_of);
    let stored = match &g.reduce {
        None => body.expr_of_type(&g.body, ty)?.0,
        Some(r) => {
            let acc = body.fl.new_value("acc", ty);
            let next = match (&g.body, r.kind) {
                // The product is rounded once, with the sum, where the target has FMA.
                (Expr::Binary(BinaryFn::Mul, a, b), ReduceKind::Add) if g.dtype.is_float() => {
                    let (a, _) = body.expr_of_type(a, ty)?;
                    let (b, _) = body.expr_of_type(b, ty)?;
                    body.emit(innermost, Op::Fma(a, b, acc), ty)?
                }
                _ => {
                    let (v, _) = body.expr_of_type(&g.body, ty)?;
                    body.emit(innermost, Op::Binary(r.kind.combine_fn(), acc, v), ty)?
                }
            };
            let identity = fl.scalar_const(r.kind.identity(g.dtype));
            reduction_loops(fl, &mut levels, &loops, n_out, acc, next, identity)?
        }
    };
    let out_index: Vec<ValueId> = g.output.iter().map(|id| vars[id.0 as usize]).collect();
    level(fl, &mut levels, n_out)?.push(Inst::Store {
        buffer: out,
        index: out_index,
        value: stored,
    });

    for d in (1..=n_out).rev() {
        let (var, upper) = loops[d - 1];
        let insts = std::mem::take(level(fl, &mut levels, d)?);
        let nest = For {
            var,
            lower: zero,
            upper,
            step: 1,
            parallel: true,
            unroll: None,
            carried: Vec::new(),
            body: crate::ir::loops::Block { insts },
            yields: Vec::new(),
        };
        level(fl, &mut levels, d - 1)?.push(Inst::For(Box::new(nest)));
    }
    Ok(std::mem::take(level(fl, &mut levels, 0)?))
}

/// The instructions of loop level `d`.
fn level<'l>(
    fl: &FnLowerer,
    levels: &'l mut [Vec<Inst>],
    d: usize,
) -> Result<&'l mut Vec<Inst>, LowerError> {
    levels
        .get_mut(d)
        .ok_or_else(|| fl.error(format!("loop level {d} does not exist")))
}

/// Wraps the reduction levels (`n_out + 1 ..`) in loops carrying the accumulator: the innermost
/// loop's argument is `acc` and it yields `next`; each outer loop passes its argument in as
/// the inner loop's initial value and yields the inner loop's result. Appends the outermost
/// loop to level `n_out` and returns its result (the reduced value).
fn reduction_loops(
    fl: &mut FnLowerer,
    levels: &mut [Vec<Inst>],
    loops: &[(ValueId, ValueId)],
    n_out: usize,
    acc: ValueId,
    next: ValueId,
    identity: ValueId,
) -> Result<ValueId, LowerError> {
    let ty = fl.type_of(acc)?;
    let zero = fl.index_const(0);
    let innermost = loops.len();
    let mut arg = acc;
    let mut yielded = next;
    let mut inner: Option<Inst> = None;
    for d in (n_out + 1..=innermost).rev() {
        let (var, upper) = loops[d - 1];
        let init = if d == n_out + 1 {
            identity
        } else {
            fl.new_value("acc", ty)
        };
        let result = fl.new_value("red", ty);
        let mut insts = std::mem::take(level(fl, levels, d)?);
        insts.extend(inner.take());
        inner = Some(Inst::For(Box::new(For {
            var,
            lower: zero,
            upper,
            step: 1,
            parallel: false,
            unroll: None,
            carried: vec![Carried { arg, init, result }],
            body: crate::ir::loops::Block { insts },
            yields: vec![yielded],
        })));
        arg = init;
        yielded = result;
    }
    level(fl, levels, n_out)?.extend(inner);
    Ok(yielded)
}
