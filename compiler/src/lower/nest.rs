//! A `generic` under a `loops` schedule → one loop nest in the schedule's order, vectorised
//! along one index and unrolled (`docs/schedules.md`). The naive nest is the plan of
//! [`Plan::naive`]: output indices in output order, then the reduced ones, nothing vectorised
//! or unrolled.
//!
//! **Loops.** One loop per index of `order`, outermost first; an output index listed in
//! `parallel` gets a `parallel` loop. An index unrolled by `u` runs a main loop stepping by `u`
//! whose `u` points are *jammed* into the innermost level (one copy of the body per point:
//! unroll-and-jam, so that an unrolled outer loop shares the inner loads and keeps `u`
//! independent accumulators), then a remainder loop stepping by 1. The vectorised index `v`
//! with `L` lanes runs a main loop stepping by `L·u` (`u` vectors per iteration), a loop stepping
//! by `L` when `u > 1`, then a scalar tail: any extent works. When the extent is known the
//! bounds are constants and empty loops are left out.
//!
//! **Where values accumulate.** Let the *inner* reduced indices be those after the last output
//! index in `order`, the *outer* reduced indices those before it.
//! - Inner reductions accumulate in registers carried by their loops: one accumulator per
//!   output copy and per *slot* (a combination of the unrolled copies of the reduced indices),
//!   a vector when `v` is reduced; with `v` vectorised, a scalar `rest` accumulator takes the
//!   tail. After the loops the slots are combined in slot order, then the lanes (`reduce_lanes`,
//!   lane 0 first), then added to `rest`; the total is stored.
//! - Outer reductions accumulate in the output: a first nest stores the identity into every
//!   output element, and each point combines its value into the element it belongs to (read,
//!   combine, write). Each element still sees its terms in the original order (a reduced index
//!   outside a vectorised output index is the classic "vectorise the column sum" reordering:
//!   every lane is one output element, so no lane mixes terms).
//! - With both, the register accumulators of a point start from the output's current value.
//!
//! A float `add` reduction of `mul(a, b)` accumulates with `fma`, as the naive nest does.
//!
//! **Vectorising** needs the body to be [`vectorisable`] along `v` and every buffer addressed
//! along `v` to have a unit stride there (temporaries; kernel arguments once a variant says so);
//! otherwise the op is lowered with `v` as an ordinary (unrolled) loop: a schedule changes speed,
//! never whether an op can be lowered.

use super::body::{self, BodyLowerer, Placed};
use super::{FnLowerer, LowerError};
use crate::ir::loops::{
    BinaryFn, Block, BufferId, Carried, For, IndexOp, Inst, Op, ReduceKind, Type, ValueId,
};
use crate::ir::tensor::schedule::LoopsSchedule;
use crate::ir::tensor::{Expr, Generic, IndexId};
use einc_runtime::DType;

/// A complete `loops` schedule of one op, by `IndexId`.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// Every index once, outermost first.
    pub order: Vec<IndexId>,
    /// The vectorised index (innermost) and its lanes.
    pub vector: Option<(IndexId, u32)>,
    /// The unroll factor of each index (1: not unrolled).
    pub unroll: Vec<u64>,
    /// Whether each index's loop is marked parallel.
    pub parallel: Vec<bool>,
}

impl Plan {
    /// The naive nest: output indices in output order (parallel), then the reduced ones.
    pub fn naive(g: &Generic) -> Plan {
        let over = g.reduce.as_ref().map_or(&[][..], |r| &r.over[..]);
        let mut parallel = vec![false; g.indices.len()];
        for &i in &g.output {
            if let Some(p) = parallel.get_mut(i.0 as usize) {
                *p = true;
            }
        }
        Plan {
            order: g.output.iter().chain(over).copied().collect(),
            vector: None,
            unroll: vec![1; g.indices.len()],
            parallel,
        }
    }

    /// Whether the loop over `x` is marked parallel.
    pub fn is_parallel(&self, x: IndexId) -> bool {
        self.parallel.get(x.0 as usize).copied().unwrap_or(false)
    }

