//! Gradients end to end: `grad` items, derived kernels printed as `.ein` (exact text for a
//! matmul; for every example, the printed source checks and computes what the built-in derived
//! kernel computes), the hand-written attention backward against `grad(attention)`, and the
//! finite-difference check of every example kernel.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::{Program, TensorRef};
use einc_compiler::autodiff::gradcheck::{gradcheck, CheckOptions};
use einc_compiler::autodiff::{grad_function, to_ein};
use einc_compiler::interp;
use einc_compiler::ir::tensor::{Extent, Module, TensorType};
use einc_compiler::rng::Rng;
use einc_compiler::sema::compile_source;
use einc_runtime::{Array, Buffer, DType};
use std::path::Path;

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
    .unwrap()
}

fn compile(text: &str) -> Module {
    let (module, diags) = compile_source(text);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{text}");
    module.unwrap()
}

/// The example files and their kernels written as `kernel NAME(` (grad items excluded).
fn example_kernels() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in [
        "attention.ein",
        "causal_attention.ein",
        "mlp.ein",
        "physics.ein",
        "tucker.ein",
    ] {
        let module = compile(&example(file));
        for f in &module.funcs {
            if !f.name.ends_with("_grad") {
                out.push((file.to_string(), f.name.clone()));
            }
        }
    }
    out
}

/// A random f32 array of type `ty`, symbolic dims bound to 2, 3, 4, ... by position.
fn random_array(rng: &mut Rng, module: &Module, ty: &TensorType) -> Array {
    assert_eq!(ty.dtype, DType::F32);
    let shape: Vec<usize> = ty
        .shape
        .iter()
        .map(|e| match e {
            Extent::Fixed(n) => *n as usize,
            Extent::Dim(d) => 2 + module.dims.iter().position(|x| &x.name == d).unwrap() % 3,
        })
        .collect();
    let n = shape.iter().product();
    let values = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    Array::from_buffer(Buffer::F32(values), &shape).unwrap()
}

fn assert_close(what: &str, got: &Array, want: &Array, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    for (k, (g, w)) in got.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{k}]: got {g}, want {w}"
        );
    }
}

#[test]
fn a_matmul_gradient_prints_as_the_textbook_formulas() {
    let src = "dims M, K, N\n\nkernel matmul(A: f32[M, K], B: f32[K, N]) -> (C: f32[M, N]) {\n    \
               C[i, j] = A[i, k] * B[k, j]\n}\n";
    let module = compile(src);
    let f = module.func("matmul").unwrap();
    let grad = grad_function(&module, f, &["A", "B"], "matmul_grad").unwrap();
    assert_eq!(
        to_ein::to_ein_source(&module, &grad).unwrap(),
        "dims M, K, N\n\n\
         kernel matmul_grad(A: f32[M, K], B: f32[K, N], dC: f32[M, N]) -> (dA: f32[M, K], dB: f32[K, N]) {\n    \
         dA[i, k] = dC[i, j] * B[k, j]\n    \
         dB[k, j] = A[i, k] * dC[i, j]\n\
         }\n"
    );
}

#[test]
fn a_delta_is_substituted_and_temporaries_get_identifier_names() {
    let src = "dims N\n\nkernel f(A: f64[N, N], x: f64[N]) -> (y: f64[N], s: f64) {\n    \
               y[i] = delta[i, j] * x[j]\n    s = sum[i](exp(A[i, i]))\n}\n";
    let module = compile(src);
    let f = module.func("f").unwrap();
    let grad = grad_function(&module, f, &["A", "x"], "g").unwrap();
    let text = to_ein::to_ein_source(&module, &grad).unwrap();
    // `dx[j] = Σ_i dy[i] δ(i, j)` is `dy[j]`; the trace's gradient stays on the diagonal.
    assert!(text.contains("    dx[j] = dy[j]\n"), "{text}");
    assert!(
        text.contains("    dA[i, i_1] = ds * exp(A[i, i]) * delta[i_1, i]\n"),
        "{text}"
    );
    compile(&text);
}

