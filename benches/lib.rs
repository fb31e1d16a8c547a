//! Shared helpers of the criterion benchmarks (`cargo bench -p einc-benches`): deterministic
//! inputs and einsum kernels compiled through the public Rust API.

use einc::{DType, Kernel, Program};

/// `n` deterministic pseudo-random values in [-1, 1) (xorshift64*), so that runs compare.
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The JIT kernel of numpy's `einsum(subscripts, ...)` on f32 operands of these shapes.
///
/// # Panics
/// When the einsum does not compile: a benchmark of a broken kernel is meaningless.
pub fn einsum_kernel(subscripts: &str, shapes: &[&[usize]]) -> Kernel {
    let operands: Vec<(DType, &[usize])> = shapes.iter().map(|s| (DType::F32, *s)).collect();
    let program = Program::einsum(subscripts, &operands)
        .unwrap_or_else(|e| panic!("einsum {subscripts} does not compile: {e}"));
    program
        .kernel("einsum")
        .unwrap_or_else(|e| panic!("einsum {subscripts}: {e}"))
}
