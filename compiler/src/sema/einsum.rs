//! numpy einsum semantics: a subscripts string and operand types in, an [`EinsumPlan`] out
//! (every label with its extent, the operand axes that carry it, free or summed; the result
//! type), then one [`Generic`] op computing it. (What it costs is the business of
//! [`crate::paths::cost`], the one cost model.)
//!
//! The rules are numpy's, including the corners listed in the conformance corpus README:
//! implicit mode (output = labels seen exactly once, in ASCII order, after the `...` dims),
//! `...` anywhere in a term covering zero or more axes and broadcasting right-aligned, repeated
//! labels within an operand (a diagonal, which needs equal extents), size-1 broadcasting of a
//! label across operands (also when summed; 1 against 0 gives 0), and `numpy.result_type`
//! promotion of the operand dtypes.
//!
//! Shapes may be symbolic (`Extent::Dim`) so that `.ein` files can reuse this analysis: two
//! symbolic extents agree only when they are the same dim, and a symbolic dim is never assumed
//! to be 1 (a literal 1 still broadcasts against it, which is valid for every value of the dim).

mod lower;
mod parse;

pub use lower::{einsum_function, to_generic};

use crate::ir::tensor::{Extent, TensorType};
use einc_runtime::DType;
use parse::{Item, Term};
use std::fmt;
use std::ops::Range;

/// Why a subscripts string does not apply to the given operands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EinsumError {
    /// What is wrong, as a full sentence without the `error:` prefix.
    pub message: String,
    /// The offending bytes of the subscripts string, when one place is to blame.
    pub span: Option<Range<usize>>,
}

impl EinsumError {
    fn at(message: impl Into<String>, span: Range<usize>) -> EinsumError {
        EinsumError {
            message: message.into(),
            span: Some(span),
        }
    }

    fn whole(message: impl Into<String>) -> EinsumError {
        EinsumError {
            message: message.into(),
            span: None,
        }
    }
}

impl fmt::Display for EinsumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EinsumError {}

/// Something worth telling the user about a valid einsum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EinsumNote {
    /// The remark.
    pub message: String,
    /// The bytes of the subscripts string it is about.
    pub span: Option<Range<usize>>,
}

/// One place where a label addresses an operand axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// The operand's position.
    pub operand: usize,
    /// The axis of that operand.
    pub axis: usize,
    /// The axis has extent 1 and is broadcast to the label's larger (or symbolic) extent, so
    /// it is always read at position 0.
    pub broadcast: bool,
}

/// What a label of the iteration space is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelKind {
    /// A letter of the subscripts.
    Letter(char),
    /// Dimension `n` (counted from the left) of the broadcast `...` dimensions.
    Ellipsis(usize),
}

impl LabelKind {
    /// The index name in the IR: the letter itself, or `e0`, `e1`, ... for `...` dims (two
    /// characters, so never equal to a single-letter label).
    pub fn index_name(self) -> String {
        match self {
            LabelKind::Letter(c) => c.to_string(),
            LabelKind::Ellipsis(n) => format!("e{n}"),
        }
    }
}

/// One index of the einsum's iteration space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelInfo {
    /// Letter or `...` dimension.
    pub kind: LabelKind,
    /// The extent after broadcasting.
    pub extent: Extent,
    /// Every operand axis carrying the label, in operand then axis order.
    pub occurrences: Vec<Occurrence>,
    /// True for a dummy index (not in the output: summed over); false for a free one.
    pub summed: bool,
}

/// The analysis of one einsum: its iteration space, result and remarks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EinsumPlan {
    /// The subscripts string as given.
    pub subscripts: String,
    /// The operand types as given.
    pub operands: Vec<TensorType>,
    /// Every label: the free ones first, in output order, then the summed ones in order of
    /// first appearance.
    pub labels: Vec<LabelInfo>,
    /// The output's labels, as positions in [`EinsumPlan::labels`], in axis order.
    pub output: Vec<usize>,
    /// The result type: promoted dtype, output extents.
    pub result: TensorType,
    /// True when the string has `->` (explicit mode).
    pub explicit: bool,
    /// Remarks about a valid but possibly surprising einsum.
    pub notes: Vec<EinsumNote>,
}

