//! A row-softmax group under a `softmax` schedule → one nest with three passes over each row:
//!
//! 1. the row maximum `M` (a running maximum per lane, and one for the scalar tail, combined at
//!    the end of the row);
//! 2. `P = exp(x - M)`, written to `P`, and the row sum `S` of those values;
//! 3. `P = P / S`, reading back what the second pass wrote.
//!
//! This is the interpreter's formula, `exp(x - max) / sum`, with the exponential computed once
//! per element; only the order of the sum's additions differs (lanes, and a balanced tree per
//! unrolled block). An online max-and-sum (one pass fewer over the source, as FlashAttention
//! needs when the row is never stored) computes every exponential twice here, since `P` must
//! be written after the row's maximum is known; with 128-bit vectors the exponential is the
//! cost, and the row is read back from cache (measured in `docs/performance.md`, "Row softmax").
//!
//! `P.exp` is never materialised; the group's intermediate values (`max`, `exp`, `sum`) are
//! written only when something outside the group reads them (`RowSoftmax::escapes`), `exp`
//! during the second pass. Each pass's running value starts at its identity (-inf, 0), so
//! rows of only -inf entries and empty rows give what the interpreter gives (NaN, and nothing).
//! Inputs of any magnitude stay finite: every exponent is at most 0.
//!
//! The schedule's `order` lists the row indices, then the normalised ones; the last may be
//! vectorised (when the source, `P` and an escaping `exp` have a unit stride along it; the
//! maximum pass only needs the source's) and the normalised indices unrolled (copies of a
//! block). Row indices are not unrolled.

use super::body::{self, BodyLowerer};
use super::nest::{close_loop, copy_values, product, variants, Plan};
use super::{FnLowerer, LowerError};
use crate::analysis::RowSoftmax;
use crate::ir::loops::{BinaryFn, BufferId, Carried, Inst, Op, ReduceKind, Type, UnaryFn, ValueId};
use crate::ir::tensor::{self, AxisMap, Expr, Generic, IndexId, Input};
use einc_runtime::{DType, Scalar};

/// Where the group's values go: `P` and the intermediates that escape, each with the map that
/// addresses it in the division's indices.
pub(super) struct Targets {
    /// The softmax `P`.
    pub p: BufferId,
    /// The row maximum, when read outside the group.
    pub max: Option<(BufferId, Vec<AxisMap>)>,
    /// `exp(x - max)`, when read outside the group.
    pub exp: Option<(BufferId, Vec<AxisMap>)>,
    /// The row sum, when read outside the group.
    pub sum: Option<(BufferId, Vec<AxisMap>)>,
}

/// The parts of a group the lowering needs, in the division's indices.
pub(super) struct Shape {
    /// The division's iteration space, reading the normalised tensor as its one input (through
    /// exp's map translated to the division's indices).
    pub div: Generic,
    /// The map of `exp` and of `P`.
    pub exp_map: Vec<AxisMap>,
    /// The map of the row maximum.
    pub max_map: Vec<AxisMap>,
    /// The map of the row sum (its indices are the row indices).
    pub sum_map: Vec<AxisMap>,
}

