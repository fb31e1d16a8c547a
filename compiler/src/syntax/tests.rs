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
        ExprKind::Number(_) | ExprKind::Inf | ExprKind::Error => {}
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

fn erase_shape_dim(s: &mut ShapeDim) {
    match s {
        ShapeDim::Named(id) => erase_ident(id),
        ShapeDim::Fixed(_, sp) => *sp = Span::default(),
    }
}

fn erase_decl(d: &mut TensorDecl) {
    erase_ident(&mut d.name);
    d.dtype.1 = Span::default();
    d.span = Span::default();
    d.shape.iter_mut().for_each(erase_shape_dim);
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
                    for e in &mut s.extents {
                        erase_ident(&mut e.index);
                        erase_shape_dim(&mut e.extent);
                    }
                    if let Some(a) = &mut s.schedule {
                        erase_ident(&mut a.kind);
                        a.span = Span::default();
                        for item in &mut a.items {
                            item.key_at = Span::default();
                            item.value_at = Span::default();
                            if let RawValue::List(entries) = &mut item.value {
                                entries.iter_mut().for_each(|e| e.2 = Span::default());
                            }
                        }
                    }
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
            Item::Broken(name) => erase_ident(name),
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
        schedule: None,
        extents: Vec::new(),
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
                kind: Derivative::Grad,
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

// ----- robustness --------------------------------------------------------------------------

/// Wraps an expression in a kernel so that it is parsed as a statement's right-hand side.
fn in_kernel(expr: &str) -> String {
    format!("kernel k() -> () {{ r = {expr} }}")
}

#[test]
fn ten_thousand_nested_parentheses_are_rejected_without_overflowing() {
    on_small_stack(ten_thousand_nested_parentheses);
}

fn ten_thousand_nested_parentheses() {
    let text = in_kernel(&format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000)));
    let diags = errors(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].message, "expression nested too deeply");
}

/// Runs `f` on a thread with a 1.5 MiB stack (less than a test thread's 2 MiB default and a
/// main thread's 8 MiB), so that growth of the parser's recursive frames fails here first.
/// (In debug builds the deepest accepted expressions use about 0.9 MiB.)
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let joined = std::thread::Builder::new()
        .stack_size(3 << 19)
        .spawn(f)
        .map(|handle| handle.join());
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => panic!("could not spawn the test thread: {e}"),
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted_for_every_nesting_form() {
    on_small_stack(nesting_up_to_the_limit);
}

fn nesting_up_to_the_limit() {
    // The statement's right-hand side is one level; each repetition adds one more (the mixed
    // form adds three: the call, the minus and the parentheses).
    let depth = super::MAX_NESTING - 1;
    let forms = [
        (
            format!("{}x{}", "(".repeat(depth), ")".repeat(depth)),
            "parentheses",
        ),
        (
            format!("{}x{}", "f(".repeat(depth), ")".repeat(depth)),
            "calls",
        ),
        (
            format!("{}x{}", "sum[i](".repeat(depth), ")".repeat(depth)),
            "reductions",
        ),
        (format!("{}x", "-".repeat(depth)), "prefix minus"),
        (
            format!("{}x{}", "g(1, -(".repeat(depth / 3), "))".repeat(depth / 3)),
            "mixed",
        ),
        (
            format!("{}x{}", "(a + b * ".repeat(depth), ")".repeat(depth)),
            "operators",
        ),
    ];
    for (text, what) in forms {
        let (_, diags) = parse(&in_kernel(&text));
        assert!(diags.is_empty(), "{what}: {diags:#?}");
    }
    let too_deep = format!("{}x{}", "f(".repeat(depth + 1), ")".repeat(depth + 1));
    let diags = errors(&in_kernel(&too_deep));
    assert_eq!(diags[0].message, "expression nested too deeply");
}

#[test]
fn a_long_flat_expression_is_not_limited_by_nesting() {
    let terms = vec!["A[i, j]"; 5_000].join(" + ");
    let (program, diags) = parse(&in_kernel(&terms));
    assert!(diags.is_empty());
    assert_eq!(program.items.len(), 1);
}

#[test]
fn empty_and_comment_only_files_are_empty_programs() {
    for text in ["", "   \n\t\n", "# only a comment", "# a\n# b\n;;"] {
        let (program, diags) = parse(text);
        assert!(program.items.is_empty(), "{text:?}");
        assert!(diags.is_empty(), "{text:?}: {diags:?}");
    }
}

