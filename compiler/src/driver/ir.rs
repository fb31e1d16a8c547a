//! `einc ir FILE [--kernel K]`: prints the tensor IR of a checked `.ein` file.

use crate::ir::tensor::printer;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc ir`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// Print only this kernel.
    #[arg(long)]
    pub kernel: Option<String>,
}

/// Runs `einc ir`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let module = match super::load_module(&args.file, color) {
        Ok(module) => module,
        Err(status) => return status,
    };
    match &args.kernel {
        None => print!("{}", printer::print_module(&module)),
        Some(name) => match module.func(name) {
            Some(func) => print!("{}", printer::print_function(&module, func)),
            None => return super::fail(super::unknown_kernel(&module, name)),
        },
    }
    ExitCode::SUCCESS
}
