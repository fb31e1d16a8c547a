//! Round trips of the text format and the parser's errors.

use super::parse_module;
use crate::ir::tensor::printer::{print_expr, print_function, print_module};
use crate::ir::tensor::verify::verify_module;
use crate::ir::tensor::*;
use einc_runtime::{DType, Scalar};
use proptest::prelude::*;

const ATTENTION: &str = include_str!("../../../../../tests/filetests/tensor/attention.tir");
const EXPRS: &str = include_str!("../../../../../tests/filetests/tensor/exprs.tir");

fn dim(d: &str) -> Extent {
    Extent::Dim(d.to_string())
}

fn ty(dtype: DType, shape: &[Extent]) -> TensorType {
    TensorType {
        dtype,
        shape: shape.to_vec(),
    }
}

fn ix(i: u32) -> AxisMap {
    AxisMap::Index(IndexId(i))
}

fn b(e: Expr) -> Box<Expr> {
    Box::new(e)
}

fn bin(f: BinaryFn, x: Expr, y: Expr) -> Expr {
    Expr::Binary(f, b(x), b(y))
}

/// Adds an op defining a new value named `name` with the op's derived type.
fn op(f: &mut Function, name: &str, g: Generic) -> ValueId {
    let id = f.add_value(
        name,
        TensorType {
            dtype: g.dtype,
            shape: g.result_shape(),
        },
    );
    f.ops.push(Op {
        result: id,
        kind: OpKind::Generic(g),
    });
    id
}

fn generic(
    indices: &[(&str, Extent)],
    inputs: Vec<(ValueId, Vec<AxisMap>)>,
    output: &[u32],
    reduce: Option<(ReduceKind, &[u32])>,
    body: Expr,
) -> Generic {
    Generic {
        indices: indices
            .iter()
            .map(|(n, e)| IndexDef {
                name: n.to_string(),
                extent: e.clone(),
            })
            .collect(),
        inputs: inputs
            .into_iter()
            .map(|(value, map)| Input { value, map })
            .collect(),
        output: output.iter().map(|&i| IndexId(i)).collect(),
        reduce: reduce.map(|(kind, over)| Reduce {
            kind,
            over: over.iter().map(|&i| IndexId(i)).collect(),
        }),
        body,
        dtype: DType::F32,
        schedule: None,
    }
}

fn func(name: &str, params: &[(&str, TensorType)]) -> Function {
    let mut f = Function {
        name: name.to_string(),
        values: Vec::new(),
        params: Vec::new(),
        ops: Vec::new(),
        results: Vec::new(),
    };
    for (n, t) in params {
        let id = f.add_value(*n, t.clone());
        f.params.push(id);
    }
    f
}

