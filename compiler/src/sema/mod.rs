//! Semantic analysis: names, dims, free and dummy indices, shapes and dtypes; lowers a checked
//! program (or a numpy subscripts string) to tensor IR.
//!
//! [`check_program`] checks every item of a parsed file and lowers each kernel to one
//! [`Function`](crate::ir::tensor::Function); all errors of a file are reported (a statement
//! that fails poisons its target, so later uses are not reported again).
//!
//! # Rules
//!
//! **Dims.** `dims` declarations are file-level. A dim declared twice is an error showing both
//! places. A shape entry naming an undeclared dim is an error with a hint to declare it. A fixed
//! dim (`dims N = 3`) equals the literal extent 3.
//!
//! **Tensors.** Parameters and outputs are declared; a local gets its type from its defining
//! statement (dtype from the right side, shape from the extents of its left indices). Each
//! name is defined once (a redefinition shows both places); parameters cannot be assigned; a
//! tensor used before (or in) its definition is an error; every output must be assigned (error
//! at its declaration). Dims and tensors share one namespace. `delta`, `eps`, `inf`, `grad`,
//! `einsum` and the function and reduction names are reserved.
//!
//! **Left-hand side.** `S[i, j] = ...` defines the free indices L. Indices on the left are
//! distinct identifiers ("an output index cannot repeat"; no fixed positions); an output's left
//! side has its declared rank.
//!
//! **Einstein's rule, per product term.** A term is a maximal chain of factors joined by `*` and
//! `/` (negations included). Each index occurrence is counted: `A[i, i]` counts `i` twice; a
//! nested factor (function call, reduction, parenthesised sum) counts each index escaping it
//! once. An index that is *protected* — in L, or reduced by an enclosing explicit reduction —
//! is never summed implicitly. Any other index occurring twice or more is a dummy: the term is
//! summed over it (three or more occurrences add a note that Einstein's convention expects
//! pairs). Other indices escape the term. A sum or difference of terms escapes the union of its
//! terms' indices, so a left index missing from a term broadcasts over it
//! (`C[i,j] = A[i,j] + b[j]`). Function arguments are analysed the same way, so
//! `y[i] = relu(W[i,j] * x[j] + b[i])` sums `j` inside `relu`. At the top of the statement, an
//! escaping index not in L is an error ("is free on the right but not on the left", with a
//! hint to write `sum[k](...)`), and an index of L occurring nowhere on the right is an error.
//!
//! **Explicit reductions.** `sum`, `max`, `min`, `prod` over `[j, ...]` remove the listed indices,
//! which must occur in the operand and must not be in L; `softmax[j](e)` keeps its indices and
//! normalises along j; `logsumexp[j](e)` removes j. Inside the operand the listed indices are
//! protected, so `sum[j](A[i,j] * x[j])` and `max[j](A[i,j] * x[j])` work along j.
//!
//! **Accesses.** The number of indices equals the tensor's rank; a fixed position must be below
//! a known extent. `delta[i, j, ...]` (rank ≥ 2, equal extents) and `eps[i, j, k, ...]` (rank n:
//! every index has extent n) are built in; both take index variables only.
//!
//! **Extents.** An index's extent comes from the axes it addresses; all must agree within the
//! statement (a mismatch shows both places: "`j` is 4 in `A` but 5 in `B`", or "`j` has extent D
//! in `A` but K in `B`"), including the declared shape of an output on the left. An index
//! used only by `delta` takes the extent of its partners; one whose extent cannot be inferred at
//! all is an error.
//!
//! **Functions.** Unary `exp log sqrt rsqrt tanh sigmoid relu abs neg`, binary `max min pow`,
//! `where(cond, a, b)` and the casts `f32 f64 i32 i64`; wrong arity is an error. A condition
//! compares index variables (as `i64`), numbers, dims or values, combined with `&&`, `||`, `!`;
//! bare names in a condition that are not tensors or dims are index variables. The
//! transcendental functions (and `pow`, `softmax`, `logsumexp`) need floats.
//!
//! **Dtypes.** Binary operations need equal dtypes (the error names both). Literals, `inf`,
//! dims used as values and `delta`/`eps` adopt the dtype of their context; at the top that is
//! the statement's dtype: the declared dtype of an output, else the operands' dtype, else
//! `f32`. Integer literals fit anywhere their value fits; a fractional literal or `inf` in an
//! integer context is an error. A bare name is a rank-0 tensor or a dim (its extent); a bare
//! name of a tensor of rank > 0 is an error with a hint to index it.
//!
//! **einsum.** `C = einsum("...", A, B)` must be the whole right side, with an unbracketed
//! left side; numpy's semantics (and dtype promotion) apply; the plan's notes become notes.
//!
//! **grad.** `kernel g = grad(f, wrt: [...])` defines kernel `g` as the vector-Jacobian product
//! of `f` ([`autodiff::grad_function`]): its inputs are `f`'s followed by one seed `d<out>` per
//! output, its outputs one gradient `d<x>` per `wrt` name. `f` must be a kernel of the file (or
//! an earlier `grad` item); each `wrt` name must be one of its parameters, listed once, with a
//! float dtype (an integer input is an error naming it). A `grad` of a kernel with errors is
//! not derived (the kernel's errors are reported).
//!
//! # Lowering
//!
//! One function per kernel: parameters first (named as declared), results named after the
//! outputs. See [`lower`] for how statements become generics.

