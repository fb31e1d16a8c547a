//! Property test of numpy einsum semantics: random valid subscripts (1–4 operands, repeated
//! labels, `...`, size-1 broadcasting, implicit and explicit output, stray spaces) on random
//! shapes, dtypes and strides, evaluated through the tensor IR and the interpreter, and
//! compared with a naive evaluator written here from the subscripts alone (explicit loops over
//! every label value).
//!
//! Elements are small integers in every dtype, so every sum is exact and the comparison is
//! equality, whatever the summation order.

use einc::compiler::interp;
use einc::compiler::ir::tensor::{Extent, TensorType};
use einc::compiler::sema::einsum::einsum_function;
use einc::runtime::array::for_each_index;
use einc::runtime::{Array, Buffer, DType};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Draws decisions from a list of random numbers (so that proptest can shrink a case by
/// shrinking the numbers).
struct Dice<'a> {
    numbers: &'a [u32],
    next: usize,
}

impl Dice<'_> {
    /// A number in `0..n` (n > 0).
    fn roll(&mut self, n: usize) -> usize {
        // Past the end, a fixed scramble of the position keeps values varied.
        let fallback = (self.next as u32).wrapping_mul(2_654_435_761) >> 8;
        let v = self.numbers.get(self.next).copied().unwrap_or(fallback);
        self.next += 1;
        v as usize % n
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.roll(100) < percent
    }
}

/// One generated case: the subscripts string and the operands.
#[derive(Debug)]
struct Case {
    subscripts: String,
    operands: Vec<Array>,
}

const LETTERS: &[u8] = b"abcijkAB";
const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::I64];

fn generate(dice: &mut Dice) -> Case {
    let label_count = 1 + dice.roll(5);
    let labels: Vec<u8> = (0..label_count)
        .map(|n| LETTERS[(n + dice.roll(LETTERS.len())) % LETTERS.len()])
        .collect::<std::collections::BTreeSet<u8>>()
        .into_iter()
        .collect();
    // Extent 0 now and then; otherwise 1 to 3.
    let extent_of = |dice: &mut Dice| if dice.chance(8) { 0 } else { 1 + dice.roll(3) };
    let sizes: BTreeMap<u8, usize> = labels.iter().map(|&l| (l, extent_of(dice))).collect();
    let broadcast_ndim = if dice.chance(50) { 0 } else { 1 + dice.roll(2) };
    let broadcast: Vec<usize> = (0..broadcast_ndim).map(|_| extent_of(dice)).collect();
    let nb = broadcast.len();

    let operand_count = 1 + dice.roll(4);
    let mut terms = Vec::new();
    let mut operands = Vec::new();
    let mut any_ellipsis_dims = false;
    for _ in 0..operand_count {
        let term_len = dice.roll(4);
        let term: Vec<u8> = (0..term_len)
            .map(|_| labels[dice.roll(labels.len())])
            .collect();
        // Whether this operand's `...` exists and how many broadcast dims it covers.
        let ellipsis = if nb > 0 || dice.chance(20) {
            Some((dice.roll(term.len() + 1), dice.roll(nb + 1)))
        } else {
            None
        };
        // A label has one extent per operand: its size or, sometimes, 1 (broadcast).
        let own: BTreeMap<u8, usize> = term
            .iter()
            .map(|&l| (l, if dice.chance(15) { 1 } else { sizes[&l] }))
            .collect();
        let mut text = String::new();
        let mut shape = Vec::new();
        for (pos, &l) in term.iter().enumerate() {
            if let Some((at, covered)) = ellipsis {
                if at == pos {
                    text.push_str("...");
                    push_broadcast_dims(dice, &broadcast, covered, &mut shape);
                }
            }
            text.push(char::from(l));
            shape.push(own[&l]);
        }
        if let Some((at, covered)) = ellipsis {
            if at == term.len() {
                text.push_str("...");
                push_broadcast_dims(dice, &broadcast, covered, &mut shape);
            }
            any_ellipsis_dims |= covered > 0;
        }
        terms.push(text);
        let dtype = DTYPES[dice.roll(4)];
        operands.push(make_array(dice, dtype, &shape));
    }
    let mut subscripts = terms.join(",");
    if dice.chance(50) {
        // Explicit output: a random selection of the input labels in random order.
        let mut pool: Vec<u8> = terms
            .iter()
            .flat_map(|t| t.bytes().filter(u8::is_ascii_alphabetic))
            .collect::<std::collections::BTreeSet<u8>>()
            .into_iter()
            .collect();
        let mut out = Vec::new();
        while !pool.is_empty() && dice.chance(60) {
            out.push(pool.remove(dice.roll(pool.len())));
        }
        let mut text: String = out.iter().map(|&c| char::from(c)).collect();
        if any_ellipsis_dims || dice.chance(30) {
            let at = dice.roll(out.len() + 1);
            text.insert_str(at, "...");
        }
        subscripts = format!("{subscripts}->{text}");
    }
    // Spaces anywhere except inside `...` and `->`.
    let mut spaced = String::new();
    let chars: Vec<char> = subscripts.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inside =
            i > 0 && ((chars[i - 1] == '.' && c == '.') || (chars[i - 1] == '-' && c == '>'));
        if !inside && dice.chance(10) {
            spaced.push(' ');
        }
        spaced.push(c);
    }
    Case {
        subscripts: spaced,
        operands,
    }
}

