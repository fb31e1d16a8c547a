//! Tests of the tensor-level passes (semantics: the interpreter before and after on random
//! inputs, and values computed here by explicit formulas) and of the pass manager
//! (instrumentation text, level and verifier errors naming the pass). The loop-level passes'
//! tests are in `tests/loops.rs`.

mod loops;

use super::manager::{run_pipeline, Dumps, Instrumentation, RunOptions};
use super::pipeline::{Pipeline, Step};
use super::registry::{Options, PassInfo};
use super::{Ir, Level, Pass, PassOutput};
use crate::autodiff::grad_function;
use crate::interp::run_function;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_module;
use crate::ir::tensor::{Extent, Function, Module};
use crate::rng::Rng;
use einc_runtime::{Array, Buffer, DType};
use std::collections::HashMap;

/// Random inputs for `f`, with symbolic dims bound from `sizes`.
pub(crate) fn random_inputs(
    m: &Module,
    f: &Function,
    sizes: &HashMap<&str, usize>,
    rng: &mut Rng,
) -> Vec<Array> {
    f.params
        .iter()
        .map(|&p| {
            let ty = &f.value(p).ty;
            let shape: Vec<usize> = ty
                .shape
                .iter()
                .map(|e| match e {
                    Extent::Fixed(n) => *n as usize,
                    Extent::Dim(d) => m
                        .dim_value(d)
                        .map(|v| v as usize)
                        .unwrap_or_else(|| sizes[d.as_str()]),
                })
                .collect();
            let n: usize = shape.iter().product();
            let buffer = match ty.dtype {
                DType::F32 => Buffer::F32((0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()),
                DType::F64 => Buffer::F64((0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()),
                DType::I32 => {
                    Buffer::I32((0..n).map(|_| (rng.next_u64() % 7) as i32 - 3).collect())
                }
                DType::I64 => {
                    Buffer::I64((0..n).map(|_| (rng.next_u64() % 7) as i64 - 3).collect())
                }
            };
            Array::from_buffer(buffer, &shape).unwrap()
        })
        .collect()
}

/// Runs `pipeline` with verification after every pass.
pub(crate) fn optimise(m: &Module, pipeline: &str) -> Module {
    let p = Pipeline::parse(pipeline).unwrap();
    let opts = RunOptions {
        verify_each: true,
        ..RunOptions::default()
    };
    match run_pipeline(&p, Ir::Tensor(m.clone()), &opts, &mut Dumps::default()).unwrap() {
        Ir::Tensor(out) => out,
        other => panic!("expected tensor IR, got {other:?}"),
    }
}

/// The bits of every element (so that the comparison is exact, NaN included), with -0 read as
/// +0: the passes guarantee identical values up to the sign of zero.
pub(crate) fn bits(arrays: &[Array]) -> Vec<Vec<u64>> {
    arrays
        .iter()
        .map(|a| {
            a.to_f64_vec()
                .iter()
                .map(|&x| if x == 0.0 { 0 } else { x.to_bits() })
                .collect()
        })
        .collect()
}

/// Runs every function of `m` before and after `pipeline` on a few random inputs; returns the
/// optimised module. `exact` asks for bit-identical results, otherwise a relative 1e-5.
pub(crate) fn check_preserved(
    m: &Module,
    pipeline: &str,
    sizes: &[(&str, usize)],
    exact: bool,
) -> Module {
    let out = optimise(m, pipeline);
    let sizes: HashMap<&str, usize> = sizes.iter().copied().collect();
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    for f in &m.funcs {
        let g = out.func(&f.name).unwrap();
        for _ in 0..5 {
            let inputs = random_inputs(m, f, &sizes, &mut rng);
            let before = run_function(m, f, &inputs).unwrap();
            let after = run_function(&out, g, &inputs).unwrap();
            if exact {
                assert_eq!(
                    bits(&before),
                    bits(&after),
                    "@{}\n{}",
                    f.name,
                    print_module(&out)
                );
            } else {
                for (b, a) in before.iter().zip(&after) {
                    for (x, y) in b.to_f64_vec().iter().zip(a.to_f64_vec()) {
                        assert!(
                            (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
                            "@{}: {x} vs {y}",
                            f.name
                        );
                    }
                }
            }
        }
    }
    out
}

fn physics() -> Module {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/physics.ein"
    ))
    .unwrap();
    crate::sema::compile_source(&text).0.unwrap()
}

#[test]
fn the_physics_example_loses_every_delta_and_eps_and_keeps_its_bits() {
    let out = check_preserved(&physics(), "delta-elim,eps-expand,dce", &[], true);
    let text = print_module(&out);
    assert!(!text.contains("delta<") && !text.contains("eps<"), "{text}");
    // y = x is a map now, s = trace(A) a sum over the diagonal.
    assert!(
        text.contains("%y = generic (i: 3) ins(%x[i]) -> [i] { %0 } : f32"),
        "{text}"
    );
    assert!(
        text.contains("%s = generic (i: 3) ins(%A[i, i]) -> [] reduce add over (i) { %0 } : f32"),
        "{text}"
    );
}

#[test]
fn the_expanded_cross_product_and_determinant_are_the_textbook_formulas() {
    let out = optimise(&physics(), "eps-expand");
    let a = [0.3f32, -1.25, 2.5];
    let b = [1.5f32, 0.75, -0.125];
    let arr =
        |v: &[f32], shape: &[usize]| Array::from_buffer(Buffer::F32(v.to_vec()), shape).unwrap();
    let c = run_function(
        &out,
        out.func("cross").unwrap(),
        &[arr(&a, &[3]), arr(&b, &[3])],
    )
    .unwrap();
    let expect = vec![
        (a[1] * b[2] - a[2] * b[1]) as f64,
        (a[2] * b[0] - a[0] * b[2]) as f64,
        (a[0] * b[1] - a[1] * b[0]) as f64,
    ];
    assert_eq!(c[0].to_f64_vec(), expect);
    let m = [2.0f32, -1.0, 0.5, 1.0, 3.0, -2.0, 0.25, 4.0, 1.5];
    let det = run_function(&out, out.func("det3").unwrap(), &[arr(&m, &[3, 3])]).unwrap();
    let e = |r: usize, c: usize| m[3 * r + c];
    // The six permutations in lexicographic order, as the expansion adds them.
    let expect =
        e(0, 0) * e(1, 1) * e(2, 2) - e(0, 0) * e(1, 2) * e(2, 1) - e(0, 1) * e(1, 0) * e(2, 2)
            + e(0, 1) * e(1, 2) * e(2, 0)
            + e(0, 2) * e(1, 0) * e(2, 1)
            - e(0, 2) * e(1, 1) * e(2, 0);
    assert_eq!(det[0].to_f64_vec(), vec![expect as f64]);
}

#[test]
fn gradients_of_the_examples_keep_their_bits_through_the_tensor_passes() {
    for (file, kernel, wrt, sizes) in [
        (
            "attention.ein",
            "attention",
            &["WQ", "WK", "WV"][..],
            &[("T", 3), ("D", 4), ("K", 2)][..],
        ),
        (
            "mlp.ein",
            "mlp",
            &["W1", "b1", "W2"][..],
            &[("B", 2), ("I", 3), ("H", 4), ("O", 2)][..],
        ),
        (
            "tucker.ein",
            "tucker",
            &["G", "U"][..],
            &[
                ("I", 2),
                ("J", 3),
                ("K", 2),
                ("P", 2),
                ("Q", 2),
                ("S", 3),
                ("R", 2),
            ][..],
        ),
        ("physics.ein", "substitute", &["A", "x"][..], &[][..]),
        ("physics.ein", "cross", &["a", "b"][..], &[][..]),
    ] {
        let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let module = crate::sema::compile_source(&std::fs::read_to_string(path).unwrap())
            .0
            .unwrap();
        let grad = grad_function(&module, module.func(kernel).unwrap(), wrt, "g").unwrap();
        let m = Module {
            dims: module.dims.clone(),
            funcs: vec![grad],
        };
        // The gradient of `substitute` has a delta over a summed index, those of `cross` eps
        // over all their summed indices: every rewrite keeps the summation order.
        let out = check_preserved(&m, "delta-elim,eps-expand,dce", sizes, true);
        let text = print_module(&out);
        assert!(
            !text.contains("eps<") && !text.contains("reduce add over (i) { mul(delta"),
            "{text}"
        );
    }
}

const CASES: &str = "dims N = 3, M

func @f(%x: f32[N], %A: f32[N, N], %B: f32[2, M], %T: f64[4, 4, 4, 4], %C: f32[2, 2]) -> (k: f32[N, N], d: f32[N], mx: f32[N], w: f32[M], v: f64) {
  %k = generic (i: N, j: N, l: N) ins(%x[l]) -> [i, j] reduce add over (l) { mul(%0, delta<f32>(i, l, j)) } : f32
  %d = generic (i: N) ins(%x[i]) -> [i] { mul(delta<f32>(i, i), %0) } : f32
  %mx = generic (i: N, j: N) ins(%A[i, j]) -> [i] reduce max over (j) { mul(delta<f32>(i, j), %0) } : f32
  %w = generic (i: 2, j: 2, m: M) ins(%C[i, j], %B[j, m]) -> [m] reduce add over (i, j) { mul(mul(eps<f32>(i, j), %0), %1) } : f32
  %v = generic (a: 4, b: 4, c: 4, e: 4) ins(%T[a, b, c, e]) -> [] reduce add over (a, b, c, e) { mul(eps<f64>(a, b, c, e), %0) } : f64
  return k = %k, d = %d, mx = %mx, w = %w, v = %v
}
";

#[test]
fn rarer_delta_and_eps_forms_keep_their_values() {
    let m = parse_module(CASES).unwrap();
    let out = check_preserved(&m, "delta-elim,eps-expand", &[("M", 2)], true);
    let text = print_module(&out);
    // delta(i, l, j) with l summed keeps a delta over the two outputs.
    assert!(
        text.contains(
            "%k = generic (i: N, j: N) ins(%x[i]) -> [i, j] { mul(%0, delta<f32>(i, j)) } : f32"
        ),
        "{text}"
    );
    assert!(
        text.contains("%d = generic (i: N) ins(%x[i]) -> [i] { %0 } : f32"),
        "{text}"
    );
    // A max reduction is not a sum: the delta stays.
    assert!(
        text.contains("reduce max over (j) { mul(delta<f32>(i, j), %0) }"),
        "{text}"
    );
    assert!(!text.contains("eps<"), "{text}");
    // Rank 4 with max-rank 3 is left alone.
    let out = optimise(&m, "eps-expand{max-rank=3}");
    assert!(print_module(&out).contains("eps<f64>(a, b, c, e)"));
}

#[test]
fn dce_drops_unused_ops_and_renumbers_values() {
    let m = parse_module(
        "func @f(%x: f32[2], %unused: f32[2]) -> (y: f32[2]) {
  %a = generic (i: 2) ins(%x[i]) -> [i] { exp(%0) } : f32
  %b = generic (i: 2) ins(%a[i]) -> [i] { neg(%0) } : f32
  %y = generic (i: 2) ins(%x[i]) -> [i] { abs(%0) } : f32
  return y = %y
}
",
    )
    .unwrap();
    let out = check_preserved(&m, "dce", &[], true);
    assert_eq!(
        print_module(&out),
        "func @f(%x: f32[2], %unused: f32[2]) -> (y: f32[2]) {\n  \
         %y = generic (i: 2) ins(%x[i]) -> [i] { abs(%0) } : f32\n  \
         return y = %y\n}\n"
    );
    assert_eq!(out.funcs[0].values.len(), 3);
}

