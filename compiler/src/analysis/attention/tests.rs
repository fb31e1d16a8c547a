use super::*;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::Module;

fn module(text: &str) -> Module {
    parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Batched, multi-head, causal attention whose ops have made-up names and whose operands come
/// in the other order (`mul(%1, %0)`).
pub(super) const CAUSAL: &str = "dims B, H, T, E
func @f(%Q: f32[B, H, T, E], %K: f32[B, H, T, E], %V: f32[B, H, T, E]) -> (O: f32[B, H, T, E]) {
  %s0 = generic (b: B, h: H, i: T, j: T, e: E) ins(%K[b, h, j, e], %Q[b, h, i, e]) -> [b, h, i, j] reduce add over (e) { mul(%1, %0) } : f32
  %s1 = generic (b: B, h: H, i: T, j: T) ins(%s0[b, h, i, j]) -> [b, h, i, j] { div(%0, sqrt(dim(E):f32)) } : f32
  %s2 = generic (b: B, h: H, i: T, j: T) ins(%s1[b, h, i, j]) -> [b, h, i, j] { select(le(j, i), %0, -inf:f32) } : f32
  %m = generic (b: B, h: H, i: T, j: T) ins(%s2[b, h, i, j]) -> [b, h, i] reduce max over (j) { %0 } : f32
  %x = generic (b: B, h: H, i: T, j: T) ins(%s2[b, h, i, j], %m[b, h, i]) -> [b, h, i, j] { exp(sub(%0, %1)) } : f32
  %s = generic (b: B, h: H, i: T, j: T) ins(%x[b, h, i, j]) -> [b, h, i] reduce add over (j) { %0 } : f32
  %p = generic (b: B, h: H, i: T, j: T) ins(%x[b, h, i, j], %s[b, h, i]) -> [b, h, i, j] { div(%0, %1) } : f32
  %O = generic (b: B, h: H, i: T, e: E, j: T) ins(%V[b, h, j, e], %p[b, h, i, j]) -> [b, h, i, e] reduce add over (j) { mul(%0, %1) } : f32
  return O = %O
}";

#[test]
fn a_causal_multi_head_chain_is_found_with_its_roles() {
    let m = module(CAUSAL);
    let chains = attention_chains(&m.funcs[0]);
    assert_eq!(chains.len(), 1);
    let c = &chains[0];
    assert_eq!((c.scores, c.maps.clone(), c.output), (0, vec![1, 2], 7));
    assert_eq!(
        c.axes,
        vec![Role::Batch(0), Role::Batch(1), Role::Row, Role::Key]
    );
    // Q is input 1 of the scores, K input 0; P is input 1 of the output, V input 0.
    assert_eq!((c.q, c.k, c.p, c.v), (1, 0, 1, 0));
    assert_eq!(c.ops(), vec![0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(c.batch_rank(), 2);
    assert_eq!(c.output_index(Role::Key), Some(IndexId(4)));
    assert_eq!(c.output_index(Role::Row), Some(IndexId(2)));
    assert_eq!(c.value, IndexId(3));
}

#[test]
fn a_chain_whose_scores_are_also_returned_is_not_fused() {
    let text = CAUSAL
        .replace(
            "-> (O: f32[B, H, T, E])",
            "-> (O: f32[B, H, T, E], S: f32[B, H, T, T])",
        )
        .replace("return O = %O", "return O = %O, S = %s1");
    let m = module(&text);
    assert!(attention_chains(&m.funcs[0]).is_empty());
    let why = attention_chain(&m.funcs[0], 7).unwrap_err();
    assert!(why.contains("read outside"), "{why}");
}

#[test]
fn a_softmax_read_by_a_second_op_or_over_the_row_is_not_a_chain() {
    // The softmax is over i (the queries' own index), so O does not sum over the softmax axis.
    let text = "dims T, E
func @f(%Q: f32[T, E], %K: f32[T, E], %V: f32[T, E]) -> (O: f32[T, E]) {
  %s0 = generic (i: T, j: T, e: E) ins(%Q[i, e], %K[j, e]) -> [i, j] reduce add over (e) { mul(%0, %1) } : f32
  %m = generic (i: T, j: T) ins(%s0[i, j]) -> [j] reduce max over (i) { %0 } : f32
  %x = generic (i: T, j: T) ins(%s0[i, j], %m[j]) -> [i, j] { exp(sub(%0, %1)) } : f32
  %s = generic (i: T, j: T) ins(%x[i, j]) -> [j] reduce add over (i) { %0 } : f32
  %p = generic (i: T, j: T) ins(%x[i, j], %s[j]) -> [i, j] { div(%0, %1) } : f32
  %O = generic (i: T, e: E, j: T) ins(%p[i, j], %V[j, e]) -> [i, e] reduce add over (j) { mul(%0, %1) } : f32
  return O = %O
}";
    let m = module(text);
    assert!(attention_chains(&m.funcs[0]).is_empty());
}
