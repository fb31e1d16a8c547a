//! `einc explain SUBSCRIPTS [--shapes 3x4,4x5]` and `einc explain FILE --kernel K`.

use std::process::ExitCode;

/// Arguments of `einc explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A subscripts string, or a .ein file.
    #[arg(allow_hyphen_values = true)]
    pub target: String,
    /// Operand shapes for a subscripts string: `3x4,4x5` (an empty entry is a scalar).
    #[arg(long, allow_hyphen_values = true)]
    pub shapes: Option<String>,
    /// The kernel to explain when TARGET is a file.
    #[arg(long)]
    pub kernel: Option<String>,
}

/// Runs `einc explain`.
pub fn run(args: Args, _color: bool) -> ExitCode {
    super::fail(format!("explain {}: not implemented yet", args.target))
}
