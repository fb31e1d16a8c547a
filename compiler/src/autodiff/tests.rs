//! Tests of the derivation: every derived gradient is compared with central finite
//! differences of the forward function (f64, through the interpreter) and, where the chapter
//! gives a formula, with that formula written as explicit loops here.

use super::{grad_function, GradError};
use crate::interp::run_function;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_function;
use crate::ir::tensor::verify::verify_module;
use crate::ir::tensor::{Extent, Function, Module};
use crate::rng::Rng;
use einc_runtime::array::for_each_index;
use einc_runtime::{Array, Buffer, DType, Scalar};

fn shape_of(m: &Module, f: &Function, v: crate::ir::tensor::ValueId) -> Vec<usize> {
    f.value(v)
        .ty
        .shape
        .iter()
        .map(|e| match e {
            Extent::Fixed(n) => *n as usize,
            Extent::Dim(d) => m.dim_value(d).unwrap() as usize,
        })
        .collect()
}

/// A random array for each parameter of `f` (floats uniform in `range`, integers in 0..3).
fn random_inputs(m: &Module, f: &Function, rng: &mut Rng, range: (f64, f64)) -> Vec<Array> {
    f.params
        .iter()
        .map(|&p| {
            let shape = shape_of(m, f, p);
            let n: usize = shape.iter().product();
            let buffer = match f.value(p).ty.dtype {
                DType::F64 => Buffer::F64((0..n).map(|_| rng.uniform(range.0, range.1)).collect()),
                DType::F32 => Buffer::F32(
                    (0..n)
                        .map(|_| rng.uniform(range.0, range.1) as f32)
                        .collect(),
                ),
                DType::I32 => Buffer::I32((0..n).map(|_| (rng.next_u64() % 3) as i32).collect()),
                DType::I64 => Buffer::I64((0..n).map(|_| (rng.next_u64() % 3) as i64).collect()),
            };
            Array::from_buffer(buffer, &shape).unwrap()
        })
        .collect()
}

fn dot(a: &Array, b: &Array) -> f64 {
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| x * y).sum()
}

/// The derivation of one function, run on random inputs.
struct Derived {
    module: Module,
    grad: Function,
    /// The forward inputs followed by the seeds.
    inputs: Vec<Array>,
    /// One gradient per `wrt` parameter.
    grads: Vec<Array>,
}

/// Parses `text`, derives the gradient of its only function with respect to `wrt`, checks that
/// the derived function verifies, and runs it on random inputs (floats in `range`) and seeds.
fn derive(text: &str, wrt: &[&str], range: (f64, f64)) -> Derived {
    let module = parse_module(text).unwrap();
    let f = &module.funcs[0];
    let grad = grad_function(&module, f, wrt, "g").unwrap();
    let checked = Module {
        dims: module.dims.clone(),
        funcs: vec![f.clone(), grad.clone()],
    };
    if let Err(errors) = verify_module(&checked) {
        panic!(
            "derived function does not verify: {errors:?}\n{}",
            print_function(&module, &grad)
        );
    }
    // The signature: params, then one seed per result with the result's type; one gradient
    // per wrt parameter with the parameter's type.
    assert_eq!(grad.params.len(), f.params.len() + f.results.len());
    for (n, r) in f.results.iter().enumerate() {
        let seed = grad.value(grad.params[f.params.len() + n]);
        assert_eq!(seed.name, format!("d{}", r.name));
        assert_eq!(seed.ty, f.value(r.value).ty);
    }
    assert_eq!(grad.results.len(), wrt.len());
    for (r, name) in grad.results.iter().zip(wrt) {
        assert_eq!(r.name, format!("d{name}"));
        let p = f
            .params
            .iter()
            .find(|&&p| f.value(p).name == *name)
            .unwrap();
        assert_eq!(grad.value(r.value).ty, f.value(*p).ty);
    }

    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut inputs = random_inputs(&module, f, &mut rng, range);
    let seed_fn = Function {
        params: f.results.iter().map(|r| r.value).collect(),
        ..f.clone()
    };
    inputs.extend(random_inputs(&module, &seed_fn, &mut rng, (-1.0, 1.0)));
    let grads = run_function(&module, &grad, &inputs).unwrap();
    Derived {
        module,
        grad,
        inputs,
        grads,
    }
}

