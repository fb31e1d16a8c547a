//! The Rust API: every way to compile, every way to call, and every error, with expected
//! values computed by explicit loops here. The `nd` module runs with `--features ndarray`.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::runtime::abi::{self, status};
use einc::runtime::{Array, DType};
use einc::{Error, Kernel, Program, Status, TensorMut, TensorRef, ViewError};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;
use std::path::Path;

thread_local! {
    /// How many allocations this thread has made.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's allocations (for the test that a call makes
/// none; other tests run on their own threads).
struct Counting;

// SAFETY: forwards to the system allocator; the count is a thread-local without a destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const SOURCE: &str = "\
dims M, K, N
kernel mm(A: f32[M, K], B: f32[K, N]) -> (C: f32[M, N]) {
    C[i, j] = A[i, k] * B[k, j]
}
kernel scale(x: f64[3], s: f64) -> (y: f64[3], total: f64) {
    y[i] = x[i] * s
    total = sum[i](y[i])
}
kernel isum(v: i32[N]) -> (t: i32) {
    t = sum[i](v[i])
}
";

fn program() -> Program {
    Program::from_source(SOURCE).unwrap()
}

/// `a` (m×k, C order) times `b` (k×n, C order), by explicit loops.
fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

fn seq(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 - 3.0) * scale).collect()
}

#[test]
fn run_allocates_outputs_from_the_bound_dims() {
    let mm = program().kernel("mm").unwrap();
    for (m, k, n) in [(2, 3, 4), (1, 1, 1), (5, 2, 3)] {
        let (a, b) = (seq(m * k, 0.5), seq(k * n, 0.25));
        let out = mm
            .run(&[
                TensorRef::contiguous(&a, &[m, k]).unwrap(),
                TensorRef::contiguous(&b, &[k, n]).unwrap(),
            ])
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].dtype(), out[0].shape()), (DType::F32, &[m, n][..]));
        let got: Vec<f32> = out[0].to_f64_vec().iter().map(|&v| v as f32).collect();
        assert_close(&got, &matmul(&a, &b, m, k, n));
    }
}

#[test]
fn call_writes_strided_outputs_in_place() {
    let mm = program().kernel("mm").unwrap();
    let (a, b) = (seq(6, 1.0), seq(6, 0.5));
    // A transposed view of a 3×2 buffer is the 2×3 matrix aᵀ; C is written reversed in both
    // axes into a padded 2×2 buffer (row stride -3).
    let at: Vec<f32> = (0..6).map(|i| a[(i % 3) * 2 + i / 3]).collect();
    let want = matmul(&at, &b, 2, 3, 2);
    let mut c = vec![-7f32; 6];
    {
        let mut out = [TensorMut::strided(&mut c, 4, &[2, 2], &[-3, -1]).unwrap()];
        mm.call(
            &[
                TensorRef::strided(&a, 0, &[2, 3], &[1, 2]).unwrap(),
                TensorRef::contiguous(&b, &[3, 2]).unwrap(),
            ],
            &mut out,
        )
        .unwrap();
    }
    assert_close(&[c[4], c[3], c[1], c[0]], &want);
    assert_eq!((c[2], c[5]), (-7.0, -7.0), "the gaps are untouched");
}

#[test]
fn broadcast_inputs_and_several_outputs() {
    let scale = program().kernel("scale").unwrap();
    let (x, s) = ([2.0f64], [1.5f64]);
    // x is one element broadcast over 3 (stride 0); s is a scalar.
    let out = scale
        .run(&[
            TensorRef::strided(&x, 0, &[3], &[0]).unwrap(),
            TensorRef::contiguous(&s, &[]).unwrap(),
        ])
        .unwrap();
    assert_eq!(out[0].to_f64_vec(), [3.0, 3.0, 3.0]);
    assert_eq!(out[1].shape(), &[] as &[usize]);
    assert_eq!(out[1].to_f64_vec(), [9.0]);
    let isum = program().kernel("isum").unwrap();
    let v: Vec<i32> = (1..=100).collect();
    let t = isum
        .run(&[TensorRef::contiguous(&v, &[100]).unwrap()])
        .unwrap();
    assert_eq!(t[0].to_f64_vec(), [5050.0]);
    // Arrays from the runtime are accepted as they are.
    let arr = Array::from_buffer(einc::runtime::Buffer::I32(vec![4, 5]), &[2]).unwrap();
    assert_eq!(
        isum.run(&[TensorRef::from(&arr)]).unwrap()[0].to_f64_vec(),
        [9.0]
    );
}

