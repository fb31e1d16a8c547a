//! The gradient check: derived gradients against central finite differences, in f64, on
//! random inputs, through the reference interpreter.
//!
//! The kernel is first cast to f64 (every f32 type, literal, cast and delta of a copy of the
//! module becomes f64), so that the finite differences are accurate to about 1e-10 and a
//! relative error above 1e-6 means a wrong derivative rather than rounding. For the loss
//! `L = Σ_r Σ y_r · dy_r` with random seeds `dy_r`, each element of each `wrt` input `x` is
//! moved by `±h` (`h = 1e-5 · max(1, |x|)`) and `(L(x + h) - L(x - h)) / 2h` is compared with
//! the derived gradient. The error of a tensor is the largest absolute difference over its
//! elements, relative to its largest gradient magnitude (so that an element whose gradient is
//! nearly 0 does not turn rounding noise into a large ratio).

use super::{grad_function, GradError};
use crate::interp::{self, InterpError};
use crate::ir::tensor::{Cond, Expr, Extent, Function, Module, OpKind, TensorType};
use crate::rng::Rng;
use einc_runtime::{Array, Buffer, DType, Scalar};
use std::fmt;

/// Settings of a check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOptions {
    /// Extents of symbolic dims, by name; a dim not listed gets 2, 3, 4, 2, 3, ... in
    /// declaration order (distinct neighbours catch transposed indices).
    pub dims: Vec<(String, u64)>,
    /// Seed of the input generator.
    pub seed: u64,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            dims: Vec::new(),
            seed: 1,
        }
    }
}

/// The result of checking one `wrt` input.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    /// The parameter.
    pub name: String,
    /// Its number of elements (each checked).
    pub elements: usize,
    /// `max |derived - finite difference|` relative to the largest gradient magnitude (0 when
    /// both are 0 everywhere).
    pub max_rel_error: f64,
}

/// The outcome of [`gradcheck`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    /// One entry per `wrt` input, in `wrt` order.
    pub tensors: Vec<TensorCheck>,
    /// The extent used for every dim of the module, in declaration order.
    pub dims: Vec<(String, u64)>,
}