/// `sum over results of sum(result * seed)` at the given forward inputs.
fn loss(d: &Derived, forward: &[Array]) -> f64 {
    let f = &d.module.funcs[0];
    let seeds = &d.inputs[f.params.len()..];
    let outs = run_function(&d.module, f, forward).unwrap();
    outs.iter().zip(seeds).map(|(o, s)| dot(o, s)).sum()
}

/// Compares every gradient with central finite differences (step 1e-5) of the loss; returns
/// the largest relative error `|g - fd| / max(1, |g|, |fd|)`.
fn max_fd_error(d: &Derived, wrt: &[&str]) -> f64 {
    let f = &d.module.funcs[0];
    let forward = &d.inputs[..f.params.len()];
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for (name, grad) in wrt.iter().zip(&d.grads) {
        let p = f
            .params
            .iter()
            .position(|&p| f.value(p).name == *name)
            .unwrap();
        let shape = forward[p].shape().to_vec();
        for_each_index(&shape, |at| {
            let value = forward[p].get(at).to_f64();
            let mut moved = forward.to_vec();
            moved[p].set(at, Scalar::F64(value + h));
            let up = loss(d, &moved);
            moved[p].set(at, Scalar::F64(value - h));
            let down = loss(d, &moved);
            let fd = (up - down) / (2.0 * h);
            let g = grad.get(at).to_f64();
            let err = (g - fd).abs() / 1f64.max(g.abs()).max(fd.abs());
            assert!(
                err.is_finite(),
                "{name}{at:?}: gradient {g}, finite difference {fd}"
            );
            worst = worst.max(err);
        });
    }
    worst
}

/// Derives and checks against finite differences with inputs in `range`.
fn gradcheck_in(text: &str, wrt: &[&str], range: (f64, f64)) -> Derived {
    let d = derive(text, wrt, range);
    let err = max_fd_error(&d, wrt);
    assert!(
        err < 1e-6,
        "relative error {err:e} against finite differences for\n{}",
        print_function(&d.module, &d.grad)
    );
    d
}

fn gradcheck(text: &str, wrt: &[&str]) -> Derived {
    gradcheck_in(text, wrt, (-1.0, 1.0))
}

fn vec_of(a: &Array) -> Vec<f64> {
    a.to_f64_vec()
}

fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (n, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * 1f64.max(e.abs()),
            "element {n}: {a} != {e}"
        );
    }
}

const MATMUL: &str = "dims M = 3, K = 4, N = 2
func @matmul(%A: f64[M, K], %B: f64[K, N]) -> (C: f64[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f64
  return C = %C
}
";

#[test]
fn matmul_is_the_textbook_formula() {
    let d = gradcheck(MATMUL, &["A", "B"]);
    let expected = "func @g(%A: f64[M, K], %B: f64[K, N], %dC: f64[M, N]) -> (dA: f64[M, K], dB: f64[K, N]) {
  %dA = generic (i: M, j: N, k: K) ins(%dC[i, j], %B[k, j]) -> [i, k] reduce add over (j) { mul(%0, %1) } : f64
  %dB = generic (i: M, j: N, k: K) ins(%A[i, k], %dC[i, j]) -> [k, j] reduce add over (i) { mul(%0, %1) } : f64
  return dA = %dA, dB = %dB
}
";
    assert_eq!(print_function(&d.module, &d.grad), expected);
}

#[test]
fn batched_matmul() {
    gradcheck(
        "dims B = 2, M = 3, K = 4, N = 2
func @bmm(%A: f64[B, M, K], %W: f64[B, K, N]) -> (C: f64[B, M, N]) {
  %C = generic (b: B, i: M, j: N, k: K) ins(%A[b, i, k], %W[b, k, j]) -> [b, i, j] reduce add over (k) { mul(%0, %1) } : f64
  return C = %C
}
",
        &["A", "W"],
    );
}

