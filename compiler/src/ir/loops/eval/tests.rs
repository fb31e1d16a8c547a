//! The evaluator against explicit loops written in the tests, and its errors.

use super::{run_body, run_function, select, LoopEvalError};
use crate::ir::call::CallError;
use crate::ir::loops::parser::parse_module;
use crate::ir::loops::verify::verify_module;
use crate::ir::loops::Module;
use einc_runtime::{Array, Buffer};

const MATMUL: &str = include_str!("../../../../../tests/filetests/loops/matmul.lir");
const ROWSUM: &str = include_str!("../../../../../tests/filetests/loops/rowsum_vector.lir");
const MASK: &str = include_str!("../../../../../tests/filetests/loops/causal_mask.lir");
const TILES: &str = include_str!("../../../../../tests/filetests/loops/tiles.lir");

fn parse(text: &str) -> Module {
    let m = match parse_module(text) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{text}"),
    };
    assert_eq!(verify_module(&m), Ok(()));
    m
}

fn run(m: &Module, inputs: &[Array]) -> Result<Vec<Array>, LoopEvalError> {
    run_function(m, &m.funcs[0], inputs)
}

/// Values with a little structure (and distinct per position) so that index mix-ups show.
fn values(n: usize) -> Vec<f32> {
    (0..n).map(|k| ((k * 7 % 11) as f32) - 4.5).collect()
}

#[test]
fn matmul_with_fortran_and_strided_inputs() {
    let (m_, k_, n_) = (3, 5, 4);
    let a = values(m_ * k_);
    // A in Fortran order: A[i, p] = a[i + p * M].
    let a_arr = Array::with_layout(Buffer::F32(a.clone()), &[m_, k_], &[1, m_], 0).unwrap();
    // B as every other element of a larger buffer, starting at offset 1.
    let braw = values(2 * k_ * n_ + 1);
    let b_arr = Array::with_layout(Buffer::F32(braw.clone()), &[k_, n_], &[2 * n_, 2], 1).unwrap();
    let m = parse(MATMUL);
    let out = run(&m, &[a_arr, b_arr]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[m_, n_]);
    let mut want = Vec::new();
    for i in 0..m_ {
        for j in 0..n_ {
            let mut s = 0.0f32;
            for p in 0..k_ {
                s = a[i + p * m_].mul_add(braw[1 + p * 2 * n_ + j * 2], s);
            }
            want.push(s);
        }
    }
    assert_eq!(out[0].buffer(), &Buffer::F32(want));
}

#[test]
fn vector_loads_and_lane_reduction() {
    let (n, j) = (3, 8);
    let x = values(n * j);
    let m = parse(ROWSUM);
    let out = run(
        &m,
        &[Array::from_buffer(Buffer::F32(x.clone()), &[n, j]).unwrap()],
    )
    .unwrap();
    let mut want = Vec::new();
    for i in 0..n {
        // Lane l accumulates x[i, l], x[i, l + 4], ...; then lanes combine by halves.
        let mut lanes = [0.0f32; 4];
        for k in (0..j).step_by(4) {
            for (l, lane) in lanes.iter_mut().enumerate() {
                *lane += x[i * j + k + l];
            }
        }
        want.push((lanes[0] + lanes[2]) + (lanes[1] + lanes[3]));
    }
    assert_eq!(out[0].buffer(), &Buffer::F32(want));
}

#[test]
fn select_with_comparison_mask() {
    let t = 4;
    let x: Vec<f64> = (0..t * t).map(|k| (k as f64) * 0.5 - 3.0).collect();
    // X transposed in memory: X[i, j] = x[j * T + i].
    let arr = Array::with_layout(Buffer::F64(x.clone()), &[t, t], &[1, t], 0).unwrap();
    let m = parse(MASK);
    let out = run(&m, &[arr]).unwrap();
    let mut want = Vec::new();
    for i in 0..t {
        for j in 0..t {
            let v = x[j * t + i];
            want.push(if j <= i && v > 0.0 {
                v
            } else {
                f64::NEG_INFINITY
            });
        }
    }
    assert_eq!(out[0].buffer(), &Buffer::F64(want));
}

