//! Reverse-mode differentiation of tensor IR functions: [`grad_function`] derives the
//! vector-Jacobian product of a function as a new function of the same IR.
//!
//! The derivation is the index calculus of the reference chapter (section 7), one rule per
//! `Generic` input (see [`adjoint`] and `docs/autodiff.md`): the ops are visited in reverse,
//! each op's result gradient is the sum of the contributions of its uses (fan-out
//! accumulates), and each contribution is itself a `Generic` that later passes optimise like
//! any other op. Forward values the backward ops read are recomputed in the derived function;
//! forward ops nothing reads are dropped.
//!
//! Requires: `func` passes the verifier with `module`'s dims (checked; a failure is
//! [`GradError::Invalid`]). Guarantees: the derived function passes the verifier.

mod adjoint;
mod algebra;
mod derivative;
pub mod gradcheck;
mod jacobian;
mod simplify;
mod stabilizer;
pub mod symmetry;
#[cfg(test)]
mod tests;
mod tidy;
pub mod to_ein;

pub use jacobian::{hessian_function, jacobian_function};
pub use tidy::tidy;

use crate::ir::tensor::verify::{verify_module, VerifyError};
use crate::ir::tensor::{
    AxisMap, BinaryFn, Expr, Function, Generic, IndexDef, IndexId, Input, Module, Op, OpKind,
    ReduceKind, ResultDef, TensorType, ValueDef, ValueId,
};
use adjoint::{adjoint, product_aux_ops, ProductAux, ReduceAux};
use einc_runtime::DType;
use std::collections::HashSet;
use std::fmt;

/// Why a function cannot be differentiated as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GradError {
    /// A `wrt` name is not a parameter of the function.
    UnknownWrt {
        /// The function.
        func: String,
        /// The name asked for.
        name: String,
    },
    /// A `wrt` parameter has an integer dtype.
    NotFloat {
        /// The parameter.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
    /// A `wrt` name is listed more than once.
    DuplicateWrt {
        /// The name.
        name: String,
    },
    /// The seed parameter `d<result>` would reuse the name of a value of the function.
    SeedNameTaken {
        /// The result.
        result: String,
        /// The seed's name.
        seed: String,
    },
    /// The function breaks an invariant of the IR.
    Invalid(Vec<VerifyError>),
    /// A `jacobian` or `hessian` of a function without exactly one output.
    NotOneOutput {
        /// The function.
        func: String,
        /// `jacobian` or `hessian`.
        item: &'static str,
        /// Its number of outputs.
        count: usize,
    },
    /// A `hessian` of a function whose output is not a scalar.
    NotScalar {
        /// The function.
        func: String,
        /// The output.
        output: String,
        /// Its rank.
        rank: usize,
    },
    /// A `hessian` with respect to other than one input.
    NotOneWrt {
        /// The number of inputs listed.
        count: usize,
    },
    /// A derived output would be named like another value of the function.
    NameTaken {
        /// The name.
        name: String,
    },
}

