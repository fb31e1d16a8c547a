//! The one place where every pass is registered: its name, summary, levels, options and
//! constructor. The pipeline parser, `--help` texts, error messages listing what exists and
//! `docs/passes.md` all follow this table. The table only names passes: which of them run,
//! and in which order, is written out in `compile.rs`.

use super::{
    canonicalize, const_fold, contraction_path, cse, dce, delta_elim, emit_clif, eps_expand,
    flash_attention, fuse, licm, lower_to_loops, schedule, strength_reduce, unroll, Level, Pass,
    PassContext,
};
use crate::ir::tensor::schedule::MAX_FACTOR;
use crate::paths::{Algorithm, PathOptions};

/// An option a pass takes in a pipeline string (`eps-expand{max-rank=5}`). Every option is an
/// unsigned integer with a default and an inclusive range; it may also accept keywords that
/// stand for values (`optimize=dp`, `memory-limit=none`).
#[derive(Debug)]
pub struct OptionSpec {
    /// The option's name.
    pub name: &'static str,
    /// What it controls.
    pub doc: &'static str,
    /// The value when the pipeline does not set it.
    pub default: u64,
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
    /// Keywords accepted as values, and the values they stand for (printed back as the
    /// keyword).
    pub keywords: &'static [(&'static str, u64)],
}

impl OptionSpec {
    /// The value as a pipeline string spells it: its keyword, or the number.
    pub fn show(&self, value: u64) -> String {
        match self.keywords.iter().find(|(_, v)| *v == value) {
            Some((k, _)) => (*k).to_string(),
            None => value.to_string(),
        }
    }

    /// What the option accepts, for error messages: `an integer from 2 to 6`, `one of: a, b`,
    /// `none or an integer from 1 to 9`.
    pub fn accepted(&self) -> String {
        let words: Vec<&str> = self.keywords.iter().map(|(k, _)| *k).collect();
        let range = format!("an integer from {} to {}", self.min, self.max);
        match (words.is_empty(), self.takes_integers()) {
            (false, false) => format!("one of: {}", words.join(", ")),
            (false, true) => format!("{} or {range}", words.join(", ")),
            (true, _) => range,
        }
    }

    /// Whether integers are accepted: an empty range (`min > max`) means keywords only.
    pub fn takes_integers(&self) -> bool {
        self.min <= self.max
    }
}

/// The values of a pass's options, in the order of its [`OptionSpec`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `(name, value)` for every option of the pass, defaults filled in.
    pub values: Vec<(&'static str, u64)>,
}