#[test]
fn out_of_range_accesses_are_errors() {
    let text = MATMUL.replace(
        "%acc = for %p = %c0 to %k",
        "%k1 = index 1\n      %kk = iadd %k, %k1\n      %acc = for %p = %c0 to %kk",
    );
    let m = parse(&text);
    let a = Array::zeros(einc_runtime::DType::F32, &[2, 3]).unwrap();
    let b = Array::zeros(einc_runtime::DType::F32, &[3, 2]).unwrap();
    assert_eq!(
        run(&m, &[a, b]).unwrap_err().to_string(),
        "@matmul: access %A[0, 3] is outside the buffer's shape [2, 3]"
    );
    let m = parse(ROWSUM);
    let x = Array::zeros(einc_runtime::DType::F32, &[1, 6]).unwrap();
    assert_eq!(
        run(&m, &[x]).unwrap_err(),
        LoopEvalError::OutOfBounds {
            func: "rowsum".into(),
            buffer: "%X".into(),
            index: vec![0, 4],
            lanes: 4,
            shape: vec![1, 6],
        }
    );
}

#[test]
fn unwritten_and_uninitialized_elements_are_errors() {
    let m = parse(&MASK.replace(
        "for %j = %c0 to %t step 1 parallel",
        "%c1 = index 1\n    for %j = %c1 to %t step 1 parallel",
    ));
    let x = Array::zeros(einc_runtime::DType::F64, &[2, 2]).unwrap();
    assert_eq!(
        run(&m, std::slice::from_ref(&x)).unwrap_err().to_string(),
        "@mask: output %Y[0, 0] is never written"
    );
    let m = parse(
        "func @f(%Y: out f32[2] contiguous) {\n  %c0 = index 0\n  %c1 = index 1\n  \
         %x = load %Y[%c1] : f32\n  store %x, %Y[%c0]\n}\n",
    );
    assert_eq!(
        run(&m, &[]).unwrap_err().to_string(),
        "@f: load of %Y[1] before anything stores it"
    );
}

#[test]
fn bad_calls_are_reported_like_the_interpreter() {
    let m = parse(MATMUL);
    let a = Array::zeros(einc_runtime::DType::F32, &[2, 3]).unwrap();
    assert_eq!(
        run(&m, std::slice::from_ref(&a)).unwrap_err(),
        LoopEvalError::Call(CallError::InputCount {
            func: "matmul".into(),
            expected: 2,
            actual: 1
        })
    );
    let b = Array::zeros(einc_runtime::DType::F32, &[4, 2]).unwrap();
    assert_eq!(
        run(&m, &[a, b]).unwrap_err().to_string(),
        "dim `K` is bound inconsistently: input `A` axis 1 has extent 3, but input `B` axis 0 \
         has extent 4"
    );
}

#[test]
fn malformed_functions_are_errors_not_panics() {
    // The accumulator starts as an index, so the fma sees an index among f32 operands.
    let text = MATMUL.replace("%zero = const 0.0:f32", "%zero = index 0");
    let m2 = parse_module(&text).unwrap();
    assert!(verify_module(&m2).is_err());
    let a = Array::zeros(einc_runtime::DType::F32, &[1, 1]).unwrap();
    assert_eq!(
        run(&m2, &[a.clone(), a]).unwrap_err().to_string(),
        "@matmul: malformed loop IR: the op defining %next: operands [Scalar(F32(0.0)), \
         Scalar(F32(0.0)), Index(0)] are not all scalars or all vectors"
    );
}

