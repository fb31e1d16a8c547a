//! Checking and lowering one kernel: its declarations, then its statements in order, then its
//! outputs. Each statement's errors are reported and the statement's target is poisoned, so
//! later statements are still checked without repeating the same complaint.

use super::einsum_stmt;
use super::expr::{self, Target};
use super::lower::Lowerer;
use super::schedule;
use super::scope::{Dims, Role, Scope, Sym};
use super::types::{Ext, Idx, TKind, Ty};
use crate::diag::{closest, Diagnostic, Span};
use crate::ir::tensor::{Function, ResultDef, MAX_TENSOR_BYTES};
use crate::syntax::ast::{self, ExprKind, IndexExpr, ShapeDim, TensorDecl};
use crate::syntax::RESERVED;
use std::collections::{HashMap, HashSet};

/// Checks a name being declared (a dim, tensor or kernel): reserved words are rejected.
pub(crate) fn check_reserved(id: &ast::Ident, what: &str, diags: &mut Vec<Diagnostic>) -> bool {
    if RESERVED.contains(&id.name.as_str()) {
        diags.push(
            Diagnostic::error(
                id.span,
                format!("`{}` is reserved and cannot name a {what}", id.name),
            )
            .with_label("a built-in name")
            .with_help("choose another name"),
        );
        return false;
    }
    true
}

/// "undeclared dim `Mm`", with the closest declared dim as a hint.
fn undeclared_dim(id: &ast::Ident, dims: &Dims) -> Diagnostic {
    let help = match closest(&id.name, dims.names()) {
        Some(d) => format!(
            "did you mean `{d}`? Otherwise declare it at the top of the file: `dims {}`",
            id.name
        ),
        None => format!("declare it at the top of the file: `dims {}`", id.name),
    };
    Diagnostic::error(id.span, format!("undeclared dim `{}`", id.name))
        .with_label("not declared")
        .with_help(help)
}

/// The type of a declaration, or `None` after reporting an undeclared dim.
fn declared_type(decl: &TensorDecl, dims: &Dims, diags: &mut Vec<Diagnostic>) -> Option<Ty> {
    let mut shape = Vec::new();
    let mut ok = true;
    for s in &decl.shape {
        match s {
            ShapeDim::Fixed(n, _) => shape.push(Ext::fixed(*n)),
            ShapeDim::Named(id) => match dims.ext(&id.name) {
                Some(e) => shape.push(e),
                None => {
                    diags.push(undeclared_dim(id, dims));
                    ok = false;
                }
            },
        }
    }
    ok.then_some(Ty {
        dtype: decl.dtype.0,
        shape,
    })
}

/// Checks a kernel and lowers it; `None` when it has errors (all reported in `diags`).
pub(crate) fn check_kernel(
    k: &ast::Kernel,
    dims: &Dims,
    diags: &mut Vec<Diagnostic>,
) -> Option<Function> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let mut defs = HashMap::new();
    for (n, s) in k.body.iter().enumerate() {
        defs.entry(s.target.name.clone())
            .or_insert((n, s.target.span));
    }
    let mut kc = KernelCx {
        scope: Scope::new(dims, defs),
        dims,
        func: Function {
            name: k.name.name.clone(),
            values: Vec::new(),
            params: Vec::new(),
            ops: Vec::new(),
            results: Vec::new(),
        },
        names: HashSet::new(),
        defined_at: HashMap::new(),
        softmaxes: Vec::new(),
        diags,
    };
    let decls = k.params.iter().map(|d| (d, Role::Param));
    for (decl, role) in decls.chain(k.outputs.iter().map(|d| (d, Role::Output))) {
        kc.declare(decl, role);
    }
    for (n, stmt) in k.body.iter().enumerate() {
        kc.scope.current = n;
        kc.statement(stmt);
    }
    kc.scope.current = k.body.len();
    for out in &k.outputs {
        let Some(sym) = kc.scope.tensors.get(&out.name.name) else {
            continue;
        };
        if sym.role != Role::Output || sym.poisoned {
            continue;
        }
        match sym.value {
            Some(value) => kc.func.results.push(ResultDef {
                name: out.name.name.clone(),
                value,
            }),
            None => kc.diags.push(
                Diagnostic::error(
                    out.name.span,
                    format!("output `{}` is never assigned", out.name.name),
                )
                .with_label("declared here")
                .with_help(format!(
                    "add a statement `{}{} = ...` to the kernel",
                    out.name.name,
                    expr::example_access(out.shape.len())
                )),
            ),
        }
    }
    let errors_after = kc.diags.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(kc.func)
}

