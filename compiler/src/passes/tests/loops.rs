//! Tests of the loop-level passes: each pass (and the default loop pipeline) on every example
//! program, on `tiles.lir` and on `hints.lir`, checked against the loop evaluator on random
//! inputs, bit for bit, and through the JIT (compiled before and after the pass, bit for bit);
//! and end to end: every example compiled with an unroll request on every innermost loop and
//! all the loop passes, against the interpreter.

use crate::codegen::jit_compile;
use crate::compile::{compile, CompileOptions};
use crate::ir::loops::eval::run_function;
use crate::ir::loops::parser::parse_module;
use crate::ir::loops::printer::print_module;
use crate::ir::loops::{Block, BufferKind, Extent, Function, Inst, Module};
use crate::ir::tensor;
use crate::passes::manager::{run_pipeline, Dumps, RunOptions};
use crate::passes::{Ir, Pipeline};
use crate::rng::Rng;
use crate::testkit::layout::array_bits as bits;
use einc_runtime::abi::Tensor;
use einc_runtime::{Array, Buffer, DType, Scalar};
use std::collections::HashMap;

const TILES: &str = include_str!("../../../../tests/filetests/loops/tiles.lir");
const HINTS: &str = include_str!("../../../../tests/filetests/loops/hints.lir");
const POINTERS: &str = include_str!("../../../../tests/filetests/loops/pointers.lir");

/// The loop passes of the default pipeline.
const LOOP_PASSES: [&str; 3] = ["unroll", "licm", "strength-reduce"];

/// Loop IR to run the passes on: every example as the default pipeline lowers it before the
/// loop passes, the tiled code and the unroll requests.
fn corpus() -> Vec<(String, Module)> {
    let mut out: Vec<(String, Module)> = examples()
        .into_iter()
        .map(|(name, _, lm)| (name, lm))
        .collect();
    for (name, text) in [
        ("tiles.lir", TILES),
        ("hints.lir", HINTS),
        ("pointers.lir", POINTERS),
    ] {
        out.push((
            name.into(),
            parse_module(text).unwrap_or_else(|e| panic!("{e}")),
        ));
    }
    out
}

/// Every example program: its name, its checked tensor IR, and its loop IR as the default
/// pipeline lowers it before the loop passes.
fn examples() -> Vec<(String, tensor::Module, Module)> {
    let mut out = Vec::new();
    let files = crate::testkit::files::example_files();
    let opts = CompileOptions {
        disabled: LOOP_PASSES.iter().map(|s| s.to_string()).collect(),
        ..CompileOptions::default()
    };
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let tm = crate::sema::compile_source(&text)
            .0
            .unwrap_or_else(|| panic!("{}", path.display()));
        let lm = compile(&tm, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push((path.display().to_string(), tm, lm));
    }
    out
}

/// Runs `pipeline` on `m`, verifying after every pass.
fn apply(pipeline: &str, m: &Module) -> Module {
    let p = Pipeline::parse(pipeline).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        verify_each: true,
        ..RunOptions::default()
    };
    match run_pipeline(&p, Ir::Loop(m.clone()), &opts, &mut Dumps::default()) {
        Ok(Ir::Loop(out)) => out,
        Ok(other) => panic!("{pipeline} gave {} IR", other.level()),
        Err(e) => panic!("{pipeline}: {e}\n{}", print_module(m)),
    }
}

