//! One test per verifier rule: a module that breaks exactly that rule, and the exact message.

use super::verify_module;
use crate::ir::loops::parser::parse_module;
use crate::ir::loops::*;
use einc_runtime::DType;

const ALL_OPS: &str = include_str!("../../../../../tests/filetests/loops/all_ops.lir");
const MATMUL: &str = include_str!("../../../../../tests/filetests/loops/matmul.lir");
const ROWSUM: &str = include_str!("../../../../../tests/filetests/loops/rowsum_vector.lir");
const MASK: &str = include_str!("../../../../../tests/filetests/loops/causal_mask.lir");

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

/// The errors of `@f(%X: in f32[4, 4] strided, %V: in f32[4, 4] contiguous,
/// %Y: out f32[4, 4] contiguous)` with a buffer `%t` and the given body (after `%c0`, `%c4`
/// and `%x` = 1.0).
fn body_errors(body: &str) -> Vec<String> {
    errors(&parse(&format!(
        "dims N\nfunc @f(%X: in f32[4, 4] strided, %V: in f32[4, 4] contiguous, \
         %Y: out f32[4, 4] contiguous) {{\n  buffer %t: f64[N] contiguous\n  %c0 = index 0\n  \
         %c4 = index 4\n  %x = const 1.0:f32\n{body}\n}}\n"
    )))
}

fn one(e: &str) -> Vec<String> {
    vec![format!("@f: {e}")]
}

#[test]
fn fixtures_are_valid() {
    for text in [ALL_OPS, MATMUL, ROWSUM, MASK] {
        assert_eq!(errors(&parse(text)), Vec::<String>::new());
    }
    assert_eq!(
        body_errors("  store %x, %Y[%c0, %c0]"),
        Vec::<String>::new()
    );
}

#[test]
fn names_are_unique() {
    let mut m = parse("dims N\nfunc @f() {\n  %a = index 0\n  %b = index 1\n}\n");
    m.dims.push(m.dims[0].clone());
    m.funcs.push(m.funcs[0].clone());
    m.funcs[0].values[1].name = "a".into();
    assert_eq!(
        errors(&m),
        [
            "module: [names] dim `N` is declared twice",
            "module: [names] function @f is defined twice",
            "@f: [names] value %a is declared twice",
        ]
    );
    let mut m = parse("func @f(%A: in f32[] strided, %B: out f32[] strided) {\n}\n");
    m.funcs[0].buffers[1].name = "A".into();
    assert_eq!(errors(&m), ["@f: [names] buffer %A is declared twice"]);
}

#[test]
fn dims_exist() {
    let mut m = parse("dims N\nfunc @f(%Y: out f32[N] strided) {\n  %n = dim N\n}\n");
    m.dims.clear();
    assert_eq!(
        errors(&m),
        [
            "@f: [dims] buffer %Y uses undeclared dim `N`",
            "@f: [dims] `dim` of undeclared dim `N`",
        ]
    );
}

#[test]
fn params_are_inputs_then_outputs_each_once() {
    let base = "func @f(%A: in f32[] strided, %B: out f32[] strided) {\n}\n";
    let mut m = parse(base);
    m.funcs[0].params.reverse();
    assert_eq!(
        errors(&m),
        one("[params] input %A follows an output among the parameters")
    );
    let mut m = parse(base);
    m.funcs[0].params = vec![BufferId(0), BufferId(0), BufferId(7)];
    assert_eq!(
        errors(&m),
        [
            "@f: [params] buffer %A is a parameter twice",
            "@f: [params] parameter 2 is buffer #7, which does not exist",
            "@f: [params] output buffer %B is not a parameter",
        ]
    );
    assert_eq!(
        errors(&parse("func @f(%A: temp f32[] contiguous) {\n}\n")),
        one("[params] temporary buffer %A is a parameter")
    );
}

