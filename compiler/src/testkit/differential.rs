//! The differential oracle: a kernel compiled in every way the compiler can compile it, called
//! through its C ABI entry point on arguments laid out at random, must compute what the
//! reference interpreter computes.
//!
//! For each case: the interpreter runs once on the logical inputs; then, for each
//! [`Variant`] (every optimisation level, and the default level with each pass left out in
//! turn), the kernel is compiled and called with inputs and outputs in random
//! layouts (padding, permuted and reversed axes, stride-0 input axes). The call must return
//! `EINC_OK`, leave every input buffer and every gap of every output buffer untouched, and
//! produce the interpreter's values:
//! - integers exactly (both sides wrap the same way);
//! - floats normwise: `|got - want| <= tol * max(1, max |want|)` over the finite elements of
//!   each output, with `tol` = [`F64_TOLERANCE`] when the whole computation is in `f64`, else
//!   [`F32_TOLERANCE`]; NaN must meet NaN and an infinity the same infinity.
//!
//! Summation order is the only permitted difference for finite values (`docs/schedules.md`),
//! and the generator keeps programs numerically tame ([`super::program`]), so the bounds are
//! tight enough to see any indexing error. Non-finite values are compared exactly at `-O0`
//! only. The optimising levels regroup products (`canonicalize`, `contraction-path`) and drop
//! factors that are zero (`delta-elim`, `eps-expand`), which is exact for finite values but
//! moves where `inf * 0` and `inf - inf` arise (`docs/passes.md`): `(Σ_a x_a)(Σ_b y_b)` is
//! NaN where `Σ_ab x_a y_b` over an empty `b` is 0. So when non-finite values are in play (an
//! input holds one, the program has an infinite constant such as a `where` mask's `-inf`, or
//! some extent is 0, so that a `max` over no elements is -inf), the optimising levels are
//! compared only where both results are finite.

use super::choices::{random_bytes, shrink_bytes, Choices};
use super::layout::{bits, random_layout, take, zeros, Placed};
use super::program::{generate, Config, Generated, KERNEL};
use crate::codegen::{jit_compile_with, JitProgram, UkernelIsa};
use crate::compile::{self, CompileOptions, OptLevel};
use crate::interp;
use crate::ir::tensor::visit::any_node;
use crate::ir::tensor::{Expr, Extent, Function, Module, OpKind};
use crate::passes::{Dumps, Ir, Level, RunOptions};
use crate::rng::Rng;
use einc_runtime::abi::{self, status};
use einc_runtime::array::for_each_index;
use einc_runtime::{Array, Buffer, DType, Scalar};

/// Normwise tolerance for `f32` results (relative to the largest finite magnitude, at least 1).
pub const F32_TOLERANCE: f64 = 1e-4;
/// Normwise tolerance for `f64` results.
pub const F64_TOLERANCE: f64 = 1e-11;

/// One way of compiling a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// Shown in failures, e.g. `-O2` or `-O2 without dce`.
    pub name: String,
    /// What [`compile::run`] is given.
    pub options: CompileOptions,
}

/// Every way of compiling that the differential tests compare: each optimisation level, and
/// the default level with each of its passes left out in turn (`compile::pass_list`), without
/// two variants that run the same passes; then the default level with each kind of
/// micro-kernel the host runs other than its default ([`UkernelIsa`]: the wide path forced on
/// and off). New passes join by being listed in `compile.rs`.
pub fn variants() -> Vec<Variant> {
    let mut out: Vec<Variant> = Vec::new();
    let default_wide = CompileOptions::default().ukernel_plan().ok().map(|p| p.isa);
    let other_ukernels: Vec<Variant> = UkernelIsa::ALL
        .into_iter()
        .filter(|w| Some(*w) != default_wide && w.runs_on_host())
        .map(|w| Variant {
            name: format!("-O2 with {w} micro-kernels"),
            options: CompileOptions {
                ukernels: Some(w),
                ..CompileOptions::default()
            },
        })
        .collect();
    let mut push = |v: Variant| {
        let passes = compile::pass_list(&v.options);
        if !out.iter().any(|o| compile::pass_list(&o.options) == passes) {
            out.push(v);
        }
    };
    for level in OptLevel::ALL.into_iter().rev() {
        let options = CompileOptions {
            level,
            ..CompileOptions::default()
        };
        push(Variant {
            name: format!("-O{}", level.name()),
            options,
        });
    }
    let default = CompileOptions::default();
    for pass in compile::pass_list(&default) {
        let name = pass.split('{').next().unwrap_or(&pass).to_string();
        if name == "lower-to-loops" {
            continue;
        }
        push(Variant {
            name: format!("-O{} without {name}", default.level.name()),
            options: CompileOptions {
                disabled: vec![name],
                ..CompileOptions::default()
            },
        });
    }
    out.extend(other_ukernels);
    out
}

