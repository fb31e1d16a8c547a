//! Parallel loops (Halide's `LowerParallelTasks`): the body of a loop marked `parallel` is
//! outlined into a task function `int32 task(const void *closure, int64 lo, int64 hi)` that
//! runs iterations `lo..hi`, and the loop itself becomes a call of
//! `int32 einc_parallel_for(task, closure, n, grain)` (the runtime's pool, or the host's:
//! `docs/abi.md`, "Threads").
//!
//! - **The closure** is a stack slot of the calling function, written before the call and only
//!   read while tasks run: the frame pointer, the loop's bounds, the addresses of the
//!   temporaries (the caller's scratch block) and of the scoped buffers declared outside the
//!   loop, and every value the body reads from outside it. Constants and dims are computed
//!   again in the task instead. A task reads the data pointers, strides and dims from the
//!   frame as a body does.
//! - **Per-task scratch.** The scoped buffers a loop body declares (the packed blocks of a
//!   GEMM, a micro-kernel's tile) are stack slots of the task function, so every task has its
//!   own; the micro-kernel argument block too.
//! - **Nesting.** Only a body's parallel loops are outlined: inside a task, nested parallel
//!   loops run serially.
//! - **Grain rule.** Before the call, the kernel estimates the work of the loop's first
//!   iteration: one unit per instruction of the body, `kc * mr * nr / 4` per micro-kernel call,
//!   a nested loop its trip count times its body. Trip counts and tile sizes are computed at
//!   run time where they are index arithmetic over values known before the loop (the loop
//!   variables at their first values); otherwise [`GUESSED_TRIP`] iterations, a 4x8 tile and a
//!   K block of 256 are assumed. A loop with less
//!   than [`MIN_PARALLEL_WORK`] units in all runs its task on the calling thread directly,
//!   without the pool; otherwise each chunk of the pool gets at least [`GRAIN_WORK`] units.
//!
//! Parallel loops carry nothing and their iterations write disjoint elements (a promise of
//! lowering, `docs/ir.md`), and a task runs each iteration exactly as the loop would: results
//! do not depend on the thread count.

use super::{Gen, Shared};
use crate::codegen::{declare, CodegenError};
use crate::ir::loops::{self, BufferKind, IndexOp, Inst, Op, ValueId};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Function, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind,
    UserFuncName, Value,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::{HashMap, HashSet};

/// The symbol generated code calls to run a parallel loop: the JIT binds it to
/// `einc_runtime::parallel::parallel_for`, a library to its own pool.
pub const PARALLEL_FOR_SYMBOL: &str = "einc_parallel_for";

/// Below this many units of work (about one vector instruction each) a parallel loop runs on
/// the calling thread: waking a worker costs some microseconds.
pub const MIN_PARALLEL_WORK: i64 = 1 << 17;

/// A parallel loop with a nested parallel loop runs in parallel itself when it has at least
/// this many iterations or no fewer than the nested loop; otherwise it runs on the calling
/// thread and the nested loop runs in parallel (a GEMM with fewer `ic` blocks runs its `jr`
/// panels in parallel instead). Eight: four chunks for each of two threads, so that a thread
/// slowed by other load leaves part of its share to the other.
pub const MIN_OUTER_TRIP: i64 = 8;

/// The least work of one chunk a pool thread claims.
pub const GRAIN_WORK: i64 = 1 << 15;

/// The trip count assumed for a nested loop whose bounds are computed inside the parallel loop
/// (a tile's edge, say).
pub const GUESSED_TRIP: u64 = 16;

/// Caps that keep the estimate's arithmetic from overflowing: trip counts at 2^20, costs at
/// 2^40 (so a trip count times a cost stays below 2^63).
const TRIP_CAP: u64 = 1 << 20;
const COST_CAP: u64 = 1 << 40;

/// An outlined task function, declared in the module but not yet defined.
pub(crate) struct Task {
    pub id: FuncId,
    pub name: String,
    pub func: Function,
}

/// `int32 task(const void *closure, int64 lo, int64 hi)`.
fn task_signature<M: Module>(module: &M) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(types::I64); 3]);
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

/// `int32 einc_parallel_for(task, closure, int64 n, int64 grain)`.
fn parallel_for_signature<M: Module>(module: &M) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend([AbiParam::new(types::I64); 4]);
    sig.returns.push(AbiParam::new(types::I32));
    sig
}

