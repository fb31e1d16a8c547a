//! Lowering from the tensor IR to the loop IR: every `generic` becomes a naive loop nest over
//! buffers, ready for the loop passes (tiling, vectorisation, ...) and code generation.
//!
//! Buffers: each parameter becomes an `Input` buffer and each output an `Output` buffer, both
//! `Strided` (the caller passes strides); every other value becomes a contiguous `Temp` whose
//! extents are the value's shape. An op whose value is returned is written straight into its
//! output buffer; an output that returns a parameter, or a value already returned by an earlier
//! output, is filled by a copy nest at the end of the function.
//!
//! Each `generic` lowers as [`generic`] describes (output loops, then the reduction loops carrying
//! the accumulator); its body as [`body`] describes. Index constants, dims and scalar constants
//! are defined once, at the function entry, so every nest can use them. A dim the module fixes
//! lowers to its value; a symbolic dim stays a run-time `dim`.
//!
//! Lowering trusts nothing: a malformed module (dangling ids, an ill-typed body, an index that
//! is neither an output nor reduced) gives a [`LowerError`] rather than a panic, but it does not
//! re-check everything the tensor verifier checks; the loop verifier catches the rest.

mod attention;
mod body;
mod generic;
mod gett;
mod nest;
mod softmax;
#[cfg(test)]
mod tests;

use crate::analysis::{
    attention_chain, backward_group, AttentionChain, BackwardGroup, OpClass, RowSoftmax,
};
use crate::ir::loops::{
    self, BufferDef, BufferId, BufferKind, For, Inst, Layout, Op, Type, ValueId,
};
use crate::ir::names::Namer;
use crate::ir::tensor::schedule::{self, epilogue::Epilogue, Schedule};
use crate::ir::tensor::{self, Extent, OpKind};
use einc_runtime::{DType, Scalar};
use nest::Plan;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Why a module could not be lowered (only malformed tensor IR can cause one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerError {
    /// The function being lowered.
    pub func: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot lower @{}: {}", self.func, self.message)
    }
}

impl std::error::Error for LowerError {}

/// How [`lower_module_with`] lowers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowerOptions {
    /// Whether each op's nest follows its schedule (else every op gets the naive nest).
    pub schedules: bool,
}

/// Lowers every function, obeying the ops' schedules ([`lower_module_with`]).
pub fn lower_module(m: &tensor::Module) -> Result<loops::Module, LowerError> {
    lower_module_with(m, &LowerOptions { schedules: true })
}

/// Lowers every function. Inputs become `Input` buffers and outputs `Output` buffers, both
/// `Strided` (strides come from the caller); intermediate values become `Temp` buffers.
///
/// Each kernel also gets a **contiguous variant** (`K.contiguous`, `variant of @K`) whose
/// array parameters are C-contiguous, when that lowers to a different body: there vector loads
/// reach the arguments and micro-kernels write C in place. The kernel's entry point calls it
/// when the arguments are C-contiguous, else the general function (`docs/schedules.md`).
pub fn lower_module_with(
    m: &tensor::Module,
    opts: &LowerOptions,
) -> Result<loops::Module, LowerError> {
    let mut funcs: Vec<loops::Function> = Vec::new();
    for f in &m.funcs {
        let general = FnLowerer::new(m, f, opts, false).lower()?;
        let arrays = general
            .params
            .iter()
            .any(|&b| general.buffer(b).is_some_and(|d| !d.shape.is_empty()));
        let variant = if arrays {
            Some(FnLowerer::new(m, f, opts, true).lower()?)
        } else {
            None
        };
        let name = general.name.clone();
        let same = |v: &loops::Function| v.body == general.body && v.values == general.values;
        let variant = variant.filter(|v| !same(v));
        funcs.push(general);
        if let Some(mut v) = variant {
            let mut vname = format!("{name}.contiguous");
            while m.funcs.iter().any(|g| g.name == vname) || funcs.iter().any(|g| g.name == vname) {
                vname.push('_');
            }
            v.name = vname;
            v.variant_of = Some(name);
            funcs.push(v);
        }
    }
    Ok(loops::Module {
        dims: m.dims.clone(),
        funcs,
    })
}

