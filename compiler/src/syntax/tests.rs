//! Parser, printer and example-file tests. ASTs are compared with their spans erased, against
//! trees built by hand with the helpers below.

use super::ast::*;
use super::{parse, print_expr, print_program};
use crate::diag::{Diagnostic, Span};
use einc_runtime::DType;

const ATTENTION: &str = include_str!("../../../examples/attention.ein");

// ----- span erasure and builders -----------------------------------------------------------

fn erase_ident(id: &mut Ident) {
    id.span = Span::default();
}

fn erase_index(i: &mut IndexExpr) {
    match i {
        IndexExpr::Var(id) => erase_ident(id),
        IndexExpr::Fixed(_, s) => *s = Span::default(),
    }
}

fn erase_expr(e: &mut Expr) {
    e.span = Span::default();
    match &mut e.kind {
        ExprKind::Number(_) | ExprKind::Inf => {}
        ExprKind::Name(id) => erase_ident(id),
        ExprKind::Access { tensor, indices } => {
            erase_ident(tensor);
            indices.iter_mut().for_each(erase_index);
        }
        ExprKind::Unary(_, x) => erase_expr(x),
        ExprKind::Binary(_, a, b) => {
            erase_expr(a);
            erase_expr(b);
        }
        ExprKind::Call { func, args } => {
            erase_ident(func);
            args.iter_mut().for_each(erase_expr);
        }
        ExprKind::Reduce { op, indices, body } => {
            erase_ident(op);
            indices.iter_mut().for_each(erase_ident);
            erase_expr(body);
        }
        ExprKind::Einsum { subscripts, args } => {
            subscripts.1 = Span::default();
            args.iter_mut().for_each(erase_ident);
        }
    }
}

fn erase_decl(d: &mut TensorDecl) {
    erase_ident(&mut d.name);
    d.dtype.1 = Span::default();
    d.span = Span::default();
    for s in &mut d.shape {
        match s {
            ShapeDim::Named(id) => erase_ident(id),
            ShapeDim::Fixed(_, sp) => *sp = Span::default(),
        }
    }
}

/// The program with every span set to the default, so that trees compare by structure.
fn erase(mut p: Program) -> Program {
    for item in &mut p.items {
        match item {
            Item::Dims(d) => {
                d.span = Span::default();
                for dim in &mut d.dims {
                    erase_ident(&mut dim.name);
                    if let Some((_, s)) = &mut dim.value {
                        *s = Span::default();
                    }
                }
            }
            Item::Kernel(k) => {
                erase_ident(&mut k.name);
                k.params.iter_mut().for_each(erase_decl);
                k.outputs.iter_mut().for_each(erase_decl);
                for s in &mut k.body {
                    erase_ident(&mut s.target);
                    s.indices.iter_mut().for_each(erase_index);
                    erase_expr(&mut s.value);
                    s.span = Span::default();
                }
                k.span = Span::default();
            }
            Item::Grad(g) => {
                erase_ident(&mut g.name);
                erase_ident(&mut g.of);
                g.wrt.iter_mut().for_each(erase_ident);
                g.span = Span::default();
            }
        }
    }
    p
}

fn id(name: &str) -> Ident {
    Ident {
        name: name.to_string(),
        span: Span::default(),
    }
}

fn ex(kind: ExprKind) -> Expr {
    Expr {
        kind,
        span: Span::default(),
    }
}

fn num(text: &str) -> Expr {
    ex(ExprKind::Number(text.to_string()))
}

fn name(n: &str) -> Expr {
    ex(ExprKind::Name(id(n)))
}

fn vars(names: &[&str]) -> Vec<IndexExpr> {
    names.iter().map(|n| IndexExpr::Var(id(n))).collect()
}

fn access(tensor: &str, indices: &[&str]) -> Expr {
    ex(ExprKind::Access {
        tensor: id(tensor),
        indices: vars(indices),
    })
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    ex(ExprKind::Binary(op, Box::new(a), Box::new(b)))
}

