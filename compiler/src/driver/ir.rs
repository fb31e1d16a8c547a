//! `einc ir FILE`: checks a `.ein` file, runs the compiler's pipeline (`compile.rs`, the one
//! `einc build` and the JIT run) on its tensor IR and prints the result at the requested
//! level, with MLIR-style instrumentation. The pipeline flags are shared with `einc opt`
//! ([`PipelineArgs`], [`run_and_print`]).

use super::compile_args::CompileArgs;
use crate::ir::tensor::Module;
use crate::passes::registry::PASSES;
use crate::passes::{run_pipeline, Dumps, Instrumentation, Ir, Level, Pipeline, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc ir`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// Compile and print only this kernel.
    #[arg(long)]
    pub kernel: Option<String>,
    /// How to compile (`-O`, `--dims`).
    #[command(flatten)]
    pub compile: CompileArgs,
    /// The pipeline and what to print.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// A level as the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    /// Tensor IR.
    Tensor,
    /// Loop IR.
    Loop,
    /// Cranelift IR.
    Clif,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Level {
        match l {
            LevelArg::Tensor => Level::Tensor,
            LevelArg::Loop => Level::Loop,
            LevelArg::Clif => Level::Clif,
        }
    }
}

/// The flags that choose a pass pipeline and what to print while it runs.
#[derive(clap::Args, Debug, Default)]
pub struct PipelineArgs {
    /// The passes to run, e.g. `delta-elim,eps-expand{max-rank=4},dce` (see docs/passes.md).
    /// `einc ir` defaults to the pipeline of the -O level down to --level; `einc opt` to none.
    #[arg(long, value_name = "PIPELINE")]
    pub passes: Option<String>,
    /// The level of the IR printed at the end; it must be where the pipeline ends. For
    /// `einc ir` it also chooses the default pipeline (default: tensor, or the deepest level
    /// with --print-after-all / --print-changed).
    #[arg(long, value_enum)]
    pub level: Option<LevelArg>,
    /// Print the IR after every pass, each headed by `// -----// IR after <pass> //----- //`.
    #[arg(long)]
    pub print_after_all: bool,
    /// Print the IR after every pass that changed it, and `// IR after <pass>: (unchanged)`
    /// for the others.
    #[arg(long)]
    pub print_changed: bool,
    /// Print the IR before every pass, each headed by `// -----// IR before <pass> //----- //`
    /// (the first shows the input IR).
    #[arg(long)]
    pub print_before_all: bool,
    /// Print the IR before this pass (repeatable, or comma-separated).
    #[arg(long, value_name = "PASS", value_delimiter = ',')]
    pub print_before: Vec<String>,
    /// Print the IR after this pass (repeatable, or comma-separated).
    #[arg(long, value_name = "PASS", value_delimiter = ',')]
    pub print_after: Vec<String>,
    /// Stop after the first run of this pass and print the IR there.
    #[arg(long, value_name = "PASS")]
    pub stop_after: Option<String>,
    /// Run the verifier after every pass (always on in debug builds).
    #[arg(long)]
    pub verify_each: bool,
}

/// Runs `einc ir`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let (mut module, file) = match super::load_module_and_source(&args.file, color) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    if let Some(name) = &args.kernel {
        match module.func(name) {
            Some(f) => {
                module = Module {
                    dims: module.dims.clone(),
                    funcs: vec![f.clone()],
                }
            }
            None => return super::fail(super::unknown_kernel(&module, name)),
        }
    }
    let mut opts = match args.compile.options(&module, Some(&file), color) {
        Ok(opts) => opts,
        Err(status) => return status,
    };
    let p = &args.pipeline;
    let target = match p.level {
        Some(l) => l.into(),
        None if p.print_after_all || p.print_changed => Level::Clif,
        None => Level::Tensor,
    };
    opts.pipeline.clone_from(&p.passes);
    let pipeline = match crate::compile::pipeline(&opts, target) {
        Ok(pipeline) => pipeline,
        Err(e) => return super::fail(e),
    };
    run_and_print(
        Ir::Tensor(module),
        &pipeline,
        p,
        Some(target),
        args.kernel.is_some(),
    )
}

/// Runs `pipeline` on `ir` with the instrumentation `p` asks for, and prints the dumps and
/// then the resulting IR to standard output (the result is not repeated when the last dump
/// already shows it). `target`, when given, is the level the result must be at;
/// `functions_only` prints the result's functions without the module header (`--kernel`).
pub(crate) fn run_and_print(
    ir: Ir,
    pipeline: &Pipeline,
    p: &PipelineArgs,
    target: Option<Level>,
    functions_only: bool,
) -> ExitCode {
    let opts = RunOptions {
        instrumentation: Instrumentation {
            print_after_all: p.print_after_all,
            print_changed: p.print_changed,
            print_before: if p.print_before_all {
                pipeline
                    .steps
                    .iter()
                    .map(|s| s.info.name.to_string())
                    .collect()
            } else {
                p.print_before.clone()
            },
            print_after: p.print_after.clone(),
            stop_after: p.stop_after.clone(),
        },
        verify_each: p.verify_each || cfg!(debug_assertions),
    };
    let mut dumps = Dumps::default();
    let result = run_pipeline(pipeline, ir, &opts, &mut dumps);
    print!("{}", dumps.text);
    let ir = match result {
        Ok(ir) => ir,
        Err(e) => return super::fail(e),
    };
    if let Some(target) = target.filter(|&t| t != ir.level()) {
        let producers: Vec<&str> = PASSES
            .iter()
            .filter(|p| p.output == target)
            .map(|p| p.name)
            .collect();
        let hint = if producers.is_empty() {
            format!("no registered pass produces {target} IR yet")
        } else {
            format!("{target} IR is produced by: {}", producers.join(", "))
        };
        return super::fail(format!(
            "the pipeline ends at {} level, but {target} IR was asked for; {hint}",
            ir.level()
        ));
    }
    if !dumps.shows_result {
        match (&ir, functions_only) {
            (Ir::Tensor(m), true) => {
                for f in &m.funcs {
                    print!("{}", crate::ir::tensor::printer::print_function(m, f));
                }
            }
            (Ir::Loop(m), true) => {
                for f in &m.funcs {
                    print!("{}", crate::ir::loops::printer::print_function(f));
                }
            }
            _ => print!("{}", ir.print()),
        }
    }
    ExitCode::SUCCESS
}