/// A scalar constant as a hash key: its dtype and bit pattern (so `-0.0` and each NaN stay
/// distinct from `0.0` and from each other).
fn scalar_key(s: Scalar) -> (DType, u64) {
    let bits = match s {
        Scalar::F32(v) => u64::from(v.to_bits()),
        Scalar::F64(v) => v.to_bits(),
        Scalar::I32(v) => u64::from(v as u32),
        Scalar::I64(v) => v as u64,
    };
    (s.dtype(), bits)
}

/// The state of lowering one function.
struct FnLowerer<'m> {
    module: &'m tensor::Module,
    src: &'m tensor::Function,
    out: loops::Function,
    names: Namer,
    /// Instructions of the function entry: constants and dims, each defined once.
    entry: Vec<Inst>,
    index_consts: HashMap<i64, ValueId>,
    scalar_consts: HashMap<(DType, u64), ValueId>,
    dims: HashMap<String, ValueId>,
    /// The buffer holding each tensor value, by tensor `ValueId`.
    buffers: Vec<Option<BufferId>>,
    /// How to lower.
    opts: LowerOptions,
    /// Whether the parameters are C-contiguous (the contiguous variant).
    contiguous: bool,
    /// The packed-panel buffers the GETT nests share, by name, dtype and tile width
    /// (`gett::shared_pack`).
    packs: Vec<((String, DType, u64), BufferId)>,
}

impl<'m> FnLowerer<'m> {
    fn new(
        module: &'m tensor::Module,
        src: &'m tensor::Function,
        opts: &LowerOptions,
        contiguous: bool,
    ) -> Self {
        FnLowerer {
            module,
            src,
            out: loops::Function::new(src.name.clone()),
            names: Namer::default(),
            entry: Vec::new(),
            index_consts: HashMap::new(),
            scalar_consts: HashMap::new(),
            dims: HashMap::new(),
            buffers: vec![None; src.values.len()],
            opts: *opts,
            contiguous,
            packs: Vec::new(),
        }
    }

    fn error(&self, message: impl Into<String>) -> LowerError {
        LowerError {
            func: self.src.name.clone(),
            message: message.into(),
        }
    }

