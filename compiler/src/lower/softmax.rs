//! A row-softmax group under a `softmax` schedule → one nest that reads each row twice:
//!
//! 1. an online max-and-sum pass: running maxima `m` and sums `s` of `exp(x - m)`, one per
//!    lane (and a scalar pair for the tail); each step takes the maximum `b` of the block of
//!    unrolled copies, rescales the sum once, `s = s·exp(m - max(m, b)) + Σ exp(x - max(m, b))`,
//!    and keeps `m = max(m, b)`. At the end of the row the lanes are combined:
//!    `M = max(lanes, tail)`, `S = Σ_lanes s·exp(m - M) + s_tail·exp(m_tail - M)`;
//! 2. one pass writing `P = exp(x - M) / S`.
//!
//! `P.exp` is never materialised; the group's intermediate values (`max`, `exp`, `sum`) are
//! written only when something outside the group reads them (`RowSoftmax::escapes`), `exp`
//! during the second pass. The running maxima start at the lowest finite value instead of -inf,
//! so a lane that sees only `-inf` (a masked entry) keeps finite arithmetic (`exp(m - m') = 1`,
//! never `exp(-inf + inf)`); a row of only `-inf` entries then has `S = 0`, and `M` is taken as
//! -inf for that row, so it gives what the interpreter gives (NaN). Inputs of any magnitude stay
//! finite: every exponent is at most 0.
//!
//! The schedule's `order` lists the row indices, then the normalised ones; the last may be
//! vectorised (when the source, `P` and an escaping `exp` have a unit stride along it) and the
//! normalised indices unrolled (copies of a block). Row indices are not unrolled.
//!
//! The online update ([`online_update`]) and the row combination ([`combine_lanes`]) are the
//! pieces a fused attention (contraction → softmax → contraction) reuses: the update returns
//! the rescaling factor, which rescales any accumulator kept alongside the sum.

use super::body::{self, BodyLowerer, Placed};
use super::nest::{close_loop, copy_values, product, variants, Plan};
use super::{FnLowerer, LowerError};
use crate::analysis::RowSoftmax;
use crate::ir::loops::{
    BinaryFn, BufferId, Carried, CmpOp, Inst, Op, ReduceKind, Type, UnaryFn, ValueId,
};
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
        totals: None,
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

/// The running maximum and sum of one row: per lane (`vector`), and for the scalar tail.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    vector: Option<(ValueId, ValueId)>,
    scalar: Option<(ValueId, ValueId)>,
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
    /// Whether the second pass writes vectors (the first reads vectors when `plan.vector` is
    /// set).
    write_vector: bool,
    /// The running state during the first pass.
    state: State,
    /// The row's maximum and sum during the second pass, and the level they are defined at.
    totals: Option<(ValueId, ValueId, usize)>,
}

/// Which pass over the row a loop belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    MaxSum,
    Write,
}

impl Softmax<'_, '_> {
    fn scalar(&self) -> Type {
        Type::Scalar(self.dtype)
    }

    /// The vector (0) or scalar (1) part of the state.
    fn part(&mut self, k: usize) -> &mut Option<(ValueId, ValueId)> {
        if k == 0 {
            &mut self.state.vector
        } else {
            &mut self.state.scalar
        }
    }

    /// Both parts' current values.
    fn parts(&self) -> [Option<(ValueId, ValueId)>; 2] {
        [self.state.vector, self.state.scalar]
    }

