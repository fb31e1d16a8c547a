//! The body of a `generic` → loop-IR instructions, each placed at the outermost loop level
//! where its operands are available.
//!
//! A node's level is the deepest level of its operands: an index value lives at its loop's
//! level, a load at the level of the deepest index in its map, constants at the function entry
//! (level 0 is the start of the nest). So `A[i] * B[i, k]` loads `A[i]` once per `i`, not once
//! per `k`. Every instruction is pure, so evaluating it where its operands are ready computes
//! what the point-by-point semantics computes. The one exception is a load at a fixed position
//! the IR cannot prove in range (an axis with a symbolic extent): it stays in the innermost
//! loop, where it runs only when the iteration space is not empty, as in the interpreter.
//!
//! The mapping is one to one (`Index` → `cast<i64>` of the loop variable, `Lit` → a constant,
//! `DimValue` → a cast of the dim) except for `Delta`, a select on the comparisons of its
//! indices, and `Eps`, the permutation sign built from comparisons and selects (no tables).
//!
//! **Copies and vectors.** The nest builder may evaluate the body several times in one loop
//! body (an unrolled loop, jammed into the innermost level: one *copy* per unrolled point) by
//! giving an index a different value before each evaluation ([`BodyLowerer::set_var`]). Each
//! node is memoised by the values of the indices it depends on, so a subexpression that does not
//! vary between copies (`x[j]` in a matrix-vector product unrolled over `i`) is computed once.
//! In a vectorised loop ([`BodyLowerer::set_vector`]) the vectorised index's value is the first
//! of `lanes` consecutive points: nodes that depend on it become vectors (a load along the last
//! axis becomes a vector load), the others stay scalars and are splat where they meet a vector.
//! [`vectorisable`] says when a body can be evaluated that way.

use super::{FnLowerer, LowerError};
use crate::ir::loops::{BufferId, CmpOp, Inst, Op, Type, UnaryFn, ValueId};
use crate::ir::tensor::{AxisMap, Cond, Expr, Extent, Generic, IndexId};
use einc_runtime::{DType, Scalar};
use std::collections::HashMap;

/// A lowered value and the loop level it is defined at.
pub(super) type Placed = (ValueId, usize);

/// What a memoised value is: a load or index value by the values of its indices, any other
/// body node by its address in the body and the values of the indices it depends on, or the
/// splat of a scalar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Load(u32, Vec<ValueId>),
    Index(ValueId),
    Node(usize, Vec<ValueId>),
    Splat(ValueId),
}

/// Lowers the body of one `generic` into the open levels of its nest.
pub(super) struct BodyLowerer<'a, 'm> {
    /// The function being lowered.
    pub fl: &'a mut FnLowerer<'m>,
    g: &'a Generic,
    /// The open blocks, outermost first: `levels[d]` receives the instructions of level `d`.
    levels: Vec<Vec<Inst>>,
    /// The current value of each index, by `IndexId`.
    vars: Vec<ValueId>,
    /// The level of each index's loop, by `IndexId`.
    depth_of: Vec<usize>,
    /// The vectorised index and its lanes, while the innermost loop is a vector loop.
    vector: Option<(IndexId, u32)>,
    /// Values already computed, with their level (dropped when the level closes).
    memo: HashMap<Key, Placed>,
    /// The indices each body node reads, sorted, by the node's address.
    deps: HashMap<usize, Vec<IndexId>>,
    /// Inputs whose element is already computed (a fused producer's value), by body `%n`.
    given: HashMap<u32, Placed>,
}

impl<'a, 'm> BodyLowerer<'a, 'm> {
    /// A lowerer for `g` whose index `i` is the loop at level `depth_of[i]` (level 0 is open).
    pub fn new(fl: &'a mut FnLowerer<'m>, g: &'a Generic, depth_of: Vec<usize>) -> Self {
        let zero = fl.index_const(0);
        BodyLowerer {
            fl,
            g,
            levels: vec![Vec::new()],
            vars: vec![zero; g.indices.len()],
            depth_of,
            vector: None,
            memo: HashMap::new(),
            deps: HashMap::new(),
            given: HashMap::new(),
        }
    }

    /// The number of open levels minus one: the level instructions go to by default.
    pub fn depth(&self) -> usize {
        self.levels.len().saturating_sub(1)
    }

