//! einc: a compiler for tensor programs written in Einstein index notation.
//!
//! This facade re-exports the compiler ([`compiler`]) and the runtime ([`runtime`]) so that a
//! program depends on one crate.

pub use einc_compiler as compiler;
pub use einc_runtime as runtime;
pub use einc_runtime::{Array, DType};
