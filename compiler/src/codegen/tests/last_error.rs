//! `einc_last_error()`: the message each failing check records, its formatting (negative
//! values, dtype names, truncation), and that it belongs to the calling thread.

use super::*;
use crate::codegen::last_error::MESSAGE_CAPACITY;
use einc_runtime::abi::status;
use einc_runtime::Scalar;

/// `out[i] = x[0] + y[0] + p[3]` for every `i < m`, through element `[0, 0]` of a temporary
/// `T: f64[n, n]`, with `x, y: f64[n]` and `p, out: f64[m]`.
fn with_temporary(name: &str) -> JitKernel {
    let mut b = Builder::new(name);
    let x = b.input("x", DType::F64, &[sym("n")]);
    let y = b.input("y", DType::F64, &[sym("n")]);
    let p = b.input("p", DType::F64, &[sym("m")]);
    let out = b.output("out", DType::F64, &[sym("m")]);
    let t = b.buffer(
        "T",
        DType::F64,
        &[sym("n"), sym("n")],
        Layout::Contiguous,
        BufferKind::Temp,
    );
    let zero = b.index(0);
    let three = b.index(3);
    let m = b.dim("m");
    b.for_loop(zero, m, 1, &[], |b, i, _| {
        let add = |b: &mut Builder, l, r| {
            b.assign(
                Type::Scalar(DType::F64),
                Op::Binary(crate::ir::loops::BinaryFn::Add, l, r),
            )
        };
        let v = b.load(x, &[zero], 1);
        let w = b.load(y, &[zero], 1);
        let q = b.load(p, &[three], 1);
        let s = add(b, v, w);
        let s = add(b, s, q);
        b.store(t, &[zero, zero], s);
        let back = b.load(t, &[zero, zero], 1);
        b.store(out, &[i], back);
        vec![]
    });
    jit_one(&module(&["n", "m"], vec![b.finish()]))
}

/// Calls `k` on `args` and returns its status and message.
fn failure(k: &JitKernel, args: &[Arg]) -> (i32, String) {
    let code = call(k, args);
    (code, k.last_error().unwrap_or_default())
}

#[test]
fn each_check_names_the_argument_axis_and_values() {
    let k = with_temporary("temp");
    let mut x = vec![1.0f64; 4];
    let mut y = vec![1.0f64; 5];
    let mut p = vec![0.5f64; 4];
    let mut out = vec![0.0f64; 4];
    let (code, msg) = failure(
        &k,
        &[
            Arg::new(&mut x, DType::F64, &[4]),
            Arg::new(&mut y, DType::F64, &[5]),
            Arg::new(&mut p, DType::F64, &[4]),
            Arg::new(&mut out, DType::F64, &[4]),
        ],
    );
    assert_eq!(code, status::BAD_SHAPE);
    assert_eq!(
        msg,
        "input `y` axis 0 has extent 5, but dim `n` is 4, as bound by input `x` axis 0"
    );

    let (code, msg) = failure(
        &k,
        &[
            Arg::new(&mut x, DType::F64, &[4]),
            Arg::new(&mut y, DType::F64, &[4]),
            Arg::new(&mut p, DType::F64, &[3]),
            Arg::new(&mut out, DType::F64, &[4]),
        ],
    );
    assert_eq!(code, status::BAD_SHAPE);
    assert_eq!(
        msg,
        "input `p` axis 0 has extent 3, but the kernel reads position 3 on that axis, so it \
         needs at least 4"
    );

    let (code, msg) = failure(
        &k,
        &[
            Arg::new(&mut x, DType::F32, &[4]),
            Arg::new(&mut y, DType::F64, &[4]),
            Arg::new(&mut p, DType::F64, &[4]),
            Arg::new(&mut out, DType::F64, &[4]),
        ],
    );
    assert_eq!(code, status::BAD_DTYPE);
    assert_eq!(
        msg,
        "input `x` has dtype f32, but the kernel declares f64[n]"
    );

    let (code, msg) = failure(
        &k,
        &[
            Arg::new(&mut x, DType::F64, &[i64::MIN]),
            Arg::new(&mut y, DType::F64, &[4]),
            Arg::new(&mut p, DType::F64, &[4]),
            Arg::new(&mut out, DType::F64, &[4]),
        ],
    );
    assert_eq!(code, status::BAD_SHAPE);
    assert_eq!(
        msg,
        "input `x` axis 0 has extent -9223372036854775808, which is negative"
    );

    let (code, msg) = failure(&k, &[Arg::new(&mut x, DType::F64, &[4])]);
    assert_eq!(code, status::BAD_ARG_COUNT);
    assert_eq!(
        msg,
        "kernel `temp` takes 4 arguments (inputs x, y, p; output out), but nargs is 1"
    );

    // A successful call leaves the message of the last failure in place, like errno.
    let (code, msg) = failure(
        &k,
        &[
            Arg::new(&mut x, DType::F64, &[4]),
            Arg::new(&mut y, DType::F64, &[4]),
            Arg::new(&mut p, DType::F64, &[4]),
            Arg::new(&mut out, DType::F64, &[4]),
        ],
    );
    assert_eq!(code, status::OK);
    assert_eq!(out, [2.5; 4]);
    assert!(msg.starts_with("kernel `temp` takes 4 arguments"), "{msg}");
}

