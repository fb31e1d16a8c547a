//! `einc grad FILE [--kernel K] [--wrt A,B] [--jacobian | --hessian]`: derives the gradient
//! kernel of K (or its whole Jacobian or Hessian) and prints it as readable `.ein` source
//! (deltas eliminated, temporaries fused, bodies in closed form), or as tensor IR with `--ir`.
//! A result that is symmetric (a Hessian of a scalar, or a symmetry the derived op shows) gets
//! a `#` note after the kernel.

use crate::autodiff::{self, symmetry, to_ein, GradError};
use crate::ir::tensor::printer::print_module;
use crate::ir::tensor::{Function, Module};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc grad`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// The kernel to differentiate (default: the file's only kernel).
    #[arg(long)]
    pub kernel: Option<String>,
    /// The inputs to differentiate with respect to, comma-separated (default: every float
    /// input).
    #[arg(long, value_delimiter = ',')]
    pub wrt: Vec<String>,
    /// The derived kernel's name (default: K_grad, K_jacobian or K_hessian).
    #[arg(long)]
    pub name: Option<String>,
    /// Derive the whole Jacobian of the kernel's one output (`dy_dx[i, j] = ∂y[i]/∂x[j]`).
    #[arg(long, conflicts_with = "hessian")]
    pub jacobian: bool,
    /// Derive the Hessian of the kernel's one scalar output with respect to one input
    /// (`--wrt x`).
    #[arg(long)]
    pub hessian: bool,
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

type Derive = fn(&Module, &Function, &[&str], &str) -> Result<Function, GradError>;

/// The derived kernel as the text `einc grad` prints.
fn derive(module: &Module, args: &Args) -> Result<String, String> {
    let func = super::pick_kernel(module, args.kernel.as_deref())?;
    let wrt = wrt_names(func, &args.wrt);
    let (what, derive): (&str, Derive) = if args.hessian {
        ("hessian", autodiff::hessian_function)
    } else if args.jacobian {
        ("jacobian", autodiff::jacobian_function)
    } else {
        ("grad", autodiff::grad_function)
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}_{what}", func.name));
    let derived = derive(module, func, &wrt, &name)
        .map_err(|e| format!("cannot differentiate `{}`: {e}", func.name))?;
    let tidied = autodiff::tidy(&derived);
    let mut text = if args.ir {
        print_module(&Module {
            dims: module.dims.clone(),
            funcs: vec![tidied.clone()],
        })
    } else {
        to_ein::to_ein_source(module, &derived).map_err(|e| e.to_string())?
    };
    let hessian_rank = args.hessian.then(|| {
        func.params
            .iter()
            .find(|&&p| wrt.contains(&func.value(p).name.as_str()))
            .map_or(0, |&p| func.value(p).ty.shape.len())
    });
    for note in symmetry::notes(&tidied, hessian_rank) {
        text.push_str(&format!("# {note}\n"));
    }
    Ok(text)
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
