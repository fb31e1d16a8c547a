//! Analysis of one index statement: Einstein's free/dummy classification per product term,
//! explicit reductions, accesses and their extents, elementwise functions and dtypes. The result
//! is a [`TExpr`] tree ready for lowering, or diagnostics. The rules implemented here are listed
//! in the module docs of [`crate::sema`].

use super::scope::{Lookup, Scope};
use super::types::{Axis, Ext, Idx, TCond, TExpr, TKind, Ty};
use crate::diag::{closest, Diagnostic, Span};
use crate::ir::tensor::{BinaryFn, CmpOp, ReduceKind, UnaryFn, ValueId};
use crate::syntax::ast::{self, BinOp, Expr, ExprKind, IndexExpr, UnOp};
use einc_runtime::{DType, Scalar};
use std::collections::{HashMap, HashSet};

/// The elementwise functions (and casts), as messages list them.
const FUNCTIONS: &[&str] = &[
    "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "neg", "max", "min", "pow",
    "where", "f32", "f64", "i32", "i64",
];
/// The reductions, as messages list them.
const REDUCTIONS: &[&str] = &["sum", "max", "min", "prod", "softmax", "logsumexp"];

/// The statement's left-hand side as analysis needs it.
pub(crate) struct Target<'a> {
    /// The tensor defined.
    pub name: &'a str,
    /// The LHS indices (already checked to be distinct identifiers).
    pub lhs: &'a [Idx],
    /// The declared type, for outputs.
    pub declared: Option<&'a Ty>,
    /// The extents written at indices (`i: N`), resolved.
    pub extents: &'a [(Idx, Ext)],
    /// The extent of every axis of the kernel's signature, when they all have the same one:
    /// what an index that only `delta` uses ranges over.
    pub only_extent: Option<&'a Ext>,
    /// The tensors earlier statements defined as a softmax (value and name).
    pub softmaxes: &'a [(ValueId, String)],
}

/// A checked statement.
pub(crate) struct Analysis {
    /// The right-hand side, with every dtype settled.
    pub root: TExpr,
    /// The extent of every index used in the statement.
    pub extents: HashMap<String, Ext>,
    /// The dtype of the defined tensor.
    pub dtype: DType,
}

/// One axis addressed by an index variable (or an extent written at it).
struct Use {
    idx: Idx,
    ext: Ext,
    /// Where, for messages: "in `A`", "in the annotation `i: N`".
    place: String,
}

/// State of the analysis of one statement.
struct Cx<'a> {
    scope: &'a Scope<'a>,
    diags: &'a mut Vec<Diagnostic>,
    /// The tensor the statement defines.
    target: String,
    /// The indices whose extent is written in the statement (`i: N`).
    annotated: Vec<String>,
    /// The tensors defined by a softmax statement (value and name), for the log warning.
    softmaxes: &'a [(ValueId, String)],
    lhs: Vec<String>,
    uses: Vec<Use>,
    deltas: Vec<(Vec<Idx>, Span)>,
    /// Every index occurrence, for the "extent cannot be inferred" check.
    seen: Vec<Idx>,
    /// Inside a `where` condition bare unknown names are index variables.
    in_cond: bool,
    /// Set by errors found while settling dtypes (which cannot return early).
    failed: bool,
    /// Current recursion depth over operator chains (see [`MAX_DEPTH`]).
    depth: usize,
}

/// How deep operator chains may nest. The parser bounds bracket nesting, but a long chain like
/// `a + a + ... + a` is a deep left-leaning tree; analysis and lowering recurse over it, so it
/// is bounded here to keep the stack safe.
pub(crate) const MAX_DEPTH: usize = 400;

/// Checks the right-hand side `value` of a statement defining `target`. Errors are pushed to
/// `diags`; `None` means at least one was reported.
pub(crate) fn analyze(
    scope: &Scope<'_>,
    target: &Target<'_>,
    value: &Expr,
    diags: &mut Vec<Diagnostic>,
) -> Option<Analysis> {
    let lhs: Vec<String> = target.lhs.iter().map(|i| i.name.clone()).collect();
    let mut cx = Cx {
        scope,
        diags,
        target: target.name.to_string(),
        annotated: target.extents.iter().map(|(i, _)| i.name.clone()).collect(),
        softmaxes: target.softmaxes,
        lhs: lhs.clone(),
        uses: Vec::new(),
        deltas: Vec::new(),
        seen: Vec::new(),
        in_cond: false,
        failed: false,
        depth: 0,
    };
    let mut root = cx.sum_expr(value, &lhs)?;
    // After the accesses, so that a disagreement is reported at the annotation.
    cx.uses.extend(target.extents.iter().map(|(idx, ext)| Use {
        idx: idx.clone(),
        ext: ext.clone(),
        place: format!("in the annotation `{}: {}`", idx.name, ext.shown),
    }));
    let balanced = cx.check_balance(target, &root);
    let extents = cx.resolve_extents(target);
    let (true, Some(extents)) = (balanced, extents) else {
        return None;
    };
    let dtype = match target.declared {
        Some(ty) => {
            if let Some(d) = root.dtype.filter(|&d| d != ty.dtype) {
                cx.diags.push(
                    Diagnostic::error(
                        value.span,
                        format!(
                            "`{}` is declared {} but the right-hand side is {d}",
                            target.name, ty.dtype
                        ),
                    )
                    .with_label(format!("this is {d}"))
                    .with_help(format!("convert with {}(...)", ty.dtype)),
                );
                return None;
            }
            ty.dtype
        }
        // A right side made only of literals and dims has no dtype of its own.
        None => root.dtype.unwrap_or(DType::F32),
    };
    cx.settle(&mut root, dtype);
    if cx.failed {
        return None;
    }
    Some(Analysis {
        root,
        extents,
        dtype,
    })
}

fn union(a: &[Idx], b: &[Idx]) -> Vec<Idx> {
    let mut out = a.to_vec();
    for i in b {
        if !out.iter().any(|o| o.name == i.name) {
            out.push(i.clone());
        }
    }
    out
}

fn leaf(kind: TKind, dtype: Option<DType>, span: Span) -> TExpr {
    TExpr {
        kind,
        dtype,
        escapes: Vec::new(),
        span,
    }
}

