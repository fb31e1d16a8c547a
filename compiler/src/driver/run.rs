//! `einc run FILE --kernel K NAME=IN.npy... --out-dir DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// The kernel to run.
    #[arg(long)]
    pub kernel: String,
    /// Inputs as NAME=PATH.npy, one per kernel parameter.
    pub inputs: Vec<String>,
    /// Directory for the outputs (one NAME.npy per kernel output); created if missing.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Use the reference interpreter (the only engine until code generation lands).
    #[arg(long)]
    pub interp: bool,
}

/// Runs `einc run`.
pub fn run(args: Args, _color: bool) -> ExitCode {
    super::fail(format!(
        "run {}: not implemented yet",
        super::display_path(&args.file)
    ))
}
