//! Transcendental functions (exp, log, tanh, sigmoid) emitted directly as Cranelift IR.
//!
//! Cranelift has no `exp` or `log` instruction, and a libm call costs about 2 ns per element and
//! cannot be vectorised. [`emit`] instead writes a branch-free polynomial approximation into the
//! function being built, for scalars (`f32`, `f64`) and 128-bit vectors (`f32x4`, `f64x2`) alike:
//! every lane runs the same instruction sequence and special cases are handled by selects, so the
//! scalar and vector versions give bit-identical results lane by lane.
//!
//! exp's range reduction and polynomial use fused multiply-adds where the target has them (the
//! caller says so: without FMA a Cranelift `fma` would become a libm call), and plain
//! `fmul`/`fadd` otherwise; log, tanh's kernel and sigmoid's division use plain operations only.
//! Vector constants are `vconst`s, which Cranelift's optimiser hoists out of the innermost loop.
//! The algorithms and their measured errors are documented in `docs/math.md`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{types, ConstantData, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

#[cfg(test)]
mod tests;

/// A transcendental function that [`emit`] can write as inline IR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transcendental {
    /// The natural exponential `e^x`.
    Exp,
    /// The natural logarithm `ln x`.
    Log,
    /// The hyperbolic tangent.
    Tanh,
    /// The logistic function `1 / (1 + e^-x)`.
    Sigmoid,
}

/// Emits f(x) for x of CLIF type F32, F64, F32X4 or F64X2; returns a value of the same type.
/// `fma`: the target has fused multiply-adds (exp then uses them; the results differ from the
/// unfused code's in the last bit at some inputs, both within the bounds of `docs/math.md`).
///
/// The instructions are appended at the builder's current position; no blocks are created.
///
/// # Panics
///
/// If `x` has any other type. Types come from the compiler itself, never from user input, so
/// this is a bug in the caller.
pub fn emit(builder: &mut FunctionBuilder, f: Transcendental, x: Value, fma: bool) -> Value {
    let ty = builder.func.dfg.value_type(x);
    let p = match ty.lane_type() {
        types::F32 if ty.lane_count() <= 4 => &F32_PARAMS,
        types::F64 if ty.lane_count() <= 2 => &F64_PARAMS,
        _ => panic!("math::emit: unsupported type {ty} (expected f32, f64, f32x4 or f64x2)"),
    };
    let mut e = Emitter {
        b: builder,
        ty,
        p,
        fma,
    };
    match f {
        Transcendental::Exp => e.exp(x),
        Transcendental::Log => e.log(x),
        Transcendental::Tanh => e.tanh(x),
        Transcendental::Sigmoid => e.sigmoid(x),
    }
}

/// `max(a, b)` (or `min` when `!max`) lane by lane for `a`, `b` of type F32X4 or F64X2, with
/// the loop IR's semantics: NaN when either lane is NaN, `max(-0, +0) = +0` and
/// `min(-0, +0) = -0`. For x86-64, where `maxps`/`minps` return their second operand when the
/// lanes are unordered or both zero: both operand orders, their AND (max: a zero of either
/// sign ANDed with +0 is +0) or OR (min: -0 wins), then OR with the unordered mask, which makes
/// every bit of a NaN lane 1 (a NaN; the payload is not canonicalised, as the IR does not
/// promise one). Five instructions against the eight of Cranelift's `fmax`/`fmin` lowering,
/// which also canonicalises NaN payloads; measured in a row softmax (`docs/performance.md`).
/// On other targets `fmax`/`fmin` are single instructions with these semantics: use them.
pub fn x86_vector_max_min(builder: &mut FunctionBuilder, max: bool, a: Value, b: Value) -> Value {
    let ty = builder.func.dfg.value_type(a);
    // `bitselect(fcmp lt y x, x, y)` is Cranelift's x86-64 pattern for `maxps x, y`, and
    // `bitselect(fcmp lt x y, x, y)` for `minps x, y`.
    let mut native = |x: Value, y: Value| {
        let cond = if max {
            builder.ins().fcmp(FloatCC::LessThan, y, x)
        } else {
            builder.ins().fcmp(FloatCC::LessThan, x, y)
        };
        let mask = builder.ins().bitcast(ty, MemFlagsData::new(), cond);
        builder.ins().bitselect(mask, x, y)
    };
    let ab = native(a, b);
    let ba = native(b, a);
    let both = if max {
        builder.ins().band(ab, ba)
    } else {
        builder.ins().bor(ab, ba)
    };
    let unordered = builder.ins().fcmp(FloatCC::Unordered, a, b);
    let nan = builder.ins().bitcast(ty, MemFlagsData::new(), unordered);
    builder.ins().bor(both, nan)
}

