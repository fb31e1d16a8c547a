//! Attention chains: a contraction of scores, elementwise maps on them, a row softmax over the
//! key axis, and a contraction of the softmax with values, found structurally (whatever the ops
//! are called):
//!
//! ```text
//! %S.unscaled = generic (i: T, j: T, a: K) ins(%Q[i, a], %Kx[j, a]) -> [i, j] reduce add over (a) { mul(%0, %1) } : f32
//! %S = generic (i: T, j: T) ins(%S.unscaled[i, j]) -> [i, j] { div(%0, sqrt(dim(K):f32)) } : f32
//! %M = generic (i: T, j: T) ins(%S[i, j]) -> [i, j] { select(le(j, i), %0, -inf:f32) } : f32
//! %P.max, %P.exp, %P.sum, %P = the row softmax of %M over j
//! %O = generic (i: T, e: K, j: T) ins(%P[i, j], %V[j, e]) -> [i, e] reduce add over (j) { mul(%0, %1) } : f32
//! ```
//!
//! What is recognised:
//! - **scores** `S`: a float `reduce add` of `mul(%q, %k)` over one index (the head index `a`);
//!   every axis of `S` is a *row* (read by `q` only), the *key* (read by `k` only) or a *batch*
//!   index (any others: read by either or both operands, e.g. batch and head indices, or a key
//!   shared by all heads). `q` and `k` read each of their indices once, with no fixed positions.
//! - **maps**: any number of elementwise maps, each reading the previous value at its own
//!   indices in its own axis order (the scale, a `where` mask, ...), possibly with other inputs
//!   (a padding mask tensor) and index values (a causal `j <= i`);
//! - **softmax**: a row-softmax group (`classify`) over the key axis alone, reading the last
//!   map (or `S`) at its own indices;
//! - **output** `O`: a `reduce add` of `mul(%p, %v)` over one index, the key, with `p` the
//!   softmax read at indices, `v` reading the key and one more index `e` (in `O` only), and
//!   otherwise batch indices of `S`.
//!
//! Every value of the chain but `O` must be read only by the next op of the chain and not
//! returned (else fusing would have to store it anyway), and all ops share one float dtype.
//! Pure functions of the IR: the `flash-attention` pass and the lowering both use them.

use super::classify::{classify_function, OpClass, RowSoftmax};
use crate::ir::scalar::{BinaryFn, ReduceKind};
use crate::ir::tensor::{AxisMap, Expr, Function, Generic, IndexId, OpKind, ValueId};
use einc_runtime::DType;

/// The role of one axis of the scores `S` (and of every value of the chain up to `P`, which
/// have the same axes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The `n`-th batch index (in the axis order of `S`).
    Batch(usize),
    /// The query row.
    Row,
    /// The key (the softmax axis, summed by `O`).
    Key,
}

/// One attention chain of a function: op positions and the roles of indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionChain {
    /// The scores contraction `S = Q·Kᵀ`.
    pub scores: usize,
    /// The elementwise maps between the scores and the softmax, in order.
    pub maps: Vec<usize>,
    /// The row softmax.
    pub softmax: RowSoftmax,
    /// The output contraction `O = P·V`.
    pub output: usize,
    /// The role of each axis of `S`, in axis order.
    pub axes: Vec<Role>,
    /// The scores' inputs: the one reading the row (`Q`) and the one reading the key (`K`).
    pub q: usize,
    /// See [`AttentionChain::q`].
    pub k: usize,
    /// The summed (head) index of the scores.
    pub head: IndexId,
    /// The output's inputs: the softmax (`P`) and the values (`V`).
    pub p: usize,
    /// See [`AttentionChain::p`].
    pub v: usize,
    /// The role of each index of `O` (`None` for the value index `e`).
    pub output_roles: Vec<Option<Role>>,
    /// The value index `e` of `O` (read by `V` and in `O`'s output).
    pub value: IndexId,
}

