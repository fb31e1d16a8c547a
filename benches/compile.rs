//! Compile time through the JIT: source text to callable machine code, the whole pipeline.
//! Issue #9's target: attention forward + backward (`examples/attention.ein`, both kernels)
//! in at most 20 ms (jax.jit takes about 100 ms).
//!
//! The `phases` group splits attention's time into the front end (`sema`: source to checked
//! tensor IR), the pass pipeline (`passes`: `compile::compile`, tensor IR to loop IR) and code
//! generation (`codegen`: Cranelift, loop IR to executable memory).
//!
//! Each is measured twice: in wall time (groups `compile`, `phases`) and in the CPU time of the
//! process (`cpu-compile`, `cpu-phases`: every thread's, so the code generator's worker
//! threads count), which a loaded machine inflates far less (a benchmark that waits for a core
//! is not charged for the wait). On an idle machine with a free core the wall time is below the
//! CPU time, since the kernel bodies compile on worker threads.
//!
//! `cargo bench -p einc-benches --bench compile`

// `criterion_group!` defines a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use einc::Program;
use std::hint::black_box;

/// A criterion measurement of the CPU time the process runs, all its threads together
/// (`CLOCK_PROCESS_CPUTIME_ID`), not wall time: on a shared machine a benchmark waits for a
/// core for a varying part of its wall time, and the CPU time it uses is what stays comparable
/// from run to run. Reported in the same units as wall time.
struct CpuTime;

/// The CPU time the process has run, in nanoseconds.
///
/// # Panics
/// When the clock cannot be read.
fn process_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    u64::try_from(t.tv_sec).expect("CPU time is positive") * 1_000_000_000
        + u64::try_from(t.tv_nsec).expect("CPU time is positive")
}

impl criterion::measurement::Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        process_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        process_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn criterion::measurement::ValueFormatter {
        // Nanoseconds, formatted as wall time is.
        static WALL: criterion::measurement::WallTime = criterion::measurement::WallTime;
        criterion::measurement::Measurement::formatter(&WALL)
    }
}

/// The benchmarks, in groups `<prefix>compile` and `<prefix>phases`.
fn compile<M: criterion::measurement::Measurement>(c: &mut Criterion<M>, prefix: &str) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut group = c.benchmark_group(format!("{prefix}compile"));
    for file in ["attention.ein", "mlp.ein", "tucker.ein"] {
        let path = format!("{examples}/{file}");
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        group.bench_function(file, |b| {
            b.iter(|| Program::from_source(black_box(&source)).expect("compiles"))
        });
    }
    group.finish();

    let path = format!("{examples}/attention.ein");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let checked = || {
        einc::compiler::sema::compile_source(&source)
            .0
            .expect("attention.ein checks")
    };
    let module = checked();
    let options = einc::compiler::compile::CompileOptions::default();
    let loops = einc::compiler::compile::compile(&module, &options).expect("compiles");
    let mut group = c.benchmark_group(format!("{prefix}phases"));
    group.bench_function("sema", |b| b.iter(checked));
    group.bench_function("passes", |b| {
        b.iter(|| einc::compiler::compile::compile(black_box(&module), &options).expect("compiles"))
    });
    group.bench_function("codegen", |b| {
        b.iter(|| einc::compiler::codegen::jit_compile(black_box(&loops)).expect("compiles"))
    });
    group.finish();
}

fn wall_time(c: &mut Criterion) {
    compile(c, "");
}

fn cpu_time(c: &mut Criterion<CpuTime>) {
    compile(c, "cpu-");
}

criterion_group! {
    name = wall;
    config = Criterion::default().sample_size(20);
    targets = wall_time
}
criterion_group! {
    name = cpu;
    config = Criterion::default().sample_size(20).with_measurement(CpuTime);
    targets = cpu_time
}
criterion_main!(wall, cpu);
