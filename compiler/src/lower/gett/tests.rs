//! GETT nests against the interpreter, in the loop-IR evaluator: sizes around every register
//! tile and cache block boundary, every input layout the evaluator can express (C, Fortran,
//! padded, broadcast with stride 0), both kernel variants, swapped roles, packed and unpacked
//! A, outer batch and reduced loops (empty ones included), diagonals, fixed positions, and C
//! written directly or through a tile.
//!
//! Inputs hold small integers (as floats), so every partial sum is exact whatever the
//! summation order and the results must equal the interpreter's bit for bit: any indexing
//! mistake changes an integer.

use crate::interp;
use crate::ir::loops::{self, eval, printer, verify};
use crate::ir::tensor::schedule::{
    BlockLoop, EpilogueStep, GemmSchedule, MicroKernel, Packing, Schedule,
};
use crate::ir::tensor::{self, parser::parse_module, IndexId, OpKind};
use crate::lower::lower_module;
use crate::rng::Rng;
use einc_runtime::array::{c_strides, element_count};
use einc_runtime::{Array, Buffer, DType};
use std::collections::HashMap;

/// How a test input is laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    C,
    Fortran,
    /// Every stride doubled, offset 1.
    Padded,
    /// The first axis has stride 0: every slice along it is the same.
    Broadcast,
}

const LAYOUTS: [Layout; 4] = [
    Layout::C,
    Layout::Fortran,
    Layout::Padded,
    Layout::Broadcast,
];

/// An array of `shape` holding integers in -3..=3 (as `dtype`), laid out as `layout`.
fn array(rng: &mut Rng, dtype: DType, shape: &[usize], layout: Layout) -> Array {
    let n = element_count(shape).unwrap();
    let values = |rng: &mut Rng, len: usize| -> Buffer {
        let v: Vec<f64> = (0..len).map(|_| rng.below(7) as f64 - 3.0).collect();
        match dtype {
            DType::F32 => Buffer::F32(v.iter().map(|&x| x as f32).collect()),
            _ => Buffer::F64(v),
        }
    };
    let c = c_strides(shape).unwrap();
    match layout {
        Layout::C => Array::from_buffer(values(rng, n), shape).unwrap(),
        Layout::Fortran => {
            let mut strides = Vec::new();
            let mut acc = 1;
            for &e in shape {
                strides.push(acc);
                acc *= e.max(1);
            }
            Array::with_layout(values(rng, n.max(1)), shape, &strides, 0).unwrap()
        }
        Layout::Padded => {
            let strides: Vec<usize> = c.iter().map(|s| 2 * s).collect();
            Array::with_layout(values(rng, 2 * n + 1), shape, &strides, 1).unwrap()
        }
        Layout::Broadcast => {
            let mut strides = c.clone();
            if let Some(s) = strides.first_mut() {
                *s = 0;
            }
            Array::with_layout(values(rng, n.max(1)), shape, &strides, 0).unwrap()
        }
    }
}

/// The module in `text` with op `op` of its function given `schedule`.
fn scheduled(text: &str, op: usize, schedule: Schedule) -> tensor::Module {
    let mut m = parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let OpKind::Generic(g) = &mut m.funcs[0].ops[op].kind;
    g.schedule = Some(schedule);
    if let Err(e) = tensor::verify::verify_module(&m) {
        panic!("{e:?}\n{}", tensor::printer::print_module(&m));
    }
    m
}

/// A complete `gemm` schedule: indices by position, then `[mr, nr, mc, kc, nc]`.
fn gemm(
    outer: &[u32],
    [m, n, k]: [u32; 3],
    [mr, nr, mc, kc, nc]: [u64; 5],
    pack_a: bool,
    blocks: &[BlockLoop],
) -> Schedule {
    let ids = |v: &[u32]| v.iter().map(|&i| IndexId(i)).collect::<Vec<_>>();
    Schedule::Gemm(GemmSchedule {
        outer: Some(ids(outer)),
        m: Some(ids(&[m])),
        n: Some(ids(&[n])),
        k: Some(ids(&[k])),
        mr: Some(mr),
        nr: Some(nr),
        mc: Some(mc),
        kc: Some(kc),
        nc: Some(nc),
        pack: Some(Packing { a: pack_a, b: true }),
        ukernel: Some(MicroKernel::Simd128),
        parallel: Some(Vec::new()),
        parallel_blocks: Some(blocks.to_vec()),
        epilogue: None,
    })
}

