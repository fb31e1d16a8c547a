//! Calling an IR function: checking the inputs against the parameters and binding the
//! symbolic dims from their shapes. The tensor interpreter and the loop-IR evaluator bind a
//! call the same way, with this code, and report the same [`CallError`]s.

use crate::ir::tensor::{DimDef, Extent};
use einc_runtime::{Array, DType};
use std::collections::HashMap;
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

/// Why a call cannot run: the inputs do not fit the parameters, or the sizes they bind make a
/// value too large to allocate. Each variant carries what its message names, so callers can
/// also match on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
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
    /// A parameter's type uses a dim the module does not declare (malformed IR).
    UndeclaredDim {
        /// The function called.
        func: String,
        /// The parameter.
        param: String,
        /// The dim.
        dim: String,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::InputCount {
                func,
                expected,
                actual,
            } => write!(
                f,
                "function `{func}` takes {expected} input(s) but was given {actual}"
            ),
            CallError::DTypeMismatch {
                param,
                expected,
                actual,
            } => write!(
                f,
                "input `{param}` must have dtype {expected}, but has dtype {actual}"
            ),
            CallError::RankMismatch {
                param,
                expected,
                actual,
            } => write!(
                f,
                "input `{param}` must have rank {expected}, but has rank {actual}"
            ),
            CallError::ExtentMismatch {
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
            CallError::DimConflict { dim, first, second } => write!(
                f,
                "dim `{dim}` is bound inconsistently: input `{}` axis {} has extent {}, but \
                 input `{}` axis {} has extent {}",
                first.param, first.axis, first.value, second.param, second.axis, second.value
            ),
            CallError::TooLarge {
                value,
                dtype,
                shape,
            } => write!(
                f,
                "value `{value}` ({dtype}, shape {shape:?}) is too large to allocate"
            ),
            CallError::UndeclaredDim { func, param, dim } => write!(
                f,
                "malformed IR in function `{func}`: parameter `%{param}` uses dim `{dim}`, \
                 which the module does not declare"
            ),
        }
    }
}

impl std::error::Error for CallError {}

/// Checks the inputs against the parameters of function `func` (their count, then each one's
/// dtype and shape) and returns the value of every dim: the fixed dims of `module_dims` and
/// the symbolic dims the inputs' shapes bind.
pub fn bind_dims(
    module_dims: &[DimDef],
    func: &str,
    params: &[(&str, DType, &[Extent])],
    inputs: &[Array],
) -> Result<HashMap<String, u64>, CallError> {
    if inputs.len() != params.len() {
        return Err(CallError::InputCount {
            func: func.to_string(),
            expected: params.len(),
            actual: inputs.len(),
        });
    }
    let mut dims: HashMap<String, u64> = module_dims
        .iter()
        .filter_map(|d| Some((d.name.clone(), d.value?)))
        .collect();
    let mut bound: HashMap<&str, DimBinding> = HashMap::new();
    for (&(param, dtype, shape), input) in params.iter().zip(inputs) {
        if input.dtype() != dtype {
            return Err(CallError::DTypeMismatch {
                param: param.to_string(),
                expected: dtype,
                actual: input.dtype(),
            });
        }
        if input.rank() != shape.len() {
            return Err(CallError::RankMismatch {
                param: param.to_string(),
                expected: shape.len(),
                actual: input.rank(),
            });
        }
        for (axis, (extent, &actual)) in shape.iter().zip(input.shape()).enumerate() {
            let mismatch = |expected: u64, dim: Option<&str>| CallError::ExtentMismatch {
                param: param.to_string(),
                axis,
                expected,
                actual,
                dim: dim.map(str::to_string),
            };
            let name = match extent {
                Extent::Fixed(n) if *n != actual as u64 => return Err(mismatch(*n, None)),
                Extent::Fixed(_) => continue,
                Extent::Dim(name) => name.as_str(),
            };
            let def = module_dims.iter().find(|d| d.name == name).ok_or_else(|| {
                CallError::UndeclaredDim {
                    func: func.to_string(),
                    param: param.to_string(),
                    dim: name.to_string(),
                }
            })?;
            let here = DimBinding {
                param: param.to_string(),
                axis,
                value: actual,
            };
            match (def.value, bound.get(name)) {
                (Some(v), _) if v != actual as u64 => return Err(mismatch(v, Some(name))),
                (Some(_), _) => {}
                (None, Some(first)) if first.value != actual => {
                    return Err(CallError::DimConflict {
                        dim: name.to_string(),
                        first: first.clone(),
                        second: here,
                    })
                }
                (None, Some(_)) => {}
                (None, None) => {
                    dims.insert(name.to_string(), actual as u64);
                    bound.insert(name, here);
                }
            }
        }
    }
    Ok(dims)
}