#[test]
fn printed_gradients_check_and_compute_what_the_built_in_kernels_compute() {
    let mut rng = Rng::new(0x5eed);
    for (file, kernel) in example_kernels() {
        let module = compile(&example(&file));
        let f = module.func(&kernel).unwrap();
        let wrt: Vec<&str> = f.params.iter().map(|&p| f.value(p).name.as_str()).collect();
        let name = format!("{kernel}_grad");
        let grad = grad_function(&module, f, &wrt, &name).unwrap();
        let text = match to_ein::to_ein_source(&module, &grad) {
            Ok(text) => text,
            Err(e) if kernel == "det3" => {
                // Each row of A is read at a fixed position: the scatter back to it is a sum
                // whose output index addresses no axis, which a .ein statement cannot write.
                assert_eq!(
                    e.to_string(),
                    "cannot write `dA_det` as .ein: its index `i` addresses no tensor axis, so \
                     its extent could not be inferred"
                );
                continue;
            }
            Err(e) => panic!("{kernel}: {e}"),
        };
        if kernel == "attention" {
            // Value names that are not identifiers are mapped (`P.max` -> `P_max`), and the
            // softmax's reverse reads like the chapter's.
            assert!(text.contains("    P_max[i] = max[j](S[i, j])\n"), "{text}");
            // The stabilising maximum gets no gradient (it cancels exactly).
            assert!(
                text.contains(
                    "    dS[i, j] = (dP[i, j] / P_sum[i] + dP_sum[i]) * exp(S[i, j] - P_max[i])\n"
                ),
                "{text}"
            );
            assert!(!text.contains("dP_max"), "{text}");
        }
        let printed = compile(&text);
        let inputs: Vec<Array> = grad
            .params
            .iter()
            .map(|&p| random_array(&mut rng, &module, &grad.value(p).ty))
            .collect();
        let want = interp::run_function(&module, &grad, &inputs).unwrap();
        let got = interp::run(&printed, &name, &inputs).unwrap();
        assert_eq!(got.len(), want.len());
        for (r, (g, w)) in grad.results.iter().zip(got.iter().zip(&want)) {
            assert_close(&format!("{kernel}: {}", r.name), g, w, 1e-5);
        }
    }
}

#[test]
fn the_hand_written_attention_backward_agrees_with_grad_attention() {
    let forward = compile(&example("attention.ein"));
    let backward = compile(&example("attention_backward.ein"));
    let grad = forward.func("attention_grad").unwrap();
    let hand = backward.func("attention_backward").unwrap();
    assert_eq!(grad.params.len(), hand.params.len());
    let mut rng = Rng::new(8);
    let inputs: Vec<Array> = grad
        .params
        .iter()
        .map(|&p| random_array(&mut rng, &forward, &grad.value(p).ty))
        .collect();
    let want = interp::run(&forward, "attention_grad", &inputs).unwrap();
    let got = interp::run(&backward, "attention_backward", &inputs).unwrap();
    for (name, (g, w)) in ["dWQ", "dWK", "dWV"].iter().zip(got.iter().zip(&want)) {
        assert_close(name, g, w, 1e-5);
    }

    // The same agreement through the JIT: both kernels compiled to native code.
    let views: Vec<TensorRef> = inputs.iter().map(TensorRef::from).collect();
    let jit_grad = Program::from_source(&example("attention.ein"))
        .unwrap()
        .kernel("attention_grad")
        .unwrap()
        .run(&views)
        .unwrap();
    let jit_hand = Program::from_source(&example("attention_backward.ein"))
        .unwrap()
        .kernel("attention_backward")
        .unwrap()
        .run(&views)
        .unwrap();
    for (n, name) in ["dWQ", "dWK", "dWV"].iter().enumerate() {
        assert_close(&format!("JIT {name}"), &jit_hand[n], &jit_grad[n], 1e-5);
        assert_close(
            &format!("JIT vs interpreter {name}"),
            &jit_grad[n],
            &want[n],
            1e-5,
        );
    }
}

#[test]
fn every_example_kernel_passes_the_finite_difference_check() {
    for (file, kernel) in example_kernels() {
        let module = compile(&example(&file));
        for seed in [1, 2] {
            let options = CheckOptions {
                seed,
                ..CheckOptions::default()
            };
            let checks = gradcheck(&module, &kernel, None, &options).unwrap().tensors;
            assert!(!checks.is_empty(), "{kernel}");
            for c in checks {
                assert!(
                    c.max_rel_error < 1e-6,
                    "{file} {kernel} d{}: relative error {}",
                    c.name,
                    c.max_rel_error
                );
            }
        }
    }
}

