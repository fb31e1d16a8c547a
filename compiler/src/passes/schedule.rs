//! `schedule`: gives ops their schedules (`docs/schedules.md`), chosen by the cost model
//! ([`cost`]) from each op's class ([`crate::analysis::classify`]), its extents and the target
//! ([`Machine`]).
//!
//! - A contraction with M, N and K and a float dtype gets a `gemm` schedule (GETT).
//! - Any other contraction (matrix–vector, dot and outer products, integer contractions) gets a
//!   `loops` schedule that vectorises along the index most operands read with a unit stride in
//!   C order, when the body vectorises.
//! - Maps and reductions get `loops` schedules the same way ([`complete_loops`]).
//! - The division of a row-softmax group gets a `softmax` schedule ([`complete_softmax`]); the
//!   group's other ops keep none (they run inside its nest).
//! - Ops whose body still holds `delta` or `eps` keep no schedule: the naive nest.
//!
//! A schedule an op already has is kept: a complete one as it is, a partial one (from a `.ein`
//! annotation) completed, every key it sets kept. The pipeline options `mr`, `nr`, `mc`, `kc`
//! and `nc` set those keys of every `gemm` schedule the pass completes (an annotation's own keys
//! win). With `random=SEED` every op gets a random *legal* schedule instead ([`random`]), the
//! keys an annotation sets still kept: tests run them against the interpreter, since a
//! schedule may change the speed, never the result.
//!
//! Requires: verified tensor IR (schedules present fit their ops). Guarantees: every schedule
//! is complete and fits its op, or the pass fails naming the op and the rule (an override that
//! does not fit, such as `nr=6` on an f32 op). Changes nothing else.

pub mod cost;
pub mod random;

use super::registry::Options;
use super::{Ir, Pass, PassContext, PassOutput};
use crate::analysis::{classify_function, Contraction, OpClass};
use crate::codegen::UkernelIsa;
use crate::ir::loops::MAX_SCOPED_BYTES;
use crate::ir::tensor::schedule::{
    self, BlockLoop, GemmSchedule, LoopsSchedule, MicroKernel, Packing, Schedule,
};
use crate::ir::tensor::{AxisMap, Extent, Function, Generic, IndexId, Module, OpKind};
use crate::target::{Isa, Machine};
use std::collections::BTreeMap;

/// Keys of every `gemm` schedule that the pipeline string sets (`schedule{kc=128,mr=4}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GemmOverrides {
    /// Register tile rows.
    pub mr: Option<u64>,
    /// Register tile columns.
    pub nr: Option<u64>,
    /// A block rows.
    pub mc: Option<u64>,
    /// Block depth.
    pub kc: Option<u64>,
    /// B block columns.
    pub nc: Option<u64>,
}

/// The `schedule` pass.
#[derive(Clone, Debug)]
pub struct SchedulePass {
    /// The machine schedules are chosen for.
    pub machine: Machine,
    /// Extents known for symbolic dims (besides those the module fixes).
    pub dims: BTreeMap<String, u64>,
    /// Keys set for every `gemm` schedule.
    pub overrides: GemmOverrides,
    /// `Some(seed)`: random legal schedules.
    pub random: Option<u64>,
}

impl SchedulePass {
    /// The pass for the context's target and known extents, with the pipeline's options
    /// (`mr`, `nr`, `mc`, `kc`, `nc`: 0 for the cost model; `random`: 0 for off).
    pub fn from_options(o: &Options, ctx: &PassContext) -> SchedulePass {
        let set = |name| o.get(name).filter(|&v| v > 0);
        SchedulePass {
            // A target einc cannot describe has been rejected before any pass runs; x86-64's
            // defaults are a harmless fallback.
            machine: Machine::for_target(&ctx.target)
                .unwrap_or_else(|| Machine::defaults(Isa::X86_64))
                .with_ukernels(ctx.ukernels),
            dims: ctx.dims.clone(),
            overrides: GemmOverrides {
                mr: set("mr"),
                nr: set("nr"),
                mc: set("mc"),
                kc: set("kc"),
                nc: set("nc"),
            },
            random: set("random"),
        }
    }
}