/// State of the check of one kernel.
struct KernelCx<'a> {
    scope: Scope<'a>,
    dims: &'a Dims,
    func: Function,
    names: HashSet<String>,
    /// Where each output or local was first assigned (even when that statement failed).
    defined_at: HashMap<String, Span>,
    /// The tensors defined by a softmax statement (`P[i, j] = softmax[j](...)`).
    softmaxes: Vec<(crate::ir::tensor::ValueId, String)>,
    diags: &'a mut Vec<Diagnostic>,
}

impl KernelCx<'_> {
    /// Rejects a tensor name that is reserved or names a dim.
    fn check_tensor_name(&mut self, id: &ast::Ident) -> bool {
        if !check_reserved(id, "tensor", self.diags) {
            return false;
        }
        if let Some(dim) = self.dims.get(&id.name) {
            self.diags.push(
                Diagnostic::error(
                    id.span,
                    format!("`{}` is a dim, so it cannot also name a tensor", id.name),
                )
                .with_label("tensor named here")
                .with_secondary(dim.span, "dim declared here")
                .with_help("dims and tensors share one namespace: rename one of them"),
            );
            return false;
        }
        true
    }

    fn declare(&mut self, decl: &TensorDecl, role: Role) {
        let name = &decl.name;
        if let Some(prev) = self.scope.tensors.get(&name.name) {
            let d = Diagnostic::error(name.span, format!("`{}` is declared twice", name.name))
                .with_label("declared again here")
                .with_secondary(prev.decl, "first declared here");
            self.diags.push(d);
            return;
        }
        let good_name = self.check_tensor_name(name);
        let ty = declared_type(decl, self.dims, self.diags)
            .filter(|ty| self.check_size(&name.name, ty, decl.span));
        let poisoned = !good_name || ty.is_none();
        let value = match (&ty, role) {
            (Some(ty), Role::Param) => {
                let v = self.func.add_value(name.name.clone(), ty.ir());
                self.func.params.push(v);
                self.names.insert(name.name.clone());
                Some(v)
            }
            _ => None,
        };
        self.scope.tensors.insert(
            name.name.clone(),
            Sym {
                role,
                decl: name.span,
                ty,
                value,
                poisoned,
            },
        );
    }

    /// Rejects a tensor whose fixed extents need more bytes than a kernel can address
    /// ([`MAX_TENSOR_BYTES`]); reports it at `span`.
    fn check_size(&mut self, name: &str, ty: &Ty, span: Span) -> bool {
        if ty.ir().fixed_bytes(&[]).is_some() {
            return true;
        }
        let shape: Vec<&str> = ty.shape.iter().map(|e| e.shown.as_str()).collect();
        self.diags.push(
            Diagnostic::error(span, format!("`{name}` is too large to address"))
                .with_label(format!(
                    "{}[{}] needs more than 2^63 - 1 bytes",
                    ty.dtype.name(),
                    shape.join(", ")
                ))
                .with_note(format!(
                    "a tensor may hold at most {MAX_TENSOR_BYTES} bytes, counting each symbolic \
                     dim as 1 (docs/limits.md)"
                ))
                .with_help("use smaller extents"),
        );
        false
    }

    /// Marks the statement's target as failed so that its uses are not reported again.
    fn poison(&mut self, target: &ast::Ident) {
        match self.scope.tensors.get_mut(&target.name) {
            Some(sym) if sym.role != Role::Param => sym.poisoned = true,
            Some(_) => {}
            None => {
                self.scope.tensors.insert(
                    target.name.clone(),
                    Sym {
                        role: Role::Local,
                        decl: target.span,
                        ty: None,
                        value: None,
                        poisoned: true,
                    },
                );
            }
        }
    }

    /// Checks that `target` may be defined here; reports and returns false otherwise.
    fn check_target(&mut self, target: &ast::Ident) -> bool {
        if let Some(first) = self.defined_at.get(&target.name) {
            self.diags.push(
                Diagnostic::error(target.span, format!("`{}` is defined twice", target.name))
                    .with_label("defined again here")
                    .with_secondary(*first, "first defined here")
                    .with_help("tensors are single assignment: give the new value another name"),
            );
            return false;
        }
        if let Some(sym) = self.scope.tensors.get(&target.name) {
            if sym.role == Role::Param {
                self.diags.push(
                    Diagnostic::error(
                        target.span,
                        format!("cannot assign to parameter `{}`", target.name),
                    )
                    .with_label("assigned here")
                    .with_secondary(sym.decl, "declared as a parameter here")
                    .with_help("parameters are inputs: define a new tensor instead"),
                );
                return false;
            }
            if sym.role == Role::Output {
                return true;
            }
        }
        self.check_tensor_name(target)
    }

    /// The `i: N` extents written in the statement, or `None` after reporting an undeclared
    /// dim.
    fn annotated_extents(&mut self, stmt: &ast::Stmt) -> Option<Vec<(Idx, Ext)>> {
        let mut out = Vec::with_capacity(stmt.extents.len());
        let mut ok = true;
        for e in &stmt.extents {
            let idx = Idx {
                name: e.index.name.clone(),
                span: e.index.span,
            };
            match &e.extent {
                ShapeDim::Fixed(n, _) => out.push((idx, Ext::fixed(*n))),
                ShapeDim::Named(id) => match self.dims.ext(&id.name) {
                    Some(ext) => out.push((idx, ext)),
                    None => {
                        self.diags.push(undeclared_dim(id, self.dims));
                        ok = false;
                    }
                },
            }
        }
        ok.then_some(out)
    }

    /// The extent of every axis of the kernel's parameters and outputs, when there is exactly
    /// one.
    fn only_extent(&self) -> Option<Ext> {
        let extents: Vec<&Ext> = self
            .scope
            .tensors
            .values()
            .filter(|sym| matches!(sym.role, Role::Param | Role::Output))
            .flat_map(|sym| sym.ty.iter().flat_map(|t| &t.shape))
            .collect();
        let first = extents.first()?;
        if extents.iter().any(|e| e.norm != first.norm) {
            return None;
        }
        // The same extent may be written `N` or `3` (with `dims N = 3`): name it one way.
        extents
            .into_iter()
            .min_by(|a, b| a.shown.cmp(&b.shown))
            .cloned()
    }

    /// The LHS indices, or `None` after reporting positions or repeats.
    fn lhs_indices(&mut self, stmt: &ast::Stmt) -> Option<Vec<Idx>> {
        let mut out: Vec<Idx> = Vec::new();
        let mut ok = true;
        for ix in &stmt.indices {
            match ix {
                IndexExpr::Fixed(_, span) => {
                    self.diags.push(
                        Diagnostic::error(
                            *span,
                            "the left-hand side takes index variables, not positions",
                        )
                        .with_label("a fixed position")
                        .with_help("name an index here, e.g. `i`"),
                    );
                    ok = false;
                }
                IndexExpr::Var(id) => {
                    if let Some(prev) = out.iter().find(|o| o.name == id.name) {
                        self.diags.push(
                            Diagnostic::error(
                                id.span,
                                format!("an output index cannot repeat: `{}` appears twice on the left", id.name),
                            )
                            .with_label("repeated here")
                            .with_secondary(prev.span, "first here")
                            .with_help(format!(
                                "to write a diagonal, read it on the right instead: `d[{0}] = A[{0}, {0}]`",
                                id.name
                            )),
                        );
                        ok = false;
                    } else {
                        out.push(Idx {
                            name: id.name.clone(),
                            span: id.span,
                        });
                    }
                }
            }
        }
        ok.then_some(out)
    }

    fn statement(&mut self, stmt: &ast::Stmt) {
        let target = &stmt.target;
        if stmt.value.kind == ExprKind::Error {
            // It did not parse (reported): only make sure its uses are not reported again.
            if !self.defined_at.contains_key(&target.name) {
                self.poison(target);
                self.defined_at.insert(target.name.clone(), target.span);
            }
            return;
        }
        if !self.check_target(target) {
            if !self.defined_at.contains_key(&target.name) {
                self.poison(target);
            }
            return;
        }
        self.defined_at.insert(target.name.clone(), target.span);
        let declared = self
            .scope
            .tensors
            .get(&target.name)
            .filter(|s| s.role == Role::Output)
            .and_then(|s| s.ty.clone());
        let defined = if let ExprKind::Einsum { subscripts, args } = &stmt.value.kind {
            einsum_stmt::check(
                &self.scope,
                stmt,
                subscripts,
                args,
                declared.as_ref(),
                &mut self.func,
                self.diags,
            )
        } else {
            self.index_statement(stmt, declared.as_ref())
        };
        let defined = defined.filter(|(_, ty)| self.check_size(&target.name, ty, stmt.span));
        match defined {
            Some((value, ty)) => {
                if let Some(a) = &stmt.schedule {
                    schedule::attach(&mut self.func, value, a, self.diags);
                }
                self.names.insert(target.name.clone());
                let sym = self
                    .scope
                    .tensors
                    .entry(target.name.clone())
                    .or_insert(Sym {
                        role: Role::Local,
                        decl: target.span,
                        ty: None,
                        value: None,
                        poisoned: false,
                    });
                sym.value = Some(value);
                sym.ty = Some(ty);
            }
            None => self.poison(target),
        }
    }

    /// An index statement `S[i, j] = expr`: analysis, then lowering.
    fn index_statement(
        &mut self,
        stmt: &ast::Stmt,
        declared: Option<&Ty>,
    ) -> Option<(crate::ir::tensor::ValueId, Ty)> {
        let lhs = self.lhs_indices(stmt)?;
        if let Some(ty) = declared {
            // `y = A @ x` has no indices on the left because it is not index notation at all:
            // the analysis says so, with the indexed form.
            if ty.shape.len() != lhs.len() && !expr::uses_matmul(&stmt.value) {
                let rank = ty.shape.len();
                let decl = self
                    .scope
                    .tensors
                    .get(&stmt.target.name)
                    .map_or(stmt.target.span, |s| s.decl);
                self.diags.push(
                    Diagnostic::error(
                        stmt.target.span,
                        format!(
                            "`{}` has rank {rank} but the left-hand side has {}",
                            stmt.target.name,
                            expr::count_indices(lhs.len())
                        ),
                    )
                    .with_label(format!("expected {}", expr::count_indices(rank)))
                    .with_secondary(decl, format!("declared with rank {rank} here")),
                );
                return None;
            }
        }
        let extents = self.annotated_extents(stmt)?;
        let only_extent = self.only_extent();
        let target = Target {
            name: &stmt.target.name,
            lhs: &lhs,
            declared,
            extents: &extents,
            only_extent: only_extent.as_ref(),
            softmaxes: &self.softmaxes,
        };
        let analysis = expr::analyze(&self.scope, &target, &stmt.value, self.diags)?;
        let lhs_names: Vec<String> = lhs.iter().map(|i| i.name.clone()).collect();
        let ty = match declared {
            Some(ty) => ty.clone(),
            None => Ty {
                dtype: analysis.dtype,
                shape: lhs_names
                    .iter()
                    .filter_map(|n| analysis.extents.get(n).cloned())
                    .collect(),
            },
        };
        let mut lowerer = Lowerer {
            func: &mut self.func,
            names: &mut self.names,
            extents: &analysis.extents,
            target: &stmt.target.name,
            counter: 0,
        };
        let value = lowerer.statement(&analysis.root, &lhs_names);
        if matches!(analysis.root.kind, TKind::Softmax { .. }) {
            self.softmaxes.push((value, stmt.target.name.clone()));
        }
        Some((value, ty))
    }
}
