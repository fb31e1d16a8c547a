//! `einc explain SUBSCRIPTS [--shapes 3x4,4x5]` and `einc explain FILE --kernel K`: what an
//! einsum or a kernel computes and how einc plans it.
//!
//! For a subscripts string: a table of the indices (free or dummy, extent, the operand axes
//! that carry each), then the contraction path the `contraction-path` pass chooses, in the
//! manner of opt_einsum's `PathInfo`: per step its operands (numpy `einsum_path` positions),
//! subscripts, FLOPs and intermediate size; then the naive and optimised FLOP counts, the
//! speed-up and the largest intermediate. Without `--shapes` every extent is symbolic, named
//! after its label: FLOPs are shown as formulas and the path is chosen as if each unknown
//! extent were [`paths::ASSUMED_EXTENT`].
//!
//! For a kernel of a `.ein` file: the same for every operation, as the path pass sees them
//! (after the tensor passes before it), each with its class (contraction with its index
//! groups, map, reduction, row softmax); products of several factors get their path.
//!
//! `--optimize` and `--memory-limit` are the path pass's options; `--format json` prints one
//! JSON object (the fields are documented in `docs/passes.md`). The numbers are the cost model
//! of [`paths::cost`], which counts as opt_einsum does.

use super::compile_args::{CompileArgs, PathArgs};
use super::eval::show_einsum_error;
use super::json::Json;
use crate::analysis::{attention_chain, backward_group, classify_function, OpClass};
use crate::autodiff::symmetry;
use crate::compile::{self, CompileOptions, OptLevel};
use crate::ir::tensor::schedule::Schedule;
use crate::ir::tensor::{
    AxisMap, BinaryFn, Expr, Extent, Function, Generic, IndexId, Module, OpKind, ReduceKind,
    TensorType, ValueId,
};
use crate::passes::contraction_path::{product, Product};
use crate::passes::{Dumps, Ir, Level, RunOptions};
use crate::paths::{self, cost::Formula, PathOptions, Plan};
use crate::sema::einsum::{self, show_extent, show_shape, EinsumPlan};
use einc_runtime::DType;
use std::process::ExitCode;

/// Arguments of `einc explain`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A subscripts string, or a .ein file.
    #[arg(allow_hyphen_values = true)]
    pub target: String,
    /// Operand shapes for a subscripts string: `3x4,4x5` (an empty entry is a scalar).
    #[arg(long, allow_hyphen_values = true)]
    pub shapes: Option<String>,
    /// The kernel to explain when TARGET is a file.
    #[arg(long)]
    pub kernel: Option<String>,
    /// The path search and the memory limit.
    #[command(flatten)]
    pub paths: PathArgs,
    /// Text for people, or one JSON object.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Extents of a kernel's symbolic dims to plan for (`T=512,K=64`).
    #[arg(long, value_name = "DIM=N,...")]
    pub dims: Option<String>,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables.
    Text,
    /// One JSON object.
    Json,
}

/// Runs `einc explain`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let paths = args.paths.options();
    let explained = if args.target.ends_with(".ein") || args.kernel.is_some() {
        if args.shapes.is_some() {
            return super::fail(
                "--shapes applies to subscripts; a kernel's shapes come from its declaration",
            );
        }
        let (module, file) =
            match super::load_module_and_source(std::path::Path::new(&args.target), color) {
                Ok(loaded) => loaded,
                Err(status) => return status,
            };
        let func = match super::pick_kernel(&module, args.kernel.as_deref()) {
            Ok(func) => func,
            Err(message) => return super::fail(format!("explain {}: {message}", args.target)),
        };
        let single = Module {
            dims: module.dims.clone(),
            funcs: vec![func.clone()],
        };
        let dims_args = CompileArgs {
            opt_level: None,
            dims: args.dims.clone(),
            paths: args.paths,
            ukernels: None,
        };
        let opts = match dims_args.options(&single, Some(&file), color) {
            Ok(opts) => opts,
            Err(status) => return status,
        };
        explain_kernel(single, &opts, args.format)
    } else if args.dims.is_some() {
        return super::fail("--dims applies to a kernel's dims; give a subscripts string --shapes");
    } else {
        explain_subscripts(&args.target, args.shapes.as_deref(), &paths, args.format)
    };
    match explained {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => super::fail(message),
    }
}

