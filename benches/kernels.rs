//! Run time of JIT-compiled kernels called through a Rust kernel handle, outputs written in
//! place (`Kernel::call`). The cases are issue #9's: matmuls, a batched matmul, and the small
//! ops whose per-call overhead matters (`ij,j->i` 16², `ii->` 64²).
//!
//! `cargo bench -p einc-benches --bench kernels [-- FILTER]`

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use einc::{TensorMut, TensorRef};
use einc_benches::{einsum_kernel, random};
use std::hint::black_box;

/// One einsum case: subscripts, operand shapes, output shape, useful FLOPs per call.
struct Case {
    name: &'static str,
    subscripts: &'static str,
    shapes: &'static [&'static [usize]],
    out: &'static [usize],
    flops: u64,
}

const CASES: &[Case] = &[
    Case {
        name: "small ij,j->i 16^2",
        subscripts: "ij,j->i",
        shapes: &[&[16, 16], &[16]],
        out: &[16],
        flops: 2 * 16 * 16,
    },
    Case {
        name: "small ii-> 64^2",
        subscripts: "ii->",
        shapes: &[&[64, 64]],
        out: &[],
        flops: 64,
    },
    Case {
        name: "matmul 256^3",
        subscripts: "ij,jk->ik",
        shapes: &[&[256, 256], &[256, 256]],
        out: &[256, 256],
        flops: 2 * 256 * 256 * 256,
    },
    Case {
        name: "matmul 1024^3",
        subscripts: "ij,jk->ik",
        shapes: &[&[1024, 1024], &[1024, 1024]],
        out: &[1024, 1024],
        flops: 2 * 1024 * 1024 * 1024,
    },
    Case {
        name: "bik,bkj->bij 64x64^3",
        subscripts: "bik,bkj->bij",
        shapes: &[&[64, 64, 64], &[64, 64, 64]],
        out: &[64, 64, 64],
        flops: 2 * 64 * 64 * 64 * 64,
    },
];

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernels");
    for case in CASES {
        let kernel = einsum_kernel(case.subscripts, case.shapes);
        let data: Vec<Vec<f32>> = case
            .shapes
            .iter()
            .enumerate()
            .map(|(i, s)| random(s.iter().product(), i as u64 + 1))
            .collect();
        let inputs: Vec<TensorRef<'_>> = data
            .iter()
            .zip(case.shapes)
            .map(|(d, s)| TensorRef::contiguous(d, s).expect("input view"))
            .collect();
        let mut out = vec![0.0f32; case.out.iter().product()];
        group.throughput(Throughput::Elements(case.flops));
        group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
            b.iter(|| {
                let mut outputs = [TensorMut::contiguous(&mut out, case.out).expect("output")];
                kernel
                    .call(black_box(&inputs), &mut outputs)
                    .expect("kernel call");
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = kernels
}
criterion_main!(benches);
