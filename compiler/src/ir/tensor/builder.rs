//! Building and rewriting tensor-IR functions, in the spirit of MLIR's `OpBuilder` and
//! `RewriterBase`: a pass states what it inserts and replaces, and these utilities keep the
//! bookkeeping right (fresh value names, derived result types, use lists, dense ids).
//!
//! - [`Builder`]: fresh names, inserting an op, renaming a value, replacing every use of one
//!   value by another.
//! - [`compact`]: drops the values nothing defines any more and renumbers the rest densely.
//! - [`drop_unread_inputs`]: drops the inputs a body does not read, keeping the others' order;
//!   [`keep_used_inputs`] also renumbers them in the order the body reads them.
//!
//! Nothing here checks semantics: the result verifies when the ops a pass builds are well
//! formed and used after their definitions.

use super::visit::{rename_inputs, visit_inputs};
use super::{Expr, Function, Generic, Input, Op, OpKind, TensorType, ValueDef, ValueId};
use crate::ir::names::Namer;
use std::collections::HashMap;

/// Inserts and rewrites ops of one function.
pub struct Builder<'f> {
    func: &'f mut Function,
    names: Namer,
}

impl<'f> Builder<'f> {
    /// A builder for `func`; every name the function uses is taken.
    pub fn new(func: &'f mut Function) -> Builder<'f> {
        let names = Namer::with_used(func.values.iter().map(|v| v.name.clone()));
        Builder { func, names }
    }

    /// The function as built so far.
    pub fn func(&self) -> &Function {
        self.func
    }

    /// The function, for edits the builder has no method for (ids stay valid as long as no
    /// value is removed; call [`compact`] afterwards when one was).
    pub fn func_mut(&mut self) -> &mut Function {
        self.func
    }

    /// A value name not used in the function yet: `base`, else `base.1`, `base.2`, ...
    pub fn fresh_name(&mut self, base: &str) -> String {
        self.names.fresh(base)
    }

    /// Inserts `g` as a new op at position `at` of the op list (before the op now there; at
    /// the end when `at` is past it), defining a new value named after `base` whose type is
    /// the op's result type. Returns the value.
    pub fn insert_op(&mut self, at: usize, base: &str, g: Generic) -> ValueId {
        let ty = g.result_type().unwrap_or(TensorType {
            dtype: g.dtype,
            shape: Vec::new(),
        });
        let name = self.fresh_name(base);
        let result = self.func.add_value(name, ty);
        let at = at.min(self.func.ops.len());
        self.func.ops.insert(
            at,
            Op {
                result,
                kind: OpKind::Generic(g),
            },
        );
        result
    }

    /// Gives `v` a fresh name derived from `base` (the old name stays taken).
    pub fn rename(&mut self, v: ValueId, base: &str) {
        let name = self.fresh_name(base);
        if let Some(def) = self.func.values.get_mut(v.0 as usize) {
            def.name = name;
        }
    }

    /// Makes every reader of `from` (op inputs and function results) read `to` instead.
    /// `to` must be defined before the first reader of `from`.
    pub fn replace_all_uses(&mut self, from: ValueId, to: ValueId) {
        for op in &mut self.func.ops {
            let OpKind::Generic(g) = &mut op.kind;
            for input in &mut g.inputs {
                if input.value == from {
                    input.value = to;
                }
            }
        }
        for r in &mut self.func.results {
            if r.value == from {
                r.value = to;
            }
        }
    }
}

/// Drops the values that no parameter or op defines, renumbering the rest in order (every
/// reference is updated). Returns whether any value was dropped.
pub fn compact(f: &mut Function) -> bool {
    let mut defined = vec![false; f.values.len()];
    for v in f.params.iter().chain(f.ops.iter().map(|op| &op.result)) {
        if let Some(slot) = defined.get_mut(v.0 as usize) {
            *slot = true;
        }
    }
    if defined.iter().all(|&d| d) {
        return false;
    }
    let mut new_id = Vec::with_capacity(f.values.len());
    let mut next = 0u32;
    for &d in &defined {
        new_id.push(ValueId(next));
        next += u32::from(d);
    }
    let renumber = |v: ValueId| new_id.get(v.0 as usize).copied().unwrap_or(v);
    let values: Vec<ValueDef> = std::mem::take(&mut f.values);
    f.values = values
        .into_iter()
        .zip(&defined)
        .filter_map(|(v, &d)| d.then_some(v))
        .collect();
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
    true
}

/// Drops the inputs `g`'s body does not read, keeping the others in their order (the body's
/// `%n` renumbered to match). Returns whether any was dropped.
pub fn drop_unread_inputs(g: &mut Generic) -> bool {
    let mut read = vec![false; g.inputs.len()];
    visit_inputs(&g.body, &mut |n| {
        if let Some(r) = read.get_mut(n as usize) {
            *r = true;
        }
    });
    if read.iter().all(|&r| r) {
        return false;
    }
    let mut new_pos = Vec::with_capacity(read.len());
    let mut next = 0u32;
    for &r in &read {
        new_pos.push(next);
        next += u32::from(r);
    }
    let mut k = 0;
    g.inputs.retain(|_| {
        k += 1;
        read[k - 1]
    });
    g.body = rename_inputs(&g.body, &|n| new_pos.get(n as usize).copied().unwrap_or(n));
    true
}

/// Drops the inputs `body` does not read and numbers the rest in the order the body first
/// reads them, so that `mul(%0, %1)` reads left to right. Returns the new inputs and body.
pub fn keep_used_inputs(inputs: Vec<Input>, body: &Expr) -> (Vec<Input>, Expr) {
    let mut order: Vec<u32> = Vec::new();
    visit_inputs(body, &mut |n| {
        if !order.contains(&n) {
            order.push(n);
        }
    });
    let renumber: HashMap<u32, u32> = order
        .iter()
        .enumerate()
        .filter_map(|(new, &old)| Some((old, u32::try_from(new).ok()?)))
        .collect();
    let mut slots: Vec<Option<Input>> = inputs.into_iter().map(Some).collect();
    let kept = order
        .iter()
        .filter_map(|&n| slots.get_mut(n as usize).and_then(Option::take))
        .collect();
    let body = rename_inputs(body, &|n| renumber.get(&n).copied().unwrap_or(n));
    (kept, body)
}

#[cfg(test)]
mod tests;