/// The attention forward pass of `attention.tir`, built independently of the parser.
fn attention() -> Module {
    let f32_ = |s: &[Extent]| ty(DType::F32, s);
    let (t, d, k) = (dim("T"), dim("D"), dim("K"));
    let mut f = func(
        "attention",
        &[
            ("X", f32_(&[t.clone(), d.clone()])),
            ("WQ", f32_(&[d.clone(), k.clone()])),
            ("WK", f32_(&[d.clone(), k.clone()])),
            ("WV", f32_(&[d.clone(), k.clone()])),
        ],
    );
    let mul01 = || bin(BinaryFn::Mul, Expr::Input(0), Expr::Input(1));
    let proj = |f: &mut Function, name: &str, w: u32| {
        let g = generic(
            &[("t", t.clone()), ("a", k.clone()), ("d", d.clone())],
            vec![
                (ValueId(0), vec![ix(0), ix(2)]),
                (ValueId(w), vec![ix(2), ix(1)]),
            ],
            &[0, 1],
            Some((ReduceKind::Add, &[2])),
            mul01(),
        );
        op(f, name, g)
    };
    let q = proj(&mut f, "Q", 1);
    let kx = proj(&mut f, "Kx", 2);
    let v = proj(&mut f, "V", 3);
    let tt = [("i", t.clone()), ("j", t.clone())];
    let s = op(
        &mut f,
        "S",
        generic(
            &[("i", t.clone()), ("j", t.clone()), ("a", k.clone())],
            vec![(q, vec![ix(0), ix(2)]), (kx, vec![ix(1), ix(2)])],
            &[0, 1],
            Some((ReduceKind::Add, &[2])),
            bin(
                BinaryFn::Div,
                mul01(),
                Expr::Unary(UnaryFn::Sqrt, b(Expr::DimValue("K".into(), DType::F32))),
            ),
        ),
    );
    let max = op(
        &mut f,
        "P.max",
        generic(
            &tt,
            vec![(s, vec![ix(0), ix(1)])],
            &[0],
            Some((ReduceKind::Max, &[1])),
            Expr::Input(0),
        ),
    );
    let exp = op(
        &mut f,
        "P.exp",
        generic(
            &tt,
            vec![(s, vec![ix(0), ix(1)]), (max, vec![ix(0)])],
            &[0, 1],
            None,
            Expr::Unary(
                UnaryFn::Exp,
                b(bin(BinaryFn::Sub, Expr::Input(0), Expr::Input(1))),
            ),
        ),
    );
    let sum = op(
        &mut f,
        "P.sum",
        generic(
            &tt,
            vec![(exp, vec![ix(0), ix(1)])],
            &[0],
            Some((ReduceKind::Add, &[1])),
            Expr::Input(0),
        ),
    );
    let p = op(
        &mut f,
        "P",
        generic(
            &tt,
            vec![(exp, vec![ix(0), ix(1)]), (sum, vec![ix(0)])],
            &[0, 1],
            None,
            bin(BinaryFn::Div, Expr::Input(0), Expr::Input(1)),
        ),
    );
    let o = op(
        &mut f,
        "O",
        generic(
            &[("i", t.clone()), ("a", k.clone()), ("j", t.clone())],
            vec![(p, vec![ix(0), ix(2)]), (v, vec![ix(2), ix(1)])],
            &[0, 1],
            Some((ReduceKind::Add, &[2])),
            mul01(),
        ),
    );
    f.results.push(ResultDef {
        name: "O".into(),
        value: o,
    });
    Module {
        dims: ["T", "D", "K"]
            .iter()
            .map(|n| DimDef {
                name: n.to_string(),
                value: None,
            })
            .collect(),
        funcs: vec![f],
    }
}

fn parse(text: &str) -> Module {
    match parse_module(text) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{text}"),
    }
}

#[test]
fn attention_built_in_rust_prints_as_the_hand_written_text() {
    assert_eq!(print_module(&attention()), ATTENTION);
}

#[test]
fn attention_text_parses_to_the_module_built_in_rust() {
    assert_eq!(parse(ATTENTION), attention());
    assert_eq!(verify_module(&attention()), Ok(()));
}

#[test]
fn fixtures_print_back_identically_and_verify() {
    for text in [ATTENTION, EXPRS] {
        let m = parse(text);
        assert_eq!(print_module(&m), text);
        assert_eq!(verify_module(&m), Ok(()), "{text}");
    }
}

