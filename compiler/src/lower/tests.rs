//! Unit tests of the lowering: every lowered function verifies and computes, in the loop-level
//! evaluator, what the tensor interpreter computes on random inputs in C order, Fortran order
//! and padded strided layouts; golden texts pin the shape of the nests; malformed tensor IR
//! gives errors, not panics.

use super::lower_module;
use crate::interp;
use crate::ir::loops::{self, eval, printer, verify, BufferKind, Inst, Op};
use crate::ir::tensor::{self, parser::parse_module, Extent};
use crate::rng::Rng;
use einc_runtime::array::{c_strides, element_count, for_each_index};
use einc_runtime::{Array, Buffer, DType, Scalar};
use std::collections::HashMap;
use std::path::Path;

/// Random test values: floats in [-2, 2); integers in [-6, 6], small so products stay exact,
/// with negatives and zeros so that signs and division by zero are exercised.
fn random_buffer(rng: &mut Rng, dtype: DType, len: usize) -> Buffer {
    let int = |rng: &mut Rng| rng.below(13) as i64 - 6;
    match dtype {
        DType::F32 => Buffer::F32((0..len).map(|_| rng.uniform(-2.0, 2.0) as f32).collect()),
        DType::F64 => Buffer::F64((0..len).map(|_| rng.uniform(-2.0, 2.0)).collect()),
        DType::I32 => Buffer::I32((0..len).map(|_| int(rng) as i32).collect()),
        DType::I64 => Buffer::I64((0..len).map(|_| int(rng)).collect()),
    }
}

/// How a test input is laid out in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    C,
    Fortran,
    /// Every stride doubled and an offset of 3: gaps between and before the elements.
    Padded,
}

const LAYOUTS: [Layout; 3] = [Layout::C, Layout::Fortran, Layout::Padded];

fn random_array(rng: &mut Rng, dtype: DType, shape: &[usize], layout: Layout) -> Array {
    let n = element_count(shape).unwrap();
    match layout {
        Layout::C => Array::from_buffer(random_buffer(rng, dtype, n), shape).unwrap(),
        Layout::Fortran => {
            let mut strides = Vec::with_capacity(shape.len());
            let mut acc = 1;
            for &e in shape {
                strides.push(acc);
                acc *= e.max(1);
            }
            Array::with_layout(random_buffer(rng, dtype, n), shape, &strides, 0).unwrap()
        }
        Layout::Padded => {
            let strides: Vec<usize> = c_strides(shape).unwrap().iter().map(|s| 2 * s).collect();
            Array::with_layout(random_buffer(rng, dtype, 2 * n + 3), shape, &strides, 3).unwrap()
        }
    }
}

fn extent_size(m: &tensor::Module, e: &Extent, dims: &HashMap<String, usize>) -> usize {
    match e {
        Extent::Fixed(n) => *n as usize,
        Extent::Dim(name) => match m.dim_value(name) {
            Some(n) => n as usize,
            None => *dims
                .get(name)
                .unwrap_or_else(|| panic!("the test binds no size to dim `{name}`")),
        },
    }
}

/// Floats agree when both are NaN, equal (infinities included), or within a relative `tol`
/// (the lowering fuses multiply-adds, which rounds once where the interpreter rounds twice).
fn close(got: f64, want: f64, tol: f64) -> bool {
    (got.is_nan() && want.is_nan()) || got == want || (got - want).abs() <= tol * (1.0 + want.abs())
}

fn assert_same(what: &str, got: &Array, want: &Array) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for_each_index(want.shape(), |idx| {
        let (g, w) = (got.get(idx), want.get(idx));
        let ok = match (g, w) {
            (Scalar::F32(g), Scalar::F32(w)) => close(f64::from(g), f64::from(w), 1e-4),
            (Scalar::F64(g), Scalar::F64(w)) => close(g, w, 1e-11),
            _ => g == w,
        };
        assert!(
            ok,
            "{what} at {idx:?}: lowered code gives {g:?}, the interpreter {w:?}"
        );
    });
}

