//! Differential tests: compiled kernels against the reference interpreter, at scale.
//!
//! - Every example kernel, and a fixed-seed batch of random well-typed programs
//!   (`einc::compiler::testkit::program`), compiled in every variant (each optimisation level,
//!   the default level with each pass left out in turn, and the default level with random
//!   legal schedules) and called through the C ABI entry
//!   point with inputs and outputs in random layouts (`testkit::differential`).
//! - The same example kernels through the Rust API (`Kernel::run`, `Kernel::call` on strided
//!   views), so the view layer is covered too.
//! - Every regression file in `tests/differential/`: a case that once failed, shrunk.
//!
//! The batch is `EINC_DIFF_CASES` programs (default 2,000; 200 in debug builds) starting at
//! case `EINC_DIFF_START` (default 0). A failing case is shrunk to a minimal program, written
//! as a regression file under `target/tmp/differential-failures/`, and reported; commit the
//! file into `tests/differential/` with the fix. `docs/testing.md` describes longer runs.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::compiler::interp;
use einc::compiler::ir::tensor::Extent;
use einc::compiler::rng::Rng;
use einc::compiler::testkit::choices::Choices;
use einc::compiler::testkit::differential::{
    case_bytes, check_kernel, compare, random_array, shrink, variants,
    variants_with_random_schedules, Case, Failure, Tolerance,
};
use einc::compiler::testkit::files::{ein_files, example_files};
use einc::compiler::testkit::layout::{random_layout, Placed};
use einc::compiler::testkit::program::{generate, Config};
use einc::runtime::{Array, Buffer};
use einc::{Kernel, Program, TensorMut, TensorRef};
use std::path::Path;

/// Extents for a kernel's symbolic dims: 1 to 4, and 0 now and then.
fn random_dims(program: &Program, kernel: &str, rng: &mut Rng) -> Vec<(String, u64)> {
    let k = program.kernel(kernel).unwrap();
    k.signature()
        .dims
        .iter()
        .filter(|d| d.value.is_none())
        .map(|d| {
            let v = if rng.below(12) == 0 {
                0
            } else {
                1 + rng.below(4) as u64
            };
            (d.name.clone(), v)
        })
        .collect()
}

#[test]
fn every_example_kernel_agrees_with_the_interpreter_in_every_variant() {
    let mut kernels = 0;
    for file in example_files() {
        let program =
            Program::from_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for name in program.kernel_names().map(String::from).collect::<Vec<_>>() {
            kernels += 1;
            for seed in 0..4 {
                let mut rng = Rng::new(seed * 7919 + kernels);
                let dims = random_dims(&program, &name, &mut rng);
                let vs = variants_with_random_schedules(seed * 1000 + kernels, 1);
                check_kernel(program.module(), &name, &dims, seed, &vs).unwrap_or_else(|f| {
                    panic!(
                        "{}: kernel {name}, dims {dims:?}, seed {seed}: {f}",
                        file.display()
                    )
                });
            }
        }
    }
    assert!(kernels >= 9, "only {kernels} kernels found");
}

/// A view of a placed argument for the Rust API.
fn view(p: &Placed) -> TensorRef<'_> {
    let strides: Vec<isize> = p.layout.strides.iter().map(|&s| s as isize).collect();
    let (o, shape) = (p.layout.offset, p.shape.as_slice());
    match &p.buffer {
        Buffer::F32(v) => TensorRef::strided(v, o, shape, &strides),
        Buffer::F64(v) => TensorRef::strided(v, o, shape, &strides),
        Buffer::I32(v) => TensorRef::strided(v, o, shape, &strides),
        Buffer::I64(v) => TensorRef::strided(v, o, shape, &strides),
    }
    .unwrap()
}

fn view_mut(p: &mut Placed) -> TensorMut<'_> {
    let strides: Vec<isize> = p.layout.strides.iter().map(|&s| s as isize).collect();
    let (o, shape) = (p.layout.offset, p.shape.as_slice());
    match &mut p.buffer {
        Buffer::F32(v) => TensorMut::strided(v, o, shape, &strides),
        Buffer::F64(v) => TensorMut::strided(v, o, shape, &strides),
        Buffer::I32(v) => TensorMut::strided(v, o, shape, &strides),
        Buffer::I64(v) => TensorMut::strided(v, o, shape, &strides),
    }
    .unwrap()
}