/// Reads the group's ops of `func` into a [`Shape`], or says why it cannot.
pub(super) fn shape(func: &tensor::Function, group: &RowSoftmax) -> Result<Shape, String> {
    let op = |k: usize| -> Result<&Generic, String> {
        match func.ops.get(k).map(|o| &o.kind) {
            Some(tensor::OpKind::Generic(g)) => Ok(g),
            None => Err(format!("op #{k} of the softmax group is missing")),
        }
    };
    let (d, e) = (op(group.div)?, op(group.exp)?);
    let bad = || "the softmax group is not the four-op pattern".to_string();
    let (Expr::Binary(BinaryFn::Div, num, den), Expr::Unary(UnaryFn::Exp, shifted)) =
        (&d.body, &e.body)
    else {
        return Err(bad());
    };
    let (Expr::Input(de), Expr::Input(ds)) = (&**num, &**den) else {
        return Err(bad());
    };
    let Expr::Binary(BinaryFn::Sub, x, m) = &**shifted else {
        return Err(bad());
    };
    let (Expr::Input(ex), Expr::Input(em)) = (&**x, &**m) else {
        return Err(bad());
    };
    let input = |g: &Generic, n: u32| g.inputs.get(n as usize).cloned().ok_or_else(bad);
    let (d_exp, d_sum) = (input(d, *de)?, input(d, *ds)?);
    let (e_src, e_max) = (input(e, *ex)?, input(e, *em)?);
    // exp's index `e.output[k]` is the division's `d_exp.map[k]`.
    let translate = |map: &[AxisMap]| -> Result<Vec<AxisMap>, String> {
        map.iter()
            .map(|a| match a {
                AxisMap::Fixed(p) => Ok(AxisMap::Fixed(*p)),
                AxisMap::Index(i) => e
                    .output
                    .iter()
                    .position(|o| o == i)
                    .and_then(|k| d_exp.map.get(k).copied())
                    .ok_or_else(bad),
            })
            .collect()
    };
    Ok(Shape {
        div: Generic {
            inputs: vec![Input {
                value: e_src.value,
                map: translate(&e_src.map)?,
            }],
            body: Expr::Input(0),
            schedule: None,
            ..d.clone()
        },
        exp_map: d_exp.map.clone(),
        max_map: translate(&e_max.map)?,
        sum_map: d_sum.map,
    })
}

/// Lowers the group described by `shape` under `plan` (a complete `softmax` schedule of the
/// division) into instructions writing `targets`.
pub(super) fn lower_softmax(
    fl: &mut FnLowerer,
    shape: &Shape,
    mut plan: Plan,
    targets: &Targets,
) -> Result<Vec<Inst>, LowerError> {
    let g = &shape.div;
    let n = g.indices.len();
    let mut depth_of = vec![0; n];
    for (pos, &i) in plan.order.iter().enumerate() {
        match depth_of.get_mut(i.0 as usize) {
            Some(d) => *d = pos + 1,
            None => return Err(fl.error(format!("index #{} is out of range", i.0))),
        }
    }
    let row_ids: Vec<IndexId> = shape
        .sum_map
        .iter()
        .filter_map(|a| match a {
            AxisMap::Index(i) => Some(*i),
            AxisMap::Fixed(_) => None,
        })
        .collect();
    let rows: Vec<IndexId> = plan
        .order
        .iter()
        .copied()
        .filter(|i| row_ids.contains(i))
        .collect();
    let axes: Vec<IndexId> = plan
        .order
        .iter()
        .copied()
        .filter(|i| !row_ids.contains(i))
        .collect();
    if plan.order.len() != n || plan.order[..rows.len()] != rows[..] {
        return Err(fl.error("a `softmax` schedule must loop over the rows first"));
    }
    let mut write_vector = false;
    if let Some((v, lanes)) = plan.vector {
        if axes.last() == Some(&v) && reads_vectors(fl, shape, v, lanes) {
            write_vector = writes_vectors(fl, shape, targets, v);
        } else {
            plan.vector = None;
        }
    }
    let mut offsets = Vec::with_capacity(n);
    for _ in 0..n {
        offsets.push(vec![fl.index_const(0)]);
    }
    let dtype = g.dtype;
    let mut s = Softmax {
        b: BodyLowerer::new(fl, g, depth_of),
        plan,
        shape,
        targets,
        dtype,
        rows,
        axes,
        offsets,
        in_vector: false,
        write_vector,
        state: State::default(),
        total: None,
    };
    s.rows(0)?;
    Ok(s.b.close())
}

