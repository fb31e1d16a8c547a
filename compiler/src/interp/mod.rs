//! The reference interpreter of the tensor IR: the oracle that every compiled path is tested
//! against. Simple and obviously correct rather than fast.
//!
//! A call binds the symbolic dims from the inputs' shapes (fixed dims come from the module),
//! then runs the ops in order, each into a fresh C-contiguous array. A `Generic` visits its
//! output elements in C order; for each, it starts from the reduction's identity and combines
//! the body's values in C order over the `over` indices (the last one fastest), in the op's
//! dtype: an `f32` sum accumulates in `f32`, as numpy does. An empty reduction gives the
//! identity. The scalar rules (wrapping integers, integer division by zero giving 0, NaN
//! propagating through `max`/`min`) are in [`crate::ir::scalar`].
//!
//! The interpreter does not run the verifier, but never panics on a malformed module: whatever
//! it needs (defined values, index ids in range, maps matching ranks and extents, a well-typed
//! body) it checks and reports as [`InterpError::Malformed`]. A fixed position in a map is
//! checked only when the op reads at all (its iteration space is not empty).

mod body;
mod error;
#[cfg(test)]
mod tests;

pub use error::{CallError, DimBinding, InterpError};

use crate::ir::call::bind_dims;
use crate::ir::scalar;
use crate::ir::tensor::{
    AxisMap, Extent, Function, Generic, IndexId, Module, OpKind, ValueDef, ValueId,
};
use body::{Env, Point, Reader};
use einc_runtime::array::try_for_each_index;
use einc_runtime::{Array, DType};
use std::borrow::Cow;
use std::collections::HashMap;

/// Runs function `func` of `module` on `inputs` (one per parameter, any strides).
///
/// Returns the results in declaration order, as C-contiguous arrays with the dtype and shape
/// the IR declares.
pub fn run(module: &Module, func: &str, inputs: &[Array]) -> Result<Vec<Array>, InterpError> {
    let f = module
        .func(func)
        .ok_or_else(|| InterpError::UnknownFunction {
            name: func.to_string(),
        })?;
    run_function(module, f, inputs)
}

/// Same as [`run`], for a function value (e.g. one built for a single einsum); `module`
/// supplies the dims.
pub fn run_function(
    module: &Module,
    func: &Function,
    inputs: &[Array],
) -> Result<Vec<Array>, InterpError> {
    Call { module, func }.run(inputs)
}

/// The values of a call so far, by [`ValueId`]: inputs are borrowed, op results owned.
type Values<'a> = Vec<Option<Cow<'a, Array>>>;

/// One call of a function: what every step and every error message refers to.
struct Call<'a> {
    module: &'a Module,
    func: &'a Function,
}

impl<'a> Call<'a> {
    fn malformed(&self, message: impl Into<String>) -> InterpError {
        InterpError::Malformed {
            func: self.func.name.clone(),
            message: message.into(),
        }
    }

