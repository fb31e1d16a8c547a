//! Schedules change speed, never results: JIT-compiled kernels under the cost model's
//! schedules, explicit tile overrides (x86-64's and aarch64's register tiles), and random legal
//! schedules, against the reference interpreter, at sizes around every vector, register-tile
//! and cache-block boundary, with inputs in every layout (C, Fortran, sliced, reversed,
//! broadcast with stride 0) and outputs strided or reversed.
//!
//! Inputs hold small integers (as floats) unless a test says otherwise: every partial sum is
//! then exact whatever the summation order, so results must equal the interpreter's bit for
//! bit and any tiling mistake shows. The tolerance for real-valued floats is tested separately:
//! `|got - want| <= 2 K u Σ|a b|` (`docs/schedules.md`).

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::compiler::interp;
use einc::runtime::array::for_each_index;
use einc::runtime::{Array, Buffer, DType};
use einc::{CompileOptions, Kernel, Program, TensorMut, TensorRef};
use einc_compiler::rng::Rng;

/// The `-O2` tensor passes with the `schedule` pass given `options` (`""` for the cost
/// model), then the lowering.
fn pipeline(options: &str) -> String {
    let schedule = if options.is_empty() {
        "schedule".to_string()
    } else {
        format!("schedule{{{options}}}")
    };
    format!("delta-elim,eps-expand,{schedule},dce,lower-to-loops")
}

/// `src` compiled with the schedule options `options`.
fn compile(src: &str, options: &str) -> Program {
    let (module, diags) = einc_compiler::sema::compile_source(src);
    let module = module.unwrap_or_else(|| panic!("{diags:#?}"));
    let opts = CompileOptions {
        pipeline: Some(pipeline(options)),
        ..CompileOptions::default()
    };
    Program::from_module_with(module, &opts).unwrap_or_else(|e| panic!("{options}: {e}"))
}

/// How an argument is laid out in its buffer: element `[i..]` is at `offset + Σ i_k s_k`.
#[derive(Clone, Debug)]
struct Layout {
    strides: Vec<isize>,
    offset: usize,
    len: usize,
}

/// A layout of kind `kind` (0 C, 1 Fortran, 2 sliced: every stride doubled plus a gap,
/// 3 reversed axes, 4 a broadcast axis of stride 0 (inputs only)).
fn layout(kind: usize, shape: &[usize], rng: &mut Rng) -> Layout {
    let rank = shape.len();
    let mut order: Vec<usize> = (0..rank).rev().collect(); // innermost first
    if kind == 1 {
        order.reverse();
    }
    let step = if kind == 2 { 2 } else { 1 };
    let mut strides = vec![0isize; rank];
    let mut acc = 1usize;
    for &axis in &order {
        strides[axis] = (acc * step) as isize;
        acc = acc * step * shape[axis].max(1) + usize::from(kind == 2);
    }
    let mut offset = usize::from(kind == 2);
    if kind == 3 {
        for axis in 0..rank {
            if rng.below(2) == 0 || axis + 1 == rank {
                offset += shape[axis].saturating_sub(1) * strides[axis].unsigned_abs();
                strides[axis] = -strides[axis];
            }
        }
    }
    if kind == 4 && rank > 0 {
        strides[rng.below(rank)] = 0;
    }
    let reach: usize = shape
        .iter()
        .zip(&strides)
        .map(|(&n, s)| n.saturating_sub(1) * s.unsigned_abs())
        .sum();
    Layout {
        strides,
        offset,
        len: offset + reach + 2,
    }
}

fn position(l: &Layout, index: &[usize]) -> usize {
    let p = l.offset as isize
        + index
            .iter()
            .zip(&l.strides)
            .map(|(&i, &s)| i as isize * s)
            .sum::<isize>();
    p as usize
}

/// A buffer of `len` values: small integers, or reals in [-1, 1] when `real`.
fn values(rng: &mut Rng, dtype: DType, len: usize, real: bool) -> Buffer {
    let v: Vec<f64> = (0..len)
        .map(|_| {
            if real {
                rng.uniform(-1.0, 1.0)
            } else {
                rng.below(7) as f64 - 3.0
            }
        })
        .collect();
    match dtype {
        DType::F32 => Buffer::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => Buffer::F64(v),
        DType::I32 => Buffer::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I64 => Buffer::I64(v.iter().map(|&x| x as i64).collect()),
    }
}

/// The logical array a view of `buf` with layout `l` shows.
fn logical(buf: &Buffer, l: &Layout, shape: &[usize]) -> Array {
    let flat = Array::from_buffer(buf.clone(), &[buf.len()]).unwrap();
    let mut a = Array::zeros(buf.dtype(), shape).unwrap();
    for_each_index(shape, |i| a.set(i, flat.get(&[position(l, i)])));
    a
}

