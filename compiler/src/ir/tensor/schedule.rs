//! Schedules: how a `generic` executes, kept apart from what it computes (Halide's split of
//! algorithm and schedule). A schedule changes speed, never the result: the only permitted
//! difference is the order in which a reduction's terms are combined (`docs/schedules.md`).
//!
//! An op without a schedule lowers to the naive nest. A schedule is one of:
//! - [`Schedule::Naive`]: the naive nest, chosen explicitly (the `schedule` pass keeps it);
//! - [`Schedule::Gemm`]: a contraction as a GETT (BLIS loops around a micro-kernel, packed
//!   panels, cache blocking);
//! - [`Schedule::Loops`]: a loop nest for maps, reductions and the contractions that are not
//!   GEMM-shaped (loop order, vectorised index, unrolling, parallel loops);
//! - [`Schedule::Softmax`]: on the division of a row-softmax group (`analysis::classify`), the
//!   whole group as two passes over each row (an online max-and-sum pass, then one pass writing
//!   the result); the group's other ops run inside it;
//! - [`Schedule::Attention`]: on the final contraction `O = P·V` of an attention chain
//!   (`analysis::attention`: scores `Q·Kᵀ`, elementwise maps such as a scale or a mask, a row
//!   softmax, then `P·V`), the whole chain as one blocked nest with an online softmax; the
//!   chain's other ops run inside it and the score matrix is never stored.
//!
//! Every field is optional: an annotation in `.ein` or a partial override sets some and the
//! `schedule` pass completes the rest. Lowering requires a complete schedule
//! ([`Schedule::missing`] is empty). Indices are [`IndexId`]s of the op the schedule is attached
//! to, printed by name.
//!
//! Text form (after the op, `docs/ir.md`): `schedule KIND(key=value, ...)` where a value is an
//! integer, a name, or a list `[x, y:4]` of names each with an optional `:n`. [`write`] prints
//! it; [`build`] turns parsed items into a schedule for both the IR parser and the `.ein`
//! annotation; [`check`] is the verifier's legality test against the op.

pub mod epilogue;

pub use epilogue::EpilogueStep;

use super::printer::index_name;
use super::{Expr, Generic, IndexId, ReduceKind};
use crate::ir::loops::UkernelShape;
use einc_runtime::DType;
use std::fmt::Write;

/// How one `generic` executes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// The naive nest: output indices in output order, then the reduced ones.
    Naive,
    /// A contraction computed as a GETT (`docs/schedules.md`).
    Gemm(GemmSchedule),
    /// A scheduled loop nest.
    Loops(LoopsSchedule),
    /// A row-softmax group computed in two passes per row, scheduled like a loop nest over the
    /// division's indices (the rows' indices, then the normalised ones).
    Softmax(LoopsSchedule),
    /// An attention chain computed block by block with an online softmax, on the chain's final
    /// contraction (`docs/schedules.md`).
    Attention(AttentionSchedule),
}

/// The blocking of a fused attention chain `O = softmax(map(Q·Kᵀ))·V`: each block of `qb`
/// query rows visits the keys in blocks of `kb` once, with `Q·Kᵀ` and `P·V` computed by
/// `mr x nr` micro-kernel tiles over head-dimension chunks of at most `hb`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttentionSchedule {
    /// Query rows per block (a multiple of `mr`).
    pub qb: Option<u64>,
    /// Keys per block (a multiple of `nr`).
    pub kb: Option<u64>,
    /// The largest chunk of a head dimension packed at once (a multiple of `nr`).
    pub hb: Option<u64>,
    /// Register tile rows.
    pub mr: Option<u64>,
    /// Register tile columns.
    pub nr: Option<u64>,
}

impl AttentionSchedule {
    /// The bytes of the nest's blocks for elements of `bytes` bytes: the score block
    /// (`qb x kb`, on each task's stack) and the packed key and value blocks (`hb x kb` each
    /// for head and value dimensions of `hb`, shared by the query blocks); `None` while a key
    /// is unset.
    pub fn scratch_bytes(&self, bytes: u64) -> Option<u64> {
        let (qb, kb, hb) = (self.qb?, self.kb?, self.hb?);
        let elements = qb
            .checked_mul(kb)?
            .checked_add(hb.checked_mul(kb)?.checked_mul(2)?)?;
        elements.checked_mul(bytes)
    }
}

/// The micro-kernel family a GEMM schedule calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MicroKernel {
    /// The 128-bit vector kernels code generation builds with Cranelift (both targets).
    Simd128,
    /// The 256-bit AVX2 + FMA kernels of `codegen::wide` (x86-64): the register tile is
    /// chosen for 16 ymm registers. (Which code a module's kernels are is the compilation's
    /// choice, `--ukernels`; the family says what the tile was chosen for.)
    Avx2,
    /// The 512-bit AVX-512 kernels of `codegen::wide` (x86-64): the register tile is chosen
    /// for 32 zmm registers.
    Avx512,
}

impl MicroKernel {
    /// Every family, for parsing and messages.
    pub const ALL: [MicroKernel; 3] =
        [MicroKernel::Simd128, MicroKernel::Avx2, MicroKernel::Avx512];

    /// The name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            MicroKernel::Simd128 => "simd128",
            MicroKernel::Avx2 => "avx2",
            MicroKernel::Avx512 => "avx512",
        }
    }

    /// The width in bytes of the family's vectors, in which its tiles' accumulators count.
    pub fn vector_bytes(self) -> u32 {
        match self {
            MicroKernel::Simd128 => 16,
            MicroKernel::Avx2 => 32,
            MicroKernel::Avx512 => 64,
        }
    }
}