#[test]
fn the_gradient_check_fails_where_the_derivative_is_not_the_function_s() {
    // Integer casts carry no gradient by convention, but the function still moves with `x`:
    // i32(x * 1e6) changes by about 20 over the step 2h = 2e-5, so finite differences see a
    // slope of about 1e6 where the derived gradient is 0.
    let src =
        "dims N\n\nkernel f(x: f64[N]) -> (y: f64[N]) {\n    y[i] = f64(i32(x[i] * 1000000))\n}\n";
    let module = compile(src);
    let report = gradcheck(&module, "f", None, &CheckOptions::default()).unwrap();
    assert_eq!(report.dims, [("N".to_string(), 2)]);
    let checks = report.tensors;
    assert_eq!(checks.len(), 1);
    assert!(checks[0].max_rel_error > 0.5, "{checks:?}");
    // The same kernel without the cast passes.
    let src = "dims N\n\nkernel f(x: f64[N]) -> (y: f64[N]) {\n    y[i] = x[i] * 1000000\n}\n";
    let checks = gradcheck(&compile(src), "f", None, &CheckOptions::default())
        .unwrap()
        .tensors;
    assert!(checks[0].max_rel_error < 1e-6, "{checks:?}");
    // Dims can be given; an unknown dim is an error naming it.
    let options = CheckOptions {
        dims: vec![("Z".to_string(), 3)],
        ..CheckOptions::default()
    };
    let e = gradcheck(&module, "f", None, &options).unwrap_err();
    assert_eq!(e.to_string(), "the file has no dim `Z`");
}

#[test]
fn f32_kernels_are_checked_in_f64() {
    let module = compile(&example("attention.ein"));
    let f64_module = einc_compiler::autodiff::gradcheck::to_f64(&module);
    for f in &f64_module.funcs {
        for v in &f.values {
            assert_eq!(v.ty.dtype, DType::F64, "{}: {}", f.name, v.name);
        }
    }
}

/// The `.ein` source of the gradient of kernel `kernel` of `src` with respect to `wrt`.
fn printed_grad(src: &str, kernel: &str, wrt: &[&str]) -> String {
    let module = compile(src);
    let f = module.func(kernel).unwrap();
    let grad = grad_function(&module, f, wrt, &format!("{kernel}_grad")).unwrap();
    let text = to_ein::to_ein_source(&module, &grad).unwrap();
    // The printed gradient is a program of its own.
    compile(&text);
    text
}

#[test]
fn least_squares_collects_like_terms() {
    // The product rule gives `0.5 * dL * (R - Y) + 0.5 * (R - Y) * dL` for dR.
    let src = "dims N, M\n\n\
               kernel lsq(X: f64[N, M], w: f64[M], Y: f64[N]) -> (L: f64) {\n    \
               R[n] = X[n, m] * w[m]\n    \
               L = 0.5 * (R[n] - Y[n]) * (R[n] - Y[n])\n}\n";
    assert_eq!(
        printed_grad(src, "lsq", &["w"]),
        "dims N, M\n\n\
         kernel lsq_grad(X: f64[N, M], w: f64[M], Y: f64[N], dL: f64) -> (dw: f64[M]) {\n    \
         R[n] = X[n, m] * w[m]\n    \
         dR[n] = dL * (R[n] - Y[n])\n    \
         dw[m] = X[n, m] * dR[n]\n\
         }\n"
    );
}

#[test]
fn constant_factors_are_folded() {
    // d/dx (3 x x / 4) = 3/4 (x + x) = 1.5 x; `/ 4` is the exact `* 0.25`.
    let src = "dims N\n\nkernel f(x: f64[N]) -> (s: f64) {\n    s = 3 * x[i] * x[i] / 4\n}\n";
    assert_eq!(
        printed_grad(src, "f", &["x"]),
        "dims N\n\nkernel f_grad(x: f64[N], ds: f64) -> (dx: f64[N]) {\n    \
         dx[i] = 1.5 * ds * x[i]\n}\n"
    );
    // A division by 3 has no exact reciprocal: the literal stays a divisor.
    let src = "dims N\n\nkernel f(x: f64[N]) -> (s: f64) {\n    s = x[i] * x[i] / 3\n}\n";
    assert_eq!(
        printed_grad(src, "f", &["x"]),
        "dims N\n\nkernel f_grad(x: f64[N], ds: f64) -> (dx: f64[N]) {\n    \
         dx[i] = 2 * ds * x[i] / 3\n}\n"
    );
}

/// `z - logsumexp(z)` in f64, the reference for a log-softmax.
fn log_softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    z.iter().map(|v| v - lse).collect()
}