/// Appends the last `covered` broadcast dims, each its size or (sometimes) 1.
fn push_broadcast_dims(
    dice: &mut Dice,
    broadcast: &[usize],
    covered: usize,
    shape: &mut Vec<usize>,
) {
    for &n in &broadcast[broadcast.len() - covered..] {
        shape.push(if dice.chance(20) { 1 } else { n });
    }
}

/// An array of small integers in `dtype`, laid out in C order, Fortran order, or C order
/// with gaps and an offset.
fn make_array(dice: &mut Dice, dtype: DType, shape: &[usize]) -> Array {
    let count: usize = shape.iter().product();
    let layout = dice.roll(3);
    let (strides, offset, len) = match layout {
        0 => (c_strides(shape, 1), 0, count),
        1 => {
            let rev: Vec<usize> = shape.iter().rev().copied().collect();
            let mut s = c_strides(&rev, 1);
            s.reverse();
            (s, 0, count)
        }
        _ => (c_strides(shape, 2), 1, 2 * count + 1),
    };
    let values: Vec<i64> = (0..len).map(|_| dice.roll(7) as i64 - 3).collect();
    let buffer = match dtype {
        DType::F32 => Buffer::F32(values.iter().map(|&v| v as f32).collect()),
        DType::F64 => Buffer::F64(values.iter().map(|&v| v as f64).collect()),
        DType::I32 => Buffer::I32(values.iter().map(|&v| v as i32).collect()),
        DType::I64 => Buffer::I64(values),
    };
    Array::with_layout(buffer, shape, &strides, offset).expect("generated layouts fit")
}

/// Row-major strides scaled by `scale` (a scale of 2 leaves a gap after every element).
fn c_strides(shape: &[usize], scale: usize) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = scale;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= n.max(1);
    }
    strides
}

/// numpy.result_type of the operand dtypes, spelled out: any mix of floats and integers is
/// f64; floats alone are f64 if any is f64; integers alone are i64 if any is i64.
fn expected_dtype(dtypes: &[DType]) -> DType {
    let has = |d| dtypes.contains(&d);
    let float = has(DType::F32) || has(DType::F64);
    let int = has(DType::I32) || has(DType::I64);
    match (float, int) {
        (true, true) => DType::F64,
        (true, false) if has(DType::F64) => DType::F64,
        (true, false) => DType::F32,
        _ if has(DType::I64) => DType::I64,
        _ => DType::I32,
    }
}

/// A label of the naive evaluator: a letter or broadcast dim `k` of the `...` dims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    Dim(usize),
    Letter(u8),
}

