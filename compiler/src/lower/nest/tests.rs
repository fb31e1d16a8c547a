//! Scheduled nests: random legal `loops` schedules (order, vector, unroll, parallel) on maps and
//! reductions of every dtype, at extents around the vector and unroll boundaries, compute in the
//! loop evaluator and through the JIT what the interpreter computes; golden texts pin the shape
//! of a vectorised, unrolled nest.

use crate::api::{Program, TensorRef};
use crate::interp;
use crate::ir::loops::{self, eval, printer, verify, Inst, Op};
use crate::ir::tensor::schedule::{LoopsSchedule, Schedule};
use crate::ir::tensor::{self, IndexId, OpKind};
use crate::rng::Rng;
use einc_runtime::array::{element_count, for_each_index};
use einc_runtime::{Array, Buffer, DType, Scalar};

/// Extents around the vector (4 and 2 lanes) and unroll (up to 4) boundaries.
const SIZES: [usize; 12] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 17, 33];

/// An op to schedule, as a function of `%f` whose op `%r` gets the schedule. `{t}` is the
/// dtype. With `wrapped`, the inputs are first copied into temporaries and `%r` into another
/// one (all contiguous, so vectors are allowed everywhere); otherwise `%r` reads the strided
/// parameters and writes the output directly.
struct Case {
    name: &'static str,
    /// The parameters (`%A: {t}[M, N]`, ...).
    params: &'static [(&'static str, &'static [&'static str])],
    /// The op defining `%r`, reading `%p0`, `%p1`, ... (the parameters or their copies).
    op: &'static str,
    /// The extents of `%r`.
    out: &'static [&'static str],
    floats_only: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "map with a broadcast input",
        params: &[("A", &["M", "N"]), ("x", &["N"])],
        op: "generic (i: M, j: N) ins(%p0[i, j], %p1[j]) -> [i, j] { add(mul(%p0v, %p1v), %p0v) } : {t}",
        out: &["M", "N"],
        floats_only: false,
    },
    Case {
        name: "transcendental map",
        params: &[("A", &["M", "N"])],
        op: "generic (i: M, j: N) ins(%p0[i, j]) -> [i, j] { add(tanh(%p0v), mul(sigmoid(%p0v), exp(%p0v))) } : {t}",
        out: &["M", "N"],
        floats_only: true,
    },
    Case {
        name: "log map",
        params: &[("A", &["M", "N"])],
        op: "generic (i: M, j: N) ins(%p0[i, j]) -> [i, j] { log(add(abs(%p0v), 1:{t})) } : {t}",
        out: &["M", "N"],
        floats_only: true,
    },
    Case {
        name: "matrix-vector product",
        params: &[("A", &["M", "N"]), ("x", &["N"])],
        op: "generic (i: M, j: N) ins(%p0[i, j], %p1[j]) -> [i] reduce add over (j) { mul(%p0v, %p1v) } : {t}",
        out: &["M"],
        floats_only: false,
    },
    Case {
        name: "vector-matrix product (column sums)",
        params: &[("A", &["M", "N"]), ("x", &["M"])],
        op: "generic (i: M, j: N) ins(%p0[i, j], %p1[i]) -> [j] reduce add over (i) { mul(%p0v, %p1v) } : {t}",
        out: &["N"],
        floats_only: false,
    },
    Case {
        name: "full max",
        params: &[("A", &["M", "N"])],
        op: "generic (i: M, j: N) ins(%p0[i, j]) -> [] reduce max over (i, j) { %p0v } : {t}",
        out: &[],
        floats_only: false,
    },
    Case {
        name: "dot product",
        params: &[("x", &["N"]), ("y", &["N"])],
        op: "generic (j: N) ins(%p0[j], %p1[j]) -> [] reduce add over (j) { mul(%p0v, %p1v) } : {t}",
        out: &[],
        floats_only: false,
    },
    Case {
        name: "middle axis min",
        params: &[("A", &["M", "K", "N"])],
        op: "generic (i: M, k: K, j: N) ins(%p0[i, k, j]) -> [i, j] reduce min over (k) { sub(%p0v, 1:{t}) } : {t}",
        out: &["M", "N"],
        floats_only: false,
    },
    Case {
        name: "product over two axes with a cast",
        params: &[("A", &["M", "N"]), ("B", &["K", "N"])],
        op: "generic (i: M, k: K, j: N) ins(%p0[i, j], %p1[k, j]) -> [k] reduce mul over (i, j) { cast<{t}>(cast<i32>(add(%p0v, %p1v))) } : {t}",
        out: &["K"],
        floats_only: false,
    },
    Case {
        name: "select on an outer index and index values",
        params: &[("A", &["M", "N"])],
        op: "generic (i: M, j: N) ins(%p0[i, j]) -> [i, j] { select(lt(i, 2:i64), %p0v, cast<{t}>(add(j, i))) } : {t}",
        out: &["M", "N"],
        floats_only: false,
    },
    Case {
        name: "select on the vector index",
        params: &[("A", &["M", "N"])],
        op: "generic (i: M, j: N) ins(%p0[i, j]) -> [i] reduce add over (j) { select(le(j, i), %p0v, 0:{t}) } : {t}",
        out: &["M"],
        floats_only: false,
    },
];