/// The default level with the `schedule` pass choosing a random legal schedule for every op
/// (`schedule{random=SEED}`, `docs/schedules.md`): schedules change speed, never meaning.
pub fn random_schedules(seed: u64) -> Variant {
    let default = CompileOptions::default();
    let passes: Vec<String> = compile::pass_list(&default)
        .into_iter()
        .map(|p| {
            if p == "schedule" {
                format!("schedule{{random={seed}}}")
            } else {
                p
            }
        })
        .collect();
    assert!(
        passes.iter().any(|p| p.starts_with("schedule{")),
        "the default pipeline has no schedule pass: {passes:?}"
    );
    Variant {
        name: format!("-O{} with schedule{{random={seed}}}", default.level.name()),
        options: CompileOptions {
            pipeline: Some(passes.join(",")),
            ..default
        },
    }
}

/// [`variants`], and `count` variants with random schedules seeded from `seed`.
pub fn variants_with_random_schedules(seed: u64, count: u64) -> Vec<Variant> {
    let mut out = variants();
    // `random=0` means off: seeds start at 1.
    let first = seed.wrapping_mul(count).wrapping_add(1);
    out.extend((0..count).map(|n| random_schedules(first.wrapping_add(n).max(1))));
    out
}

/// Compiles `module` as `variant` says, verifying the IR after every pass.
pub fn compile(module: &Module, variant: &Variant) -> Result<JitProgram, String> {
    let run = RunOptions {
        verify_each: true,
        ..RunOptions::default()
    };
    let ir = compile::run(
        module.clone(),
        &variant.options,
        Level::Loop,
        &run,
        &mut Dumps::default(),
    )
    .map_err(|e| e.to_string())?;
    let Ir::Loop(loops) = ir else {
        return Err("the pipeline does not end at loop IR".into());
    };
    let wide = variant
        .options
        .ukernel_plan()
        .map_err(|e| e.to_string())?
        .isa;
    jit_compile_with(&loops, wide).map_err(|e| e.to_string())
}

/// Why a case failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The variant that failed, or `None` before any was compiled (the source was rejected,
    /// or the interpreter failed).
    pub variant: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{v}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn fail(variant: Option<&Variant>, message: impl Into<String>) -> Failure {
    Failure {
        variant: variant.map(|v| v.name.clone()),
        message: message.into(),
    }
}

/// Checks `.ein` source: kernel `kernel`, symbolic dims bound to `dims`, data from `seed`.
pub fn check_source(
    source: &str,
    kernel: &str,
    dims: &[(String, u64)],
    seed: u64,
    variants: &[Variant],
) -> Result<(), Failure> {
    let (module, diags) = crate::sema::compile_source(source);
    let Some(module) = module else {
        let file = crate::diag::SourceFile::new("case.ein", source);
        return Err(fail(
            None,
            format!(
                "sema rejects the program:\n{}",
                crate::diag::render(&diags, &file, false)
            ),
        ));
    };
    check_kernel(&module, kernel, dims, seed, variants)
}