#[test]
fn exprs_fixture_parses_to_the_expected_values() {
    let m = parse(EXPRS);
    assert_eq!(
        m.dims,
        vec![
            DimDef {
                name: "N".into(),
                value: Some(3)
            },
            DimDef {
                name: "M".into(),
                value: None
            },
            DimDef {
                name: "weird dim".into(),
                value: None
            },
        ]
    );
    let f = &m.funcs[0];
    // Parameters first, then op results, in order of definition.
    let names: Vec<&str> = f.values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "A",
            "B",
            "I",
            "L",
            "odd name!",
            "W",
            "u",
            "b",
            "s",
            "e",
            "r",
            "q",
            "c",
            "z",
            "one"
        ]
    );
    assert_eq!(f.value(ValueId(3)).ty, ty(DType::I64, &[]));
    let OpKind::Generic(g) = &f.ops[1].kind;
    assert_eq!(g.inputs[1].map, vec![AxisMap::Fixed(0), ix(1)]);
    let OpKind::Generic(g) = &f.ops[8].kind;
    let Expr::Binary(BinaryFn::Sub, _, nan) = &g.body else {
        panic!("{:?}", g.body)
    };
    let Expr::Cast(DType::I64, nan) = &**nan else {
        panic!("{nan:?}")
    };
    let Expr::Lit(Scalar::F64(v)) = **nan else {
        panic!("{nan:?}")
    };
    assert_eq!(v.to_bits(), 0xfff8_0000_0000_0001);
    let d = &m.funcs[1];
    let OpKind::Generic(g) = &d.ops[0].kind;
    assert_eq!(g.inputs[0].map, vec![ix(0), ix(0)]);
}

#[test]
fn print_function_and_print_expr() {
    let m = attention();
    let text = print_function(&m, &m.funcs[0]);
    assert_eq!(text, ATTENTION.trim_start_matches("dims T, D, K\n\n"));
    let OpKind::Generic(g) = &m.funcs[0].ops[3].kind;
    assert_eq!(print_expr(g, &g.body), "div(mul(%0, %1), sqrt(dim(K):f32))");
}

#[test]
fn rank_zero_and_fixed_dims_round_trip_structurally() {
    let mut f = func(
        "f",
        &[
            ("s", ty(DType::F64, &[])),
            ("v", ty(DType::F64, &[Extent::Fixed(5), dim("N")])),
        ],
    );
    let mut g = generic(
        &[("i", Extent::Fixed(5))],
        vec![
            (ValueId(0), vec![]),
            (ValueId(1), vec![ix(0), AxisMap::Fixed(7)]),
        ],
        &[],
        Some((ReduceKind::Min, &[0])),
        bin(
            BinaryFn::Max,
            Expr::Input(0),
            Expr::Select(
                Box::new(Cond::Cmp(
                    CmpOp::Gt,
                    b(Expr::Input(1)),
                    b(Expr::Lit(Scalar::F64(0.0))),
                )),
                b(Expr::Lit(Scalar::F64(-1.5e-300))),
                b(Expr::Cast(DType::F64, b(Expr::Index(IndexId(0))))),
            ),
        ),
    );
    g.dtype = DType::F64;
    let r = op(&mut f, "r", g);
    f.results.push(ResultDef {
        name: "out".into(),
        value: r,
    });
    let m = Module {
        dims: vec![DimDef {
            name: "N".into(),
            value: Some(8),
        }],
        funcs: vec![f],
    };
    let text = print_module(&m);
    assert_eq!(
        text,
        "dims N = 8\n\nfunc @f(%s: f64, %v: f64[5, N]) -> (out: f64) {\n  \
         %r = generic (i: 5) ins(%s[], %v[i, 7]) -> [] reduce min over (i) \
         { max(%0, select(gt(%1, 0.0:f64), -1.5e-300:f64, cast<f64>(i))) } : f64\n  \
         return out = %r\n}\n"
    );
    assert_eq!(parse(&text), m);
}

