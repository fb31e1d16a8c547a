//! `dce`: dead-code elimination. Drops every op whose result no result and no live op reads,
//! then renumbers the function's values so that every remaining value is defined.
//!
//! Requires: verified tensor IR. Guarantees: verified tensor IR computing the same results
//! (ops have no side effects, so an unread value cannot matter); parameters are kept even when
//! unread, since they are the kernel's signature; the order of the remaining ops is unchanged.

use super::TensorPass;
use crate::ir::tensor::{Function, Module, OpKind, ValueId};

/// The `dce` pass.
#[derive(Debug)]
pub struct Dce;

impl TensorPass for Dce {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let mut changed = false;
        for f in &mut m.funcs {
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
    compact_values(f);
    true
}

/// Drops the values that no parameter or op defines, renumbering the rest in order.
fn compact_values(f: &mut Function) {
    let mut defined = vec![false; f.values.len()];
    for v in f.params.iter().chain(f.ops.iter().map(|op| &op.result)) {
        if let Some(slot) = defined.get_mut(v.0 as usize) {
            *slot = true;
        }
    }
    let mut new_id = Vec::with_capacity(f.values.len());
    let mut next = 0u32;
    for &d in &defined {
        new_id.push(ValueId(next));
        next += u32::from(d);
    }
    let renumber = |v: ValueId| new_id.get(v.0 as usize).copied().unwrap_or(v);
    let mut k = 0;
    f.values.retain(|_| {
        k += 1;
        defined[k - 1]
    });
    for p in &mut f.params {
        *p = renumber(*p);
    }
    for op in &mut f.ops {
        op.result = renumber(op.result);
        let OpKind::Generic(g) = &mut op.kind;
        for input in &mut g.inputs {
            input.value = renumber(input.value);
        }
    }
    for r in &mut f.results {
        r.value = renumber(r.value);
    }
}