/// Checks kernel `kernel` of a checked module against the interpreter in every variant.
pub fn check_kernel(
    module: &Module,
    kernel: &str,
    dims: &[(String, u64)],
    seed: u64,
    variants: &[Variant],
) -> Result<(), Failure> {
    let func = module
        .func(kernel)
        .ok_or_else(|| fail(None, format!("no kernel `{kernel}`")))?;
    let extent = |e: &Extent| -> Result<usize, Failure> {
        let n = match e {
            Extent::Fixed(n) => Some(*n),
            Extent::Dim(d) => module
                .dim_value(d)
                .or_else(|| dims.iter().find(|(n, _)| n == d).map(|(_, v)| *v)),
        };
        n.map(|n| n as usize)
            .ok_or_else(|| fail(None, format!("no extent for {e:?}")))
    };
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let specials = rng.below(10) == 0;
    // Integer extremes converted to floats make huge terms whose cancellation depends on the
    // summation order: they test wrapping arithmetic in integer-only kernels.
    let int_specials = specials && func.values.iter().all(|v| !v.ty.dtype.is_float());
    let mut inputs: Vec<Placed> = Vec::new();
    for &p in &func.params {
        let ty = &func.value(p).ty;
        let shape = ty.shape.iter().map(extent).collect::<Result<Vec<_>, _>>()?;
        let special = if ty.dtype.is_float() {
            specials
        } else {
            int_specials
        };
        let a = random_array(&mut rng, ty.dtype, &shape, special);
        let layout = random_layout(&mut rng, &shape, true);
        inputs.push(Placed::new(&a, layout));
    }
    let logical: Vec<Array> = inputs.iter().map(Placed::logical).collect();
    // An f64 result computed from f32 values is only as accurate as they are.
    let f32_inside = func.values.iter().any(|v| v.ty.dtype == DType::F32);
    // Where infinities can arise in a tame program: an infinite constant (a `where` mask's
    // `-inf`), and a `max` or `min` over no elements (-inf or inf) when some extent is 0.
    let empty = func
        .values
        .iter()
        .any(|v| v.ty.shape.iter().any(|e| extent(e).is_ok_and(|n| n == 0)));
    let non_finite_in_play = specials || empty || has_infinite_constant(func);
    let want = interp::run(module, kernel, &logical)
        .map_err(|e| fail(None, format!("the interpreter fails: {e}")))?;
    for variant in variants {
        let tolerance = Tolerance {
            f32_inside,
            only_finite: non_finite_in_play && variant.options.level != OptLevel::O0,
        };
        let program = compile(module, variant).map_err(|e| fail(Some(variant), e))?;
        let jit = program
            .kernel(kernel)
            .ok_or_else(|| fail(Some(variant), "the kernel is missing"))?;
        let mut ins = inputs.clone();
        let mut outs: Vec<Placed> = want
            .iter()
            .map(|w| Placed::output(&mut rng, w.dtype(), w.shape()))
            .collect();
        let descriptors: Vec<abi::Tensor> = ins
            .iter_mut()
            .chain(outs.iter_mut())
            .map(Placed::descriptor)
            .collect();
        // SAFETY: every descriptor points into a buffer of `ins` or `outs` that covers every
        // element its layout reaches; nothing else touches them during the call.
        let code = unsafe { (jit.entry())(descriptors.as_ptr(), descriptors.len() as i64) };
        if code != status::OK {
            return Err(fail(
                Some(variant),
                format!(
                    "the call returned {code} ({}); input layouts {:?}",
                    status::describe(code),
                    inputs.iter().map(|p| &p.layout).collect::<Vec<_>>()
                ),
            ));
        }
        for (n, (before, after)) in inputs.iter().zip(&ins).enumerate() {
            if !same_bits(&before.buffer, &after.buffer) {
                return Err(fail(Some(variant), format!("input {n} was written")));
            }
        }
        for (n, (out, w)) in outs.iter().zip(&want).enumerate() {
            out.check_gaps()
                .map_err(|e| fail(Some(variant), format!("output {n}: {e}")))?;
            compare(&out.logical(), w, tolerance).map_err(|e| {
                fail(
                    Some(variant),
                    format!(
                        "output {n} (laid out as {:?}, inputs as {:?}): {e}",
                        out.layout,
                        inputs.iter().map(|p| &p.layout).collect::<Vec<_>>()
                    ),
                )
            })?;
        }
    }
    Ok(())
}