/// The explanation of `subscripts` applied to operands of `shapes` (symbolic when `None`).
fn explain_subscripts(
    subscripts: &str,
    shapes: Option<&str>,
    paths: &PathOptions,
    format: Format,
) -> Result<String, String> {
    // Only extents matter here; the dtype is arbitrary.
    let dtype = DType::F64;
    let operands = match shapes {
        Some(text) => parse_shapes(text, dtype)?,
        None => einsum::symbolic_operands(subscripts, dtype)
            .map_err(|e| show_einsum_error(&e, subscripts))?,
    };
    let plan =
        einsum::analyze(subscripts, &operands).map_err(|e| show_einsum_error(&e, subscripts))?;
    let (module, func) = einsum::einsum_function(subscripts, &operands)
        .map_err(|e| show_einsum_error(&e, subscripts))?;
    let op = func
        .ops
        .first()
        .ok_or("the einsum has no operation (a compiler bug)")?;
    let OpKind::Generic(g) = &op.kind;
    let report = PathReport::new(&module, g, &CompileOptions::default(), paths)
        .ok_or("the einsum is not a product (a compiler bug)")?;
    Ok(match format {
        Format::Json => {
            let mut fields = vec![("subscripts", Json::Str(subscripts.to_string()))];
            fields.extend(report.json());
            Json::object(fields).render() + "\n"
        }
        Format::Text => {
            let mut out = render_table(&plan, shapes.is_none());
            out.push('\n');
            out.push_str(&report.text());
            out
        }
    })
}

/// Parses `3x4,4x5` into one type per operand; an empty entry is a scalar, and a name instead
/// of a number is a symbolic extent (`Tx64`).
fn parse_shapes(text: &str, dtype: DType) -> Result<Vec<TensorType>, String> {
    text.split(',')
        .map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                return Ok(Vec::new());
            }
            entry
                .split('x')
                .map(|n| {
                    let n = n.trim();
                    if let Ok(v) = n.parse::<u64>() {
                        Ok(Extent::Fixed(v))
                    } else if n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        Ok(Extent::Dim(n.to_string()))
                    } else {
                        Err(format!(
                            "--shapes: {n:?} in {entry:?} is not an extent (write shapes like \
                             `3x4,4x5`; an empty entry is a scalar)"
                        ))
                    }
                })
                .collect::<Result<Vec<Extent>, String>>()
        })
        .map(|shape| shape.map(|shape| TensorType { dtype, shape }))
        .collect()
}

/// Lays out rows as columns separated by two spaces, each as wide as its widest cell.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The index table, operand and result shapes and notes of an einsum.
fn render_table(plan: &EinsumPlan, symbolic: bool) -> String {
    let mut rows = vec![vec![
        "index".to_string(),
        "role".to_string(),
        "extent".to_string(),
        "operand axes".to_string(),
    ]];
    for l in &plan.labels {
        let axes: Vec<String> = l
            .occurrences
            .iter()
            .map(|o| {
                let bcast = if o.broadcast {
                    " (size 1, broadcast)"
                } else {
                    ""
                };
                format!("#{}[{}]{bcast}", o.operand, o.axis)
            })
            .collect();
        rows.push(vec![
            l.kind.index_name(),
            if l.summed { "dummy (summed)" } else { "free" }.to_string(),
            show_extent(&l.extent),
            axes.join(", "),
        ]);
    }
    let mut out = format!(
        "einsum {:?} ({} output)\n\n",
        plan.subscripts,
        if plan.explicit {
            "explicit"
        } else {
            "implicit"
        }
    );
    if plan.labels.is_empty() {
        out.push_str("no indices\n");
    } else {
        out.push_str(&table(&rows));
    }
    out.push('\n');
    let mut facts: Vec<Vec<String>> = plan
        .operands
        .iter()
        .enumerate()
        .map(|(i, t)| vec![format!("operand #{i}:"), show_shape(&t.shape)])
        .collect();
    facts.push(vec!["result:".to_string(), show_shape(&plan.result.shape)]);
    out.push_str(&table(&facts));
    if symbolic {
        out.push_str(
            "\nextents are symbolic, named after their labels (`...` covers no axes); \
             pass --shapes 3x4,4x5 for numbers\n",
        );
    }
    for n in &plan.notes {
        out.push_str(&format!("note: {}\n", n.message));
    }
    out
}