#[test]
fn lanes_reduce_by_halves() {
    // The four lanes [1e8, 1, -1e8, 1], written through a temporary one by one.
    let text = "func @order(%Y: out f32[2] contiguous) {
  buffer %T: f32[4] contiguous
  %c0 = index 0
  %c1 = index 1
  %c2 = index 2
  %c3 = index 3
  %big = const 100000000.0:f32
  %nbig = const -100000000.0:f32
  %one = const 1.0:f32
  store %big, %T[%c0]
  store %one, %T[%c1]
  store %nbig, %T[%c2]
  store %one, %T[%c3]
  %v = load %T[%c0] : vector<4xf32>
  %r = reduce_lanes add %v : f32
  store %r, %Y[%c0]
  %w = reduce_lanes min %v : f32
  store %w, %Y[%c1]
}
";
    let m = parse(text);
    let out = run(&m, &[]).unwrap();
    // (1e8 + -1e8) + (1 + 1); from lane 0 up it would be 1, pairwise 0.
    assert_eq!(out[0].buffer(), &Buffer::F32(vec![2.0, -1e8]));
}

#[test]
fn index_division_never_traps() {
    let text = "func @div(%Y: out i64[8] contiguous) {
  %c0 = index 0
  %c1 = index 1
  %c2 = index 2
  %c3 = index 3
  %c4 = index 4
  %c5 = index 5
  %c6 = index 6
  %c7 = index 7
  %a = index -7
  %b = index 2
  %z = index 0
  %m1 = index -1
  %min = index -9223372036854775808
  %q = idiv %a, %b
  %r = irem %a, %b
  %q0 = idiv %a, %z
  %r0 = irem %a, %z
  %qm = idiv %min, %m1
  %rm = irem %min, %m1
  %hi = imax %a, %b
  %lo = imin %a, %b
  %v0 = cast %q : i64
  store %v0, %Y[%c0]
  %v1 = cast %r : i64
  store %v1, %Y[%c1]
  %v2 = cast %q0 : i64
  store %v2, %Y[%c2]
  %v3 = cast %r0 : i64
  store %v3, %Y[%c3]
  %v4 = cast %qm : i64
  store %v4, %Y[%c4]
  %v5 = cast %rm : i64
  store %v5, %Y[%c5]
  %v6 = cast %hi : i64
  store %v6, %Y[%c6]
  %v7 = cast %lo : i64
  store %v7, %Y[%c7]
}
";
    let m = parse(text);
    let out = run(&m, &[]).unwrap();
    assert_eq!(
        out[0].buffer(),
        &Buffer::I64(vec![-3, -1, 0, -7, i64::MIN, 0, 2, -7])
    );
}

#[test]
fn scoped_buffers_start_unwritten_each_time() {
    // Iteration 0 writes the buffer's element 0 and iteration 1 reads it back: an error,
    // because each execution of the loop body gets a fresh buffer.
    let m = parse(
        "func @f(%Y: out f32[2] contiguous) {
  %c0 = index 0
  %c2 = index 2
  %x = const 1.0:f32
  for %i = %c0 to %c2 step 1 {
    scoped %t: f32[2] contiguous align 32
    store %x, %t[%i]
    %y = load %t[%c0] : f32
    store %y, %Y[%i]
  }
}
",
    );
    assert_eq!(
        run(&m, &[]).unwrap_err().to_string(),
        "@f: load of %t[0] before anything stores it"
    );
}

/// `n` deterministic values in `[-1, 1)`.
pub(crate) fn random(rng: &mut crate::rng::Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// `C = A B` as the tiled `@matmul` of `tiles.lir` computes it: an fma chain per K block of 64
/// from 0, and the blocks added in order.
fn blocked_matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for (block, p0) in (0..k.max(1)).step_by(64).enumerate() {
                let mut t = 0.0f32;
                for p in p0..(p0 + 64).min(k) {
                    t = a[i * k + p].mul_add(b[p * n + j], t);
                }
                acc = if block == 0 { t } else { acc + t };
            }
            c[i * n + j] = acc;
        }
    }
    c
}