/// Shows an extent as a user wrote it: a number or a dim name.
pub fn show_extent(e: &Extent) -> String {
    match e {
        Extent::Fixed(n) => n.to_string(),
        Extent::Dim(name) => name.clone(),
    }
}

/// Shows a shape as `[3, T, 4]`.
pub fn show_shape(shape: &[Extent]) -> String {
    let parts: Vec<String> = shape.iter().map(show_extent).collect();
    format!("[{}]", parts.join(", "))
}

/// Operand types for a subscripts string alone: each labelled axis gets the symbolic extent
/// named after its label (so a label has the same extent wherever it occurs) and each `...`
/// covers no axes. `einc explain` uses them when no shapes are given.
pub fn symbolic_operands(subscripts: &str, dtype: DType) -> Result<Vec<TensorType>, EinsumError> {
    let parsed = parse::parse(subscripts)?;
    Ok(parsed
        .inputs
        .iter()
        .map(|term| TensorType {
            dtype,
            shape: term
                .items
                .iter()
                .filter_map(|it| match it {
                    Item::Label(c, _) => Some(Extent::Dim(char::from(*c).to_string())),
                    Item::Ellipsis(_) => None,
                })
                .collect(),
        })
        .collect())
}

/// What addresses one axis of an operand, before extents are known.
#[derive(Clone, Debug)]
struct AxisLabel {
    kind: LabelKind,
    /// The bytes of the label (the whole `...` for ellipsis dims).
    span: Range<usize>,
}