    /// The plan of a complete `loops` schedule (the verifier has checked it fits `g`).
    pub fn from_schedule(g: &Generic, s: &LoopsSchedule) -> Result<Plan, String> {
        let n = g.indices.len();
        let missing = || "the schedule is not complete (run the `schedule` pass)".to_string();
        let order = s.order.clone().ok_or_else(missing)?;
        let vector = s.vector.ok_or_else(missing)?;
        let mut unroll = vec![1; n];
        for &(i, u) in s.unroll.as_ref().ok_or_else(missing)? {
            *unroll
                .get_mut(i.0 as usize)
                .ok_or("`unroll` names an index out of range")? = u;
        }
        let mut parallel = vec![false; n];
        for &i in s.parallel.as_ref().ok_or_else(missing)? {
            *parallel
                .get_mut(i.0 as usize)
                .ok_or("`parallel` names an index out of range")? = true;
        }
        let vector = match vector {
            Some((i, lanes)) => Some((i, u32::try_from(lanes).map_err(|_| "too many lanes")?)),
            None => None,
        };
        Ok(Plan {
            order,
            vector,
            unroll,
            parallel,
        })
    }
}

/// Lowers `g` under `plan` into instructions storing into buffer `out` (the caller has checked
/// the op's dtype against the value's).
pub(super) fn lower_nest(
    fl: &mut FnLowerer,
    g: &Generic,
    mut plan: Plan,
    out: BufferId,
) -> Result<Vec<Inst>, LowerError> {
    let n = g.indices.len();
    let name = |i: IndexId| {
        g.indices
            .get(i.0 as usize)
            .map_or_else(|| format!("#{}", i.0), |d| format!("`{}`", d.name))
    };
    let is_output = |i: IndexId| g.output.contains(&i);
    let is_reduced = |i: IndexId| g.reduce.as_ref().is_some_and(|r| r.over.contains(&i));
    for i in (0..n).map(|k| IndexId(u32::try_from(k).unwrap_or(u32::MAX))) {
        match (is_output(i), is_reduced(i)) {
            (true, true) => {
                return Err(fl.error(format!(
                    "index {} is both an output index and reduced",
                    name(i)
                )))
            }
            (false, false) => {
                return Err(fl.error(format!(
                    "index {} is neither an output index nor reduced",
                    name(i)
                )))
            }
            _ => {}
        }
    }
    let mut depth_of = vec![usize::MAX; n];
    for (pos, &id) in plan.order.iter().enumerate() {
        match depth_of.get_mut(id.0 as usize) {
            Some(slot) if *slot == usize::MAX => *slot = pos + 1,
            Some(_) => return Err(fl.error(format!("index {} is looped over twice", name(id)))),
            None => return Err(fl.error(format!("index #{} is out of range", id.0))),
        }
    }
    if let Some(k) = depth_of.iter().position(|&d| d == usize::MAX) {
        return Err(fl.error(format!(
            "the loop order misses index `{}`",
            g.indices[k].name
        )));
    }
    if let Some(&i) = g
        .output
        .iter()
        .chain(g.reduce.iter().flat_map(|r| &r.over))
        .find(|i| i.0 as usize >= n)
    {
        return Err(fl.error(format!("index #{} is out of range", i.0)));
    }
    if let Some((v, lanes)) = plan.vector {
        if plan.order.last() != Some(&v) || !vector_ok(fl, g, v, lanes, out) {
            plan.vector = None;
        }
    }
    let last_out = plan.order.iter().rposition(|&i| is_output(i));
    let first_inner = last_out.map_or(0, |p| p + 1);
    let mem_acc = g.reduce.is_some() && plan.order[..first_inner].iter().any(|&i| !is_output(i));
    let fma = match (&g.body, &g.reduce) {
        (Expr::Binary(BinaryFn::Mul, _, _), Some(r)) => {
            r.kind == ReduceKind::Add && g.dtype.is_float()
        }
        _ => false,
    };
    let mut offsets = Vec::with_capacity(n);
    for _ in 0..n {
        offsets.push(vec![fl.index_const(0)]);
    }
    let mut nest = Nest {
        b: BodyLowerer::new(fl, g, depth_of),
        g,
        plan,
        out,
        first_inner,
        mem_acc,
        fma,
        offsets,
        in_vector: false,
        accs: Vec::new(),
        group_radix: Vec::new(),
    };
    if mem_acc {
        nest.init_output()?;
    }
    nest.generate(0)?;
    Ok(nest.b.close())
}

