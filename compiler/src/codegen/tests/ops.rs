//! Every scalar operation on every dtype it applies to, as scalars and as 128-bit vectors,
//! compared with Rust's own arithmetic (which has the semantics the IR documents: wrapping
//! integers, IEEE floats, saturating `as` casts with NaN → 0).

use super::*;
use crate::ir::loops::{BinaryFn, CmpOp, IndexOp, ReduceKind, UnaryFn};
use einc_runtime::abi::status;
use einc_runtime::Scalar;

/// An element type of the tests.
pub(crate) trait Elem: Copy + std::fmt::Debug + 'static {
    const D: DType;
    /// Equality that treats NaN as equal to NaN (and, for floats, compares bits otherwise
    /// except that it accepts -0 == +0 only where `loose`).
    fn same(self, other: Self) -> bool;
    fn to_f64(self) -> f64;
}

macro_rules! float_elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const D: DType = $d;
            fn same(self, other: Self) -> bool {
                (self.is_nan() && other.is_nan()) || self.to_bits() == other.to_bits()
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}
macro_rules! int_elem {
    ($t:ty, $d:expr) => {
        impl Elem for $t {
            const D: DType = $d;
            fn same(self, other: Self) -> bool {
                self == other
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}
float_elem!(f32, DType::F32);
float_elem!(f64, DType::F64);
int_elem!(i32, DType::I32);
int_elem!(i64, DType::I64);

fn lanes_of(d: DType) -> u32 {
    (16 / d.size_bytes()) as u32
}

/// `Z[i] = f(X[i], Y[i])` for `i < n`, `lanes` elements at a time (n must be a multiple).
/// Buffers are contiguous so that vector accesses are allowed.
fn map_kernel(
    din: DType,
    dout: DType,
    arity: usize,
    lanes: u32,
    f: impl FnOnce(&mut Builder, &[ValueId]) -> ValueId,
) -> Module {
    let mut b = Builder::new("map");
    let ins: Vec<BufferId> = ["X", "Y"][..arity]
        .iter()
        .map(|n| b.buffer(n, din, &[sym("n")], Layout::Contiguous, BufferKind::Input))
        .collect();
    let z = b.buffer(
        "Z",
        dout,
        &[sym("n")],
        Layout::Contiguous,
        BufferKind::Output,
    );
    let zero = b.index(0);
    let n = b.dim("n");
    b.for_loop(zero, n, u64::from(lanes), &[], |b, i, _| {
        let xs: Vec<ValueId> = ins.iter().map(|x| b.load(*x, &[i], lanes)).collect();
        let r = f(b, &xs);
        b.store(z, &[i], r);
        vec![]
    });
    module(&["n"], vec![b.finish()])
}

fn ty(d: DType, lanes: u32) -> Type {
    if lanes == 1 {
        Type::Scalar(d)
    } else {
        Type::Vector(d, lanes)
    }
}

/// Runs `map_kernel` on `inputs` and returns Z.
fn run<I: Elem, O: Elem>(m: &Module, inputs: &[Vec<I>]) -> Vec<O> {
    let k = jit_one(m);
    let n = inputs[0].len();
    let mut data: Vec<Vec<I>> = inputs.to_vec();
    let mut z: Vec<O> = vec![unsafe_zero(); n];
    let mut args: Vec<Arg> = data
        .iter_mut()
        .map(|d| Arg::new(d, I::D, &[n as i64]))
        .collect();
    args.push(Arg::new(&mut z, O::D, &[n as i64]));
    assert_eq!(call(&k, &args), status::OK);
    z
}

fn unsafe_zero<O: Elem>() -> O {
    // SAFETY: every `Elem` is a plain number type for which all-zero bits are a valid value.
    unsafe { std::mem::zeroed() }
}

/// Pads `v` by repeating it until its length is a multiple of 4 (so every vector width fits).
fn padded<T: Clone>(mut v: Vec<T>) -> Vec<T> {
    let mut i = 0;
    while !v.len().is_multiple_of(4) {
        v.push(v[i].clone());
        i += 1;
    }
    v
}

fn check_binary<T: Elem>(op: BinaryFn, xs: &[T], ys: &[T], want: impl Fn(T, T) -> T, tol: f64) {
    let xs = padded(xs.to_vec());
    let ys = padded(ys.to_vec());
    for lanes in [1, lanes_of(T::D)] {
        let m = map_kernel(T::D, T::D, 2, lanes, |b, v| {
            b.assign(ty(T::D, lanes), Op::Binary(op, v[0], v[1]))
        });
        let z: Vec<T> = run(&m, &[xs.clone(), ys.clone()]);
        for i in 0..xs.len() {
            let w = want(xs[i], ys[i]);
            let ok = z[i].same(w)
                || (tol > 0.0 && (z[i].to_f64() - w.to_f64()).abs() <= tol * w.to_f64().abs());
            assert!(
                ok,
                "{op:?} {:?} lanes {lanes}: f({:?}, {:?}) = {:?}, want {w:?}",
                T::D,
                xs[i],
                ys[i],
                z[i]
            );
        }
    }
}

fn check_unary<T: Elem>(op: UnaryFn, xs: &[T], want: impl Fn(T) -> T, tol: f64) {
    let xs = padded(xs.to_vec());
    for lanes in [1, lanes_of(T::D)] {
        let m = map_kernel(T::D, T::D, 1, lanes, |b, v| {
            b.assign(ty(T::D, lanes), Op::Unary(op, v[0]))
        });
        let z: Vec<T> = run(&m, std::slice::from_ref(&xs));
        for i in 0..xs.len() {
            let w = want(xs[i]);
            let ok = z[i].same(w)
                || (tol > 0.0
                    && (z[i].to_f64() - w.to_f64()).abs() <= tol * w.to_f64().abs().max(1e-30));
            assert!(
                ok,
                "{op:?} {:?} lanes {lanes}: f({:?}) = {:?}, want {w:?}",
                T::D,
                xs[i],
                z[i]
            );
        }
    }
}

const F64S: [f64; 12] = [
    0.0,
    -0.0,
    1.5,
    -2.25,
    3.0,
    1e300,
    -1e-300,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    7.0,
    -7.5,
];
const I64S: [i64; 8] = [0, 1, -1, 7, -7, i64::MAX, i64::MIN, 3];
const I32S: [i32; 8] = [0, 1, -1, 7, -7, i32::MAX, i32::MIN, 3];

fn f32s() -> Vec<f32> {
    F64S.iter().map(|x| *x as f32).collect()
}

/// Every (x, y) pair of `v`, as two columns.
fn pairs<T: Copy>(v: &[T]) -> (Vec<T>, Vec<T>) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for a in v {
        for b in v {
            xs.push(*a);
            ys.push(*b);
        }
    }
    (xs, ys)
}

/// numpy's maximum/minimum: NaN if either operand is NaN.
fn nan_max<T: num_like::Float>(a: T, b: T) -> T {
    if a.nan() || b.nan() {
        T::qnan()
    } else if a.gt(b) || (a.eq(b) && b.neg_zero()) {
        a
    } else {
        b
    }
}
fn nan_min<T: num_like::Float>(a: T, b: T) -> T {
    if a.nan() || b.nan() {
        T::qnan()
    } else if a.lt(b) || (a.eq(b) && a.neg_zero()) {
        a
    } else {
        b
    }
}

mod num_like {
    pub trait Float: Copy {
        fn nan(self) -> bool;
        fn qnan() -> Self;
        fn gt(self, o: Self) -> bool;
        fn lt(self, o: Self) -> bool;
        fn eq(self, o: Self) -> bool;
        fn neg_zero(self) -> bool;
    }
    macro_rules! imp {
        ($t:ty) => {
            impl Float for $t {
                fn nan(self) -> bool {
                    self.is_nan()
                }
                fn qnan() -> Self {
                    <$t>::NAN
                }
                fn gt(self, o: Self) -> bool {
                    self > o
                }
                fn lt(self, o: Self) -> bool {
                    self < o
                }
                fn eq(self, o: Self) -> bool {
                    self == o
                }
                fn neg_zero(self) -> bool {
                    self == 0.0 && self.is_sign_negative()
                }
            }
        };
    }
    imp!(f32);
    imp!(f64);
}

#[test]
fn float_binary_ops() {
    let (x, y) = pairs(&F64S);
    check_binary(BinaryFn::Add, &x, &y, |a, b| a + b, 0.0);
    check_binary(BinaryFn::Sub, &x, &y, |a, b| a - b, 0.0);
    check_binary(BinaryFn::Mul, &x, &y, |a, b| a * b, 0.0);
    check_binary(BinaryFn::Div, &x, &y, |a, b| a / b, 0.0);
    check_binary(BinaryFn::Max, &x, &y, nan_max, 0.0);
    check_binary(BinaryFn::Min, &x, &y, nan_min, 0.0);
    check_binary(BinaryFn::Pow, &x, &y, f64::powf, 0.0);
    let (x, y) = pairs(&f32s());
    check_binary(BinaryFn::Add, &x, &y, |a, b| a + b, 0.0);
    check_binary(BinaryFn::Sub, &x, &y, |a, b| a - b, 0.0);
    check_binary(BinaryFn::Mul, &x, &y, |a, b| a * b, 0.0);
    check_binary(BinaryFn::Div, &x, &y, |a, b| a / b, 0.0);
    check_binary(BinaryFn::Max, &x, &y, nan_max, 0.0);
    check_binary(BinaryFn::Min, &x, &y, nan_min, 0.0);
    check_binary(BinaryFn::Pow, &x, &y, f32::powf, 0.0);
}

/// Integer division: truncating, `x / 0 == 0`, `MIN / -1 == MIN`.
fn int_div<T: Copy + PartialEq + Default + std::ops::Div<Output = T>>(
    a: T,
    b: T,
    wrapping: impl Fn(T, T) -> T,
) -> T {
    if b == T::default() {
        T::default()
    } else {
        wrapping(a, b)
    }
}

#[test]
fn integer_binary_ops_wrap_and_never_trap() {
    let (x, y) = pairs(&I64S);
    check_binary(BinaryFn::Add, &x, &y, i64::wrapping_add, 0.0);
    check_binary(BinaryFn::Sub, &x, &y, i64::wrapping_sub, 0.0);
    check_binary(BinaryFn::Mul, &x, &y, i64::wrapping_mul, 0.0);
    check_binary(
        BinaryFn::Div,
        &x,
        &y,
        |a, b| int_div(a, b, i64::wrapping_div),
        0.0,
    );
    check_binary(BinaryFn::Max, &x, &y, i64::max, 0.0);
    check_binary(BinaryFn::Min, &x, &y, i64::min, 0.0);
    let (x, y) = pairs(&I32S);
    check_binary(BinaryFn::Add, &x, &y, i32::wrapping_add, 0.0);
    check_binary(BinaryFn::Sub, &x, &y, i32::wrapping_sub, 0.0);
    check_binary(BinaryFn::Mul, &x, &y, i32::wrapping_mul, 0.0);
    check_binary(
        BinaryFn::Div,
        &x,
        &y,
        |a, b| int_div(a, b, i32::wrapping_div),
        0.0,
    );
    check_binary(BinaryFn::Max, &x, &y, i32::max, 0.0);
    check_binary(BinaryFn::Min, &x, &y, i32::min, 0.0);
}

#[test]
fn unary_ops() {
    let xs = F64S.to_vec();
    check_unary(UnaryFn::Neg, &xs, |a: f64| -a, 0.0);
    check_unary(UnaryFn::Abs, &xs, f64::abs, 0.0);
    check_unary(UnaryFn::Sqrt, &xs, f64::sqrt, 0.0);
    check_unary(UnaryFn::Rsqrt, &xs, |a: f64| 1.0 / a.sqrt(), 0.0);
    check_unary(UnaryFn::Relu, &xs, |a: f64| nan_max(a, 0.0), 0.0);
    let xs = f32s();
    check_unary(UnaryFn::Neg, &xs, |a: f32| -a, 0.0);
    check_unary(UnaryFn::Abs, &xs, f32::abs, 0.0);
    check_unary(UnaryFn::Sqrt, &xs, f32::sqrt, 0.0);
    check_unary(UnaryFn::Rsqrt, &xs, |a: f32| 1.0 / a.sqrt(), 0.0);
    check_unary(UnaryFn::Relu, &xs, |a: f32| nan_max(a, 0.0), 0.0);
    check_unary(UnaryFn::Neg, &I64S, i64::wrapping_neg, 0.0);
    check_unary(UnaryFn::Abs, &I64S, i64::wrapping_abs, 0.0);
    check_unary(UnaryFn::Relu, &I64S, |a: i64| a.max(0), 0.0);
    check_unary(UnaryFn::Neg, &I32S, i32::wrapping_neg, 0.0);
    check_unary(UnaryFn::Abs, &I32S, i32::wrapping_abs, 0.0);
    check_unary(UnaryFn::Relu, &I32S, |a: i32| a.max(0), 0.0);
}

#[test]
fn transcendental_functions_are_close_to_libm() {
    let xs: Vec<f64> = vec![
        -20.0, -3.5, -1.0, -0.25, 0.0, 0.3, 1.0, 2.5, 10.0, 40.0, 0.001, 5.5,
    ];
    let pos: Vec<f64> = xs.iter().map(|x| x.abs() + 1e-3).collect();
    check_unary(UnaryFn::Exp, &xs, f64::exp, 1e-13);
    check_unary(UnaryFn::Log, &pos, f64::ln, 1e-13);
    check_unary(UnaryFn::Tanh, &xs, f64::tanh, 1e-13);
    check_unary(
        UnaryFn::Sigmoid,
        &xs,
        |x: f64| 1.0 / (1.0 + (-x).exp()),
        1e-13,
    );
    let xs: Vec<f32> = xs.iter().map(|x| *x as f32).collect();
    let pos: Vec<f32> = pos.iter().map(|x| *x as f32).collect();
    check_unary(UnaryFn::Exp, &xs, f32::exp, 1e-6);
    check_unary(UnaryFn::Log, &pos, f32::ln, 1e-6);
    check_unary(UnaryFn::Tanh, &xs, f32::tanh, 1e-6);
    check_unary(
        UnaryFn::Sigmoid,
        &xs,
        |x: f32| 1.0 / (1.0 + (-x).exp()),
        1e-6,
    );
}

fn check_cast<I: Elem, O: Elem>(xs: &[I], want: impl Fn(I) -> O) {
    let xs = padded(xs.to_vec());
    // Vector casts keep the lane count, so only same-width pairs have a vector form.
    let mut widths = vec![1];
    if I::D.size_bytes() == O::D.size_bytes() {
        widths.push(lanes_of(I::D));
    }
    for lanes in widths {
        let m = map_kernel(I::D, O::D, 1, lanes, |b, v| {
            b.assign(ty(O::D, lanes), Op::Cast(O::D, v[0]))
        });
        let z: Vec<O> = run(&m, std::slice::from_ref(&xs));
        for i in 0..xs.len() {
            let w = want(xs[i]);
            assert!(
                z[i].same(w),
                "cast {:?}->{:?} lanes {lanes}: {:?} gave {:?}, want {w:?}",
                I::D,
                O::D,
                xs[i],
                z[i]
            );
        }
    }
}

#[test]
fn casts_follow_astype_saturating_with_nan_to_zero() {
    // Rust's `as` saturates and maps NaN to 0, which is the documented semantics.
    let f = F64S.to_vec();
    let big = [1e20, -1e20, 2.7, -2.7, 2147483647.5, -2147483649.0];
    let f: Vec<f64> = f.into_iter().chain(big).collect();
    check_cast(&f, |x: f64| x as i32);
    check_cast(&f, |x: f64| x as i64);
    check_cast(&f, |x: f64| x as f32);
    let g: Vec<f32> = f.iter().map(|x| *x as f32).collect();
    check_cast(&g, |x: f32| x as i32);
    check_cast(&g, |x: f32| x as i64);
    check_cast(&g, |x: f32| x as f64);
    check_cast(&I64S, |x: i64| x as i32);
    check_cast(&I64S, |x: i64| x as f64);
    check_cast(&I64S, |x: i64| x as f32);
    check_cast(&I32S, |x: i32| x as i64);
    check_cast(&I32S, |x: i32| x as f32);
    check_cast(&I32S, |x: i32| x as f64);
}

#[test]
fn comparisons_and_select_with_nan() {
    let (x, y) = pairs(&F64S);
    for (cmp, want) in [
        (CmpOp::Lt, (|a, b| a < b) as fn(f64, f64) -> bool),
        (CmpOp::Le, |a, b| a <= b),
        (CmpOp::Gt, |a, b| a > b),
        (CmpOp::Ge, |a, b| a >= b),
        (CmpOp::Eq, |a, b| a == b),
        (CmpOp::Ne, |a, b| a != b),
    ] {
        // Z = cmp(X, Y) ? 1.0 : (not cmp and X != Y ? 2.0 : 3.0): exercises Cmp, Not, And,
        // Or and Select on masks.
        let m = map_kernel(DType::F64, DType::F64, 2, 1, |b, v| {
            let s = Type::Scalar(DType::F64);
            let c = b.assign(Type::Bool, Op::Cmp(cmp, v[0], v[1]));
            let ne = b.assign(Type::Bool, Op::Cmp(CmpOp::Ne, v[0], v[1]));
            let notc = b.assign(Type::Bool, Op::Not(c));
            let both = b.assign(Type::Bool, Op::And(notc, ne));
            let either = b.assign(Type::Bool, Op::Or(both, c));
            let one = b.assign(s, Op::Const(Scalar::F64(1.0)));
            let two = b.assign(s, Op::Const(Scalar::F64(2.0)));
            let three = b.assign(s, Op::Const(Scalar::F64(3.0)));
            let inner = b.assign(s, Op::Select(both, two, three));
            let r = b.assign(s, Op::Select(c, one, inner));
            // `either` is c || (!c && ne): equal to c || ne; fold it in as an identity check.
            let e = b.assign(s, Op::Cast(DType::F64, either));
            let zero = b.assign(s, Op::Const(Scalar::F64(0.0)));
            let e0 = b.assign(s, Op::Binary(BinaryFn::Mul, e, zero));
            b.assign(s, Op::Binary(BinaryFn::Add, r, e0))
        });
        let z: Vec<f64> = run(&m, &[x.clone(), y.clone()]);
        for i in 0..x.len() {
            let c = want(x[i], y[i]);
            let w = if c {
                1.0
            } else if x[i] != y[i] {
                2.0
            } else {
                3.0
            };
            assert_eq!(z[i], w, "{cmp:?}({}, {})", x[i], y[i]);
        }
    }
    let (x, y) = pairs(&I64S);
    let m = map_kernel(DType::I64, DType::I64, 2, 1, |b, v| {
        let c = b.assign(Type::Bool, Op::Cmp(CmpOp::Le, v[0], v[1]));
        b.assign(Type::Scalar(DType::I64), Op::Select(c, v[0], v[1]))
    });
    let z: Vec<i64> = run(&m, &[x.clone(), y.clone()]);
    for i in 0..x.len() {
        assert_eq!(z[i], x[i].min(y[i]));
    }
}

#[test]
fn fma_is_fused_or_mul_add() {
    let xs: Vec<f64> = vec![0.1, 1.0 + f64::EPSILON, -3.0, 1e10, 0.3, 2.0, -0.5, 7.0];
    let ys: Vec<f64> = vec![10.0, 1.0 - f64::EPSILON, 0.5, 1e-10, 3.0, 2.0, 4.0, -1.0];
    for lanes in [1, 2] {
        let m = map_kernel(DType::F64, DType::F64, 2, lanes, |b, v| {
            b.assign(ty(DType::F64, lanes), Op::Fma(v[0], v[1], v[0]))
        });
        let z: Vec<f64> = run(&m, &[xs.clone(), ys.clone()]);
        for i in 0..xs.len() {
            let fused = xs[i].mul_add(ys[i], xs[i]);
            let unfused = xs[i] * ys[i] + xs[i];
            assert!(
                z[i] == fused || z[i] == unfused,
                "fma lanes {lanes}: {}",
                z[i]
            );
        }
    }
}

/// `out[] = reduce(X[0..n])` with a vector accumulator, then `ReduceLanes`; n is a multiple of
/// the lane count.
fn reduce_kernel(d: DType, kind: ReduceKind, init: Scalar) -> Module {
    let lanes = lanes_of(d);
    let mut b = Builder::new("reduce");
    let x = b.buffer("X", d, &[sym("n")], Layout::Contiguous, BufferKind::Input);
    let out = b.output("out", d, &[]);
    let zero = b.index(0);
    let n = b.dim("n");
    let s = b.assign(Type::Scalar(d), Op::Const(init));
    let v0 = b.assign(Type::Vector(d, lanes), Op::Splat(s, lanes));
    let fun = match kind {
        ReduceKind::Add => BinaryFn::Add,
        ReduceKind::Mul => BinaryFn::Mul,
        ReduceKind::Max => BinaryFn::Max,
        ReduceKind::Min => BinaryFn::Min,
    };
    let acc = b.for_loop(zero, n, u64::from(lanes), &[v0], |b, i, acc| {
        let v = b.load(x, &[i], lanes);
        vec![b.assign(Type::Vector(d, lanes), Op::Binary(fun, acc[0], v))]
    });
    let r = b.assign(Type::Scalar(d), Op::ReduceLanes(kind, acc[0]));
    b.store(out, &[], r);
    module(&["n"], vec![b.finish()])
}

#[test]
fn vector_reductions() {
    let mut xs: Vec<f32> = (0..16).map(|i| i as f32 - 5.5).collect();
    let k = jit_one(&reduce_kernel(
        DType::F32,
        ReduceKind::Add,
        Scalar::F32(0.0),
    ));
    let mut out = [0f32];
    assert_eq!(
        call(
            &k,
            &[
                Arg::new(&mut xs, DType::F32, &[16]),
                Arg::new(&mut out, DType::F32, &[])
            ]
        ),
        status::OK
    );
    assert_eq!(out[0], xs.iter().sum::<f32>());

    let k = jit_one(&reduce_kernel(
        DType::F64,
        ReduceKind::Max,
        Scalar::F64(f64::NEG_INFINITY),
    ));
    let mut ys: Vec<f64> = vec![1.0, 5.0, -2.0, 4.0];
    let mut out = [0f64];
    assert_eq!(
        call(
            &k,
            &[
                Arg::new(&mut ys, DType::F64, &[4]),
                Arg::new(&mut out, DType::F64, &[])
            ]
        ),
        status::OK
    );
    assert_eq!(out[0], 5.0);
    ys[2] = f64::NAN;
    assert_eq!(
        call(
            &k,
            &[
                Arg::new(&mut ys, DType::F64, &[4]),
                Arg::new(&mut out, DType::F64, &[])
            ]
        ),
        status::OK
    );
    assert!(out[0].is_nan(), "max with a NaN is NaN, got {}", out[0]);

    let k = jit_one(&reduce_kernel(
        DType::I32,
        ReduceKind::Min,
        Scalar::I32(i32::MAX),
    ));
    let mut zs: Vec<i32> = vec![3, -9, 4, 8, 100, -2, 7, 0];
    let mut out = [0i32];
    assert_eq!(
        call(
            &k,
            &[
                Arg::new(&mut zs, DType::I32, &[8]),
                Arg::new(&mut out, DType::I32, &[])
            ]
        ),
        status::OK
    );
    assert_eq!(out[0], -9);

    let k = jit_one(&reduce_kernel(DType::I64, ReduceKind::Mul, Scalar::I64(1)));
    let mut ws: Vec<i64> = vec![3, -2, i64::MAX, 5];
    let mut out = [0i64];
    assert_eq!(
        call(
            &k,
            &[
                Arg::new(&mut ws, DType::I64, &[4]),
                Arg::new(&mut out, DType::I64, &[])
            ]
        ),
        status::OK
    );
    assert_eq!(out[0], ws.iter().fold(1i64, |a, b| a.wrapping_mul(*b)));
}

#[test]
fn tiled_loop_with_index_arithmetic_and_a_temporary() {
    // T[i] = X[i] * 2 in tiles of 4 (the last tile clipped with `min`), then Z[i] = T[n-1-i].
    let mut b = Builder::new("tiles");
    let x = b.input("X", DType::I32, &[sym("n")]);
    let z = b.output("Z", DType::I32, &[sym("n")]);
    let t = b.buffer(
        "T",
        DType::I32,
        &[sym("n")],
        Layout::Contiguous,
        BufferKind::Temp,
    );
    let zero = b.index(0);
    let one = b.index(1);
    let four = b.index(4);
    let n = b.dim("n");
    b.for_loop(zero, n, 4, &[], |b, i0, _| {
        let end = b.assign(Type::Index, Op::IndexArith(IndexOp::Add, i0, four));
        let hi = b.assign(Type::Index, Op::IndexArith(IndexOp::Min, end, n));
        b.for_loop(i0, hi, 1, &[], |b, i, _| {
            let v = b.load(x, &[i], 1);
            let two = b.assign(Type::Scalar(DType::I32), Op::Const(Scalar::I32(2)));
            let w = b.assign(Type::Scalar(DType::I32), Op::Binary(BinaryFn::Mul, v, two));
            b.store(t, &[i], w);
            vec![]
        });
        vec![]
    });
    b.for_loop(zero, n, 1, &[], |b, i, _| {
        let last = b.assign(Type::Index, Op::IndexArith(IndexOp::Sub, n, one));
        let j = b.assign(Type::Index, Op::IndexArith(IndexOp::Sub, last, i));
        let v = b.load(t, &[j], 1);
        b.store(z, &[i], v);
        vec![]
    });
    let k = jit_one(&module(&["n"], vec![b.finish()]));
    for n in [0usize, 1, 4, 7, 13] {
        let mut xs: Vec<i32> = (0..n as i32).map(|i| i * 3 - 4).collect();
        let mut zs = vec![-1i32; n];
        assert_eq!(
            call(
                &k,
                &[
                    Arg::new(&mut xs, DType::I32, &[n as i64]),
                    Arg::new(&mut zs, DType::I32, &[n as i64])
                ]
            ),
            status::OK
        );
        let want: Vec<i32> = xs.iter().rev().map(|v| v * 2).collect();
        assert_eq!(zs, want, "n = {n}");
    }
}

/// The f32 vector-sum kernel (used by the cross-target compile test).
pub(crate) fn vector_sum_f32() -> Module {
    reduce_kernel(DType::F32, ReduceKind::Add, Scalar::F32(0.0))
}
