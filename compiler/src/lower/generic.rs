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
//! are available, which hoists loads and arithmetic that do not depend on the inner loops.

use super::nest::{lower_nest, Plan};
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
    let fail = |fl: &FnLowerer, message: String| fl.error(format!("{context}: {message}"));
    if result_def.ty.dtype != g.dtype {
        return Err(fail(
            fl,
            format!(
                "the op has dtype {} but the value is declared {}",
                g.dtype, result_def.ty.dtype
            ),
        ));
    }
    let plan = match &g.schedule {
        None | Some(Schedule::Naive) => Plan::naive(g),
        Some(Schedule::Loops(s)) => Plan::from_schedule(g, s).map_err(|m| fail(fl, m))?,
        Some(s @ Schedule::Gemm(_)) => {
            return Err(fail(
                fl,
                format!("`{}` schedules are not lowered yet", s.kind_name()),
            ))
        }
        Some(Schedule::Softmax(_)) => {
            return Err(fail(
                fl,
                "a `softmax` schedule belongs on the division of a row-softmax group".into(),
            ))
        }
    };
    lower_nest(fl, g, plan, out).map_err(|e| LowerError {
        func: e.func,
        message: format!("{context}: {}", e.message),
    })
}
