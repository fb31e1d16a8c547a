//! `fuse`: elementwise fusion. A map (a `generic` without a reduction) is inlined into the
//! ops that read it, so that its values are computed where they are used instead of being
//! stored and read back:
//!
//! ```text
//! %t = generic (i: N, j: M) ins(%A[i, j], %b[j]) -> [i, j] { add(%0, %1) } : f32
//! %y = generic (i: N, j: M) ins(%t[i, j]) -> [i, j] { relu(%0) } : f32
//!   ==>
//! %y = generic (i: N, j: M) ins(%A[i, j], %b[j]) -> [i, j] { relu(add(%0, %1)) } : f32
//! ```
//!
//! Inlining composes the maps: where the consumer reads the producer's axis `a` at index `c`
//! (or at a fixed position), the producer's index for that axis becomes `c` (or the position)
//! in the producer's own reads and index values. An input the consumer already reads through
//! the same map is shared.
//!
//! **When.** A producer `P` is inlined into a consumer `C` when `C` may take it (below) and
//! either inlining duplicates no work — `P` has one consumer, which reads it once, at every
//! index of `C` (each element of `P` is then computed once, as before), and `P` is not returned
//! — or `P` is cheap: its body costs at most [`CHEAP`] (arithmetic 1, division and square roots
//! 4, exp, log, tanh and sigmoid 16, pow 40; reads, index values and constants 0), so that
//! recomputing it costs no more than storing and loading it. `P` disappears when every reader
//! took it and it is not returned.
//!
//! **Not fused:** producers or consumers in a row-softmax group (`analysis::classify`; the
//! group runs as one `softmax` nest that recognises the four ops as they are); consumers that
//! are GEMM-shaped contractions (an inlined producer would hide the product from the `gemm`
//! lowering, which reads its operands through packing anyway); and *epilogues*, maps that read
//! a GEMM-shaped contraction at their own indices: the `gemm` lowering fuses those (scale,
//! bias, relu, cast) into its store of C, so `fuse` neither inlines them nor inlines into them.
//! Bodies holding `delta` or `eps` are not inlined.
//!
//! **Scale folding.** `canonicalize` moves the factors of a sum that do not vary with the
//! summed indices into a map on its result (`S = (Q·Kᵀ) / c`). When that map is a scale — a
//! chain of `neg`, multiplication and division by values that vary with no index (constants,
//! dims, rank-0 inputs) — of a contraction that is not GEMM-shaped (a matrix-vector or dot
//! product, whose result is not stored by a `gemm` epilogue), read by nothing else, and an
//! operand of the contraction has fewer elements than its result (extents fixed or known when
//! compiling), the scale
//! moves onto the smaller operand (`(x / c)` computed once per element of `x`, then the
//! contraction): fewer operations. This changes rounding: `Σ a·(x/c)` instead of `(Σ a·x)/c`.
//!
//! Requires: verified tensor IR. Guarantees: verified tensor IR computing the same values. A
//! map consumer computes bit-identical results (the same operations on the same values, in the
//! same dtype); a reduction consumer sums the same terms in the same order, except that a float
//! sum whose body becomes `mul(a, b)` is then lowered with fused multiply-adds (one rounding per
//! term instead of two); scale folding changes rounding as said above.

use super::TensorPass;
use crate::analysis::{classify_function, Contraction, OpClass};
use crate::ir::tensor::builder::{compact, keep_used_inputs, Builder};
use crate::ir::tensor::visit::{any_node, rename_inputs, transform, visit_inputs};
use crate::ir::tensor::{
    AxisMap, BinaryFn, Expr, Extent, Function, Generic, IndexDef, IndexId, Input, Module, OpKind,
    UnaryFn, ValueId,
};
use einc_runtime::Scalar;
use std::collections::BTreeMap;

/// The `fuse` pass.
#[derive(Debug, Default)]
pub struct Fuse {
    /// Extents known for symbolic dims (specialisation or hints), for the size comparisons of
    /// scale folding.
    pub dims: BTreeMap<String, u64>,
}

/// The largest body cost of a producer that is inlined even where that recomputes it (a few
/// arithmetic operations: recomputing them costs less than storing and reloading the value).
pub const CHEAP: u32 = 2;

impl TensorPass for Fuse {
    fn run_tensor(&self, m: &mut Module) -> bool {
        let mut changed = false;
        let dims = m.dims.clone();
        for f in &mut m.funcs {
            let size = |e: &Extent| match e {
                Extent::Fixed(n) => Some(*n),
                Extent::Dim(name) => dims
                    .iter()
                    .find(|d| &d.name == name)
                    .and_then(|d| d.value)
                    .or_else(|| self.dims.get(name).copied()),
            };
            changed |= fold_scales(f, &size);
            changed |= fuse_function(f);
        }
        changed
    }
}

