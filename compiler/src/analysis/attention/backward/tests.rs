use super::*;
use crate::ir::tensor::parser::parse_module;

/// The gradient `grad(attention, wrt: [WQ, WK, WV])` derives for `examples/attention.ein`, as
/// the `flash-attention` pass sees it (schedules dropped).
const GRAD: &str = include_str!("grad.tir");

#[test]
fn the_derived_attention_gradient_is_one_group_with_three_exits() {
    let m = parse_module(GRAD).unwrap();
    let groups = backward_groups(&m.funcs[0]);
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    let ops: Vec<(usize, MemberKind)> = g.members.iter().map(|m| (m.op, m.kind.clone())).collect();
    let product = |rows, keys| MemberKind::Product {
        rows,
        keys,
        head: IndexId(2),
    };
    // S.unscaled, S, P.max, P.exp, P.sum, P, dP, dP.sum.unscaled, dP.sum, dS.
    assert_eq!(
        ops,
        vec![
            (3, product(0, 1)),
            (4, MemberKind::Map),
            (5, MemberKind::RowReduce),
            (6, MemberKind::Map),
            (7, MemberKind::RowReduce),
            (8, MemberKind::Map),
            (
                9,
                MemberKind::Product {
                    rows: 0,
                    keys: 1,
                    head: IndexId(1)
                }
            ),
            (11, MemberKind::RowReduce),
            (12, MemberKind::RowMap),
            (13, MemberKind::Map),
        ]
    );
    // dV and dKx.unscaled sum over the row, dQ.unscaled over the key.
    let exits: Vec<(usize, ExitSum)> = g.exits.iter().map(|e| (e.op, e.sum)).collect();
    assert_eq!(
        exits,
        vec![(10, ExitSum::Row), (14, ExitSum::Key), (16, ExitSum::Row)]
    );
    // The nest runs at the scores: Q, Kx and V are defined before them.
    assert_eq!((g.anchor, g.batch_rank), (3, 0));
    assert_eq!(backward_group(&m.funcs[0], 3).as_ref(), Ok(g));
    assert!(backward_group(&m.funcs[0], 16).is_err());
}

#[test]
fn a_group_value_read_outside_the_group_is_not_fused() {
    // dS returned: storing it is needed anyway.
    let text = GRAD
        .replace("-> (dWQ: f32[D, K],", "-> (dS: f32[T, T], dWQ: f32[D, K],")
        .replace("return dWQ", "return dS = %dS, dWQ");
    let m = parse_module(&text).unwrap();
    assert!(backward_groups(&m.funcs[0]).is_empty());
}

#[test]
fn a_forward_chain_is_not_a_backward_group() {
    let m = parse_module(super::super::tests::CAUSAL).unwrap();
    assert!(backward_groups(&m.funcs[0]).is_empty());
}
