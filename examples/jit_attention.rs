//! JIT-compiles `examples/attention.ein` and calls its `attention` kernel from Rust on random
//! inputs, then checks the result against a direct computation written here with plain loops
//! (in f64), printing the largest difference.
//!
//! Run with `cargo run --example jit_attention`.

use einc::{Error, Program, TensorRef};
use std::path::Path;
use std::process::ExitCode;

const T: usize = 16;
const D: usize = 32;
const K: usize = 8;

fn main() -> ExitCode {
    match run() {
        Ok(max_err) if max_err < 1e-4 => {
            println!("max |einc - reference| = {max_err:.3e}");
            ExitCode::SUCCESS
        }
        Ok(max_err) => {
            eprintln!("max |einc - reference| = {max_err:.3e} exceeds 1e-4");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<f64, Error> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/attention.ein");
    let program = Program::from_file(&path)?;
    let attention = program.kernel("attention")?;

    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut random = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    };
    let (x, wq, wk, wv) = (random(T * D), random(D * K), random(D * K), random(D * K));

    let outputs = attention.run(&[
        TensorRef::contiguous(&x, &[T, D])?,
        TensorRef::contiguous(&wq, &[D, K])?,
        TensorRef::contiguous(&wk, &[D, K])?,
        TensorRef::contiguous(&wv, &[D, K])?,
    ])?;
    let o = outputs.first().map(|a| a.to_f64_vec()).unwrap_or_default();
    let want = reference(&x, &wq, &wk, &wv);
    println!(
        "attention(X: {T}x{D}, W*: {D}x{K}) -> O: {:?}",
        outputs.first().map(|a| a.shape())
    );
    if o.len() != want.len() {
        return Ok(f64::INFINITY);
    }
    Ok(o.iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max))
}

/// softmax(Q Kᵀ / sqrt(K)) V with Q = X WQ, K = X WK, V = X WV, in f64.
fn reference(x: &[f32], wq: &[f32], wk: &[f32], wv: &[f32]) -> Vec<f64> {
    let project = |w: &[f32]| -> Vec<f64> {
        let mut p = vec![0.0; T * K];
        for t in 0..T {
            for a in 0..K {
                p[t * K + a] = (0..D)
                    .map(|d| f64::from(x[t * D + d]) * f64::from(w[d * K + a]))
                    .sum();
            }
        }
        p
    };
    let (q, k, v) = (project(wq), project(wk), project(wv));
    let mut o = vec![0.0; T * K];
    for i in 0..T {
        let s: Vec<f64> = (0..T)
            .map(|j| (0..K).map(|a| q[i * K + a] * k[j * K + a]).sum::<f64>() / (K as f64).sqrt())
            .collect();
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = e.iter().sum();
        for a in 0..K {
            o[i * K + a] = (0..T).map(|j| e[j] / z * v[j * K + a]).sum();
        }
    }
    o
}
