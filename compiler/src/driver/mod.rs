//! The command-line driver: argument parsing (clap) and one module per subcommand. Each
//! subcommand reads its inputs, runs the pipeline, renders diagnostics and returns an exit
//! status: 0 on success, 1 when the input is rejected, 2 for a malformed command line.

mod check;
mod eval;
mod explain;
mod ir;
mod run;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::process::ExitCode;

/// einc compiles tensor programs written in Einstein index notation.
///
/// Input is a `.ein` file (kernels written in index notation) or a numpy-style einsum
/// subscripts string such as "bhid,bhjd->bhij".
#[derive(Parser, Debug)]
#[command(name = "einc", version, about, long_about = None)]
pub struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// When diagnostics use ANSI colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When standard error is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour output written to standard error.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Auto => std::io::stderr().is_terminal(),
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        }
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a .ein file and print its diagnostics; exit 0 when it has no errors.
    Check(check::Args),
    /// Explain an einsum: for each index, free or dummy, which operand axes carry it and its
    /// extent; the result shape; the multiply-add count.
    ///
    /// TARGET is a subscripts string ("ij,jk->ik", shapes from --shapes) or, when it ends in
    /// `.ein` or --kernel is given, a file whose kernel K is explained statement by statement.
    Explain(explain::Args),
    /// Print the tensor IR of a .ein file (all kernels, or one with --kernel).
    Ir(ir::Args),
    /// Evaluate a numpy einsum on .npy files: `einc eval "ij,jk->ik" A.npy B.npy -o C.npy`.
    ///
    /// Semantics, output dtype and shape are numpy.einsum's. The subscripts may be empty,
    /// contain spaces or start with `-` (e.g. `->`); some subscripts take no input files.
    Eval(eval::Args),
    /// Run a kernel of a .ein file on .npy inputs and write one OUTNAME.npy per output.
    ///
    /// Dims are bound from the input shapes: `einc run attention.ein --kernel attention
    /// X=x.npy WQ=wq.npy WK=wk.npy WV=wv.npy --out-dir out/`.
    Run(run::Args),
}

/// Entry point of the `einc` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let color = cli.color.enabled();
    match cli.command {
        Command::Check(args) => check::run(args, color),
        Command::Explain(args) => explain::run(args, color),
        Command::Ir(args) => ir::run(args, color),
        Command::Eval(args) => eval::run(args, color),
        Command::Run(args) => run::run(args, color),
    }
}

/// Prints `einc: error: {message}` to standard error and returns exit status 1.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("einc: error: {message}");
    ExitCode::from(1)
}

/// A path argument shown in messages as the user wrote it.
pub(crate) fn display_path(p: &std::path::Path) -> String {
    p.display().to_string()
}