#[test]
fn temporaries_are_contiguous() {
    assert_eq!(
        errors(&parse("func @f() {\n  buffer %t: f32[4] strided\n}\n")),
        one("[buffers] temporary buffer %t must be contiguous")
    );
}

#[test]
fn values_are_defined_once_and_used_where_visible() {
    let mut m = parse(
        "func @f(%Y: out f32[4] contiguous) {\n  %c0 = index 0\n  %c4 = index 4\n  \
         for %i = %c0 to %c4 step 1 {\n    %x = const 1.0:f32\n    store %x, %Y[%i]\n  }\n}\n",
    );
    let f = &mut m.funcs[0];
    // Store %x after the loop, outside the body that defines it.
    let Inst::For(l) = &f.body.insts[2] else {
        panic!("expected a loop");
    };
    let store = l.body.insts[1].clone();
    f.body.insts.push(store);
    let invisible = |v: &str| {
        format!(
            "@f: [ssa] %{v} is used where it is not visible (before its definition, or outside \
             the loop that defines it)"
        )
    };
    assert_eq!(errors(&m), [invisible("x"), invisible("i")]);
    let mut m2 = m.clone();
    let f = &mut m2.funcs[0];
    f.body.insts.pop();
    f.body.insts.push(f.body.insts[0].clone());
    f.add_value("unused", Type::Index);
    assert_eq!(
        errors(&m2),
        [
            "@f: [ssa] %c0 is defined more than once",
            "@f: [ssa] %unused is never defined",
        ]
    );
}

#[test]
fn vectors_are_128_bits() {
    assert_eq!(
        body_errors("  %v = splat %x : vector<8xf32>\n  store %v, %Y[%c0, %c0]"),
        one("[types] %v has type vector<8xf32>: a vector is 128 bits, vector<4xf32>")
    );
}

#[test]
fn operand_types() {
    let cases = [
        (
            "  %i = iadd %c0, %x",
            "[types] `iadd` needs index operands, but %x has type f32",
        ),
        (
            "  %s = splat %c0 : vector<2xi64>",
            "[types] `splat` needs a scalar, but %c0 has type index",
        ),
        (
            "  %i = const 1:i32\n  %e = exp %i : i32",
            "[types] `exp` needs a scalar or vector it is defined on, but %i has type i32",
        ),
        (
            "  %y = const 1.0:f64\n  %s = add %x, %y : f32",
            "[types] `add` needs operands of one type, but %x has type f32 and %y has type f64",
        ),
        (
            "  %i = const 1:i32\n  %p = pow %i, %i : i32",
            "[types] `pow` needs scalars or vectors it is defined on, but %i has type i32",
        ),
        (
            "  %s = add %c0, %c4 : index",
            "[types] `add` needs scalars or vectors it is defined on, but %c0 has type index",
        ),
        (
            "  %i = const 1:i32\n  %f = fma %i, %i, %i : i32",
            "[types] `fma` needs float scalars or vectors, but %i has type i32",
        ),
        (
            "  %v = splat %x : vector<4xf32>\n  %b = cmp lt %v, %v",
            "[types] `cmp` needs scalars or index values, but %v has type vector<4xf32>",
        ),
        (
            "  %b = cmp lt %x, %c0",
            "[types] `cmp` needs operands of one type, but %x has type f32 and %c0 has type index",
        ),
        (
            "  %b = cmp lt %c0, %c4\n  %a = and %b, %x",
            "[types] `and` needs bool operands, but %x has type f32",
        ),
        (
            "  %b = not %c0",
            "[types] `not` needs a bool operand, but %c0 has type index",
        ),
        (
            "  %s = select %x, %x, %x : f32",
            "[types] `select` needs a bool condition, but %x has type f32",
        ),
        (
            "  %b = cmp lt %c0, %c4\n  %c = cast %b : f32",
            "[types] `cast` needs a scalar, vector or index value, but %b has type bool",
        ),
        (
            "  %r = reduce_lanes add %x : f32",
            "[types] `reduce_lanes` needs a vector, but %x has type f32",
        ),
        (
            "  %r = neg %x : f64",
            "[types] %r has type f64 but its operation gives f32",
        ),
        (
            "  %r = cast %c0 : vector<2xf64>",
            "[types] %r has type vector<2xf64> but its operation gives f64",
        ),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(body, _)| body_errors(body)).collect();
    let want: Vec<Vec<String>> = cases.iter().map(|(_, e)| one(e)).collect();
    assert_eq!(got, want);
}