    fn value_def(&self, id: tensor::ValueId) -> Result<&'m tensor::ValueDef, LowerError> {
        self.src
            .values
            .get(id.0 as usize)
            .ok_or_else(|| self.error(format!("value #{} is out of range", id.0)))
    }

    /// The buffer of a tensor value that has been defined.
    fn buffer_of(&self, id: tensor::ValueId) -> Result<BufferId, LowerError> {
        match self.buffers.get(id.0 as usize) {
            Some(Some(b)) => Ok(*b),
            _ => Err(self.error(format!("value #{} is used before it is defined", id.0))),
        }
    }

    fn buffer_def(&self, id: BufferId) -> Result<&BufferDef, LowerError> {
        self.out
            .buffer(id)
            .ok_or_else(|| self.error(format!("buffer #{} is out of range", id.0)))
    }

    /// Records the buffer of tensor value `id`, which must not have one yet.
    fn bind(&mut self, id: tensor::ValueId, buffer: BufferId) -> Result<(), LowerError> {
        let name = self.value_def(id)?.name.clone();
        match self.buffers.get_mut(id.0 as usize) {
            Some(slot @ None) => {
                *slot = Some(buffer);
                Ok(())
            }
            _ => Err(self.error(format!("%{name} is defined twice"))),
        }
    }

    /// Adds a buffer for tensor value `id` under a fresh name based on `name`.
    fn add_buffer(
        &mut self,
        id: tensor::ValueId,
        name: &str,
        kind: BufferKind,
    ) -> Result<BufferId, LowerError> {
        let ty = &self.value_def(id)?.ty;
        let layout = match kind {
            BufferKind::Input | BufferKind::Output if !self.contiguous => Layout::Strided,
            _ => Layout::Contiguous,
        };
        let def = BufferDef {
            name: self.names.fresh(name),
            dtype: ty.dtype,
            shape: ty.shape.clone(),
            layout,
            kind,
            align: None,
        };
        Ok(self.out.add_buffer(def))
    }

    /// A new value named `prefix0`, `prefix1`, ...
    fn new_value(&mut self, prefix: &str, ty: Type) -> ValueId {
        let name = self.names.numbered(prefix);
        self.out.add_value(name, ty)
    }

    /// A new value named after a source name (an index, a dim).
    fn named_value(&mut self, base: &str, ty: Type) -> ValueId {
        let name = self.names.fresh(base);
        self.out.add_value(name, ty)
    }

    /// The type of a value this lowering defined.
    fn type_of(&self, v: ValueId) -> Result<Type, LowerError> {
        self.out
            .value(v)
            .map(|d| d.ty)
            .ok_or_else(|| self.error(format!("loop value #{} is out of range", v.0)))
    }

    /// The index constant `n`, defined at the entry.
    fn index_const(&mut self, n: i64) -> ValueId {
        if let Some(&v) = self.index_consts.get(&n) {
            return v;
        }
        let base = if n < 0 {
            format!("cm{}", n.unsigned_abs())
        } else {
            format!("c{n}")
        };
        let v = self.named_value(&base, Type::Index);
        self.entry.push(Inst::Assign {
            result: v,
            op: Op::IndexConst(n),
        });
        self.index_consts.insert(n, v);
        v
    }

    /// A non-negative size or position from the tensor IR as an index constant.
    fn index_const_u64(&mut self, n: u64) -> Result<ValueId, LowerError> {
        let n = i64::try_from(n)
            .map_err(|_| self.error(format!("{n} does not fit a 64-bit signed index")))?;
        Ok(self.index_const(n))
    }

    /// The scalar constant `s`, defined at the entry.
    fn scalar_const(&mut self, s: Scalar) -> ValueId {
        let key = scalar_key(s);
        if let Some(&v) = self.scalar_consts.get(&key) {
            return v;
        }
        let v = self.new_value("cst", Type::Scalar(s.dtype()));
        self.entry.push(Inst::Assign {
            result: v,
            op: Op::Const(s),
        });
        self.scalar_consts.insert(key, v);
        v
    }

    /// The size of an extent when it is known before the call (fixed by the IR or the module).
    fn known_extent(&self, e: &Extent) -> Option<u64> {
        match e {
            Extent::Fixed(n) => Some(*n),
            Extent::Dim(name) => self.module.dim_value(name),
        }
    }

    /// The value of an extent at run time: a constant when it is fixed (by the IR or by the
    /// module), else the dim, read once at the entry.
    fn extent(&mut self, e: &Extent) -> Result<ValueId, LowerError> {
        let name = match e {
            Extent::Fixed(n) => return self.index_const_u64(*n),
            Extent::Dim(name) => name,
        };
        let def = self
            .module
            .dims
            .iter()
            .find(|d| &d.name == name)
            .ok_or_else(|| self.error(format!("dim `{name}` is not declared by the module")))?;
        if let Some(n) = def.value {
            return self.index_const_u64(n);
        }
        if let Some(&v) = self.dims.get(name) {
            return Ok(v);
        }
        let v = self.named_value(name, Type::Index);
        self.entry.push(Inst::Assign {
            result: v,
            op: Op::Dim(name.clone()),
        });
        self.dims.insert(name.clone(), v);
        Ok(v)
    }

    /// Appends `result = op` to `block`, `result` being a new value named `prefix<n>`.
    fn assign(&mut self, block: &mut Vec<Inst>, prefix: &str, op: Op, ty: Type) -> ValueId {
        let result = self.new_value(prefix, ty);
        block.push(Inst::Assign { result, op });
        result
    }

    fn lower(mut self) -> Result<loops::Function, LowerError> {
        let src = self.src;
        // Parameters first, then outputs: their names are the kernel's signature and win over
        // the names of values inside the function.
        for &p in &src.params {
            let name = self.value_def(p)?.name.clone();
            let b = self.add_buffer(p, &name, BufferKind::Input)?;
            self.bind(p, b)?;
            self.out.params.push(b);
        }
        let is_param: HashSet<tensor::ValueId> = src.params.iter().copied().collect();
        // The first output returning an op's value receives it directly; every other output
        // (a parameter, or a value returned twice) is filled by a copy.
        let mut direct: HashMap<tensor::ValueId, BufferId> = HashMap::new();
        let mut copies = Vec::new();
        for r in &src.results {
            let b = self.add_buffer(r.value, &r.name, BufferKind::Output)?;
            self.out.params.push(b);
            if is_param.contains(&r.value) || direct.contains_key(&r.value) {
                copies.push((r.value, b));
            } else {
                direct.insert(r.value, b);
            }
        }

        // Row-softmax groups whose division has a `softmax` schedule run as one nest, placed
        // where the group's first op (the row maximum) is: every reader of the group's values
        // comes after it.
        let fused = if self.opts.schedules {
            fused_softmax_groups(src)
        } else {
            Vec::new()
        };
        // GEMMs whose schedules apply an epilogue run where the epilogue's last map is (every
        // operand of the chain is defined by then) and store its value; the contraction and the
        // other maps of the chain are not materialised.
        let epilogues = if self.opts.schedules {
            gemm_epilogues(src).map_err(|e| self.error(e))?
        } else {
            Vec::new()
        };
        // Attention chains whose output has an `attention` schedule run as one blocked nest
        // where the output is; the chain's other ops are not materialised (whatever schedules
        // they carry).
        let chains = if self.opts.schedules {
            attention_groups(src).map_err(|e| self.error(e))?
        } else {
            Vec::new()
        };
        let mut body = Vec::new();
        for (k, op) in src.ops.iter().enumerate() {
            if let Some((fused, s)) = chains.iter().find(|(c, _)| c.anchor() == k) {
                let nest = match fused {
                    Fused::Forward(chain) => {
                        let b = self.result_buffer(op.result, &direct)?;
                        attention::lower_attention(&mut self, chain, s, b)?
                    }
                    Fused::Backward(group) => {
                        let mut bind = |fl: &mut FnLowerer<'m>, v| fl.result_buffer(v, &direct);
                        attention::lower_backward(&mut self, group, s, &mut bind)?
                    }
                };
                body.extend(nest);
                continue;
            }
            if chains.iter().any(|(c, _)| c.ops().contains(&k)) {
                continue;
            }
            if let Some((c, epi)) = epilogues.iter().find(|(_, e)| e.last() == k) {
                let b = self.result_buffer(op.result, &direct)?;
                let Some(contraction) = src.ops.get(*c) else {
                    return Err(self.error("an epilogue's contraction is missing"));
                };
                let OpKind::Generic(g) = &contraction.kind;
                let nest = generic::lower_generic(&mut self, contraction.result, g, b, Some(epi))?;
                body.extend(nest);
                continue;
            }
            let inside = |(c, e): &(usize, Epilogue)| *c == k || e.ops.contains(&k);
            if epilogues.iter().any(inside) {
                continue;
            }
            if let Some(group) = fused.iter().find(|g| g.max == k) {
                let nest = self.softmax_group(group, &direct)?;
                body.extend(nest);
                continue;
            }
            if fused.iter().any(|g| [g.exp, g.sum, g.div].contains(&k)) {
                continue;
            }
            let b = self.result_buffer(op.result, &direct)?;
            match &op.kind {
                OpKind::Generic(g) => {
                    let nest = generic::lower_generic(&mut self, op.result, g, b, None)?;
                    body.extend(nest);
                }
            }
        }
        if let Some(r) = src
            .results
            .iter()
            .find(|r| self.buffer_of(r.value).is_err())
        {
            return Err(self.error(format!(
                "output `{}` returns a value that is never defined",
                r.name
            )));
        }
        for (value, dst) in copies {
            let src_buffer = self.buffer_of(value)?;
            let nest = self.copy_nest(src_buffer, dst)?;
            body.extend(nest);
        }

        let mut insts = std::mem::take(&mut self.entry);
        insts.extend(body);
        self.out.body.insts = insts;
        Ok(self.out)
    }

    /// The buffer of op result `value`: its output when it is returned directly, else a new
    /// temporary; recorded as the value's buffer.
    fn result_buffer(
        &mut self,
        value: tensor::ValueId,
        direct: &HashMap<tensor::ValueId, BufferId>,
    ) -> Result<BufferId, LowerError> {
        let b = match direct.get(&value) {
            Some(&b) => b,
            None => {
                let name = self.value_def(value)?.name.clone();
                self.add_buffer(value, &name, BufferKind::Temp)?
            }
        };
        self.bind(value, b)?;
        Ok(b)
    }

    /// The nest of a row-softmax group under its division's `softmax` schedule; buffers only
    /// for the softmax and the intermediates read outside the group.
    fn softmax_group(
        &mut self,
        group: &RowSoftmax,
        direct: &HashMap<tensor::ValueId, BufferId>,
    ) -> Result<Vec<Inst>, LowerError> {
        let src = self.src;
        let result = |k: usize| src.ops.get(k).map(|op| op.result);
        let name = result(group.div)
            .and_then(|v| self.value_def(v).ok())
            .map_or_else(String::new, |d| d.name.clone());
        let context = |e: String| self.error(format!("the softmax group of %{name}: {e}"));
        let shape = softmax::shape(src, group).map_err(context)?;
        let div = src.ops.get(group.div);
        let Some((OpKind::Generic(d), div_value)) = div.map(|op| (&op.kind, op.result)) else {
            return Err(context("the division is missing".into()));
        };
        let Some(Schedule::Softmax(s)) = &d.schedule else {
            return Err(context("the division has no `softmax` schedule".into()));
        };
        let plan = Plan::from_schedule(d, s).map_err(context)?;
        let p = self.result_buffer(div_value, direct)?;
        let mut escaping = |k: usize, map: &[tensor::AxisMap]| -> Result<_, LowerError> {
            match result(k) {
                Some(v) if group.escapes.contains(&v) => {
                    Ok(Some((self.result_buffer(v, direct)?, map.to_vec())))
                }
                _ => Ok(None),
            }
        };
        let targets = softmax::Targets {
            max: escaping(group.max, &shape.max_map)?,
            exp: escaping(group.exp, &shape.exp_map)?,
            sum: escaping(group.sum, &shape.sum_map)?,
            p,
        };
        softmax::lower_softmax(self, &shape, plan, &targets).map_err(|e| LowerError {
            func: e.func,
            message: format!("the softmax group of %{name}: {}", e.message),
        })
    }

    /// A parallel nest copying every element of `src` into `dst` (same dtype and shape).
    fn copy_nest(&mut self, src: BufferId, dst: BufferId) -> Result<Vec<Inst>, LowerError> {
        let dtype = self.buffer_def(dst)?.dtype;
        self.pointwise_nest(dst, |fl, inner, vars| {
            fl.assign(
                inner,
                "ld",
                Op::Load {
                    buffer: src,
                    index: vars.to_vec(),
                    lanes: 1,
                },
                Type::Scalar(dtype),
            )
        })
    }

    /// A parallel nest over every element of `dst` (C order) storing the value `element`
    /// computes into the innermost block from the loop variables.
    fn pointwise_nest(
        &mut self,
        dst: BufferId,
        element: impl FnOnce(&mut Self, &mut Vec<Inst>, &[ValueId]) -> ValueId,
    ) -> Result<Vec<Inst>, LowerError> {
        let shape = self.buffer_def(dst)?.shape.clone();
        let lower = self.index_const(0);
        let mut loops = Vec::with_capacity(shape.len());
        for (axis, extent) in shape.iter().enumerate() {
            let upper = self.extent(extent)?;
            let var = self.named_value(&format!("i{axis}"), Type::Index);
            loops.push((var, upper));
        }
        let vars: Vec<ValueId> = loops.iter().map(|&(v, _)| v).collect();
        let mut inner = Vec::new();
        let value = element(self, &mut inner, &vars);
        inner.push(Inst::Store {
            buffer: dst,
            index: vars,
            value,
        });
        for (var, upper) in loops.into_iter().rev() {
            inner = vec![Inst::For(Box::new(For {
                var,
                lower,
                upper,
                step: 1,
                parallel: true,
                unroll: None,
                carried: Vec::new(),
                body: loops::Block { insts: inner },
                yields: Vec::new(),
            }))];
        }
        Ok(inner)
    }
}