#[test]
fn kernels_describe_their_arguments_and_outlive_their_program() {
    let p = program();
    assert_eq!(
        p.kernel_names().collect::<Vec<_>>(),
        ["mm", "scale", "isum"]
    );
    let mm = p.kernel("mm").unwrap();
    drop(p);
    let copy = mm.clone();
    drop(mm);
    assert_eq!(copy.name(), "mm");
    let names =
        |args: &[einc::ArgSignature]| args.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(copy.inputs()), ["A", "B"]);
    assert_eq!(names(copy.outputs()), ["C"]);
    let (a, b) = ([2f32], [3f32]);
    let out = copy
        .run(&[
            TensorRef::contiguous(&a, &[1, 1]).unwrap(),
            TensorRef::contiguous(&b, &[1, 1]).unwrap(),
        ])
        .unwrap();
    assert_eq!(out[0].to_f64_vec(), [6.0]);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Kernel>();
    send_sync::<Program>();
    send_sync::<TensorRef<'static>>();
    send_sync::<Error>();
}

#[test]
fn programs_from_files_and_einsums() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/attention.ein");
    let p = Program::from_file(&path).unwrap();
    assert!(p.kernel("attention").is_ok());
    // The grad item is a kernel like any other, and the example checks without warnings.
    assert!(p.kernel("attention_grad").is_ok());
    assert_eq!(p.warnings(), "");
    let mut names: Vec<&str> = p.kernel_names().collect();
    names.sort_unstable();
    assert_eq!(names, ["attention", "attention_grad"]);

    // Warnings are rendered with their location.
    let noisy = Program::from_named_source(
        "noisy.ein",
        "dims N\nkernel t(A: f32[N], B: f32[N], C: f32[N]) -> (s: f32) {\n    s = A[i] * B[i] * C[i]\n}\n",
    )
    .unwrap();
    assert!(
        noisy.warnings().contains("noisy.ein:3:"),
        "{}",
        noisy.warnings()
    );

    let e = Program::einsum("ij,j->i", &[(DType::I64, &[2, 3]), (DType::I64, &[3])]).unwrap();
    let k = e.kernel("einsum").unwrap();
    let (m, v) = ([1i64, 2, 3, 4, 5, 6], [1i64, 10, 100]);
    let out = k
        .run(&[
            TensorRef::contiguous(&m, &[2, 3]).unwrap(),
            TensorRef::contiguous(&v, &[3]).unwrap(),
        ])
        .unwrap();
    assert_eq!(out[0].to_f64_vec(), [321.0, 654.0]);
    // Mixed dtypes promote as numpy does: i32 with f32 gives f64.
    let e = Program::einsum("i,i", &[(DType::I32, &[2]), (DType::F32, &[2])]).unwrap();
    assert_eq!(e.kernel("einsum").unwrap().outputs()[0].dtype, DType::F64);

    // One symbolic compilation serves every shape.
    let t = Program::einsum_symbolic("ij->ji", DType::F32).unwrap();
    let t = t.kernel("einsum").unwrap();
    for (r, c) in [(2, 3), (4, 1)] {
        let x = seq(r * c, 1.0);
        let out = t
            .run(&[TensorRef::contiguous(&x, &[r, c]).unwrap()])
            .unwrap();
        assert_eq!(out[0].shape(), &[c, r]);
        let want: Vec<f64> = (0..r * c)
            .map(|n| f64::from(x[(n % r) * c + n / r]))
            .collect();
        assert_eq!(out[0].to_f64_vec(), want);
    }
}