impl AttentionChain {
    /// Every op the chain covers, the output last.
    pub fn ops(&self) -> Vec<usize> {
        let s = &self.softmax;
        let mut ops = vec![self.scores];
        ops.extend(&self.maps);
        ops.extend([s.max, s.exp, s.sum, s.div, self.output]);
        ops
    }

    /// The number of batch indices.
    pub fn batch_rank(&self) -> usize {
        self.axes
            .iter()
            .filter(|r| matches!(r, Role::Batch(_)))
            .count()
    }

    /// The index of op `g` (a map or the scores, whose output axes are `S`'s) with role `role`.
    pub fn index_of(&self, g: &Generic, role: Role) -> Option<IndexId> {
        let axis = self.axes.iter().position(|&r| r == role)?;
        g.output.get(axis).copied()
    }

    /// The index of `O` with role `role`.
    pub fn output_index(&self, role: Role) -> Option<IndexId> {
        let n = self.output_roles.iter().position(|&r| r == Some(role))?;
        Some(IndexId(u32::try_from(n).ok()?))
    }
}

/// Every attention chain of `func`, by the position of its output op.
pub fn attention_chains(func: &Function) -> Vec<AttentionChain> {
    let classes = classify_function(func);
    (0..func.ops.len())
        .filter_map(|k| chain_ending_at(func, &classes, k).ok())
        .collect()
}

/// The attention chain whose output is op `k` of `func`, or why op `k` does not end one.
pub fn attention_chain(func: &Function, k: usize) -> Result<AttentionChain, String> {
    chain_ending_at(func, &classify_function(func), k)
}

fn generic(func: &Function, k: usize) -> Option<&Generic> {
    func.ops.get(k).map(|op| {
        let OpKind::Generic(g) = &op.kind;
        g
    })
}

/// The op defining `v`, if any.
fn producer(func: &Function, v: ValueId) -> Option<usize> {
    func.ops.iter().position(|op| op.result == v)
}

/// The ops reading `v` (once each), and whether the function returns it.
fn readers(func: &Function, v: ValueId) -> (Vec<usize>, bool) {
    let ops = func
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            let OpKind::Generic(g) = &op.kind;
            g.inputs.iter().any(|i| i.value == v)
        })
        .map(|(k, _)| k)
        .collect();
    (ops, func.results.iter().any(|r| r.value == v))
}

/// The two multiplied inputs of a float `reduce add` of `mul(%a, %b)` over exactly one index.
fn product(g: &Generic) -> Option<(usize, usize, IndexId)> {
    let r = g.reduce.as_ref()?;
    if r.kind != ReduceKind::Add || r.over.len() != 1 || !g.dtype.is_float() {
        return None;
    }
    let Expr::Binary(BinaryFn::Mul, a, b) = &g.body else {
        return None;
    };
    match (&**a, &**b) {
        (Expr::Input(x), Expr::Input(y)) if x != y => Some((*x as usize, *y as usize, r.over[0])),
        _ => None,
    }
}

/// The indices of a map read at indices only, each once; `None` otherwise.
fn plain(map: &[AxisMap]) -> Option<Vec<IndexId>> {
    let mut out: Vec<IndexId> = Vec::new();
    for a in map {
        match a {
            AxisMap::Index(i) if !out.contains(i) => out.push(*i),
            _ => return None,
        }
    }
    Some(out)
}

/// Whether `g` reads `v` only at its own output indices, in output order (and reads it at
/// all).
fn reads_in_place(g: &Generic, v: ValueId) -> bool {
    let own: Vec<AxisMap> = g.output.iter().map(|&i| AxisMap::Index(i)).collect();
    let mut any = false;
    for input in g.inputs.iter().filter(|i| i.value == v) {
        if input.map != own {
            return false;
        }
        any = true;
    }
    any
}

