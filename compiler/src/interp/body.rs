//! The scalar body of a `Generic`: its types are checked once per op (so a malformed body is
//! reported even when the iteration space is empty), then it is evaluated at every point.
//!
//! Errors are plain messages; the caller says which op they come from.

use crate::ir::scalar;
use crate::ir::tensor::{Cond, Expr, IndexId};
use einc_runtime::{Buffer, DType, Scalar};
use std::collections::HashMap;

/// Reads one input of an op: the element at a point with index values `idx` lies at
/// `base + Σ strides[i] * idx[i]` in the buffer (an index addressing several axes, as on a
/// diagonal, has the sum of their strides).
pub(super) struct Reader<'a> {
    /// The input's elements.
    pub buffer: &'a Buffer,
    /// The position of the element at index values 0 (fixed positions included).
    pub base: usize,
    /// One stride per index of the op (0 for indices that do not address the input).
    pub strides: Vec<usize>,
}

impl Reader<'_> {
    fn read(&self, idx: &[usize]) -> Option<Scalar> {
        let pos = self
            .strides
            .iter()
            .zip(idx)
            .fold(self.base, |pos, (&s, &i)| pos + s * i);
        match self.buffer {
            Buffer::F32(v) => v.get(pos).copied().map(Scalar::F32),
            Buffer::F64(v) => v.get(pos).copied().map(Scalar::F64),
            Buffer::I32(v) => v.get(pos).copied().map(Scalar::I32),
            Buffer::I64(v) => v.get(pos).copied().map(Scalar::I64),
        }
    }
}

/// What a body refers to, besides its own nodes.
pub(super) struct Env<'a> {
    /// The dtype of each input, by position.
    pub inputs: &'a [DType],
    /// The number of indices of the op.
    pub index_count: usize,
    /// The value of every dim bound for this call.
    pub dims: &'a HashMap<String, u64>,
}

impl Env<'_> {
    fn check_index(&self, id: IndexId) -> Result<(), String> {
        if (id.0 as usize) < self.index_count {
            Ok(())
        } else {
            Err(format!(
                "the body uses index #{} but the op has {} indices",
                id.0, self.index_count
            ))
        }
    }
}

/// The value of a dim, as the `i64` that `DimValue` converts from.
fn dim_value(name: &str, dims: &HashMap<String, u64>) -> Result<i64, String> {
    let value = dims
        .get(name)
        .ok_or_else(|| format!("the body uses dim `{name}`, which has no value"))?;
    i64::try_from(*value).map_err(|_| format!("dim `{name}` = {value} does not fit in i64"))
}

/// The dtype of `e`, or what makes it ill-typed.
pub(super) fn type_of(e: &Expr, env: &Env) -> Result<DType, String> {
    match e {
        Expr::Input(n) => env.inputs.get(*n as usize).copied().ok_or_else(|| {
            format!(
                "the body reads input %{n} but the op has {} inputs",
                env.inputs.len()
            )
        }),
        Expr::Index(id) => env.check_index(*id).map(|()| DType::I64),
        Expr::Lit(s) => Ok(s.dtype()),
        Expr::DimValue(name, dtype) => dim_value(name, env.dims).map(|_| *dtype),
        Expr::Unary(f, x) => {
            let t = type_of(x, env)?;
            if !t.is_float() && !scalar::unary_accepts_int(*f) {
                return Err(format!("`{}` needs a float operand, got {t}", f.name()));
            }
            Ok(t)
        }
        Expr::Binary(f, a, b) => {
            let name = f.name();
            let t = same_type(name, type_of(a, env)?, type_of(b, env)?)?;
            if !t.is_float() && !scalar::binary_accepts_int(*f) {
                return Err(format!("`{name}` needs float operands, got {t}"));
            }
            Ok(t)
        }
        Expr::Select(c, a, b) => {
            check_cond(c, env)?;
            same_type("select", type_of(a, env)?, type_of(b, env)?)
        }
        Expr::Cast(dtype, x) => type_of(x, env).map(|_| *dtype),
        Expr::Delta(ids, dtype) | Expr::Eps(ids, dtype) => {
            ids.iter().try_for_each(|&id| env.check_index(id))?;
            Ok(*dtype)
        }
    }
}

fn same_type(what: &str, a: DType, b: DType) -> Result<DType, String> {
    if a == b {
        Ok(a)
    } else {
        Err(format!("the operands of `{what}` have dtypes {a} and {b}"))
    }
}

fn check_cond(c: &Cond, env: &Env) -> Result<(), String> {
    match c {
        Cond::Cmp(_, a, b) => {
            same_type("comparison", type_of(a, env)?, type_of(b, env)?).map(|_| ())
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            check_cond(a, env)?;
            check_cond(b, env)
        }
        Cond::Not(a) => check_cond(a, env),
    }
}

/// The state of one point of the iteration space.
pub(super) struct Point<'a> {
    /// The value of each index of the op.
    pub idx: &'a [usize],
    /// One reader per input.
    pub readers: &'a [Reader<'a>],
    /// The value of every dim bound for this call.
    pub dims: &'a HashMap<String, u64>,
}

impl Point<'_> {
    fn index(&self, id: IndexId) -> Result<usize, String> {
        self.idx
            .get(id.0 as usize)
            .copied()
            .ok_or_else(|| format!("index #{} is out of range", id.0))
    }

    fn index_values(&self, ids: &[IndexId]) -> Result<Vec<usize>, String> {
        ids.iter().map(|&id| self.index(id)).collect()
    }
}

/// The value of `e` at point `p`. Errors only for bodies that [`type_of`] rejects.
pub(super) fn eval(e: &Expr, p: &Point) -> Result<Scalar, String> {
    match e {
        Expr::Input(n) => p
            .readers
            .get(*n as usize)
            .and_then(|r| r.read(p.idx))
            .ok_or_else(|| format!("input %{n} cannot be read")),
        Expr::Index(id) => {
            let v = p.index(*id)?;
            i64::try_from(v)
                .map(Scalar::I64)
                .map_err(|_| format!("index value {v} does not fit in i64"))
        }
        Expr::Lit(s) => Ok(*s),
        Expr::DimValue(name, dtype) => Ok(Scalar::I64(dim_value(name, p.dims)?).cast(*dtype)),
        Expr::Unary(f, x) => scalar::unary(*f, eval(x, p)?),
        Expr::Binary(f, a, b) => scalar::binary(*f, eval(a, p)?, eval(b, p)?),
        Expr::Select(c, a, b) => {
            if holds(c, p)? {
                eval(a, p)
            } else {
                eval(b, p)
            }
        }
        Expr::Cast(dtype, x) => Ok(eval(x, p)?.cast(*dtype)),
        Expr::Delta(ids, dtype) => {
            let values = p.index_values(ids)?;
            let all_equal = values.windows(2).all(|w| w[0] == w[1]);
            Ok(Scalar::I64(i64::from(all_equal)).cast(*dtype))
        }
        Expr::Eps(ids, dtype) => {
            let values = p.index_values(ids)?;
            Ok(Scalar::I64(scalar::permutation_sign(&values)).cast(*dtype))
        }
    }
}

fn holds(c: &Cond, p: &Point) -> Result<bool, String> {
    match c {
        Cond::Cmp(op, a, b) => scalar::compare(*op, eval(a, p)?, eval(b, p)?),
        Cond::And(a, b) => Ok(holds(a, p)? && holds(b, p)?),
        Cond::Or(a, b) => Ok(holds(a, p)? || holds(b, p)?),
        Cond::Not(a) => Ok(!holds(a, p)?),
    }
}