#[test]
fn compile_errors() {
    let e =
        Program::from_source("dims N\nkernel k(a: f32[N]) -> (b: f32[N]) {\n    b[i] = a[j]\n}\n")
            .unwrap_err();
    let Error::Source { rendered, errors } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*errors, 2);
    assert!(rendered.contains("┌─ <source>:3:14"), "{rendered}");
    assert!(
        e.to_string().starts_with("2 errors in the source:\n"),
        "{e}"
    );

    let e = Program::from_named_source("k.ein", "kernel k(").unwrap_err();
    assert!(e.to_string().contains("k.ein:1:10"), "{e}");

    let e = Program::from_file(Path::new("/nonexistent/k.ein")).unwrap_err();
    assert!(matches!(&e, Error::Io { path, .. } if path == Path::new("/nonexistent/k.ein")));
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/k.ein: "),
        "{e}"
    );

    let e =
        Program::einsum("ij,jk->ik", &[(DType::F32, &[2, 3]), (DType::F32, &[4, 5])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "label `j` has extent 3 in operand 0 but 4 in operand 1, and neither is 1\n  \
         | ij,jk->ik\n  |    ^"
    );
    assert!(matches!(
        Program::einsum_symbolic("i->ii", DType::F32),
        Err(Error::Einsum { .. })
    ));

    let e = program().kernel("nope").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no kernel `nope`; the program defines: mm, scale, isum"
    );
    let empty = Program::from_source("dims N\n").unwrap();
    assert_eq!(
        empty.kernel("k").unwrap_err().to_string(),
        "no kernel `k`: the program defines no kernels"
    );
}

#[test]
fn views_reject_layouts_outside_their_slice() {
    let data = [0f64; 4];
    let e: Error = TensorRef::strided(&data, 1, &[2, 2], &[2, 1])
        .unwrap_err()
        .into();
    assert_eq!(
        e.to_string(),
        "invalid view: the layout addresses elements 1 to 4 but the slice has 4 elements (0 to 3)"
    );
    assert_eq!(
        TensorRef::contiguous(&data, &[3]).unwrap_err().to_string(),
        "the shape holds 3 elements but the slice has 4"
    );
    let mut out = [0i32; 4];
    assert_eq!(
        TensorMut::strided(&mut out, 0, &[2, 2], &[1, 1]).unwrap_err(),
        ViewError::OverlappingOutput {
            shape: vec![2, 2],
            strides: vec![1, 1]
        }
    );
}

/// The output's sentinel, checked after every rejected call.
const UNTOUCHED: f32 = -42.0;

