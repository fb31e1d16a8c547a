//! The general body of a kernel with variants, which the JIT compiles on its first call
//! (`codegen::jit`): right whichever body runs first, when two threads call it at once, and a
//! failure to compile it is a status with a message and nothing written.

use super::tiles::{agree, f32_array, fortran, parse, run_jit, Out, TILES};
use super::*;
use crate::rng::Rng;
use einc_runtime::abi::status;
use einc_runtime::Array;

#[test]
fn strided_then_contiguous_then_strided_calls_agree_with_the_evaluator() {
    let m = parse(TILES);
    let program = jit_compile(&m).unwrap();
    let mut rng = Rng::new(5);
    let a = f32_array(&mut rng, &[9, 65]);
    let b = f32_array(&mut rng, &[65, 17]);
    assert_eq!(program.deferred_bodies(), (1, 0));
    // Fortran A: the general body, compiled by this call.
    agree(
        &m,
        &program,
        "matmul",
        &[fortran(&a), b.clone()],
        &[Out::c_order(&[9, 17])],
    );
    assert_eq!(program.deferred_bodies(), (1, 1));
    // C order: the contiguous variant, compiled with the program.
    agree(
        &m,
        &program,
        "matmul",
        &[a.clone(), b.clone()],
        &[Out::c_order(&[9, 17])],
    );
    // The general body again, now compiled.
    agree(
        &m,
        &program,
        "matmul",
        &[fortran(&a), b],
        &[Out::c_order(&[9, 17])],
    );
}

#[test]
fn contiguous_calls_never_compile_the_general_body() {
    let m = parse(TILES);
    let program = jit_compile(&m).unwrap();
    let mut rng = Rng::new(8);
    let a = f32_array(&mut rng, &[5, 8]);
    let b = f32_array(&mut rng, &[8, 9]);
    agree(&m, &program, "matmul", &[a, b], &[Out::c_order(&[5, 9])]);
    assert_eq!(program.deferred_bodies(), (1, 0));
}

#[test]
fn two_threads_calling_the_general_body_first_compile_it_once_and_agree() {
    let m = parse(TILES);
    let mut rng = Rng::new(6);
    let inputs: Vec<(Array, Array)> = (0..2)
        .map(|_| {
            (
                f32_array(&mut rng, &[13, 70]),
                f32_array(&mut rng, &[70, 9]),
            )
        })
        .collect();
    // A fresh program per round, so that both threads race to the first strided call.
    for _ in 0..4 {
        let program = jit_compile(&m).unwrap();
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for (a, b) in &inputs {
                let (m, program, start) = (&m, &program, &start);
                s.spawn(move || {
                    start.wait();
                    for round in 0..6 {
                        let a = if round % 2 == 0 {
                            fortran(a)
                        } else {
                            a.clone()
                        };
                        agree(
                            m,
                            program,
                            "matmul",
                            &[a, b.clone()],
                            &[Out::c_order(&[13, 9])],
                        );
                    }
                });
            }
        });
        assert_eq!(program.deferred_bodies(), (1, 1));
    }
}

#[test]
fn a_general_body_that_fails_to_compile_is_a_status_and_writes_nothing() {
    let m = parse(TILES);
    let program = jit_compile(&m).unwrap();
    program.fail_deferred_bodies();
    let mut rng = Rng::new(7);
    let a = f32_array(&mut rng, &[4, 3]);
    let b = f32_array(&mut rng, &[3, 8]);
    let (code, out) = run_jit(
        &program,
        "matmul",
        &[fortran(&a), b.clone()],
        &[Out::c_order(&[4, 8])],
    );
    assert_eq!(code, status::COMPILE_FAILED);
    let message = program.kernel("matmul").unwrap().last_error().unwrap();
    assert!(
        message.contains("compiling the general (strided) body on its first call failed"),
        "{message}"
    );
    // The output (zeros before the call) is untouched.
    assert!(super::tiles::bits(&out[0]).iter().all(|b| *b == 0));
    // The contiguous variant does not need the general body.
    agree(&m, &program, "matmul", &[a, b], &[Out::c_order(&[4, 8])]);
}