    /// Opens the next level (the body of a loop being built).
    pub fn open(&mut self) {
        self.levels.push(Vec::new());
    }

    /// Closes the innermost level and returns its instructions; values defined there are
    /// forgotten.
    pub fn close(&mut self) -> Vec<Inst> {
        let d = self.depth();
        self.memo.retain(|_, &mut (_, level)| level < d);
        self.levels.pop().unwrap_or_default()
    }

    /// Appends an instruction to level `depth`.
    pub fn push(&mut self, depth: usize, inst: Inst) -> Result<(), LowerError> {
        match self.levels.get_mut(depth) {
            Some(block) => {
                block.push(inst);
                Ok(())
            }
            None => Err(self.fl.error(format!("loop level {depth} is not open"))),
        }
    }

    /// Sets the current value of index `i` (a loop variable, or an offset from one).
    pub fn set_var(&mut self, i: IndexId, v: ValueId) {
        if let Some(slot) = self.vars.get_mut(i.0 as usize) {
            *slot = v;
        }
    }

    /// The current value of index `i`.
    pub fn var(&self, i: IndexId) -> Result<ValueId, LowerError> {
        self.vars
            .get(i.0 as usize)
            .copied()
            .ok_or_else(|| self.fl.error(format!("index #{} is out of range", i.0)))
    }

    /// Makes the body read `v` as the element of input `n` instead of loading it (the value
    /// of a producer fused into the nest, computed there).
    pub fn give_input(&mut self, n: u32, v: Placed) {
        self.given.insert(n, v);
    }

    /// Makes index `i` the vectorised one, with `lanes` lanes (or none).
    pub fn set_vector(&mut self, vector: Option<(IndexId, u32)>) {
        self.vector = vector;
    }

    /// Appends `op` to level `depth` as a new value of type `ty`.
    pub fn emit(&mut self, depth: usize, op: Op, ty: Type) -> Result<ValueId, LowerError> {
        let prefix = if matches!(op, Op::Load { .. }) {
            "ld"
        } else {
            "v"
        };
        match self.levels.get_mut(depth) {
            Some(block) => Ok(self.fl.assign(block, prefix, op, ty)),
            None => Err(self.fl.error(format!("loop level {depth} is not open"))),
        }
    }

    fn emit_placed(&mut self, depth: usize, op: Op, ty: Type) -> Result<Placed, LowerError> {
        Ok((self.emit(depth, op, ty)?, depth))
    }

    /// The type of a value the lowering defined.
    pub fn type_of(&self, v: ValueId) -> Result<Type, LowerError> {
        self.fl.type_of(v)
    }

    /// `v` as a vector of `lanes` lanes: itself when it is one, else its splat (placed with
    /// `v`, once).
    pub fn splat(&mut self, (v, d): Placed, lanes: u32) -> Result<Placed, LowerError> {
        let t = self.type_of(v)?;
        let Type::Scalar(dtype) = t else {
            return Ok((v, d));
        };
        if let Some(&p) = self.memo.get(&Key::Splat(v)) {
            return Ok(p);
        }
        let p = self.emit_placed(d, Op::Splat(v, lanes), Type::Vector(dtype, lanes))?;
        self.memo.insert(Key::Splat(v), p);
        Ok(p)
    }

    /// Operands of one operation with equal types: the scalars among them splat when another
    /// is a vector.
    pub fn unify(&mut self, ops: &[Placed]) -> Result<Vec<Placed>, LowerError> {
        let mut lanes = None;
        for &(v, _) in ops {
            if let Type::Vector(_, n) = self.type_of(v)? {
                lanes = Some(n);
            }
        }
        match lanes {
            None => Ok(ops.to_vec()),
            Some(n) => ops.iter().map(|&p| self.splat(p, n)).collect(),
        }
    }

    /// Lowers `e`, whose elements must have dtype `dtype` (a scalar, or a vector in a vector
    /// loop).
    pub fn expr_of_type(&mut self, e: &Expr, dtype: DType) -> Result<Placed, LowerError> {
        let placed = self.expr(e)?;
        let actual = self.type_of(placed.0)?;
        if actual.dtype() != Some(dtype) {
            return Err(self.fl.error(format!(
                "a body expression has type {actual:?} where {dtype} is needed"
            )));
        }
        Ok(placed)
    }

