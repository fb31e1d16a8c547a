use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_module;
use crate::passes::tests::check_preserved;

#[test]
fn folded_bodies_keep_their_bits() {
    let m = parse_module(
        "dims N, K = 16
func @f(%x: f32[N], %n: i32[N]) -> (a: f32[N], b: i32[N], c: f32[N], d: f32[N], e: f64) {
  %a = generic (i: N) ins(%x[i]) -> [i] { div(mul(%0, 1.0:f32), sqrt(dim(K):f32)) } : f32
  %b = generic (i: N) ins(%n[i]) -> [i] { add(div(%0, sub(3:i32, 3:i32)), mul(2:i32, neg(neg(%0)))) } : i32
  %c = generic (i: N) ins(%x[i]) -> [i] { select(lt(dim(K):f32, 2.0:f32), %0, add(%0, -0.0:f32)) } : f32
  %z = generic (i: N) ins() -> [i] { exp(0.5:f32) } : f32
  %d = generic (i: N) ins(%x[i], %z[i]) -> [i] { mul(%0, %1) } : f32
  %e = generic (i: N) ins(%x[i]) -> [] reduce add over (i) { cast<f64>(add(%0, 0.0:f32)) } : f64
  return a = %a, b = %b, c = %c, d = %d, e = %e
}",
    )
    .unwrap();
    let out = check_preserved(&m, "const-fold", &[("N", 6)], true);
    let text = print_module(&out);
    // sqrt(16) is 4; x * 1 is x; an integer division by zero is 0 by the IR's rule.
    assert!(text.contains("{ div(%0, 4.0:f32) }"), "{text}");
    assert!(text.contains("{ mul(2:i32, %0) }"), "{text}");
    // The select is decided; x + -0.0 is x, but x + 0.0 is not (it turns -0.0 into 0.0).
    assert!(
        text.contains("%c = generic (i: N) ins(%x[i]) -> [i] { %0 } : f32"),
        "{text}"
    );
    assert!(text.contains("add(%0, 0.0:f32)"), "{text}");
    // The constant map is read as its literal (exp(0.5) in f32), and its input dropped.
    assert!(
        text.contains("%d = generic (i: N) ins(%x[i]) -> [i] { mul(%0, 1.6487212:f32) } : f32"),
        "{text}"
    );
}

/// Issue #13, found by the tensor_ir fuzz target: a body holding a NaN literal made the pass
/// loop forever, because `NaN != NaN` read as "the body changed". The pass runs on a thread so
/// that a regression fails this test after a bound instead of hanging the suite.
#[test]
fn nan_literals_reach_a_fixpoint() {
    let m = parse_module(
        "dims N
func @f(%x: f32[N], %w: f64[N]) -> (a: f32[N], b: f64[N], c: f32[N]) {
  %a = generic (i: N) ins(%x[i]) -> [i] { select(ne(%0, nan:f32), add(%0, nan(0x7fc00001):f32), %0) } : f32
  %n = generic (i: N) ins() -> [i] { add(nan:f64, 1.0:f64) } : f64
  %b = generic (i: N) ins(%w[i], %n[i]) -> [i] { mul(%0, %1) } : f64
  %c = generic (i: N) ins(%x[i]) -> [i] { mul(%0, 1.0:f32) } : f32
  return a = %a, b = %b, c = %c
}",
    )
    .unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(check_preserved(&m, "const-fold", &[("N", 3)], true)));
    let out = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("const-fold did not reach a fixpoint within 60 s");
    let text = print_module(&out);
    // The NaN bodies stay as they were (payload included); the folds beside them still happen.
    assert!(
        text.contains("{ select(ne(%0, nan:f32), add(%0, nan(0x7fc00001):f32), %0) }"),
        "{text}"
    );
    assert!(
        text.contains("%b = generic (i: N) ins(%w[i]) -> [i] { mul(%0, nan:f64) } : f64"),
        "{text}"
    );
    assert!(
        text.contains("%c = generic (i: N) ins(%x[i]) -> [i] { %0 } : f32"),
        "{text}"
    );
}
