//! Runs a [`Pipeline`] on IR: checks that the levels chain, runs each pass, verifies the IR
//! after every pass when asked (always in debug builds), and writes MLIR-style instrumentation
//! dumps to a string.
//!
//! Dump format (documented in `docs/passes.md`): `// -----// IR before <pass> //----- //` or
//! `// -----// IR after <pass> //----- //` on a line of its own, then the IR text; with
//! `print_changed`, a pass that left the IR unchanged prints the single line
//! `// IR after <pass>: (unchanged)` instead, so that two dumps diff cleanly.

use super::pipeline::Pipeline;
use super::Ir;
use std::fmt::Write as _;

/// What to print while the pipeline runs, and where to stop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instrumentation {
    /// Print the IR after every pass.
    pub print_after_all: bool,
    /// Print the IR after every pass that changed it, and an `(unchanged)` line for the others.
    pub print_changed: bool,
    /// Print the IR before each run of these passes.
    pub print_before: Vec<String>,
    /// Print the IR after each run of these passes.
    pub print_after: Vec<String>,
    /// Stop after the first run of this pass.
    pub stop_after: Option<String>,
}

/// How to run a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Dumps and stopping.
    pub instrumentation: Instrumentation,
    /// Run the verifier of the current level after every pass, and check that each pass
    /// reported exactly whether it changed the IR. On by default in debug builds.
    pub verify_each: bool,
}

/// Whether pipelines verify after every pass unless told otherwise: in debug builds (tests set
/// [`RunOptions::verify_each`] explicitly, so release-mode test runs verify too).
const VERIFY_EACH_BY_DEFAULT: bool = cfg!(debug_assertions);

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            instrumentation: Instrumentation::default(),
            verify_each: VERIFY_EACH_BY_DEFAULT,
        }
    }
}

/// What the instrumentation printed while a pipeline ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dumps {
    /// The dumps, in order.
    pub text: String,
    /// Whether the last IR printed after a pass is the pipeline's result (no pass changed the
    /// IR after it), so that a caller need not print the result again.
    pub shows_result: bool,
}

/// The banner printed before the IR in a dump.
pub fn banner(when: &str, pass: &str) -> String {
    format!("// -----// IR {when} {pass} //----- //\n")
}

/// Runs `pipeline` on `ir`, appending instrumentation dumps to `dumps`. The input is verified
/// first (it may come from a user's file). Errors name the pass that failed.
pub fn run_pipeline(
    pipeline: &Pipeline,
    mut ir: Ir,
    opts: &RunOptions,
    dumps: &mut Dumps,
) -> Result<Ir, String> {
    let instr = &opts.instrumentation;
    let names: Vec<&str> = pipeline.steps.iter().map(|s| s.info.name).collect();
    for asked in instr
        .print_before
        .iter()
        .chain(&instr.print_after)
        .chain(&instr.stop_after)
    {
        if !names.contains(&asked.as_str()) {
            return Err(if names.is_empty() {
                format!("pass `{asked}` is not in the pipeline, which is empty")
            } else {
                format!(
                    "pass `{asked}` is not in the pipeline; it runs: {}",
                    pipeline.names()
                )
            });
        }
    }
    pipeline.check_levels(ir.level())?;
    ir.verify()
        .map_err(|e| format!("the input is not valid {} IR:\n{e}", ir.level()))?;
    for step in &pipeline.steps {
        let name = step.info.name;
        if instr.print_before.iter().any(|n| n == name) {
            dumps.text.push_str(&banner("before", name));
            dumps.text.push_str(&ir.print());
        }
        let before = opts.verify_each.then(|| (ir.level(), ir.print()));
        let out = step
            .pass
            .run(ir)
            .map_err(|e| format!("pass `{name}` failed: {e}"))?;
        ir = out.ir;
        if opts.verify_each {
            ir.verify()
                .map_err(|e| format!("the IR after pass `{name}` fails the verifier:\n{e}"))?;
            // A pass that changes the level changes the IR, even when both print alike (an
            // empty module).
            let really = before != Some((ir.level(), ir.print()));
            if really != out.changed {
                return Err(format!(
                    "pass `{name}` reported {} but the IR {}",
                    if out.changed { "a change" } else { "no change" },
                    if really { "changed" } else { "is unchanged" }
                ));
            }
        }
        let asked_after = instr.print_after_all || instr.print_after.iter().any(|n| n == name);
        if instr.print_changed && !out.changed {
            let _ = writeln!(dumps.text, "// IR after {name}: (unchanged)");
        } else if asked_after || instr.print_changed {
            dumps.text.push_str(&banner("after", name));
            dumps.text.push_str(&ir.print());
            dumps.shows_result = true;
        } else if out.changed {
            dumps.shows_result = false;
        }
        if instr.stop_after.as_deref() == Some(name) {
            break;
        }
    }
    Ok(ir)
}