    /// The loop level of an index.
    fn depth_of(&self, id: IndexId) -> Result<usize, LowerError> {
        self.depth_of.get(id.0 as usize).copied().ok_or_else(|| {
            self.fl.error(format!(
                "the body uses index #{}, which is out of range",
                id.0
            ))
        })
    }

    /// The current value and level of an index.
    fn index(&self, id: IndexId) -> Result<Placed, LowerError> {
        Ok((self.var(id)?, self.depth_of(id)?))
    }

    /// The memo key of node `e`: its address and the current values of the indices it reads.
    fn node_key(&mut self, e: &Expr) -> Result<Key, LowerError> {
        let at = std::ptr::from_ref(e) as usize;
        let g = self.g;
        let ids = self.deps.entry(at).or_insert_with(|| {
            let mut ids = Vec::new();
            expr_indices(g, e, &mut ids);
            ids.sort();
            ids.dedup();
            ids
        });
        let vars = ids
            .iter()
            .map(|&i| self.vars.get(i.0 as usize).copied())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.fl.error("the body uses an index out of range"))?;
        Ok(Key::Node(at, vars))
    }

    /// Lowers a body expression (memoised per node and index values).
    pub fn expr(&mut self, e: &Expr) -> Result<Placed, LowerError> {
        let key = match e {
            // Loads and index values have keys of their own (shared by equal nodes).
            Expr::Input(_) | Expr::Index(_) | Expr::Lit(_) => None,
            _ => Some(self.node_key(e)?),
        };
        if let Some(&p) = key.as_ref().and_then(|k| self.memo.get(k)) {
            return Ok(p);
        }
        let placed = self.node(e)?;
        if let Some(k) = key {
            self.memo.insert(k, placed);
        }
        Ok(placed)
    }

    fn node(&mut self, e: &Expr) -> Result<Placed, LowerError> {
        match e {
            Expr::Input(n) => self.load(*n),
            Expr::Index(id) => {
                let (var, depth) = self.index(*id)?;
                if let Some(&p) = self.memo.get(&Key::Index(var)) {
                    return Ok(p);
                }
                let placed =
                    self.emit_placed(depth, Op::Cast(DType::I64, var), Type::Scalar(DType::I64))?;
                self.memo.insert(Key::Index(var), placed);
                Ok(placed)
            }
            Expr::Lit(s) => Ok((self.fl.scalar_const(*s), 0)),
            Expr::DimValue(name, dtype) => {
                let dim = self.fl.extent(&Extent::Dim(name.clone()))?;
                self.emit_placed(0, Op::Cast(*dtype, dim), Type::Scalar(*dtype))
            }
            Expr::Unary(f, x) => {
                let (x, d) = self.expr(x)?;
                let ty = self.type_of(x)?;
                self.emit_placed(d, Op::Unary(*f, x), ty)
            }
            Expr::Binary(f, a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                let [(a, da), (b, db)] = self.unify(&[a, b])?[..] else {
                    return Err(self.fl.error("a binary function lost an operand"));
                };
                let ty = self.type_of(a)?;
                self.emit_placed(da.max(db), Op::Binary(*f, a, b), ty)
            }
            Expr::Select(c, a, b) => {
                let (c, dc) = self.cond(c)?;
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                let [(a, da), (b, db)] = self.unify(&[a, b])?[..] else {
                    return Err(self.fl.error("a select lost an operand"));
                };
                let ty = self.type_of(a)?;
                self.emit_placed(dc.max(da).max(db), Op::Select(c, a, b), ty)
            }
            Expr::Cast(dtype, x) => {
                let (x, d) = self.expr(x)?;
                let ty = match self.type_of(x)? {
                    Type::Vector(_, n) => Type::Vector(*dtype, n),
                    _ => Type::Scalar(*dtype),
                };
                self.emit_placed(d, Op::Cast(*dtype, x), ty)
            }
            Expr::Delta(ids, dtype) => self.delta(ids, *dtype),
            Expr::Eps(ids, dtype) => self.eps(ids, *dtype),
        }
    }

    fn cond(&mut self, c: &Cond) -> Result<Placed, LowerError> {
        match c {
            Cond::Cmp(op, a, b) => {
                let (a, da) = self.expr(a)?;
                let (b, db) = self.expr(b)?;
                self.emit_placed(da.max(db), Op::Cmp(*op, a, b), Type::Bool)
            }
            Cond::And(a, b) => {
                let (a, da) = self.cond(a)?;
                let (b, db) = self.cond(b)?;
                self.emit_placed(da.max(db), Op::And(a, b), Type::Bool)
            }
            Cond::Or(a, b) => {
                let (a, da) = self.cond(a)?;
                let (b, db) = self.cond(b)?;
                self.emit_placed(da.max(db), Op::Or(a, b), Type::Bool)
            }
            Cond::Not(a) => {
                let (a, d) = self.cond(a)?;
                self.emit_placed(d, Op::Not(a), Type::Bool)
            }
        }
    }

    /// The element of input `n` at the current point (a vector of `lanes` elements along its
    /// last axis when the map reads the vectorised index there), loaded once per point.
    fn load(&mut self, n: u32) -> Result<Placed, LowerError> {
        if let Some(&given) = self.given.get(&n) {
            return Ok(given);
        }
        let g = self.g;
        let input = g.inputs.get(n as usize).ok_or_else(|| {
            self.fl
                .error(format!("the body reads input %{n}, which is missing"))
        })?;
        let buffer = self.fl.buffer_of(input.value)?;
        let def = self.fl.buffer_def(buffer)?;
        let (dtype, shape) = (def.dtype, def.shape.clone());
        if shape.len() != input.map.len() {
            return Err(self.fl.error(format!(
                "input %{n} has a map of {} entries for a value of rank {}",
                input.map.len(),
                shape.len()
            )));
        }
        let mut depth = 0;
        let mut index = Vec::with_capacity(shape.len());
        let mut lanes = 1;
        for (map, extent) in input.map.iter().zip(&shape) {
            match *map {
                AxisMap::Index(id) => {
                    let (var, d) = self.index(id)?;
                    index.push(var);
                    depth = depth.max(d);
                    if let Some((v, n)) = self.vector {
                        if v == id {
                            lanes = n;
                        }
                    }
                }
                AxisMap::Fixed(p) => {
                    index.push(self.fl.index_const_u64(p)?);
                    if !self.provably_below(p, extent) {
                        depth = self.depth();
                    }
                }
            }
        }
        let key = Key::Load(n, index.clone());
        if let Some(&p) = self.memo.get(&key) {
            return Ok(p);
        }
        let ty = if lanes == 1 {
            Type::Scalar(dtype)
        } else {
            Type::Vector(dtype, lanes)
        };
        let op = Op::Load {
            buffer,
            index,
            lanes,
        };
        let placed = self.emit_placed(depth, op, ty)?;
        self.memo.insert(key, placed);
        Ok(placed)
    }

    /// True when position `p` is known, before the call, to be inside an axis of this extent.
    fn provably_below(&self, p: u64, extent: &Extent) -> bool {
        self.fl.known_extent(extent).is_some_and(|n| p < n)
    }

    /// The current values of `ids` and the level where all are defined.
    fn index_vars(&self, ids: &[IndexId]) -> Result<(Vec<ValueId>, usize), LowerError> {
        let mut vars = Vec::with_capacity(ids.len());
        let mut depth = 0;
        for &id in ids {
            let (v, d) = self.index(id)?;
            vars.push(v);
            depth = depth.max(d);
        }
        Ok((vars, depth))
    }

    /// `delta(i, j, ...)`: 1 when all the index values are equal, else 0.
    fn delta(&mut self, ids: &[IndexId], dtype: DType) -> Result<Placed, LowerError> {
        let (vars, depth) = self.index_vars(ids)?;
        let one = self.fl.scalar_const(Scalar::I32(1).cast(dtype));
        let mut all_equal = None;
        for pair in vars.windows(2) {
            if let [a, b] = *pair {
                let eq = self.emit(depth, Op::Cmp(CmpOp::Eq, a, b), Type::Bool)?;
                all_equal = Some(match all_equal {
                    None => eq,
                    Some(acc) => self.emit(depth, Op::And(acc, eq), Type::Bool)?,
                });
            }
        }
        let Some(all_equal) = all_equal else {
            return Ok((one, 0));
        };
        let zero = self.fl.scalar_const(Scalar::zero(dtype));
        self.emit_placed(depth, Op::Select(all_equal, one, zero), Type::Scalar(dtype))
    }

    /// `eps(i, j, k, ...)`: the sign of the permutation (flipped once per pair out of order),
    /// or 0 when two index values are equal.
    fn eps(&mut self, ids: &[IndexId], dtype: DType) -> Result<Placed, LowerError> {
        let (vars, depth) = self.index_vars(ids)?;
        let ty = Type::Scalar(dtype);
        let mut sign = self.fl.scalar_const(Scalar::I32(1).cast(dtype));
        let mut any_equal = None;
        for (n, &a) in vars.iter().enumerate() {
            for &b in vars.iter().skip(n + 1) {
                let inverted = self.emit(depth, Op::Cmp(CmpOp::Gt, a, b), Type::Bool)?;
                let flipped = self.emit(depth, Op::Unary(UnaryFn::Neg, sign), ty)?;
                sign = self.emit(depth, Op::Select(inverted, flipped, sign), ty)?;
                let eq = self.emit(depth, Op::Cmp(CmpOp::Eq, a, b), Type::Bool)?;
                any_equal = Some(match any_equal {
                    None => eq,
                    Some(acc) => self.emit(depth, Op::Or(acc, eq), Type::Bool)?,
                });
            }
        }
        let Some(any_equal) = any_equal else {
            return Ok((sign, 0));
        };
        let zero = self.fl.scalar_const(Scalar::zero(dtype));
        self.emit_placed(depth, Op::Select(any_equal, zero, sign), ty)
    }
}