impl Options {
    /// The value of option `name`, or `None` when the pass has no such option.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

/// A registered pass.
pub struct PassInfo {
    /// The name used in pipeline strings and banners.
    pub name: &'static str,
    /// One line: what the pass does.
    pub summary: &'static str,
    /// The level of the IR the pass reads.
    pub input: Level,
    /// The level of the IR the pass produces.
    pub output: Level,
    /// The options it accepts.
    pub options: &'static [OptionSpec],
    /// Builds the pass from option values (every option present, validated against its spec)
    /// and what the compilation knows beyond them.
    pub build: fn(&Options, &PassContext) -> Box<dyn Pass>,
}

impl std::fmt::Debug for PassInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassInfo")
            .field("name", &self.name)
            .field("input", &self.input)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// Every pass. The order is the catalogue's (`docs/passes.md`), not a pipeline.
pub static PASSES: &[PassInfo] = &[
    PassInfo {
        name: "delta-elim",
        summary: "remove Kronecker deltas over summed indices by substituting one index for \
                  the other",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[],
        build: |_, _| Box::new(delta_elim::DeltaElim),
    },
    PassInfo {
        name: "eps-expand",
        summary: "expand a Levi-Civita symbol over summed indices into its non-zero terms",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[OptionSpec {
            name: "max-rank",
            doc: "expand eps of at most this many indices (rank n gives n! terms)",
            default: eps_expand::DEFAULT_MAX_RANK,
            min: 2,
            max: eps_expand::LIMIT_MAX_RANK,
            keywords: &[],
        }],
        build: |o, _| {
            Box::new(eps_expand::EpsExpand {
                max_rank: o.get("max-rank").unwrap_or(eps_expand::DEFAULT_MAX_RANK),
            })
        },
    },
    PassInfo {
        name: "canonicalize",
        summary: "move the factors of a sum that do not vary with the summed indices into a map \
                  applied to its result",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[],
        build: |_, _| Box::new(canonicalize::Canonicalize),
    },
    PassInfo {
        name: "contraction-path",
        summary: "split N-ary products into pairwise contractions in the order of least FLOPs",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[
            OptionSpec {
                name: "optimize",
                doc: "the path search: auto, optimal, dp or greedy",
                default: 0,
                min: 1,
                max: 0,
                keywords: &[("auto", 0), ("optimal", 1), ("dp", 2), ("greedy", 3)],
            },
            OptionSpec {
                name: "memory-limit",
                doc: "the largest intermediate allowed, in elements (none: no limit)",
                default: 0,
                min: 1,
                max: u64::MAX,
                keywords: &[("none", 0)],
            },
        ],
        build: |o, ctx| {
            // The keywords number the algorithms in `Algorithm::ALL` order.
            let algorithm = o
                .get("optimize")
                .and_then(|v| Algorithm::ALL.get(v as usize).copied())
                .unwrap_or_default();
            Box::new(contraction_path::ContractionPath {
                options: PathOptions {
                    algorithm,
                    memory_limit: o.get("memory-limit").filter(|&l| l > 0).map(u128::from),
                },
                dims: ctx.dims.clone(),
            })
        },
    },
    PassInfo {
        name: "cse",
        summary: "merge ops that compute the same value and read earlier maps instead of \
                  recomputing their bodies",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[],
        build: |_, _| Box::new(cse::Cse),
    },
    PassInfo {
        name: "const-fold",
        summary: "evaluate constant expressions and fixed dims, apply exact identities, \
                  propagate constant maps",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[],
        build: |_, _| Box::new(const_fold::ConstFold),
    },
    PassInfo {
        name: "fuse",
        summary: "inline elementwise maps into the ops that read them, and fold the scale of a \
                  matrix-vector product into its smaller operand",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[],
        build: |_, ctx| {
            Box::new(fuse::Fuse {
                dims: ctx.dims.clone(),
            })
        },
    },
    PassInfo {
        name: "dce",
        summary: "drop unread inputs, ops whose results nothing uses and dims nothing mentions",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[],
        build: |_, _| Box::new(dce::Dce),
    },
    PassInfo {
        name: "schedule",
        summary: "choose each op's schedule (GEMM tiles, loop order, vectorisation) with the \
                  cost model, or at random",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[
            tile_option("mr", "register tile rows of every gemm schedule", 16),
            tile_option("nr", "register tile columns of every gemm schedule", 64),
            tile_option("mc", "rows of every packed A block", MAX_FACTOR),
            tile_option("kc", "depth of every packed block", MAX_FACTOR),
            tile_option("nc", "columns of every packed B block", MAX_FACTOR),
            OptionSpec {
                name: "random",
                doc: "give every op a random legal schedule drawn from this seed (for tests)",
                default: 0,
                min: 1,
                max: u64::MAX,
                keywords: &[("off", 0)],
            },
        ],
        build: |o, ctx| Box::new(schedule::SchedulePass::from_options(o, ctx)),
    },
    PassInfo {
        name: "flash-attention",
        summary: "give attention chains (scores, maps, row softmax, values) one blocked nest \
                  with an online softmax, never storing the scores",
        input: Level::Tensor,
        output: Level::Tensor,
        options: &[
            block_option("qb", "query rows per block"),
            block_option("kb", "keys per block"),
            block_option("hb", "the largest head chunk packed at once"),
        ],
        build: |o, ctx| {
            let set = |name| o.get(name).filter(|&v| v > 0);
            Box::new(flash_attention::FlashAttention {
                machine: crate::target::Machine::for_target(&ctx.target).unwrap_or_else(|| {
                    crate::target::Machine::defaults(crate::target::Isa::X86_64)
                }),
                dims: ctx.dims.clone(),
                overrides: crate::ir::tensor::schedule::AttentionSchedule {
                    qb: set("qb"),
                    kb: set("kb"),
                    hb: set("hb"),
                    mr: None,
                    nr: None,
                },
            })
        },
    },
    PassInfo {
        name: "lower-to-loops",
        summary: "lower tensor IR to loop nests over buffers (loop IR), obeying each op's \
                  schedule",
        input: Level::Tensor,
        output: Level::Loop,
        options: &[OptionSpec {
            name: "schedules",
            doc: "obey the ops' schedules (`ignore`: naive nests everywhere, the reference)",
            default: 1,
            min: 1,
            max: 1,
            keywords: &[("obey", 1), ("ignore", 0)],
        }],
        build: |o, _| {
            Box::new(lower_to_loops::LowerToLoops {
                schedules: o.get("schedules") != Some(0),
            })
        },
    },
    PassInfo {
        name: "unroll",
        summary: "unroll loops by their `unroll N` request, and small constant-trip loops fully",
        input: Level::Loop,
        output: Level::Loop,
        options: &[
            OptionSpec {
                name: "max-trips",
                doc: "unroll a loop without a request fully when it runs at most this many \
                      times (0: never)",
                default: unroll::DEFAULT_MAX_TRIPS,
                min: 0,
                max: 64,
                keywords: &[],
            },
            OptionSpec {
                name: "max-insts",
                doc: "... and its copies hold at most this many instructions together",
                default: unroll::DEFAULT_MAX_INSTS,
                min: 0,
                max: 4096,
                keywords: &[],
            },
        ],
        build: |o, _| {
            Box::new(unroll::Unroll {
                max_trips: o.get("max-trips").unwrap_or(unroll::DEFAULT_MAX_TRIPS),
                max_insts: o.get("max-insts").unwrap_or(unroll::DEFAULT_MAX_INSTS),
            })
        },
    },
    PassInfo {
        name: "licm",
        summary: "move loop-invariant pure instructions out of loops",
        input: Level::Loop,
        output: Level::Loop,
        options: &[],
        build: |_, _| Box::new(licm::Licm),
    },
    PassInfo {
        name: "strength-reduce",
        summary: "access memory in sequential loops through pointers that advance by a step",
        input: Level::Loop,
        output: Level::Loop,
        options: &[],
        build: |_, _| Box::new(strength_reduce::StrengthReduce),
    },
    PassInfo {
        name: "emit-clif",
        summary: "generate Cranelift IR for the host (print-only: ends a pipeline)",
        input: Level::Loop,
        output: Level::Clif,
        options: &[],
        build: |_, ctx| {
            Box::new(emit_clif::EmitClif {
                target: ctx.target.clone(),
                ukernels: ctx.ukernels,
            })
        },
    },
];

/// An option of the `schedule` pass that sets one key of every `gemm` schedule it completes
/// (`auto`: the cost model's choice).
const fn tile_option(name: &'static str, doc: &'static str, max: u64) -> OptionSpec {
    OptionSpec {
        name,
        doc,
        default: 0,
        min: 1,
        max,
        keywords: &[("auto", 0)],
    }
}

/// An option of `flash-attention` that sets one block size (`auto`: the cache model's).
const fn block_option(name: &'static str, doc: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        doc,
        default: 0,
        min: 1,
        max: 4096,
        keywords: &[("auto", 0)],
    }
}

/// The registered pass named `name`.
pub fn lookup(name: &str) -> Option<&'static PassInfo> {
    PASSES.iter().find(|p| p.name == name)
}

/// The names of every registered pass, comma-separated (for error messages).
pub fn names() -> String {
    PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}
