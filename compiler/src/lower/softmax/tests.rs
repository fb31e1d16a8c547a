//! Row-softmax groups under `softmax` schedules: random legal schedules at row lengths around
//! the vector and unroll boundaries, inputs of magnitude 1e4 and masked (-inf) entries (whole
//! rows included), escaping intermediates and several normalised axes, against the interpreter
//! in the loop evaluator and through the JIT; no `P.exp` buffer unless something reads it.

use crate::api::{Program, TensorRef};
use crate::interp;
use crate::ir::loops::{eval, printer, verify, BufferKind};
use crate::ir::tensor::schedule::{LoopsSchedule, Schedule};
use crate::ir::tensor::{self, IndexId, OpKind};
use crate::rng::Rng;
use einc_runtime::array::{element_count, for_each_index};
use einc_runtime::{Array, Buffer, DType, Scalar};

const SIZES: [usize; 13] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 17, 33, 63, 65];

/// A softmax of `%S` (a copy of the parameter when `wrapped`, so that it is contiguous) over
/// the axes `over` (of `i, j, k`), with extra outputs reading the intermediates named in
/// `escapes` (`max`, `exp`, `sum`).
struct Case {
    name: &'static str,
    /// The source's indices (its shape is `M, N, K` for `i, j, k`).
    rank: usize,
    /// The normalised indices.
    over: &'static [&'static str],
    escapes: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "rows",
        rank: 2,
        over: &["j"],
        escapes: &[],
    },
    Case {
        name: "rows, every intermediate read",
        rank: 2,
        over: &["j"],
        escapes: &["max", "exp", "sum"],
    },
    Case {
        name: "columns",
        rank: 2,
        over: &["i"],
        escapes: &[],
    },
    Case {
        name: "two normalised axes, exp read",
        rank: 3,
        over: &["j", "k"],
        escapes: &["exp"],
    },
    Case {
        name: "middle axis, max and sum read",
        rank: 3,
        over: &["j"],
        escapes: &["max", "sum"],
    },
];

fn module_text(case: &Case, t: DType, wrapped: bool) -> String {
    let t = t.name();
    let all = ["i", "j", "k"];
    let dims = ["M", "N", "K"];
    let idx = &all[..case.rank];
    let space: Vec<String> = idx
        .iter()
        .zip(dims)
        .map(|(i, d)| format!("{i}: {d}"))
        .collect();
    let space = space.join(", ");
    let full = idx.join(", ");
    let rows: Vec<&str> = idx
        .iter()
        .copied()
        .filter(|i| !case.over.contains(i))
        .collect();
    let rows = rows.join(", ");
    let over = case.over.join(", ");
    let shape = |ids: &[&str]| -> String {
        let ds: Vec<&str> = ids
            .iter()
            .map(|i| dims[all.iter().position(|a| a == i).unwrap()])
            .collect();
        if ds.is_empty() {
            t.to_string()
        } else {
            format!("{t}[{}]", ds.join(", "))
        }
    };
    let row_ids: Vec<&str> = idx
        .iter()
        .copied()
        .filter(|i| !case.over.contains(i))
        .collect();
    let mut ops = Vec::new();
    let src = if wrapped {
        ops.push(format!(
            "  %S = generic ({space}) ins(%X[{full}]) -> [{full}] {{ %0 }} : {t}"
        ));
        "%S"
    } else {
        "%X"
    };
    ops.push(format!(
        "  %P.max = generic ({space}) ins({src}[{full}]) -> [{rows}] reduce max over ({over}) {{ %0 }} : {t}"
    ));
    ops.push(format!(
        "  %P.exp = generic ({space}) ins({src}[{full}], %P.max[{rows}]) -> [{full}] {{ exp(sub(%0, %1)) }} : {t}"
    ));
    ops.push(format!(
        "  %P.sum = generic ({space}) ins(%P.exp[{full}]) -> [{rows}] reduce add over ({over}) {{ %0 }} : {t}"
    ));
    ops.push(format!(
        "  %P = generic ({space}) ins(%P.exp[{full}], %P.sum[{rows}]) -> [{full}] {{ div(%0, %1) }} : {t}"
    ));
    let mut outs = vec![format!("P: {}", shape(idx))];
    let mut rets = vec!["P = %P".to_string()];
    for e in case.escapes {
        let ids: &[&str] = if *e == "exp" { idx } else { &row_ids };
        // Read outside the group: scaled by 2 (an op after the group).
        let m = ids.join(", ");
        let sp: Vec<String> = ids
            .iter()
            .map(|i| format!("{i}: {}", dims[all.iter().position(|a| a == i).unwrap()]))
            .collect();
        ops.push(format!(
            "  %{e}2 = generic ({}) ins(%P.{e}[{m}]) -> [{m}] {{ mul(%0, 2:{t}) }} : {t}",
            sp.join(", ")
        ));
        outs.push(format!("{e}2: {}", shape(ids)));
        rets.push(format!("{e}2 = %{e}2"));
    }
    format!(
        "dims M, N, K\nfunc @f(%X: {}) -> ({}) {{\n{}\n  return {}\n}}\n",
        shape(idx),
        outs.join(", "),
        ops.join("\n"),
        rets.join(", ")
    )
}

