//! `einc eval SUBSCRIPTS IN.npy... -o OUT.npy`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The subscripts, e.g. "ij,jk->ik" (may be empty or start with `-`).
    #[arg(allow_hyphen_values = true)]
    pub subscripts: String,
    /// The operands, as .npy files (C or Fortran order; f32, f64, i32 or i64).
    pub inputs: Vec<PathBuf>,
    /// Where to write the result (.npy).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Use the reference interpreter (the only engine until code generation lands).
    #[arg(long)]
    pub interp: bool,
}

/// Runs `einc eval`.
pub fn run(args: Args, _color: bool) -> ExitCode {
    super::fail(format!("eval {:?}: not implemented yet", args.subscripts))
}
