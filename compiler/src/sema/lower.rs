//! Lowering of a checked statement ([`TExpr`]) to tensor-IR [`Generic`] ops.
//!
//! A statement becomes one generic whose output indices are the left-hand side. Every
//! reduction node below its root (an implicit Einstein sum, `sum/max/min/prod`) becomes its own
//! generic, read by the enclosing one; a root reduction is folded into the statement's generic.
//! `softmax` becomes `<target>.max`, `<target>.exp` and `<target>.sum` plus the division in the
//! enclosing op; `logsumexp` becomes `<target>.max` and `<target>.sum` plus `max + log(sum)`.
//! Other temporaries are named `<target>.1`, `<target>.2`, ...

use super::types::{Axis, Ext, TCond, TExpr, TKind};
use crate::ir::tensor::{
    AxisMap, BinaryFn, Cond, Expr, Extent, Function, Generic, IndexDef, IndexId, Input, Op, OpKind,
    Reduce, ReduceKind, TensorType, UnaryFn, ValueId,
};
use einc_runtime::{DType, Scalar};
use std::collections::{HashMap, HashSet};

/// Emits the ops of one statement into a function.
pub(crate) struct Lowerer<'f> {
    /// The function being built.
    pub func: &'f mut Function,
    /// Value names already used in the function.
    pub names: &'f mut HashSet<String>,
    /// The extent of each index of the statement.
    pub extents: &'f HashMap<String, Ext>,
    /// The statement's target, which names its temporaries.
    pub target: &'f str,
    /// Temporaries numbered so far.
    pub counter: u32,
}

/// The iteration space, inputs and maps of a generic under construction.
struct Builder {
    indices: Vec<IndexDef>,
    ids: HashMap<String, IndexId>,
    inputs: Vec<crate::ir::tensor::Input>,
}

fn vars(names: &[String]) -> Vec<Axis> {
    names.iter().cloned().map(Axis::Var).collect()
}

impl Builder {
    fn new<'a>(
        names: impl IntoIterator<Item = &'a String>,
        extents: &HashMap<String, Ext>,
    ) -> Builder {
        let mut b = Builder {
            indices: Vec::new(),
            ids: HashMap::new(),
            inputs: Vec::new(),
        };
        for n in names {
            b.id(n, extents);
        }
        b
    }

    /// The index named `name`, added to the space if new.
    fn id(&mut self, name: &str, extents: &HashMap<String, Ext>) -> IndexId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = IndexId(u32::try_from(self.indices.len()).unwrap_or(u32::MAX));
        // Analysis has inferred every index's extent before lowering.
        let extent = extents
            .get(name)
            .map_or(Extent::Fixed(0), |e| e.norm.clone());
        self.indices.push(IndexDef {
            name: name.to_string(),
            extent,
        });
        self.ids.insert(name.to_string(), id);
        id
    }

    /// The body expression reading `value` through `axes` (one input per distinct access).
    fn read(&mut self, value: ValueId, axes: &[Axis], extents: &HashMap<String, Ext>) -> Expr {
        let map: Vec<AxisMap> = axes
            .iter()
            .map(|a| match a {
                Axis::Var(n) => AxisMap::Index(self.id(n, extents)),
                Axis::Fixed(p) => AxisMap::Fixed(*p),
            })
            .collect();
        let pos = match self
            .inputs
            .iter()
            .position(|i| i.value == value && i.map == map)
        {
            Some(p) => p,
            None => {
                self.inputs.push(Input { value, map });
                self.inputs.len() - 1
            }
        };
        Expr::Input(u32::try_from(pos).unwrap_or(u32::MAX))
    }

    fn finish(
        mut self,
        output: &[String],
        reduce: Option<(ReduceKind, &[String])>,
        body: Expr,
        dtype: DType,
        extents: &HashMap<String, Ext>,
    ) -> Generic {
        let output: Vec<IndexId> = output.iter().map(|n| self.id(n, extents)).collect();
        let reduce = reduce
            .filter(|(_, over)| !over.is_empty())
            .map(|(kind, over)| Reduce {
                kind,
                over: over.iter().map(|n| self.id(n, extents)).collect(),
            });
        Generic {
            indices: self.indices,
            inputs: self.inputs,
            output,
            reduce,
            body,
            dtype,
            schedule: None,
        }
    }
}

/// A reduction node with directly nested reductions of the same kind merged into it
/// (`sum[j](A[i,j,k] * u[k])` is one sum over `j` and `k`).
fn flatten(e: &TExpr) -> Option<(ReduceKind, Vec<String>, &TExpr)> {
    let TKind::Reduce { kind, over, body } = &e.kind else {
        return None;
    };
    let mut over = over.clone();
    let mut body: &TExpr = body;
    while let TKind::Reduce {
        kind: k2,
        over: o2,
        body: b2,
    } = &body.kind
    {
        if k2 != kind {
            break;
        }
        over.extend(o2.iter().cloned());
        body = b2;
    }
    Some((*kind, over, body))
}

