//! `strength-reduce`: address strength reduction. Code generation addresses `%B[%i, %j]` as
//! `base + (i * s_i + j * s_j) * size`, in every iteration, and Cranelift does not reduce the
//! multiplications; this pass replaces the loads and stores of a loop by accesses through
//! pointers that advance by one step per iteration.
//!
//! Requires: verified loop IR. Guarantees: verified loop IR that computes what the input
//! computes, bit for bit, for every input (only how element positions are computed changes).
//!
//! For each loop that is not `parallel` (a parallel loop carries nothing; once threads outline
//! its body into tasks, the task's loop is sequential), inner loops first: every load and store
//! directly in its body whose index values are each either loop-invariant (defined outside the
//! loop, and not an index constant) or the loop's variable `%i`, possibly plus an invariant
//! (`iadd %i, %c`), with `%i` in at least one axis, becomes `load at %p` / `store %v at %p`.
//! The pointer `%p` starts at `addr %B[...]` with `%i` replaced by the loop's lower bound
//! (computed before the loop), is carried by the loop, and advances by the step along the axes
//! `%i` indexes (several axes at once on a diagonal). Accesses with the same buffer and index
//! values share one pointer, and so do accesses that differ only by an invariant `%c` added to
//! `%i` on every axis it indexes (the unrolled copies `%i`, `%i + 4`, `%i + 8`, ... of a
//! vector loop): such an access reads or writes at `advance %p by %c` along those axes, computed
//! in the body. One carried pointer per buffer instead of one per copy keeps an unrolled loop's
//! pointers in registers (16 copies reading one buffer and writing another needed 32).
//!
//! An access with a constant position on some axis (`%A[0, %j]`) stays: the entry point checks
//! such positions against the argument's extents, and an `addr` is not checked (it is only a
//! position). An `addr` at the lower bound of a loop that runs zero times is never dereferenced.

use super::{Ir, Pass, PassOutput};
use crate::ir::loops::rewrite::{compact, Names};
use crate::ir::loops::{
    Block, BufferId, Carried, For, Function, IndexOp, Inst, Module, Op, Type, ValueId,
};
use std::collections::{HashMap, HashSet};

/// The `strength-reduce` pass.
#[derive(Debug)]
pub struct StrengthReduce;

impl Pass for StrengthReduce {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        match ir {
            Ir::Loop(mut m) => {
                let changed = reduce_module(&mut m);
                Ok(PassOutput {
                    ir: Ir::Loop(m),
                    changed,
                })
            }
            other => Err(format!("expects loop IR, got {} IR", other.level())),
        }
    }
}

/// Reduces in every function; returns whether anything changed.
pub fn reduce_module(m: &mut Module) -> bool {
    let mut changed = false;
    for f in &mut m.funcs {
        let consts = f.body.index_consts();
        let mut r = Reducer {
            names: Names::of(f),
            consts,
            changed: false,
        };
        let body = std::mem::take(&mut f.body);
        f.body = r.block(f, body);
        if r.changed {
            compact(f);
            changed = true;
        }
    }
    changed
}

/// Every value a loop defines: its variable, carried values, and the values of its body.
fn defined_by(l: &For) -> HashSet<ValueId> {
    let mut out: HashSet<ValueId> = HashSet::new();
    out.insert(l.var);
    out.extend(l.carried.iter().map(|c| c.arg));
    let mut stack = vec![&l.body];
    while let Some(b) = stack.pop() {
        for inst in &b.insts {
            match inst {
                Inst::Assign { result, .. } => {
                    out.insert(*result);
                }
                Inst::For(inner) => {
                    out.insert(inner.var);
                    out.extend(inner.carried.iter().flat_map(|c| [c.arg, c.result]));
                    stack.push(&inner.body);
                }
                _ => {}
            }
        }
    }
    out
}

/// How an index value of an access moves with the loop.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Axis {
    /// Defined outside the loop.
    Fixed(ValueId),
    /// The loop's variable, plus the invariant value if any.
    Moving(Option<ValueId>),
}

/// The pointer an access shares with the others and the offset it is read at: with one
/// invariant added on every moving axis, the axes without it and that invariant; otherwise
/// the axes as they are.
fn shared(axes: Vec<Axis>) -> (Vec<Axis>, Option<ValueId>) {
    let mut offsets = axes.iter().filter_map(|a| match a {
        Axis::Moving(c) => Some(*c),
        Axis::Fixed(_) => None,
    });
    let first = offsets.next().flatten();
    if first.is_none() || !offsets.all(|c| c == first) {
        return (axes, None);
    }
    let base = axes
        .into_iter()
        .map(|a| match a {
            Axis::Moving(_) => Axis::Moving(None),
            fixed => fixed,
        })
        .collect();
    (base, first)
}

struct Reducer {
    names: Names,
    consts: HashMap<ValueId, i64>,
    changed: bool,
}

impl Reducer {
    fn block(&mut self, f: &mut Function, block: Block) -> Block {
        let mut out = Vec::with_capacity(block.insts.len());
        for inst in block.insts {
            match inst {
                Inst::For(mut l) => {
                    let body = std::mem::take(&mut l.body);
                    l.body = self.block(f, body);
                    if !l.parallel {
                        self.reduce(f, &mut l, &mut out);
                    }
                    out.push(Inst::For(l));
                }
                other => out.push(other),
            }
        }
        Block { insts: out }
    }

    fn index(&mut self, f: &mut Function, out: &mut Vec<Inst>, base: &str, op: Op) -> ValueId {
        let v = f.add_value(self.names.fresh(base, "sr"), Type::Index);
        out.push(Inst::Assign { result: v, op });
        v
    }

