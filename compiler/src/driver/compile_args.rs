//! The flags that choose how a module is compiled, shared by the subcommands that compile
//! (`ir`, `build`, `run`, `eval`): `-O LEVEL`, `--dims T=512,K=64` (extents to plan for), and
//! the path search's `--optimize` and `--memory-limit` ([`PathArgs`], which `explain` takes
//! too).
//!
//! A bad `--dims` entry is reported like a source error, against the argument's text (shown as
//! the file `--dims`) with a caret under the entry; an extent that contradicts a dim the
//! `.ein` file fixes also points at the declaration in the file.

use crate::codegen::UkernelIsa;
use crate::compile::{check_dims, CompileOptions, DimProblem, OptLevel};
use crate::diag::{render, Diagnostic, SourceFile, Span};
use crate::ir::tensor::Module;
use crate::paths::{Algorithm, PathOptions};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// `-O` and `--dims`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct CompileArgs {
    /// The optimisation level: 0 (the naive reference lowering), 1 (tensor clean-ups only) or
    /// 2 (the full pipeline; the default). docs/passes.md lists each level's passes.
    #[arg(short = 'O', value_name = "LEVEL", value_parser = OptLevel::parse)]
    pub opt_level: Option<OptLevel>,
    /// Extents of symbolic dims to plan for, e.g. `T=512,K=64`: the pipeline chooses
    /// contraction orders for them, and the code still runs for any extent.
    #[arg(long, value_name = "DIM=N,...")]
    pub dims: Option<String>,
    /// The contraction path search.
    #[command(flatten)]
    pub paths: PathArgs,
    /// The micro-kernels of contractions: cranelift (128-bit vectors), avx2 (256-bit machine
    /// code, x86-64 with AVX2 and FMA) or avx512 (512-bit machine code, x86-64 with AVX-512
    /// F/DQ/BW/VL). Default: the widest the target runs.
    #[arg(long, value_name = "ISA", value_parser = parse_ukernels)]
    pub ukernels: Option<UkernelIsa>,
}

/// `--ukernels`.
fn parse_ukernels(s: &str) -> Result<UkernelIsa, String> {
    UkernelIsa::parse(s).ok_or_else(|| {
        let names: Vec<&str> = UkernelIsa::ALL.iter().map(|i| i.name()).collect();
        format!(
            "unknown micro-kernels `{s}`: expected {}",
            names.join(" or ")
        )
    })
}

/// `--optimize` and `--memory-limit`: the options of the `contraction-path` pass.
#[derive(clap::Args, Debug, Default, Clone, Copy)]
pub struct PathArgs {
    /// The contraction path search: auto (exact where affordable, greedy beyond), optimal,
    /// dp or greedy.
    #[arg(long, value_enum, default_value_t = OptimizeArg::Auto)]
    pub optimize: OptimizeArg,
    /// The largest intermediate a contraction path may create, in elements.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_limit: Option<u64>,
}

impl PathArgs {
    /// The path options these flags give.
    pub fn options(&self) -> PathOptions {
        PathOptions {
            algorithm: self.optimize.into(),
            memory_limit: self.memory_limit.map(u128::from),
        }
    }
}

/// `--optimize`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizeArg {
    /// Exact where affordable, greedy beyond.
    #[default]
    Auto,
    /// Depth-first search over every pairwise step.
    Optimal,
    /// Dynamic programming over connected subsets.
    Dp,
    /// Most memory removed first.
    Greedy,
}

impl From<OptimizeArg> for Algorithm {
    fn from(a: OptimizeArg) -> Algorithm {
        match a {
            OptimizeArg::Auto => Algorithm::Auto,
            OptimizeArg::Optimal => Algorithm::Optimal,
            OptimizeArg::Dp => Algorithm::Dp,
            OptimizeArg::Greedy => Algorithm::Greedy,
        }
    }
}

/// One `DIM=N` entry of `--dims`, with its byte range in the argument.
#[derive(Debug)]
struct Entry {
    dim: String,
    value: u64,
    span: Span,
}