/// The scores and maps a row softmax normalises, and the roles of the scores' axes: what a
/// forward chain and a backward group (`backward`) both start from.
pub(crate) struct Prefix {
    /// The scores contraction.
    pub scores: usize,
    /// The maps between the scores and the softmax, in order.
    pub maps: Vec<usize>,
    /// The role of each axis of the scores.
    pub axes: Vec<Role>,
    /// The scores' operand reading the row (`Q`), by input position.
    pub q: usize,
    /// The scores' operand reading the key (`K`), by input position.
    pub k: usize,
    /// The scores' summed (head) index.
    pub head: IndexId,
    /// Each value of the walk with the ops allowed to read it inside a forward chain.
    pub readers_ok: Vec<(ValueId, Vec<usize>)>,
}

/// The prefix of row softmax `softmax`: its source walked back through elementwise maps (each
/// reading the previous value in place) to a `reduce add` of a product over one index, all of
/// dtype `dtype`, and the roles of the scores' axes (the softmax axis is the key, the first
/// axis read by the other operand alone is the row, every other axis a batch index).
pub(crate) fn softmax_prefix(
    func: &Function,
    softmax: &RowSoftmax,
    dtype: DType,
) -> Result<Prefix, String> {
    let div = generic(func, softmax.div).ok_or("the softmax is missing")?;
    let exp = generic(func, softmax.exp).ok_or("the softmax is missing")?;
    if softmax.axes.len() != 1 {
        return Err("the softmax is over more than one axis".into());
    }
    let source = softmax.source;
    if !reads_in_place(exp, source) {
        return Err("the softmax reads its source through a map".into());
    }
    // Walk back from the softmax source through maps to the scores.
    let mut maps = Vec::new();
    let mut value = source;
    let mut readers_ok = vec![(source, vec![softmax.max, softmax.exp])];
    let scores = loop {
        let at = producer(func, value).ok_or("the softmax source is a parameter")?;
        let g = generic(func, at).ok_or("missing op")?;
        if g.reduce.is_none() {
            // A map: exactly one of its inputs' values continues the chain (the one produced
            // by a map or by the scores); it must read it in place.
            let mut prev: Vec<ValueId> = g
                .inputs
                .iter()
                .map(|i| i.value)
                .filter(|&v| producer(func, v).is_some_and(|p| p < at))
                .filter(|&v| {
                    let op = producer(func, v).and_then(|p| generic(func, p));
                    op.is_some_and(|op| op.output.len() == g.output.len())
                })
                .collect();
            prev.sort();
            prev.dedup();
            let [pv] = prev[..] else {
                return Err("a map on the scores reads more than one tensor of their shape".into());
            };
            if !reads_in_place(g, pv) || g.dtype != dtype {
                return Err("a map on the scores reads them through a map".into());
            }
            maps.push(at);
            readers_ok.push((pv, vec![at]));
            value = pv;
            continue;
        }
        break at;
    };
    maps.reverse();
    let s = generic(func, scores).ok_or("missing op")?;
    let (a, b, head) = product(s).ok_or("the scores are not a sum of products over one index")?;
    if s.dtype != dtype || div.dtype != dtype {
        return Err("the chain mixes dtypes".into());
    }
    let key = softmax.axes[0];
    let key_s = *s
        .output
        .get(key)
        .ok_or("the softmax axis is out of range")?;
    let fixed = "the scores read an operand at a fixed position";
    let (ma, mb) = (
        plain(&s.inputs[a].map).ok_or(fixed)?,
        plain(&s.inputs[b].map).ok_or(fixed)?,
    );
    // K reads the key, Q does not.
    let ((q, qm), (k, km)) = match (ma.contains(&key_s), mb.contains(&key_s)) {
        (false, true) => ((a, ma), (b, mb)),
        (true, false) => ((b, mb), (a, ma)),
        _ => return Err("exactly one operand of the scores must read the key".into()),
    };
    if !qm.contains(&head) || !km.contains(&head) {
        return Err("the scores do not sum over an index of both operands".into());
    }
    // Roles of S's axes: the key, the first axis read by Q alone (the row), batch indices.
    let mut axes = Vec::new();
    let mut batch = 0;
    for (n, i) in s.output.iter().enumerate() {
        if n == key {
            axes.push(Role::Key);
        } else if qm.contains(i) && !km.contains(i) && !axes.contains(&Role::Row) {
            axes.push(Role::Row);
        } else {
            axes.push(Role::Batch(batch));
            batch += 1;
        }
    }
    Ok(Prefix {
        scores,
        maps,
        axes,
        q,
        k,
        head,
        readers_ok,
    })
}

