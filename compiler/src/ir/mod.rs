//! The intermediate representations, from high to low level. Nothing here reads source text
//! or knows about `.ein` syntax; each level has a printer, a parser and a verifier.

pub mod call;
pub mod loops;
pub mod names;
pub mod scalar;
pub mod tensor;