#[test]
fn trace_scatters_to_the_diagonal() {
    let d = gradcheck(
        "dims N = 3
func @trace(%A: f64[N, N]) -> (t: f64) {
  %t = generic (i: N) ins(%A[i, i]) -> [] reduce add over (i) { %0 } : f64
  return t = %t
}
",
        &["A"],
    );
    // d tr(A) / dA = I, times the seed.
    let seed = d.inputs[1].to_f64_vec()[0];
    let expected: Vec<f64> = (0..9)
        .map(|n| if n / 3 == n % 3 { seed } else { 0.0 })
        .collect();
    assert_close(&vec_of(&d.grads[0]), &expected, 1e-15);
    assert!(print_function(&d.module, &d.grad).contains("delta<f64>(i_1, i)"));
}

#[test]
fn diagonal_and_trace_of_a_product() {
    gradcheck(
        "dims N = 3
func @diag(%A: f64[N, N]) -> (d: f64[N]) {
  %d = generic (i: N) ins(%A[i, i]) -> [i] { %0 } : f64
  return d = %d
}
",
        &["A"],
    );
    // tr(AB): both factors read through one repeated index pattern.
    gradcheck(
        "dims N = 3
func @trab(%A: f64[N, N], %B: f64[N, N]) -> (t: f64) {
  %t = generic (i: N, k: N) ins(%A[i, k], %B[k, i]) -> [] reduce add over (i, k) { mul(%0, %1) } : f64
  return t = %t
}
",
        &["A", "B"],
    );
}

#[test]
fn broadcast_with_a_fixed_position() {
    let d = gradcheck(
        "dims M = 3, N = 4
func @bias(%x: f64[1, N], %z: f64[M, N], %c: f64[2, N]) -> (y: f64[M, N]) {
  %y = generic (i: M, j: N) ins(%x[0, j], %z[i, j], %c[1, j]) -> [i, j] { mul(add(%0, %1), %2) } : f64
  return y = %y
}
",
        &["x", "z", "c"],
    );
    // Row 0 of dc is never read: its gradient is exactly zero.
    assert!(vec_of(&d.grads[2])[..4].iter().all(|&v| v == 0.0));
}

#[test]
fn three_operand_contraction() {
    gradcheck(
        "dims I = 2, J = 3, K = 4, L = 2
func @abc(%A: f64[I, J], %B: f64[J, K], %C: f64[K, L]) -> (Y: f64[I, L]) {
  %Y = generic (i: I, l: L, j: J, k: K) ins(%A[i, j], %B[j, k], %C[k, l]) -> [i, l] reduce add over (j, k) { mul(mul(%0, %1), %2) } : f64
  return Y = %Y
}
",
        &["A", "B", "C"],
    );
}

/// `y[i] = body(x[i], w[i])` for one body, with inputs in `range`.
fn elementwise_check(body: &str, range: (f64, f64)) {
    let text = format!(
        "dims N = 5
func @f(%x: f64[N], %w: f64[N]) -> (y: f64[N]) {{
  %y = generic (i: N) ins(%x[i], %w[i]) -> [i] {{ {body} }} : f64
  return y = %y
}}
"
    );
    gradcheck_in(&text, &["x", "w"], range);
}

#[test]
fn elementwise_functions() {
    let anywhere = (-1.0, 1.0);
    let positive = (0.5, 1.5);
    for body in [
        "neg(%0)",
        "exp(%0)",
        "tanh(%0)",
        "sigmoid(%0)",
        "relu(%0)",
        "abs(%0)",
        "add(%0, %1)",
        "sub(%0, %1)",
        "mul(%0, %1)",
        "max(%0, %1)",
        "min(%0, %1)",
        "mul(%0, %0)",
        "pow(%0, 3.0:f64)",
        "mul(neg(neg(%0)), exp(mul(%0, 1.0:f64)))",
    ] {
        elementwise_check(body, anywhere);
    }
    for body in [
        "log(%0)",
        "sqrt(%0)",
        "rsqrt(%0)",
        "div(%0, %1)",
        "pow(%0, %1)",
        "div(1.0:f64, mul(%0, %1))",
    ] {
        elementwise_check(body, positive);
    }
}

#[test]
fn integer_casts_stop_the_gradient() {
    // floor-like part: d/dx (x * trunc(x)) = trunc(x) away from integers.
    elementwise_check("mul(%0, cast<f64>(cast<i64>(%0)))", (-3.0, 3.0));
}

