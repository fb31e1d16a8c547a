//! Why the interpreter could not run a function: a bad call (wrong inputs) or a malformed
//! module. Each variant carries what its message names, so callers can also match on it.

use einc_runtime::DType;
use std::fmt;

/// Where a symbolic dim got its value: a parameter's axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimBinding {
    /// The parameter's name.
    pub param: String,
    /// The axis of the parameter.
    pub axis: usize,
    /// The extent of that axis.
    pub value: usize,
}

/// An error from [`super::run`] or [`super::run_function`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterpError {
    /// The module has no function of this name.
    UnknownFunction {
        /// The name asked for.
        name: String,
    },
    /// The number of inputs differs from the number of parameters.
    InputCount {
        /// The function called.
        func: String,
        /// Its number of parameters.
        expected: usize,
        /// The number of inputs given.
        actual: usize,
    },
    /// An input's dtype differs from its parameter's.
    DTypeMismatch {
        /// The parameter's name.
        param: String,
        /// The declared dtype.
        expected: DType,
        /// The input's dtype.
        actual: DType,
    },
    /// An input's rank differs from its parameter's.
    RankMismatch {
        /// The parameter's name.
        param: String,
        /// The declared rank.
        expected: usize,
        /// The input's rank.
        actual: usize,
    },
    /// An input's extent contradicts a literal extent or a dim the module fixes.
    ExtentMismatch {
        /// The parameter's name.
        param: String,
        /// The axis.
        axis: usize,
        /// The extent the parameter's type requires.
        expected: u64,
        /// The input's extent.
        actual: usize,
        /// The fixed dim that requires it, or `None` for a literal extent.
        dim: Option<String>,
    },
    /// Two parameter axes bind the same symbolic dim to different extents.
    DimConflict {
        /// The dim.
        dim: String,
        /// The first binding, in parameter order.
        first: DimBinding,
        /// The binding that contradicts it.
        second: DimBinding,
    },
    /// A value's elements cannot be allocated (or their count overflows).
    TooLarge {
        /// The value's name.
        value: String,
        /// Its dtype.
        dtype: DType,
        /// Its shape.
        shape: Vec<u64>,
    },
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
            InterpError::InputCount {
                func,
                expected,
                actual,
            } => write!(
                f,
                "function `{func}` takes {expected} input(s) but was given {actual}"
            ),
            InterpError::DTypeMismatch {
                param,
                expected,
                actual,
            } => write!(
                f,
                "input `{param}` must have dtype {expected}, but has dtype {actual}"
            ),
            InterpError::RankMismatch {
                param,
                expected,
                actual,
            } => write!(
                f,
                "input `{param}` must have rank {expected}, but has rank {actual}"
            ),
            InterpError::ExtentMismatch {
                param,
                axis,
                expected,
                actual,
                dim,
            } => {
                write!(f, "input `{param}` axis {axis} has extent {actual}, but ")?;
                match dim {
                    Some(dim) => write!(f, "dim `{dim}` is fixed to {expected}"),
                    None => write!(f, "its declared extent is {expected}"),
                }
            }
            InterpError::DimConflict { dim, first, second } => write!(
                f,
                "dim `{dim}` is bound inconsistently: input `{}` axis {} has extent {}, but \
                 input `{}` axis {} has extent {}",
                first.param, first.axis, first.value, second.param, second.axis, second.value
            ),
            InterpError::TooLarge {
                value,
                dtype,
                shape,
            } => write!(
                f,
                "value `{value}` ({dtype}, shape {shape:?}) is too large to allocate"
            ),
            InterpError::Malformed { func, message } => {
                write!(f, "malformed IR in function `{func}`: {message}")
            }
        }
    }
}

impl std::error::Error for InterpError {}
