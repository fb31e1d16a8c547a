//! Writes loop IR as text (the format in `docs/ir.md`, section "Loop IR").
//!
//! The output is canonical: [`super::parser::parse_module`] reads it back, and printing the
//! result gives the same text. The printer never fails and never panics, even on a function
//! the verifier rejects, because that is exactly when a dump is read: a dangling id prints as
//! a quoted placeholder name, and a recorded type that the text cannot express (the type of a
//! value whose type the text implies) is shown in a trailing comment.

use super::{
    Block, BufferDef, BufferId, BufferKind, Carried, For, Function, IndexOp, Inst, Layout, Module,
    Op, StrideFact, TileOperand, Type, Ukernel, ValueId,
};
use crate::ir::tensor::printer::{name, print_extent, print_scalar, write_dims};
use std::fmt::Write;

/// Prints a whole module: the `dims` line (when there are dims), then each function, separated
/// by blank lines.
pub fn print_module(m: &Module) -> String {
    let mut out = String::new();
    write_dims(&mut out, &m.dims);
    for f in &m.funcs {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&print_function(f));
    }
    out
}

/// Prints one function: the signature (the parameters, inputs then outputs), the temporary
/// buffers, then the body. The text ends with a newline.
pub fn print_function(f: &Function) -> String {
    let mut p = Printer {
        f,
        out: String::new(),
    };
    let _ = write!(p.out, "func @{}(", name(&f.name));
    for (n, &b) in f.params.iter().enumerate() {
        if n > 0 {
            p.out.push_str(", ");
        }
        p.buffer_decl(b, true);
    }
    p.out.push(')');
    if let Some(general) = &f.variant_of {
        let _ = write!(p.out, " variant of @{}", name(general));
    }
    p.out.push_str(" {\n");
    for (n, b) in f.buffers.iter().enumerate() {
        let id = BufferId(u32::try_from(n).unwrap_or(u32::MAX));
        if !f.params.contains(&id) && b.kind != BufferKind::Scoped {
            p.out.push_str("  buffer ");
            p.buffer_decl(id, false);
            p.out.push('\n');
        }
    }
    p.block(&f.body, 1);
    p.out.push_str("}\n");
    p.out
}

/// Prints a type: `index`, `bool`, `f32`, `vector<4xf32>`.
pub fn print_type(t: Type) -> String {
    match t {
        Type::Index => "index".to_string(),
        Type::Bool => "bool".to_string(),
        Type::Ptr => "ptr".to_string(),
        Type::Scalar(d) => d.name().to_string(),
        Type::Vector(d, n) => format!("vector<{n}x{}>", d.name()),
    }
}

/// The keyword of a buffer kind in a declaration.
pub(super) fn kind_name(k: BufferKind) -> &'static str {
    match k {
        BufferKind::Input => "in",
        BufferKind::Output => "out",
        BufferKind::Temp => "temp",
        BufferKind::Scoped => "scoped",
    }
}

/// The text of a layout: `contiguous`, `strided` or `strides[_, c, 1]`.
pub fn print_layout(l: &Layout) -> String {
    match l {
        Layout::Contiguous => "contiguous".into(),
        Layout::Strided => "strided".into(),
        Layout::Axes(facts) => {
            let facts: Vec<&str> = facts.iter().map(|&f| fact_name(f)).collect();
            format!("strides[{}]", facts.join(", "))
        }
    }
}

/// The text of a stride fact: `_`, `1` or `c`.
pub(super) fn fact_name(f: StrideFact) -> &'static str {
    match f {
        StrideFact::Runtime => "_",
        StrideFact::Unit => "1",
        StrideFact::COrder => "c",
    }
}

/// The mnemonic of an index operation.
pub(super) fn index_op_name(op: IndexOp) -> &'static str {
    match op {
        IndexOp::Add => "iadd",
        IndexOp::Sub => "isub",
        IndexOp::Mul => "imul",
        IndexOp::Min => "imin",
        IndexOp::Max => "imax",
        IndexOp::Div => "idiv",
        IndexOp::Rem => "irem",
    }
}

