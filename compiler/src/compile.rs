//! The one compiler pipeline. [`compile`] takes checked tensor IR to loop IR ready for code
//! generation, running the pass list of the optimisation level; the lists are written out
//! below, top to bottom, like Halide's `Lower.cpp`. Everything that compiles goes through
//! here: the JIT (`api::Program`, `Kernel::specialize`, `einc run`, `einc eval`), `einc build`,
//! and the dumps of `einc ir` (which adds instrumentation, may stop at the tensor level, and may
//! go on to print Cranelift IR). So `einc ir FILE --print-after-all` shows every pass that
//! `einc build` and the JIT run, in order, on the same IR.
//!
//! A pass runs by default only where this file lists it: the registry
//! (`passes/registry.rs`) names passes, it does not order them.

use crate::codegen::{Target, TargetCpu, UkernelIsa, UkernelPlan};
use crate::ir::{loops, tensor};
use crate::passes::{registry, run_pipeline, Dumps, Ir, Level, PassContext, Pipeline, RunOptions};
use crate::paths::PathOptions;
use std::collections::BTreeMap;
use std::fmt;

/// An optimisation level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OptLevel {
    /// `-O0`: the reference. Tensor IR is lowered as checked, one naive loop nest per op.
    O0,
    /// `-O1`: the tensor-level clean-ups that keep every value bit for bit (builtins removed,
    /// constants folded, twins merged, dead code dropped); no planning.
    O1,
    /// `-O2`, the default: the full pipeline.
    #[default]
    O2,
}

impl OptLevel {
    /// Every level, lowest first.
    pub const ALL: [OptLevel; 3] = [OptLevel::O0, OptLevel::O1, OptLevel::O2];

    /// The level's number as `-O` spells it (`0`, `1`, `2`).
    pub fn name(self) -> &'static str {
        match self {
            OptLevel::O0 => "0",
            OptLevel::O1 => "1",
            OptLevel::O2 => "2",
        }
    }

    /// Parses `0`, `1` or `2`.
    pub fn parse(s: &str) -> Result<OptLevel, String> {
        OptLevel::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown optimisation level `{s}`: expected 0, 1 or 2"))
    }
}

/// How to compile a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Which pass list runs.
    pub level: OptLevel,
    /// The machine code is generated for.
    pub target: Target,
    /// Extents of symbolic dims known when compiling (fixed by specialisation, or hints such as
    /// `einc build --dims T=512`). Passes use them to choose between equivalent programs; the
    /// compiled code still takes any extent. Each must name a symbolic dim of the module (see
    /// [`check_dims`]).
    pub dims: BTreeMap<String, u64>,
    /// How `contraction-path` searches (`--optimize`) and the largest intermediate it may
    /// create (`--memory-limit`).
    pub paths: PathOptions,
    /// A pipeline string that replaces the level's pass list (the tensor and loop passes,
    /// `lower-to-loops` included; code generation is not a pass here).
    pub pipeline: Option<String>,
    /// Passes left out of the level's list, by name (for tests that check each pass's
    /// contribution; ignored with [`CompileOptions::pipeline`]).
    pub disabled: Vec<String>,
    /// The micro-kernels to use (`--ukernels`): `None` for the widest the target runs
    /// ([`crate::codegen::wide::resolve`]); forcing one lets tests run each path on one
    /// machine. The schedule's register tiles follow the choice.
    pub ukernels: Option<UkernelIsa>,
    /// The x86-64 CPU level code is generated for (`einc build --target-cpu`): `native` is the
    /// target's own features; the JIT always compiles for the host's.
    pub cpu: TargetCpu,
}

impl CompileOptions {
    /// The micro-kernels these options compile with ([`crate::codegen::wide::plan`]), or why
    /// the target cannot run the ones forced.
    pub fn ukernel_plan(&self) -> Result<UkernelPlan, CompileError> {
        crate::codegen::wide::plan(&self.target, self.cpu, self.ukernels)
            .map_err(|e| CompileError::Options(e.to_string()))
    }
}