fn un(op: UnOp, a: Expr) -> Expr {
    ex(ExprKind::Unary(op, Box::new(a)))
}

fn call(func: &str, args: Vec<Expr>) -> Expr {
    ex(ExprKind::Call {
        func: id(func),
        args,
    })
}

fn reduce(op: &str, indices: &[&str], body: Expr) -> Expr {
    ex(ExprKind::Reduce {
        op: id(op),
        indices: indices.iter().map(|n| id(n)).collect(),
        body: Box::new(body),
    })
}

fn stmt(target: &str, indices: &[&str], value: Expr) -> Stmt {
    Stmt {
        target: id(target),
        indices: vars(indices),
        bracketed: !indices.is_empty(),
        value,
        span: Span::default(),
    }
}

fn decl(n: &str, dtype: DType, shape: &[&str]) -> TensorDecl {
    TensorDecl {
        name: id(n),
        dtype: (dtype, Span::default()),
        shape: shape.iter().map(|s| ShapeDim::Named(id(s))).collect(),
        span: Span::default(),
    }
}

/// Parses `text`, asserting that it has no diagnostics, and erases the spans.
fn parse_clean(text: &str) -> Program {
    let (program, diags) = parse(text);
    assert!(
        diags.is_empty(),
        "unexpected diagnostics for {text:?}: {diags:#?}"
    );
    erase(program)
}

/// Parses the expression `text` as the right-hand side of a statement.
fn parse_expr_clean(text: &str) -> Expr {
    let program = parse_clean(&format!("kernel k() -> () {{ r = {text} }}"));
    match program.items.into_iter().next() {
        Some(Item::Kernel(k)) => match k.body.into_iter().next() {
            Some(s) => s.value,
            None => panic!("no statement in {text:?}"),
        },
        other => panic!("expected a kernel, got {other:?}"),
    }
}

/// The diagnostics of `text` (which must have some).
fn errors(text: &str) -> Vec<Diagnostic> {
    let (_, diags) = parse(text);
    assert!(!diags.is_empty(), "expected errors for {text:?}");
    diags
}

// ----- the attention example ---------------------------------------------------------------

#[test]
fn attention_example_parses_to_the_expected_tree() {
    use BinOp::*;
    let program = parse_clean(ATTENTION);
    let expected = Program {
        items: vec![
            Item::Dims(DimsDecl {
                dims: ["T", "D", "K"]
                    .iter()
                    .map(|n| DimDecl {
                        name: id(n),
                        value: None,
                    })
                    .collect(),
                span: Span::default(),
            }),
            Item::Kernel(Kernel {
                name: id("attention"),
                params: vec![
                    decl("X", DType::F32, &["T", "D"]),
                    decl("WQ", DType::F32, &["D", "K"]),
                    decl("WK", DType::F32, &["D", "K"]),
                    decl("WV", DType::F32, &["D", "K"]),
                ],
                outputs: vec![decl("O", DType::F32, &["T", "K"])],
                body: vec![
                    stmt(
                        "Q",
                        &["t", "a"],
                        bin(Mul, access("X", &["t", "d"]), access("WQ", &["d", "a"])),
                    ),
                    stmt(
                        "Kx",
                        &["t", "a"],
                        bin(Mul, access("X", &["t", "d"]), access("WK", &["d", "a"])),
                    ),
                    stmt(
                        "V",
                        &["t", "a"],
                        bin(Mul, access("X", &["t", "d"]), access("WV", &["d", "a"])),
                    ),
                    stmt(
                        "S",
                        &["i", "j"],
                        bin(
                            Div,
                            bin(Mul, access("Q", &["i", "a"]), access("Kx", &["j", "a"])),
                            call("sqrt", vec![name("K")]),
                        ),
                    ),
                    stmt(
                        "P",
                        &["i", "j"],
                        reduce("softmax", &["j"], access("S", &["i", "j"])),
                    ),
                    stmt(
                        "O",
                        &["i", "a"],
                        bin(Mul, access("P", &["i", "j"]), access("V", &["j", "a"])),
                    ),
                ],
                span: Span::default(),
            }),
            Item::Grad(GradKernel {
                name: id("attention_grad"),
                of: id("attention"),
                wrt: vec![id("WQ"), id("WK"), id("WV")],
                span: Span::default(),
            }),
        ],
    };
    assert_eq!(program, expected);
}