/// Evaluates the einsum by brute force, straight from the subscripts: returns the output
/// shape and its elements in C order.
fn naive(subscripts: &str, operands: &[Array]) -> (Vec<usize>, Vec<f64>) {
    let s: String = subscripts.chars().filter(|&c| c != ' ').collect();
    let (inputs, output) = match s.split_once("->") {
        Some((i, o)) => (i.to_string(), Some(o.to_string())),
        None => (s.clone(), None),
    };
    let terms: Vec<&str> = inputs.split(',').collect();
    // Each operand's axes as labels; `...` dims are right-aligned against the widest.
    let covered: Vec<usize> = terms
        .iter()
        .zip(operands)
        .map(|(t, a)| a.rank() - t.replace("...", "").len())
        .collect();
    let nb = covered.iter().copied().max().unwrap_or(0);
    let axes: Vec<Vec<Label>> = terms
        .iter()
        .zip(&covered)
        .map(|(t, &d)| {
            let (before, after) = t.split_once("...").unwrap_or((t, ""));
            let mut v: Vec<Label> = before.bytes().map(Label::Letter).collect();
            v.extend((nb - d..nb).map(Label::Dim));
            v.extend(after.bytes().map(Label::Letter));
            v
        })
        .collect();
    // Extent of a label: the largest of its axes unless some axis is 0 (1 broadcasts).
    let mut extent: BTreeMap<Label, usize> = BTreeMap::new();
    for (op_axes, a) in axes.iter().zip(operands) {
        for (l, &n) in op_axes.iter().zip(a.shape()) {
            let e = extent.entry(*l).or_insert(n);
            *e = if *e == 1 {
                n
            } else if n == 1 {
                *e
            } else {
                (*e).min(n)
            };
        }
    }
    let out: Vec<Label> = match output {
        Some(o) => {
            let (before, after) = o.split_once("...").unwrap_or((&o, ""));
            let mut v: Vec<Label> = before.bytes().map(Label::Letter).collect();
            if o.contains("...") {
                v.extend((0..nb).map(Label::Dim));
            }
            v.extend(after.bytes().map(Label::Letter));
            v
        }
        None => {
            let mut v: Vec<Label> = (0..nb).map(Label::Dim).collect();
            let mut once: Vec<u8> = Vec::new();
            for c in inputs.bytes().filter(u8::is_ascii_alphabetic) {
                if inputs.bytes().filter(|&d| d == c).count() == 1 {
                    once.push(c);
                }
            }
            once.sort();
            v.extend(once.into_iter().map(Label::Letter));
            v
        }
    };
    let all: Vec<Label> = extent.keys().copied().collect();
    let all_extents: Vec<usize> = all.iter().map(|l| extent[l]).collect();
    let out_shape: Vec<usize> = out.iter().map(|l| extent[l]).collect();
    let mut result = vec![0.0; out_shape.iter().product()];
    for_each_index(&all_extents, |point| {
        let value_of = |l: &Label| {
            point[all
                .iter()
                .position(|m| m == l)
                .expect("every label has an extent")]
        };
        let mut product = 1.0;
        for (op_axes, a) in axes.iter().zip(operands) {
            let idx: Vec<usize> = op_axes
                .iter()
                .zip(a.shape())
                .map(|(l, &n)| if n == 1 { 0 } else { value_of(l) })
                .collect();
            product *= a.get(&idx).to_f64();
        }
        let mut pos = 0;
        for (l, &n) in out.iter().zip(&out_shape) {
            pos = pos * n + value_of(l);
        }
        result[pos] += product;
    });
    (out_shape, result)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ir_and_interpreter_match_a_naive_einsum(numbers in proptest::collection::vec(0u32..1_000_000, 200)) {
        let case = generate(&mut Dice { numbers: &numbers, next: 0 });
        let types: Vec<TensorType> = case
            .operands
            .iter()
            .map(|a| TensorType {
                dtype: a.dtype(),
                shape: a.shape().iter().map(|&n| Extent::Fixed(n as u64)).collect(),
            })
            .collect();
        let (module, func) = einsum_function(&case.subscripts, &types)
            .unwrap_or_else(|e| panic!("{:?} rejected: {e}", case.subscripts));
        let got = interp::run_function(&module, &func, &case.operands)
            .unwrap_or_else(|e| panic!("{:?}: {e}", case.subscripts));
        let (shape, want) = naive(&case.subscripts, &case.operands);
        let dtypes: Vec<DType> = case.operands.iter().map(Array::dtype).collect();
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].dtype(), expected_dtype(&dtypes), "{:?}", case.subscripts);
        prop_assert_eq!(got[0].shape(), &shape[..], "{:?}", case.subscripts);
        prop_assert_eq!(got[0].to_f64_vec(), want, "{:?}", case.subscripts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any string and any shapes: an error value or a plan that the interpreter runs; never a
    /// panic.
    #[test]
    fn arbitrary_subscripts_never_panic(
        subscripts in "[abiA.,> é\t-]{0,12}",
        shapes in proptest::collection::vec(proptest::collection::vec(0usize..3, 0..4), 0..4),
    ) {
        let operands: Vec<Array> = shapes
            .iter()
            .map(|s| Array::zeros(DType::F32, s).expect("small arrays allocate"))
            .collect();
        let types: Vec<TensorType> = shapes
            .iter()
            .map(|s| TensorType {
                dtype: DType::F32,
                shape: s.iter().map(|&n| Extent::Fixed(n as u64)).collect(),
            })
            .collect();
        if let Ok((module, func)) = einsum_function(&subscripts, &types) {
            let run = interp::run_function(&module, &func, &operands);
            prop_assert!(run.is_ok(), "{:?} {:?}: {:?}", subscripts, shapes, run.err());
        }
    }
}
