//! Helpers for passes that rewrite loop IR: the operands of an instruction, copies of blocks
//! with fresh values, uses replaced, and values renumbered after some went away.
//!
//! Every helper keeps the function's invariants that it can see: copies get fresh, unique
//! names; [`compact`] drops the values nothing defines any more and renumbers the rest in
//! definition order, so that the printed text parses back to the same function.

use super::{Block, Function, Inst, Op, Ukernel, ValueId};
use std::collections::{HashMap, HashSet};

/// The values an op reads, in operand order.
pub fn op_operands(op: &Op) -> Vec<ValueId> {
    let mut op = op.clone();
    op_operands_mut(&mut op).into_iter().map(|v| *v).collect()
}

/// The values an op reads, to rewrite them.
pub fn op_operands_mut(op: &mut Op) -> Vec<&mut ValueId> {
    match op {
        Op::IndexConst(_) | Op::Dim(_) | Op::Const(_) => Vec::new(),
        Op::IndexArith(_, a, b)
        | Op::Binary(_, a, b)
        | Op::Cmp(_, a, b)
        | Op::And(a, b)
        | Op::Or(a, b) => vec![a, b],
        Op::Splat(a, _) | Op::Unary(_, a) | Op::Not(a) | Op::Cast(_, a) | Op::ReduceLanes(_, a) => {
            vec![a]
        }
        Op::Fma(a, b, c) | Op::Select(a, b, c) => vec![a, b, c],
        Op::Load { index, .. } | Op::Addr { index, .. } => index.iter_mut().collect(),
        Op::Advance { ptr, by, .. } => vec![ptr, by],
        Op::LoadAt { ptr, .. } => vec![ptr],
    }
}

/// The values a micro-kernel call reads.
fn ukernel_operands_mut(u: &mut Ukernel) -> Vec<&mut ValueId> {
    let mut out = vec![&mut u.kc, &mut u.mr, &mut u.nr, &mut u.init];
    out.extend(u.scale.as_mut());
    let operands = [&mut u.a, &mut u.b, &mut u.c]
        .into_iter()
        .chain(u.bias.as_mut());
    for t in operands {
        out.extend(t.start.iter_mut());
    }
    out
}

/// The values an instruction reads at its own level: operands, stored values, loop bounds and
/// initial values (not the uses inside a loop's body, nor its yields).
pub fn inst_operands_mut(inst: &mut Inst) -> Vec<&mut ValueId> {
    match inst {
        Inst::Assign { op, .. } => op_operands_mut(op),
        Inst::Store { index, value, .. } => {
            let mut out: Vec<&mut ValueId> = index.iter_mut().collect();
            out.push(value);
            out
        }
        Inst::For(l) => {
            let l = &mut **l;
            let mut out = vec![&mut l.lower, &mut l.upper];
            out.extend(l.carried.iter_mut().map(|c| &mut c.init));
            out
        }
        Inst::Scoped(_) => Vec::new(),
        Inst::Ukernel(u) => ukernel_operands_mut(u),
        Inst::StoreAt { ptr, value } => vec![ptr, value],
    }
}

/// Replaces every use of a value by another, in `block` and the blocks nested in it (yields
/// included) according to `map`; values not in `map` stay.
pub fn substitute(block: &mut Block, map: &HashMap<ValueId, ValueId>) {
    for inst in &mut block.insts {
        substitute_inst(inst, map);
    }
}

/// [`substitute`] on one instruction (a loop's body and yields included).
pub fn substitute_inst(inst: &mut Inst, map: &HashMap<ValueId, ValueId>) {
    for v in inst_operands_mut(inst) {
        if let Some(&to) = map.get(v) {
            *v = to;
        }
    }
    if let Inst::For(l) = inst {
        substitute(&mut l.body, map);
        for y in &mut l.yields {
            if let Some(&to) = map.get(y) {
                *y = to;
            }
        }
    }
}

/// Hands out value names unique in a function.
pub struct Names {
    used: HashSet<String>,
}

impl Names {
    /// The names `f` uses already.
    pub fn of(f: &Function) -> Names {
        Names {
            used: f.values.iter().map(|v| v.name.clone()).collect(),
        }
    }

    /// `base.suffix`, or `base.suffix.1`, ... whichever is free; then taken.
    pub fn fresh(&mut self, base: &str, suffix: &str) -> String {
        let mut name = format!("{base}.{suffix}");
        let mut n = 0;
        while self.used.contains(&name) {
            n += 1;
            name = format!("{base}.{suffix}.{n}");
        }
        self.used.insert(name.clone());
        name
    }
}