/// A product and its plan, with what is needed to show them: a letter per index and each
/// extent as a number or, when unknown, its dim's name.
struct PathReport {
    letters: Vec<String>,
    extents: Vec<Result<u64, String>>,
    product: Product,
    /// The operand subscripts (one letter per axis read through an index).
    terms: Vec<String>,
    output: String,
    plan: Plan,
    paths: PathOptions,
}

impl PathReport {
    /// The report for `g` (a product of one factor or more), with the extents `module` fixes
    /// or `opts` knows, the others assumed.
    fn new(
        module: &Module,
        g: &Generic,
        opts: &CompileOptions,
        paths: &PathOptions,
    ) -> Option<PathReport> {
        let known = |e: &Extent| -> Result<u64, String> {
            match e {
                Extent::Fixed(n) => Ok(*n),
                Extent::Dim(d) => module
                    .dim_value(d)
                    .or_else(|| opts.dims.get(d).copied())
                    .ok_or_else(|| d.clone()),
            }
        };
        let product = product(g, &|e| known(e).unwrap_or(paths::ASSUMED_EXTENT))?;
        let extents: Vec<Result<u64, String>> =
            g.indices.iter().map(|d| known(&d.extent)).collect();
        let letters = letters(g.indices.iter().map(|d| d.name.as_str()));
        let term = |ids: &mut dyn Iterator<Item = IndexId>| -> String {
            ids.filter_map(|i| letters.get(i.0 as usize).cloned())
                .collect()
        };
        let terms = product
            .factors
            .iter()
            .map(|f| {
                term(
                    &mut g.inputs[f.input as usize]
                        .map
                        .iter()
                        .filter_map(|a| match a {
                            AxisMap::Index(i) => Some(*i),
                            AxisMap::Fixed(_) => None,
                        }),
                )
            })
            .collect();
        let output = term(&mut g.output.iter().copied());
        let plan = paths::plan(&product.network, paths);
        Some(PathReport {
            letters,
            extents,
            product,
            terms,
            output,
            plan,
            paths: *paths,
        })
    }

    /// The subscripts of every step (`jk,kl->jl`).
    fn step_subscripts(&self) -> Vec<String> {
        let mut terms = self.terms.clone();
        let last = self.plan.steps.len().saturating_sub(1);
        let mut out = Vec::new();
        for (k, step) in self.plan.steps.iter().enumerate() {
            let ins: Vec<&str> = step
                .operands
                .iter()
                .map(|&o| terms.get(o).map_or("?", String::as_str))
                .collect();
            let result = if k == last {
                self.output.clone()
            } else {
                self.set_term(step.result)
            };
            out.push(format!("{}->{result}", ins.join(",")));
            terms.push(result);
        }
        out
    }

    fn set_term(&self, set: paths::IndexSet) -> String {
        paths::members(set)
            .filter_map(|i| self.letters.get(i).cloned())
            .collect()
    }

    /// The extents of the indices in `set`.
    fn extents_of(&self, set: paths::IndexSet) -> Vec<Result<u64, String>> {
        paths::members(set)
            .filter_map(|i| self.extents.get(i).cloned())
            .collect()
    }

    /// The dims planned with the assumed extent.
    fn assumed(&self) -> Vec<String> {
        let mut dims: Vec<String> = self
            .extents
            .iter()
            .filter_map(|e| e.as_ref().err().cloned())
            .collect();
        dims.sort();
        dims.dedup();
        dims
    }