/// The constants that differ between single and double precision.
struct Params {
    /// Explicit mantissa bits (23 or 52).
    mant_bits: i64,
    /// Exponent bias (127 or 1023).
    bias: i64,
    /// `1.5 * 2^mant_bits`: adding it rounds to an integer, which then sits in the low
    /// mantissa bits (the classic shifter trick; valid for |y| < 2^(mant_bits-1)).
    shifter: f64,
    /// exp's input is clamped to [exp_lo, exp_hi]: beyond them the result is 0 or inf anyway,
    /// and inside them the exponent arithmetic cannot wrap.
    exp_lo: f64,
    exp_hi: f64,
    /// ln 2 split for Cody-Waite range reduction in exp and for adding k ln 2 in log: `ln2_hi`
    /// has few significant bits so that `n * ln2_hi` is exact for every reachable n.
    ln2_hi: f64,
    ln2_lo: f64,
    /// exp(r) ≈ 1 + r + r² P(r) on |r| ≤ ln2/2; P's coefficients, highest degree first.
    exp_poly: &'static [f64],
    /// Smallest normal number, and the power of two that scales subnormals into the normal range.
    min_normal: f64,
    subnormal_scale_log2: i64,
    /// Bits of sqrt(1/2) (rounded): log's mantissa is reduced to [sqrt(1/2), sqrt(2)).
    sqrt_half_bits: i64,
    /// ln 2 split for log (the low part is added first, to the small terms).
    /// log's kernel coefficients, highest degree first (see [`Emitter::log`]).
    log_poly: &'static [f64],
    /// Below this |x|, tanh uses its odd polynomial/rational kernel.
    tanh_small: f64,
    /// tanh(x) ≈ x + x z P(z) / Q(z), z = x²; Q is monic and empty for single precision.
    tanh_p: &'static [f64],
    tanh_q: &'static [f64],
}

/// Single precision. exp's P is a degree-4 minimax fit of (e^r - 1 - r)/r² relative to e^r on
/// |r| ≤ ln2/2 (approximation error 3.1e-9, a twentieth of an ulp; Cephes' `expf` uses degree
/// 5), tanh's coefficients are Cephes' `tanhf`, log is Cephes' `logf` kernel with musl's
/// branch-free mantissa reduction.
static F32_PARAMS: Params = Params {
    mant_bits: 23,
    bias: 127,
    shifter: 12_582_912.0,
    exp_lo: -104.0,
    exp_hi: 89.0,
    ln2_hi: 0.693_359_375,
    ln2_lo: -2.121_944_4e-4,
    exp_poly: &[
        1.381_466_098_227_224_6e-3,
        8.368_745_563_849_717e-3,
        4.166_838_864_024_54e-2,
        1.666_652_039_474_110_8e-1,
        4.999_999_344_098_746e-1,
    ],
    min_normal: f32::MIN_POSITIVE as f64,
    subnormal_scale_log2: 24,
    sqrt_half_bits: 0x3f35_04f3,
    log_poly: &[
        7.037_683_629_2e-2,
        -1.151_461_031_0e-1,
        1.167_699_874_0e-1,
        -1.242_014_084_6e-1,
        1.424_932_278_7e-1,
        -1.666_805_766_5e-1,
        2.000_071_476_5e-1,
        -2.499_999_399_3e-1,
        3.333_333_117_4e-1,
    ],
    tanh_small: 0.625,
    tanh_p: &[
        -5.704_988_727_45e-3,
        2.063_908_879_54e-2,
        -5.373_971_555_31e-2,
        1.333_144_220_36e-1,
        -3.333_328_194_22e-1,
    ],
    tanh_q: &[],
};