#[test]
fn attention_spans_point_at_the_source() {
    let (program, _) = parse(ATTENTION);
    let Some(Item::Kernel(k)) = program.items.get(1) else {
        panic!("second item is not a kernel");
    };
    let s = &k.body[3];
    assert_eq!(
        &ATTENTION[s.span.range()],
        "S[i, j]  = Q[i, a] * Kx[j, a] / sqrt(K)"
    );
    assert_eq!(
        &ATTENTION[s.value.span.range()],
        "Q[i, a] * Kx[j, a] / sqrt(K)"
    );
    assert_eq!(&ATTENTION[k.params[1].span.range()], "WQ: f32[D, K]");
    assert!(ATTENTION[k.span.range()].starts_with("kernel attention("));
    assert!(ATTENTION[k.span.range()].ends_with("V[j, a]\n}"));
}

// ----- expressions -------------------------------------------------------------------------

#[test]
fn precedence_from_loosest_to_tightest() {
    use BinOp::*;
    assert_eq!(
        parse_expr_clean("a || b && c < d + e * -f"),
        bin(
            Or,
            name("a"),
            bin(
                And,
                name("b"),
                bin(
                    Lt,
                    name("c"),
                    bin(
                        Add,
                        name("d"),
                        bin(Mul, name("e"), un(UnOp::Neg, name("f")))
                    ),
                ),
            ),
        )
    );
}

#[test]
fn arithmetic_is_left_associative() {
    use BinOp::*;
    assert_eq!(
        parse_expr_clean("a - b - c"),
        bin(Sub, bin(Sub, name("a"), name("b")), name("c"))
    );
    assert_eq!(
        parse_expr_clean("a * b / c"),
        bin(Div, bin(Mul, name("a"), name("b")), name("c"))
    );
    assert_eq!(
        parse_expr_clean("a - (b - c)"),
        bin(Sub, name("a"), bin(Sub, name("b"), name("c")))
    );
}

#[test]
fn chained_comparisons_are_rejected_with_a_hint() {
    let diags = errors("kernel k() -> () { r = a < b < c }");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].message, "comparisons cannot be chained");
    assert_eq!(
        diags[0].help.as_deref(),
        Some("combine them with `&&`: `a < b && b < c`")
    );
}

#[test]
fn numbers_keep_their_spelling() {
    use BinOp::*;
    let e = parse_expr_clean("1e-3 * x + 1.5E+3 - 2");
    assert_eq!(
        e,
        bin(
            Sub,
            bin(Add, bin(Mul, num("1e-3"), name("x")), num("1.5E+3")),
            num("2")
        )
    );
    assert_eq!(print_expr(&e), "1e-3 * x + 1.5E+3 - 2");
}

#[test]
fn attention_prints_back_as_canonical_source() {
    let expected = "\
dims T, D, K

kernel attention(X: f32[T, D], WQ: f32[D, K], WK: f32[D, K], WV: f32[D, K]) -> (O: f32[T, K]) {
    Q[t, a] = X[t, d] * WQ[d, a]
    Kx[t, a] = X[t, d] * WK[d, a]
    V[t, a] = X[t, d] * WV[d, a]
    S[i, j] = Q[i, a] * Kx[j, a] / sqrt(K)
    P[i, j] = softmax[j](S[i, j])
    O[i, a] = P[i, j] * V[j, a]
}

kernel attention_grad = grad(attention, wrt: [WQ, WK, WV])
";
    assert_eq!(print_program(&parse_clean(ATTENTION)), expected);
}