impl Default for CompileOptions {
    /// `-O2` for the host, no extents known.
    fn default() -> CompileOptions {
        CompileOptions {
            level: OptLevel::default(),
            target: Target::Host,
            dims: BTreeMap::new(),
            paths: PathOptions::default(),
            pipeline: None,
            disabled: Vec::new(),
            ukernels: None,
            cpu: TargetCpu::Native,
        }
    }
}

/// The pass list of each level, from checked tensor IR to loop IR, one pass per line in the
/// order they run (with their options spelled as a pipeline string would). Public so that the
/// differential tests can leave each pass out in turn (`testkit::differential::variants`).
pub fn pass_list(opts: &CompileOptions) -> Vec<String> {
    let paths = format!(
        "contraction-path{{optimize={},memory-limit={}}}",
        opts.paths.algorithm.name(),
        opts.paths
            .memory_limit
            .map_or("none".to_string(), |l| l.to_string())
    );
    let list: Vec<&str> = match opts.level {
        OptLevel::O0 => vec![
            // The reference: each op becomes its naive loop nest, deltas and eps evaluated per
            // point (schedules, even annotated ones, are ignored). Every other level is tested
            // against this one.
            "lower-to-loops{schedules=ignore}",
        ],
        OptLevel::O1 => vec![
            // Clean-ups that keep every value bit for bit: index-notation builtins out,
            // constants folded, twins merged, dead code dropped.
            "delta-elim",
            "eps-expand",
            "const-fold",
            "cse",
            "dce",
            // No planning: naive nests, whatever the ops' schedules say.
            "lower-to-loops{schedules=ignore}",
        ],
        OptLevel::O2 => vec![
            // ---- tensor level ----
            // Index-notation builtins first, so that later passes see plain products.
            "delta-elim",
            "eps-expand",
            // Constants (`sqrt(dim(K))` with K fixed, `x * 1`) before anything compares bodies.
            "const-fold",
            // Factors that do not vary with the summed indices out of sums (`Q·Kᵀ / sqrt(K)`
            // becomes a contraction and a scale), so that products are pure.
            "canonicalize",
            // N-ary products into pairwise contractions, single-operand sums first.
            &paths,
            // Twins merged, and map bodies recomputed inside later ops read instead (a derived
            // gradient reads its forward values).
            "cse",
            // Elementwise maps into the ops that read them (fewer passes over memory), once
            // the contractions are settled.
            "fuse",
            // Each op's schedule: GEMM tiles for contractions, vectorised nests for the other
            // contraction shapes, annotations completed (docs/schedules.md).
            "schedule",
            // Attention chains (scores, scale/mask maps, row softmax, values) as one blocked
            // nest with an online softmax: the T x T scores are never stored.
            "flash-attention",
            "dce",
            // ---- tensor -> loops (obeys the schedules) ----
            "lower-to-loops",
            // ---- loop level ----
            // Unrolling first: its copies give the later passes more to work on.
            "unroll",
            // Invariant arithmetic out of loops, so that what a loop does per iteration shows.
            "licm",
            // Loads and stores of sequential loops through advancing pointers: Cranelift
            // recomputes every address otherwise.
            "strength-reduce",
        ],
    };
    list.into_iter()
        .filter(|item| !opts.disabled.iter().any(|d| d == item_name(item)))
        .map(str::to_string)
        .collect()
}

/// The pass name of a pipeline item (`contraction-path{optimize=dp}` → `contraction-path`).
fn item_name(item: &str) -> &str {
    item.split('{').next().unwrap_or(item)
}

