//! Backward attention groups: what `grad` derives from an attention chain, found by structure.
//!
//! A derived gradient recomputes the forward's scores and softmax and then reads its parts
//! (`P.exp`, `P.sum`) again, so the forward chain (`super`) does not match. What it computes
//! is a *group* `G` of ops over the `T x T` (row, key) plane and the rows, entered by
//! contractions of `O(T·d)` operands and left by contractions back to `O(T·d)` values:
//!
//! ```text
//! %S.unscaled = Q · Kxᵀ                      product   (row, key)     ┐
//! %S, %P.max, %P.exp, %P.sum, %P             maps and row reductions   │ G
//! %dP = dO · Vᵀ                              product   (row, key)     │
//! %dP.sum.unscaled, %dP.sum, %dS             row reduction, row map, map┘
//! %dV = Σ_i P · dO        %dKx.unscaled = Σ_i Q · dS     exits summed over the row
//! %dQ.unscaled = Σ_j dS · Kx                             exit summed over the key
//! ```
//!
//! It is grown from a row softmax over one axis whose source is the scores (`softmax_prefix`)
//! and which does not end a forward chain. Every axis of a `G` value has a role: a batch
//! index, the row or the key (the scores' roles, carried to each op through its reads of `G`
//! values, which must be plain and agree). An op joins `G` when it reads a `G` value and is
//! - a **map**: elementwise, output over every role (a `T x T` value), or over the batch
//!   indices and the row (a row value);
//! - a **row reduction**: `reduce add` or `max` over the key alone, output over the batch
//!   indices and the row;
//! - an **exit**: `reduce add` of `mul(%g, %y)` over the key or the row, `%g` a `T x T` value
//!   of `G` read over every role, `%y` read over the summed index, one index of its own (`n`,
//!   in the output) and batch indices (not the other of row and key): the output is over the
//!   batch indices, the unsummed one of row and key, and `n`.
//!
//! A map's `T x T` input defined outside `G` by a `reduce add` of a product over one index
//! (`dP = dO · Vᵀ`), one operand reading the row and not the key and the other the key and not
//! the row, joins `G` as a **product** (as the scores are). Other inputs of `G`'s ops are read
//! at their points and must not depend on `G` or its exits.
//!
//! The group is valid when no `G` value is read outside `G` and its exits or returned, it has
//! an exit, and every reader of an exit comes after the group's *anchor*, where the fused nest
//! runs: the first of its ops after every op defining a value it reads. Pure functions of the
//! IR, like the forward's.

use super::super::classify::{classify_function, OpClass, RowSoftmax};
use super::{attention_chains, generic, plain, product, readers, softmax_prefix, Prefix, Role};
use crate::ir::scalar::ReduceKind;
use crate::ir::tensor::{Function, Generic, IndexId, ValueId};
use std::collections::{BTreeSet, HashMap};

/// What a member op of a backward group computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// `Y[.., row, key] = Σ_head R[.., row, head] · C[.., key, head]`: `rows` is the input
    /// reading the row, `keys` the input reading the key.
    Product {
        /// The operand reading the row, by input position.
        rows: usize,
        /// The operand reading the key, by input position.
        keys: usize,
        /// The summed index.
        head: IndexId,
    },
    /// An elementwise op over the row and the key (and the batch indices).
    Map,
    /// A `reduce add` or `max` over the key, the output over the row (and the batch indices).
    RowReduce,
    /// An elementwise op over the row (and the batch indices).
    RowMap,
}

/// One op of a backward group with the role of each of its indices (`None`: the head index
/// of a product).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The op's position in the function.
    pub op: usize,
    /// What it computes.
    pub kind: MemberKind,
    /// The role of each index of the op, by `IndexId`.
    pub roles: Vec<Option<Role>>,
}

/// Which index an exit sums over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitSum {
    /// Over the key: each block of rows computes its rows of the output (`dQ`, or `O`).
    Key,
    /// Over the row: every block of rows adds to every row of the output (`dK`, `dV`).
    Row,
}