/// Whether the source can be read in vectors along `v` (on a unit-stride last axis).
fn reads_vectors(fl: &FnLowerer, shape: &Shape, v: IndexId, lanes: u32) -> bool {
    let g = &shape.div;
    let src = g.inputs.first().and_then(|i| fl.buffer_of(i.value).ok());
    let dtype_of = |_: usize| src.and_then(|b| fl.buffer_def(b).ok().map(|d| d.dtype));
    let unit = |_: usize| src.is_some_and(|b| body::unit_last(fl, b));
    body::vectorisable(g, v, lanes, &dtype_of, &unit).is_none()
}

/// Whether `P` and an escaping `exp` can be written in vectors along `v` (unit-stride last
/// axes indexed by `v`).
fn writes_vectors(fl: &FnLowerer, shape: &Shape, targets: &Targets, v: IndexId) -> bool {
    let written_along = |b: BufferId, map: &[AxisMap]| {
        map.last() == Some(&AxisMap::Index(v)) && body::unit_last(fl, b)
    };
    written_along(targets.p, &shape.exp_map)
        && targets
            .exp
            .as_ref()
            .is_none_or(|(b, map)| written_along(*b, map))
}

/// The value one pass carries along a row (the running maximum, then the running sum): per
/// lane in vector loops, and for the scalar tail.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    vector: Option<ValueId>,
    scalar: Option<ValueId>,
}

/// The state of building one group's nest.
struct Softmax<'a, 'm> {
    b: BodyLowerer<'a, 'm>,
    plan: Plan,
    shape: &'a Shape,
    targets: &'a Targets,
    dtype: DType,
    /// Row indices and normalised indices, in loop order.
    rows: Vec<IndexId>,
    axes: Vec<IndexId>,
    /// The value of each index in each copy of the loop variant being built, by `IndexId`.
    offsets: Vec<Vec<ValueId>>,
    in_vector: bool,
    /// Whether the passes writing `P` run in vectors (the maximum pass reads vectors whenever
    /// `plan.vector` is set).
    write_vector: bool,
    /// The value the current pass carries.
    state: State,
    /// The row's maximum (during the exponential pass) or sum (during the scaling pass), and
    /// the level it is defined at.
    total: Option<(ValueId, usize)>,
}

/// Which pass over the row a loop belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// The row maximum `M`.
    Max,
    /// `P = exp(x - M)` and the row sum `S` of it.
    ExpSum,
    /// `P = P / S`.
    Scale,
}

impl Pass {
    /// Whether the pass carries a running value along the row.
    fn carries(self) -> bool {
        self != Pass::Scale
    }

    /// The combining function of its running value.
    fn reduce(self) -> (BinaryFn, ReduceKind) {
        if self == Pass::Max {
            (BinaryFn::Max, ReduceKind::Max)
        } else {
            (BinaryFn::Add, ReduceKind::Add)
        }
    }
}

impl Softmax<'_, '_> {
    fn scalar(&self) -> Type {
        Type::Scalar(self.dtype)
    }

    /// The vector (0) or scalar (1) part of the state.
    fn part(&mut self, k: usize) -> &mut Option<ValueId> {
        if k == 0 {
            &mut self.state.vector
        } else {
            &mut self.state.scalar
        }
    }

    fn lanes(&self) -> Option<u32> {
        self.plan.vector.map(|(_, l)| l)
    }

    /// Whether `pass` runs vector loops along the vectorised index (the passes writing `P`
    /// only when it has a unit stride there).
    fn runs_vectors(&self, pass: Pass) -> bool {
        self.plan.vector.is_some() && (pass == Pass::Max || self.write_vector)
    }

    fn index_name(&self, i: IndexId) -> String {
        self.shape
            .div
            .indices
            .get(i.0 as usize)
            .map_or_else(|| format!("i{}", i.0), |d| d.name.clone())
    }

    fn emit(&mut self, op: Op, ty: Type) -> Result<ValueId, LowerError> {
        let d = self.b.depth();
        self.b.emit(d, op, ty)
    }

