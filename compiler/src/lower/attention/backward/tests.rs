//! Fused attention backward against the interpreter: the gradients `grad` derives for single-head
//! attention, batched multi-head causal attention with a permuted output, a padding mask that
//! masks whole rows, and cross attention (other key extent), in f32 and f64; the cache model's
//! blocks on the host's micro-kernels and small blocks on Cranelift's (`qb = 8`), at sizes that
//! are not multiples of any block; inputs of magnitude 1e4. The compiled nest stores no
//! `T x T` buffer.

use crate::api::{Program, TensorRef};
use crate::codegen::UkernelIsa;
use crate::compile::{pass_list, CompileOptions};
use crate::interp;
use crate::ir::loops::{printer, BufferKind, Extent};
use crate::rng::Rng;
use einc_runtime::array::{element_count, for_each_index};
use einc_runtime::{Array, Buffer, DType, Scalar};

/// A program whose kernel `g` is a gradient, the shapes of its inputs by size `t`, and what it
/// is.
struct Case {
    name: &'static str,
    source: &'static str,
    shapes: fn(usize) -> Vec<Vec<usize>>,
    /// Input `n` is a padding mask: 0 or -inf, every key of batch 0 masked when `t` is odd.
    mask: Option<usize>,
}

const SINGLE: &str = "
dims T, E
kernel f(Q: TY[T, E], K: TY[T, E], V: TY[T, E]) -> (O: TY[T, E]) {
    S[i, j] = Q[i, a] * K[j, a] / sqrt(E)
    P[i, j] = softmax[j](S[i, j])
    O[i, a] = P[i, j] * V[j, a]
}
kernel g = grad(f, wrt: [Q, K, V])
";

const CAUSAL: &str = "
dims B, H, T, E
kernel f(Q: TY[B, H, T, E], K: TY[B, H, T, E], V: TY[B, H, T, E]) -> (O: TY[B, T, H, E]) {
    S[b, h, i, j] = Q[b, h, i, e] * K[b, h, j, e] / sqrt(E)
    M[b, h, i, j] = where(j <= i, S[b, h, i, j], -inf)
    P[b, h, i, j] = softmax[j](M[b, h, i, j])
    O[b, i, h, e] = P[b, h, i, j] * V[b, h, j, e]
}
kernel g = grad(f, wrt: [Q, K, V])
";

const PADDED: &str = "
dims B, T, E
kernel f(Q: TY[B, T, E], K: TY[B, T, E], V: TY[B, T, E], Mask: TY[B, T]) -> (O: TY[B, T, E]) {
    S[b, i, j] = Q[b, i, e] * K[b, j, e] * 0.25 + Mask[b, j]
    P[b, i, j] = softmax[j](S[b, i, j])
    O[b, i, e] = P[b, i, j] * V[b, j, e]
}
kernel g = grad(f, wrt: [Q, K, V])
";

const CROSS: &str = "
dims T, U, D, F
kernel f(Q: TY[T, D], K: TY[U, D], V: TY[U, F]) -> (O: TY[T, F]) {
    S[i, j] = Q[i, d] * K[j, d]
    P[i, j] = softmax[j](S[i, j])
    O[i, f] = P[i, j] * V[j, f]
}
kernel g = grad(f, wrt: [Q, K, V])
";

const CASES: &[Case] = &[
    Case {
        name: "single head",
        source: SINGLE,
        shapes: |t| vec![vec![t, 5], vec![t, 5], vec![t, 5], vec![t, 5]],
        mask: None,
    },
    Case {
        name: "batched multi-head causal",
        source: CAUSAL,
        shapes: |t| {
            let mut s = vec![vec![2, 3, t, 9]; 3];
            s.push(vec![2, t, 3, 9]);
            s
        },
        mask: None,
    },
    Case {
        name: "padding mask",
        source: PADDED,
        shapes: |t| {
            vec![
                vec![2, t, 4],
                vec![2, t, 4],
                vec![2, t, 4],
                vec![2, t],
                vec![2, t, 4],
            ]
        },
        mask: Some(3),
    },
    Case {
        name: "cross attention",
        source: CROSS,
        shapes: |t| vec![vec![t, 17], vec![t + 3, 17], vec![t + 3, 11], vec![t, 11]],
        mask: None,
    },
];

fn random_array(rng: &mut Rng, dtype: DType, shape: &[usize], scale: f64) -> Array {
    let n = element_count(shape).unwrap();
    let vals: Vec<f64> = (0..n).map(|_| rng.uniform(-scale, scale)).collect();
    array(dtype, shape, vals)
}

fn array(dtype: DType, shape: &[usize], vals: Vec<f64>) -> Array {
    let buffer = match dtype {
        DType::F32 => Buffer::F32(vals.iter().map(|&v| v as f32).collect()),
        _ => Buffer::F64(vals),
    };
    Array::from_buffer(buffer, shape).unwrap()
}

