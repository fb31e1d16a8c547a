//! `lower-to-loops`: the tensor → loop level boundary, a pass wrapper around
//! [`crate::lower::lower_module`] (see that module for how each `generic` becomes a loop nest).
//!
//! Requires: verified tensor IR; deltas and eps may remain (the lowering evaluates them per
//! point), though `delta-elim` and `eps-expand` first make the nests smaller. Guarantees:
//! verified loop IR with one function per kernel, same names and call order.

use super::{Ir, Pass, PassOutput};

/// The `lower-to-loops` pass.
#[derive(Debug)]
pub struct LowerToLoops;

impl Pass for LowerToLoops {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        match ir {
            Ir::Tensor(m) => Ok(PassOutput {
                ir: Ir::Loop(crate::lower::lower_module(&m).map_err(|e| e.to_string())?),
                changed: true,
            }),
            other => Err(format!("expects tensor IR, got {} IR", other.level())),
        }
    }
}