    fn lanes(&self) -> Option<u32> {
        self.plan.vector.map(|(_, l)| l)
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

    fn exp(&mut self, x: ValueId) -> Result<ValueId, LowerError> {
        let ty = self.b.type_of(x)?;
        self.emit(Op::Unary(UnaryFn::Exp, x), ty)
    }

    fn constant(&mut self, x: f64) -> ValueId {
        self.b.fl.scalar_const(Scalar::F64(x).cast(self.dtype))
    }

    /// The loops over the row indices from the `k`-th on, then the two passes.
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

    /// One row: the max-and-sum pass, the combination of its lanes, the writing pass.
    fn row(&mut self) -> Result<(), LowerError> {
        let lowest = self.constant(if self.dtype == DType::F32 {
            f64::from(f32::MIN)
        } else {
            f64::MIN
        });
        let zero = self.constant(0.0);
        let vector = match self.lanes() {
            Some(l) => {
                let m = self.b.splat((lowest, 0), l)?.0;
                let s = self.b.splat((zero, 0), l)?.0;
                Some((m, s))
            }
            None => None,
        };
        self.state = State {
            vector,
            scalar: Some((lowest, zero)),
        };
        self.axes_loops(0, Pass::MaxSum)?;
        let (m, s) = combine_lanes(&mut self.b, self.state.vector, self.state.scalar)?;
        // A row of only -inf (or an empty row) sums to 0: its maximum is -inf, as the
        // interpreter computes it.
        let ninf = self.constant(f64::NEG_INFINITY);
        let empty = self.emit(Op::Cmp(CmpOp::Eq, s, zero), Type::Bool)?;
        let m = self.emit(Op::Select(empty, ninf, m), self.scalar())?;
        let targets = self.targets;
        if let Some((buffer, map)) = &targets.max {
            self.store(*buffer, map, m)?;
        }
        if let Some((buffer, map)) = &targets.sum {
            // The interpreter sums exp(-inf - -inf) = NaN over a non-empty row of -inf.
            let nonempty = self.row_nonempty()?;
            let nan = self.constant(f64::NAN);
            let undefined = self.emit(Op::And(empty, nonempty), Type::Bool)?;
            let value = self.emit(Op::Select(undefined, nan, s), self.scalar())?;
            self.store(*buffer, map, value)?;
        }
        self.totals = Some((m, s, self.b.depth()));
        self.axes_loops(0, Pass::Write)
    }

    /// Whether a row has elements: every normalised extent is above 0.
    fn row_nonempty(&mut self) -> Result<ValueId, LowerError> {
        let zero = self.b.fl.index_const(0);
        let mut all = None;
        for &x in &self.axes.clone() {
            let extent = self
                .shape
                .div
                .indices
                .get(x.0 as usize)
                .map(|d| d.extent.clone())
                .ok_or_else(|| self.b.fl.error("a normalised index is out of range"))?;
            let n = self.b.fl.extent(&extent)?;
            let some = self.emit(Op::Cmp(CmpOp::Gt, n, zero), Type::Bool)?;
            all = Some(match all {
                None => some,
                Some(a) => self.emit(Op::And(a, some), Type::Bool)?,
            });
        }
        all.ok_or_else(|| self.b.fl.error("a softmax without normalised indices"))
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
                Pass::MaxSum => self.max_sum_leaf(),
                Pass::Write => self.write_leaf(),
            };
        };
        let depth = self.b.depth();
        let vector = self
            .plan
            .vector
            .filter(|&(v, _)| v == x && (pass == Pass::MaxSum || self.write_vector));
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
            // The first pass carries the state: the vector part in vector loops, the scalar
            // part in the scalar tail, both in outer loops.
            let take = [
                pass == Pass::MaxSum && (!innermost || variant.lanes > 1),
                pass == Pass::MaxSum && (!innermost || variant.lanes == 1),
            ];
            let mut carried = Vec::new();
            for (k, part) in self.parts().into_iter().enumerate() {
                let Some((m, s)) = part else { continue };
                if !take[k] {
                    continue;
                }
                let mut args = [m, s];
                for (arg, init) in args.iter_mut().zip([m, s]) {
                    let ty = self.b.type_of(init)?;
                    let result = self.b.fl.new_value("red", ty);
                    *arg = self.b.fl.new_value("acc", ty);
                    carried.push((
                        k,
                        Carried {
                            arg: *arg,
                            init,
                            result,
                        },
                    ));
                }
                *self.part(k) = Some((args[0], args[1]));
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
            for pair in carried.chunks(2) {
                let [(k, cm), (_, cs)] = pair else { continue };
                let part = self.part(*k);
                if let Some((m, s)) = *part {
                    yields.extend([m, s]);
                }
                *part = Some((cm.result, cs.result));
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

    /// The elements of the source at every copy of the current loop variants (vectors in a
    /// vector loop).
    fn elements(&mut self) -> Result<Vec<Placed>, LowerError> {
        let mut out = Vec::new();
        for coords in self.copies() {
            self.enter_copy(&coords);
            out.push(self.b.expr_of_type(&Expr::Input(0), self.dtype)?);
        }
        Ok(out)
    }

    fn max_sum_leaf(&mut self) -> Result<(), LowerError> {
        let xs: Vec<ValueId> = self.elements()?.into_iter().map(|(v, _)| v).collect();
        let k = usize::from(!self.in_vector);
        let Some((m, s)) = *self.part(k) else {
            return Err(self.b.fl.error("the softmax state is missing"));
        };
        let depth = self.b.depth();
        let (m, s, _) = online_update(&mut self.b, depth, m, s, &xs)?;
        *self.part(k) = Some((m, s));
        Ok(())
    }

    fn write_leaf(&mut self) -> Result<(), LowerError> {
        let Some((m, s, at)) = self.totals else {
            return Err(self.b.fl.error("the row's totals are missing"));
        };
        let lanes = self.in_vector.then(|| self.lanes()).flatten();
        // Splatted once per row, where the totals are defined.
        let (m, s) = match lanes {
            Some(l) => (self.b.splat((m, at), l)?.0, self.b.splat((s, at), l)?.0),
            None => (m, s),
        };
        let (targets, shape) = (self.targets, self.shape);
        for coords in self.copies() {
            self.enter_copy(&coords);
            let (x, _) = self.b.expr_of_type(&Expr::Input(0), self.dtype)?;
            let shifted = self.binary(BinaryFn::Sub, x, m)?;
            let e = self.exp(shifted)?;
            if let Some((buffer, map)) = &targets.exp {
                self.store(*buffer, map, e)?;
            }
            let p = self.binary(BinaryFn::Div, e, s)?;
            self.store(targets.p, &shape.exp_map, p)?;
        }
        Ok(())
    }
}

/// One step of the online softmax at level `depth` of `b`: with the running maximum `m` and
/// sum `s` (scalars, or vectors of independent lanes) and a block of new elements `xs` of the
/// same type, returns the new maximum `m' = max(m, xs...)`, the new sum
/// `s' = s·exp(m - m') + Σ exp(x - m')` and the factor `exp(m - m')` that rescaled the old
/// sum (an accumulator kept alongside the sum, such as a fused `P·V`, is rescaled by it too).
///
/// The block's maximum and the sum of its exponentials are balanced trees ([`tree`]), so that
/// only one `max` and one multiply-add are carried from step to step: a chain of one `max` per
/// element bounded the first pass by its latency (each float `max` is several instructions on
/// x86-64, for its NaN and signed-zero rules).
pub(super) fn online_update(
    b: &mut BodyLowerer,
    depth: usize,
    m: ValueId,
    s: ValueId,
    xs: &[ValueId],
) -> Result<(ValueId, ValueId, ValueId), LowerError> {
    let ty = b.type_of(m)?;
    let block_max = match tree(b, depth, BinaryFn::Max, xs)? {
        Some(x) => b.emit(depth, Op::Binary(BinaryFn::Max, m, x), ty)?,
        None => m,
    };
    let shift = b.emit(depth, Op::Binary(BinaryFn::Sub, m, block_max), ty)?;
    let scale = b.emit(depth, Op::Unary(UnaryFn::Exp, shift), ty)?;
    let rescaled = b.emit(depth, Op::Binary(BinaryFn::Mul, s, scale), ty)?;
    let mut es = Vec::with_capacity(xs.len());
    for &x in xs {
        let d = b.emit(depth, Op::Binary(BinaryFn::Sub, x, block_max), ty)?;
        es.push(b.emit(depth, Op::Unary(UnaryFn::Exp, d), ty)?);
    }
    let sum = match tree(b, depth, BinaryFn::Add, &es)? {
        Some(e) => b.emit(depth, Op::Binary(BinaryFn::Add, rescaled, e), ty)?,
        None => rescaled,
    };
    Ok((block_max, sum, scale))
}

/// `f` over `xs` as a balanced tree (pairs of neighbours, then pairs of those, ...), at level
/// `depth` of `b`; `None` for no values.
fn tree(
    b: &mut BodyLowerer,
    depth: usize,
    f: BinaryFn,
    xs: &[ValueId],
) -> Result<Option<ValueId>, LowerError> {
    let mut level = xs.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            if let [x, y] = *pair {
                let ty = b.type_of(x)?;
                next.push(b.emit(depth, Op::Binary(f, x, y), ty)?);
            } else {
                next.extend_from_slice(pair);
            }
        }
        level = next;
    }
    Ok(level.first().copied())
}

