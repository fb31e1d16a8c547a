//! One `generic` → one loop nest, in the loop order of its `loops` schedule (or, without a
//! schedule, the naive order: output indices in output order, then the reduced indices).
//!
//! **Accumulation.** Let `p` be the level of the deepest output loop. The reduced loops below
//! it carry the accumulator in a register: it starts at level `p` (from the reduction's
//! identity), each innermost iteration combines it with the body value (an `add` reduction of a
//! float `mul` is one `fma`), and the result is stored at level `p`. A reduced loop *above* an
//! output loop (a schedule may put it there) accumulates in memory instead: an initial nest
//! fills the result with the identity, the accumulator starts from the stored element at level
//! `p`, and is stored back there. Either way each element combines the same terms, in the
//! order of the reduced loops in the schedule; without a schedule the nest is exactly the
//! naive one.
//!
//! **Vectorisation.** With `vector=[v:lanes]` (`v` innermost) the nest runs `v` in vectors
//! where the buffers allow it: every input that reads `v` reads it on its last axis only, with
//! a unit stride, and, when `v` is an output index, so does the result. Then:
//! - `v` an output index: a vector loop over the full vectors of `v` (load, compute, store
//!   `lanes` elements at once), then a scalar loop over the rest;
//! - `v` reduced: `u` vector accumulators (`u` is `v`'s unroll factor), each summing every
//!   `u`-th vector; they are combined in order (`((a0 ⊕ a1) ⊕ a2) ⊕ ...`), the remaining full
//!   vectors added one at a time, the lanes combined from lane 0 up (`reduce_lanes`), the
//!   result combined into the accumulator, and a scalar loop adds the remaining elements.
//!
//! Where the buffers do not allow it (a strided argument in the general kernel variant), the
//! same loop order runs in scalar code. Every output loop the schedule lists in `parallel` is
//! marked `parallel` (without a schedule, every output loop is).

use super::body::BodyLowerer;
use super::{FnLowerer, LowerError};
use crate::ir::loops::{
    self, BinaryFn, BufferId, Carried, For, IndexOp, Inst, Op, ReduceKind, Type, ValueId,
};
use crate::ir::tensor::schedule::LoopsSchedule;
use crate::ir::tensor::{AxisMap, Expr, Generic, IndexId};

/// A `loops` schedule resolved for lowering.
#[derive(Clone, Debug)]
pub(super) struct NestPlan {
    /// Every index once, outermost first.
    pub order: Vec<IndexId>,
    /// The vectorised index (innermost) and its lanes.
    pub vector: Option<(IndexId, u32)>,
    /// Unroll factors.
    pub unroll: Vec<(IndexId, u64)>,
    /// Loops marked parallel.
    pub parallel: Vec<IndexId>,
}

impl NestPlan {
    /// The naive nest: output indices in output order (all parallel), then the reduced ones.
    pub fn naive(g: &Generic) -> NestPlan {
        let over = g.reduce.as_ref().map_or(&[][..], |r| &r.over[..]);
        NestPlan {
            order: g.output.iter().chain(over).copied().collect(),
            vector: None,
            unroll: Vec::new(),
            parallel: g.output.clone(),
        }
    }

    /// The plan of a complete `loops` schedule.
    pub fn from_schedule(s: &LoopsSchedule) -> Option<NestPlan> {
        Some(NestPlan {
            order: s.order.clone()?,
            vector: s
                .vector?
                .map(|(i, lanes)| (i, u32::try_from(lanes).unwrap_or(u32::MAX))),
            unroll: s.unroll.clone()?,
            parallel: s.parallel.clone()?,
        })
    }

    fn unroll_of(&self, i: IndexId) -> u64 {
        self.unroll
            .iter()
            .find(|&&(x, _)| x == i)
            .map_or(1, |&(_, n)| n)
    }
}

/// Whether the buffers let index `v` run in vectors (see the module docs).
fn vector_fits(fl: &FnLowerer, g: &Generic, out: BufferId, v: IndexId) -> Result<bool, LowerError> {
    let unit_last = |b: BufferId| -> Result<bool, LowerError> {
        let def = fl.buffer_def(b)?;
        Ok(super::unit_last(def))
    };
    for input in &g.inputs {
        let uses = input
            .map
            .iter()
            .filter(|&&a| a == AxisMap::Index(v))
            .count();
        if uses == 0 {
            continue;
        }
        let on_last = uses == 1 && input.map.last() == Some(&AxisMap::Index(v));
        if !on_last || !unit_last(fl.buffer_of(input.value)?)? {
            return Ok(false);
        }
    }
    if g.output.contains(&v) && (g.output.last() != Some(&v) || !unit_last(out)?) {
        return Ok(false);
    }
    Ok(true)
}