/// Runs `kernel` through the Rust API, both `run` and `call` with random output layouts.
fn check_through_the_api(program: &Program, kernel: &Kernel, rng: &mut Rng, what: &str) {
    let dims = random_dims(program, kernel.name(), rng);
    let extent = |e: &Extent| match e {
        Extent::Fixed(n) => *n as usize,
        Extent::Dim(d) => program
            .module()
            .dim_value(d)
            .or_else(|| dims.iter().find(|(n, _)| n == d).map(|(_, v)| *v))
            .unwrap() as usize,
    };
    let inputs: Vec<Placed> = kernel
        .inputs()
        .iter()
        .map(|a| {
            let shape: Vec<usize> = a.shape.iter().map(extent).collect();
            let data = random_array(rng, a.dtype, &shape, false);
            Placed::new(&data, random_layout(rng, &shape, true))
        })
        .collect();
    let logical: Vec<Array> = inputs.iter().map(Placed::logical).collect();
    let want = interp::run(program.module(), kernel.name(), &logical).unwrap();
    let views: Vec<TensorRef<'_>> = inputs.iter().map(view).collect();
    let got = kernel.run(&views).unwrap_or_else(|e| panic!("{what}: {e}"));
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        compare(g, w, Tolerance::F32).unwrap_or_else(|e| panic!("{what}, run, output {n}: {e}"));
    }
    let mut outs: Vec<Placed> = want
        .iter()
        .map(|w| Placed::output(rng, w.dtype(), w.shape()))
        .collect();
    let mut out_views: Vec<TensorMut<'_>> = outs.iter_mut().map(view_mut).collect();
    kernel
        .call(&views, &mut out_views)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    drop(out_views);
    for (n, (o, w)) in outs.iter().zip(&want).enumerate() {
        o.check_gaps()
            .unwrap_or_else(|e| panic!("{what}, call, output {n}: {e}"));
        compare(&o.logical(), w, Tolerance::F32)
            .unwrap_or_else(|e| panic!("{what}, call, output {n} laid out as {:?}: {e}", o.layout));
    }
}

#[test]
fn every_example_kernel_agrees_with_the_interpreter_through_the_rust_api() {
    for file in example_files() {
        let program = Program::from_file(&file).unwrap();
        for name in program.kernel_names().map(String::from).collect::<Vec<_>>() {
            let kernel = program.kernel(&name).unwrap();
            for seed in 0..4 {
                let mut rng = Rng::new(seed * 104_729 + 1);
                let what = format!("{}: kernel {name}, seed {seed}", file.display());
                check_through_the_api(&program, &kernel, &mut rng, &what);
            }
        }
    }
}

/// A number from the environment, or `default`.
fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

/// The shrunk reproducer of a failing case, saved where `docs/testing.md` says.
fn report(n: u64, failure: &Failure) -> String {
    let config = Config::default();
    let vs = variants_with_random_schedules(n, 1);
    let Some(small) = shrink(&case_bytes(n), n, &config, &vs, 400) else {
        return format!("case {n}: {failure} (it passed when run again)");
    };
    let note = format!(
        "differential regression (random case {n}), shrunk\nfailed in {}",
        small.failure.to_string().lines().next().unwrap_or_default()
    );
    let text = small.case.to_file(&note);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-failures");
    let path = dir.join(format!("case-{n}.ein"));
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, &text))
        .map_or_else(
            |e| format!("(could not save it: {e})"),
            |()| format!("saved as {}", path.display()),
        );
    format!(
        "case {n}: {failure}\nshrunk to ({saved}):\n{text}\nwhich fails: {}",
        small.failure
    )
}

#[test]
fn random_programs_agree_with_the_interpreter_in_every_variant() {
    let count = env_or(
        "EINC_DIFF_CASES",
        if cfg!(debug_assertions) { 200 } else { 2000 },
    );
    let start = env_or("EINC_DIFF_START", 0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4)) as u64;
    let config = Config::default();
    let failures: Vec<(u64, Failure)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for n in (start + t..start + count).step_by(threads as usize) {
                        let g = generate(&mut Choices::new(&case_bytes(n)), &config);
                        let vs = variants_with_random_schedules(n, 1);
                        if let Err(f) = Case::generated(&g, n).check(&vs) {
                            failed.push((n, f));
                        }
                    }
                    failed
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    if let Some((n, f)) = failures.first() {
        let others: Vec<String> = failures[1..].iter().map(|(n, _)| n.to_string()).collect();
        panic!(
            "{} of {count} random programs failed (also cases: {})\n{}",
            failures.len(),
            others.join(", "),
            report(*n, f)
        );
    }
}

#[test]
fn regressions_agree_with_the_interpreter_in_every_variant() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential");
    let files = ein_files(&dir);
    for file in files {
        let case = Case::from_file(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        case.check(&variants_with_random_schedules(case.seed, 4))
            .unwrap_or_else(|f| panic!("{}: {f}", file.display()));
    }
}