/// A loop of the GEMM blocking that a schedule may mark parallel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockLoop {
    /// The loop over blocks of `nc` columns (N).
    Jc,
    /// The loop over blocks of `mc` rows (M).
    Ic,
}

impl BlockLoop {
    /// Both loops, outermost first.
    pub const ALL: [BlockLoop; 2] = [BlockLoop::Jc, BlockLoop::Ic];

    /// The name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            BlockLoop::Jc => "jc",
            BlockLoop::Ic => "ic",
        }
    }
}

/// Which operands of a GEMM are packed into contiguous panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packing {
    /// A (the operand indexed by the `m` indices) into `mr`-row panels.
    pub a: bool,
    /// B (the operand indexed by the `n` indices) into `nr`-column panels. Without it, B is
    /// read in place where it already is one such panel (N is `nr`, and B's last axis, with a
    /// unit stride), and packed everywhere else: the micro-kernel reads `nr` full columns.
    pub b: bool,
}

/// A contraction as a GETT: `C[outer.., m.., n..] (+)= A[m.., k..] B[k.., n..]`.
///
/// The indices fused into each GEMM dimension are listed outermost first (the last varies
/// fastest); every other index of the op is an `outer` loop around the GEMM, in loop order.
/// The loops inside are BLIS's: `jc` over N by `nc`, `pc` over K by `kc` (B packed), `ic` over
/// M by `mc` (A packed), `jr`/`ir` over the `nr`/`mr` register tiles, one micro-kernel call per
/// tile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GemmSchedule {
    /// Loops outside the GEMM, outermost first.
    pub outer: Option<Vec<IndexId>>,
    /// Indices fused into M (output indices of A only).
    pub m: Option<Vec<IndexId>>,
    /// Indices fused into N (output indices of B only).
    pub n: Option<Vec<IndexId>>,
    /// Indices fused into K (reduced indices of both A and B).
    pub k: Option<Vec<IndexId>>,
    /// Register tile rows.
    pub mr: Option<u64>,
    /// Register tile columns.
    pub nr: Option<u64>,
    /// Rows of A per packed block (a multiple of `mr`).
    pub mc: Option<u64>,
    /// Depth of a packed block (K).
    pub kc: Option<u64>,
    /// Columns of B per packed block (a multiple of `nr`).
    pub nc: Option<u64>,
    /// Which operands are packed.
    pub pack: Option<Packing>,
    /// The micro-kernel family.
    pub ukernel: Option<MicroKernel>,
    /// Outer loops whose iterations may run in parallel.
    pub parallel: Option<Vec<IndexId>>,
    /// Blocking loops whose iterations may run in parallel.
    pub parallel_blocks: Option<Vec<BlockLoop>>,
    /// The maps after the contraction that the store of C applies ([`epilogue`]); unset or
    /// `[]`: none (not a key a complete schedule must set).
    pub epilogue: Option<Vec<EpilogueStep>>,
}

/// A scheduled loop nest: one loop per index in `order`, the vectorised index innermost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopsSchedule {
    /// Every index once, outermost first.
    pub order: Option<Vec<IndexId>>,
    /// The vectorised index and its width in lanes (`[]` for none).
    pub vector: Option<Option<(IndexId, u64)>>,
    /// Unroll factors (an index not listed is not unrolled).
    pub unroll: Option<Vec<(IndexId, u64)>>,
    /// Loops whose iterations may run in parallel (output indices).
    pub parallel: Option<Vec<IndexId>>,
}

impl Schedule {
    /// The kind's name in the text form.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Schedule::Naive => "naive",
            Schedule::Gemm(_) => "gemm",
            Schedule::Loops(_) => "loops",
            Schedule::Softmax(_) => "softmax",
            Schedule::Attention(_) => "attention",
        }
    }

    /// The keys a complete schedule of this kind sets but this one does not; empty when
    /// lowering can follow it as it is.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut need = |set: bool, key| {
            if !set {
                out.push(key);
            }
        };
        match self {
            Schedule::Naive => {}
            Schedule::Gemm(s) => {
                need(s.outer.is_some(), "outer");
                need(s.m.is_some(), "m");
                need(s.n.is_some(), "n");
                need(s.k.is_some(), "k");
                need(s.mr.is_some(), "mr");
                need(s.nr.is_some(), "nr");
                need(s.mc.is_some(), "mc");
                need(s.kc.is_some(), "kc");
                need(s.nc.is_some(), "nc");
                need(s.pack.is_some(), "pack");
                need(s.ukernel.is_some(), "ukernel");
                need(s.parallel.is_some(), "parallel");
                need(s.parallel_blocks.is_some(), "parallel_blocks");
            }
            Schedule::Loops(s) | Schedule::Softmax(s) => {
                need(s.order.is_some(), "order");
                need(s.vector.is_some(), "vector");
                need(s.unroll.is_some(), "unroll");
                need(s.parallel.is_some(), "parallel");
            }
            Schedule::Attention(s) => {
                need(s.qb.is_some(), "qb");
                need(s.kb.is_some(), "kb");
                need(s.hb.is_some(), "hb");
                need(s.mr.is_some(), "mr");
                need(s.nr.is_some(), "nr");
            }
        }
        out
    }
}

// ----- text ---------------------------------------------------------------------------------

