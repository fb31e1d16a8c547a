use crate::compile::{pipeline, CompileOptions};
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_module;
use crate::ir::tensor::visit::any_node;
use crate::ir::tensor::{Expr, OpKind, UnaryFn};
use crate::passes::tests::check_preserved;
use crate::passes::Level;

#[test]
fn the_attention_gradient_reads_its_forward_values_instead_of_recomputing_them() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/attention.ein"
    ))
    .unwrap();
    let m = crate::sema::compile_source(&text).0.unwrap();
    let exps = |m: &crate::ir::tensor::Module| {
        let f = m.func("attention_grad").unwrap();
        f.ops
            .iter()
            .filter(|op| {
                let OpKind::Generic(g) = &op.kind;
                any_node(&g.body, &mut |e| matches!(e, Expr::Unary(UnaryFn::Exp, _)))
            })
            .count()
    };
    // As derived (and tidied: the stabilising max gets no gradient), the backward recomputes
    // exp(S - max) once besides the forward P.exp.
    assert_eq!(exps(&m), 2);
    // The whole tensor pipeline of -O2, checked against the interpreter.
    let tensor = pipeline(&CompileOptions::default(), Level::Tensor)
        .unwrap()
        .to_string();
    let out = check_preserved(&m, &tensor, &[("T", 5), ("D", 3), ("K", 4)], false);
    assert_eq!(exps(&out), 1, "{}", print_module(&out));
    // And no two ops compute the same value.
    let f = out.func("attention_grad").unwrap();
    let keys: Vec<String> = f
        .ops
        .iter()
        .map(|op| {
            let OpKind::Generic(g) = &op.kind;
            super::key(g)
        })
        .collect();
    for (k, a) in keys.iter().enumerate() {
        assert!(!keys[..k].contains(a), "op {k} has a twin");
    }
}

#[test]
fn keys_ignore_names_and_input_order_but_not_reduction_order_or_bits() {
    let m = parse_module(
        "dims N
func @f(%x: f32[N, N], %y: f32[N, N]) -> (a: f32[N], b: f32[N], c: f32[N], d: f32, e: f32, g: f32[N, N], h: f32[N, N]) {
  %a = generic (i: N, j: N) ins(%x[i, j], %y[i, j]) -> [i] reduce add over (j) { mul(%0, %1) } : f32
  %b = generic (p: N, q: N) ins(%y[p, q], %x[p, q]) -> [p] reduce add over (q) { mul(%1, %0) } : f32
  %c = generic (q: N, p: N) ins(%y[p, q], %x[p, q], %x[p, q]) -> [p] reduce add over (q) { mul(%2, %0) } : f32
  %d = generic (i: N, j: N) ins(%x[i, j]) -> [] reduce add over (i, j) { %0 } : f32
  %e = generic (i: N, j: N) ins(%x[i, j]) -> [] reduce add over (j, i) { %0 } : f32
  %g = generic (i: N, j: N) ins(%x[i, j]) -> [i, j] { add(%0, 0.0:f32) } : f32
  %h = generic (i: N, j: N) ins(%x[i, j]) -> [i, j] { add(%0, -0.0:f32) } : f32
  return a = %a, b = %b, c = %c, d = %d, e = %e, g = %g, h = %h
}",
    )
    .unwrap();
    let key = |k: usize| {
        let OpKind::Generic(g) = &m.funcs[0].ops[k].kind;
        super::key(g)
    };
    assert_eq!(key(0), key(1), "renamed indices, swapped inputs");
    assert_eq!(key(0), key(2), "a repeated read and an unread input");
    assert_ne!(key(3), key(4), "another summation order");
    assert_ne!(key(5), key(6), "0.0 and -0.0");
    let out = check_preserved(&m, "cse", &[("N", 3)], true);
    // a, b, c merge; d, e and g, h stay apart.
    assert_eq!(out.funcs[0].ops.len(), 5, "{}", print_module(&out));
}
