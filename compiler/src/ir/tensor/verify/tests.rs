//! One test per verifier rule: a module that breaks exactly that rule, and the exact message.

use super::verify_module;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::*;
use einc_runtime::DType;

fn parse(text: &str) -> Module {
    match parse_module(text) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn errors(m: &Module) -> Vec<String> {
    match verify_module(m) {
        Ok(()) => Vec::new(),
        Err(es) => es.iter().map(ToString::to_string).collect(),
    }
}

/// The errors of a one-op function `@f(%A: a_ty) -> (B: b_ty)` whose op is `op`.
fn op_errors(dims: &str, a_ty: &str, b_ty: &str, op: &str) -> Vec<String> {
    errors(&parse(&format!(
        "dims {dims}\nfunc @f(%A: {a_ty}) -> (B: {b_ty}) {{\n  %B = {op}\n  return B = %B\n}}\n"
    )))
}

/// A valid module whose op is mutated by the tests that need what text cannot express.
const BASE: &str = "dims N\nfunc @f(%A: f32[N, N]) -> (B: f32[N]) {
  %B = generic (i: N, j: N) ins(%A[i, j]) -> [i] reduce add over (j) { %0 } : f32
  return B = %B
}
";

fn base() -> Module {
    let m = parse(BASE);
    assert_eq!(errors(&m), Vec::<String>::new());
    m
}

fn base_generic(m: &mut Module) -> &mut Generic {
    let OpKind::Generic(g) = &mut m.funcs[0].ops[0].kind;
    g
}

fn one(e: &str) -> Vec<String> {
    vec![e.to_string()]
}

#[test]
fn valid_modules_pass() {
    assert_eq!(
        op_errors(
            "N = 4",
            "f32[1, N]",
            "f32[4]",
            "generic (j: 4) ins(%A[0, j]) -> [j] { %0 } : f32"
        ),
        Vec::<String>::new(),
        "a fixed dim equals its value and Fixed(0) broadcasts an axis of extent 1"
    );
}

#[test]
fn dims_are_unique() {
    let mut m = base();
    m.dims.push(m.dims[0].clone());
    assert_eq!(errors(&m), one("module: dim `N` is declared twice"));
}

#[test]
fn function_names_are_unique() {
    let mut m = base();
    m.funcs.push(m.funcs[0].clone());
    assert_eq!(errors(&m), one("module: function @f is defined twice"));
}

#[test]
fn value_names_are_unique() {
    let mut m = base();
    m.funcs[0].values[1].name = "A".into();
    assert_eq!(
        errors(&m),
        one("@f: %A: value name is used by more than one value")
    );
}

#[test]
fn value_types_name_module_dims() {
    let mut m = base();
    m.funcs[0].values[0].ty.shape[0] = Extent::Dim("Q".into());
    // The index extent N no longer matches axis 0 either; that is a second, separate rule.
    assert_eq!(
        errors(&m),
        vec![
            "@f: %A: type f32[Q, N] names undefined dim `Q`",
            "@f: %B: input 0 (%A): index `i` has extent N but axis 0 has extent Q",
        ]
    );
}

#[test]
fn index_extents_name_module_dims() {
    let mut m = base();
    // An index that no input reads, so that only the dim rule is broken.
    let g = base_generic(&mut m);
    g.indices.push(IndexDef {
        name: "k".into(),
        extent: Extent::Dim("Q".into()),
    });
    g.reduce = Some(Reduce {
        kind: ReduceKind::Add,
        over: vec![IndexId(1), IndexId(2)],
    });
    assert_eq!(errors(&m), one("@f: %B: index `k` names undefined dim `Q`"));
}

#[test]
fn values_are_defined_before_use() {
    let m = parse(
        "dims N\nfunc @f(%A: f32[N]) -> (C: f32[N]) {
  %B = generic (i: N) ins(%A[i]) -> [i] { %0 } : f32
  %C = generic (i: N) ins(%B[i]) -> [i] { %0 } : f32
  return C = %C
}
",
    );
    let mut m2 = m.clone();
    m2.funcs[0].ops.swap(0, 1);
    assert_eq!(
        errors(&m2),
        one("@f: %C: input 0 uses %B before its definition")
    );
}