/// Writes `schedule KIND(key=value, ...)` for schedule `s` of op `g` (set keys only, in a fixed
/// order).
pub fn write(out: &mut String, g: &Generic, s: &Schedule) {
    let names = |ids: &[IndexId]| -> String {
        let list: Vec<String> = ids.iter().map(|&i| index_name(g, i)).collect();
        format!("[{}]", list.join(", "))
    };
    let with_factor = |pairs: &[(IndexId, u64)]| -> String {
        let list: Vec<String> = pairs
            .iter()
            .map(|&(i, n)| format!("{}:{n}", index_name(g, i)))
            .collect();
        format!("[{}]", list.join(", "))
    };
    let mut items: Vec<String> = Vec::new();
    let list = |items: &mut Vec<String>, key: &str, ids: &Option<Vec<IndexId>>| {
        if let Some(ids) = ids {
            items.push(format!("{key}={}", names(ids)));
        }
    };
    match s {
        Schedule::Naive => {}
        Schedule::Gemm(s) => {
            list(&mut items, "outer", &s.outer);
            list(&mut items, "m", &s.m);
            list(&mut items, "n", &s.n);
            list(&mut items, "k", &s.k);
            for (key, v) in [
                ("mr", s.mr),
                ("nr", s.nr),
                ("mc", s.mc),
                ("kc", s.kc),
                ("nc", s.nc),
            ] {
                if let Some(v) = v {
                    items.push(format!("{key}={v}"));
                }
            }
            if let Some(p) = s.pack {
                let packed: Vec<&str> = [(p.a, "a"), (p.b, "b")]
                    .into_iter()
                    .filter_map(|(on, n)| on.then_some(n))
                    .collect();
                items.push(format!("pack=[{}]", packed.join(", ")));
            }
            if let Some(k) = s.ukernel {
                items.push(format!("ukernel={}", k.name()));
            }
            list(&mut items, "parallel", &s.parallel);
            if let Some(b) = &s.parallel_blocks {
                let b: Vec<&str> = b.iter().map(|b| b.name()).collect();
                items.push(format!("parallel_blocks=[{}]", b.join(", ")));
            }
            if let Some(e) = &s.epilogue {
                let e: Vec<&str> = e.iter().map(|e| e.name()).collect();
                items.push(format!("epilogue=[{}]", e.join(", ")));
            }
        }
        Schedule::Loops(s) | Schedule::Softmax(s) => {
            list(&mut items, "order", &s.order);
            if let Some(v) = &s.vector {
                items.push(format!("vector={}", with_factor(v.as_slice())));
            }
            if let Some(u) = &s.unroll {
                items.push(format!("unroll={}", with_factor(u)));
            }
            list(&mut items, "parallel", &s.parallel);
        }
        Schedule::Attention(s) => {
            for (key, v) in [
                ("qb", s.qb),
                ("kb", s.kb),
                ("hb", s.hb),
                ("mr", s.mr),
                ("nr", s.nr),
            ] {
                if let Some(v) = v {
                    items.push(format!("{key}={v}"));
                }
            }
        }
    }
    let _ = write!(out, "schedule {}({})", s.kind_name(), items.join(", "));
}

/// The value of one `key=value` item, as parsed (by the IR parser or the `.ein` parser), with
/// locations of type `L` for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawValue<L> {
    /// An integer.
    Int(u64),
    /// A name.
    Name(String),
    /// `[x, y:4, ...]`: names, each with an optional factor, and where each is.
    List(Vec<(String, Option<u64>, L)>),
}

/// One `key=value` item of a schedule as parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawItem<L> {
    /// The key.
    pub key: String,
    /// Where the key is.
    pub key_at: L,
    /// The value.
    pub value: RawValue<L>,
    /// Where the value is.
    pub value_at: L,
}

/// The keys of each kind, in printing order (for messages).
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "gemm" => &[
            "outer",
            "m",
            "n",
            "k",
            "mr",
            "nr",
            "mc",
            "kc",
            "nc",
            "pack",
            "ukernel",
            "parallel",
            "parallel_blocks",
            "epilogue",
        ],
        "loops" | "softmax" => &["order", "vector", "unroll", "parallel"],
        "attention" => &["qb", "kb", "hb", "mr", "nr"],
        _ => &[],
    }
}

/// The kinds of schedule, as written.
pub const KINDS: [&str; 5] = ["naive", "gemm", "loops", "softmax", "attention"];

/// The largest tile, block or unroll factor a schedule may name (keeps sizes far from overflow
/// and scoped buffers bounded).
pub const MAX_FACTOR: u64 = 1 << 20;

/// The most copies of an op's body that unrolling may jam into its innermost loop: the product
/// of its unroll factors. Unroll-and-jam multiplies them, so factors that are each small can
/// still make code that takes the code generator minutes and gigabytes (`unroll=[i:64, j:64]`
/// took 19 s to build; two factors of 2^20 exhausted 20 GB of memory). `docs/limits.md`.
pub const MAX_UNROLLED_COPIES: u64 = 256;