#[test]
fn float_casts_carry_the_gradient() {
    let text = "dims N = 3
func @f(%x: f32[N]) -> (y: f64[N]) {
  %y = generic (i: N) ins(%x[i]) -> [i] { mul(cast<f64>(%0), cast<f64>(%0)) } : f64
  return y = %y
}
";
    let d = derive(text, &["x"], (-1.0, 1.0));
    let x = d.inputs[0].to_f64_vec();
    let seed = d.inputs[1].to_f64_vec();
    let expected: Vec<f64> = x.iter().zip(&seed).map(|(x, s)| 2.0 * x * s).collect();
    assert_eq!(d.grads[0].dtype(), DType::F32);
    assert_close(&vec_of(&d.grads[0]), &expected, 1e-6);
}

#[test]
fn select_with_an_index_mask_and_a_value_condition() {
    let d = gradcheck(
        "dims T = 4
func @causal(%S: f64[T, T]) -> (P: f64[T, T]) {
  %P = generic (i: T, j: T) ins(%S[i, j]) -> [i, j] { select(le(j, i), exp(%0), 0.0:f64) } : f64
  return P = %P
}
",
        &["S"],
    );
    // Above the diagonal the output is a constant: the gradient is exactly zero.
    let g = vec_of(&d.grads[0]);
    for i in 0..4 {
        for j in (i + 1)..4 {
            assert_eq!(g[i * 4 + j], 0.0);
        }
    }
    elementwise_check("select(gt(%0, %1), %0, mul(%1, 2.0:f64))", (-1.0, 1.0));
}

#[test]
fn max_and_min_reductions() {
    for kind in ["max", "min"] {
        gradcheck(
            &format!(
                "dims M = 3, N = 5
func @r(%x: f64[M, N]) -> (m: f64[M]) {{
  %m = generic (i: M, j: N) ins(%x[i, j]) -> [i] reduce {kind} over (j) {{ mul(%0, 2.0:f64) }} : f64
  return m = %m
}}
"
            ),
            &["x"],
        );
    }
}

#[test]
fn max_ties_give_every_maximum_the_gradient() {
    let text = "dims N = 4
func @r(%x: f64[N]) -> (m: f64) {
  %m = generic (j: N) ins(%x[j]) -> [] reduce max over (j) { %0 } : f64
  return m = %m
}
";
    let module = parse_module(text).unwrap();
    let grad = grad_function(&module, &module.funcs[0], &["x"], "g").unwrap();
    let x = Array::from_buffer(Buffer::F64(vec![1.0, 3.0, -2.0, 3.0]), &[4]).unwrap();
    let seed = Array::from_buffer(Buffer::F64(vec![0.5]), &[]).unwrap();
    let out = run_function(&module, &grad, &[x, seed]).unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![0.0, 0.5, 0.0, 0.5]);
}

const PROD: &str = "dims M = 2, N = 4
func @p(%x: f64[M, N]) -> (p: f64[M]) {
  %p = generic (i: M, j: N) ins(%x[i, j]) -> [i] reduce mul over (j) { %0 } : f64
  return p = %p
}
";

#[test]
fn product_reduction() {
    gradcheck(PROD, &["x"]);
}

#[test]
fn product_reduction_at_zeros() {
    let module = parse_module(PROD).unwrap();
    let grad = grad_function(&module, &module.funcs[0], &["x"], "g").unwrap();
    // Row 0 has one zero: only it gets a gradient, the product of the others. Row 1 has two
    // zeros: every partial product contains a zero.
    let x = Array::from_buffer(
        Buffer::F64(vec![2.0, 0.0, 3.0, -1.0, 0.0, 5.0, 0.0, 2.0]),
        &[2, 4],
    )
    .unwrap();
    let seed = Array::from_buffer(Buffer::F64(vec![1.0, 1.0]), &[2]).unwrap();
    let out = run_function(&module, &grad, &[x, seed]).unwrap();
    assert_eq!(
        out[0].to_f64_vec(),
        vec![0.0, -6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

const SOFTMAX: &str = "dims M = 3, N = 5
func @softmax(%S: f64[M, N]) -> (P: f64[M, N]) {
  %P.max = generic (i: M, j: N) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : f64
  %P.exp = generic (i: M, j: N) ins(%S[i, j], %P.max[i]) -> [i, j] { exp(sub(%0, %1)) } : f64
  %P.sum = generic (i: M, j: N) ins(%P.exp[i, j]) -> [i] reduce add over (j) { %0 } : f64
  %P = generic (i: M, j: N) ins(%P.exp[i, j], %P.sum[i]) -> [i, j] { div(%0, %1) } : f64
  return P = %P
}
";

/// The softmax of each row of a row-major `rows x cols` matrix.
fn softmax_rows(s: &[f64], cols: usize) -> Vec<f64> {
    s.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / z)
        })
        .collect()
}

