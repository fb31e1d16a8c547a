//! `unroll`: unrolls loops by their `unroll N` request, and small constant-trip loops fully.
//!
//! Requires: verified loop IR. Guarantees: verified loop IR that computes what the input
//! computes, bit for bit, for every input: the copies of a body run in the original order with
//! the original operations, and the carried values thread through them.
//!
//! - **By request.** `for %i = %lo to %hi step s unroll N` (N >= 2) becomes a main loop
//!   `for %i = %lo to %mid step s*N unroll 1` whose body is N copies of the body (copy k sees
//!   `%i + k*s`), with `%mid = %lo + ((max(%hi - %lo, 0)) / (s*N)) * (s*N)`, followed by the
//!   remaining iterations in the loop `for %i = %mid to %hi step s unroll 1`. The main loop's
//!   results are the remainder loop's initial values; the remainder's are the original
//!   results. Both keep the `parallel` marker (their iterations are still independent).
//! - **Fully.** A loop without a request whose bounds are index constants and whose trip count
//!   is at most `max-trips`, with at most `max-insts` instructions in all its copies, becomes
//!   its copies in a row (copy k's variable is the constant `lo + k*s`); a loop that runs zero
//!   times disappears. Uses of its results then read the last copy's yields (or the initial
//!   values).
//!
//! A loop whose body declares a scoped buffer is left alone (each copy would need its own
//! stack), as is one asking for `unroll 1`, and a parallel loop whose body holds a loop is
//! never unrolled fully (its few instructions may be much work, which its iterations share
//! among threads: docs/threads.md). Inner loops are unrolled before outer ones.

use super::{Ir, Pass, PassOutput};
use crate::ir::loops::rewrite::{
    compact, copy_block, declares_scoped, size, substitute_inst, Names,
};
use crate::ir::loops::{Block, Carried, For, Function, IndexOp, Inst, Module, Op, Type, ValueId};
use std::collections::HashMap;

/// The default of `max-trips`.
pub const DEFAULT_MAX_TRIPS: u64 = 8;
/// The default of `max-insts`.
pub const DEFAULT_MAX_INSTS: u64 = 64;

/// The `unroll` pass.
#[derive(Debug)]
pub struct Unroll {
    /// The largest trip count a loop without a request is unrolled fully at.
    pub max_trips: u64,
    /// The most instructions the copies of a fully unrolled loop may hold together.
    pub max_insts: u64,
}

impl Pass for Unroll {
    fn run(&self, ir: Ir) -> Result<PassOutput, String> {
        match ir {
            Ir::Loop(mut m) => {
                let changed = self.unroll_module(&mut m);
                Ok(PassOutput {
                    ir: Ir::Loop(m),
                    changed,
                })
            }
            other => Err(format!("expects loop IR, got {} IR", other.level())),
        }
    }
}

impl Unroll {
    /// Unrolls in every function; returns whether anything changed.
    pub fn unroll_module(&self, m: &mut Module) -> bool {
        let mut changed = false;
        for f in &mut m.funcs {
            let consts = f.body.index_consts();
            let mut names = Names::of(f);
            let body = std::mem::take(&mut f.body);
            let mut u = Unroller {
                pass: self,
                f,
                names: &mut names,
                consts: &consts,
                changed: false,
            };
            // The function body yields nothing, so replaced results need no further rewrite.
            let (body, _) = u.block(body);
            let changed_here = u.changed;
            f.body = body;
            if changed_here {
                compact(f);
                changed = true;
            }
        }
        changed
    }
}

struct Unroller<'a> {
    pass: &'a Unroll,
    f: &'a mut Function,
    names: &'a mut Names,
    consts: &'a HashMap<ValueId, i64>,
    changed: bool,
}

