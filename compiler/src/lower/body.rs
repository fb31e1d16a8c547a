//! The body of a `generic` → scalar loop-IR instructions, each placed at the outermost loop
//! level where its operands are available.
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
//! **Vector mode** ([`BodyLowerer::set_vector`]): an input whose map has the vectorised index
//! is read as one vector of `lanes` consecutive elements (the caller has checked that the index
//! addresses only its last axis, with unit stride), and an operation with a vector operand is
//! a vector operation, its scalar operands splatted where they are defined. Everything that
//! does not depend on the vectorised index stays scalar and hoisted. The same lowerer can then
//! lower the body again in scalar mode, or with another loop variable for an index (an
//! unrolled copy or a tail loop): what it cached for the levels of that index is forgotten,
//! what it placed outside them is reused.

use super::{FnLowerer, LowerError};
use crate::ir::loops::{CmpOp, Inst, Op, Type, UnaryFn, ValueId};
use crate::ir::tensor::{AxisMap, Cond, Expr, Extent, Generic, IndexId};
use einc_runtime::{DType, Scalar};
use std::collections::HashMap;

/// A lowered value and the loop level it is defined at.
type Placed = (ValueId, usize);

/// Lowers the body of one `generic` into the levels of its nest.
pub(super) struct BodyLowerer<'a, 'm> {
    /// The function being lowered.
    pub fl: &'a mut FnLowerer<'m>,
    g: &'a Generic,
    levels: &'a mut [Vec<Inst>],
    /// The loop variable of each index, by `IndexId`.
    vars: Vec<ValueId>,
    /// The level of each index's loop, by `IndexId`.
    depth_of: &'a [usize],
    /// The vectorised index and its lanes, in vector mode.
    vector: Option<(IndexId, u32)>,
    /// Each input's load, once emitted (its map is the same at every use).
    loads: Vec<Option<Placed>>,
    /// Each index's value as `i64`, once emitted.
    index_values: Vec<Option<Placed>>,
    /// The splat of each scalar value, once emitted.
    splats: HashMap<ValueId, Placed>,
}

impl<'a, 'm> BodyLowerer<'a, 'm> {
    pub fn new(
        fl: &'a mut FnLowerer<'m>,
        g: &'a Generic,
        levels: &'a mut [Vec<Inst>],
        vars: &[ValueId],
        depth_of: &'a [usize],
    ) -> Self {
        BodyLowerer {
            fl,
            g,
            levels,
            vars: vars.to_vec(),
            depth_of,
            vector: None,
            loads: vec![None; g.inputs.len()],
            index_values: vec![None; g.indices.len()],
            splats: HashMap::new(),
        }
    }

    /// Forgets every value cached at level `depth` or deeper (they are not visible where the
    /// next lowering of the body goes).
    fn forget_from(&mut self, depth: usize) {
        let keep = |p: &Option<Placed>| p.filter(|&(_, d)| d < depth);
        self.loads = self.loads.iter().map(keep).collect();
        self.index_values = self.index_values.iter().map(keep).collect();
        self.splats.retain(|_, &mut (_, d)| d < depth);
    }

    /// The level of index `id`'s loop (the innermost level when out of range).
    fn depth(&self, id: IndexId) -> usize {
        self.depth_of
            .get(id.0 as usize)
            .copied()
            .unwrap_or_else(|| self.innermost())
    }

    /// Lowers the next bodies with `var` as the loop variable of index `id`.
    pub fn set_var(&mut self, id: IndexId, var: ValueId) {
        if let Some(slot) = self.vars.get_mut(id.0 as usize) {
            *slot = var;
        }
        self.forget_from(self.depth(id));
    }

    /// Lowers the next bodies in vector mode along `vector` (index, lanes), or in scalar mode.
    pub fn set_vector(&mut self, vector: Option<(IndexId, u32)>) {
        let changed = self
            .vector
            .iter()
            .chain(&vector)
            .map(|&(i, _)| self.depth(i))
            .min();
        self.vector = vector;
        if let Some(depth) = changed {
            self.forget_from(depth);
        }
    }

    /// `v` as a vector of `lanes` lanes: `v` itself if it is one, else its splat, defined once
    /// at `v`'s level.
    pub fn splat(&mut self, (v, depth): Placed, lanes: u32) -> Result<Placed, LowerError> {
        let ty = self.type_of(v)?;
        let Type::Scalar(dtype) = ty else {
            return Ok((v, depth));
        };
        if let Some(&placed) = self.splats.get(&v) {
            return Ok(placed);
        }
        let placed = self.emit_placed(depth, Op::Splat(v, lanes), Type::Vector(dtype, lanes))?;
        self.splats.insert(v, placed);
        Ok(placed)
    }

    /// Two operands of one operation: splats the scalar one when the other is a vector.
    fn unify(&mut self, a: Placed, b: Placed) -> Result<(Placed, Placed, Type), LowerError> {
        match (self.type_of(a.0)?, self.type_of(b.0)?) {
            (Type::Vector(_, lanes), Type::Scalar(_)) => {
                let b = self.splat(b, lanes)?;
                Ok((a, b, self.type_of(a.0)?))
            }
            (Type::Scalar(_), Type::Vector(_, lanes)) => {
                let a = self.splat(a, lanes)?;
                Ok((a, b, self.type_of(b.0)?))
            }
            (ty, _) => Ok((a, b, ty)),
        }
    }

