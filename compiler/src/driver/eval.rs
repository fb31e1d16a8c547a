//! `einc eval SUBSCRIPTS IN.npy... -o OUT.npy`: numpy's einsum on .npy files, JIT-compiled
//! for the operands' shapes and called through the kernel's C ABI entry point (`--interp`
//! evaluates the tensor IR with the reference interpreter instead).

use super::compile_args::CompileArgs;
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
    /// How to compile (`-O`; every extent is known from the operands).
    #[command(flatten)]
    pub compile: CompileArgs,
}

/// Runs `einc eval`.
pub fn run(args: Args, color: bool) -> ExitCode {
    match eval(&args, color) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => super::fail(message),
    }
}

fn eval(args: &Args, color: bool) -> Result<(), String> {
    let arrays = args
        .inputs
        .iter()
        .map(|p| npy::read_npy(p).map_err(|e| format!("{}: {e}", super::display_path(p))))
        .collect::<Result<Vec<Array>, String>>()?;
    let operands: Vec<_> = arrays.iter().map(|a| (a.dtype(), a.shape())).collect();
    let module = einsum_module(&args.subscripts, &operands).map_err(|e| e.to_string())?;
    let results = if args.interp {
        interp::run(&module, "einsum", &arrays).map_err(|e| e.to_string())?
    } else {
        let opts = args
            .compile
            .options(&module, None, color)
            .map_err(|_| "the compile options do not fit the einsum".to_string())?;
        let program = Program::from_module_with(module, &opts).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::tests::temp_file;
    use einc_runtime::Buffer;

    #[test]
    fn the_jit_and_the_interpreter_write_the_same_einsum() {
        let m = Array::from_buffer(Buffer::I64((1..=6).collect()), &[2, 3]).unwrap();
        let v = Array::from_buffer(Buffer::I64(vec![1, 10, 100]), &[3]).unwrap();
        let (mp, vp) = (temp_file("eval-m.npy", b""), temp_file("eval-v.npy", b""));
        npy::write_npy(&mp, &m).unwrap();
        npy::write_npy(&vp, &v).unwrap();
        for interp in [false, true] {
            let output = temp_file(&format!("eval-out-{interp}.npy"), b"");
            let args = Args {
                subscripts: "ij,j->i".into(),
                inputs: vec![mp.clone(), vp.clone()],
                output: output.clone(),
                interp,
                compile: CompileArgs::default(),
            };
            eval(&args, false).unwrap();
            // 1 + 20 + 300 and 4 + 50 + 600.
            let got = npy::read_npy(&output).unwrap();
            assert_eq!(got.dtype(), einc_runtime::DType::I64);
            assert_eq!(got.to_f64_vec(), [321.0, 654.0], "interp: {interp}");
        }
    }
}