/// An estimate of work: known when the code is generated, or computed at run time.
#[derive(Clone, Copy)]
enum Cost {
    Known(u64),
    Run(Value),
}

/// What the work estimate knows of the parallel loop's first iteration: the ops defining the
/// body's values, and the values computed so far (`None`: cannot be computed before the loop).
struct FirstIteration<'f> {
    defs: HashMap<ValueId, &'f Op>,
    values: HashMap<ValueId, Option<Value>>,
}

/// Where the closure holds what a task reads.
struct Closure {
    /// Buffers whose address is captured, and the offset of each.
    buffers: Vec<(usize, i32)>,
    /// Values captured, and the offset of each.
    values: Vec<(ValueId, i32)>,
    /// Values the task computes again (constants and dims).
    recomputed: Vec<(ValueId, Op)>,
    size: u32,
}

/// Offsets of the frame pointer and the loop's bounds in the closure.
const FRAME: i32 = 0;
const LOWER: i32 = 8;
const UPPER: i32 = 16;

impl<'b, M: Module> Gen<'_, 'b, M> {
    /// Parallel loop `l` of the function called `name`: its body outlined into a task, run
    /// through `einc_parallel_for`, or directly when the loop is small (see the module doc).
    pub(super) fn parallel_loop(&mut self, l: &loops::For, name: &str) -> Result<(), CodegenError> {
        let step = self.step(l)?;
        let lower = self.val(l.lower)?;
        let upper = self.val(l.upper)?;
        let closure = self.closure_layout(l)?;
        let task = self.outline(l, name, &closure)?;

        // Fill the closure.
        let slot = self.fb.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            closure.size,
            4,
        ));
        let ptr = self.ins().stack_addr(types::I64, slot, 0);
        let flags = MemFlagsData::trusted();
        let frame_ptr = self.frame_ptr;
        self.ins().store(flags, frame_ptr, ptr, FRAME);
        self.ins().store(flags, lower, ptr, LOWER);
        self.ins().store(flags, upper, ptr, UPPER);
        for &(i, off) in &closure.buffers {
            let base = self.bufs[i]
                .base
                .ok_or_else(|| self.err("a captured buffer has no address"))?;
            self.ins().store(flags, base, ptr, off);
        }
        for &(v, off) in &closure.values {
            let x = self.val(v)?;
            self.ins().store(flags, x, ptr, off);
        }

        let n = self.iterations(lower, upper, step);
        let mut first = FirstIteration {
            defs: definitions(&l.body),
            values: HashMap::from([(l.var, Some(lower))]),
        };
        let per_iteration = self.block_cost(&l.body, &mut first)?;
        let per_iteration = self.add(per_iteration, Cost::Known(1));
        let per_iteration = self.value(per_iteration);
        // With few iterations and a nested parallel loop of more, the loop runs here and the
        // nested loop in parallel.
        let here = match self.nested_parallel_trip(&l.body, &mut first)? {
            Some(inner) => {
                let inner = self.value(inner);
                let few = self
                    .ins()
                    .icmp_imm_s(IntCC::UnsignedLessThan, n, MIN_OUTER_TRIP);
                let fewer = self.ins().icmp(IntCC::UnsignedLessThan, n, inner);
                let inline = self.ins().band(few, fewer);
                let here = self.fb.create_block();
                let outlined = self.fb.create_block();
                self.ins().brif(inline, here, &[], outlined, &[]);
                self.fb.switch_to_block(outlined);
                Some(here)
            }
            None => None,
        };
        let capped_n = self.cap(n, TRIP_CAP);
        let work = self.ins().imul(capped_n, per_iteration);
        let small = self
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, work, MIN_PARALLEL_WORK);
        let serial = self.fb.create_block();
        let pooled = self.fb.create_block();
        let join = self.fb.create_block();
        let status = self.fb.append_block_param(join, types::I32);
        self.ins().brif(small, serial, &[], pooled, &[]);

        let task_ref = self.module.declare_func_in_func(task, self.fb.func);
        self.fb.switch_to_block(serial);
        let zero = self.ins().iconst(types::I64, 0);
        let call = self.ins().call(task_ref, &[ptr, zero, n]);
        let r = self.fb.inst_results(call)[0];
        self.ins().jump(join, &[r.into()]);

        self.fb.switch_to_block(pooled);
        let grain_work = self.ins().iconst(types::I64, GRAIN_WORK);
        let grain = self.ins().udiv(grain_work, per_iteration);
        let one = self.ins().iconst(types::I64, 1);
        let grain = self.ins().umax(grain, one);
        let task_addr = self.ins().func_addr(types::I64, task_ref);
        let sig = parallel_for_signature(self.module);
        let pf = declare(self.module, PARALLEL_FOR_SYMBOL, Linkage::Import, sig)?;
        let pf = self.module.declare_func_in_func(pf, self.fb.func);
        let call = self.ins().call(pf, &[task_addr, ptr, n, grain]);
        let r = self.fb.inst_results(call)[0];
        self.ins().jump(join, &[r.into()]);

        self.fb.switch_to_block(join);
        let failed = match self.failed {
            Some(b) => b,
            None => {
                let b = self.fb.create_block();
                self.fb.append_block_param(b, types::I32);
                self.fb.set_cold_block(b);
                *self.failed.insert(b)
            }
        };
        let next = self.fb.create_block();
        self.ins().brif(status, failed, &[status.into()], next, &[]);
        self.fb.switch_to_block(next);
        if let Some(here) = here {
            let after = self.fb.create_block();
            self.ins().jump(after, &[]);
            self.fb.switch_to_block(here);
            self.loop_over(l, lower, upper)?;
            self.ins().jump(after, &[]);
            self.fb.switch_to_block(after);
        }
        Ok(())
    }

    /// The trip count, on the first iteration, of the first parallel loop nested in `b` (loops
    /// around it on their first iterations too), or `None` when there is none.
    fn nested_parallel_trip(
        &mut self,
        b: &loops::Block,
        first: &mut FirstIteration<'_>,
    ) -> Result<Option<Cost>, CodegenError> {
        for inst in &b.insts {
            let Inst::For(l) = inst else { continue };
            if l.parallel && l.carried.is_empty() {
                return self.trip_count(l, first).map(Some);
            }
            let start = self.at_start(l.lower, first);
            first.values.insert(l.var, start);
            if let Some(trip) = self.nested_parallel_trip(&l.body, first)? {
                return Ok(Some(trip));
            }
        }
        Ok(None)
    }

    /// What the closure of parallel loop `l` holds, and where.
    fn closure_layout(&self, l: &loops::For) -> Result<Closure, CodegenError> {
        let mut size = 24u32;
        let mut place = |bytes: u32| {
            let at = size.next_multiple_of(bytes);
            size = at + bytes;
            i32::try_from(at).map_err(|_| CodegenError::Target("closure too large".into()))
        };
        // The local buffers the body addresses that are placed here (a scoped buffer of an
        // earlier block keeps its address in `bufs`, but it is not visible here, and the body
        // does not use it).
        let used = used_buffers(&l.body);
        let mut buffers = Vec::new();
        for (i, (def, b)) in self.f.buffers.iter().zip(&self.bufs).enumerate() {
            let local = matches!(def.kind, BufferKind::Temp | BufferKind::Scoped);
            if local && b.base.is_some() && used.contains(&i) {
                buffers.push((i, place(8)?));
            }
        }
        let defs = definitions(&self.f.body);
        let mut values = Vec::new();
        let mut recomputed = Vec::new();
        for v in free_values(l) {
            match defs.get(&v) {
                Some(op @ (Op::IndexConst(_) | Op::Const(_) | Op::Dim(_))) => {
                    recomputed.push((v, (*op).clone()));
                }
                _ => {
                    let bytes = self.clif_ty(v)?.bytes();
                    values.push((v, place(bytes.max(8))?));
                }
            }
        }
        Ok(Closure {
            buffers,
            values,
            recomputed,
            size,
        })
    }

    /// Builds the task function of parallel loop `l` of function `name`; returns its id.
    fn outline(
        &mut self,
        l: &loops::For,
        name: &str,
        closure: &Closure,
    ) -> Result<FuncId, CodegenError> {
        let task_name = format!("{name}.task{}", self.tasks.len());
        let sig = task_signature(self.module);
        let id = declare(self.module, &task_name, Linkage::Local, sig.clone())?;
        let mut func = Function::with_name_signature(UserFuncName::default(), sig);
        let mut fctx = FunctionBuilderContext::new();
        // Imports are per function: the task makes its own, and so does the caller afterwards.
        self.libs.begin_function();
        self.ukernels.begin_function();
        let mut fb = FunctionBuilder::new(&mut func, &mut fctx);
        let start = fb.create_block();
        fb.append_block_params_for_function_params(start);
        fb.switch_to_block(start);
        let params = fb.block_params(start).to_vec();
        let (ptr, lo, hi) = (params[0], params[1], params[2]);
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        let frame_ptr = fb.ins().load(types::I64, flags, ptr, FRAME);
        let lower = fb.ins().load(types::I64, flags, ptr, LOWER);
        let upper = fb.ins().load(types::I64, flags, ptr, UPPER);
        let mut captured = vec![None; self.f.buffers.len()];
        for &(i, off) in &closure.buffers {
            captured[i] = Some(fb.ins().load(types::I64, flags, ptr, off));
        }
        let mut no_tasks = Vec::new();
        let shared = Shared {
            module: &mut *self.module,
            libs: &mut *self.libs,
            ukernels: &mut *self.ukernels,
            errors: &mut *self.errors,
            scratch: self.scratch,
            has_fma: self.has_fma,
        };
        let source = (self.m, self.f, self.frame);
        let shapes = self.shapes.clone();
        let mut t = Gen::new(shared, fb, source, shapes, frame_ptr, None, &mut no_tasks);
        t.prologue(frame_ptr, Some(captured))?;
        for (v, op) in &closure.recomputed {
            let x = t.op(*v, op)?;
            t.define(*v, x)?;
        }
        for &(v, off) in &closure.values {
            let ty = t.clif_ty(v)?;
            let x = t.fb.ins().load(ty, flags, ptr, off);
            t.define(v, x)?;
            if let Some(&b) = self.points_into.get(&v) {
                t.points_into.insert(v, b);
            }
        }
        // Iterations lo..hi: i from lower + lo * step while i < min(lower + hi * step, upper).
        let step = t.step(l)?;
        let from = t.fb.ins().imul_imm_s(lo, step);
        let from = t.fb.ins().iadd(lower, from);
        let to = t.fb.ins().imul_imm_s(hi, step);
        let to = t.fb.ins().iadd(lower, to);
        let to = t.fb.ins().smin(to, upper);
        t.loop_over(l, from, to)?;
        let ok = t.fb.ins().iconst(types::I32, 0);
        t.fb.ins().return_(&[ok]);
        t.fb.seal_all_blocks();
        let config = t.module.target_config();
        t.fb.finalize(config);
        self.libs.begin_function();
        self.ukernels.begin_function();
        self.tasks.push(Task {
            id,
            name: task_name,
            func,
        });
        Ok(id)
    }

    /// The estimated work of one execution of `b` (see the module doc), its values taken on
    /// the parallel loop's first iteration.
    fn block_cost(
        &mut self,
        b: &loops::Block,
        first: &mut FirstIteration<'_>,
    ) -> Result<Cost, CodegenError> {
        let mut total = Cost::Known(0);
        for inst in &b.insts {
            let c = match inst {
                Inst::For(l) => {
                    let trip = self.trip_count(l, first)?;
                    // Inner loops see this loop's first iteration.
                    let start = self.at_start(l.lower, first);
                    first.values.insert(l.var, start);
                    let body = self.block_cost(&l.body, first)?;
                    let body = self.add(body, Cost::Known(1));
                    self.mul(trip, body)
                }
                Inst::Ukernel(u) => self.ukernel_cost(u, first),
                Inst::Scoped(_) => Cost::Known(0),
                Inst::Assign { .. } | Inst::Store { .. } | Inst::StoreAt { .. } => Cost::Known(1),
            };
            total = self.add(total, c);
        }
        Ok(total)
    }

    /// A micro-kernel call: `kc * mr * nr / 4` (one unit per 4-lane FMA), each factor on the
    /// first iteration, or guessed (a 4x8 tile over a K block of 256).
    fn ukernel_cost(&mut self, u: &loops::Ukernel, first: &mut FirstIteration<'_>) -> Cost {
        let mut cost = Cost::Known(1);
        for (v, guess) in [(u.kc, 256), (u.mr, 4), (u.nr, 8)] {
            let factor = match self.at_start(v, first) {
                Some(x) => {
                    let zero = self.ins().iconst(types::I64, 0);
                    let x = self.ins().smax(x, zero);
                    Cost::Run(self.cap(x, TRIP_CAP))
                }
                None => Cost::Known(guess),
            };
            cost = self.mul(factor, cost);
        }
        match cost {
            Cost::Known(n) => Cost::Known((n / 4).max(1)),
            Cost::Run(v) => {
                let quarter = self.ins().ushr_imm_u(v, 2);
                Cost::Run(quarter)
            }
        }
    }

    /// The value of index value `v` on the parallel loop's first iteration (nested loops on
    /// their first iterations too), when it can be computed before the loop: defined already,
    /// a loop variable, or index arithmetic, constants and dims over such values.
    fn at_start(&mut self, v: ValueId, first: &mut FirstIteration<'_>) -> Option<Value> {
        if let Some(x) = self.values.get(v.0 as usize).copied().flatten() {
            return Some(x);
        }
        if let Some(&x) = first.values.get(&v) {
            return x;
        }
        // Not computable until proven otherwise (and no cycle can recurse forever).
        first.values.insert(v, None);
        let x = match first.defs.get(&v).copied() {
            Some(Op::IndexConst(c)) => Some(self.ins().iconst(types::I64, *c)),
            Some(Op::Dim(name)) => self.frame.dim(self.m, name).map(|e| self.extent(e)),
            Some(Op::IndexArith(op, a, b)) => {
                let (op, a, b) = (*op, *a, *b);
                let divisor = first.defs.get(&b).and_then(|d| match d {
                    Op::IndexConst(c) if *c > 0 => Some(*c),
                    _ => None,
                });
                match (self.at_start(a, first), self.at_start(b, first)) {
                    (Some(x), Some(y)) => match op {
                        IndexOp::Add => Some(self.ins().iadd(x, y)),
                        IndexOp::Sub => Some(self.ins().isub(x, y)),
                        IndexOp::Mul => Some(self.ins().imul(x, y)),
                        IndexOp::Min => Some(self.ins().smin(x, y)),
                        IndexOp::Max => Some(self.ins().smax(x, y)),
                        // Only by a positive constant: never traps.
                        IndexOp::Div => divisor.map(|_| self.ins().sdiv(x, y)),
                        IndexOp::Rem => divisor.map(|_| self.ins().srem(x, y)),
                    },
                    _ => None,
                }
            }
            _ => None,
        };
        first.values.insert(v, x);
        x
    }

    /// `ceil((upper - lower) / step)` at run time, 0 for an empty range.
    fn iterations(&mut self, lower: Value, upper: Value, step: i64) -> Value {
        let span = self.ins().isub(upper, lower);
        let zero = self.ins().iconst(types::I64, 0);
        let span = self.ins().smax(span, zero);
        if step == 1 {
            return span;
        }
        let bumped = self.ins().iadd_imm_s(span, step - 1);
        let step = self.ins().iconst(types::I64, step);
        self.ins().udiv(bumped, step)
    }

    /// The trip count of nested loop `l` on the parallel loop's first iteration (capped), or a
    /// guess when its bounds cannot be computed before the loop.
    fn trip_count(
        &mut self,
        l: &loops::For,
        first: &mut FirstIteration<'_>,
    ) -> Result<Cost, CodegenError> {
        let step = self.step(l)?;
        if let (Some(&lo), Some(&hi)) = (self.consts.get(&l.lower), self.consts.get(&l.upper)) {
            let n = u64::try_from(hi.saturating_sub(lo).max(0)).unwrap_or(0);
            return Ok(Cost::Known(n.div_ceil(step as u64).min(TRIP_CAP)));
        }
        let (Some(lo), Some(hi)) = (self.at_start(l.lower, first), self.at_start(l.upper, first))
        else {
            return Ok(Cost::Known(GUESSED_TRIP));
        };
        let n = self.iterations(lo, hi, step);
        Ok(Cost::Run(self.cap(n, TRIP_CAP)))
    }

    fn cap(&mut self, v: Value, cap: u64) -> Value {
        let c = self.ins().iconst(types::I64, cap as i64);
        self.ins().umin(v, c)
    }

    fn value(&mut self, c: Cost) -> Value {
        match c {
            Cost::Known(n) => self.ins().iconst(types::I64, n.min(COST_CAP) as i64),
            Cost::Run(v) => v,
        }
    }

    fn add(&mut self, a: Cost, b: Cost) -> Cost {
        if let (Cost::Known(x), Cost::Known(y)) = (a, b) {
            return Cost::Known(x.saturating_add(y).min(COST_CAP));
        }
        let (a, b) = (self.value(a), self.value(b));
        let sum = self.ins().iadd(a, b);
        Cost::Run(self.cap(sum, COST_CAP))
    }

    /// A trip count (at most [`TRIP_CAP`]) times a cost (at most [`COST_CAP`]).
    fn mul(&mut self, trip: Cost, cost: Cost) -> Cost {
        if let (Cost::Known(x), Cost::Known(y)) = (trip, cost) {
            return Cost::Known(x.saturating_mul(y).min(COST_CAP));
        }
        let (a, b) = (self.value(trip), self.value(cost));
        let product = self.ins().imul(a, b);
        Cost::Run(self.cap(product, COST_CAP))
    }
}