/// Whether `e` uses the `@` operator anywhere.
pub(crate) fn uses_matmul(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Binary(BinOp::MatMul, ..) => true,
        ExprKind::Binary(_, a, b) => uses_matmul(a) || uses_matmul(b),
        ExprKind::Unary(_, a) => uses_matmul(a),
        ExprKind::Call { args, .. } => args.iter().any(uses_matmul),
        ExprKind::Reduce { body, .. } => uses_matmul(body),
        ExprKind::Number(_)
        | ExprKind::Inf
        | ExprKind::Name(_)
        | ExprKind::Access { .. }
        | ExprKind::Einsum { .. }
        | ExprKind::Error => false,
    }
}

/// The indices of `A @ B` as numpy's `matmul` pairs them, for operands of ranks `ra`, `rb` (at
/// least 1): the last axis of `A` with the first axis of a vector `B`, or with the next-to-last
/// of a matrix (or stack of matrices), whose leading batch axes align from the right. Returns
/// the indices of `A`, of `B` and of the result.
fn matmul_indices(ra: usize, rb: usize) -> (Vec<String>, Vec<String>, Vec<String>) {
    const BATCH: [&str; 6] = ["b", "h", "g", "f", "e", "d"];
    let batch_a = ra.saturating_sub(2);
    let batch_b = rb.saturating_sub(2);
    let batch = batch_a.max(batch_b);
    let names: Vec<String> = (0..batch)
        .map(|n| {
            BATCH
                .get(n)
                .map_or_else(|| format!("b{n}"), |b| (*b).to_string())
        })
        .collect();
    let (i, j, k) = ("i".to_string(), "j".to_string(), "k".to_string());
    let mut a: Vec<String> = names[batch - batch_a..].to_vec();
    let mut b: Vec<String> = names[batch - batch_b..].to_vec();
    let mut out: Vec<String> = names.clone();
    if ra >= 2 {
        a.push(i.clone());
        out.push(i);
    }
    a.push(j.clone());
    b.push(j);
    if rb >= 2 {
        b.push(k.clone());
        out.push(k);
    }
    (a, b, out)
}

/// Brackets with `rank` example index names (`[i, j]`; empty for rank 0), for hints.
pub(crate) fn example_access(rank: usize) -> String {
    if rank == 0 {
        return String::new();
    }
    let names: Vec<&str> = ["i", "j", "k", "l", "m", "n"]
        .into_iter()
        .cycle()
        .take(rank)
        .collect();
    format!("[{}]", names.join(", "))
}