#[test]
fn loads_and_stores() {
    let cases = [
        (
            "  %a = load %X[%c0] : f32",
            "[memory] load of %X has 1 index value(s) but the buffer has rank 2",
        ),
        (
            "  %a = load %X[%c0, %x] : f32",
            "[memory] load of %X is indexed by %x of type f32, not index",
        ),
        (
            "  %a = load %X[%c0, %c0] : vector<4xf32>",
            "[memory] vector load of %X, which is not contiguous",
        ),
        ("  store %x, %V[%c0, %c0]", "[memory] store to input %V"),
        (
            "  store %x, %t[%c0]",
            "[memory] store of %x of type f32 to %t of dtype f64",
        ),
        (
            "  %a = load %V[%c0, %c0] : f64",
            "[types] %a has type f64 but its operation gives f32",
        ),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(body, _)| body_errors(body)).collect();
    let want: Vec<Vec<String>> = cases.iter().map(|(_, e)| one(e)).collect();
    assert_eq!(got, want);
    assert_eq!(
        errors(&parse(
            "func @f(%Y: out f32[] contiguous) {\n  %x = const 1.0:f32\n  %v = splat %x : vector<4xf32>\n  store %v, %Y[]\n}\n"
        )),
        one("[memory] vector store of %Y, which has rank 0")
    );
}

#[test]
fn loop_invariants() {
    let cases = [
        (
            "  for %i = %c0 to %x step 1 {\n  }",
            "[loops] the upper bound %x has type f32, not index",
        ),
        (
            "  for %i = %c0 to %c4 step 0 {\n  }",
            "[loops] the loop over %i has step 0",
        ),
        (
            "  %s = for %i = %c0 to %c4 step 1 parallel iter(%a = %x) {\n    yield %a\n  }",
            "[loops] the parallel loop over %i carries values",
        ),
        (
            "  %s = for %i = %c0 to %c4 step 1 iter(%a = %x) {\n  }",
            "[loops] the loop over %i carries 1 value(s) but yields 0",
        ),
        (
            "  %s = for %i = %c0 to %c4 step 1 iter(%a = %x) {\n    yield %i\n  }",
            "[loops] the loop yields %i of type index for %a of type f32",
        ),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(body, _)| body_errors(body)).collect();
    let want: Vec<Vec<String>> = cases.iter().map(|(_, e)| one(e)).collect();
    assert_eq!(got, want);

    // Types the text cannot express: a mistyped induction variable, argument and result.
    let mut m = parse(
        "func @f() {\n  %c0 = index 0\n  %x = const 1.0:f32\n  \
         %s = for %i = %c0 to %c0 step 1 iter(%a = %x) {\n    yield %a\n  }\n}\n",
    );
    let f = &mut m.funcs[0];
    let id = |f: &Function, n: &str| f.values.iter().position(|v| v.name == n).unwrap();
    let (i, a, s) = (id(f, "i"), id(f, "a"), id(f, "s"));
    f.values[i].ty = Type::Scalar(DType::I64);
    f.values[a].ty = Type::Scalar(DType::F64);
    f.values[s].ty = Type::Scalar(DType::F32);
    assert_eq!(
        errors(&m),
        [
            "@f: [loops] the induction variable %i has type i64, not index",
            "@f: [loops] the carried value %a has type f64 but its initial value %x has type f32",
            "@f: [loops] the loop result %s has type f32 but its carried value %a has type f64",
        ]
    );
}
