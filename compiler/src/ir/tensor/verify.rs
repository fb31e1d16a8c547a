//! Checks the invariants documented on the tensor IR types, so that every pass can rely on them
//! and a pass that breaks one is caught right after it runs.
//!
//! The verifier reports every broken rule it finds (not just the first), never panics on any
//! module (dangling ids included), and names the function, the value and the rule in each
//! error. The rules are listed in `docs/ir.md`.

use super::printer::{index_name, name, print_cond, print_expr, print_extent, print_type};
use super::{
    AxisMap, BinaryFn, Cond, Expr, Extent, Function, Generic, IndexId, Module, OpKind, UnaryFn,
    ValueId, MAX_ENTRY_CHECKS, MAX_EXTENT, MAX_RANK, MAX_TENSOR_BYTES,
};
use einc_runtime::DType;
use std::collections::HashSet;
use std::fmt;

#[cfg(test)]
mod tests;

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The function, or `None` for a module-level rule.
    pub func: Option<String>,
    /// The value (an op's result or a parameter) the rule is about, if any.
    pub value: Option<String>,
    /// The broken rule.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.func {
            Some(func) => write!(f, "@{}: ", name(func))?,
            None => write!(f, "module: ")?,
        }
        if let Some(v) = &self.value {
            write!(f, "%{}: ", name(v))?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for VerifyError {}

/// Checks every invariant of `m`; on failure returns all the errors found, in module order.
pub fn verify_module(m: &Module) -> Result<(), Vec<VerifyError>> {
    let mut v = Verifier {
        m,
        errors: Vec::new(),
        func: None,
        value: None,
    };
    let mut dims = HashSet::new();
    for d in &m.dims {
        if !dims.insert(d.name.as_str()) {
            v.error(format!("dim `{}` is declared twice", name(&d.name)));
        }
        if d.value.is_some_and(|n| n > MAX_EXTENT) {
            v.error(format!(
                "dim `{}` is larger than {MAX_EXTENT}, the largest extent",
                name(&d.name)
            ));
        }
    }
    let mut funcs = HashSet::new();
    for f in &m.funcs {
        if !funcs.insert(f.name.as_str()) {
            v.error(format!("function @{} is defined twice", name(&f.name)));
        }
    }
    for f in &m.funcs {
        v.function(f);
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

struct Verifier<'a> {
    m: &'a Module,
    errors: Vec<VerifyError>,
    /// The function and value that new errors are about.
    func: Option<String>,
    value: Option<String>,
}

impl Verifier<'_> {
    fn error(&mut self, message: impl Into<String>) {
        self.errors.push(VerifyError {
            func: self.func.clone(),
            value: self.value.clone(),
            message: message.into(),
        });
    }

    /// The size of an extent, when the module fixes it.
    fn size(&self, e: &Extent) -> Option<u64> {
        match e {
            Extent::Fixed(n) => Some(*n),
            Extent::Dim(d) => self.m.dim_value(d),
        }
    }

    /// Whether two extents are the same size: equal, or resolving to the same number.
    fn same_extent(&self, a: &Extent, b: &Extent) -> bool {
        a == b || self.size(a).is_some_and(|n| self.size(b) == Some(n))
    }

    fn check_extent(&mut self, e: &Extent, context: &str) {
        match e {
            Extent::Dim(d) => {
                if !self.m.dims.iter().any(|x| &x.name == d) {
                    self.error(format!("{context} names undefined dim `{}`", name(d)));
                }
            }
            Extent::Fixed(n) => {
                if *n > MAX_EXTENT {
                    self.error(format!(
                        "{context} has extent {n}, larger than {MAX_EXTENT}, the largest extent"
                    ));
                }
            }
        }
    }

    fn function(&mut self, f: &Function) {
        self.func = Some(f.name.clone());
        self.value = None;
        let mut names = HashSet::new();
        for v in &f.values {
            self.value = Some(v.name.clone());
            if !names.insert(v.name.as_str()) {
                self.error("value name is used by more than one value");
            }
            for e in &v.ty.shape {
                self.check_extent(e, &format!("type {}", print_type(&v.ty)));
            }
            if v.ty.shape.len() > MAX_RANK {
                self.error(format!(
                    "rank {} is larger than {MAX_RANK}, the largest rank",
                    v.ty.shape.len()
                ));
            }
            if v.ty.fixed_bytes(&self.m.dims).is_none() {
                self.error(format!(
                    "type {} needs more than {MAX_TENSOR_BYTES} bytes",
                    print_type(&v.ty)
                ));
            }
        }
        self.value = None;
        if f.entry_checks() > MAX_ENTRY_CHECKS {
            self.error(format!(
                "the entry point would need {} argument checks, more than {MAX_ENTRY_CHECKS}",
                f.entry_checks()
            ));
        }

        let mut defined = vec![false; f.values.len()];
        for &p in &f.params {
            self.define(f, &mut defined, p, "parameter");
        }
        for op in &f.ops {
            self.value = f.values.get(op.result.0 as usize).map(|v| v.name.clone());
            let OpKind::Generic(g) = &op.kind;
            for (n, input) in g.inputs.iter().enumerate() {
                match defined.get(input.value.0 as usize) {
                    None => self.error(format!(
                        "input {n} is value #{}, which does not exist",
                        input.value.0
                    )),
                    Some(false) => self.error(format!(
                        "input {n} uses {} before its definition",
                        super::printer::value_ref(f, input.value)
                    )),
                    Some(true) => {}
                }
            }
            self.generic(f, g);
            if let (Some(v), Some(derived)) = (f.values.get(op.result.0 as usize), g.result_type())
            {
                if v.ty != derived {
                    self.error(format!(
                        "recorded type {} differs from the op's type {}",
                        print_type(&v.ty),
                        print_type(&derived)
                    ));
                }
            }
            self.value = None;
            self.define(f, &mut defined, op.result, "op result");
        }
        self.epilogues(f);
        for (v, &d) in f.values.iter().zip(&defined) {
            if !d {
                self.value = Some(v.name.clone());
                self.error("value is never defined (neither a parameter nor an op result)");
            }
        }
        self.value = None;
        let mut outputs = HashSet::new();
        for r in &f.results {
            if !outputs.insert(r.name.as_str()) {
                self.error(format!("output `{}` is declared twice", name(&r.name)));
            }
            if f.values.get(r.value.0 as usize).is_none() {
                self.error(format!(
                    "output `{}` is value #{}, which does not exist",
                    name(&r.name),
                    r.value.0
                ));
            }
        }
    }

    /// A `gemm` schedule's epilogue names maps that follow its op in `f` and fit its GEMM
    /// ([`super::schedule::epilogue`]).
    fn epilogues(&mut self, f: &Function) {
        use super::schedule::{epilogue, Schedule};
        for (k, op) in f.ops.iter().enumerate() {
            let OpKind::Generic(g) = &op.kind;
            let Some(Schedule::Gemm(s)) = &g.schedule else {
                continue;
            };
            let Some(steps) = s.epilogue.as_deref().filter(|e| !e.is_empty()) else {
                continue;
            };
            self.value = f.values.get(op.result.0 as usize).map(|v| v.name.clone());
            let checked = epilogue::find(f, k, Some(steps)).and_then(|epi| {
                let (Some([m]), Some([n]), Some([kk]), Some(kc)) =
                    (s.m.as_deref(), s.n.as_deref(), s.k.as_deref(), s.kc)
                else {
                    // An incomplete schedule: `fits` is checked once it is complete.
                    return Ok(());
                };
                let outer = s.outer.as_deref().unwrap_or_default();
                let reduced_outer = outer.iter().any(|i| !g.output.contains(i));
                let k_extent = g
                    .indices
                    .get(kk.0 as usize)
                    .and_then(|d| self.size(&d.extent));
                epilogue::fits(&epi, *m, *n, reduced_outer, kc, k_extent)
            });
            if let Err(e) = checked {
                self.error(format!("schedule: {e}"));
            }
            self.value = None;
        }
    }

    fn define(&mut self, f: &Function, defined: &mut [bool], id: ValueId, what: &str) {
        match defined.get_mut(id.0 as usize) {
            None => self.error(format!("{what} is value #{}, which does not exist", id.0)),
            Some(d) if *d => {
                self.value = f.values.get(id.0 as usize).map(|v| v.name.clone());
                self.error(format!("value is defined more than once (again as {what})"));
                self.value = None;
            }
            Some(d) => *d = true,
        }
    }

    fn index_ok(&mut self, g: &Generic, i: IndexId, context: &str) -> bool {
        if (i.0 as usize) < g.indices.len() {
            true
        } else {
            self.error(format!(
                "{context} uses index #{}, but the op has {} indices",
                i.0,
                g.indices.len()
            ));
            false
        }
    }

    fn generic(&mut self, f: &Function, g: &Generic) {
        let mut seen = HashSet::new();
        for d in &g.indices {
            if !seen.insert(d.name.as_str()) {
                self.error(format!("index `{}` is declared twice", name(&d.name)));
            }
            self.check_extent(&d.extent, &format!("index `{}`", name(&d.name)));
        }

        let mut in_output = vec![false; g.indices.len()];
        for &i in &g.output {
            if self.index_ok(g, i, "the output") {
                if in_output[i.0 as usize] {
                    self.error(format!(
                        "index `{}` appears twice in the output",
                        index_name(g, i)
                    ));
                }
                in_output[i.0 as usize] = true;
            }
        }
        let mut reduced = vec![false; g.indices.len()];
        if let Some(r) = &g.reduce {
            if r.over.is_empty() {
                self.error("`reduce` over no indices: an op without a reduction has no `reduce`");
            }
            for &i in &r.over {
                if !self.index_ok(g, i, "the reduction") {
                    continue;
                }
                let n = i.0 as usize;
                if reduced[n] {
                    self.error(format!("index `{}` is reduced twice", index_name(g, i)));
                } else if in_output[n] {
                    self.error(format!(
                        "index `{}` is both in the output and reduced over",
                        index_name(g, i)
                    ));
                }
                reduced[n] = true;
            }
        }
        for (n, d) in g.indices.iter().enumerate() {
            if !in_output[n] && !reduced[n] {
                self.error(format!(
                    "index `{}` is neither in the output nor reduced over",
                    name(&d.name)
                ));
            }
        }

        for (n, input) in g.inputs.iter().enumerate() {
            let Some(v) = f.values.get(input.value.0 as usize) else {
                continue; // reported by the caller
            };
            let what = format!("input {n} (%{})", name(&v.name));
            if input.map.len() != v.ty.shape.len() {
                self.error(format!(
                    "{what} has rank {} but its map has {} entries",
                    v.ty.shape.len(),
                    input.map.len()
                ));
                continue;
            }
            for (axis, (a, extent)) in input.map.iter().zip(&v.ty.shape).enumerate() {
                match *a {
                    AxisMap::Index(i) => {
                        if !self.index_ok(g, i, &what) {
                            continue;
                        }
                        let d = g.index_def(i);
                        if !self.same_extent(&d.extent, extent) {
                            self.error(format!(
                                "{what}: index `{}` has extent {} but axis {axis} has extent {}",
                                name(&d.name),
                                print_extent(&d.extent),
                                print_extent(extent)
                            ));
                        }
                    }
                    AxisMap::Fixed(p) => {
                        if self.size(extent).is_some_and(|size| p >= size) {
                            self.error(format!(
                                "{what}: position {p} is out of range for axis {axis} of extent {}",
                                print_extent(extent)
                            ));
                        }
                    }
                }
            }
        }

        if let Some(t) = self.expr_type(f, g, &g.body) {
            if t != g.dtype {
                self.error(format!(
                    "the body has type {} but the op's dtype is {}",
                    t.name(),
                    g.dtype.name()
                ));
            }
        }

        if let Some(s) = &g.schedule {
            for message in super::schedule::check(g, s) {
                self.error(format!("schedule: {message}"));
            }
        }
    }

    /// The dtype of `e`, reporting typing errors; `None` when an error below makes it unknown.
    fn expr_type(&mut self, f: &Function, g: &Generic, e: &Expr) -> Option<DType> {
        let shown = || format!("`{}`", print_expr(g, e));
        match e {
            Expr::Input(n) => match g.inputs.get(*n as usize) {
                Some(input) => f.values.get(input.value.0 as usize).map(|v| v.ty.dtype),
                None => {
                    self.error(format!(
                        "the body reads input %{n}, but the op has {} inputs",
                        g.inputs.len()
                    ));
                    None
                }
            },
            Expr::Index(i) => self.index_ok(g, *i, "the body").then_some(DType::I64),
            Expr::Lit(s) => Some(s.dtype()),
            Expr::DimValue(d, t) => {
                self.check_extent(&Extent::Dim(d.clone()), &shown());
                Some(*t)
            }
            Expr::Unary(u, a) => {
                let t = self.expr_type(f, g, a)?;
                let transcendental = matches!(
                    u,
                    UnaryFn::Exp
                        | UnaryFn::Log
                        | UnaryFn::Sqrt
                        | UnaryFn::Rsqrt
                        | UnaryFn::Tanh
                        | UnaryFn::Sigmoid
                );
                if transcendental && !is_float(t) {
                    self.error(format!(
                        "{}: `{}` needs a float operand, found {}",
                        shown(),
                        u.name(),
                        t.name()
                    ));
                }
                Some(t)
            }
            Expr::Binary(b, x, y) => {
                let t = self.same_types(f, g, x, y, e)?;
                if *b == BinaryFn::Pow && !is_float(t) {
                    self.error(format!(
                        "{}: `pow` needs float operands, found {}",
                        shown(),
                        t.name()
                    ));
                }
                Some(t)
            }
            Expr::Select(c, x, y) => {
                self.cond(f, g, c);
                self.same_types(f, g, x, y, e)
            }
            Expr::Cast(t, a) => {
                self.expr_type(f, g, a);
                Some(*t)
            }
            Expr::Delta(ids, t) => {
                for &i in ids {
                    self.index_ok(g, i, &shown());
                }
                Some(*t)
            }
            Expr::Eps(ids, t) => {
                let n = ids.len() as u64;
                for &i in ids {
                    if self.index_ok(g, i, &shown()) {
                        let d = g.index_def(i);
                        if self.size(&d.extent) != Some(n) {
                            self.error(format!(
                                "{}: eps of {n} indices needs each to have extent {n}, \
                                 but `{}` has extent {}",
                                shown(),
                                name(&d.name),
                                print_extent(&d.extent)
                            ));
                        }
                    }
                }
                Some(*t)
            }
        }
    }

    /// The common dtype of two operands of `parent`, reporting a mismatch.
    fn same_types(
        &mut self,
        f: &Function,
        g: &Generic,
        x: &Expr,
        y: &Expr,
        parent: &Expr,
    ) -> Option<DType> {
        let tx = self.expr_type(f, g, x);
        let ty = self.expr_type(f, g, y);
        let (tx, ty) = (tx?, ty?);
        if tx == ty {
            Some(tx)
        } else {
            self.error(format!(
                "`{}`: operands have different dtypes {} and {}",
                print_expr(g, parent),
                tx.name(),
                ty.name()
            ));
            None
        }
    }

    fn cond(&mut self, f: &Function, g: &Generic, c: &Cond) {
        match c {
            Cond::Cmp(_, x, y) => {
                let tx = self.expr_type(f, g, x);
                let ty = self.expr_type(f, g, y);
                if let (Some(tx), Some(ty)) = (tx, ty) {
                    if tx != ty {
                        self.error(format!(
                            "`{}`: operands have different dtypes {} and {}",
                            print_cond(g, c),
                            tx.name(),
                            ty.name()
                        ));
                    }
                }
            }
            Cond::And(x, y) | Cond::Or(x, y) => {
                self.cond(f, g, x);
                self.cond(f, g, y);
            }
            Cond::Not(x) => self.cond(f, g, x),
        }
    }
}

fn is_float(t: DType) -> bool {
    matches!(t, DType::F32 | DType::F64)
}
