//! One test per verifier rule: a module that breaks exactly that rule, and the exact message.

use super::verify_module;
use crate::ir::loops::parser::parse_module;
use crate::ir::loops::*;
use einc_runtime::DType;

const ALL_OPS: &str = include_str!("../../../../../tests/filetests/loops/all_ops.lir");
const MATMUL: &str = include_str!("../../../../../tests/filetests/loops/matmul.lir");
const ROWSUM: &str = include_str!("../../../../../tests/filetests/loops/rowsum_vector.lir");
const MASK: &str = include_str!("../../../../../tests/filetests/loops/causal_mask.lir");
const TILES: &str = include_str!("../../../../../tests/filetests/loops/tiles.lir");
const POINTERS: &str = include_str!("../../../../../tests/filetests/loops/pointers.lir");

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
    for text in [ALL_OPS, MATMUL, ROWSUM, MASK, TILES, POINTERS] {
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
fn layouts_and_alignments() {
    let cases = [
        (
            "func @f(%X: in f32[4, 4] strides[_]) {\n}\n",
            "[buffers] buffer %X has 1 stride facts but rank 2",
        ),
        (
            "func @f(%X: in f32[4, 4] strides[c, 1]) {\n}\n",
            "[buffers] buffer %X has layout strides[c, 1], which is spelled `contiguous`",
        ),
        (
            "func @f(%X: in f32[4, 4] strides[_, _]) {\n}\n",
            "[buffers] buffer %X has layout strides[_, _], which is spelled `strided`",
        ),
        (
            "func @f(%X: in f32[4] contiguous align 64) {\n}\n",
            "[buffers] parameter %X asks for an alignment: only temporaries and scoped buffers \
             are allocated by the kernel",
        ),
        (
            "func @f() {\n  buffer %t: f32[4] contiguous align 48\n}\n",
            "[buffers] buffer %t asks for alignment 48: it must be a power of two at most 4096",
        ),
        (
            "func @f() {\n  buffer %t: f32[4] contiguous align 8192\n}\n",
            "[buffers] buffer %t asks for alignment 8192: it must be a power of two at most 4096",
        ),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(t, _)| errors(&parse(t))).collect();
    let want: Vec<Vec<String>> = cases.iter().map(|(_, e)| one(e)).collect();
    assert_eq!(got, want);
    // A unit stride on the last axis allows vector accesses without a contiguous buffer.
    assert_eq!(
        errors(&parse(
            "func @f(%X: in f32[4, 4] strides[_, 1], %Y: out f32[4, 4] strides[1, _]) {\n  \
             %c0 = index 0\n  %v = load %X[%c0, %c0] : vector<4xf32>\n  \
             store %v, %Y[%c0, %c0]\n}\n"
        )),
        one("[memory] vector store of %Y, whose last axis has no unit stride")
    );
}

#[test]
fn scoped_buffers() {
    let cases = [
        (
            "dims N\nfunc @f() {\n  scoped %t: f32[N] contiguous\n}\n",
            "[buffers] scoped buffer %t needs fixed extents (numbers or dims with a value)",
        ),
        (
            "func @f() {\n  scoped %t: f32[4] strided\n}\n",
            "[buffers] scoped buffer %t must be contiguous",
        ),
        (
            "func @f() {\n  scoped %t: f32[512, 513] contiguous\n}\n",
            "[buffers] the scoped buffers take more than 1048576 bytes of stack together",
        ),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(t, _)| errors(&parse(t))).collect();
    let want: Vec<Vec<String>> = cases.iter().map(|(_, e)| one(e)).collect();
    assert_eq!(got, want);
    // Two buffers that fit alone but not together.
    assert_eq!(
        errors(&parse(
            "func @f() {\n  scoped %a: f64[256, 256] contiguous\n  \
             scoped %b: f64[256, 257] contiguous\n}\n"
        )),
        one("[buffers] the scoped buffers take more than 1048576 bytes of stack together")
    );
    // Used after its block, declared twice, never declared, and a `scoped` of a temporary.
    let mut m = parse(
        "func @f() {\n  buffer %u: f32[4] contiguous\n  %c0 = index 0\n  %x = const 1.0:f32\n  \
         for %i = %c0 to %c0 step 1 {\n    scoped %t: f32[4] contiguous\n    \
         store %x, %t[%c0]\n  }\n}\n",
    );
    let f = &mut m.funcs[0];
    let Inst::For(l) = &f.body.insts[2] else {
        panic!("expected a loop");
    };
    let (decl, store) = (l.body.insts[0].clone(), l.body.insts[1].clone());
    f.body.insts.push(store);
    f.body.insts.push(decl.clone());
    f.body.insts.push(Inst::Scoped(BufferId(0)));
    f.add_buffer(BufferDef {
        name: "never".into(),
        dtype: DType::F32,
        shape: vec![Extent::Fixed(1)],
        layout: Layout::Contiguous,
        kind: BufferKind::Scoped,
        align: None,
    });
    assert_eq!(
        errors(&m),
        [
            "@f: [buffers] scoped buffer %t is used outside the block that declares it, or \
             before its declaration",
            "@f: [buffers] scoped buffer %t is declared more than once",
            "@f: [buffers] `scoped` declares %u, which is not a scoped buffer",
            "@f: [buffers] scoped buffer %never is never declared",
        ]
    );
}

#[test]
fn variants_specialise_an_existing_kernel() {
    let general = "func @k(%X: in f32[4, 4] strides[_, 1], %Y: out f32[4] strided) {\n}\n";
    let with = |variant: &str| errors(&parse(&format!("{general}{variant}")));
    assert_eq!(
        with("func @k.c(%X: in f32[4, 4] contiguous, %Y: out f32[4] contiguous) variant of @k {\n}\n"),
        Vec::<String>::new()
    );
    let cases = [
        (
            "func @v(%X: in f32[4, 4] contiguous) variant of @nope {\n}\n",
            "@v: [variants] variant of @nope, which does not exist",
        ),
        (
            "func @v(%X: in f32[4, 4] contiguous) variant of @k {\n}\n",
            "@v: [variants] the variant has 1 parameters but @k has 2",
        ),
        (
            "func @v(%X: in f32[4, 5] contiguous, %Y: out f32[4] strided) variant of @k {\n}\n",
            "@v: [variants] parameter %X differs from @k's %X in name, kind, dtype or shape",
        ),
        (
            "func @v(%X: in f32[4, 4] strided, %Y: out f32[4] strided) variant of @k {\n}\n",
            "@v: [variants] parameter %X has layout strided, which does not imply @k's \
             strides[_, 1]",
        ),
        (
            "func @v(%X: in f32[4, 4] strides[1, _], %Y: out f32[4] strided) variant of @k {\n}\n",
            "@v: [variants] parameter %X has layout strides[1, _], which does not imply @k's \
             strides[_, 1]",
        ),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(t, _)| with(t)).collect();
    let want: Vec<Vec<String>> = cases.iter().map(|(_, e)| vec![e.to_string()]).collect();
    assert_eq!(got, want);
    assert_eq!(
        errors(&parse(&format!(
            "{general}func @v(%X: in f32[4, 4] contiguous, %Y: out f32[4] strided) variant of @k \
             {{\n}}\nfunc @w(%X: in f32[4, 4] contiguous, %Y: out f32[4] strided) variant of @v \
             {{\n}}\n"
        ))),
        ["@w: [variants] variant of @v, which is itself a variant"]
    );
}

/// The errors of a function with `%A: in f32[8, 8]`, `%B: in f32[8, 8] strides[_, 1]`,
/// `%C: out f32[8, 8] contiguous`, values `%c0`, `%c4`, `%t` (true), `%x` (1.0) and one
/// micro-kernel call with the given parts.
fn ukernel_errors(kernel: &str, operands: &str) -> Vec<String> {
    errors(&parse(&format!(
        "func @f(%A: in f32[8, 8] strided, %B: in f32[8, 8] strides[_, 1], \
         %D: in f64[8] strided, %C: out f32[8, 8] contiguous) {{\n  %c0 = index 0\n  \
         %c4 = index 4\n  %t = cmp eq %c0, %c0\n  %x = const 1.0:f32\n  \
         ukernel @{kernel} kc %c4, tile %c4 x %c4, {operands}\n}}\n"
    )))
}

#[test]
fn micro_kernel_calls() {
    const OK: &str = "a %A[%c0, %c0] (m: 0, k: 1), b %B[%c0, %c0] (k: 0, n: 1), \
                      c %C[%c0, %c0] (m: 0, n: 1), init %t";
    assert_eq!(ukernel_errors("gemm.f32.4x8", OK), Vec::<String>::new());
    assert_eq!(
        ukernel_errors(
            "gemm.f32.4x8",
            &format!("{OK}, scale %x, bias %A[%c0, %c0] (m: [0, 1]), relu")
        ),
        Vec::<String>::new()
    );
    // A tile that fits only AVX-512's vectors (12 x 2 zmm accumulators; 96 xmm) is accepted.
    assert_eq!(ukernel_errors("gemm.f32.12x32", OK), Vec::<String>::new());
    const TILE_RULE: &str = "the tile must have 1 to 16 rows and a multiple of 4 columns, and \
        fit the registers of a micro-kernel: at most 8 vectors per row and 32 vector \
        accumulators of 128-bit (simd128), 256-bit (avx2), 512-bit (avx512) vectors";
    let k = "@f: [ukernel] @gemm.f32.4x8:";
    let cases = [
        (
            "gemm.f32.12x48",
            OK.to_string(),
            vec![format!("@f: [ukernel] @gemm.f32.12x48: {TILE_RULE}")],
        ),
        (
            "gemm.i32.4x8",
            OK.to_string(),
            vec![
                "@f: [ukernel] @gemm.i32.4x8: the dtype i32 is not a float".to_string(),
                "@f: [ukernel] @gemm.i32.4x8: a %A has dtype f32, not the kernel's i32".into(),
                "@f: [ukernel] @gemm.i32.4x8: b %B has dtype f32, not the kernel's i32".into(),
                "@f: [ukernel] @gemm.i32.4x8: c %C has dtype f32, not the kernel's i32".into(),
            ],
        ),
        (
            "gemm.f32.4x6",
            OK.to_string(),
            vec![format!("@f: [ukernel] @gemm.f32.4x6: {TILE_RULE}")],
        ),
        (
            "gemm.f32.16x40",
            OK.to_string(),
            vec![format!("@f: [ukernel] @gemm.f32.16x40: {TILE_RULE}")],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("init %t", "init %x"),
            vec![format!("{k} init %x has type f32, not bool")],
        ),
        (
            "gemm.f32.4x8",
            format!("{OK}, scale %c0"),
            vec![format!("{k} scale %c0 has type index, not f32")],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("b %B[%c0, %c0] (k: 0, n: 1)", "b %A[%c0, %c0] (k: 0, n: 1)"),
            vec![format!(
                "{k} b's n coordinate must advance one axis with a unit stride (`1`, or the last \
                 axis of a contiguous buffer)"
            )],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("c %C[%c0, %c0] (m: 0, n: 1)", "c %C[%c0, %c0] (m: 1, n: 0)"),
            vec![format!(
                "{k} c's n coordinate must advance one axis with a unit stride (`1`, or the last \
                 axis of a contiguous buffer)"
            )],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("(m: 0, k: 1)", "(k: 1, m: 0)"),
            vec![format!("{k} a's coordinates must be (m, k)")],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("(m: 0, k: 1)", "(m: 0, k: [1, 0])"),
            vec![format!("{k} a names axis 0 for two coordinates or twice")],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("(m: 0, k: 1)", "(m: 0, k: 2)"),
            vec![format!("{k} a names axis 2, but %A has rank 2")],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("a %A[%c0, %c0]", "a %A[%c0]"),
            vec![format!(
                "{k} a %A has 1 index value(s) but the buffer has rank 2"
            )],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("a %A[%c0, %c0]", "a %A[%c0, %x]"),
            vec![format!("{k} a is indexed by %x of type f32, not index")],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("c %C[%c0, %c0] (m: 0, n: 1)", "c %B[%c0, %c0] (m: 0, n: 1)"),
            vec![format!("{k} c writes input %B")],
        ),
        (
            "gemm.f32.4x8",
            OK.replace("a %A[%c0, %c0]", "a %C[%c0, %c0]"),
            vec![format!("{k} c's buffer %C is also read as a, b or bias")],
        ),
        (
            "gemm.f32.4x8",
            format!("{OK}, bias %D[%c0] (n: 0)"),
            vec![format!("{k} bias %D has dtype f64, not the kernel's f32")],
        ),
        (
            "gemm.f32.4x8",
            format!("{OK}, bias %A[%c0, %c0] (k: 0)"),
            vec![format!("{k} bias's coordinates must be (n)")],
        ),
    ];
    for (kernel, operands, want) in cases {
        assert_eq!(ukernel_errors(kernel, &operands), want, "{operands}");
    }
    // The index operands, and a call moved out of the block of its scoped buffer.
    let mut m = parse(
        "func @f(%A: in f32[8, 8] strided) {\n  %c0 = index 0\n  %x = const 1.0:f32\n  \
         %t = cmp eq %c0, %c0\n  for %i = %c0 to %c0 step 1 {\n    \
         scoped %C: f32[4, 8] contiguous\n    \
         ukernel @gemm.f32.4x8 kc %x, tile %t x %c0, a %A[%c0, %c0] (m: 0, k: 1), \
         b %A[%c0, %c0] (k: 0, n: 1), c %C[%c0, %c0] (m: 0, n: 1), init %t\n  }\n}\n",
    );
    let f = &mut m.funcs[0];
    let Some(Inst::For(l)) = f.body.insts.last_mut() else {
        panic!("expected a loop");
    };
    let call = l.body.insts.pop().unwrap();
    f.body.insts.push(call);
    assert_eq!(
        errors(&m),
        [
            "@f: [ukernel] @gemm.f32.4x8: kc %x has type f32, not index",
            "@f: [ukernel] @gemm.f32.4x8: mr %t has type bool, not index",
            "@f: [buffers] scoped buffer %C is used outside the block that declares it, or \
             before its declaration",
            "@f: [ukernel] @gemm.f32.4x8: b's n coordinate must advance one axis with a unit \
             stride (`1`, or the last axis of a contiguous buffer)",
        ]
    );
}

#[test]
fn pointers() {
    let cases = [
        (
            "  %p = advance %c0 by %c4 along 0",
            "[types] `advance` needs a ptr, but %c0 has type index",
        ),
        (
            "  %p = addr %X[%c0, %c0]\n  %q = advance %p by %x along 1",
            "[types] `advance` needs an index step, but %x has type f32",
        ),
        (
            "  %p = addr %X[%c0, %c0]\n  %q = advance %p by %c4 along [1, 1]",
            "[pointers] `advance` of %p along axis 1, which is repeated or beyond its buffer's \
             rank",
        ),
        (
            "  %p = addr %X[%c0, %c0]\n  %q = advance %p by %c4 along 2",
            "[pointers] `advance` of %p along axis 2, which is repeated or beyond its buffer's \
             rank",
        ),
        (
            "  %a = load at %c0 : f32",
            "[types] `load at` needs a ptr, but %c0 has type index",
        ),
        (
            "  %p = addr %X[%c0, %c0]\n  %a = load at %p : vector<4xf32>",
            "[memory] vector load at of %X, whose last axis has no unit stride",
        ),
        (
            "  %p = addr %X[%c0, %c0]\n  %a = load at %p : f64",
            "[types] %a has type f64 but its operation gives f32",
        ),
        (
            "  %p = addr %V[%c0, %c0]\n  store %x at %p",
            "[memory] store to input %V",
        ),
        (
            "  %p = addr %t[%c0]\n  store %x at %p",
            "[memory] store of %x of type f32 to %t of dtype f64",
        ),
        (
            "  %p = addr %X[%c0]",
            "[memory] addr of %X has 1 index value(s) but the buffer has rank 2",
        ),
        (
            "  %p = addr %X[%c0, %c0]\n  %q = addr %V[%c0, %c0]\n  %b = cmp lt %c0, %c4\n  \
             %r = select %b, %p, %q : ptr",
            "[types] `select` needs values other than pointers, but %p has type ptr",
        ),
        (
            "  %p = addr %X[%c0, %c0]\n  %q = addr %V[%c0, %c0]\n  \
             %e = for %i = %c0 to %c4 step 1 iter(%a = %p) {\n    yield %q\n  }",
            "[pointers] the loop yields %q into %V for %a, which starts into %X",
        ),
    ];
    let got: Vec<Vec<String>> = cases.iter().map(|(body, _)| body_errors(body)).collect();
    let want: Vec<Vec<String>> = cases.iter().map(|(_, e)| one(e)).collect();
    assert_eq!(got, want);
}

#[test]
fn unroll_factors_are_positive() {
    assert_eq!(
        body_errors("  for %i = %c0 to %c4 step 1 unroll 0 {\n  }"),
        one("[loops] the loop over %i asks to be unrolled 0 times")
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
            "[memory] vector load of %X, whose last axis has no unit stride",
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

#[test]
fn the_example_of_docs_ir_md_verifies_and_prints_back() {
    let doc = include_str!("../../../../../docs/ir.md");
    let section = doc.split("## Loop IR").nth(1).unwrap();
    let example = section.split("```\n").nth(1).unwrap();
    let m = parse(example);
    assert_eq!(errors(&m), Vec::<String>::new());
    assert_eq!(crate::ir::loops::printer::print_module(&m), example);
}