fn view<'a>(buf: &'a Buffer, l: &Layout, shape: &[usize]) -> TensorRef<'a> {
    let (o, s) = (l.offset, l.strides.as_slice());
    match buf {
        Buffer::F32(v) => TensorRef::strided(v, o, shape, s),
        Buffer::F64(v) => TensorRef::strided(v, o, shape, s),
        Buffer::I32(v) => TensorRef::strided(v, o, shape, s),
        Buffer::I64(v) => TensorRef::strided(v, o, shape, s),
    }
    .unwrap()
}

fn view_mut<'a>(buf: &'a mut Buffer, l: &Layout, shape: &[usize]) -> TensorMut<'a> {
    let (o, s) = (l.offset, l.strides.as_slice());
    match buf {
        Buffer::F32(v) => TensorMut::strided(v, o, shape, s),
        Buffer::F64(v) => TensorMut::strided(v, o, shape, s),
        Buffer::I32(v) => TensorMut::strided(v, o, shape, s),
        Buffer::I64(v) => TensorMut::strided(v, o, shape, s),
    }
    .unwrap()
}

/// How results are compared.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    /// Bit for bit (integer-valued inputs).
    Exact,
    /// Within the documented bound for real-valued sums of `terms` products.
    Sum { terms: usize },
    /// Within 1e-4 (f32) or 1e-12 (f64) of the magnitude (bodies with transcendental
    /// functions, whose vector and scalar forms agree to rounding).
    Relative,
}

