//! The scratch block of temporaries (`codegen::scratch`): calls that grow and shrink it, calls
//! from several threads at once, calls above its limit and calls that cannot allocate all
//! compute what the interpreter computes, and the thread keeps exactly the block the policy of
//! docs/abi.md says.

use crate::api::{Program, TensorRef};
use crate::codegen::scratch::{self, SCRATCH_LIMIT};
use einc_runtime::{Array, Buffer};

/// A softmax temporary `P` and a contraction over it (whose GETT pack buffers are temporaries
/// too), so a call needs a block that grows with both dims.
const SOURCE: &str = "dims N, M
kernel k(S: f32[N, M], W: f32[M, N]) -> (r: f32[N, N]) {
    P[i, j] = softmax[j](S[i, j])
    r[i, l] = sum[j](P[i, j] * W[j, l])
}
";

/// Inputs of size `n` x `m`, distinct per size.
fn inputs(n: usize, m: usize) -> [Array; 2] {
    let val = |i: usize, seed: usize| ((i * 7919 + seed * 104729) % 23) as f32 / 8.0 - 1.4;
    let s = Buffer::F32((0..n * m).map(|i| val(i, n)).collect());
    let w = Buffer::F32((0..m * n).map(|i| val(i, m + 1)).collect());
    [
        Array::from_buffer(s, &[n, m]).unwrap(),
        Array::from_buffer(w, &[m, n]).unwrap(),
    ]
}

/// The kernel's result bits for an `n` x `m` call.
fn call(program: &Program, n: usize, m: usize) -> Vec<u32> {
    let k = program.kernel("k").unwrap();
    let [s, w] = inputs(n, m);
    let out = k
        .run(&[TensorRef::from_array(&s), TensorRef::from_array(&w)])
        .unwrap();
    match out[0].buffer() {
        Buffer::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        other => panic!("unexpected output {other:?}"),
    }
}

/// The sizes the tests cycle through: below, around and above tile sizes, growing and
/// shrinking the block.
const SIZES: &[(usize, usize)] = &[
    (3, 5),
    (70, 130),
    (1, 1),
    (33, 17),
    (70, 130),
    (0, 4),
    (9, 300),
];

#[test]
fn repeated_calls_that_grow_and_shrink_the_block_agree_with_the_interpreter() {
    let program = Program::from_source(SOURCE).unwrap();
    let mut first: Vec<Option<Vec<u32>>> = vec![None; SIZES.len()];
    for round in 0..2 {
        for (i, &(n, m)) in SIZES.iter().enumerate() {
            let got = call(&program, n, m);
            let want = crate::interp::run(program.module(), "k", &inputs(n, m)).unwrap();
            for (g, w) in got.iter().zip(want[0].to_f64_vec()) {
                let g = f64::from(f32::from_bits(*g));
                assert!(
                    (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{n}x{m}, round {round}: {g} != {w}"
                );
            }
            // Memory left over from an earlier, larger call must not change a result.
            match &first[i] {
                None => first[i] = Some(got),
                Some(f) => assert_eq!(&got, f, "{n}x{m}: round {round} differs from round 0"),
            }
        }
    }
}

#[test]
fn concurrent_callers_each_get_the_single_threaded_results() {
    let program = Program::from_source(SOURCE).unwrap();
    let want: Vec<Vec<u32>> = SIZES.iter().map(|&(n, m)| call(&program, n, m)).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (program, want) = (&program, &want);
            s.spawn(move || {
                for round in 0..10 {
                    let i = (t + round * 3) % SIZES.len();
                    let (n, m) = SIZES[i];
                    assert_eq!(call(program, n, m), want[i], "thread {t}, {n}x{m}");
                }
            });
        }
    });
}

/// `r[i] = sum_j softmax_j(S)[i, j]`, 1 for every row; `P` is a temporary of `N * M` floats.
const ROW_SUMS: &str = "dims N, M
kernel k(S: f32[N, M]) -> (r: f32[N]) {
    P[i, j] = softmax[j](S[i, j])
    r[i] = sum[j](P[i, j])
}
";

/// Calls the row-sum kernel with one element broadcast over `n` x `m` (no memory behind it).
fn row_sums(program: &Program, n: usize, m: usize) -> Result<Vec<f32>, crate::api::Error> {
    let k = program.kernel("k").unwrap();
    let one = [0.25f32];
    let s = TensorRef::strided(&one, 0, &[n, m], &[0, 0]).unwrap();
    let mut r = vec![0f32; n];
    let mut outs = [crate::api::TensorMut::contiguous(&mut r, &[n]).unwrap()];
    k.call(&[s], &mut outs)?;
    Ok(r)
}

#[test]
fn the_thread_keeps_one_block_up_to_the_limit_and_frees_the_rest() {
    let program = Program::from_source(ROW_SUMS).unwrap();
    let temps_grow = program.loop_module().funcs.iter().all(|f| {
        f.buffers.iter().any(|b| {
            b.kind == crate::ir::loops::BufferKind::Temp
                && b.shape.contains(&crate::ir::loops::Extent::Dim("M".into()))
        })
    });
    assert!(
        temps_grow,
        "no temporary grows with M: choose another kernel"
    );
    // A new thread starts without a block.
    std::thread::spawn(move || {
        assert_eq!(scratch::thread_block(), None);
        let check = |r: Vec<f32>| {
            for x in r {
                assert!((x - 1.0).abs() < 1e-3, "{x}");
            }
        };
        // 2 x 1 MiB of P: the thread keeps a block of at least that.
        check(row_sums(&program, 2, 1 << 18).unwrap());
        let (block, capacity) = scratch::thread_block().unwrap();
        assert!(capacity >= 2 << 20, "{capacity}");
        // A smaller call reuses it.
        check(row_sums(&program, 3, 1000).unwrap());
        assert_eq!(scratch::thread_block(), Some((block, capacity)));
        // Above the limit: a block of the call's own; the thread's block stays.
        let m = (SCRATCH_LIMIT as usize) / 4 / 2 + 64;
        check(row_sums(&program, 2, m).unwrap());
        assert_eq!(scratch::thread_block(), Some((block, capacity)));
        // A call that cannot allocate fails, writing nothing, and leaves the block.
        let err = row_sums(&program, 1, 1 << 46).unwrap_err();
        assert!(
            err.to_string().contains("cannot allocate"),
            "unexpected error: {err}"
        );
        assert_eq!(scratch::thread_block(), Some((block, capacity)));
        // A larger call within the limit replaces it.
        check(row_sums(&program, 2, 1 << 20).unwrap());
        let (_, grown) = scratch::thread_block().unwrap();
        assert!(grown >= 8 << 20, "{grown}");
        check(row_sums(&program, 3, 1000).unwrap());
    })
    .join()
    .unwrap();
}
