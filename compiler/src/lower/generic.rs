//! One `generic` → loop IR, as its schedule says: without one (or with `naive`) the naive nest,
//! with `loops` the scheduled nest ([`nest`](super::nest)), with `gemm` the GETT nest
//! ([`gett`](super::gett)). A schedule must be complete: the `schedule` pass completes the ones
//! annotations leave partial.

use super::gett::lower_gett;
use super::nest::{lower_nest, NestPlan};
use super::{FnLowerer, LowerError};
use crate::ir::loops::{BufferId, Inst};
use crate::ir::tensor::schedule::Schedule;
use crate::ir::tensor::{self, Generic};

/// Lowers `g`, which defines tensor value `result`, into a nest storing into buffer `out`.
pub(super) fn lower_generic(
    fl: &mut FnLowerer,
    result: tensor::ValueId,
    g: &Generic,
    out: BufferId,
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
    if let Some(s) = g.schedule.as_ref().filter(|_| fl.opts.schedules) {
        let missing = s.missing();
        if !missing.is_empty() {
            return Err(in_context(fl.error(format!(
                "its `{}` schedule does not set {} (the `schedule` pass completes schedules)",
                s.kind_name(),
                missing.join(", ")
            ))));
        }
    }
    let schedule = g.schedule.as_ref().filter(|_| fl.opts.schedules);
    let lowered = match schedule {
        None | Some(Schedule::Naive) => lower_nest(fl, g, out, &NestPlan::naive(g)),
        Some(Schedule::Loops(s)) => match NestPlan::from_schedule(s) {
            Some(plan) => lower_nest(fl, g, out, &plan),
            None => Err(fl.error("incomplete `loops` schedule")),
        },
        Some(Schedule::Gemm(s)) => lower_gett(fl, g, out, s),
    };
    lowered.map_err(in_context)
}