    /// The instructions of level `depth`.
    pub fn level(&mut self, depth: usize) -> Result<&mut Vec<Inst>, LowerError> {
        match self.levels.get_mut(depth) {
            Some(block) => Ok(block),
            None => Err(self.fl.error(format!("loop level {depth} does not exist"))),
        }
    }

    /// The current loop variable of index `id` (the function's index 0 when out of range).
    pub fn var(&self, id: IndexId) -> ValueId {
        self.vars.get(id.0 as usize).copied().unwrap_or(ValueId(0))
    }

    /// The innermost level.
    fn innermost(&self) -> usize {
        self.levels.len().saturating_sub(1)
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
            None => Err(self.fl.error(format!("loop level {depth} does not exist"))),
        }
    }

    fn emit_placed(&mut self, depth: usize, op: Op, ty: Type) -> Result<Placed, LowerError> {
        Ok((self.emit(depth, op, ty)?, depth))
    }

    fn type_of(&self, v: ValueId) -> Result<Type, LowerError> {
        self.fl.type_of(v)
    }

    /// Lowers `e`, which must have type `ty` (the op's dtype, or its vector in vector mode: a
    /// scalar result is then splatted).
    pub fn expr_of_type(&mut self, e: &Expr, ty: Type) -> Result<Placed, LowerError> {
        let mut placed = self.expr(e)?;
        if let (Type::Vector(_, lanes), Type::Scalar(_)) = (ty, self.type_of(placed.0)?) {
            placed = self.splat(placed, lanes)?;
        }
        let actual = self.type_of(placed.0)?;
        if actual != ty {
            return Err(self.fl.error(format!(
                "a body expression has type {actual:?} where {ty:?} is needed"
            )));
        }
        Ok(placed)
    }

    /// The loop variable and level of an index.
    fn index(&self, id: IndexId) -> Result<Placed, LowerError> {
        let i = id.0 as usize;
        match (self.vars.get(i), self.depth_of.get(i)) {
            (Some(&v), Some(&d)) => Ok((v, d)),
            _ => Err(self
                .fl
                .error(format!("the body uses index #{i}, which is out of range"))),
        }
    }

    /// Lowers a body expression.
    pub fn expr(&mut self, e: &Expr) -> Result<Placed, LowerError> {
        match e {
            Expr::Input(n) => self.load(*n),
            Expr::Index(id) => {
                let cached = self.index_values.get(id.0 as usize).copied().flatten();
                if let Some(placed) = cached {
                    return Ok(placed);
                }
                let (var, depth) = self.index(*id)?;
                let placed =
                    self.emit_placed(depth, Op::Cast(DType::I64, var), Type::Scalar(DType::I64))?;
                if let Some(slot) = self.index_values.get_mut(id.0 as usize) {
                    *slot = Some(placed);
                }
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
                let ((a, da), (b, db), ty) = self.unify(a, b)?;
                self.emit_placed(da.max(db), Op::Binary(*f, a, b), ty)
            }
            Expr::Select(c, a, b) => {
                let (c, dc) = self.cond(c)?;
                let (a, da) = self.expr(a)?;
                let (b, db) = self.expr(b)?;
                let ty = self.type_of(a)?;
                if matches!(ty, Type::Vector(..)) || matches!(self.type_of(b)?, Type::Vector(..)) {
                    return Err(self.fl.error("a `select` cannot be vectorised"));
                }
                self.emit_placed(dc.max(da).max(db), Op::Select(c, a, b), ty)
            }
            Expr::Cast(dtype, x) => {
                let (x, d) = self.expr(x)?;
                self.emit_placed(d, Op::Cast(*dtype, x), Type::Scalar(*dtype))
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

    /// The element of input `n` at the current point, loaded once per op.
    fn load(&mut self, n: u32) -> Result<Placed, LowerError> {
        let g = self.g;
        let input = g.inputs.get(n as usize).ok_or_else(|| {
            self.fl
                .error(format!("the body reads input %{n}, which is missing"))
        })?;
        if let Some(Some(placed)) = self.loads.get(n as usize) {
            return Ok(*placed);
        }
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
        let lanes = match self.vector {
            Some((v, lanes)) if input.map.contains(&AxisMap::Index(v)) => lanes,
            _ => 1,
        };
        for (map, extent) in input.map.iter().zip(&shape) {
            match *map {
                AxisMap::Index(id) => {
                    let (var, d) = self.index(id)?;
                    index.push(var);
                    depth = depth.max(d);
                }
                AxisMap::Fixed(p) => {
                    index.push(self.fl.index_const_u64(p)?);
                    if !self.provably_below(p, extent) {
                        depth = self.innermost();
                    }
                }
            }
        }
        let op = Op::Load {
            buffer,
            index,
            lanes,
        };
        let ty = if lanes == 1 {
            Type::Scalar(dtype)
        } else {
            Type::Vector(dtype, lanes)
        };
        let placed = self.emit_placed(depth, op, ty)?;
        if let Some(slot) = self.loads.get_mut(n as usize) {
            *slot = Some(placed);
        }
        Ok(placed)
    }

    /// True when position `p` is known, before the call, to be inside an axis of this extent.
    fn provably_below(&self, p: u64, extent: &Extent) -> bool {
        let size = match extent {
            Extent::Fixed(n) => Some(*n),
            Extent::Dim(name) => self.fl.module.dim_value(name),
        };
        size.is_some_and(|n| p < n)
    }

    /// The loop variables of `ids` and the level where all are defined.
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