/// The shapes of `kernel`'s inputs: fixed extents and the dims the module fixes as they are,
/// every other dim bound by `bind(name)`, called at each occurrence in argument order.
pub fn input_shapes(
    kernel: &crate::api::Kernel,
    bind: &mut dyn FnMut(&str) -> usize,
) -> Vec<Vec<usize>> {
    let dims = &kernel.signature().dims;
    kernel
        .inputs()
        .iter()
        .map(|a| {
            a.shape
                .iter()
                .map(|e| match e {
                    Extent::Fixed(n) => *n as usize,
                    Extent::Dim(d) => {
                        match dims.iter().find(|x| &x.name == d).and_then(|x| x.value) {
                            Some(n) => n as usize,
                            None => bind(d),
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// A random C-order array: floats in [-1, 1] with three decimals, integers in [-3, 3]; with
/// `specials`, one element in eight is an extreme value instead (±0, ±inf, NaN, the smallest
/// subnormals; the integer minimum and maximum).
pub fn random_array(rng: &mut Rng, dtype: DType, shape: &[usize], specials: bool) -> Array {
    let mut a = zeros(dtype, shape);
    for_each_index(shape, |i| {
        let special = specials && rng.below(8) == 0;
        let v = match (dtype.is_float(), special) {
            (true, false) => Scalar::F64(rng.below(2001) as f64 / 1000.0 - 1.0),
            (false, false) => Scalar::I64(rng.below(7) as i64 - 3),
            (true, true) => {
                let tiny = match dtype {
                    DType::F32 => f64::from(f32::from_bits(1)),
                    _ => f64::from_bits(1),
                };
                // No huge finite values: sums that overflow depend on the summation order.
                let all = [
                    0.0,
                    -0.0,
                    f64::INFINITY,
                    -f64::INFINITY,
                    f64::NAN,
                    tiny,
                    -tiny,
                ];
                Scalar::F64(all[rng.below(all.len())])
            }
            (false, true) => {
                let (min, max) = match dtype {
                    DType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                Scalar::I64([min, max, -1][rng.below(3)])
            }
        };
        a.set(i, v.cast(dtype));
    });
    a
}

/// How strictly [`compare`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tolerance {
    /// Some value of the computation is `f32`, so `f64` results get the `f32` tolerance.
    pub f32_inside: bool,
    /// Only elements where both results are finite are compared (non-finite values were in
    /// play and the passes regrouped products; see the module documentation).
    pub only_finite: bool,
}

impl Tolerance {
    /// The comparison for a computation with `f32` values in it.
    pub const F32: Tolerance = Tolerance {
        f32_inside: true,
        only_finite: false,
    };
}

/// Compares a result with the interpreter's (see the module documentation).
pub fn compare(got: &Array, want: &Array, tolerance: Tolerance) -> Result<(), String> {
    if got.dtype() != want.dtype() || got.shape() != want.shape() {
        return Err(format!(
            "{}{:?} where the interpreter gives {}{:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    let tol = match want.dtype() {
        DType::F64 if !tolerance.f32_inside => F64_TOLERANCE,
        _ => F32_TOLERANCE,
    };
    let mut scale: f64 = 1.0;
    for_each_index(want.shape(), |i| {
        let w = want.get(i).to_f64();
        if w.is_finite() {
            scale = scale.max(w.abs());
        }
    });
    let mut first = None;
    for_each_index(want.shape(), |i| {
        if first.is_some() {
            return;
        }
        let (g, w) = (got.get(i), want.get(i));
        let ok = if want.dtype().is_float() {
            let (g, w) = (g.to_f64(), w.to_f64());
            (w.is_nan() && g.is_nan())
                || (tolerance.only_finite && !(g.is_finite() && w.is_finite()))
                || g == w
                || (g.is_finite() && w.is_finite() && (g - w).abs() <= tol * scale)
        } else {
            bits(g) == bits(w)
        };
        if !ok {
            first = Some(format!(
                "at {i:?} the kernel gives {g}, the interpreter {w}"
            ));
        }
    });
    first.map_or(Ok(()), Err)
}

/// Whether some op's body holds an infinite or NaN constant.
fn has_infinite_constant(f: &Function) -> bool {
    f.ops.iter().any(|op| {
        let OpKind::Generic(g) = &op.kind;
        any_node(
            &g.body,
            &mut |e| matches!(e, Expr::Lit(s) if s.dtype().is_float() && !s.to_f64().is_finite()),
        )
    })
}

/// Whether two buffers hold the same bits.
fn same_bits(a: &Buffer, b: &Buffer) -> bool {
    a.len() == b.len() && (0..a.len()).all(|p| bits(take(a, p)) == bits(take(b, p)))
}

/// A program, the extents of its symbolic dims and the seed of its data: everything a
/// differential check needs, and the content of a regression file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// `.ein` source with a kernel named [`KERNEL`].
    pub source: String,
    /// Values of the symbolic dims.
    pub dims: Vec<(String, u64)>,
    /// Seed of the data and layouts.
    pub seed: u64,
}

impl Case {
    /// The case of a generated program.
    pub fn generated(g: &Generated, seed: u64) -> Case {
        Case {
            source: g.source.clone(),
            dims: g.dims.clone(),
            seed,
        }
    }

    /// Checks the case in every variant.
    pub fn check(&self, variants: &[Variant]) -> Result<(), Failure> {
        check_source(&self.source, KERNEL, &self.dims, self.seed, variants)
    }

    /// The text of a regression file: `# call:` and `# seed:` comment lines, then the source.
    pub fn to_file(&self, note: &str) -> String {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|(n, v)| format!("{n} = {v}"))
            .collect();
        let mut text = String::new();
        for line in note.lines() {
            text.push_str(&format!("# {line}\n"));
        }
        text.push_str(&format!(
            "# call: {}\n# seed: {}\n",
            dims.join(", "),
            self.seed
        ));
        text.push_str(&self.source);
        text
    }

    /// Reads a regression file written by [`Case::to_file`].
    pub fn from_file(text: &str) -> Result<Case, String> {
        let mut dims = Vec::new();
        let mut seed = None;
        for line in text.lines() {
            if let Some(call) = line.strip_prefix("# call:") {
                for d in call.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                    let (n, v) = d.split_once('=').ok_or(format!("bad dim `{d}`"))?;
                    let v = v
                        .trim()
                        .parse()
                        .map_err(|e| format!("bad dim `{d}`: {e}"))?;
                    dims.push((n.trim().to_string(), v));
                }
            } else if let Some(s) = line.strip_prefix("# seed:") {
                seed = Some(s.trim().parse().map_err(|e| format!("bad seed: {e}"))?);
            }
        }
        Ok(Case {
            source: text.to_string(),
            dims,
            seed: seed.ok_or("no `# seed:` line")?,
        })
    }
}

/// The bytes of random case `n` of a batch: spread-out seeds, so neighbouring cases are
/// unrelated.
pub fn case_bytes(n: u64) -> Vec<u8> {
    let mut rng = Rng::new(n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    random_bytes(&mut rng, CASE_BYTES)
}

/// How many decision bytes a random case gets (more than any program uses).
pub const CASE_BYTES: usize = 1024;

/// A failing case reduced to a minimal one.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing case found.
    pub case: Case,
    /// Its failure.
    pub failure: Failure,
    /// Its decision bytes.
    pub bytes: Vec<u8>,
}

/// Shrinks the failing case made from `bytes` (with data seed `seed`): deletes and lowers
/// decision bytes while the program still fails in the same variant, within `budget` checks.
pub fn shrink(
    bytes: &[u8],
    seed: u64,
    config: &Config,
    variants: &[Variant],
    budget: usize,
) -> Option<Shrunk> {
    let run = |b: &[u8]| {
        let g = generate(&mut Choices::new(b), config);
        let case = Case::generated(&g, seed);
        let r = case.check(variants);
        (case, r)
    };
    let (case, first) = run(bytes);
    let failure = first.err()?;
    let mut best = Shrunk {
        case,
        failure,
        bytes: bytes.to_vec(),
    };
    let same = best.failure.variant.clone();
    // Only the variant that failed needs compiling while shrinking.
    let only: Vec<Variant> = variants
        .iter()
        .filter(|v| same.as_ref().is_none_or(|n| n == &v.name))
        .cloned()
        .collect();
    let run = |b: &[u8]| {
        let g = generate(&mut Choices::new(b), config);
        let case = Case::generated(&g, seed);
        let r = case.check(&only);
        (case, r)
    };
    let mut left = budget;
    let small = shrink_bytes(bytes, &mut left, &mut |b| {
        let (case, r) = run(b);
        match r {
            Err(f) if f.variant == same => {
                best = Shrunk {
                    case,
                    failure: f,
                    bytes: b.to_vec(),
                };
                true
            }
            _ => false,
        }
    });
    debug_assert_eq!(small, best.bytes);
    Some(best)
}
