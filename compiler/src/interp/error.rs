//! Why the interpreter could not run a function: a bad call (wrong inputs) or a malformed
//! module. Each variant carries what its message names, so callers can also match on it.

pub use crate::ir::call::{CallError, DimBinding};
use std::fmt;

/// An error from [`super::run`] or [`super::run_function`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterpError {
    /// The module has no function of this name.
    UnknownFunction {
        /// The name asked for.
        name: String,
    },
    /// The inputs do not fit the parameters, or make a value too large to allocate.
    Call(CallError),
    /// The module breaks an invariant of the tensor IR (the verifier would reject it).
    Malformed {
        /// The function being run.
        func: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpError::UnknownFunction { name } => {
                write!(f, "the module has no function named `{name}`")
            }
            InterpError::Call(e) => e.fmt(f),
            InterpError::Malformed { func, message } => {
                write!(f, "malformed IR in function `{func}`: {message}")
            }
        }
    }
}

impl std::error::Error for InterpError {}