/// Calls `mm` with the given inputs and a 2×2 output; returns the error and checks that the
/// output was not written.
fn rejected(mm: &Kernel, inputs: &[TensorRef<'_>], outputs: usize) -> Error {
    let mut c = vec![UNTOUCHED; 4 * outputs];
    let mut outs: Vec<TensorMut<'_>> = c
        .chunks_mut(4)
        .map(|chunk| TensorMut::contiguous(chunk, &[2, 2]).unwrap())
        .collect();
    let e = mm.call(inputs, &mut outs).unwrap_err();
    drop(outs);
    assert!(
        c.iter().all(|&v| v == UNTOUCHED),
        "{e}: output written: {c:?}"
    );
    e
}

fn call_error(e: &Error) -> (Status, &str) {
    match e {
        Error::Call {
            kernel,
            status,
            message,
        } => {
            assert_eq!(kernel, "mm");
            (*status, message)
        }
        other => panic!("not a call error: {other:?}"),
    }
}

#[test]
fn each_status_code_names_the_argument() {
    let mm = program().kernel("mm").unwrap();
    let a = [1f32; 6];
    let a64 = [1f64; 6];
    let a23 = || TensorRef::contiguous(&a, &[2, 3]).unwrap();
    let b32 = || TensorRef::contiguous(&a, &[3, 2]).unwrap();

    let e = rejected(&mm, &[a23()], 1);
    assert_eq!(
        call_error(&e),
        (
            Status::BadArgCount,
            "it takes 2 input(s) (A, B) and 1 output(s) (C), but was given 1 input(s) and 1 \
             output(s)"
        )
    );
    assert_eq!(
        e.to_string(),
        "kernel `mm` rejected the call (status 1: wrong number of arguments): it takes 2 \
         input(s) (A, B) and 1 output(s) (C), but was given 1 input(s) and 1 output(s)"
    );
    let e = rejected(&mm, &[a23(), b32()], 2);
    assert_eq!(call_error(&e).0, Status::BadArgCount);

    let e = rejected(
        &mm,
        &[a23(), TensorRef::contiguous(&a64, &[3, 2]).unwrap()],
        1,
    );
    assert_eq!(
        call_error(&e),
        (
            Status::BadDType,
            "input `B` has dtype f64, but the kernel declares f32[K, N]"
        )
    );
    let e = rejected(&mm, &[TensorRef::contiguous(&a, &[6]).unwrap(), b32()], 1);
    assert_eq!(
        call_error(&e),
        (
            Status::BadRank,
            "input `A` has rank 1, but the kernel declares f32[M, K]"
        )
    );
    let e = rejected(
        &mm,
        &[a23(), TensorRef::contiguous(&a, &[2, 3]).unwrap()],
        1,
    );
    assert_eq!(
        call_error(&e),
        (
            Status::BadShape,
            "input `B` axis 0 has extent 2, but dim `K` is 3, as bound by input `A` axis 1"
        )
    );
    // The output's shape is checked against the dims the inputs bound.
    let b33 = [1f32; 9];
    let e = rejected(
        &mm,
        &[a23(), TensorRef::contiguous(&b33, &[3, 3]).unwrap()],
        1,
    );
    assert_eq!(
        call_error(&e),
        (
            Status::BadShape,
            "output `C` axis 1 has extent 2, but dim `N` is 3, as bound by input `B` axis 1"
        )
    );
    let scale = program().kernel("scale").unwrap();
    let (x, s) = ([1f64; 4], [1f64]);
    let (mut y, mut t) = ([0f64; 4], [0f64]);
    let e = scale
        .call(
            &[
                TensorRef::contiguous(&x, &[4]).unwrap(),
                TensorRef::contiguous(&s, &[]).unwrap(),
            ],
            &mut [
                TensorMut::contiguous(&mut y, &[4]).unwrap(),
                TensorMut::contiguous(&mut t, &[]).unwrap(),
            ],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel `scale` rejected the call (status 4: wrong shape): input `x` axis 0 has extent \
         4, but its declared extent is 3"
    );
}

/// A descriptor for `data` with the given shape and strides (which the caller keeps alive).
fn desc<T>(data: *const T, dtype: DType, shape: &[i64], strides: &[i64]) -> abi::Tensor {
    abi::Tensor {
        data: data.cast::<c_void>().cast_mut(),
        dtype: dtype.code(),
        rank: shape.len() as i32,
        shape: shape.as_ptr(),
        strides: strides.as_ptr(),
    }
}

#[test]
fn raw_calls_report_aliasing_and_null_pointers_and_write_nothing() {
    let mm = program().kernel("mm").unwrap();
    let mut buf = [1f32, 2.0, 3.0, 4.0, UNTOUCHED, UNTOUCHED];
    let p = buf.as_mut_ptr();
    let (s22, c22) = ([2i64, 2], [2i64, 1]);
    // C is elements 2..6 of the buffer whose elements 0..4 are A: they overlap.
    let args = [
        desc(p, DType::F32, &s22, &c22),
        desc(p, DType::F32, &s22, &c22),
        desc(p.wrapping_add(2), DType::F32, &s22, &c22),
    ];
    // SAFETY: every descriptor addresses elements of `buf`, which outlives the call.
    let e = unsafe { mm.call_raw(&args) }.unwrap_err();
    assert_eq!(
        call_error(&e),
        (Status::Aliasing, "output `C` overlaps input `A` in memory")
    );
    assert_eq!(buf, [1.0, 2.0, 3.0, 4.0, UNTOUCHED, UNTOUCHED]);
    // Inputs may alias each other: A and B both read elements 0..4; C gets A·A.
    let mut c = [UNTOUCHED; 4];
    let a = [1f32, 2.0, 3.0, 4.0];
    let args = [
        desc(a.as_ptr(), DType::F32, &s22, &c22),
        desc(a.as_ptr(), DType::F32, &s22, &c22),
        desc(c.as_mut_ptr(), DType::F32, &s22, &c22),
    ];
    // SAFETY: as above, for `a` and `c`.
    unsafe { mm.call_raw(&args) }.unwrap();
    assert_eq!(c, [7.0, 10.0, 15.0, 22.0]);

    let mut c = [UNTOUCHED; 4];
    let args = [
        desc(std::ptr::null::<f32>(), DType::F32, &s22, &c22),
        desc(a.as_ptr(), DType::F32, &s22, &c22),
        desc(c.as_mut_ptr(), DType::F32, &s22, &c22),
    ];
    // SAFETY: the null pointer is rejected before any access; the others are valid.
    let e = unsafe { mm.call_raw(&args) }.unwrap_err();
    assert_eq!(
        call_error(&e),
        (
            Status::NullPointer,
            "input `A` has a null data pointer but has elements"
        )
    );
    let mut bad = desc(a.as_ptr(), DType::F32, &s22, &c22);
    bad.strides = std::ptr::null();
    let args = [bad, args[1], args[2]];
    // SAFETY: as above.
    let e = unsafe { mm.call_raw(&args) }.unwrap_err();
    assert_eq!(
        call_error(&e),
        (
            Status::NullPointer,
            "input `A` has a null shape or strides pointer"
        )
    );
    // SAFETY: no descriptor is read when the count is wrong.
    let e = unsafe { mm.call_raw(&args[..2]) }.unwrap_err();
    assert_eq!(
        call_error(&e),
        (
            Status::BadArgCount,
            "kernel `mm` takes 3 arguments (inputs A, B; output C), but nargs is 2"
        )
    );
    let mut weird = args[1];
    weird.dtype = 99;
    let args = [args[1], weird, args[2]];
    // SAFETY: as above.
    let e = unsafe { mm.call_raw(&args) }.unwrap_err();
    assert_eq!(
        call_error(&e),
        (
            Status::BadDType,
            "input `B` has dtype code 99, but the kernel declares f32[K, N]"
        )
    );
    let neg = [-1i64, 2];
    let args = [args[0], desc(a.as_ptr(), DType::F32, &neg, &c22), args[2]];
    // SAFETY: as above.
    let e = unsafe { mm.call_raw(&args) }.unwrap_err();
    assert_eq!(
        call_error(&e),
        (
            Status::BadShape,
            "input `B` axis 0 has extent -1, which is negative"
        )
    );
    assert_eq!(c, [UNTOUCHED; 4]);
    // The raw entry point is the same function `call` uses.
    // SAFETY: a null argument array with a count of 0 is rejected without reading anything.
    assert_eq!(
        unsafe { (mm.entry())(std::ptr::null(), 0) },
        status::BAD_ARG_COUNT
    );
}

#[test]
fn calls_and_views_of_small_rank_allocate_nothing() {
    let k = program().kernel("mm").unwrap();
    let (a, b) = (vec![1f32; 6], vec![2f32; 12]);
    let mut c = vec![0f32; 8];
    let inputs = [
        TensorRef::contiguous(&a, &[2, 3]).unwrap(),
        TensorRef::contiguous(&b, &[3, 4]).unwrap(),
    ];
    // The first call may set up lazily initialised state (the error slot, thread-locals).
    k.call(
        &inputs,
        &mut [TensorMut::contiguous(&mut c, &[2, 4]).unwrap()],
    )
    .unwrap();
    let before = allocations();
    for _ in 0..10 {
        let strided = TensorRef::strided(&b, 0, &[3, 4], &[4, 1]).unwrap();
        let mut outputs = [TensorMut::contiguous(&mut c, &[2, 4]).unwrap()];
        k.call(&[inputs[0].clone(), strided], &mut outputs).unwrap();
    }
    assert_eq!(allocations(), before, "a successful call allocated");
    assert_eq!(c, vec![6f32; 8]);
    // A failure allocates its message, and writes nothing.
    c.fill(-1.0);
    let short = TensorRef::contiguous(&b[..9], &[3, 3]).unwrap();
    let err = k
        .call(
            &[inputs[0].clone(), short],
            &mut [TensorMut::contiguous(&mut c, &[2, 4]).unwrap()],
        )
        .unwrap_err();
    assert!(err.to_string().contains("N"), "{err}");
    assert!(allocations() > before);
    assert_eq!(c, vec![-1f32; 8]);
}

#[test]
fn status_codes_round_trip() {
    for code in 1..=7 {
        let s = Status::from_code(code);
        assert_eq!(s.code(), code);
        assert!(!matches!(s, Status::Unknown(_)), "{code}");
    }
    assert_eq!(Status::from_code(42), Status::Unknown(42));
    assert_eq!(
        Status::Aliasing.to_string(),
        "status 6: an output overlaps another argument"
    );
}

#[test]
fn outputs_too_large_to_allocate_are_errors() {
    let outer = Program::einsum_symbolic("i,j->ij", DType::F64)
        .unwrap()
        .kernel("einsum")
        .unwrap();
    let one = [1f64];
    // Stride-0 views of one element stand for huge vectors without memory behind them.
    let huge = TensorRef::strided(&one, 0, &[1 << 40], &[0]).unwrap();
    let e = outer.run(&[huge.clone(), huge]).unwrap_err();
    // 2^80 f64 elements: the message says how much was asked for.
    assert_eq!(
        e.to_string(),
        "kernel `einsum`: cannot allocate output `out` (f64[1099511627776, 1099511627776]): \
         9671406556917033397649408 bytes (8.000 YiB)"
    );
}

#[test]
fn specialised_variants_are_cached_by_dim_values() {
    let mm = program().kernel("mm").unwrap();
    let v = mm.specialize(&[&[2, 3], &[3, 2]]).unwrap();
    assert_eq!(
        v.signature()
            .dims
            .iter()
            .map(|d| d.value)
            .collect::<Vec<_>>(),
        [Some(2), Some(3), Some(2)]
    );
    let again = mm.clone().specialize(&[&[2, 3], &[3, 2]]).unwrap();
    assert_eq!(v.entry() as usize, again.entry() as usize, "cached");
    let other = mm.specialize(&[&[4, 3], &[3, 2]]).unwrap();
    assert_ne!(v.entry() as usize, other.entry() as usize);
    let (a, b) = (seq(6, 1.0), seq(6, 0.5));
    let out = v
        .run(&[
            TensorRef::contiguous(&a, &[2, 3]).unwrap(),
            TensorRef::contiguous(&b, &[3, 2]).unwrap(),
        ])
        .unwrap();
    let got: Vec<f32> = out[0].to_f64_vec().iter().map(|&x| x as f32).collect();
    assert_close(&got, &matmul(&a, &b, 2, 3, 2));
    // The variant accepts only its shapes.
    let a3 = seq(9, 1.0);
    let e = v
        .run(&[
            TensorRef::contiguous(&a3, &[3, 3]).unwrap(),
            TensorRef::contiguous(&b, &[3, 2]).unwrap(),
        ])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel `mm` rejected the call (status 4: wrong shape): input `A` axis 0 has extent 3, \
         but dim `M` is fixed to 2"
    );
    assert_eq!(
        mm.specialize(&[&[2, 3]]).unwrap_err().to_string(),
        "kernel `mm`: the kernel takes 2 input(s), but 1 shape(s) were given"
    );
    assert_eq!(
        mm.specialize(&[&[2, 3], &[3]]).unwrap_err().to_string(),
        "kernel `mm`: input `B` has rank 1, but the kernel declares rank 2"
    );
    assert_eq!(
        mm.specialize(&[&[2, 3], &[2, 2]]).unwrap_err().to_string(),
        "kernel `mm`: input `B` axis 0 has extent 2, but dim `K` is 3, as bound by input `A` \
         axis 1"
    );
}

