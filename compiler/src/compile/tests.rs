use super::*;
use crate::api::Program;
use crate::ir::loops::printer::print_module as print_loops;
use crate::ir::tensor::{DimDef, OpKind};

fn names(opts: &CompileOptions, until: Level) -> String {
    pipeline(opts, until).unwrap().names()
}

fn module(text: &str) -> tensor::Module {
    crate::sema::compile_source(text)
        .0
        .expect("the source checks")
}

const MATMUL: &str = "dims M, K, N = 4\n\
kernel mm(A: f32[M, K], B: f32[K, N]) -> (C: f32[M, N]) {\n    C[i, j] = A[i, k] * B[k, j]\n}\n";

#[test]
fn o0_is_the_direct_lowering_and_every_level_ends_in_it() {
    let o0 = CompileOptions {
        level: OptLevel::O0,
        ..CompileOptions::default()
    };
    assert_eq!(names(&o0, Level::Loop), "lower-to-loops");
    assert_eq!(names(&o0, Level::Tensor), "");
    assert_eq!(names(&o0, Level::Clif), "lower-to-loops, emit-clif");
    for level in OptLevel::ALL {
        let opts = CompileOptions {
            level,
            ..CompileOptions::default()
        };
        let loop_names = names(&opts, Level::Loop);
        assert!(
            loop_names.contains("lower-to-loops"),
            "{level:?}: {loop_names}"
        );
        // The tensor cut is the same list up to the lowering.
        let tensor_names = names(&opts, Level::Tensor);
        assert!(loop_names.starts_with(&tensor_names), "{level:?}");
        assert_eq!(
            format!("{}, emit-clif", loop_names),
            names(&opts, Level::Clif),
            "{level:?}"
        );
    }
}

