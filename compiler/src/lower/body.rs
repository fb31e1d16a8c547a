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

use super::{FnLowerer, LowerError};
use crate::ir::loops::{CmpOp, Inst, Op, Type, UnaryFn, ValueId};
use crate::ir::tensor::{AxisMap, Cond, Expr, Extent, Generic};
use einc_runtime::{DType, Scalar};

/// A lowered value and the loop level it is defined at.
type Placed = (ValueId, usize);

/// Lowers the body of one `generic` into the levels of its nest.
pub(super) struct BodyLowerer<'a, 'm> {
    /// The function being lowered.
    pub fl: &'a mut FnLowerer<'m>,
    g: &'a Generic,
    levels: &'a mut [Vec<Inst>],
    /// The loop variable of each index, by `IndexId`.
    vars: &'a [ValueId],
    /// The level of each index's loop, by `IndexId`.
    depth_of: &'a [usize],
    /// Each input's load, once emitted (its map is the same at every use).
    loads: Vec<Option<Placed>>,
    /// Each index's value as `i64`, once emitted.
    index_values: Vec<Option<Placed>>,
}

impl<'a, 'm> BodyLowerer<'a, 'm> {
    pub fn new(
        fl: &'a mut FnLowerer<'m>,
        g: &'a Generic,
        levels: &'a mut [Vec<Inst>],
        vars: &'a [ValueId],
        depth_of: &'a [usize],
    ) -> Self {
        BodyLowerer {
            fl,
            g,
            levels,
            vars,
            depth_of,
            loads: vec![None; g.inputs.len()],
            index_values: vec![None; g.indices.len()],
        }
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

    /// Lowers `e`, which must have type `ty` (the op's dtype).
    pub fn expr_of_type(&mut self, e: &Expr, ty: Type) -> Result<Placed, LowerError> {
        let placed = self.expr(e)?;
        let actual = self.type_of(placed.0)?;
        if actual != ty {
            return Err(self.fl.error(format!(
                "a body expression has type {actual:?} where {ty:?} is needed"
            )));
        }
        Ok(placed)
    }

    /// The loop variable and level of an index.
    fn index(&self, id: crate::ir::tensor::IndexId) -> Result<Placed, LowerError> {
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
                let (a, da) = self.expr(a)?;
                let (b, db) = self.expr(b)?;
                let ty = self.type_of(a)?;
                self.emit_placed(da.max(db), Op::Binary(*f, a, b), ty)
            }
            Expr::Select(c, a, b) => {
                let (c, dc) = self.cond(c)?;
                let (a, da) = self.expr(a)?;
                let (b, db) = self.expr(b)?;
                let ty = self.type_of(a)?;
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
            lanes: 1,
        };
        let placed = self.emit_placed(depth, op, Type::Scalar(dtype))?;
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
    fn index_vars(
        &self,
        ids: &[crate::ir::tensor::IndexId],
    ) -> Result<(Vec<ValueId>, usize), LowerError> {
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
    fn delta(
        &mut self,
        ids: &[crate::ir::tensor::IndexId],
        dtype: DType,
    ) -> Result<Placed, LowerError> {
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
    fn eps(
        &mut self,
        ids: &[crate::ir::tensor::IndexId],
        dtype: DType,
    ) -> Result<Placed, LowerError> {
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
