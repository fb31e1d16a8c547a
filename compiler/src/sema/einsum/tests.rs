//! Unit tests of the einsum analysis: one test per numpy rule, every error case, the plan's
//! IR form. Expected shapes and orders are worked out by hand from numpy's documentation.

use super::*;
use crate::ir::tensor::{AxisMap, BinaryFn, Expr, IndexId, ReduceKind, ValueId};

fn fixed(dtype: DType, shape: &[u64]) -> TensorType {
    TensorType {
        dtype,
        shape: shape.iter().map(|&n| Extent::Fixed(n)).collect(),
    }
}

fn f32s(shapes: &[&[u64]]) -> Vec<TensorType> {
    shapes.iter().map(|s| fixed(DType::F32, s)).collect()
}

fn plan(s: &str, shapes: &[&[u64]]) -> EinsumPlan {
    analyze(s, &f32s(shapes)).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn out_names(p: &EinsumPlan) -> Vec<String> {
    p.output
        .iter()
        .map(|&n| p.labels[n].kind.index_name())
        .collect()
}

fn result_shape(p: &EinsumPlan) -> Vec<u64> {
    p.result
        .shape
        .iter()
        .map(|e| match e {
            Extent::Fixed(n) => *n,
            Extent::Dim(d) => panic!("symbolic {d}"),
        })
        .collect()
}

fn error(s: &str, shapes: &[&[u64]]) -> EinsumError {
    match analyze(s, &f32s(shapes)) {
        Ok(_) => panic!("{s:?} with {shapes:?} should be rejected"),
        Err(e) => e,
    }
}

#[test]
fn implicit_output_is_single_labels_in_ascii_order() {
    let p = plan("bA", &[&[2, 3]]);
    assert_eq!(out_names(&p), ["A", "b"]);
    assert_eq!(result_shape(&p), [3, 2]);
    assert!(!p.explicit);
    let p = plan("ij,jk", &[&[3, 4], &[4, 5]]);
    assert_eq!(out_names(&p), ["i", "k"]);
    assert!(p
        .labels
        .iter()
        .any(|l| l.kind == LabelKind::Letter('j') && l.summed));
    let p = plan("ba", &[&[2, 3]]);
    assert_eq!(result_shape(&p), [3, 2]);
}

#[test]
fn a_label_repeated_in_one_operand_is_summed_in_implicit_mode() {
    let p = plan("ii", &[&[4, 4]]);
    assert!(p.result.shape.is_empty());
    assert_eq!(p.labels.len(), 1);
    assert!(p.labels[0].summed);
    assert_eq!(p.labels[0].occurrences.len(), 2);
    let p = plan("ii->i", &[&[4, 4]]);
    assert_eq!(result_shape(&p), [4]);
    assert!(!p.labels[0].summed);
}

#[test]
fn implicit_ellipsis_comes_first() {
    let p = plan("...ij,...jk", &[&[2, 3, 4], &[4, 5]]);
    assert_eq!(out_names(&p), ["e0", "i", "k"]);
    assert_eq!(result_shape(&p), [2, 3, 5]);
    let p = plan("i...i", &[&[3, 4, 3]]);
    assert_eq!(out_names(&p), ["e0"]);
    assert_eq!(result_shape(&p), [4]);
}

#[test]
fn ellipsis_dims_broadcast_right_aligned() {
    let p = plan("..., ...", &[&[3, 4], &[2, 3, 4]]);
    assert_eq!(result_shape(&p), [2, 3, 4]);
    let e0 = &p.labels[0];
    assert_eq!(e0.kind, LabelKind::Ellipsis(0));
    assert_eq!(
        e0.occurrences,
        [Occurrence {
            operand: 1,
            axis: 0,
            broadcast: false
        }]
    );
    // Operand 0's first axis is the second broadcast dimension.
    assert_eq!(p.labels[1].occurrences[0].operand, 0);
    assert_eq!(p.labels[1].occurrences[0].axis, 0);
    let p = plan("ij...,j...->i...", &[&[1, 2], &[2, 2, 1]]);
    assert_eq!(result_shape(&p), [1, 2, 1]);
    let p = plan("...i, ...i", &[&[2, 3, 1], &[1]]);
    assert_eq!(result_shape(&p), [2, 3]);
}

#[test]
fn ellipsis_may_cover_no_dims_and_appear_only_in_the_output() {
    let p = plan("ij->...ij", &[&[2, 3]]);
    assert_eq!(result_shape(&p), [2, 3]);
    let p = plan("...->", &[&[]]);
    assert!(p.result.shape.is_empty());
    let p = plan("ik...,...kj->i...j", &[&[4, 3], &[3, 2]]);
    assert_eq!(result_shape(&p), [4, 2]);
}

#[test]
fn size_one_labels_broadcast_even_when_summed() {
    let p = plan("ij,ij->j", &[&[7, 2], &[1, 2]]);
    let i = &p.labels[1];
    assert_eq!(i.kind, LabelKind::Letter('i'));
    assert_eq!(i.extent, Extent::Fixed(7));
    assert!(i.summed);
    assert_eq!(
        i.occurrences,
        [
            Occurrence {
                operand: 0,
                axis: 0,
                broadcast: false
            },
            Occurrence {
                operand: 1,
                axis: 0,
                broadcast: true
            }
        ]
    );
    assert!(p
        .notes
        .iter()
        .any(|n| n.message == "`i` has extent 1 in operand 1 (axis 0) and is broadcast to 7"));
    // 1 against 0 gives 0.
    let p = plan("i,i->i", &[&[1], &[0]]);
    assert_eq!(result_shape(&p), [0]);
    let p = plan("i, i", &[&[2], &[1]]);
    assert_eq!(p.labels[0].extent, Extent::Fixed(2));
}

#[test]
fn spaces_and_zero_dim_operands() {
    let p = plan(" i j k  ,  k  -> i j ", &[&[3, 0, 6], &[6]]);
    assert_eq!(result_shape(&p), [3, 0]);
    let p = plan(",,a,->a", &[&[], &[], &[2], &[]]);
    assert_eq!(result_shape(&p), [2]);
    let p = plan(" , ", &[&[], &[]]);
    assert!(p.result.shape.is_empty());
    let p = plan("->", &[&[]]);
    assert!(p.labels.is_empty());
}

#[test]
fn result_dtype_is_numpy_result_type() {
    let cases = [
        (DType::I32, DType::I32, DType::I32),
        (DType::F32, DType::I32, DType::F64),
        (DType::I32, DType::I64, DType::I64),
        (DType::F32, DType::F64, DType::F64),
    ];
    for (a, b, want) in cases {
        let p = analyze("a,a->a", &[fixed(a, &[2]), fixed(b, &[2])]).unwrap();
        assert_eq!(p.result.dtype, want, "{a} with {b}");
    }
}

#[test]
fn numpy_error_cases_are_rejected_with_a_location() {
    // (subscripts, shapes, expected message, expected span)
    type Case<'a> = (&'a str, &'a [&'a [u64]], &'a str, Option<Range<usize>>);
    let cases: &[Case] = &[
        ("", &[], "einsum needs at least one operand", None),
        (
            "",
            &[&[], &[]],
            "the subscripts have 1 operand term but 2 operands were given",
            Some(0..0),
        ),
        (
            "->,->",
            &[&[], &[]],
            "the subscripts contain `->` more than once",
            Some(3..5),
        ),
        ("i", &[&[]], "operand 0 has 0 axes but its term `i` names 1 labels", Some(0..1)),
        ("...i", &[&[]], "operand 0 has 0 axes but its term `...i` names 1 labels", Some(0..4)),
        (
            "i",
            &[&[2, 3]],
            "operand 0 has 2 axes but its term `i` names only 1: write `...` to stand for the others",
            Some(0..1),
        ),
        (
            "->",
            &[&[2]],
            "operand 0 has 1 axes but its term `` names only 0: write `...` to stand for the others",
            Some(0..0),
        ),
        ("i->ij", &[&[2]], "output label `j` does not appear in any operand", Some(4..5)),
        ("ij->jij", &[&[2, 2]], "output label `j` appears more than once", Some(6..7)),
        (
            "ii->i",
            &[&[2, 3]],
            "label `i` is repeated in operand 0 with different extents (2 and 3): a diagonal needs equal extents",
            Some(1..2),
        ),
        (
            "ii",
            &[&[1, 3]],
            "label `i` is repeated in operand 0 with different extents (1 and 3): a diagonal needs equal extents",
            Some(1..2),
        ),
        (
            "a, ba",
            &[&[2], &[2, 3]],
            "label `a` has extent 2 in operand 0 but 3 in operand 1, and neither is 1",
            Some(4..5),
        ),
        (
            "...,...",
            &[&[2], &[3]],
            "`...` dimension 0 has extent 2 in operand 0 but 3 in operand 1, and neither is 1",
            Some(4..7),
        ),
        (
            "...a->",
            &[&[2, 1]],
            "the operands' `...` covers 1 dimension but the output has no `...` to keep it",
            Some(6..6),
        ),
        ("i..", &[&[2]], "`.` is only valid as part of an ellipsis `...`", Some(1..2)),
        ("a->1", &[&[2]], "invalid character '1' in the subscripts: labels must be ASCII letters", Some(3..4)),
        ("i->i-", &[&[2]], "`-` is only valid as part of `->`", Some(4..5)),
    ];
    for (s, shapes, message, span) in cases {
        let e = error(s, shapes);
        assert_eq!(e.message, *message, "{s:?}");
        assert_eq!(e.span, *span, "{s:?}");
    }
    // More terms than operands, and the other errors numpy lists, by exit status only.
    for (s, shapes) in [
        (",", &[&[][..], &[1], &[1]][..]),
        ("ab,bc->ac", &[&[2, 3], &[3, 4], &[7, 7]]),
        ("aabcb,abc", &[&[3, 3, 4, 5, 6], &[3, 4, 5]]),
        ("a...b->ab", &[&[2, 2, 1]]),
        ("ij,jk->iki", &[&[2, 3], &[3, 4]]),
        ("... ...", &[&[2]]),
        ("ié", &[&[2, 3]]),
    ] {
        error(s, shapes);
    }
}

