//! `emit-clif`: the loop → Cranelift boundary, a pass wrapper around
//! [`crate::codegen::clif_text`] for the compilation's target (the host unless a target triple
//! is given). Its result is print-only text (the
//! `clif` level): no pass reads it, so it can only end a pipeline.
//!
//! Requires: verified loop IR. Guarantees: the CLIF of every kernel (entry point and body), as
//! code generation compiles it, each function checked by Cranelift's verifier.

use super::{Ir, Pass, PassOutput};
use crate::codegen::{clif_text, Target, UkernelIsa};

/// The `emit-clif` pass.
#[derive(Debug)]
pub struct EmitClif {
    /// The target whose CLIF is printed.
    pub target: Target,
    /// The micro-kernels (machine-code ones are named, having no CLIF).
    pub ukernels: UkernelIsa,
}

impl Pass for EmitClif {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        match ir {
            Ir::Loop(m) => Ok(PassOutput {
                ir: Ir::Clif(
                    clif_text(&m, &self.target, self.ukernels).map_err(|e| e.to_string())?,
                ),
                changed: true,
            }),
            other => Err(format!("expects loop IR, got {} IR", other.level())),
        }
    }
}