/// Lowers `m`, checks the loop IR, and runs the kernel's every function (the general one and
/// its variants, on inputs meeting their facts) against the interpreter for each size set.
fn check(m: &tensor::Module, sizes: &[Vec<(&str, usize)>], seed: u64) -> loops::Module {
    let lowered = lower_module(m).unwrap_or_else(|e| panic!("{e}"));
    let text = printer::print_module(&lowered);
    if let Err(e) = verify::verify_module(&lowered) {
        panic!("{e:?}\n{text}");
    }
    let reparsed = loops::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(printer::print_module(&reparsed), text);
    let f = &m.funcs[0];
    let mut rng = Rng::new(seed);
    for (case, dims) in sizes.iter().enumerate() {
        let dims: HashMap<&str, usize> = dims.iter().copied().collect();
        let size = |e: &tensor::Extent| match e {
            tensor::Extent::Fixed(n) => *n as usize,
            tensor::Extent::Dim(d) => m
                .dim_value(d)
                .map_or_else(|| dims[d.as_str()], |n| n as usize),
        };
        for lf in lowered.funcs.iter() {
            let variant = lf.variant_of.is_some();
            let layouts: &[Layout] = if variant { &[Layout::C] } else { &LAYOUTS };
            for (rot, _) in layouts.iter().enumerate() {
                let inputs: Vec<Array> = f
                    .params
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| {
                        let ty = &f.value(p).ty;
                        let shape: Vec<usize> = ty.shape.iter().map(size).collect();
                        array(
                            &mut rng,
                            ty.dtype,
                            &shape,
                            layouts[(k + rot + case) % layouts.len()],
                        )
                    })
                    .collect();
                let want = interp::run_function(m, f, &inputs).unwrap();
                let got = eval::run_body(&lowered, lf, &inputs)
                    .unwrap_or_else(|e| panic!("@{} {dims:?}: {e}\n{text}", lf.name));
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(
                        g.to_f64_vec(),
                        w.to_f64_vec(),
                        "@{} at {dims:?}, layouts from {rot}\n{text}",
                        lf.name
                    );
                }
            }
        }
    }
    lowered
}

/// Every `(M, N, K)` of the given lists.
fn grid<'a>(ms: &[usize], ns: &[usize], ks: &[usize]) -> Vec<Vec<(&'a str, usize)>> {
    let mut out = Vec::new();
    for &m in ms {
        for &n in ns {
            for &k in ks {
                out.push(vec![("M", m), ("N", n), ("K", k)]);
            }
        }
    }
    out
}