impl CompileArgs {
    /// The compile options for `module` (read from `file`), or the exit status after printing
    /// located diagnostics for a bad `--dims`.
    pub fn options(
        &self,
        module: &Module,
        file: Option<&SourceFile>,
        color: bool,
    ) -> Result<CompileOptions, ExitCode> {
        let mut opts = CompileOptions {
            level: self.opt_level.unwrap_or_default(),
            paths: self.paths.options(),
            ukernels: self.ukernels,
            ..CompileOptions::default()
        };
        let Some(text) = &self.dims else {
            return Ok(opts);
        };
        let arg = SourceFile::new("--dims", text.as_str());
        let entries = parse_dims(text).map_err(|d| report(&[*d], &arg, color))?;
        let mut diags = Vec::new();
        let mut notes = Vec::new();
        for e in &entries {
            if let Some(prev) = entries
                .iter()
                .take_while(|p| !std::ptr::eq(*p, e))
                .find(|p| p.dim == e.dim)
            {
                diags.push(
                    Diagnostic::error(e.span, format!("dim `{}` is given twice", e.dim))
                        .with_label("given again here")
                        .with_secondary(prev.span, "first given here"),
                );
                continue;
            }
            let one = BTreeMap::from([(e.dim.clone(), e.value)]);
            for problem in check_dims(module, &one) {
                let d = Diagnostic::error(e.span, problem.to_string());
                diags.push(match &problem {
                    DimProblem::Unknown { .. } => d.with_label("not a dim of the file"),
                    DimProblem::Contradicts { fixed, .. } => {
                        if let Some(span) = file.and_then(|f| fixed_dim_span(f, &e.dim)) {
                            notes.push(
                                Diagnostic::note(span, format!("`{}` is fixed here", e.dim))
                                    .with_label(format!("fixed to {fixed}")),
                            );
                        }
                        d.with_label("contradicts the file")
                            .with_help("leave the dim out of --dims, or give its fixed extent")
                    }
                });
            }
            opts.dims.insert(e.dim.clone(), e.value);
        }
        if diags.is_empty() {
            return Ok(opts);
        }
        let status = report(&diags, &arg, color);
        if let Some(f) = file {
            eprint!("{}", render(&notes, f, color));
        }
        Err(status)
    }
}

/// Prints `diags` against `file`; returns exit status 1.
fn report(diags: &[Diagnostic], file: &SourceFile, color: bool) -> ExitCode {
    eprint!("{}", render(diags, file, color));
    ExitCode::from(1)
}

/// Parses `T=512,K=64` (spaces around entries allowed; an empty argument gives no entries).
fn parse_dims(text: &str) -> Result<Vec<Entry>, Box<Diagnostic>> {
    let mut entries = Vec::new();
    let mut start = 0usize;
    for item in text.split(',') {
        let end = start + item.len();
        let lead = item.len() - item.trim_start().len();
        let trimmed = item.trim();
        let span = Span::new(start + lead, start + lead + trimmed.len());
        start = end + 1;
        if trimmed.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(Box::new(
                Diagnostic::error(
                    Span::new(span.range().start, span.range().start),
                    "empty entry in --dims",
                )
                .with_help("write the extents as `T=512,K=64`"),
            ));
        }
        let bad = |message: &str| {
            Box::new(
                Diagnostic::error(span, message.to_string())
                    .with_label("expected DIM=N")
                    .with_help("write the extents as `T=512,K=64`"),
            )
        };
        let Some((dim, value)) = trimmed.split_once('=') else {
            return Err(bad("an entry of --dims is not of the form DIM=N"));
        };
        let (dim, value) = (dim.trim(), value.trim());
        if dim.is_empty() {
            return Err(bad("an entry of --dims names no dim"));
        }
        let value = value
            .parse::<u64>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| bad("the extent in --dims must be a positive integer"))?;
        entries.push(Entry {
            dim: dim.to_string(),
            value,
            span,
        });
    }
    Ok(entries)
}

/// Where `file` fixes `dim` (`= 3` in its `dims` declaration).
fn fixed_dim_span(file: &SourceFile, dim: &str) -> Option<Span> {
    let (program, _) = crate::syntax::parse(&file.text);
    program.items.iter().find_map(|item| match item {
        crate::syntax::ast::Item::Dims(decl) => decl.dims.iter().find_map(|d| {
            let (_, value_span) = d.value.as_ref()?;
            (d.name.name == dim).then(|| d.name.span.to(*value_span))
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_entries_are_parsed_with_their_spans() {
        let e = parse_dims(" T=512, K = 64").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].dim.as_str(), e[0].value), ("T", 512));
        assert_eq!(e[0].span.range(), 1..6);
        assert_eq!((e[1].dim.as_str(), e[1].value), ("K", 64));
        assert_eq!(e[1].span.range(), 8..14);
        assert!(parse_dims("").unwrap().is_empty());
    }

    #[test]
    fn bad_dims_entries_are_located() {
        let err = parse_dims("T=512,K").unwrap_err();
        assert_eq!(err.message, "an entry of --dims is not of the form DIM=N");
        assert_eq!(err.primary.span.range(), 6..7);
        let err = parse_dims("T=0").unwrap_err();
        assert_eq!(
            err.message,
            "the extent in --dims must be a positive integer"
        );
        let err = parse_dims("T=5,,K=2").unwrap_err();
        assert_eq!(err.message, "empty entry in --dims");
        assert_eq!(err.primary.span.range(), 4..4);
        assert!(parse_dims("=5").is_err());
        assert!(parse_dims("T=-5").is_err());
    }
}