/// Lowers `m`, verifies the result, and runs every function in both the interpreter and the
/// loop evaluator on random inputs (dims bound as given), once per input layout rotation.
fn check_module(m: &tensor::Module, dims: &[(&str, usize)], seed: u64) -> loops::Module {
    if let Err(e) = tensor::verify::verify_module(m) {
        panic!("the test's tensor IR does not verify: {e:?}");
    }
    let lowered = lower_module(m).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = verify::verify_module(&lowered) {
        panic!(
            "lowered IR does not verify: {e:?}\n{}",
            printer::print_module(&lowered)
        );
    }
    let text = printer::print_module(&lowered);
    let reparsed = loops::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        printer::print_module(&reparsed),
        text,
        "printing does not round-trip"
    );
    let dims: HashMap<String, usize> = dims.iter().map(|&(d, n)| (d.to_string(), n)).collect();
    let mut rng = Rng::new(seed);
    for (f, lf) in m.funcs.iter().zip(lowered.kernels()) {
        for rotation in 0..LAYOUTS.len() {
            let inputs: Vec<Array> = f
                .params
                .iter()
                .enumerate()
                .map(|(k, &p)| {
                    let ty = &f.value(p).ty;
                    let shape: Vec<usize> =
                        ty.shape.iter().map(|e| extent_size(m, e, &dims)).collect();
                    let layout = LAYOUTS[(k + rotation) % LAYOUTS.len()];
                    random_array(&mut rng, ty.dtype, &shape, layout)
                })
                .collect();
            let want = interp::run_function(m, f, &inputs)
                .unwrap_or_else(|e| panic!("@{}: interpreter: {e}", f.name));
            let got = eval::run_function(&lowered, lf, &inputs)
                .unwrap_or_else(|e| panic!("@{}: {e}\n{}", f.name, printer::print_function(lf)));
            assert_eq!(got.len(), want.len(), "@{}: number of outputs", f.name);
            for (n, (g, w)) in got.iter().zip(&want).enumerate() {
                let what = format!("@{} output {n} (rotation {rotation})", f.name);
                assert_same(&what, g, w);
            }
        }
    }
    lowered
}

fn parse(text: &str) -> tensor::Module {
    parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Checks `text` with every symbolic dim bound to each of the given size sets.
fn check_text(text: &str, size_sets: &[&[(&str, usize)]]) {
    let m = parse(text);
    for (n, dims) in size_sets.iter().enumerate() {
        check_module(&m, dims, 0x9E37_79B9_7F4A_7C15 ^ n as u64);
    }
}

#[test]
fn every_example_agrees_with_the_interpreter() {
    for path in crate::testkit::files::example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let (m, diags) = crate::sema::compile_source(&text);
        let m = m.unwrap_or_else(|| panic!("{}: {diags:#?}", path.display()));
        // Distinct sizes per dim, so that a transposed loop or map cannot go unnoticed.
        let sizes: Vec<(&str, usize)> = m
            .dims
            .iter()
            .filter(|d| d.value.is_none())
            .zip(2..)
            .map(|(d, n)| (d.name.as_str(), n))
            .collect();
        check_module(&m, &sizes, 7);
    }
}

#[test]
fn the_expression_filetest_agrees_including_empty_extents() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filetests/tensor/exprs.tir");
    let text = std::fs::read_to_string(path).unwrap();
    check_text(
        &text,
        &[
            &[("M", 3), ("weird dim", 4)],
            &[("M", 0), ("weird dim", 0)],
            &[("M", 1), ("weird dim", 1)],
        ],
    );
}

#[test]
fn every_unary_and_binary_function_in_every_dtype() {
    let mut text = String::from("dims N\n");
    for dtype in ["f32", "f64"] {
        text += &format!(
            "func @float_{dtype}(%A: {dtype}[N], %B: {dtype}[N]) -> (U: {dtype}[N], V: {dtype}[N]) {{
  %U = generic (i: N) ins(%A[i]) -> [i] {{ add(add(add(neg(%0), abs(%0)), add(exp(%0), log(abs(%0)))), add(add(sqrt(abs(%0)), rsqrt(abs(%0))), add(add(tanh(%0), sigmoid(%0)), relu(%0)))) }} : {dtype}
  %V = generic (i: N) ins(%A[i], %B[i]) -> [i] {{ add(add(add(sub(%0, %1), mul(%0, %1)), div(%0, %1)), add(add(max(%0, %1), min(%0, %1)), pow(abs(%0), %1))) }} : {dtype}
  return U = %U, V = %V
}}
"
        );
    }
    for dtype in ["i32", "i64"] {
        text += &format!(
            "func @int_{dtype}(%A: {dtype}[N], %B: {dtype}[N]) -> (U: {dtype}[N], V: {dtype}[N]) {{
  %U = generic (i: N) ins(%A[i]) -> [i] {{ add(add(neg(%0), abs(%0)), relu(%0)) }} : {dtype}
  %V = generic (i: N) ins(%A[i], %B[i]) -> [i] {{ add(add(add(sub(%0, %1), mul(%0, %1)), div(%0, %1)), add(max(%0, %1), min(%0, %1))) }} : {dtype}
  return U = %U, V = %V
}}
"
        );
    }
    check_text(&text, &[&[("N", 7)], &[("N", 0)]]);
}