#[test]
fn symbolic_dims_agree_only_with_themselves_or_a_literal_one() {
    let dim = |n: &str| Extent::Dim(n.to_string());
    let ty = |shape: Vec<Extent>| TensorType {
        dtype: DType::F32,
        shape,
    };
    let p = analyze(
        "ij,jk->ik",
        &[ty(vec![dim("T"), dim("K")]), ty(vec![dim("K"), dim("T")])],
    )
    .unwrap();
    assert_eq!(p.result.shape, [dim("T"), dim("T")]);
    assert_eq!(p.labels[2].extent, dim("K"));

    let p = analyze("i,i->i", &[ty(vec![dim("T")]), ty(vec![Extent::Fixed(1)])]).unwrap();
    assert_eq!(p.result.shape, [dim("T")]);
    assert!(p.labels[0].occurrences[1].broadcast);

    let e = analyze("i,i->i", &[ty(vec![dim("T")]), ty(vec![Extent::Fixed(3)])]).unwrap_err();
    assert_eq!(
        e.message,
        "label `i` has extent T in operand 0 but 3 in operand 1, and neither is 1"
    );
    assert!(analyze("i,i->i", &[ty(vec![dim("T")]), ty(vec![dim("S")])]).is_err());
    assert!(analyze("ii", &[ty(vec![dim("T"), Extent::Fixed(1)])]).is_err());
}