fn div_op(m: &mut tensor::Module) -> &mut tensor::Generic {
    let f = &mut m.funcs[0];
    let k = f
        .ops
        .iter()
        .position(|op| f.values[op.result.0 as usize].name == "P")
        .unwrap();
    let OpKind::Generic(g) = &mut f.ops[k].kind;
    g
}

/// A random legal `softmax` schedule for the division `g` whose divisor reads `rows`.
fn random_schedule(rng: &mut Rng, g: &tensor::Generic) -> LoopsSchedule {
    let rows = tensor::schedule::softmax_rows(g).unwrap();
    let shuffle = |rng: &mut Rng, v: &mut Vec<IndexId>| {
        for k in (1..v.len()).rev() {
            v.swap(k, rng.below(k + 1));
        }
    };
    let mut row_order = rows.clone();
    shuffle(rng, &mut row_order);
    let mut axes: Vec<IndexId> = (0..g.indices.len())
        .map(|k| IndexId(k as u32))
        .filter(|i| !rows.contains(i))
        .collect();
    shuffle(rng, &mut axes);
    let lanes = (16 / g.dtype.size_bytes()) as u64;
    let vector = match axes.last() {
        Some(&v) if rng.below(4) != 0 => Some((v, lanes)),
        _ => None,
    };
    let mut unroll = Vec::new();
    for &i in row_order.iter().chain(&axes) {
        if rng.below(2) == 0 {
            // Up to the cost model's 16 vectors per step (64 f32 elements: the sizes 63 and
            // 65 straddle it).
            unroll.push((i, [1, 2, 3, 4, 8, 16][rng.below(6)]));
        }
    }
    let parallel = rows.iter().copied().filter(|_| rng.below(2) == 0).collect();
    LoopsSchedule {
        order: Some(row_order.into_iter().chain(axes).collect()),
        vector: Some(vector),
        unroll: Some(unroll),
        parallel: Some(parallel),
    }
}

/// Inputs: uniform in ±`scale`, with about one entry in `masked` set to -inf (0 for none),
/// and, when `masked`, the first row of the first axis entirely -inf.
fn random_input(rng: &mut Rng, dtype: DType, shape: &[usize], scale: f64, masked: usize) -> Array {
    let n = element_count(shape).unwrap();
    let mut vals: Vec<f64> = (0..n)
        .map(|_| {
            if masked > 0 && rng.below(masked) == 0 {
                f64::NEG_INFINITY
            } else {
                rng.uniform(-scale, scale)
            }
        })
        .collect();
    if masked > 0 {
        let row: usize = shape.iter().skip(1).product();
        for v in vals.iter_mut().take(row) {
            *v = f64::NEG_INFINITY;
        }
    }
    let buffer = match dtype {
        DType::F32 => Buffer::F32(vals.iter().map(|&v| v as f32).collect()),
        _ => Buffer::F64(vals),
    };
    Array::from_buffer(buffer, shape).unwrap()
}

