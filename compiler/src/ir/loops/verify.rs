//! Checks the invariants documented on the loop IR types, so that every pass can rely on them
//! and a pass that breaks one is caught right after it runs.
//!
//! The verifier reports every broken rule it finds (not just the first), never panics on any
//! module (dangling ids included), and names the function and the rule in each error. The rules
//! are listed in `docs/ir.md`.

use super::printer::{buffer_ref, print_type, value_ref};
use super::{Block, BufferId, BufferKind, For, Function, Inst, Layout, Module, Op, Type, ValueId};
use crate::ir::scalar::{binary_accepts_int, unary_accepts_int};
use crate::ir::tensor::printer::name;
use crate::ir::tensor::Extent;
use std::collections::HashSet;
use std::fmt;

#[cfg(test)]
mod tests;

/// The families of invariants, as `docs/ir.md` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Dim, function, buffer and value names are unique.
    Names,
    /// Every dim a shape or a `dim` op names is declared by the module.
    Dims,
    /// `params` lists every input buffer and then every output buffer, each once.
    Params,
    /// Temporary buffers are contiguous.
    Buffers,
    /// Every value is defined once and used only where it is visible.
    Ssa,
    /// Every operand has the type its operation needs and every result the type it gives;
    /// vectors are 128 bits wide.
    Types,
    /// Loads and stores: one `index` per axis, vectors only on contiguous buffers, the stored
    /// dtype is the buffer's, and inputs are never written.
    Memory,
    /// Loop bounds, steps, carried values, yields and the parallel marker.
    Loops,
}

impl Rule {
    /// The rule's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Names => "names",
            Rule::Dims => "dims",
            Rule::Params => "params",
            Rule::Buffers => "buffers",
            Rule::Ssa => "ssa",
            Rule::Types => "types",
            Rule::Memory => "memory",
            Rule::Loops => "loops",
        }
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopVerifyError {
    /// The function, or `None` for a module-level rule.
    pub func: Option<String>,
    /// The family of the broken rule.
    pub rule: Rule,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LoopVerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.func {
            Some(func) => write!(f, "@{}: ", name(func))?,
            None => write!(f, "module: ")?,
        }
        write!(f, "[{}] {}", self.rule.name(), self.message)
    }
}

impl std::error::Error for LoopVerifyError {}