#[test]
fn values_are_defined_once() {
    let mut m = parse(
        "dims N\nfunc @f(%A: f32[N]) -> (B: f32[N]) {
  %B = generic (i: N) ins(%A[i]) -> [i] { %0 } : f32
  return B = %A
}
",
    );
    let f = &mut m.funcs[0];
    f.ops[0].result = ValueId(0);
    f.values.pop();
    assert_eq!(
        errors(&m),
        one("@f: %A: value is defined more than once (again as op result)")
    );
}

#[test]
fn every_value_is_defined() {
    let mut m = base();
    let ty = m.funcs[0].values[0].ty.clone();
    m.funcs[0].add_value("ghost", ty);
    assert_eq!(
        errors(&m),
        one("@f: %ghost: value is never defined (neither a parameter nor an op result)")
    );
}

#[test]
fn inputs_refer_to_existing_values() {
    let mut m = base();
    base_generic(&mut m).inputs[0].value = ValueId(99);
    assert_eq!(
        errors(&m),
        one("@f: %B: input 0 is value #99, which does not exist")
    );
}

#[test]
fn results_refer_to_existing_values() {
    let mut m = base();
    m.funcs[0].results[0].value = ValueId(42);
    assert_eq!(
        errors(&m),
        one("@f: output `B` is value #42, which does not exist")
    );
}

#[test]
fn output_names_are_unique() {
    let mut m = base();
    let r = m.funcs[0].results[0].clone();
    m.funcs[0].results.push(r);
    assert_eq!(errors(&m), one("@f: output `B` is declared twice"));
}

#[test]
fn result_type_is_the_derived_type() {
    let mut m = base();
    m.funcs[0].values[1].ty.shape.push(Extent::Fixed(2));
    assert_eq!(
        errors(&m),
        one("@f: %B: recorded type f32[N, 2] differs from the op's type f32[N]")
    );
}

#[test]
fn index_names_are_unique() {
    let mut m = base();
    base_generic(&mut m).indices[1].name = "i".into();
    assert_eq!(errors(&m), one("@f: %B: index `i` is declared twice"));
}

#[test]
fn output_has_no_repeats() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N, N]",
            "f32[N, N]",
            "generic (i: N) ins(%A[i, i]) -> [i, i] { %0 } : f32"
        ),
        one("@f: %B: index `i` appears twice in the output")
    );
}

#[test]
fn reduce_is_never_empty() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N]",
            "f32[N]",
            "generic (i: N) ins(%A[i]) -> [i] reduce add over () { %0 } : f32"
        ),
        one("@f: %B: `reduce` over no indices: an op without a reduction has no `reduce`")
    );
}

#[test]
fn reduced_indices_are_not_in_the_output() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N]",
            "f32[N]",
            "generic (i: N) ins(%A[i]) -> [i] reduce max over (i) { %0 } : f32"
        ),
        one("@f: %B: index `i` is both in the output and reduced over")
    );
}

#[test]
fn indices_are_reduced_once() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N, N]",
            "f32[N]",
            "generic (i: N, j: N) ins(%A[i, j]) -> [i] reduce min over (j, j) { %0 } : f32"
        ),
        one("@f: %B: index `j` is reduced twice")
    );
}

#[test]
fn indices_not_in_the_output_are_reduced() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N, N]",
            "f32[N]",
            "generic (i: N, j: N) ins(%A[i, j]) -> [i] { %0 } : f32"
        ),
        one("@f: %B: index `j` is neither in the output nor reduced over")
    );
}

#[test]
fn index_ids_are_in_range() {
    let mut m = base();
    base_generic(&mut m).output[0] = IndexId(7);
    // Index `i` is then neither in the output nor reduced; the derived type is unknown.
    assert_eq!(
        errors(&m),
        vec![
            "@f: %B: the output uses index #7, but the op has 2 indices",
            "@f: %B: index `i` is neither in the output nor reduced over",
        ]
    );
}

#[test]
fn map_arity_is_the_rank() {
    let mut m = base();
    base_generic(&mut m).inputs[0].map.pop();
    assert_eq!(
        errors(&m),
        one("@f: %B: input 0 (%A) has rank 2 but its map has 1 entries")
    );
}