/// Whether op `g` of `f` can run vectorised along index `v` when its inputs are laid out in C
/// order (its body allows it and every input reading `v` reads it on its last axis alone): what
/// the `schedule` pass asks before it chooses a vectorised index.
pub fn vectorises_in_c_order(
    f: &tensor::Function,
    g: &tensor::Generic,
    v: tensor::IndexId,
) -> bool {
    let lanes = u32::try_from(16 / g.dtype.size_bytes()).unwrap_or(1);
    let dtype_of = |n: usize| {
        g.inputs
            .get(n)
            .and_then(|i| f.values.get(i.value.0 as usize))
            .map(|d| d.ty.dtype)
    };
    body::vectorisable(g, v, lanes, &dtype_of, &|_| true).is_none()
}

/// The GEMMs of `f` whose `gemm` schedule names an epilogue, each with the epilogue's maps.
fn gemm_epilogues(f: &tensor::Function) -> Result<Vec<(usize, Epilogue)>, String> {
    let mut out = Vec::new();
    for (k, op) in f.ops.iter().enumerate() {
        let OpKind::Generic(g) = &op.kind;
        if let Some(Schedule::Gemm(s)) = &g.schedule {
            if let Some(steps) = s.epilogue.as_deref().filter(|e| !e.is_empty()) {
                out.push((k, schedule::epilogue::find(f, k, Some(steps))?));
            }
        }
    }
    Ok(out)
}

