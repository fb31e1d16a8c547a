//! Round trips of the loop IR text (fixtures and Rust-built modules), parse errors with their
//! positions, and property tests that the parser never panics.

use super::{parse_module, MAX_DEPTH};
use crate::ir::loops::printer::print_module;
use crate::ir::loops::*;
use einc_runtime::{DType, Scalar};
use proptest::prelude::*;

const ALL_OPS: &str = include_str!("../../../../../tests/filetests/loops/all_ops.lir");
const MATMUL: &str = include_str!("../../../../../tests/filetests/loops/matmul.lir");
const ROWSUM: &str = include_str!("../../../../../tests/filetests/loops/rowsum_vector.lir");
const MASK: &str = include_str!("../../../../../tests/filetests/loops/causal_mask.lir");
const TILES: &str = include_str!("../../../../../tests/filetests/loops/tiles.lir");
const POINTERS: &str = include_str!("../../../../../tests/filetests/loops/pointers.lir");
const FIXTURES: [&str; 6] = [ALL_OPS, MATMUL, ROWSUM, MASK, TILES, POINTERS];

/// The fixture without its leading comment lines, which the printer does not reproduce.
fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Module equality that treats NaN literals as equal (their bits are checked by the text
/// round trips): `Scalar`'s `PartialEq` follows IEEE, where a NaN equals nothing.
fn same(a: &Module, b: &Module) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn parse(text: &str) -> Module {
    match parse_module(text) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse_module(text) {
        Ok(m) => panic!("parsed:\n{}", print_module(&m)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fixtures_print_back_identically() {
    for text in FIXTURES {
        let printed = print_module(&parse(text));
        assert_eq!(printed, without_comments(text));
        assert_eq!(print_module(&parse(&printed)), printed);
    }
}

/// A Rust-built function: `Y[i] = sum_j X[i, j] * 2` with vector loads, a carried vector
/// accumulator and a lane reduction. Values are added in text order (a loop's results, its
/// variable, its carried arguments, its body), which is what the parser assigns.
fn built_module() -> Module {
    let n = Extent::Dim("N".into());
    let mut f = Function {
        variant_of: None,
        name: "rowsum".into(),
        buffers: Vec::new(),
        params: Vec::new(),
        values: Vec::new(),
        body: Block::default(),
    };
    let x = f.add_buffer(BufferDef {
        name: "X".into(),
        dtype: DType::F32,
        shape: vec![n.clone(), Extent::Fixed(8)],
        layout: Layout::Contiguous,
        kind: BufferKind::Input,
        align: None,
    });
    let y = f.add_buffer(BufferDef {
        name: "Y".into(),
        dtype: DType::F32,
        shape: vec![n],
        layout: Layout::Strided,
        kind: BufferKind::Output,
        align: None,
    });
    f.params = vec![x, y];
    let v4 = Type::Vector(DType::F32, 4);
    let c0 = f.add_value("c0", Type::Index);
    let c8 = f.add_value("c8", Type::Index);
    let dn = f.add_value("n", Type::Index);
    let two = f.add_value("two", Type::Scalar(DType::F32));
    let two4 = f.add_value("two4", v4);
    let z = f.add_value("z", Type::Scalar(DType::F32));
    let z4 = f.add_value("z4", v4);
    let i = f.add_value("i", Type::Index);
    let acc = f.add_value("acc", v4);
    let j = f.add_value("j", Type::Index);
    let s = f.add_value("s", v4);
    let v = f.add_value("v", v4);
    let next = f.add_value("next", v4);
    let r = f.add_value("r", Type::Scalar(DType::F32));
    let inner = For {
        var: j,
        lower: c0,
        upper: c8,
        step: 4,
        parallel: false,
        unroll: None,
        carried: vec![Carried {
            arg: s,
            init: z4,
            result: acc,
        }],
        body: Block {
            insts: vec![
                Inst::Assign {
                    result: v,
                    op: Op::Load {
                        buffer: x,
                        index: vec![i, j],
                        lanes: 4,
                    },
                },
                Inst::Assign {
                    result: next,
                    op: Op::Fma(v, two4, s),
                },
            ],
        },
        yields: vec![next],
    };
    let outer = For {
        var: i,
        lower: c0,
        upper: dn,
        step: 1,
        parallel: true,
        unroll: None,
        carried: Vec::new(),
        body: Block {
            insts: vec![
                Inst::For(Box::new(inner)),
                Inst::Assign {
                    result: r,
                    op: Op::ReduceLanes(ReduceKind::Add, acc),
                },
                Inst::Store {
                    buffer: y,
                    index: vec![i],
                    value: r,
                },
            ],
        },
        yields: Vec::new(),
    };
    let assign = |result, op| Inst::Assign { result, op };
    f.body.insts = vec![
        assign(c0, Op::IndexConst(0)),
        assign(c8, Op::IndexConst(8)),
        assign(dn, Op::Dim("N".into())),
        assign(two, Op::Const(Scalar::F32(2.0))),
        assign(two4, Op::Splat(two, 4)),
        assign(z, Op::Const(Scalar::F32(0.0))),
        assign(z4, Op::Splat(z, 4)),
        Inst::For(Box::new(outer)),
    ];
    Module {
        dims: vec![DimDef {
            name: "N".into(),
            value: None,
        }],
        funcs: vec![f],
    }
}

#[test]
fn rust_built_module_parses_back_equal() {
    let m = built_module();
    let text = print_module(&m);
    assert_eq!(
        text,
        "dims N

func @rowsum(%X: in f32[N, 8] contiguous, %Y: out f32[N] strided) {
  %c0 = index 0
  %c8 = index 8
  %n = dim N
  %two = const 2.0:f32
  %two4 = splat %two : vector<4xf32>
  %z = const 0.0:f32
  %z4 = splat %z : vector<4xf32>
  for %i = %c0 to %n step 1 parallel {
    %acc = for %j = %c0 to %c8 step 4 iter(%s = %z4) {
      %v = load %X[%i, %j] : vector<4xf32>
      %next = fma %v, %two4, %s : vector<4xf32>
      yield %next
    }
    %r = reduce_lanes add %acc : f32
    store %r, %Y[%i]
  }
}
"
    );
    assert_eq!(parse(&text), m);
}

#[test]
fn fixtures_parse_back_equal() {
    for text in FIXTURES {
        let m = parse(text);
        assert!(same(&parse(&print_module(&m)), &m));
    }
}

#[test]
fn multiple_carried_values_and_ids_follow_the_text() {
    let m = parse(
        "func @f(%Y: out f32[] contiguous) {
  %c0 = index 0
  %c4 = index 4
  %one = const 1.0:f32
  %a, %b = for %i = %c0 to %c4 step 1 iter(%sa = %one, %sb = %one) {
    %x = add %sa, %sb : f32
    yield %x, %sa
  }
  %r = mul %a, %b : f32
  store %r, %Y[]
}
",
    );
    let f = &m.funcs[0];
    let names: Vec<&str> = f.values.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["c0", "c4", "one", "a", "b", "i", "sa", "sb", "x", "r"]
    );
    let Inst::For(l) = &f.body.insts[3] else {
        panic!("expected a loop");
    };
    assert_eq!(
        l.carried,
        vec![
            Carried {
                arg: ValueId(6),
                init: ValueId(2),
                result: ValueId(3)
            },
            Carried {
                arg: ValueId(7),
                init: ValueId(2),
                result: ValueId(4)
            }
        ]
    );
    assert_eq!(l.yields, vec![ValueId(8), ValueId(6)]);
    assert_eq!(f.values[3].ty, Type::Scalar(DType::F32));
}

#[test]
fn tiled_code_reads_into_its_parts() {
    let m = parse(TILES);
    let names: Vec<&str> = m.kernels().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["matmul", "dense", "unflatten"]);
    let variants: Vec<&str> = m.variants_of("matmul").map(|f| f.name.as_str()).collect();
    assert_eq!(variants, ["matmul.contiguous"]);
    let f = &m.funcs[0];
    assert_eq!(
        f.buffers[2].layout,
        Layout::Axes(vec![StrideFact::Runtime, StrideFact::Unit])
    );
    let bp = f.buffers.iter().find(|b| b.name == "Bp").unwrap();
    assert_eq!((bp.kind, bp.align), (BufferKind::Scoped, Some(64)));
    let flat = &m.funcs[3].buffers[2];
    assert_eq!((flat.kind, flat.align), (BufferKind::Temp, Some(64)));
    // The dense kernel's call: every optional part, and the operands' coordinates.
    let Some(Inst::For(l)) = m.funcs[2].body.insts.last() else {
        panic!("expected the row loop");
    };
    let Some(Inst::Ukernel(u)) = l.body.insts.last() else {
        panic!("expected a micro-kernel call");
    };
    assert_eq!(
        u.shape,
        UkernelShape {
            dtype: DType::F64,
            mr: 2,
            nr: 4
        }
    );
    assert_eq!(u.a.axes, vec![(Coord::M, vec![0]), (Coord::K, vec![1])]);
    assert!(u.scale.is_some() && u.relu);
    assert_eq!(
        u.bias.as_ref().map(|b| b.axes.clone()),
        Some(vec![(Coord::N, vec![0])])
    );
}

#[test]
fn micro_kernel_names_round_trip() {
    for (name, shape) in [
        ("gemm.f32.4x8", Some((DType::F32, 4, 8))),
        ("gemm.f64.12x16", Some((DType::F64, 12, 16))),
        ("gemm.f32.4x", None),
        ("gemm.q32.4x8", None),
        ("gemm.f32.4x8x", None),
        ("gemm.f32.+4x8", None),
        ("gemv.f32.4x8", None),
    ] {
        let parsed = UkernelShape::parse(name);
        assert_eq!(parsed.map(|s| (s.dtype, s.mr, s.nr)), shape, "{name}");
        if let Some(s) = parsed {
            assert_eq!(s.name(), name);
        }
    }
}

/// A function `@f` with an output `%Y: f32[4]` and the given body lines.
fn body_err(body: &str) -> String {
    parse_err(&format!(
        "dims N\nfunc @f(%Y: out f32[4] contiguous) {{\n  %c0 = index 0\n{body}\n}}\n"
    ))
}

#[test]
fn parse_errors_name_the_position() {
    let cases = [
        ("  %x = add %y, %c0 : f32", "4:12: undefined value %y"),
        ("  %c0 = index 1", "4:3: value %c0 is defined twice"),
        ("  store %c0, %Z[%c0]", "4:14: undefined buffer %Z"),
        ("  %d = dim M", "4:12: undefined dim `M`"),
        ("  %x = frob %c0", "4:8: unknown operation `frob`"),
        (
            "  %x = cmp lq %c0, %c0",
            "4:12: unknown comparison `lq`: expected lt, le, gt, ge, eq or ne",
        ),
        (
            "  %x = reduce_lanes sum %c0 : f32",
            "4:21: unknown reduction `sum`: expected add, mul, max or min",
        ),
        (
            "  %x = splat %c0 : f32",
            "4:20: a splat's type must be a vector",
        ),
        (
            "  %x = cast %c0 : bool",
            "4:19: a cast's type must be a dtype or a vector of one",
        ),
        (
            "  %x = load %Y[%c0] : vector<4xq32>",
            "4:31: expected `x` and a dtype, as in `vector<4xf32>`",
        ),
        (
            "  %x = index 9223372036854775808",
            "4:14: the index constant does not fit in i64",
        ),
        (
            "  %x = index -9223372036854775808\n  %y = add %x, %x",
            "6:1: expected `:`, found `}`",
        ),
        (
            "  %a, %b = index 0",
            "4:12: expected `for` (only a loop defines several values), found `index`",
        ),
        (
            "  %a = for %i = %c0 to %c0 step 1 {\n  }",
            "4:8: the loop defines 1 result(s) but carries 0 value(s)",
        ),
        (
            "  for %i = %c0 to %c0 step 1 {\n    %x = index 1\n  }\n  store %x, %Y[%c0]",
            "7:9: value %x is not visible here: it is defined later, inside a loop body that has \
             ended, or is the result of the loop being read",
        ),
        (
            "  %a = for %i = %c0 to %c0 step 1 iter(%s = %a) {\n    yield %s\n  }",
            "4:45: undefined value %a",
        ),
        (
            "  yield %c0",
            "4:3: expected an instruction or `}`, found `yield`",
        ),
        (
            "  %x = add %c0, %c0 : f32 : f32",
            "4:27: expected an instruction or `}`, found `:`",
        ),
        (
            "  for %i = %c0 to %c0 step 1 {\n    scoped %t: f32[4] contiguous\n  }\n  \
             %x = load %t[%c0] : f32",
            "7:13: scoped buffer %t is not visible here: its block has ended",
        ),
        (
            "  scoped %t: temp f32[4] contiguous",
            "4:14: expected a dtype (a scoped buffer's declaration names no kind), found `temp`",
        ),
        (
            "  scoped %t: f32[4] strides[_, 2]",
            "4:32: expected a stride fact: `_` (run time), `1` (unit) or `c` (C order), found `2`",
        ),
        (
            "  for %i = %c0 to %c0 step 1 unroll {\n  }",
            "4:37: expected an unroll factor, found `{`",
        ),
        (
            "  ukernel @gemv.f32.4x8 kc %c0",
            "4:11: unknown micro-kernel @gemv.f32.4x8: expected @gemm.<dtype>.<MR>x<NR>, as in \
             @gemm.f32.4x8",
        ),
        (
            "  ukernel @gemm.f32.4x8 kc %c0, tile %c0 x %c0, a %Y[%c0] (q: 0)",
            "4:60: unknown coordinate `q`: expected m, n, k or mt",
        ),
        (
            "  %b = cmp eq %c0, %c0\n  ukernel @gemm.f32.4x8 kc %c0, tile %c0 x %c0, \
             a %Y[%c0] (m: 0), b %Y[%c0] (n: 0), c %Y[%c0] (m: 0), init %b, relu, scale %c0",
            "5:116: expected an instruction or `}`, found `,`",
        ),
        (
            "  %b = cmp eq %c0, %c0\n  ukernel @gemm.f32.4x8 kc %c0, tile %c0 x %c0, \
             a %Y[%c0] (m: 0), b %Y[%c0] (n: 0), c %Y[%c0] (m: 0), init %b, scale",
            "6:1: expected a value name `%name`, found `}`",
        ),
    ];
    let got: Vec<String> = cases.iter().map(|(body, _)| body_err(body)).collect();
    let want: Vec<&str> = cases.iter().map(|(_, want)| *want).collect();
    assert_eq!(got, want);
}

#[test]
fn signature_errors() {
    assert_eq!(
        parse_err("func @f(%X: f32[4] strided) {\n}\n"),
        "1:13: expected `in` or `out`, found `f32`"
    );
    assert_eq!(
        parse_err("func @f(%X: in f32[4]) {\n}\n"),
        "1:22: expected a layout: `contiguous`, `strided` or `strides[...]`, found `)`"
    );
    assert_eq!(
        parse_err("func @f(%X: in f32[4] strided, %X: out f32[4] strided) {\n}\n"),
        "1:32: buffer %X is declared twice"
    );
    assert_eq!(
        parse_err("func @f() {\n}\nfunc @f() {\n}\n"),
        "3:1: function @f is defined twice"
    );
    assert_eq!(
        parse_err("func @f() {\n}\n}"),
        "3:1: expected `func` or the end of the module, found `}`"
    );
    assert_eq!(
        parse_err("func @f() variant @g {\n}\n"),
        "1:19: expected `of`, found `@g`"
    );
    assert_eq!(
        parse_err("func @f() variant of g {\n}\n"),
        "1:22: expected the general function `@name`, found `g`"
    );
}

/// `depth` nested loops around one store.
fn nested(depth: usize) -> String {
    let mut text = String::from("func @f(%Y: out f32[1] contiguous) {\n  %c0 = index 0\n  %c1 = index 1\n  %z = const 0.0:f32\n");
    for d in 0..depth {
        text.push_str(&format!("for %i{d} = %c0 to %c1 step 1 {{\n"));
    }
    text.push_str("store %z, %Y[%c0]\n");
    for _ in 0..depth {
        text.push_str("}\n");
    }
    text.push_str("}\n");
    text
}

#[test]
fn nesting_is_limited() {
    assert!(parse_module(&nested(MAX_DEPTH)).is_ok());
    let err = parse_module(&nested(MAX_DEPTH + 1))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.message,
        format!("loops nested more than {MAX_DEPTH} levels deep")
    );
    assert_eq!(err.line, MAX_DEPTH + 5);
}