#[test]
fn every_reduction_kind_in_every_dtype_including_empty_ones() {
    let mut text = String::from("dims M, N\n");
    for dtype in ["f32", "f64", "i32", "i64"] {
        for kind in ["add", "mul", "max", "min"] {
            text += &format!(
                "func @{kind}_{dtype}(%A: {dtype}[M, N], %B: {dtype}[N]) -> (R: {dtype}[M], All: {dtype}, Prod: {dtype}[M]) {{
  %R = generic (i: M, j: N) ins(%A[i, j]) -> [i] reduce {kind} over (j) {{ %0 }} : {dtype}
  %All = generic (i: M, j: N) ins(%A[i, j]) -> [] reduce {kind} over (j, i) {{ %0 }} : {dtype}
  %Prod = generic (i: M, j: N) ins(%A[i, j], %B[j]) -> [i] reduce {kind} over (j) {{ mul(%0, %1) }} : {dtype}
  return R = %R, All = %All, Prod = %Prod
}}
"
            );
        }
    }
    check_text(
        &text,
        &[
            &[("M", 3), ("N", 4)],
            &[("M", 3), ("N", 0)],
            &[("M", 0), ("N", 2)],
            &[("M", 1), ("N", 1)],
        ],
    );
}

#[test]
fn maps_with_fixed_positions_diagonals_and_broadcasting() {
    let text = "dims N, M, F = 3
func @maps(%A: f32[F, N], %S: f32[M, N], %D: f32[N, N], %E: f32[N, M, N], %x: f32[1]) -> (Row: f32[N], Sym: f32[N], Diag: f32[N], Tr: f32, Diag3: f32[M, N], B: f32[N, N]) {
  %Row = generic (j: N) ins(%A[2, j], %x[0]) -> [j] { add(%0, %1) } : f32
  %Sym = generic (j: N) ins(%S[1, j]) -> [j] { %0 } : f32
  %Diag = generic (i: N) ins(%D[i, i]) -> [i] { %0 } : f32
  %Tr = generic (i: N) ins(%D[i, i]) -> [] reduce add over (i) { %0 } : f32
  %Diag3 = generic (m: M, i: N) ins(%E[i, m, i]) -> [m, i] { %0 } : f32
  %B = generic (i: N, j: N) ins(%x[0], %Row[j], %Diag[i]) -> [i, j] { mul(%0, sub(%1, %2)) } : f32
  return Row = %Row, Sym = %Sym, Diag = %Diag, Tr = %Tr, Diag3 = %Diag3, B = %B
}
";
    check_text(text, &[&[("N", 4), ("M", 2)], &[("N", 0), ("M", 2)]]);
}

#[test]
fn rank_0_values_and_outputs_that_are_parameters_or_repeated() {
    let text = "dims N
func @scalars(%s: f64, %v: f64[N]) -> (Sq: f64, Again: f64, Same: f64, Scaled: f64[N], Copy: f64[N], Sum: f64) {
  %Sq = generic () ins(%s[]) -> [] { mul(%0, %0) } : f64
  %Scaled = generic (i: N) ins(%v[i], %Sq[]) -> [i] { mul(%0, %1) } : f64
  %Sum = generic (i: N) ins(%Scaled[i], %Sq[]) -> [] reduce add over (i) { add(%0, %1) } : f64
  return Sq = %Sq, Again = %Sq, Same = %s, Scaled = %Scaled, Copy = %v, Sum = %Sum
}

func @identity(%X: i32[N, N]) -> (Y: i32[N, N], X: i32[N, N]) {
  return Y = %X, X = %X
}
";
    let m = parse(text);
    let lowered = check_module(&m, &[("N", 5)], 3);
    check_module(&m, &[("N", 0)], 4);
    // The returned op values are computed into their outputs: no temporaries at all.
    let scalars = &lowered.funcs[0];
    assert!(
        scalars.buffers.iter().all(|b| b.kind != BufferKind::Temp),
        "{}",
        printer::print_function(scalars)
    );
}

