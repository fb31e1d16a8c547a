//! Threads (docs/abi.md, "Threads"): kernels whose parallel loops run on 1, 2 and 3 threads
//! give bit-identical results, for every example and at the tile boundaries of the GEMM nest,
//! also when several threads call one kernel at once; and the pool really runs them.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::compiler::rng::Rng;
use einc::compiler::testkit::differential::{input_shapes, random_array};
use einc::runtime::parallel::pooled_calls;
use einc::runtime::{Array, DType};
use einc::{Kernel, Program, TensorRef};
use std::path::Path;

/// The outputs of `kernel` on `inputs` with `threads` threads.
fn run_with(kernel: &Kernel, inputs: &[Array], threads: usize) -> Vec<Array> {
    let mut k = kernel.clone();
    k.set_num_threads(Some(threads));
    assert_eq!(k.num_threads(), threads);
    let refs: Vec<TensorRef<'_>> = inputs.iter().map(TensorRef::from_array).collect();
    k.run(&refs).unwrap()
}

fn bits(a: &Array) -> Vec<u64> {
    a.to_f64_vec().iter().map(|x| x.to_bits()).collect()
}

/// Runs `kernel` with 1, 2 and 3 threads and checks the results are the same bits; returns
/// how many parallel loops the pool ran.
fn check_threads(kernel: &Kernel, inputs: &[Array], what: &str) -> u64 {
    let before = pooled_calls();
    let one = run_with(kernel, inputs, 1);
    assert_eq!(pooled_calls(), before, "{what}: one thread used the pool");
    for threads in [2, 3] {
        let many = run_with(kernel, inputs, threads);
        for (n, (a, b)) in one.iter().zip(&many).enumerate() {
            assert_eq!(a.shape(), b.shape(), "{what}");
            assert!(
                bits(a) == bits(b),
                "{what}: output {n} on {threads} threads differs from 1 thread"
            );
        }
    }
    pooled_calls() - before
}

/// Random inputs for `kernel`, each symbolic dim bound by `dim`.
fn inputs_for(kernel: &Kernel, dim: &dyn Fn(usize) -> usize, rng: &mut Rng) -> Vec<Array> {
    let sig = kernel.signature();
    let symbolic: Vec<&str> = sig
        .dims
        .iter()
        .filter(|d| d.value.is_none())
        .map(|d| d.name.as_str())
        .collect();
    let inputs = kernel.inputs();
    input_shapes(kernel, &mut |d| {
        dim(symbolic.iter().position(|s| *s == d).unwrap())
    })
    .iter()
    .zip(inputs)
    .map(|(shape, a)| random_array(rng, a.dtype, shape, false))
    .collect()
}

#[test]
fn every_example_gives_the_same_bits_on_1_2_and_3_threads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ein"))
        .collect();
    names.sort();
    assert!(names.len() >= 5);
    let mut rng = Rng::new(10);
    let mut pooled = 0;
    // Small extents, then extents past a tile, a vector and a GEMM block (mc = 256).
    let sizes: [&[usize]; 2] = [&[5, 3, 9, 2], &[300, 67, 33, 40]];
    for path in &names {
        let program = Program::from_file(path).unwrap();
        for name in program.kernel_names() {
            let kernel = program.kernel(name).unwrap();
            for set in sizes {
                let inputs = inputs_for(&kernel, &|n| set[n % set.len()], &mut rng);
                let what = format!("{} {name} {set:?}", path.display());
                pooled += check_threads(&kernel, &inputs, &what);
            }
        }
    }
    assert!(pooled >= 10, "the pool ran only {pooled} loops");
}

/// Matrix products around the GEMM blocks: `mc` (256) rows per parallel `ic` block, `nr` (8)
/// columns per tile, `mr` (4) rows; A read in place and packed (transposed), and batched. The
/// products of at least a million multiply-adds must run on the pool (the grain rule keeps
/// smaller ones serial).
#[test]
fn gemm_blocks_give_the_same_bits_at_tile_boundaries() {
    let mut rng = Rng::new(11);
    for dtype in [DType::F32, DType::F64] {
        for (spec, shapes) in [
            ("ij,jk->ik", [[255, 70], [70, 37]]),
            ("ij,jk->ik", [[257, 33], [33, 8]]),
            ("ij,jk->ik", [[513, 9], [9, 41]]),
            ("ij,jk->ik", [[513, 130], [130, 67]]),
            ("ji,jk->ik", [[70, 515], [70, 17]]),
            ("ji,jk->ik", [[130, 515], [130, 41]]),
            ("bij,bjk->bik", [[7, 33], [33, 9]]),
            ("bij,bjk->bik", [[65, 64], [64, 40]]),
        ] {
            let batched = spec.starts_with('b');
            let shapes: Vec<Vec<usize>> = shapes
                .iter()
                .map(|s| {
                    let mut v = if batched { vec![9] } else { vec![] };
                    v.extend(s);
                    v
                })
                .collect();
            let ops: Vec<(DType, &[usize])> = shapes.iter().map(|s| (dtype, &s[..])).collect();
            let kernel = Program::einsum(spec, &ops)
                .unwrap()
                .kernel("einsum")
                .unwrap();
            let inputs: Vec<Array> = shapes
                .iter()
                .map(|s| random_array(&mut rng, dtype, s, false))
                .collect();
            let what = format!("{spec} {shapes:?} {dtype:?}");
            let pooled = check_threads(&kernel, &inputs, &what);
            let macs = shapes[0].iter().product::<usize>() * shapes[1].last().unwrap();
            if macs >= 1_000_000 {
                assert!(pooled > 0, "{what}: no loop ran on the pool");
            }
        }
    }
}