#[test]
fn printer_shows_what_text_cannot_carry() {
    let mut m = built_module();
    let f = &mut m.funcs[0];
    f.values[0].ty = Type::Scalar(DType::F32);
    f.values.truncate(13);
    let text = print_module(&m);
    assert!(text.contains("  %c0 = index 0  // recorded type f32 does not fit the op\n"));
    assert!(text.contains("    %\"<invalid value 13>\" = reduce_lanes add %acc\n"));
    assert!(text.contains("    store %\"<invalid value 13>\", %Y[%i]\n"));
    assert!(parse_module(&text).is_err());
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = parse_module(&text);
    }

    #[test]
    fn parser_never_panics_on_mutated_fixtures(
        fixture in 0usize..FIXTURES.len(),
        at in 0usize..2000,
        len in 0usize..20,
        insert in "[%@:=,()\\[\\]{}<>a-z0-9 \"\\\\.-]{0,6}",
    ) {
        let text = FIXTURES[fixture];
        let mut s: Vec<char> = text.chars().collect();
        let at = at % s.len();
        let end = (at + len).min(s.len());
        s.splice(at..end, insert.chars());
        let mutated: String = s.into_iter().collect();
        if let Ok(m) = parse_module(&mutated) {
            // Whatever parses prints back to text that parses to the same module.
            let printed = print_module(&m);
            let again = parse_module(&printed);
            prop_assert!(again.is_ok_and(|again| same(&again, &m)), "{}", printed);
        }
    }
}
