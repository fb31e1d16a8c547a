//! The evaluator against explicit loops written in the tests, and its errors.

use super::{run_function, LoopEvalError};
use crate::ir::call::CallError;
use crate::ir::loops::parser::parse_module;
use crate::ir::loops::verify::verify_module;
use crate::ir::loops::Module;
use einc_runtime::{Array, Buffer};

const MATMUL: &str = include_str!("../../../../../tests/filetests/loops/matmul.lir");
const ROWSUM: &str = include_str!("../../../../../tests/filetests/loops/rowsum_vector.lir");
const MASK: &str = include_str!("../../../../../tests/filetests/loops/causal_mask.lir");

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
        // Lane l accumulates x[i, l], x[i, l + 4], ...; then lanes combine from lane 0.
        let mut lanes = [0.0f32; 4];
        for k in (0..j).step_by(4) {
            for (l, lane) in lanes.iter_mut().enumerate() {
                *lane += x[i * j + k + l];
            }
        }
        want.push(((lanes[0] + lanes[1]) + lanes[2]) + lanes[3]);
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