#[test]
fn index_dim_delta_eps_select_and_cast_values() {
    let text = "dims N, E = 3, F = 4
func @indices(%A: f32[N, N]) -> (Ix: i64[N, N], Dv: f32[N], D2: f32[N, N], D3: i32[N, N, N], Sel: f32[N, N], Cs: i32[N, N]) {
  %Ix = generic (i: N, j: N) ins() -> [i, j] { add(mul(i, 10:i64), j) } : i64
  %Dv = generic (i: N) ins() -> [i] { div(cast<f32>(i), dim(N):f32) } : f32
  %D2 = generic (i: N, j: N) ins(%A[i, j]) -> [i, j] { mul(%0, delta<f32>(i, j)) } : f32
  %D3 = generic (i: N, j: N, k: N) ins() -> [i, j, k] { delta<i32>(i, k, j) } : i32
  %Sel = generic (i: N, j: N) ins(%A[i, j]) -> [i, j] { select(or(and(le(j, i), not(eq(%0, 0.5:f32))), gt(i, 2:i64)), %0, -inf:f32) } : f32
  %Cs = generic (i: N, j: N) ins(%A[i, j]) -> [i, j] { add(cast<i32>(mul(%0, 10.0:f32)), cast<i32>(cast<f64>(j))) } : i32
  return Ix = %Ix, Dv = %Dv, D2 = %D2, D3 = %D3, Sel = %Sel, Cs = %Cs
}

func @levi_civita() -> (E3: f64[E, E, E], E4: i64[F, F, F, F], E1: f32) {
  %E3 = generic (i: E, j: E, k: E) ins() -> [i, j, k] { eps<f64>(i, j, k) } : f64
  %E4 = generic (a: F, b: F, c: F, d: F) ins() -> [a, b, c, d] { eps<i64>(a, b, c, d) } : i64
  %E1 = generic (i: 1) ins() -> [] reduce add over (i) { eps<f32>(i) } : f32
  return E3 = %E3, E4 = %E4, E1 = %E1
}
";
    check_text(text, &[&[("N", 4)], &[("N", 1)]]);
    // The symbol itself, independently of the interpreter: even and odd permutations.
    let m = parse(text);
    let lowered = lower_module(&m).unwrap();
    let e3 = &eval::run_function(&lowered, &lowered.funcs[1], &[]).unwrap()[0];
    assert_eq!(e3.get(&[0, 1, 2]), Scalar::F64(1.0));
    assert_eq!(e3.get(&[1, 2, 0]), Scalar::F64(1.0));
    assert_eq!(e3.get(&[1, 0, 2]), Scalar::F64(-1.0));
    assert_eq!(e3.get(&[2, 1, 0]), Scalar::F64(-1.0));
    assert_eq!(e3.get(&[0, 0, 2]), Scalar::F64(0.0));
}

/// The body of the only loop in `insts` (asserting there is exactly one).
fn only_loop(insts: &[Inst]) -> &loops::For {
    let loops: Vec<&loops::For> = insts
        .iter()
        .filter_map(|i| match i {
            Inst::For(f) => Some(&**f),
            _ => None,
        })
        .collect();
    assert_eq!(loops.len(), 1, "{insts:#?}");
    loops[0]
}