/// The op defining each value `b` (and the blocks nested in it) assigns.
fn definitions(b: &loops::Block) -> HashMap<ValueId, &Op> {
    let mut out = HashMap::new();
    let mut stack = vec![b];
    while let Some(b) = stack.pop() {
        for inst in &b.insts {
            match inst {
                Inst::Assign { result, op } => {
                    out.insert(*result, op);
                }
                Inst::For(l) => stack.push(&l.body),
                _ => {}
            }
        }
    }
    out
}

/// The buffers `b` (and the blocks nested in it) addresses by number: loads, stores, `addr`
/// and micro-kernel operands.
fn used_buffers(b: &loops::Block) -> HashSet<usize> {
    let mut out = HashSet::new();
    let mut stack = vec![b];
    while let Some(b) = stack.pop() {
        for inst in &b.insts {
            match inst {
                Inst::Assign {
                    op: Op::Load { buffer, .. } | Op::Addr { buffer, .. },
                    ..
                }
                | Inst::Store { buffer, .. } => {
                    out.insert(buffer.0 as usize);
                }
                Inst::Ukernel(u) => {
                    let operands = [&u.a, &u.b, &u.c].into_iter().chain(u.bias.as_ref());
                    out.extend(operands.map(|t| t.buffer.0 as usize));
                }
                Inst::For(l) => stack.push(&l.body),
                Inst::Assign { .. } | Inst::Scoped(_) | Inst::StoreAt { .. } => {}
            }
        }
    }
    out
}