/// Why a check could not run.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckError {
    /// No function of that name.
    UnknownKernel(String),
    /// A dim given a size is not a dim of the module, or is fixed to another size.
    BadDim(String),
    /// The derivation failed.
    Grad(GradError),
    /// Running the function or its gradient failed.
    Run(InterpError),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::UnknownKernel(name) => write!(f, "no kernel `{name}`"),
            CheckError::BadDim(message) => f.write_str(message),
            CheckError::Grad(e) => write!(f, "{e}"),
            CheckError::Run(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CheckError {}

impl From<InterpError> for CheckError {
    fn from(e: InterpError) -> CheckError {
        CheckError::Run(e)
    }
}

/// Checks the gradient of kernel `kernel` of `module` with respect to `wrt` (every float
/// parameter when `None`) against finite differences.
pub fn gradcheck(
    module: &Module,
    kernel: &str,
    wrt: Option<&[&str]>,
    options: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let module = to_f64(module);
    let func = module
        .func(kernel)
        .ok_or_else(|| CheckError::UnknownKernel(kernel.to_string()))?;
    let wrt: Vec<&str> = match wrt {
        Some(names) => names.to_vec(),
        None => func
            .params
            .iter()
            .map(|&p| func.value(p))
            .filter(|v| v.ty.dtype.is_float())
            .map(|v| v.name.as_str())
            .collect(),
    };
    let grad =
        grad_function(&module, func, &wrt, &format!("{kernel}_grad")).map_err(CheckError::Grad)?;
    let dims = bind_dims(&module, options)?;
    let mut rng = Rng::new(options.seed);
    let inputs: Vec<Array> = func
        .params
        .iter()
        .map(|&p| random(&mut rng, &func.value(p).ty, &dims))
        .collect::<Result<_, _>>()?;
    let seeds: Vec<Array> = func
        .results
        .iter()
        .map(|r| random(&mut rng, &func.value(r.value).ty, &dims))
        .collect::<Result<_, _>>()?;
    let mut grad_inputs = inputs.clone();
    grad_inputs.extend(seeds.iter().cloned());
    let derived = interp::run_function(&module, &grad, &grad_inputs)?;

    let loss = |inputs: &[Array]| -> Result<f64, CheckError> {
        let results = interp::run_function(&module, func, inputs)?;
        Ok(results
            .iter()
            .zip(&seeds)
            .map(|(y, s)| {
                y.to_f64_vec()
                    .iter()
                    .zip(s.to_f64_vec())
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            })
            .sum())
    };
    let mut checks = Vec::new();
    for (name, d) in wrt.iter().zip(&derived) {
        let slot = func
            .params
            .iter()
            .position(|&p| func.value(p).name == *name)
            .ok_or_else(|| {
                CheckError::Grad(GradError::UnknownWrt {
                    func: kernel.to_string(),
                    name: name.to_string(),
                })
            })?;
        let base = inputs[slot].to_f64_vec();
        let shape = inputs[slot].shape().to_vec();
        let derived = d.to_f64_vec();
        let mut max_diff: f64 = 0.0;
        let mut scale: f64 = 0.0;
        for (k, &x) in base.iter().enumerate() {
            let h = 1e-5 * x.abs().max(1.0);
            let at = |v: f64| -> Result<f64, CheckError> {
                let mut moved = base.clone();
                moved[k] = v;
                let mut args = inputs.clone();
                args[slot] = f64_array(moved, &shape)?;
                loss(&args)
            };
            let fd = (at(x + h)? - at(x - h)?) / (2.0 * h);
            let g = derived.get(k).copied().unwrap_or(f64::NAN);
            let diff = (g - fd).abs();
            // NaN compares false: make it the error rather than lose it.
            max_diff = if diff.is_nan() {
                f64::NAN
            } else {
                max_diff.max(diff)
            };
            scale = scale.max(g.abs()).max(fd.abs());
        }
        let max_rel_error = if max_diff == 0.0 {
            0.0
        } else {
            max_diff / scale.max(f64::MIN_POSITIVE)
        };
        checks.push(TensorCheck {
            name: name.to_string(),
            elements: base.len(),
            max_rel_error,
        });
    }
    Ok(CheckReport {
        tensors: checks,
        dims,
    })
}

/// The extent of every dim of the module.
fn bind_dims(module: &Module, options: &CheckOptions) -> Result<Vec<(String, u64)>, CheckError> {
    for (name, size) in &options.dims {
        match module.dims.iter().find(|d| &d.name == name) {
            None => return Err(CheckError::BadDim(format!("the file has no dim `{name}`"))),
            Some(d) if d.value.is_some_and(|v| v != *size) => {
                return Err(CheckError::BadDim(format!(
                    "dim `{name}` is fixed to {}, not {size}",
                    d.value.unwrap_or_default()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(module
        .dims
        .iter()
        .zip([2u64, 3, 4].into_iter().cycle())
        .map(|(d, default)| {
            let given = options.dims.iter().find(|(n, _)| n == &d.name);
            let size = d.value.or(given.map(|g| g.1)).unwrap_or(default);
            (d.name.clone(), size)
        })
        .collect())
}

fn f64_array(values: Vec<f64>, shape: &[usize]) -> Result<Array, CheckError> {
    Array::from_buffer(Buffer::F64(values), shape)
        .map_err(|e| CheckError::BadDim(format!("cannot make an input: {e}")))
}

/// The largest input a check accepts.
const MAX_ELEMENTS: usize = 1 << 16;

/// A random array of type `ty`: floats in [-1, 1), integers in 0..3.
fn random(rng: &mut Rng, ty: &TensorType, dims: &[(String, u64)]) -> Result<Array, CheckError> {
    let shape: Vec<usize> = ty
        .shape
        .iter()
        .map(|e| match e {
            Extent::Fixed(n) => usize::try_from(*n).ok(),
            Extent::Dim(d) => dims
                .iter()
                .find(|(n, _)| n == d)
                .and_then(|(_, v)| usize::try_from(*v).ok()),
        })
        .collect::<Option<_>>()
        .ok_or_else(|| CheckError::BadDim("an extent is not bound".to_string()))?;
    // Every element is moved twice and the kernel rerun each time: keep inputs small.
    let len = shape
        .iter()
        .try_fold(1usize, |n, &e| n.checked_mul(e))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            CheckError::BadDim(format!(
                "an input of shape {shape:?} is too large for a gradient check (at most \
                 {MAX_ELEMENTS} elements): give smaller dims"
            ))
        })?;
    let buffer = match ty.dtype {
        DType::F32 | DType::F64 => Buffer::F64((0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()),
        DType::I32 => Buffer::I32((0..len).map(|_| rng.below(3) as i32).collect()),
        DType::I64 => Buffer::I64((0..len).map(|_| rng.below(3) as i64).collect()),
    };
    let array = Array::from_buffer(buffer, &shape)
        .map_err(|e| CheckError::BadDim(format!("cannot make an input: {e}")))?;
    Ok(array)
}

/// A copy of `module` computing in f64 wherever it computed in f32.
pub fn to_f64(module: &Module) -> Module {
    let mut m = module.clone();
    for f in &mut m.funcs {
        cast_function(f);
    }
    m
}

fn widen(t: DType) -> DType {
    if t == DType::F32 {
        DType::F64
    } else {
        t
    }
}

fn cast_function(f: &mut Function) {
    for v in &mut f.values {
        v.ty.dtype = widen(v.ty.dtype);
    }
    for op in &mut f.ops {
        let OpKind::Generic(g) = &mut op.kind;
        g.dtype = widen(g.dtype);
        widen_expr(&mut g.body);
    }
}

fn widen_expr(e: &mut Expr) {
    match e {
        Expr::Lit(s) => {
            if let Scalar::F32(v) = *s {
                *s = Scalar::F64(f64::from(v));
            }
        }
        Expr::DimValue(_, t) | Expr::Delta(_, t) | Expr::Eps(_, t) => *t = widen(*t),
        Expr::Cast(t, x) => {
            *t = widen(*t);
            widen_expr(x);
        }
        Expr::Unary(_, x) => widen_expr(x),
        Expr::Binary(_, a, b) => {
            widen_expr(a);
            widen_expr(b);
        }
        Expr::Select(c, a, b) => {
            widen_cond(c);
            widen_expr(a);
            widen_expr(b);
        }
        Expr::Input(_) | Expr::Index(_) => {}
    }
}

fn widen_cond(c: &mut Cond) {
    match c {
        Cond::Cmp(_, a, b) => {
            widen_expr(a);
            widen_expr(b);
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            widen_cond(a);
            widen_cond(b);
        }
        Cond::Not(a) => widen_cond(a),
    }
}
