//! ABI misuse: each validation rule of the entry point, called with a bad argument through the
//! C ABI; the status code is checked and so is that no output was written.

use super::*;
use crate::ir::loops::BinaryFn;
use einc_runtime::abi::status;
use einc_runtime::Scalar;

const SENTINEL: f32 = -12345.0;

/// `Z[i,j] = 2 * X[i,j]`, `W[i,j] = X[i,j] + 1` with X: f32[m, 3], Z, W: f32[m, 3].
fn two_outputs() -> JitKernel {
    let mut b = Builder::new("two");
    let shape = [sym("m"), Extent::Fixed(3)];
    let x = b.input("X", DType::F32, &shape);
    let z = b.output("Z", DType::F32, &shape);
    let w = b.output("W", DType::F32, &shape);
    let zero = b.index(0);
    let three = b.index(3);
    let m = b.dim("m");
    b.for_loop(zero, m, 1, &[], |b, i, _| {
        b.for_loop(zero, three, 1, &[], |b, j, _| {
            let s = Type::Scalar(DType::F32);
            let v = b.load(x, &[i, j], 1);
            let two = b.assign(s, Op::Const(Scalar::F32(2.0)));
            let one = b.assign(s, Op::Const(Scalar::F32(1.0)));
            let d = b.assign(s, Op::Binary(BinaryFn::Mul, v, two));
            let p = b.assign(s, Op::Binary(BinaryFn::Add, v, one));
            b.store(z, &[i, j], d);
            b.store(w, &[i, j], p);
            vec![]
        });
        vec![]
    });
    jit_one(&module(&["m"], vec![b.finish()]))
}

/// Owned buffers for a call of `two_outputs` with m = 2.
struct Call {
    x: Vec<f32>,
    z: Vec<f32>,
    w: Vec<f32>,
}

impl Call {
    fn new() -> Call {
        Call {
            x: (0..6).map(|v| v as f32).collect(),
            z: vec![SENTINEL; 6],
            w: vec![SENTINEL; 6],
        }
    }

    fn args(&mut self) -> Vec<Arg> {
        vec![
            Arg::new(&mut self.x, DType::F32, &[2, 3]),
            Arg::new(&mut self.z, DType::F32, &[2, 3]),
            Arg::new(&mut self.w, DType::F32, &[2, 3]),
        ]
    }

    fn untouched(&self) -> bool {
        self.z.iter().chain(&self.w).all(|v| *v == SENTINEL)
    }
}

/// Calls `two_outputs` with arguments `edit` has altered and checks the status and that the
/// outputs still hold the sentinel.
fn rejects(edit: impl FnOnce(&mut Vec<Arg>), want: i32) {
    let k = two_outputs();
    let mut c = Call::new();
    let mut args = c.args();
    edit(&mut args);
    let got = call(&k, &args);
    drop(args);
    assert_eq!(
        got,
        want,
        "status {got} ({}), want {want}",
        status::describe(got)
    );
    assert!(c.untouched(), "an output was written: {:?} {:?}", c.z, c.w);
}