/// Appends the indices node `e` reads (through index values, input maps, delta and eps,
/// conditions included).
fn expr_indices(g: &Generic, e: &Expr, out: &mut Vec<IndexId>) {
    match e {
        Expr::Index(i) => out.push(*i),
        Expr::Input(k) => {
            if let Some(input) = g.inputs.get(*k as usize) {
                out.extend(input.map.iter().filter_map(|a| match a {
                    AxisMap::Index(i) => Some(*i),
                    AxisMap::Fixed(_) => None,
                }));
            }
        }
        Expr::Delta(ids, _) | Expr::Eps(ids, _) => out.extend(ids.iter().copied()),
        Expr::Lit(_) | Expr::DimValue(..) => {}
        Expr::Unary(_, x) | Expr::Cast(_, x) => expr_indices(g, x, out),
        Expr::Binary(_, a, b) => {
            expr_indices(g, a, out);
            expr_indices(g, b, out);
        }
        Expr::Select(c, a, b) => {
            cond_indices(g, c, out);
            expr_indices(g, a, out);
            expr_indices(g, b, out);
        }
    }
}

fn cond_indices(g: &Generic, c: &Cond, out: &mut Vec<IndexId>) {
    match c {
        Cond::Cmp(_, a, b) => {
            expr_indices(g, a, out);
            expr_indices(g, b, out);
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            cond_indices(g, a, out);
            cond_indices(g, b, out);
        }
        Cond::Not(a) => cond_indices(g, a, out),
    }
}