#[test]
fn loads_and_arithmetic_are_placed_outside_the_loops_they_do_not_depend_on() {
    let m = parse(
        "dims T
func @shift(%S: f32[T, T], %m: f32[T]) -> (P: f32[T, T]) {
  %P = generic (i: T, j: T) ins(%S[i, j], %m[i]) -> [i, j] { exp(sub(%0, mul(%1, 2.0:f32))) } : f32
  return P = %P
}
",
    );
    let lowered = lower_module(&m).unwrap();
    let f = &lowered.funcs[0];
    let outer = only_loop(&f.body.insts);
    let loads_in = |insts: &[Inst]| -> Vec<String> {
        insts
            .iter()
            .filter_map(|i| match i {
                Inst::Assign {
                    op: Op::Load { buffer, .. },
                    ..
                } => Some(f.buffers[buffer.0 as usize].name.clone()),
                _ => None,
            })
            .collect()
    };
    // `m[i] * 2` depends on `i` only: once per row, before the `j` loop.
    assert_eq!(loads_in(&outer.body.insts), ["m"]);
    assert_eq!(outer.body.insts.len(), 3, "{}", printer::print_function(f));
    let inner = only_loop(&outer.body.insts);
    assert_eq!(loads_in(&inner.body.insts), ["S"]);
}