/// The module of `case` for dtype `t`, its dims fixed to `fixed` when given.
fn module_text(case: &Case, t: DType, wrapped: bool, fixed: Option<&[(&str, usize)]>) -> String {
    let t = t.name();
    let mut dims: Vec<&str> = Vec::new();
    for (_, shape) in case.params {
        for d in *shape {
            if !dims.contains(d) {
                dims.push(d);
            }
        }
    }
    let dims_line: Vec<String> = dims
        .iter()
        .map(
            |d| match fixed.and_then(|f| f.iter().find(|(n, _)| n == d)) {
                Some((_, n)) => format!("{d} = {n}"),
                None => d.to_string(),
            },
        )
        .collect();
    let ty = |shape: &[&str]| {
        if shape.is_empty() {
            t.to_string()
        } else {
            format!("{t}[{}]", shape.join(", "))
        }
    };
    let idx = ["a", "b", "c"];
    let mut ops = Vec::new();
    let mut op = case.op.replace("{t}", t);
    for (k, (name, shape)) in case.params.iter().enumerate() {
        let p = if wrapped {
            let ids: Vec<String> = shape
                .iter()
                .zip(idx)
                .map(|(d, i)| format!("{i}: {d}"))
                .collect();
            let map = idx[..shape.len()].join(", ");
            ops.push(format!(
                "  %c{k} = generic ({}) ins(%{name}[{map}]) -> [{map}] {{ %0 }} : {t}",
                ids.join(", ")
            ));
            format!("%c{k}")
        } else {
            format!("%{name}")
        };
        op = op
            .replace(&format!("%p{k}["), &format!("{p}["))
            .replace(&format!("%p{k}v"), &format!("%{k}"));
    }
    ops.push(format!("  %r = {op}"));
    let result = if wrapped {
        let ids: Vec<String> = case
            .out
            .iter()
            .zip(idx)
            .map(|(d, i)| format!("{i}: {d}"))
            .collect();
        let map = idx[..case.out.len()].join(", ");
        ops.push(format!(
            "  %o = generic ({}) ins(%r[{map}]) -> [{map}] {{ %0 }} : {t}",
            ids.join(", ")
        ));
        "%o"
    } else {
        "%r"
    };
    let params: Vec<String> = case
        .params
        .iter()
        .map(|(n, s)| format!("%{n}: {}", ty(s)))
        .collect();
    format!(
        "dims {}\nfunc @f({}) -> (out: {}) {{\n{}\n  return out = {result}\n}}\n",
        dims_line.join(", "),
        params.join(", "),
        ty(case.out),
        ops.join("\n")
    )
}

fn scheduled_op(m: &mut tensor::Module) -> &mut tensor::Generic {
    let f = &mut m.funcs[0];
    let k = f
        .ops
        .iter()
        .position(|op| f.values[op.result.0 as usize].name == "r")
        .expect("the case defines %r");
    let OpKind::Generic(g) = &mut f.ops[k].kind;
    g
}

/// A random legal `loops` schedule for `g`.
fn random_schedule(rng: &mut Rng, g: &tensor::Generic) -> LoopsSchedule {
    let n = g.indices.len();
    let mut order: Vec<IndexId> = (0..n).map(|k| IndexId(k as u32)).collect();
    for k in (1..n).rev() {
        order.swap(k, rng.below(k + 1));
    }
    let lanes = (16 / g.dtype.size_bytes()) as u64;
    let vector = match order.last() {
        Some(&v) if rng.below(4) != 0 => Some((v, lanes)),
        _ => None,
    };
    let mut unroll = Vec::new();
    for &i in &order {
        if rng.below(3) == 0 {
            unroll.push((i, 1 + rng.below(4) as u64));
        }
    }
    let parallel = g
        .output
        .iter()
        .copied()
        .filter(|_| rng.below(2) == 0)
        .collect();
    LoopsSchedule {
        order: Some(order),
        vector: Some(vector),
        unroll: Some(unroll),
        parallel: Some(parallel),
    }
}

