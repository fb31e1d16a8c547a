//! Symmetric results: `G[i, j] = A[k, i] * A[k, j]` (AᵀA) equals its transpose, and so does a
//! Hessian of a scalar. [`symmetric_pairs`] finds such pairs of axes symbolically, so that
//! `einc grad` and `einc explain` can say so.
//!
//! The op defining a value computes `out[o] = R_r body(x_1[m_1], ...)`. Swapping output axes
//! `a` and `b` gives the op with `o_a` and `o_b` exchanged in its output list; the value is
//! symmetric in `(a, b)` when that op is the same computation. Both are brought to a canonical
//! text: output indices are named by their position, summed indices by the permutation (of at
//! most [`MAX_PERMUTED`] of them) that gives the smallest text, the operands of `+`, `*`,
//! `max` and `min` are flattened and sorted (they are associative and commutative, up to
//! rounding), and an input is its value and map. Equal texts mean equal values, so a pair it
//! reports is symmetric; it can miss symmetries that need algebra to see (`A[i, j] + A[j, i]`
//! written as two ops, say).

use crate::ir::tensor::{
    AxisMap, BinaryFn, Cond, Expr, Function, Generic, IndexId, OpKind, ValueId,
};

/// Summed indices beyond this many are not permuted (the check then misses symmetries that
/// need them renamed).
const MAX_PERMUTED: usize = 5;

/// The pairs `(a, b)`, `a < b`, of axes of value `v` in which it is symmetric
/// (`v[.., i, .., j, ..] = v[.., j, .., i, ..]`), as far as its defining op shows it.
pub fn symmetric_pairs(f: &Function, v: ValueId) -> Vec<(usize, usize)> {
    let Some(op) = f.ops.iter().find(|op| op.result == v) else {
        return Vec::new();
    };
    let OpKind::Generic(g) = &op.kind;
    let extent = |id: IndexId| g.indices.get(id.0 as usize).map(|i| &i.extent);
    let mut pairs = Vec::new();
    let rank = g.output.len();
    for a in 0..rank {
        for b in a + 1..rank {
            if extent(g.output[a]) != extent(g.output[b]) {
                continue;
            }
            let mut swapped = g.output.clone();
            swapped.swap(a, b);
            if let (Some(x), Some(y)) = (canonical(g, &g.output), canonical(g, &swapped)) {
                if x == y {
                    pairs.push((a, b));
                }
            }
        }
    }
    pairs
}

