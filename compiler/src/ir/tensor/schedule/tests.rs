//! Schedules in the text form: round trips, every parse error, and one test per legality rule
//! with its exact message.

use super::*;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_module;
use crate::ir::tensor::verify::verify_module;
use crate::ir::tensor::{Module, OpKind};

const FIXTURE: &str = include_str!("../../../../../tests/filetests/tensor/schedules.tir");

fn parse(text: &str) -> Module {
    match parse_module(text) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn generic(m: &Module, f: usize, op: usize) -> &Generic {
    let OpKind::Generic(g) = &m.funcs[f].ops[op].kind;
    g
}

#[test]
fn the_fixture_prints_back_identically_and_verifies() {
    let m = parse(FIXTURE);
    assert_eq!(print_module(&m), FIXTURE);
    assert_eq!(verify_module(&m), Ok(()));
}

#[test]
fn the_fixture_parses_to_the_expected_schedules() {
    let m = parse(FIXTURE);
    let i = |n: u32| IndexId(n);
    assert_eq!(
        generic(&m, 0, 0).schedule,
        Some(Schedule::Gemm(GemmSchedule {
            outer: Some(vec![]),
            m: Some(vec![i(0)]),
            n: Some(vec![i(1)]),
            k: Some(vec![i(2)]),
            mr: Some(4),
            nr: Some(8),
            mc: Some(64),
            kc: Some(256),
            nc: Some(4096),
            pack: Some(Packing { a: true, b: true }),
            ukernel: Some(MicroKernel::Simd128),
            parallel: Some(vec![]),
            parallel_blocks: Some(vec![BlockLoop::Ic]),
            epilogue: None,
        }))
    );
    let partial = Schedule::Gemm(GemmSchedule {
        kc: Some(128),
        pack: Some(Packing { a: false, b: true }),
        ..GemmSchedule::default()
    });
    assert_eq!(generic(&m, 0, 2).schedule, Some(partial.clone()));
    assert_eq!(
        partial.missing(),
        [
            "outer",
            "m",
            "n",
            "k",
            "mr",
            "nr",
            "mc",
            "nc",
            "ukernel",
            "parallel",
            "parallel_blocks"
        ]
    );
    assert_eq!(
        generic(&m, 1, 0).schedule,
        Some(Schedule::Loops(LoopsSchedule {
            order: Some(vec![i(0), i(1)]),
            vector: Some(Some((i(1), 2))),
            unroll: Some(vec![(i(1), 4)]),
            parallel: Some(vec![i(0)]),
        }))
    );
    assert_eq!(generic(&m, 1, 2).schedule, Some(Schedule::Naive));
    assert_eq!(
        generic(&m, 2, 3).schedule,
        Some(Schedule::Softmax(LoopsSchedule {
            order: Some(vec![i(0), i(1)]),
            vector: Some(Some((i(1), 4))),
            unroll: Some(vec![(i(1), 2)]),
            parallel: Some(vec![i(0)]),
        }))
    );
    for (f, op) in [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 3)] {
        let s = generic(&m, f, op).schedule.as_ref().unwrap();
        assert_eq!(s.missing(), Vec::<&str>::new(), "{f}/{op} is complete");
    }
}

