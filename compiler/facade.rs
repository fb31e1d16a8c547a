//! einc: a compiler for tensor programs written in Einstein index notation.
//!
//! Compile a `.ein` source, a file or an einsum with [`Program`], take a [`Kernel`] by name
//! and call it on typed views ([`TensorRef`], [`TensorMut`]), or (feature `ndarray`) on
//! ndarray views. This facade also re-exports the compiler ([`compiler`]) and the runtime
//! ([`runtime`]) so that a program depends on one crate.

pub use einc_compiler as compiler;
pub use einc_compiler::api::*;
pub use einc_runtime as runtime;
pub use einc_runtime::{Array, DType};
/// The ndarray crate the API's conversions are written for.
#[cfg(feature = "ndarray")]
pub use ndarray;