fn chain_ending_at(
    func: &Function,
    classes: &[OpClass],
    k: usize,
) -> Result<AttentionChain, String> {
    let o = generic(func, k).ok_or("no such op")?;
    let (x, y, key_o) = product(o).ok_or("not a sum of products over one index")?;
    // P is the operand a row softmax's division defines.
    let group_of = |input: usize| -> Option<RowSoftmax> {
        let v = o.inputs.get(input)?.value;
        let div = producer(func, v)?;
        match classes.get(div) {
            Some(OpClass::RowSoftmax(g)) if g.div == div => Some(g.clone()),
            _ => None,
        }
    };
    let (p, v, softmax) = match (group_of(x), group_of(y)) {
        (Some(g), _) => (x, y, g),
        (None, Some(g)) => (y, x, g),
        (None, None) => return Err("neither operand is a row softmax".into()),
    };
    if !softmax.escapes.is_empty() {
        return Err("the softmax's parts are read elsewhere".into());
    }
    let p_value = func.ops[softmax.div].result;
    let Prefix {
        scores,
        maps,
        axes,
        q,
        k: kx,
        head,
        mut readers_ok,
    } = softmax_prefix(func, &softmax, o.dtype)?;
    let row = axes
        .iter()
        .position(|&r| r == Role::Row)
        .ok_or("no index is read by the queries alone")?;
    let key = softmax.axes[0];
    // O: P read at indices, each axis of P giving the role of an index of O.
    let pm = plain(&o.inputs[p].map).ok_or("the output reads the softmax at a fixed position")?;
    let vm = plain(&o.inputs[v].map).ok_or("the output reads the values at a fixed position")?;
    if pm.len() != axes.len() || pm[key] != key_o {
        return Err("the output does not sum over the key".into());
    }
    let mut output_roles = vec![None; o.indices.len()];
    for (&i, &role) in pm.iter().zip(&axes) {
        output_roles[i.0 as usize] = Some(role);
    }
    let extra: Vec<IndexId> = vm.iter().copied().filter(|i| !pm.contains(i)).collect();
    let [value_index] = extra[..] else {
        return Err("the values do not have exactly one index of their own".into());
    };
    if !vm.contains(&key_o) || vm.contains(&pm[row]) {
        return Err("the values do not read the key, or read the query row".into());
    }
    let mut want: Vec<IndexId> = pm.iter().copied().filter(|&i| i != key_o).collect();
    want.push(value_index);
    let mut have = o.output.clone();
    want.sort();
    have.sort();
    if want != have {
        return Err("the output is not indexed by the batch, the row and the value index".into());
    }
    // Nothing outside the chain reads its values (the walk listed the scores and the maps).
    readers_ok.push((p_value, vec![k]));
    for (value, allowed) in &readers_ok {
        let (ops, returned) = readers(func, *value);
        if returned || ops.iter().any(|r| !allowed.contains(r)) {
            return Err("a value inside the chain is read outside it or returned".into());
        }
    }
    Ok(AttentionChain {
        scores,
        maps,
        softmax,
        output: k,
        axes,
        q,
        k: kx,
        head,
        p,
        v,
        output_roles,
        value: value_index,
    })
}

pub mod backward;

#[cfg(test)]
mod tests;
