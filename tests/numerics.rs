//! Numerical behaviour of compiled kernels (`docs/math.md`): softmax and logsumexp are stable
//! for inputs of magnitude 1e4, and long `f32` reductions stay within the error bound of
//! recursive summation. References are computed here in `f64` (or exactly), independently of
//! the compiler; every variant of `testkit::differential::variants` is checked, and random legal
//! schedules.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::compiler::rng::Rng;
use einc::compiler::testkit::differential::{compile, variants_with_random_schedules};
use einc::runtime::abi::{self, status};
use einc::runtime::DType;

const SOFTMAX: &str = "\
dims R, C
kernel soft32(S: f32[R, C]) -> (P: f32[R, C], L: f32[R]) {
    P[i, j] = softmax[j](S[i, j])
    L[i] = logsumexp[j](S[i, j])
}
kernel soft64(S: f64[R, C]) -> (P: f64[R, C], L: f64[R]) {
    P[i, j] = softmax[j](S[i, j])
    L[i] = logsumexp[j](S[i, j])
}
";

/// A C-order argument: its elements as `f64`, stored in `dtype`.
struct Arg {
    dtype: DType,
    shape: Vec<i64>,
    strides: Vec<i64>,
    f32s: Vec<f32>,
    f64s: Vec<f64>,
}

impl Arg {
    fn new(dtype: DType, shape: &[usize], values: &[f64]) -> Arg {
        let mut strides = vec![1i64; shape.len()];
        for k in (0..shape.len().saturating_sub(1)).rev() {
            strides[k] = strides[k + 1] * shape[k + 1] as i64;
        }
        Arg {
            dtype,
            shape: shape.iter().map(|&n| n as i64).collect(),
            strides,
            f32s: values.iter().map(|&v| v as f32).collect(),
            f64s: values.to_vec(),
        }
    }

    fn descriptor(&mut self) -> abi::Tensor {
        let data = match self.dtype {
            DType::F32 => self.f32s.as_mut_ptr().cast(),
            _ => self.f64s.as_mut_ptr().cast(),
        };
        abi::Tensor {
            data,
            dtype: self.dtype.code(),
            rank: self.shape.len() as i32,
            shape: self.shape.as_ptr(),
            strides: self.strides.as_ptr(),
        }
    }

    fn values(&self) -> Vec<f64> {
        match self.dtype {
            DType::F32 => self.f32s.iter().map(|&v| f64::from(v)).collect(),
            _ => self.f64s.clone(),
        }
    }
}

/// Calls `entry` on `args` (inputs, then outputs) and returns the outputs' values.
fn call(entry: abi::KernelFn, args: &mut [Arg]) -> Vec<Vec<f64>> {
    let descriptors: Vec<abi::Tensor> = args.iter_mut().map(Arg::descriptor).collect();
    // SAFETY: each descriptor describes a C-order vector owned by `args`.
    let code = unsafe { entry(descriptors.as_ptr(), descriptors.len() as i64) };
    assert_eq!(code, status::OK, "{}", status::describe(code));
    args.iter().map(Arg::values).collect()
}

/// Rows of magnitude about 1e4: shifted up, shifted down, mixed signs, constant, with -inf.
fn hard_rows(cols: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let noise = |rng: &mut Rng| rng.uniform(-3.0, 3.0);
    vec![
        (0..cols).map(|_| 1e4 + noise(rng)).collect(),
        (0..cols).map(|_| -1e4 + noise(rng)).collect(),
        (0..cols)
            .map(|k| if k % 2 == 0 { 1e4 } else { -1e4 } + noise(rng))
            .collect(),
        vec![1e4; cols],
        (0..cols)
            .map(|k| {
                if k == 0 {
                    f64::NEG_INFINITY
                } else {
                    9_999.5 + noise(rng)
                }
            })
            .collect(),
        (0..cols).map(|_| rng.uniform(-1.0, 1.0)).collect(),
    ]
}