/// `%name` of a value, or a quoted placeholder for an id with no definition.
pub(super) fn value_ref(f: &Function, id: ValueId) -> String {
    match f.value(id) {
        Some(v) => format!("%{}", name(&v.name)),
        None => format!("%\"<invalid value {}>\"", id.0),
    }
}

/// `%name` of a buffer, or a quoted placeholder for an id with no definition.
pub(super) fn buffer_ref(f: &Function, id: BufferId) -> String {
    match f.buffer(id) {
        Some(b) => format!("%{}", name(&b.name)),
        None => format!("%\"<invalid buffer {}>\"", id.0),
    }
}

/// The type the text gives a value defined by `op` whose recorded type is `recorded`: the
/// fixed type of an op whose mnemonic implies it, else what the printed annotation says.
/// `None` when the annotation cannot say it (e.g. a splat recorded as a scalar).
pub(super) fn text_type(op: &Op, recorded: Type) -> Option<Type> {
    match op {
        Op::IndexConst(_) | Op::Dim(_) | Op::IndexArith(..) => Some(Type::Index),
        Op::Addr { .. } | Op::Advance { .. } => Some(Type::Ptr),
        Op::Const(s) => Some(Type::Scalar(s.dtype())),
        Op::Cmp(..) | Op::And(..) | Op::Or(..) | Op::Not(_) => Some(Type::Bool),
        Op::Splat(_, lanes) => match recorded {
            Type::Vector(_, n) if n == *lanes => Some(recorded),
            _ => None,
        },
        Op::Load { lanes, .. } | Op::LoadAt { lanes, .. } => match recorded {
            Type::Vector(_, n) if n == *lanes => Some(recorded),
            Type::Vector(..) => None,
            _ if *lanes == 1 => Some(recorded),
            _ => None,
        },
        Op::Cast(d, _) => (recorded.dtype() == Some(*d)).then_some(recorded),
        Op::Unary(..) | Op::Binary(..) | Op::Fma(..) | Op::Select(..) | Op::ReduceLanes(..) => {
            Some(recorded)
        }
    }
}

/// Whether the op's text ends with `: type` (the result's type).
fn annotated(op: &Op) -> bool {
    !matches!(
        op,
        Op::IndexConst(_)
            | Op::Dim(_)
            | Op::IndexArith(..)
            | Op::Const(_)
            | Op::Cmp(..)
            | Op::And(..)
            | Op::Or(..)
            | Op::Not(_)
            | Op::Addr { .. }
            | Op::Advance { .. }
    )
}

struct Printer<'a> {
    f: &'a Function,
    out: String,
}

