//! The pass infrastructure: IR at some level ([`Ir`]), the [`Pass`] trait, the registry that
//! names every pass in one place ([`registry`]), pipeline strings such as
//! `delta-elim,eps-expand{max-rank=4},dce` ([`pipeline`]), and the manager that runs a pipeline
//! with MLIR-style instrumentation and verifies the IR after every pass ([`manager`]).
//!
//! Each pass is one file with a doc comment saying what it requires and what it guarantees;
//! the catalogue with examples is `docs/passes.md`.

pub mod canonicalize;
pub mod const_fold;
pub mod contraction_path;
pub mod cse;
pub mod dce;
pub mod delta_elim;
pub mod emit_clif;
pub mod eps_expand;
pub mod flash_attention;
pub mod fuse;
pub mod licm;
pub mod lower_to_loops;
pub mod manager;
pub mod pipeline;
pub mod registry;
mod rewrite;
pub mod schedule;
pub mod strength_reduce;
#[cfg(test)]
pub(crate) mod tests;
pub mod unroll;

use crate::codegen::{Target, UkernelIsa};
use crate::ir::{loops, tensor};
use std::collections::BTreeMap;
use std::fmt;

pub use manager::{run_pipeline, Dumps, Instrumentation, RunOptions};
pub use pipeline::Pipeline;

/// The levels IR exists at, from the highest to the lowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// The tensor IR (`.tir`).
    Tensor,
    /// The loop IR (`.lir`).
    Loop,
    /// Cranelift IR text: printed, never transformed or parsed.
    Clif,
}

impl Level {
    /// Every level, highest first.
    pub const ALL: [Level; 3] = [Level::Tensor, Level::Loop, Level::Clif];

    /// The level's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Tensor => "tensor",
            Level::Loop => "loop",
            Level::Clif => "clif",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole program at one level.
#[derive(Clone, Debug, PartialEq)]
pub enum Ir {
    /// Tensor IR.
    Tensor(tensor::Module),
    /// Loop IR.
    Loop(loops::Module),
    /// Cranelift IR, as text (the final, print-only stage).
    Clif(String),
}

impl Ir {
    /// The level this IR is at.
    pub fn level(&self) -> Level {
        match self {
            Ir::Tensor(_) => Level::Tensor,
            Ir::Loop(_) => Level::Loop,
            Ir::Clif(_) => Level::Clif,
        }
    }

    /// The IR in its text form (what `einc ir` and `einc opt` print).
    pub fn print(&self) -> String {
        match self {
            Ir::Tensor(m) => tensor::printer::print_module(m),
            Ir::Loop(m) => loops::printer::print_module(m),
            Ir::Clif(text) => text.clone(),
        }
    }

    /// Checks the invariants of the IR's level; the error lists every broken rule, one a line.
    pub fn verify(&self) -> Result<(), String> {
        let errors: Vec<String> = match self {
            Ir::Tensor(m) => tensor::verify::verify_module(m)
                .err()
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect(),
            Ir::Loop(m) => loops::verify::verify_module(m)
                .err()
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect(),
            // Cranelift's own verifier runs when the text is produced.
            Ir::Clif(_) => Vec::new(),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Parses IR text at `level`, or, when `level` is `None`, at whichever of the tensor and
    /// loop levels it parses as. The error is `line:col: message`.
    pub fn parse(text: &str, level: Option<Level>) -> Result<Ir, String> {
        let tensor = || {
            tensor::parser::parse_module(text)
                .map(Ir::Tensor)
                .map_err(|e| e.to_string())
        };
        let loop_ = || {
            loops::parser::parse_module(text)
                .map(Ir::Loop)
                .map_err(|e| e.to_string())
        };
        match level {
            Some(Level::Tensor) => tensor(),
            Some(Level::Loop) => loop_(),
            Some(Level::Clif) => Err("Cranelift IR is print-only: it cannot be read back".into()),
            None => tensor().or_else(|te| {
                loop_().map_err(|le| {
                    format!(
                        "the text is neither tensor IR nor loop IR\n  as tensor IR: {te}\n  \
                         as loop IR: {le}"
                    )
                })
            }),
        }
    }
}

/// What a pass may know about the compilation beyond its own options; `compile` fills it in
/// from the compile options and every pass of a pipeline gets the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassContext {
    /// Extents known for symbolic dims: fixed by specialisation or given as hints
    /// (`einc build --dims T=512`). Passes may use them to choose between equivalent programs
    /// (a contraction order), never to change what the program computes: the code still runs
    /// for every extent.
    pub dims: BTreeMap<String, u64>,
    /// The machine code is generated for.
    pub target: Target,
    /// The micro-kernels code generation will use (the schedule's register tiles fit them).
    pub ukernels: UkernelIsa,
}

impl Default for PassContext {
    /// The host, with no extent known and Cranelift's micro-kernels (so that what a pipeline
    /// string alone produces, as in filetests, does not depend on the host's features; the
    /// compile options resolve the widest kernels the host runs, `compile::pipeline`).
    fn default() -> PassContext {
        PassContext {
            dims: BTreeMap::new(),
            target: Target::Host,
            ukernels: UkernelIsa::default(),
        }
    }
}

/// What running one pass produced.
#[derive(Debug)]
pub struct PassOutput {
    /// The transformed IR.
    pub ir: Ir,
    /// Whether the IR differs from the input (exactly: a pass that reports `false` must not
    /// have changed the printed text, and the manager checks this when it verifies).
    pub changed: bool,
}

/// A transformation from IR at its registered input level to IR at its output level.
pub trait Pass {
    /// Runs the pass. The manager only passes IR at the pass's registered input level, and
    /// verified IR; an error is a message (the manager adds the pass name).
    fn run(&self, ir: Ir) -> Result<PassOutput, String>;
}

/// A pass that rewrites a tensor module in place; every such type is a [`Pass`] at the tensor
/// level.
pub trait TensorPass {
    /// Rewrites `m`; returns whether anything changed.
    fn run_tensor(&self, m: &mut tensor::Module) -> bool;
}

impl<T: TensorPass> Pass for T {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        match ir {
            Ir::Tensor(mut m) => {
                let changed = self.run_tensor(&mut m);
                Ok(PassOutput {
                    ir: Ir::Tensor(m),
                    changed,
                })
            }
            other => Err(format!("expects tensor IR, got {} IR", other.level())),
        }
    }
}