#[test]
fn softmax_and_logsumexp_are_stable_for_inputs_of_magnitude_1e4() {
    let (module, diags) = einc::compiler::sema::compile_source(SOFTMAX);
    let module = module.unwrap_or_else(|| panic!("{diags:?}"));
    let mut rng = Rng::new(1e4 as u64);
    let cols = 37;
    for variant in variants_with_random_schedules(1, 3) {
        let program = compile(&module, &variant).unwrap();
        for (name, dtype, tol) in [("soft32", DType::F32, 4e-6), ("soft64", DType::F64, 1e-14)] {
            let rows = hard_rows(cols, &mut rng);
            let r = rows.len();
            // The inputs as the kernel sees them (rounded to the dtype), for the reference.
            let flat: Vec<f64> = rows.concat();
            let mut args = vec![
                Arg::new(dtype, &[r, cols], &flat),
                Arg::new(dtype, &[r, cols], &vec![0.0; r * cols]),
                Arg::new(dtype, &[r], &vec![0.0; r]),
            ];
            let seen = args[0].values();
            let kernel = program.kernel(name).unwrap();
            let out = call(kernel.entry(), &mut args);
            for i in 0..r {
                let row = &seen[i * cols..(i + 1) * cols];
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = row.iter().map(|&x| (x - m).exp()).collect();
                let s: f64 = e.iter().sum();
                let what = format!("{} {name} row {i}", variant.name);
                for j in 0..cols {
                    let (got, want) = (out[1][i * cols + j], e[j] / s);
                    assert!(got.is_finite(), "{what}: P[{j}] = {got}");
                    assert!(
                        (got - want).abs() <= tol * want.max(1e-30) + tol * 1e-3,
                        "{what}: P[{j}] = {got}, want {want}"
                    );
                }
                let total: f64 = out[1][i * cols..(i + 1) * cols].iter().sum();
                assert!(
                    (total - 1.0).abs() <= 10.0 * tol,
                    "{what}: row sums to {total}"
                );
                let (got, want) = (out[2][i], m + s.ln());
                assert!(
                    (got - want).abs() <= tol * want.abs().max(1.0),
                    "{what}: logsumexp = {got}, want {want}"
                );
            }
        }
    }
}

/// The bound of recursive summation in any order: |error| <= (n - 1) u / (1 - (n - 1) u)
/// * sum |x| (Higham, Accuracy and Stability of Numerical Algorithms, 4.2), u = 2^-24.
fn recursive_sum_bound(n: usize, abs_sum: f64) -> f64 {
    let nu = (n as f64 - 1.0) * f64::from(f32::EPSILON) / 2.0;
    nu / (1.0 - nu) * abs_sum
}

#[test]
fn long_f32_reductions_stay_within_the_recursive_summation_bound() {
    let (module, diags) = einc::compiler::sema::compile_source(
        "dims N\nkernel total(x: f32[N]) -> (s: f32) {\n    s = sum[i](x[i])\n}\n",
    );
    let module = module.unwrap_or_else(|| panic!("{diags:?}"));
    let n = 1_000_000;
    let mut rng = Rng::new(6);
    for (what, lo, hi) in [("uniform [0, 1)", 0.0, 1.0), ("uniform [-1, 1)", -1.0, 1.0)] {
        let values: Vec<f64> = (0..n).map(|_| rng.uniform(lo, hi) as f32 as f64).collect();
        let exact: f64 = values.iter().sum(); // f64 error ~1e-10 relative: far below f32's
        let abs_sum: f64 = values.iter().map(|v| v.abs()).sum();
        let bound = recursive_sum_bound(n, abs_sum);
        for variant in variants_with_random_schedules(2, 3) {
            let program = compile(&module, &variant).unwrap();
            let mut args = vec![
                Arg::new(DType::F32, &[n], &values),
                Arg::new(DType::F32, &[], &[0.0]),
            ];
            let got = call(program.kernel("total").unwrap().entry(), &mut args)[1][0];
            let err = (got - exact).abs();
            assert!(
                err <= bound,
                "{} {what}: sum {got}, exact {exact}: error {err} above the bound {bound}",
                variant.name
            );
            eprintln!(
                "{} {what}: f32 sum of 10^6 terms: error {err:.3e} = {:.1} ulp of the result \
                 (bound {bound:.3e})",
                variant.name,
                err / (f64::from(f32::EPSILON) * exact.abs().max(1.0) / 2.0)
            );
        }
    }
}