/// Copies `block` with a fresh value (named `<old>.<suffix>`) for every value it defines, its
/// nested loops' variables, carried values and results included; uses go through `map`, which
/// also receives the new values (so a copy of a loop body can first map the loop's variable and
/// carried arguments). Scoped buffers are not copied: a block that declares one cannot be
/// copied into the same function (see [`declares_scoped`]).
pub fn copy_block(
    f: &mut Function,
    names: &mut Names,
    block: &Block,
    map: &mut HashMap<ValueId, ValueId>,
    suffix: &str,
) -> Block {
    let mut out = Vec::with_capacity(block.insts.len());
    for inst in &block.insts {
        let mut inst = inst.clone();
        for v in inst_operands_mut(&mut inst) {
            *v = map.get(v).copied().unwrap_or(*v);
        }
        match &mut inst {
            Inst::Assign { result, .. } => *result = fresh(f, names, map, *result, suffix),
            Inst::For(l) => {
                let l = &mut **l;
                l.var = fresh(f, names, map, l.var, suffix);
                for c in &mut l.carried {
                    c.arg = fresh(f, names, map, c.arg, suffix);
                }
                let body = std::mem::take(&mut l.body);
                l.body = copy_block(f, names, &body, map, suffix);
                for y in &mut l.yields {
                    *y = map.get(y).copied().unwrap_or(*y);
                }
                for c in &mut l.carried {
                    c.result = fresh(f, names, map, c.result, suffix);
                }
            }
            Inst::Store { .. } | Inst::StoreAt { .. } | Inst::Scoped(_) | Inst::Ukernel(_) => {}
        }
        out.push(inst);
    }
    Block { insts: out }
}

/// A fresh value copying `old`'s type, recorded in `map`.
fn fresh(
    f: &mut Function,
    names: &mut Names,
    map: &mut HashMap<ValueId, ValueId>,
    old: ValueId,
    suffix: &str,
) -> ValueId {
    let (base, ty) = match f.value(old) {
        Some(v) => (v.name.clone(), v.ty),
        None => (format!("v{}", old.0), super::Type::Index),
    };
    let new = f.add_value(names.fresh(&base, suffix), ty);
    map.insert(old, new);
    new
}

/// Whether `block` (or a block nested in it) declares a scoped buffer.
pub fn declares_scoped(block: &Block) -> bool {
    block.insts.iter().any(|inst| match inst {
        Inst::Scoped(_) => true,
        Inst::For(l) => declares_scoped(&l.body),
        _ => false,
    })
}

/// How many instructions `block` holds, nested ones included.
pub fn size(block: &Block) -> usize {
    block
        .insts
        .iter()
        .map(|inst| match inst {
            Inst::For(l) => 1 + size(&l.body),
            _ => 1,
        })
        .sum()
}

/// Drops the values nothing defines any more and renumbers the rest in the order the text
/// defines them (a loop's results, its variable, its carried arguments, then its body), which
/// is the order the parser assigns.
pub fn compact(f: &mut Function) {
    let mut order = Vec::new();
    defined_in(&f.body, &mut order);
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut values = Vec::with_capacity(order.len());
    for old in order {
        if map.contains_key(&old) {
            continue;
        }
        if let Some(def) = f.value(old) {
            map.insert(
                old,
                ValueId(u32::try_from(values.len()).unwrap_or(u32::MAX)),
            );
            values.push(def.clone());
        }
    }
    renumber(&mut f.body, &map);
    f.values = values;
}

/// The values `block` defines, in text order.
fn defined_in(block: &Block, out: &mut Vec<ValueId>) {
    for inst in &block.insts {
        match inst {
            Inst::Assign { result, .. } => out.push(*result),
            Inst::For(l) => {
                out.extend(l.carried.iter().map(|c| c.result));
                out.push(l.var);
                out.extend(l.carried.iter().map(|c| c.arg));
                defined_in(&l.body, out);
            }
            Inst::Store { .. } | Inst::StoreAt { .. } | Inst::Scoped(_) | Inst::Ukernel(_) => {}
        }
    }
}

/// Renames every value (definitions and uses) through `map`.
fn renumber(block: &mut Block, map: &HashMap<ValueId, ValueId>) {
    let get = |v: &mut ValueId| {
        if let Some(&n) = map.get(v) {
            *v = n;
        }
    };
    for inst in &mut block.insts {
        for v in inst_operands_mut(inst) {
            get(v);
        }
        match inst {
            Inst::Assign { result, .. } => get(result),
            Inst::For(l) => {
                let l = &mut **l;
                get(&mut l.var);
                for c in &mut l.carried {
                    get(&mut c.arg);
                    get(&mut c.result);
                }
                renumber(&mut l.body, map);
                for y in &mut l.yields {
                    get(y);
                }
            }
            Inst::Store { .. } | Inst::StoreAt { .. } | Inst::Scoped(_) | Inst::Ukernel(_) => {}
        }
    }
}