impl Unroller<'_> {
    /// Unrolls the loops of `block`, inner ones first. Returns the block and the results of
    /// its fully unrolled loops with the values that replace them (already replaced in the
    /// block; the caller replaces them in the enclosing loop's yields).
    fn block(&mut self, block: Block) -> (Block, HashMap<ValueId, ValueId>) {
        let mut out = Vec::with_capacity(block.insts.len());
        let mut replaced = HashMap::new();
        for mut inst in block.insts {
            if !replaced.is_empty() {
                substitute_inst(&mut inst, &replaced);
            }
            match inst {
                Inst::For(mut l) => {
                    let (body, inner) = self.block(std::mem::take(&mut l.body));
                    l.body = body;
                    for y in &mut l.yields {
                        *y = inner.get(y).copied().unwrap_or(*y);
                    }
                    self.unroll(*l, &mut out, &mut replaced);
                }
                other => out.push(other),
            }
        }
        (Block { insts: out }, replaced)
    }

    /// Appends `%<base>.<suffix> = op`, an index value, to `out`.
    fn index(&mut self, out: &mut Vec<Inst>, base: &str, suffix: &str, op: Op) -> ValueId {
        let v = self
            .f
            .add_value(self.names.fresh(base, suffix), Type::Index);
        out.push(Inst::Assign { result: v, op });
        v
    }

    /// Appends loop `l`, unrolled if it should be, to `out`; the results of a loop unrolled
    /// fully go into `replaced` with the values that replace them.
    fn unroll(&mut self, l: For, out: &mut Vec<Inst>, replaced: &mut HashMap<ValueId, ValueId>) {
        if declares_scoped(&l.body) {
            out.push(Inst::For(Box::new(l)));
            return;
        }
        match l.unroll {
            Some(n) if n >= 2 => self.by_request(l, u64::from(n), out),
            None => match self.trips(&l) {
                Some(t) if self.fits(&l, t) => self.fully(l, t, out, replaced),
                _ => out.push(Inst::For(Box::new(l))),
            },
            Some(_) => out.push(Inst::For(Box::new(l))),
        }
    }

    /// The trip count of a loop whose bounds are index constants.
    fn trips(&self, l: &For) -> Option<u64> {
        let lo = *self.consts.get(&l.lower)?;
        let hi = *self.consts.get(&l.upper)?;
        let span = u64::try_from(hi.checked_sub(lo)?).unwrap_or(0);
        Some(span.div_ceil(l.step))
    }

    fn fits(&self, l: &For, trips: u64) -> bool {
        let nested = l.body.insts.iter().any(|i| matches!(i, Inst::For(_)));
        !(l.parallel && nested)
            && trips <= self.pass.max_trips
            && trips.saturating_mul(size(&l.body) as u64) <= self.pass.max_insts
    }

    /// `trips` copies of the body in a row.
    fn fully(
        &mut self,
        l: For,
        trips: u64,
        out: &mut Vec<Inst>,
        replaced: &mut HashMap<ValueId, ValueId>,
    ) {
        let lo = self.consts.get(&l.lower).copied().unwrap_or(0);
        let var_name = self.name(l.var);
        let mut current: Vec<ValueId> = l.carried.iter().map(|c| c.init).collect();
        for k in 0..trips {
            let step = i64::try_from(k * l.step).unwrap_or(i64::MAX);
            let mut map: HashMap<ValueId, ValueId> = HashMap::new();
            for (c, &v) in l.carried.iter().zip(&current) {
                map.insert(c.arg, v);
            }
            let var = self.index(
                out,
                &var_name,
                &format!("u{k}"),
                Op::IndexConst(lo.saturating_add(step)),
            );
            map.insert(l.var, var);
            let copy = copy_block(self.f, self.names, &l.body, &mut map, &format!("u{k}"));
            out.extend(copy.insts);
            current = l
                .yields
                .iter()
                .map(|y| map.get(y).copied().unwrap_or(*y))
                .collect();
        }
        for (c, v) in l.carried.iter().zip(current) {
            replaced.insert(c.result, v);
        }
        self.changed = true;
    }

    /// The main loop of `n` copies per iteration, then the remainder loop.
    fn by_request(&mut self, l: For, n: u64, out: &mut Vec<Inst>) {
        let Some(chunk) = l.step.checked_mul(n).and_then(|c| i64::try_from(c).ok()) else {
            out.push(Inst::For(Box::new(l)));
            return;
        };
        // %mid = %lo + (max(%hi - %lo, 0) / chunk) * chunk
        let v = self.name(l.var);
        let span = self.index(
            out,
            &v,
            "span",
            Op::IndexArith(IndexOp::Sub, l.upper, l.lower),
        );
        let zero = self.index(out, &v, "zero", Op::IndexConst(0));
        let span = self.index(out, &v, "span", Op::IndexArith(IndexOp::Max, span, zero));
        let chunk_v = self.index(out, &v, "chunk", Op::IndexConst(chunk));
        let blocks = self.index(
            out,
            &v,
            "blocks",
            Op::IndexArith(IndexOp::Div, span, chunk_v),
        );
        let covered = self.index(
            out,
            &v,
            "covered",
            Op::IndexArith(IndexOp::Mul, blocks, chunk_v),
        );
        let mid = self.index(
            out,
            &v,
            "mid",
            Op::IndexArith(IndexOp::Add, l.lower, covered),
        );

        // The main loop: copy 0 is the original body (its values keep their ids).
        let mut body = l.body.insts.clone();
        let mut yields = l.yields.clone();
        let step = i64::try_from(l.step).unwrap_or(i64::MAX);
        for k in 1..n {
            let mut map: HashMap<ValueId, ValueId> = HashMap::new();
            for (c, &y) in l.carried.iter().zip(&yields) {
                map.insert(c.arg, y);
            }
            let offset = self.index(
                &mut body,
                &v,
                &format!("off{k}"),
                Op::IndexConst(step.saturating_mul(k as i64)),
            );
            let var = self.index(
                &mut body,
                &v,
                &format!("u{k}"),
                Op::IndexArith(IndexOp::Add, l.var, offset),
            );
            map.insert(l.var, var);
            let copy = copy_block(self.f, self.names, &l.body, &mut map, &format!("u{k}"));
            body.extend(copy.insts);
            yields = l
                .yields
                .iter()
                .map(|y| map.get(y).copied().unwrap_or(*y))
                .collect();
        }
        let main_results: Vec<ValueId> = l
            .carried
            .iter()
            .map(|c| {
                let (name, ty) = match self.f.value(c.result) {
                    Some(v) => (v.name.clone(), v.ty),
                    None => ("r".to_string(), Type::Index),
                };
                self.f.add_value(self.names.fresh(&name, "main"), ty)
            })
            .collect();
        let main = For {
            var: l.var,
            lower: l.lower,
            upper: mid,
            step: l.step.saturating_mul(n),
            parallel: l.parallel,
            unroll: Some(1),
            carried: l
                .carried
                .iter()
                .zip(&main_results)
                .map(|(c, &result)| Carried {
                    arg: c.arg,
                    init: c.init,
                    result,
                })
                .collect(),
            body: Block { insts: body },
            yields,
        };
        out.push(Inst::For(Box::new(main)));

        // The remainder: a fresh copy of the loop from %mid, continuing the carried values.
        let mut map: HashMap<ValueId, ValueId> = HashMap::new();
        let rest_var = self
            .f
            .add_value(self.names.fresh(&self.name(l.var), "rest"), Type::Index);
        map.insert(l.var, rest_var);
        let mut carried = Vec::with_capacity(l.carried.len());
        for (c, &init) in l.carried.iter().zip(&main_results) {
            let (name, ty) = match self.f.value(c.arg) {
                Some(v) => (v.name.clone(), v.ty),
                None => ("a".to_string(), Type::Index),
            };
            let arg = self.f.add_value(self.names.fresh(&name, "rest"), ty);
            map.insert(c.arg, arg);
            carried.push(Carried {
                arg,
                init,
                result: c.result,
            });
        }
        let body = copy_block(self.f, self.names, &l.body, &mut map, "rest");
        let rest = For {
            var: rest_var,
            lower: mid,
            upper: l.upper,
            step: l.step,
            parallel: l.parallel,
            unroll: Some(1),
            carried,
            body,
            yields: l
                .yields
                .iter()
                .map(|y| map.get(y).copied().unwrap_or(*y))
                .collect(),
        };
        out.push(Inst::For(Box::new(rest)));
        self.changed = true;
    }

    fn name(&self, v: ValueId) -> String {
        self.f
            .value(v)
            .map_or_else(|| format!("v{}", v.0), |d| d.name.clone())
    }
}
