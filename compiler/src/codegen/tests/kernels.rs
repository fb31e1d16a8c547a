//! Whole kernels: matmul (scalar, strided, symbolic dims), reductions with temporaries,
//! masks and vector loops.

use super::*;
use crate::ir::loops::BinaryFn;
use einc_runtime::abi::status;
use einc_runtime::Scalar;

/// `C[i,j] = sum_k A[i,k] * B[k,j]` over symbolic dims m, n, k, any strides.
pub(crate) fn matmul(dtype: DType) -> Module {
    let mut b = Builder::new("matmul");
    let a = b.input("A", dtype, &[sym("m"), sym("k")]);
    let bb = b.input("B", dtype, &[sym("k"), sym("n")]);
    let c = b.output("C", dtype, &[sym("m"), sym("n")]);
    let zero = b.index(0);
    let (m, n, k) = (b.dim("m"), b.dim("n"), b.dim("k"));
    b.for_loop(zero, m, 1, &[], |b, i, _| {
        b.for_loop(zero, n, 1, &[], |b, j, _| {
            let init = b.assign(Type::Scalar(dtype), Op::Const(Scalar::zero(dtype)));
            let acc = b.for_loop(zero, k, 1, &[init], |b, p, acc| {
                let x = b.load(a, &[i, p], 1);
                let y = b.load(bb, &[p, j], 1);
                let prod = b.assign(Type::Scalar(dtype), Op::Binary(BinaryFn::Mul, x, y));
                vec![b.assign(Type::Scalar(dtype), Op::Binary(BinaryFn::Add, acc[0], prod))]
            });
            b.store(c, &[i, j], acc[0]);
            vec![]
        });
        vec![]
    });
    module(&["m", "n", "k"], vec![b.finish()])
}

#[test]
fn matmul_f32_matches_explicit_loops() {
    let k = jit_one(&matmul(DType::F32));
    let (m, n, kk) = (3usize, 5usize, 4usize);
    let mut a: Vec<f32> = (0..m * kk).map(|x| x as f32 * 0.5 - 2.0).collect();
    let mut bm: Vec<f32> = (0..kk * n).map(|x| (x as f32).sin()).collect();
    let mut c = vec![f32::NAN; m * n];
    let st = call(
        &k,
        &[
            Arg::new(&mut a, DType::F32, &[m as i64, kk as i64]),
            Arg::new(&mut bm, DType::F32, &[kk as i64, n as i64]),
            Arg::new(&mut c, DType::F32, &[m as i64, n as i64]),
        ],
    );
    assert_eq!(st, status::OK);
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for p in 0..kk {
                s += a[i * kk + p] * bm[p * n + j];
            }
            assert_eq!(c[i * n + j], s, "C[{i},{j}]");
        }
    }
}

#[test]
fn matmul_i64_with_transposed_and_negative_strides() {
    let k = jit_one(&matmul(DType::I64));
    let (m, n, kk) = (4usize, 3usize, 5usize);
    // A is stored transposed (k x m, read with strides [1, m]); B is stored with its rows
    // reversed (read with a negative row stride from the last row).
    let mut at: Vec<i64> = (0..m * kk).map(|x| x as i64 * 7 - 11).collect();
    let mut bs: Vec<i64> = (0..kk * n).map(|x| (x as i64 * 13) % 17 - 8).collect();
    let mut c = vec![i64::MIN; m * n];
    let a_get = |i: usize, p: usize| at[p * m + i];
    let b_get = |p: usize, j: usize| bs[(kk - 1 - p) * n + j];
    let mut want = vec![0i64; m * n];
    for i in 0..m {
        for j in 0..n {
            want[i * n + j] = (0..kk).map(|p| a_get(i, p) * b_get(p, j)).sum();
        }
    }
    let b_last_row = (kk - 1) * n;
    let st = call(
        &k,
        &[
            Arg::strided(&mut at, DType::I64, &[m as i64, kk as i64], &[1, m as i64]),
            Arg::strided(
                &mut bs[b_last_row..],
                DType::I64,
                &[kk as i64, n as i64],
                &[-(n as i64), 1],
            ),
            Arg::new(&mut c, DType::I64, &[m as i64, n as i64]),
        ],
    );
    assert_eq!(st, status::OK);
    assert_eq!(c, want);
}