/// Whether `g` can be vectorised along `v` here: the body allows it and every buffer addressed
/// along `v` (inputs reading it, the output when it is an output index) has a unit last stride.
fn vector_ok(fl: &FnLowerer, g: &Generic, v: IndexId, lanes: u32, out: BufferId) -> bool {
    let buffer = |n: usize| {
        g.inputs
            .get(n)
            .and_then(|input| fl.buffer_of(input.value).ok())
    };
    let dtype_of = |n: usize| buffer(n).and_then(|b| fl.buffer_def(b).ok().map(|d| d.dtype));
    let unit = |n: usize| buffer(n).is_some_and(|b| body::unit_last(fl, b));
    if body::vectorisable(g, v, lanes, &dtype_of, &unit).is_some() {
        return false;
    }
    match g.output.iter().position(|&o| o == v) {
        None => true,
        Some(axis) => axis + 1 == g.output.len() && body::unit_last(fl, out),
    }
}

/// The accumulators of one output copy while inner reduction loops run.
#[derive(Clone, Debug)]
struct Group {
    /// The output element (its first, for a vector) the group stores to.
    out_index: Vec<ValueId>,
    /// One accumulator per slot (vectors when the reduced vectorised index is vectorised).
    slots: Vec<ValueId>,
    /// The scalar accumulator of the tail, when the op is vectorised along a reduced index.
    rest: Option<ValueId>,
}

/// The state of building one nest.
struct Nest<'a, 'm> {
    b: BodyLowerer<'a, 'm>,
    g: &'a Generic,
    plan: Plan,
    out: BufferId,
    /// Position in `order` of the first inner reduced index (`order.len()` when none).
    first_inner: usize,
    /// Whether reduced indices outside some output index accumulate in the output.
    mem_acc: bool,
    /// Whether terms accumulate with `fma` (a float `add` reduction of `mul(a, b)`).
    fma: bool,
    /// The value of each index in each copy of the loop variant being built, by `IndexId`.
    offsets: Vec<Vec<ValueId>>,
    /// Whether the innermost loop being built is a vector loop.
    in_vector: bool,
    /// The accumulators while inner reduction loops are built, one group per output copy.
    accs: Vec<Group>,
    /// The number of copies of each output index (in output order) when the groups were made.
    group_radix: Vec<usize>,
}

/// One loop to build for an index: where it starts and ends, its step and copies.
pub(super) struct Variant {
    /// First value of the loop variable.
    pub lower: ValueId,
    /// Bound of the loop variable.
    pub upper: ValueId,
    /// Points per copy: the lanes of a vector loop, else 1.
    pub lanes: u64,
    /// Copies per iteration.
    pub copies: u64,
}

impl Nest<'_, '_> {
    fn dtype(&self) -> DType {
        self.g.dtype
    }

    fn scalar_ty(&self) -> Type {
        Type::Scalar(self.dtype())
    }

    fn index_name(&self, i: IndexId) -> String {
        self.g
            .indices
            .get(i.0 as usize)
            .map_or_else(|| format!("i{}", i.0), |d| d.name.clone())
    }

    /// The loops of `order[pos..]` and what they compute, appended to the current level.
    fn generate(&mut self, pos: usize) -> Result<(), LowerError> {
        let has_inner = self.first_inner < self.plan.order.len();
        if pos == self.first_inner && has_inner {
            return self.reduce_in_registers(pos);
        }
        if pos == self.plan.order.len() {
            return self.leaf();
        }
        self.index_loops(pos)
    }