/// Checks every invariant of `m`; on failure returns all the errors found, in module order.
pub fn verify_module(m: &Module) -> Result<(), Vec<LoopVerifyError>> {
    let mut errors = Vec::new();
    let mut module_error = |message: String| {
        errors.push(LoopVerifyError {
            func: None,
            rule: Rule::Names,
            message,
        });
    };
    let mut dims = HashSet::new();
    for d in &m.dims {
        if !dims.insert(d.name.as_str()) {
            module_error(format!("dim `{}` is declared twice", name(&d.name)));
        }
    }
    let mut funcs = HashSet::new();
    for f in &m.funcs {
        if !funcs.insert(f.name.as_str()) {
            module_error(format!("function @{} is defined twice", name(&f.name)));
        }
    }
    for f in &m.funcs {
        let mut v = Verifier {
            m,
            f,
            errors: &mut errors,
            defined: vec![false; f.values.len()],
            visible: vec![false; f.values.len()],
        };
        v.function();
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

struct Verifier<'a> {
    m: &'a Module,
    f: &'a Function,
    errors: &'a mut Vec<LoopVerifyError>,
    /// Whether each value has been defined so far.
    defined: Vec<bool>,
    /// Whether each value is visible at the current position.
    visible: Vec<bool>,
}

impl Verifier<'_> {
    fn error(&mut self, rule: Rule, message: impl Into<String>) {
        self.errors.push(LoopVerifyError {
            func: Some(self.f.name.clone()),
            rule,
            message: message.into(),
        });
    }

    fn v(&self, id: ValueId) -> String {
        value_ref(self.f, id)
    }

    fn b(&self, id: BufferId) -> String {
        buffer_ref(self.f, id)
    }

    fn function(&mut self) {
        let f = self.f;
        let mut seen = HashSet::new();
        for b in &f.buffers {
            if !seen.insert(b.name.as_str()) {
                self.error(
                    Rule::Names,
                    format!("buffer %{} is declared twice", name(&b.name)),
                );
            }
        }
        let mut seen = HashSet::new();
        for v in &f.values {
            if !seen.insert(v.name.as_str()) {
                self.error(
                    Rule::Names,
                    format!("value %{} is declared twice", name(&v.name)),
                );
            }
        }
        for (n, b) in f.buffers.iter().enumerate() {
            let id = BufferId(u32::try_from(n).unwrap_or(u32::MAX));
            for e in &b.shape {
                if let Extent::Dim(d) = e {
                    if !self.m.dims.iter().any(|x| &x.name == d) {
                        self.error(
                            Rule::Dims,
                            format!("buffer {} uses undeclared dim `{}`", self.b(id), name(d)),
                        );
                    }
                }
            }
            if b.kind == BufferKind::Temp && b.layout != Layout::Contiguous {
                self.error(
                    Rule::Buffers,
                    format!("temporary buffer {} must be contiguous", self.b(id)),
                );
            }
        }
        self.params();
        for (n, v) in f.values.iter().enumerate() {
            if let Type::Vector(d, lanes) = v.ty {
                if Type::simd(d) != v.ty {
                    let id = ValueId(u32::try_from(n).unwrap_or(u32::MAX));
                    self.error(
                        Rule::Types,
                        format!(
                            "{} has type vector<{lanes}x{d}>: a vector is 128 bits, {}",
                            self.v(id),
                            print_type(Type::simd(d))
                        ),
                    );
                }
            }
        }
        self.block(&f.body);
        for (n, &d) in self.defined.clone().iter().enumerate() {
            if !d {
                let id = ValueId(u32::try_from(n).unwrap_or(u32::MAX));
                self.error(Rule::Ssa, format!("{} is never defined", self.v(id)));
            }
        }
    }

    fn params(&mut self) {
        let f = self.f;
        let mut seen_output = false;
        for (n, &p) in f.params.iter().enumerate() {
            let Some(b) = f.buffer(p) else {
                self.error(
                    Rule::Params,
                    format!("parameter {n} is buffer #{}, which does not exist", p.0),
                );
                continue;
            };
            if f.params.get(..n).is_some_and(|before| before.contains(&p)) {
                self.error(
                    Rule::Params,
                    format!("buffer {} is a parameter twice", self.b(p)),
                );
            }
            match b.kind {
                BufferKind::Temp => self.error(
                    Rule::Params,
                    format!("temporary buffer {} is a parameter", self.b(p)),
                ),
                BufferKind::Output => seen_output = true,
                BufferKind::Input if seen_output => self.error(
                    Rule::Params,
                    format!("input {} follows an output among the parameters", self.b(p)),
                ),
                BufferKind::Input => {}
            }
        }
        for (n, b) in f.buffers.iter().enumerate() {
            let id = BufferId(u32::try_from(n).unwrap_or(u32::MAX));
            if b.kind != BufferKind::Temp && !f.params.contains(&id) {
                self.error(
                    Rule::Params,
                    format!(
                        "{} buffer {} is not a parameter",
                        if b.kind == BufferKind::Input {
                            "input"
                        } else {
                            "output"
                        },
                        self.b(id)
                    ),
                );
            }
        }
    }

    /// The type of a value the current instruction uses, after checking that it is visible.
    fn use_value(&mut self, id: ValueId) -> Option<Type> {
        let Some(def) = self.f.value(id) else {
            self.error(Rule::Ssa, format!("value #{} does not exist", id.0));
            return None;
        };
        if self.visible.get(id.0 as usize) != Some(&true) {
            self.error(
                Rule::Ssa,
                format!(
                    "{} is used where it is not visible (before its definition, or outside the \
                     loop that defines it)",
                    self.v(id)
                ),
            );
        }
        Some(def.ty)
    }

    /// Defines a value at the current position and returns its recorded type.
    fn define(&mut self, id: ValueId) -> Option<Type> {
        let Some(def) = self.f.value(id) else {
            self.error(Rule::Ssa, format!("value #{} does not exist", id.0));
            return None;
        };
        let n = id.0 as usize;
        if self.defined.get(n) == Some(&true) {
            self.error(
                Rule::Ssa,
                format!("{} is defined more than once", self.v(id)),
            );
        }
        if let (Some(d), Some(v)) = (self.defined.get_mut(n), self.visible.get_mut(n)) {
            *d = true;
            *v = true;
        }
        Some(def.ty)
    }

    fn hide(&mut self, id: ValueId) {
        if let Some(v) = self.visible.get_mut(id.0 as usize) {
            *v = false;
        }
    }

    /// Checks a block and returns the values it defines, which the caller hides when their
    /// scope ends (a loop body's after its yields are checked).
    fn block(&mut self, b: &Block) -> Vec<ValueId> {
        let mut defined_here = Vec::new();
        for inst in &b.insts {
            match inst {
                Inst::Assign { result, op } => {
                    let derived = self.op(op);
                    let recorded = self.define(*result);
                    defined_here.push(*result);
                    if let (Some(r), Some(d)) = (recorded, derived) {
                        if r != d {
                            self.error(
                                Rule::Types,
                                format!(
                                    "{} has type {} but its operation gives {}",
                                    self.v(*result),
                                    print_type(r),
                                    print_type(d)
                                ),
                            );
                        }
                    }
                }
                Inst::Store {
                    buffer,
                    index,
                    value,
                } => self.store(*buffer, index, *value),
                Inst::For(l) => {
                    self.for_loop(l);
                    defined_here.extend(l.carried.iter().map(|c| c.result));
                }
            }
        }
        defined_here
    }

    fn for_loop(&mut self, l: &For) {
        for (what, id) in [("lower bound", l.lower), ("upper bound", l.upper)] {
            if let Some(t) = self.use_value(id).filter(|&t| t != Type::Index) {
                self.error(
                    Rule::Loops,
                    format!(
                        "the {what} {} has type {}, not index",
                        self.v(id),
                        print_type(t)
                    ),
                );
            }
        }
        let inits: Vec<Option<Type>> = l.carried.iter().map(|c| self.use_value(c.init)).collect();
        if l.step == 0 {
            self.error(
                Rule::Loops,
                format!("the loop over {} has step 0", self.v(l.var)),
            );
        }
        if l.parallel && !l.carried.is_empty() {
            self.error(
                Rule::Loops,
                format!("the parallel loop over {} carries values", self.v(l.var)),
            );
        }
        if let Some(t) = self.define(l.var).filter(|&t| t != Type::Index) {
            self.error(
                Rule::Loops,
                format!(
                    "the induction variable {} has type {}, not index",
                    self.v(l.var),
                    print_type(t)
                ),
            );
        }
        let mut args = Vec::new();
        for (c, init) in l.carried.iter().zip(&inits) {
            let arg = self.define(c.arg);
            args.push(arg);
            if let (Some(a), Some(i)) = (arg, *init) {
                if a != i {
                    self.error(
                        Rule::Loops,
                        format!(
                            "the carried value {} has type {} but its initial value {} has type {}",
                            self.v(c.arg),
                            print_type(a),
                            self.v(c.init),
                            print_type(i)
                        ),
                    );
                }
            }
        }
        let body_values = self.block(&l.body);
        if l.yields.len() != l.carried.len() {
            self.error(
                Rule::Loops,
                format!(
                    "the loop over {} carries {} value(s) but yields {}",
                    self.v(l.var),
                    l.carried.len(),
                    l.yields.len()
                ),
            );
        }
        for (&y, (c, arg)) in l.yields.iter().zip(l.carried.iter().zip(&args)) {
            if let (Some(yt), Some(a)) = (self.use_value(y), *arg) {
                if yt != a {
                    self.error(
                        Rule::Loops,
                        format!(
                            "the loop yields {} of type {} for {} of type {}",
                            self.v(y),
                            print_type(yt),
                            self.v(c.arg),
                            print_type(a)
                        ),
                    );
                }
            }
        }
        // Yields beyond the carried values are still uses.
        for &y in l.yields.iter().skip(l.carried.len()) {
            self.use_value(y);
        }
        for id in body_values {
            self.hide(id);
        }
        self.hide(l.var);
        for (c, arg) in l.carried.iter().zip(&args) {
            self.hide(c.arg);
            let result = self.define(c.result);
            if let (Some(r), Some(a)) = (result, *arg) {
                if r != a {
                    self.error(
                        Rule::Loops,
                        format!(
                            "the loop result {} has type {} but its carried value {} has type {}",
                            self.v(c.result),
                            print_type(r),
                            self.v(c.arg),
                            print_type(a)
                        ),
                    );
                }
            }
        }
    }

    /// Checks an access `buffer[index]` of `lanes` elements; returns the buffer's dtype.
    fn access(
        &mut self,
        what: &str,
        buffer: BufferId,
        index: &[ValueId],
        lanes: u32,
    ) -> Option<einc_runtime::DType> {
        let index_types: Vec<Option<Type>> = index.iter().map(|&i| self.use_value(i)).collect();
        for (&i, t) in index.iter().zip(index_types) {
            if let Some(t) = t.filter(|&t| t != Type::Index) {
                self.error(
                    Rule::Memory,
                    format!(
                        "{what} of {} is indexed by {} of type {}, not index",
                        self.b(buffer),
                        self.v(i),
                        print_type(t)
                    ),
                );
            }
        }
        let Some(b) = self.f.buffer(buffer) else {
            self.error(
                Rule::Memory,
                format!("{what} of buffer #{}, which does not exist", buffer.0),
            );
            return None;
        };
        if index.len() != b.shape.len() {
            self.error(
                Rule::Memory,
                format!(
                    "{what} of {} has {} index value(s) but the buffer has rank {}",
                    self.b(buffer),
                    index.len(),
                    b.shape.len()
                ),
            );
        }
        if lanes > 1 && b.layout != Layout::Contiguous {
            self.error(
                Rule::Memory,
                format!(
                    "vector {what} of {}, which is not contiguous",
                    self.b(buffer)
                ),
            );
        }
        if lanes > 1 && b.shape.is_empty() {
            self.error(
                Rule::Memory,
                format!("vector {what} of {}, which has rank 0", self.b(buffer)),
            );
        }
        Some(b.dtype)
    }

    fn store(&mut self, buffer: BufferId, index: &[ValueId], value: ValueId) {
        let ty = self.use_value(value);
        let lanes = match ty {
            Some(Type::Vector(_, n)) => n,
            _ => 1,
        };
        let dtype = self.access("store", buffer, index, lanes);
        if self
            .f
            .buffer(buffer)
            .is_some_and(|b| b.kind == BufferKind::Input)
        {
            self.error(Rule::Memory, format!("store to input {}", self.b(buffer)));
        }
        if let (Some(t), Some(d)) = (ty, dtype) {
            if t.dtype() != Some(d) {
                self.error(
                    Rule::Memory,
                    format!(
                        "store of {} of type {} to {} of dtype {d}",
                        self.v(value),
                        print_type(t),
                        self.b(buffer)
                    ),
                );
            }
        }
    }

    /// Reports an operand whose type the op does not accept.
    fn bad_operand(&mut self, op: &str, id: ValueId, t: Type, need: &str) {
        self.error(
            Rule::Types,
            format!(
                "`{op}` needs {need}, but {} has type {}",
                self.v(id),
                print_type(t)
            ),
        );
    }

    /// Checks that operands have one type; returns it.
    fn same(&mut self, op: &str, ids: &[ValueId]) -> Option<Type> {
        let types: Vec<Option<Type>> = ids.iter().map(|&i| self.use_value(i)).collect();
        let first = (*types.first()?)?;
        for (&id, t) in ids.iter().zip(&types).skip(1) {
            let t = (*t)?;
            if t != first {
                self.error(
                    Rule::Types,
                    format!(
                        "`{op}` needs operands of one type, but {} has type {} and {} has type {}",
                        self.v(ids.first().copied().unwrap_or(id)),
                        print_type(first),
                        self.v(id),
                        print_type(t)
                    ),
                );
                return None;
            }
        }
        Some(first)
    }

    /// Checks the operands of an op and returns the type its result must have (`None` when
    /// an operand is broken, which is reported).
    fn op(&mut self, op: &Op) -> Option<Type> {
        match op {
            Op::IndexConst(_) => Some(Type::Index),
            Op::Dim(d) => {
                if !self.m.dims.iter().any(|x| &x.name == d) {
                    self.error(Rule::Dims, format!("`dim` of undeclared dim `{}`", name(d)));
                }
                Some(Type::Index)
            }
            Op::IndexArith(o, a, b) => {
                for id in [*a, *b] {
                    if let Some(t) = self.use_value(id).filter(|&t| t != Type::Index) {
                        let mnemonic = super::printer::index_op_name(*o);
                        self.bad_operand(mnemonic, id, t, "index operands");
                    }
                }
                Some(Type::Index)
            }
            Op::Const(s) => Some(Type::Scalar(s.dtype())),
            Op::Splat(x, lanes) => match self.use_value(*x)? {
                Type::Scalar(d) => Some(Type::Vector(d, *lanes)),
                t => {
                    self.bad_operand("splat", *x, t, "a scalar");
                    None
                }
            },
            Op::Unary(u, x) => {
                let t = self.use_value(*x)?;
                let ok = match t.dtype() {
                    Some(d) => d.is_float() || unary_accepts_int(*u),
                    None => false,
                };
                if !ok {
                    self.bad_operand(u.name(), *x, t, "a scalar or vector it is defined on");
                    return None;
                }
                Some(t)
            }
            Op::Binary(b, x, y) => {
                let n = b.name();
                let t = self.same(n, &[*x, *y])?;
                let ok = match t.dtype() {
                    Some(d) => d.is_float() || binary_accepts_int(*b),
                    None => false,
                };
                if !ok {
                    self.bad_operand(n, *x, t, "scalars or vectors it is defined on");
                    return None;
                }
                Some(t)
            }
            Op::Fma(a, b, c) => {
                let t = self.same("fma", &[*a, *b, *c])?;
                if !t.dtype().is_some_and(|d| d.is_float()) {
                    self.bad_operand("fma", *a, t, "float scalars or vectors");
                    return None;
                }
                Some(t)
            }
            Op::Cmp(_, x, y) => {
                let t = self.same("cmp", &[*x, *y])?;
                if !matches!(t, Type::Index | Type::Scalar(_)) {
                    self.bad_operand("cmp", *x, t, "scalars or index values");
                }
                Some(Type::Bool)
            }
            Op::And(x, y) | Op::Or(x, y) => {
                let n = if matches!(op, Op::And(..)) {
                    "and"
                } else {
                    "or"
                };
                for id in [*x, *y] {
                    if let Some(t) = self.use_value(id).filter(|&t| t != Type::Bool) {
                        self.bad_operand(n, id, t, "bool operands");
                    }
                }
                Some(Type::Bool)
            }
            Op::Not(x) => {
                if let Some(t) = self.use_value(*x).filter(|&t| t != Type::Bool) {
                    self.bad_operand("not", *x, t, "a bool operand");
                }
                Some(Type::Bool)
            }
            Op::Select(c, x, y) => {
                if let Some(t) = self.use_value(*c).filter(|&t| t != Type::Bool) {
                    self.bad_operand("select", *c, t, "a bool condition");
                }
                self.same("select", &[*x, *y])
            }
            Op::Cast(d, x) => match self.use_value(*x)? {
                Type::Scalar(_) | Type::Index => Some(Type::Scalar(*d)),
                Type::Vector(_, n) => Some(Type::Vector(*d, n)),
                t @ Type::Bool => {
                    self.bad_operand("cast", *x, t, "a scalar, vector or index value");
                    None
                }
            },
            Op::Load {
                buffer,
                index,
                lanes,
            } => {
                let d = self.access("load", *buffer, index, *lanes)?;
                Some(if *lanes == 1 {
                    Type::Scalar(d)
                } else {
                    Type::Vector(d, *lanes)
                })
            }
            Op::ReduceLanes(_, x) => match self.use_value(*x)? {
                Type::Vector(d, _) => Some(Type::Scalar(d)),
                t => {
                    self.bad_operand("reduce_lanes", *x, t, "a vector");
                    None
                }
            },
        }
    }
}
