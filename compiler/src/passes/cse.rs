//! `cse`: common-subexpression elimination at the tensor level, in two forms.
//!
//! **Whole ops.** Two `generic` ops that compute the same value are merged: every use of the
//! later one reads the earlier one, and the later op goes. Ops are compared by a key that is
//! alpha-normalised: index names do not matter (indices are numbered in the order output,
//! then reduction), nor does the order of the inputs (they are numbered in the order the body
//! first reads them; an input read twice through the same map counts once; an unread one does
//! not count), while the reduction order, every extent and every literal's bits (so `0.0` and
//! `-0.0`, and NaN payloads, differ) do.
//!
//! **Subexpressions of later bodies.** When a later op's body contains the body of an earlier
//! map (no reduction) that something already reads, computed from the same tensors read under
//! a consistent correspondence of indices, that part of the body becomes a read of the map's
//! value. This is what keeps a derived gradient from recomputing its forward pass: in
//! `attention_grad`, `exp(S[i,j] - P.max[i])` inside the backward ops becomes a read of
//! `P.exp[i,j]`. Only bodies with a function call are looked for (reading a copied tensor
//! instead of the original gains nothing), and not inside `select` conditions.
//!
//! Requires: verified tensor IR. Guarantees: verified tensor IR computing identical values
//! (a merged op computes exactly what its twin computed; a replaced subexpression is read from
//! a tensor holding its values at the same points). Ops left without readers are removed by
//! `dce`, not here.

use super::TensorPass;
use crate::ir::tensor::builder::{compact, drop_unread_inputs, keep_used_inputs};
use crate::ir::tensor::printer::print_expr;
use crate::ir::tensor::visit::{any_node, rename_indices, rename_inputs};
use crate::ir::tensor::{
    AxisMap, Cond, Expr, Function, Generic, IndexDef, IndexId, Input, Module, OpKind, ValueId,
};
use einc_runtime::Scalar;
use std::collections::HashMap;
use std::fmt::Write as _;

/// The `cse` pass.
#[derive(Debug)]
pub struct Cse;

impl TensorPass for Cse {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let mut changed = false;
        for f in &mut m.funcs {
            changed |= merge_ops(f);
            changed |= reuse_maps(f);
        }
        changed
    }
}

/// Merges ops with equal keys into the first; returns whether any was merged. Ops are visited
/// in order and read the merged values already, so chains of twins merge in one pass.
fn merge_ops(f: &mut Function) -> bool {
    let mut first: HashMap<String, ValueId> = HashMap::new();
    let mut merged: HashMap<ValueId, ValueId> = HashMap::new();
    for op in &mut f.ops {
        let OpKind::Generic(g) = &mut op.kind;
        for input in &mut g.inputs {
            if let Some(&to) = merged.get(&input.value) {
                input.value = to;
            }
        }
        let k = key(g);
        match first.get(&k) {
            Some(&earlier) => {
                merged.insert(op.result, earlier);
            }
            None => {
                first.insert(k, op.result);
            }
        }
    }
    if merged.is_empty() {
        return false;
    }
    for r in &mut f.results {
        if let Some(&to) = merged.get(&r.value) {
            r.value = to;
        }
    }
    f.ops.retain(|op| !merged.contains_key(&op.result));
    compact(f);
    true
}