const MATMUL: &str = "dims M, N, K
func @mm(%A: f32[M, K], %B: f32[K, N]) -> (C: f32[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  return C = %C
}
";

#[test]
fn matmul_at_every_size_around_the_tiles_and_blocks() {
    // mr 2, nr 4, mc 4, kc 3, nc 8: sizes cross every boundary at least twice.
    for pack_a in [true, false] {
        let m = scheduled(
            MATMUL,
            0,
            gemm(&[], [0, 1, 2], [2, 4, 4, 3, 8], pack_a, &[]),
        );
        let sizes = grid(
            &[1, 2, 3, 4, 5, 9],
            &[1, 3, 4, 5, 8, 9, 17],
            &[0, 1, 2, 3, 4, 7],
        );
        let lowered = check(&m, &sizes, 1);
        let text = printer::print_module(&lowered);
        assert!(text.contains("ukernel @gemm.f32.2x4"), "{text}");
        assert_eq!(text.contains("%Ap"), pack_a, "{text}");
    }
}

#[test]
fn both_kernel_variants_and_both_roles_compute_the_same() {
    // Roles swapped: A is the second input, C's columns run along its first axis, so even the
    // contiguous variant goes through a tile, and no variant is emitted.
    let m = scheduled(MATMUL, 0, gemm(&[], [1, 0, 2], [3, 4, 6, 2, 4], true, &[]));
    let lowered = check(&m, &grid(&[1, 4, 5], &[1, 3, 7], &[1, 5]), 2);
    assert_eq!(lowered.funcs.len(), 1);
    let m = scheduled(MATMUL, 0, gemm(&[], [0, 1, 2], [3, 4, 6, 2, 4], true, &[]));
    let lowered = check(&m, &grid(&[1, 4, 5], &[1, 3, 7], &[1, 5]), 2);
    assert_eq!(
        lowered.funcs.len(),
        2,
        "a general function and a contiguous variant"
    );
    // The general function writes C through a tile (its strides are the caller's); the
    // contiguous variant hands C to the kernel directly.
    let general = printer::print_function(&lowered.funcs[0]);
    let variant = printer::print_function(&lowered.funcs[1]);
    assert!(general.contains("%Ct"), "{general}");
    assert!(!variant.contains("%Ct"), "{variant}");
}

#[test]
fn f64_tiles_and_parallel_blocks_with_scoped_packs() {
    let text = MATMUL.replace("f32", "f64");
    let blocks = [BlockLoop::Jc, BlockLoop::Ic];
    let m = scheduled(
        &text,
        0,
        gemm(&[], [0, 1, 2], [3, 2, 3, 2, 4], true, &blocks),
    );
    let lowered = check(&m, &grid(&[1, 3, 4, 7], &[1, 2, 3, 5], &[0, 1, 3]), 3);
    let text = printer::print_module(&lowered);
    assert!(text.contains("ukernel @gemm.f64.3x2"), "{text}");
    assert!(
        text.contains("scoped %Ap") && text.contains("scoped %Bp"),
        "{text}"
    );
    // B's packing panels and the `jr` panels are parallel with the `ic` blocks (code
    // generation runs `ic` or `jr` in parallel, docs/threads.md); without parallel blocks
    // they are not.
    let jr_parallel = |text: &str| -> Vec<bool> {
        text.lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("for %jr") || l.starts_with("for %jp"))
            .map(|l| l.ends_with("parallel {"))
            .collect()
    };
    let flags = jr_parallel(&text);
    assert!(!flags.is_empty() && flags.iter().all(|&p| p), "{text}");
    let serial = scheduled(
        &MATMUL.replace("f32", "f64"),
        0,
        gemm(&[], [0, 1, 2], [3, 2, 3, 2, 4], true, &[]),
    );
    let serial = printer::print_module(&lower_module(&serial).unwrap());
    assert!(jr_parallel(&serial).iter().all(|&p| !p), "{serial}");
}

#[test]
fn batches_outer_reduced_loops_and_empty_extents() {
    // C[b, i, j] = sum_k,l A[b, i, k, l] B[l, b, k, j]: b is a batch loop, l an outer reduced
    // loop (C accumulates over it), K = 0 and L = 0 must give zeros.
    let text = "dims Bt, M, N, K, L
func @f(%A: f32[Bt, M, K, L], %B: f32[L, Bt, K, N]) -> (C: f32[Bt, M, N]) {
  %C = generic (b: Bt, i: M, j: N, k: K, l: L) ins(%A[b, i, k, l], %B[l, b, k, j]) -> [b, i, j] reduce add over (k, l) { mul(%0, %1) } : f32
  return C = %C
}
";
    let m = scheduled(
        text,
        0,
        gemm(&[0, 4], [1, 2, 3], [2, 4, 2, 2, 4], true, &[]),
    );
    let mut sizes = Vec::new();
    for (bt, l) in [(1, 1), (2, 3), (3, 0), (0, 2)] {
        for (mm, n, k) in [(1, 1, 1), (3, 5, 3), (2, 4, 0), (5, 9, 5)] {
            sizes.push(vec![("Bt", bt), ("M", mm), ("N", n), ("K", k), ("L", l)]);
        }
    }
    check(&m, &sizes, 4);
}

#[test]
fn diagonals_fixed_positions_and_transposed_outputs() {
    // C[k, i] = sum_j A[0, i, i, j] B[j, k]: A's m index walks a diagonal, its first axis is a
    // fixed position, and C's columns are its first axis (so it goes through a tile even in
    // the contiguous variant).
    let text = "dims M, N, K
func @f(%A: f32[1, M, M, K], %B: f32[K, N]) -> (C: f32[N, M]) {
  %C = generic (i: M, k: N, j: K) ins(%A[0, i, i, j], %B[j, k]) -> [k, i] reduce add over (j) { mul(%0, %1) } : f32
  return C = %C
}
";
    for pack_a in [true, false] {
        let m = scheduled(text, 0, gemm(&[], [0, 1, 2], [2, 4, 4, 2, 4], pack_a, &[]));
        check(&m, &grid(&[1, 2, 3, 5], &[1, 4, 6], &[1, 3]), 5);
    }
}

