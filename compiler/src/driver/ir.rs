//! `einc ir FILE [--kernel K]`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc ir`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// Print only this kernel.
    #[arg(long)]
    pub kernel: Option<String>,
}

/// Runs `einc ir`.
pub fn run(args: Args, _color: bool) -> ExitCode {
    super::fail(format!(
        "ir {}: not implemented yet",
        super::display_path(&args.file)
    ))
}
