//! One `generic` → one loop nest, as its schedule says.
//!
//! Without a schedule (or with `naive`) the nest is the naive one ([`Plan::naive`]): one loop per
//! index, outermost first, the output indices in output order (marked `parallel`: each
//! iteration writes its own element), then the reduced indices in `over` order. Each reduction
//! loop carries the accumulator, initialised to the reduction's identity outside the outermost
//! reduction loop, so a reduction with no iterations leaves the identity. The innermost body
//! combines the accumulator with the body value (an `add` reduction of a float `mul` becomes
//! one `fma`), and the result is stored after the reduction loops, at the output position.
//! Without a reduction the body value is stored in the innermost loop.
//!
//! A `loops` schedule gives the order, vectorisation, unrolling and parallel loops of the same
//! kind of nest ([`nest`](super::nest)). Each loop level has its own block of instructions;
//! [`body`](super::body) places every body instruction at the outermost level where its operands
//! are available, which hoists loads and arithmetic that do not depend on the inner loops. A
//! `gemm` schedule gives the GETT nest ([`gett`](super::gett)). A schedule must be complete: the
//! `schedule` pass completes the ones annotations leave partial. With
//! [`LowerOptions::schedules`](super::LowerOptions) off, every op gets the naive nest.

use super::gett::lower_gett;
use super::nest::{lower_nest, Plan};
use super::{FnLowerer, LowerError};
use crate::ir::loops::{BufferId, Inst};
use crate::ir::tensor::schedule::epilogue::Epilogue;
use crate::ir::tensor::schedule::Schedule;
use crate::ir::tensor::{self, Generic};

/// Lowers `g`, which defines tensor value `result`, into a nest storing into buffer `out`;
/// with `epilogue` (a `gemm` schedule's), `out` receives the epilogue's last value instead.
pub(super) fn lower_generic(
    fl: &mut FnLowerer,
    result: tensor::ValueId,
    g: &Generic,
    out: BufferId,
    epilogue: Option<&Epilogue>,
) -> Result<Vec<Inst>, LowerError> {
    let result_def = fl.value_def(result)?;
    let context = format!("the op defining %{}", result_def.name);
    let in_context = |e: LowerError| LowerError {
        message: format!("{context}: {}", e.message),
        ..e
    };
    if result_def.ty.dtype != g.dtype {
        return Err(in_context(fl.error(format!(
            "the op has dtype {} but the value is declared {}",
            g.dtype, result_def.ty.dtype
        ))));
    }
    let schedule = g.schedule.as_ref().filter(|_| fl.opts.schedules);
    if let Some(s) = schedule {
        let missing = s.missing();
        if !missing.is_empty() {
            return Err(in_context(fl.error(format!(
                "its `{}` schedule does not set {} (the `schedule` pass completes schedules)",
                s.kind_name(),
                missing.join(", ")
            ))));
        }
    }
    if epilogue.is_some() && !matches!(schedule, Some(Schedule::Gemm(_))) {
        return Err(in_context(
            fl.error("only a `gemm` schedule applies an epilogue"),
        ));
    }
    let lowered = match schedule {
        None | Some(Schedule::Naive) => lower_nest(fl, g, Plan::naive(g), out),
        Some(Schedule::Loops(s)) => match Plan::from_schedule(g, s) {
            Ok(plan) => lower_nest(fl, g, plan, out),
            Err(m) => Err(fl.error(m)),
        },
        Some(Schedule::Gemm(s)) => lower_gett(fl, g, out, s, epilogue),
        Some(Schedule::Softmax(_)) => {
            Err(fl.error("a `softmax` schedule belongs on the division of a row-softmax group"))
        }
        Some(Schedule::Attention(_)) => Err(fl.error(
            "an `attention` schedule belongs on the output contraction of an attention chain",
        )),
    };
    lowered.map_err(in_context)
}