/// The cost of evaluating `e` once (see the module documentation).
pub fn cost(e: &Expr) -> u32 {
    let mut total = 0u32;
    any_node(e, &mut |n| {
        total = total.saturating_add(match n {
            Expr::Input(_) | Expr::Index(_) | Expr::Lit(_) | Expr::DimValue(..) => 0,
            Expr::Unary(UnaryFn::Exp | UnaryFn::Log | UnaryFn::Tanh | UnaryFn::Sigmoid, _) => 16,
            Expr::Unary(UnaryFn::Sqrt | UnaryFn::Rsqrt, _) => 4,
            Expr::Binary(BinaryFn::Div, ..) => 4,
            Expr::Binary(BinaryFn::Pow, ..) => 40,
            _ => 1,
        });
        false
    });
    total
}

/// Whether `g` is a contraction the `gemm` lowering runs (M, N and K all present).
fn gemm_shaped(class: &OpClass) -> bool {
    matches!(class, OpClass::Contraction(c) if !c.m.is_empty() && !c.n.is_empty() && !c.k.is_empty())
}

fn generic(f: &Function, k: usize) -> &Generic {
    let OpKind::Generic(g) = &f.ops[k].kind;
    g
}

/// Whether map `g` reads the result of op `c` (of class `class`) at its own indices, in order:
/// an epilogue candidate when `c` is GEMM-shaped.
fn reads_at_own_indices(g: &Generic, value: ValueId) -> bool {
    g.reduce.is_none()
        && g.inputs.iter().any(|i| {
            i.value == value
                && i.map.len() == g.output.len()
                && i.map
                    .iter()
                    .zip(&g.output)
                    .all(|(a, o)| *a == AxisMap::Index(*o))
        })
}

/// Inlines map producers into their consumers until nothing changes; returns whether anything
/// did.
fn fuse_function(f: &mut Function) -> bool {
    let mut changed = false;
    // Producers from the last to the first, so that a chain collapses into its last op.
    let mut k = f.ops.len();
    while k > 0 {
        k -= 1;
        if k >= f.ops.len() {
            continue;
        }
        if fuse_producer(f, k) {
            changed = true;
            compact(f);
            k = f.ops.len();
        }
    }
    changed
}

/// Inlines op `p` into the consumers that may take it, when the rules allow; drops `p` when
/// nothing reads it any more. Returns whether anything changed.
fn fuse_producer(f: &mut Function, p: usize) -> bool {
    let classes = classify_function(f);
    let producer = generic(f, p).clone();
    let value = f.ops[p].result;
    if producer.reduce.is_some()
        || matches!(classes[p], OpClass::RowSoftmax(_))
        || any_node(&producer.body, &mut |n| {
            matches!(n, Expr::Delta(..) | Expr::Eps(..))
        })
    {
        return false;
    }
    // An epilogue of a GEMM-shaped contraction belongs to the `gemm` lowering.
    if epilogue(f, &classes, &producer) {
        return false;
    }
    let returned = f.results.iter().any(|r| r.value == value);
    let readers: Vec<usize> = (0..f.ops.len())
        .filter(|&c| c != p && generic(f, c).inputs.iter().any(|i| i.value == value))
        .collect();
    if readers.is_empty() {
        return false;
    }
    let takes = |c: usize| {
        !matches!(classes[c], OpClass::RowSoftmax(_))
            && !gemm_shaped(&classes[c])
            && !epilogue(f, &classes, generic(f, c))
    };
    let takers: Vec<usize> = readers.iter().copied().filter(|&c| takes(c)).collect();
    if takers.is_empty() {
        return false;
    }
    let no_duplication = !returned
        && readers.len() == 1
        && takers.len() == 1
        && reads_once_everywhere(generic(f, takers[0]), value);
    if !no_duplication && cost(&producer.body) > CHEAP {
        return false;
    }
    for c in takers {
        let OpKind::Generic(consumer) = &mut f.ops[c].kind;
        inline(consumer, value, &producer);
    }
    let still_read = f.ops.iter().any(|op| {
        let OpKind::Generic(g) = &op.kind;
        g.inputs.iter().any(|i| i.value == value)
    });
    if !returned && !still_read {
        f.ops.remove(p);
    }
    true
}

/// Whether map `g` reads the result of a GEMM-shaped contraction at its own indices.
fn epilogue(f: &Function, classes: &[OpClass], g: &Generic) -> bool {
    g.inputs.iter().any(|input| {
        f.ops
            .iter()
            .position(|op| op.result == input.value)
            .is_some_and(|k| gemm_shaped(&classes[k]) && reads_at_own_indices(g, input.value))
    })
}

