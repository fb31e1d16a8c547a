//! Fused attention backward against the interpreter: the gradients `grad` derives for single-head
//! attention, batched multi-head causal attention with a permuted output, a padding mask that
//! masks whole rows, and cross attention (other key extent), in f32 and f64; the cache model's
//! blocks on the host's micro-kernels and small blocks on Cranelift's (`qb = 8`), at sizes that
//! are not multiples of any block; inputs of magnitude 1e4. The compiled nest stores no
//! `T x T` buffer.

use super::super::tests::{assert_close, fused, Run, CAUSAL, CROSS, PADDED, SINGLE, SIZES};
use crate::codegen::UkernelIsa;
use crate::rng::Rng;
use einc_runtime::array::for_each_index;
use einc_runtime::{DType, Scalar};

fn value(s: Scalar) -> f64 {
    match s {
        Scalar::F32(v) => f64::from(v),
        Scalar::F64(v) => v,
        _ => f64::NAN,
    }
}

/// A forward kernel `f(Q, K, V, ...)` (the forward tests' programs), the shapes of its
/// gradient's inputs (`f`'s and the seed `dO`) by size `t`, and what it is.
struct Case {
    name: &'static str,
    source: &'static str,
    shapes: fn(usize) -> Vec<Vec<usize>>,
    /// Input `n` is a padding mask: 0 or -inf, every key of batch 0 masked when `t` is odd.
    mask: Option<usize>,
}

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

#[test]
fn fused_attention_gradients_agree_with_the_interpreter() {
    let mut rng = Rng::new(0x0bac_c0de);
    for case in CASES {
        for dtype in [DType::F32, DType::F64] {
            // The forward kernel `f` and its gradient.
            let source = format!("{}kernel g = grad(f, wrt: [Q, K, V])\n", case.source)
                .replace("TY", dtype.name());
            let (module, diags) = crate::sema::compile_source(&source);
            let module = module.unwrap_or_else(|| panic!("{}: {diags:?}", case.name));
            let configs = [
                ("", None),
                ("{qb=8,kb=8,hb=8}", Some(UkernelIsa::Cranelift)),
                ("{kb=16,hb=8}", Some(UkernelIsa::Cranelift)),
            ];
            for (blocks, ukernels) in configs {
                let program = fused(&module, (blocks, ukernels), "bwd.", case.name);
                let kernel = program.kernel("g").unwrap();
                for (t, scale) in SIZES {
                    let what = format!(
                        "{} ({dtype}, blocks {blocks:?}, t = {t}, scale {scale})",
                        case.name
                    );
                    let shapes = (case.shapes)(t);
                    let run = Run {
                        module: &module,
                        kernel: &kernel,
                        name: "g",
                        dtype,
                        what: &what,
                    };
                    let (got, want) = run.both(&mut rng, (&shapes, case.mask), (t, scale));
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
