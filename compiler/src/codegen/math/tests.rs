//! Accuracy and consistency tests for the inline transcendental functions: each function is
//! JIT-compiled into a loop over an array, for scalars and for vectors, run over dense sweeps
//! of its domain and compared with Rust's std (libm) in ulps.

use super::{emit, Transcendental};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Type};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Module};
use std::sync::Arc;

use Transcendental::{Exp, Log, Sigmoid, Tanh};

/// `fn(src, dst, n)`: dst[i] = f(src[i]) for i < n, `lanes` elements per iteration.
type MapFn = unsafe extern "C" fn(*const u8, *mut u8, usize);

fn host_isa() -> Arc<dyn cranelift_codegen::isa::TargetIsa> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").unwrap();
    flags.set("is_pic", "false").unwrap();
    cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

fn new_module() -> JITModule {
    JITModule::new(JITBuilder::with_isa(host_isa(), default_libcall_names()))
}

/// Whether exp is emitted with fused multiply-adds: always without, and with them where the
/// host has FMA (without it Cranelift's `fma` would be a libm call, which codegen never emits).
fn fma_modes() -> Vec<bool> {
    let mut modes = vec![false];
    if host_isa().has_native_fma() {
        modes.push(true);
    }
    modes
}

/// Builds the body of `fn(src, dst, n)` applying `f` to `ty`-sized chunks (`fma`: as `emit`).
fn build_map(
    ctx: &mut Context,
    config: TargetFrontendConfig,
    f: Transcendental,
    ty: Type,
    fma: bool,
) {
    let ptr = config.pointer_type();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    let header = b.create_block();
    let body = b.create_block();
    let exit = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.append_block_param(header, ptr);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (src, dst, n) = (params[0], params[1], params[2]);
    let zero = b.ins().iconst(ptr, 0);
    b.ins().jump(header, &[zero.into()]);
    b.switch_to_block(header);
    let i = b.block_params(header)[0];
    let more = b.ins().icmp(IntCC::UnsignedLessThan, i, n);
    b.ins().brif(more, body, &[], exit, &[]);
    b.switch_to_block(body);
    let lane_bytes = i64::from(ty.lane_type().bytes());
    let off = b.ins().imul_imm_s(i, lane_bytes);
    let s = b.ins().iadd(src, off);
    let d = b.ins().iadd(dst, off);
    let flags = MemFlagsData::new().with_notrap();
    let x = b.ins().load(ty, flags, s, 0);
    let y = emit(&mut b, f, x, fma);
    b.ins().store(flags, y, d, 0);
    let next = b.ins().iadd_imm_s(i, i64::from(ty.lane_count()));
    b.ins().jump(header, &[next.into()]);
    b.switch_to_block(exit);
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(config);
}

/// JIT-compiles the map loop for every type in `tys`.
fn compile_maps(module: &mut JITModule, f: Transcendental, tys: &[Type], fma: bool) -> Vec<MapFn> {
    let ptr = module.target_config().pointer_type();
    let mut ids = Vec::new();
    for &ty in tys {
        let mut ctx = module.make_context();
        for _ in 0..3 {
            ctx.func.signature.params.push(AbiParam::new(ptr));
        }
        build_map(&mut ctx, module.target_config(), f, ty, fma);
        let id = module
            .declare_anonymous_function(&ctx.func.signature)
            .unwrap();
        module.define_function(id, &mut ctx).unwrap();
        module.clear_context(&mut ctx);
        ids.push(id);
    }
    module.finalize_definitions().unwrap();
    ids.into_iter()
        .map(|id| {
            let code = module.get_finalized_function(id);
            // SAFETY: the function was just defined with exactly this signature.
            unsafe { std::mem::transmute::<*const u8, MapFn>(code) }
        })
        .collect()
}

/// A float type the tests sweep: the scalar and its 128-bit vector.
trait Lane: Copy + Default + std::fmt::Debug {
    const SCALAR: Type;
    const VECTOR: Type;
    const LANES: usize;
    fn bits(self) -> u64;
    fn is_nan(self) -> bool;
}