/// The canonical text of `g` computing its result with output indices `output`.
fn canonical(g: &Generic, output: &[IndexId]) -> Option<String> {
    let over: Vec<IndexId> = g.reduce.as_ref().map_or(Vec::new(), |r| r.over.clone());
    if over.len() > MAX_PERMUTED {
        return None;
    }
    let kind = g.reduce.as_ref().map(|r| format!("{:?}", r.kind));
    permutations(over.len())
        .into_iter()
        .map(|perm| {
            let name = |id: IndexId| -> String {
                if let Some(p) = output.iter().position(|&o| o == id) {
                    return format!("o{p}");
                }
                match over.iter().position(|&o| o == id) {
                    Some(k) => format!("r{}", perm[k]),
                    None => format!("?{}", id.0),
                }
            };
            format!("{kind:?} {}", expr(g, &g.body, &name))
        })
        .min()
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

fn expr(g: &Generic, e: &Expr, name: &dyn Fn(IndexId) -> String) -> String {
    let s = |x: &Expr| expr(g, x, name);
    match e {
        Expr::Input(n) => match g.inputs.get(*n as usize) {
            Some(input) => {
                let map: Vec<String> = input
                    .map
                    .iter()
                    .map(|m| match m {
                        AxisMap::Index(i) => name(*i),
                        AxisMap::Fixed(p) => p.to_string(),
                    })
                    .collect();
                format!("%{}[{}]", input.value.0, map.join(","))
            }
            None => format!("%?{n}"),
        },
        Expr::Index(i) => name(*i),
        Expr::Lit(v) => format!("{v:?}"),
        Expr::DimValue(d, t) => format!("dim({d}:{t})"),
        Expr::Unary(f, x) => format!("{f:?}({})", s(x)),
        Expr::Binary(f @ (BinaryFn::Add | BinaryFn::Mul | BinaryFn::Max | BinaryFn::Min), ..) => {
            let mut operands = Vec::new();
            flatten(e, *f, &mut operands);
            let mut texts: Vec<String> = operands.into_iter().map(s).collect();
            texts.sort();
            format!("{f:?}({})", texts.join(","))
        }
        Expr::Binary(f, a, b) => format!("{f:?}({},{})", s(a), s(b)),
        Expr::Select(c, a, b) => format!("select({},{},{})", cond(g, c, name), s(a), s(b)),
        Expr::Cast(t, x) => format!("{t}({})", s(x)),
        Expr::Delta(ids, t) | Expr::Eps(ids, t) => {
            let mut names: Vec<String> = ids.iter().map(|&i| name(i)).collect();
            let delta = matches!(e, Expr::Delta(..));
            if delta {
                // δ is symmetric in its indices; ε is not.
                names.sort();
            }
            let f = if delta { "delta" } else { "eps" };
            format!("{f}<{t}>({})", names.join(","))
        }
    }
}

/// The operands of a chain of `f`.
fn flatten<'e>(e: &'e Expr, f: BinaryFn, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::Binary(g, a, b) if *g == f => {
            flatten(a, f, out);
            flatten(b, f, out);
        }
        other => out.push(other),
    }
}

fn cond(g: &Generic, c: &Cond, name: &dyn Fn(IndexId) -> String) -> String {
    match c {
        Cond::Cmp(op, a, b) => format!("{op:?}({},{})", expr(g, a, name), expr(g, b, name)),
        Cond::And(a, b) => format!("and({},{})", cond(g, a, name), cond(g, b, name)),
        Cond::Or(a, b) => format!("or({},{})", cond(g, a, name), cond(g, b, name)),
        Cond::Not(a) => format!("not({})", cond(g, a, name)),
    }
}

/// One line per symmetry of `f`'s results that [`symmetric_pairs`] finds, e.g.
/// `G is symmetric: G[i, j] = G[j, i]`; `hessian_rank`, for a Hessian of a scalar with
/// respect to an input of that rank, adds the symmetry it has by construction
/// (`∂²s/∂x[a]∂x[b] = ∂²s/∂x[b]∂x[a]`, Schwarz's theorem).
pub fn notes(f: &Function, hessian_rank: Option<usize>) -> Vec<String> {
    const LETTERS: [&str; 12] = ["i", "j", "k", "l", "m", "n", "p", "q", "r", "s", "t", "u"];
    let mut out = Vec::new();
    for r in &f.results {
        let rank = f.value(r.value).ty.shape.len();
        let axes: Vec<String> = (0..rank)
            .map(|k| LETTERS.get(k).map_or(format!("i{k}"), |l| (*l).to_string()))
            .collect();
        let show = |order: &[String]| format!("{}[{}]", r.name, order.join(", "));
        if let Some(x) = hessian_rank.filter(|&x| 2 * x == rank) {
            let mut swapped = axes[x..].to_vec();
            swapped.extend_from_slice(&axes[..x]);
            out.push(format!(
                "{} is symmetric: {} = {} (a Hessian of a scalar: Schwarz's theorem, where the \
                 second derivatives are continuous)",
                r.name,
                show(&axes),
                show(&swapped)
            ));
            continue;
        }
        for (a, b) in symmetric_pairs(f, r.value) {
            let mut swapped = axes.clone();
            swapped.swap(a, b);
            out.push(format!(
                "{} is symmetric: {} = {}",
                r.name,
                show(&axes),
                show(&swapped)
            ));
        }
    }
    out
}