#[cfg(feature = "ndarray")]
mod nd {
    use super::*;
    use einc::ndarray::{s, Array2, Axis};

    #[test]
    fn ndarray_views_of_any_strides_in_and_arrays_out() {
        let mm = program().kernel("mm").unwrap();
        let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32 - 5.0);
        let b = Array2::from_shape_fn((2, 3), |(i, j)| (i + 2 * j) as f32 * 0.5);
        // A: rows reversed, every other column (2×3 after transposing a 3×2 slice).
        let mut av = a.slice(s![.., ..;2]);
        av.invert_axis(Axis(0));
        let av = av.reversed_axes();
        let bt = b.t();
        let want = av.dot(&bt);
        let got = mm.run_ndarray::<f32>(&[av.into(), bt.into()]).unwrap();
        assert_eq!(got[0].shape(), &[2, 2]);
        for (g, w) in got[0].iter().zip(want.iter()) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{got:?} vs {want}"
            );
        }
        // Into a reversed, transposed ndarray output.
        let mut c = Array2::<f32>::zeros((2, 2));
        let mut cv = c.view_mut().reversed_axes();
        cv.invert_axis(Axis(1));
        mm.call(&[av.into(), bt.into()], &mut [cv.into()]).unwrap();
        for i in 0..2 {
            for j in 0..2 {
                let w = want[[i, j]];
                assert!((c[[1 - j, i]] - w).abs() <= 1e-5 * w.abs().max(1.0));
            }
        }
        let e = mm.run_ndarray::<f64>(&[av.into(), bt.into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel `mm`: output `C` has dtype f32, not the f64 asked for"
        );
    }

    #[test]
    fn interleaved_mutable_views_are_reported_as_aliasing() {
        // Two outputs: the even and the odd columns of one matrix. They share no element but
        // their address ranges interleave, which the ABI rejects by design.
        let p = Program::from_source(
            "dims N\nkernel two(x: f64[N]) -> (a: f64[N], b: f64[N]) {\n    a[i] = x[i]\n    \
             b[i] = -x[i]\n}\n",
        )
        .unwrap();
        let two = p.kernel("two").unwrap();
        let x = einc::ndarray::arr1(&[1.0, 2.0]);
        let mut m = Array2::<f64>::zeros((2, 2));
        let (even, odd) = m.multi_slice_mut((s![.., 0], s![.., 1]));
        let e = two
            .call(&[x.view().into()], &mut [even.into(), odd.into()])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel `two` rejected the call (status 6: an output overlaps another argument): \
             output `b` overlaps output `a` in memory"
        );
        assert!(m.iter().all(|&v| v == 0.0));
    }
}