#[test]
fn matmul_with_empty_reduction_writes_zeros() {
    let k = jit_one(&matmul(DType::F64));
    let mut a: Vec<f64> = vec![];
    let mut bm: Vec<f64> = vec![];
    let mut c = vec![f64::NAN; 6];
    let st = call(
        &k,
        &[
            Arg::new(&mut a, DType::F64, &[2, 0]),
            Arg::new(&mut bm, DType::F64, &[0, 3]),
            Arg::new(&mut c, DType::F64, &[2, 3]),
        ],
    );
    assert_eq!(st, status::OK);
    assert_eq!(c, vec![0.0; 6]);
}

#[test]
fn aarch64_and_x86_64_compile_matmul_and_vector_code() {
    use crate::codegen::{compile_for_target, Target};
    for triple in ["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"] {
        let target = Target::parse(triple).unwrap();
        let wide = crate::codegen::UkernelIsa::Cranelift;
        for d in DType::ALL {
            compile_for_target(&matmul(d), &target, wide)
                .unwrap_or_else(|e| panic!("{triple} {d}: {e}"));
        }
        compile_for_target(&super::ops::vector_sum_f32(), &target, wide)
            .unwrap_or_else(|e| panic!("{triple}: {e}"));
    }
}

#[test]
fn unsupported_targets_are_errors() {
    use crate::codegen::{compile_for_target, CodegenError, Target};
    let riscv = Target::parse("riscv64gc-unknown-linux-gnu").unwrap();
    let err = compile_for_target(
        &matmul(DType::F32),
        &riscv,
        crate::codegen::UkernelIsa::Cranelift,
    )
    .unwrap_err();
    assert!(matches!(err, CodegenError::Target(_)), "{err}");
    assert!(
        err.to_string()
            .contains("unsupported architecture `riscv64"),
        "{err}"
    );
    assert!(Target::parse("not-a-triple-at-all").is_err());
}

#[test]
fn clif_text_shows_entry_and_body() {
    use crate::codegen::{clif_text, Target};
    let text = clif_text(
        &matmul(DType::F32),
        &Target::Host,
        crate::codegen::UkernelIsa::Cranelift,
    )
    .unwrap();
    assert!(text.contains("; einc_matmul.body\nfunction "), "{text}");
    assert!(text.contains("; einc_matmul\nfunction "), "{text}");
    assert!(
        text.contains("fmul.f32") || text.contains("fmul v"),
        "{text}"
    );
}

#[test]
fn bad_loop_ir_is_an_error_not_a_panic() {
    use crate::codegen::CodegenError;
    // A value used before its definition.
    let mut m = matmul(DType::F32);
    let f = &mut m.funcs[0];
    let ghost = f.add_value("ghost", Type::Index);
    let early = f.add_value("early", Type::Index);
    f.body.insts.insert(
        0,
        Inst::Assign {
            result: early,
            op: Op::IndexArith(crate::ir::loops::IndexOp::Add, ghost, ghost),
        },
    );
    let err = crate::codegen::jit_compile(&m).unwrap_err();
    assert!(matches!(err, CodegenError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("%ghost is used before it is defined"),
        "{err}"
    );
    // A vector type wider than 128 bits.
    let mut m = matmul(DType::F32);
    let f = &mut m.funcs[0];
    let wide = f.add_value("wide", Type::Vector(DType::F32, 8));
    let s = f.add_value("s", Type::Scalar(DType::F32));
    f.body.insts.push(Inst::Assign {
        result: s,
        op: Op::Const(Scalar::F32(1.0)),
    });
    f.body.insts.push(Inst::Assign {
        result: wide,
        op: Op::Splat(s, 8),
    });
    let err = crate::codegen::jit_compile(&m).unwrap_err();
    assert!(err.to_string().contains("not a 128-bit vector"), "{err}");
}

#[test]
fn kernels_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<crate::codegen::JitKernel>();
    send_sync::<crate::codegen::JitProgram>();
}