impl fmt::Display for GradError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradError::UnknownWrt { func, name } => {
                write!(f, "`{name}` is not a parameter of `{func}`")
            }
            GradError::NotFloat { name, dtype } => write!(
                f,
                "`{name}` is {dtype}; only f32/f64 inputs can be differentiated"
            ),
            GradError::DuplicateWrt { name } => {
                write!(f, "`{name}` is listed twice in wrt")
            }
            GradError::SeedNameTaken { result, seed } => write!(
                f,
                "the seed of output `{result}` would be named `{seed}`, which already names a \
                 value of the function"
            ),
            GradError::NotOneOutput { func, item, count } => write!(
                f,
                "a {item} is taken of a kernel with one output; `{func}` has {count}"
            ),
            GradError::NotScalar { func, output, rank } => write!(
                f,
                "a hessian is taken of a scalar; `{func}`'s output `{output}` has rank {rank}"
            ),
            GradError::NotOneWrt { count } => write!(
                f,
                "a hessian is taken with respect to one input, not {count}"
            ),
            GradError::NameTaken { name } => write!(
                f,
                "the derived output would be named `{name}`, which already names a value of \
                 the function"
            ),
            GradError::Invalid(errors) => {
                write!(f, "the function is not valid IR:")?;
                for e in errors {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for GradError {}

/// The vector-Jacobian product of `func` with respect to the named parameters: a new function
/// named `name` with inputs = func's params followed by one seed per result (named `d<result>`,
/// same type), outputs = one gradient per `wrt` parameter (named `d<param>`, same type),
/// computing the gradient of sum(result * seed) over all results.
///
/// `module` supplies the dims. Gradients flow only through float values: an integer value (or
/// a cast to an integer) stops them, and a parameter the results do not depend on gets a zero
/// gradient.
pub fn grad_function(
    module: &Module,
    func: &Function,
    wrt: &[&str],
    name: &str,
) -> Result<Function, GradError> {
    let alone = Module {
        dims: module.dims.clone(),
        funcs: vec![func.clone()],
    };
    verify_module(&alone).map_err(GradError::Invalid)?;
    let wrt = resolve_wrt(func, wrt)?;

    let mut g = Grad::new(func, name)?;
    g.sweep(&wrt);
    let results = wrt
        .iter()
        .map(|&p| {
            let value = g.gradient(p);
            ResultDef {
                name: format!("d{}", func.value(p).name),
                value,
            }
        })
        .collect();
    g.out.results = results;
    Ok(drop_dead_ops(g.out))
}

/// The parameters named by `wrt`, checked.
fn resolve_wrt(func: &Function, wrt: &[&str]) -> Result<Vec<ValueId>, GradError> {
    let mut seen = HashSet::new();
    wrt.iter()
        .map(|&name| {
            let id = func
                .params
                .iter()
                .copied()
                .find(|&p| func.value(p).name == name)
                .ok_or_else(|| GradError::UnknownWrt {
                    func: func.name.clone(),
                    name: name.to_string(),
                })?;
            let dtype = func.value(id).ty.dtype;
            if !dtype.is_float() {
                return Err(GradError::NotFloat {
                    name: name.to_string(),
                    dtype,
                });
            }
            if !seen.insert(name) {
                return Err(GradError::DuplicateWrt {
                    name: name.to_string(),
                });
            }
            Ok(id)
        })
        .collect()
}

/// The state of one derivation.
struct Grad<'a> {
    func: &'a Function,
    /// The derived function: a copy of `func`'s values, params and ops, plus seeds and the
    /// backward ops as they are made.
    out: Function,
    /// Every value name used in `out`.
    names: HashSet<String>,
    /// The gradient contributions of each value of `func` made so far.
    contributions: Vec<Vec<ValueId>>,
}

impl<'a> Grad<'a> {
    fn new(func: &'a Function, name: &str) -> Result<Grad<'a>, GradError> {
        let mut g = Grad {
            func,
            out: Function {
                name: name.to_string(),
                results: Vec::new(),
                ..func.clone()
            },
            names: func.values.iter().map(|v| v.name.clone()).collect(),
            contributions: vec![Vec::new(); func.values.len()],
        };
        for r in &func.results {
            let seed = format!("d{}", r.name);
            if !g.names.insert(seed.clone()) {
                return Err(GradError::SeedNameTaken {
                    result: r.name.clone(),
                    seed,
                });
            }
            let id = g.out.add_value(seed, func.value(r.value).ty.clone());
            g.out.params.push(id);
            if func.value(r.value).ty.dtype.is_float() {
                g.contribute(r.value, id);
            }
        }
        Ok(g)
    }

    /// `base`, or `base.1`, `base.2`, ...: the first name not yet used.
    fn fresh_name(&mut self, base: &str) -> String {
        crate::ir::names::fresh_in(&mut self.names, base, '.')
    }

    fn push_op(&mut self, name: &str, ty: TensorType, generic: Generic) -> ValueId {
        let name = self.fresh_name(name);
        let id = self.out.add_value(name, ty);
        self.out.ops.push(Op {
            result: id,
            kind: OpKind::Generic(generic),
        });
        id
    }

    fn contribute(&mut self, to: ValueId, from: ValueId) {
        if let Some(list) = self.contributions.get_mut(to.0 as usize) {
            list.push(from);
        }
    }

    /// Walks the ops in reverse, turning each result gradient into contributions to the
    /// op's inputs. Only values that depend on a `wrt` parameter through floats get any.
    fn sweep(&mut self, wrt: &[ValueId]) {
        let func = self.func;
        let mut active = vec![false; self.func.values.len()];
        for &p in wrt {
            active[p.0 as usize] = true;
        }
        for op in &func.ops {
            let OpKind::Generic(g) = &op.kind;
            active[op.result.0 as usize] = func.value(op.result).ty.dtype.is_float()
                && g.inputs.iter().any(|i| active[i.value.0 as usize]);
        }
        // No result depends on a stabilising maximum (softmax's and logsumexp's): its
        // gradient is zero exactly, so none flows into it.
        for m in stabilizer::stabilizers(func) {
            active[m.0 as usize] = false;
        }
        for op in func.ops.iter().rev() {
            if !active[op.result.0 as usize] {
                continue;
            }
            let Some(dy) = self.total(op.result) else {
                continue;
            };
            let OpKind::Generic(g) = &op.kind;
            let aux = self.reduce_aux(op.result, g);
            let y = &func.value(op.result).name;
            for (k, input) in g.inputs.iter().enumerate() {
                if !active[input.value.0 as usize] {
                    continue;
                }
                if let Some((adj, ty)) = adjoint(&self.out, g, k, dy, aux) {
                    let x = &func.value(input.value).name;
                    let id = self.push_op(&format!("d{x}.{y}"), ty, adj);
                    self.contribute(input.value, id);
                }
            }
        }
    }

    /// The forward values the adjoints of `g`'s reduction read (making them when needed).
    fn reduce_aux(&mut self, y: ValueId, g: &Generic) -> ReduceAux {
        match g.reduce.as_ref().map(|r| r.kind) {
            None | Some(ReduceKind::Add) => ReduceAux::None,
            Some(ReduceKind::Max | ReduceKind::Min) => ReduceAux::Extremum(y),
            Some(ReduceKind::Mul) => {
                let dtypes: Vec<DType> = g
                    .inputs
                    .iter()
                    .map(|i| self.func.value(i.value).ty.dtype)
                    .collect();
                let (zeros, prod) = product_aux_ops(g, &dtypes);
                let ty = self.func.value(y).ty.clone();
                let name = self.func.value(y).name.clone();
                ReduceAux::Product(ProductAux {
                    zeros: self.push_op(&format!("{name}.zeros"), ty.clone(), zeros),
                    nonzero_prod: self.push_op(&format!("{name}.nonzero_prod"), ty, prod),
                })
            }
        }
    }

    /// The total gradient of `x`: its only contribution, or the sum of all of them, as a value
    /// of `x`'s exact type. `None` when nothing contributes.
    fn total(&mut self, x: ValueId) -> Option<ValueId> {
        let list = std::mem::take(self.contributions.get_mut(x.0 as usize)?);
        let def = self.func.value(x);
        let name = format!("d{}", def.name);
        match list.as_slice() {
            [] => None,
            [one] if self.out.value(*one).ty == def.ty => {
                // A contribution made here gets the gradient's name; a seed keeps its own.
                if !self.out.params.contains(one) {
                    let name = self.fresh_name(&name);
                    self.out.values[one.0 as usize].name = name;
                }
                Some(*one)
            }
            terms => {
                let ty = def.ty.clone();
                let sum = elementwise(&ty, terms, |acc, next| {
                    Expr::Binary(BinaryFn::Add, Box::new(acc), Box::new(next))
                });
                Some(self.push_op(&name, ty, sum))
            }
        }
    }

    /// The gradient of parameter `p`: its total, or zeros.
    fn gradient(&mut self, p: ValueId) -> ValueId {
        self.total(p).unwrap_or_else(|| {
            let ty = self.func.value(p).ty.clone();
            let zeros = elementwise(&ty, &[], |acc, _| acc);
            let name = format!("d{}", self.func.value(p).name);
            self.push_op(&name, ty, zeros)
        })
    }
}

/// An elementwise op of type `ty` over `terms` (each read at the same point), combining their
/// elements with `combine`; with no terms, zeros.
fn elementwise(
    ty: &TensorType,
    terms: &[ValueId],
    combine: impl Fn(Expr, Expr) -> Expr,
) -> Generic {
    let indices: Vec<IndexDef> = ty
        .shape
        .iter()
        .enumerate()
        .map(|(n, e)| IndexDef {
            name: format!("i{n}"),
            extent: e.clone(),
        })
        .collect();
    let ids: Vec<IndexId> = (0..indices.len())
        .filter_map(|n| u32::try_from(n).ok().map(IndexId))
        .collect();
    let map: Vec<AxisMap> = ids.iter().map(|&i| AxisMap::Index(i)).collect();
    let inputs: Vec<Input> = terms
        .iter()
        .map(|&value| Input {
            value,
            map: map.clone(),
        })
        .collect();
    let body = (0..inputs.len())
        .filter_map(|n| u32::try_from(n).ok().map(Expr::Input))
        .reduce(combine)
        .unwrap_or_else(|| simplify::lit(0.0, ty.dtype));
    Generic {
        indices,
        inputs,
        output: ids,
        reduce: None,
        body,
        dtype: ty.dtype,
        schedule: None,
    }
}

/// Removes the ops whose values no result needs (directly or through other ops) and renumbers
/// the values in definition order, so that every remaining value is defined.
fn drop_dead_ops(f: Function) -> Function {
    let mut live = vec![false; f.values.len()];
    let mark = |live: &mut Vec<bool>, v: ValueId| {
        if let Some(l) = live.get_mut(v.0 as usize) {
            *l = true;
        }
    };
    for r in &f.results {
        mark(&mut live, r.value);
    }
    for &p in &f.params {
        mark(&mut live, p);
    }
    for op in f.ops.iter().rev() {
        if live.get(op.result.0 as usize).copied().unwrap_or(false) {
            let OpKind::Generic(g) = &op.kind;
            for i in &g.inputs {
                mark(&mut live, i.value);
            }
        }
    }
    // Values are numbered in definition order (parameters, then op results), as the IR parser
    // numbers them, so that a derived function equals its printed and re-parsed text.
    let mut renumber: Vec<Option<ValueId>> = vec![None; f.values.len()];
    let mut values: Vec<ValueDef> = Vec::new();
    let defined = f
        .params
        .iter()
        .copied()
        .chain(f.ops.iter().map(|op| op.result));
    for v in defined {
        let n = v.0 as usize;
        if live.get(n).copied().unwrap_or(false) && renumber[n].is_none() {
            renumber[n] = u32::try_from(values.len()).ok().map(ValueId);
            values.push(f.values[n].clone());
        }
    }
    let at = |v: ValueId| renumber.get(v.0 as usize).copied().flatten().unwrap_or(v);
    let ops = f
        .ops
        .into_iter()
        .filter(|op| live.get(op.result.0 as usize).copied().unwrap_or(false))
        .map(|op| {
            let OpKind::Generic(mut g) = op.kind;
            for i in &mut g.inputs {
                i.value = at(i.value);
            }
            Op {
                result: at(op.result),
                kind: OpKind::Generic(g),
            }
        })
        .collect();
    Function {
        name: f.name,
        values,
        params: f.params.into_iter().map(at).collect(),
        ops,
        results: f
            .results
            .into_iter()
            .map(|r| ResultDef {
                value: at(r.value),
                ..r
            })
            .collect(),
    }
}