/// Calls `kernel` on random inputs of `shapes` (layout kinds chosen from `rng`), with every
/// output in a random layout, and compares with the interpreter. `abs` is the interpreter's
/// result on the inputs' absolute values (for [`Compare::Sum`]).
fn check_call(
    program: &Program,
    kernel: &Kernel,
    shapes: &[Vec<usize>],
    compare: Compare,
    rng: &mut Rng,
    what: &str,
) {
    let f = program.module().func(kernel.name()).unwrap();
    let real = compare != Compare::Exact;
    // A third of the calls lay every argument out in C order, so that the kernel's contiguous
    // variant runs; the others mix layouts and run the general function.
    let all_c = rng.below(3) == 0;
    let kind = |rng: &mut Rng, kinds: usize| if all_c { 0 } else { rng.below(kinds) };
    let mut bufs = Vec::new();
    let mut layouts = Vec::new();
    let mut logicals = Vec::new();
    for (n, shape) in shapes.iter().enumerate() {
        let dtype = f.value(f.params[n]).ty.dtype;
        let k = kind(rng, 5);
        let l = layout(k, shape, rng);
        let b = values(rng, dtype, l.len, real);
        logicals.push(logical(&b, &l, shape));
        bufs.push(b);
        layouts.push(l);
    }
    let want = interp::run_function(program.module(), f, &logicals)
        .unwrap_or_else(|e| panic!("{what}: interpreter: {e}"));
    let abs: Option<Vec<Array>> = match compare {
        Compare::Sum { .. } => {
            let abs_inputs: Vec<Array> = logicals
                .iter()
                .map(|a| {
                    let mut b = a.clone();
                    for_each_index(a.shape(), |i| {
                        b.set(
                            i,
                            einc::runtime::Scalar::F64(a.get(i).to_f64().abs()).cast(a.dtype()),
                        )
                    });
                    b
                })
                .collect();
            Some(interp::run_function(program.module(), f, &abs_inputs).unwrap())
        }
        _ => None,
    };
    let inputs: Vec<TensorRef> = bufs
        .iter()
        .zip(&layouts)
        .zip(shapes)
        .map(|((b, l), s)| view(b, l, s))
        .collect();
    let mut outs: Vec<(Buffer, Layout, Vec<usize>)> = want
        .iter()
        .map(|w| {
            let shape = w.shape().to_vec();
            // Outputs: C, Fortran, sliced or reversed (never broadcast).
            let k = kind(rng, 4);
            let l = layout(k, &shape, rng);
            (values(rng, w.dtype(), l.len, false), l, shape)
        })
        .collect();
    {
        let mut views: Vec<TensorMut> =
            outs.iter_mut().map(|(b, l, s)| view_mut(b, l, s)).collect();
        kernel
            .call(&inputs, &mut views)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    for (n, ((b, l, s), w)) in outs.iter().zip(&want).enumerate() {
        let got = logical(b, l, s);
        for_each_index(s, |i| {
            let (g, w) = (got.get(i).to_f64(), w.get(i).to_f64());
            let ok = match compare {
                Compare::Exact => g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                Compare::Sum { terms } => {
                    let u = if got.dtype() == DType::F32 {
                        f64::from(f32::EPSILON) / 2.0
                    } else {
                        f64::EPSILON / 2.0
                    };
                    let bound = abs.as_ref().unwrap()[n].get(i).to_f64();
                    (g - w).abs() <= 2.0 * terms as f64 * u * bound + f64::MIN_POSITIVE
                }
                Compare::Relative => {
                    let tol = if got.dtype() == DType::F32 {
                        1e-4
                    } else {
                        1e-12
                    };
                    (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * w.abs().max(1.0)
                }
            };
            assert!(
                ok,
                "{what}: output {n} at {i:?}: the JIT gives {g}, the interpreter {w}"
            );
        });
    }
}

/// Sizes around a tile or block of `t`: 1, 2, 3, t-1, t, t+1, 2t+1.
fn around(t: usize) -> Vec<usize> {
    let mut v = vec![1, 2, 3, t.saturating_sub(1).max(1), t, t + 1, 2 * t + 1];
    v.sort_unstable();
    v.dedup();
    v
}

const MATMUL: &str = "dims M, N, K
kernel mm(A: DT[M, K], B: DT[K, N]) -> (C: DT[M, N]) {
    C[i, j] = A[i, k] * B[k, j]
}
";

/// Matmul at sizes around `mr`, `nr`, `mc`, `kc` and `nc` of `options`.
fn matmul_boundaries(dtype: &str, options: &str, [mr, nr, mc, kc, nc]: [usize; 5], seed: u64) {
    let program = compile(&MATMUL.replace("DT", dtype), options);
    let text = einc_compiler::ir::loops::printer::print_module(program.loop_module());
    assert!(
        text.contains(&format!("ukernel @gemm.{dtype}.{mr}x{nr}")),
        "{options}:\n{text}"
    );
    let kernel = program.kernel("mm").unwrap();
    let mut rng = Rng::new(seed);
    let ms: Vec<usize> = around(mr).into_iter().chain(around(mc)).collect();
    let ns: Vec<usize> = around(nr).into_iter().chain(around(nc)).collect();
    let ks: Vec<usize> = around(kc);
    for (n, &m) in ms.iter().enumerate() {
        for (q, &nn) in ns.iter().enumerate() {
            let k = ks[(n + q) % ks.len()];
            let what = format!("{dtype} {options}: M={m} N={nn} K={k}");
            check_call(
                &program,
                &kernel,
                &[vec![m, k], vec![k, nn]],
                Compare::Exact,
                &mut rng,
                &what,
            );
        }
    }
    for &k in &ks {
        let what = format!("{dtype} {options}: K={k}");
        check_call(
            &program,
            &kernel,
            &[vec![mr + 1, k], vec![k, nr + 1]],
            Compare::Exact,
            &mut rng,
            &what,
        );
    }
}

#[test]
fn x86_64_tiles_at_every_boundary_f32_and_f64() {
    matmul_boundaries("f32", "mr=4,nr=8,mc=8,kc=5,nc=16", [4, 8, 8, 5, 16], 1);
    matmul_boundaries("f64", "mr=4,nr=4,mc=8,kc=5,nc=12", [4, 4, 8, 5, 12], 2);
}

#[test]
fn aarch64_tiles_at_every_boundary_f32_and_f64() {
    // The register tiles the cost model chooses for aarch64 (32 NEON registers), run here.
    matmul_boundaries("f32", "mr=8,nr=8,mc=16,kc=7,nc=16", [8, 8, 16, 7, 16], 3);
    matmul_boundaries("f64", "mr=5,nr=6,mc=10,kc=7,nc=12", [5, 6, 10, 7, 12], 4);
}

#[test]
fn the_cost_models_schedules_around_their_tiles() {
    // Symbolic extents: blocks are the large ones, tiles 4x8 / 4x4 on x86-64.
    for dtype in ["f32", "f64"] {
        let program = compile(&MATMUL.replace("DT", dtype), "");
        let kernel = program.kernel("mm").unwrap();
        let mut rng = Rng::new(5);
        for (m, n, k) in [
            (1, 1, 1),
            (3, 7, 2),
            (4, 8, 9),
            (5, 9, 17),
            (33, 17, 3),
            (9, 70, 45),
        ] {
            let what = format!("{dtype} cost model: {m}x{n}x{k}");
            check_call(
                &program,
                &kernel,
                &[vec![m, k], vec![k, n]],
                Compare::Exact,
                &mut rng,
                &what,
            );
        }
    }
}

#[test]
fn kc_blocks_of_a_long_sum_stay_within_the_documented_tolerance() {
    for dtype in ["f32", "f64"] {
        let program = compile(&MATMUL.replace("DT", dtype), "kc=64");
        let kernel = program.kernel("mm").unwrap();
        let mut rng = Rng::new(6);
        for k in [63, 64, 65, 1000] {
            let what = format!("{dtype}: real values, K={k}");
            check_call(
                &program,
                &kernel,
                &[vec![7, k], vec![k, 9]],
                Compare::Sum { terms: k },
                &mut rng,
                &what,
            );
        }
    }
}

/// Other contraction shapes, each compiled with the cost model and with random schedules.
const SHAPES: &str = "dims M, N, K, B, H
kernel shapes(A: f32[M, K], At: f32[K, M], x: f32[K], y: f32[K], u: f32[M], v: f32[N],
              Q: f32[B, H, M, K], Kt: f32[B, H, N, K], D: f32[M, M, K], W: f32[K, N])
    -> (mv: f32[M], mvt: f32[M], dot: f32, outer: f32[M, N], att: f32[B, H, M, N],
        diag: f32[M, N], tr: f32[N, M]) {
    mv[i] = A[i, k] * x[k]
    mvt[i] = At[k, i] * x[k]
    dot = x[k] * y[k]
    outer[i, j] = u[i] * v[j]
    att[b, h, i, j] = Q[b, h, i, d] * Kt[b, h, j, d]
    diag[i, j] = D[i, i, k] * W[k, j]
    tr[j, i] = A[i, k] * W[k, j]
}
";

fn shapes_args(m: usize, n: usize, k: usize, b: usize, h: usize) -> Vec<Vec<usize>> {
    vec![
        vec![m, k],
        vec![k, m],
        vec![k],
        vec![k],
        vec![m],
        vec![n],
        vec![b, h, m, k],
        vec![b, h, n, k],
        vec![m, m, k],
        vec![k, n],
    ]
}

#[test]
fn every_contraction_shape_under_the_cost_model_and_random_schedules() {
    let mut options = vec![String::new()];
    options.extend((1..=12).map(|s| format!("random={s}")));
    for opt in options {
        let program = compile(SHAPES, &opt);
        let kernel = program.kernel("shapes").unwrap();
        let mut rng = Rng::new(7);
        for (m, n, k) in [(1, 1, 1), (3, 4, 5), (4, 9, 8), (9, 3, 13), (2, 17, 0)] {
            let what = format!("{opt}: M={m} N={n} K={k}");
            let args = shapes_args(m, n, k, 2, 1 + m % 2);
            check_call(&program, &kernel, &args, Compare::Exact, &mut rng, &what);
        }
    }
}

#[test]
fn random_schedules_of_every_example_agree_with_the_interpreter() {
    for path in einc::compiler::testkit::files::example_files() {
        let src = std::fs::read_to_string(&path).unwrap();
        for seed in 1..=6 {
            let opt = format!("random={seed}");
            let program = compile(&src, &opt);
            let mut rng = Rng::new(seed);
            for name in program.kernel_names().map(String::from).collect::<Vec<_>>() {
                let kernel = program.kernel(&name).unwrap();
                let f = program.module().func(&name).unwrap();
                // Distinct small extents per dim, so that a swapped index cannot go unnoticed.
                let sizes: Vec<(String, usize)> = program
                    .module()
                    .dims
                    .iter()
                    .filter(|d| d.value.is_none())
                    .zip(2..)
                    .map(|(d, n)| (d.name.clone(), n + seed as usize % 3))
                    .collect();
                let shapes: Vec<Vec<usize>> = f
                    .params
                    .iter()
                    .map(|&p| {
                        f.value(p)
                            .ty
                            .shape
                            .iter()
                            .map(|e| match e {
                                einc_compiler::ir::tensor::Extent::Fixed(n) => *n as usize,
                                einc_compiler::ir::tensor::Extent::Dim(d) => {
                                    program.module().dim_value(d).map_or_else(
                                        || sizes.iter().find(|(x, _)| x == d).unwrap().1,
                                        |n| n as usize,
                                    )
                                }
                            })
                            .collect()
                    })
                    .collect();
                let what = format!("{} @{name} {opt}", path.display());
                check_call(
                    &program,
                    &kernel,
                    &shapes,
                    Compare::Relative,
                    &mut rng,
                    &what,
                );
            }
        }
    }
}

#[test]
fn an_annotated_statement_runs_its_schedule() {
    let src = "dims M, N, K
kernel mm(A: f64[M, K], B: f64[K, N]) -> (C: f64[M, N]) {
    C[i, j] = A[i, k] * B[k, j] schedule gemm(mr = 3, nr = 6, kc = 4, pack = [b])
}
";
    let program = compile(src, "");
    let text = einc_compiler::ir::loops::printer::print_module(program.loop_module());
    assert!(text.contains("ukernel @gemm.f64.3x6"), "{text}");
    assert!(!text.contains("%Ap"), "A is read in place:\n{text}");
    let kernel = program.kernel("mm").unwrap();
    let mut rng = Rng::new(8);
    for (m, n, k) in [(1, 1, 1), (3, 6, 4), (4, 7, 5), (8, 13, 9)] {
        let what = format!("annotated: {m}x{n}x{k}");
        check_call(
            &program,
            &kernel,
            &[vec![m, k], vec![k, n]],
            Compare::Exact,
            &mut rng,
            &what,
        );
    }
}

/// Maps, reductions along and across rows, and a row softmax: the cost model vectorises them
/// along their unit-stride axis (in the contiguous variant), with tails.
const ELEMENTWISE: &str = "dims M, N
kernel elementwise(A: DT[M, N], b: DT[N], c: DT[M]) -> (e: DT[M, N], t: DT[M, N], rows: DT[M],
                                                        cols: DT[N], mx: DT[M], p: DT[M, N]) {
    e[i, j] = exp(A[i, j] - b[j]) * c[i]
    t[i, j] = tanh(A[i, j]) + sigmoid(b[j]) + log(1 + A[i, j] * A[i, j])
    rows[i] = A[i, j] * b[j] + c[i]
    cols[j] = A[i, j] * A[i, j]
    mx[i] = max[j](A[i, j])
    p[i, j] = softmax[j](A[i, j] * 2)
}
";

#[test]
fn maps_reductions_and_softmax_vectorise_under_the_cost_model() {
    for (dtype, lanes) in [("f32", 4), ("f64", 2)] {
        let program = compile(&ELEMENTWISE.replace("DT", dtype), "");
        let loops = program.loop_module();
        let text = einc_compiler::ir::loops::printer::print_module(loops);
        let variant = loops
            .variants_of("elementwise")
            .next()
            .unwrap_or_else(|| panic!("no contiguous variant:\n{text}"));
        let variant_text = {
            let mut m = loops.clone();
            m.funcs.retain(|f| f.name == variant.name);
            einc_compiler::ir::loops::printer::print_module(&m)
        };
        let vector = format!("vector<{lanes}x{dtype}>");
        for f in ["exp", "tanh", "sigmoid", "log"] {
            assert!(
                variant_text.contains(&format!("= {f} "))
                    && variant_text
                        .lines()
                        .any(|l| l.contains(&format!("= {f} ")) && l.ends_with(&vector)),
                "{dtype}: `{f}` does not run on {vector}:\n{variant_text}"
            );
        }
        assert!(
            !text.contains("buffer %p.exp"),
            "{dtype}: the softmax runs as separate ops:\n{text}"
        );
        assert!(
            variant_text.contains("reduce_lanes"),
            "{dtype}: no vector accumulator:\n{variant_text}"
        );
        elementwise_around_vectors(&program, dtype, lanes, 9);
    }
}

#[test]
fn maps_reductions_and_softmax_under_random_schedules() {
    for seed in 1..=6 {
        let (dtype, lanes) = if seed % 2 == 0 {
            ("f64", 2)
        } else {
            ("f32", 4)
        };
        let program = compile(&ELEMENTWISE.replace("DT", dtype), &format!("random={seed}"));
        elementwise_around_vectors(&program, dtype, lanes, seed);
    }
}

/// Runs [`ELEMENTWISE`] at row lengths around one vector and around four (the unrolled
/// block), each with a few rows, against the interpreter.
fn elementwise_around_vectors(program: &Program, dtype: &str, lanes: usize, seed: u64) {
    let kernel = program.kernel("elementwise").unwrap();
    let mut rng = Rng::new(seed);
    let mut ns = around(lanes);
    ns.extend(around(4 * lanes));
    for (n, &cols) in ns.iter().enumerate() {
        let m = [1, 2, 3, 5][n % 4];
        let what = format!("{dtype} seed {seed}: M={m} N={cols}");
        check_call(
            program,
            &kernel,
            &[vec![m, cols], vec![cols], vec![m]],
            Compare::Relative,
            &mut rng,
            &what,
        );
    }
}
