//! The AST printer: canonical `.ein` source that reads as if written by hand (4-space
//! indentation, one blank line between items, parentheses only where precedence or
//! associativity needs them). Parsing the output gives back the same AST, spans aside; derived
//! gradient kernels are shown to users through this printer.

use super::ast::{
    DimsDecl, Expr, ExprKind, GradKernel, IndexExpr, Item, Kernel, Program, RawValue,
    ScheduleAnnotation, ShapeDim, Stmt, TensorDecl, UnOp,
};
use super::parser::{is_comparison, precedence, PREFIX_PRECEDENCE};
use std::fmt::Write;

/// Signatures longer than this are printed one declaration per line.
const MAX_SIGNATURE_WIDTH: usize = 100;

/// Prints a whole program as `.ein` source: items separated by blank lines, each ending with
/// a newline.
pub fn print_program(p: &Program) -> String {
    let items: Vec<String> = p.items.iter().map(print_item).collect();
    items.join("\n")
}

fn print_item(item: &Item) -> String {
    match item {
        Item::Dims(d) => print_dims(d),
        Item::Kernel(k) => print_kernel(k),
        Item::Grad(g) => print_grad(g),
        // A program with parse errors does not print back to source.
        Item::Broken(name) => format!("# kernel {} did not parse\n", name.name),
    }
}

fn print_dims(d: &DimsDecl) -> String {
    let dims: Vec<String> = d
        .dims
        .iter()
        .map(|dim| match dim.value {
            Some((n, _)) => format!("{} = {n}", dim.name.name),
            None => dim.name.name.clone(),
        })
        .collect();
    format!("dims {}\n", dims.join(", "))
}

fn print_grad(g: &GradKernel) -> String {
    let wrt: Vec<&str> = g.wrt.iter().map(|w| w.name.as_str()).collect();
    format!(
        "kernel {} = {}({}, wrt: [{}])\n",
        g.name.name,
        g.kind.keyword(),
        g.of.name,
        wrt.join(", ")
    )
}

fn print_kernel(k: &Kernel) -> String {
    let params: Vec<String> = k.params.iter().map(print_decl).collect();
    let outputs: Vec<String> = k.outputs.iter().map(print_decl).collect();
    let one_line = format!(
        "kernel {}({}) -> ({}) {{",
        k.name.name,
        params.join(", "),
        outputs.join(", ")
    );
    let mut out = if one_line.len() <= MAX_SIGNATURE_WIDTH {
        one_line
    } else {
        format!(
            "kernel {}({}) -> ({}) {{",
            k.name.name,
            one_per_line(&params),
            one_per_line(&outputs)
        )
    };
    out.push('\n');
    for stmt in &k.body {
        let _ = writeln!(out, "    {}", print_stmt(stmt));
    }
    out.push_str("}\n");
    out
}

/// `\n    a,\n    b,\n`: a list broken over lines, with a trailing comma.
fn one_per_line(entries: &[String]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n");
    for entry in entries {
        let _ = writeln!(out, "    {entry},");
    }
    out
}

fn print_decl(d: &TensorDecl) -> String {
    let mut out = format!("{}: {}", d.name.name, d.dtype.0.name());
    if !d.shape.is_empty() {
        let shape: Vec<String> = d
            .shape
            .iter()
            .map(|s| match s {
                ShapeDim::Named(id) => id.name.clone(),
                ShapeDim::Fixed(n, _) => n.to_string(),
            })
            .collect();
        let _ = write!(out, "[{}]", shape.join(", "));
    }
    out
}

fn print_stmt(s: &Stmt) -> String {
    let lhs = if s.bracketed || !s.indices.is_empty() {
        format!("{}[{}]", s.target.name, print_indices(&s.indices))
    } else {
        s.target.name.clone()
    };
    let mut out = annotate_extents(&format!("{lhs} = {}", print_expr(&s.value)), s);
    if let Some(a) = &s.schedule {
        out.push(' ');
        out.push_str(&print_schedule(a));
    }
    out
}