#[test]
fn every_truncation_of_the_attention_example_parses_without_panicking() {
    for end in (0..=ATTENTION.len()).filter(|&i| ATTENTION.is_char_boundary(i)) {
        let _ = parse(&ATTENTION[..end]);
    }
}

#[test]
fn binary_junk_and_unicode_give_diagnostics_not_panics() {
    let junk: String = (0u8..=255).map(char::from).collect();
    let (_, diags) = parse(&junk);
    assert!(!diags.is_empty());
    let diags = errors("kernel k(ä: f32) -> () { r = 1 }");
    assert_eq!(diags[0].message, "unexpected character `ä` (U+00E4)");
    let diags = errors("dims N\u{0}");
    assert_eq!(diags[0].message, "unexpected character `\\0` (U+0000)");
}

#[test]
fn a_very_long_line_parses() {
    let name = "x".repeat(100_000);
    let program = parse_clean(&in_kernel(&name));
    let Some(Item::Kernel(k)) = program.items.first() else {
        panic!("no kernel");
    };
    assert_eq!(k.body[0].value, self::name(&name));
}

#[test]
fn integers_that_overflow_u64_are_errors() {
    let too_big = "18446744073709551616";
    for text in [
        format!("dims N = {too_big}"),
        format!("kernel k(A: f32[{too_big}]) -> () {{ }}"),
        in_kernel(&format!("A[{too_big}]")),
    ] {
        let diags = errors(&text);
        assert_eq!(diags.len(), 1, "{text}: {diags:#?}");
        assert!(
            diags[0]
                .message
                .starts_with(&format!("`{too_big}` is too large for")),
            "{}",
            diags[0].message
        );
    }
    // The largest u64 itself is fine.
    let program = parse_clean("dims N = 18446744073709551615");
    let Some(Item::Dims(d)) = program.items.first() else {
        panic!("no dims");
    };
    assert_eq!(d.dims[0].value.map(|v| v.0), Some(u64::MAX));
}

// ----- forms and errors --------------------------------------------------------------------

/// The messages of the diagnostics of `text`, in order.
fn messages(text: &str) -> Vec<String> {
    errors(text).into_iter().map(|d| d.message).collect()
}

#[test]
fn statement_forms_and_declarations() {
    let program = parse_clean(
        "dims N = 3, M\n\
         kernel k(s: f32, t: i64[], A: f64[N, 4]) -> (u: i32) { u = s; v[] = t; w[i, 0] = A[i, 0] }",
    );
    let Some(Item::Dims(d)) = program.items.first() else {
        panic!("no dims");
    };
    assert_eq!(d.dims[0].value.map(|v| v.0), Some(3));
    assert_eq!(d.dims[1].value, None);
    let Some(Item::Kernel(k)) = program.items.get(1) else {
        panic!("no kernel");
    };
    assert_eq!(k.params[0].shape, vec![]);
    assert_eq!(k.params[1].shape, vec![]);
    assert_eq!(k.params[1].dtype.0, DType::I64);
    assert_eq!(
        k.params[2].shape,
        vec![
            ShapeDim::Named(id("N")),
            ShapeDim::Fixed(4, Span::default())
        ]
    );
    assert_eq!(k.outputs[0].dtype.0, DType::I32);
    let forms: Vec<(bool, usize)> = k
        .body
        .iter()
        .map(|s| (s.bracketed, s.indices.len()))
        .collect();
    assert_eq!(forms, vec![(false, 0), (true, 0), (true, 2)]);
    assert_eq!(
        k.body[2].indices,
        vec![
            IndexExpr::Var(id("i")),
            IndexExpr::Fixed(0, Span::default())
        ]
    );
}