/// The alpha-normalised key of an op (see the module docs).
pub fn key(g: &Generic) -> String {
    let order: Vec<IndexId> = g
        .output
        .iter()
        .chain(g.reduce.iter().flat_map(|r| &r.over))
        .copied()
        .collect();
    let canonical = |i: IndexId| {
        IndexId(
            order
                .iter()
                .position(|&o| o == i)
                .map_or(u32::MAX, |p| p as u32),
        )
    };
    // Reads of one tensor through one map count once.
    let mut inputs: Vec<Input> = Vec::new();
    let mut first_of: Vec<u32> = Vec::with_capacity(g.inputs.len());
    for input in &g.inputs {
        let map: Vec<AxisMap> = input
            .map
            .iter()
            .map(|a| match a {
                AxisMap::Index(i) => AxisMap::Index(canonical(*i)),
                fixed => *fixed,
            })
            .collect();
        let same = inputs
            .iter()
            .position(|x| x.value == input.value && x.map == map);
        first_of.push(match same {
            Some(p) => p as u32,
            None => {
                inputs.push(Input {
                    value: input.value,
                    map,
                });
                (inputs.len() - 1) as u32
            }
        });
    }
    let body = rename_inputs(&g.body, &|n| first_of.get(n as usize).copied().unwrap_or(n));
    let body = rename_indices(&body, &canonical);
    let (inputs, body) = keep_used_inputs(inputs, &body);
    let named = Generic {
        indices: order
            .iter()
            .enumerate()
            .map(|(k, &i)| IndexDef {
                name: format!("i{k}"),
                extent: g
                    .indices
                    .get(i.0 as usize)
                    .map_or(crate::ir::tensor::Extent::Fixed(0), |d| d.extent.clone()),
            })
            .collect(),
        inputs: Vec::new(),
        output: Vec::new(),
        reduce: None,
        body: Expr::Input(0),
        dtype: g.dtype,
        schedule: None,
    };
    let mut k = format!("{}|{}|", g.dtype, g.output.len());
    for d in &named.indices {
        let _ = write!(k, "{:?},", d.extent);
    }
    let _ = write!(k, "|{:?}|", g.reduce.as_ref().map(|r| r.kind));
    for input in &inputs {
        let _ = write!(k, "{}{:?};", input.value.0, input.map);
    }
    k.push('|');
    k.push_str(&print_expr(&named, &body));
    k
}

/// Replaces parts of later bodies by reads of earlier maps; returns whether any was.
fn reuse_maps(f: &mut Function) -> bool {
    let mut changed = false;
    for later in 1..f.ops.len() {
        for earlier in 0..later {
            let OpKind::Generic(m) = &f.ops[earlier].kind;
            let result = f.ops[earlier].result;
            if m.reduce.is_some() || !calls_a_function(&m.body) || !is_read(f, result) {
                continue;
            }
            let m = m.clone();
            let OpKind::Generic(g) = &mut f.ops[later].kind;
            changed |= reuse_in(g, &m, result);
        }
    }
    changed
}

fn calls_a_function(e: &Expr) -> bool {
    any_node(e, &mut |n| {
        matches!(
            n,
            Expr::Unary(..) | Expr::Binary(..) | Expr::Select(..) | Expr::Cast(..)
        )
    })
}

/// Whether an op reads `v` or the function returns it.
fn is_read(f: &Function, v: ValueId) -> bool {
    f.results.iter().any(|r| r.value == v)
        || f.ops.iter().any(|op| {
            let OpKind::Generic(g) = &op.kind;
            g.inputs.iter().any(|i| i.value == v)
        })
}

/// Replaces every part of `g`'s body that computes map `m`'s body by a read of `value`.
fn reuse_in(g: &mut Generic, m: &Generic, value: ValueId) -> bool {
    let mut added = false;
    let body = g.body.clone();
    let body = replace(&body, g, m, value, &mut added);
    if added {
        g.body = body;
        drop_unread_inputs(g);
    }
    added
}

fn replace(e: &Expr, g: &mut Generic, m: &Generic, value: ValueId, added: &mut bool) -> Expr {
    let mut sigma: Vec<Option<IndexId>> = vec![None; m.indices.len()];
    if same(&m.body, e, m, g, &mut sigma) {
        if let Some(map) = m
            .output
            .iter()
            .map(|o| {
                sigma
                    .get(o.0 as usize)
                    .copied()
                    .flatten()
                    .map(AxisMap::Index)
            })
            .collect::<Option<Vec<AxisMap>>>()
        {
            let existing = g
                .inputs
                .iter()
                .position(|i| i.value == value && i.map == map);
            let k = existing.unwrap_or_else(|| {
                g.inputs.push(Input { value, map });
                g.inputs.len() - 1
            });
            *added = true;
            return Expr::Input(k as u32);
        }
    }
    let mut r = |x: &Expr| Box::new(replace(x, g, m, value, added));
    match e {
        Expr::Unary(f, x) => Expr::Unary(*f, r(x)),
        Expr::Binary(f, x, y) => {
            let x = r(x);
            Expr::Binary(*f, x, r(y))
        }
        Expr::Cast(t, x) => Expr::Cast(*t, r(x)),
        Expr::Select(c, x, y) => {
            let x = r(x);
            Expr::Select(c.clone(), x, r(y))
        }
        leaf => leaf.clone(),
    }
}

