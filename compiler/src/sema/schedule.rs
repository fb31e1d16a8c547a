//! Schedule annotations: `C[i, k] = A[i, j] * B[j, k] schedule gemm(kc = 128)` attaches a
//! (possibly partial) schedule to the op that defines the statement's tensor. The `schedule`
//! pass completes it; lowering obeys it (`docs/schedules.md`).
//!
//! Index names are the statement's own (sema keeps them in the op). Each problem is reported
//! where it is: an unknown key or index at that item, a schedule that does not fit the op (a
//! `gemm` schedule on a map, an index in the wrong group) at the annotation.

use crate::diag::Diagnostic;
use crate::ir::tensor::schedule::{self, KINDS};
use crate::ir::tensor::{Function, OpKind, ValueId};
use crate::syntax::ast::ScheduleAnnotation;

/// Attaches annotation `a` to the op defining `value` in `func`; reports what is wrong with it
/// instead (the op is then left unscheduled).
pub(super) fn attach(
    func: &mut Function,
    value: ValueId,
    a: &ScheduleAnnotation,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(op) = func.ops.iter_mut().find(|op| op.result == value) else {
        diags.push(
            Diagnostic::error(a.span, "this statement computes nothing to schedule")
                .with_label("no op defines the tensor")
                .with_note("the statement copies a tensor that already exists"),
        );
        return;
    };
    let OpKind::Generic(g) = &mut op.kind;
    let indices: Vec<&str> = g.indices.iter().map(|d| d.name.as_str()).collect();
    let built = schedule::build(&a.kind.name, a.kind.span, &a.items, |name| {
        g.indices
            .iter()
            .position(|d| d.name == name)
            .and_then(|n| u32::try_from(n).ok())
            .map(crate::ir::tensor::IndexId)
    });
    let s = match built {
        Ok(s) => s,
        Err(errors) => {
            for (at, message) in errors {
                let mut d = Diagnostic::error(at, format!("bad schedule: {message}"));
                if message.starts_with("the op has no index") {
                    d = d.with_note(format!(
                        "the statement's indices are {}",
                        indices.join(", ")
                    ));
                } else if message.starts_with("unknown schedule") {
                    d = d.with_help(format!("write one of {}", KINDS.join(", ")));
                }
                diags.push(d.with_label("here"));
            }
            return;
        }
    };
    let problems = schedule::check(g, &s);
    if problems.is_empty() {
        g.schedule = Some(s);
        return;
    }
    for message in problems {
        diags.push(
            Diagnostic::error(
                a.span,
                format!("the schedule does not fit the statement: {message}"),
            )
            .with_label(format!("a `{}` schedule", a.kind.name))
            .with_note("docs/schedules.md lists what each schedule needs"),
        );
    }
}
