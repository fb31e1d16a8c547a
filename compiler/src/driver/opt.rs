//! `einc opt FILE --passes=...`: reads IR text at the tensor or loop level, runs a pipeline and
//! prints the result, like `mlir-opt`, so that any stage of a `--print-after-all` dump can be
//! reproduced and any pass run on hand-written IR.

use super::ir::{run_and_print, PipelineArgs};
use crate::passes::{Ir, Level, Pipeline};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc opt`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The IR file: `.tir` is tensor IR, `.lir` loop IR; otherwise the level is detected.
    pub file: PathBuf,
    /// The pipeline and what to print (no passes by default: the IR is verified and reprinted).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Runs `einc opt`.
pub fn run(args: Args) -> ExitCode {
    let file = match super::read_source(&args.file) {
        Ok(file) => file,
        Err(e) => return super::fail(e),
    };
    let level = match args.file.extension().and_then(|e| e.to_str()) {
        Some("tir") => Some(Level::Tensor),
        Some("lir") => Some(Level::Loop),
        _ => None,
    };
    let ir = match Ir::parse(&file.text, level) {
        Ok(ir) => ir,
        // A known level's error is `line:col: message`; a detection failure is a sentence.
        Err(e) if level.is_some() => return super::fail(format!("{}:{e}", file.name)),
        Err(e) => return super::fail(format!("{}: {e}", file.name)),
    };
    let p = &args.pipeline;
    let pipeline = match Pipeline::parse(p.passes.as_deref().unwrap_or_default()) {
        Ok(pipeline) => pipeline,
        Err(e) => return super::fail(e),
    };
    run_and_print(ir, &pipeline, p, p.level.map(Level::from), false)
}
