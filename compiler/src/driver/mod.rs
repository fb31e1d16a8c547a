//! The command-line driver: argument parsing (clap) and one module per subcommand. Each
//! subcommand reads its inputs, runs the pipeline, renders diagnostics and returns an exit
//! status: 0 on success, 1 when the input is rejected, 2 for a malformed command line.

mod build;
mod check;
mod compile_args;
mod eval;
mod explain;
mod grad;
mod gradcheck;
mod ir;
mod json;
mod opt;
mod run;

use crate::diag::{render, SourceFile};
use crate::ir::tensor::{Function, Module};
use clap::{Parser, Subcommand, ValueEnum};
use einc_runtime::Array;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// einc compiles tensor programs written in Einstein index notation.
///
/// Input is a `.ein` file (kernels written in index notation) or a numpy-style einsum
/// subscripts string such as "bhid,bhjd->bhij".
#[derive(Parser, Debug)]
#[command(name = "einc", version, about, long_about = None)]
pub struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// When diagnostics use ANSI colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When standard error is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour output written to standard error.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Auto => std::io::stderr().is_terminal(),
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        }
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a .ein file and print its diagnostics; exit 0 when it has no errors.
    Check(check::Args),
    /// Explain an einsum: for each index, free or dummy, which operand axes carry it and its
    /// extent; the result shape; the multiply-add count.
    ///
    /// TARGET is a subscripts string ("ij,jk->ik", shapes from --shapes) or, when it ends in
    /// `.ein` or --kernel is given, a file whose kernel K is explained statement by statement.
    Explain(explain::Args),
    /// Print the IR of a .ein file after a pass pipeline (all kernels, or one with --kernel).
    ///
    /// By default the tensor-level passes run and tensor IR is printed; `--level=loop` lowers
    /// to loops. `--print-after-all`, `--print-before=PASS`, `--print-after=PASS`,
    /// `--print-changed` and `--stop-after=PASS` show the pipeline at work.
    Ir(ir::Args),
    /// Read tensor IR (.tir) or loop IR (.lir), run `--passes=...` and print the result, like
    /// mlir-opt: any stage of a `--print-after-all` dump can be reproduced this way.
    Opt(opt::Args),
    /// Evaluate a numpy einsum on .npy files: `einc eval "ij,jk->ik" A.npy B.npy -o C.npy`.
    ///
    /// Semantics, output dtype and shape are numpy.einsum's. The subscripts may be empty,
    /// contain spaces or start with `-` (e.g. `->`); some subscripts take no input files.
    Eval(eval::Args),
    /// Run a kernel of a .ein file on .npy inputs and write one OUTNAME.npy per output.
    ///
    /// Dims are bound from the input shapes: `einc run attention.ein --kernel attention
    /// X=x.npy WQ=wq.npy WK=wk.npy WV=wv.npy --out-dir out/`.
    Run(run::Args),
    /// Derive the gradient kernel of a kernel and print it as .ein source:
    /// `einc grad attention.ein --kernel attention --wrt WQ,WK,WV`.
    Grad(grad::Args),
    /// Check a kernel's derived gradient against central finite differences (f64, random
    /// inputs); exit 0 when every relative error is below --tol.
    Gradcheck(gradcheck::Args),
    /// Compile kernels ahead of time into a shared library and its C header:
    /// `einc build attention.ein -o out/` writes out/libattention.so and out/attention.h.
    ///
    /// The library exports the entry points of docs/abi.md and depends only on libc and libm;
    /// it is linked by $CC, else `cc` (or aarch64-linux-gnu-gcc for --target
    /// aarch64-unknown-linux-gnu on another machine). `--emit obj|asm|header` writes just the
    /// object file, the disassembly or the header.
    Build(build::Args),
}

/// Stack size of the thread that runs a command. The parser and semantic analysis bound their
/// recursion depth; this leaves them a wide margin whatever the platform's main-thread stack.
const STACK_BYTES: usize = 256 << 20;

/// Entry point of the `einc` binary.
pub fn main() -> ExitCode {
    match std::thread::Builder::new()
        .name("einc".into())
        .stack_size(STACK_BYTES)
        .spawn(run_cli)
        .map(std::thread::JoinHandle::join)
    {
        Ok(Ok(status)) => status,
        // The panic message has already been printed by the panic hook; keep Rust's status.
        Ok(Err(_)) => ExitCode::from(101),
        Err(e) => fail(format!("cannot start the compiler thread: {e}")),
    }
}

fn run_cli() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let color = cli.color.enabled();
    match cli.command {
        Command::Check(args) => check::run(args, color),
        Command::Explain(args) => explain::run(args, color),
        Command::Ir(args) => ir::run(args, color),
        Command::Opt(args) => opt::run(args),
        Command::Eval(args) => eval::run(args, color),
        Command::Run(args) => run::run(args, color),
        Command::Grad(args) => grad::run(args, color),
        Command::Gradcheck(args) => gradcheck::run(args, color),
        Command::Build(args) => build::run(args, color),
    }
}

/// Prints `einc: error: {message}` to standard error and returns exit status 1.
pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("einc: error: {message}");
    ExitCode::from(1)
}