impl Pass for SchedulePass {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        let Ir::Tensor(mut m) = ir else {
            return Err(format!("expects tensor IR, got {} IR", ir.level()));
        };
        let changed = self.schedule_module(&mut m)?;
        Ok(PassOutput {
            ir: Ir::Tensor(m),
            changed,
        })
    }
}

impl SchedulePass {
    /// Schedules every op of `m`; returns whether any schedule changed.
    pub fn schedule_module(&self, m: &mut Module) -> Result<bool, String> {
        let mut changed = false;
        let mut rng = self.random.map(random::Rng::new);
        let dims = m.dims.clone();
        let known = |e: &Extent| match e {
            Extent::Fixed(n) => Some(*n),
            Extent::Dim(d) => dims
                .iter()
                .find(|x| &x.name == d)
                .and_then(|x| x.value)
                .or_else(|| self.dims.get(d).copied()),
        };
        // Extents the module fixes (a `--dims` hint may be wrong at run time, and a `cast`
        // epilogue is only correct with the whole sum in one K block).
        let fixed = |e: &Extent| match e {
            Extent::Fixed(n) => Some(*n),
            Extent::Dim(d) => dims.iter().find(|x| &x.name == d).and_then(|x| x.value),
        };
        for f in &mut m.funcs {
            let classes = classify_function(f);
            // The ops as they were (the choice for one op reads the types of the values).
            let fcopy = f.clone();
            let fname = f.name.clone();
            // The stack the function's scoped buffers take so far.
            let mut stack = 0u64;
            for (pos, (op, class)) in f.ops.iter_mut().zip(classes).enumerate() {
                let OpKind::Generic(g) = &mut op.kind;
                let chosen = match &mut rng {
                    Some(rng) => Some(random::schedule(rng, g, &class, &self.overrides)),
                    None => self.choose(&fcopy, pos, g, &class, &known),
                };
                // What the op's own schedule sets, which the budget rule below keeps.
                let given = match &g.schedule {
                    Some(Schedule::Gemm(p)) => (p.parallel.is_some(), p.parallel_blocks.is_some()),
                    _ => (false, false),
                };
                let Some(mut s) = chosen else { continue };
                if let Schedule::Gemm(gs) = &mut s {
                    if gs.epilogue.is_none() {
                        // Random schedules take three candidates in four (drawing only for
                        // candidates, so that other programs draw what they drew before).
                        gs.epilogue = epilogue_for(&fcopy, pos, g, gs, &fixed)
                            .filter(|_| rng.as_mut().is_none_or(|rng| rng.below(4) != 0));
                    }
                }
                // Blocks scoped to parallel loops must fit the function's stack budget with
                // the others: past it, a drawn or chosen schedule runs its outer loops, then
                // its blocking loops, serially (what the op's own schedule sets stays).
                let random = self.random.is_some();
                if let Schedule::Gemm(gs) = &mut s {
                    let over = |gs: &GemmSchedule| {
                        !schedule::scoped_blocks_fit(g, gs)
                            || stack + schedule::scoped_bytes(g, &Schedule::Gemm(gs.clone()))
                                > MAX_SCOPED_BYTES
                    };
                    if (random || !given.0) && over(gs) {
                        gs.parallel = Some(Vec::new());
                    }
                    if (random || !given.1) && over(gs) {
                        gs.parallel_blocks = Some(Vec::new());
                    }
                }
                stack += schedule::scoped_bytes(g, &s);
                let problems = schedule::check(g, &s);
                if !problems.is_empty() || !s.missing().is_empty() {
                    let mut text = String::new();
                    schedule::write(&mut text, g, &s);
                    let mut why = problems;
                    why.extend(s.missing().iter().map(|k| format!("`{k}` is not set")));
                    let value = f.values.get(op.result.0 as usize).map(|v| v.name.as_str());
                    return Err(format!(
                        "@{fname}: %{}: the schedule does not fit the op ({}): {text}",
                        value.unwrap_or("?"),
                        why.join("; ")
                    ));
                }
                if g.schedule.as_ref() != Some(&s) {
                    g.schedule = Some(s);
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// The completed schedule of `g` (of class `class`), or `None` to leave it unscheduled.
    fn choose(
        &self,
        f: &Function,
        pos: usize,
        g: &Generic,
        class: &OpClass,
        known: &dyn Fn(&Extent) -> Option<u64>,
    ) -> Option<Schedule> {
        let vectorises = |v: IndexId| crate::lower::vectorises_in_c_order(f, g, v);
        match (&g.schedule, class) {
            (Some(Schedule::Naive), _) => None,
            (Some(Schedule::Gemm(partial)), OpClass::Contraction(c)) => {
                Some(Schedule::Gemm(self.complete_gemm(g, c, partial, known)))
            }
            (Some(Schedule::Loops(partial)), _) => Some(Schedule::Loops(complete_loops(
                g,
                partial,
                known,
                &vectorises,
            ))),
            (Some(Schedule::Softmax(partial)), _) => Some(Schedule::Softmax(complete_softmax(
                g,
                partial,
                known,
                &vectorises,
            ))),
            (Some(Schedule::Attention(partial)), _) => Some(Schedule::Attention(
                super::flash_attention::complete(&self.machine, g, partial, None),
            )),
            // A gemm annotation on an op that is no longer a contraction: the verifier reports
            // it (the check below names the rule).
            (Some(s @ Schedule::Gemm(_)), _) => Some(s.clone()),
            (None, OpClass::Contraction(c)) if gemm_shaped(g, c) => Some(Schedule::Gemm(
                self.complete_gemm(g, c, &GemmSchedule::default(), known),
            )),
            (None, OpClass::Contraction(_)) => Some(Schedule::Loops(complete_loops(
                g,
                &LoopsSchedule::default(),
                known,
                &vectorises,
            ))),
            // A row-softmax group runs as one nest under its division's schedule; its other
            // ops run inside it.
            (None, OpClass::RowSoftmax(group)) if group.div == pos => Some(Schedule::Softmax(
                complete_softmax(g, &LoopsSchedule::default(), known, &vectorises),
            )),
            (None, OpClass::Map | OpClass::Reduction { .. }) => Some(Schedule::Loops(
                complete_loops(g, &LoopsSchedule::default(), known, &vectorises),
            )),
            (None, _) => None,
        }
    }

    /// `partial` with every key set: the GEMM's indices by [`gemm_groups`], the pipeline's
    /// overrides, then the cost model.
    fn complete_gemm(
        &self,
        g: &Generic,
        c: &Contraction,
        partial: &GemmSchedule,
        known: &dyn Fn(&Extent) -> Option<u64>,
    ) -> GemmSchedule {
        let groups = gemm_groups(g, c, partial, known);
        let extent = |ids: &[IndexId]| {
            ids.first()
                .and_then(|i| g.indices.get(i.0 as usize))
                .and_then(|d| known(&d.extent))
        };
        let e = cost::GemmExtents {
            m: extent(&groups.m),
            n: extent(&groups.n),
            k: extent(&groups.k),
        };
        let o = &self.overrides;
        let bytes = g.dtype.size_bytes() as u64;
        // The tile fits the micro-kernel family the schedule names, else the compilation's.
        let family = partial.ukernel.unwrap_or(match self.machine.ukernels {
            UkernelIsa::Cranelift => MicroKernel::Simd128,
            UkernelIsa::Avx2 => MicroKernel::Avx2,
            UkernelIsa::Avx512 => MicroKernel::Avx512,
        });
        let machine = self.machine.with_ukernels(match family {
            MicroKernel::Simd128 => UkernelIsa::Cranelift,
            MicroKernel::Avx2 => UkernelIsa::Avx2,
            MicroKernel::Avx512 => UkernelIsa::Avx512,
        });
        let (mr, nr) = match (partial.mr.or(o.mr), partial.nr.or(o.nr)) {
            (Some(mr), Some(nr)) => (mr, nr),
            (mr, nr) => {
                let (cmr, cnr) = cost::register_tile(&machine, bytes, e);
                (mr.unwrap_or(cmr), nr.unwrap_or(cnr))
            }
        };
        let model = cost::blocks(&machine, bytes, mr, nr, e);
        // A read in place streams its rows (or columns) through the micro-kernel's broadcasts;
        // that is as fast as a packed panel when one of A's GEMM axes has a unit stride in C
        // order (measured: 1024^3 equal, 256^3 7% and 64^3 27% faster in place), so A is packed
        // only when neither has.
        let a_input = a_operand(g, &groups);
        let a_unit = groups
            .m
            .iter()
            .chain(&groups.k)
            .any(|&i| last_axis_once(g, a_input, i));
        // B already is one `nr`-column panel when N is `nr` and B's last axis: the kernel then
        // reads it in place where that axis has a unit stride (lowering packs it otherwise), as
        // `bik,bkj->bij` at 64^3 with a 64-column tile (measured in docs/performance.md).
        let b_input = schedule::gemm_operands(g).map_or(a_input, |o| {
            let other = if o.first as usize == a_input {
                o.second
            } else {
                o.first
            };
            other as usize
        });
        let b_one_panel = e.n == Some(nr)
            && groups
                .n
                .first()
                .is_some_and(|&n| b_input != a_input && last_axis_once(g, b_input, n));
        let outer_output: Vec<IndexId> = groups
            .outer
            .iter()
            .copied()
            .filter(|i| g.output.contains(i))
            .collect();
        GemmSchedule {
            outer: Some(groups.outer),
            m: Some(groups.m),
            n: Some(groups.n),
            k: Some(groups.k),
            mr: Some(mr),
            nr: Some(nr),
            mc: partial.mc.or(o.mc).or(Some(if outer_output.is_empty() {
                parallel_mc(model.mc, e.m, mr)
            } else {
                model.mc
            })),
            kc: partial.kc.or(o.kc).or(Some(model.kc)),
            nc: partial.nc.or(o.nc).or(Some(model.nc)),
            pack: partial.pack.or(Some(Packing {
                a: model.pack_a && !a_unit,
                b: !b_one_panel,
            })),
            ukernel: Some(family),
            parallel: partial.parallel.clone().or(Some(outer_output)),
            // The `ic` blocks: every task reads the packed B block and packs its own A block
            // (the pass runs the blocks serially when those blocks exceed the stack budget).
            parallel_blocks: partial
                .parallel_blocks
                .clone()
                .or(Some(vec![BlockLoop::Ic])),
            epilogue: partial.epilogue.clone(),
        }
    }
}

/// The epilogue steps of GEMM `g` (op `pos` of `f`) under the complete schedule `s`: the maps
/// after it that its store of C can apply ([`schedule::epilogue::find`] and `fits`), or `None`
/// when there are none. `fixed` gives the extents the module fixes.
fn epilogue_for(
    f: &Function,
    pos: usize,
    g: &Generic,
    s: &GemmSchedule,
    fixed: &dyn Fn(&Extent) -> Option<u64>,
) -> Option<Vec<schedule::EpilogueStep>> {
    let epi = schedule::epilogue::find(f, pos, None).ok()?;
    let (Some([m]), Some([n]), Some([k])) = (s.m.as_deref(), s.n.as_deref(), s.k.as_deref()) else {
        return None;
    };
    let outer = s.outer.as_deref().unwrap_or_default();
    let reduced_outer = outer.iter().any(|i| !g.output.contains(i));
    let k_extent = g.indices.get(k.0 as usize).and_then(|d| fixed(&d.extent));
    schedule::epilogue::fits(&epi, *m, *n, reduced_outer, s.kc?, k_extent).ok()?;
    Some(epi.steps)
}

/// The input that plays A (the one reading the `m` index) under `groups`.
fn a_operand(g: &Generic, groups: &GemmGroups) -> usize {
    let m = groups.m.first().copied();
    g.inputs
        .iter()
        .position(|inp| m.is_some_and(|m| inp.map.contains(&AxisMap::Index(m))))
        .unwrap_or(0)
}

/// Whether input `input` of `g` reads index `i` on its last axis, and on no other: in C
/// order, `i` then walks the input with a unit stride.
fn last_axis_once(g: &Generic, input: usize, i: IndexId) -> bool {
    g.inputs.get(input).is_some_and(|inp| {
        inp.map.last() == Some(&AxisMap::Index(i))
            && inp.map.iter().filter(|&&x| x == AxisMap::Index(i)).count() == 1
    })
}

/// Whether contraction `c` runs as a GEMM: it has M, N and K, and `g` is a float op.
pub fn gemm_shaped(g: &Generic, c: &Contraction) -> bool {
    !c.m.is_empty() && !c.n.is_empty() && !c.k.is_empty() && schedule::gemm_operands(g).is_ok()
}

/// The index roles of a GEMM schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemmGroups {
    /// Loops outside the GEMM, outermost first.
    pub outer: Vec<IndexId>,
    /// The M index.
    pub m: Vec<IndexId>,
    /// The N index.
    pub n: Vec<IndexId>,
    /// The K index.
    pub k: Vec<IndexId>,
}

/// The GEMM's indices, keeping those `partial` sets:
///
/// - roles: C's columns (N) are the group of the output's last index when that is an `m` or `n`
///   index of the contraction (so that C's rows are written with unit stride in C order); A is
///   then the other operand;
/// - one index per dimension: the largest known extent, ties to the index that comes last in
///   the output (M, N) or in A's map (K), where a C-order layout has the smaller stride;
/// - `outer`: the batch indices, then the unused M and N indices in output order, then the
///   unused K indices (innermost, so that C is revisited for each);
/// - except that, with every extent known, the roles are swapped when B's packing would read
///   its N index with a large stride while the other operand has its own output index on its
///   last axis, and the sum is long compared with C ([`swap_for_packing`]).
pub fn gemm_groups(
    g: &Generic,
    c: &Contraction,
    partial: &GemmSchedule,
    known: &dyn Fn(&Extent) -> Option<u64>,
) -> GemmGroups {
    let last_out = g.output.last().copied();
    let swap = match partial.m.as_deref().and_then(|m| m.first()) {
        Some(i) => c.n.contains(i),
        None => last_out.is_some_and(|i| c.m.contains(&i)),
    };
    let groups = groups_with_roles(g, c, partial, known, swap);
    if partial.m.is_some() || partial.n.is_some() {
        return groups;
    }
    let other = groups_with_roles(g, c, partial, known, !swap);
    if swap_for_packing(g, c, known, &groups, &other) {
        other
    } else {
        groups
    }
}

/// Whether the roles of `other` beat those of `groups` (the C-order choice): all extents of
/// the GEMM are known; under `groups`, B's N index is not its last axis (so B is packed
/// element by element, reading with a large stride in C order), while under `other` it is
/// (whole vectors); and C, which `other` writes through a tile buffer once per K block (its N
/// index is not C's last axis), is smaller than half of the B elements the vector packing
/// saves. `ij,jk->ji`-like steps with a long sum and a small result (`ij,jk,kl->il`'s first
/// step: 10 x 10 from K = 1000) then pack a row-major operand with vector copies (measured
/// 15.2 -> 12.7 us).
fn swap_for_packing(
    g: &Generic,
    c: &Contraction,
    known: &dyn Fn(&Extent) -> Option<u64>,
    groups: &GemmGroups,
    other: &GemmGroups,
) -> bool {
    let extent = |ids: &[IndexId]| {
        ids.first()
            .and_then(|i| g.indices.get(i.0 as usize))
            .and_then(|d| known(&d.extent))
    };
    let (Some(m), Some(n), Some(k)) = (extent(&groups.m), extent(&groups.n), extent(&groups.k))
    else {
        return false;
    };
    let all_known = c.batch.iter().chain(&c.m).chain(&c.n).chain(&c.k).all(|i| {
        g.indices
            .get(i.0 as usize)
            .is_some_and(|d| known(&d.extent).is_some())
    });
    let b_unit = |gr: &GemmGroups| {
        let b = if a_operand(g, gr) == c.a { c.b } else { c.a };
        let n = gr.n.first().copied();
        g.inputs
            .get(b)
            .is_some_and(|inp| n.is_some_and(|n| inp.map.last() == Some(&AxisMap::Index(n))))
    };
    let k_blocks = k.div_ceil(256);
    all_known && !b_unit(groups) && b_unit(other) && 2 * m * n * k_blocks < k * n
}

/// The GEMM's indices with A the operand reading `c.b`'s indices when `swap` (else `c.a`'s).
fn groups_with_roles(
    g: &Generic,
    c: &Contraction,
    partial: &GemmSchedule,
    known: &dyn Fn(&Extent) -> Option<u64>,
    swap: bool,
) -> GemmGroups {
    let last_out = g.output.last().copied();
    let (a, m_group, n_group) = if swap {
        (c.b, &c.n, &c.m)
    } else {
        (c.a, &c.m, &c.n)
    };
    let pos_in = |list: &[IndexId], i: IndexId| list.iter().position(|&x| x == i);
    let a_map: Vec<IndexId> = g
        .inputs
        .get(a)
        .map(|inp| {
            inp.map
                .iter()
                .filter_map(|m| match m {
                    AxisMap::Index(i) => Some(*i),
                    AxisMap::Fixed(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let pick = |group: &[IndexId], order: &[IndexId]| -> Vec<IndexId> {
        let best = group.iter().copied().max_by_key(|&i| {
            let size = g.indices.get(i.0 as usize).and_then(|d| known(&d.extent));
            (size.unwrap_or(cost::ASSUMED_EXTENT), pos_in(order, i))
        });
        best.into_iter().collect()
    };
    let m = partial
        .m
        .clone()
        .unwrap_or_else(|| pick(m_group, &g.output));
    let n = partial
        .n
        .clone()
        .unwrap_or_else(|| match last_out.filter(|i| n_group.contains(i)) {
            Some(i) => vec![i],
            None => pick(n_group, &g.output),
        });
    let k = partial.k.clone().unwrap_or_else(|| pick(&c.k, &a_map));
    let outer = partial.outer.clone().unwrap_or_else(|| {
        let used = |i: &IndexId| m.contains(i) || n.contains(i) || k.contains(i);
        let rest_out = g.output.iter().copied().filter(|i| !used(i));
        let rest_k = c.k.iter().copied().filter(|i| !used(i));
        rest_out.chain(rest_k).collect()
    });
    GemmGroups { outer, m, n, k }
}

/// `partial` with every key set, for any op:
///
/// - `vector`: when the body vectorises, the index that addresses the last axis of the most
///   operands (the output and the inputs: in C order those axes have unit stride), ties to the
///   later index in the op's loop order; none when no operand's last axis is an index, or the
///   index's known extent is smaller than a vector;
/// - `order`: the output indices in output order, then the reduced ones, with the vectorised
///   index moved innermost;
/// - `unroll`: a vectorised reduced index by 4 (four independent vector accumulators hide the
///   add latency), nothing else;
/// - `parallel`: the output indices outside the first reduced loop.
pub fn complete_loops(
    g: &Generic,
    partial: &LoopsSchedule,
    known: &dyn Fn(&Extent) -> Option<u64>,
    vectorises: &dyn Fn(IndexId) -> bool,
) -> LoopsSchedule {
    let lanes = 16 / g.dtype.size_bytes() as u64;
    let reduced: Vec<IndexId> = g.reduce.as_ref().map_or(Vec::new(), |r| r.over.clone());
    let natural: Vec<IndexId> = g.output.iter().chain(&reduced).copied().collect();
    let vector = partial.vector.unwrap_or_else(|| {
        if let Some(order) = &partial.order {
            // The innermost index of a given order, when something reads it with unit stride.
            let last = *order.last()?;
            return (unit_readers(g, last) > 0 && vectorises(last)).then_some((last, lanes));
        }
        natural
            .iter()
            .copied()
            .filter(|&i| {
                let size = g.indices.get(i.0 as usize).and_then(|d| known(&d.extent));
                unit_readers(g, i) > 0 && size.is_none_or(|n| n >= lanes) && vectorises(i)
            })
            .enumerate()
            .max_by_key(|&(pos, i)| (unit_readers(g, i), pos))
            .map(|(_, i)| (i, lanes))
    });
    let order = partial.order.clone().unwrap_or_else(|| {
        let v = vector.map(|(i, _)| i);
        let mut order: Vec<IndexId> = natural.iter().copied().filter(|&i| Some(i) != v).collect();
        order.extend(v);
        order
    });
    let unroll = partial.unroll.clone().unwrap_or_else(|| match vector {
        Some((v, _)) if reduced.contains(&v) => vec![(v, 4)],
        _ => Vec::new(),
    });
    let parallel = partial.parallel.clone().unwrap_or_else(|| {
        order
            .iter()
            .copied()
            .take_while(|i| !reduced.contains(i))
            .filter(|i| g.output.contains(i))
            .collect()
    });
    LoopsSchedule {
        order: Some(order),
        vector: Some(vector),
        unroll: Some(unroll),
        parallel: Some(parallel),
    }
}

/// `partial` with every key set, for the division `g` of a row-softmax group
/// (`docs/schedules.md`): `order` the row indices in output order, then the normalised ones;
/// `vector` the last normalised index when the output and the normalised values have it on
/// their last axis (unit stride in C order) and the body vectorises; `unroll` that index by
/// [`SOFTMAX_UNROLL`], or by the largest power of two of vectors that fits its extent when
/// that is known and shorter; `parallel` the row indices. A `g` that is not a division of the softmax
/// shape keeps `partial` (the verifier reports it).
pub fn complete_softmax(
    g: &Generic,
    partial: &LoopsSchedule,
    known: &dyn Fn(&Extent) -> Option<u64>,
    vectorises: &dyn Fn(IndexId) -> bool,
) -> LoopsSchedule {
    let Some((rows, normalised)) = softmax_indices(g) else {
        return partial.clone();
    };
    let lanes = 16 / g.dtype.size_bytes() as u64;
    let order = partial.order.clone().unwrap_or_else(|| {
        let rows_first = g.output.iter().copied().filter(|i| rows.contains(i));
        rows_first.chain(normalised.iter().copied()).collect()
    });
    let vector = partial.vector.unwrap_or_else(|| {
        let last = *order.last()?;
        let unit = g.output.last() == Some(&last) && unit_readers(g, last) > 1;
        (normalised.contains(&last) && unit && vectorises(last)).then_some((last, lanes))
    });
    let unroll = partial.unroll.clone().unwrap_or_else(|| match vector {
        Some((v, lanes)) => {
            let extent = g.indices.get(v.0 as usize).and_then(|d| known(&d.extent));
            let fits = extent.map_or(SOFTMAX_UNROLL, |n| {
                (n / lanes).max(1).checked_ilog2().map_or(1, |k| 1 << k)
            });
            let u = SOFTMAX_UNROLL.min(fits);
            if u > 1 {
                vec![(v, u)]
            } else {
                Vec::new()
            }
        }
        None => Vec::new(),
    });
    let parallel = partial.parallel.clone().unwrap_or(rows);
    LoopsSchedule {
        order: Some(order),
        vector: Some(vector),
        unroll: Some(unroll),
        parallel: Some(parallel),
    }
}

/// The `ic` blocks a known M is cut into at least when no batch loop runs in parallel, so that
/// the parallel `ic` loop has work for several threads (a known M no larger than the cost
/// model's `mc` would be one block): four serve two to four threads evenly.
const PARALLEL_M_BLOCKS: u64 = 4;

/// `mc` for the parallel `ic` loop: the cost model's `mc`, or less so that a known M makes at
/// least [`PARALLEL_M_BLOCKS`] blocks, but not below 4 tiles of `mr` rows.
fn parallel_mc(mc: u64, m: Option<u64>, mr: u64) -> u64 {
    let Some(m) = m else { return mc };
    let share = m.div_ceil(PARALLEL_M_BLOCKS).next_multiple_of(mr.max(1));
    mc.min(share.max(4 * mr)).max(mr)
}

/// Vectors per step of a row softmax's loops. Each of its three passes (`lower/softmax.rs`)
/// carries at most one value per lane, so the unrolling only amortises loop control: on a
/// 2048x1024 f32 softmax (Zen 4, thread CPU time, 2026-12-01) 2, 4, 8 and 16 vectors took
/// 3.04, 2.95, 3.02 and 2.98 ms; 4 is the smallest code among the fastest.
const SOFTMAX_UNROLL: u64 = 4;

/// The row indices and the normalised indices (in output order) of `g` when it has the shape
/// of a row-softmax group's division ([`schedule::softmax_rows`]).
fn softmax_indices(g: &Generic) -> Option<(Vec<IndexId>, Vec<IndexId>)> {
    let rows = schedule::softmax_rows(g).ok()?;
    let normalised = g
        .output
        .iter()
        .copied()
        .filter(|i| !rows.contains(i))
        .collect();
    Some((rows, normalised))
}

/// How many operands of `g` (inputs and the output) have index `i` on their last axis.
fn unit_readers(g: &Generic, i: IndexId) -> usize {
    let inputs = g
        .inputs
        .iter()
        .filter(|inp| inp.map.last() == Some(&AxisMap::Index(i)))
        .count();
    inputs + usize::from(g.output.last() == Some(&i))
}