    /// How each index value of an access moves with loop `l`, or `None` when the access
    /// cannot go through a pointer.
    fn axes(
        &self,
        l: &For,
        inside: &HashSet<ValueId>,
        offsets: &HashMap<ValueId, ValueId>,
        index: &[ValueId],
    ) -> Option<Vec<Axis>> {
        let axes: Vec<Axis> = index
            .iter()
            .map(|&v| {
                if v == l.var {
                    Some(Axis::Moving(None))
                } else if let Some(&c) = offsets.get(&v) {
                    Some(Axis::Moving(Some(c)))
                } else if inside.contains(&v) || self.consts.contains_key(&v) {
                    None
                } else {
                    Some(Axis::Fixed(v))
                }
            })
            .collect::<Option<_>>()?;
        axes.iter()
            .any(|a| matches!(a, Axis::Moving(_)))
            .then_some(axes)
    }

    /// Rewrites the accesses of `l`'s body through pointers, appending their start addresses
    /// (computed before the loop) to `pre`.
    fn reduce(&mut self, f: &mut Function, l: &mut For, pre: &mut Vec<Inst>) {
        let inside = defined_by(l);
        // Values of the body that are the loop variable plus an invariant.
        let mut offsets: HashMap<ValueId, ValueId> = HashMap::new();
        for inst in &l.body.insts {
            if let Inst::Assign {
                result,
                op: Op::IndexArith(IndexOp::Add, a, b),
            } = inst
            {
                if *a == l.var && !inside.contains(b) {
                    offsets.insert(*result, *b);
                } else if *b == l.var && !inside.contains(a) {
                    offsets.insert(*result, *a);
                }
            }
        }
        let mut pointers: HashMap<(BufferId, Vec<Axis>), ValueId> = HashMap::new();
        let mut advances: Vec<(ValueId, Vec<u32>)> = Vec::new();
        let mut step: Option<ValueId> = None;
        let var_name = f
            .value(l.var)
            .map_or_else(|| "i".to_string(), |v| v.name.clone());
        let old = std::mem::take(&mut l.body.insts);
        let mut insts = Vec::with_capacity(old.len());
        for mut inst in old {
            let (buffer, index) = match &inst {
                Inst::Assign {
                    op: Op::Load { buffer, index, .. },
                    ..
                }
                | Inst::Store { buffer, index, .. } => (*buffer, index.clone()),
                _ => {
                    insts.push(inst);
                    continue;
                }
            };
            let Some(axes) = self.axes(l, &inside, &offsets, &index) else {
                insts.push(inst);
                continue;
            };
            let (axes, offset) = shared(axes);
            let base = match pointers.get(&(buffer, axes.clone())) {
                Some(&p) => p,
                None => {
                    let start: Vec<ValueId> = axes
                        .iter()
                        .map(|a| match *a {
                            Axis::Fixed(v) => v,
                            Axis::Moving(None) => l.lower,
                            Axis::Moving(Some(c)) => self.index(
                                f,
                                pre,
                                &var_name,
                                Op::IndexArith(IndexOp::Add, l.lower, c),
                            ),
                        })
                        .collect();
                    let name = f
                        .buffer(buffer)
                        .map_or_else(|| "p".to_string(), |b| format!("{}.p", b.name));
                    let init = f.add_value(self.names.fresh(&name, "start"), Type::Ptr);
                    pre.push(Inst::Assign {
                        result: init,
                        op: Op::Addr {
                            buffer,
                            index: start,
                        },
                    });
                    let arg = f.add_value(self.names.fresh(&name, "sr"), Type::Ptr);
                    let result = f.add_value(self.names.fresh(&name, "end"), Type::Ptr);
                    l.carried.push(Carried { arg, init, result });
                    advances.push((arg, moving_axes(&axes)));
                    pointers.insert((buffer, axes.clone()), arg);
                    arg
                }
            };
            let ptr = match offset {
                None => base,
                Some(by) => {
                    let name = f
                        .value(base)
                        .map_or_else(|| "p".to_string(), |v| v.name.clone());
                    let ptr = f.add_value(self.names.fresh(&name, "at"), Type::Ptr);
                    let along = moving_axes(&axes);
                    insts.push(Inst::Assign {
                        result: ptr,
                        op: Op::Advance {
                            ptr: base,
                            by,
                            axes: along,
                        },
                    });
                    ptr
                }
            };
            inst = match inst {
                Inst::Assign {
                    result,
                    op: Op::Load { lanes, .. },
                } => Inst::Assign {
                    result,
                    op: Op::LoadAt { ptr, lanes },
                },
                Inst::Store { value, .. } => Inst::StoreAt { ptr, value },
                other => other,
            };
            insts.push(inst);
            self.changed = true;
        }
        l.body.insts = insts;
        for (arg, axes) in advances {
            let by = match step {
                Some(s) => s,
                None => {
                    let s = i64::try_from(l.step).unwrap_or(i64::MAX);
                    let v = self.index(f, pre, &var_name, Op::IndexConst(s));
                    step = Some(v);
                    v
                }
            };
            let name = f
                .value(arg)
                .map_or_else(|| "p".to_string(), |v| v.name.clone());
            let next = f.add_value(self.names.fresh(&name, "next"), Type::Ptr);
            l.body.insts.push(Inst::Assign {
                result: next,
                op: Op::Advance { ptr: arg, by, axes },
            });
            l.yields.push(next);
        }
    }
}

/// The positions of the moving axes of an access.
fn moving_axes(axes: &[Axis]) -> Vec<u32> {
    axes.iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Axis::Moving(_)))
        .map(|(k, _)| u32::try_from(k).unwrap_or(u32::MAX))
        .collect()
}