    /// The loop variants of `order[pos]`, each running the rest of the nest.
    fn index_loops(&mut self, pos: usize) -> Result<(), LowerError> {
        let x = self.plan.order[pos];
        let vector = self.plan.vector.filter(|&(v, _)| v == x);
        for variant in self.variants(x, vector.map(|(_, l)| l))? {
            self.one_loop(pos, x, &variant, vector)?;
        }
        Ok(())
    }

    /// The loops index `x` runs (see [`variants`]).
    fn variants(&mut self, x: IndexId, lanes: Option<u32>) -> Result<Vec<Variant>, LowerError> {
        let u = self.plan.unroll.get(x.0 as usize).copied().unwrap_or(1);
        variants(&mut self.b, self.g, x, u, lanes)
    }

    /// One loop over `x` (a variant), at level `pos`, carrying the accumulators when inside
    /// inner reductions.
    fn one_loop(
        &mut self,
        pos: usize,
        x: IndexId,
        variant: &Variant,
        vector: Option<(IndexId, u32)>,
    ) -> Result<(), LowerError> {
        let depth = pos + 1;
        let name = self.index_name(x);
        let var = self.b.fl.named_value(&name, Type::Index);
        let carrying = pos >= self.first_inner && !self.accs.is_empty();
        // The accumulators this loop may update (the innermost vector loops update the vector
        // slots of their copies, its scalar tail only `rest`; other loops anything).
        let mask = if carrying {
            self.carry_mask(pos, x, variant)
        } else {
            Vec::new()
        };
        let flat = self.flat_accs();
        let mut carried = Vec::new();
        let mut inner = flat.clone();
        for (k, &init) in flat.iter().enumerate() {
            if !mask.get(k).copied().unwrap_or(false) {
                continue;
            }
            let ty = self.b.type_of(init)?;
            let arg = self.b.fl.new_value("acc", ty);
            let result = self.b.fl.new_value("red", ty);
            carried.push((k, Carried { arg, init, result }));
            inner[k] = arg;
        }
        if carrying {
            self.set_flat_accs(&inner);
        }
        self.b.open();
        let saved = std::mem::take(&mut self.offsets[x.0 as usize]);
        let values = copy_values(&mut self.b, depth, var, variant)?;
        self.offsets[x.0 as usize] = values;
        let was_vector = self.in_vector;
        if variant.lanes > 1 {
            self.in_vector = true;
            self.b.set_vector(vector);
        }
        self.generate(pos + 1)?;
        self.in_vector = was_vector;
        self.b.set_vector(None);
        self.offsets[x.0 as usize] = saved;
        let mut yields = Vec::with_capacity(carried.len());
        if carrying {
            let mut after = self.flat_accs();
            for &(k, c) in &carried {
                yields.push(after[k]);
                after[k] = c.result;
            }
            self.set_flat_accs(&after);
        }
        let carried: Vec<Carried> = carried.into_iter().map(|(_, c)| c).collect();
        let parallel = !carrying && self.plan.is_parallel(x) && self.g.output.contains(&x);
        close_loop(&mut self.b, pos, var, variant, parallel, carried, yields)
    }

    /// Which of the flattened accumulators ([`Nest::flat_accs`]) the loop variant `variant`
    /// of `x` at `pos` updates.
    fn carry_mask(&self, pos: usize, x: IndexId, variant: &Variant) -> Vec<bool> {
        let innermost = pos + 1 == self.plan.order.len();
        let vector_index = self.reduced_vector().is_some_and(|(v, _)| v == x);
        let u = self.slot_radices().last().map_or(1, |&(_, u)| u);
        let mut mask = Vec::new();
        for g in &self.accs {
            for s in 0..g.slots.len() {
                let touched = match (innermost && vector_index, variant.lanes > 1) {
                    (true, true) => (s % u) < usize::try_from(variant.copies).unwrap_or(usize::MAX),
                    (true, false) => false,
                    (false, _) => true,
                };
                mask.push(touched);
            }
            if g.rest.is_some() {
                mask.push(!(innermost && vector_index && variant.lanes > 1));
            }
        }
        mask
    }

