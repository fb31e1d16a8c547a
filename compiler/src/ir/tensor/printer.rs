//! Writes tensor IR as text (the format in `docs/ir.md`).
//!
//! The output is canonical: [`super::parser::parse_module`] reads it back to an equal module,
//! and printing that module again gives the same text. The printer never fails and never
//! panics, even on a module the verifier rejects, because that is exactly when a dump is read:
//! a dangling id prints as a quoted placeholder name that the parser reports as undefined.

use super::{
    AxisMap, Cond, Expr, Extent, Function, Generic, IndexId, Module, OpKind, TensorType, ValueId,
};
use einc_runtime::Scalar;
use std::borrow::Cow;
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
        out.push_str(&print_function(m, f));
    }
    out
}

/// Writes the `dims T, D = 16` line of a module (nothing when it has no dims); shared by both
/// IR levels.
pub(crate) fn write_dims(out: &mut String, dims: &[super::DimDef]) {
    if dims.is_empty() {
        return;
    }
    out.push_str("dims ");
    for (n, d) in dims.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&name(&d.name));
        if let Some(v) = d.value {
            let _ = write!(out, " = {v}");
        }
    }
    out.push('\n');
}

/// Prints one function of `_m` (the module's dims are not repeated; [`print_module`] prints
/// them once). The text ends with a newline.
pub fn print_function(_m: &Module, f: &Function) -> String {
    let mut out = String::new();
    let _ = write!(out, "func @{}(", name(&f.name));
    for (n, &p) in f.params.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {}", value_ref(f, p), value_type(f, p));
    }
    out.push_str(") -> (");
    for (n, r) in f.results.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {}", name(&r.name), value_type(f, r.value));
    }
    out.push_str(") {\n");
    for op in &f.ops {
        let OpKind::Generic(g) = &op.kind;
        let _ = write!(
            out,
            "  {} = {}",
            value_ref(f, op.result),
            print_generic(f, g)
        );
        // A value whose recorded type is not the op's type cannot be written in the text (the
        // parser derives it); say so in a comment so that a dump of broken IR shows the bug.
        let derived = g.result_type();
        if let (Some(v), Some(derived)) = (f.values.get(op.result.0 as usize), derived) {
            if v.ty != derived {
                let _ = write!(
                    out,
                    "  // recorded type {} differs from the op's type {}",
                    print_type(&v.ty),
                    print_type(&derived)
                );
            }
        }
        out.push('\n');
        // The schedule goes on its own line under the op, so that the algorithm reads alone.
        if let Some(s) = &g.schedule {
            out.push_str("    ");
            super::schedule::write(&mut out, g, s);
            out.push('\n');
        }
    }
    out.push_str("  return");
    for (n, r) in f.results.iter().enumerate() {
        out.push_str(if n > 0 { ", " } else { " " });
        let _ = write!(out, "{} = {}", name(&r.name), value_ref(f, r.value));
    }
    out.push_str("\n}\n");
    out
}

/// Prints the body of `g` (for messages), e.g. `exp(sub(%0, %1))`.
pub fn print_expr(g: &Generic, e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, g, e);
    out
}

/// Prints a type: `f32[T, 16]`, or `f32` for a scalar.
pub fn print_type(t: &TensorType) -> String {
    let mut out = t.dtype.name().to_string();
    if !t.shape.is_empty() {
        out.push('[');
        for (n, e) in t.shape.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(&print_extent(e));
        }
        out.push(']');
    }
    out
}

/// Prints an extent: a number or a dim name.
pub fn print_extent(e: &Extent) -> String {
    match e {
        Extent::Fixed(n) => n.to_string(),
        Extent::Dim(d) => name(d).into_owned(),
    }
}

/// A name as written in the text: bare when it matches `[A-Za-z_][A-Za-z0-9_.]*`, otherwise
/// quoted with `\"`, `\\` and `\u{..}` (for control characters) escaped.
pub fn name(s: &str) -> Cow<'_, str> {
    if is_bare_name(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// Whether `s` can be written without quotes.
pub(super) fn is_bare_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_name_char)
}

/// Characters allowed after the first in a bare name.
pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// `%name` of a value, or a quoted placeholder for an id with no definition.
pub(super) fn value_ref(f: &Function, id: ValueId) -> String {
    match f.values.get(id.0 as usize) {
        Some(v) => format!("%{}", name(&v.name)),
        None => format!("%\"<invalid value {}>\"", id.0),
    }
}

fn value_type(f: &Function, id: ValueId) -> String {
    match f.values.get(id.0 as usize) {
        Some(v) => print_type(&v.ty),
        None => format!("<invalid value {}>", id.0),
    }
}

/// The name of an index of `g`, or a quoted placeholder for an id out of range.
pub(super) fn index_name(g: &Generic, id: IndexId) -> String {
    match g.indices.get(id.0 as usize) {
        Some(d) => name(&d.name).into_owned(),
        None => format!("\"<invalid index {}>\"", id.0),
    }
}