const SMALL: &str = "func @f(%x: f32[2]) -> (y: f32[2]) {
  %y = generic (i: 2, j: 2) ins(%x[j]) -> [i] reduce add over (j) { mul(delta<f32>(i, j), %0) } : f32
  return y = %y
}
";

const SMALL_AFTER: &str = "func @f(%x: f32[2]) -> (y: f32[2]) {
  %y = generic (i: 2) ins(%x[i]) -> [i] { %0 } : f32
  return y = %y
}
";

fn dumps(pipeline: &str, instrumentation: Instrumentation) -> Result<(String, Ir), String> {
    let p = Pipeline::parse(pipeline)?;
    let opts = RunOptions {
        instrumentation,
        verify_each: true,
    };
    let mut out = Dumps::default();
    let ir = run_pipeline(
        &p,
        Ir::Tensor(parse_module(SMALL).unwrap()),
        &opts,
        &mut out,
    )?;
    Ok((out.text, ir))
}

#[test]
fn print_after_all_heads_each_pass_with_a_banner() {
    let (out, ir) = dumps(
        "delta-elim,dce",
        Instrumentation {
            print_after_all: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        out,
        format!("// -----// IR after delta-elim //----- //\n{SMALL_AFTER}// -----// IR after dce //----- //\n{SMALL_AFTER}")
    );
    assert_eq!(ir.print(), SMALL_AFTER);
}

#[test]
fn print_changed_marks_the_unchanged_passes() {
    let (out, _) = dumps(
        "dce,delta-elim,dce",
        Instrumentation {
            print_changed: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        out,
        format!("// IR after dce: (unchanged)\n// -----// IR after delta-elim //----- //\n{SMALL_AFTER}// IR after dce: (unchanged)\n")
    );
}

#[test]
fn print_before_and_after_name_passes_and_stop_after_stops() {
    let instr = Instrumentation {
        print_before: vec!["delta-elim".into()],
        print_after: vec!["dce".into()],
        stop_after: Some("delta-elim".into()),
        ..Default::default()
    };
    let (out, ir) = dumps("delta-elim,dce", instr).unwrap();
    assert_eq!(
        out,
        format!("// -----// IR before delta-elim //----- //\n{SMALL}")
    );
    assert_eq!(ir.print(), SMALL_AFTER);
    let err = dumps(
        "dce",
        Instrumentation {
            stop_after: Some("delta-elim".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        "pass `delta-elim` is not in the pipeline; it runs: dce"
    );
}

#[test]
fn the_lowering_changes_the_level() {
    let (_, ir) = dumps("delta-elim,lower-to-loops", Instrumentation::default()).unwrap();
    assert_eq!(ir.level(), Level::Loop);
    let err = dumps("lower-to-loops,dce", Instrumentation::default()).unwrap_err();
    assert_eq!(
        err,
        "pass `dce` reads tensor IR, but after `lower-to-loops` the IR is at loop level"
    );
}

/// A pass that breaks the IR (drops every result) or misreports whether it changed it.
struct Broken {
    claims_change: bool,
}

impl Pass for Broken {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        match ir {
            Ir::Tensor(mut m) if self.claims_change => {
                for f in &mut m.funcs {
                    f.ops.clear();
                }
                Ok(PassOutput {
                    ir: Ir::Tensor(m),
                    changed: true,
                })
            }
            ir => Ok(PassOutput { ir, changed: true }),
        }
    }
}

static BROKEN: PassInfo = PassInfo {
    name: "broken",
    summary: "test",
    input: Level::Tensor,
    output: Level::Tensor,
    options: &[],
    build: |_, _| {
        Box::new(Broken {
            claims_change: true,
        })
    },
};

fn run_broken(claims_change: bool, verify_each: bool) -> Result<Ir, String> {
    let p = Pipeline {
        steps: vec![Step {
            info: &BROKEN,
            options: Options { values: Vec::new() },
            pass: Box::new(Broken { claims_change }),
        }],
    };
    let opts = RunOptions {
        verify_each,
        ..RunOptions::default()
    };
    run_pipeline(
        &p,
        Ir::Tensor(parse_module(SMALL).unwrap()),
        &opts,
        &mut Dumps::default(),
    )
}

#[test]
fn the_verifier_runs_after_each_pass_and_names_it() {
    let err = run_broken(true, true).unwrap_err();
    assert!(
        err.starts_with("the IR after pass `broken` fails the verifier:\n@f: "),
        "{err}"
    );
    // Without verification the broken IR goes through.
    assert!(run_broken(true, false).is_ok());
    let err = run_broken(false, true).unwrap_err();
    assert_eq!(
        err,
        "pass `broken` reported a change but the IR is unchanged"
    );
}

#[test]
fn invalid_input_is_reported_before_any_pass_runs() {
    let bad = parse_module(
        "func @f(%x: f32[2]) -> (y: f32[3]) {\n  \
         %y = generic (i: 3) ins(%x[i]) -> [i] { %0 } : f32\n  return y = %y\n}\n",
    )
    .unwrap();
    let p = Pipeline::parse("dce").unwrap();
    let err = run_pipeline(
        &p,
        Ir::Tensor(bad),
        &RunOptions::default(),
        &mut Dumps::default(),
    )
    .unwrap_err();
    assert!(
        err.starts_with("the input is not valid tensor IR:\n"),
        "{err}"
    );
}

#[test]
fn eps_with_another_summed_index_keeps_its_value_up_to_rounding() {
    let m = parse_module(
        "func @t(%M: f32[2, 2, 5], %N: f32[3, 3, 3, 4]) -> (t: f32, u: f32) {
  %t = generic (p: 2, q: 2, r: 5) ins(%M[p, q, r]) -> [] reduce add over (r, p, q) { mul(eps<f32>(p, q), %0) } : f32
  %u = generic (i: 3, j: 3, k: 3, l: 4) ins(%N[i, j, k, l]) -> [] reduce add over (i, l, j, k) { mul(%0, eps<f32>(j, i, k)) } : f32
  return t = %t, u = %u
}
",
    )
    .unwrap();
    let out = check_preserved(&m, "eps-expand", &[], false);
    assert!(!print_module(&out).contains("eps<"));
}

/// The modules of a filetest fixture (the text of each case before its expectation).
fn fixture_cases(text: &str) -> Vec<Module> {
    text.split("// -----")
        .map(|case| {
            let source = case.split("// EXPECT:").next().unwrap_or("");
            parse_module(source).unwrap_or_else(|e| panic!("{e}\n{source}"))
        })
        .collect()
}

#[test]
fn fuse_keeps_the_interpreters_results_bit_identical() {
    let sizes = [("N", 5), ("M", 7), ("K", 3), ("T", 6)];
    for m in fixture_cases(include_str!("../../../tests/filetests/fuse/maps.tir")) {
        check_preserved(&m, "fuse", &sizes, true);
    }
}

#[test]
fn folding_a_scale_into_an_operand_keeps_the_value_up_to_rounding() {
    let sizes = [("K", 4)];
    for m in fixture_cases(include_str!("../../../tests/filetests/fuse/scale.tir")) {
        let out = check_preserved(&m, "fuse", &sizes, false);
        assert_eq!(
            m.funcs[0].name == "matvec",
            print_module(&out).contains("x.scaled"),
            "{}",
            print_module(&out)
        );
    }
}