#[test]
fn tiled_matmul_with_a_micro_kernel_and_its_variant() {
    let m = parse(TILES);
    let general = &m.funcs[0];
    let variant = &m.funcs[1];
    let mut rng = crate::rng::Rng::new(9);
    for (mm, kk, nn) in [
        (1, 1, 1),
        (4, 8, 8),
        (5, 3, 9),
        (3, 64, 7),
        (9, 65, 17),
        (2, 0, 3),
    ] {
        let a: Vec<f32> = random(&mut rng, mm * kk)
            .iter()
            .map(|&x| x as f32)
            .collect();
        let b: Vec<f32> = random(&mut rng, kk * nn)
            .iter()
            .map(|&x| x as f32)
            .collect();
        let want = Buffer::F32(blocked_matmul(&a, &b, mm, kk, nn));
        let a_c = Array::from_buffer(Buffer::F32(a.clone()), &[mm, kk]).unwrap();
        let b_c = Array::from_buffer(Buffer::F32(b.clone()), &[kk, nn]).unwrap();
        // C-order arguments select the variant; the general function computes the same.
        let inputs = [a_c.clone(), b_c.clone()];
        let chosen = select(&m, general, &inputs).unwrap();
        if mm > 1 && kk > 1 && nn > 1 {
            assert_eq!(chosen.name, "matmul.contiguous");
        }
        assert_eq!(
            run_function(&m, general, &inputs).unwrap()[0].buffer(),
            &want
        );
        assert_eq!(run_body(&m, general, &inputs).unwrap()[0].buffer(), &want);
        assert_eq!(run_body(&m, variant, &inputs).unwrap()[0].buffer(), &want);
        // A in Fortran order: only the general function accepts it.
        let mut af = vec![0.0f32; mm * kk];
        for i in 0..mm {
            for p in 0..kk {
                af[i + p * mm] = a[i * kk + p];
            }
        }
        let a_f = Array::with_layout(Buffer::F32(af), &[mm, kk], &[1, mm], 0).unwrap();
        let inputs = [a_f, b_c];
        assert_eq!(
            select(&m, general, &inputs).unwrap().name,
            if mm > 1 && kk > 1 {
                "matmul"
            } else {
                "matmul.contiguous"
            }
        );
        assert_eq!(
            run_function(&m, general, &inputs).unwrap()[0].buffer(),
            &want
        );
        if mm > 1 && kk > 1 {
            assert_eq!(
                run_body(&m, variant, &inputs).unwrap_err().to_string(),
                "@matmul.contiguous: the arguments do not meet the function's stride facts"
            );
        }
    }
}

#[test]
fn micro_kernel_epilogue_scale_bias_relu() {
    let m = parse(TILES);
    let f = m.kernels().find(|f| f.name == "dense").unwrap();
    let mut rng = crate::rng::Rng::new(3);
    for rows in [1, 2, 5] {
        let x = random(&mut rng, rows * 8);
        let w = random(&mut rng, 8 * 4);
        let bias = random(&mut rng, 8);
        let s = 1.5;
        let inputs = [
            Array::from_buffer(Buffer::F64(x.clone()), &[rows, 8]).unwrap(),
            Array::from_buffer(Buffer::F64(w.clone()), &[8, 4]).unwrap(),
            // Every other element: a bias with stride 2.
            Array::with_layout(Buffer::F64(bias.clone()), &[4], &[2], 0).unwrap(),
            Array::from_buffer(Buffer::F64(vec![s]), &[]).unwrap(),
        ];
        let out = run_function(&m, f, &inputs).unwrap();
        let mut want = Vec::new();
        for i in 0..rows {
            for j in 0..4 {
                let mut t = 0.0f64;
                for p in 0..8 {
                    t = x[i * 8 + p].mul_add(w[p * 4 + j], t);
                }
                want.push((t * s + bias[2 * j]).max(0.0));
            }
        }
        assert_eq!(out[0].buffer(), &Buffer::F64(want));
    }
}