#[test]
fn primaries_of_every_kind() {
    use BinOp::*;
    assert_eq!(
        parse_expr_clean("where(j <= i, S[i, j], -inf)"),
        call(
            "where",
            vec![
                bin(Le, name("j"), name("i")),
                access("S", &["i", "j"]),
                un(UnOp::Neg, ex(ExprKind::Inf)),
            ]
        )
    );
    assert_eq!(
        parse_expr_clean("max[i, j](f32(A[i, j]))"),
        reduce(
            "max",
            &["i", "j"],
            call("f32", vec![access("A", &["i", "j"])])
        )
    );
    assert_eq!(
        parse_expr_clean("einsum(\"ij,jk->ik\", A, B)"),
        ex(ExprKind::Einsum {
            subscripts: ("ij,jk->ik".to_string(), Span::default()),
            args: vec![id("A"), id("B")],
        })
    );
    assert_eq!(
        parse_expr_clean("!(a == b) || c != d"),
        bin(
            Or,
            un(UnOp::Not, bin(Eq, name("a"), name("b"))),
            bin(Ne, name("c"), name("d"))
        )
    );
}

#[test]
fn statements_need_no_separator_and_accept_semicolons() {
    let a = parse_clean("kernel k() -> () { a = 1 b[i] = c[i] - d[i] }");
    let b = parse_clean("kernel k() -> () {\n  a = 1;\n  b[i] = c[i]\n  - d[i];\n}");
    assert_eq!(a, b);
}

#[test]
fn unknown_dtype_lists_the_valid_ones() {
    let diags = errors("kernel k(A: float[N]) -> () { }");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].message, "unknown element type `float`");
    assert_eq!(
        diags[0].help.as_deref(),
        Some("the element types are `f32`, `f64`, `i32`, `i64`")
    );
}

#[test]
fn missing_arrow_in_a_signature_has_a_hint() {
    let diags = errors("kernel k(A: f32[N]) (B: f32[N]) { B[i] = A[i] }");
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].message,
        "expected `->` after the kernel's inputs, found `(`"
    );
    assert_eq!(
        diags[0].help.as_deref(),
        Some("declare the outputs after `->`: `kernel k(...) -> (O: f32[N]) { ... }`")
    );
}

#[test]
fn double_equals_in_a_statement_and_single_equals_in_a_call_have_hints() {
    let diags = errors("kernel k() -> () { B[i] == A[i] }");
    assert_eq!(diags[0].message, "expected `=` after `B[...]`, found `==`");
    assert_eq!(
        diags[0].help.as_deref(),
        Some("assignment is written with a single `=`")
    );
    let diags = errors("kernel k() -> () { M[i, j] = where(j = i, 1, 0) }");
    assert_eq!(
        diags[0].message,
        "expected `,` or `)` in the arguments, found `=`"
    );
    assert_eq!(
        diags[0].help.as_deref(),
        Some("to compare two values, write `==`")
    );
}

#[test]
fn several_errors_in_one_file_are_all_reported() {
    let text = "\
dims N = 2.5, M
kernel a(X: f32[N]) -> (Y: f32[N]) {
    Z[i] = X[i] * * 2
    Y[i] = X[i] +
    V[i] = X[i]
    W[i] = X[i]
}
kernel b(X: f32[N] -> (Y: f32[N]) {
    Y[i] = (X[i]
}
kernel c = grad(a, wrt: [X])
";
    let (program, diags) = parse(text);
    let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        msgs,
        vec![
            "a dim's extent must be an integer, found `2.5`",
            "expected an expression, found `*`",
            "expected an operator or the end of the statement, found `=`",
            "expected `,` or `)` in the kernel's inputs, found `->`",
            "expected `)` to close `(`, found `}`",
        ]
    );
    // The dangling `+` makes `Y[i] = X[i] + V[i]`, whose `=` is then out of place; `W` still
    // parses, and so do the other good items.
    let names: Vec<String> = program
        .items
        .iter()
        .map(|item| match item {
            Item::Dims(d) => format!("dims {}", d.dims.len()),
            Item::Kernel(k) => format!("kernel {} {}", k.name.name, k.body.len()),
            Item::Grad(g) => format!("grad {}", g.name.name),
            Item::Broken(name) => format!("broken {}", name.name),
        })
        .collect();
    assert_eq!(names, vec!["dims 2", "kernel a 3", "broken b", "grad c"]);
}

#[test]
fn a_missing_closing_brace_is_reported_at_the_next_item() {
    let diags = errors("kernel a() -> () { x = 1\nkernel b() -> () { y = 2 }");
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].message,
        "expected `}` to close the body of `a`, found `kernel`"
    );
    assert_eq!(diags[0].secondary[0].message, "the body starts here");
}