    fn flat_accs(&self) -> Vec<ValueId> {
        self.accs
            .iter()
            .flat_map(|g| g.slots.iter().copied().chain(g.rest))
            .collect()
    }

    fn set_flat_accs(&mut self, values: &[ValueId]) {
        let mut it = values.iter().copied();
        for g in &mut self.accs {
            for s in &mut g.slots {
                *s = it.next().unwrap_or(*s);
            }
            if let Some(r) = &mut g.rest {
                *r = it.next().unwrap_or(*r);
            }
        }
    }

    /// The vectorised index when it is reduced (its slots are vectors).
    fn reduced_vector(&self) -> Option<(IndexId, u32)> {
        self.plan
            .vector
            .filter(|&(v, _)| !self.g.output.contains(&v))
    }

    /// The reduced indices in `order` and their unroll factors: the radices of a slot number.
    fn slot_radices(&self) -> Vec<(IndexId, usize)> {
        self.plan
            .order
            .iter()
            .filter(|&&i| !self.g.output.contains(&i))
            .map(|&i| {
                let u = self.plan.unroll.get(i.0 as usize).copied().unwrap_or(1);
                (i, usize::try_from(u).unwrap_or(1).max(1))
            })
            .collect()
    }

    /// The inner reduction loops (`order[pos..]`), accumulating in registers, then the store
    /// of each output copy's total.
    fn reduce_in_registers(&mut self, pos: usize) -> Result<(), LowerError> {
        let Some(r) = self.g.reduce.clone() else {
            return Err(self.b.fl.error("inner reduction loops without a reduction"));
        };
        let depth = self.b.depth();
        let dtype = self.dtype();
        let identity = self.b.fl.scalar_const(r.kind.identity(dtype));
        let n_slots: usize = self.slot_radices().iter().map(|&(_, u)| u).product();
        let slot_init = match self.reduced_vector() {
            Some((_, lanes)) => self.b.splat((identity, 0), lanes)?.0,
            None => identity,
        };
        let vectorised = self.reduced_vector().is_some();
        self.group_radix = self
            .g
            .output
            .iter()
            .map(|o| self.offsets[o.0 as usize].len())
            .collect();
        let mut groups = Vec::new();
        for coords in product(&self.group_radix) {
            let out_index: Vec<ValueId> = self
                .g
                .output
                .iter()
                .zip(&coords)
                .map(|(o, &c)| self.offsets[o.0 as usize][c])
                .collect();
            let mut slots = vec![slot_init; n_slots];
            let mut rest = vectorised.then_some(identity);
            if self.mem_acc {
                let old = self.b.emit(
                    depth,
                    Op::Load {
                        buffer: self.out,
                        index: out_index.clone(),
                        lanes: 1,
                    },
                    self.scalar_ty(),
                )?;
                match &mut rest {
                    Some(rest) => *rest = old,
                    None => slots[0] = old,
                }
            }
            groups.push(Group {
                out_index,
                slots,
                rest,
            });
        }
        self.accs = groups;
        self.index_loops(pos)?;
        let groups = std::mem::take(&mut self.accs);
        let combine = r.kind.combine_fn();
        for group in groups {
            let ty = self.b.type_of(group.slots[0])?;
            let mut total = group.slots[0];
            for &s in &group.slots[1..] {
                total = self.b.emit(depth, Op::Binary(combine, total, s), ty)?;
            }
            if let Type::Vector(..) = ty {
                total = self
                    .b
                    .emit(depth, Op::ReduceLanes(r.kind, total), self.scalar_ty())?;
            }
            if let Some(rest) = group.rest {
                total = self
                    .b
                    .emit(depth, Op::Binary(combine, rest, total), self.scalar_ty())?;
            }
            self.b.push(
                depth,
                Inst::Store {
                    buffer: self.out,
                    index: group.out_index,
                    value: total,
                },
            )?;
        }
        Ok(())
    }

