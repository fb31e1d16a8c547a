//! The generator's own tests: what it makes is accepted by sema.

use super::choices::Choices;
use super::differential::case_bytes;
use super::program::{generate, Config};

#[test]
fn every_generated_program_checks() {
    let mut bad = Vec::new();
    for n in 0..3000 {
        let g = generate(&mut Choices::new(&case_bytes(n)), &Config::default());
        let (module, diags) = crate::sema::compile_source(&g.source);
        if module.is_none() {
            let file = crate::diag::SourceFile::new("gen.ein", &g.source);
            bad.push(format!(
                "case {n}:\n{}\n{}",
                g.source,
                crate::diag::render(&diags, &file, false)
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 3000 rejected:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_same_bytes_give_the_same_program() {
    let bytes = case_bytes(42);
    let a = generate(&mut Choices::new(&bytes), &Config::default());
    let b = generate(&mut Choices::new(&bytes), &Config::default());
    assert_eq!(a, b);
    let empty = generate(&mut Choices::new(&[]), &Config::default());
    assert!(
        empty.source.lines().count() <= 4,
        "no bytes give a minimal program:\n{}",
        empty.source
    );
}

#[test]
fn the_comparison_skips_only_non_finite_elements_and_only_when_told() {
    use super::differential::{compare, Tolerance};
    use einc_runtime::{Array, Buffer};
    let array = |v: &[f32]| Array::from_buffer(Buffer::F32(v.to_vec()), &[v.len()]).unwrap();
    let want = array(&[f32::NAN, 0.0, f32::INFINITY, 1.0]);
    let exact = Tolerance::F32;
    let only_finite = Tolerance {
        only_finite: true,
        ..Tolerance::F32
    };
    // NaN meets NaN, an infinity the same infinity; rounding within the tolerance.
    assert!(compare(
        &array(&[f32::NAN, 0.0, f32::INFINITY, 1.00001]),
        &want,
        exact
    )
    .is_ok());
    // A regrouped product: NaN for 0 and inf for NaN, accepted only when told.
    let regrouped = array(&[f32::INFINITY, f32::NAN, f32::NAN, 1.0]);
    assert!(compare(&regrouped, &want, exact).is_err());
    assert!(compare(&regrouped, &want, only_finite).is_ok());
    // Finite elements are compared either way.
    let wrong = array(&[f32::INFINITY, 0.0, f32::NAN, 1.5]);
    assert!(compare(&wrong, &want, only_finite).is_err());
}

#[test]
fn generated_programs_reach_every_gemm_epilogue_step() {
    // The differential batch (its first 2,000 cases) must exercise each epilogue the GEMM
    // lowering fuses into its store of C: compiled at -O2, some GEMM records each step.
    use crate::ir::tensor::schedule::{EpilogueStep, Schedule};
    use crate::ir::tensor::OpKind;
    use crate::passes::{Dumps, Ir, Level, RunOptions};
    let mut seen = Vec::new();
    for n in 0..2000 {
        let g = generate(&mut Choices::new(&case_bytes(n)), &Config::default());
        let (Some(module), _) = crate::sema::compile_source(&g.source) else {
            continue;
        };
        let opts = crate::compile::CompileOptions::default();
        let run = RunOptions::default();
        let Ok(Ir::Tensor(m)) =
            crate::compile::run(module, &opts, Level::Tensor, &run, &mut Dumps::default())
        else {
            continue;
        };
        for op in m.funcs.iter().flat_map(|f| &f.ops) {
            let OpKind::Generic(g) = &op.kind;
            if let Some(Schedule::Gemm(s)) = &g.schedule {
                seen.extend(s.epilogue.iter().flatten().copied());
            }
        }
    }
    for step in EpilogueStep::ALL {
        let count = seen.iter().filter(|&&s| s == step).count();
        assert!(count >= 3, "{}: {count} GEMMs", step.name());
    }
}