#[test]
fn statements_outside_kernels_are_rejected_with_a_hint() {
    let diags = errors("C[i] = A[i]");
    assert_eq!(
        diags[0].message,
        "expected `dims` or `kernel`, found the name `C`"
    );
    assert!(diags[0]
        .help
        .as_deref()
        .is_some_and(|h| h.starts_with("statements belong inside")));
}

#[test]
fn a_missing_operator_is_suggested() {
    let diags = errors("kernel k() -> () { s = A[i] 2 }");
    assert_eq!(
        diags[0].message,
        "expected an operator or the end of the statement, found the number `2`"
    );
    assert_eq!(
        diags[0].help.as_deref(),
        Some("is an operator such as `*` or `+` missing here?")
    );
}

#[test]
fn malformed_indices_einsum_and_grad_are_errors() {
    assert_eq!(
        messages("kernel k() -> () { s = A[i + 1] }"),
        vec!["expected `,` or `]` in the indices, found `+`"]
    );
    assert_eq!(
        messages("kernel k() -> () { s = A[0.5] }"),
        vec!["an index position must be an integer, found `0.5`"]
    );
    assert_eq!(
        messages("kernel k() -> () { s = sum[0](A[i]) }"),
        vec!["`sum[...]` works along index names, not fixed positions"]
    );
    assert_eq!(
        messages("kernel k() -> () { C = einsum(A, B) }"),
        vec!["expected a subscripts string as `einsum`'s first argument, found the name `A`"]
    );
    assert_eq!(
        messages("kernel k() -> () { C = einsum(\"ij->i\", A[i, j]) }"),
        vec!["expected a tensor name as an `einsum` operand, found the name `A`"]
    );
    assert_eq!(
        messages("kernel g = grad(f, [A])"),
        vec!["expected `wrt:`, found `[`"]
    );
    assert_eq!(
        messages("kernel g = diff(f, wrt: [A])"),
        vec!["expected `grad(...)`, found the name `diff`"]
    );
    assert_eq!(
        messages("kernel k() -> () { s = \"ij\" }"),
        vec!["a string literal cannot be used as a value"]
    );
}

#[test]
fn keywords_cannot_be_names() {
    let diags = errors("dims kernel");
    assert_eq!(
        diags[0].message,
        "expected a name for a dim in `dims`, found `kernel`"
    );
    assert_eq!(
        diags[0].notes,
        vec!["`kernel` is a keyword and cannot be used as a name".to_string()]
    );
}

#[test]
fn trailing_commas_are_allowed_in_bracketed_lists() {
    let a = parse_clean("kernel k(A: f32[N],) -> (B: f32[N],) { B[i,] = f(A[i,],) }");
    let b = parse_clean("kernel k(A: f32[N]) -> (B: f32[N]) { B[i] = f(A[i]) }");
    assert_eq!(a, b);
}

// ----- property tests: nothing panics --------------------------------------------------------

mod no_panics {
    use super::super::parse;
    use proptest::prelude::*;

    /// Fragments that are tokens or near-tokens, so that soups reach deep into the grammar.
    const FRAGMENTS: &[&str] = &[
        "dims",
        "kernel",
        "grad",
        "wrt",
        "inf",
        "einsum",
        "sum",
        "softmax",
        "where",
        "f32",
        "i64",
        "A",
        "i",
        "j",
        "0",
        "3",
        "0.5",
        "1e-3",
        "99999999999999999999",
        "\"ij->i\"",
        "\"",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        ";",
        "=",
        "->",
        "+",
        "-",
        "*",
        "/",
        "<",
        "<=",
        ">",
        ">=",
        "==",
        "!=",
        "&&",
        "||",
        "!",
        "#",
        "\n",
        " ",
        "é",
        "$",
        "&",
        "\0",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_strings(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn token_soups(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80)) {
            let text: String = parts.join(" ");
            let _ = parse(&text);
            let glued: String = parts.concat();
            let _ = parse(&glued);
        }

        #[test]
        fn attention_with_a_span_replaced(start in 0usize..600, len in 0usize..20,
                                          parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..4)) {
            let text = super::ATTENTION;
            let start = start.min(text.len());
            let end = (start + len).min(text.len());
            if text.is_char_boundary(start) && text.is_char_boundary(end) {
                let mutated = format!("{}{}{}", &text[..start], parts.concat(), &text[end..]);
                let _ = parse(&mutated);
            }
        }
    }
}