    /// Stores the reduction's identity into every output element (vectorised like the op
    /// when it is vectorised along an output index), before outer reductions accumulate there.
    fn init_output(&mut self) -> Result<(), LowerError> {
        let Some(r) = self.g.reduce.clone() else {
            return Ok(());
        };
        let identity = self.b.fl.scalar_const(r.kind.identity(self.dtype()));
        let outs: Vec<IndexId> = self
            .plan
            .order
            .iter()
            .copied()
            .filter(|i| self.g.output.contains(i))
            .collect();
        self.init_level(&outs, 0, identity)
    }

    fn init_level(
        &mut self,
        outs: &[IndexId],
        k: usize,
        identity: ValueId,
    ) -> Result<(), LowerError> {
        let depth = self.b.depth();
        let Some(&x) = outs.get(k) else {
            let value = match (self.in_vector, self.plan.vector) {
                (true, Some((_, lanes))) => self.b.splat((identity, 0), lanes)?.0,
                _ => identity,
            };
            let index = self
                .g
                .output
                .iter()
                .map(|o| self.offsets[o.0 as usize][0])
                .collect();
            return self.b.push(
                depth,
                Inst::Store {
                    buffer: self.out,
                    index,
                    value,
                },
            );
        };
        let vector = self.plan.vector.filter(|&(v, _)| v == x);
        let lanes = vector.map(|(_, l)| l);
        // No unrolling: the variants of a plain or vector loop.
        let saved = self.plan.unroll.get(x.0 as usize).copied().unwrap_or(1);
        if let Some(u) = self.plan.unroll.get_mut(x.0 as usize) {
            *u = 1;
        }
        let variants = self.variants(x, lanes);
        if let Some(u) = self.plan.unroll.get_mut(x.0 as usize) {
            *u = saved;
        }
        for variant in variants? {
            let name = self.index_name(x);
            let var = self.b.fl.named_value(&name, Type::Index);
            self.b.open();
            let old = std::mem::replace(&mut self.offsets[x.0 as usize], vec![var]);
            let was_vector = self.in_vector;
            self.in_vector = variant.lanes > 1;
            self.init_level(outs, k + 1, identity)?;
            self.in_vector = was_vector;
            self.offsets[x.0 as usize] = old;
            let parallel = self.plan.is_parallel(x);
            close_loop(
                &mut self.b,
                depth,
                var,
                &variant,
                parallel,
                Vec::new(),
                Vec::new(),
            )?;
        }
        Ok(())
    }

    /// The innermost level: the body at every copy of the current loop variants, accumulated
    /// (inner reductions), combined into the output (outer reductions) or stored (maps).
    fn leaf(&mut self) -> Result<(), LowerError> {
        let depth = self.b.depth();
        let radix: Vec<usize> = self
            .plan
            .order
            .iter()
            .map(|i| self.offsets[i.0 as usize].len())
            .collect();
        let lanes = match (self.in_vector, self.plan.vector) {
            (true, Some((_, l))) => Some(l),
            _ => None,
        };
        // Output elements combined in registers (outer reductions without inner ones), in the
        // order they are first touched.
        let mut pending: Vec<(Vec<ValueId>, ValueId)> = Vec::new();
        for coords in product(&radix) {
            for (&i, &c) in self.plan.order.iter().zip(&coords) {
                let v = self.offsets[i.0 as usize][c];
                self.b.set_var(i, v);
            }
            if !self.accs.is_empty() {
                self.accumulate(&coords, lanes, depth)?;
                continue;
            }
            let out_index: Vec<ValueId> = self
                .g
                .output
                .iter()
                .map(|&o| self.b.var(o))
                .collect::<Result<_, _>>()?;
            match &self.g.reduce {
                None => {
                    let mut value = self.b.expr_of_type(&self.g.body, self.dtype())?;
                    if let Some(l) = lanes {
                        value = self.b.splat(value, l)?;
                    }
                    self.b.push(
                        depth,
                        Inst::Store {
                            buffer: self.out,
                            index: out_index,
                            value: value.0,
                        },
                    )?;
                }
                Some(r) => {
                    let kind = r.kind;
                    let at = pending.iter().position(|(e, _)| *e == out_index);
                    let old = match at {
                        Some(k) => pending[k].1,
                        None => {
                            let ty = match lanes {
                                Some(l) => Type::Vector(self.dtype(), l),
                                None => self.scalar_ty(),
                            };
                            let lanes = lanes.unwrap_or(1);
                            self.b.emit(
                                depth,
                                Op::Load {
                                    buffer: self.out,
                                    index: out_index.clone(),
                                    lanes,
                                },
                                ty,
                            )?
                        }
                    };
                    let new = self.combine(kind, old, depth)?;
                    match at {
                        Some(k) => pending[k].1 = new,
                        None => pending.push((out_index, new)),
                    }
                }
            }
        }
        for (index, value) in pending {
            self.b.push(
                depth,
                Inst::Store {
                    buffer: self.out,
                    index,
                    value,
                },
            )?;
        }
        Ok(())
    }