fn random_array(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Array {
    let n = element_count(shape).unwrap();
    let buffer = match dtype {
        // Products of up to 66 factors stay finite; sums of a few hundred stay exact enough.
        DType::F32 => Buffer::F32((0..n).map(|_| rng.uniform(0.5, 1.5) as f32).collect()),
        DType::F64 => Buffer::F64((0..n).map(|_| rng.uniform(-2.0, 2.0)).collect()),
        DType::I32 => Buffer::I32((0..n).map(|_| rng.below(7) as i32 - 3).collect()),
        DType::I64 => Buffer::I64((0..n).map(|_| rng.below(7) as i64 - 3).collect()),
    };
    Array::from_buffer(buffer, shape).unwrap()
}

fn close(got: Scalar, want: Scalar) -> bool {
    let rel = |g: f64, w: f64, tol: f64| {
        (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs())
    };
    match (got, want) {
        (Scalar::F32(g), Scalar::F32(w)) => rel(f64::from(g), f64::from(w), 1e-4),
        (Scalar::F64(g), Scalar::F64(w)) => rel(g, w, 1e-11),
        _ => got == want,
    }
}

fn assert_same(what: &str, got: &Array, want: &Array) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for_each_index(want.shape(), |idx| {
        let (g, w) = (got.get(idx), want.get(idx));
        assert!(close(g, w), "{what} at {idx:?}: got {g:?}, want {w:?}");
    });
}

/// The extents of the case's parameters with every dim `size` but `K`, which is 3 (so that
/// three-index ops stay small).
fn shapes(case: &Case, size: usize) -> Vec<Vec<usize>> {
    let ext = |d: &str| if d == "K" { 3 } else { size };
    case.params
        .iter()
        .map(|(_, s)| s.iter().map(|d| ext(d)).collect())
        .collect()
}