// ----- examples and printer round trips ----------------------------------------------------

/// Every example file, by name.
const EXAMPLES: &[(&str, &str)] = &[
    ("attention.ein", ATTENTION),
    (
        "attention_backward.ein",
        include_str!("../../../examples/attention_backward.ein"),
    ),
    (
        "causal_attention.ein",
        include_str!("../../../examples/causal_attention.ein"),
    ),
    ("mlp.ein", include_str!("../../../examples/mlp.ein")),
    ("physics.ein", include_str!("../../../examples/physics.ein")),
    ("tucker.ein", include_str!("../../../examples/tucker.ein")),
];

#[test]
fn the_examples_list_is_complete() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ein"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = EXAMPLES.iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, listed);
}

#[test]
fn every_example_parses_without_diagnostics_and_starts_with_a_comment() {
    for (file, text) in EXAMPLES {
        let (program, diags) = parse(text);
        assert!(diags.is_empty(), "{file}: {diags:#?}");
        assert!(!program.items.is_empty(), "{file}");
        assert!(text.starts_with(&format!("# {file}: ")), "{file}");
    }
}

/// Prints `program`, parses the text back and checks that nothing changed: the re-parsed tree
/// equals the original (spans aside) and prints identically.
fn assert_round_trip(program: &Program, what: &str) {
    let printed = print_program(program);
    let (reparsed, diags) = parse(&printed);
    assert!(diags.is_empty(), "{what}: {diags:#?}\n{printed}");
    assert_eq!(print_program(&reparsed), printed, "{what}");
    assert_eq!(
        erase(reparsed),
        erase(program.clone()),
        "{what}:\n{printed}"
    );
}

#[test]
fn every_example_round_trips_through_the_printer() {
    for (file, text) in EXAMPLES {
        let (program, _) = parse(text);
        assert_round_trip(&program, file);
    }
}

#[test]
fn long_signatures_are_printed_one_declaration_per_line() {
    let (_, causal) = EXAMPLES
        .iter()
        .find(|(n, _)| *n == "causal_attention.ein")
        .unwrap();
    let (program, _) = parse(causal);
    let printed = print_program(&program);
    assert!(
        printed.contains(
            "kernel causal_attention(\n    X: f32[B, T, D],\n    WQ: f32[H, D, E],\n    \
             WK: f32[H, D, E],\n    WV: f32[H, D, E],\n    WO: f32[H, E, D],\n) -> (\n    \
             Y: f32[B, T, D],\n) {\n    Q[b, h, t, e] = X[b, t, d] * WQ[h, d, e]\n"
        ),
        "{printed}"
    );
}