/// A contraction leaving a backward group: `E[.., x, n] = Σ G[.., row, key] · Y[.., s, n]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The op's position in the function.
    pub op: usize,
    /// The input reading the group's value, by position.
    pub group_input: usize,
    /// The other input (`Y`), by position.
    pub other: usize,
    /// The summed index's role.
    pub sum: ExitSum,
    /// The index of `Y` that is neither a role nor summed (`n`).
    pub free: IndexId,
    /// The role of each index of the op (`None` for `free`).
    pub roles: Vec<Option<Role>>,
}

/// A backward attention group of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackwardGroup {
    /// The ops computing the group's values, in op order.
    pub members: Vec<Member>,
    /// The contractions leaving it, in op order.
    pub exits: Vec<Exit>,
    /// The number of batch indices.
    pub batch_rank: usize,
    /// The first op of the group after every op defining a value the group reads (its first
    /// op when the operands are defined before it), where the fused nest runs.
    pub anchor: usize,
}

impl BackwardGroup {
    /// Every op the group covers (members and exits).
    pub fn ops(&self) -> Vec<usize> {
        let mut ops: Vec<usize> = self.members.iter().map(|m| m.op).collect();
        ops.extend(self.exits.iter().map(|e| e.op));
        ops.sort_unstable();
        ops
    }

    /// The scratch elements of the fused nest with blocks of `qb` query rows, by what they
    /// scale with: per key (a `[keys, qb]` panel per `T x T` value), per element of the head
    /// (or free) extent rounded up to the tile width (a `qb`-row block per product operand,
    /// row-summed exit operand and key-summed exit), and fixed (a `[qb]` vector per row value).
    /// A row-summed exit whose output is strided adds an accumulator of the output's size.
    pub fn scratch_elements(&self, qb: u64) -> (u64, u64, u64) {
        let count = |f: &dyn Fn(&MemberKind) -> bool| {
            self.members.iter().filter(|m| f(&m.kind)).count() as u64
        };
        let panels = count(&|k| matches!(k, MemberKind::Product { .. } | MemberKind::Map));
        let products = count(&|k| matches!(k, MemberKind::Product { .. }));
        let rows = count(&|k| matches!(k, MemberKind::RowReduce | MemberKind::RowMap));
        let exits = self.exits.len() as u64;
        (panels * qb, (products + exits) * qb, rows * qb)
    }
}

/// Every backward group of `func`.
pub fn backward_groups(func: &Function) -> Vec<BackwardGroup> {
    let classes = classify_function(func);
    let forward: BTreeSet<usize> = attention_chains(func)
        .iter()
        .map(|c| c.softmax.div)
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for class in &classes {
        let OpClass::RowSoftmax(s) = class else {
            continue;
        };
        if forward.contains(&s.div) || !seen.insert(s.div) {
            continue;
        }
        if let Ok(g) = group_of(func, s) {
            out.push(g);
        }
    }
    out
}

/// The backward group whose anchor is op `k`, or why there is none.
pub fn backward_group(func: &Function, k: usize) -> Result<BackwardGroup, String> {
    let mut why = String::from("no row softmax of the function starts a backward group");
    for class in classify_function(func) {
        let OpClass::RowSoftmax(s) = class else {
            continue;
        };
        match group_of(func, &s) {
            Ok(g) if g.anchor == k => return Ok(g),
            Ok(_) => why = "the op is not the last op of a backward group".into(),
            Err(e) => why = e,
        }
    }
    Err(why)
}