    fn binary(&mut self, f: BinaryFn, a: ValueId, b: ValueId) -> Result<ValueId, LowerError> {
        let ty = self.b.type_of(a)?;
        self.emit(Op::Binary(f, a, b), ty)
    }

    fn constant(&mut self, x: f64) -> ValueId {
        self.b.fl.scalar_const(Scalar::F64(x).cast(self.dtype))
    }

    /// The loops over the row indices from the `k`-th on, then the three passes.
    fn rows(&mut self, k: usize) -> Result<(), LowerError> {
        let Some(&x) = self.rows.get(k) else {
            return self.row();
        };
        let depth = self.b.depth();
        for variant in variants(&mut self.b, &self.shape.div, x, 1, None)? {
            let var = self.b.fl.named_value(&self.index_name(x), Type::Index);
            self.b.open();
            self.offsets[x.0 as usize] = vec![var];
            self.b.set_var(x, var);
            self.rows(k + 1)?;
            let parallel = self.plan.is_parallel(x);
            close_loop(
                &mut self.b,
                depth,
                var,
                &variant,
                parallel,
                Vec::new(),
                Vec::new(),
            )?;
        }
        Ok(())
    }

    /// One row: the maximum, the exponentials and their sum, the scaling. Each pass's
    /// running value starts at its identity (-inf, 0), so an empty row has `M = -inf` and
    /// `S = 0`, and a row of only -inf has `M = -inf` and `S = NaN`, as the interpreter
    /// computes them.
    fn row(&mut self) -> Result<(), LowerError> {
        let m = self.carry(Pass::Max, f64::NEG_INFINITY)?;
        let targets = self.targets;
        if let Some((buffer, map)) = &targets.max {
            self.store(*buffer, map, m)?;
        }
        self.total = Some((m, self.b.depth()));
        let s = self.carry(Pass::ExpSum, 0.0)?;
        if let Some((buffer, map)) = &targets.sum {
            self.store(*buffer, map, s)?;
        }
        self.total = Some((s, self.b.depth()));
        self.axes_loops(0, Pass::Scale)
    }

    /// Runs `pass`, whose running value starts at `identity`, over the row and returns the
    /// row's value: the lanes' values combined by `reduce_lanes`, then with the tail's.
    fn carry(&mut self, pass: Pass, identity: f64) -> Result<ValueId, LowerError> {
        let init = self.constant(identity);
        let vector = match self.lanes().filter(|_| self.runs_vectors(pass)) {
            Some(l) => Some(self.b.splat((init, 0), l)?.0),
            None => None,
        };
        self.state = State {
            vector,
            scalar: Some(init),
        };
        self.axes_loops(0, pass)?;
        let State { vector, scalar } = self.state;
        let tail = scalar.ok_or_else(|| self.b.fl.error("the softmax tail state is missing"))?;
        let Some(lanes) = vector else {
            return Ok(tail);
        };
        let (f, kind) = pass.reduce();
        let combined = self.emit(Op::ReduceLanes(kind, lanes), self.scalar())?;
        self.binary(f, combined, tail)
    }

    /// Stores `value` into `buffer` at the current values of the indices of `map`.
    fn store(
        &mut self,
        buffer: BufferId,
        map: &[AxisMap],
        value: ValueId,
    ) -> Result<(), LowerError> {
        let index = self.index_of(map)?;
        let depth = self.b.depth();
        self.b.push(
            depth,
            Inst::Store {
                buffer,
                index,
                value,
            },
        )
    }

    /// The current values of the indices of `map`.
    fn index_of(&mut self, map: &[AxisMap]) -> Result<Vec<ValueId>, LowerError> {
        map.iter()
            .map(|a| match a {
                AxisMap::Index(i) => self.b.var(*i),
                AxisMap::Fixed(p) => self.b.fl.index_const_u64(*p),
            })
            .collect()
    }