pub mod einsum;
mod einsum_stmt;
mod expr;
mod kernel;
mod lower;
mod schedule;
mod scope;
mod types;

use crate::autodiff::{self, GradError};
use crate::diag::{closest, Diagnostic};
use crate::ir::tensor::{Function, Module, MAX_EXTENT};
use crate::syntax::ast::{self, Item};
use scope::{DimEntry, Dims};

/// Checks a parsed program and lowers every kernel to tensor IR. Diagnostics include warnings
/// and notes; the module is returned only when there are no errors.
pub fn check_program(program: &ast::Program) -> (Option<Module>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let dims = collect_dims(program, &mut diags);
    let mut funcs = Vec::new();
    let mut kernels: Vec<(&ast::Ident, Entry<'_>)> = Vec::new();
    for item in &program.items {
        let (name, kernel) = match item {
            Item::Dims(_) => continue,
            Item::Kernel(k) => (&k.name, Entry::Kernel(k)),
            Item::Grad(g) => (&g.name, Entry::Grad),
            Item::Broken(name) => (name, Entry::Broken),
        };
        if let Some((prev, _)) = kernels.iter().find(|(n, _)| n.name == name.name) {
            diags.push(
                Diagnostic::error(
                    name.span,
                    format!("kernel `{}` is defined twice", name.name),
                )
                .with_label("defined again here")
                .with_secondary(prev.span, "first defined here"),
            );
            continue;
        }
        kernel::check_reserved(name, "kernel", &mut diags);
        kernels.push((name, kernel));
        if let Entry::Kernel(k) = kernel {
            if let Some(f) = kernel::check_kernel(k, &dims, &mut diags) {
                funcs.push(f);
            }
        }
    }
    let mut module = Module {
        dims: dims.defs(),
        funcs,
    };
    // In source order, so that a `grad` item can differentiate an earlier one.
    for item in &program.items {
        if let Item::Grad(g) = item {
            if let Some(f) = check_grad(g, &kernels, &module, &mut diags) {
                module.funcs.push(f);
            }
        }
    }
    if diags.iter().any(Diagnostic::is_error) {
        return (None, diags);
    }
    (Some(module), diags)
}

/// What a kernel name of the file stands for.
#[derive(Clone, Copy)]
enum Entry<'a> {
    /// A kernel written out.
    Kernel(&'a ast::Kernel),
    /// A `grad` item.
    Grad,
    /// A kernel item that did not parse (its errors are reported).
    Broken,
}

/// Parse + check: the parse errors, then the semantic errors of everything that parsed (the
/// parser recovers at the next statement or item, and what it could not parse is not reported
/// again), so one run reports every independent mistake.
pub fn compile_source(text: &str) -> (Option<Module>, Vec<Diagnostic>) {
    let (program, parse_diags) = crate::syntax::parse(text);
    let (module, mut diags) = check_program(&program);
    let parse_failed = parse_diags.iter().any(Diagnostic::is_error);
    let mut all = parse_diags;
    all.append(&mut diags);
    (module.filter(|_| !parse_failed), all)
}

fn collect_dims(program: &ast::Program, diags: &mut Vec<Diagnostic>) -> Dims {
    let mut dims = Dims::default();
    for item in &program.items {
        let Item::Dims(decl) = item else { continue };
        for d in &decl.dims {
            if let Some(prev) = dims.get(&d.name.name) {
                diags.push(
                    Diagnostic::error(
                        d.name.span,
                        format!("dim `{}` is declared twice", d.name.name),
                    )
                    .with_label("declared again here")
                    .with_secondary(prev.span, "first declared here"),
                );
                continue;
            }
            if !kernel::check_reserved(&d.name, "dim", diags) {
                continue;
            }
            let mut value = d.value.map(|(v, _)| v);
            if let Some((v, span)) = d.value.filter(|(v, _)| *v > MAX_EXTENT) {
                diags.push(
                    Diagnostic::error(span, format!("`{v}` is too large for a dim's extent"))
                        .with_label("larger than 2^63 - 1")
                        .with_note(format!(
                            "kernels take extents as signed 64-bit integers: the largest is \
                             {MAX_EXTENT} (docs/limits.md)"
                        )),
                );
                // Kept, as symbolic, so that its uses are not reported as undeclared.
                value = None;
            }
            dims.add(DimEntry {
                name: d.name.name.clone(),
                span: d.name.span,
                value,
            });
        }
    }
    dims
}

/// Checks a `grad` item and derives its kernel: `of` must be a kernel of the file (or an
/// earlier `grad` item) that checked without errors, and each `wrt` name one of its float
/// parameters. Returns the derived function, or `None` after reporting why not.
fn check_grad(
    g: &ast::GradKernel,
    kernels: &[(&ast::Ident, Entry<'_>)],
    module: &Module,
    diags: &mut Vec<Diagnostic>,
) -> Option<Function> {
    let Some((of_name, entry)) = kernels.iter().find(|(n, _)| n.name == g.of.name) else {
        let help = match closest(&g.of.name, kernels.iter().map(|(n, _)| n.name.as_str())) {
            Some(k) => format!("did you mean `{k}`?"),
            None => "name a kernel defined in this file".to_string(),
        };
        diags.push(
            Diagnostic::error(g.of.span, format!("no kernel named `{}`", g.of.name))
                .with_label("grad of what?")
                .with_help(help),
        );
        return None;
    };
    let Some(of) = module.func(&g.of.name) else {
        if matches!(entry, Entry::Grad) && of_name.span.start > g.span.start {
            diags.push(
                Diagnostic::error(
                    g.of.span,
                    format!("`{}` is a `grad` item defined later in the file", g.of.name),
                )
                .with_label("not derived yet")
                .with_secondary(of_name.span, "defined here")
                .with_help("move this item after the one it differentiates"),
            );
        }
        // Otherwise `of` had errors, which have been reported.
        return None;
    };
    let params: Vec<&str> = of
        .params
        .iter()
        .map(|&p| of.value(p).name.as_str())
        .collect();
    let mut ok = true;
    for w in &g.wrt {
        if !params.contains(&w.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    w.span,
                    format!("`{}` is not a parameter of `{}`", w.name, g.of.name),
                )
                .with_label("not a parameter")
                .with_secondary(of_name.span, "kernel defined here")
                .with_help(match closest(&w.name, params.iter().copied()) {
                    Some(p) => format!(
                        "did you mean `{p}`? its parameters are {}",
                        params.join(", ")
                    ),
                    None => format!("its parameters are {}", params.join(", ")),
                }),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    let wrt: Vec<&str> = g.wrt.iter().map(|w| w.name.as_str()).collect();
    // Derived kernels are compiled in the closed form `einc grad` prints (deltas eliminated,
    // like terms collected, constants folded).
    let derived = match g.kind {
        ast::Derivative::Grad => autodiff::grad_function(module, of, &wrt, &g.name.name),
        ast::Derivative::Jacobian => autodiff::jacobian_function(module, of, &wrt, &g.name.name),
        ast::Derivative::Hessian => autodiff::hessian_function(module, of, &wrt, &g.name.name),
    };
    match derived {
        Ok(f) => Some(autodiff::tidy(&f)),
        Err(e) => {
            let span = match &e {
                GradError::NotFloat { name, .. } | GradError::DuplicateWrt { name } => g
                    .wrt
                    .iter()
                    .rev()
                    .find(|w| &w.name == name)
                    .map_or(g.span, |w| w.span),
                _ => g.span,
            };
            let label = match &e {
                GradError::NotFloat { .. } => "not differentiable",
                GradError::DuplicateWrt { .. } => "listed again here",
                _ => "cannot differentiate",
            };
            diags.push(
                Diagnostic::error(span, format!("cannot differentiate `{}`: {e}", g.of.name))
                    .with_label(label)
                    .with_secondary(of_name.span, "kernel defined here"),
            );
            None
        }
    }
}