/// The chapter's softmax backward: `dS[i,j] = p[i,j] * (g[i,j] - sum_k p[i,k] g[i,k])`.
fn softmax_backward(p: &[f64], g: &[f64], cols: usize) -> Vec<f64> {
    p.chunks(cols)
        .zip(g.chunks(cols))
        .flat_map(|(p, g)| {
            let pg: f64 = p.iter().zip(g).map(|(p, g)| p * g).sum();
            p.iter()
                .zip(g)
                .map(move |(p, g)| p * (g - pg))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_matches_the_closed_form() {
    let d = gradcheck(SOFTMAX, &["S"]);
    let p = softmax_rows(&d.inputs[0].to_f64_vec(), 5);
    let expected = softmax_backward(&p, &d.inputs[1].to_f64_vec(), 5);
    assert_close(&vec_of(&d.grads[0]), &expected, 1e-12);
}

/// Single-head attention as the sema builds it, in dtype `t`.
fn attention(t: &str) -> String {
    format!(
        "dims T = 4, D = 5, K = 3
func @attention(%X: {t}[T, D], %WQ: {t}[D, K], %WK: {t}[D, K], %WV: {t}[D, K]) -> (O: {t}[T, K]) {{
  %Q = generic (t: T, a: K, d: D) ins(%X[t, d], %WQ[d, a]) -> [t, a] reduce add over (d) {{ mul(%0, %1) }} : {t}
  %Kx = generic (t: T, a: K, d: D) ins(%X[t, d], %WK[d, a]) -> [t, a] reduce add over (d) {{ mul(%0, %1) }} : {t}
  %V = generic (t: T, a: K, d: D) ins(%X[t, d], %WV[d, a]) -> [t, a] reduce add over (d) {{ mul(%0, %1) }} : {t}
  %S = generic (i: T, j: T, a: K) ins(%Q[i, a], %Kx[j, a]) -> [i, j] reduce add over (a) {{ div(mul(%0, %1), sqrt(dim(K):{t})) }} : {t}
  %P.max = generic (i: T, j: T) ins(%S[i, j]) -> [i] reduce max over (j) {{ %0 }} : {t}
  %P.exp = generic (i: T, j: T) ins(%S[i, j], %P.max[i]) -> [i, j] {{ exp(sub(%0, %1)) }} : {t}
  %P.sum = generic (i: T, j: T) ins(%P.exp[i, j]) -> [i] reduce add over (j) {{ %0 }} : {t}
  %P = generic (i: T, j: T) ins(%P.exp[i, j], %P.sum[i]) -> [i, j] {{ div(%0, %1) }} : {t}
  %O = generic (i: T, a: K, j: T) ins(%P[i, j], %V[j, a]) -> [i, a] reduce add over (j) {{ mul(%0, %1) }} : {t}
  return O = %O
}}
"
    )
}

/// `a[m x k] * b[k x n]`, row-major, with either operand optionally transposed.
fn matmul(a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize), ta: bool, tb: bool) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for l in 0..k {
                let x = if ta { a[l * m + i] } else { a[i * k + l] };
                let y = if tb { b[j * k + l] } else { b[l * n + j] };
                c[i * n + j] += x * y;
            }
        }
    }
    c
}