    /// Adds the body's value at the current point into the accumulator of its group and slot.
    fn accumulate(
        &mut self,
        coords: &[usize],
        lanes: Option<u32>,
        depth: usize,
    ) -> Result<(), LowerError> {
        let kind = self
            .g
            .reduce
            .as_ref()
            .map(|r| r.kind)
            .ok_or_else(|| self.b.fl.error("accumulators without a reduction"))?;
        let coord_of = |i: IndexId| {
            self.plan
                .order
                .iter()
                .position(|&o| o == i)
                .map_or(0, |p| coords[p])
        };
        let mut group = 0;
        for (o, &radix) in self.g.output.iter().zip(&self.group_radix) {
            group = group * radix + coord_of(*o).min(radix - 1);
        }
        let mut slot = 0;
        for (i, radix) in self.slot_radices() {
            slot = slot * radix + coord_of(i).min(radix - 1);
        }
        let g = self
            .accs
            .get(group)
            .cloned()
            .ok_or_else(|| self.b.fl.error("no accumulator group for a copy"))?;
        let into_rest = lanes.is_none() && g.rest.is_some();
        let acc = if into_rest {
            g.rest.unwrap_or(g.slots[0])
        } else {
            g.slots[slot]
        };
        let new = self.combine(kind, acc, depth)?;
        let group = &mut self.accs[group];
        match &mut group.rest {
            Some(rest) if into_rest => *rest = new,
            _ => group.slots[slot] = new,
        }
        Ok(())
    }

    /// `combine(acc, body)` at the current point, with one `fma` for a float sum of products;
    /// the body is splat when `acc` is a vector.
    fn combine(
        &mut self,
        kind: ReduceKind,
        acc: ValueId,
        depth: usize,
    ) -> Result<ValueId, LowerError> {
        let ty = self.b.type_of(acc)?;
        let acc_p: Placed = (acc, depth);
        let dtype = self.dtype();
        if self.fma {
            if let Expr::Binary(BinaryFn::Mul, a, c) = &self.g.body {
                let a = self.b.expr_of_type(a, dtype)?;
                let c = self.b.expr_of_type(c, dtype)?;
                let [(a, _), (c, _), (acc, _)] = self.b.unify(&[a, c, acc_p])?[..] else {
                    return Err(self.b.fl.error("fma lost an operand"));
                };
                return self.b.emit(depth, Op::Fma(a, c, acc), ty);
            }
        }
        let v = self.b.expr_of_type(&self.g.body, dtype)?;
        let [(acc, _), (v, _)] = self.b.unify(&[acc_p, v])?[..] else {
            return Err(self.b.fl.error("a reduction lost an operand"));
        };
        self.b
            .emit(depth, Op::Binary(kind.combine_fn(), acc, v), ty)
    }
}