impl Lane for f32 {
    const SCALAR: Type = types::F32;
    const VECTOR: Type = types::F32X4;
    const LANES: usize = 4;
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Lane for f64 {
    const SCALAR: Type = types::F64;
    const VECTOR: Type = types::F64X2;
    const LANES: usize = 2;
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Runs `f` over `xs` as scalar code and as vector code, asserts that both agree bit for bit
/// (NaN with NaN), and returns the scalar results (`fma`: as `emit`).
fn run<T: Lane>(f: Transcendental, xs: &[T], fma: bool) -> Vec<T> {
    let mut module = new_module();
    let fns = compile_maps(&mut module, f, &[T::SCALAR, T::VECTOR], fma);
    let mut xs = xs.to_vec();
    xs.resize(xs.len().div_ceil(T::LANES) * T::LANES, T::default());
    let mut out = Vec::new();
    for &g in &fns {
        let mut ys = vec![T::default(); xs.len()];
        // SAFETY: both buffers hold xs.len() elements and the loop reads/writes exactly those.
        unsafe { g(xs.as_ptr().cast(), ys.as_mut_ptr().cast(), xs.len()) };
        out.push(ys);
    }
    let vector = out.pop().unwrap();
    let scalar = out.pop().unwrap();
    for ((x, s), v) in xs.iter().zip(&scalar).zip(&vector) {
        let same = s.bits() == v.bits() || (s.is_nan() && v.is_nan());
        assert!(same, "{f:?}({x:?}): scalar {s:?} but vector {v:?}");
    }
    scalar
}

/// Error of an f32 result against a more precise reference, in units of the f32 ulp at the
/// reference (subnormal ulp below the normal range). inf counts as 2^128, the next value after
/// f32::MAX; NaN must match NaN.
fn ulp_err_f32(got: f32, reference: f64) -> f64 {
    if got.is_nan() || reference.is_nan() {
        return if got.is_nan() && reference.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let clamp = |v: f64| v.clamp(-(128f64.exp2()), 128f64.exp2());
    let (g, r) = (clamp(f64::from(got)), clamp(reference));
    if g == r {
        return 0.0;
    }
    let e = r.abs().log2().floor().clamp(-126.0, 127.0);
    (g - r).abs() / (e - 23.0).exp2()
}

/// Distance between two f64 values in ulps (the number of representable values between them).
fn ulp_err_f64(got: f64, reference: f64) -> f64 {
    if got.is_nan() || reference.is_nan() {
        return if got.is_nan() && reference.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let ordered = |v: f64| {
        let b = v.to_bits() as i64;
        if b < 0 {
            i64::MIN - b
        } else {
            b
        }
    };
    (ordered(got) as i128 - ordered(reference) as i128).unsigned_abs() as f64
}

/// The largest error over `xs`, and an input where it occurs.
fn max_err<T: Lane>(xs: &[T], got: &[T], err: impl Fn(T, T) -> f64) -> (f64, T) {
    let mut worst = (0.0, T::default());
    for (&x, &y) in xs.iter().zip(got) {
        let e = err(x, y);
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    }
    worst
}

/// Inputs for f32: every 1021st bit pattern (all magnitudes and signs), a uniform sweep of
/// [lo, hi] with `n` points, and the special values.
fn inputs_f32(lo: f32, hi: f32, n: usize, extra: &[f32]) -> Vec<f32> {
    let mut xs: Vec<f32> = (0..=u32::MAX).step_by(1021).map(f32::from_bits).collect();
    xs.extend((0..=n).map(|i| lo + (hi - lo) * (i as f32 / n as f32)));
    xs.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::MAX,
        f32::MIN,
        1.0,
        -1.0,
        1e-30,
        -1e-30,
        1e-7,
        -1e-7,
    ]);
    for &e in extra {
        // The value itself and a few neighbours on each side.
        let b = e.to_bits();
        xs.extend((b.saturating_sub(8)..=b.saturating_add(8)).map(f32::from_bits));
    }
    xs
}

/// Inputs for f64: 2^21 bit patterns spread evenly over all of them, a uniform sweep of
/// [lo, hi] with `n` points, and the special values.
fn inputs_f64(lo: f64, hi: f64, n: usize, extra: &[f64]) -> Vec<f64> {
    let step = (u64::MAX >> 21) as usize;
    let mut xs: Vec<f64> = (0..=u64::MAX).step_by(step).map(f64::from_bits).collect();
    xs.extend((0..=n).map(|i| lo + (hi - lo) * (i as f64 / n as f64)));
    xs.extend([
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        1.0,
        -1.0,
        1e-300,
        -1e-300,
        1e-9,
        -1e-9,
    ]);
    for &e in extra {
        let b = e.to_bits();
        xs.extend((b.saturating_sub(8)..=b.saturating_add(8)).map(f64::from_bits));
    }
    xs
}

/// Sweeps `f` over inputs in every FMA mode, checks scalar/vector agreement and returns the
/// max error (`err(x, f(x))`) and an input where it occurs.
fn measure<T: Lane>(f: Transcendental, xs: &[T], err: impl Fn(T, T) -> f64) -> (f64, T) {
    let mut worst = (0.0, T::default());
    for fma in fma_modes() {
        let got = run(f, xs, fma);
        let result = max_err(xs, &got, &err);
        println!(
            "{f:?} {} (fma {fma}): max {:.3} ulp at {:?}",
            T::SCALAR,
            result.0,
            result.1
        );
        if result.0 > worst.0 || result.0.is_nan() {
            worst = result;
        }
    }
    worst
}

/// [`measure`] for f32, against `reference` computed in f64.
fn measure_f32(f: Transcendental, xs: &[f32], reference: fn(f64) -> f64) -> (f64, f32) {
    measure(f, xs, |x, y| ulp_err_f32(y, reference(f64::from(x))))
}

/// [`measure`] for f64.
fn measure_f64(f: Transcendental, xs: &[f64], reference: fn(f64) -> f64) -> (f64, f64) {
    measure(f, xs, |x, y| ulp_err_f64(y, reference(x)))
}

/// sigmoid in f64 with a nearly correctly rounded division: e = exp(-|x|) from libm, 1 + e as
/// an exact sum hi + lo, and the quotient corrected by its residual.
fn sigmoid_ref_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let e = (-x.abs()).exp();
    let num = if x < 0.0 { e } else { 1.0 };
    let hi = 1.0 + e;
    let lo = e - (hi - 1.0);
    let q = num / hi;
    let residual = (-q).mul_add(hi, num) - q * lo;
    q + residual / hi
}

fn sigmoid_ref_f32(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn exp_f32_within_bound() {
    let xs = inputs_f32(
        -104.0,
        89.0,
        1 << 21,
        &[88.722_84, -87.336_55, -103.972_08, -103.278_93, 0.346_573_6],
    );
    let (err, _) = measure_f32(Exp, &xs, f64::exp);
    assert!(err <= 1.0, "exp f32 error {err} ulp");
}

#[test]
fn exp_f64_within_bound() {
    let xs = inputs_f64(
        -746.0,
        710.0,
        1 << 21,
        &[
            709.782_712_893_384,
            -708.396_418_532_264_1,
            -745.133_219_101_941_1,
            -744.44,
        ],
    );
    let (err, _) = measure_f64(Exp, &xs, f64::exp);
    assert!(err <= 1.0, "exp f64 error {err} ulp");
}

#[test]
fn log_f32_within_bound() {
    let xs = inputs_f32(0.0, 4.0, 1 << 21, &[1.0, std::f32::consts::FRAC_1_SQRT_2]);
    let (err, _) = measure_f32(Log, &xs, f64::ln);
    assert!(err <= 1.0, "log f32 error {err} ulp");
}

#[test]
fn log_f64_within_bound() {
    let xs = inputs_f64(0.0, 4.0, 1 << 21, &[1.0, std::f64::consts::FRAC_1_SQRT_2]);
    let (err, _) = measure_f64(Log, &xs, f64::ln);
    assert!(err <= 1.0, "log f64 error {err} ulp");
}

#[test]
fn tanh_f32_within_bound() {
    let xs = inputs_f32(-12.0, 12.0, 1 << 21, &[0.625, -0.625, 9.0, 10.0]);
    let (err, _) = measure_f32(Tanh, &xs, f64::tanh);
    assert!(err <= 2.0, "tanh f32 error {err} ulp");
}

#[test]
fn tanh_f64_within_bound() {
    let xs = inputs_f64(-25.0, 25.0, 1 << 21, &[0.625, -0.625, 19.0, 20.0]);
    let (err, _) = measure_f64(Tanh, &xs, f64::tanh);
    assert!(err <= 2.0, "tanh f64 error {err} ulp");
}

#[test]
fn sigmoid_f32_within_bound() {
    let xs = inputs_f32(-110.0, 20.0, 1 << 21, &[-87.0, -103.0, 16.6, 17.4]);
    let (err, _) = measure_f32(Sigmoid, &xs, sigmoid_ref_f32);
    assert!(err <= 2.5, "sigmoid f32 error {err} ulp");
}

#[test]
fn sigmoid_f64_within_bound() {
    let xs = inputs_f64(-750.0, 40.0, 1 << 21, &[-708.0, -745.0, 36.7, 37.5]);
    let (err, _) = measure_f64(Sigmoid, &xs, sigmoid_ref_f64);
    assert!(err <= 3.0, "sigmoid f64 error {err} ulp");
}

/// Every f32 input when `EINC_MATH_EXHAUSTIVE` is set (the long run of `docs/testing.md`,
/// minutes in release), otherwise every 65,537th bit pattern: each function's scalar and
/// vector code against the f64 libm reference, in chunks so that memory stays small.
#[test]
fn every_f32_input_within_bound() {
    let step = if std::env::var_os("EINC_MATH_EXHAUSTIVE").is_some() {
        1
    } else {
        65_537
    };
    type Reference = fn(f64) -> f64;
    let functions: [(Transcendental, Reference, f64); 4] = [
        (Exp, f64::exp, 1.0),
        (Log, f64::ln, 1.0),
        (Tanh, f64::tanh, 2.0),
        (Sigmoid, sigmoid_ref_f32, 2.5),
    ];
    for ((f, reference, bound), fma) in functions
        .into_iter()
        .flat_map(|g| fma_modes().into_iter().map(move |m| (g, m)))
    {
        let mut module = new_module();
        let fns = compile_maps(&mut module, f, &[types::F32, types::F32X4], fma);
        let (mut worst, mut at, mut count) = (0.0f64, 0.0f32, 0u64);
        let chunk = 1u64 << 24;
        for start in (0..1u64 << 32).step_by(chunk as usize) {
            let xs: Vec<f32> = (start..start + chunk)
                .step_by(step)
                .map(|b| f32::from_bits(b as u32))
                .collect();
            let mut outs = [vec![0.0f32; xs.len()], vec![0.0f32; xs.len()]];
            for (g, ys) in fns.iter().zip(outs.iter_mut()) {
                // SAFETY: both buffers hold xs.len() elements and n is a multiple of 4 (the
                // vector loop's step) no larger than that.
                unsafe { g(xs.as_ptr().cast(), ys.as_mut_ptr().cast(), xs.len() / 4 * 4) };
            }
            for (k, &x) in xs.iter().enumerate().take(xs.len() / 4 * 4) {
                let (s, v) = (outs[0][k], outs[1][k]);
                assert!(
                    s.to_bits() == v.to_bits() || (s.is_nan() && v.is_nan()),
                    "{f:?}({x:e}): scalar {s} but vector {v}"
                );
                let e = ulp_err_f32(s, reference(f64::from(x)));
                if e > worst || e.is_nan() {
                    (worst, at) = (e, x);
                }
                count += 1;
            }
        }
        println!("{f:?} f32 (fma {fma}) over {count} inputs: max {worst:.3} ulp at {at:e}");
        assert!(worst <= bound, "{f:?} f32 error {worst} ulp at {at:e}");
    }
}

/// The special values the documentation promises, checked exactly for both precisions.
#[test]
fn special_values() {
    let inf = f64::INFINITY;
    let cases: &[(Transcendental, f64, f64)] = &[
        (Exp, inf, inf),
        (Exp, -inf, 0.0),
        (Exp, 1000.0, inf),
        (Exp, -1000.0, 0.0),
        (Exp, 0.0, 1.0),
        (Exp, -0.0, 1.0),
        (Log, 0.0, -inf),
        (Log, -0.0, -inf),
        (Log, -1.0, f64::NAN),
        (Log, -inf, f64::NAN),
        (Log, inf, inf),
        (Log, 1.0, 0.0),
        (Tanh, 0.0, 0.0),
        (Tanh, inf, 1.0),
        (Tanh, -inf, -1.0),
        (Tanh, 30.0, 1.0),
        (Tanh, -30.0, -1.0),
        (Sigmoid, inf, 1.0),
        (Sigmoid, -inf, 0.0),
        (Sigmoid, 0.0, 0.5),
        (Sigmoid, 1000.0, 1.0),
        (Sigmoid, -1000.0, 0.0),
    ];
    let same32 = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    let same64 = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for fma in fma_modes() {
        for f in [Exp, Log, Tanh, Sigmoid] {
            let mine: Vec<_> = cases.iter().filter(|c| c.0 == f).collect();
            let mut xs32: Vec<f32> = mine.iter().map(|c| c.1 as f32).collect();
            let mut xs64: Vec<f64> = mine.iter().map(|c| c.1).collect();
            xs32.push(f32::NAN);
            xs64.push(f64::NAN);
            let got32 = run(f, &xs32, fma);
            let got64 = run(f, &xs64, fma);
            for (i, c) in mine.iter().enumerate() {
                assert!(
                    same32(got32[i], c.2 as f32),
                    "{f:?}({}) f32 = {}",
                    c.1,
                    got32[i]
                );
                assert!(same64(got64[i], c.2), "{f:?}({}) f64 = {}", c.1, got64[i]);
            }
            assert!(got32[mine.len()].is_nan(), "{f:?}(NaN) f32");
            assert!(got64[mine.len()].is_nan(), "{f:?}(NaN) f64");
        }
        // tanh is odd, including the sign of zero.
        let z = run(Tanh, &[-0.0f32], fma);
        assert_eq!(z[0].to_bits(), (-0.0f32).to_bits());
        // exp reaches the subnormal range instead of flushing it to zero.
        let sub = run(Exp, &[-100.0f32, -740.0f32], fma);
        assert!(sub[0] > 0.0 && sub[0] < f32::MIN_POSITIVE);
        let sub = run(Exp, &[-740.0f64], fma);
        assert!(sub[0] > 0.0 && sub[0] < f64::MIN_POSITIVE);
        // log of a subnormal input.
        let l = run(Log, &[f32::from_bits(1)], fma);
        assert!((f64::from(l[0]) - (-149.0 * std::f64::consts::LN_2)).abs() < 1e-5);
    }
}

/// Counts the CLIF instructions `emit` writes and the machine instructions they become, for the
/// table in docs/math.md. The bounds only catch accidental blow-ups.
#[test]
fn instruction_counts() {
    let isa = host_isa();
    for f in [Exp, Log, Tanh, Sigmoid] {
        for ty in [types::F32, types::F64, types::F32X4, types::F64X2] {
            let mut ctx = Context::new();
            ctx.func.signature.params.push(AbiParam::new(ty));
            ctx.func.signature.returns.push(AbiParam::new(ty));
            let mut fctx = FunctionBuilderContext::new();
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let x = b.block_params(entry)[0];
            let y = emit(&mut b, f, x, isa.has_native_fma());
            b.ins().return_(&[y]);
            b.finalize(isa.frontend_config());
            let clif = ctx.func.dfg.num_insts() - 1;
            ctx.set_disasm(true);
            let compiled = ctx.compile(&*isa, &mut Default::default()).unwrap();
            let bytes = compiled.code_buffer().len();
            let machine = compiled
                .vcode
                .as_deref()
                .unwrap_or("")
                .lines()
                .filter(|l| l.starts_with("  ") && !l.contains("unwind"))
                .count();
            println!("{f:?} {ty}: {clif} CLIF instructions, ~{machine} machine instructions, {bytes} bytes");
            assert!(clif < 140, "{f:?} {ty}: {clif} CLIF instructions");
        }
    }
}