/// Whether `e` reads index `i`.
fn reads(g: &Generic, e: &Expr, i: IndexId) -> bool {
    let mut ids = Vec::new();
    expr_indices(g, e, &mut ids);
    ids.contains(&i)
}

/// Why the body of `g` cannot be evaluated with index `v` vectorised (its value the first of
/// `lanes` consecutive points), or `None` when it can. `unit_last(n)` says whether input `n`'s
/// buffer has a unit stride on its last axis. A body can be vectorised when every input that
/// reads `v` reads it once, on its unit-stride last axis (a vector load), and every node that
/// depends on `v` is arithmetic on elements of `lanes` lanes: no value of `v` itself, no
/// comparison, delta or eps depending on it (the loop IR has no vector comparisons), no cast to
/// a dtype of another width.
pub(super) fn vectorisable(
    g: &Generic,
    v: IndexId,
    lanes: u32,
    dtype_of_input: &dyn Fn(usize) -> Option<DType>,
    unit_last: &dyn Fn(usize) -> bool,
) -> Option<String> {
    let width = |d: DType| 16 / d.size_bytes();
    let lanes = lanes as usize;
    for (n, input) in g.inputs.iter().enumerate() {
        let uses = input
            .map
            .iter()
            .filter(|a| **a == AxisMap::Index(v))
            .count();
        if uses == 0 {
            continue;
        }
        if uses > 1 || input.map.last() != Some(&AxisMap::Index(v)) {
            return Some(format!(
                "input %{n} does not read it on its last axis alone"
            ));
        }
        if !unit_last(n) {
            return Some(format!(
                "input %{n} may have a non-unit stride on its last axis"
            ));
        }
    }
    let mut why = None;
    check_vector_expr(g, &g.body, v, lanes, &width, dtype_of_input, &mut why);
    why
}

