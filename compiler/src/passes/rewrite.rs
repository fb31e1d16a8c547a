//! Rewriting helpers shared by the tensor-level passes: splitting a factor off a product,
//! removing indices from a `Generic`, and a fixpoint driver. (Expression traversals are in
//! [`crate::ir::tensor::visit`].)

pub use crate::ir::tensor::visit::{any_node, rename_indices, transform};
use crate::ir::tensor::{AxisMap, BinaryFn, Expr, Extent, Generic, IndexId, Module, OpKind};

/// Finds the first node (in pre-order, left operand first) that satisfies `pred` and is a
/// factor of the whole product: reachable from the root through `mul` nodes only. Returns the
/// factor and the rest of the product with the factor removed (`None` when `e` is the factor
/// itself, i.e. the rest is the constant 1).
///
/// Removing a factor of ±1 this way is exact: IEEE multiplication by 1 is the identity and
/// multiplication by -1 is negation, and both commute with rounding.
pub fn split_factor(e: &Expr, pred: &dyn Fn(&Expr) -> bool) -> Option<(Expr, Option<Expr>)> {
    if pred(e) {
        return Some((e.clone(), None));
    }
    let Expr::Binary(BinaryFn::Mul, x, y) = e else {
        return None;
    };
    if let Some((f, rest)) = split_factor(x, pred) {
        let rest = match rest {
            Some(r) => Expr::Binary(BinaryFn::Mul, Box::new(r), y.clone()),
            None => (**y).clone(),
        };
        return Some((f, Some(rest)));
    }
    let (f, rest) = split_factor(y, pred)?;
    let rest = match rest {
        Some(r) => Expr::Binary(BinaryFn::Mul, x.clone(), Box::new(r)),
        None => (**x).clone(),
    };
    Some((f, Some(rest)))
}

/// Deletes the indices in `gone` from `g`'s iteration space, renumbering the others. The
/// caller has already rewritten every use of them (maps, body, output, `over`); a reduction
/// left with nothing to reduce becomes `None`.
pub fn remove_indices(g: &mut Generic, gone: &[IndexId]) {
    let mut new_id = Vec::with_capacity(g.indices.len());
    let mut next = 0u32;
    for pos in 0..g.indices.len() {
        let keep = !gone.iter().any(|i| i.0 as usize == pos);
        new_id.push(IndexId(next));
        next += u32::from(keep);
    }
    let renumber = |i: IndexId| new_id.get(i.0 as usize).copied().unwrap_or(i);
    let mut pos = 0;
    g.indices.retain(|_| {
        pos += 1;
        !gone.iter().any(|i| i.0 as usize == pos - 1)
    });
    for input in &mut g.inputs {
        for a in &mut input.map {
            if let AxisMap::Index(i) = a {
                *i = renumber(*i);
            }
        }
    }
    g.output = g.output.iter().map(|&i| renumber(i)).collect();
    if let Some(r) = &mut g.reduce {
        r.over.retain(|i| !gone.contains(i));
        r.over = r.over.iter().map(|&i| renumber(i)).collect();
    }
    if g.reduce.as_ref().is_some_and(|r| r.over.is_empty()) {
        g.reduce = None;
    }
    g.body = rename_indices(&g.body, &renumber);
}

/// The extent of index `i` as a number when the module fixes it.
pub fn fixed_extent(m: &Module, g: &Generic, i: IndexId) -> Option<u64> {
    match &g.indices.get(i.0 as usize)?.extent {
        Extent::Fixed(n) => Some(*n),
        Extent::Dim(d) => m.dim_value(d),
    }
}

/// Applies `step` to every generic op of `m` until it reports no more change, and says whether
/// anything changed. `step` gets a module holding only `m`'s dims (to resolve extents) and the
/// op; it rewrites one thing per call and returns true when it did.
pub fn rewrite_to_fixpoint(
    m: &mut Module,
    mut step: impl FnMut(&Module, &mut Generic) -> bool,
) -> bool {
    let dims = Module {
        dims: m.dims.clone(),
        funcs: Vec::new(),
    };
    let mut changed = false;
    for f in &mut m.funcs {
        for op in &mut f.ops {
            let OpKind::Generic(g) = &mut op.kind;
            while step(&dims, g) {
                changed = true;
            }
        }
    }
    changed
}
