//! The cost of one small kernel call through the Rust API (issue #9's small ops: `ij,j->i` 16²
//! and `ii->` 64²), in this thread's CPU time, best of several batches (ignored: measurements,
//! not tests). Run with
//! `cargo test --release -p einc-compiler --lib call_speed -- --ignored --nocapture`;
//! `docs/performance.md` records the results.

use super::ukernel_speed::Instant;
use crate::api::{Kernel, Program, TensorMut, TensorRef};
use einc_runtime::DType;

/// Calls per timed batch.
const CALLS: usize = 20_000;

/// Best time per call of `call`, in nanoseconds, over 30 batches.
fn best_ns(mut call: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..30 {
        let start = Instant::now();
        for _ in 0..CALLS {
            call();
        }
        best = best.min(start.elapsed() / CALLS as f64 * 1e9);
    }
    best
}

fn kernel(subscripts: &str, shapes: &[&[usize]]) -> Kernel {
    let operands: Vec<(DType, &[usize])> = shapes.iter().map(|s| (DType::F32, *s)).collect();
    Program::einsum(subscripts, &operands)
        .unwrap()
        .kernel("einsum")
        .unwrap()
}

/// Prints the time per call of `Kernel::call` with the output view built per call, with it
/// built once, and of `call_raw` with prebuilt descriptors (the entry point and the body).
fn measure(subscripts: &str, shapes: &[&[usize]], out_shape: &[usize]) {
    let k = kernel(subscripts, shapes);
    let data: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| {
            (0..s.iter().product::<usize>())
                .map(|i| (i % 7) as f32)
                .collect()
        })
        .collect();
    let inputs: Vec<TensorRef<'_>> = data
        .iter()
        .zip(shapes)
        .map(|(d, s)| TensorRef::contiguous(d, s).unwrap())
        .collect();
    let mut out = vec![0f32; out_shape.iter().product()];
    let per_call = best_ns(|| {
        let mut outputs = [TensorMut::contiguous(&mut out, out_shape).unwrap()];
        k.call(std::hint::black_box(&inputs), &mut outputs).unwrap();
    });
    let mut outputs = [TensorMut::contiguous(&mut out, out_shape).unwrap()];
    let views_once = best_ns(|| {
        k.call(std::hint::black_box(&inputs), &mut outputs).unwrap();
    });
    let descriptors: Vec<_> = inputs
        .iter()
        .map(TensorRef::descriptor)
        .chain(outputs.iter_mut().map(TensorMut::descriptor))
        .collect();
    // SAFETY: the descriptors point at the live views above.
    let raw = best_ns(|| unsafe { k.call_raw(std::hint::black_box(&descriptors)).unwrap() });
    println!(
        "{subscripts} {shapes:?}: Kernel::call {per_call:.0} ns (views built once: \
         {views_once:.0} ns); call_raw {raw:.0} ns"
    );
}

#[test]
#[ignore = "a measurement: run it with --ignored --nocapture"]
fn call_speed() {
    measure("ij,j->i", &[&[16, 16], &[16]], &[16]);
    measure("ii->", &[&[64, 64]], &[]);
}