#[test]
fn log_softmax_is_z_minus_logsumexp_and_stays_finite() {
    let src = "dims N\n\nkernel ls(z: f64[N]) -> (lp: f64[N]) {\n    \
               lp[j] = log(softmax[j](z[j]))\n}\n";
    let z = [1000.0, 0.0, -1000.0, 3.0];
    // exp(-2000) underflows: softmax is [1, 0, 0, e^-997] and its log would be -inf.
    let want = log_softmax(&z);
    assert_eq!(want[2], -2000.0);
    let arg = Array::from_buffer(Buffer::F64(z.to_vec()), &[4]).unwrap();
    let module = compile(src);
    let interp_out = interp::run(&module, "ls", std::slice::from_ref(&arg)).unwrap();
    let program = Program::from_source(src).unwrap();
    let jit_out = program
        .kernel("ls")
        .unwrap()
        .run(&[TensorRef::contiguous(&z, &[4]).unwrap()])
        .unwrap();
    for out in [&interp_out[0], &jit_out[0]] {
        let got = out.to_f64_vec();
        assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
        assert_close(
            "log-softmax",
            out,
            &Array::from_buffer(Buffer::F64(want.clone()), &[4]).unwrap(),
            1e-12,
        );
    }
    // Its gradient, dz = dlp - softmax(z) * sum(dlp), is finite too.
    let text = printed_grad(src, "ls", &["z"]);
    let grad = compile(&text);
    let dlp = Array::from_buffer(Buffer::F64(vec![1.0, 2.0, 3.0, 4.0]), &[4]).unwrap();
    let dz = interp::run(&grad, "ls_grad", &[arg, dlp]).unwrap();
    let p: Vec<f64> = want.iter().map(|v| v.exp()).collect();
    let want_dz: Vec<f64> = (0..4).map(|k| (k + 1) as f64 - p[k] * 10.0).collect();
    assert_close(
        "dz",
        &dz[0],
        &Array::from_buffer(Buffer::F64(want_dz), &[4]).unwrap(),
        1e-12,
    );
}

#[test]
fn cross_entropy_of_log_softmax_is_p_times_the_label_sum_minus_y() {
    // The chapter's p - y assumes labels that sum to 1; the compiler cannot, so the gradient
    // is dL * (p * Σ_c y - y), with p = exp(z - max) / sum written out.
    let src = "dims B, C\n\n\
               kernel ce(z: f64[B, C], y: f64[B, C]) -> (L: f64) {\n    \
               L = -(y[b, c] * log(softmax[c](z[b, c])))\n}\n";
    let text = printed_grad(src, "ce", &["z"]);
    assert_eq!(
        text,
        "dims B, C\n\n\
         kernel ce_grad(z: f64[B, C], y: f64[B, C], dL: f64) -> (dz: f64[B, C]) {\n    \
         L_max[b] = max[c](z[b, c])\n    \
         L_sum[b] = sum[c](exp(z[b, c] - L_max[b]))\n    \
         dL_sum[b] = sum[c](y[b, c] * dL / L_sum[b])\n    \
         dz[i0, i1] = dL_sum[i0] * exp(z[i0, i1] - L_max[i0]) - y[i0, i1] * dL\n\
         }\n"
    );
    // With one-hot labels and dL = 1 it is p - y, also for logits far apart.
    let z = [1000.0, 0.0, -1000.0, 3.0, 0.5, -0.5, 2.0, 1.0];
    let y = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    let grad = compile(&text);
    let arr = |v: &[f64]| Array::from_buffer(Buffer::F64(v.to_vec()), &[2, 4]).unwrap();
    let one = Array::from_buffer(Buffer::F64(vec![1.0]), &[]).unwrap();
    let dz = interp::run(&grad, "ce_grad", &[arr(&z), arr(&y), one]).unwrap();
    let mut want = Vec::new();
    for row in 0..2 {
        let p = log_softmax(&z[4 * row..4 * row + 4]);
        want.extend((0..4).map(|c| p[c].exp() - y[4 * row + c]));
    }
    assert_close("dz", &dz[0], &arr(&want), 1e-12);
}

