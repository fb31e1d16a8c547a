//! The einc compiler: `.ein` source and numpy subscripts in, checked tensor IR out, evaluated by
//! the reference interpreter (and, with code generation, compiled to native code).
//!
//! The modules follow the pipeline; nothing imports from a later stage:
//! [`syntax`] → [`sema`] (→ [`autodiff`]) → [`ir`]; [`compile`] is the one pipeline: the
//! [`passes`] (reading [`analysis`] and [`paths`]), then [`lower`] (tensor IR into loop IR) and
//! [`codegen`] (loop IR through Cranelift); [`interp`] is the oracle beside it; [`api`] is the
//! Rust interface over all of it, and [`driver`] wires it to the command line
//! (`docs/architecture.md` draws the layers).

pub mod analysis;
pub mod api;
pub mod autodiff;
pub mod codegen;
pub mod compile;
pub mod diag;
pub mod driver;
pub mod interp;
pub mod ir;
pub mod lower;
pub mod npy;
pub mod passes;
pub mod paths;
pub mod rng;
pub mod sema;
pub mod syntax;
pub mod target;