/// Exercise 8's backward pass, written with explicit loops: `[dWQ, dWK, dWV, dX]`.
fn attention_backward(x: &[f64], wq: &[f64], wk: &[f64], wv: &[f64], d_o: &[f64]) -> Vec<Vec<f64>> {
    let (t, d, k) = (4, 5, 3);
    let q = matmul(x, wq, (t, d, k), false, false);
    let kk = matmul(x, wk, (t, d, k), false, false);
    let v = matmul(x, wv, (t, d, k), false, false);
    let scale = (k as f64).sqrt();
    let s: Vec<f64> = matmul(&q, &kk, (t, k, t), false, true)
        .into_iter()
        .map(|v| v / scale)
        .collect();
    let alpha = softmax_rows(&s, t);
    // dV[j,a] = alpha[i,j] dO[i,a]; dalpha[i,j] = dO[i,a] V[j,a]
    let dv = matmul(&alpha, d_o, (t, t, k), true, false);
    let dalpha = matmul(d_o, &v, (t, k, t), false, true);
    let ds: Vec<f64> = softmax_backward(&alpha, &dalpha, t)
        .into_iter()
        .map(|v| v / scale)
        .collect();
    // dQ[i,a] = dS[i,j] K[j,a]; dK[j,a] = dS[i,j] Q[i,a]
    let dq = matmul(&ds, &kk, (t, t, k), false, false);
    let dk = matmul(&ds, &q, (t, t, k), true, false);
    // dW[d,a] = X[i,d] dQ[i,a]; dX[i,d] = dQ[i,a] W[d,a] summed over Q, K, V
    let dwq = matmul(x, &dq, (d, t, k), true, false);
    let dwk = matmul(x, &dk, (d, t, k), true, false);
    let dwv = matmul(x, &dv, (d, t, k), true, false);
    let mut dx = matmul(&dq, wq, (t, k, d), false, true);
    for (dw, w) in [(&dk, wk), (&dv, wv)] {
        for (acc, v) in dx.iter_mut().zip(matmul(dw, w, (t, k, d), false, true)) {
            *acc += v;
        }
    }
    vec![dwq, dwk, dwv, dx]
}

#[test]
fn attention_matches_finite_differences_and_exercise_8() {
    let wrt = ["WQ", "WK", "WV", "X"];
    let d = gradcheck(&attention("f64"), &wrt);
    let ins: Vec<Vec<f64>> = d.inputs.iter().map(Array::to_f64_vec).collect();
    let expected = attention_backward(&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]);
    for (got, want) in d.grads.iter().zip(&expected) {
        assert_close(&got.to_f64_vec(), want, 1e-12);
    }
}

#[test]
fn attention_in_f32_matches_exercise_8() {
    let wrt = ["WQ", "WK", "WV"];
    let d = derive(&attention("f32"), &wrt, (-1.0, 1.0));
    let ins: Vec<Vec<f64>> = d.inputs.iter().map(Array::to_f64_vec).collect();
    let expected = attention_backward(&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]);
    for (got, want) in d.grads.iter().zip(&expected) {
        assert_eq!(got.dtype(), DType::F32);
        assert_close(&got.to_f64_vec(), want, 1e-5);
    }
}

#[test]
fn fan_out_accumulates() {
    // x feeds two ops, and one op through two input slots.
    gradcheck(
        "dims N = 4
func @f(%x: f64[N], %w: f64[N]) -> (y: f64[N], s: f64) {
  %a = generic (i: N) ins(%x[i], %x[i]) -> [i] { mul(%0, %1) } : f64
  %b = generic (i: N) ins(%x[i], %a[i], %w[i]) -> [i] { add(exp(%0), mul(%1, %2)) } : f64
  %s = generic (i: N) ins(%b[i], %a[i]) -> [] reduce add over (i) { mul(%0, %1) } : f64
  return y = %b, s = %s
}
",
        &["x", "w"],
    );
}

#[test]
fn a_parameter_returned_as_is_gets_its_seed() {
    let d = gradcheck(
        "dims N = 3
func @f(%x: f64[N]) -> (y: f64[N], z: f64[N]) {
  %z = generic (i: N) ins(%x[i]) -> [i] { mul(%0, 3.0:f64) } : f64
  return y = %x, z = %z
}
",
        &["x"],
    );
    let expected: Vec<f64> = d.inputs[1]
        .to_f64_vec()
        .iter()
        .zip(d.inputs[2].to_f64_vec())
        .map(|(y, z)| y + 3.0 * z)
        .collect();
    assert_close(&vec_of(&d.grads[0]), &expected, 1e-15);
}