/// Double precision. exp uses the Taylor series to degree 13 (truncation error below 5e-18 on
/// |r| ≤ ln2/2), log is fdlibm's `__ieee754_log` kernel, tanh is Cephes' `tanh` rational.
static F64_PARAMS: Params = Params {
    mant_bits: 52,
    bias: 1023,
    shifter: 6_755_399_441_055_744.0,
    exp_lo: -746.0,
    exp_hi: 710.0,
    ln2_hi: 6.931_471_803_691_238e-1,
    ln2_lo: 1.908_214_929_270_587_7e-10,
    exp_poly: &[
        1.0 / 6_227_020_800.0,
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ],
    min_normal: f64::MIN_POSITIVE,
    subnormal_scale_log2: 54,
    sqrt_half_bits: 0x3fe6_a09e_667f_3bcd,
    log_poly: &[
        1.479_819_860_511_658_6e-1,
        1.531_383_769_920_937_3e-1,
        1.818_357_216_161_805e-1,
        2.222_219_843_214_978_4e-1,
        2.857_142_874_366_239e-1,
        3.999_999_999_940_942e-1,
        6.666_666_666_666_735e-1,
    ],
    tanh_small: 0.625,
    tanh_p: &[
        -9.643_991_794_250_523e-1,
        -9.928_772_310_019_185e1,
        -1.614_687_684_417_084_5e3,
    ],
    tanh_q: &[
        1.128_116_784_916_329_3e2,
        2.235_488_390_601_004_5e3,
        4.844_063_053_251_255e3,
    ],
};

/// Writes instructions of one float type `ty` (scalar or vector) and its same-width integer
/// twin; the helpers hide the scalar/vector differences in constants and selects.
struct Emitter<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    ty: Type,
    p: &'static Params,
    /// Whether exp may use `fma` (the target has it).
    fma: bool,
}

impl Emitter<'_, '_> {
    fn ity(&self) -> Type {
        self.ty.as_int()
    }

    /// A splat constant of type `ty` (float or integer) whose every lane has the bits `bits`.
    fn splat_bits(&mut self, ty: Type, bits: u64) -> Value {
        let lane_bytes = ty.lane_type().bytes() as usize;
        let lane = &bits.to_le_bytes()[..lane_bytes];
        let data: Vec<u8> = (0..ty.lane_count())
            .flat_map(|_| lane.iter().copied())
            .collect();
        let c = self.b.func.dfg.constants.insert(ConstantData::from(data));
        self.b.ins().vconst(ty, c)
    }

    /// The float constant `v` (rounded to the lane precision), splatted over the lanes.
    fn fc(&mut self, v: f64) -> Value {
        let single = self.ty.lane_type() == types::F32;
        match (self.ty.is_vector(), single) {
            (false, true) => self.b.ins().f32const(Ieee32::with_float(v as f32)),
            (false, false) => self.b.ins().f64const(Ieee64::with_float(v)),
            (true, true) => self.splat_bits(self.ty, u64::from((v as f32).to_bits())),
            (true, false) => self.splat_bits(self.ty, v.to_bits()),
        }
    }

    /// The integer constant `v` (wrapped to the lane width), splatted over the integer lanes.
    fn ic(&mut self, v: i64) -> Value {
        let ity = self.ity();
        let bits = if ity.lane_type() == types::I32 {
            u64::from(v as u32)
        } else {
            v as u64
        };
        if ity.is_vector() {
            self.splat_bits(ity, bits)
        } else {
            self.b.ins().iconst(ity, bits as i64)
        }
    }

    fn as_int_bits(&mut self, x: Value) -> Value {
        let ity = self.ity();
        self.b.ins().bitcast(ity, MemFlagsData::new(), x)
    }

