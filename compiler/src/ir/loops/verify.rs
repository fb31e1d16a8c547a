//! Checks the invariants documented on the loop IR types, so that every pass can rely on them
//! and a pass that breaks one is caught right after it runs.
//!
//! The verifier reports every broken rule it finds (not just the first), never panics on any
//! module (dangling ids included), and names the function and the rule in each error. The rules
//! are listed in `docs/ir.md`.

use super::printer::{buffer_ref, print_layout, print_type, value_ref};
use super::{
    Block, BufferId, BufferKind, Coord, For, Function, Inst, Layout, Module, Op, StrideFact,
    TileOperand, Type, Ukernel, ValueId, MAX_ALIGN, MAX_SCOPED_BYTES,
};
use crate::ir::scalar::{binary_accepts_int, unary_accepts_int};
use crate::ir::tensor::printer::name;
use crate::ir::tensor::schedule::MicroKernel;
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
    /// Layouts, alignments, and scoped buffers (fixed extents, bounded size, one declaration,
    /// used only in their block).
    Buffers,
    /// A variant names a general function and has its parameters with facts at least as
    /// strong.
    Variants,
    /// Operands of a micro-kernel call.
    Ukernel,
    /// Pointers: `addr`, `advance`, `load at`, `store at`, and the buffer each `ptr` value
    /// points into.
    Pointers,
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
            Rule::Variants => "variants",
            Rule::Ukernel => "ukernel",
            Rule::Pointers => "pointers",
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

/// How a message names a buffer kind.
fn kind_word(k: BufferKind) -> &'static str {
    match k {
        BufferKind::Input => "input",
        BufferKind::Output => "output",
        BufferKind::Temp => "temporary",
        BufferKind::Scoped => "scoped",
    }
}