/// Analyzes `subscripts` applied to operands of the given types, with numpy's rules.
pub fn analyze(subscripts: &str, operands: &[TensorType]) -> Result<EinsumPlan, EinsumError> {
    let parsed = parse::parse(subscripts)?;
    if operands.is_empty() {
        return Err(EinsumError::whole("einsum needs at least one operand"));
    }
    if parsed.inputs.len() != operands.len() {
        return Err(EinsumError::at(
            format!(
                "the subscripts have {} operand term{} but {} operand{} given",
                parsed.inputs.len(),
                plural(parsed.inputs.len()),
                operands.len(),
                if operands.len() == 1 {
                    " was"
                } else {
                    "s were"
                }
            ),
            0..subscripts.len(),
        ));
    }
    let (axes, broadcast_ndim) = operand_axes(subscripts, &parsed.inputs, operands)?;
    let output = output_labels(&parsed, &axes, broadcast_ndim)?;
    let free: Vec<LabelKind> = output.iter().map(|(k, _)| *k).collect();

    // Free labels first, in output order; then summed ones in order of first appearance.
    let mut order = free.clone();
    for a in axes.iter().flatten() {
        if !order.contains(&a.kind) {
            order.push(a.kind);
        }
    }
    let mut labels = Vec::with_capacity(order.len());
    for &kind in &order {
        let extent = label_extent(kind, &axes, operands)?;
        let mut occurrences = Vec::new();
        for (operand, op_axes) in axes.iter().enumerate() {
            for (axis, a) in op_axes.iter().enumerate() {
                if a.kind == kind {
                    let axis_extent = axis_extent(operands, operand, axis);
                    occurrences.push(Occurrence {
                        operand,
                        axis,
                        broadcast: axis_extent == Extent::Fixed(1) && extent != Extent::Fixed(1),
                    });
                }
            }
        }
        labels.push(LabelInfo {
            kind,
            extent,
            occurrences,
            summed: !free.contains(&kind),
        });
    }
    let dtype = operands
        .iter()
        .map(|t| t.dtype)
        .reduce(DType::promote)
        .unwrap_or(DType::F64);
    let result = TensorType {
        dtype,
        shape: labels
            .iter()
            .take(free.len())
            .map(|l| l.extent.clone())
            .collect(),
    };
    let notes = notes(&labels, &axes, operands.len());
    Ok(EinsumPlan {
        subscripts: subscripts.to_string(),
        operands: operands.to_vec(),
        output: (0..free.len()).collect(),
        labels,
        result,
        explicit: parsed.output.is_some(),
        notes,
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn axis_extent(operands: &[TensorType], operand: usize, axis: usize) -> Extent {
    operands
        .get(operand)
        .and_then(|t| t.shape.get(axis))
        .cloned()
        .unwrap_or(Extent::Fixed(1))
}

fn term_text<'a>(subscripts: &'a str, term: &Term) -> &'a str {
    subscripts.get(term.span.clone()).unwrap_or("").trim()
}

/// The label of every axis of every operand, and the number of broadcast `...` dimensions
/// (the most that any operand's `...` covers).
fn operand_axes(
    subscripts: &str,
    terms: &[Term],
    operands: &[TensorType],
) -> Result<(Vec<Vec<AxisLabel>>, usize), EinsumError> {
    let mut covered = Vec::with_capacity(terms.len());
    for (i, (term, ty)) in terms.iter().zip(operands).enumerate() {
        let (rank, n) = (ty.shape.len(), term.label_count());
        if n > rank {
            return Err(EinsumError::at(
                format!(
                    "operand {i} has {rank} ax{} but its term `{}` names {n} labels",
                    if rank == 1 { "is" } else { "es" },
                    term_text(subscripts, term)
                ),
                term.span.clone(),
            ));
        }
        if n < rank && !term.has_ellipsis() {
            return Err(EinsumError::at(
                format!(
                    "operand {i} has {rank} axes but its term `{}` names only {n}: write `...` \
                     to stand for the others",
                    term_text(subscripts, term)
                ),
                term.span.clone(),
            ));
        }
        covered.push(rank - n);
    }
    let broadcast_ndim = covered.iter().copied().max().unwrap_or(0);
    let mut axes = Vec::with_capacity(terms.len());
    for (term, &d) in terms.iter().zip(&covered) {
        let mut op_axes = Vec::new();
        for item in &term.items {
            match item {
                Item::Label(c, span) => op_axes.push(AxisLabel {
                    kind: LabelKind::Letter(char::from(*c)),
                    span: span.clone(),
                }),
                // Right-aligned: an operand's `...` covers the last `d` broadcast dimensions.
                Item::Ellipsis(span) => {
                    op_axes.extend((broadcast_ndim - d..broadcast_ndim).map(|k| AxisLabel {
                        kind: LabelKind::Ellipsis(k),
                        span: span.clone(),
                    }))
                }
            }
        }
        axes.push(op_axes);
    }
    Ok((axes, broadcast_ndim))
}

/// The output labels with their spans: the explicit output term checked, or numpy's implicit
/// output (the `...` dims, then the labels seen exactly once in ASCII order).
fn output_labels(
    parsed: &parse::Subscripts,
    axes: &[Vec<AxisLabel>],
    broadcast_ndim: usize,
) -> Result<Vec<(LabelKind, Range<usize>)>, EinsumError> {
    let count = |c: u8| {
        axes.iter()
            .flatten()
            .filter(|a| a.kind == LabelKind::Letter(char::from(c)))
            .count()
    };
    let ellipsis_dims = |span: Range<usize>| {
        (0..broadcast_ndim).map(move |k| (LabelKind::Ellipsis(k), span.clone()))
    };
    let Some(term) = &parsed.output else {
        let mut out: Vec<(LabelKind, Range<usize>)> = ellipsis_dims(0..0).collect();
        let mut once: Vec<(u8, Range<usize>)> = Vec::new();
        for t in &parsed.inputs {
            for item in &t.items {
                if let Item::Label(c, span) = item {
                    if count(*c) == 1 {
                        once.push((*c, span.clone()));
                    }
                }
            }
        }
        once.sort_by_key(|(c, _)| *c);
        out.extend(
            once.into_iter()
                .map(|(c, span)| (LabelKind::Letter(char::from(c)), span)),
        );
        return Ok(out);
    };
    let mut out = Vec::new();
    for (pos, item) in term.items.iter().enumerate() {
        match item {
            Item::Label(c, span) => {
                let ch = char::from(*c);
                let repeated = term.items[..pos]
                    .iter()
                    .any(|it| matches!(it, Item::Label(d, _) if d == c));
                if repeated {
                    return Err(EinsumError::at(
                        format!("output label `{ch}` appears more than once"),
                        span.clone(),
                    ));
                }
                if count(*c) == 0 {
                    return Err(EinsumError::at(
                        format!("output label `{ch}` does not appear in any operand"),
                        span.clone(),
                    ));
                }
                out.push((LabelKind::Letter(ch), span.clone()));
            }
            Item::Ellipsis(span) => out.extend(ellipsis_dims(span.clone())),
        }
    }
    if broadcast_ndim > 0 && !term.has_ellipsis() {
        return Err(EinsumError::at(
            format!(
                "the operands' `...` covers {broadcast_ndim} dimension{} but the output has no \
                 `...` to keep {}",
                plural(broadcast_ndim),
                if broadcast_ndim == 1 { "it" } else { "them" }
            ),
            term.span.clone(),
        ));
    }
    Ok(out)
}

/// The extent of a label: equal within each operand (a diagonal), broadcast across operands.
fn label_extent(
    kind: LabelKind,
    axes: &[Vec<AxisLabel>],
    operands: &[TensorType],
) -> Result<Extent, EinsumError> {
    let what = match kind {
        LabelKind::Letter(c) => format!("label `{c}`"),
        LabelKind::Ellipsis(k) => format!("`...` dimension {k}"),
    };
    // (extent, operand, span) of the operand that fixed the extent so far.
    let mut acc: Option<(Extent, usize, Range<usize>)> = None;
    for (operand, op_axes) in axes.iter().enumerate() {
        let mut own: Option<Extent> = None;
        for (axis, a) in op_axes.iter().enumerate() {
            if a.kind != kind {
                continue;
            }
            let e = axis_extent(operands, operand, axis);
            if let Some(prev) = &own {
                if *prev != e {
                    return Err(EinsumError::at(
                        format!(
                            "{what} is repeated in operand {operand} with different extents \
                             ({} and {}): a diagonal needs equal extents",
                            show_extent(prev),
                            show_extent(&e)
                        ),
                        a.span.clone(),
                    ));
                }
                // A repeat with the same extent was combined at its first axis.
                continue;
            }
            own = Some(e.clone());
            acc = match acc.take() {
                None => Some((e, operand, a.span.clone())),
                Some((prev, prev_op, prev_span)) => {
                    if prev == e || e == Extent::Fixed(1) {
                        Some((prev, prev_op, prev_span))
                    } else if prev == Extent::Fixed(1) {
                        Some((e, operand, a.span.clone()))
                    } else {
                        return Err(EinsumError::at(
                            format!(
                                "{what} has extent {} in operand {prev_op} but {} in operand \
                                 {operand}, and neither is 1",
                                show_extent(&prev),
                                show_extent(&e)
                            ),
                            a.span.clone(),
                        ));
                    }
                }
            };
        }
    }
    Ok(acc.map_or(Extent::Fixed(1), |(e, _, _)| e))
}

fn notes(labels: &[LabelInfo], axes: &[Vec<AxisLabel>], operand_count: usize) -> Vec<EinsumNote> {
    let span_of = |o: &Occurrence| {
        axes.get(o.operand)
            .and_then(|a| a.get(o.axis))
            .map(|a| a.span.clone())
    };
    let mut notes = Vec::new();
    for l in labels {
        let name = l.kind.index_name();
        let Some(first) = l.occurrences.first() else {
            continue;
        };
        let single_operand = l.occurrences.iter().all(|o| o.operand == first.operand);
        if l.summed && operand_count > 1 && single_operand {
            notes.push(EinsumNote {
                message: format!(
                    "`{name}` is summed but appears in only one operand (operand {}): that \
                     operand is summed over `{name}` on its own, so this is not a matmul-style \
                     contraction over `{name}`",
                    first.operand
                ),
                span: span_of(first),
            });
        }
        for o in l.occurrences.iter().filter(|o| o.broadcast) {
            notes.push(EinsumNote {
                message: format!(
                    "`{name}` has extent 1 in operand {} (axis {}) and is broadcast to {}",
                    o.operand,
                    o.axis,
                    show_extent(&l.extent)
                ),
                span: span_of(o),
            });
        }
    }
    notes
}

#[cfg(test)]
mod tests;
