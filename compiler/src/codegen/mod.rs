//! Cranelift code generation: lowering loop IR to native code through Cranelift.
//!
//! [`math`] emits transcendental functions (exp, log, tanh, sigmoid) as inline CLIF so that hot
//! loops never call libm.

pub mod math;