#[test]
fn a_valid_call_succeeds() {
    let k = two_outputs();
    let mut c = Call::new();
    let args = c.args();
    assert_eq!(call(&k, &args), status::OK);
    drop(args);
    assert_eq!(c.z, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    assert_eq!(c.w, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn wrong_argument_count() {
    let k = two_outputs();
    let mut c = Call::new();
    let args = c.args();
    let descs: Vec<_> = args.iter().map(Arg::tensor).collect();
    // SAFETY: the descriptors describe live buffers; nargs understates or overstates them.
    let fewer = unsafe { (k.entry())(descs.as_ptr(), 2) };
    let more = unsafe { (k.entry())(descs.as_ptr(), 4) };
    drop(args);
    assert_eq!(fewer, status::BAD_ARG_COUNT);
    assert_eq!(more, status::BAD_ARG_COUNT);
    assert!(c.untouched());
}

#[test]
fn null_args() {
    let k = two_outputs();
    // SAFETY: a null `args` must be rejected before it is read.
    let got = unsafe { (k.entry())(std::ptr::null(), 3) };
    assert_eq!(got, status::BAD_ARG_COUNT);
}

#[test]
fn wrong_dtype() {
    rejects(|a| a[2].dtype = DType::F64, status::BAD_DTYPE);
    rejects(|a| a[0].dtype = DType::I32, status::BAD_DTYPE);
}

#[test]
fn unknown_dtype_code() {
    let k = two_outputs();
    let mut c = Call::new();
    let args = c.args();
    let mut descs: Vec<_> = args.iter().map(Arg::tensor).collect();
    descs[1].dtype = 99;
    assert_eq!(call_raw(&k, &descs), status::BAD_DTYPE);
    drop(args);
    assert!(c.untouched());
}

#[test]
fn wrong_rank() {
    rejects(
        |a| {
            a[1].shape = vec![6];
            a[1].strides = vec![1];
        },
        status::BAD_RANK,
    );
}

#[test]
fn negative_extent() {
    rejects(|a| a[0].shape[0] = -2, status::BAD_SHAPE);
}

#[test]
fn wrong_fixed_extent() {
    rejects(|a| a[1].shape[1] = 2, status::BAD_SHAPE);
}

#[test]
fn inconsistent_dim() {
    // X binds m = 2; W says m = 1 (a smaller, in-bounds view, so only the dim rule applies).
    rejects(|a| a[2].shape[0] = 1, status::BAD_SHAPE);
}

#[test]
fn null_data_with_elements() {
    rejects(|a| a[0].data = std::ptr::null_mut(), status::NULL_POINTER);
}

#[test]
fn null_data_without_elements_is_fine() {
    let k = two_outputs();
    let mut args = vec![
        Arg::new::<f32>(&mut [], DType::F32, &[0, 3]),
        Arg::new::<f32>(&mut [], DType::F32, &[0, 3]),
        Arg::new::<f32>(&mut [], DType::F32, &[0, 3]),
    ];
    for a in &mut args {
        a.data = std::ptr::null_mut();
    }
    assert_eq!(call(&k, &args), status::OK);
}

#[test]
fn null_shape_or_strides_pointer() {
    let k = two_outputs();
    for field in 0..2 {
        let mut c = Call::new();
        let args = c.args();
        let mut descs: Vec<_> = args.iter().map(Arg::tensor).collect();
        if field == 0 {
            descs[1].shape = std::ptr::null();
        } else {
            descs[1].strides = std::ptr::null();
        }
        assert_eq!(call_raw(&k, &descs), status::NULL_POINTER, "field {field}");
        drop(args);
        assert!(c.untouched());
    }
}

#[test]
fn addressed_range_overflow() {
    rejects(|a| a[0].strides[0] = i64::MAX / 2, status::BAD_SHAPE);
    rejects(|a| a[0].strides[1] = i64::MIN, status::BAD_SHAPE);
}

#[test]
fn output_overlapping_an_input() {
    let k = two_outputs();
    let mut c = Call::new();
    let mut args = c.args();
    // Z is X itself, read backwards: every element of Z is an element of X.
    args[1] = Arg::strided(&mut c.x[5..], DType::F32, &[2, 3], &[-3, -1]);
    let x_before = c.x.clone();
    assert_eq!(call(&k, &args), status::ALIASING);
    drop(args);
    assert_eq!(c.x, x_before);
    assert!(c.w.iter().all(|v| *v == SENTINEL));
}

#[test]
fn output_overlapping_another_output() {
    let k = two_outputs();
    let mut c = Call::new();
    let mut big = vec![SENTINEL; 9];
    let mut args = c.args();
    // Z covers big[0..6], W covers big[3..9].
    args[1] = Arg::new(&mut big, DType::F32, &[2, 3]);
    args[2] = Arg::new(&mut big[3..], DType::F32, &[2, 3]);
    assert_eq!(call(&k, &args), status::ALIASING);
    drop(args);
    assert!(big.iter().all(|v| *v == SENTINEL));
}

#[test]
fn zero_size_outputs_may_share_an_address() {
    let k = two_outputs();
    let mut x: Vec<f32> = vec![];
    let mut same = vec![0f32; 1];
    let args = vec![
        Arg::new(&mut x, DType::F32, &[0, 3]),
        Arg::new(&mut same, DType::F32, &[0, 3]),
        Arg::new(&mut same, DType::F32, &[0, 3]),
    ];
    assert_eq!(call(&k, &args), status::OK);
}

/// Y: f64[n] contiguous (the body reads it in C order) copied to Z: f64[n].
fn contiguous_copy() -> JitKernel {
    let mut b = Builder::new("copy");
    let y = b.buffer(
        "Y",
        DType::F64,
        &[sym("n")],
        Layout::Contiguous,
        BufferKind::Input,
    );
    let z = b.output("Z", DType::F64, &[sym("n")]);
    let zero = b.index(0);
    let n = b.dim("n");
    b.for_loop(zero, n, 1, &[], |b, i, _| {
        let v = b.load(y, &[i], 1);
        b.store(z, &[i], v);
        vec![]
    });
    jit_one(&module(&["n"], vec![b.finish()]))
}

#[test]
fn contiguous_argument_with_other_strides() {
    let k = contiguous_copy();
    let mut y = vec![1.0f64, 2.0, 3.0, 4.0];
    let mut z = vec![0.0f64; 2];
    let bad = call(
        &k,
        &[
            Arg::strided(&mut y, DType::F64, &[2], &[2]),
            Arg::new(&mut z, DType::F64, &[2]),
        ],
    );
    assert_eq!(bad, status::BAD_SHAPE);
    assert_eq!(z, vec![0.0, 0.0]);
    let ok = call(
        &k,
        &[
            Arg::new(&mut y[..2], DType::F64, &[2]),
            Arg::new(&mut z, DType::F64, &[2]),
        ],
    );
    assert_eq!(ok, status::OK);
    assert_eq!(z, vec![1.0, 2.0]);
}

#[test]
fn temporary_too_large_is_out_of_memory() {
    // X: f64[a, b] (zero-size, so any b is accepted); T: f64[b] (a temporary); Z: f64[a].
    let mut b = Builder::new("oom");
    let x = b.input("X", DType::F64, &[sym("a"), sym("b")]);
    let z = b.output("Z", DType::F64, &[sym("a")]);
    let t = b.buffer(
        "T",
        DType::F64,
        &[sym("b")],
        Layout::Contiguous,
        BufferKind::Temp,
    );
    let zero = b.index(0);
    let a = b.dim("a");
    b.for_loop(zero, a, 1, &[], |b, i, _| {
        let v = b.load(x, &[i, zero], 1);
        b.store(t, &[zero], v);
        let w = b.load(t, &[zero], 1);
        b.store(z, &[i], w);
        vec![]
    });
    let k = jit_one(&module(&["a", "b"], vec![b.finish()]));
    let mut zs = [0.0f64; 0];
    let args = [
        Arg::new::<f64>(&mut [], DType::F64, &[0, i64::MAX / 4]),
        Arg::new(&mut zs, DType::F64, &[0]),
    ];
    // i64::MAX / 4 elements of 8 bytes overflow the allocation size.
    assert_eq!(call(&k, &args), status::OUT_OF_MEMORY);
    let mut xs = [5.0f64; 6];
    let mut zs = [0.0f64; 2];
    let args = [
        Arg::new(&mut xs, DType::F64, &[2, 3]),
        Arg::new(&mut zs, DType::F64, &[2]),
    ];
    assert_eq!(call(&k, &args), status::OK);
    assert_eq!(zs, [5.0, 5.0]);
}
