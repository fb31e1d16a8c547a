//! `einc check FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file to check.
    pub file: PathBuf,
}

/// Runs `einc check`.
pub fn run(args: Args, _color: bool) -> ExitCode {
    super::fail(format!(
        "check {}: not implemented yet",
        super::display_path(&args.file)
    ))
}