/// The roles of `g`'s indices from its reads of the values in `known` (each with the roles of
/// its axes): `None` when a read is not plain or two reads disagree; an index no such read
/// reaches has no role.
fn roles_from_reads(g: &Generic, known: &HashMap<ValueId, Vec<Role>>) -> Option<Vec<Option<Role>>> {
    let mut roles: Vec<Option<Role>> = vec![None; g.indices.len()];
    for input in &g.inputs {
        let Some(axes) = known.get(&input.value) else {
            continue;
        };
        let map = plain(&input.map)?;
        if map.len() != axes.len() {
            return None;
        }
        for (i, &role) in map.iter().zip(axes) {
            let slot = roles.get_mut(i.0 as usize)?;
            match slot {
                Some(r) if *r != role => return None,
                _ => *slot = Some(role),
            }
        }
    }
    // Two indices with one role would be a diagonal.
    let given: Vec<Role> = roles.iter().flatten().copied().collect();
    let twice = (0..given.len()).any(|n| given[n + 1..].contains(&given[n]));
    (!twice).then_some(roles)
}

/// The roles of `g`'s output axes, if every output index has one.
fn output_roles(g: &Generic, roles: &[Option<Role>]) -> Option<Vec<Role>> {
    g.output
        .iter()
        .map(|i| roles.get(i.0 as usize).copied().flatten())
        .collect()
}

/// Whether `axes` holds exactly the roles `want` (in any order).
fn same_roles(axes: &[Role], want: &[Role]) -> bool {
    axes.len() == want.len() && want.iter().all(|r| axes.contains(r))
}