/// Products with symbolic extents keep the cost model's `mc` (hundreds of rows), so a small M
/// makes one to three `ic` blocks: their `jr` panels run on the pool instead (docs/threads.md),
/// bit for bit as on one thread, around the panel (`nr`) and block boundaries; A read in place
/// and transposed (`ki`), f32 and f64. Products of two million multiply-adds or more must use
/// the pool.
#[test]
fn symbolic_gemms_with_few_blocks_run_their_panels_on_the_pool() {
    let mut rng = Rng::new(14);
    for dtype in ["f32", "f64"] {
        for a in ["A[i, k]", "A[k, i]"] {
            let ashape = if a == "A[i, k]" { "M, K" } else { "K, M" };
            let src = format!(
                "dims M, N, K\n\
                 kernel k(A: {dtype}[{ashape}], B: {dtype}[K, N]) -> (C: {dtype}[M, N]) {{\n\
                     C[i, j] = {a} * B[k, j]\n\
                 }}\n"
            );
            let kernel = Program::from_source(&src).unwrap().kernel("k").unwrap();
            for (m, n, k) in [
                (256, 64, 1024),
                (1, 700, 1500),
                (7, 33, 300),
                (600, 17, 200),
                (1021, 48, 64),
                (40, 15, 9),
            ] {
                let inputs = inputs_for(&kernel, &|d| [m, n, k][d], &mut rng);
                let what = format!("{a} {dtype} M={m} N={n} K={k}");
                let pooled = check_threads(&kernel, &inputs, &what);
                if m * n * k >= 2_000_000 {
                    assert!(pooled > 0, "{what}: no loop ran on the pool");
                }
            }
        }
    }
}

#[test]
fn a_row_softmax_and_a_map_run_on_the_pool() {
    let src = "dims R, C\n\
        kernel k(S: f32[R, C], b: f32[C]) -> (P: f32[R, C], Y: f32[R, C]) {\n\
            P[i, j] = softmax[j](S[i, j])\n\
            Y[i, j] = tanh(S[i, j]) + b[j]\n\
        }\n";
    let kernel = Program::from_source(src).unwrap().kernel("k").unwrap();
    let mut rng = Rng::new(12);
    for (rows, cols) in [(1, 5000), (301, 257), (5000, 3)] {
        let inputs = vec![
            random_array(&mut rng, DType::F32, &[rows, cols], false),
            random_array(&mut rng, DType::F32, &[cols], false),
        ];
        let pooled = check_threads(&kernel, &inputs, &format!("{rows}x{cols}"));
        if rows > 300 {
            assert!(pooled > 0, "{rows}x{cols}: no loop ran on the pool");
        }
    }
}

#[test]
fn concurrent_callers_get_the_same_bits() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/attention.ein"),
    )
    .unwrap();
    let kernel = Program::from_source(&src)
        .unwrap()
        .kernel("attention")
        .unwrap();
    let mut rng = Rng::new(13);
    let inputs = inputs_for(&kernel, &|n| [300, 40, 24][n], &mut rng);
    let want: Vec<Vec<u64>> = run_with(&kernel, &inputs, 1).iter().map(bits).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (kernel, inputs, want) = (&kernel, &inputs, &want);
            s.spawn(move || {
                for _ in 0..3 {
                    let got = run_with(kernel, inputs, 2 + t % 2);
                    assert!(got.iter().map(bits).eq(want.iter().cloned()));
                }
            });
        }
    });
}

#[test]
fn the_thread_count_is_set_per_program_and_per_kernel() {
    let mut program = Program::einsum("ij->ji", &[(DType::F32, &[2, 2])]).unwrap();
    let default = program.kernel("einsum").unwrap().num_threads();
    assert!(default >= 1);
    program.set_num_threads(Some(3));
    let mut kernel = program.kernel("einsum").unwrap();
    assert_eq!(kernel.num_threads(), 3);
    kernel.set_num_threads(Some(1));
    assert_eq!(kernel.num_threads(), 1);
    assert_eq!(kernel.clone().num_threads(), 1);
    kernel.set_num_threads(None);
    assert_eq!(kernel.num_threads(), default);
}
