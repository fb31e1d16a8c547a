//! Raising a tensor IR function back to `.ein` source: one statement per op, so that a derived
//! gradient can be read (and compiled again) in the notation it was derived in.
//!
//! Each op `%v = generic ... -> [o] reduce add over (r) { body }` becomes `v[o] = body`: the
//! Einstein convention sums `r` when the body is a product in which every summed index occurs
//! exactly twice (a matmul's adjoint prints as `dA[i, k] = dC[i, j] * B[k, j]`); any other
//! reduction is written out (`sum[j](...)`, `max[j](...)`). Value names that are not `.ein`
//! identifiers are mapped to ones that are (`P.max` → `P_max`); results take their output
//! names. Run [`tidy`](super::tidy) first: it removes the deltas and broadcasts that `.ein`
//! cannot write as statements of their own.
//!
//! What `.ein` cannot express is an error rather than wrong source: an index that addresses no
//! tensor axis in a local's statement (its extent could not be inferred), an index value used
//! as a number, a NaN literal.

use super::tidy::anchored;
use crate::diag::Span;
use crate::ir::tensor::{
    AxisMap, BinaryFn, CmpOp, Cond, Expr, Extent, Function, Generic, IndexId, Module, OpKind,
    ReduceKind, UnaryFn, ValueId,
};
use crate::syntax::ast::{
    self, BinOp, DimDecl, DimsDecl, ExprKind, Ident, IndexExpr, Item, ShapeDim, Stmt, TensorDecl,
    UnOp,
};
use einc_runtime::Scalar;
use std::collections::HashSet;
use std::fmt;

/// Why a function cannot be written as `.ein` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToEinError {
    /// What cannot be written, naming the value and index concerned.
    pub message: String,
}

impl fmt::Display for ToEinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToEinError {}

fn err<T>(message: String) -> Result<T, ToEinError> {
    Err(ToEinError { message })
}

/// `f` as `.ein` source, tidied first (see [`tidy`](super::tidy)): the program of
/// [`function_to_program`], printed.
pub fn to_ein_source(module: &Module, f: &Function) -> Result<String, ToEinError> {
    let program = function_to_program(module, &super::tidy(f))?;
    Ok(crate::syntax::print_program(&program))
}

/// `f` as a `.ein` program: a `dims` declaration with `module`'s dims, then one kernel with
/// `f`'s signature and one statement per op (plus a copy for each result that returns a
/// parameter or a value returned under another name already).
pub fn function_to_program(module: &Module, f: &Function) -> Result<ast::Program, ToEinError> {
    let names = Names::new(module, f)?;
    let mut body = Vec::new();
    for op in &f.ops {
        let OpKind::Generic(g) = &op.kind;
        let output = names.is_output(op.result);
        body.push(Statement::new(&names, g, names.value(op.result), output).stmt()?);
    }
    for (r, claimed) in f.results.iter().zip(&names.claimed) {
        if !claimed {
            body.push(copy(&names, f, &r.name, r.value));
        }
    }
    let decl = |name: &str, v: ValueId| {
        let ty = &f.value(v).ty;
        TensorDecl {
            name: ident(name),
            dtype: (ty.dtype, SPAN),
            shape: ty
                .shape
                .iter()
                .map(|e| match e {
                    Extent::Fixed(n) => ShapeDim::Fixed(*n, SPAN),
                    Extent::Dim(d) => ShapeDim::Named(ident(d)),
                })
                .collect(),
            span: SPAN,
        }
    };
    let kernel = ast::Kernel {
        name: ident(&f.name),
        params: f.params.iter().map(|&p| decl(names.value(p), p)).collect(),
        outputs: f.results.iter().map(|r| decl(&r.name, r.value)).collect(),
        body,
        span: SPAN,
    };
    let mut items = Vec::new();
    if !module.dims.is_empty() {
        items.push(Item::Dims(DimsDecl {
            dims: module
                .dims
                .iter()
                .map(|d| DimDecl {
                    name: ident(&d.name),
                    value: d.value.map(|v| (v, SPAN)),
                })
                .collect(),
            span: SPAN,
        }));
    }
    items.push(Item::Kernel(kernel));
    Ok(ast::Program { items })
}