/// Whether `g` reads `value` through exactly one input, with every index of `g` in its map (so
/// each point reads a different element, once).
fn reads_once_everywhere(g: &Generic, value: ValueId) -> bool {
    let reads: Vec<&Input> = g.inputs.iter().filter(|i| i.value == value).collect();
    let [input] = reads[..] else {
        return false;
    };
    let mut uses = 0;
    visit_inputs(&g.body, &mut |n| {
        if g.inputs.get(n as usize).is_some_and(|i| i.value == value) {
            uses += 1;
        }
    });
    uses == 1
        && (0..g.indices.len()).all(|k| {
            let i = IndexId(u32::try_from(k).unwrap_or(u32::MAX));
            input.map.contains(&AxisMap::Index(i))
        })
}

/// Replaces every read of `value` in `consumer` by `producer`'s body, with the producer's
/// reads and index values translated through the consumer's map.
fn inline(consumer: &mut Generic, value: ValueId, producer: &Generic) {
    let mut inputs = consumer.inputs.clone();
    // For each input of the consumer that reads the producer: the producer's body in the
    // consumer's terms.
    let mut replacement: Vec<Option<Expr>> = vec![None; inputs.len()];
    for (k, input) in consumer.inputs.iter().enumerate() {
        if input.value != value {
            continue;
        }
        // The producer's index on axis `a` is read at `input.map[a]`.
        let sigma = |i: IndexId| -> AxisMap {
            producer
                .output
                .iter()
                .position(|&o| o == i)
                .and_then(|a| input.map.get(a).copied())
                .unwrap_or(AxisMap::Fixed(0))
        };
        let mut slot = Vec::with_capacity(producer.inputs.len());
        for pin in &producer.inputs {
            let map: Vec<AxisMap> = pin
                .map
                .iter()
                .map(|a| match a {
                    AxisMap::Index(i) => sigma(*i),
                    AxisMap::Fixed(q) => AxisMap::Fixed(*q),
                })
                .collect();
            let translated = Input {
                value: pin.value,
                map,
            };
            let n = match inputs.iter().position(|i| *i == translated) {
                Some(n) => n,
                None => {
                    inputs.push(translated);
                    inputs.len() - 1
                }
            };
            slot.push(u32::try_from(n).unwrap_or(u32::MAX));
        }
        let body = transform(&producer.body, &mut |e| match e {
            Expr::Input(n) => Expr::Input(slot.get(n as usize).copied().unwrap_or(n)),
            Expr::Index(i) => match sigma(i) {
                AxisMap::Index(c) => Expr::Index(c),
                AxisMap::Fixed(q) => Expr::Lit(Scalar::I64(i64::try_from(q).unwrap_or(i64::MAX))),
            },
            other => other,
        });
        replacement[k] = Some(body);
    }
    let body = transform(&consumer.body, &mut |e| match e {
        Expr::Input(n) => match replacement.get(n as usize) {
            Some(Some(r)) => r.clone(),
            _ => Expr::Input(n),
        },
        other => other,
    });
    let (inputs, body) = keep_used_inputs(inputs, &body);
    consumer.inputs = inputs;
    consumer.body = body;
}

/// Folds scale maps of contractions that are not GEMM-shaped into their smaller operand (see
/// the module documentation); returns whether any was folded.
fn fold_scales(f: &mut Function, size: &dyn Fn(&Extent) -> Option<u64>) -> bool {
    let mut changed = false;
    let mut k = 0;
    while k < f.ops.len() {
        if fold_scale(f, k, size) {
            changed = true;
            compact(f);
        } else {
            k += 1;
        }
    }
    changed
}

/// Whether `s` is a scale of input `x`: `%x` under a chain of `neg`, and of `mul` and `div`
/// by values that vary with no index (constants, dims, inputs for which `scalar` holds).
fn is_scale(s: &Expr, x: u32, scalar: &dyn Fn(u32) -> bool) -> bool {
    let free = |e: &Expr| {
        !any_node(e, &mut |n| match n {
            Expr::Input(m) => !scalar(*m),
            Expr::Index(_) | Expr::Delta(..) | Expr::Eps(..) => true,
            _ => false,
        })
    };
    match s {
        Expr::Input(n) => *n == x,
        Expr::Unary(UnaryFn::Neg, a) => is_scale(a, x, scalar),
        Expr::Binary(BinaryFn::Mul, a, b) => {
            (free(b) && is_scale(a, x, scalar)) || (free(a) && is_scale(b, x, scalar))
        }
        Expr::Binary(BinaryFn::Div, a, b) => free(b) && is_scale(a, x, scalar),
        _ => false,
    }
}