#[test]
fn a_label_summed_within_one_operand_gets_a_note() {
    let p = plan("ij,jk->ij", &[&[3, 4], &[4, 5]]);
    assert_eq!(p.notes.len(), 1);
    assert!(p.notes[0]
        .message
        .starts_with("`k` is summed but appears in only one operand (operand 1)"));
    assert_eq!(p.notes[0].span, Some(4..5));
    assert!(plan("ij,jk->ik", &[&[3, 4], &[4, 5]]).notes.is_empty());
    assert!(plan("ij->i", &[&[3, 4]]).notes.is_empty());
}

#[test]
fn the_generic_reads_each_term_through_its_map() {
    let v = [ValueId(0), ValueId(1)];
    let g = to_generic(&plan("ij,jk->ik", &[&[3, 4], &[4, 5]]), &v);
    let names: Vec<&str> = g.indices.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["i", "k", "j"]);
    let ix = |n| AxisMap::Index(IndexId(n));
    assert_eq!(g.inputs[0].map, [ix(0), ix(2)]);
    assert_eq!(g.inputs[1].map, [ix(2), ix(1)]);
    assert_eq!(g.output, [IndexId(0), IndexId(1)]);
    let r = g.reduce.unwrap();
    assert_eq!((r.kind, r.over), (ReduceKind::Add, vec![IndexId(2)]));
    assert_eq!(
        g.body,
        Expr::Binary(
            BinaryFn::Mul,
            Box::new(Expr::Input(0)),
            Box::new(Expr::Input(1))
        )
    );

    // A diagonal repeats the index; a broadcast axis reads position 0; no sum, no reduce.
    let g = to_generic(&plan("ii,i->i", &[&[3, 3], &[1]]), &v);
    assert_eq!(g.inputs[0].map, [ix(0), ix(0)]);
    assert_eq!(g.inputs[1].map, [AxisMap::Fixed(0)]);
    assert_eq!(g.reduce, None);

    // Operands of another dtype are cast to the result's.
    let p = analyze("i->i", &[fixed(DType::I32, &[2])]).unwrap();
    assert_eq!(to_generic(&p, &v[..1]).body, Expr::Input(0));
    let p = analyze("i,i", &[fixed(DType::F32, &[2]), fixed(DType::I32, &[2])]).unwrap();
    let g = to_generic(&p, &v);
    assert_eq!(g.dtype, DType::F64);
    assert_eq!(
        g.body,
        Expr::Binary(
            BinaryFn::Mul,
            Box::new(Expr::Cast(DType::F64, Box::new(Expr::Input(0)))),
            Box::new(Expr::Cast(DType::F64, Box::new(Expr::Input(1))))
        )
    );
}

#[test]
fn einsum_function_declares_params_result_and_dims() {
    let ty = TensorType {
        dtype: DType::F32,
        shape: vec![Extent::Dim("T".into()), Extent::Fixed(2)],
    };
    let (module, func) = einsum_function("ij->ji", std::slice::from_ref(&ty)).unwrap();
    assert_eq!(module.dims.len(), 1);
    assert_eq!(module.dims[0].name, "T");
    assert_eq!(module.funcs, std::slice::from_ref(&func));
    assert_eq!(func.params, [ValueId(0)]);
    assert_eq!(func.value(ValueId(0)).ty, ty);
    assert_eq!(func.results[0].name, "out");
    assert_eq!(
        func.value(func.results[0].value).ty.shape,
        [Extent::Fixed(2), Extent::Dim("T".into())]
    );
    assert!(einsum_function("ij", &[]).is_err());
}