/// One loop of the nest: its variable and bound.
#[derive(Clone, Copy)]
struct Level {
    var: ValueId,
    upper: ValueId,
}

/// Lowers `g` under `plan` into a nest storing into buffer `out`.
pub(super) fn lower_nest(
    fl: &mut FnLowerer,
    g: &Generic,
    out: BufferId,
    plan: &NestPlan,
) -> Result<Vec<Inst>, LowerError> {
    let n = plan.order.len();
    let mut depth_of: Vec<Option<usize>> = vec![None; g.indices.len()];
    for (pos, id) in plan.order.iter().enumerate() {
        match depth_of.get_mut(id.0 as usize) {
            Some(slot @ None) => *slot = Some(pos + 1),
            Some(Some(_)) => {
                return Err(fl.error(format!(
                    "index `{}` is looped over twice",
                    g.index_def(*id).name
                )))
            }
            None => return Err(fl.error(format!("index #{} is out of range", id.0))),
        }
    }
    let depth_of = depth_of
        .iter()
        .zip(&g.indices)
        .map(|(d, def)| {
            d.ok_or_else(|| {
                fl.error(format!(
                    "index `{}` is neither an output index nor reduced",
                    def.name
                ))
            })
        })
        .collect::<Result<Vec<usize>, _>>()?;

    let zero = fl.index_const(0);
    let mut vars = vec![zero; g.indices.len()];
    let mut levels_of = Vec::with_capacity(n);
    for &id in &plan.order {
        let def = &g.indices[id.0 as usize];
        let upper = fl.extent(&def.extent)?;
        let var = fl.named_value(&def.name, Type::Index);
        vars[id.0 as usize] = var;
        levels_of.push(Level { var, upper });
    }
    let is_output = |i: IndexId| g.output.contains(&i);
    // The deepest output loop; a reduced loop above it accumulates in memory.
    let p = plan
        .order
        .iter()
        .rposition(|&i| is_output(i))
        .map_or(0, |pos| pos + 1);
    let memory = g.reduce.is_some()
        && plan.order[..p.saturating_sub(1)]
            .iter()
            .any(|&i| !is_output(i));
    let vector = match plan.vector {
        Some((v, lanes)) if plan.order.last() == Some(&v) && vector_fits(fl, g, out, v)? => {
            Some((v, lanes))
        }
        _ => None,
    };

    let mut pre = Vec::new();
    if memory {
        let kind = g.reduce.as_ref().map(|r| r.kind).unwrap_or(ReduceKind::Add);
        let identity = fl.scalar_const(kind.identity(g.dtype));
        pre = fl.fill_nest(out, identity)?;
    }

    let mut levels: Vec<Vec<Inst>> = vec![Vec::new(); n + 1];
    let cx = NestCx {
        g,
        plan,
        out,
        levels: &levels_of,
        p,
        memory,
    };
    let mut body = BodyLowerer::new(fl, g, &mut levels, &vars, &depth_of);
    cx.fill(&mut body, vector)?;
    drop(body);

    // Wrap the plain loops (the carried ones were built by `fill`), innermost first.
    let plain_from = cx.plain_depth(vector);
    for d in (1..=plain_from).rev() {
        let insts = std::mem::take(&mut levels[d]);
        let id = plan.order[d - 1];
        let l = levels_of[d - 1];
        let f = cx.plain_loop(l, zero, 1, id, insts);
        levels[d - 1].push(f);
    }
    pre.append(&mut levels[0]);
    Ok(pre)
}

/// What the parts of one nest share.
struct NestCx<'a> {
    g: &'a Generic,
    plan: &'a NestPlan,
    out: BufferId,
    levels: &'a [Level],
    /// The level of the deepest output loop.
    p: usize,
    /// Whether the result accumulates in memory.
    memory: bool,
}