fn index_list(g: &Generic, ids: &[IndexId]) -> String {
    ids.iter()
        .map(|&i| index_name(g, i))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_generic(f: &Function, g: &Generic) -> String {
    let mut out = String::from("generic (");
    for (n, i) in g.indices.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: {}", name(&i.name), print_extent(&i.extent));
    }
    out.push_str(") ins(");
    for (n, input) in g.inputs.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&value_ref(f, input.value));
        out.push('[');
        for (k, a) in input.map.iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match *a {
                AxisMap::Index(i) => out.push_str(&index_name(g, i)),
                AxisMap::Fixed(p) => {
                    let _ = write!(out, "{p}");
                }
            }
        }
        out.push(']');
    }
    let _ = write!(out, ") -> [{}]", index_list(g, &g.output));
    if let Some(r) = &g.reduce {
        let _ = write!(
            out,
            " reduce {} over ({})",
            (r.kind).name(),
            index_list(g, &r.over)
        );
    }
    out.push_str(" { ");
    write_expr(&mut out, g, &g.body);
    let _ = write!(out, " }} : {}", g.dtype.name());
    out
}

/// Prints a condition of a body of `g` (for messages), e.g. `le(j, i)`.
pub(super) fn print_cond(g: &Generic, c: &Cond) -> String {
    let mut out = String::new();
    write_cond(&mut out, g, c);
    out
}

fn write_expr(out: &mut String, g: &Generic, e: &Expr) {
    match e {
        Expr::Input(n) => {
            let _ = write!(out, "%{n}");
        }
        Expr::Index(i) => out.push_str(&index_name(g, *i)),
        Expr::Lit(s) => out.push_str(&print_scalar(*s)),
        Expr::DimValue(d, t) => {
            let _ = write!(out, "dim({}):{}", name(d), t.name());
        }
        Expr::Unary(u, a) => {
            let _ = write!(out, "{}(", u.name());
            write_expr(out, g, a);
            out.push(')');
        }
        Expr::Binary(b, x, y) => {
            let _ = write!(out, "{}(", b.name());
            write_expr(out, g, x);
            out.push_str(", ");
            write_expr(out, g, y);
            out.push(')');
        }
        Expr::Select(c, x, y) => {
            out.push_str("select(");
            write_cond(out, g, c);
            out.push_str(", ");
            write_expr(out, g, x);
            out.push_str(", ");
            write_expr(out, g, y);
            out.push(')');
        }
        Expr::Cast(t, a) => {
            let _ = write!(out, "cast<{}>(", t.name());
            write_expr(out, g, a);
            out.push(')');
        }
        Expr::Delta(ids, t) => {
            let _ = write!(out, "delta<{}>({})", t.name(), index_list(g, ids));
        }
        Expr::Eps(ids, t) => {
            let _ = write!(out, "eps<{}>({})", t.name(), index_list(g, ids));
        }
    }
}

fn write_cond(out: &mut String, g: &Generic, c: &Cond) {
    match c {
        Cond::Cmp(op, x, y) => {
            let _ = write!(out, "{}(", op.name());
            write_expr(out, g, x);
            out.push_str(", ");
            write_expr(out, g, y);
            out.push(')');
        }
        Cond::And(x, y) | Cond::Or(x, y) => {
            out.push_str(if matches!(c, Cond::And(..)) {
                "and("
            } else {
                "or("
            });
            write_cond(out, g, x);
            out.push_str(", ");
            write_cond(out, g, y);
            out.push(')');
        }
        Cond::Not(x) => {
            out.push_str("not(");
            write_cond(out, g, x);
            out.push(')');
        }
    }
}

/// A literal with its dtype, e.g. `2.5:f32`, `-inf:f64`, `3:i32`. Floats use Rust's shortest
/// round-tripping form; the canonical NaN is `nan` and any other NaN spells its bits,
/// `nan(0x7fc00001)`, so that every literal reads back bit-exactly.
pub fn print_scalar(s: Scalar) -> String {
    let num = match s {
        Scalar::F32(v) if v.is_nan() => {
            nan_text(u64::from(v.to_bits()), u64::from(f32::NAN.to_bits()), 8)
        }
        Scalar::F64(v) if v.is_nan() => nan_text(v.to_bits(), f64::NAN.to_bits(), 16),
        Scalar::F32(v) if v.is_infinite() => inf_text(v.is_sign_negative()),
        Scalar::F64(v) if v.is_infinite() => inf_text(v.is_sign_negative()),
        Scalar::F32(v) => format!("{v:?}"),
        Scalar::F64(v) => format!("{v:?}"),
        Scalar::I32(v) => v.to_string(),
        Scalar::I64(v) => v.to_string(),
    };
    format!("{num}:{}", s.dtype().name())
}

fn nan_text(bits: u64, canonical: u64, hex_digits: usize) -> String {
    if bits == canonical {
        "nan".to_string()
    } else {
        format!("nan(0x{bits:0hex_digits$x})")
    }
}

fn inf_text(negative: bool) -> String {
    if negative { "-inf" } else { "inf" }.to_string()
}