/// Lowers `m`, checks the loop IR (verifies, round-trips), then compares the evaluator and the
/// JIT with the interpreter at every size.
fn check_all_sizes(what: &str, m: &tensor::Module, case: &Case, dtype: DType, rng: &mut Rng) {
    tensor::verify::verify_module(m).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let lowered = crate::lower::lower_module(m).unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = printer::print_module(&lowered);
    if let Err(e) = verify::verify_module(&lowered) {
        panic!("{what}: the lowered IR does not verify: {e:?}\n{text}");
    }
    let reparsed = loops::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(printer::print_module(&reparsed), text, "{what}: round trip");
    let program = Program::from_module(m.clone()).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    let kernel = program.kernel("f").unwrap();
    let fixed = m.dims.iter().any(|d| d.value.is_some());
    for &size in if fixed { &SIZES[..1] } else { &SIZES[..] } {
        let size = m
            .dims
            .iter()
            .find_map(|d| d.value)
            .map_or(size, |v| v as usize);
        let inputs: Vec<Array> = shapes(case, size)
            .iter()
            .map(|s| random_array(rng, dtype, s))
            .collect();
        let want = interp::run(m, "f", &inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = eval::run_function(&lowered, &lowered.funcs[0], &inputs)
            .unwrap_or_else(|e| panic!("{what} at size {size}: {e}\n{text}"));
        assert_same(
            &format!("{what}, evaluator, size {size}\n{text}"),
            &got[0],
            &want[0],
        );
        let refs: Vec<TensorRef> = inputs.iter().map(TensorRef::from_array).collect();
        let jit = kernel
            .run(&refs)
            .unwrap_or_else(|e| panic!("{what} at size {size}: {e}"));
        assert_same(
            &format!("{what}, JIT, size {size}\n{text}"),
            &jit[0],
            &want[0],
        );
    }
}

#[test]
fn random_loops_schedules_agree_with_the_interpreter_at_every_size() {
    let mut rng = Rng::new(0x5eed_0009);
    for case in CASES {
        for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
            if case.floats_only && !dtype.is_float() {
                continue;
            }
            for round in 0..6 {
                let wrapped = round % 3 != 2;
                let fixed = (round == 4).then_some(&[("M", 13usize), ("N", 13)][..]);
                let text = module_text(case, dtype, wrapped, fixed);
                let mut m = tensor::parser::parse_module(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", case.name));
                let g = scheduled_op(&mut m);
                let s = random_schedule(&mut rng, g);
                g.schedule = Some(Schedule::Loops(s));
                let shown = crate::ir::tensor::printer::print_module(&m);
                let what = format!("{} ({dtype}, round {round})\n{shown}", case.name);
                check_all_sizes(&what, &m, case, dtype, &mut rng);
            }
        }
    }
}

/// The number of vector loads and stores in `f`.
fn vector_accesses(block: &[Inst]) -> usize {
    block
        .iter()
        .map(|inst| match inst {
            Inst::Assign {
                op: Op::Load { lanes, .. },
                ..
            } => usize::from(*lanes > 1),
            Inst::For(l) => vector_accesses(&l.body.insts),
            Inst::Assign { .. }
            | Inst::Store { .. }
            | Inst::StoreAt { .. }
            | Inst::Scoped(_)
            | Inst::Ukernel(_) => 0,
        })
        .sum()
}

#[test]
fn contiguous_operands_are_vectorised_and_strided_ones_are_not() {
    let case = &CASES[3];
    for (wrapped, want_vectors) in [(true, true), (false, false)] {
        let mut m =
            tensor::parser::parse_module(&module_text(case, DType::F32, wrapped, None)).unwrap();
        let g = scheduled_op(&mut m);
        g.schedule = Some(Schedule::Loops(LoopsSchedule {
            order: Some(vec![IndexId(0), IndexId(1)]),
            vector: Some(Some((IndexId(1), 4))),
            unroll: Some(vec![(IndexId(1), 2)]),
            parallel: Some(vec![IndexId(0)]),
        }));
        let lowered = crate::lower::lower_module(&m).unwrap();
        let n = vector_accesses(&lowered.funcs[0].body.insts);
        assert_eq!(n > 0, want_vectors, "{}", printer::print_module(&lowered));
    }
}

#[test]
fn a_vectorised_unrolled_row_sum_has_a_main_loop_a_vector_loop_and_a_tail() {
    let text = "\
dims M = 3, N = 27
func @f(%A: f32[M, N]) -> (y: f32[M]) {
  %a = generic (i: M, j: N) ins(%A[i, j]) -> [i, j] { %0 } : f32
  %r = generic (i: M, j: N) ins(%a[i, j]) -> [i] reduce add over (j) { %0 } : f32
    schedule loops(order=[i, j], vector=[j:4], unroll=[j:2], parallel=[i])
  return y = %r
}
";
    let m = tensor::parser::parse_module(text).unwrap();
    let lowered = crate::lower::lower_module(&m).unwrap();
    let expected = "\
dims M = 3, N = 27

func @f(%A: in f32[M, N] strided, %y: out f32[M] strided) {
  buffer %a: f32[M, N] contiguous
  %c0 = index 0
  %c3 = index 3
  %c27 = index 27
  %cst0 = const 0.0:f32
  %c24 = index 24
  %c4 = index 4
  for %i = %c0 to %c3 step 1 parallel {
    for %j = %c0 to %c27 step 1 parallel {
      %ld0 = load %A[%i, %j] : f32
      store %ld0, %a[%i, %j]
    }
  }
  %v0 = splat %cst0 : vector<4xf32>
  for %i.1 = %c0 to %c3 step 1 parallel {
    %red0, %red1 = for %j.1 = %c0 to %c24 step 8 iter(%acc0 = %v0, %acc1 = %v0) {
      %v1 = iadd %j.1, %c4
      %ld1 = load %a[%i.1, %j.1] : vector<4xf32>
      %v2 = add %acc0, %ld1 : vector<4xf32>
      %ld2 = load %a[%i.1, %v1] : vector<4xf32>
      %v3 = add %acc1, %ld2 : vector<4xf32>
      yield %v2, %v3
    }
    %red2 = for %j.2 = %c24 to %c27 step 1 iter(%acc2 = %cst0) {
      %ld3 = load %a[%i.1, %j.2] : f32
      %v4 = add %acc2, %ld3 : f32
      yield %v4
    }
    %v5 = add %red0, %red1 : vector<4xf32>
    %v6 = reduce_lanes add %v5 : f32
    %v7 = add %red2, %v6 : f32
    store %v7, %y[%i.1]
  }
}
";
    assert_eq!(printer::print_module(&lowered), expected);
}