/// A nest an `attention` schedule asks for.
enum Fused {
    /// A forward chain (the schedule on its output).
    Forward(AttentionChain),
    /// A backward group (the schedule on its anchor).
    Backward(BackwardGroup),
}

impl Fused {
    /// The op where the nest runs.
    fn anchor(&self) -> usize {
        match self {
            Fused::Forward(c) => c.output,
            Fused::Backward(g) => g.anchor,
        }
    }

    /// Every op the nest computes.
    fn ops(&self) -> Vec<usize> {
        match self {
            Fused::Forward(c) => c.ops(),
            Fused::Backward(g) => g.ops(),
        }
    }
}

/// The attention chains and backward groups of `f` whose anchor has an `attention` schedule,
/// with the schedule; an error when such an op is neither.
fn attention_groups(
    f: &tensor::Function,
) -> Result<Vec<(Fused, schedule::AttentionSchedule)>, String> {
    let mut out = Vec::new();
    for (k, op) in f.ops.iter().enumerate() {
        let OpKind::Generic(g) = &op.kind;
        if let Some(Schedule::Attention(s)) = &g.schedule {
            let name = f
                .values
                .get(op.result.0 as usize)
                .map_or("?", |v| v.name.as_str());
            let fused = match attention_chain(f, k) {
                Ok(chain) => Fused::Forward(chain),
                Err(forward) => match backward_group(f, k) {
                    Ok(group) => Fused::Backward(group),
                    Err(backward) => {
                        return Err(format!(
                            "%{name} has an `attention` schedule but does not end an attention chain ({forward}) nor start a backward group ({backward})"
                        ))
                    }
                },
            };
            out.push((fused, s.clone()));
        }
    }
    Ok(out)
}

/// The row-softmax groups of `f` whose division has a `softmax` schedule, once each.
fn fused_softmax_groups(f: &tensor::Function) -> Vec<RowSoftmax> {
    let mut groups: Vec<RowSoftmax> = Vec::new();
    for class in crate::analysis::classify_function(f) {
        let OpClass::RowSoftmax(g) = class else {
            continue;
        };
        let scheduled = f.ops.get(g.div).is_some_and(|op| {
            let OpKind::Generic(d) = &op.kind;
            matches!(d.schedule, Some(Schedule::Softmax(_)))
        });
        if scheduled && !groups.iter().any(|h| h.div == g.div) {
            groups.push(g);
        }
    }
    groups
}
