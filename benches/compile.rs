//! Compile time through the JIT: source text to callable machine code, the whole pipeline.
//! Issue #9's target: attention forward + backward (`examples/attention.ein`, both kernels)
//! in at most 20 ms (jax.jit takes about 100 ms).
//!
//! `cargo bench -p einc-benches --bench compile`

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use einc::Program;
use std::hint::black_box;

fn compile(c: &mut Criterion) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut group = c.benchmark_group("compile");
    for file in ["attention.ein", "mlp.ein", "tucker.ein"] {
        let path = format!("{examples}/{file}");
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        group.bench_function(file, |b| {
            b.iter(|| Program::from_source(black_box(&source)).expect("compiles"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = compile
}
criterion_main!(benches);