impl NestCx<'_> {
    /// The number of loops wrapped as plain loops after `fill`: every loop down to `p`, and
    /// below it only when there is no reduction there (then `fill` builds nothing itself),
    /// less the vectorised innermost loop, which `fill` builds.
    fn plain_depth(&self, vector: Option<(IndexId, u32)>) -> usize {
        let n = self.plan.order.len();
        let plain = if self.g.reduce.is_some() && n > self.p {
            self.p
        } else {
            n
        };
        match vector {
            Some((v, _)) if self.g.output.contains(&v) => plain - 1,
            _ => plain,
        }
    }

    /// A loop that carries nothing, over `l`, parallel when the schedule says so.
    fn plain_loop(
        &self,
        l: Level,
        lower: ValueId,
        step: u64,
        id: IndexId,
        insts: Vec<Inst>,
    ) -> Inst {
        let parallel = self.plan.parallel.contains(&id) && self.g.output.contains(&id);
        Inst::For(Box::new(For {
            var: l.var,
            lower,
            upper: l.upper,
            step,
            parallel,
            unroll: self.unroll_hint(id, step),
            carried: Vec::new(),
            body: loops::Block { insts },
            yields: Vec::new(),
        }))
    }

    /// The unroll request for the loop of `id` (none for vector loops, whose factor is their
    /// number of accumulators, nor for a factor of 1 given by no schedule).
    fn unroll_hint(&self, id: IndexId, step: u64) -> Option<u32> {
        if step > 1 || Some(id) == self.plan.vector.map(|(v, _)| v) {
            return None;
        }
        self.plan
            .unroll
            .iter()
            .find(|&&(x, _)| x == id)
            .and_then(|&(_, n)| u32::try_from(n).ok())
    }

    /// Emits the body, the accumulation, the store and the loops `fill` owns (the carried
    /// reduction loops and the vectorised loop) into `body`'s levels.
    fn fill(
        &self,
        body: &mut BodyLowerer,
        vector: Option<(IndexId, u32)>,
    ) -> Result<(), LowerError> {
        let g = self.g;
        let n = self.plan.order.len();
        let ty = Type::Scalar(g.dtype);
        let Some(r) = &g.reduce else {
            // A map: the value is stored where it is computed.
            return match vector {
                Some((v, lanes)) => self.vector_map(body, v, lanes, None),
                None => {
                    let (value, _) = body.expr_of_type(&g.body, ty)?;
                    self.store(body, n, value)
                }
            };
        };
        let kind = r.kind;
        if n == self.p {
            // Every reduced loop is above the innermost (output) loop: read, combine, write.
            return match vector {
                Some((v, lanes)) => self.vector_map(body, v, lanes, Some(kind)),
                None => {
                    let cur = self.load_out(body, n, 1)?;
                    let next = self.combine(body, n, kind, cur, ty)?;
                    self.store(body, n, next)
                }
            };
        }
        // Reduced loops below the deepest output loop carry the accumulator, which starts from
        // the identity (or, accumulating in memory, from the stored element).
        let start = |cx: &Self, body: &mut BodyLowerer| -> Result<ValueId, LowerError> {
            if cx.memory {
                cx.load_out(body, cx.p, 1)
            } else {
                Ok(body.fl.scalar_const(kind.identity(g.dtype)))
            }
        };
        let last_for = if vector.is_some() { n - 1 } else { n };
        let (acc, early_start) = if last_for > self.p {
            (body.fl.new_value("acc", ty), None)
        } else {
            let s = start(self, body)?;
            (s, Some(s))
        };
        let next = match vector {
            Some((v, lanes)) => self.vector_reduction(body, v, lanes, kind, acc)?,
            None => self.combine(body, n, kind, acc, ty)?,
        };
        let start = match early_start {
            Some(s) => s,
            None => start(self, body)?,
        };
        let result = self.carried_loops(body, last_for, acc, next, start)?;
        self.store(body, self.p, result)
    }

    /// `kind(acc, body)` at level `depth` (an `fma` for a float `add` of a `mul`), of type
    /// `ty` (a vector type in vector mode).
    fn combine(
        &self,
        body: &mut BodyLowerer,
        depth: usize,
        kind: ReduceKind,
        acc: ValueId,
        ty: Type,
    ) -> Result<ValueId, LowerError> {
        match (&self.g.body, kind) {
            // The product is rounded once, with the sum, where the target has FMA.
            (Expr::Binary(BinaryFn::Mul, a, b), ReduceKind::Add) if self.g.dtype.is_float() => {
                let (a, _) = body.expr_of_type(a, ty)?;
                let (b, _) = body.expr_of_type(b, ty)?;
                body.emit(depth, Op::Fma(a, b, acc), ty)
            }
            _ => {
                let (v, _) = body.expr_of_type(&self.g.body, ty)?;
                body.emit(depth, Op::Binary(kind.combine_fn(), acc, v), ty)
            }
        }
    }

    /// Loads the result element(s) at the current point, at level `depth`.
    fn load_out(
        &self,
        body: &mut BodyLowerer,
        depth: usize,
        lanes: u32,
    ) -> Result<ValueId, LowerError> {
        let ty = if lanes == 1 {
            Type::Scalar(self.g.dtype)
        } else {
            Type::Vector(self.g.dtype, lanes)
        };
        let op = Op::Load {
            buffer: self.out,
            index: self.out_index(body),
            lanes,
        };
        body.emit(depth, op, ty)
    }

    /// The position of the result element at the current point.
    fn out_index(&self, body: &BodyLowerer) -> Vec<ValueId> {
        self.g.output.iter().map(|&i| body.var(i)).collect()
    }

    fn store(
        &self,
        body: &mut BodyLowerer,
        depth: usize,
        value: ValueId,
    ) -> Result<(), LowerError> {
        let index = self.out_index(body);
        body.level(depth)?.push(Inst::Store {
            buffer: self.out,
            index,
            value,
        });
        Ok(())
    }

    /// Wraps levels `p + 1 ..= last_for` in loops carrying the accumulator: the innermost
    /// loop's argument is `acc` and it yields `next`; each outer loop passes its argument in as
    /// the inner loop's initial value and yields the inner loop's result. Appends the
    /// outermost loop to level `p` and returns its result (`next` itself when there is no
    /// such loop).
    fn carried_loops(
        &self,
        body: &mut BodyLowerer,
        last_for: usize,
        acc: ValueId,
        next: ValueId,
        start: ValueId,
    ) -> Result<ValueId, LowerError> {
        let ty = body.fl.type_of(acc)?;
        let zero = body.fl.index_const(0);
        let mut arg = acc;
        let mut yielded = next;
        let mut inner: Option<Inst> = None;
        for d in (self.p + 1..=last_for).rev() {
            let l = self.levels[d - 1];
            let id = self.plan.order[d - 1];
            let init = if d == self.p + 1 {
                start
            } else {
                body.fl.new_value("acc", ty)
            };
            let result = body.fl.new_value("red", ty);
            let mut insts = std::mem::take(body.level(d)?);
            insts.extend(inner.take());
            inner = Some(Inst::For(Box::new(For {
                var: l.var,
                lower: zero,
                upper: l.upper,
                step: 1,
                parallel: false,
                unroll: self.unroll_hint(id, 1),
                carried: vec![Carried { arg, init, result }],
                body: loops::Block { insts },
                yields: vec![yielded],
            })));
            arg = init;
            yielded = result;
        }
        body.level(self.p)?.extend(inner);
        Ok(yielded)
    }

    /// The end of the full vectors of the loop of `v`: `upper - upper % step`, at level
    /// `depth`.
    fn vector_end(
        &self,
        body: &mut BodyLowerer,
        depth: usize,
        upper: ValueId,
        step: u64,
    ) -> Result<ValueId, LowerError> {
        let step = body.fl.index_const(i64::try_from(step).unwrap_or(i64::MAX));
        let rem = body.emit(
            depth,
            Op::IndexArith(IndexOp::Rem, upper, step),
            Type::Index,
        )?;
        body.emit(depth, Op::IndexArith(IndexOp::Sub, upper, rem), Type::Index)
    }

    /// The innermost loop over output index `v` in vectors, then the scalar tail: each point
    /// stores the body value, or (`kind`) combines it into the stored element.
    fn vector_map(
        &self,
        body: &mut BodyLowerer,
        v: IndexId,
        lanes: u32,
        kind: Option<ReduceKind>,
    ) -> Result<(), LowerError> {
        let n = self.plan.order.len();
        let l = self.levels[n - 1];
        let dtype = self.g.dtype;
        let end = self.vector_end(body, 0, l.upper, u64::from(lanes))?;
        let zero = body.fl.index_const(0);
        let tail_var = body.fl.named_value("tail", Type::Index);
        let parts = [
            (lanes, l.var, zero, end, u64::from(lanes)),
            (1, tail_var, end, l.upper, 1),
        ];
        for (lanes, var, lower, upper, step) in parts {
            let ty = if lanes == 1 {
                Type::Scalar(dtype)
            } else {
                Type::Vector(dtype, lanes)
            };
            body.set_vector((lanes > 1).then_some((v, lanes)));
            body.set_var(v, var);
            let value = match kind {
                None => body.expr_of_type(&self.g.body, ty)?.0,
                Some(kind) => {
                    let cur = self.load_out(body, n, lanes)?;
                    self.combine(body, n, kind, cur, ty)?
                }
            };
            self.store(body, n, value)?;
            let insts = std::mem::take(body.level(n)?);
            let f = self.plain_loop(Level { var, upper }, lower, step, v, insts);
            body.level(n - 1)?.push(f);
        }
        body.set_vector(None);
        body.set_var(v, l.var);
        Ok(())
    }

    /// The vectorised innermost reduced loop over `v` (see the module docs), at level `n - 1`,
    /// combining into `acc`; returns the combined accumulator.
    fn vector_reduction(
        &self,
        body: &mut BodyLowerer,
        v: IndexId,
        lanes: u32,
        kind: ReduceKind,
        acc: ValueId,
    ) -> Result<ValueId, LowerError> {
        let n = self.plan.order.len();
        let at = n - 1;
        let l = self.levels[n - 1];
        let dtype = self.g.dtype;
        let vty = Type::Vector(dtype, lanes);
        let sty = Type::Scalar(dtype);
        let u = self.plan.unroll_of(v).max(1);
        let identity = body.fl.scalar_const(kind.identity(dtype));
        let vinit = body.splat((identity, 0), lanes)?.0;
        let zero = body.fl.index_const(0);
        let span = u64::from(lanes) * u;
        let end_u = self.vector_end(body, 0, l.upper, span)?;
        let end = self.vector_end(body, 0, l.upper, u64::from(lanes))?;

        // Main loop: u accumulators, copy t reading the vector at v + t * lanes.
        body.set_vector(Some((v, lanes)));
        let main_var = l.var;
        let mut carried = Vec::new();
        let mut yields = Vec::new();
        for t in 0..u {
            let var = if t == 0 {
                main_var
            } else {
                let off = body
                    .fl
                    .index_const(i64::try_from(t * u64::from(lanes)).unwrap_or(0));
                body.emit(n, Op::IndexArith(IndexOp::Add, main_var, off), Type::Index)?
            };
            body.set_var(v, var);
            let arg = body.fl.new_value("vacc", vty);
            let next = self.combine(body, n, kind, arg, vty)?;
            let result = body.fl.new_value("vred", vty);
            carried.push(Carried {
                arg,
                init: vinit,
                result,
            });
            yields.push(next);
        }
        let insts = std::mem::take(body.level(n)?);
        let results: Vec<ValueId> = carried.iter().map(|c| c.result).collect();
        body.level(at)?.push(Inst::For(Box::new(For {
            var: main_var,
            lower: zero,
            upper: end_u,
            step: span,
            parallel: false,
            unroll: None,
            carried,
            body: loops::Block { insts },
            yields,
        })));
        let combine = kind.combine_fn();
        let mut total = results[0];
        for &r in &results[1..] {
            total = body.emit(at, Op::Binary(combine, total, r), vty)?;
        }

        // The remaining full vectors, one at a time.
        let rest_var = body.fl.named_value(&self.g.index_def(v).name, Type::Index);
        body.set_var(v, rest_var);
        let arg = body.fl.new_value("vacc", vty);
        let next = self.combine(body, n, kind, arg, vty)?;
        let result = body.fl.new_value("vred", vty);
        let insts = std::mem::take(body.level(n)?);
        body.level(at)?.push(Inst::For(Box::new(For {
            var: rest_var,
            lower: end_u,
            upper: end,
            step: u64::from(lanes),
            parallel: false,
            unroll: None,
            carried: vec![Carried {
                arg,
                init: total,
                result,
            }],
            body: loops::Block { insts },
            yields: vec![next],
        })));
        let lanes_total = body.emit(at, Op::ReduceLanes(kind, result), sty)?;
        let merged = body.emit(at, Op::Binary(combine, acc, lanes_total), sty)?;

        // The scalar tail.
        body.set_vector(None);
        let tail_var = body.fl.named_value("tail", Type::Index);
        body.set_var(v, tail_var);
        let arg = body.fl.new_value("acc", sty);
        let next = self.combine(body, n, kind, arg, sty)?;
        let result = body.fl.new_value("red", sty);
        let insts = std::mem::take(body.level(n)?);
        body.level(at)?.push(Inst::For(Box::new(For {
            var: tail_var,
            lower: end,
            upper: l.upper,
            step: 1,
            parallel: false,
            unroll: None,
            carried: vec![Carried {
                arg,
                init: merged,
                result,
            }],
            body: loops::Block { insts },
            yields: vec![next],
        })));
        body.set_var(v, l.var);
        Ok(result)
    }
}