/// A padding mask: 0, or -inf for about one key in three, and every key of batch 0 masked
/// when `t` is odd (fully masked rows).
fn mask_array(rng: &mut Rng, dtype: DType, shape: &[usize], t: usize) -> Array {
    let n = element_count(shape).unwrap();
    let row = shape[1];
    let vals: Vec<f64> = (0..n)
        .map(|k| {
            if (k < row && t % 2 == 1) || rng.below(3) == 0 {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    array(dtype, shape, vals)
}

fn value(s: Scalar) -> f64 {
    match s {
        Scalar::F32(v) => f64::from(v),
        Scalar::F64(v) => v,
        _ => f64::NAN,
    }
}

/// The documented tolerance (`docs/attention.md`): relative to the largest finite magnitude
/// of the expected output, 1e-4 in f32 and 1e-10 in f64; NaN exactly where the interpreter
/// gives NaN.
fn assert_close(what: &str, got: &Array, want: &Array) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let mut largest = 0.0f64;
    for_each_index(want.shape(), |idx| {
        let w = value(want.get(idx));
        if w.is_finite() {
            largest = largest.max(w.abs());
        }
    });
    let tol = if want.dtype() == DType::F32 {
        1e-4
    } else {
        1e-10
    };
    for_each_index(want.shape(), |idx| {
        let (g, w) = (value(got.get(idx)), value(want.get(idx)));
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * (1.0 + largest);
        assert!(ok, "{what}: at {idx:?}: got {g}, want {w}");
    });
}

/// The default pipeline with `flash-attention`'s options set to `blocks`, on `ukernels`.
fn options_with(blocks: &str, ukernels: Option<UkernelIsa>) -> CompileOptions {
    let mut opts = CompileOptions {
        ukernels,
        ..CompileOptions::default()
    };
    let list: Vec<String> = pass_list(&opts)
        .into_iter()
        .map(|p| {
            if p == "flash-attention" {
                format!("flash-attention{blocks}")
            } else {
                p
            }
        })
        .collect();
    opts.pipeline = Some(list.join(","));
    opts
}

/// Whether a temporary of the loop module holds two axes of a sequence extent.
fn stores_t_by_t(program: &Program) -> bool {
    program.loop_module().funcs.iter().any(|f| {
        f.buffers.iter().any(|b| {
            b.kind == BufferKind::Temp
                && b.shape
                    .iter()
                    .filter(|e| matches!(e, Extent::Dim(d) if d == "T" || d == "U"))
                    .count()
                    >= 2
        })
    })
}

#[test]
fn fused_attention_gradients_agree_with_the_interpreter() {
    let mut rng = Rng::new(0x0bac_c0de);
    for case in CASES {
        for dtype in [DType::F32, DType::F64] {
            let source = case.source.replace("TY", dtype.name());
            let (module, diags) = crate::sema::compile_source(&source);
            let module = module.unwrap_or_else(|| panic!("{}: {diags:?}", case.name));
            let configs = [
                ("", None),
                ("{qb=8,kb=8,hb=8}", Some(UkernelIsa::Cranelift)),
                ("{kb=16,hb=8}", Some(UkernelIsa::Cranelift)),
            ];
            for (blocks, ukernels) in configs {
                let opts = options_with(blocks, ukernels);
                let program = Program::from_module_with(module.clone(), &opts)
                    .unwrap_or_else(|e| panic!("{} {blocks}: {e}", case.name));
                let text = printer::print_module(program.loop_module());
                assert!(
                    text.contains("bwd."),
                    "{}: the gradient is not fused\n{text}",
                    case.name
                );
                assert!(
                    !stores_t_by_t(&program),
                    "{}: stores T x T\n{text}",
                    case.name
                );
                let kernel = program.kernel("g").unwrap();
                let sizes = [1, 2, 3, 5, 8, 9, 17, 33, 70].map(|t| (t, 2.0));
                for (t, scale) in sizes.into_iter().chain([(13, 1e4), (0, 1.0)]) {
                    let shapes = (case.shapes)(t);
                    let inputs: Vec<Array> = shapes
                        .iter()
                        .enumerate()
                        .map(|(n, s)| match case.mask {
                            Some(m) if m == n => mask_array(&mut rng, dtype, s, t),
                            _ => random_array(&mut rng, dtype, s, scale),
                        })
                        .collect();
                    let what = format!(
                        "{} ({dtype}, blocks {blocks:?}, t = {t}, scale {scale})",
                        case.name
                    );
                    let want = interp::run(&module, "g", &inputs)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    let refs: Vec<TensorRef> = inputs.iter().map(TensorRef::from_array).collect();
                    let got = kernel.run(&refs).unwrap_or_else(|e| panic!("{what}: {e}"));
                    for (n, (got, want)) in got.iter().zip(&want).enumerate() {
                        if scale > 1e3 {
                            for_each_index(got.shape(), |idx| {
                                let v = value(got.get(idx));
                                let nan = value(want.get(idx)).is_nan();
                                assert!(v.is_finite() || nan, "{what}: output {n}: {v} at {idx:?}");
                            });
                        }
                        assert_close(&format!("{what}, output {n}"), got, want);
                    }
                }
            }
        }
    }
}
