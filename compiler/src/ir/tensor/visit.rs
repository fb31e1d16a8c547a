//! Traversals of body expressions shared by the passes and analyses: bottom-up rebuilding,
//! searching, and renaming the indices and inputs an expression refers to.

use super::{Cond, Expr, IndexId};

/// Rebuilds `e` bottom-up, applying `f` to every node after its children (conditions of
/// `select` included).
pub fn transform(e: &Expr, f: &mut dyn FnMut(Expr) -> Expr) -> Expr {
    let rebuilt = match e {
        Expr::Unary(u, a) => Expr::Unary(*u, Box::new(transform(a, f))),
        Expr::Binary(b, x, y) => {
            Expr::Binary(*b, Box::new(transform(x, f)), Box::new(transform(y, f)))
        }
        Expr::Select(c, x, y) => Expr::Select(
            Box::new(transform_cond(c, f)),
            Box::new(transform(x, f)),
            Box::new(transform(y, f)),
        ),
        Expr::Cast(t, a) => Expr::Cast(*t, Box::new(transform(a, f))),
        leaf => leaf.clone(),
    };
    f(rebuilt)
}

fn transform_cond(c: &Cond, f: &mut dyn FnMut(Expr) -> Expr) -> Cond {
    match c {
        Cond::Cmp(op, x, y) => Cond::Cmp(*op, Box::new(transform(x, f)), Box::new(transform(y, f))),
        Cond::And(x, y) => Cond::And(
            Box::new(transform_cond(x, f)),
            Box::new(transform_cond(y, f)),
        ),
        Cond::Or(x, y) => Cond::Or(
            Box::new(transform_cond(x, f)),
            Box::new(transform_cond(y, f)),
        ),
        Cond::Not(x) => Cond::Not(Box::new(transform_cond(x, f))),
    }
}

/// Whether any node of `e` satisfies `pred`.
pub fn any_node(e: &Expr, pred: &mut dyn FnMut(&Expr) -> bool) -> bool {
    let mut found = false;
    transform(e, &mut |n| {
        found |= pred(&n);
        n
    });
    found
}

/// Renames index ids everywhere in `e` (index values, delta and eps arguments).
pub fn rename_indices(e: &Expr, f: &dyn Fn(IndexId) -> IndexId) -> Expr {
    transform(e, &mut |n| match n {
        Expr::Index(i) => Expr::Index(f(i)),
        Expr::Delta(ids, t) => Expr::Delta(ids.into_iter().map(f).collect(), t),
        Expr::Eps(ids, t) => Expr::Eps(ids.into_iter().map(f).collect(), t),
        other => other,
    })
}

/// Calls `f` with every input position `e` reads (`%n`), left to right (a `select`'s
/// condition before its branches); a repeated read is reported each time.
pub fn visit_inputs(e: &Expr, f: &mut dyn FnMut(u32)) {
    any_node(e, &mut |n| {
        if let Expr::Input(k) = n {
            f(*k);
        }
        false
    });
}

/// Renumbers the inputs `e` reads (`%n` becomes `%f(n)`).
pub fn rename_inputs(e: &Expr, f: &dyn Fn(u32) -> u32) -> Expr {
    transform(e, &mut |n| match n {
        Expr::Input(k) => Expr::Input(f(k)),
        other => other,
    })
}
