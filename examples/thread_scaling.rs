//! The speed-up of 2 threads over 1 on the cases of issue #10, measured side by side in one
//! process: each case is JIT-compiled once and called in interleaved rounds, one thread then two
//! (`Kernel::set_num_threads`), so that both see the same load on a shared machine. A round's
//! time is the best of a few calls; the reported ratio is the median over rounds of the
//! 1-thread time divided by the 2-thread time (> 1: faster on two). The outputs of both are
//! compared bit for bit first.
//!
//! Run with `cargo run --release --example thread_scaling [ROUNDS]` (docs/performance.md).

use einc::runtime::{Array, DType};
use einc::{Error, Kernel, Program, TensorRef};
use std::path::Path;
use std::time::Instant;

/// A case: a kernel and its inputs.
struct Case {
    name: &'static str,
    kernel: Kernel,
    inputs: Vec<Array>,
}

fn random(shape: &[usize], seed: &mut u64) -> Array {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    Array::from_buffer(einc::runtime::Buffer::F32(v), shape).expect("shape")
}

fn cases() -> Result<Vec<Case>, Error> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::new();
    let f32s = |shapes: &[&[usize]]| -> Vec<(DType, Vec<usize>)> {
        shapes.iter().map(|s| (DType::F32, s.to_vec())).collect()
    };
    for (name, spec, shapes) in [
        (
            "matmul 1536x1024x1024",
            "ik,kj->ij",
            f32s(&[&[1536, 1024], &[1024, 1024]]),
        ),
        (
            "bik,bkj->bij 128x64^3",
            "bik,bkj->bij",
            f32s(&[&[128, 64, 64], &[128, 64, 64]]),
        ),
    ] {
        let ops: Vec<(DType, &[usize])> = shapes.iter().map(|(d, s)| (*d, &s[..])).collect();
        let kernel = Program::einsum(spec, &ops)?.kernel("einsum")?;
        let inputs = shapes.iter().map(|(_, s)| random(s, &mut seed)).collect();
        out.push(Case {
            name,
            kernel,
            inputs,
        });
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/attention.ein");
    let program = Program::from_file(&path)?;
    let (t, d, k) = (1024, 256, 64);
    let fwd: Vec<Array> = [&[t, d][..], &[d, k], &[d, k], &[d, k]]
        .iter()
        .map(|s| random(s, &mut seed))
        .collect();
    let mut bwd = fwd.clone();
    bwd.push(random(&[t, k], &mut seed));
    out.push(Case {
        name: "attention fwd T=1024 D=256 K=64",
        kernel: program.kernel("attention")?,
        inputs: fwd,
    });
    out.push(Case {
        name: "attention fwd+bwd T=1024 D=256 K=64",
        kernel: program.kernel("attention_grad")?,
        inputs: bwd,
    });
    let softmax = Program::from_source(
        "kernel softmax_rows(S: f32[2048, 1024]) -> (P: f32[2048, 1024]) {\n\
             P[i, j] = softmax[j](S[i, j])\n\
         }\n",
    )?;
    out.push(Case {
        name: "row softmax 2048x1024",
        kernel: softmax.kernel("softmax_rows")?,
        inputs: vec![random(&[2048, 1024], &mut seed)],
    });
    Ok(out)
}

/// The best time of `calls` calls of `kernel` with `threads` threads, in seconds.
fn best(kernel: &Kernel, refs: &[TensorRef<'_>], threads: usize, calls: usize) -> f64 {
    let mut k = kernel.clone();
    k.set_num_threads(Some(threads));
    (0..calls)
        .map(|_| {
            let start = Instant::now();
            k.run(refs).expect("run");
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Error> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!("| case | 1 thread (ms) | 2 threads (ms) | speed-up (median of {rounds} rounds) |");
    println!("| --- | --- | --- | --- |");
    for case in cases()? {
        let refs: Vec<TensorRef<'_>> = case.inputs.iter().map(TensorRef::from_array).collect();
        let mut one = case.kernel.clone();
        one.set_num_threads(Some(1));
        let mut two = case.kernel.clone();
        two.set_num_threads(Some(2));
        let (a, b) = (one.run(&refs)?, two.run(&refs)?);
        let bits = |x: &[Array]| -> Vec<u64> {
            x.iter()
                .flat_map(|a| a.to_f64_vec())
                .map(f64::to_bits)
                .collect()
        };
        assert!(
            bits(&a) == bits(&b),
            "{}: 2 threads differ from 1",
            case.name
        );
        // Calls per round: about 0.2 s of work per thread count.
        let once = best(&case.kernel, &refs, 1, 1);
        let calls = ((0.2 / once) as usize).clamp(1, 50);
        let (mut t1, mut t2, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let x = best(&case.kernel, &refs, 1, calls);
            let y = best(&case.kernel, &refs, 2, calls);
            t1.push(x);
            t2.push(y);
            ratio.push(x / y);
        }
        println!(
            "| {} | {:.2} | {:.2} | {:.2}x |",
            case.name,
            median(t1) * 1e3,
            median(t2) * 1e3,
            median(ratio)
        );
    }
    Ok(())
}