fn dtype_of(e: &TExpr) -> DType {
    // Every node has a settled dtype after analysis.
    e.dtype.unwrap_or(DType::F32)
}

impl Lowerer<'_> {
    /// Lowers a statement whose left-hand indices are `lhs`; returns the value defined, named
    /// after the target.
    pub fn statement(&mut self, root: &TExpr, lhs: &[String]) -> ValueId {
        let g = self.generic(root, lhs);
        let name = self.target.to_string();
        self.emit(name, g)
    }

    /// A generic computing `e` with output indices `out`, folding a root reduction in.
    fn generic(&mut self, e: &TExpr, out: &[String]) -> Generic {
        let dtype = dtype_of(e);
        match flatten(e) {
            Some((kind, over, body)) => {
                let mut b = Builder::new(out.iter().chain(&over), self.extents);
                let body = self.expr(&mut b, body);
                b.finish(out, Some((kind, &over)), body, dtype, self.extents)
            }
            None => {
                let mut b = Builder::new(out, self.extents);
                let body = self.expr(&mut b, e);
                b.finish(out, None, body, dtype, self.extents)
            }
        }
    }

    fn emit(&mut self, name: String, g: Generic) -> ValueId {
        let ty = TensorType {
            dtype: g.dtype,
            shape: g.result_shape(),
        };
        let v = self.func.add_value(name.clone(), ty);
        self.names.insert(name);
        self.func.ops.push(Op {
            result: v,
            kind: OpKind::Generic(g),
        });
        v
    }

    /// A value name not used yet: `base`, else `base.1`, `base.2`, ...
    fn fresh(&mut self, base: String) -> String {
        crate::ir::names::fresh_in(self.names, &base, '.')
    }

    fn temp(&mut self, suffix: Option<&str>) -> String {
        let base = match suffix {
            Some(s) => format!("{}.{s}", self.target),
            None => {
                self.counter += 1;
                format!("{}.{}", self.target, self.counter)
            }
        };
        self.fresh(base)
    }

    /// Materialises `e` as a temporary (unless it is already a tensor access) and returns how
    /// to read it.
    fn source(&mut self, e: &TExpr) -> (ValueId, Vec<Axis>) {
        if let TKind::Access { value, axes } = &e.kind {
            return (*value, axes.clone());
        }
        let out = e.escape_names();
        let g = self.generic(e, &out);
        let name = self.temp(None);
        (self.emit(name, g), vars(&out))
    }

    /// A generic reducing `src` (read through `axes`, indices `all`) to the indices `kept`.
    fn reduce_source(
        &mut self,
        src: (ValueId, &[Axis]),
        all: &[String],
        kept: &[String],
        kind: ReduceKind,
        suffix: &str,
        dtype: DType,
    ) -> ValueId {
        let over: Vec<String> = all.iter().filter(|n| !kept.contains(n)).cloned().collect();
        let mut b = Builder::new(kept.iter().chain(&over), self.extents);
        let body = b.read(src.0, src.1, self.extents);
        let g = b.finish(kept, Some((kind, &over)), body, dtype, self.extents);
        let name = self.temp(Some(suffix));
        self.emit(name, g)
    }

    /// The `<target>.max` and `<target>.sum` of a `logsumexp` (or log-softmax) of `src` (read
    /// through `axes`, indices `all`) along `along`: `max` over `along`, and the sum over
    /// `along` of `exp(src - max)`.
    fn max_and_sum(
        &mut self,
        src: (ValueId, &[Axis]),
        all: &[String],
        kept: &[String],
        along: &[String],
        d: DType,
    ) -> (ValueId, ValueId) {
        let ext = self.extents;
        let max = self.reduce_source(src, all, kept, ReduceKind::Max, "max", d);
        let mut sb = Builder::new(kept.iter().chain(along), ext);
        let body = self.shifted_exp(&mut sb, src, max, kept);
        let g = sb.finish(kept, Some((ReduceKind::Add, along)), body, d, ext);
        let name = self.temp(Some("sum"));
        (max, self.emit(name, g))
    }

    /// `exp(src - max)` over `all`.
    fn shifted_exp(
        &mut self,
        b: &mut Builder,
        src: (ValueId, &[Axis]),
        max: ValueId,
        kept: &[String],
    ) -> Expr {
        let s = b.read(src.0, src.1, self.extents);
        let m = b.read(max, &vars(kept), self.extents);
        Expr::Unary(
            UnaryFn::Exp,
            Box::new(Expr::Binary(BinaryFn::Sub, Box::new(s), Box::new(m))),
        )
    }

    /// The body expression of `e` inside the generic being built by `b`.
    fn expr(&mut self, b: &mut Builder, e: &TExpr) -> Expr {
        let d = dtype_of(e);
        let ext = self.extents;
        match &e.kind {
            TKind::Access { value, axes } => b.read(*value, axes, ext),
            TKind::Delta(names) => Expr::Delta(names.iter().map(|n| b.id(n, ext)).collect(), d),
            TKind::Eps(names) => Expr::Eps(names.iter().map(|n| b.id(n, ext)).collect(), d),
            TKind::Lit(s) => Expr::Lit(*s),
            // Settlement replaced every literal by a constant.
            TKind::Number(_) | TKind::Inf => Expr::Lit(Scalar::zero(d)),
            TKind::DimValue(n) => Expr::DimValue(n.clone(), d),
            TKind::IndexVar(n) => Expr::Index(b.id(n, ext)),
            TKind::Unary(f, x) => Expr::Unary(*f, Box::new(self.expr(b, x))),
            TKind::Binary(f, x, y) => {
                let x = self.expr(b, x);
                let y = self.expr(b, y);
                Expr::Binary(*f, Box::new(x), Box::new(y))
            }
            TKind::Cast(t, x) => Expr::Cast(*t, Box::new(self.expr(b, x))),
            TKind::Select(c, x, y) => {
                let c = self.cond(b, c);
                let x = self.expr(b, x);
                let y = self.expr(b, y);
                Expr::Select(Box::new(c), Box::new(x), Box::new(y))
            }
            TKind::Reduce { .. } => {
                let out = e.escape_names();
                let g = self.generic(e, &out);
                let name = self.temp(None);
                let v = self.emit(name, g);
                b.read(v, &vars(&out), ext)
            }
            TKind::Softmax { along, body } => {
                let (src, axes) = self.source(body);
                let all = body.escape_names();
                let kept: Vec<String> =
                    all.iter().filter(|n| !along.contains(n)).cloned().collect();
                let max = self.reduce_source((src, &axes), &all, &kept, ReduceKind::Max, "max", d);
                let mut eb = Builder::new(&all, ext);
                let body = self.shifted_exp(&mut eb, (src, &axes), max, &kept);
                let g = eb.finish(&all, None, body, d, ext);
                let name = self.temp(Some("exp"));
                let exp = self.emit(name, g);
                let sum =
                    self.reduce_source((exp, &vars(&all)), &all, &kept, ReduceKind::Add, "sum", d);
                let num = b.read(exp, &vars(&all), ext);
                let den = b.read(sum, &vars(&kept), ext);
                Expr::Binary(BinaryFn::Div, Box::new(num), Box::new(den))
            }
            TKind::LogSoftmax { along, body } => {
                let (src, axes) = self.source(body);
                let all = body.escape_names();
                let kept: Vec<String> =
                    all.iter().filter(|n| !along.contains(n)).cloned().collect();
                let (max, sum) = self.max_and_sum((src, &axes), &all, &kept, along, d);
                // (e - max) - log(sum): the largest entries are exact.
                let e = b.read(src, &axes, ext);
                let m = b.read(max, &vars(&kept), ext);
                let s = b.read(sum, &vars(&kept), ext);
                Expr::Binary(
                    BinaryFn::Sub,
                    Box::new(Expr::Binary(BinaryFn::Sub, Box::new(e), Box::new(m))),
                    Box::new(Expr::Unary(UnaryFn::Log, Box::new(s))),
                )
            }
            TKind::LogSumExp { along, body } => {
                let (src, axes) = self.source(body);
                let all = body.escape_names();
                let kept: Vec<String> =
                    all.iter().filter(|n| !along.contains(n)).cloned().collect();
                let (max, sum) = self.max_and_sum((src, &axes), &all, &kept, along, d);
                let m = b.read(max, &vars(&kept), ext);
                let s = b.read(sum, &vars(&kept), ext);
                Expr::Binary(
                    BinaryFn::Add,
                    Box::new(m),
                    Box::new(Expr::Unary(UnaryFn::Log, Box::new(s))),
                )
            }
        }
    }

    fn cond(&mut self, b: &mut Builder, c: &TCond) -> Cond {
        match c {
            TCond::Cmp(op, x, y) => {
                let x = self.expr(b, x);
                let y = self.expr(b, y);
                Cond::Cmp(*op, Box::new(x), Box::new(y))
            }
            TCond::And(x, y) => Cond::And(Box::new(self.cond(b, x)), Box::new(self.cond(b, y))),
            TCond::Or(x, y) => Cond::Or(Box::new(self.cond(b, x)), Box::new(self.cond(b, y))),
            TCond::Not(x) => Cond::Not(Box::new(self.cond(b, x))),
        }
    }
}