/// The group grown from softmax `s`.
fn group_of(func: &Function, s: &RowSoftmax) -> Result<BackwardGroup, String> {
    let div = generic(func, s.div).ok_or("the softmax is missing")?;
    let dtype = div.dtype;
    let Prefix {
        scores,
        maps,
        axes,
        q,
        k,
        head,
        ..
    } = softmax_prefix(func, s, dtype)?;
    if !axes.contains(&Role::Row) {
        return Err("no index is read by the queries alone".into());
    }
    let batch_rank = axes.iter().filter(|r| matches!(r, Role::Batch(_))).count();
    let plane: Vec<Role> = axes.clone();
    let rows: Vec<Role> = axes.iter().copied().filter(|&r| r != Role::Key).collect();
    // The roles of each group value's axes, and the members, seeded with the prefix.
    let mut known: HashMap<ValueId, Vec<Role>> = HashMap::new();
    let mut members: Vec<Member> = Vec::new();
    let mut exits: Vec<Exit> = Vec::new();
    let s_op = generic(func, scores).ok_or("missing op")?;
    let mut s_roles = vec![None; s_op.indices.len()];
    for (i, &r) in s_op.output.iter().zip(&axes) {
        s_roles[i.0 as usize] = Some(r);
    }
    members.push(Member {
        op: scores,
        kind: MemberKind::Product {
            rows: q,
            keys: k,
            head,
        },
        roles: s_roles,
    });
    known.insert(func.ops[scores].result, plane.clone());
    let first = maps.first().copied().unwrap_or(scores).min(scores);
    let mut tainted: BTreeSet<ValueId> = known.keys().copied().collect();
    for at in first..func.ops.len() {
        if members.iter().any(|m| m.op == at) {
            continue;
        }
        let g = generic(func, at).ok_or("missing op")?;
        let result = func.ops[at].result;
        let reads_group = g.inputs.iter().any(|i| known.contains_key(&i.value));
        if !reads_group {
            if g.inputs.iter().any(|i| tainted.contains(&i.value)) {
                tainted.insert(result);
            }
            continue;
        }
        tainted.insert(result);
        if g.dtype != dtype {
            continue;
        }
        let Some(roles) = roles_from_reads(g, &known) else {
            continue;
        };
        let out = output_roles(g, &roles);
        match (&g.reduce, out) {
            (None, Some(out)) if same_roles(&out, &plane) || same_roles(&out, &rows) => {
                // Products entering the plane through this map (`dP`).
                let mut entered = Vec::new();
                for input in &g.inputs {
                    if known.contains_key(&input.value) {
                        continue;
                    }
                    if let Some(m) = entering_product(func, input, &roles, &plane) {
                        entered.push((input.value, m));
                    }
                }
                for (value, m) in entered {
                    known.insert(value, plane_axes_of(func, &m));
                    tainted.insert(value);
                    members.push(m);
                }
                let kind = if same_roles(&out, &plane) {
                    MemberKind::Map
                } else {
                    MemberKind::RowMap
                };
                if kind == MemberKind::RowMap
                    && g.inputs
                        .iter()
                        .any(|i| known.get(&i.value).is_some_and(|a| a.contains(&Role::Key)))
                {
                    continue;
                }
                members.push(Member {
                    op: at,
                    kind,
                    roles,
                });
                known.insert(result, out);
            }
            (Some(r), Some(out))
                if same_roles(&out, &rows)
                    && r.over.len() == 1
                    && matches!(r.kind, ReduceKind::Add | ReduceKind::Max)
                    && roles.get(r.over[0].0 as usize) == Some(&Some(Role::Key)) =>
            {
                members.push(Member {
                    op: at,
                    kind: MemberKind::RowReduce,
                    roles,
                });
                known.insert(result, out);
            }
            (Some(_), _) => {
                if let Some(e) = exit_of(g, at, &roles, &known, &plane, &tainted) {
                    exits.push(e);
                }
            }
            _ => {}
        }
    }
    members.sort_by_key(|m| m.op);
    if exits.is_empty() {
        return Err("nothing leaves the group through a contraction".into());
    }
    // No value of the group is read outside it or returned; nothing it reads depends on it.
    let inside: BTreeSet<usize> = members
        .iter()
        .map(|m| m.op)
        .chain(exits.iter().map(|e| e.op))
        .collect();
    let group_value = |v: &ValueId| members.iter().any(|x| func.ops[x.op].result == *v);
    for m in &members {
        let value = func.ops[m.op].result;
        let (ops, returned) = readers(func, value);
        if returned || ops.iter().any(|r| !inside.contains(r)) {
            return Err("a value of the group is read outside it or returned".into());
        }
        let g = generic(func, m.op).ok_or("missing op")?;
        if g.inputs
            .iter()
            .any(|i| !group_value(&i.value) && tainted.contains(&i.value))
        {
            return Err("an op of the group reads a value computed from the group".into());
        }
    }
    // The nest runs at the first op of the group after every op defining what it reads.
    let last_read = inside
        .iter()
        .filter_map(|&k| generic(func, k))
        .flat_map(|g| g.inputs.iter())
        .filter(|i| !group_value(&i.value))
        .filter_map(|i| super::producer(func, i.value))
        .max();
    let anchor = inside
        .iter()
        .copied()
        .find(|&k| last_read.is_none_or(|r| k > r))
        .ok_or("the group reads a value defined after its last op")?;
    for e in &exits {
        let (ops, _) = readers(func, func.ops[e.op].result);
        if ops.iter().any(|&r| r <= anchor) {
            return Err("an exit of the group is read before the group runs".into());
        }
    }
    Ok(BackwardGroup {
        members,
        exits,
        batch_rank,
        anchor,
    })
}

/// The roles of a product member's output axes.
fn plane_axes_of(func: &Function, m: &Member) -> Vec<Role> {
    generic(func, m.op)
        .map(|g| {
            g.output
                .iter()
                .filter_map(|i| m.roles.get(i.0 as usize).copied().flatten())
                .collect()
        })
        .unwrap_or_default()
}

