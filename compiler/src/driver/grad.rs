//! `einc grad FILE --kernel K [--wrt A,B]`: derives the gradient kernel of K and prints it as
//! readable `.ein` source (deltas eliminated, temporaries fused, bodies simplified), or as
//! tensor IR with `--ir`.

use crate::autodiff::{self, to_ein};
use crate::ir::tensor::printer::print_module;
use crate::ir::tensor::{Function, Module};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc grad`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// The kernel to differentiate.
    #[arg(long)]
    pub kernel: String,
    /// The inputs to differentiate with respect to, comma-separated (default: every float
    /// input).
    #[arg(long, value_delimiter = ',')]
    pub wrt: Vec<String>,
    /// The derived kernel's name (default: K_grad).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the derived kernel as tensor IR instead of .ein source.
    #[arg(long)]
    pub ir: bool,
}

/// Runs `einc grad`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let module = match super::load_module(&args.file, color) {
        Ok(module) => module,
        Err(status) => return status,
    };
    match derive(&module, &args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => super::fail(message),
    }
}

/// The derived kernel as the text `einc grad` prints.
fn derive(module: &Module, args: &Args) -> Result<String, String> {
    let func = module
        .func(&args.kernel)
        .ok_or_else(|| super::unknown_kernel(module, &args.kernel))?;
    let wrt = wrt_names(func, &args.wrt);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}_grad", args.kernel));
    let grad = autodiff::grad_function(module, func, &wrt, &name)
        .map_err(|e| format!("cannot differentiate `{}`: {e}", args.kernel))?;
    if args.ir {
        let alone = Module {
            dims: module.dims.clone(),
            funcs: vec![autodiff::tidy(&grad)],
        };
        return Ok(print_module(&alone));
    }
    to_ein::to_ein_source(module, &grad).map_err(|e| e.to_string())
}

/// The `--wrt` names, or every float parameter of `func` when none are given.
pub(crate) fn wrt_names<'a>(func: &'a Function, given: &'a [String]) -> Vec<&'a str> {
    if given.is_empty() {
        func.params
            .iter()
            .map(|&p| func.value(p))
            .filter(|v| v.ty.dtype.is_float())
            .map(|v| v.name.as_str())
            .collect()
    } else {
        given.iter().map(String::as_str).collect()
    }
}
