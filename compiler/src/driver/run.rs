//! `einc run FILE --kernel K NAME=IN.npy... --out-dir DIR`: runs one kernel of a checked `.ein`
//! file on `.npy` inputs and writes one `OUTNAME.npy` per output. Dims are bound from the input
//! shapes; every kernel parameter must be given exactly once. The kernel is JIT-compiled and
//! called through its C ABI entry point; `--interp` runs the reference interpreter instead.

use super::compile_args::CompileArgs;
use crate::api::{Program, TensorRef};
use crate::compile::CompileOptions;
use crate::ir::tensor::{Function, Module};
use crate::{interp, npy};
use einc_runtime::Array;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// The kernel to run (default: the file's only kernel).
    #[arg(long)]
    pub kernel: Option<String>,
    /// Inputs as NAME=PATH.npy, one per kernel parameter (C or Fortran order).
    pub inputs: Vec<String>,
    /// Directory for the outputs (one NAME.npy per kernel output); created if missing.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Convert inputs whose dtype differs from the declared one (numpy `astype` rules)
    /// instead of rejecting them.
    #[arg(long)]
    pub cast: bool,
    /// Run with the reference interpreter instead of compiling to native code.
    #[arg(long)]
    pub interp: bool,
    /// How to compile (`-O`, `--dims`).
    #[command(flatten)]
    pub compile: CompileArgs,
}

/// Runs `einc run`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let (module, file) = match super::load_module_and_source(&args.file, color) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let opts = match args.compile.options(&module, Some(&file), color) {
        Ok(opts) => opts,
        Err(status) => return status,
    };
    match run_kernel(&module, &args, &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => super::fail(message),
    }
}

fn run_kernel(module: &Module, args: &Args, opts: &CompileOptions) -> Result<(), String> {
    let func = super::pick_kernel(module, args.kernel.as_deref())?;
    let mut inputs = bind_inputs(func, &args.inputs)?;
    if args.cast {
        for (input, &p) in inputs.iter_mut().zip(&func.params) {
            let want = func.value(p).ty.dtype;
            if input.dtype() != want {
                *input = cast(input, want)?;
            }
        }
    }
    let results = if args.interp {
        interp::run(module, &func.name, &inputs)
            .map_err(|e| format!("kernel `{}`: {e}", func.name))?
    } else {
        // Only the kernel asked for is compiled.
        let single = Module {
            dims: module.dims.clone(),
            funcs: vec![func.clone()],
        };
        let views: Vec<TensorRef<'_>> = inputs.iter().map(TensorRef::from_array).collect();
        Program::from_module_with(single, opts)
            .and_then(|p| p.kernel(&func.name))
            .and_then(|k| k.run(&views))
            .map_err(|e| e.to_string())?
    };
    std::fs::create_dir_all(&args.out_dir).map_err(|e| {
        format!(
            "cannot create the output directory {}: {e}",
            super::display_path(&args.out_dir)
        )
    })?;
    let outputs: Vec<(PathBuf, &Array)> = func
        .results
        .iter()
        .zip(&results)
        .map(|(r, a)| (args.out_dir.join(format!("{}.npy", r.name)), a))
        .collect();
    super::write_outputs(&outputs)?;
    for (path, a) in &outputs {
        let shape: Vec<String> = a.shape().iter().map(usize::to_string).collect();
        println!(
            "wrote {} ({}[{}])",
            super::display_path(path),
            a.dtype().name(),
            shape.join(", ")
        );
    }
    Ok(())
}

/// `a` converted to `dtype` element by element (numpy's `astype`).
fn cast(a: &Array, dtype: einc_runtime::DType) -> Result<Array, String> {
    let mut out = Array::zeros(dtype, a.shape()).map_err(|e| format!("--cast: {e}"))?;
    einc_runtime::array::for_each_index(a.shape(), |at| out.set(at, a.get(at).cast(dtype)));
    Ok(out)
}

/// Reads the `NAME=PATH` arguments into one array per parameter, in parameter order.
fn bind_inputs(func: &Function, specs: &[String]) -> Result<Vec<Array>, String> {
    let params: Vec<&str> = func
        .params
        .iter()
        .filter_map(|&p| func.values.get(p.0 as usize))
        .map(|v| v.name.as_str())
        .collect();
    let mut paths: Vec<Option<&str>> = vec![None; params.len()];
    for spec in specs {
        let (name, path) = spec.split_once('=').ok_or_else(|| {
            format!("input `{spec}` is not of the form NAME=PATH.npy (e.g. X=x.npy)")
        })?;
        let slot = params.iter().position(|&p| p == name).ok_or_else(|| {
            format!(
                "kernel `{}` has no parameter `{name}`; its parameters are: {}",
                func.name,
                params.join(", ")
            )
        })?;
        if paths[slot].replace(path).is_some() {
            return Err(format!("parameter `{name}` is given more than once"));
        }
    }
    let missing: Vec<&str> = params
        .iter()
        .zip(&paths)
        .filter(|(_, p)| p.is_none())
        .map(|(&n, _)| n)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "kernel `{}` needs {}: give each as NAME=PATH.npy",
            func.name,
            missing
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    paths
        .into_iter()
        .flatten()
        .map(|path| npy::read_npy(path.as_ref()).map_err(|e| format!("{path}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::tests::temp_file;
    use einc_runtime::Buffer;

    #[test]
    fn the_jit_and_the_interpreter_write_the_same_outputs() {
        let module = crate::sema::compile_source(
            "dims N\nkernel k(A: f32[N, N]) -> (d: f32[N], t: f32) {\n    d[i] = A[i, i]\n    \
             t = A[i, i]\n}\n",
        )
        .0
        .unwrap();
        let a =
            Array::from_buffer(Buffer::F32((1..=9).map(|v| v as f32).collect()), &[3, 3]).unwrap();
        let path = temp_file("run-a.npy", b"");
        npy::write_npy(&path, &a).unwrap();
        for interp in [false, true] {
            let out_dir = path.with_file_name(format!("run-out-{interp}"));
            let args = Args {
                file: PathBuf::from("k.ein"),
                kernel: Some("k".into()),
                inputs: vec![format!("A={}", path.display())],
                out_dir: out_dir.clone(),
                cast: false,
                interp,
                compile: CompileArgs::default(),
            };
            run_kernel(&module, &args, &CompileOptions::default()).unwrap();
            let d = npy::read_npy(&out_dir.join("d.npy")).unwrap();
            let t = npy::read_npy(&out_dir.join("t.npy")).unwrap();
            assert_eq!(d.to_f64_vec(), [1.0, 5.0, 9.0], "interp: {interp}");
            assert_eq!(t.to_f64_vec(), [15.0], "interp: {interp}");
        }
    }
}