#[test]
fn a_temporary_that_cannot_be_allocated_says_how_many_bytes_it_asked_for() {
    let k = with_temporary("huge");
    // Stride-0 inputs of one element stand for long vectors without memory behind them.
    let mut one = [1.0f64];
    let mut p = [0.0f64; 4];
    let mut out = [0.0f64; 4];
    let args = |one: &mut [f64], p: &mut [f64], out: &mut [f64], n: i64| {
        vec![
            Arg::strided(one, DType::F64, &[n], &[0]),
            Arg::strided(one, DType::F64, &[n], &[0]),
            Arg::new(p, DType::F64, &[4]),
            Arg::new(out, DType::F64, &[4]),
        ]
    };
    // n = 2^28: the temporary has 2^56 elements, 2^59 bytes.
    let n = 1i64 << 28;
    let (code, msg) = failure(&k, &args(&mut one, &mut p, &mut out, n));
    assert_eq!(code, status::OUT_OF_MEMORY);
    assert_eq!(
        msg,
        "cannot allocate 576460752303423488 bytes for the temporary `T` (f64[n, n])"
    );
    let (code, msg) = failure(&k, &args(&mut one, &mut p, &mut out, 1 << 31));
    assert_eq!(code, status::OUT_OF_MEMORY);
    assert_eq!(
        msg,
        "cannot allocate the temporary `T` (f64[n, n]): its size in bytes does not fit in 64 \
         bits"
    );
}

#[test]
fn messages_are_per_thread_and_long_ones_are_truncated() {
    let long = "x".repeat(2 * MESSAGE_CAPACITY as usize);
    let mut b = Builder::new("long");
    let a = b.input(&long, DType::I32, &[Extent::Fixed(2)]);
    let o = b.output("o", DType::I32, &[Extent::Fixed(2)]);
    let zero = b.index(0);
    let v = b.load(a, &[zero], 1);
    let c = b.assign(Type::Scalar(DType::I32), Op::Const(Scalar::I32(0)));
    let s = b.assign(
        Type::Scalar(DType::I32),
        Op::Binary(crate::ir::loops::BinaryFn::Add, v, c),
    );
    b.store(o, &[zero], s);
    let k = jit_one(&module(&[], vec![b.finish()]));
    let mut data = [0i32; 2];
    let mut out = [0i32; 2];
    let code = call(
        &k,
        &[
            Arg::new(&mut data, DType::I32, &[3]),
            Arg::new(&mut out, DType::I32, &[2]),
        ],
    );
    assert_eq!(code, status::BAD_SHAPE);
    let msg = k.last_error().unwrap();
    assert_eq!(msg.len(), MESSAGE_CAPACITY as usize - 1);
    assert!(msg.starts_with("input `xxx"), "{msg}");

    // Another thread has its own message: none yet, then its own failure's.
    let other = with_temporary("other");
    let seen = std::thread::spawn(move || {
        let before = other.last_error();
        let mut x = [0.0f64; 2];
        let mut p = [0.0f64; 4];
        let mut out = [0.0f64; 4];
        let code = call(
            &other,
            &[
                Arg::new(&mut x, DType::F64, &[2]),
                Arg::new(&mut x, DType::F64, &[2]),
                Arg::new(&mut p, DType::F32, &[4]),
                Arg::new(&mut out, DType::F64, &[4]),
            ],
        );
        (before, code, other.last_error())
    })
    .join()
    .unwrap();
    assert_eq!(
        seen,
        (
            None,
            status::BAD_DTYPE,
            Some("input `p` has dtype f32, but the kernel declares f64[m]".to_string())
        )
    );
    assert!(k.last_error().unwrap().starts_with("input `xxx"));
}