/// Combines the per-lane state `vector` (maxima and sums) with the scalar state `scalar` at
/// the current level of `b`: `M = max(max over lanes, m_tail)` and
/// `S = Σ_lanes s·exp(m - M) + s_tail·exp(m_tail - M)` (lanes combined by `reduce_lanes`).
pub(super) fn combine_lanes(
    b: &mut BodyLowerer,
    vector: Option<(ValueId, ValueId)>,
    scalar: Option<(ValueId, ValueId)>,
) -> Result<(ValueId, ValueId), LowerError> {
    let depth = b.depth();
    let Some((mt, st)) = scalar else {
        return Err(b.fl.error("the softmax tail state is missing"));
    };
    let Some((mv, sv)) = vector else {
        return Ok((mt, st));
    };
    let scalar_ty = b.type_of(mt)?;
    let vector_ty = b.type_of(mv)?;
    let Type::Vector(_, lanes) = vector_ty else {
        return Err(b.fl.error("the softmax lane state is not a vector"));
    };
    let lane_max = b.emit(depth, Op::ReduceLanes(ReduceKind::Max, mv), scalar_ty)?;
    let m = b.emit(depth, Op::Binary(BinaryFn::Max, lane_max, mt), scalar_ty)?;
    let (mb, _) = b.splat((m, depth), lanes)?;
    let d = b.emit(depth, Op::Binary(BinaryFn::Sub, mv, mb), vector_ty)?;
    let w = b.emit(depth, Op::Unary(UnaryFn::Exp, d), vector_ty)?;
    let sw = b.emit(depth, Op::Binary(BinaryFn::Mul, sv, w), vector_ty)?;
    let lane_sum = b.emit(depth, Op::ReduceLanes(ReduceKind::Add, sw), scalar_ty)?;
    let dt = b.emit(depth, Op::Binary(BinaryFn::Sub, mt, m), scalar_ty)?;
    let wt = b.emit(depth, Op::Unary(UnaryFn::Exp, dt), scalar_ty)?;
    let tail = b.emit(depth, Op::Binary(BinaryFn::Mul, st, wt), scalar_ty)?;
    let s = b.emit(depth, Op::Binary(BinaryFn::Add, lane_sum, tail), scalar_ty)?;
    Ok((m, s))
}

#[cfg(test)]
mod tests;