    /// The loops over the normalised indices from the `k`-th on, for `pass`.
    fn axes_loops(&mut self, k: usize, pass: Pass) -> Result<(), LowerError> {
        let Some(&x) = self.axes.get(k) else {
            return match pass {
                Pass::Max => self.max_leaf(),
                Pass::ExpSum => self.exp_sum_leaf(),
                Pass::Scale => self.scale_leaf(),
            };
        };
        let depth = self.b.depth();
        let vector = self
            .plan
            .vector
            .filter(|&(v, _)| v == x && self.runs_vectors(pass));
        let unroll = self.plan.unroll.get(x.0 as usize).copied().unwrap_or(1);
        let innermost = k + 1 == self.axes.len();
        for variant in variants(
            &mut self.b,
            &self.shape.div,
            x,
            unroll,
            vector.map(|(_, l)| l),
        )? {
            let var = self.b.fl.named_value(&self.index_name(x), Type::Index);
            // A carrying pass carries the vector part in vector loops, the scalar part in the
            // scalar tail, both in outer loops.
            let take = [
                pass.carries() && (!innermost || variant.lanes > 1),
                pass.carries() && (!innermost || variant.lanes == 1),
            ];
            let mut carried = Vec::new();
            for (k, taken) in take.into_iter().enumerate() {
                let Some(init) = *self.part(k) else { continue };
                if !taken {
                    continue;
                }
                let ty = self.b.type_of(init)?;
                let result = self.b.fl.new_value("red", ty);
                let arg = self.b.fl.new_value("acc", ty);
                carried.push((k, Carried { arg, init, result }));
                *self.part(k) = Some(arg);
            }
            self.b.open();
            let values = copy_values(&mut self.b, depth + 1, var, &variant)?;
            self.offsets[x.0 as usize] = values;
            let was_vector = self.in_vector;
            if variant.lanes > 1 {
                self.in_vector = true;
                self.b.set_vector(vector);
            }
            self.axes_loops(k + 1, pass)?;
            self.in_vector = was_vector;
            self.b.set_vector(None);
            let mut yields = Vec::new();
            for (k, c) in &carried {
                let part = self.part(*k);
                yields.extend(*part);
                *part = Some(c.result);
            }
            let carried = carried.into_iter().map(|(_, c)| c).collect();
            close_loop(&mut self.b, depth, var, &variant, false, carried, yields)?;
        }
        Ok(())
    }

    /// The copies of the current loop variants: for each, the copy of every normalised index.
    fn copies(&self) -> Vec<Vec<usize>> {
        let radix: Vec<usize> = self
            .axes
            .iter()
            .map(|i| self.offsets[i.0 as usize].len())
            .collect();
        product(&radix)
    }

    /// Sets the normalised indices to their values in the copy `coords` (of [`Self::copies`]).
    fn enter_copy(&mut self, coords: &[usize]) {
        for (&i, &c) in self.axes.iter().zip(coords) {
            let v = self.offsets[i.0 as usize][c];
            self.b.set_var(i, v);
        }
    }

    /// The running value of the current loop (its vector or scalar part).
    fn running(&mut self) -> Result<(usize, ValueId), LowerError> {
        let k = usize::from(!self.in_vector);
        match *self.part(k) {
            Some(v) => Ok((k, v)),
            None => Err(self.b.fl.error("the softmax state is missing")),
        }
    }

    /// The row's total (maximum or sum) as the current loop's type: splatted once per row,
    /// where it is defined, in a vector loop.
    fn total(&mut self) -> Result<ValueId, LowerError> {
        let Some((t, at)) = self.total else {
            return Err(self.b.fl.error("the row's total is missing"));
        };
        match self.in_vector.then(|| self.lanes()).flatten() {
            Some(l) => Ok(self.b.splat((t, at), l)?.0),
            None => Ok(t),
        }
    }