/// Random inputs for `f` with every symbolic dim bound to `1 ..= 7` (shared by the arguments).
fn random_inputs(m: &Module, f: &Function, rng: &mut Rng) -> Vec<Array> {
    let sizes: HashMap<&str, usize> = m
        .dims
        .iter()
        .map(|d| {
            let n = d.value.map_or_else(|| 1 + rng.below(7), |v| v as usize);
            (d.name.as_str(), n)
        })
        .collect();
    f.params
        .iter()
        .filter_map(|&p| f.buffer(p))
        .filter(|b| b.kind == BufferKind::Input)
        .map(|b| {
            let shape: Vec<usize> = b
                .shape
                .iter()
                .map(|e| match e {
                    Extent::Fixed(n) => *n as usize,
                    Extent::Dim(d) => sizes[d.as_str()],
                })
                .collect();
            let n: usize = shape.iter().product();
            let buffer = match b.dtype {
                DType::F32 => Buffer::F32((0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()),
                DType::F64 => Buffer::F64((0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()),
                DType::I32 => Buffer::I32((0..n).map(|_| rng.below(11) as i32 - 5).collect()),
                DType::I64 => Buffer::I64((0..n).map(|_| rng.below(11) as i64 - 5).collect()),
            };
            Array::from_buffer(buffer, &shape).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// Calls JIT-compiled kernel `name` of `m` on `inputs` with C-order outputs shaped as
/// `shapes`; returns the outputs' bits.
fn jit_run(m: &Module, name: &str, inputs: &[Array], shapes: &[Vec<usize>]) -> Vec<Vec<u64>> {
    let program = jit_compile(m).unwrap_or_else(|e| panic!("{e}"));
    let k = program
        .kernel(name)
        .unwrap_or_else(|| panic!("no kernel {name}"));
    let sig = k.signature().clone();
    let mut outs: Vec<Array> = shapes
        .iter()
        .zip(&sig.args[inputs.len()..])
        .map(|(s, a)| Array::zeros(a.dtype, s).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut descs = Vec::new();
    let mut keep: Vec<(Vec<i64>, Vec<i64>)> = Vec::new();
    for a in inputs.iter().chain(outs.iter()) {
        keep.push((
            a.shape().iter().map(|&e| e as i64).collect(),
            a.strides().iter().map(|&s| s as i64).collect(),
        ));
    }
    let ptr = |a: &Array| -> *mut std::ffi::c_void {
        match a.buffer() {
            Buffer::F32(v) => v.as_ptr() as *mut _,
            Buffer::F64(v) => v.as_ptr() as *mut _,
            Buffer::I32(v) => v.as_ptr() as *mut _,
            Buffer::I64(v) => v.as_ptr() as *mut _,
        }
    };
    for (a, (shape, strides)) in inputs.iter().chain(outs.iter_mut().map(|o| &*o)).zip(&keep) {
        descs.push(Tensor {
            data: ptr(a),
            dtype: a.dtype().code(),
            rank: shape.len() as i32,
            shape: shape.as_ptr(),
            strides: strides.as_ptr(),
        });
    }
    // SAFETY: every descriptor points at live memory owned by this function.
    let code = unsafe { (k.entry())(descs.as_ptr(), descs.len() as i64) };
    assert_eq!(code, 0, "{name}");
    outs.iter().map(bits).collect()
}

/// Runs `pipeline` on the corpus and checks every kernel against the evaluator on random
/// inputs (bit for bit) and, with `jit`, the compiled kernels before and after (bit for bit).
/// Returns how many calls were compared.
fn check(pipeline: &str, jit: bool, edit: impl Fn(&mut Module)) -> usize {
    let mut rng = Rng::new(77);
    let mut compared = 0;
    for (name, mut m) in corpus() {
        edit(&mut m);
        let after = apply(pipeline, &m);
        for (f, g) in m.kernels().zip(after.kernels()) {
            for _ in 0..3 {
                let inputs = random_inputs(&m, f, &mut rng);
                let Ok(want) = run_function(&m, f, &inputs) else {
                    continue;
                };
                let got = run_function(&after, g, &inputs)
                    .unwrap_or_else(|e| panic!("{pipeline} on {name} @{}: {e}", f.name));
                let want_bits: Vec<Vec<u64>> = want.iter().map(bits).collect();
                let got_bits: Vec<Vec<u64>> = got.iter().map(bits).collect();
                assert_eq!(got_bits, want_bits, "{pipeline} on {name} @{}", f.name);
                if jit {
                    let shapes: Vec<Vec<usize>> = want.iter().map(|a| a.shape().to_vec()).collect();
                    assert_eq!(
                        jit_run(&after, &f.name, &inputs, &shapes),
                        jit_run(&m, &f.name, &inputs, &shapes),
                        "{pipeline} on {name} @{} compiled",
                        f.name
                    );
                }
                compared += 1;
            }
        }
    }
    compared
}

/// Asks every innermost loop of the module to be unrolled `n` times (`hints.lir` asks for
/// outer loops too; asking for every loop multiplies the code by `2n` per level).
fn request_unroll(m: &mut Module, n: u32) {
    fn block(b: &mut Block, n: u32) {
        for inst in &mut b.insts {
            if let Inst::For(l) = inst {
                let innermost = !l.body.insts.iter().any(|i| matches!(i, Inst::For(_)));
                if innermost {
                    l.unroll = Some(n);
                }
                block(&mut l.body, n);
            }
        }
    }
    for f in &mut m.funcs {
        block(&mut f.body, n);
    }
}

#[test]
fn each_loop_pass_keeps_every_result() {
    for pass in LOOP_PASSES {
        let compared = check(pass, false, |_| {});
        assert!(compared >= 40, "{pass}: only {compared} calls compared");
    }
}

#[test]
fn unrolling_every_loop_keeps_every_result() {
    for n in [2, 3] {
        let compared = check("unroll,licm,strength-reduce", false, |m| {
            request_unroll(m, n)
        });
        assert!(compared >= 40, "unroll {n}: only {compared} calls compared");
    }
}

#[test]
fn compiled_code_is_the_same_after_the_loop_passes() {
    let compared = check(&LOOP_PASSES.join(","), true, |_| {});
    assert!(compared >= 40, "only {compared} calls compared");
}

#[test]
fn the_passes_change_what_they_should() {
    let m = parse_module(HINTS).unwrap_or_else(|e| panic!("{e}"));
    let text = print_module(&apply("unroll", &m));
    // The requests are gone: main loops and remainders ask to stay rolled.
    assert!(!text.contains("unroll 4") && !text.contains("unroll 3") && !text.contains("unroll 2"));
    assert!(text.contains("step 4 unroll 1 iter("), "{text}");
    assert!(text.contains("step 3 parallel unroll 1 {"), "{text}");
    // The 8-element vector loop (2 trips) is gone; the loop asking for `unroll 1` and the one
    // declaring a scoped buffer stay.
    assert!(!text.contains("= for %k ="), "{text}");
    assert!(
        text.contains("for %q = %c0 to %c2 step 1 unroll 1 iter("),
        "{text}"
    );
    assert!(text.contains("scoped %tmp"), "{text}");
    let text = print_module(&apply("licm", &m));
    // `mul %two, %two` and `iadd %i, %c1` leave their loops.
    let before_loop = |inst: &str, lp: &str| {
        text.find(inst)
            .zip(text.find(lp))
            .is_some_and(|(a, b)| a < b)
    };
    assert!(
        before_loop("%t = mul %two, %two", "%acc = for %j"),
        "{text}"
    );
    assert!(before_loop("%i1 = iadd %i, %c1", "for %j2"), "{text}");
    let text = print_module(&apply("strength-reduce", &m));
    // The reduction over `%j` reads X through a pointer; the parallel loop over `%j2` does not.
    assert!(text.contains("%x = load at %X.p.sr : f32"), "{text}");
    assert!(text.contains("%x2 = load %X[%i, %j2] : f32"), "{text}");
}

/// Whether `got` is within rounding of the interpreter's `want` (integers exactly): the tensor
/// passes before the lowering may regroup sums, the loop passes never do.
fn close(got: &[u64], want: &Array) -> bool {
    let mut wants = Vec::new();
    einc_runtime::array::for_each_index(want.shape(), |ix| wants.push(want.get(ix)));
    got.len() == wants.len()
        && got.iter().zip(wants).all(|(&g, w)| match w {
            Scalar::F32(w) => {
                let g = f32::from_bits(g as u32);
                (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-4 * w.abs().max(1.0)
            }
            Scalar::F64(w) => {
                let g = f64::from_bits(g);
                (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-10 * w.abs().max(1.0)
            }
            Scalar::I32(w) => g == w as u64,
            Scalar::I64(w) => g == w as u64,
        })
}

#[test]
fn unrolled_and_reduced_examples_agree_with_the_interpreter() {
    let mut rng = Rng::new(78);
    let mut compared = 0;
    for (name, tm, mut m) in examples() {
        request_unroll(&mut m, 3);
        let after = apply(&LOOP_PASSES.join(","), &m);
        for f in after.kernels() {
            let inputs = random_inputs(&after, f, &mut rng);
            let want = crate::interp::run(&tm, &f.name, &inputs)
                .unwrap_or_else(|e| panic!("{name} @{}: the interpreter fails: {e}", f.name));
            let shapes: Vec<Vec<usize>> = want.iter().map(|a| a.shape().to_vec()).collect();
            let got = jit_run(&after, &f.name, &inputs, &shapes);
            for (g, w) in got.iter().zip(&want) {
                assert!(close(g, w), "{name} @{}: {got:?} vs {want:?}", f.name);
            }
            compared += 1;
        }
    }
    assert!(compared >= 11, "only {compared} kernels compared");
}