/// Whether `a` (in map `m`) computes what `b` (in op `g`) computes when `m`'s indices stand
/// for `g`'s as `sigma` says, extending `sigma` as needed (restored on failure).
fn same(a: &Expr, b: &Expr, m: &Generic, g: &Generic, sigma: &mut Vec<Option<IndexId>>) -> bool {
    let saved = sigma.clone();
    let ok = match (a, b) {
        (Expr::Input(x), Expr::Input(y)) => {
            match (m.inputs.get(*x as usize), g.inputs.get(*y as usize)) {
                (Some(p), Some(q)) if p.value == q.value && p.map.len() == q.map.len() => {
                    p.map.iter().zip(&q.map).all(|(u, v)| match (u, v) {
                        (AxisMap::Index(i), AxisMap::Index(j)) => bind(*i, *j, m, g, sigma),
                        (AxisMap::Fixed(p), AxisMap::Fixed(q)) => p == q,
                        _ => false,
                    })
                }
                _ => false,
            }
        }
        (Expr::Index(i), Expr::Index(j)) => bind(*i, *j, m, g, sigma),
        (Expr::Lit(x), Expr::Lit(y)) => same_bits(*x, *y),
        (Expr::DimValue(x, s), Expr::DimValue(y, t)) => x == y && s == t,
        (Expr::Unary(f, x), Expr::Unary(h, y)) => f == h && same(x, y, m, g, sigma),
        (Expr::Binary(f, x1, x2), Expr::Binary(h, y1, y2)) => {
            f == h && same(x1, y1, m, g, sigma) && same(x2, y2, m, g, sigma)
        }
        (Expr::Cast(s, x), Expr::Cast(t, y)) => s == t && same(x, y, m, g, sigma),
        (Expr::Select(c, x1, x2), Expr::Select(d, y1, y2)) => {
            same_cond(c, d, m, g, sigma) && same(x1, y1, m, g, sigma) && same(x2, y2, m, g, sigma)
        }
        (Expr::Delta(xs, s), Expr::Delta(ys, t)) | (Expr::Eps(xs, s), Expr::Eps(ys, t)) => {
            s == t
                && xs.len() == ys.len()
                && xs.iter().zip(ys).all(|(i, j)| bind(*i, *j, m, g, sigma))
        }
        _ => false,
    };
    if !ok {
        *sigma = saved;
    }
    ok
}

fn same_cond(
    a: &Cond,
    b: &Cond,
    m: &Generic,
    g: &Generic,
    sigma: &mut Vec<Option<IndexId>>,
) -> bool {
    match (a, b) {
        (Cond::Cmp(p, x1, x2), Cond::Cmp(q, y1, y2)) => {
            p == q && same(x1, y1, m, g, sigma) && same(x2, y2, m, g, sigma)
        }
        (Cond::And(x1, x2), Cond::And(y1, y2)) | (Cond::Or(x1, x2), Cond::Or(y1, y2)) => {
            same_cond(x1, y1, m, g, sigma) && same_cond(x2, y2, m, g, sigma)
        }
        (Cond::Not(x), Cond::Not(y)) => same_cond(x, y, m, g, sigma),
        _ => false,
    }
}

/// Lets `m`'s index `i` stand for `g`'s index `j` (consistently, with equal extents).
fn bind(i: IndexId, j: IndexId, m: &Generic, g: &Generic, sigma: &mut [Option<IndexId>]) -> bool {
    let (Some(slot), Some(di), Some(dj)) = (
        sigma.get_mut(i.0 as usize),
        m.indices.get(i.0 as usize),
        g.indices.get(j.0 as usize),
    ) else {
        return false;
    };
    match slot {
        Some(k) => *k == j,
        None if di.extent == dj.extent => {
            *slot = Some(j);
            true
        }
        None => false,
    }
}

/// Whether two literals are the same value bit for bit (dtype included).
fn same_bits(a: Scalar, b: Scalar) -> bool {
    match (a, b) {
        (Scalar::F32(x), Scalar::F32(y)) => x.to_bits() == y.to_bits(),
        (Scalar::F64(x), Scalar::F64(y)) => x.to_bits() == y.to_bits(),
        (Scalar::I32(x), Scalar::I32(y)) => x == y,
        (Scalar::I64(x), Scalar::I64(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