/// Folds op `k` when it is a scale map of a contraction that is not GEMM-shaped into the
/// contraction's smaller operand; returns whether it did.
fn fold_scale(f: &mut Function, k: usize, size: &dyn Fn(&Extent) -> Option<u64>) -> bool {
    let classes = classify_function(f);
    let scale = generic(f, k).clone();
    if scale.reduce.is_some() || !scale.dtype.is_float() {
        return false;
    }
    // The one input that is not a scalar is the contraction, read at the map's own indices.
    let scalar = |n: u32| {
        scale
            .inputs
            .get(n as usize)
            .is_some_and(|i| i.map.is_empty())
    };
    let vectors: Vec<u32> = (0..u32::try_from(scale.inputs.len()).unwrap_or(0))
        .filter(|&n| !scalar(n))
        .collect();
    let [unscaled] = vectors[..] else {
        return false;
    };
    if !is_scale(&scale.body, unscaled, &scalar) {
        return false;
    }
    let c_value = scale.inputs[unscaled as usize].value;
    let Some(c) = f.ops.iter().position(|op| op.result == c_value) else {
        return false;
    };
    let OpClass::Contraction(groups) = &classes[c] else {
        return false;
    };
    let read_elsewhere = f.ops.iter().enumerate().any(|(j, op)| {
        let OpKind::Generic(g) = &op.kind;
        j != k && g.inputs.iter().any(|i| i.value == c_value)
    });
    if gemm_shaped(&classes[c])
        || !reads_at_own_indices(&scale, c_value)
        || read_elsewhere
        || f.results.iter().any(|r| r.value == c_value)
    {
        return false;
    }
    let contraction = generic(f, c).clone();
    let Some(operand) = smaller_operand(f, &contraction, groups, size) else {
        return false;
    };
    // The scaled operand: a map over the operand's axes reading it as input 0, then the
    // scale's scalars.
    let read = contraction.inputs[operand].value;
    let shape = f.value(read).ty.shape.clone();
    let ids: Vec<IndexId> = (0..shape.len())
        .map(|a| IndexId(u32::try_from(a).unwrap_or(u32::MAX)))
        .collect();
    let mut inputs = vec![Input {
        value: read,
        map: ids.iter().map(|&i| AxisMap::Index(i)).collect(),
    }];
    let mut renumber = vec![0u32; scale.inputs.len()];
    for (n, input) in scale.inputs.iter().enumerate() {
        if n != unscaled as usize {
            renumber[n] = u32::try_from(inputs.len()).unwrap_or(u32::MAX);
            inputs.push(input.clone());
        }
    }
    let body = rename_inputs(&scale.body, &|n| {
        renumber.get(n as usize).copied().unwrap_or(n)
    });
    let scaled = Generic {
        indices: ids
            .iter()
            .zip(&shape)
            .map(|(&i, e)| IndexDef {
                name: format!("a{}", i.0),
                extent: e.clone(),
            })
            .collect(),
        inputs,
        output: ids,
        reduce: None,
        body,
        dtype: scale.dtype,
        schedule: None,
    };
    let scale_value = f.ops[k].result;
    let mut b = Builder::new(f);
    let base = format!("{}.scaled", b.func().value(read).name);
    let scaled_value = b.insert_op(c, &base, scaled);
    // The contraction (now at c + 1) reads the scaled operand and defines the scale's value,
    // and the scale map (now at k + 1) goes.
    let f = b.func_mut();
    let OpKind::Generic(g) = &mut f.ops[c + 1].kind;
    for input in &mut g.inputs {
        if input.value == read {
            input.value = scaled_value;
        }
    }
    f.ops[c + 1].result = scale_value;
    f.ops.remove(k + 1);
    true
}

/// The operand (input position) of contraction `c` to scale: the smaller of the two, when the
/// sizes are known and it is smaller than the result.
fn smaller_operand(
    f: &Function,
    c: &Generic,
    groups: &Contraction,
    size: &dyn Fn(&Extent) -> Option<u64>,
) -> Option<usize> {
    let elements = |shape: &[Extent]| -> Option<u64> {
        shape
            .iter()
            .try_fold(1u64, |acc, e| acc.checked_mul(size(e)?))
    };
    let operand = |n: usize| -> Option<u64> {
        let v = c.inputs.get(n)?.value;
        elements(&f.values.get(v.0 as usize)?.ty.shape)
    };
    let result = elements(&c.result_shape())?;
    let (a, b) = (operand(groups.a)?, operand(groups.b)?);
    let (n, smaller) = if a <= b { (groups.a, a) } else { (groups.b, b) };
    (smaller < result).then_some(n)
}