    fn as_float_bits(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }

    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }

    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }

    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }

    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }

    /// `a * b + c`: one `fma` where the target has it, else a multiply and an add.
    fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let t = self.mul(a, b);
            self.add(t, c)
        }
    }

    /// `a * c1 + c2` for float constants c1, c2.
    fn mul_add_c(&mut self, a: Value, c1: f64, c2: f64) -> Value {
        let c1 = self.fc(c1);
        let c2 = self.fc(c2);
        self.mul_add(a, c1, c2)
    }

    /// `a + c` for a float constant c.
    fn addc(&mut self, a: Value, c: f64) -> Value {
        let c = self.fc(c);
        self.add(a, c)
    }

    /// `a * c` for a float constant c.
    fn mulc(&mut self, a: Value, c: f64) -> Value {
        let c = self.fc(c);
        self.mul(a, c)
    }

    /// `if cmp(a, b) { t } else { f }` lane by lane. Vectors use `bitselect` on the compare
    /// mask, written in the shape Cranelift's x86-64 backend turns into `minps`/`maxps`.
    fn select_cmp(&mut self, cc: FloatCC, a: Value, b: Value, t: Value, f: Value) -> Value {
        let cond = self.b.ins().fcmp(cc, a, b);
        if self.ty.is_vector() {
            let mask = self.as_float_bits(cond);
            self.b.ins().bitselect(mask, t, f)
        } else {
            self.b.ins().select(cond, t, f)
        }
    }

    /// Horner evaluation of the polynomial with coefficients `coeffs` (highest degree first);
    /// `fused`: each step is a [`Emitter::mul_add`].
    fn poly(&mut self, x: Value, coeffs: &[f64], fused: bool) -> Value {
        let (&first, rest) = coeffs
            .split_first()
            .unwrap_or_else(|| panic!("math::poly: empty coefficient list"));
        let mut acc = self.fc(first);
        for &c in rest {
            acc = if fused {
                let c = self.fc(c);
                self.mul_add(acc, x, c)
            } else {
                let t = self.mul(acc, x);
                self.addc(t, c)
            };
        }
        acc
    }

    /// e^x. n = round(x / ln 2) by the shifter trick, r = x - n ln 2 (Cody-Waite), e^r by the
    /// polynomial, then the result is scaled by 2^n as 2^n1 * 2^n2 with n1 = round(n/2): each
    /// factor is a normal power of two, so results that overflow, underflow or are subnormal
    /// come out right with a single final rounding. With FMA the reduction and the Horner steps
    /// are fused (the last step, `r + r² P(r)`, stays unfused: fused it costs f32 up to 1.0 ulp).
    fn exp(&mut self, x: Value) -> Value {
        let p = self.p;
        let hi = self.fc(p.exp_hi);
        let x = self.select_cmp(FloatCC::LessThan, hi, x, hi, x);
        let lo = self.fc(p.exp_lo);
        let x = self.select_cmp(FloatCC::LessThan, x, lo, lo, x);
        // NaN survives both clamps (the compares are false) and then every step below.
        let t = self.mul_add_c(x, std::f64::consts::LOG2_E, p.shifter);
        let shifter = self.fc(p.shifter);
        let n = self.sub(t, shifter);
        let t1 = self.mul_add_c(n, 0.5, p.shifter);
        let r = if self.fma {
            let minus_hi = self.fc(-p.ln2_hi);
            let minus_lo = self.fc(-p.ln2_lo);
            let r = self.mul_add(n, minus_hi, x);
            self.mul_add(n, minus_lo, r)
        } else {
            let nh = self.mulc(n, p.ln2_hi);
            let r = self.sub(x, nh);
            let nl = self.mulc(n, p.ln2_lo);
            self.sub(r, nl)
        };
        let pr = self.poly(r, p.exp_poly, self.fma);
        let r2 = self.mul(r, r);
        let q = self.mul(pr, r2);
        let q = self.add(q, r);
        let er = self.addc(q, 1.0);
        // The shifted values hold n and n1 in their low bits: 2^n1 has exponent field
        // n1 + bias = bits(t1) - bits(shifter) + bias, and 2^n2 has n - n1 + bias.
        let ti = self.as_int_bits(t);
        let t1i = self.as_int_bits(t1);
        let shifter_bits = self.lane_bits(p.shifter);
        let c1 = self.ic(p.bias - shifter_bits);
        let e1 = self.b.ins().iadd(t1i, c1);
        let e2 = self.b.ins().isub(ti, t1i);
        let cb = self.ic(p.bias);
        let e2 = self.b.ins().iadd(e2, cb);
        let s1 = self.exponent_to_float(e1);
        let s2 = self.exponent_to_float(e2);
        let y = self.mul(er, s1);
        self.mul(y, s2)
    }

    /// The float whose exponent field is `e` (an in-range biased exponent) and mantissa zero.
    fn exponent_to_float(&mut self, e: Value) -> Value {
        let shift = self.b.ins().iconst(types::I32, self.p.mant_bits);
        let bits = self.b.ins().ishl(e, shift);
        self.as_float_bits(bits)
    }

    /// ln x. Subnormals are first scaled into the normal range. x = 2^k m with m in
    /// [sqrt(1/2), sqrt(2)) by integer arithmetic (musl's trick: bias the bits so that the
    /// exponent field rounds at sqrt(1/2)), f = m - 1, ln(1 + f) by the kernel, plus k ln 2.
    fn log(&mut self, x0: Value) -> Value {
        let p = self.p;
        let min_normal = self.fc(p.min_normal);
        let scale = self.fc((p.subnormal_scale_log2 as f64).exp2());
        let one = self.fc(1.0);
        let factor = self.select_cmp(FloatCC::LessThan, x0, min_normal, scale, one);
        let x = self.mul(x0, factor);
        let zero = self.fc(0.0);
        let adj = self.fc(p.subnormal_scale_log2 as f64);
        let k_adj = self.select_cmp(FloatCC::LessThan, x0, min_normal, adj, zero);

        let one_bits = self.lane_bits(1.0);
        let xi = self.as_int_bits(x);
        let c = self.ic(one_bits - p.sqrt_half_bits);
        let ix = self.b.ins().iadd(xi, c);
        // k + bias is the exponent field of ix; it becomes a float without an int-to-float
        // conversion (none exists for i64x2 on x86-64) by placing it under the shifter's
        // exponent: 2^mant_bits + field, exactly.
        let shift = self.b.ins().iconst(types::I32, p.mant_bits);
        let field = self.b.ins().ushr(ix, shift);
        let two_pow_mant = (p.mant_bits as f64).exp2();
        let tpc = self.ic(self.lane_bits(two_pow_mant));
        let kb = self.b.ins().bor(field, tpc);
        let kf = self.as_float_bits(kb);
        let k = self.addc(kf, -(two_pow_mant + p.bias as f64));
        let k = self.sub(k, k_adj);
        let mant_mask = self.ic((1i64 << p.mant_bits) - 1);
        let m = self.b.ins().band(ix, mant_mask);
        let sh = self.ic(p.sqrt_half_bits);
        let m = self.b.ins().iadd(m, sh);
        let m = self.as_float_bits(m);
        let f = self.addc(m, -1.0);

        let r = if self.ty.lane_type() == types::F32 {
            // Cephes logf: ln(1+f) = f - f²/2 + f³ P(f).
            let z = self.mul(f, f);
            let pf = self.poly(f, p.log_poly, false);
            let fz = self.mul(f, z);
            let y = self.mul(fz, pf);
            let kl = self.mulc(k, p.ln2_lo);
            let y = self.add(y, kl);
            let hz = self.mulc(z, -0.5);
            let y = self.add(y, hz);
            let r = self.add(f, y);
            let kh = self.mulc(k, p.ln2_hi);
            self.add(r, kh)
        } else {
            // fdlibm: s = f/(2+f), ln(1+f) = f - f²/2 + s (f²/2 + R(s²)) with R(z) = z P(z).
            let two_f = self.addc(f, 2.0);
            let s = self.div(f, two_f);
            let z = self.mul(s, s);
            let pz = self.poly(z, p.log_poly, false);
            let rz = self.mul(z, pz);
            let ff = self.mul(f, f);
            let hfsq = self.mulc(ff, 0.5);
            let t = self.add(hfsq, rz);
            let t = self.mul(s, t);
            let kl = self.mulc(k, p.ln2_lo);
            let t = self.add(t, kl);
            let t = self.sub(t, hfsq);
            let t = self.add(t, f);
            let kh = self.mulc(k, p.ln2_hi);
            self.add(t, kh)
        };

        // Special cases: +inf and NaN give x itself, negatives NaN, ±0 -inf.
        let inf = self.fc(f64::INFINITY);
        let r = self.select_cmp(FloatCC::UnorderedOrGreaterThanOrEqual, x0, inf, x0, r);
        let nan = self.fc(f64::NAN);
        let r = self.select_cmp(FloatCC::LessThan, x0, zero, nan, r);
        let ninf = self.fc(f64::NEG_INFINITY);
        self.select_cmp(FloatCC::Equal, x0, zero, ninf, r)
    }

    /// The bits of `v` rounded to the lane precision, as an integer constant operand.
    fn lane_bits(&self, v: f64) -> i64 {
        if self.ty.lane_type() == types::F32 {
            i64::from((v as f32).to_bits())
        } else {
            v.to_bits() as i64
        }
    }

    /// tanh x = sign(x) tanh|x|. Small |x|: the odd kernel a + a z P(z)/Q(z) with a = |x|,
    /// z = a² (no cancellation near 0). Otherwise 1 - 2/(e^(2a) + 1); e^(2a) = inf gives
    /// exactly 1. The sign is copied last so that tanh(-0) = -0.
    fn tanh(&mut self, x: Value) -> Value {
        let p = self.p;
        let a = self.b.ins().fabs(x);
        let z = self.mul(a, a);
        let pz = self.poly(z, p.tanh_p, false);
        let ratio = if p.tanh_q.is_empty() {
            pz
        } else {
            let qz = self.monic_poly(z, p.tanh_q);
            self.div(pz, qz)
        };
        let az = self.mul(a, z);
        let corr = self.mul(az, ratio);
        let small = self.add(a, corr);

        let a2 = self.add(a, a);
        let e = self.exp(a2);
        let e1 = self.addc(e, 1.0);
        let two = self.fc(2.0);
        let q = self.div(two, e1);
        let one = self.fc(1.0);
        let large = self.sub(one, q);
        let bound = self.fc(p.tanh_small);
        let r = self.select_cmp(FloatCC::LessThan, a, bound, small, large);
        self.copysign(r, x)
    }

    /// Evaluates the monic polynomial z^n + c[0] z^(n-1) + ... + c[n-1] by Horner's rule.
    fn monic_poly(&mut self, z: Value, coeffs: &[f64]) -> Value {
        let mut acc = z;
        for (i, &c) in coeffs.iter().enumerate() {
            acc = self.addc(acc, c);
            if i + 1 < coeffs.len() {
                acc = self.mul(acc, z);
            }
        }
        acc
    }

    /// |a| with the sign of s, by bit operations (x86-64 has no vector `fcopysign` lowering).
    fn copysign(&mut self, a: Value, s: Value) -> Value {
        let sign = self.fc(-0.0);
        let sbits = self.b.ins().band(s, sign);
        self.b.ins().bor(a, sbits)
    }

    /// sigmoid x = 1/(1 + e^-|x|) for x ≥ 0 and e^-|x|/(1 + e^-|x|) for x < 0: the exponential
    /// never overflows and the negative tail keeps full relative accuracy down to subnormals.
    fn sigmoid(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let na = self.b.ins().fneg(a);
        let e = self.exp(na);
        let den = self.addc(e, 1.0);
        let zero = self.fc(0.0);
        let one = self.fc(1.0);
        let num = self.select_cmp(FloatCC::LessThan, x, zero, e, one);
        self.div(num, den)
    }
}