    fn max_leaf(&mut self) -> Result<(), LowerError> {
        let (k, m) = self.running()?;
        let mut block = Tree::new(BinaryFn::Max);
        for coords in self.copies() {
            self.enter_copy(&coords);
            let (x, _) = self.b.expr_of_type(&Expr::Input(0), self.dtype)?;
            block.push(&mut self.b, x)?;
        }
        let m = block.fold_into(&mut self.b, m)?;
        *self.part(k) = Some(m);
        Ok(())
    }

    fn exp_sum_leaf(&mut self) -> Result<(), LowerError> {
        let (k, s) = self.running()?;
        let m = self.total()?;
        let (targets, shape) = (self.targets, self.shape);
        let mut block = Tree::new(BinaryFn::Add);
        for coords in self.copies() {
            self.enter_copy(&coords);
            let (x, _) = self.b.expr_of_type(&Expr::Input(0), self.dtype)?;
            let shifted = self.binary(BinaryFn::Sub, x, m)?;
            let ty = self.b.type_of(shifted)?;
            let e = self.emit(Op::Unary(UnaryFn::Exp, shifted), ty)?;
            if let Some((buffer, map)) = &targets.exp {
                self.store(*buffer, map, e)?;
            }
            self.store(targets.p, &shape.exp_map, e)?;
            block.push(&mut self.b, e)?;
        }
        let s = block.fold_into(&mut self.b, s)?;
        *self.part(k) = Some(s);
        Ok(())
    }

    fn scale_leaf(&mut self) -> Result<(), LowerError> {
        let s = self.total()?;
        let (p, shape) = (self.targets.p, self.shape);
        let lanes = if self.in_vector { self.lanes() } else { None };
        let ty = self.b.type_of(s)?;
        for coords in self.copies() {
            self.enter_copy(&coords);
            let index = self.index_of(&shape.exp_map)?;
            let load = Op::Load {
                buffer: p,
                index,
                lanes: lanes.unwrap_or(1),
            };
            let e = self.emit(load, ty)?;
            let scaled = self.binary(BinaryFn::Div, e, s)?;
            self.store(p, &shape.exp_map, scaled)?;
        }
        Ok(())
    }
}

/// A balanced tree of one binary function over values given one at a time: a value is
/// combined with its neighbour as soon as both exist (a binary counter), so that each block's
/// values die young instead of all staying live until the end of the block, which made the
/// register allocator spill.
struct Tree {
    f: BinaryFn,
    /// Partial results, with the number of values each combines, strictly decreasing.
    stack: Vec<(ValueId, usize)>,
}

impl Tree {
    fn new(f: BinaryFn) -> Self {
        Tree {
            f,
            stack: Vec::new(),
        }
    }

    fn push(&mut self, b: &mut BodyLowerer, x: ValueId) -> Result<(), LowerError> {
        let mut top = (x, 1);
        while let Some(&(y, n)) = self.stack.last() {
            if n != top.1 {
                break;
            }
            self.stack.pop();
            let depth = b.depth();
            let ty = b.type_of(y)?;
            top = (b.emit(depth, Op::Binary(self.f, y, top.0), ty)?, 2 * n);
        }
        self.stack.push(top);
        Ok(())
    }

    /// `f(acc, tree)`, the tree's partial results combined from the smallest up.
    fn fold_into(mut self, b: &mut BodyLowerer, acc: ValueId) -> Result<ValueId, LowerError> {
        let depth = b.depth();
        let ty = b.type_of(acc)?;
        let mut tree = None;
        while let Some((y, _)) = self.stack.pop() {
            tree = Some(match tree {
                None => y,
                Some(t) => b.emit(depth, Op::Binary(self.f, y, t), ty)?,
            });
        }
        match tree {
            Some(t) => b.emit(depth, Op::Binary(self.f, acc, t), ty),
            None => Ok(acc),
        }
    }
}

#[cfg(test)]
mod tests;