/// "1 index", "2 indices".
pub(crate) fn count_indices(n: usize) -> String {
    if n == 1 {
        "1 index".to_string()
    } else {
        format!("{n} indices")
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The functions that only make sense on floating-point values.
fn is_transcendental(f: UnaryFn) -> bool {
    !matches!(f, UnaryFn::Neg | UnaryFn::Abs | UnaryFn::Relu)
}

fn unary_fn(name: &str) -> Option<UnaryFn> {
    Some(match name {
        "exp" => UnaryFn::Exp,
        "log" => UnaryFn::Log,
        "sqrt" => UnaryFn::Sqrt,
        "rsqrt" => UnaryFn::Rsqrt,
        "tanh" => UnaryFn::Tanh,
        "sigmoid" => UnaryFn::Sigmoid,
        "relu" => UnaryFn::Relu,
        "abs" => UnaryFn::Abs,
        "neg" => UnaryFn::Neg,
        _ => return None,
    })
}

fn cmp_op(op: BinOp) -> Option<CmpOp> {
    Some(match op {
        BinOp::Lt => CmpOp::Lt,
        BinOp::Le => CmpOp::Le,
        BinOp::Gt => CmpOp::Gt,
        BinOp::Ge => CmpOp::Ge,
        BinOp::Eq => CmpOp::Eq,
        BinOp::Ne => CmpOp::Ne,
        _ => return None,
    })
}

fn is_float_text(text: &str) -> bool {
    text.contains(['.', 'e', 'E'])
}

impl Cx<'_> {
    fn error(&mut self, d: Diagnostic) -> Option<TExpr> {
        self.diags.push(d);
        None
    }

    /// A sum or difference of terms: escapes the union of its terms' escaping indices.
    fn sum_expr(&mut self, e: &Expr, prot: &[String]) -> Option<TExpr> {
        if !self.enter(e.span) {
            return None;
        }
        let result = self.sum_expr_inner(e, prot);
        self.depth -= 1;
        result
    }

    /// Goes one level deeper; false (after reporting once) past [`MAX_DEPTH`]. A `true` must be
    /// paired with `self.depth -= 1`.
    fn enter(&mut self, span: Span) -> bool {
        if self.depth >= MAX_DEPTH {
            if !self.failed {
                self.fail(
                    Diagnostic::error(span, "expression too large to analyse")
                        .with_label(format!("more than {MAX_DEPTH} operators deep here"))
                        .with_help("split the expression into several statements"),
                );
            }
            return false;
        }
        self.depth += 1;
        true
    }

    fn sum_expr_inner(&mut self, e: &Expr, prot: &[String]) -> Option<TExpr> {
        match &e.kind {
            ExprKind::Binary(op @ (BinOp::Add | BinOp::Sub), l, r) => {
                let a = self.sum_expr(l, prot);
                let b = self.sum_expr(r, prot);
                let f = if *op == BinOp::Add {
                    BinaryFn::Add
                } else {
                    BinaryFn::Sub
                };
                self.binary(f, a?, b?, e.span, op.symbol())
            }
            _ => self.term(e, prot),
        }
    }

    /// A product term: indices not protected (not on the left, not reduced by an enclosing
    /// reduction) that occur twice or more are summed here.
    fn term(&mut self, e: &Expr, prot: &[String]) -> Option<TExpr> {
        let mut occ = Vec::new();
        let body = self.product(e, prot, &mut occ)?;
        let mut counts: Vec<(Idx, usize)> = Vec::new();
        for o in occ {
            match counts.iter_mut().find(|c| c.0.name == o.name) {
                Some(c) => c.1 += 1,
                None => counts.push((o, 1)),
            }
        }
        let mut dummies = Vec::new();
        let mut escapes = Vec::new();
        for (idx, n) in counts {
            if n >= 2 && !prot.contains(&idx.name) {
                if n >= 3 {
                    self.diags.push(
                        Diagnostic::note(
                            e.span,
                            format!(
                                "Einstein's convention expects pairs; `{}` appears {n} times and \
                                 is summed",
                                idx.name
                            ),
                        )
                        .with_label(format!("`{}` is summed over this term", idx.name)),
                    );
                }
                dummies.push(idx.name);
            } else {
                escapes.push(idx);
            }
        }
        if dummies.is_empty() {
            return Some(body);
        }
        Some(TExpr {
            dtype: body.dtype,
            kind: TKind::Reduce {
                kind: ReduceKind::Add,
                over: dummies,
                body: Box::new(body),
            },
            escapes,
            span: e.span,
        })
    }

    /// The factors of a term, recording each index occurrence in `occ`.
    fn product(&mut self, e: &Expr, prot: &[String], occ: &mut Vec<Idx>) -> Option<TExpr> {
        match &e.kind {
            ExprKind::Binary(op @ (BinOp::Mul | BinOp::Div), l, r) => {
                if !self.enter(e.span) {
                    return None;
                }
                let a = self.product(l, prot, occ);
                let b = self.product(r, prot, occ);
                self.depth -= 1;
                let f = if *op == BinOp::Mul {
                    BinaryFn::Mul
                } else {
                    BinaryFn::Div
                };
                self.binary(f, a?, b?, e.span, op.symbol())
            }
            ExprKind::Unary(UnOp::Neg, x) => {
                let a = self.product(x, prot, occ)?;
                Some(self.unary(UnaryFn::Neg, a, e.span))
            }
            ExprKind::Access { tensor, indices } => {
                let t = self.access(tensor, indices, e.span)?;
                occ.extend(indices.iter().filter_map(|ix| match ix {
                    IndexExpr::Var(id) => Some(Idx {
                        name: id.name.clone(),
                        span: id.span,
                    }),
                    IndexExpr::Fixed(..) => None,
                }));
                Some(t)
            }
            _ => {
                let t = self.atom(e, prot)?;
                occ.extend(t.escapes.iter().cloned());
                Some(t)
            }
        }
    }

    /// A factor that is not a product: contributes each index escaping it once.
    fn atom(&mut self, e: &Expr, prot: &[String]) -> Option<TExpr> {
        match &e.kind {
            ExprKind::Number(text) => Some(leaf(TKind::Number(text.clone()), None, e.span)),
            ExprKind::Inf => Some(leaf(TKind::Inf, None, e.span)),
            ExprKind::Name(id) => self.name_value(id),
            ExprKind::Access { tensor, indices } => self.access(tensor, indices, e.span),
            ExprKind::Call { func, args } => self.call(func, args, e.span, prot),
            ExprKind::Reduce { op, indices, body } => self.reduce(op, indices, body, e.span, prot),
            // A statement that did not parse is never analysed; nothing more to say.
            ExprKind::Error => None,
            ExprKind::Binary(BinOp::MatMul, l, r) => self.matmul(l, r, e.span),
            ExprKind::Einsum { .. } => self.error(
                Diagnostic::error(e.span, "`einsum(...)` must be the whole right-hand side")
                    .with_label("einsum inside an expression")
                    .with_help("assign it to a tensor first: `C = einsum(\"ij,jk->ik\", A, B)`"),
            ),
            ExprKind::Unary(UnOp::Not, _)
            | ExprKind::Binary(
                BinOp::Lt
                | BinOp::Le
                | BinOp::Gt
                | BinOp::Ge
                | BinOp::Eq
                | BinOp::Ne
                | BinOp::And
                | BinOp::Or,
                ..,
            ) => self.error(
                Diagnostic::error(e.span, "a condition is not a value")
                    .with_label("comparisons and `&&`, `||`, `!` build conditions")
                    .with_help("use it as the first argument of `where(cond, a, b)`"),
            ),
            // Sums reach here as factors of a product; products and negations never do.
            _ => self.sum_expr(e, prot),
        }
    }

    /// `A @ B`: not index notation. The hint writes the product numpy's `@` computes, with
    /// indices, when both operands are tensors named bare.
    #[cold]
    fn matmul(&mut self, a: &Expr, b: &Expr, span: Span) -> Option<TExpr> {
        let rank = |e: &Expr| match &e.kind {
            ExprKind::Name(id) => match self.scope.lookup(&id.name) {
                Lookup::Tensor { ty, .. } => Some((id.name.clone(), ty.shape.len())),
                _ => None,
            },
            _ => None,
        };
        let help = match (rank(a), rank(b)) {
            (Some((an, ar)), Some((bn, br))) if ar >= 1 && br >= 1 => {
                let (ai, bi, out) = matmul_indices(ar, br);
                format!(
                    "a product is written with a repeated index, which is summed: `{}{} = \
                     {an}[{}] * {bn}[{}]`",
                    self.target,
                    if out.is_empty() {
                        String::new()
                    } else {
                        format!("[{}]", out.join(", "))
                    },
                    ai.join(", "),
                    bi.join(", ")
                )
            }
            _ => "a product is written with a repeated index, which is summed: \
                  `y[i] = A[i, j] * x[j]`"
                .to_string(),
        };
        self.error(
            Diagnostic::error(span, "`@` is not an operator of index notation")
                .with_label("matrix product written with `@`")
                .with_help(help),
        )
    }

    /// `log(a)`. The log of a softmax is computed as `e - logsumexp[j](e)`: the softmax of
    /// logits [1000, 0, -1000, 3] underflows to 0 where the log-softmax is -2000. A log of a
    /// softmax computed by an earlier statement gets a warning saying so.
    fn log(&mut self, a: TExpr, span: Span) -> TExpr {
        if let TKind::Softmax { along, body } = a.kind {
            return TExpr {
                kind: TKind::LogSoftmax { along, body },
                ..a
            };
        }
        if let TKind::Access { value, .. } = &a.kind {
            if let Some(name) = self
                .softmaxes
                .iter()
                .find(|(v, _)| v == value)
                .map(|(_, n)| n)
            {
                self.diags.push(
                    Diagnostic::warning(
                        a.span,
                        format!("the log of `{name}`, a softmax, is -inf where it underflows"),
                    )
                    .with_label("a softmax computed by an earlier statement")
                    .with_note(
                        "a softmax of logits far apart underflows to 0 (softmax([1000, 0]) is \
                         [1, 0]), and its log is then -inf, or NaN in a product with 0",
                    )
                    .with_help(format!(
                        "write `log(softmax[j](...))` in one expression instead of `log({name}[...])`: \
                         it is computed as `z - logsumexp[j](z)`, which stays finite"
                    )),
                );
            }
        }
        self.unary(UnaryFn::Log, a, span)
    }

    fn unary(&mut self, f: UnaryFn, a: TExpr, span: Span) -> TExpr {
        TExpr {
            dtype: a.dtype,
            escapes: a.escapes.clone(),
            kind: TKind::Unary(f, Box::new(a)),
            span,
        }
    }

    fn binary(&mut self, f: BinaryFn, a: TExpr, b: TExpr, span: Span, what: &str) -> Option<TExpr> {
        let dtype = self.unify(&a, &b, what)?;
        Some(TExpr {
            dtype,
            escapes: union(&a.escapes, &b.escapes),
            kind: TKind::Binary(f, Box::new(a), Box::new(b)),
            span,
        })
    }

    /// The common dtype of two operands; literals and dims adopt the other side's.
    fn unify(&mut self, a: &TExpr, b: &TExpr, what: &str) -> Option<Option<DType>> {
        match (a.dtype, b.dtype) {
            (Some(x), Some(y)) if x != y => {
                self.diags.push(
                    Diagnostic::error(
                        b.span,
                        format!("mismatched dtypes in `{what}`: {x} and {y}"),
                    )
                    .with_label(format!("this is {y}"))
                    .with_secondary(a.span, format!("this is {x}"))
                    .with_help(format!(
                        "index statements never mix dtypes: convert one side with {x}(...) or \
                         {y}(...)"
                    )),
                );
                None
            }
            (x, y) => Some(x.or(y)),
        }
    }

    /// A bare name used as a value.
    fn name_value(&mut self, id: &ast::Ident) -> Option<TExpr> {
        match self.scope.lookup(&id.name) {
            Lookup::Tensor { value, ty, decl } => {
                if ty.shape.is_empty() {
                    return Some(leaf(
                        TKind::Access {
                            value,
                            axes: Vec::new(),
                        },
                        Some(ty.dtype),
                        id.span,
                    ));
                }
                let rank = ty.shape.len();
                self.error(
                    Diagnostic::error(
                        id.span,
                        format!(
                            "`{}` has rank {rank}, so it must be indexed to be used as a value",
                            id.name
                        ),
                    )
                    .with_label("a tensor without indices")
                    .with_secondary(decl, format!("declared with rank {rank} here"))
                    .with_help(format!(
                        "write `{}{}`",
                        id.name,
                        example_access(rank)
                    )),
                )
            }
            Lookup::Dim => Some(leaf(TKind::DimValue(id.name.clone()), None, id.span)),
            _ if self.in_cond && self.scope.is_unknown(&id.name) => {
                self.seen.push(Idx {
                    name: id.name.clone(),
                    span: id.span,
                });
                Some(TExpr {
                    kind: TKind::IndexVar(id.name.clone()),
                    dtype: Some(DType::I64),
                    escapes: vec![Idx {
                        name: id.name.clone(),
                        span: id.span,
                    }],
                    span: id.span,
                })
            }
            other => self.bad_name(id, other, false),
        }
    }

    /// Reports a name that does not denote a usable tensor.
    fn bad_name(&mut self, id: &ast::Ident, found: Lookup<'_>, indexed: bool) -> Option<TExpr> {
        if let Some(d) = name_error(self.scope, id, found, indexed) {
            self.diags.push(d);
        }
        None
    }

    /// An access `A[i, 0]`, or the built-ins `delta[...]` and `eps[...]`.
    fn access(&mut self, tensor: &ast::Ident, indices: &[IndexExpr], span: Span) -> Option<TExpr> {
        let mut vars = Vec::new();
        for ix in indices {
            if let IndexExpr::Var(id) = ix {
                let idx = Idx {
                    name: id.name.clone(),
                    span: id.span,
                };
                self.seen.push(idx.clone());
                vars.push(idx);
            }
        }
        let escapes = union(&[], &vars);
        let builtin = tensor.name.as_str();
        if builtin == "delta" || builtin == "eps" {
            return self.builtin(tensor, indices, vars, escapes, span);
        }
        let (value, ty) = match self.scope.lookup(&tensor.name) {
            Lookup::Tensor { value, ty, decl } => {
                if ty.shape.len() != indices.len() {
                    let rank = ty.shape.len();
                    return self.error(
                        Diagnostic::error(
                            span,
                            format!(
                                "`{}` has rank {rank} but is indexed with {}",
                                tensor.name,
                                count_indices(indices.len())
                            ),
                        )
                        .with_label(format!("expected {}", count_indices(rank)))
                        .with_secondary(decl, format!("declared with rank {rank} here")),
                    );
                }
                (value, ty)
            }
            other => return self.bad_name(tensor, other, true),
        };
        let mut axes = Vec::new();
        let mut ok = true;
        for (k, (ix, ext)) in indices.iter().zip(&ty.shape).enumerate() {
            match ix {
                IndexExpr::Var(id) => {
                    self.uses.push(Use {
                        idx: Idx {
                            name: id.name.clone(),
                            span: id.span,
                        },
                        ext: ext.clone(),
                        place: format!("in `{}`", tensor.name),
                    });
                    axes.push(Axis::Var(id.name.clone()));
                }
                IndexExpr::Fixed(p, pspan) => {
                    if let Some(n) = ext.value().filter(|&n| *p >= n) {
                        self.diags.push(
                            Diagnostic::error(
                                *pspan,
                                format!(
                                    "position {p} is out of range for axis {k} of `{}`, whose \
                                     extent is {n}",
                                    tensor.name
                                ),
                            )
                            .with_label(format!(
                                "valid positions are 0 to {}",
                                n.saturating_sub(1)
                            )),
                        );
                        ok = false;
                    }
                    axes.push(Axis::Fixed(*p));
                }
            }
        }
        ok.then_some(TExpr {
            kind: TKind::Access { value, axes },
            dtype: Some(ty.dtype),
            escapes,
            span,
        })
    }

    fn builtin(
        &mut self,
        tensor: &ast::Ident,
        indices: &[IndexExpr],
        vars: Vec<Idx>,
        escapes: Vec<Idx>,
        span: Span,
    ) -> Option<TExpr> {
        let name = tensor.name.as_str();
        if let Some(fixed) = indices.iter().find(|ix| matches!(ix, IndexExpr::Fixed(..))) {
            return self.error(
                Diagnostic::error(
                    fixed.span(),
                    format!("`{name}` takes index variables, not positions"),
                )
                .with_label("a fixed position"),
            );
        }
        if vars.len() < 2 {
            return self.error(
                Diagnostic::error(span, format!("`{name}` needs at least two indices"))
                    .with_label(format!("{} here", count_indices(vars.len())))
                    .with_help(format!("write `{name}[i, j]`")),
            );
        }
        let names: Vec<String> = vars.iter().map(|v| v.name.clone()).collect();
        let kind = if name == "delta" {
            self.deltas.push((vars, span));
            TKind::Delta(names)
        } else {
            let n = u64::try_from(vars.len()).unwrap_or(u64::MAX);
            for v in vars {
                self.uses.push(Use {
                    idx: v,
                    ext: Ext::fixed(n),
                    place: "in `eps`".to_string(),
                });
            }
            TKind::Eps(names)
        };
        Some(TExpr {
            kind,
            dtype: None,
            escapes,
            span,
        })
    }

    fn arity(&mut self, func: &ast::Ident, args: &[Expr], want: usize, span: Span) -> bool {
        if args.len() == want {
            return true;
        }
        let mut d = Diagnostic::error(
            span,
            format!(
                "`{}` takes {} but {} given",
                func.name,
                plural(want, "argument"),
                if args.len() == 1 {
                    "1 was".to_string()
                } else {
                    format!("{} were", args.len())
                }
            ),
        )
        .with_label(format!("{} here", plural(args.len(), "argument")));
        if matches!(func.name.as_str(), "max" | "min") && args.len() == 1 {
            d = d.with_help(format!(
                "to reduce along an index, write {}[j](...)",
                func.name
            ));
        }
        self.diags.push(d);
        false
    }

    fn require_float(&mut self, what: &str, a: &TExpr) -> bool {
        match a.dtype {
            Some(d) if !d.is_float() => {
                self.diags.push(
                    Diagnostic::error(
                        a.span,
                        format!("`{what}` needs a floating-point operand, but this is {d}"),
                    )
                    .with_label(format!("this is {d}"))
                    .with_help("convert with f32(...)"),
                );
                false
            }
            _ => true,
        }
    }

    fn call(
        &mut self,
        func: &ast::Ident,
        args: &[Expr],
        span: Span,
        prot: &[String],
    ) -> Option<TExpr> {
        let name = func.name.as_str();
        if let Some(f) = unary_fn(name) {
            if !self.arity(func, args, 1, span) {
                return None;
            }
            let a = self.sum_expr(args.first()?, prot)?;
            if is_transcendental(f) && !self.require_float(name, &a) {
                return None;
            }
            if f == UnaryFn::Log {
                return Some(self.log(a, span));
            }
            return Some(self.unary(f, a, span));
        }
        if let Some(d) = DType::from_name(name) {
            if !self.arity(func, args, 1, span) {
                return None;
            }
            let a = self.sum_expr(args.first()?, prot)?;
            return Some(TExpr {
                dtype: Some(d),
                escapes: a.escapes.clone(),
                kind: TKind::Cast(d, Box::new(a)),
                span,
            });
        }
        match name {
            "max" | "min" | "pow" => {
                if !self.arity(func, args, 2, span) {
                    return None;
                }
                let a = self.sum_expr(&args[0], prot);
                let b = self.sum_expr(&args[1], prot);
                let (a, b) = (a?, b?);
                let f = match name {
                    "max" => BinaryFn::Max,
                    "min" => BinaryFn::Min,
                    _ => BinaryFn::Pow,
                };
                let t = self.binary(f, a, b, span, name)?;
                if f == BinaryFn::Pow && !self.require_float(name, &t) {
                    return None;
                }
                Some(t)
            }
            "where" => {
                if !self.arity(func, args, 3, span) {
                    return None;
                }
                let c = self.cond(&args[0], prot);
                let a = self.sum_expr(&args[1], prot);
                let b = self.sum_expr(&args[2], prot);
                let (c, a, b) = (c?, a?, b?);
                let dtype = self.unify(&a, &b, "where")?;
                let escapes = union(&union(&c.1, &a.escapes), &b.escapes);
                Some(TExpr {
                    kind: TKind::Select(Box::new(c.0), Box::new(a), Box::new(b)),
                    dtype,
                    escapes,
                    span,
                })
            }
            "sum" | "prod" | "softmax" | "logsumexp" => self.error(
                Diagnostic::error(
                    span,
                    format!("`{name}` is a reduction and needs its indices"),
                )
                .with_label("called like a function")
                .with_help(format!("write {name}[j](...) to work along j")),
            ),
            _ => {
                let candidates = FUNCTIONS.iter().chain(REDUCTIONS).copied();
                let help = match closest(name, candidates) {
                    Some(r) if REDUCTIONS.contains(&r) && !FUNCTIONS.contains(&r) => {
                        format!("did you mean the reduction `{r}[j](...)`?")
                    }
                    Some(f) => format!("did you mean `{f}`?"),
                    None => format!(
                        "the functions are {}; the reductions ({}) are written with indices, \
                         e.g. sum[j](...)",
                        FUNCTIONS.join(", "),
                        REDUCTIONS.join(", ")
                    ),
                };
                self.error(
                    Diagnostic::error(func.span, format!("unknown function `{name}`"))
                        .with_label("not an elementwise function")
                        .with_help(help),
                )
            }
        }
    }

    /// A `where` condition, with the indices escaping it.
    fn cond(&mut self, e: &Expr, prot: &[String]) -> Option<(TCond, Vec<Idx>)> {
        match &e.kind {
            ExprKind::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
                let a = self.cond(l, prot);
                let b = self.cond(r, prot);
                let (a, b) = (a?, b?);
                let escapes = union(&a.1, &b.1);
                let (a, b) = (Box::new(a.0), Box::new(b.0));
                let c = if *op == BinOp::And {
                    TCond::And(a, b)
                } else {
                    TCond::Or(a, b)
                };
                Some((c, escapes))
            }
            ExprKind::Unary(UnOp::Not, x) => {
                let (c, escapes) = self.cond(x, prot)?;
                Some((TCond::Not(Box::new(c)), escapes))
            }
            ExprKind::Binary(op, l, r) if cmp_op(*op).is_some() => {
                let was = std::mem::replace(&mut self.in_cond, true);
                let a = self.sum_expr(l, prot);
                let b = self.sum_expr(r, prot);
                self.in_cond = was;
                let (a, b) = (a?, b?);
                let dtype = self.unify(&a, &b, op.symbol())?;
                let escapes = union(&a.escapes, &b.escapes);
                // Compared operands have no context to adopt a dtype from: give a comparison of
                // literals and dims the index type, or f64 when a literal has a fraction.
                let dtype = dtype.unwrap_or_else(|| {
                    if has_float_literal(&a) || has_float_literal(&b) {
                        DType::F64
                    } else {
                        DType::I64
                    }
                });
                let (mut a, mut b) = (a, b);
                self.settle(&mut a, dtype);
                self.settle(&mut b, dtype);
                let cmp = cmp_op(*op).unwrap_or(CmpOp::Eq);
                Some((TCond::Cmp(cmp, Box::new(a), Box::new(b)), escapes))
            }
            _ => {
                self.diags.push(
                    Diagnostic::error(e.span, "expected a condition")
                        .with_label("the first argument of `where` must be a condition")
                        .with_help(
                            "compare values or indices, e.g. `where(j <= i, S[i, j], -inf)`",
                        ),
                );
                None
            }
        }
    }

    fn reduce(
        &mut self,
        op: &ast::Ident,
        indices: &[ast::Ident],
        body: &Expr,
        span: Span,
        prot: &[String],
    ) -> Option<TExpr> {
        #[derive(PartialEq)]
        enum R {
            Plain(ReduceKind),
            Softmax,
            LogSumExp,
        }
        let r = match op.name.as_str() {
            "sum" => R::Plain(ReduceKind::Add),
            "prod" => R::Plain(ReduceKind::Mul),
            "max" => R::Plain(ReduceKind::Max),
            "min" => R::Plain(ReduceKind::Min),
            "softmax" => R::Softmax,
            "logsumexp" => R::LogSumExp,
            other => {
                return self.error(
                    Diagnostic::error(op.span, format!("unknown reduction `{other}`"))
                        .with_label("not a reduction")
                        .with_help(match closest(other, REDUCTIONS.iter().copied()) {
                            Some(r) => format!("did you mean `{r}`?"),
                            None => format!("the reductions are {}", REDUCTIONS.join(", ")),
                        }),
                )
            }
        };
        let mut ok = true;
        let mut along: Vec<String> = Vec::new();
        for j in indices {
            self.seen.push(Idx {
                name: j.name.clone(),
                span: j.span,
            });
            if along.contains(&j.name) {
                self.diags.push(
                    Diagnostic::error(j.span, format!("`{}` is listed twice", j.name))
                        .with_label("repeated here"),
                );
                ok = false;
            } else if r != R::Softmax && self.lhs.contains(&j.name) {
                self.diags.push(
                    Diagnostic::error(
                        j.span,
                        format!(
                            "`{}` is on the left-hand side, so `{}` cannot reduce over it",
                            j.name, op.name
                        ),
                    )
                    .with_label("reduced here")
                    .with_help(format!(
                        "remove `{}` from the left-hand side, or do not reduce over it",
                        j.name
                    )),
                );
                ok = false;
            }
            along.push(j.name.clone());
        }
        let mut inner = prot.to_vec();
        inner.extend(along.iter().cloned());
        let b = self.sum_expr(body, &inner)?;
        for j in indices {
            // `sum[j: 5](1)` is 5: with its extent written, a plain reduction may work along
            // an index its operand does not use.
            let written = matches!(r, R::Plain(_)) && self.annotated.contains(&j.name);
            if !written && !b.escapes.iter().any(|e| e.name == j.name) {
                self.diags.push(
                    Diagnostic::error(
                        j.span,
                        format!(
                            "index `{}` does not occur in the operand of `{}`",
                            j.name, op.name
                        ),
                    )
                    .with_label("nothing to reduce over")
                    .with_help(format!("use `{}` inside the parentheses", j.name)),
                );
                ok = false;
            }
        }
        if matches!(r, R::Softmax | R::LogSumExp) && !self.require_float(&op.name, &b) {
            return None;
        }
        if !ok {
            return None;
        }
        let escapes: Vec<Idx> = if r == R::Softmax {
            b.escapes.clone()
        } else {
            b.escapes
                .iter()
                .filter(|e| !along.contains(&e.name))
                .cloned()
                .collect()
        };
        let dtype = b.dtype;
        let body = Box::new(b);
        let kind = match r {
            R::Plain(kind) => TKind::Reduce {
                kind,
                over: along,
                body,
            },
            R::Softmax => TKind::Softmax { along, body },
            R::LogSumExp => TKind::LogSumExp { along, body },
        };
        Some(TExpr {
            kind,
            dtype,
            escapes,
            span,
        })
    }

    /// Index balance at the top of the statement.
    fn check_balance(&mut self, target: &Target<'_>, root: &TExpr) -> bool {
        let mut ok = true;
        for l in target.lhs {
            if !root.escapes.iter().any(|e| e.name == l.name) {
                self.diags.push(
                    Diagnostic::error(
                        l.span,
                        format!("index `{}` is not on the right-hand side", l.name),
                    )
                    .with_label("only on the left")
                    .with_help(format!(
                        "every index on the left must address an axis on the right: use `{}` \
                         there or remove it",
                        l.name
                    )),
                );
                ok = false;
            }
        }
        for e in &root.escapes {
            if !self.lhs.contains(&e.name) {
                let k = &e.name;
                self.diags.push(
                    Diagnostic::error(
                        e.span,
                        format!("index `{k}` is free on the right but not on the left"),
                    )
                    .with_label(format!("`{k}` is not summed here"))
                    .with_help(format!(
                        "write sum[{k}](...) to reduce over {k}, or add {k} to the left-hand side"
                    )),
                );
                ok = false;
            }
        }
        ok
    }

    /// Infers every index's extent and checks that all uses agree (with each other and with the
    /// declared shape of an output).
    fn resolve_extents(&mut self, target: &Target<'_>) -> Option<HashMap<String, Ext>> {
        let mut ext: HashMap<String, (Ext, Span, String)> = HashMap::new();
        let mut bad: HashSet<String> = HashSet::new();
        for u in std::mem::take(&mut self.uses) {
            let name = &u.idx.name;
            match ext.get(name) {
                Some((prev, pspan, ptensor)) if prev.norm != u.ext.norm => {
                    if bad.insert(name.clone()) {
                        let d = mismatch(
                            name,
                            (prev, *pspan, ptensor),
                            (&u.ext, u.idx.span, &u.place),
                        );
                        self.diags.push(d);
                    }
                }
                Some(_) => {}
                None => {
                    ext.insert(name.clone(), (u.ext, u.idx.span, u.place));
                }
            }
        }
        if let Some(ty) = target.declared {
            for (l, decl) in target.lhs.iter().zip(&ty.shape) {
                match ext.get(&l.name) {
                    Some((prev, pspan, ptensor)) if prev.norm != decl.norm => {
                        if bad.insert(l.name.clone()) {
                            let d = mismatch(
                                &l.name,
                                (prev, *pspan, ptensor),
                                (decl, l.span, &format!("in `{}`", target.name)),
                            );
                            self.diags.push(d);
                        }
                    }
                    Some(_) => {}
                    None => {
                        ext.insert(
                            l.name.clone(),
                            (decl.clone(), l.span, format!("in `{}`", target.name)),
                        );
                    }
                }
            }
        }
        for (group, span) in std::mem::take(&mut self.deltas) {
            let known = group.iter().find_map(|i| ext.get(&i.name).cloned());
            let known = known.or_else(|| {
                // Nothing else gives these indices an extent (`t = delta[i, i]`): the one extent
                // of the kernel's signature, if it has only one, is the space they range over.
                let only = target.only_extent?;
                let mut names: Vec<String> = Vec::new();
                for i in &group {
                    let n = format!("`{}`", i.name);
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                self.diags.push(
                    Diagnostic::note(
                        span,
                        format!(
                            "{} {} the extent {}, the only extent in the kernel's signature",
                            names.join(", "),
                            if names.len() == 1 { "takes" } else { "take" },
                            only.shown
                        ),
                    )
                    .with_label("no tensor gives this delta's indices an extent")
                    .with_help(format!(
                        "to say so in the statement, write `{}: {}` where the index is",
                        group[0].name, only.shown
                    )),
                );
                Some((only.clone(), span, "in the kernel's signature".to_string()))
            });
            let Some((first, fspan, ftensor)) = known else {
                continue;
            };
            for i in &group {
                match ext.get(&i.name) {
                    Some((e, _, _)) if e.norm != first.norm => {
                        if bad.insert(i.name.clone()) {
                            let first_name = group
                                .iter()
                                .find(|g| ext.get(&g.name).is_some_and(|x| x.0.norm == first.norm))
                                .map_or(String::new(), |g| g.name.clone());
                            self.diags.push(
                                Diagnostic::error(
                                    span,
                                    format!(
                                        "the indices of `delta` must have equal extents: `{first_name}` is {} but `{}` is {}",
                                        first.shown, i.name, e.shown
                                    ),
                                )
                                .with_label("delta here"),
                            );
                        }
                    }
                    Some(_) => {}
                    None => {
                        ext.insert(i.name.clone(), (first.clone(), fspan, ftensor.clone()));
                    }
                }
            }
        }
        for s in std::mem::take(&mut self.seen) {
            if !ext.contains_key(&s.name) && bad.insert(s.name.clone()) {
                self.diags.push(
                    Diagnostic::error(
                        s.span,
                        format!("the extent of index `{}` cannot be inferred", s.name),
                    )
                    .with_label("no tensor axis is addressed by this index")
                    .with_help(format!(
                        "use `{0}` to index a tensor in this statement, or write its extent where \
                         it is: `{0}: N` (`delta[{0}: N, j]`, `sum[{0}: N](...)`); `delta` and \
                         conditions do not fix an extent",
                        s.name
                    )),
                );
            }
        }
        if !bad.is_empty() {
            return None;
        }
        Some(ext.into_iter().map(|(k, v)| (k, v.0)).collect())
    }

    /// Gives every node without a dtype the dtype of its context and turns literals into
    /// constants of that dtype.
    fn settle(&mut self, e: &mut TExpr, ctx: DType) {
        let d = e.dtype.unwrap_or(ctx);
        e.dtype = Some(d);
        let span = e.span;
        match &mut e.kind {
            TKind::Number(text) => {
                if let Some(lit) = self.literal(text, d, span) {
                    e.kind = TKind::Lit(lit);
                }
            }
            TKind::Inf => {
                if d.is_float() {
                    e.kind = TKind::Lit(Scalar::F64(f64::INFINITY).cast(d));
                } else {
                    self.fail(
                        Diagnostic::error(span, format!("`inf` has no {d} value"))
                            .with_label(format!("used as {d} here"))
                            .with_help("use the integer's extreme value, or convert with f32(...)"),
                    );
                }
            }
            TKind::Unary(f, x) => {
                let f = *f;
                self.settle(x, d);
                if is_transcendental(f) && !d.is_float() {
                    self.fail(
                        Diagnostic::error(
                            span,
                            format!(
                                "`{}` needs a floating-point operand, but this is {d}",
                                f.name()
                            ),
                        )
                        .with_help("convert with f32(...)"),
                    );
                }
            }
            TKind::Binary(f, a, b) => {
                let f = *f;
                self.settle(a, d);
                self.settle(b, d);
                if f == BinaryFn::Pow && !d.is_float() {
                    self.fail(
                        Diagnostic::error(
                            span,
                            format!("`pow` needs floating-point operands, but these are {d}"),
                        )
                        .with_help("convert with f32(...)"),
                    );
                }
            }
            TKind::Select(_, a, b) => {
                self.settle(a, d);
                self.settle(b, d);
            }
            TKind::Cast(t, x) => {
                let inner = x.dtype.unwrap_or(*t);
                self.settle(x, inner);
            }
            TKind::Reduce { body, .. }
            | TKind::Softmax { body, .. }
            | TKind::LogSoftmax { body, .. }
            | TKind::LogSumExp { body, .. } => self.settle(body, d),
            TKind::Access { .. }
            | TKind::Delta(_)
            | TKind::Eps(_)
            | TKind::Lit(_)
            | TKind::DimValue(_)
            | TKind::IndexVar(_) => {}
        }
    }

    fn fail(&mut self, d: Diagnostic) {
        self.diags.push(d);
        self.failed = true;
    }

    /// A literal as a constant of `d`.
    fn literal(&mut self, text: &str, d: DType, span: Span) -> Option<Scalar> {
        if is_float_text(text) {
            if !d.is_float() {
                self.fail(
                    Diagnostic::error(span, format!("a fractional literal cannot be {d}"))
                        .with_label(format!("used as {d} here"))
                        .with_help("write an integer, or convert the expression with f32(...)"),
                );
                return None;
            }
            return match text.parse::<f64>() {
                Ok(v) => Some(Scalar::F64(v).cast(d)),
                Err(_) => {
                    self.fail(Diagnostic::error(span, format!("`{text}` is not a number")));
                    None
                }
            };
        }
        let v = match text.parse::<u64>() {
            Ok(v) => v,
            Err(_) => {
                self.fail(
                    Diagnostic::error(span, format!("the literal `{text}` is too large"))
                        .with_label("does not fit in 64 bits"),
                );
                return None;
            }
        };
        let fits = match d {
            DType::I32 => i32::try_from(v).is_ok(),
            DType::I64 => i64::try_from(v).is_ok(),
            DType::F32 | DType::F64 => true,
        };
        if !fits {
            self.fail(
                Diagnostic::error(span, format!("the literal `{text}` does not fit in {d}"))
                    .with_label(format!("used as {d} here")),
            );
            return None;
        }
        Some(match d {
            DType::I32 => Scalar::I32(i32::try_from(v).unwrap_or(i32::MAX)),
            DType::I64 => Scalar::I64(i64::try_from(v).unwrap_or(i64::MAX)),
            DType::F32 => Scalar::F32(v as f32),
            DType::F64 => Scalar::F64(v as f64),
        })
    }
}

fn has_float_literal(e: &TExpr) -> bool {
    match &e.kind {
        TKind::Number(t) => is_float_text(t),
        TKind::Inf => true,
        TKind::Unary(_, x) | TKind::Cast(_, x) => has_float_literal(x),
        TKind::Binary(_, a, b) | TKind::Select(_, a, b) => {
            has_float_literal(a) || has_float_literal(b)
        }
        _ => false,
    }
}

/// The error for a name that does not denote a usable tensor (`None` when there is nothing
/// new to say: a poisoned tensor was reported already). `indexed` tells whether it was written
/// with brackets.
pub(crate) fn name_error(
    scope: &Scope<'_>,
    id: &ast::Ident,
    found: Lookup<'_>,
    indexed: bool,
) -> Option<Diagnostic> {
    let n = &id.name;
    let names = scope.names();
    let similar = closest(n, names.iter().copied());
    Some(match found {
        Lookup::Poisoned | Lookup::Tensor { .. } => return None,
        Lookup::Dim => Diagnostic::error(id.span, format!("`{n}` is a dim, not a tensor"))
            .with_label("dims have no elements")
            .with_help(format!(
                "use `{n}` as a value without brackets, e.g. `sqrt({n})`"
            )),
        Lookup::Later { def } => {
            Diagnostic::error(id.span, format!("`{n}` is used before its definition"))
                .with_label("used here")
                .with_secondary(def, "defined here")
                .with_help("statements run in order: move the definition above this use")
        }
        Lookup::Unassigned { decl } => {
            Diagnostic::error(id.span, format!("output `{n}` is read but never assigned"))
                .with_label("read here")
                .with_secondary(decl, "declared here")
        }
        Lookup::Builtin => Diagnostic::error(
            id.span,
            format!("`{n}` is a built-in tensor and needs indices"),
        )
        .with_help(format!("write `{n}[i, j]`")),
        Lookup::Unknown if indexed => {
            let d = Diagnostic::error(id.span, format!("unknown tensor `{n}`"))
                .with_label("not a parameter, an output or a tensor defined above");
            match similar {
                Some(t) => d.with_help(format!("did you mean `{t}`?")),
                None => d,
            }
        }
        Lookup::Unknown => Diagnostic::error(id.span, format!("unknown name `{n}`"))
            .with_label("not a tensor or a dim")
            .with_help(match similar {
                Some(t) => format!("did you mean `{t}`?"),
                None => "index variables are written in brackets (`A[i]`) or compared in a \
                         `where` condition"
                    .to_string(),
            }),
    })
}

/// "`j` is 4 in `A` but 5 in `B`", with both places labelled.
fn mismatch(name: &str, first: (&Ext, Span, &str), second: (&Ext, Span, &str)) -> Diagnostic {
    let (e1, s1, t1) = first;
    let (e2, s2, t2) = second;
    let message = if e1.is_literal() && e2.is_literal() {
        format!("`{name}` is {} {t1} but {} {t2}", e1.shown, e2.shown)
    } else {
        format!(
            "`{name}` has extent {} {t1} but {} {t2}",
            e1.shown, e2.shown
        )
    };
    Diagnostic::error(s2, message)
        .with_label(format!("`{name}` is {} here", e2.shown))
        .with_secondary(s1, format!("`{name}` is {} here", e1.shown))
        .with_help("an index has one extent in a statement: every axis it addresses must agree")
}
