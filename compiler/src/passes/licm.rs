//! `licm`: loop-invariant code motion on loop IR.
//!
//! Requires: verified loop IR. Guarantees: every pure instruction in a loop body whose
//! operands are all defined outside the loop (or by instructions hoisted with it) moves to
//! just before the loop, in its original order; inner loops are processed first, so an
//! instruction invariant in several nested loops moves out of all of them. The result verifies
//! and computes what the input computes, bit for bit, for every input: the moved operations are
//! the same, and none can fault (index division by zero is defined, float operations do not
//! trap).
//!
//! What stays: loads (a loop that runs zero times must not read, and its buffer may be written
//! in the loop), stores, scoped-buffer declarations, micro-kernel calls, loops, and everything
//! that depends on the loop's variable or carried values. Cranelift hoists pure arithmetic out
//! of loops too, but not from the loop IR's point of view: hoisting here makes the dumps show
//! what runs per iteration, and lets `strength-reduce` see invariant index values as such.

use super::{Ir, Pass, PassOutput};
use crate::ir::loops::rewrite::op_operands;
use crate::ir::loops::{Block, Inst, Module, Op, ValueId};
use std::collections::HashSet;

/// The `licm` pass.
#[derive(Debug)]
pub struct Licm;

impl Pass for Licm {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        match ir {
            Ir::Loop(mut m) => {
                let changed = hoist_module(&mut m);
                Ok(PassOutput {
                    ir: Ir::Loop(m),
                    changed,
                })
            }
            other => Err(format!("expects loop IR, got {} IR", other.level())),
        }
    }
}

/// Hoists in every function; returns whether anything moved.
pub fn hoist_module(m: &mut Module) -> bool {
    let mut changed = false;
    for f in &mut m.funcs {
        changed |= hoist_block(&mut f.body);
    }
    changed
}

/// Whether `op` may run where its operands are available, as often or as rarely as needed:
/// it reads no memory and cannot fault (`addr` and `advance` only compute positions).
fn movable(op: &Op) -> bool {
    !matches!(op, Op::Load { .. } | Op::LoadAt { .. })
}

/// Processes the loops of `block` (inner ones first) and moves each one's invariant
/// instructions before it; returns whether anything moved.
fn hoist_block(block: &mut Block) -> bool {
    let mut changed = false;
    let mut out = Vec::with_capacity(block.insts.len());
    for mut inst in std::mem::take(&mut block.insts) {
        if let Inst::For(l) = &mut inst {
            changed |= hoist_block(&mut l.body);
            // Values the loop defines: its variable, carried arguments, and what stays in it.
            let mut inside: HashSet<ValueId> = HashSet::new();
            inside.insert(l.var);
            inside.extend(l.carried.iter().map(|c| c.arg));
            let mut kept = Vec::with_capacity(l.body.insts.len());
            for body_inst in std::mem::take(&mut l.body.insts) {
                match &body_inst {
                    Inst::Assign { op, .. }
                        if movable(op) && op_operands(op).iter().all(|v| !inside.contains(v)) =>
                    {
                        out.push(body_inst);
                        changed = true;
                    }
                    Inst::Assign { result, .. } => {
                        inside.insert(*result);
                        kept.push(body_inst);
                    }
                    Inst::For(inner) => {
                        inside.extend(inner.carried.iter().map(|c| c.result));
                        kept.push(body_inst);
                    }
                    Inst::Store { .. }
                    | Inst::StoreAt { .. }
                    | Inst::Scoped(_)
                    | Inst::Ukernel(_) => kept.push(body_inst),
                }
            }
            l.body.insts = kept;
        }
        out.push(inst);
    }
    block.insts = out;
    changed
}
