//! `einc eval SUBSCRIPTS IN.npy... -o OUT.npy`: numpy's einsum on .npy files, JIT-compiled
//! for the operands' shapes and called through the kernel's C ABI entry point (`--interp`
//! evaluates the tensor IR with the reference interpreter instead).

use crate::api::{einsum_module, Program, TensorRef};
use crate::{interp, npy};
use einc_runtime::Array;
use std::path::PathBuf;
use std::process::ExitCode;

/// `einc explain` shows einsum errors the same way.
pub(super) use crate::api::show_einsum_error;

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
    /// Evaluate with the reference interpreter instead of compiling to native code.
    #[arg(long)]
    pub interp: bool,
}

/// Runs `einc eval`.
pub fn run(args: Args, _color: bool) -> ExitCode {
    match eval(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => super::fail(message),
    }
}

fn eval(args: &Args) -> Result<(), String> {
    let arrays = args
        .inputs
        .iter()
        .map(|p| npy::read_npy(p).map_err(|e| format!("{}: {e}", super::display_path(p))))
        .collect::<Result<Vec<Array>, String>>()?;
    let operands: Vec<_> = arrays.iter().map(|a| (a.dtype(), a.shape())).collect();
    let results = if args.interp {
        let module = einsum_module(&args.subscripts, &operands).map_err(|e| e.to_string())?;
        interp::run(&module, "einsum", &arrays).map_err(|e| e.to_string())?
    } else {
        let program = Program::einsum(&args.subscripts, &operands).map_err(|e| e.to_string())?;
        let views: Vec<TensorRef<'_>> = arrays.iter().map(TensorRef::from_array).collect();
        program
            .kernel("einsum")
            .and_then(|k| k.run(&views))
            .map_err(|e| e.to_string())?
    };
    let result = results
        .first()
        .ok_or("the einsum function returned no result (a compiler bug)")?;
    super::write_outputs(&[(args.output.clone(), result)])
}