#[test]
fn unused_and_integer_dependent_inputs_get_zero_gradients() {
    let d = derive(
        "dims N = 3
func @f(%x: f64[N], %u: f64[2, N], %m: i32[N]) -> (y: f64[N], c: i32[N]) {
  %y = generic (i: N) ins(%x[i], %m[i]) -> [i] { mul(%0, cast<f64>(%1)) } : f64
  %c = generic (i: N) ins(%x[i]) -> [i] { cast<i32>(%0) } : i32
  return y = %y, c = %c
}
",
        &["u", "x"],
        (-1.0, 1.0),
    );
    assert_eq!(vec_of(&d.grads[0]), vec![0.0; 6]);
    let m = d.inputs[2].to_f64_vec();
    let seed = d.inputs[3].to_f64_vec();
    let expected: Vec<f64> = m.iter().zip(&seed).map(|(m, s)| m * s).collect();
    assert_close(&vec_of(&d.grads[1]), &expected, 1e-15);
}

#[test]
fn errors_name_the_problem() {
    let module = parse_module(
        "dims N = 3
func @f(%x: f64[N], %n: i32[N]) -> (y: f64[N]) {
  %y = generic (i: N) ins(%x[i]) -> [i] { %0 } : f64
  return y = %y
}
func @h(%x: f64[N], %dy: f64[N]) -> (y: f64[N]) {
  %y = generic (i: N) ins(%x[i], %dy[i]) -> [i] { mul(%0, %1) } : f64
  return y = %y
}
",
    )
    .unwrap();
    let f = &module.funcs[0];
    let message = |wrt: &[&str], f: &Function| {
        grad_function(&module, f, wrt, "g")
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(message(&["z"], f), "`z` is not a parameter of `f`");
    assert_eq!(
        message(&["n"], f),
        "`n` is i32; only f32/f64 inputs can be differentiated"
    );
    assert_eq!(message(&["x", "x"], f), "`x` is listed twice in wrt");
    assert_eq!(
        message(&["x"], &module.funcs[1]),
        "the seed of output `y` would be named `dy`, which already names a value of the function"
    );
    let mut broken = f.clone();
    broken.results[0].value = crate::ir::tensor::ValueId(99);
    assert!(matches!(
        grad_function(&module, &broken, &["x"], "g"),
        Err(GradError::Invalid(_))
    ));
}

#[test]
fn delta_and_eps_factors_are_constants() {
    // The cross product c = a × b, and a delta-masked outer product.
    gradcheck(
        "dims N = 3
func @cross(%a: f64[N], %b: f64[N]) -> (c: f64[N], o: f64[N, N]) {
  %c = generic (i: N, j: N, k: N) ins(%a[j], %b[k]) -> [i] reduce add over (j, k) { mul(eps<f64>(i, j, k), mul(%0, %1)) } : f64
  %o = generic (i: N, j: N) ins(%a[i], %b[j]) -> [i, j] { mul(delta<f64>(i, j), mul(%0, %1)) } : f64
  return c = %c, o = %o
}
",
        &["a", "b"],
    );
}

#[test]
fn the_simplifier_removes_identities() {
    use super::simplify::simplify;
    let module = parse_module(
        "func @f(%x: f64, %y: f64) -> (z: f64) {
  %z = generic () ins(%x[], %y[]) -> [] { add(mul(1.0:f64, neg(neg(%0))), add(mul(%1, 0.0:f64), sub(0.0:f64, mul(neg(%1), 2.0:f64)))) } : f64
  return z = %z
}
func @g(%x: f64) -> (z: f64) {
  %z = generic () ins(%x[]) -> [] { mul(div(add(2.0:f64, 3.0:f64), 2.0:f64), pow(select(gt(%0, 0.0:f64), %0, %0), 1.0:f64)) } : f64
  return z = %z
}
",
    )
    .unwrap();
    let simplified = |n: usize| {
        let mut f = module.funcs[n].clone();
        let crate::ir::tensor::OpKind::Generic(g) = &mut f.ops[0].kind;
        g.body = simplify(&g.body, &[DType::F64, DType::F64]);
        print_function(&module, &f)
    };
    assert!(simplified(0).contains("{ add(%0, mul(%1, 2.0:f64)) }"));
    assert!(simplified(1).contains("{ mul(2.5:f64, %0) }"));
}