#[test]
fn disabled_passes_leave_the_list_and_a_pipeline_string_replaces_it() {
    let opts = CompileOptions {
        disabled: vec!["dce".into(), "eps-expand".into()],
        ..CompileOptions::default()
    };
    let list = names(&opts, Level::Loop);
    assert!(
        !list.contains("dce") && !list.contains("eps-expand"),
        "{list}"
    );
    assert!(list.contains("delta-elim"), "{list}");
    let opts = CompileOptions {
        pipeline: Some("dce,lower-to-loops".into()),
        ..CompileOptions::default()
    };
    assert_eq!(names(&opts, Level::Loop), "dce, lower-to-loops");
    let bad = CompileOptions {
        pipeline: Some("dce,nonsense".into()),
        ..CompileOptions::default()
    };
    let err = compile(&module(MATMUL), &bad).unwrap_err();
    assert!(matches!(err, CompileError::Options(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("unknown pass `nonsense`"),
        "{err}"
    );
    // A pipeline that stops at the tensor level cannot be compiled.
    let short = CompileOptions {
        pipeline: Some("dce".into()),
        ..CompileOptions::default()
    };
    let err = compile(&module(MATMUL), &short).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the pipeline ends at tensor level, but code generation needs loop IR"
    );
}

#[test]
fn known_dims_must_name_symbolic_or_agreeing_dims() {
    let m = tensor::Module {
        dims: vec![
            DimDef {
                name: "T".into(),
                value: None,
            },
            DimDef {
                name: "N".into(),
                value: Some(3),
            },
        ],
        funcs: vec![],
    };
    let dims = BTreeMap::from([
        ("T".to_string(), 5),
        ("N".to_string(), 3),
        ("X".to_string(), 1),
        ("N2".to_string(), 1),
    ]);
    let problems = check_dims(&m, &dims);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        problems[0].to_string(),
        "no dim `N2`; the module declares: T, N"
    );
    let wrong = BTreeMap::from([("N".to_string(), 4)]);
    assert_eq!(
        check_dims(&m, &wrong)[0].to_string(),
        "dim `N` is fixed to 3, so it cannot be 4"
    );
    let err = compile(
        &module(MATMUL),
        &CompileOptions {
            dims: BTreeMap::from([("Q".to_string(), 2)]),
            ..CompileOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "no dim `Q`; the module declares: M, K, N");
}

#[test]
fn the_jit_compiles_exactly_what_compile_produces() {
    let m = module(MATMUL);
    for level in OptLevel::ALL {
        let opts = CompileOptions {
            level,
            ..CompileOptions::default()
        };
        let program = Program::from_module_with(m.clone(), &opts).unwrap();
        assert_eq!(
            print_loops(program.loop_module()),
            print_loops(&compile(&m, &opts).unwrap()),
            "{level:?}"
        );
        assert_eq!(program.options(), &opts);
    }
    let foreign = CompileOptions {
        target: Target::parse("aarch64-unknown-linux-gnu").unwrap(),
        ..CompileOptions::default()
    };
    let err = Program::from_module_with(m, &foreign).unwrap_err();
    assert!(
        err.to_string()
            .contains("the JIT compiles for the host only"),
        "{err}"
    );
}

/// Random inputs for `kernel`, symbolic dims bound to 2–4.
fn random_inputs(
    kernel: &crate::api::Kernel,
    rng: &mut crate::rng::Rng,
) -> Vec<einc_runtime::Array> {
    use crate::testkit::differential::input_shapes;
    use einc_runtime::{Array, Buffer, DType};
    let mut bound: BTreeMap<String, usize> = BTreeMap::new();
    let shapes = input_shapes(kernel, &mut |d| {
        *bound.entry(d.to_string()).or_insert(2 + rng.below(3))
    });
    shapes
        .into_iter()
        .zip(kernel.inputs())
        .map(|(shape, a)| {
            let n: usize = shape.iter().product();
            let buffer = match a.dtype {
                DType::F32 => Buffer::F32((0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()),
                DType::F64 => Buffer::F64((0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()),
                DType::I32 => Buffer::I32((0..n).map(|_| rng.below(7) as i32 - 3).collect()),
                DType::I64 => Buffer::I64((0..n).map(|_| rng.below(7) as i64 - 3).collect()),
            };
            Array::from_buffer(buffer, &shape).unwrap()
        })
        .collect()
}

/// Runs every kernel of `m` compiled with `opts` on random inputs and compares it with the
/// interpreter (floats to 1e-4 relative, integers exactly); returns the number of kernels.
fn check_against_interpreter(m: &tensor::Module, opts: &CompileOptions, what: &str) -> usize {
    use crate::api::TensorRef;
    let mut rng = crate::rng::Rng::new(99);
    let program = Program::from_module_with(m.clone(), opts).unwrap();
    for f in &m.funcs {
        let kernel = program.kernel(&f.name).unwrap();
        let inputs = random_inputs(&kernel, &mut rng);
        let views: Vec<TensorRef<'_>> = inputs.iter().map(TensorRef::from_array).collect();
        let got = kernel.run(&views).unwrap();
        let want = crate::interp::run(m, &f.name, &inputs).unwrap();
        for (g, w) in got.iter().zip(&want) {
            for (x, y) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{what} @{} without {:?}: {x} vs {y}",
                    f.name,
                    opts.disabled
                );
            }
        }
    }
    m.funcs.len()
}

/// The options of -O2 without `left_out` (or everything), for each pass of -O2 but the
/// lowering.
fn each_pass_left_out() -> Vec<CompileOptions> {
    let passes: Vec<String> = pass_list(&CompileOptions::default())
        .into_iter()
        .map(|item| item_name(&item).to_string())
        .filter(|name| name != "lower-to-loops")
        .collect();
    assert!(passes.len() >= 6, "{passes:?}");
    std::iter::once(Vec::new())
        .chain(passes.into_iter().map(|p| vec![p]))
        .map(|disabled| CompileOptions {
            disabled,
            ..CompileOptions::default()
        })
        .collect()
}

#[test]
fn random_products_agree_with_the_interpreter_with_each_pass_left_out() {
    let mut rng = crate::rng::Rng::new(5);
    let mut checked = 0;
    for round in 0..10 {
        let dtype = if round % 2 == 0 { "i64" } else { "f64" };
        let text = crate::passes::contraction_path::tests::random_product(&mut rng, dtype);
        let m = crate::ir::tensor::parser::parse_module(&text).unwrap();
        for opts in each_pass_left_out() {
            checked += check_against_interpreter(&m, &opts, &text);
        }
    }
    assert!(checked >= 60);
}

#[test]
fn every_example_agrees_with_the_interpreter_with_each_pass_left_out() {
    let files = crate::testkit::files::example_files();
    let mut checked = 0;
    for opts in each_pass_left_out() {
        for file in &files {
            let m = module(&std::fs::read_to_string(file).unwrap());
            checked += check_against_interpreter(&m, &opts, &file.display().to_string());
        }
    }
    assert!(checked >= 6 * 10, "{checked}");
}

#[test]
fn known_extents_choose_the_path_and_unknown_ones_are_assumed_large() {
    const CHAIN: &str = "dims I, J, K, L\n\
kernel c(A: f32[I, J], B: f32[J, K], C: f32[K, L]) -> (D: f32[I, L]) {\n    D[i, l] = A[i, j] * B[j, k] * C[k, l]\n}\n";
    let first_step = |m: tensor::Module, dims: &[(&str, u64)]| {
        let opts = CompileOptions {
            dims: dims.iter().map(|&(d, n)| (d.to_string(), n)).collect(),
            ..CompileOptions::default()
        };
        let Ir::Tensor(out) = run(
            m,
            &opts,
            Level::Tensor,
            &RunOptions::default(),
            &mut Dumps::default(),
        )
        .unwrap() else {
            panic!("tensor IR expected")
        };
        let f = &out.funcs[0];
        let OpKind::Generic(g) = &f.ops[0].kind;
        g.inputs
            .iter()
            .map(|i| f.value(i.value).name.clone())
            .collect::<Vec<_>>()
            .join(",")
    };
    let m = module(CHAIN);
    // Hints (`--dims`): the small pair first either way.
    let skinny = [("I", 1000), ("J", 10), ("K", 1000), ("L", 10)];
    let fat = [("I", 10), ("J", 1000), ("K", 10), ("L", 1000)];
    assert_eq!(first_step(m.clone(), &skinny), "B,C");
    assert_eq!(first_step(m.clone(), &fat), "A,B");
    // Specialisation fixes the dims in the module, with the same effect.
    let mut fixed = m.clone();
    for d in &mut fixed.dims {
        d.value = skinny.iter().find(|(n, _)| *n == d.name).map(|&(_, v)| v);
    }
    assert_eq!(first_step(fixed, &[]), "B,C");
    // Nothing known: every dim is planned as 1000; still split in two steps.
    assert_eq!(first_step(m, &[]).split(',').count(), 2);
}