fn err(text: &str) -> String {
    match parse_module(text) {
        Ok(m) => panic!("parsed: {m:?}"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = "dims N\nfunc @f(%A: f32[N, N]) -> (B: f32[N]) {\n";

#[test]
fn undefined_value_is_reported_at_its_use() {
    let text = format!(
        "{HEAD}  %B = generic (i: N) ins(%C[i, i]) -> [i] {{ %0 }} : f32\n  return B = %B\n}}\n"
    );
    assert_eq!(err(&text), "3:27: undefined value %C");
}

#[test]
fn using_an_op_result_in_its_own_op_is_undefined() {
    let text = format!(
        "{HEAD}  %B = generic (i: N) ins(%B[i]) -> [i] {{ %0 }} : f32\n  return B = %B\n}}\n"
    );
    assert_eq!(err(&text), "3:27: undefined value %B");
}

#[test]
fn duplicate_names_are_reported() {
    let text = format!(
        "{HEAD}  %A = generic (i: N) ins(%A[i, i]) -> [i] {{ %0 }} : f32\n  return B = %A\n}}\n"
    );
    assert_eq!(err(&text), "3:3: value %A is defined twice");
    let text = format!(
        "{HEAD}  %B = generic (i: N, i: N) ins(%A[i, i]) -> [i] {{ %0 }} : f32\n  return B = %B\n}}\n"
    );
    assert_eq!(err(&text), "3:23: index `i` is declared twice");
    assert_eq!(err("dims N, M, N\n"), "1:12: dim `N` is declared twice");
    assert_eq!(
        err("func @f() -> () {\n  return\n}\nfunc @f() -> () {\n  return\n}\n"),
        "4:1: function @f is defined twice"
    );
    assert_eq!(
        err("func @f() -> (a: f32, a: f32) {\n  return\n}\n"),
        "1:23: output `a` is declared twice"
    );
}

#[test]
fn wrong_arity_is_reported() {
    let text = format!(
        "{HEAD}  %B = generic (i: N) ins(%A[i, i]) -> [i] {{ exp(%0, %0) }} : f32\n  return B = %B\n}}\n"
    );
    assert_eq!(err(&text), "3:46: `exp` takes 1 argument, found 2");
    let text = format!(
        "{HEAD}  %B = generic (i: N) ins(%A[i, i]) -> [i] {{ select(lt(i), %0, %0) }} : f32\n  return B = %B\n}}\n"
    );
    assert_eq!(err(&text), "3:53: `lt` takes 2 arguments, found 1");
    let text = format!(
        "{HEAD}  %B = generic (i: N) ins(%A[i]) -> [i] {{ %0 }} : f32\n  return B = %B\n}}\n"
    );
    assert_eq!(err(&text), "3:27: %A has rank 2 but its map has 1 entries");
}

#[test]
fn other_errors_name_the_place_and_the_problem() {
    let body = |b: &str| {
        err(&format!(
            "{HEAD}  %B = generic (i: N) ins(%A[i, i]) -> [i] {{ {b} }} : f32\n  return B = %B\n}}\n"
        ))
    };
    assert_eq!(
        body("%1"),
        "3:46: input %1 does not exist: the op has 1 inputs"
    );
    assert_eq!(body("k"), "3:46: undefined index `k`");
    assert_eq!(body("frob(%0)"), "3:46: unknown function `frob`");
    assert_eq!(body("2.5:i32"), "3:46: `2.5` is not a literal of type i32");
    assert_eq!(
        body("300000000000:i32"),
        "3:46: `300000000000` (out of range) is not a literal of type i32"
    );
    assert_eq!(
        body("-nan:f32"),
        "3:46: a NaN's sign is part of its bit pattern: write `nan(0x...)`"
    );
    assert_eq!(body("nan(0x1):f32"), "3:50: 0x1 is not an f32 NaN");
    assert_eq!(body("dim(Q):f32"), "3:50: undefined dim `Q`");
    assert_eq!(
        body("lt(i, i)"),
        "3:46: `lt` is a condition, allowed only as the first argument of `select`"
    );
    assert_eq!(body("%0 %0"), "3:49: expected `}`, found `%0`");
    assert_eq!(err("dims N = x"), "1:10: expected a dim value, found `x`");
    assert_eq!(
        err("func @f(%A: f32[Q]) -> () {\n  return\n}"),
        "1:17: undefined dim `Q`"
    );
    assert_eq!(
        err("func @f(%A: f16) -> () {\n  return\n}"),
        "1:13: unknown dtype `f16`: expected f32, f64, i32 or i64"
    );
    assert_eq!(err("func @f(%0A: f32) -> () {}"), "1:9: `%0A` is not a value name: a bare name starts with a letter or `_`; quote other names, as in `%\"0A\"`");
    assert_eq!(
        err("func @f() -> () {\n  return\n}\n  $"),
        "4:3: unexpected character `$`"
    );
    assert_eq!(err("func @\"f"), "1:7: unterminated quoted name");
    assert_eq!(
        err("func @f(%A: f32) -> (B: f32) {\n  return B = %A, C = %A\n}"),
        "2:18: `return` lists more outputs than the 1 of the signature"
    );
    assert_eq!(
        err("func @f(%A: f32) -> (B: f32) {\n  return\n}"),
        "3:1: `return` is missing output `B`"
    );
    assert_eq!(
        err("func @f(%A: f32) -> (B: f32) {\n  return C = %A\n}"),
        "2:10: `return` names output `C` where the signature has `B`"
    );
    assert_eq!(
        err("func @f(%A: f32) -> (B: f64) {\n  return B = %A\n}"),
        "2:14: %A has type f32 but output `B` is declared f64"
    );
    assert_eq!(
        err("func @f() -> () {\n  return\n"),
        "3:1: expected `}`, found the end of the text"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let body = format!("{}%0{}", "neg(".repeat(depth), ")".repeat(depth));
    let text = format!(
        "{HEAD}  %B = generic (i: N) ins(%A[i, i]) -> [i] {{ {body} }} : f32\n  return B = %B\n}}\n"
    );
    let e = err(&text);
    assert!(
        e.ends_with(": expression nested more than 200 levels deep"),
        "{e}"
    );
    assert_eq!(
        e,
        format!(
            "3:{}: expression nested more than 200 levels deep",
            46 + 4 * 201
        )
    );
    let conds = format!(
        "select({}lt(i, i){}, %0, %0)",
        "not(".repeat(depth),
        ")".repeat(depth)
    );
    let text = format!(
        "{HEAD}  %B = generic (i: N) ins(%A[i, i]) -> [i] {{ {conds} }} : f32\n  return B = %B\n}}\n"
    );
    assert!(err(&text).ends_with(": expression nested more than 200 levels deep"));
}

#[test]
fn names_outside_the_bare_set_are_quoted_and_round_trip() {
    let weird = [
        "",
        "0",
        "a b",
        "q\"uote",
        "back\\slash",
        "tab\there",
        "ünï",
        "%x",
        "1.5",
    ];
    for w in weird {
        let mut f = func(w, &[(w, ty(DType::F32, &[dim(w)]))]);
        let mut g = generic(
            &[(w, dim(w))],
            vec![(ValueId(0), vec![ix(0)])],
            &[0],
            None,
            bin(
                BinaryFn::Add,
                Expr::Input(0),
                Expr::DimValue(w.into(), DType::F32),
            ),
        );
        g.dtype = DType::F32;
        let r = op(&mut f, &format!("{w}!"), g);
        f.results.push(ResultDef {
            name: w.into(),
            value: r,
        });
        let m = Module {
            dims: vec![DimDef {
                name: w.into(),
                value: None,
            }],
            funcs: vec![f],
        };
        let text = print_module(&m);
        assert_eq!(parse(&text), m, "{text}");
    }
}

#[test]
fn quoted_name_escapes_are_printed_as_documented() {
    let m = Module {
        dims: vec![DimDef {
            name: "a\"b\\c\nd".into(),
            value: Some(2),
        }],
        funcs: vec![],
    };
    assert_eq!(print_module(&m), "dims \"a\\\"b\\\\c\\u{a}d\" = 2\n");
}

/// A one-op module whose body is the literal `s` (as a cast to keep the body f32).
fn literal_module(s: Scalar) -> Module {
    let mut f = func("lit", &[]);
    let mut g = generic(&[], vec![], &[], None, Expr::Lit(s));
    g.dtype = s.dtype();
    let r = op(&mut f, "r", g);
    f.results.push(ResultDef {
        name: "r".into(),
        value: r,
    });
    Module {
        dims: vec![],
        funcs: vec![f],
    }
}

fn parsed_literal(s: Scalar) -> Scalar {
    let m = parse(&print_module(&literal_module(s)));
    let OpKind::Generic(g) = &m.funcs[0].ops[0].kind;
    match g.body {
        Expr::Lit(s) => s,
        ref e => panic!("{e:?}"),
    }
}

#[test]
fn special_literals_are_spelled_as_documented() {
    let body = |s: Scalar| {
        let m = literal_module(s);
        let OpKind::Generic(g) = &m.funcs[0].ops[0].kind;
        print_expr(g, &g.body)
    };
    assert_eq!(body(Scalar::F32(f32::INFINITY)), "inf:f32");
    assert_eq!(body(Scalar::F64(f64::NEG_INFINITY)), "-inf:f64");
    assert_eq!(body(Scalar::F32(f32::NAN)), "nan:f32");
    assert_eq!(body(Scalar::F32(-f32::NAN)), "nan(0xffc00000):f32");
    assert_eq!(
        body(Scalar::F64(f64::from_bits(0x7ff0_0000_0000_0001))),
        "nan(0x7ff0000000000001):f64"
    );
    assert_eq!(body(Scalar::F32(1.0)), "1.0:f32");
    assert_eq!(body(Scalar::F32(-0.0)), "-0.0:f32");
    assert_eq!(body(Scalar::F32(1e-7)), "1e-7:f32");
    assert_eq!(body(Scalar::I64(i64::MIN)), "-9223372036854775808:i64");
}

proptest! {
    #[test]
    fn f32_literals_round_trip_bit_exactly(bits in any::<u32>()) {
        let Scalar::F32(v) = parsed_literal(Scalar::F32(f32::from_bits(bits))) else {
            panic!("not f32")
        };
        prop_assert_eq!(v.to_bits(), bits);
    }

    #[test]
    fn f64_literals_round_trip_bit_exactly(bits in any::<u64>()) {
        let Scalar::F64(v) = parsed_literal(Scalar::F64(f64::from_bits(bits))) else {
            panic!("not f64")
        };
        prop_assert_eq!(v.to_bits(), bits);
    }

    #[test]
    fn int_literals_round_trip(a in any::<i32>(), b in any::<i64>()) {
        prop_assert_eq!(parsed_literal(Scalar::I32(a)), Scalar::I32(a));
        prop_assert_eq!(parsed_literal(Scalar::I64(b)), Scalar::I64(b));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_module(&text);
    }

    #[test]
    fn ir_like_text_never_panics(text in "[%@a-z0-9 ,:()\\[\\]{}<>=.\"-]{0,200}") {
        let _ = parse_module(&text);
    }

    #[test]
    fn mutated_valid_text_never_panics(
        which in 0..2usize,
        cut in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8), 1..4),
    ) {
        let text = [ATTENTION, EXPRS][which];
        // Truncation at any character boundary.
        let chars: Vec<char> = text.chars().collect();
        let truncated: String = chars[..cut.index(chars.len() + 1)].iter().collect();
        let _ = parse_module(&truncated);
        // Deleted and duplicated tokens (split at spaces, which separate most tokens).
        let mut toks: Vec<&str> = text.split(' ').collect();
        for (at, kind) in edits {
            let n = at.index(toks.len());
            match kind {
                0 => { toks.remove(n); }
                1 => { let t = toks[n]; toks.insert(n, t); }
                _ => { let len = toks.len(); toks.swap(n, (n + 1) % len); }
            }
            if toks.is_empty() {
                break;
            }
        }
        let _ = parse_module(&toks.join(" "));
    }
}