/// Why an `mr x nr` tile of `dtype` has no micro-kernel of `family` (of any family when
/// `None`), if it has none: more than [`MAX_MR`] rows, or more than [`MAX_NR_VECTORS`] vectors
/// per row or [`MAX_ACCUMULATORS`] accumulators counted in the family's vectors
/// ([`UkernelShape::fits`]). (`nr` a multiple of the 128-bit lanes is checked on its own.)
fn tile_error(dtype: DType, mr: u64, nr: u64, family: Option<MicroKernel>) -> Option<String> {
    let families = family.map_or(MicroKernel::ALL.to_vec(), |k| vec![k]);
    let shape = |mr: u64, nr: u64| {
        Some(UkernelShape {
            dtype,
            mr: u32::try_from(mr).ok()?,
            nr: u32::try_from(nr).ok()?,
        })
    };
    let fits = shape(mr, nr).is_some_and(|t| families.iter().any(|k| t.fits(k.vector_bytes())));
    if mr <= MAX_MR && fits {
        return None;
    }
    let names: Vec<&str> = families.iter().map(|k| k.name()).collect();
    Some(format!(
        "the {mr} x {nr} tile has no {} micro-kernel: tiles have at most {MAX_MR} rows, \
         {MAX_NR_VECTORS} vectors per row and {MAX_ACCUMULATORS} vector accumulators, in the \
         family's vectors",
        names.join(" or ")
    ))
}

/// The most rows of a micro-kernel tile (`docs/ukernel.md`).
pub const MAX_MR: u64 = 16;
/// The most columns of a micro-kernel tile, in vectors.
pub const MAX_NR_VECTORS: u64 = 8;
/// The most vector accumulators of a micro-kernel tile.
pub const MAX_ACCUMULATORS: u64 = 32;
/// The most bytes a packed block may take on the stack when it is scoped to a parallel loop (a
/// quarter of the loop IR's budget for all the scoped buffers of a function).
pub const MAX_SCOPED_BLOCK_BYTES: u64 = crate::ir::loops::MAX_SCOPED_BYTES / 4;

/// Builds a schedule of kind `kind` from parsed items, resolving index names with `index`.
/// Errors name the key or value at fault, at its location; the kind itself is checked by the
/// caller against [`KINDS`] (an unknown kind is reported at `kind_at`).
pub fn build<L: Clone>(
    kind: &str,
    kind_at: L,
    items: &[RawItem<L>],
    index: impl Fn(&str) -> Option<IndexId>,
) -> Result<Schedule, Vec<(L, String)>> {
    let mut errors: Vec<(L, String)> = Vec::new();
    let mut s = match kind {
        "naive" => Schedule::Naive,
        "gemm" => Schedule::Gemm(GemmSchedule::default()),
        "loops" => Schedule::Loops(LoopsSchedule::default()),
        "softmax" => Schedule::Softmax(LoopsSchedule::default()),
        "attention" => Schedule::Attention(AttentionSchedule::default()),
        other => {
            return Err(vec![(
                kind_at,
                format!(
                    "unknown schedule `{other}`: the schedules are {}",
                    KINDS.join(", ")
                ),
            )])
        }
    };
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        let key = item.key.as_str();
        if !keys_of(kind).contains(&key) {
            let known = keys_of(kind);
            let msg = if known.is_empty() {
                format!("a `{kind}` schedule takes no keys, found `{key}`")
            } else {
                format!(
                    "unknown key `{key}` for a `{kind}` schedule: the keys are {}",
                    known.join(", ")
                )
            };
            errors.push((item.key_at.clone(), msg));
            continue;
        }
        if seen.contains(&key) {
            errors.push((item.key_at.clone(), format!("`{key}` is set twice")));
            continue;
        }
        seen.push(key);
        let mut cx = ItemCx {
            item,
            index: &index,
            errors: &mut errors,
        };
        match &mut s {
            Schedule::Naive => {}
            Schedule::Gemm(g) => match key {
                "outer" => g.outer = cx.indices(),
                "m" => g.m = cx.indices(),
                "n" => g.n = cx.indices(),
                "k" => g.k = cx.indices(),
                "mr" => g.mr = cx.factor(),
                "nr" => g.nr = cx.factor(),
                "mc" => g.mc = cx.factor(),
                "kc" => g.kc = cx.factor(),
                "nc" => g.nc = cx.factor(),
                "pack" => g.pack = cx.packing(),
                "ukernel" => g.ukernel = cx.ukernel(),
                "parallel" => g.parallel = cx.indices(),
                "epilogue" => g.epilogue = cx.epilogue(),
                _ => g.parallel_blocks = cx.blocks(),
            },
            Schedule::Loops(l) | Schedule::Softmax(l) => match key {
                "order" => l.order = cx.indices(),
                "vector" => l.vector = cx.vector(),
                "unroll" => l.unroll = cx.factored(),
                _ => l.parallel = cx.indices(),
            },
            Schedule::Attention(a) => match key {
                "qb" => a.qb = cx.factor(),
                "kb" => a.kb = cx.factor(),
                "hb" => a.hb = cx.factor(),
                "mr" => a.mr = cx.factor(),
                _ => a.nr = cx.factor(),
            },
        }
    }
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(errors)
    }
}

/// Reads one item's value as the type its key needs.
struct ItemCx<'a, L, F> {
    item: &'a RawItem<L>,
    index: &'a F,
    errors: &'a mut Vec<(L, String)>,
}