#[test]
fn index_extent_is_the_axis_extent() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N, 4]",
            "f32[N]",
            "generic (i: N, j: 5) ins(%A[i, j]) -> [i] reduce add over (j) { %0 } : f32"
        ),
        one("@f: %B: input 0 (%A): index `j` has extent 5 but axis 1 has extent 4")
    );
}

#[test]
fn fixed_positions_are_in_range() {
    assert_eq!(
        op_errors(
            "N = 3",
            "f32[N, 1]",
            "f32",
            "generic () ins(%A[3, 1]) -> [] { %0 } : f32"
        ),
        vec![
            "@f: %B: input 0 (%A): position 3 is out of range for axis 0 of extent N",
            "@f: %B: input 0 (%A): position 1 is out of range for axis 1 of extent 1",
        ]
    );
}

#[test]
fn body_inputs_exist() {
    let mut m = base();
    base_generic(&mut m).body = Expr::Input(1);
    assert_eq!(
        errors(&m),
        one("@f: %B: the body reads input %1, but the op has 1 inputs")
    );
}

#[test]
fn body_indices_exist() {
    let mut m = base();
    base_generic(&mut m).body = Expr::Cast(DType::F32, Box::new(Expr::Index(IndexId(5))));
    assert_eq!(
        errors(&m),
        one("@f: %B: the body uses index #5, but the op has 2 indices")
    );
}

#[test]
fn dim_values_name_module_dims() {
    let mut m = base();
    base_generic(&mut m).body = Expr::DimValue("Q".into(), DType::F32);
    assert_eq!(
        errors(&m),
        one("@f: %B: `dim(Q):f32` names undefined dim `Q`")
    );
}

#[test]
fn body_type_is_the_op_dtype() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N]",
            "f64[N]",
            "generic (i: N) ins(%A[i]) -> [i] { %0 } : f64"
        ),
        one("@f: %B: the body has type f32 but the op's dtype is f64")
    );
}

#[test]
fn transcendental_functions_take_floats() {
    assert_eq!(
        op_errors(
            "N",
            "i32[N]",
            "i32[N]",
            "generic (i: N) ins(%A[i]) -> [i] { exp(abs(%0)) } : i32"
        ),
        one("@f: %B: `exp(abs(%0))`: `exp` needs a float operand, found i32")
    );
}

#[test]
fn pow_takes_floats() {
    assert_eq!(
        op_errors(
            "N",
            "i64[N]",
            "i64[N]",
            "generic (i: N) ins(%A[i]) -> [i] { pow(%0, i) } : i64"
        ),
        one("@f: %B: `pow(%0, i)`: `pow` needs float operands, found i64")
    );
}

#[test]
fn binary_operands_have_one_dtype() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N]",
            "f32[N]",
            "generic (i: N) ins(%A[i]) -> [i] { add(%0, 1:i32) } : f32"
        ),
        one("@f: %B: `add(%0, 1:i32)`: operands have different dtypes f32 and i32")
    );
}

#[test]
fn select_branches_have_one_dtype() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N]",
            "f32[N]",
            "generic (i: N) ins(%A[i]) -> [i] { select(lt(i, 2:i64), %0, 1.0:f64) } : f32"
        ),
        one(
            "@f: %B: `select(lt(i, 2:i64), %0, 1.0:f64)`: operands have different dtypes f32 \
             and f64"
        )
    );
}

#[test]
fn comparisons_have_one_dtype() {
    assert_eq!(
        op_errors(
            "N",
            "f32[N]",
            "f32[N]",
            "generic (i: N) ins(%A[i]) -> [i] { select(not(ge(i, %0)), %0, %0) } : f32"
        ),
        one("@f: %B: `ge(i, %0)`: operands have different dtypes i64 and f32")
    );
}

#[test]
fn eps_indices_have_extent_n() {
    assert_eq!(
        op_errors(
            "N",
            "f32",
            "f32[2, 3]",
            "generic (i: 2, j: 3) ins() -> [i, j] { eps<f32>(i, j) } : f32"
        ),
        one("@f: %B: `eps<f32>(i, j)`: eps of 2 indices needs each to have extent 2, but `j` has extent 3")
    );
}

