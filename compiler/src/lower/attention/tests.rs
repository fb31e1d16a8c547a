//! Fused attention against the interpreter: single-head, batched multi-head causal, an additive
//! padding mask (whole rows masked), cross attention with other key and value extents, f64;
//! the cache model's blocks and small blocks that cross every block and tile boundary, at sizes
//! that are not multiples of any block; inputs of magnitude 1e4. The compiled nest stores no
//! `T x T` buffer.

use crate::api::{Kernel, Program, TensorRef};
use crate::codegen::UkernelIsa;
use crate::compile::{pass_list, CompileOptions};
use crate::interp;
use crate::ir::loops::{printer, BufferKind, Extent};
use crate::rng::Rng;
use einc_runtime::array::{element_count, for_each_index};
use einc_runtime::{Array, Buffer, DType, Scalar};

/// A program, the shapes of its inputs by size `t` (queries), and what it is.
struct Case {
    name: &'static str,
    source: &'static str,
    /// Input shapes from the sequence length.
    shapes: fn(usize) -> Vec<Vec<usize>>,
    /// Input `n` is a padding mask: 0 or -inf, a whole row of keys masked in batch 0.
    mask: Option<usize>,
}

pub(super) const SINGLE: &str = "
dims T, E
kernel f(Q: TY[T, E], K: TY[T, E], V: TY[T, E]) -> (O: TY[T, E]) {
    S[i, j] = Q[i, a] * K[j, a] / sqrt(E)
    P[i, j] = softmax[j](S[i, j])
    O[i, a] = P[i, j] * V[j, a]
}
";

pub(super) const CAUSAL: &str = "
dims B, H, T, E
kernel f(Q: TY[B, H, T, E], K: TY[B, H, T, E], V: TY[B, H, T, E]) -> (O: TY[B, T, H, E]) {
    S[b, h, i, j] = Q[b, h, i, e] * K[b, h, j, e] / sqrt(E)
    M[b, h, i, j] = where(j <= i, S[b, h, i, j], -inf)
    P[b, h, i, j] = softmax[j](M[b, h, i, j])
    O[b, i, h, e] = P[b, h, i, j] * V[b, h, j, e]
}
";

pub(super) const PADDED: &str = "
dims B, T, E
kernel f(Q: TY[B, T, E], K: TY[B, T, E], V: TY[B, T, E], Mask: TY[B, T]) -> (O: TY[B, T, E]) {
    S[b, i, j] = Q[b, i, e] * K[b, j, e] * 0.25 + Mask[b, j]
    P[b, i, j] = softmax[j](S[b, i, j])
    O[b, i, e] = P[b, i, j] * V[b, j, e]
}
";

pub(super) const CROSS: &str = "
dims T, U, D, F
kernel f(Q: TY[T, D], K: TY[U, D], V: TY[U, F]) -> (O: TY[T, F]) {
    S[i, j] = Q[i, d] * K[j, d]
    P[i, j] = softmax[j](S[i, j])
    O[i, f] = P[i, j] * V[j, f]
}
";

const CASES: &[Case] = &[
    Case {
        name: "single head",
        source: SINGLE,
        shapes: |t| vec![vec![t, 5], vec![t, 5], vec![t, 5]],
        mask: None,
    },
    Case {
        name: "batched multi-head causal",
        source: CAUSAL,
        shapes: |t| vec![vec![2, 3, t, 9]; 3],
        mask: None,
    },
    Case {
        name: "padding mask",
        source: PADDED,
        shapes: |t| vec![vec![2, t, 4], vec![2, t, 4], vec![2, t, 4], vec![2, t]],
        mask: Some(3),
    },
    Case {
        name: "cross attention",
        source: CROSS,
        shapes: |t| vec![vec![t, 17], vec![t + 3, 17], vec![t + 3, 11]],
        mask: None,
    },
];

pub(super) fn random_array(rng: &mut Rng, dtype: DType, shape: &[usize], scale: f64) -> Array {
    let n = element_count(shape).unwrap();
    let vals: Vec<f64> = (0..n).map(|_| rng.uniform(-scale, scale)).collect();
    let buffer = match dtype {
        DType::F32 => Buffer::F32(vals.iter().map(|&v| v as f32).collect()),
        _ => Buffer::F64(vals),
    };
    Array::from_buffer(buffer, shape).unwrap()
}

/// A padding mask: 0, or -inf for about one key in three, and every key of batch 0 masked
/// when `t` is odd (fully masked rows).
pub(super) fn mask_array(rng: &mut Rng, dtype: DType, shape: &[usize], t: usize) -> Array {
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
    let buffer = match dtype {
        DType::F32 => Buffer::F32(vals.iter().map(|&v| v as f32).collect()),
        _ => Buffer::F64(vals),
    };
    Array::from_buffer(buffer, shape).unwrap()
}