    /// A count for a step: the number when every extent is known, else the formula.
    fn show(&self, set: paths::IndexSet, terms: usize, sums: bool, n: u128) -> String {
        if self.assumed().is_empty() {
            n.to_string()
        } else {
            Formula::step(&self.extents_of(set), terms, sums).to_string()
        }
    }

    fn text(&self) -> String {
        let p = &self.plan;
        let n = self.product.network.inputs.len();
        let linear = p.linear_path(n);
        let subs = self.step_subscripts();
        let over = |k: usize| p.memory.is_some_and(|m| p.steps[k].size > m.asked);
        let mut rows = vec![vec![
            "step".to_string(),
            "operands".to_string(),
            "subscripts".to_string(),
            "FLOPs".to_string(),
            "intermediate".to_string(),
        ]];
        for (k, step) in p.steps.iter().enumerate() {
            let size = self.show(step.result, 1, false, step.size);
            rows.push(vec![
                (k + 1).to_string(),
                format!("{:?}", linear[k]),
                subs[k].clone(),
                self.show(
                    step.indices,
                    step.operands.len(),
                    step.summed != 0,
                    step.flops,
                ),
                if over(k) {
                    format!("{size}  (over the limit)")
                } else {
                    size
                },
            ]);
        }
        let mut out = format!(
            "path (optimize={}, memory limit {}):\n",
            self.paths.algorithm.name(),
            self.paths
                .memory_limit
                .map_or("none".to_string(), |l| format!("{l} elements"))
        );
        if p.steps.is_empty() {
            out.push_str("  nothing to contract\n");
        } else {
            out.push_str(&indent(&table(&rows)));
        }
        let all: paths::IndexSet = self.product.network.inputs.iter().fold(0, |a, &s| a | s);
        let shared = self
            .product
            .network
            .inputs
            .iter()
            .map(|s| s.count_ones())
            .sum::<u32>()
            > all.count_ones();
        let naive = self.show(all, n, shared, p.naive_flops);
        let opt = if self.assumed().is_empty() {
            p.opt_flops.to_string()
        } else {
            p.steps
                .iter()
                .map(|s| {
                    Formula::step(&self.extents_of(s.indices), s.operands.len(), s.summed != 0)
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let largest = p
            .steps
            .iter()
            .max_by_key(|s| s.size)
            .map_or("1".to_string(), |s| self.show(s.result, 1, false, s.size));
        let mut facts = vec![
            vec!["naive FLOPs:".to_string(), naive],
            vec!["optimised FLOPs:".to_string(), opt],
            vec!["speed-up:".to_string(), format!("{:.4}x", speedup(p))],
            vec![
                "largest intermediate:".to_string(),
                format!("{largest} elements"),
            ],
        ];
        if let Some(m) = p.memory {
            let result = p.steps.last().map_or(1, |s| s.size);
            let which = if m.smallest == result {
                " (the result itself)"
            } else {
                ""
            };
            facts.push(vec![
                "memory limit:".to_string(),
                format!(
                    "{} elements cannot be met: every path has an intermediate of at least {} \
                     elements{which}, so the path was planned with that limit (the smallest \
                     that works)",
                    m.asked, m.smallest
                ),
            ]);
        }
        out.push_str(&table(&facts));
        let assumed = self.assumed();
        if !assumed.is_empty() {
            out.push_str(&format!(
                "the path was chosen as if {} were {} each (--shapes or --dims give real \
                 extents); the speed-up assumes that too\n",
                assumed.join(", "),
                paths::ASSUMED_EXTENT
            ));
        }
        out
    }

    /// The JSON fields: `path`, `naive_flops`, `opt_flops`, `speedup`,
    /// `largest_intermediate`, `memory_limit`, `smallest_feasible_limit`, `steps`,
    /// `assumed_extents`.
    fn json(&self) -> Vec<(&'static str, Json)> {
        let p = &self.plan;
        let n = self.product.network.inputs.len();
        let linear = p.linear_path(n);
        let subs = self.step_subscripts();
        let ints = |v: &[usize]| Json::Array(v.iter().map(|&x| Json::Int(x as u128)).collect());
        let steps = p
            .steps
            .iter()
            .enumerate()
            .map(|(k, s)| {
                Json::object(vec![
                    ("operands", ints(&linear[k])),
                    ("subscripts", Json::Str(subs[k].clone())),
                    ("flops", Json::Int(s.flops)),
                    ("size", Json::Int(s.size)),
                    (
                        "over_limit",
                        Json::Bool(p.memory.is_some_and(|m| s.size > m.asked)),
                    ),
                ])
            })
            .collect();
        vec![
            (
                "path",
                Json::Array(linear.iter().map(|v| ints(v)).collect()),
            ),
            ("naive_flops", Json::Int(p.naive_flops)),
            ("opt_flops", Json::Int(p.opt_flops)),
            ("speedup", Json::Float(speedup(p))),
            ("largest_intermediate", Json::Int(p.largest_intermediate)),
            (
                "memory_limit",
                self.paths.memory_limit.map_or(Json::Null, Json::Int),
            ),
            (
                "smallest_feasible_limit",
                p.memory.map_or(Json::Null, |m| Json::Int(m.smallest)),
            ),
            ("steps", Json::Array(steps)),
            (
                "assumed_extents",
                Json::Object(
                    self.assumed()
                        .into_iter()
                        .map(|d| (d, Json::Int(u128::from(paths::ASSUMED_EXTENT))))
                        .collect(),
                ),
            ),
        ]
    }
}

/// opt_einsum's speed-up: naive over optimised FLOPs (at least 1 of those).
fn speedup(p: &Plan) -> f64 {
    p.naive_flops as f64 / p.opt_flops.max(1) as f64
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// One display letter per index: its name when that is one character (and unique), else an
/// unused letter (or, when the letters run out, the name in braces).
fn letters<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let names: Vec<&str> = names.collect();
    let mut taken: Vec<String> = Vec::new();
    let mut out: Vec<Option<String>> = names
        .iter()
        .map(|n| {
            (n.chars().count() == 1 && !taken.iter().any(|t| t == n)).then(|| {
                taken.push(n.to_string());
                n.to_string()
            })
        })
        .collect();
    let mut spare = ('a'..='z').chain('A'..='Z').map(String::from);
    for (slot, name) in out.iter_mut().zip(&names) {
        if slot.is_none() {
            let letter = spare.by_ref().find(|c| !taken.contains(c));
            *slot = Some(match letter {
                Some(c) => {
                    taken.push(c.clone());
                    c
                }
                None => format!("{{{name}}}"),
            });
        }
    }
    out.into_iter().flatten().collect()
}

/// Every operation of a kernel as the path pass sees it (after the tensor passes before it).
fn explain_kernel(module: Module, opts: &CompileOptions, format: Format) -> Result<String, String> {
    let before_paths = CompileOptions {
        level: OptLevel::O2,
        // The path pass leaves scheduled ops alone, so none is scheduled here either.
        disabled: vec!["contraction-path".into(), "schedule".into()],
        ..opts.clone()
    };
    let ir = compile::run(
        module,
        &before_paths,
        Level::Tensor,
        &RunOptions::default(),
        &mut Dumps::default(),
    )
    .map_err(|e| e.to_string())?;
    let Ir::Tensor(module) = ir else {
        return Err("the tensor passes did not end at the tensor level (a compiler bug)".into());
    };
    let func = module
        .funcs
        .first()
        .ok_or("the kernel disappeared in the tensor passes (a compiler bug)")?;
    let classes = classify_function(func);
    let mut text = format!("kernel {}\n", func.name);
    let mut ops_json = Vec::new();
    for (k, op) in func.ops.iter().enumerate() {
        let OpKind::Generic(g) = &op.kind;
        let class = &classes[k];
        let name = value_name(func, op.result);
        let einsum = einsum_of(g);
        let report =
            PathReport::new(&module, g, opts, &opts.paths).filter(|r| r.product.factors.len() >= 2);
        let fused = FusedAttention::new(func, k, g);
        match format {
            Format::Text => {
                text.push_str(&op_text(&module, func, g, op.result, class, einsum));
                if let Some(f) = &fused {
                    text.push_str(&f.text());
                }
                if let Some(r) = &report {
                    text.push_str(&r.text());
                }
            }
            Format::Json => {
                let mut fields = vec![
                    ("value", Json::Str(name.to_string())),
                    ("class", Json::Str(class_name(class).to_string())),
                    ("points", Json::Str(points(&module, g))),
                    ("einsum", einsum.map_or(Json::Null, Json::Str)),
                ];
                if let Some(f) = &fused {
                    fields.extend(f.json());
                }
                if let Some(r) = &report {
                    fields.extend(r.json());
                }
                ops_json.push(Json::object(fields));
            }
        }
    }
    // Which code the contractions' micro-kernels are (docs/ukernel.md, "Wide kernels").
    let ukernels = opts.ukernel_plan().map_err(|e| e.to_string())?;
    let contracts = classes.iter().any(|c| matches!(c, OpClass::Contraction(_)));
    Ok(match format {
        Format::Text => {
            if contracts {
                text.push_str(&format!(
                    "micro-kernels: {ukernels} (the contractions' register tiles; --ukernels \
                     chooses)\n"
                ));
            }
            text
        }
        Format::Json => {
            Json::object(vec![
                ("kernel", Json::Str(func.name.clone())),
                ("ops", Json::Array(ops_json)),
                ("ukernels", Json::Str(ukernels.to_string())),
            ])
            .render()
                + "\n"
        }
    })
}

/// An op whose `attention` schedule runs an attention chain or a backward group as one nest
/// (`flash-attention`): the ops inside it and the scratch a call needs.
struct FusedAttention {
    /// The nest's other ops, by value name.
    inside: Vec<String>,
    /// Query rows per block.
    qb: u64,
    /// What the scratch is.
    scratch: Scratch,
}

/// The scratch of a fused attention nest.
enum Scratch {
    /// A forward chain.
    Forward {
        /// The bytes of the nest's blocks (`AttentionSchedule::scratch_bytes`).
        bytes: u64,
        /// The result's elements (the accumulator a strided output needs).
        result: String,
    },
    /// A backward group (`BackwardGroup::scratch_elements`, in bytes).
    Backward {
        per_key: u64,
        per_head: u64,
        fixed: u64,
    },
}

impl FusedAttention {
    fn new(func: &Function, k: usize, g: &Generic) -> Option<FusedAttention> {
        let Some(Schedule::Attention(s)) = &g.schedule else {
            return None;
        };
        let bytes = g.dtype.size_bytes() as u64;
        let (ops, scratch) = match attention_chain(func, k) {
            Ok(chain) => {
                let scratch = Scratch::Forward {
                    bytes: s.scratch_bytes(bytes)?,
                    result: show_shape(&g.result_shape()),
                };
                (chain.ops(), scratch)
            }
            Err(_) => {
                let group = backward_group(func, k).ok()?;
                let (per_key, per_head, fixed) = group.scratch_elements(s.qb?);
                let scratch = Scratch::Backward {
                    per_key: per_key * bytes,
                    per_head: per_head * bytes,
                    fixed: fixed * bytes,
                };
                (group.ops(), scratch)
            }
        };
        let inside = ops
            .into_iter()
            .filter(|&o| o != k)
            .filter_map(|o| func.ops.get(o))
            .map(|op| format!("%{}", value_name(func, op.result)))
            .collect();
        Some(FusedAttention {
            inside,
            qb: s.qb?,
            scratch,
        })
    }

    fn text(&self) -> String {
        let (fused, scratch) = match &self.scratch {
            Scratch::Forward { bytes, result } => (
                format!(
                    "attention: {} run inside this op's blocked nest (online softmax); the \
                     scores are never stored",
                    self.inside.join(", ")
                ),
                format!(
                    "{bytes} bytes of blocks (a score block of {} query rows per task, the \
                     packed key and value blocks), whatever the sequence length; plus a running \
                     maximum and sum per query row, and an accumulator of {result} elements \
                     when the output is strided",
                    self.qb
                ),
            ),
            Scratch::Backward {
                per_key,
                per_head,
                fixed,
            } => (
                format!(
                    "attention backward: {} run inside this op's nest over blocks of {} query \
                     rows; no T x T value is stored",
                    self.inside.join(", "),
                    self.qb
                ),
                format!(
                    "{per_key} bytes per key (the row panels) + {per_head} bytes per element \
                     of the head dimension rounded up to the tile (packed row blocks) + \
                     {fixed} bytes; plus an accumulator of a row-summed output's size when it \
                     is strided"
                ),
            ),
        };
        table(&[
            vec!["fused:".to_string(), fused],
            vec!["scratch:".to_string(), scratch],
        ])
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        let mut out = vec![(
            "fused",
            Json::Array(self.inside.iter().cloned().map(Json::Str).collect()),
        )];
        match &self.scratch {
            Scratch::Forward { bytes, .. } => {
                out.push(("scratch_bytes", Json::Int(u128::from(*bytes))));
            }
            Scratch::Backward {
                per_key,
                per_head,
                fixed,
            } => out.extend([
                ("scratch_bytes_per_key", Json::Int(u128::from(*per_key))),
                ("scratch_bytes_per_head", Json::Int(u128::from(*per_head))),
                ("scratch_bytes", Json::Int(u128::from(*fixed))),
            ]),
        }
        out
    }
}

fn value_name(func: &Function, v: ValueId) -> &str {
    func.values
        .get(v.0 as usize)
        .map_or("?", |d| d.name.as_str())
}

fn class_name(class: &OpClass) -> &'static str {
    match class {
        OpClass::Contraction(_) => "contraction",
        OpClass::Map => "map",
        OpClass::Reduction { .. } => "reduction",
        OpClass::RowSoftmax(_) => "row softmax",
        OpClass::Other => "other",
    }
}

/// The size of `g`'s iteration space: a number, or a formula over the unknown dims.
fn points(module: &Module, g: &Generic) -> String {
    let extents: Vec<Result<u64, String>> = g
        .indices
        .iter()
        .map(|d| match &d.extent {
            Extent::Fixed(n) => Ok(*n),
            Extent::Dim(name) => module.dim_value(name).ok_or_else(|| name.clone()),
        })
        .collect();
    Formula::step(&extents, 1, false).to_string()
}

/// The numpy subscripts `g` computes (`ia,ja->ij`), when it is a sum (or map) of a product of
/// its inputs, each read once through indices only; a literal or dim factor is noted
/// (`ia,ja->ij, times a scalar`). The letters are those of the index table.
fn einsum_of(g: &Generic) -> Option<String> {
    if g.reduce.as_ref().is_some_and(|r| r.kind != ReduceKind::Add) {
        return None;
    }
    fn factors<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
        match e {
            Expr::Binary(BinaryFn::Mul, a, b) => {
                factors(a, out);
                factors(b, out);
            }
            other => out.push(other),
        }
    }
    let mut fs = Vec::new();
    factors(&g.body, &mut fs);
    let letters = letters(g.indices.iter().map(|d| d.name.as_str()));
    let term = |ids: &mut dyn Iterator<Item = &IndexId>| -> String {
        ids.filter_map(|i| letters.get(i.0 as usize).cloned())
            .collect()
    };
    let mut terms = Vec::new();
    let mut seen = vec![false; g.inputs.len()];
    let mut scalar = false;
    for f in fs {
        match f {
            Expr::Input(n) => {
                let input = g.inputs.get(*n as usize)?;
                if std::mem::replace(seen.get_mut(*n as usize)?, true) {
                    return None;
                }
                let ids: Option<Vec<&IndexId>> = input
                    .map
                    .iter()
                    .map(|a| match a {
                        AxisMap::Index(i) => Some(i),
                        AxisMap::Fixed(_) => None,
                    })
                    .collect();
                terms.push(term(&mut ids?.into_iter()));
            }
            Expr::Lit(_) | Expr::DimValue(..) => scalar = true,
            _ => return None,
        }
    }
    if terms.is_empty() || !seen.iter().all(|&s| s) {
        return None;
    }
    let subscripts = format!("{}->{}", terms.join(","), term(&mut g.output.iter()));
    Some(if scalar {
        format!("{subscripts:?}, times a scalar")
    } else {
        format!("{subscripts:?}")
    })
}

/// One operation: its index table, class, iteration-space size, the einsum it equals (when it
/// is a product) and the symmetries its result shows.
fn op_text(
    module: &Module,
    func: &Function,
    g: &Generic,
    result: ValueId,
    class: &OpClass,
    einsum: Option<String>,
) -> String {
    let index_name = |i: &IndexId| g.indices.get(i.0 as usize).map_or("?", |d| d.name.as_str());
    // A batch index is free and in every operand (of two or more).
    let batch = |id: IndexId| {
        g.inputs.len() >= 2
            && g.inputs
                .iter()
                .all(|input| input.map.contains(&AxisMap::Index(id)))
    };
    let role = |id: IndexId| -> String {
        match &g.reduce {
            Some(r) if r.over.contains(&id) => match r.kind {
                ReduceKind::Add => "dummy (summed)".to_string(),
                ReduceKind::Mul => "reduced (product)".to_string(),
                ReduceKind::Max => "reduced (max)".to_string(),
                ReduceKind::Min => "reduced (min)".to_string(),
            },
            _ if batch(id) => "free (batch)".to_string(),
            _ => "free".to_string(),
        }
    };
    let mut rows = vec![vec![
        "index".to_string(),
        "role".to_string(),
        "extent".to_string(),
        "operand axes".to_string(),
    ]];
    for (n, def) in g.indices.iter().enumerate() {
        let id = IndexId(u32::try_from(n).unwrap_or(u32::MAX));
        let axes: Vec<String> = g
            .inputs
            .iter()
            .flat_map(|input| {
                input
                    .map
                    .iter()
                    .enumerate()
                    .filter(move |&(_, m)| *m == AxisMap::Index(id))
                    .map(move |(axis, _)| format!("{}[{axis}]", value_name(func, input.value)))
            })
            .collect();
        rows.push(vec![
            def.name.clone(),
            role(id),
            show_extent(&def.extent),
            if axes.is_empty() {
                "(none)".to_string()
            } else {
                axes.join(", ")
            },
        ]);
    }
    let out_indices: Vec<&str> = g.output.iter().map(index_name).collect();
    let mut out = format!(
        "\n%{}[{}]\n",
        value_name(func, result),
        out_indices.join(", ")
    );
    out.push_str(&table(&rows));
    let groups = |ids: &[IndexId]| {
        let names: Vec<&str> = ids.iter().map(index_name).collect();
        format!("[{}]", names.join(", "))
    };
    let class_text = match class {
        OpClass::Contraction(c) => format!(
            "contraction: batch {}, m {}, n {}, k {}",
            groups(&c.batch),
            groups(&c.m),
            groups(&c.n),
            groups(&c.k)
        ),
        OpClass::Reduction { kind, over } => {
            format!("reduction ({}) over {}", kind.name(), groups(over))
        }
        OpClass::RowSoftmax(s) => format!(
            "row softmax of %{} (ops {}..{})",
            value_name(func, s.source),
            s.max,
            s.div
        ),
        OpClass::Map => "map".to_string(),
        OpClass::Other => "other (delta or eps left, evaluated per point)".to_string(),
    };
    let mut facts = vec![
        vec!["class:".to_string(), class_text],
        vec![
            "result:".to_string(),
            format!("{} {}", g.dtype, show_shape(&g.result_shape())),
        ],
        vec!["points:".to_string(), points(module, g)],
    ];
    if let Some(e) = einsum {
        facts.push(vec!["einsum:".to_string(), e]);
    }
    let names: Vec<&str> = g.output.iter().map(index_name).collect();
    for (a, b) in symmetry::symmetric_pairs(func, result) {
        let mut swapped = names.clone();
        swapped.swap(a, b);
        let v = value_name(func, result);
        facts.push(vec![
            "symmetric:".to_string(),
            format!("%{v}[{}] = %{v}[{}]", names.join(", "), swapped.join(", ")),
        ]);
    }
    out.push_str(&table(&facts));
    out
}

#[cfg(test)]
mod tests;