#[test]
fn the_generator_covers_every_form_it_claims() {
    // `testkit::program` documents these forms; each must come up in a batch.
    let config = Config::default();
    let programs: Vec<_> = (0..600)
        .map(|n| generate(&mut Choices::new(&case_bytes(n)), &config))
        .collect();
    let sources: Vec<&str> = programs.iter().map(|g| g.source.as_str()).collect();
    let has = |needle: &str| sources.iter().any(|s| s.contains(needle));
    for needle in [
        "einsum(",
        "...",
        "->",
        "softmax[",
        "logsumexp[",
        "where(",
        "delta[",
        "eps[",
        "sum[",
        "max[",
        "min[",
        "prod[",
        "exp(",
        "tanh(",
        "sigmoid(",
        "relu(",
        "log(",
        "pow(",
        " / ",
        "f32[",
        "f64[",
        "i32[",
        "i64[",
        "f32(",
        "f64(",
        "i32(",
        "i64(",
        "dims D",
        "<=",
        "sqrt(D",
        "-inf",
    ] {
        assert!(has(needle), "no generated program contains {needle:?}");
    }
    // Diagonals, fixed positions and size-1 broadcasting.
    assert!(sources
        .iter()
        .any(|s| s.lines().any(|l| l.contains("s1, s1"))));
    assert!(has("[0, ") || has("[1, ") || has("[2, "));
    assert!(has(", 1]") || has("[1, "));
    // Einsums of one to six operands.
    for ops in 1..=6 {
        let found = sources.iter().any(|s| {
            s.lines().any(|l| {
                l.contains("einsum(")
                    && l.split('"').nth(1).is_some_and(|sub| {
                        sub.split("->").next().unwrap_or("").matches(',').count() == ops - 1
                    })
            })
        });
        assert!(found, "no einsum of {ops} operands");
    }
    // Extents 0, 1, primes and sizes around vector and tile boundaries, symbolic or fixed.
    let extents: Vec<u64> = programs
        .iter()
        .flat_map(|g| g.dims.iter().map(|(_, v)| *v))
        .collect();
    for e in [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65] {
        assert!(
            extents.contains(&e) || has(&format!("= {e}\n")) || has(&format!("= {e},")),
            "no dim of extent {e}"
        );
    }
    // Statements that feed each other.
    assert!(has("t0["));
}

/// A B that already is one `nr`-column panel (N = nr, columns contiguous) is read in place by
/// the micro-kernel (`docs/schedules.md`, "Packing"); inputs in random layouts take the packing
/// fallback. Every tile runs on every kind of micro-kernel the host runs, around `mr` and `kc`.
#[test]
fn b_read_in_place_agrees_with_the_interpreter_on_every_micro_kernel_path() {
    let tiles = [
        ("f32", 4, 8, "simd128"),
        ("f32", 6, 16, "avx2"),
        ("f32", 6, 64, "avx512"),
        ("f32", 8, 48, "avx512"),
        ("f64", 4, 4, "simd128"),
        ("f64", 6, 8, "avx2"),
        ("f64", 6, 32, "avx512"),
    ];
    // The default level and each kind of micro-kernel forced (the other variants leave out
    // the `schedule` pass, which completes the annotations).
    let vs: Vec<_> = variants()
        .into_iter()
        .filter(|v| v.name == "-O2" || v.options.ukernels.is_some())
        .collect();
    assert!(vs.len() >= 2, "{vs:?}");
    for (n, (dtype, mr, nr, family)) in tiles.into_iter().enumerate() {
        let source = format!(
            "dims Bt, M, K
kernel k(A: {dtype}[Bt, M, K], B: {dtype}[Bt, K, {nr}]) -> (C: {dtype}[Bt, M, {nr}]) {{
    C[b, i, j] = A[b, i, k] * B[b, k, j] schedule gemm(mr = {mr}, nr = {nr}, kc = 5, ukernel = {family})
}}
"
        );
        let program = Program::from_source(&source).unwrap_or_else(|e| panic!("{e}\n{source}"));
        for (bt, m, k) in [
            (1, 1, 1),
            (2, mr - 1, 5),
            (1, mr + 1, 0),
            (2, 2 * mr + 1, 11),
        ] {
            let dims = [("Bt", bt), ("M", m), ("K", k)].map(|(d, v)| (d.to_string(), v as u64));
            check_kernel(program.module(), "k", &dims, n as u64, &vs)
                .unwrap_or_else(|f| panic!("{dtype} {mr}x{nr}, dims {dims:?}: {f}\n{source}"));
        }
    }
}

/// Which micro-kernel paths the differential variants run on this host: the host's widest
/// kernels by default and each other kind it runs forced (`testkit::differential::variants`);
/// a kind the host cannot run (AVX-512 on an AVX2-only CPU) is reported as skipped here, and
/// `docs/testing.md` lists AVX-512 coverage by the host it last ran on.
#[test]
fn micro_kernel_paths_this_host_runs() {
    use einc::compiler::codegen::UkernelIsa;
    for isa in UkernelIsa::ALL {
        if isa.runs_on_host() {
            println!("running: {isa} micro-kernels in the differential variants");
        } else {
            println!("SKIPPED: {isa} micro-kernels: this host cannot run them");
        }
    }
    assert!(UkernelIsa::Cranelift.runs_on_host());
}