/// The dtype of `e` (input dtypes from `dtype_of_input`), recording in `why` the first reason
/// it cannot be vectorised along `v`.
fn check_vector_expr(
    g: &Generic,
    e: &Expr,
    v: IndexId,
    lanes: usize,
    width: &dyn Fn(DType) -> usize,
    dtype_of_input: &dyn Fn(usize) -> Option<DType>,
    why: &mut Option<String>,
) -> Option<DType> {
    let fail = |why: &mut Option<String>, reason: &str| {
        why.get_or_insert_with(|| reason.to_string());
    };
    let sub = |x: &Expr, why: &mut Option<String>| {
        check_vector_expr(g, x, v, lanes, width, dtype_of_input, why)
    };
    let dtype = match e {
        Expr::Input(n) => dtype_of_input(*n as usize),
        Expr::Index(i) => {
            if *i == v {
                fail(why, "the body uses the value of the vectorised index");
            }
            Some(DType::I64)
        }
        Expr::Lit(s) => Some(s.dtype()),
        Expr::DimValue(_, d) => Some(*d),
        Expr::Unary(_, x) => sub(x, why),
        Expr::Binary(_, a, b) => {
            let d = sub(a, why);
            sub(b, why);
            d
        }
        Expr::Select(c, a, b) => {
            if cond_reads(g, c, v) {
                fail(why, "a condition depends on the vectorised index");
            }
            cond_check(g, c, v, lanes, width, dtype_of_input, why);
            let d = sub(a, why);
            sub(b, why);
            d
        }
        Expr::Cast(d, x) => {
            sub(x, why);
            Some(*d)
        }
        Expr::Delta(ids, d) | Expr::Eps(ids, d) => {
            if ids.contains(&v) {
                fail(why, "a delta or eps depends on the vectorised index");
            }
            Some(*d)
        }
    };
    if let Some(d) = dtype {
        if reads(g, e, v) && width(d) != lanes {
            fail(
                why,
                "a value depending on the vectorised index has another lane count",
            );
        }
    }
    dtype
}

/// Checks the expressions inside a condition (they may be vectorised only where they do not
/// depend on `v`, which [`cond_reads`] rules out for the condition as a whole).
fn cond_check(
    g: &Generic,
    c: &Cond,
    v: IndexId,
    lanes: usize,
    width: &dyn Fn(DType) -> usize,
    dtype_of_input: &dyn Fn(usize) -> Option<DType>,
    why: &mut Option<String>,
) {
    match c {
        Cond::Cmp(_, a, b) => {
            check_vector_expr(g, a, v, lanes, width, dtype_of_input, why);
            check_vector_expr(g, b, v, lanes, width, dtype_of_input, why);
        }
        Cond::And(a, b) | Cond::Or(a, b) => {
            cond_check(g, a, v, lanes, width, dtype_of_input, why);
            cond_check(g, b, v, lanes, width, dtype_of_input, why);
        }
        Cond::Not(a) => cond_check(g, a, v, lanes, width, dtype_of_input, why),
    }
}

/// Whether condition `c` reads index `i`.
fn cond_reads(g: &Generic, c: &Cond, i: IndexId) -> bool {
    let mut ids = Vec::new();
    cond_indices(g, c, &mut ids);
    ids.contains(&i)
}

/// Whether buffer `b` of the function being lowered has a unit stride on its last axis (so
/// vector loads and stores may address it).
pub(super) fn unit_last(fl: &FnLowerer, b: BufferId) -> bool {
    fl.buffer_def(b)
        .is_ok_and(|def| def.layout.unit_last(def.shape.len()))
}