/// A path argument shown in messages as the user wrote it.
pub(crate) fn display_path(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Reads a source file; the error names the file and, for text that is not UTF-8, the line and
/// column of the first bad byte.
pub(crate) fn read_source(path: &Path) -> Result<SourceFile, String> {
    let shown = display_path(path);
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(shown, text)),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(e.as_bytes().get(..offset).unwrap_or_default())
                .into_owned();
            let (line, col) = SourceFile::new("", valid).line_col(u32::MAX);
            Err(format!(
                "{shown}:{line}:{col}: the file is not valid UTF-8 (bad byte at offset {offset})"
            ))
        }
    }
}

/// Reads, parses and checks a `.ein` file, printing its diagnostics (warnings included) to
/// standard error. Returns the checked module, or exit status 1 when there were errors.
pub(crate) fn load_module(path: &Path, color: bool) -> Result<Module, ExitCode> {
    load_module_and_source(path, color).map(|(module, _)| module)
}

/// [`load_module`], also returning the source (for diagnostics that point into it later).
pub(crate) fn load_module_and_source(
    path: &Path,
    color: bool,
) -> Result<(Module, SourceFile), ExitCode> {
    let file = read_source(path).map_err(fail)?;
    let (module, diags) = crate::sema::compile_source(&file.text);
    eprint!("{}", render(&diags, &file, color));
    match module {
        Some(module) if !diags.iter().any(|d| d.is_error()) => Ok((module, file)),
        _ => Err(ExitCode::from(1)),
    }
}

/// The message for a `--kernel` that names no kernel of the module, listing the ones it has.
pub(crate) fn unknown_kernel(module: &Module, name: &str) -> String {
    let names: Vec<&str> = module.funcs.iter().map(|f| f.name.as_str()).collect();
    if names.is_empty() {
        format!("no kernel `{name}`: the file defines no kernels")
    } else {
        format!("no kernel `{name}`; the file defines: {}", names.join(", "))
    }
}

/// The kernel named `name`, or, when no name is given, the file's only kernel (`--kernel` may
/// be left out when there is just one).
pub(crate) fn pick_kernel<'m>(
    module: &'m Module,
    name: Option<&str>,
) -> Result<&'m Function, String> {
    if let Some(name) = name {
        return module
            .func(name)
            .ok_or_else(|| unknown_kernel(module, name));
    }
    match module.funcs.as_slice() {
        [only] => Ok(only),
        [] => Err("the file defines no kernels".to_string()),
        funcs => {
            let names: Vec<&str> = funcs.iter().map(|f| f.name.as_str()).collect();
            Err(format!(
                "the file defines {} kernels ({}): name one with --kernel",
                funcs.len(),
                names.join(", ")
            ))
        }
    }
}

/// Writes each array to its path as `.npy`, all or nothing: every array goes to a temporary
/// file beside its destination first, and only when all are written are they renamed into
/// place, so a failure never leaves partial or stale-looking outputs behind.
pub(crate) fn write_outputs(outputs: &[(PathBuf, &Array)]) -> Result<(), String> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    let mut result = Ok(());
    for (path, array) in outputs {
        let shown = display_path(path);
        let Some(name) = path.file_name() else {
            result = Err(format!("{shown}: the output path names no file"));
            break;
        };
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = crate::npy::write_npy(&tmp, array);
        staged.push((tmp, path));
        if let Err(e) = written {
            result = Err(format!("{shown}: {e}"));
            break;
        }
    }
    if result.is_ok() {
        for (tmp, path) in &staged {
            if let Err(e) = std::fs::rename(tmp, path) {
                result = Err(format!(
                    "{}: cannot replace the file: {e}",
                    display_path(path)
                ));
                break;
            }
        }
    }
    if result.is_err() {
        for (tmp, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
    }
    result
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `bytes` to a fresh file in a per-process temporary directory.
    pub(crate) fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("einc-driver-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = read_source(Path::new("/nonexistent/k.ein")).unwrap_err();
        assert!(err.starts_with("cannot read /nonexistent/k.ein: "), "{err}");
    }

    #[test]
    fn non_utf8_text_is_located_by_line_and_column() {
        let path = temp_file("bad.ein", b"dims N\n# caf\xc3\xa9 \xff\n");
        let err = read_source(&path).unwrap_err();
        let shown = path.display();
        // Line 2: `# café ` is 7 characters, so the bad byte is in column 8 (byte offset 15).
        assert_eq!(
            err,
            format!("{shown}:2:8: the file is not valid UTF-8 (bad byte at offset 15)")
        );
    }

    #[test]
    fn outputs_are_written_all_or_nothing() {
        let dir = temp_file("probe", b"").with_file_name("outs");
        std::fs::create_dir_all(&dir).unwrap();
        let a = Array::zeros(einc_runtime::DType::F32, &[2]).unwrap();
        let good = dir.join("A.npy");
        let bad = dir.join("missing-dir").join("B.npy");
        let err = write_outputs(&[(good.clone(), &a), (bad, &a)]).unwrap_err();
        assert!(err.contains("missing-dir/B.npy"), "{err}");
        assert!(
            !good.exists(),
            "a failed call must not leave the first output behind"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "temporary files were left: {leftovers:?}"
        );
        write_outputs(&[(good.clone(), &a)]).unwrap();
        assert_eq!(crate::npy::read_npy(&good).unwrap(), a);
    }
}
