use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_module;
use crate::passes::tests::{check_preserved, optimise};

#[test]
fn the_attention_scale_leaves_the_contraction() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/attention.ein"
    ))
    .unwrap();
    let m = crate::sema::compile_source(&text).0.unwrap();
    let out = check_preserved(&m, "canonicalize", &[("T", 5), ("D", 3), ("K", 4)], false);
    let text = print_module(&out);
    assert!(
        text.contains(
            "%S.unscaled = generic (i: T, j: T, a: K) ins(%Q[i, a], %Kx[j, a]) -> [i, j] \
             reduce add over (a) { mul(%0, %1) } : f32\n  \
             %S = generic (i: T, j: T) ins(%S.unscaled[i, j]) -> [i, j] { div(%0, sqrt(dim(K):f32)) } : f32"
        ),
        "{text}"
    );
    // The gradient's invariant divisions leave its sums too: dP.sum reads P.sum only in the map.
    assert!(
        text.contains(
            "%dP.sum.unscaled = generic (i: T, j: T) ins(%P.exp[i, j], %dP[i, j]) -> [i] \
             reduce add over (j) { mul(%0, %1) } : f32"
        ),
        "{text}"
    );
    // Running it again changes nothing.
    assert_eq!(print_module(&optimise(&out, "canonicalize")), text);
}

#[test]
fn integer_sums_move_products_but_never_divisions() {
    let ints = parse_module(
        "dims N
func @f(%x: i32[N], %c: i32) -> (a: i32, b: i32) {
  %a = generic (i: N) ins(%x[i], %c[]) -> [] reduce add over (i) { neg(mul(div(%0, 2:i32), mul(%1, 3:i32))) } : i32
  %b = generic (i: N) ins(%x[i]) -> [] reduce add over (i) { div(mul(%0, 3:i32), 2:i32) } : i32
  return a = %a, b = %b
}",
    )
    .unwrap();
    let floats = parse_module(
        "dims N
func @g(%x: i32[N], %y: i32[N]) -> (d: f64[N]) {
  %d = generic (i: N, j: N) ins(%x[j], %y[i]) -> [i] reduce add over (j) { div(cast<f64>(%0), add(mul(cast<f64>(%1), cast<f64>(%1)), 1.0:f64)) } : f64
  return d = %d
}",
    )
    .unwrap();
    // Integers stay exact; floats agree up to rounding (the divisor is never 0 here).
    let out = check_preserved(&ints, "canonicalize", &[("N", 7)], true);
    let text = print_module(&out);
    assert!(
        text.contains(
            "%a.unscaled = generic (i: N) ins(%x[i]) -> [] reduce add over (i) { div(%0, 2:i32) } : i32\n  \
             %a = generic () ins(%a.unscaled[], %c[]) -> [] { neg(mul(mul(%0, %1), 3:i32)) } : i32"
        ),
        "{text}"
    );
    // (3x)/2 is one integer factor: nothing moves.
    assert!(!text.contains("%b.unscaled"), "{text}");
    // A float divisor read at an output index leaves the sum.
    let text = print_module(&check_preserved(
        &floats,
        "canonicalize",
        &[("N", 7)],
        false,
    ));
    assert!(
        text.contains(
            "%d = generic (i: N) ins(%d.unscaled[i], %y[i]) -> [i] \
             { div(%0, add(mul(cast<f64>(%1), cast<f64>(%1)), 1.0:f64)) } : f64"
        ),
        "{text}"
    );
}

#[test]
fn sums_with_nothing_to_move_and_other_reductions_are_left_alone() {
    let text = "dims N

func @f(%x: f32[N, N]) -> (a: f32[N], b: f32[N], c: f32) {
  %a = generic (i: N, j: N) ins(%x[i, j]) -> [i] reduce max over (j) { mul(%0, 2.0:f32) } : f32
  %b = generic (i: N, j: N) ins(%x[i, j]) -> [i] reduce add over (j) { exp(%0) } : f32
  %c = generic (i: N) ins() -> [] reduce add over (i) { 2.0:f32 } : f32
  return a = %a, b = %b, c = %c
}
";
    let m = parse_module(text).unwrap();
    assert_eq!(print_module(&optimise(&m, "canonicalize")), text);
}