/// The documented tolerance (`docs/attention.md`): relative to the largest output magnitude
/// of the case, 1e-4 in f32 and 1e-10 in f64; NaN where the interpreter gives NaN.
pub(super) fn assert_close(what: &str, got: &Array, want: &Array) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let mut largest = 0.0f64;
    for_each_index(want.shape(), |idx| {
        let w = match want.get(idx) {
            Scalar::F32(v) => f64::from(v),
            Scalar::F64(v) => v,
            _ => 0.0,
        };
        if w.is_finite() {
            largest = largest.max(w.abs());
        }
    });
    for_each_index(want.shape(), |idx| {
        let (g, w, tol) = match (got.get(idx), want.get(idx)) {
            (Scalar::F32(g), Scalar::F32(w)) => (f64::from(g), f64::from(w), 1e-4),
            (Scalar::F64(g), Scalar::F64(w)) => (g, w, 1e-10),
            (g, w) => panic!("{what}: dtypes {g:?} {w:?}"),
        };
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * (1.0 + largest);
        assert!(ok, "{what}: at {idx:?}: got {g}, want {w}");
    });
}

/// The default pipeline with `flash-attention`'s options set to `blocks`, on the micro-kernels
/// `ukernels` (the host's when `None`).
pub(super) fn options_with(blocks: &str, ukernels: Option<UkernelIsa>) -> CompileOptions {
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

/// Whether a temporary of the loop module holds two axes of extent `T` (a score matrix).
pub(super) fn stores_scores(program: &Program) -> bool {
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

/// `module` compiled with `flash-attention{blocks}` on `ukernels`, its loop IR checked to
/// contain `mark` (the sign of the fused nest) and no `T x T` temporary.
pub(super) fn fused(
    module: &crate::ir::tensor::Module,
    (blocks, ukernels): (&str, Option<UkernelIsa>),
    mark: &str,
    name: &str,
) -> Program {
    let opts = options_with(blocks, ukernels);
    let program = Program::from_module_with(module.clone(), &opts)
        .unwrap_or_else(|e| panic!("{name} {blocks}: {e}"));
    let text = printer::print_module(program.loop_module());
    assert!(text.contains(mark), "{name}: not fused ({mark})\n{text}");
    assert!(!stores_scores(&program), "{name}: stores T x T\n{text}");
    program
}

/// The sizes every case runs at, `(t, the inputs' magnitude)`: none a multiple of a block
/// but 8, inputs of magnitude 1e4, and no rows at all.
pub(super) const SIZES: [(usize, f64); 11] = [
    (1, 2.0),
    (2, 2.0),
    (3, 2.0),
    (5, 2.0),
    (8, 2.0),
    (9, 2.0),
    (17, 2.0),
    (33, 2.0),
    (70, 2.0),
    (13, 1e4),
    (0, 1.0),
];

/// A compiled kernel and the module it comes from, run side by side.
pub(super) struct Run<'a> {
    pub module: &'a crate::ir::tensor::Module,
    pub kernel: &'a Kernel,
    pub name: &'a str,
    /// The inputs' dtype.
    pub dtype: DType,
    /// What the run is, for messages.
    pub what: &'a str,
}

impl Run<'_> {
    /// Random inputs of `shapes` of magnitude `scale` (input `mask` a padding mask for size
    /// `t`), and the kernel's and the interpreter's results on them.
    pub fn both(
        &self,
        rng: &mut Rng,
        (shapes, mask): (&[Vec<usize>], Option<usize>),
        (t, scale): (usize, f64),
    ) -> (Vec<Array>, Vec<Array>) {
        let what = self.what;
        let dtype = self.dtype;
        let inputs: Vec<Array> = shapes
            .iter()
            .enumerate()
            .map(|(n, s)| match mask {
                Some(m) if m == n => mask_array(rng, dtype, s, t),
                _ => random_array(rng, dtype, s, scale),
            })
            .collect();
        let want =
            interp::run(self.module, self.name, &inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
        let refs: Vec<TensorRef> = inputs.iter().map(TensorRef::from_array).collect();
        let got = self
            .kernel
            .run(&refs)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        (got, want)
    }
}

#[test]
fn fused_attention_agrees_with_the_interpreter() {
    let mut rng = Rng::new(0x0f1a_5a77);
    for case in CASES {
        for dtype in [DType::F32, DType::F64] {
            let source = case.source.replace("TY", dtype.name());
            let (module, diags) = crate::sema::compile_source(&source);
            let module = module.unwrap_or_else(|| panic!("{}: {diags:?}", case.name));
            for blocks in ["", "{qb=4,kb=8,hb=8}", "{qb=8,kb=16,hb=16}"] {
                let program = fused(&module, (blocks, None), "ukernel", case.name);
                let kernel = program.kernel("f").unwrap();
                for (t, scale) in SIZES {
                    let what = format!(
                        "{} ({dtype}, blocks {blocks:?}, t = {t}, scale {scale})",
                        case.name
                    );
                    let shapes = (case.shapes)(t);
                    let run = Run {
                        module: &module,
                        kernel: &kernel,
                        name: "f",
                        dtype,
                        what: &what,
                    };
                    let (got, want) = run.both(&mut rng, (&shapes, case.mask), (t, scale));
                    if scale > 1e3 {
                        for_each_index(got[0].shape(), |idx| {
                            let v = match got[0].get(idx) {
                                Scalar::F32(v) => f64::from(v),
                                Scalar::F64(v) => v,
                                _ => 0.0,
                            };
                            assert!(
                                v.is_finite() || case.mask.is_some(),
                                "{what}: {v} at {idx:?}"
                            );
                        });
                    }
                    assert_close(&what, &got[0], &want[0]);
                }
            }
        }
    }
}