/// The values the body of loop `l` reads that are defined outside it, in first-use order.
fn free_values(l: &loops::For) -> Vec<ValueId> {
    let mut defined = HashSet::from([l.var]);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    collect_free(&l.body, &mut defined, &mut seen, &mut out);
    out
}

fn collect_free(
    b: &loops::Block,
    defined: &mut HashSet<ValueId>,
    seen: &mut HashSet<ValueId>,
    out: &mut Vec<ValueId>,
) {
    let read = |v: ValueId,
                defined: &HashSet<ValueId>,
                seen: &mut HashSet<ValueId>,
                out: &mut Vec<ValueId>| {
        if !defined.contains(&v) && seen.insert(v) {
            out.push(v);
        }
    };
    for inst in &b.insts {
        match inst {
            Inst::For(l) => {
                for v in [l.lower, l.upper]
                    .into_iter()
                    .chain(l.carried.iter().map(|c| c.init))
                {
                    read(v, defined, seen, out);
                }
                defined.insert(l.var);
                defined.extend(l.carried.iter().map(|c| c.arg));
                collect_free(&l.body, defined, seen, out);
                for &y in &l.yields {
                    read(y, defined, seen, out);
                }
                defined.extend(l.carried.iter().map(|c| c.result));
            }
            other => {
                // Not a loop: cloning it is cheap.
                let mut copy = other.clone();
                for v in loops::rewrite::inst_operands_mut(&mut copy) {
                    read(*v, defined, seen, out);
                }
                if let Inst::Assign { result, .. } = other {
                    defined.insert(*result);
                }
            }
        }
    }
}