/// The calls the README's Rust section shows, as written there.
#[test]
fn the_readme_rust_section_runs() -> Result<(), einc::Error> {
    let a: Vec<f32> = (0..6).map(|v| v as f32).collect();
    let b: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect();
    let program = Program::from_source(
        "dims M, K, N
     kernel mm(A: f32[M, K], B: f32[K, N]) -> (C: f32[M, N]) { C[i, j] = A[i, k] * B[k, j] }",
    )?;
    let c = program.kernel("mm")?.run(&[
        TensorRef::contiguous(&a, &[2, 3])?,
        TensorRef::contiguous(&b, &[3, 4])?,
    ])?;
    let e = Program::einsum("ij,jk->ik", &[(DType::F32, &[2, 3]), (DType::F32, &[3, 4])])?;
    let c2 = e.kernel("einsum")?.run(&[
        TensorRef::contiguous(&a, &[2, 3])?,
        TensorRef::contiguous(&b, &[3, 4])?,
    ])?;
    assert_eq!(c[0].shape(), &[2, 4]);
    assert_eq!(c[0].to_f64_vec(), c2[0].to_f64_vec());
    assert_close(
        &c[0]
            .to_f64_vec()
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        &matmul(&a, &b, 2, 3, 4),
    );
    Ok(())
}