/// `input` of a map with index roles `roles` as a product entering the plane: a `reduce add`
/// of a product over one index, read plainly over every role of the plane, one operand
/// reading the row and not the key, the other the key and not the row, both the summed index.
fn entering_product(
    func: &Function,
    input: &crate::ir::tensor::Input,
    roles: &[Option<Role>],
    plane: &[Role],
) -> Option<Member> {
    let at = super::producer(func, input.value)?;
    let p = generic(func, at)?;
    let (a, b, head) = product(p)?;
    let map = plain(&input.map)?;
    let axes: Vec<Role> = map
        .iter()
        .map(|i| roles.get(i.0 as usize).copied().flatten())
        .collect::<Option<_>>()?;
    if !same_roles(&axes, plane) || map.len() != p.output.len() {
        return None;
    }
    let mut p_roles = vec![None; p.indices.len()];
    for (i, &r) in p.output.iter().zip(&axes) {
        *p_roles.get_mut(i.0 as usize)? = Some(r);
    }
    let index_of = |role: Role| {
        p_roles
            .iter()
            .position(|&r| r == Some(role))
            .map(|n| IndexId(n as u32))
    };
    let (row, key) = (index_of(Role::Row)?, index_of(Role::Key)?);
    let (ma, mb) = (plain(&p.inputs[a].map)?, plain(&p.inputs[b].map)?);
    let reads = |m: &[IndexId], i: IndexId| m.contains(&i);
    let (rows, keys) = match (
        reads(&ma, row) && !reads(&ma, key),
        reads(&mb, key) && !reads(&mb, row),
        reads(&mb, row) && !reads(&mb, key),
        reads(&ma, key) && !reads(&ma, row),
    ) {
        (true, true, _, _) => (a, b),
        (_, _, true, true) => (b, a),
        _ => return None,
    };
    if !reads(&ma, head) || !reads(&mb, head) {
        return None;
    }
    Some(Member {
        op: at,
        kind: MemberKind::Product { rows, keys, head },
        roles: p_roles,
    })
}

/// Op `g` (at `at`, index roles `roles`) as an exit of the group.
fn exit_of(
    g: &Generic,
    at: usize,
    roles: &[Option<Role>],
    known: &HashMap<ValueId, Vec<Role>>,
    plane: &[Role],
    tainted: &BTreeSet<ValueId>,
) -> Option<Exit> {
    let (x, y, over) = product(g)?;
    let (group_input, other) = match (known.get(&g.inputs[x].value), known.get(&g.inputs[y].value))
    {
        (Some(a), None) if same_roles(a, plane) => (x, y),
        (None, Some(a)) if same_roles(a, plane) => (y, x),
        _ => return None,
    };
    if tainted.contains(&g.inputs[other].value) {
        return None;
    }
    let sum = match roles.get(over.0 as usize).copied().flatten()? {
        Role::Key => ExitSum::Key,
        Role::Row => ExitSum::Row,
        Role::Batch(_) => return None,
    };
    let kept = match sum {
        ExitSum::Key => Role::Row,
        ExitSum::Row => Role::Key,
    };
    let ym = plain(&g.inputs[other].map)?;
    let free: Vec<IndexId> = ym
        .iter()
        .copied()
        .filter(|i| roles.get(i.0 as usize) == Some(&None))
        .collect();
    let [free] = free[..] else {
        return None;
    };
    let reads_kept = ym
        .iter()
        .any(|i| roles.get(i.0 as usize) == Some(&Some(kept)));
    if reads_kept || !ym.contains(&over) || !g.output.contains(&free) {
        return None;
    }
    // The output: the batch indices, the kept role and `free`.
    let mut want: Vec<Option<Role>> = plane
        .iter()
        .filter(|r| matches!(r, Role::Batch(_)) || **r == kept)
        .map(|&r| Some(r))
        .collect();
    want.push(None);
    let have: Vec<Option<Role>> = g
        .output
        .iter()
        .map(|i| roles.get(i.0 as usize).copied().flatten())
        .collect();
    if have.len() != want.len() || want.iter().any(|r| !have.contains(r)) {
        return None;
    }
    Some(Exit {
        op: at,
        group_input,
        other,
        sum,
        free,
        roles: roles.to_vec(),
    })
}

#[cfg(test)]
mod tests;
