//! `dce`: dead-code elimination across the whole module.
//!
//! - In every op, the inputs its body never reads are dropped (the others keep their order),
//!   so that a value read only through such an input is not kept alive by it.
//! - In every function, every op whose result no result and no live op reads is dropped, and
//!   the values are renumbered so that every remaining value is defined.
//!
//! The module's dims stay, even those no function mentions any more: they are part of every
//! kernel's interface (`einc_K_info` lists them).
//!
//! Requires: verified tensor IR. Guarantees: verified tensor IR computing the same results
//! (ops have no side effects, so an unread value cannot matter); parameters are kept even when
//! unread, since they are the kernel's signature; the order of the remaining ops is unchanged.

use super::TensorPass;
use crate::ir::tensor::builder::{compact, drop_unread_inputs};
use crate::ir::tensor::{Function, Module, OpKind, ValueId};

/// The `dce` pass.
#[derive(Debug)]
pub struct Dce;

impl TensorPass for Dce {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let mut changed = false;
        for f in &mut m.funcs {
            for op in &mut f.ops {
                let OpKind::Generic(g) = &mut op.kind;
                changed |= drop_unread_inputs(g);
            }
            changed |= dce_function(f);
        }
        changed
    }
}

/// Removes the dead ops of `f`; returns whether there were any.
fn dce_function(f: &mut Function) -> bool {
    let mut live = vec![false; f.values.len()];
    let mark = |v: ValueId, live: &mut Vec<bool>| {
        if let Some(slot) = live.get_mut(v.0 as usize) {
            *slot = true;
        }
    };
    for r in &f.results {
        mark(r.value, &mut live);
    }
    let mut keep = vec![false; f.ops.len()];
    for (k, op) in f.ops.iter().enumerate().rev() {
        if live.get(op.result.0 as usize).copied().unwrap_or(false) {
            keep[k] = true;
            let OpKind::Generic(g) = &op.kind;
            for input in &g.inputs {
                mark(input.value, &mut live);
            }
        }
    }
    if keep.iter().all(|&k| k) {
        return false;
    }
    let mut k = 0;
    f.ops.retain(|_| {
        k += 1;
        keep[k - 1]
    });
    compact(f);
    true
}