/// Spans of generated source point nowhere.
const SPAN: Span = Span { start: 0, end: 0 };

fn ident(name: &str) -> Ident {
    Ident {
        name: name.to_string(),
        span: SPAN,
    }
}

fn node(kind: ExprKind) -> ast::Expr {
    ast::Expr { kind, span: SPAN }
}

/// `name` with every character that cannot appear in an identifier replaced by `_`.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `base`, or `base_2`, `base_3`, ...: the first not in `taken`, which it is added to.
fn unique(base: String, taken: &mut HashSet<String>) -> String {
    let name = std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}_{n}")))
        .find(|c| !taken.contains(c))
        .unwrap_or(base);
    taken.insert(name.clone());
    name
}

/// The source names of a function's values.
struct Names {
    /// Per value, its name in the source.
    values: Vec<String>,
    /// Every name the kernel uses for a dim, tensor or built-in (indices must avoid them).
    taken: HashSet<String>,
    /// The values returned under their own statement's name.
    outputs: HashSet<ValueId>,
    /// Per result, whether its value's statement defines it (else it is copied at the end).
    claimed: Vec<bool>,
}

impl Names {
    fn new(module: &Module, f: &Function) -> Result<Names, ToEinError> {
        let mut taken: HashSet<String> = crate::syntax::RESERVED
            .iter()
            .chain(&["kernel", "dims", "wrt"])
            .map(|s| s.to_string())
            .collect();
        taken.extend(module.dims.iter().map(|d| d.name.clone()));
        let mut values = vec![String::new(); f.values.len()];
        for &p in &f.params {
            let name = unique(sanitize(&f.value(p).name), &mut taken);
            values[p.0 as usize] = name;
        }
        let mut outputs = HashSet::new();
        let mut claimed = Vec::new();
        for r in &f.results {
            if taken.contains(&r.name) || sanitize(&r.name) != r.name {
                return err(format!(
                    "output `{}` cannot be named in .ein: the name is not an identifier or is \
                     already used",
                    r.name
                ));
            }
            taken.insert(r.name.clone());
            let is_op = f.ops.iter().any(|op| op.result == r.value);
            let claim = is_op && outputs.insert(r.value);
            if claim {
                values[r.value.0 as usize] = r.name.clone();
            }
            claimed.push(claim);
        }
        for op in &f.ops {
            if !outputs.contains(&op.result) {
                let name = unique(sanitize(&f.value(op.result).name), &mut taken);
                values[op.result.0 as usize] = name;
            }
        }
        Ok(Names {
            values,
            taken,
            outputs,
            claimed,
        })
    }

    fn value(&self, v: ValueId) -> &str {
        self.values.get(v.0 as usize).map_or("", String::as_str)
    }

    fn is_output(&self, v: ValueId) -> bool {
        self.outputs.contains(&v)
    }
}

/// `name[i0, ...] = value[i0, ...]`: a result that returns a parameter or a value returned
/// under another name already.
fn copy(names: &Names, f: &Function, name: &str, value: ValueId) -> Stmt {
    let mut taken = names.taken.clone();
    let indices: Vec<IndexExpr> = (0..f.value(value).ty.shape.len())
        .map(|n| IndexExpr::Var(ident(&unique(format!("i{n}"), &mut taken))))
        .collect();
    let source = if indices.is_empty() {
        ExprKind::Name(ident(names.value(value)))
    } else {
        ExprKind::Access {
            tensor: ident(names.value(value)),
            indices: indices.clone(),
        }
    };
    Stmt {
        target: ident(name),
        bracketed: !indices.is_empty(),
        indices,
        value: node(source),
        schedule: None,
        extents: Vec::new(),
        span: SPAN,
    }
}

/// One op being written as a statement.
struct Statement<'a> {
    names: &'a Names,
    g: &'a Generic,
    target: &'a str,
    /// The source name of each index of the op.
    indices: Vec<String>,
    /// Whether the target is a declared output (whose shape gives its indices' extents).
    output: bool,
}