fn close(got: Scalar, want: Scalar) -> bool {
    let ok = |g: f64, w: f64, tol: f64| {
        (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs())
    };
    match (got, want) {
        (Scalar::F32(g), Scalar::F32(w)) => ok(f64::from(g), f64::from(w), 1e-5),
        (Scalar::F64(g), Scalar::F64(w)) => ok(g, w, 1e-12),
        _ => got == want,
    }
}

fn assert_same(what: &str, got: &[Array], want: &[Array]) {
    for (n, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.shape(), w.shape(), "{what}: output {n}: shape");
        for_each_index(w.shape(), |idx| {
            let (a, b) = (g.get(idx), w.get(idx));
            assert!(
                close(a, b),
                "{what}: output {n} at {idx:?}: got {a:?}, want {b:?}"
            );
        });
    }
}

fn check(what: &str, m: &tensor::Module, case: &Case, dtype: DType, rng: &mut Rng) {
    tensor::verify::verify_module(m).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let lowered = crate::lower::lower_module(m).unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = printer::print_module(&lowered);
    if let Err(e) = verify::verify_module(&lowered) {
        panic!("{what}: the lowered IR does not verify: {e:?}\n{text}");
    }
    let has_exp = lowered.funcs[0]
        .buffers
        .iter()
        .any(|b| b.name == "P.exp" && b.kind == BufferKind::Temp);
    assert_eq!(
        has_exp,
        case.escapes.contains(&"exp"),
        "{what}: P.exp\n{text}"
    );
    let program = Program::from_module(m.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let kernel = program.kernel("f").unwrap();
    for (size, scale, masked) in SIZES.iter().map(|&s| (s, 3.0, 0)).chain([
        (9, 1e4, 0),
        (17, 1e4, 4),
        (8, 2.0, 3),
        (33, 1e4, 5),
    ]) {
        let shape: Vec<usize> = [size, size + 1, 3][..case.rank].to_vec();
        let x = random_input(rng, dtype, &shape, scale, masked);
        let want =
            interp::run(m, "f", std::slice::from_ref(&x)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = eval::run_function(&lowered, &lowered.funcs[0], std::slice::from_ref(&x))
            .unwrap_or_else(|e| panic!("{what}, size {size}: {e}\n{text}"));
        let at = format!("{what}, size {size}, scale {scale}, masked {masked}\n{text}");
        assert_same(&format!("evaluator: {at}"), &got, &want);
        let jit = kernel
            .run(&[TensorRef::from_array(&x)])
            .unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_same(&format!("JIT: {at}"), &jit, &want);
    }
}

#[test]
fn random_softmax_schedules_agree_with_the_interpreter() {
    let mut rng = Rng::new(0x050f_73a8);
    for case in CASES {
        for dtype in [DType::F32, DType::F64] {
            for round in 0..4 {
                let text = module_text(case, dtype, round % 2 == 0);
                let mut m = tensor::parser::parse_module(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", case.name));
                let g = div_op(&mut m);
                let s = random_schedule(&mut rng, g);
                g.schedule = Some(Schedule::Softmax(s));
                let shown = tensor::printer::print_module(&m);
                let what = format!("{} ({dtype}, round {round})\n{shown}", case.name);
                check(&what, &m, case, dtype, &mut rng);
            }
        }
    }
}

#[test]
fn a_row_softmax_makes_three_passes_and_stores_only_p() {
    // The maximum pass reads vectors from the contiguous `%S`; the passes writing `P` run in
    // scalars, since `P` is a strided argument, and the scaling pass reads back what the
    // exponential pass wrote.
    let text = "\
dims M = 2, N = 6
func @f(%X: f32[M, N]) -> (P: f32[M, N]) {
  %S = generic (i: M, j: N) ins(%X[i, j]) -> [i, j] { %0 } : f32
  %P.max = generic (i: M, j: N) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : f32
  %P.exp = generic (i: M, j: N) ins(%S[i, j], %P.max[i]) -> [i, j] { exp(sub(%0, %1)) } : f32
  %P.sum = generic (i: M, j: N) ins(%P.exp[i, j]) -> [i] reduce add over (j) { %0 } : f32
  %P.1 = generic (i: M, j: N) ins(%P.exp[i, j], %P.sum[i]) -> [i, j] { div(%0, %1) } : f32
    schedule softmax(order=[i, j], vector=[j:4], unroll=[], parallel=[i])
  return P = %P.1
}
";
    let m = tensor::parser::parse_module(text).unwrap();
    let lowered = crate::lower::lower_module(&m).unwrap();
    let expected = "\
dims M = 2, N = 6

func @f(%X: in f32[M, N] strided, %P: out f32[M, N] strided) {
  buffer %S: f32[M, N] contiguous
  %c0 = index 0
  %c2 = index 2
  %c6 = index 6
  %cst0 = const -inf:f32
  %c4 = index 4
  %cst1 = const 0.0:f32
  for %i = %c0 to %c2 step 1 parallel {
    for %j = %c0 to %c6 step 1 parallel {
      %ld0 = load %X[%i, %j] : f32
      store %ld0, %S[%i, %j]
    }
  }
  %v0 = splat %cst0 : vector<4xf32>
  for %i.1 = %c0 to %c2 step 1 parallel {
    %red0 = for %j.1 = %c0 to %c4 step 4 iter(%acc0 = %v0) {
      %ld1 = load %S[%i.1, %j.1] : vector<4xf32>
      %v1 = max %acc0, %ld1 : vector<4xf32>
      yield %v1
    }
    %red1 = for %j.2 = %c4 to %c6 step 1 iter(%acc1 = %cst0) {
      %ld2 = load %S[%i.1, %j.2] : f32
      %v2 = max %acc1, %ld2 : f32
      yield %v2
    }
    %v3 = reduce_lanes max %red0 : f32
    %v4 = max %v3, %red1 : f32
    %red2 = for %j.3 = %c0 to %c6 step 1 iter(%acc2 = %cst1) {
      %ld3 = load %S[%i.1, %j.3] : f32
      %v5 = sub %ld3, %v4 : f32
      %v6 = exp %v5 : f32
      store %v6, %P[%i.1, %j.3]
      %v7 = add %acc2, %v6 : f32
      yield %v7
    }
    for %j.4 = %c0 to %c6 step 1 {
      %ld4 = load %P[%i.1, %j.4] : f32
      %v8 = div %ld4, %red2 : f32
      store %v8, %P[%i.1, %j.4]
    }
  }
}
";
    // The general function (the kernel's contiguous variant follows it).
    let general = crate::ir::loops::Module {
        dims: lowered.dims.clone(),
        funcs: vec![lowered.funcs[0].clone()],
    };
    assert_eq!(printer::print_module(&general), expected);
    // In the contiguous variant `P` has a unit stride: every pass runs in vectors.
    let variant = printer::print_function(&lowered.funcs[1]);
    for pass in [
        "store %v8, %P[%i.1, %j.3]",
        "%ld5 = load %P[%i.1, %j.5] : vector<4xf32>",
        "store %v16, %P[%i.1, %j.5]",
    ] {
        assert!(variant.contains(pass), "{pass}\n{variant}");
    }
}

#[test]
fn a_softmax_schedule_outside_a_group_is_an_error() {
    let text = "\
dims M, N
func @f(%E: f32[M, N], %Z: f32[M]) -> (P: f32[M, N]) {
  %P = generic (i: M, j: N) ins(%E[i, j], %Z[i]) -> [i, j] { div(%0, %1) } : f32
    schedule softmax(order=[i, j], vector=[], unroll=[], parallel=[])
  return P = %P
}
";
    let m = tensor::parser::parse_module(text).unwrap();
    assert_eq!(
        crate::lower::lower_module(&m).unwrap_err().to_string(),
        "cannot lower @f: the op defining %P: a `softmax` schedule belongs on the division of a \
         row-softmax group"
    );
}