#[test]
fn a_temporary_result_is_written_by_the_kernel_directly() {
    let text = "dims M, N, K
func @f(%A: f32[M, K], %B: f32[K, N]) -> (D: f32[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %D = generic (i: M, j: N) ins(%C[i, j]) -> [i, j] { relu(%0) } : f32
  return D = %D
}
";
    let m = scheduled(text, 0, gemm(&[], [0, 1, 2], [2, 4, 4, 2, 8], true, &[]));
    let lowered = check(&m, &grid(&[1, 3, 5], &[2, 5], &[0, 3]), 6);
    let general = printer::print_function(&lowered.funcs[0]);
    assert!(!general.contains("%Ct"), "{general}");
}

/// `schedule` with the epilogue `steps`.
fn with_epilogue(schedule: Schedule, steps: &[EpilogueStep]) -> Schedule {
    let Schedule::Gemm(mut s) = schedule else {
        unreachable!("a gemm schedule")
    };
    s.epilogue = Some(steps.to_vec());
    Schedule::Gemm(s)
}

/// The functions of `lowered` that hold no value named after `name` (the epilogue's
/// intermediates are never stored).
fn stores_no(lowered: &loops::Module, name: &str) -> bool {
    lowered
        .funcs
        .iter()
        .all(|f| f.buffers.iter().all(|b| b.name != name))
}

#[test]
fn epilogues_scale_divide_bias_and_relu_at_every_boundary() {
    use EpilogueStep::*;
    // Two maps after the GEMM: the division, then relu(x + b[j]). kc = 3 splits K in blocks,
    // so the partial sums and the finished tile take different calls.
    let chain = "dims M, N, K
func @f(%A: f32[M, K], %B: f32[K, N], %b: f32[N]) -> (D: f32[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %S = generic (i: M, j: N) ins(%C[i, j]) -> [i, j] { div(%0, 3:f32) } : f32
  %D = generic (i: M, j: N) ins(%S[i, j], %b[j]) -> [i, j] { relu(add(%0, %1)) } : f32
  return D = %D
}
";
    // One map: a scale by a dim, a bias along M read at a fixed position too, max(0, x).
    let one = "dims M, N, K
func @f(%A: f32[M, K], %B: f32[K, N], %b: f32[2, M]) -> (D: f32[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %D = generic (i: M, j: N) ins(%C[i, j], %b[1, i]) -> [i, j] { max(0:f32, add(%1, mul(sqrt(dim(K):f32), %0))) } : f32
  return D = %D
}
";
    let sizes = grid(&[1, 2, 3, 5, 9], &[1, 3, 4, 5, 9], &[1, 2, 3, 4, 7]);
    for (text, steps, seed) in [
        (chain, &[Divide, Bias, Relu][..], 11),
        (one, &[Scale, Bias, Relu][..], 12),
    ] {
        for pack_a in [true, false] {
            let s = gemm(&[], [0, 1, 2], [2, 4, 4, 3, 8], pack_a, &[]);
            let m = scheduled(text, 0, with_epilogue(s, steps));
            let lowered = check(&m, &sizes, seed);
            assert!(stores_no(&lowered, "C") && stores_no(&lowered, "S"));
            let text = printer::print_module(&lowered);
            assert!(text.contains(", relu"), "{text}");
            assert!(text.contains(", bias %b"), "{text}");
        }
    }
}

#[test]
fn epilogues_with_batches_outer_reduced_loops_and_transposed_outputs() {
    use EpilogueStep::*;
    // l is an outer reduced loop: the epilogue runs only after its last iteration. The output
    // is transposed (C's columns are its first axis), so it goes through the tile.
    let text = "dims Bt, M, N, K, L
func @f(%A: f32[Bt, M, K, L], %B: f32[L, Bt, K, N], %b: f32[Bt]) -> (D: f32[N, Bt, M]) {
  %C = generic (b: Bt, i: M, j: N, k: K, l: L) ins(%A[b, i, k, l], %B[l, b, k, j]) -> [j, b, i] reduce add over (k, l) { mul(%0, %1) } : f32
  %D = generic (j: N, b: Bt, i: M) ins(%C[j, b, i], %b[b]) -> [j, b, i] { relu(add(mul(%0, -0.5:f32), %1)) } : f32
  return D = %D
}
";
    let steps = [Scale, Bias, Relu];
    for (m_n, pack_a) in [([1, 2, 3], true), ([2, 1, 3], false)] {
        let s = gemm(&[0, 4], m_n, [2, 4, 2, 2, 4], pack_a, &[]);
        let m = scheduled(text, 0, with_epilogue(s, &steps));
        let mut sizes = Vec::new();
        for (bt, l) in [(1, 1), (2, 3), (3, 0), (0, 2)] {
            for (mm, n, k) in [(1, 1, 1), (3, 5, 3), (2, 4, 0), (5, 9, 5)] {
                sizes.push(vec![("Bt", bt), ("M", mm), ("N", n), ("K", k), ("L", l)]);
            }
        }
        check(&m, &sizes, 13);
    }
}

#[test]
fn cast_epilogues_convert_the_finished_tile() {
    use EpilogueStep::*;
    // K is fixed and fits one block (kc = 8): the tile is converted as it is stored.
    for (dtype, steps) in [
        ("i32", &[Divide, Cast][..]),
        ("f64", &[Divide, Relu, Cast][..]),
    ] {
        let body = if steps.contains(&Relu) {
            format!("cast<{dtype}>(relu(div(%0, 2:f32)))")
        } else {
            format!("cast<{dtype}>(div(%0, 2:f32))")
        };
        let text = format!(
            "dims M, N
func @f(%A: f32[M, 7], %B: f32[7, N]) -> (D: {dtype}[M, N]) {{
  %C = generic (i: M, j: N, k: 7) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) {{ mul(%0, %1) }} : f32
  %D = generic (i: M, j: N) ins(%C[i, j]) -> [i, j] {{ {body} }} : {dtype}
  return D = %D
}}
"
        );
        for pack_a in [true, false] {
            let s = gemm(&[], [0, 1, 2], [3, 4, 6, 8, 8], pack_a, &[]);
            let m = scheduled(&text, 0, with_epilogue(s, steps));
            let sizes: Vec<Vec<(&str, usize)>> = [1, 3, 4, 7]
                .iter()
                .flat_map(|&mm| [1, 4, 5, 9].map(|n| vec![("M", mm), ("N", n)]))
                .collect();
            let lowered = check(&m, &sizes, 14);
            assert!(stores_no(&lowered, "C"));
        }
    }
    // With kc < K, a cast would store partial sums in its dtype: the verifier says no.
    let text = "dims M, N, K
func @f(%A: f32[M, K], %B: f32[K, N]) -> (D: i32[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %D = generic (i: M, j: N) ins(%C[i, j]) -> [i, j] { cast<i32>(%0) } : i32
  return D = %D
}
";
    let mut m = parse_module(text).unwrap();
    let OpKind::Generic(g) = &mut m.funcs[0].ops[0].kind;
    let s = gemm(&[], [0, 1, 2], [3, 4, 6, 8, 8], true, &[]);
    g.schedule = Some(with_epilogue(s, &[Cast]));
    let errors = tensor::verify::verify_module(&m).unwrap_err();
    assert!(errors[0].message.contains("one K block"), "{:?}", errors[0]);
}

#[test]
fn an_epilogue_that_is_not_there_is_a_verifier_error() {
    use EpilogueStep::*;
    // The map adds the bias, then scales: out of order for the micro-kernel; and C is
    // returned, so it must be stored anyway.
    let text = "dims M, N, K
func @f(%A: f32[M, K], %B: f32[K, N], %b: f32[N]) -> (D: f32[M, N], E: f32[M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %D = generic (i: M, j: N) ins(%C[i, j], %b[j]) -> [i, j] { mul(add(%0, %1), 2:f32) } : f32
  return D = %D, E = %C
}
";
    for steps in [&[Bias, Scale][..], &[Scale][..], &[Relu][..]] {
        let mut m = parse_module(text).unwrap();
        let OpKind::Generic(g) = &mut m.funcs[0].ops[0].kind;
        let s = gemm(&[], [0, 1, 2], [3, 4, 6, 8, 8], true, &[]);
        g.schedule = Some(with_epilogue(s, steps));
        assert!(tensor::verify::verify_module(&m).is_err(), "{steps:?}");
    }
}

#[test]
fn the_gemms_of_a_kernel_share_pack_buffers_sized_by_known_extents() {
    // Two GEMMs (the second reads the first's result): one A pack and one B pack serve both,
    // each grown to the larger request; K = 5 is known, so the packs are 5 deep, not kc = 64.
    let text = "dims M, N
func @f(%A: f32[M, 5], %B: f32[5, N], %E: f32[N, 3]) -> (D: f32[M, 3]) {
  %C = generic (i: M, j: N, k: 5) ins(%A[i, k], %B[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %D = generic (i: M, l: 3, j: N) ins(%C[i, j], %E[j, l]) -> [i, l] reduce add over (j) { mul(%0, %1) } : f32
  return D = %D
}
";
    let mut m = parse_module(text).unwrap();
    for (op, kc) in [(0, 64), (1, 3)] {
        let OpKind::Generic(g) = &mut m.funcs[0].ops[op].kind;
        g.schedule = Some(gemm(&[], [0, 1, 2], [2, 4, 4, kc, 8], true, &[]));
    }
    tensor::verify::verify_module(&m).unwrap();
    let sizes: Vec<Vec<(&str, usize)>> = [(1, 1), (3, 4), (5, 9), (9, 13)]
        .iter()
        .map(|&(mm, n)| vec![("M", mm), ("N", n)])
        .collect();
    let lowered = check(&m, &sizes, 15);
    for f in &lowered.funcs {
        let packs: Vec<String> = f
            .buffers
            .iter()
            .filter(|b| b.name.starts_with("Ap") || b.name.starts_with("Bp"))
            .map(|b| format!("{}: {:?}", b.name, b.shape))
            .collect();
        assert_eq!(
            packs,
            [
                "Bp: [Fixed(2), Fixed(5), Fixed(4)]",
                "Ap: [Fixed(2), Fixed(5), Fixed(2)]"
            ],
            "{}",
            printer::print_function(f)
        );
    }
}

/// `schedule` with `pack` leaving out B.
fn without_b_packing(schedule: Schedule) -> Schedule {
    let Schedule::Gemm(mut s) = schedule else {
        unreachable!("a gemm schedule")
    };
    s.pack = s.pack.map(|p| Packing { b: false, ..p });
    Schedule::Gemm(s)
}

#[test]
fn b_already_one_panel_is_read_in_place_and_packed_everywhere_else() {
    // C[b, i, j] = sum_k A[b, i, k] B[b, k, j] with N = nr = 8 fixed: the contiguous variant
    // hands B's rows to the kernel in place; the general function (any strides) packs B.
    // K = 0 still writes zeros; M, K cross mr 3, mc 6 and kc 3 twice.
    let text = |n: u32| {
        format!(
            "dims Bt, M, K
func @f(%A: f32[Bt, M, K], %B: f32[Bt, K, {n}]) -> (C: f32[Bt, M, {n}]) {{
  %C = generic (b: Bt, i: M, j: {n}, k: K) ins(%A[b, i, k], %B[b, k, j]) -> [b, i, j] reduce add over (k) {{ mul(%0, %1) }} : f32
  return C = %C
}}
"
        )
    };
    let mut sizes = Vec::new();
    for bt in [1, 2] {
        for mm in [1, 2, 3, 4, 7] {
            for k in [0, 1, 2, 3, 4, 7] {
                sizes.push(vec![("Bt", bt), ("M", mm), ("K", k)]);
            }
        }
    }
    for (pack_a, blocks) in [
        (true, vec![]),
        (false, vec![]),
        (true, vec![BlockLoop::Jc, BlockLoop::Ic]),
    ] {
        let s = without_b_packing(gemm(&[0], [1, 2, 3], [3, 8, 6, 3, 8], pack_a, &blocks));
        let lowered = check(&scheduled(&text(8), 0, s.clone()), &sizes, 9);
        assert_eq!(lowered.funcs.len(), 2, "a general function and a variant");
        let general = printer::print_function(&lowered.funcs[0]);
        let variant = printer::print_function(&lowered.funcs[1]);
        assert!(general.contains("%Bp"), "{general}");
        assert!(!variant.contains("%Bp"), "{variant}");
        assert!(variant.contains("b %B["), "{variant}");
        // N = 12 is not one panel of 8 columns (the kernel would read past it): packed.
        let lowered = check(&scheduled(&text(12), 0, s), &sizes[..12], 10);
        assert!(lowered
            .funcs
            .iter()
            .all(|f| printer::print_function(f).contains("%Bp")));
    }
}