impl<'a> Statement<'a> {
    fn new(names: &'a Names, g: &'a Generic, target: &'a str, output: bool) -> Statement<'a> {
        let mut taken = names.taken.clone();
        taken.extend(names.values.iter().cloned());
        let indices = g
            .indices
            .iter()
            .map(|d| unique(sanitize(&d.name), &mut taken))
            .collect();
        Statement {
            names,
            g,
            target,
            indices,
            output,
        }
    }

    fn index(&self, i: IndexId) -> &str {
        self.indices.get(i.0 as usize).map_or("", String::as_str)
    }

    fn var(&self, i: IndexId) -> IndexExpr {
        IndexExpr::Var(ident(self.index(i)))
    }

    fn stmt(&self) -> Result<Stmt, ToEinError> {
        let g = self.g;
        let over: Vec<IndexId> = g
            .reduce
            .as_ref()
            .map(|r| r.over.clone())
            .unwrap_or_default();
        let anchored = anchored(g);
        for (n, &ok) in anchored.iter().enumerate() {
            let Ok(id) = u32::try_from(n).map(IndexId) else {
                continue;
            };
            if !(ok || self.output && g.output.contains(&id)) {
                return err(format!(
                    "cannot write `{}` as .ein: its index `{}` addresses no tensor axis, so \
                     its extent could not be inferred",
                    self.target,
                    self.index(id)
                ));
            }
        }
        let mut value = self.expr(&g.body, false)?;
        // An output index that nothing on the right mentions (a gradient broadcast into a
        // declared output) is carried by `delta[i, i]`, which is 1.
        let mut mentioned = Vec::new();
        mentions(g, &g.body, &mut mentioned);
        for &i in &g.output {
            if !mentioned.contains(&i) {
                let one = ExprKind::Access {
                    tensor: ident("delta"),
                    indices: vec![self.var(i), self.var(i)],
                };
                value = node(ExprKind::Binary(
                    BinOp::Mul,
                    Box::new(value),
                    Box::new(node(one)),
                ));
            }
        }
        if let Some(r) = &g.reduce {
            let implicit = r.kind == ReduceKind::Add && summed_by_einstein(g, &over);
            if !implicit {
                let op = match r.kind {
                    ReduceKind::Add => "sum",
                    ReduceKind::Mul => "prod",
                    ReduceKind::Max => "max",
                    ReduceKind::Min => "min",
                };
                value = node(ExprKind::Reduce {
                    op: ident(op),
                    indices: over.iter().map(|&i| ident(self.index(i))).collect(),
                    body: Box::new(value),
                });
            }
        }
        let indices: Vec<IndexExpr> = g.output.iter().map(|&i| self.var(i)).collect();
        Ok(Stmt {
            target: ident(self.target),
            bracketed: !indices.is_empty(),
            indices,
            value,
            schedule: None,
            extents: Vec::new(),
            span: SPAN,
        })
    }

    fn expr(&self, e: &Expr, in_cond: bool) -> Result<ast::Expr, ToEinError> {
        let sub = |x: &Expr| self.expr(x, in_cond).map(Box::new);
        let call = |name: &str, args: Vec<ast::Expr>| {
            node(ExprKind::Call {
                func: ident(name),
                args,
            })
        };
        Ok(match e {
            Expr::Input(n) => {
                let Some(input) = self.g.inputs.get(*n as usize) else {
                    return err(format!("`{}` reads a missing input %{n}", self.target));
                };
                let tensor = ident(self.names.value(input.value));
                if input.map.is_empty() {
                    node(ExprKind::Name(tensor))
                } else {
                    let indices = input
                        .map
                        .iter()
                        .map(|m| match m {
                            AxisMap::Index(i) => self.var(*i),
                            AxisMap::Fixed(p) => IndexExpr::Fixed(*p, SPAN),
                        })
                        .collect();
                    node(ExprKind::Access { tensor, indices })
                }
            }
            Expr::Index(i) if in_cond => node(ExprKind::Name(ident(self.index(*i)))),
            Expr::Index(i) => {
                return err(format!(
                    "cannot write `{}` as .ein: it uses the value of index `{}` as a number",
                    self.target,
                    self.index(*i)
                ))
            }
            Expr::Lit(s) => self.literal(*s)?,
            Expr::DimValue(d, _) => node(ExprKind::Name(ident(d))),
            Expr::Unary(UnaryFn::Neg, x) => node(ExprKind::Unary(UnOp::Neg, sub(x)?)),
            Expr::Unary(f, x) => call(f.name(), vec![self.expr(x, in_cond)?]),
            Expr::Binary(f, a, b) => {
                let op = match f {
                    BinaryFn::Add => BinOp::Add,
                    BinaryFn::Sub => BinOp::Sub,
                    BinaryFn::Mul => BinOp::Mul,
                    BinaryFn::Div => BinOp::Div,
                    BinaryFn::Max | BinaryFn::Min | BinaryFn::Pow => {
                        let name = match f {
                            BinaryFn::Max => "max",
                            BinaryFn::Min => "min",
                            _ => "pow",
                        };
                        return Ok(call(
                            name,
                            vec![self.expr(a, in_cond)?, self.expr(b, in_cond)?],
                        ));
                    }
                };
                node(ExprKind::Binary(op, sub(a)?, sub(b)?))
            }
            Expr::Select(c, a, b) => call(
                "where",
                vec![
                    self.cond(c)?,
                    self.expr(a, in_cond)?,
                    self.expr(b, in_cond)?,
                ],
            ),
            Expr::Cast(t, x) => call(t.name(), vec![self.expr(x, in_cond)?]),
            Expr::Delta(ids, _) | Expr::Eps(ids, _) => {
                let name = if matches!(e, Expr::Delta(..)) {
                    "delta"
                } else {
                    "eps"
                };
                node(ExprKind::Access {
                    tensor: ident(name),
                    indices: ids.iter().map(|&i| self.var(i)).collect(),
                })
            }
        })
    }

    fn cond(&self, c: &Cond) -> Result<ast::Expr, ToEinError> {
        Ok(match c {
            Cond::Cmp(op, a, b) => {
                let op = match op {
                    CmpOp::Lt => BinOp::Lt,
                    CmpOp::Le => BinOp::Le,
                    CmpOp::Gt => BinOp::Gt,
                    CmpOp::Ge => BinOp::Ge,
                    CmpOp::Eq => BinOp::Eq,
                    CmpOp::Ne => BinOp::Ne,
                };
                node(ExprKind::Binary(
                    op,
                    Box::new(self.expr(a, true)?),
                    Box::new(self.expr(b, true)?),
                ))
            }
            Cond::And(a, b) | Cond::Or(a, b) => {
                let op = if matches!(c, Cond::And(..)) {
                    BinOp::And
                } else {
                    BinOp::Or
                };
                node(ExprKind::Binary(
                    op,
                    Box::new(self.cond(a)?),
                    Box::new(self.cond(b)?),
                ))
            }
            Cond::Not(a) => node(ExprKind::Unary(UnOp::Not, Box::new(self.cond(a)?))),
        })
    }

    /// A literal as written in source: the shortest decimal that reads back to the same value
    /// in its dtype, negated with a prefix minus.
    fn literal(&self, s: Scalar) -> Result<ast::Expr, ToEinError> {
        let (negative, text) = match s {
            Scalar::F32(v) => float_text(f64::from(v), v.is_sign_negative(), || {
                let a = v.abs();
                if a != 0.0 && !(1e-4..1e16).contains(&a) {
                    format!("{a:e}")
                } else {
                    format!("{a}")
                }
            }),
            Scalar::F64(v) => float_text(v, v.is_sign_negative(), || {
                let a = v.abs();
                if a != 0.0 && !(1e-4..1e16).contains(&a) {
                    format!("{a:e}")
                } else {
                    format!("{a}")
                }
            }),
            Scalar::I32(v) => (v < 0, Some(v.unsigned_abs().to_string())),
            Scalar::I64(v) => (v < 0, Some(v.unsigned_abs().to_string())),
        };
        let Some(text) = text else {
            return err(format!(
                "cannot write `{}` as .ein: it uses a NaN constant",
                self.target
            ));
        };
        let lit = if text == "inf" {
            node(ExprKind::Inf)
        } else {
            node(ExprKind::Number(text))
        };
        Ok(if negative {
            node(ExprKind::Unary(UnOp::Neg, Box::new(lit)))
        } else {
            lit
        })
    }
}

/// `(negative, text)` of a float; `None` for NaN. Zero is written unsigned.
fn float_text(v: f64, negative: bool, digits: impl Fn() -> String) -> (bool, Option<String>) {
    if v.is_nan() {
        (false, None)
    } else if v.is_infinite() {
        (negative, Some("inf".to_string()))
    } else if v == 0.0 {
        (false, Some("0".to_string()))
    } else {
        (negative, Some(digits()))
    }
}

/// The indices `e` mentions: through its inputs' maps, index values, deltas and eps.
fn mentions(g: &Generic, e: &Expr, out: &mut Vec<IndexId>) {
    match e {
        Expr::Input(n) => {
            if let Some(input) = g.inputs.get(*n as usize) {
                for m in &input.map {
                    if let AxisMap::Index(i) = m {
                        out.push(*i);
                    }
                }
            }
        }
        Expr::Index(i) => out.push(*i),
        Expr::Delta(ids, _) | Expr::Eps(ids, _) => out.extend(ids),
        Expr::Unary(_, x) | Expr::Cast(_, x) => mentions(g, x, out),
        Expr::Binary(_, a, b) => {
            mentions(g, a, out);
            mentions(g, b, out);
        }
        Expr::Select(c, a, b) => {
            cond_mentions(g, c, out);
            mentions(g, a, out);
            mentions(g, b, out);
        }
        Expr::Lit(_) | Expr::DimValue(..) => {}
    }
}

fn cond_mentions(g: &Generic, c: &Cond, out: &mut Vec<IndexId>) {
    match c {
        Cond::Cmp(_, a, b) => {
            mentions(g, a, out);
            mentions(g, b, out);
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            cond_mentions(g, a, out);
            cond_mentions(g, b, out);
        }
        Cond::Not(a) => cond_mentions(g, a, out),
    }
}

/// Whether Einstein's convention alone sums exactly `over` in `g`'s body: the body is a chain
/// of products (and negations) whose summed indices occur only in its tensor, delta and eps
/// factors, each exactly twice. Anything else is written with an explicit `sum`.
fn summed_by_einstein(g: &Generic, over: &[IndexId]) -> bool {
    let mut counts = vec![0usize; g.indices.len()];
    if !count_factors(g, &g.body, over, &mut counts) {
        return false;
    }
    over.iter()
        .all(|i| counts.get(i.0 as usize).copied() == Some(2))
}

/// Counts the index occurrences of the product chain `e` into `counts`; false when a summed
/// index occurs anywhere but in a plain factor.
fn count_factors(g: &Generic, e: &Expr, over: &[IndexId], counts: &mut [usize]) -> bool {
    match e {
        Expr::Binary(BinaryFn::Mul, a, b) => {
            count_factors(g, a, over, counts) && count_factors(g, b, over, counts)
        }
        Expr::Unary(UnaryFn::Neg, a) => count_factors(g, a, over, counts),
        Expr::Binary(BinaryFn::Div, a, b) => {
            let mut m = Vec::new();
            mentions(g, b, &mut m);
            !m.iter().any(|i| over.contains(i)) && count_factors(g, a, over, counts)
        }
        Expr::Input(_) | Expr::Delta(..) | Expr::Eps(..) => {
            let mut m = Vec::new();
            mentions(g, e, &mut m);
            for i in m {
                if let Some(c) = counts.get_mut(i.0 as usize) {
                    *c += 1;
                }
            }
            true
        }
        other => {
            let mut m = Vec::new();
            mentions(g, other, &mut m);
            !m.iter().any(|i| over.contains(i))
        }
    }
}