#[test]
fn the_hessian_of_a_quadratic_form_is_a_plus_a_transpose_and_symmetric() {
    let src = "dims N\n\n\
               kernel quad(A: f64[N, N], x: f64[N]) -> (f: f64) {\n    \
               f = x[i] * A[i, j] * x[j]\n}\n\n\
               kernel quad_hessian = hessian(quad, wrt: [x])\n";
    let module = compile(src);
    let h = module.func("quad_hessian").unwrap();
    // Exercise 7: ∂²(x_i A_ij x_j)/∂x_k∂x_l = A_kl + A_lk.
    assert_eq!(
        to_ein::to_ein_source(&module, h).unwrap(),
        "dims N\n\n\
         kernel quad_hessian(A: f64[N, N], x: f64[N]) -> (d2f_dx2: f64[N, N]) {\n    \
         d2f_dx2[e0, i0] = A[i0, e0] + A[e0, i0]\n\
         }\n"
    );
    assert_eq!(
        einc_compiler::autodiff::symmetry::notes(h, Some(1)),
        [
            "d2f_dx2 is symmetric: d2f_dx2[i, j] = d2f_dx2[j, i] (a Hessian of a scalar: \
          Schwarz's theorem, where the second derivatives are continuous)"
        ]
    );
    // The derived op shows the symmetry itself, too.
    assert_eq!(
        einc_compiler::autodiff::symmetry::symmetric_pairs(h, h.results[0].value),
        [(0, 1)]
    );
    let a: Vec<f64> = (0..9).map(|k| f64::from(k * k % 7) - 2.0).collect();
    let args = [
        Array::from_buffer(Buffer::F64(a.clone()), &[3, 3]).unwrap(),
        Array::from_buffer(Buffer::F64(vec![0.5, -1.0, 2.0]), &[3]).unwrap(),
    ];
    let got = Program::from_source(src)
        .unwrap()
        .kernel("quad_hessian")
        .unwrap()
        .run(&[
            TensorRef::contiguous(&a, &[3, 3]).unwrap(),
            TensorRef::contiguous(&[0.5, -1.0, 2.0], &[3]).unwrap(),
        ])
        .unwrap();
    let want: Vec<f64> = (0..9).map(|k| a[k] + a[(k % 3) * 3 + k / 3]).collect();
    let want = Array::from_buffer(Buffer::F64(want), &[3, 3]).unwrap();
    assert_close("hessian (JIT)", &got[0], &want, 0.0);
    let interp_h = interp::run(&module, "quad_hessian", &args).unwrap();
    assert_close("hessian (interp)", &interp_h[0], &want, 0.0);
}

#[test]
fn jacobians_are_whole_derivative_tensors() {
    let src = "dims M, N\n\n\
               kernel f(A: f64[M, N], x: f64[N]) -> (y: f64[M]) {\n    \
               y[i] = tanh(A[i, j] * x[j])\n}\n\n\
               kernel f_jacobian = jacobian(f, wrt: [x, A])\n\
               kernel g(A: f64[M, N], x: f64[N]) -> (s: f64) {\n    s = sum[i, j](A[i, j])\n}\n\n\
               kernel g_jacobian = jacobian(g, wrt: [x])\n";
    let module = compile(src);
    let f = module.func("f_jacobian").unwrap();
    let names: Vec<&str> = f.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["dy_dx", "dy_dA"]);
    let (m, n) = (2, 3);
    let a: Vec<f64> = (0..m * n).map(|k| 0.3 * k as f64 - 0.7).collect();
    let x = [0.2, -0.4, 0.9];
    let args = [
        Array::from_buffer(Buffer::F64(a.clone()), &[m, n]).unwrap(),
        Array::from_buffer(Buffer::F64(x.to_vec()), &[n]).unwrap(),
    ];
    let got = interp::run(&module, "f_jacobian", &args).unwrap();
    // dy_i/dx_j = (1 - y_i²) A_ij; dy_i/dA_kl = δ_ik (1 - y_i²) x_l.
    let y: Vec<f64> = (0..m)
        .map(|i| (0..n).map(|j| a[i * n + j] * x[j]).sum::<f64>().tanh())
        .collect();
    let dx: Vec<f64> = (0..m * n)
        .map(|k| (1.0 - y[k / n] * y[k / n]) * a[k])
        .collect();
    let da: Vec<f64> = (0..m * m * n)
        .map(|k| {
            let (i, kk, l) = (k / (m * n), (k / n) % m, k % n);
            if i == kk {
                (1.0 - y[i] * y[i]) * x[l]
            } else {
                0.0
            }
        })
        .collect();
    assert_close(
        "dy_dx",
        &got[0],
        &Array::from_buffer(Buffer::F64(dx), &[m, n]).unwrap(),
        1e-12,
    );
    assert_close(
        "dy_dA",
        &got[1],
        &Array::from_buffer(Buffer::F64(da), &[m, m, n]).unwrap(),
        1e-12,
    );
    // An output that does not depend on the input has a zero Jacobian of the right shape.
    let zero = interp::run(&module, "g_jacobian", &args).unwrap();
    assert_eq!(zero[0].shape(), &[n]);
    assert_eq!(zero[0].to_f64_vec(), vec![0.0; n]);
}