    fn value_def(&self, id: ValueId) -> Result<&'a ValueDef, InterpError> {
        self.func.values.get(id.0 as usize).ok_or_else(|| {
            self.malformed(format!(
                "value #{} is out of range (the function has {} values)",
                id.0,
                self.func.values.len()
            ))
        })
    }

    /// How messages name a value: `%name`, or its number if it has no definition.
    fn name(&self, id: ValueId) -> String {
        match self.func.values.get(id.0 as usize) {
            Some(def) => format!("%{}", def.name),
            None => format!("value #{}", id.0),
        }
    }

    fn too_large(&self, id: ValueId, dtype: DType, shape: &[usize]) -> InterpError {
        InterpError::Call(CallError::TooLarge {
            value: self.name(id),
            dtype,
            shape: shape.iter().map(|&n| n as u64).collect(),
        })
    }

    fn run(&self, inputs: &'a [Array]) -> Result<Vec<Array>, InterpError> {
        let dims = self.bind_dims(inputs)?;
        let mut values: Values<'a> = vec![None; self.func.values.len()];
        for (&id, input) in self.func.params.iter().zip(inputs) {
            self.define(&mut values, id, Cow::Borrowed(input))?;
        }
        for op in &self.func.ops {
            let result = match &op.kind {
                OpKind::Generic(g) => self.eval_generic(op.result, g, &values, &dims)?,
            };
            self.define(&mut values, op.result, Cow::Owned(result))?;
        }
        self.func
            .results
            .iter()
            .map(|r| {
                let value = values
                    .get(r.value.0 as usize)
                    .and_then(Option::as_deref)
                    .ok_or_else(|| {
                        self.malformed(format!(
                            "result `{}` returns {}, which is never defined",
                            r.name,
                            self.name(r.value)
                        ))
                    })?;
                value
                    .try_to_c_contiguous()
                    .map_err(|_| self.too_large(r.value, value.dtype(), value.shape()))
            })
            .collect()
    }

    fn define(
        &self,
        values: &mut Values<'a>,
        id: ValueId,
        value: Cow<'a, Array>,
    ) -> Result<(), InterpError> {
        let name = self.name(id);
        let slot = values
            .get_mut(id.0 as usize)
            .ok_or_else(|| self.malformed(format!("{name} is out of range")))?;
        if slot.is_some() {
            return Err(self.malformed(format!("{name} is defined twice")));
        }
        *slot = Some(value);
        Ok(())
    }

    /// Checks each input against its parameter's type and returns the value of every dim:
    /// the module's fixed dims and the symbolic dims the inputs' shapes bind.
    fn bind_dims(&self, inputs: &[Array]) -> Result<HashMap<String, u64>, InterpError> {
        let params = self
            .func
            .params
            .iter()
            .map(|&id| {
                let def = self.value_def(id)?;
                Ok((def.name.as_str(), def.ty.dtype, def.ty.shape.as_slice()))
            })
            .collect::<Result<Vec<_>, InterpError>>()?;
        bind_dims(&self.module.dims, &self.func.name, &params, inputs).map_err(InterpError::Call)
    }

    fn extent(&self, extent: &Extent, dims: &HashMap<String, u64>) -> Result<u64, InterpError> {
        match extent {
            Extent::Fixed(n) => Ok(*n),
            Extent::Dim(name) => dims.get(name).copied().ok_or_else(|| {
                if self.module.dims.iter().any(|d| &d.name == name) {
                    self.malformed(format!(
                        "dim `{name}` has no value: it is not fixed and no parameter binds it"
                    ))
                } else {
                    self.malformed(format!("dim `{name}` is not declared by the module"))
                }
            }),
        }
    }

    /// Evaluates one `Generic` defining `result` into a new C-contiguous array.
    fn eval_generic(
        &self,
        result: ValueId,
        g: &Generic,
        values: &Values<'a>,
        dims: &HashMap<String, u64>,
    ) -> Result<Array, InterpError> {
        let result_def = self.value_def(result)?;
        let context = format!("the op defining %{}", result_def.name);
        let fail = |message: String| self.malformed(format!("{context}: {message}"));

        let extents = g
            .indices
            .iter()
            .map(|index| {
                let e = self.extent(&index.extent, dims)?;
                usize::try_from(e).map_err(|_| {
                    fail(format!(
                        "index `{}` has extent {e}, more than this machine can address",
                        index.name
                    ))
                })
            })
            .collect::<Result<Vec<usize>, InterpError>>()?;
        let index_name = |i: usize| g.indices.get(i).map_or("?", |d| d.name.as_str());

        // Every index is either an output index or reduced, exactly once: the loop nest is
        // the output indices then the reduced ones.
        let over = g.reduce.as_ref().map_or(&[][..], |r| &r.over[..]);
        let mut seen = vec![false; extents.len()];
        for id in g.output.iter().chain(over) {
            match seen.get_mut(id.0 as usize) {
                None => return Err(fail(format!("index #{} is out of range", id.0))),
                Some(true) => {
                    return Err(fail(format!(
                        "index `{}` appears twice among the output and reduced indices",
                        index_name(id.0 as usize)
                    )))
                }
                Some(s) => *s = true,
            }
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(fail(format!(
                "index `{}` is neither an output index nor reduced",
                index_name(i)
            )));
        }
        let shape_of = |ids: &[IndexId]| -> Vec<usize> {
            ids.iter()
                .filter_map(|id| extents.get(id.0 as usize).copied())
                .collect()
        };
        let out_shape = shape_of(&g.output);
        let reduce_shape = shape_of(over);

        if result_def.ty.dtype != g.dtype {
            return Err(fail(format!(
                "the op has dtype {} but %{} is declared {}",
                g.dtype, result_def.name, result_def.ty.dtype
            )));
        }
        if result_def.ty.shape.len() != out_shape.len() {
            return Err(fail(format!(
                "the op has {} output indices but %{} is declared with rank {}",
                out_shape.len(),
                result_def.name,
                result_def.ty.shape.len()
            )));
        }
        for (axis, (declared, &actual)) in result_def.ty.shape.iter().zip(&out_shape).enumerate() {
            let declared = self.extent(declared, dims)?;
            if declared != actual as u64 {
                return Err(fail(format!(
                    "axis {axis} of the result has extent {actual} but is declared {declared}"
                )));
            }
        }

        let reads = !extents.contains(&0);
        let mut readers = Vec::with_capacity(g.inputs.len());
        let mut dtypes = Vec::with_capacity(g.inputs.len());
        for (n, input) in g.inputs.iter().enumerate() {
            let array = values
                .get(input.value.0 as usize)
                .and_then(Option::as_deref)
                .ok_or_else(|| {
                    fail(format!(
                        "input %{n} reads {} before it is defined",
                        self.name(input.value)
                    ))
                })?;
            if input.map.len() != array.rank() {
                return Err(fail(format!(
                    "input %{n} has a map of {} entries for {} of rank {}",
                    input.map.len(),
                    self.name(input.value),
                    array.rank()
                )));
            }
            let mut strides = vec![0; extents.len()];
            let mut base = array.offset();
            let axes = array.shape().iter().zip(array.strides());
            for (axis, (map, (&len, &stride))) in input.map.iter().zip(axes).enumerate() {
                match *map {
                    AxisMap::Index(id) => {
                        let i = id.0 as usize;
                        let extent = *extents
                            .get(i)
                            .ok_or_else(|| fail(format!("index #{i} is out of range")))?;
                        if len != extent {
                            return Err(fail(format!(
                                "input %{n} axis {axis} has extent {len} but index `{}` has \
                                 extent {extent}",
                                index_name(i)
                            )));
                        }
                        // An axis of extent 0 or 1 is only read at position 0, and the layout
                        // leaves its stride unconstrained; skipping it keeps positions within
                        // the array's checked span, so this arithmetic cannot overflow.
                        if extent > 1 {
                            strides[i] += stride;
                        }
                    }
                    AxisMap::Fixed(p) if reads => {
                        let p = usize::try_from(p)
                            .ok()
                            .filter(|&p| p < len)
                            .ok_or_else(|| {
                                fail(format!(
                                    "input %{n} axis {axis} reads fixed position {p} of an axis \
                                     of extent {len}"
                                ))
                            })?;
                        base += p * stride;
                    }
                    AxisMap::Fixed(_) => {}
                }
            }
            dtypes.push(array.dtype());
            readers.push(Reader {
                buffer: array.buffer(),
                base,
                strides,
            });
        }

        let env = Env {
            inputs: &dtypes,
            index_count: extents.len(),
            dims,
        };
        let body_type = body::type_of(&g.body, &env).map_err(fail)?;
        if body_type != g.dtype {
            return Err(fail(format!(
                "the body has dtype {body_type} but the op has dtype {}",
                g.dtype
            )));
        }

        let mut out = Array::zeros(g.dtype, &out_shape)
            .map_err(|_| self.too_large(result, g.dtype, &out_shape))?;
        let mut idx = vec![0usize; extents.len()];
        let value_at = |idx: &[usize]| {
            let point = Point {
                idx,
                readers: &readers,
                dims,
            };
            body::eval(&g.body, &point)
        };
        try_for_each_index(&out_shape, |at| {
            assign(&mut idx, &g.output, at);
            let value = match &g.reduce {
                None => value_at(&idx)?,
                Some(r) => {
                    let combine = r.kind.combine_fn();
                    let mut acc = r.kind.identity(g.dtype);
                    try_for_each_index(&reduce_shape, |at| -> Result<(), String> {
                        assign(&mut idx, over, at);
                        acc = scalar::binary(combine, acc, value_at(&idx)?)?;
                        Ok(())
                    })?;
                    acc
                }
            };
            out.set(at, value);
            Ok(())
        })
        .map_err(fail)?;
        Ok(out)
    }
}

/// Sets the index values `values` of the indices `ids` (ids were checked to be in range).
fn assign(idx: &mut [usize], ids: &[IndexId], values: &[usize]) {
    for (id, &v) in ids.iter().zip(values) {
        if let Some(slot) = idx.get_mut(id.0 as usize) {
            *slot = v;
        }
    }
}
