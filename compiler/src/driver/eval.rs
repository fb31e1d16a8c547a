//! `einc eval SUBSCRIPTS IN.npy... -o OUT.npy`: numpy's einsum on .npy files, through the
//! tensor IR and the reference interpreter.

use crate::ir::tensor::{Extent, TensorType};
use crate::sema::einsum::{self, EinsumError};
use crate::{interp, npy};
use einc_runtime::Array;
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
    let types: Vec<TensorType> = arrays.iter().map(tensor_type).collect();
    let (module, func) = einsum::einsum_function(&args.subscripts, &types)
        .map_err(|e| show_einsum_error(&e, &args.subscripts))?;
    let results = interp::run_function(&module, &func, &arrays).map_err(|e| e.to_string())?;
    let result = results
        .first()
        .ok_or("the einsum function returned no result (a compiler bug)")?;
    super::write_outputs(&[(args.output.clone(), result)])
}

/// The IR type of an array: its dtype and literal extents.
fn tensor_type(a: &Array) -> TensorType {
    TensorType {
        dtype: a.dtype(),
        shape: a.shape().iter().map(|&n| Extent::Fixed(n as u64)).collect(),
    }
}

/// An einsum error, with the subscripts and a caret under the offending bytes when it has a
/// location:
///
/// ```text
/// output label `j` appears more than once
///   | ij->jij
///   |       ^
/// ```
pub(super) fn show_einsum_error(e: &EinsumError, subscripts: &str) -> String {
    let Some(span) = &e.span else {
        return e.message.clone();
    };
    // Columns count characters, not bytes, so a non-ASCII character gets one caret.
    let col = subscripts
        .get(..span.start)
        .map_or(0, |s| s.chars().count());
    let width = subscripts
        .get(span.clone())
        .map_or(1, |s| s.chars().count().max(1));
    format!(
        "{}\n  | {subscripts}\n  | {}{}",
        e.message,
        " ".repeat(col),
        "^".repeat(width)
    )
}