/// `text` (a statement without its schedule) with each `i: N` extent of `s` written at the
/// first occurrence of its index inside brackets, where the parser reads it back.
fn annotate_extents(text: &str, s: &Stmt) -> String {
    let mut pending: Vec<(&str, String)> = s
        .extents
        .iter()
        .map(|e| {
            let extent = match &e.extent {
                ShapeDim::Named(id) => id.name.clone(),
                ShapeDim::Fixed(n, _) => n.to_string(),
            };
            (e.index.name.as_str(), extent)
        })
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..len];
            out.push_str(word);
            if depth > 0 {
                if let Some(at) = pending.iter().position(|(n, _)| *n == word) {
                    let (_, extent) = pending.remove(at);
                    let _ = write!(out, ": {extent}");
                }
            }
            rest = &rest[len..];
            continue;
        }
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `schedule gemm(mr = 4, m = [i], unroll = [j: 4])`.
fn print_schedule(a: &ScheduleAnnotation) -> String {
    let items: Vec<String> = a
        .items
        .iter()
        .map(|item| {
            let value = match &item.value {
                RawValue::Int(n) => n.to_string(),
                RawValue::Name(n) => n.clone(),
                RawValue::List(entries) => {
                    let entries: Vec<String> = entries
                        .iter()
                        .map(|(n, factor, _)| match factor {
                            Some(f) => format!("{n}: {f}"),
                            None => n.clone(),
                        })
                        .collect();
                    format!("[{}]", entries.join(", "))
                }
            };
            format!("{} = {value}", item.key)
        })
        .collect();
    format!("schedule {}({})", a.kind.name, items.join(", "))
}

fn print_indices(indices: &[IndexExpr]) -> String {
    let parts: Vec<String> = indices
        .iter()
        .map(|i| match i {
            IndexExpr::Var(id) => id.name.clone(),
            IndexExpr::Fixed(n, _) => n.to_string(),
        })
        .collect();
    parts.join(", ")
}

/// Prints an expression as `.ein` source with the fewest parentheses that parse back to the
/// same tree.
pub fn print_expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e);
    out
}

/// How tightly an expression binds; operands binding more loosely than their context need
/// parentheses.
fn expr_precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, _, _) => precedence(*op),
        ExprKind::Unary(_, _) => PREFIX_PRECEDENCE,
        _ => PREFIX_PRECEDENCE + 1,
    }
}

fn write_operand(out: &mut String, e: &Expr, parenthesise: bool) {
    if parenthesise {
        out.push('(');
        write_expr(out, e);
        out.push(')');
    } else {
        write_expr(out, e);
    }
}

fn write_expr(out: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Number(text) => out.push_str(text),
        ExprKind::Inf => out.push_str("inf"),
        ExprKind::Name(id) => out.push_str(&id.name),
        ExprKind::Access { tensor, indices } => {
            let _ = write!(out, "{}[{}]", tensor.name, print_indices(indices));
        }
        ExprKind::Unary(op, operand) => {
            out.push(match op {
                UnOp::Neg => '-',
                UnOp::Not => '!',
            });
            // `-(-x)` rather than `--x`, which reads like a decrement.
            let nested_prefix = matches!(operand.kind, ExprKind::Unary(..));
            write_operand(
                out,
                operand,
                nested_prefix || expr_precedence(operand) < PREFIX_PRECEDENCE,
            );
        }
        ExprKind::Binary(op, lhs, rhs) => {
            let prec = precedence(*op);
            // Left-associative operators accept an equal-precedence left operand; comparisons
            // do not chain, so they need parentheses on both sides.
            let lhs_parens = if is_comparison(*op) {
                expr_precedence(lhs) <= prec
            } else {
                expr_precedence(lhs) < prec
            };
            write_operand(out, lhs, lhs_parens);
            let _ = write!(out, " {} ", op.symbol());
            write_operand(out, rhs, expr_precedence(rhs) <= prec);
        }
        ExprKind::Call { func, args } => {
            out.push_str(&func.name);
            out.push('(');
            for (n, arg) in args.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                write_expr(out, arg);
            }
            out.push(')');
        }
        ExprKind::Reduce { op, indices, body } => {
            let names: Vec<&str> = indices.iter().map(|i| i.name.as_str()).collect();
            let _ = write!(out, "{}[{}](", op.name, names.join(", "));
            write_expr(out, body);
            out.push(')');
        }
        ExprKind::Einsum { subscripts, args } => {
            let _ = write!(out, "einsum(\"{}\"", subscripts.0);
            for arg in args {
                let _ = write!(out, ", {}", arg.name);
            }
            out.push(')');
        }
        ExprKind::Error => out.push_str("<error>"),
    }
}