/// The loops index `x` of `g` runs when unrolled by `unroll` and, with `lanes`, vectorised: a
/// main loop of `unroll` copies (of `lanes` points each), a loop of one vector when both are
/// above 1, and a scalar tail, leaving out those known to be empty. Bounds are computed at the
/// current level of `b`.
pub(super) fn variants(
    b: &mut BodyLowerer,
    g: &Generic,
    x: IndexId,
    unroll: u64,
    lanes: Option<u32>,
) -> Result<Vec<Variant>, LowerError> {
    let u = unroll.max(1);
    let lanes = u64::from(lanes.unwrap_or(1));
    let extent = g
        .indices
        .get(x.0 as usize)
        .map(|d| d.extent.clone())
        .ok_or_else(|| b.fl.error(format!("index #{} is out of range", x.0)))?;
    let n = b.fl.extent(&extent)?;
    let known = b.fl.known_extent(&extent);
    let zero = b.fl.index_const(0);
    // (points per copy, copies) of each loop, widest first.
    let mut shapes = vec![(lanes, u)];
    if lanes > 1 && u > 1 {
        shapes.push((lanes, 1));
    }
    if lanes > 1 || u > 1 {
        shapes.push((1, 1));
    }
    let mut out = Vec::new();
    let mut lower = zero;
    let mut lower_known = Some(0u64);
    for (k, &(l, c)) in shapes.iter().enumerate() {
        let step = l * c;
        let last = k + 1 == shapes.len();
        let (upper, upper_known) = if last {
            (n, known)
        } else {
            match known {
                Some(n) => {
                    let e = n - n % step;
                    (b.fl.index_const_u64(e)?, Some(e))
                }
                None => (floor_multiple(b, n, step)?, None),
            }
        };
        let empty = matches!((lower_known, upper_known), (Some(a), Some(b)) if b <= a);
        if !empty {
            out.push(Variant {
                lower,
                upper,
                lanes: l,
                copies: c,
            });
        }
        lower = upper;
        lower_known = upper_known;
    }
    Ok(out)
}

/// The largest multiple of `step` not above `n` (`n` is not negative), computed at the current
/// level of `b`.
fn floor_multiple(b: &mut BodyLowerer, n: ValueId, step: u64) -> Result<ValueId, LowerError> {
    let d = b.depth();
    let step = b.fl.index_const_u64(step)?;
    let r = b.emit(d, Op::IndexArith(IndexOp::Rem, n, step), Type::Index)?;
    b.emit(d, Op::IndexArith(IndexOp::Sub, n, r), Type::Index)
}

/// The values of a loop variable `var` in the copies of one iteration of `variant`: `var`,
/// `var + lanes`, `var + 2·lanes`, ... (computed at level `depth`, the loop's body).
/// Closes the block open in `b` as the body of the loop of `var` over `variant` (stepping over
/// its copies of lanes) and pushes the loop at level `depth`.
pub(super) fn close_loop(
    b: &mut BodyLowerer,
    depth: usize,
    var: ValueId,
    variant: &Variant,
    parallel: bool,
    carried: Vec<Carried>,
    yields: Vec<ValueId>,
) -> Result<(), LowerError> {
    let insts = b.close();
    b.push(
        depth,
        Inst::For(Box::new(For {
            var,
            lower: variant.lower,
            upper: variant.upper,
            step: variant.lanes * variant.copies,
            parallel,
            unroll: None,
            carried,
            body: Block { insts },
            yields,
        })),
    )
}

pub(super) fn copy_values(
    b: &mut BodyLowerer,
    depth: usize,
    var: ValueId,
    variant: &Variant,
) -> Result<Vec<ValueId>, LowerError> {
    let mut values = vec![var];
    for c in 1..variant.copies {
        let off = b.fl.index_const_u64(c * variant.lanes)?;
        values.push(b.emit(depth, Op::IndexArith(IndexOp::Add, var, off), Type::Index)?);
    }
    Ok(values)
}

/// Every combination of coordinates `0..radix[k]`, the first coordinate most significant.
pub(super) fn product(radix: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new()];
    for &r in radix {
        let mut next = Vec::with_capacity(out.len() * r);
        for prefix in &out {
            for c in 0..r.max(1) {
                let mut p = prefix.clone();
                p.push(c);
                next.push(p);
            }
        }
        out = next;
    }
    out
}

#[cfg(test)]
mod tests;