#[test]
fn constants_and_dims_are_defined_once_at_the_entry() {
    let m = parse(
        "dims N, K = 5
func @f(%A: f32[N, K], %B: f32[K, N]) -> (C: f32[N, N], D: f32[N]) {
  %C = generic (i: N, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %D = generic (i: N, k: K) ins(%A[i, k], %C[i, i]) -> [i] reduce add over (k) { mul(mul(%0, %1), 0.0:f32) } : f32
  return C = %C, D = %D
}
",
    );
    let lowered = check_module(&m, &[("N", 3)], 11);
    let f = &lowered.funcs[0];
    let entry: Vec<&Op> = f
        .body
        .insts
        .iter()
        .map_while(|i| match i {
            Inst::Assign { op, .. } => Some(op),
            _ => None,
        })
        .collect();
    // 0, the fixed dim K = 5, the symbolic dim N and the one constant 0.0 (the literal and
    // the identity of both sums): each once.
    assert_eq!(entry.len(), 4, "{}", printer::print_function(f));
    assert!(entry.contains(&&Op::IndexConst(0)));
    assert!(entry.contains(&&Op::IndexConst(5)));
    assert!(entry.contains(&&Op::Dim("N".to_string())));
    assert!(entry.contains(&&Op::Const(Scalar::F32(0.0))));
    assert_eq!(f.body.insts.len(), entry.len() + 2);
}

#[test]
fn a_matmul_lowers_to_the_textbook_nest() {
    let m = parse(
        "dims M, K, N
func @matmul(%A: f32[M, K], %B: f32[K, N]) -> (C: f32[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  return C = %C
}
",
    );
    let lowered = check_module(&m, &[("M", 3), ("K", 4), ("N", 2)], 5);
    let expected = "\
dims M, K, N

func @matmul(%A: in f32[M, K] strided, %B: in f32[K, N] strided, %C: out f32[M, N] strided) {
  %c0 = index 0
  %M = dim M
  %N = dim N
  %cst0 = const 0.0:f32
  %K = dim K
  for %i = %c0 to %M step 1 parallel {
    for %j = %c0 to %N step 1 parallel {
      %red0 = for %k = %c0 to %K step 1 iter(%acc0 = %cst0) {
        %ld0 = load %A[%i, %k] : f32
        %ld1 = load %B[%k, %j] : f32
        %v0 = fma %ld0, %ld1, %acc0 : f32
        yield %v0
      }
      store %red0, %C[%i, %j]
    }
  }
}
";
    assert_eq!(printer::print_module(&lowered), expected);
}

#[test]
fn a_softmax_row_max_lowers_to_a_max_reduction_from_minus_infinity() {
    let m = parse(
        "dims T
func @rowmax(%S: f32[T, T]) -> (m: f32[T]) {
  %m = generic (i: T, j: T) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : f32
  return m = %m
}
",
    );
    let lowered = check_module(&m, &[("T", 4)], 6);
    let expected = "\
dims T

func @rowmax(%S: in f32[T, T] strided, %m: out f32[T] strided) {
  %c0 = index 0
  %T = dim T
  %cst0 = const -inf:f32
  for %i = %c0 to %T step 1 parallel {
    %red0 = for %j = %c0 to %T step 1 iter(%acc0 = %cst0) {
      %ld0 = load %S[%i, %j] : f32
      %v0 = max %acc0, %ld0 : f32
      yield %v0
    }
    store %red0, %m[%i]
  }
}
";
    assert_eq!(printer::print_module(&lowered), expected);
}

#[test]
fn temporaries_two_reduction_loops_and_a_parameter_output() {
    let m = parse(
        "dims N
func @f(%A: i32[N, N, 2]) -> (s: i32, A: i32[N, N, 2]) {
  %t = generic (i: N, j: N) ins(%A[i, j, 1]) -> [i] reduce mul over (j) { %0 } : i32
  %s = generic (i: N, k: 2) ins(%t[i], %A[i, i, k]) -> [] reduce min over (i, k) { add(%0, %1) } : i32
  return s = %s, A = %A
}
",
    );
    let lowered = check_module(&m, &[("N", 3)], 8);
    let expected = "\
dims N

func @f(%A: in i32[N, N, 2] strided, %s: out i32[] strided, %A.1: out i32[N, N, 2] strided) {
  buffer %t: i32[N] contiguous
  %c0 = index 0
  %N = dim N
  %cst0 = const 1:i32
  %c1 = index 1
  %cst1 = const 2147483647:i32
  %c2 = index 2
  for %i = %c0 to %N step 1 parallel {
    %red0 = for %j = %c0 to %N step 1 iter(%acc0 = %cst0) {
      %ld0 = load %A[%i, %j, %c1] : i32
      %v0 = mul %acc0, %ld0 : i32
      yield %v0
    }
    store %red0, %t[%i]
  }
  %red1 = for %i.1 = %c0 to %N step 1 iter(%acc1 = %cst1) {
    %ld1 = load %t[%i.1] : i32
    %red2 = for %k = %c0 to %c2 step 1 iter(%acc2 = %acc1) {
      %ld2 = load %A[%i.1, %i.1, %k] : i32
      %v1 = add %ld1, %ld2 : i32
      %v2 = min %acc2, %v1 : i32
      yield %v2
    }
    yield %red2
  }
  store %red1, %s[]
  for %i0 = %c0 to %N step 1 parallel {
    for %i1 = %c0 to %N step 1 parallel {
      for %i2 = %c0 to %c2 step 1 parallel {
        %ld3 = load %A[%i0, %i1, %i2] : i32
        store %ld3, %A.1[%i0, %i1, %i2]
      }
    }
  }
}
";
    assert_eq!(printer::print_module(&lowered), expected);
}

/// A module with one function and one op, for error tests (built by parsing, then broken).
fn one_op(text: &str) -> tensor::Module {
    parse(&format!(
        "dims N\nfunc @f(%A: f32[N, N]) -> (B: f32[N]) {{\n  {text}\n  return B = %B\n}}\n"
    ))
}

#[test]
fn malformed_tensor_ir_is_an_error_not_a_panic() {
    let neither = one_op("%B = generic (i: N, j: N) ins(%A[i, j]) -> [i] { %0 } : f32");
    let e = lower_module(&neither).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot lower @f: the op defining %B: index `j` is neither an output index nor reduced"
    );

    let mut missing_input = one_op("%B = generic (i: N) ins(%A[i, i]) -> [i] { %0 } : f32");
    let tensor::OpKind::Generic(g) = &mut missing_input.funcs[0].ops[0].kind;
    g.body = tensor::Expr::Input(3);
    let e = lower_module(&missing_input).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot lower @f: the op defining %B: the body reads input %3, which is missing"
    );

    let mut undeclared = one_op("%B = generic (i: N) ins(%A[i, i]) -> [i] { %0 } : f32");
    undeclared.dims.clear();
    let e = lower_module(&undeclared).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot lower @f: the op defining %B: dim `N` is not declared by the module"
    );

    let mut dangling = one_op("%B = generic (i: N) ins(%A[i, i]) -> [i] { %0 } : f32");
    dangling.funcs[0].results[0].value = tensor::ValueId(9);
    assert!(lower_module(&dangling).is_err());

    let mut ill_typed = one_op("%B = generic (i: N) ins(%A[i, i]) -> [i] { %0 } : f32");
    let tensor::OpKind::Generic(g) = &mut ill_typed.funcs[0].ops[0].kind;
    g.body = tensor::Expr::Lit(Scalar::I32(1));
    g.dtype = DType::F32;
    assert!(lower_module(&ill_typed).is_err());
}
