//! `einc gradcheck FILE --kernel K [--wrt A,B] [--tol 1e-6]`: compares the derived gradient of
//! K with central finite differences in f64 on random inputs (see
//! [`crate::autodiff::gradcheck`]) and reports the maximum relative error per `wrt` input;
//! exit 0 when every error is below the tolerance, 1 otherwise.

use crate::autodiff::gradcheck::{gradcheck, CheckOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc gradcheck`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// The kernel to check (default: the file's only kernel).
    #[arg(long)]
    pub kernel: Option<String>,
    /// The inputs to check, comma-separated (default: every float input).
    #[arg(long, value_delimiter = ',')]
    pub wrt: Vec<String>,
    /// The largest relative error accepted.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Sizes of symbolic dims as NAME=SIZE, comma-separated (default: 2, 3, 4, 2, ... in
    /// declaration order).
    #[arg(long, value_delimiter = ',')]
    pub dims: Vec<String>,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs `einc gradcheck`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let module = match super::load_module(&args.file, color) {
        Ok(module) => module,
        Err(status) => return status,
    };
    let func = match super::pick_kernel(&module, args.kernel.as_deref()) {
        Ok(func) => func,
        Err(message) => return super::fail(message),
    };
    let kernel = func.name.clone();
    let dims = match parse_dims(&args.dims) {
        Ok(dims) => dims,
        Err(message) => return super::fail(message),
    };
    let wrt = super::grad::wrt_names(func, &args.wrt);
    let options = CheckOptions {
        dims,
        seed: args.seed,
    };
    let report = match gradcheck(&module, &kernel, Some(&wrt), &options) {
        Ok(report) => report,
        Err(e) => return super::fail(format!("gradcheck of `{kernel}`: {e}")),
    };
    let checks = report.tensors;
    let dims: Vec<String> = report
        .dims
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    println!(
        "gradcheck {} in f64 (dims {}, seed {}, tolerance {:e}):",
        kernel,
        dims.join(", "),
        args.seed,
        args.tol
    );
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0) + 1;
    let mut ok = true;
    for c in &checks {
        let pass = c.max_rel_error < args.tol;
        ok &= pass;
        println!(
            "  d{:<width$} max relative error {:.2e} over {} elements  {}",
            c.name,
            c.max_rel_error,
            c.elements,
            if pass { "ok" } else { "FAILED" }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `NAME=SIZE` pairs.
fn parse_dims(specs: &[String]) -> Result<Vec<(String, u64)>, String> {
    specs
        .iter()
        .map(|spec| {
            let (name, size) = spec
                .split_once('=')
                .ok_or_else(|| format!("dim `{spec}` is not of the form NAME=SIZE (e.g. T=4)"))?;
            let size: u64 = size
                .parse()
                .map_err(|_| format!("dim `{name}`: `{size}` is not a size"))?;
            Ok((name.to_string(), size))
        })
        .collect()
}
