//! einc runtime: the element types and host arrays that compiled kernels and the reference
//! interpreter exchange, and (with code generation) the stable C ABI.
//!
//! This crate never depends on the compiler: a program that only calls kernels links this
//! crate alone.

pub mod abi;
pub mod array;
pub mod dtype;
pub mod parallel;

pub use array::{Array, ArrayError, Buffer, Scalar};
pub use dtype::DType;