impl<L: Clone, F: Fn(&str) -> Option<IndexId>> ItemCx<'_, L, F> {
    fn fail<T>(&mut self, at: L, message: String) -> Option<T> {
        self.errors.push((at, message));
        None
    }

    fn expected<T>(&mut self, what: &str) -> Option<T> {
        let at = self.item.value_at.clone();
        let key = self.item.key.clone();
        self.fail(at, format!("`{key}` takes {what}"))
    }

    /// A positive integer up to [`MAX_FACTOR`].
    fn factor(&mut self) -> Option<u64> {
        match self.item.value {
            RawValue::Int(n) if (1..=MAX_FACTOR).contains(&n) => Some(n),
            _ => self.expected(&format!("an integer from 1 to {MAX_FACTOR}")),
        }
    }

    /// `[name, ...]` (no factors), as names; `what` for messages.
    fn names(&mut self, what: &str) -> Option<Vec<(String, L)>> {
        let RawValue::List(list) = &self.item.value else {
            return self.expected(&format!("a list of {what} `[...]`"));
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (name, factor, at) in list {
            if factor.is_some() {
                let key = self.item.key.clone();
                self.errors
                    .push((at.clone(), format!("`{key}` lists {what} without `:n`")));
                ok = false;
            }
            out.push((name.clone(), at.clone()));
        }
        ok.then_some(out)
    }

    fn resolve(&mut self, name: &str, at: &L) -> Option<IndexId> {
        match (self.index)(name) {
            Some(id) => Some(id),
            None => self.fail(at.clone(), format!("the op has no index `{name}`")),
        }
    }

    /// `[i, j]`: distinct indices of the op.
    fn indices(&mut self) -> Option<Vec<IndexId>> {
        let names = self.names("indices")?;
        let mut out: Vec<IndexId> = Vec::new();
        let mut ok = true;
        for (name, at) in &names {
            match self.resolve(name, at) {
                Some(id) if out.contains(&id) => {
                    let key = self.item.key.clone();
                    self.errors
                        .push((at.clone(), format!("`{key}` lists `{name}` twice")));
                    ok = false;
                }
                Some(id) => out.push(id),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `[i:4, j:2]`: distinct indices with factors.
    fn factored(&mut self) -> Option<Vec<(IndexId, u64)>> {
        let RawValue::List(list) = &self.item.value else {
            return self.expected("a list `[index:factor, ...]`");
        };
        let key = self.item.key.clone();
        let mut out: Vec<(IndexId, u64)> = Vec::new();
        let mut ok = true;
        for (name, factor, at) in list {
            let Some(id) = self.resolve(name, at) else {
                ok = false;
                continue;
            };
            match factor {
                Some(n) if (1..=MAX_FACTOR).contains(n) => {
                    if out.iter().any(|&(i, _)| i == id) {
                        self.errors
                            .push((at.clone(), format!("`{key}` lists `{name}` twice")));
                        ok = false;
                    }
                    out.push((id, *n));
                }
                _ => {
                    self.errors.push((
                        at.clone(),
                        format!("`{key}` needs `{name}:n` with n from 1 to {MAX_FACTOR}"),
                    ));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `[]` or `[i:4]`.
    fn vector(&mut self) -> Option<Option<(IndexId, u64)>> {
        let list = self.factored()?;
        match list[..] {
            [] => Some(None),
            [one] => Some(Some(one)),
            _ => self.expected("at most one `index:lanes`"),
        }
    }

    /// `[a, b]`, `[b]`, `[a]` or `[]`.
    fn packing(&mut self) -> Option<Packing> {
        let names = self.names("operands (`a`, `b`)")?;
        let mut p = Packing { a: false, b: false };
        for (name, at) in names {
            let slot = match name.as_str() {
                "a" => &mut p.a,
                "b" => &mut p.b,
                _ => return self.fail(at, format!("`pack` lists `a` and `b`, found `{name}`")),
            };
            if *slot {
                return self.fail(at, format!("`pack` lists `{name}` twice"));
            }
            *slot = true;
        }
        Some(p)
    }

    fn ukernel(&mut self) -> Option<MicroKernel> {
        let RawValue::Name(name) = &self.item.value else {
            return self.expected("a micro-kernel family");
        };
        match MicroKernel::ALL.into_iter().find(|k| k.name() == name) {
            Some(k) => Some(k),
            None => {
                let names: Vec<&str> = MicroKernel::ALL.iter().map(|k| k.name()).collect();
                let at = self.item.value_at.clone();
                self.fail(
                    at,
                    format!(
                        "unknown micro-kernel `{name}`: the families are {}",
                        names.join(", ")
                    ),
                )
            }
        }
    }

    /// `[scale, bias, relu]`: epilogue steps in the order they apply.
    fn epilogue(&mut self) -> Option<Vec<EpilogueStep>> {
        let names = self.names("epilogue steps")?;
        let mut out = Vec::new();
        for (name, at) in names {
            match EpilogueStep::ALL.into_iter().find(|s| s.name() == name) {
                Some(s) => out.push(s),
                None => {
                    let all: Vec<&str> = EpilogueStep::ALL.iter().map(|s| s.name()).collect();
                    return self.fail(
                        at,
                        format!(
                            "unknown epilogue step `{name}`: the steps are {}",
                            all.join(", ")
                        ),
                    );
                }
            }
        }
        Some(out)
    }

    fn blocks(&mut self) -> Option<Vec<BlockLoop>> {
        let names = self.names("blocking loops (`jc`, `ic`)")?;
        let mut out = Vec::new();
        for (name, at) in names {
            match BlockLoop::ALL.into_iter().find(|b| b.name() == name) {
                Some(b) if out.contains(&b) => {
                    return self.fail(at, format!("`parallel_blocks` lists `{name}` twice"))
                }
                Some(b) => out.push(b),
                None => {
                    return self.fail(
                        at,
                        format!("`parallel_blocks` lists `jc` and `ic`, found `{name}`"),
                    )
                }
            }
        }
        Some(out)
    }
}

// ----- legality -----------------------------------------------------------------------------

/// The roles of a contraction's operands that a GEMM schedule relies on: the op is an `add`
/// reduction of a float `mul(%a, %b)` of two different inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmOperands {
    /// The input (body `%n`) that is multiplied first.
    pub first: u32,
    /// The other input.
    pub second: u32,
}

/// The two multiplied inputs when `g` has the GEMM shape, else why not.
pub fn gemm_operands(g: &Generic) -> Result<GemmOperands, String> {
    if !g.dtype.is_float() {
        return Err(format!(
            "a `gemm` schedule needs a float op, this one is {}",
            g.dtype
        ));
    }
    if g.reduce.as_ref().map(|r| r.kind) != Some(ReduceKind::Add) {
        return Err("a `gemm` schedule needs a `reduce add`".into());
    }
    match &g.body {
        Expr::Binary(super::BinaryFn::Mul, a, b) => match (&**a, &**b) {
            (Expr::Input(x), Expr::Input(y)) if x != y => Ok(GemmOperands {
                first: *x,
                second: *y,
            }),
            _ => Err("a `gemm` schedule needs the body `mul(%a, %b)` of two inputs".into()),
        },
        _ => Err("a `gemm` schedule needs the body `mul(%a, %b)` of two inputs".into()),
    }
}

/// The stack bytes of the block a blocking loop packs for itself under schedule `s` of `g`
/// when some loop of the nest runs in parallel (so that each task packs its own): A's
/// `mc x kc` block for `ic` when A is packed, B's `kc x nc` block for `jc` when `jc` or an
/// outer loop is parallel; `None` when the block is a temporary of the function or the
/// schedule does not say enough.
pub fn scoped_block_bytes(g: &Generic, s: &GemmSchedule, block: BlockLoop) -> Option<u64> {
    let blocks = s.parallel_blocks.as_deref()?;
    let outer = s.parallel.as_deref()?.iter().any(|i| g.output.contains(i));
    let (rows, tile) = match block {
        BlockLoop::Ic if s.pack?.a && (outer || !blocks.is_empty()) => (s.mc?, s.mr?),
        BlockLoop::Jc if outer || blocks.contains(&BlockLoop::Jc) => (s.nc?, s.nr?),
        BlockLoop::Ic | BlockLoop::Jc => return None,
    };
    let bytes = g.dtype.size_bytes() as u64;
    Some(rows.div_ceil(tile) * tile * s.kc? * bytes)
}

/// Whether every block that schedule `s` of `g` scopes to a parallel loop fits
/// [`MAX_SCOPED_BLOCK_BYTES`].
pub fn scoped_blocks_fit(g: &Generic, s: &GemmSchedule) -> bool {
    BlockLoop::ALL
        .into_iter()
        .filter_map(|b| scoped_block_bytes(g, s, b))
        .all(|b| b <= MAX_SCOPED_BLOCK_BYTES)
}

/// The stack bytes all scoped buffers of `g`'s nest take under schedule `s`: the blocks of its
/// parallel blocking loops and the `mr x nr` tile of C.
pub fn scoped_bytes(g: &Generic, s: &Schedule) -> u64 {
    if let Schedule::Attention(a) = s {
        return a.scratch_bytes(g.dtype.size_bytes() as u64).unwrap_or(0);
    }
    let Schedule::Gemm(s) = s else { return 0 };
    let tile = s.mr.unwrap_or(0) * s.nr.unwrap_or(0) * g.dtype.size_bytes() as u64;
    BlockLoop::ALL
        .into_iter()
        .filter_map(|b| scoped_block_bytes(g, s, b))
        .fold(tile, u64::saturating_add)
}

/// Which inputs (by position) read index `i` through their map.
fn readers(g: &Generic, i: IndexId) -> impl Iterator<Item = usize> + '_ {
    g.inputs
        .iter()
        .enumerate()
        .filter_map(move |(n, input)| input.map.contains(&super::AxisMap::Index(i)).then_some(n))
}

/// Checks schedule `s` against its op `g` (the set keys only: a partial schedule passes when
/// what it says fits). Returns every rule broken, as messages; the rules are listed in
/// `docs/schedules.md`.
pub fn check(g: &Generic, s: &Schedule) -> Vec<String> {
    let mut errors = Vec::new();
    let n_indices = g.indices.len();
    let valid = |ids: &[IndexId]| ids.iter().all(|i| (i.0 as usize) < n_indices);
    let name = |i: IndexId| index_name(g, i);
    let is_output = |i: IndexId| g.output.contains(&i);
    match s {
        Schedule::Naive => {}
        Schedule::Gemm(s) => {
            let operands = match gemm_operands(g) {
                Ok(o) => o,
                Err(e) => return vec![e],
            };
            let lists = [
                ("outer", &s.outer),
                ("m", &s.m),
                ("n", &s.n),
                ("k", &s.k),
                ("parallel", &s.parallel),
            ];
            for (key, ids) in lists {
                if let Some(ids) = ids {
                    if !valid(ids) {
                        errors.push(format!("`{key}` names an index out of range"));
                        return errors;
                    }
                }
            }
            // The role of the A operand goes to whichever input reads the `m` indices.
            let (a, b) = match s.m.as_deref().and_then(|m| m.first()) {
                Some(&i) if readers(g, i).any(|n| n == operands.second as usize) => {
                    (operands.second as usize, operands.first as usize)
                }
                _ => (operands.first as usize, operands.second as usize),
            };
            let reads = |n: usize, i: IndexId| readers(g, i).any(|r| r == n);
            let group_rule = |i: IndexId, group: &str| -> Option<&'static str> {
                let (in_a, in_b, out) = (reads(a, i), reads(b, i), is_output(i));
                let ok = match group {
                    "m" => out && in_a && !in_b,
                    "n" => out && in_b && !in_a,
                    _ => !out && in_a && in_b,
                };
                (!ok).then_some(match group {
                    "m" => "an output index read by A only",
                    "n" => "an output index read by B only",
                    _ => "a reduced index read by both A and B",
                })
            };
            for (key, ids) in [("m", &s.m), ("n", &s.n), ("k", &s.k)] {
                let Some(ids) = ids else { continue };
                if ids.is_empty() {
                    errors.push(format!("`{key}` is empty: a GEMM needs M, N and K"));
                } else if ids.len() > 1 {
                    errors.push(format!(
                        "`{key}` lists {} indices: each GEMM dimension is one index (the \
                         others are `outer` loops)",
                        ids.len()
                    ));
                }
                for &i in ids {
                    if let Some(rule) = group_rule(i, key) {
                        errors.push(format!("`{key}` lists `{}`, which is not {rule}", name(i)));
                    }
                }
            }
            // Every index exactly once across the groups and the outer loops.
            let mut count = vec![0usize; n_indices];
            let all_set = s.outer.is_some() && s.m.is_some() && s.n.is_some() && s.k.is_some();
            for ids in [&s.outer, &s.m, &s.n, &s.k].into_iter().flatten() {
                for &i in ids {
                    count[i.0 as usize] += 1;
                }
            }
            for (n, &c) in count.iter().enumerate() {
                let i = IndexId(u32::try_from(n).unwrap_or(u32::MAX));
                if c > 1 {
                    errors.push(format!(
                        "index `{}` is in more than one of outer, m, n, k",
                        name(i)
                    ));
                } else if c == 0 && all_set {
                    errors.push(format!("index `{}` is in none of outer, m, n, k", name(i)));
                }
            }
            if let (Some(mc), Some(mr)) = (s.mc, s.mr) {
                if mc % mr != 0 {
                    errors.push(format!("mc = {mc} is not a multiple of mr = {mr}"));
                }
            }
            if let (Some(nc), Some(nr)) = (s.nc, s.nr) {
                if nc % nr != 0 {
                    errors.push(format!("nc = {nc} is not a multiple of nr = {nr}"));
                }
            }
            let lanes = 16 / g.dtype.size_bytes() as u64;
            if let Some(nr) = s.nr {
                if nr % lanes != 0 {
                    errors.push(format!(
                        "nr = {nr} is not a multiple of the {lanes} {} lanes of a vector",
                        g.dtype
                    ));
                }
            }
            if let (Some(mr), Some(nr)) = (s.mr, s.nr) {
                errors.extend(tile_error(g.dtype, mr, nr, s.ukernel));
            }
            for block in BlockLoop::ALL {
                if let Some(b) =
                    scoped_block_bytes(g, s, block).filter(|&b| b > MAX_SCOPED_BLOCK_BYTES)
                {
                    errors.push(format!(
                        "the packed block of the `{}` loop, scoped to a parallel loop, takes {b} \
                         bytes of stack, more than {MAX_SCOPED_BLOCK_BYTES}",
                        block.name()
                    ));
                }
            }
            if let Some(e) = &s.epilogue {
                if !epilogue::in_order(e) {
                    errors.push(
                        "`epilogue` lists its steps out of order or twice: the order is scale \
                         or divide, bias, relu, cast"
                            .into(),
                    );
                }
            }
            if let Some(par) = &s.parallel {
                for &i in par {
                    if !s.outer.as_ref().is_some_and(|o| o.contains(&i)) || !is_output(i) {
                        errors.push(format!(
                            "`parallel` lists `{}`, which is not an outer output index",
                            name(i)
                        ));
                    }
                }
            }
        }
        Schedule::Loops(s) => check_loops(g, s, &mut errors),
        Schedule::Attention(s) => check_attention(g, s, &mut errors),
        Schedule::Softmax(s) => {
            let rows = match softmax_rows(g) {
                Ok(rows) => rows,
                Err(e) => return vec![e],
            };
            check_loops(g, s, &mut errors);
            if !errors.is_empty() {
                return errors;
            }
            if let Some(order) = &s.order {
                let first_axis = order.iter().position(|i| !rows.contains(i));
                let last_row = order.iter().rposition(|i| rows.contains(i));
                if let (Some(a), Some(r)) = (first_axis, last_row) {
                    if r > a {
                        errors.push(format!(
                            "`order` puts the row index `{}` inside the normalised index `{}`",
                            name(order[r]),
                            name(order[a])
                        ));
                    }
                }
            }
            for &i in s.parallel.iter().flatten() {
                if !rows.contains(&i) {
                    errors.push(format!(
                        "`parallel` lists `{}`, which is a normalised index",
                        name(i)
                    ));
                }
            }
        }
    }
    errors
}

/// The `attention` rules: the op is a GEMM-shaped contraction (`P·V`; whether it really ends
/// an attention chain is a property of the function, which lowering checks), `qb` is a multiple
/// of `mr` and `kb` and `hb` of `nr`, the tile has a micro-kernel, and the scoped buffers fit
/// [`MAX_SCOPED_BLOCK_BYTES`].
fn check_attention(g: &Generic, s: &AttentionSchedule, errors: &mut Vec<String>) {
    if let Err(e) = gemm_operands(g) {
        errors.push(e.replace("`gemm`", "`attention`"));
        return;
    }
    for (key, value, tile, size) in [
        ("qb", s.qb, "mr", s.mr),
        ("kb", s.kb, "nr", s.nr),
        ("hb", s.hb, "nr", s.nr),
    ] {
        if let (Some(v), Some(t)) = (value, size) {
            if v % t != 0 {
                errors.push(format!("{key} = {v} is not a multiple of {tile} = {t}"));
            }
        }
    }
    let lanes = 16 / g.dtype.size_bytes() as u64;
    if let Some(nr) = s.nr {
        if nr % lanes != 0 {
            errors.push(format!(
                "nr = {nr} is not a multiple of the {lanes} {} lanes of a vector",
                g.dtype
            ));
        }
    }
    if let (Some(mr), Some(nr)) = (s.mr, s.nr) {
        // The attention schedule names no family: its tile follows the compilation's kernels.
        errors.extend(tile_error(g.dtype, mr, nr, None));
    }
    if let Some(b) = s
        .scratch_bytes(g.dtype.size_bytes() as u64)
        .filter(|&b| b > MAX_SCOPED_BLOCK_BYTES)
    {
        errors.push(format!(
            "the blocks take {b} bytes of stack, more than {MAX_SCOPED_BLOCK_BYTES}"
        ));
    }
}

/// The `loops` rules (also the base of a `softmax` schedule's): `order` lists every index, the
/// vectorised index is the innermost with the lanes of one 128-bit vector, the unroll factors
/// make at most [`MAX_UNROLLED_COPIES`] copies of the body, `parallel` lists output indices.
fn check_loops(g: &Generic, s: &LoopsSchedule, errors: &mut Vec<String>) {
    let n_indices = g.indices.len();
    let valid = |ids: &[IndexId]| ids.iter().all(|i| (i.0 as usize) < n_indices);
    let name = |i: IndexId| index_name(g, i);
    let is_output = |i: IndexId| g.output.contains(&i);
    for ids in [&s.order, &s.parallel].into_iter().flatten() {
        if !valid(ids) {
            errors.push("the schedule names an index out of range".into());
            return;
        }
    }
    let pairs = s.vector.iter().flatten().chain(s.unroll.iter().flatten());
    if pairs.clone().any(|&(i, _)| (i.0 as usize) >= n_indices) {
        errors.push("the schedule names an index out of range".into());
        return;
    }
    if let Some(order) = &s.order {
        for (n, def) in g.indices.iter().enumerate() {
            let i = IndexId(u32::try_from(n).unwrap_or(u32::MAX));
            if !order.contains(&i) {
                errors.push(format!("`order` does not list index `{}`", def.name));
            }
        }
    }
    if let Some(Some((v, lanes))) = s.vector {
        let want = 16 / g.dtype.size_bytes() as u64;
        if lanes != want {
            errors.push(format!(
                "`vector` has {lanes} lanes; a 128-bit vector of {} has {want}",
                g.dtype
            ));
        }
        if let Some(order) = &s.order {
            if order.last() != Some(&v) {
                errors.push(format!(
                    "the vectorised index `{}` is not the innermost in `order`",
                    name(v)
                ));
            }
        }
    }
    if let Some(unroll) = &s.unroll {
        let copies = unroll
            .iter()
            .try_fold(1u64, |n, &(_, u)| n.checked_mul(u))
            .unwrap_or(u64::MAX);
        if copies > MAX_UNROLLED_COPIES {
            errors.push(format!(
                "`unroll` makes {copies} copies of the body (the product of its factors); at \
                 most {MAX_UNROLLED_COPIES} are allowed"
            ));
        }
    }
    if let Some(par) = &s.parallel {
        for &i in par {
            if !is_output(i) {
                errors.push(format!(
                    "`parallel` lists `{}`, which is not an output index",
                    name(i)
                ));
            }
        }
    }
}

/// The row indices of a `softmax`-scheduled op (the indices its divisor reads; the others are
/// the normalised indices), when the op has the shape of a row-softmax group's division: a float
/// map `div(%e, %s)` of two different inputs, `%s` read at indices only, and at least one index
/// that `%s` does not read. Whether the op really ends a row-softmax group is a property of the
/// function, which lowering checks (`analysis::classify`).
pub fn softmax_rows(g: &Generic) -> Result<Vec<IndexId>, String> {
    let shape = "a `softmax` schedule belongs on the division `div(%e, %s)` of a row-softmax group";
    if !g.dtype.is_float() || g.reduce.is_some() {
        return Err(format!("{shape}, a float map"));
    }
    let Expr::Binary(super::BinaryFn::Div, a, b) = &g.body else {
        return Err(shape.into());
    };
    let (Expr::Input(x), Expr::Input(y)) = (&**a, &**b) else {
        return Err(shape.into());
    };
    let Some(divisor) = g.inputs.get(*y as usize).filter(|_| x != y) else {
        return Err(shape.into());
    };
    let mut rows = Vec::new();
    for axis in &divisor.map {
        match axis {
            super::AxisMap::Index(i) if (i.0 as usize) < g.indices.len() => {
                if !rows.contains(i) {
                    rows.push(*i);
                }
            }
            _ => {
                return Err(format!(
                    "{shape}; the divisor `%{y}` is not read at indices"
                ))
            }
        }
    }
    if rows.len() >= g.indices.len() {
        return Err(format!(
            "{shape}; the divisor `%{y}` varies with every index, so nothing is normalised"
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