/// The size in bytes of a buffer with fixed extents (`None` when an extent is symbolic or the
/// size overflows).
pub(crate) fn scoped_bytes(
    m: &Module,
    shape: &[Extent],
    dtype: einc_runtime::DType,
) -> Option<u64> {
    shape.iter().try_fold(dtype.size_bytes() as u64, |acc, e| {
        let n = match e {
            Extent::Fixed(n) => *n,
            Extent::Dim(d) => m.dims.iter().find(|x| &x.name == d)?.value?,
        };
        acc.checked_mul(n)
    })
}

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
            declared: vec![false; f.buffers.len()],
            points_into: vec![None; f.values.len()],
            buffer_visible: f
                .buffers
                .iter()
                .map(|b| b.kind != BufferKind::Scoped)
                .collect(),
        };
        v.function();
        v.variant();
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
    /// Whether each scoped buffer has been declared so far.
    declared: Vec<bool>,
    /// Whether each buffer is usable at the current position.
    buffer_visible: Vec<bool>,
    /// The buffer each `ptr` value points into, once defined.
    points_into: Vec<Option<BufferId>>,
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
            self.buffer_def(id);
        }
        self.scoped_size();
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
        for (n, b) in f.buffers.iter().enumerate() {
            if b.kind == BufferKind::Scoped && self.declared.get(n) != Some(&true) {
                let id = BufferId(u32::try_from(n).unwrap_or(u32::MAX));
                self.error(
                    Rule::Buffers,
                    format!("scoped buffer {} is never declared", self.b(id)),
                );
            }
        }
    }

    /// The layout and alignment rules of one buffer.
    fn buffer_def(&mut self, id: BufferId) {
        let Some(b) = self.f.buffer(id) else { return };
        let local = matches!(b.kind, BufferKind::Temp | BufferKind::Scoped);
        if local && b.layout != Layout::Contiguous {
            let what = if b.kind == BufferKind::Temp {
                "temporary"
            } else {
                "scoped"
            };
            self.error(
                Rule::Buffers,
                format!("{what} buffer {} must be contiguous", self.b(id)),
            );
        }
        if let Layout::Axes(facts) = &b.layout {
            let rank = b.shape.len();
            let all = |l: Layout| (0..rank).all(|k| b.layout.fact(k, rank) == l.fact(k, rank));
            if facts.len() != rank {
                self.error(
                    Rule::Buffers,
                    format!(
                        "buffer {} has {} stride facts but rank {}",
                        self.b(id),
                        facts.len(),
                        b.shape.len()
                    ),
                );
            } else if all(Layout::Contiguous) || all(Layout::Strided) {
                let spelling = if all(Layout::Strided) {
                    "strided"
                } else {
                    "contiguous"
                };
                self.error(
                    Rule::Buffers,
                    format!(
                        "buffer {} has layout {}, which is spelled `{spelling}`",
                        self.b(id),
                        print_layout(&b.layout)
                    ),
                );
            }
        }
        if let Some(a) = b.align {
            if !local {
                self.error(
                    Rule::Buffers,
                    format!(
                        "parameter {} asks for an alignment: only temporaries and scoped \
                         buffers are allocated by the kernel",
                        self.b(id)
                    ),
                );
            } else if !a.is_power_of_two() || a > MAX_ALIGN {
                self.error(
                    Rule::Buffers,
                    format!(
                        "buffer {} asks for alignment {a}: it must be a power of two at most \
                         {MAX_ALIGN}",
                        self.b(id)
                    ),
                );
            }
        }
        if b.kind == BufferKind::Scoped && scoped_bytes(self.m, &b.shape, b.dtype).is_none() {
            self.error(
                Rule::Buffers,
                format!(
                    "scoped buffer {} needs fixed extents (numbers or dims with a value)",
                    self.b(id)
                ),
            );
        }
    }

    /// The scoped buffers of the function fit [`MAX_SCOPED_BYTES`] together.
    fn scoped_size(&mut self) {
        let total = self
            .f
            .buffers
            .iter()
            .filter(|b| b.kind == BufferKind::Scoped)
            .filter_map(|b| scoped_bytes(self.m, &b.shape, b.dtype))
            .try_fold(0u64, |acc, n| acc.checked_add(n));
        if total.is_none_or(|t| t > MAX_SCOPED_BYTES) {
            self.error(
                Rule::Buffers,
                format!(
                    "the scoped buffers take more than {MAX_SCOPED_BYTES} bytes of stack \
                     together"
                ),
            );
        }
    }

    /// A variant names a general function and has its parameters, with stride facts at least as
    /// strong on every axis.
    fn variant(&mut self) {
        let Some(general) = &self.f.variant_of else {
            return;
        };
        let Some(g) = self.m.funcs.iter().find(|g| &g.name == general) else {
            self.error(
                Rule::Variants,
                format!("variant of @{}, which does not exist", name(general)),
            );
            return;
        };
        if g.variant_of.is_some() {
            self.error(
                Rule::Variants,
                format!("variant of @{}, which is itself a variant", name(general)),
            );
            return;
        }
        if g.params.len() != self.f.params.len() {
            self.error(
                Rule::Variants,
                format!(
                    "the variant has {} parameters but @{} has {}",
                    self.f.params.len(),
                    name(general),
                    g.params.len()
                ),
            );
            return;
        }
        for (&p, &q) in self.f.params.iter().zip(&g.params) {
            let (Some(b), Some(gb)) = (self.f.buffer(p), g.buffer(q)) else {
                continue;
            };
            if (&b.name, b.kind, b.dtype, &b.shape) != (&gb.name, gb.kind, gb.dtype, &gb.shape) {
                self.error(
                    Rule::Variants,
                    format!(
                        "parameter {} differs from @{}'s {} in name, kind, dtype or shape",
                        self.b(p),
                        name(general),
                        buffer_ref(g, q)
                    ),
                );
                continue;
            }
            let rank = b.shape.len();
            let weaker = (0..rank).any(|k| {
                !gb.layout
                    .fact(k, rank)
                    .implied_by(b.layout.fact(k, rank), k + 1 == rank)
            });
            if weaker {
                self.error(
                    Rule::Variants,
                    format!(
                        "parameter {} has layout {}, which does not imply @{}'s {}",
                        self.b(p),
                        print_layout(&b.layout),
                        name(general),
                        print_layout(&gb.layout)
                    ),
                );
            }
        }
    }

    /// Checks that a buffer named by an instruction is usable here.
    fn use_buffer(&mut self, id: BufferId) {
        if self.buffer_visible.get(id.0 as usize) == Some(&false) {
            self.error(
                Rule::Buffers,
                format!(
                    "scoped buffer {} is used outside the block that declares it, or before \
                     its declaration",
                    self.b(id)
                ),
            );
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
                BufferKind::Temp | BufferKind::Scoped => self.error(
                    Rule::Params,
                    format!("{} buffer {} is a parameter", kind_word(b.kind), self.b(p)),
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
            let local = matches!(b.kind, BufferKind::Temp | BufferKind::Scoped);
            if !local && !f.params.contains(&id) {
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
    /// scope ends (a loop body's after its yields are checked). Scoped buffers it declares go
    /// out of scope at its end.
    fn block(&mut self, b: &Block) -> Vec<ValueId> {
        let mut defined_here = Vec::new();
        let mut scoped_here = Vec::new();
        for inst in &b.insts {
            match inst {
                Inst::Assign { result, op } => {
                    let derived = self.op(op);
                    let recorded = self.define(*result);
                    defined_here.push(*result);
                    let target = match op {
                        Op::Addr { buffer, .. } => Some(*buffer),
                        Op::Advance { ptr, .. } => self.target(*ptr),
                        _ => None,
                    };
                    if let Some(slot) = self.points_into.get_mut(result.0 as usize) {
                        *slot = target;
                    }
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
                Inst::Scoped(id) => {
                    self.declare_scoped(*id);
                    scoped_here.push(*id);
                }
                Inst::Ukernel(u) => self.ukernel(u),
                Inst::StoreAt { ptr, value } => self.store_at(*ptr, *value),
            }
        }
        for id in scoped_here {
            if let Some(v) = self.buffer_visible.get_mut(id.0 as usize) {
                *v = false;
            }
        }
        defined_here
    }

    fn declare_scoped(&mut self, id: BufferId) {
        let n = id.0 as usize;
        match self.f.buffer(id).map(|b| b.kind) {
            None => {
                self.error(
                    Rule::Buffers,
                    format!("`scoped` declares buffer #{}, which does not exist", id.0),
                );
                return;
            }
            Some(BufferKind::Scoped) => {}
            Some(_) => {
                self.error(
                    Rule::Buffers,
                    format!(
                        "`scoped` declares {}, which is not a scoped buffer",
                        self.b(id)
                    ),
                );
                return;
            }
        }
        if self.declared.get(n) == Some(&true) {
            self.error(
                Rule::Buffers,
                format!("scoped buffer {} is declared more than once", self.b(id)),
            );
        }
        if let (Some(d), Some(v)) = (self.declared.get_mut(n), self.buffer_visible.get_mut(n)) {
            *d = true;
            *v = true;
        }
    }

    /// The rules of a micro-kernel call (`docs/ir.md`, `docs/ukernel.md`).
    fn ukernel(&mut self, u: &Ukernel) {
        let shape = u.shape;
        let name = format!("@{}", shape.name());
        let err = |v: &mut Self, m: String| v.error(Rule::Ukernel, format!("{name}: {m}"));
        if !shape.dtype.is_float() {
            err(self, format!("the dtype {} is not a float", shape.dtype));
        }
        let lanes = shape.lanes();
        if shape.mr == 0
            || shape.mr > 16
            || shape.nr == 0
            || !shape.nr.is_multiple_of(lanes)
            || !MicroKernel::ALL
                .iter()
                .any(|k| shape.fits(k.vector_bytes()))
        {
            let isas: Vec<String> = MicroKernel::ALL
                .iter()
                .map(|k| format!("{}-bit ({})", k.vector_bytes() * 8, k.name()))
                .collect();
            err(
                self,
                format!(
                    "the tile must have 1 to 16 rows and a multiple of {lanes} columns, and fit \
                     the registers of a micro-kernel: at most 8 vectors per row and 32 vector \
                     accumulators of {} vectors",
                    isas.join(", ")
                ),
            );
        }
        for (what, id) in [("kc", u.kc), ("mr", u.mr), ("nr", u.nr)] {
            if let Some(t) = self.use_value(id).filter(|&t| t != Type::Index) {
                err(
                    self,
                    format!(
                        "{what} {} has type {}, not index",
                        self.v(id),
                        print_type(t)
                    ),
                );
            }
        }
        if let Some(t) = self.use_value(u.init).filter(|&t| t != Type::Bool) {
            err(
                self,
                format!(
                    "init {} has type {}, not bool",
                    self.v(u.init),
                    print_type(t)
                ),
            );
        }
        if let Some(s) = u.scale {
            let want = Type::Scalar(shape.dtype);
            if let Some(t) = self.use_value(s).filter(|&t| t != want) {
                err(
                    self,
                    format!(
                        "scale {} has type {}, not {}",
                        self.v(s),
                        print_type(t),
                        print_type(want)
                    ),
                );
            }
        }
        // A packed A's panels are its m-tiles (`docs/ukernel.md`).
        let a_coords: &[Coord] = if u.a.axes.iter().any(|(c, _)| *c == Coord::MTile) {
            &[Coord::M, Coord::K, Coord::MTile]
        } else {
            &[Coord::M, Coord::K]
        };
        self.tile_operand(&name, "a", &u.a, a_coords, shape);
        self.tile_operand(&name, "b", &u.b, &[Coord::K, Coord::N], shape);
        self.tile_operand(&name, "c", &u.c, &[Coord::M, Coord::N], shape);
        if let Some(bias) = &u.bias {
            let coord = match bias.axes.first() {
                Some((Coord::M, _)) => Coord::M,
                _ => Coord::N,
            };
            self.tile_operand(&name, "bias", bias, &[coord], shape);
        }
        for (what, t) in [("b", &u.b), ("c", &u.c)] {
            let axes = t.axes_of(Coord::N);
            let unit = match (axes, self.f.buffer(t.buffer)) {
                ([axis], Some(b)) => {
                    let rank = b.shape.len();
                    (*axis as usize) < rank
                        && b.layout.fact(*axis as usize, rank) == StrideFact::Unit
                }
                _ => false,
            };
            if !unit {
                err(
                    self,
                    format!(
                        "{what}'s n coordinate must advance one axis with a unit stride \
                         (`1`, or the last axis of a contiguous buffer)"
                    ),
                );
            }
        }
        match self.f.buffer(u.c.buffer).map(|b| b.kind) {
            Some(BufferKind::Input) => {
                err(self, format!("c writes input {}", self.b(u.c.buffer)));
            }
            _ => {
                let mut reads = vec![u.a.buffer, u.b.buffer];
                reads.extend(u.bias.as_ref().map(|b| b.buffer));
                if reads.contains(&u.c.buffer) {
                    err(
                        self,
                        format!(
                            "c's buffer {} is also read as a, b or bias",
                            self.b(u.c.buffer)
                        ),
                    );
                }
            }
        }
    }

    /// One operand of a micro-kernel call: its buffer, start index, dtype and coordinates.
    fn tile_operand(
        &mut self,
        kernel: &str,
        what: &str,
        t: &TileOperand,
        coords: &[Coord],
        shape: super::UkernelShape,
    ) {
        let err = |v: &mut Self, m: String| v.error(Rule::Ukernel, format!("{kernel}: {m}"));
        self.use_buffer(t.buffer);
        for &i in &t.start {
            if let Some(ty) = self.use_value(i).filter(|&ty| ty != Type::Index) {
                err(
                    self,
                    format!(
                        "{what} is indexed by {} of type {}, not index",
                        self.v(i),
                        print_type(ty)
                    ),
                );
            }
        }
        let Some(b) = self.f.buffer(t.buffer) else {
            err(
                self,
                format!("{what} is buffer #{}, which does not exist", t.buffer.0),
            );
            return;
        };
        let rank = b.shape.len();
        if t.start.len() != rank {
            err(
                self,
                format!(
                    "{what} {} has {} index value(s) but the buffer has rank {rank}",
                    self.b(t.buffer),
                    t.start.len()
                ),
            );
        }
        if b.dtype != shape.dtype {
            err(
                self,
                format!(
                    "{what} {} has dtype {}, not the kernel's {}",
                    self.b(t.buffer),
                    b.dtype,
                    shape.dtype
                ),
            );
        }
        let written: Vec<Coord> = t.axes.iter().map(|(c, _)| *c).collect();
        if written != coords {
            let want: Vec<&str> = coords.iter().map(|c| c.name()).collect();
            err(
                self,
                format!("{what}'s coordinates must be ({})", want.join(", ")),
            );
        }
        let mut seen = vec![false; rank];
        for axis in t.axes.iter().flat_map(|(_, a)| a) {
            match seen.get_mut(*axis as usize) {
                Some(s) if !*s => *s = true,
                Some(_) => err(
                    self,
                    format!("{what} names axis {axis} for two coordinates or twice"),
                ),
                None => err(
                    self,
                    format!(
                        "{what} names axis {axis}, but {} has rank {rank}",
                        self.b(t.buffer)
                    ),
                ),
            }
        }
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
        if l.unroll == Some(0) {
            self.error(
                Rule::Loops,
                format!(
                    "the loop over {} asks to be unrolled 0 times",
                    self.v(l.var)
                ),
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
            let target = self.target(c.init);
            for id in [c.arg, c.result] {
                if let Some(slot) = self.points_into.get_mut(id.0 as usize) {
                    *slot = target;
                }
            }
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
        for (&y, c) in l.yields.iter().zip(&l.carried) {
            let (from, to) = (self.target(c.init), self.target(y));
            if from != to {
                let name = |v: &Self, b: Option<BufferId>| b.map_or("no buffer".into(), |b| v.b(b));
                let message = format!(
                    "the loop yields {} into {} for {}, which starts into {}",
                    self.v(y),
                    name(self, to),
                    self.v(c.arg),
                    name(self, from)
                );
                self.error(Rule::Pointers, message);
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
        self.use_buffer(buffer);
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
        if lanes > 1 && !b.shape.is_empty() && !b.layout.unit_last(b.shape.len()) {
            self.error(
                Rule::Memory,
                format!(
                    "vector {what} of {}, whose last axis has no unit stride",
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

    /// The buffer a `ptr` value points into, if it is known.
    fn target(&self, ptr: ValueId) -> Option<BufferId> {
        self.points_into.get(ptr.0 as usize).copied().flatten()
    }

    /// Checks that `ptr` is a visible `ptr` value; returns its buffer.
    fn pointer(&mut self, what: &str, ptr: ValueId) -> Option<BufferId> {
        let t = self.use_value(ptr)?;
        if t != Type::Ptr {
            self.bad_operand(what, ptr, t, "a ptr");
            return None;
        }
        let b = self.target(ptr);
        if b.is_none() {
            self.error(
                Rule::Pointers,
                format!("{what} of {}, whose buffer is not known", self.v(ptr)),
            );
        }
        b
    }

    /// The rules of vector accesses through a pointer (those of `access` with an index).
    fn vector_rules(&mut self, what: &str, buffer: BufferId, lanes: u32) {
        let Some(b) = self.f.buffer(buffer) else {
            return;
        };
        if lanes > 1 && (b.shape.is_empty() || !b.layout.unit_last(b.shape.len())) {
            self.error(
                Rule::Memory,
                format!(
                    "vector {what} of {}, whose last axis has no unit stride",
                    self.b(buffer)
                ),
            );
        }
    }

    fn store_at(&mut self, ptr: ValueId, value: ValueId) {
        let ty = self.use_value(value);
        let Some(buffer) = self.pointer("store at", ptr) else {
            return;
        };
        let lanes = match ty {
            Some(Type::Vector(_, n)) => n,
            _ => 1,
        };
        self.vector_rules("store at", buffer, lanes);
        let Some(b) = self.f.buffer(buffer) else {
            return;
        };
        self.use_buffer(buffer);
        if b.kind == BufferKind::Input {
            self.error(Rule::Memory, format!("store to input {}", self.b(buffer)));
        }
        if let Some(t) = ty.filter(|t| t.dtype() != Some(b.dtype)) {
            self.error(
                Rule::Memory,
                format!(
                    "store of {} of type {} to {} of dtype {}",
                    self.v(value),
                    print_type(t),
                    self.b(buffer),
                    b.dtype
                ),
            );
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
                let t = self.same("select", &[*x, *y])?;
                if t == Type::Ptr {
                    // A pointer's buffer must be known where it is defined.
                    self.bad_operand("select", *x, t, "values other than pointers");
                    return None;
                }
                Some(t)
            }
            Op::Cast(d, x) => match self.use_value(*x)? {
                Type::Scalar(_) | Type::Index => Some(Type::Scalar(*d)),
                Type::Vector(_, n) => Some(Type::Vector(*d, n)),
                t @ (Type::Bool | Type::Ptr) => {
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
            Op::Addr { buffer, index } => {
                self.access("addr", *buffer, index, 1)?;
                Some(Type::Ptr)
            }
            Op::Advance { ptr, by, axes } => {
                self.pointer("advance", *ptr);
                if let Some(t) = self.use_value(*by).filter(|&t| t != Type::Index) {
                    self.bad_operand("advance", *by, t, "an index step");
                }
                let rank = self
                    .target(*ptr)
                    .and_then(|b| self.f.buffer(b))
                    .map(|b| b.shape.len());
                let mut seen = HashSet::new();
                for &a in axes {
                    if !seen.insert(a) || rank.is_some_and(|r| a as usize >= r) {
                        self.error(
                            Rule::Pointers,
                            format!(
                                "`advance` of {} along axis {a}, which is repeated or beyond \
                                 its buffer's rank",
                                self.v(*ptr)
                            ),
                        );
                    }
                }
                Some(Type::Ptr)
            }
            Op::LoadAt { ptr, lanes } => {
                let buffer = self.pointer("load at", *ptr)?;
                self.use_buffer(buffer);
                let d = self.f.buffer(buffer)?.dtype;
                self.vector_rules("load at", buffer, *lanes);
                Some(if *lanes == 1 {
                    Type::Scalar(d)
                } else {
                    Type::Vector(d, *lanes)
                })
            }
        }
    }
}
