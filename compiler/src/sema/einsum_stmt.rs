//! `C = einsum("ij,jk->ik", A, B)` statements: the operands are resolved here, the subscripts
//! are analysed by [`super::einsum`] with numpy's semantics (including dtype promotion), and the
//! plan becomes one generic named after the target.

use super::einsum;
use super::expr::name_error;
use super::scope::{Lookup, Scope};
use super::types::{Ext, Ty};
use crate::diag::{Diagnostic, Span};
use crate::ir::tensor::printer::print_type;
use crate::ir::tensor::{Extent, Function, Op, OpKind, TensorType, ValueId};
use crate::syntax::ast;

/// The file span of a byte range of the subscripts (whose contents start after the opening
/// quote of the literal at `lit`); the whole literal when there is no range.
fn in_literal(lit: Span, range: Option<std::ops::Range<usize>>) -> Span {
    match range {
        Some(r) => Span::new(
            lit.start as usize + 1 + r.start,
            lit.start as usize + 1 + r.end,
        ),
        None => lit,
    }
}

/// Checks and lowers an einsum statement; `None` after reporting errors.
pub(crate) fn check(
    scope: &Scope<'_>,
    stmt: &ast::Stmt,
    subscripts: &(String, Span),
    args: &[ast::Ident],
    declared: Option<&Ty>,
    func: &mut Function,
    diags: &mut Vec<Diagnostic>,
) -> Option<(ValueId, Ty)> {
    let (text, lit) = subscripts;
    if stmt.bracketed || !stmt.indices.is_empty() {
        diags.push(
            Diagnostic::error(stmt.target.span, "an einsum result is assigned whole")
                .with_label("indices on the left")
                .with_help(format!(
                    "the subscripts say which axes the result has: write `{} = einsum(...)`",
                    stmt.target.name
                )),
        );
        return None;
    }
    let mut values = Vec::new();
    let mut types = Vec::new();
    let mut ok = true;
    for a in args {
        match scope.lookup(&a.name) {
            Lookup::Tensor { value, ty, .. } => {
                values.push(value);
                types.push(ty.ir());
            }
            other => {
                if let Some(d) = name_error(scope, a, other, true) {
                    diags.push(d);
                }
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let plan = match einsum::analyze(text, &types) {
        Ok(plan) => plan,
        Err(e) => {
            // Offsets are into the string's contents, which start after the opening quote.
            diags.push(
                Diagnostic::error(in_literal(*lit, e.span), e.message)
                    .with_label("in these subscripts"),
            );
            return None;
        }
    };
    for note in &plan.notes {
        diags.push(Diagnostic::note(
            in_literal(*lit, note.span.clone()),
            note.message.clone(),
        ));
    }
    let g = einsum::to_generic(&plan, &values);
    let ty = TensorType {
        dtype: g.dtype,
        shape: g.result_shape(),
    };
    if let Some(decl) = declared {
        if decl.ir() != ty {
            diags.push(
                Diagnostic::error(
                    stmt.value.span,
                    format!(
                        "`{}` is declared {} but the einsum gives {}",
                        stmt.target.name,
                        print_type(&decl.ir()),
                        print_type(&ty)
                    ),
                )
                .with_label(format!("this is {}", print_type(&ty))),
            );
            return None;
        }
    }
    let sema_ty = Ty {
        dtype: ty.dtype,
        shape: ty
            .shape
            .iter()
            .map(|e| match e {
                Extent::Fixed(n) => Ext::fixed(*n),
                Extent::Dim(d) => Ext {
                    norm: e.clone(),
                    shown: d.clone(),
                },
            })
            .collect(),
    };
    let value = func.add_value(stmt.target.name.clone(), ty);
    func.ops.push(Op {
        result: value,
        kind: OpKind::Generic(g),
    });
    Some((value, sema_ty))
}