impl Printer<'_> {
    fn v(&self, id: ValueId) -> String {
        value_ref(self.f, id)
    }

    fn values(&self, ids: &[ValueId]) -> String {
        ids.iter()
            .map(|&v| self.v(v))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `%X: in f32[T, D] strided` (a parameter) or `%t: f32[T] contiguous align 64` (a
    /// temporary or scoped buffer; its kind is written only when it is an input or output).
    fn buffer_decl(&mut self, id: BufferId, param: bool) {
        let Some(b) = self.f.buffer(id) else {
            let _ = write!(self.out, "{}: <invalid buffer>", buffer_ref(self.f, id));
            return;
        };
        let BufferDef {
            name: n,
            dtype,
            shape,
            layout,
            kind,
            align,
        } = b;
        let _ = write!(self.out, "%{}: ", name(n));
        if param || matches!(kind, BufferKind::Input | BufferKind::Output) {
            let _ = write!(self.out, "{} ", kind_name(*kind));
        }
        self.out.push_str(dtype.name());
        let extents: Vec<String> = shape.iter().map(print_extent).collect();
        let _ = write!(
            self.out,
            "[{}] {}",
            extents.join(", "),
            print_layout(layout)
        );
        if let Some(a) = align {
            let _ = write!(self.out, " align {a}");
        }
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    fn block(&mut self, b: &Block, depth: usize) {
        for inst in &b.insts {
            self.indent(depth);
            match inst {
                Inst::Assign { result, op } => self.assign(*result, op),
                Inst::Store {
                    buffer,
                    index,
                    value,
                } => {
                    let _ = write!(
                        self.out,
                        "store {}, {}[{}]",
                        self.v(*value),
                        buffer_ref(self.f, *buffer),
                        self.values(index)
                    );
                }
                Inst::For(l) => self.for_loop(l, depth),
                Inst::Scoped(b) => {
                    self.out.push_str("scoped ");
                    self.buffer_decl(*b, false);
                }
                Inst::Ukernel(u) => self.ukernel(u),
                Inst::StoreAt { ptr, value } => {
                    let _ = write!(self.out, "store {} at {}", self.v(*value), self.v(*ptr));
                }
            }
            self.out.push('\n');
        }
    }

    fn assign(&mut self, result: ValueId, op: &Op) {
        let text = self.op(op);
        let _ = write!(self.out, "{} = {text}", self.v(result));
        let Some(recorded) = self.f.value(result).map(|v| v.ty) else {
            return;
        };
        if annotated(op) {
            let _ = write!(self.out, " : {}", print_type(recorded));
        }
        if text_type(op, recorded) != Some(recorded) {
            // The text cannot carry this type, so a dump of broken IR says what was recorded.
            let _ = write!(
                self.out,
                "  // recorded type {} does not fit the op",
                print_type(recorded)
            );
        }
    }

    fn op(&self, op: &Op) -> String {
        match op {
            Op::IndexConst(n) => format!("index {n}"),
            Op::Dim(d) => format!("dim {}", name(d)),
            Op::IndexArith(o, a, b) => {
                format!("{} {}, {}", index_op_name(*o), self.v(*a), self.v(*b))
            }
            Op::Const(s) => format!("const {}", print_scalar(*s)),
            Op::Splat(x, _) => format!("splat {}", self.v(*x)),
            Op::Unary(u, x) => format!("{} {}", u.name(), self.v(*x)),
            Op::Binary(b, x, y) => format!("{} {}, {}", b.name(), self.v(*x), self.v(*y)),
            Op::Fma(a, b, c) => format!("fma {}", self.values(&[*a, *b, *c])),
            Op::Cmp(c, x, y) => format!("cmp {} {}, {}", c.name(), self.v(*x), self.v(*y)),
            Op::And(x, y) => format!("and {}, {}", self.v(*x), self.v(*y)),
            Op::Or(x, y) => format!("or {}, {}", self.v(*x), self.v(*y)),
            Op::Not(x) => format!("not {}", self.v(*x)),
            Op::Select(c, x, y) => format!("select {}", self.values(&[*c, *x, *y])),
            Op::Cast(_, x) => format!("cast {}", self.v(*x)),
            Op::Load { buffer, index, .. } => format!(
                "load {}[{}]",
                buffer_ref(self.f, *buffer),
                self.values(index)
            ),
            Op::ReduceLanes(k, x) => {
                format!("reduce_lanes {} {}", k.name(), self.v(*x))
            }
            Op::Addr { buffer, index } => format!(
                "addr {}[{}]",
                buffer_ref(self.f, *buffer),
                self.values(index)
            ),
            Op::Advance { ptr, by, axes } => format!(
                "advance {} by {} along {}",
                self.v(*ptr),
                self.v(*by),
                axis_list(axes)
            ),
            Op::LoadAt { ptr, .. } => format!("load at {}", self.v(*ptr)),
        }
    }

    /// `%r = for %i = %lo to %hi step 1 [parallel] [iter(%a = %init, ...)] { ... yield ... }`.
    fn for_loop(&mut self, l: &For, depth: usize) {
        let results: Vec<ValueId> = l.carried.iter().map(|c| c.result).collect();
        if !results.is_empty() {
            let _ = write!(self.out, "{} = ", self.values(&results));
        }
        let _ = write!(
            self.out,
            "for {} = {} to {} step {}",
            self.v(l.var),
            self.v(l.lower),
            self.v(l.upper),
            l.step
        );
        if l.parallel {
            self.out.push_str(" parallel");
        }
        if let Some(n) = l.unroll {
            let _ = write!(self.out, " unroll {n}");
        }
        if !l.carried.is_empty() {
            let carried: Vec<String> = l
                .carried
                .iter()
                .map(|c| format!("{} = {}", self.v(c.arg), self.v(c.init)))
                .collect();
            let _ = write!(self.out, " iter({})", carried.join(", "));
        }
        self.out.push_str(" {");
        if let Some(note) = self.loop_type_note(l) {
            let _ = write!(self.out, "  // {note}");
        }
        self.out.push('\n');
        self.block(&l.body, depth + 1);
        if !l.yields.is_empty() {
            self.indent(depth + 1);
            let _ = writeln!(self.out, "yield {}", self.values(&l.yields));
        }
        self.indent(depth);
        self.out.push('}');
    }

    /// `ukernel @gemm.f32.4x8 kc %kc, tile %mr x %nr, a ..., b ..., c ..., init %f, ...`.
    fn ukernel(&mut self, u: &Ukernel) {
        let _ = write!(
            self.out,
            "ukernel @{} kc {}, tile {} x {}, a {}, b {}, c {}, init {}",
            name(&u.shape.name()),
            self.v(u.kc),
            self.v(u.mr),
            self.v(u.nr),
            self.tile_operand(&u.a),
            self.tile_operand(&u.b),
            self.tile_operand(&u.c),
            self.v(u.init)
        );
        if let Some(s) = u.scale {
            let key = if u.divide { "divide" } else { "scale" };
            let _ = write!(self.out, ", {key} {}", self.v(s));
        }
        if let Some(b) = &u.bias {
            let _ = write!(self.out, ", bias {}", self.tile_operand(b));
        }
        if u.relu {
            self.out.push_str(", relu");
        }
    }

    /// `%A[%i, %c0] (m: 0, k: 1)`; a coordinate with several axes is `m: [0, 1]`.
    fn tile_operand(&self, t: &TileOperand) -> String {
        let coords: Vec<String> = t
            .axes
            .iter()
            .map(|(c, axes)| format!("{}: {}", c.name(), axis_list(axes)))
            .collect();
        format!(
            "{}[{}] ({})",
            buffer_ref(self.f, t.buffer),
            self.values(&t.start),
            coords.join(", ")
        )
    }

    /// The text gives the induction variable type `index` and each carried value the type of
    /// its initial value; a note says where the recorded types differ.
    fn loop_type_note(&self, l: &For) -> Option<String> {
        let ty = |id: ValueId| self.f.value(id).map(|v| v.ty);
        let mut notes = Vec::new();
        if let Some(t) = ty(l.var).filter(|&t| t != Type::Index) {
            notes.push(format!("{} recorded as {}", self.v(l.var), print_type(t)));
        }
        for &Carried { arg, init, result } in &l.carried {
            let want = ty(init);
            for id in [arg, result] {
                if let Some(t) = ty(id).filter(|&t| want.is_some_and(|w| w != t)) {
                    notes.push(format!("{} recorded as {}", self.v(id), print_type(t)));
                }
            }
        }
        (!notes.is_empty()).then(|| format!("types differ from the text: {}", notes.join(", ")))
    }
}

/// A list of axes: `1`, or `[0, 1]` (any other length, the empty list included).
fn axis_list(axes: &[u32]) -> String {
    match axes {
        [a] => a.to_string(),
        _ => {
            let list: Vec<String> = axes.iter().map(u32::to_string).collect();
            format!("[{}]", list.join(", "))
        }
    }
}

/// Every index operation (for parsing mnemonics).
pub(super) const INDEX_OPS: [IndexOp; 7] = [
    IndexOp::Add,
    IndexOp::Sub,
    IndexOp::Mul,
    IndexOp::Min,
    IndexOp::Max,
    IndexOp::Div,
    IndexOp::Rem,
];