/// The parse error of a matmul whose schedule is `schedule`.
fn parse_error(schedule: &str) -> String {
    let text = format!(
        "func @f(%A: f32[3, 4], %B: f32[4, 5]) -> (C: f32[3, 5]) {{\n  %C = generic (i: 3, j: 5, \
         k: 4) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) {{ mul(%0, %1) }} : f32 \
         {schedule}\n  return C = %C\n}}\n"
    );
    match parse_module(&text) {
        Ok(_) => panic!("`{schedule}` parsed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_schedules_are_located_parse_errors() {
    // Each error is at the first occurrence of `at` in the schedule text, which starts at
    // column 111 of line 2.
    let cases = [
        (
            "schedule tiled()",
            "tiled",
            "unknown schedule `tiled`: the schedules are naive, gemm, loops, softmax, attention",
        ),
        (
            "schedule naive(mr=4)",
            "mr",
            "a `naive` schedule takes no keys, found `mr`",
        ),
        (
            "schedule loops(mr=4)",
            "mr",
            "unknown key `mr` for a `loops` schedule: the keys are order, vector, unroll, parallel",
        ),
        ("schedule gemm(mr=4, mr=8)", "mr=8", "`mr` is set twice"),
        (
            "schedule gemm(mr=0)",
            "0",
            "`mr` takes an integer from 1 to 1048576",
        ),
        (
            "schedule gemm(mr=[i])",
            "[",
            "`mr` takes an integer from 1 to 1048576",
        ),
        (
            "schedule gemm(m=i)",
            "i)",
            "`m` takes a list of indices `[...]`",
        ),
        ("schedule gemm(m=[q])", "q", "the op has no index `q`"),
        ("schedule gemm(m=[i, i])", "i]", "`m` lists `i` twice"),
        (
            "schedule gemm(m=[i:2])",
            "i:",
            "`m` lists indices without `:n`",
        ),
        (
            "schedule gemm(pack=[c])",
            "c]",
            "`pack` lists `a` and `b`, found `c`",
        ),
        ("schedule gemm(pack=[b, b])", "b]", "`pack` lists `b` twice"),
        (
            "schedule gemm(ukernel=avx9)",
            "avx9",
            "unknown micro-kernel `avx9`: the families are simd128, avx2, avx512",
        ),
        (
            "schedule gemm(parallel_blocks=[pc])",
            "pc",
            "`parallel_blocks` lists `jc` and `ic`, found `pc`",
        ),
        (
            "schedule loops(vector=[i:4, j:4])",
            "[",
            "`vector` takes at most one `index:lanes`",
        ),
        (
            "schedule loops(unroll=[i])",
            "i]",
            "`unroll` needs `i:n` with n from 1 to 1048576",
        ),
        (
            "schedule loops(unroll=[i:2, i:3])",
            "i:3",
            "`unroll` lists `i` twice",
        ),
        (
            "schedule gemm(kc=)",
            ")",
            "expected a number, a name or a list `[...]`, found `)`",
        ),
    ];
    for (schedule, at, message) in cases {
        let col = 111 + schedule.find(at).unwrap();
        assert_eq!(
            parse_error(schedule),
            format!("2:{col}: {message}"),
            "{schedule}"
        );
    }
    assert_eq!(
        parse_error("schedule gemm"),
        "3:3: expected `(`, found `return`"
    );
}

/// The verifier's errors for a module whose one op is `op` (text) with `schedule` after it.
fn schedule_errors(dims: &str, params: &str, out: &str, op: &str, schedule: &str) -> Vec<String> {
    let text = format!(
        "dims {dims}\nfunc @f({params}) -> (C: {out}) {{\n  %C = {op} {schedule}\n  return C = %C\n}}\n"
    );
    match verify_module(&parse(&text)) {
        Ok(()) => Vec::new(),
        Err(es) => es.iter().map(ToString::to_string).collect(),
    }
}

const MATMUL: &str =
    "generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32";

fn matmul_errors(schedule: &str) -> Vec<String> {
    schedule_errors(
        "M, N, K",
        "%A: f32[M, K], %B: f32[K, N]",
        "f32[M, N]",
        MATMUL,
        schedule,
    )
}

fn errs(list: &[&str]) -> Vec<String> {
    list.iter()
        .map(|e| format!("@f: %C: schedule: {e}"))
        .collect()
}

#[test]
fn gemm_schedules_must_fit_a_contraction() {
    assert_eq!(
        matmul_errors("schedule gemm(m=[i], n=[j], k=[k], outer=[])"),
        errs(&[])
    );
    // Roles follow the `m` indices: here A is the second input.
    assert_eq!(
        matmul_errors("schedule gemm(m=[j], n=[i], k=[k])"),
        errs(&[])
    );
    assert_eq!(
        matmul_errors("schedule gemm(m=[j], n=[j])"),
        errs(&[
            "`n` lists `j`, which is not an output index read by B only",
            "index `j` is in more than one of outer, m, n, k",
        ])
    );
    assert_eq!(
        matmul_errors("schedule gemm(m=[k], n=[], k=[i])"),
        errs(&[
            "`m` lists `k`, which is not an output index read by A only",
            "`n` is empty: a GEMM needs M, N and K",
            "`k` lists `i`, which is not a reduced index read by both A and B",
        ])
    );
    assert_eq!(
        matmul_errors("schedule gemm(outer=[], m=[i], n=[j], k=[])"),
        errs(&[
            "`k` is empty: a GEMM needs M, N and K",
            "index `k` is in none of outer, m, n, k",
        ])
    );
    assert_eq!(
        schedule_errors(
            "M, N, K",
            "%A: f32[M, K, K], %B: f32[K, N]",
            "f32[M, N]",
            "generic (i: M, j: N, k: K, l: K) ins(%A[i, k, l], %B[k, j]) -> [i, j] reduce add over (k, l) { mul(%0, %1) } : f32",
            "schedule gemm(m=[i], n=[j], k=[k, l])"
        ),
        errs(&[
            "`k` lists 2 indices: each GEMM dimension is one index (the others are `outer` loops)",
            "`k` lists `l`, which is not a reduced index read by both A and B",
        ])
    );
    assert_eq!(
        matmul_errors("schedule gemm(mr=4, nr=6, mc=10, nc=12)"),
        errs(&[
            "mc = 10 is not a multiple of mr = 4",
            "nr = 6 is not a multiple of the 4 f32 lanes of a vector",
        ])
    );
    assert_eq!(
        matmul_errors("schedule gemm(nr=8, nc=12)"),
        errs(&["nc = 12 is not a multiple of nr = 8"])
    );
    assert_eq!(
        matmul_errors("schedule gemm(outer=[k], m=[i], n=[j], k=[], parallel=[k, i])"),
        errs(&[
            "`k` is empty: a GEMM needs M, N and K",
            "`parallel` lists `k`, which is not an outer output index",
            "`parallel` lists `i`, which is not an outer output index",
        ])
    );
    let not_gemm = |op: &str, out: &str| {
        schedule_errors(
            "M, N, K",
            "%A: f32[M, K], %B: f32[K, N]",
            out,
            op,
            "schedule gemm()",
        )
    };
    assert_eq!(
        not_gemm(
            "generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce max over (k) { mul(%0, %1) } : f32",
            "f32[M, N]"
        ),
        errs(&["a `gemm` schedule needs a `reduce add`"])
    );
    assert_eq!(
        not_gemm(
            "generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { add(%0, %1) } : f32",
            "f32[M, N]"
        ),
        errs(&["a `gemm` schedule needs the body `mul(%a, %b)` of two inputs"])
    );
    assert_eq!(
        schedule_errors(
            "M, K",
            "%A: i32[M, K]",
            "i32[M]",
            "generic (i: M, k: K) ins(%A[i, k]) -> [i] reduce add over (k) { mul(%0, %0) } : i32",
            "schedule gemm()"
        ),
        errs(&["a `gemm` schedule needs a float op, this one is i32"])
    );
}

#[test]
fn loops_schedules_must_fit_their_op() {
    assert_eq!(
        matmul_errors(
            "schedule loops(order=[i, j, k], vector=[k:4], unroll=[j:2], parallel=[i, j])"
        ),
        errs(&[])
    );
    assert_eq!(
        matmul_errors("schedule loops(order=[k, i])"),
        errs(&["`order` does not list index `j`"])
    );
    assert_eq!(
        matmul_errors("schedule loops(order=[i, k, j], vector=[k:2])"),
        errs(&[
            "`vector` has 2 lanes; a 128-bit vector of f32 has 4",
            "the vectorised index `k` is not the innermost in `order`",
        ])
    );
    assert_eq!(
        matmul_errors("schedule loops(parallel=[k])"),
        errs(&["`parallel` lists `k`, which is not an output index"])
    );
    // Unroll-and-jam multiplies the factors: 16 x 16 copies is the limit, one more is not
    // (issue #13: two factors of 2^20 exhausted 20 GB of memory).
    assert_eq!(
        matmul_errors("schedule loops(unroll=[i:16, j:16])"),
        errs(&[])
    );
    assert_eq!(
        matmul_errors("schedule loops(unroll=[i:16, j:16, k:2])"),
        errs(&["`unroll` makes 512 copies of the body (the product of its factors); at most 256 are allowed"])
    );
    assert_eq!(
        matmul_errors("schedule loops(unroll=[i:1048576, j:1048576, k:1048576])"),
        errs(&["`unroll` makes 1152921504606846976 copies of the body (the product of its factors); at most 256 are allowed"])
    );
}

const SOFTMAX_DIV: &str =
    "generic (i: M, j: N) ins(%E[i, j], %Z[i]) -> [i, j] { div(%0, %1) } : f32";

fn softmax_errors(op: &str, schedule: &str) -> Vec<String> {
    schedule_errors(
        "M, N",
        "%E: f32[M, N], %Z: f32[M]",
        "f32[M, N]",
        op,
        schedule,
    )
}

#[test]
fn softmax_schedules_must_sit_on_a_division_and_keep_rows_outside() {
    assert_eq!(
        softmax_errors(
            SOFTMAX_DIV,
            "schedule softmax(order=[i, j], vector=[j:4], unroll=[j:4, i:2], parallel=[i])"
        ),
        errs(&[])
    );
    assert_eq!(
        softmax_errors(SOFTMAX_DIV, "schedule softmax(order=[j, i], parallel=[j])"),
        errs(&[
            "`order` puts the row index `i` inside the normalised index `j`",
            "`parallel` lists `j`, which is a normalised index",
        ])
    );
    // The loops rules apply too.
    assert_eq!(
        softmax_errors(SOFTMAX_DIV, "schedule softmax(order=[i], vector=[i:4])"),
        errs(&["`order` does not list index `j`"])
    );
    let shape = "a `softmax` schedule belongs on the division `div(%e, %s)` of a row-softmax group";
    assert_eq!(
        softmax_errors(
            "generic (i: M, j: N) ins(%E[i, j], %Z[i]) -> [i, j] { mul(%0, %1) } : f32",
            "schedule softmax()"
        ),
        errs(&[shape])
    );
    assert_eq!(
        softmax_errors(
            "generic (i: M, j: N) ins(%E[i, j], %E[i, j]) -> [i, j] { div(%0, %1) } : f32",
            "schedule softmax()"
        ),
        errs(&[&format!(
            "{shape}; the divisor `%1` varies with every index, so nothing is normalised"
        )])
    );
    assert_eq!(
        softmax_errors(
            "generic (i: M, j: N) ins(%E[i, j], %Z[0]) -> [i, j] { div(%0, %1) } : f32",
            "schedule softmax()"
        ),
        errs(&[&format!("{shape}; the divisor `%1` is not read at indices")])
    );
    assert_eq!(
        schedule_errors(
            "M, N",
            "%E: i32[M, N], %Z: i32[M]",
            "i32[M, N]",
            "generic (i: M, j: N) ins(%E[i, j], %Z[i]) -> [i, j] { div(%0, %1) } : i32",
            "schedule softmax()"
        ),
        errs(&[&format!("{shape}, a float map")])
    );
}

#[test]
fn schedules_built_in_rust_with_dangling_ids_are_errors_not_panics() {
    let mut m = parse(&format!(
        "dims M, N, K\nfunc @f(%A: f32[M, K], %B: f32[K, N]) -> (C: f32[M, N]) {{\n  %C = {MATMUL}\n  return C = %C\n}}\n"
    ));
    let OpKind::Generic(g) = &mut m.funcs[0].ops[0].kind;
    let far = IndexId(99);
    let cases = [
        Schedule::Gemm(GemmSchedule {
            m: Some(vec![far]),
            ..GemmSchedule::default()
        }),
        Schedule::Loops(LoopsSchedule {
            order: Some(vec![far]),
            ..LoopsSchedule::default()
        }),
        Schedule::Loops(LoopsSchedule {
            vector: Some(Some((far, 4))),
            ..LoopsSchedule::default()
        }),
    ];
    for s in cases {
        g.schedule = Some(s);
        let errors = check(g, g.schedule.as_ref().unwrap());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("out of range"), "{errors:?}");
        // The printer shows the dangling id rather than failing.
        let mut text = String::new();
        write(&mut text, g, g.schedule.as_ref().unwrap());
        assert!(text.contains("<invalid index 99>"), "{text}");
    }
}

/// A parallel batch loop gives each task its own packed B block (docs/threads.md), which must
/// fit the stack budget of one block; the same schedule with serial outer loops keeps B in a
/// temporary.
#[test]
fn a_parallel_batch_loop_scopes_the_packed_b_block() {
    let batched = |schedule: &str| {
        schedule_errors(
            "B, M, N, K",
            "%A: f32[B, M, K], %B: f32[B, K, N]",
            "f32[B, M, N]",
            "generic (b: B, i: M, j: N, k: K) ins(%A[b, i, k], %B[b, k, j]) -> [b, i, j] \
             reduce add over (k) { mul(%0, %1) } : f32",
            schedule,
        )
    };
    let full = |parallel: &str| {
        format!(
            "schedule gemm(outer=[b], m=[i], n=[j], k=[k], mr=4, nr=8, mc=64, kc=256, \
             nc=4096, pack=[b], ukernel=simd128, parallel=[{parallel}], parallel_blocks=[])"
        )
    };
    assert_eq!(
        batched(&full("b")),
        errs(&[
            "the packed block of the `jc` loop, scoped to a parallel loop, takes 4194304 \
                bytes of stack, more than 262144"
        ])
    );
    assert_eq!(batched(&full("")), Vec::<String>::new());
}