#[test]
fn every_error_is_reported() {
    let mut m = base();
    m.dims.push(m.dims[0].clone());
    base_generic(&mut m).body = Expr::Input(3);
    assert_eq!(
        errors(&m),
        vec![
            "module: dim `N` is declared twice",
            "@f: %B: the body reads input %3, but the op has 1 inputs",
        ]
    );
}

#[test]
fn the_examples_of_docs_ir_md_verify() {
    // The op lines of docs/ir.md's semantics section, with the declarations they assume.
    let m = parse(
        "dims M, N, K, T
func @examples(%A: f32[M, K], %B: f32[K, N], %S: f32[T, T], %Sq: f32[N, N], %R: f32[1, N], %x: f32[M]) -> () {
  %C = generic (i: M, k: N, j: K) ins(%A[i, j], %B[j, k]) -> [i, k] reduce add over (j) { mul(%0, %1) } : f32
  %m = generic (i: T, j: T) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : f32
  %H = generic (i: M, j: N) ins(%C[i, j], %C[i, j]) -> [i, j] { mul(%0, %1) } : f32
  %d = generic (i: N) ins(%Sq[i, i]) -> [i] { %0 } : f32
  %tr = generic (i: N) ins(%Sq[i, i]) -> [] reduce add over (i) { %0 } : f32
  %Bc = generic (i: M, j: N) ins(%R[0, j], %x[i]) -> [i, j] { add(%0, %1) } : f32
  %P.max = generic (i: T, j: T) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : f32
  %P.exp = generic (i: T, j: T) ins(%S[i, j], %P.max[i]) -> [i, j] { exp(sub(%0, %1)) } : f32
  %P.sum = generic (i: T, j: T) ins(%P.exp[i, j]) -> [i] reduce add over (j) { %0 } : f32
  %P = generic (i: T, j: T) ins(%P.exp[i, j], %P.sum[i]) -> [i, j] { div(%0, %1) } : f32
  %Mk = generic (i: T, j: T) ins(%S[i, j]) -> [i, j] { select(le(j, i), %0, -inf:f32) } : f32
  return
}
",
    );
    assert_eq!(errors(&m), Vec::<String>::new());
}

#[test]
fn sizes_fit_the_address_space() {
    assert_eq!(
        op_errors(
            "N = 4611686018427387904",
            "f32[N]",
            "f32[N]",
            "generic (i: N) ins(%A[i]) -> [i] { %0 } : f32"
        ),
        vec![
            "@f: %A: type f32[N] needs more than 9223372036854775807 bytes",
            "@f: %B: type f32[N] needs more than 9223372036854775807 bytes",
        ]
    );
    assert_eq!(
        errors(&parse(
            "dims N = 9223372036854775808\nfunc @f() -> (s: i64) {\n  \
             %s = generic (i: 18446744073709551615) ins() -> [] reduce add over (i) { 1:i64 } : i64\n  \
             return s = %s\n}\n"
        )),
        vec![
            "module: dim `N` is larger than 9223372036854775807, the largest extent",
            "@f: %s: index `i` has extent 18446744073709551615, larger than 9223372036854775807, \
             the largest extent",
        ]
    );
}

#[test]
fn ranks_and_entry_checks_are_bounded() {
    let ones = vec!["1"; 65].join(", ");
    let ix: Vec<String> = (0..65).map(|k| format!("i{k}")).collect();
    let space: Vec<String> = ix.iter().map(|i| format!("{i}: 1")).collect();
    let text = format!(
        "func @f(%A: f32[{ones}]) -> (B: f32[{ones}]) {{\n  %B = generic ({}) ins(%A[{}]) -> [{}] {{ %0 }} : f32\n  return B = %B\n}}\n",
        space.join(", "),
        ix.join(", "),
        ix.join(", ")
    );
    assert_eq!(
        errors(&parse(&text)),
        vec![
            "@f: %A: rank 65 is larger than 64, the largest rank",
            "@f: %B: rank 65 is larger than 64, the largest rank",
            "@f: the entry point would need 4227 argument checks, more than 4160",
        ]
    );
}