/// Why a module could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// Known extents that do not fit the module ([`check_dims`]).
    Dims(Vec<DimProblem>),
    /// The options do not make a pipeline: the pipeline string does not parse, its levels do
    /// not chain, or the target does not fit the use (the JIT runs on the host only).
    Options(String),
    /// A pass failed (the message names it).
    Pass(String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Dims(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            CompileError::Options(m) | CompileError::Pass(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CompileError {}

/// A known extent that does not fit the module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimProblem {
    /// No dim of the module has this name.
    Unknown {
        /// The name given.
        dim: String,
        /// The module's dims, in declaration order.
        dims: Vec<String>,
    },
    /// The module fixes the dim to another extent.
    Contradicts {
        /// The dim.
        dim: String,
        /// The extent given.
        given: u64,
        /// The extent the module fixes.
        fixed: u64,
    },
}

impl fmt::Display for DimProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DimProblem::Unknown { dim, dims } if dims.is_empty() => {
                write!(f, "no dim `{dim}`: the module declares no dims")
            }
            DimProblem::Unknown { dim, dims } => write!(
                f,
                "no dim `{dim}`; the module declares: {}",
                dims.join(", ")
            ),
            DimProblem::Contradicts { dim, given, fixed } => write!(
                f,
                "dim `{dim}` is fixed to {fixed}, so it cannot be {given}"
            ),
        }
    }
}

/// Checks that every known extent names a dim of `module` and agrees with the extent the
/// module fixes it to (a fixed dim may be repeated with its own value). Returns every problem.
pub fn check_dims(module: &tensor::Module, dims: &BTreeMap<String, u64>) -> Vec<DimProblem> {
    dims.iter()
        .filter_map(
            |(name, &given)| match module.dims.iter().find(|d| &d.name == name) {
                None => Some(DimProblem::Unknown {
                    dim: name.clone(),
                    dims: module.dims.iter().map(|d| d.name.clone()).collect(),
                }),
                Some(d) => {
                    d.value
                        .filter(|&fixed| fixed != given)
                        .map(|fixed| DimProblem::Contradicts {
                            dim: name.clone(),
                            given,
                            fixed,
                        })
                }
            },
        )
        .collect()
}

/// The pipeline that `opts` runs on a module, down to IR at level `until`: the level's pass
/// list (or the options' pipeline string) cut before `lower-to-loops` for tensor IR, followed
/// by `emit-clif` for Cranelift IR. A pipeline string is used as given: it must itself end at
/// `until` (the caller checks the level of the result).
pub fn pipeline(opts: &CompileOptions, until: Level) -> Result<Pipeline, CompileError> {
    let ctx = PassContext {
        dims: opts.dims.clone(),
        target: opts.target.clone(),
        ukernels: opts.ukernel_plan()?.isa,
    };
    let text = match &opts.pipeline {
        Some(text) => text.clone(),
        None => {
            let mut names = pass_list(opts);
            match until {
                Level::Tensor => names.retain(|item| {
                    registry::lookup(item_name(item)).is_some_and(|p| p.output == Level::Tensor)
                }),
                Level::Loop => {}
                Level::Clif => names.push("emit-clif".into()),
            }
            names.join(",")
        }
    };
    Pipeline::parse_with(&text, &ctx).map_err(CompileError::Options)
}

/// Runs the pipeline of `opts` on `module` down to `until`, with the instrumentation of
/// `run` writing to `dumps` (`einc ir`). The known extents are checked first.
pub fn run(
    module: tensor::Module,
    opts: &CompileOptions,
    until: Level,
    run: &RunOptions,
    dumps: &mut Dumps,
) -> Result<Ir, CompileError> {
    let problems = check_dims(&module, &opts.dims);
    if !problems.is_empty() {
        return Err(CompileError::Dims(problems));
    }
    let pipeline = pipeline(opts, until)?;
    run_pipeline(&pipeline, Ir::Tensor(module), run, dumps).map_err(CompileError::Pass)
}

/// Compiles checked tensor IR to loop IR with the pass list of `opts` (verifying after every
/// pass in debug builds). Code generation (JIT or object file) takes it from there.
pub fn compile(
    module: &tensor::Module,
    opts: &CompileOptions,
) -> Result<loops::Module, CompileError> {
    let ir = run(
        module.clone(),
        opts,
        Level::Loop,
        &RunOptions::default(),
        &mut Dumps::default(),
    )?;
    match ir {
        Ir::Loop(m) => Ok(m),
        other => Err(CompileError::Options(format!(
            "the pipeline ends at {} level, but code generation needs loop IR",
            other.level()
        ))),
    }
}

#[cfg(test)]
mod tests;
