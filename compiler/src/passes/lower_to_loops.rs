//! `lower-to-loops`: the tensor → loop level boundary, a pass wrapper around
//! [`crate::lower::lower_module`] (see that module for how each `generic` becomes a loop nest).
//!
//! Requires: verified tensor IR; deltas and eps may remain (the lowering evaluates them per
//! point), though `delta-elim` and `eps-expand` first make the nests smaller; every schedule
//! complete (the `schedule` pass completes partial ones). Guarantees: verified loop IR with one
//! general function per kernel, same names and call order, and the kernel variants lowering
//! chooses; each op's nest follows its schedule (`schedules=obey`, the default) or is the naive
//! nest (`schedules=ignore`: `-O0`'s reference, whatever the ops say).

use super::{Ir, Pass, PassOutput};
use crate::lower::{lower_module_with, LowerOptions};

/// The `lower-to-loops` pass.
#[derive(Debug)]
pub struct LowerToLoops {
    /// Whether nests follow the ops' schedules (else every op gets the naive nest).
    pub schedules: bool,
}

impl Pass for LowerToLoops {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        let opts = LowerOptions {
            schedules: self.schedules,
        };
        match ir {
            Ir::Tensor(m) => Ok(PassOutput {
                ir: Ir::Loop(lower_module_with(&m, &opts).map_err(|e| e.to_string())?),
                changed: true,
            }),
            other => Err(format!("expects tensor IR, got {} IR", other.level())),
        }
    }
}