#[test]
fn parentheses_are_printed_only_where_needed() {
    let cases = [
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("(a * b) / c", "a * b / c"),
        ("a / (b * c)", "a / (b * c)"),
        ("(a + b) * c", "(a + b) * c"),
        ("-(a + b)", "-(a + b)"),
        ("-(-a)", "-(-a)"),
        ("- -a", "-(-a)"),
        ("(-a) * b", "-a * b"),
        ("a - -b", "a - -b"),
        ("(a < b) == c", "(a < b) == c"),
        ("a < (b < c)", "a < (b < c)"),
        ("a || (b && c)", "a || b && c"),
        ("(a || b) && c", "(a || b) && c"),
        ("!(a && b)", "!(a && b)"),
        ("((f((x))))", "f(x)"),
        ("sum[i, j]((A[i, j]))", "sum[i, j](A[i, j])"),
        ("(-inf)", "-inf"),
        ("einsum(\"ij,jk\",A,B)", "einsum(\"ij,jk\", A, B)"),
    ];
    for (input, expected) in cases {
        assert_eq!(print_expr(&parse_expr_clean(input)), expected, "{input}");
    }
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    fn ident() -> impl Strategy<Value = Ident> {
        prop::sample::select(&["A", "B", "x", "S_2", "_t", "relu", "sum", "i", "Kx"][..])
            .prop_map(id)
    }

    fn index() -> impl Strategy<Value = IndexExpr> {
        prop_oneof![
            3 => prop::sample::select(&["i", "j", "k", "a"][..]).prop_map(|n| IndexExpr::Var(id(n))),
            1 => (0u64..5).prop_map(|n| IndexExpr::Fixed(n, Span::default())),
        ]
    }

    fn leaf() -> impl Strategy<Value = Expr> {
        prop_oneof![
            prop::sample::select(&["0", "2", "0.5", "1e-3", "1.5E+3"][..]).prop_map(num),
            Just(ex(ExprKind::Inf)),
            ident().prop_map(|n| ex(ExprKind::Name(n))),
            (ident(), prop::collection::vec(index(), 0..4))
                .prop_map(|(tensor, indices)| ex(ExprKind::Access { tensor, indices })),
            (
                prop::sample::select(&["ij,jk->ik", "ii", "...i->i", ""][..]),
                prop::collection::vec(ident(), 0..3)
            )
                .prop_map(|(s, args)| ex(ExprKind::Einsum {
                    subscripts: (s.to_string(), Span::default()),
                    args,
                })),
        ]
    }

    const BINOPS: &[BinOp] = &[
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::And,
        BinOp::Or,
    ];

    /// Random well-formed expressions of every form, nested a few levels.
    pub(super) fn expr() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(5, 48, 3, |inner| {
            prop_oneof![
                (
                    prop::sample::select(&[UnOp::Neg, UnOp::Not][..]),
                    inner.clone()
                )
                    .prop_map(|(op, e)| un(op, e)),
                (prop::sample::select(BINOPS), inner.clone(), inner.clone())
                    .prop_map(|(op, a, b)| bin(op, a, b)),
                (ident(), prop::collection::vec(inner.clone(), 0..3))
                    .prop_map(|(func, args)| ex(ExprKind::Call { func, args })),
                (
                    ident(),
                    prop::collection::vec(prop::sample::select(&["i", "j"][..]).prop_map(id), 0..3),
                    inner
                )
                    .prop_map(|(op, indices, body)| ex(ExprKind::Reduce {
                        op,
                        indices,
                        body: Box::new(body),
                    })),
            ]
        })
    }

    fn decl_strategy() -> impl Strategy<Value = TensorDecl> {
        (
            ident(),
            prop::sample::select(&DType::ALL[..]),
            prop::collection::vec(
                prop_oneof![
                    ident().prop_map(ShapeDim::Named),
                    (0u64..100).prop_map(|n| ShapeDim::Fixed(n, Span::default())),
                ],
                0..3,
            ),
        )
            .prop_map(|(name, dtype, shape)| TensorDecl {
                name,
                dtype: (dtype, Span::default()),
                shape,
                span: Span::default(),
            })
    }

    fn stmt_strategy() -> impl Strategy<Value = Stmt> {
        (
            ident(),
            prop::collection::vec(index(), 0..3),
            any::<bool>(),
            expr(),
        )
            .prop_map(|(target, indices, brackets, value)| {
                // An extent on the first index of the left side, which is always printed.
                let extents = match indices.first() {
                    Some(IndexExpr::Var(i)) if brackets => vec![IndexExtent {
                        index: i.clone(),
                        extent: ShapeDim::Fixed(7, Span::default()),
                    }],
                    _ => Vec::new(),
                };
                Stmt {
                    target,
                    bracketed: brackets || !indices.is_empty(),
                    indices,
                    value,
                    schedule: None,
                    extents,
                    span: Span::default(),
                }
            })
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            prop::collection::vec((ident(), prop::option::of(0u64..1000)), 1..4).prop_map(|dims| {
                Item::Dims(DimsDecl {
                    dims: dims
                        .into_iter()
                        .map(|(name, value)| DimDecl {
                            name,
                            value: value.map(|v| (v, Span::default())),
                        })
                        .collect(),
                    span: Span::default(),
                })
            }),
            (
                ident(),
                prop::collection::vec(decl_strategy(), 0..8),
                prop::collection::vec(decl_strategy(), 0..3),
                prop::collection::vec(stmt_strategy(), 0..4),
            )
                .prop_map(|(name, params, outputs, body)| Item::Kernel(Kernel {
                    name,
                    params,
                    outputs,
                    body,
                    span: Span::default(),
                })),
            (
                ident(),
                ident(),
                prop::collection::vec(ident(), 0..3),
                0..3usize
            )
                .prop_map(|(name, of, wrt, kind)| {
                    Item::Grad(GradKernel {
                        name,
                        kind: Derivative::ALL[kind],
                        of,
                        wrt,
                        span: Span::default(),
                    })
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn expressions_round_trip(e in expr()) {
            let printed = print_expr(&e);
            let reparsed = parse_expr_clean(&printed);
            prop_assert_eq!(print_expr(&reparsed), printed.clone());
            prop_assert_eq!(reparsed, e, "{}", printed);
        }

        #[test]
        fn programs_round_trip(items in prop::collection::vec(item(), 0..4)) {
            assert_round_trip(&Program { items }, "generated program");
        }
    }
}

#[test]
fn the_language_reference_shows_the_attention_example_verbatim() {
    let reference = include_str!("../../../docs/language.md");
    assert!(reference.contains(&format!("```\n{ATTENTION}```\n")));
}

#[test]
fn schedule_annotations_parse_print_and_round_trip() {
    let text = "kernel f(A: f32[3, 4], B: f32[4, 5]) -> (C: f32[3, 5]) {\n    \
                C[i, j] = A[i, k] * B[k, j]\n        \
                schedule gemm(mr = 4, m = [i], unroll = [k: 2, j: 1], ukernel = simd128,)\n    \
                D[i] = schedule[i] schedule naive()\n}\n";
    let (program, diags) = parse(text);
    assert!(diags.is_empty(), "{diags:#?}");
    let Item::Kernel(k) = &program.items[0] else {
        panic!("not a kernel")
    };
    let a = k.body[0].schedule.as_ref().unwrap();
    assert_eq!(a.kind.name, "gemm");
    let s = |at: Span| &text[at.range()];
    assert_eq!(
        s(a.span),
        "schedule gemm(mr = 4, m = [i], unroll = [k: 2, j: 1], ukernel = simd128,)"
    );
    let items: Vec<(&str, &str, &RawValue<Span>)> = a
        .items
        .iter()
        .map(|i| (i.key.as_str(), s(i.value_at), &i.value))
        .collect();
    assert_eq!(items[0], ("mr", "4", &RawValue::Int(4)));
    assert_eq!(
        items[3],
        ("ukernel", "simd128", &RawValue::Name("simd128".into()))
    );
    assert_eq!(items[2].1, "[k: 2, j: 1]");
    let RawValue::List(entries) = items[2].2 else {
        panic!("not a list")
    };
    let entries: Vec<(&str, Option<u64>, &str)> = entries
        .iter()
        .map(|(n, f, at)| (n.as_str(), *f, s(*at)))
        .collect();
    assert_eq!(entries, [("k", Some(2), "k"), ("j", Some(1), "j")]);
    // The statement's span stops before its annotation; `schedule[i]` is an access.
    assert_eq!(s(k.body[0].span), "C[i, j] = A[i, k] * B[k, j]");
    assert_eq!(k.body[1].schedule.as_ref().unwrap().kind.name, "naive");
    assert!(print_program(&program).contains(
        "C[i, j] = A[i, k] * B[k, j] schedule gemm(mr = 4, m = [i], unroll = [k: 2, j: 1], \
         ukernel = simd128)\n    D[i] = schedule[i] schedule naive()\n"
    ));
    assert_round_trip(&program, "annotated");
}

#[test]
fn malformed_schedule_annotations_are_syntax_errors() {
    let head = "kernel f(A: f32[3]) -> (C: f32[3]) {\n    C[i] = A[i] ";
    for (annotation, message) in [
        (
            "schedule gemm mr = 4",
            "expected `(` after the schedule kind, found the name `mr`",
        ),
        (
            "schedule gemm(mr 4)",
            "expected `=` after the key, found the number `4`",
        ),
        (
            "schedule gemm(mr = 2.5)",
            "a schedule value must be an integer, found `2.5`",
        ),
        (
            "schedule gemm(m = [i: j])",
            "expected a factor, found the name `j`",
        ),
        (
            "schedule gemm(m = (i))",
            "expected a name as the value, or a number or a list `[...]`, found `(`",
        ),
    ] {
        let e = errors(&format!("{head}{annotation}\n}}\n"));
        assert_eq!(e.len(), 1, "{annotation}: {e:#?}");
        assert_eq!(e[0].message, message, "{annotation}");
    }
}
