use super::*;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::Module;

fn module(text: &str) -> Module {
    parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The classes of the ops of the first function of `text`.
fn classes(text: &str) -> Vec<OpClass> {
    classify_function(&module(text).funcs[0])
}

fn ids(v: &[u32]) -> Vec<IndexId> {
    v.iter().map(|&i| IndexId(i)).collect()
}

#[test]
fn matmul_and_batched_matmul_get_their_index_groups() {
    let c = classes(
        "dims M, N, K, B
func @f(%A: f32[M, K], %X: f32[K, N], %Q: f32[B, M, K], %R: f32[B, N, K]) -> (C: f32[M, N], D: f32[B, M, N]) {
  %C = generic (i: M, j: N, k: K) ins(%A[i, k], %X[k, j]) -> [i, j] reduce add over (k) { mul(%0, %1) } : f32
  %D = generic (b: B, i: M, j: N, k: K) ins(%R[b, j, k], %Q[b, i, k]) -> [b, i, j] reduce add over (k) { mul(%1, %0) } : f32
  return C = %C, D = %D
}",
    );
    assert_eq!(
        c[0],
        OpClass::Contraction(Contraction {
            batch: vec![],
            m: ids(&[0]),
            n: ids(&[1]),
            k: ids(&[2]),
            a: 0,
            b: 1,
        })
    );
    // `a` is the left factor of the `mul`: here input 1 (%Q), which carries `i`.
    assert_eq!(
        c[1],
        OpClass::Contraction(Contraction {
            batch: ids(&[0]),
            m: ids(&[1]),
            n: ids(&[2]),
            k: ids(&[3]),
            a: 1,
            b: 0,
        })
    );
}

#[test]
fn matrix_vector_dot_and_outer_products_are_contractions() {
    let c = classes(
        "dims M, K
func @f(%A: f32[M, K], %x: f32[K], %y: f32[M]) -> (v: f32[M], d: f32, o: f32[M, K]) {
  %v = generic (i: M, k: K) ins(%A[i, k], %x[k]) -> [i] reduce add over (k) { mul(%0, %1) } : f32
  %d = generic (k: K) ins(%x[k], %x[k]) -> [] reduce add over (k) { mul(%0, %1) } : f32
  %o = generic (i: M, k: K) ins(%y[i], %x[k]) -> [i, k] { mul(%0, %1) } : f32
  return v = %v, d = %d, o = %o
}",
    );
    let OpClass::Contraction(mv) = &c[0] else {
        panic!("{:?}", c[0])
    };
    assert_eq!(
        (mv.m.clone(), mv.n.clone(), mv.k.clone()),
        (ids(&[0]), vec![], ids(&[1]))
    );
    let OpClass::Contraction(dot) = &c[1] else {
        panic!("{:?}", c[1])
    };
    assert!(dot.m.is_empty() && dot.n.is_empty() && dot.batch.is_empty());
    assert_eq!(dot.k, ids(&[0]));
    let OpClass::Contraction(outer) = &c[2] else {
        panic!("{:?}", c[2])
    };
    assert_eq!((outer.m.clone(), outer.n.clone()), (ids(&[0]), ids(&[1])));
    assert!(outer.k.is_empty());
}

#[test]
fn products_that_are_not_clean_contractions_are_maps_or_reductions() {
    let c = classes(
        "dims M, K
func @f(%A: f32[M, K], %B: f32[M, K], %x: f32[K], %h: f64[K]) -> (a: f32[M, K], b: f32[M], c: f32[M], d: f32[M], e: f64) {
  %a = generic (i: M, k: K) ins(%A[i, k], %B[i, k]) -> [i, k] { mul(%0, %1) } : f32
  %b = generic (i: M, k: K) ins(%A[i, k], %x[k]) -> [i] reduce add over (k) { add(%0, %1) } : f32
  %c = generic (i: M, k: K, j: K) ins(%A[i, k], %x[k]) -> [i] reduce add over (k, j) { mul(%0, %1) } : f32
  %d = generic (i: M, k: K) ins(%A[i, k], %x[k]) -> [i] reduce max over (k) { mul(%0, %1) } : f32
  %e = generic (k: K) ins(%x[k], %h[k]) -> [] reduce add over (k) { mul(cast<f64>(%0), %1) } : f64
  return a = %a, b = %b, c = %c, d = %d, e = %e
}",
    );
    // A Hadamard product: no reduction and no index of one operand alone.
    assert_eq!(c[0], OpClass::Map);
    // Not a product.
    assert_eq!(
        c[1],
        OpClass::Reduction {
            kind: ReduceKind::Add,
            over: ids(&[1])
        }
    );
    // `j` is summed but neither operand carries it: single-operand work first.
    assert!(matches!(c[2], OpClass::Reduction { .. }), "{:?}", c[2]);
    // A max of products.
    assert!(
        matches!(
            c[3],
            OpClass::Reduction {
                kind: ReduceKind::Max,
                ..
            }
        ),
        "{:?}",
        c[3]
    );
    // A converted operand is not something a GEMM kernel computes.
    assert!(matches!(c[4], OpClass::Reduction { .. }), "{:?}", c[4]);
}

#[test]
fn deltas_and_eps_make_an_op_other() {
    let c = classes(
        "dims N = 3
func @f(%x: f32[N]) -> (y: f32[N]) {
  %y = generic (i: N, j: N) ins(%x[j]) -> [i] reduce add over (j) { mul(delta<f32>(i, j), %0) } : f32
  return y = %y
}",
    );
    assert_eq!(c, [OpClass::Other]);
}

#[test]
fn product_factors_reads_casts_and_repeats_and_rejects_other_bodies() {
    let m = module(
        "dims K
func @f(%x: f32[K], %n: i32[K]) -> (a: f32, b: f32, c: f32[K]) {
  %a = generic (k: K) ins(%x[k], %n[k]) -> [] reduce add over (k) { mul(mul(%0, cast<f32>(%1)), %0) } : f32
  %b = generic (k: K) ins(%x[k]) -> [] reduce max over (k) { mul(%0, %0) } : f32
  %c = generic (k: K) ins(%x[k]) -> [k] { mul(%0, 2.0:f32) } : f32
  return a = %a, b = %b, c = %c
}",
    );
    let g = |k: usize| {
        let OpKind::Generic(g) = &m.funcs[0].ops[k].kind;
        g.clone()
    };
    let f = |input, cast| Factor { input, cast };
    assert_eq!(
        product_factors(&g(0)),
        Some(vec![f(0, None), f(1, Some(DType::F32)), f(0, None)])
    );
    assert_eq!(
        product_factors(&g(1)),
        None,
        "a max is not a sum of products"
    );
    assert_eq!(
        product_factors(&g(2)),
        None,
        "a literal is not an input read"
    );
}

const SOFTMAX: &str = "dims T, K
func @f(%S: f32[T, T], %V: f32[T, K]) -> (O: f32[T, K]) {
  %P.max = generic (i: T, j: T) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : f32
  %P.exp = generic (i: T, j: T) ins(%S[i, j], %P.max[i]) -> [i, j] { exp(sub(%0, %1)) } : f32
  %P.sum = generic (i: T, j: T) ins(%P.exp[i, j]) -> [i] reduce add over (j) { %0 } : f32
  %P = generic (i: T, j: T) ins(%P.exp[i, j], %P.sum[i]) -> [i, j] { div(%0, %1) } : f32
  %O = generic (i: T, a: K, j: T) ins(%P[i, j], %V[j, a]) -> [i, a] reduce add over (j) { mul(%0, %1) } : f32
  return O = %O
}";

#[test]
fn the_softmax_group_is_recognised_in_each_of_its_ops() {
    let m = module(SOFTMAX);
    let f = &m.funcs[0];
    let c = classify_function(f);
    let group = RowSoftmax {
        source: f.params[0],
        max: 0,
        exp: 1,
        sum: 2,
        div: 3,
        axes: vec![1],
        escapes: vec![],
    };
    for (k, class) in c.iter().enumerate().take(4) {
        assert_eq!(*class, OpClass::RowSoftmax(group.clone()), "op {k}");
    }
    assert!(matches!(c[4], OpClass::Contraction(_)));
    assert_eq!(classify(f, 2), OpClass::RowSoftmax(group));
    assert_eq!(classify(f, 99), OpClass::Other);
}

#[test]
fn softmax_is_recognised_whatever_the_names_axes_and_input_order() {
    // Normalised over the first axis of a transposed read, with renamed indices, the exp's
    // inputs swapped, and the exp also returned (an escape).
    let c = classes(
        "dims T, U
func @f(%S: f32[U, T]) -> (P: f32[T, U], E: f32[T, U]) {
  %m = generic (q: U, p: T) ins(%S[q, p]) -> [q] reduce max over (p) { %0 } : f32
  %e = generic (a: T, b: U) ins(%m[b], %S[b, a]) -> [a, b] { exp(sub(%1, %0)) } : f32
  %s = generic (y: U, x: T) ins(%e[x, y]) -> [y] reduce add over (x) { %0 } : f32
  %P = generic (u: T, v: U) ins(%s[v], %e[u, v]) -> [u, v] { div(%1, %0) } : f32
  return P = %P, E = %e
}",
    );
    let OpClass::RowSoftmax(g) = &c[3] else {
        panic!("{c:?}")
    };
    assert_eq!((g.max, g.exp, g.sum, g.div), (0, 1, 2, 3));
    assert_eq!(g.axes, [0]);
    assert_eq!(g.escapes, [ValueId(2)]);
}

#[test]
fn near_misses_are_not_softmax() {
    let variants = [
        // sum over the wrong axis
        SOFTMAX.replace(
            "%P.sum = generic (i: T, j: T) ins(%P.exp[i, j]) -> [i] reduce add over (j)",
            "%P.sum = generic (i: T, j: T) ins(%P.exp[j, i]) -> [i] reduce add over (j)",
        ),
        // exp(max - x)
        SOFTMAX.replace("exp(sub(%0, %1))", "exp(sub(%1, %0))"),
        // the division transposes its result
        SOFTMAX.replace(
            "%P = generic (i: T, j: T) ins(%P.exp[i, j], %P.sum[i]) -> [i, j]",
            "%P = generic (i: T, j: T) ins(%P.exp[i, j], %P.sum[i]) -> [j, i]",
        ),
        // the max reads another tensor
        SOFTMAX
            .replace("(%S: f32[T, T], ", "(%S: f32[T, T], %R: f32[T, T], ")
            .replace(
                "ins(%S[i, j]) -> [i] reduce max",
                "ins(%R[i, j]) -> [i] reduce max",
            ),
    ];
    for (k, text) in variants.iter().enumerate() {
        let m = module(text);
        let c = classify_function(&m.funcs[0]);
        assert!(
            !c.iter().any(|c| matches!(c, OpClass::RowSoftmax(_))),
            "variant {k}: {c:?}"
        );
    }
}

#[test]
fn unverified_ops_are_other_and_never_panic() {
    let mut m = module(SOFTMAX);
    let OpKind::Generic(g) = &mut m.funcs[0].ops[4].kind;
    g.output.push(IndexId(77));
    assert_eq!(classify_generic(g), OpClass::Other);
    let OpKind::Generic(g) = &mut m.funcs[0].ops[1].kind;
    g.inputs[1].map = vec![AxisMap::Index(IndexId(9))];
    let c = classify_function(&m.funcs[0]);
    assert!(
        !c.iter().any(|c| matches!(c, OpClass::RowSoftmax(_))),
        "{c:?}"
    );
}