#[test]
fn micro_kernels_read_the_full_width_of_b_and_respect_their_tile() {
    // B is an unpadded input 6 columns wide: the 4x8 kernel reads columns 6 and 7 too.
    let call = |tile: &str| {
        format!(
            "func @f(%A: in f32[4, 2] strided, %B: in f32[2, 6] strides[_, 1], \
             %C: out f32[4, 6] contiguous) {{
  %c0 = index 0
  %c2 = index 2
  %c4 = index 4
  %c5 = index 5
  %c6 = index 6
  %c9 = index 9
  %t = cmp eq %c0, %c0
  ukernel @gemm.f32.4x8 kc %c2, tile {tile}, a %A[%c0, %c0] (m: 0, k: 1), b %B[%c0, %c0] (k: 0, n: 1), c %C[%c0, %c0] (m: 0, n: 1), init %t
}}
"
        )
    };
    let a = Array::zeros(einc_runtime::DType::F32, &[4, 2]).unwrap();
    let b = Array::zeros(einc_runtime::DType::F32, &[2, 6]).unwrap();
    let m = parse(&call("%c4 x %c6"));
    assert_eq!(
        run(&m, &[a.clone(), b.clone()]).unwrap_err().to_string(),
        "@f: access %B[0, 6] is outside the buffer's shape [2, 6]"
    );
    // More rows than `MR` are several m-tiles: row 4 is read, and A has only 4 (with a B
    // wide enough for the kernel).
    let m = parse(&call("%c5 x %c6").replace("f32[2, 6]", "f32[2, 8]"));
    let b8 = Array::zeros(einc_runtime::DType::F32, &[2, 8]).unwrap();
    assert_eq!(
        run(&m, &[a.clone(), b8]).unwrap_err().to_string(),
        "@f: access %A[4, 0] is outside the buffer's shape [4, 2]"
    );
    let m = parse(&call("%c4 x %c9"));
    assert_eq!(
        run(&m, &[a, b]).unwrap_err().to_string(),
        "@f: ukernel @gemm.f32.4x8: kc 2 and tile 4 x 9 must satisfy kc >= 0, mr >= 0, \
         0 <= nr <= 8"
    );
}

#[test]
fn index_operations_address_the_whole_buffer() {
    let m = parse(TILES);
    let f = m.kernels().find(|f| f.name == "unflatten").unwrap();
    let x: Vec<i32> = (0..15).collect();
    // X transposed in memory.
    let arr = Array::with_layout(Buffer::I32(x.clone()), &[3, 5], &[1, 3], 0).unwrap();
    let out = run_function(&m, f, &[arr]).unwrap();
    let want: Vec<i32> = (0..3)
        .flat_map(|i| (0..5).map(move |j| j * 3 + i))
        .collect();
    assert_eq!(out[0].buffer(), &Buffer::I32(want));
}

#[test]
fn pointers_read_and_write_with_the_checks_of_indexed_accesses() {
    let m = parse(include_str!(
        "../../../../../tests/filetests/loops/pointers.lir"
    ));
    let n = 4;
    let x: Vec<f64> = (0..n * n).map(|k| k as f64 * 0.5 - 1.0).collect();
    let v: Vec<f32> = (0..n * 4).map(|k| k as f32).collect();
    let out = run(
        &m,
        &[
            Array::from_buffer(Buffer::F64(x.clone()), &[n, n]).unwrap(),
            Array::from_buffer(Buffer::F32(v.clone()), &[n, 4]).unwrap(),
        ],
    )
    .unwrap();
    let mut y = vec![0.0f64; n];
    let mut t = 0.0;
    for j in 0..n - 1 {
        y[j] = x[j * n + j] + x[j * n + j + 1];
        t += y[j];
    }
    y[n - 1] = t;
    assert_eq!(out[0].buffer(), &Buffer::F64(y));
    assert_eq!(out[1].buffer(), &Buffer::F32(v));
    // A pointer that advances one step too far is caught where it is read.
    let text = "func @f(%X: in f32[2] strided, %Y: out f32[] strided) {
  %c0 = index 0
  %c1 = index 1
  %c3 = index 3
  %z = const 0.0:f32
  %p = addr %X[%c0]
  %s, %e = for %i = %c0 to %c3 step 1 iter(%a = %z, %q = %p) {
    %x = load at %q : f32
    %b = add %a, %x : f32
    %q2 = advance %q by %c1 along 0
    yield %b, %q2
  }
  store %s, %Y[]
}
";
    let m = parse(text);
    let x = Array::zeros(einc_runtime::DType::F32, &[2]).unwrap();
    assert_eq!(
        run(&m, &[x]).unwrap_err().to_string(),
        "@f: access %X[2] is outside the buffer's shape [2]"
    );
}
