//! Kernel-call safety: random descriptors against compiled kernels, under guard pages.
//!
//! Each call starts from a valid call (random extents and layouts: padded, permuted,
//! reversed, broadcast inputs) and, half of the time, breaks it: a wrong argument count or
//! null `args`, a wrong dtype or rank, null `shape`/`strides`/`data`, negative, inconsistent,
//! mismatched or huge extents, huge or `i64::MIN` strides whose reach overflows, an output
//! with a stride 0 or overlapping another argument; or it makes two inputs share memory
//! (allowed). A reference model of `docs/abi.md`, written here from the document, predicts the
//! status:
//! - predicted `EINC_OK`: every argument with elements lives in its own `mmap` region whose
//!   addressed bytes end (or start) exactly at an inaccessible guard page, so a read or write
//!   one element outside the argument faults; arguments without elements point into an
//!   inaccessible region. The call must return `EINC_OK`, compute the interpreter's results,
//!   leave the inputs and every unaddressed byte of the outputs' regions untouched;
//! - predicted error: every `data` points into an inaccessible region, so touching any
//!   element faults; the call must return exactly the predicted status.
//!
//! A fault kills the test process: that is a kernel touching memory it must not. Set
//! `EINC_ABI_TRACE=1` to print each call before it is made.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::compiler::interp;
use einc::compiler::ir::tensor::{AxisMap, Extent, Module, OpKind};
use einc::compiler::rng::Rng;
use einc::compiler::testkit::differential::{
    compare, compile, random_array, random_schedules, variants, Tolerance,
};
use einc::compiler::testkit::layout::{random_layout, sentinel, zeros, Layout};
use einc::runtime::abi::{self, status};
use einc::runtime::array::for_each_index;
use einc::runtime::{Array, DType, Scalar};
use std::collections::HashMap;
use std::ffi::c_void;

const SOURCE: &str = "\
dims M, K, N
kernel mm(A: f32[M, K], B: f32[K, N]) -> (C: f32[M, N]) {
    C[i, j] = A[i, k] * B[k, j]
}
kernel row(A: f64[M, N], x: f64[N]) -> (y: f64[N], z: f64[M, N]) {
    y[j] = A[0, j] + x[j]
    z[i, j] = A[i, j] * 2
}
kernel soft(S: f32[M, N]) -> (P: f32[M, N], r: f32[M]) {
    P[i, j] = softmax[j](S[i, j])
    r[i] = logsumexp[j](S[i, j])
}
kernel cross(a: f32[3], b: f32[3]) -> (c: f32[3]) {
    c[i] = eps[i, j, k] * a[j] * b[k]
}
kernel isum(v: i32[N], s: i32) -> (t: i32) {
    t = sum[i](v[i]) * s
}
kernel perm(A: i64[M, K, N]) -> (B: i64[N, K, M]) {
    B[n, k, m] = A[m, k, n]
}
";

const PAGE: usize = 4096;

/// Anonymous memory: `pages` of it, inaccessible except where [`Region::open`] opens it.
struct Region {
    base: *mut u8,
    len: usize,
}

impl Region {
    fn new(pages: usize) -> Region {
        let len = pages * PAGE;
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap failed");
        Region {
            base: base.cast(),
            len,
        }
    }

    /// Makes pages `first..first + count` readable and writable.
    fn open(&self, first: usize, count: usize) {
        assert!((first + count) * PAGE <= self.len);
        // SAFETY: the pages belong to this mapping.
        let r = unsafe {
            libc::mprotect(
                self.base.add(first * PAGE).cast(),
                count * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(r, 0, "mprotect failed");
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `Region::new` and nothing points into it any more.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// `bytes` of accessible memory between two guard pages, flush against one of them.
struct Guarded {
    /// Keeps the mapping alive.
    _region: Region,
    start: *mut u8,
    bytes: usize,
}

impl Guarded {
    fn new(bytes: usize, flush_end: bool) -> Guarded {
        let pages = bytes.div_ceil(PAGE).max(1);
        let region = Region::new(pages + 2);
        region.open(1, pages);
        // SAFETY: both offsets are inside the opened pages.
        let start = unsafe {
            if flush_end {
                region.base.add((1 + pages) * PAGE - bytes)
            } else {
                region.base.add(PAGE)
            }
        };
        Guarded {
            _region: region,
            start,
            bytes,
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `start..start + bytes` is accessible and owned by this value.
        unsafe { std::slice::from_raw_parts(self.start, self.bytes) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.start, self.bytes) }
    }
}

/// One argument of a call: the descriptor's fields as Rust values.
#[derive(Clone, Debug)]
struct Desc {
    dtype: i32,
    rank: i32,
    extents: Option<Vec<i64>>,
    strides: Option<Vec<i64>>,
    /// Where `data` points: its own guarded buffer, another argument's (inputs sharing
    /// memory, or an output overlapping), or nowhere (null). When the call is expected to
    /// fail an argument rule, every non-null `data` points into the inaccessible region.
    data: Data,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Data {
    Null,
    /// Own buffer (index = this argument).
    Own,
    /// Element 0 at byte `offset` of argument `arg`'s buffer.
    Into {
        arg: usize,
        offset: usize,
    },
}

/// What the model needs to know of a kernel: the declared arguments and the largest fixed
/// position read on each symbolic axis of each input.
struct Decl {
    name: String,
    args: Vec<(DType, Vec<Extent>)>,
    ninputs: usize,
    dims: Vec<String>,
    needs: HashMap<(usize, usize), u64>,
}

fn decl(module: &Module, name: &str) -> Decl {
    let f = module.func(name).unwrap();
    let mut args: Vec<(DType, Vec<Extent>)> = f
        .params
        .iter()
        .map(|&p| (f.value(p).ty.dtype, f.value(p).ty.shape.clone()))
        .collect();
    let ninputs = args.len();
    args.extend(f.results.iter().map(|r| {
        let ty = &f.value(r.value).ty;
        (ty.dtype, ty.shape.clone())
    }));
    let mut needs = HashMap::new();
    for op in &f.ops {
        let OpKind::Generic(g) = &op.kind;
        for input in &g.inputs {
            let Some(p) = f.params.iter().position(|&v| v == input.value) else {
                continue;
            };
            for (axis, m) in input.map.iter().enumerate() {
                if let (AxisMap::Fixed(pos), Extent::Dim(_)) = (m, &args[p].1[axis]) {
                    let e = needs.entry((p, axis)).or_insert(*pos);
                    *e = (*e).max(*pos);
                }
            }
        }
    }
    Decl {
        name: name.to_string(),
        args,
        ninputs,
        dims: module
            .dims
            .iter()
            .filter(|d| d.value.is_none())
            .map(|d| d.name.clone())
            .collect(),
        needs,
    }
}

fn fixed(module: &Module, e: &Extent) -> Option<i64> {
    match e {
        Extent::Fixed(n) => Some(*n as i64),
        Extent::Dim(d) => module.dim_value(d).map(|v| v as i64),
    }
}

/// Lowest and highest element offsets of an argument, if they fit.
fn reach(extents: &[i64], strides: &[i64]) -> Option<(i64, i64)> {
    let (mut lo, mut hi) = (0i64, 0i64);
    for (&e, &s) in extents.iter().zip(strides) {
        let r = (e - 1).checked_mul(s)?;
        if r < 0 {
            lo = lo.checked_add(r)?;
        } else {
            hi = hi.checked_add(r)?;
        }
    }
    Some((lo, hi))
}

/// The byte range `[lo, hi)` relative to `data`, if it fits in 64-bit byte offsets.
fn byte_range(extents: &[i64], strides: &[i64], size: i64) -> Option<(i64, i64)> {
    let (lo, hi) = reach(extents, strides)?;
    Some((lo.checked_mul(size)?, hi.checked_add(1)?.checked_mul(size)?))
}

/// Whether an output reaches an element twice, by the documented rule: the axes of extent > 1
/// sorted by |stride| (equal strides in axis order), each stride must exceed the span of all
/// the axes before it.
fn self_overlaps(extents: &[i64], strides: &[i64]) -> bool {
    let mut axes: Vec<(i64, i64)> = extents
        .iter()
        .zip(strides)
        .filter(|(&e, _)| e > 1)
        .map(|(&e, &s)| (e, s.unsigned_abs() as i64))
        .collect();
    axes.sort_by_key(|&(_, s)| s);
    let mut span = 0i64;
    for (e, s) in axes {
        if s <= span {
            return true;
        }
        span += (e - 1) * s;
    }
    false
}

/// The status `docs/abi.md` prescribes for a call (the first rule broken, in its order).
/// `base[i]` is argument `i`'s `data` as an address (0 for null).
fn model(
    module: &Module,
    d: &Decl,
    args: &[Desc],
    nargs: i64,
    null_args: bool,
    base: &[u64],
) -> i32 {
    if null_args || nargs != d.args.len() as i64 {
        return status::BAD_ARG_COUNT;
    }
    let mut dims: HashMap<&str, i64> = HashMap::new();
    // Addressed byte range of each argument with elements.
    let mut ranges: Vec<Option<(u64, u64)>> = Vec::new();
    for (i, (a, (dtype, shape))) in args.iter().zip(&d.args).enumerate() {
        if a.dtype != dtype.code() {
            return status::BAD_DTYPE;
        }
        if a.rank != shape.len() as i32 {
            return status::BAD_RANK;
        }
        let (extents, strides) = match (&a.extents, &a.strides) {
            _ if shape.is_empty() => (Vec::new(), Vec::new()),
            (Some(e), Some(s)) => (e.clone(), s.clone()),
            _ => return status::NULL_POINTER,
        };
        for (axis, (&e, decl)) in extents.iter().zip(shape).enumerate() {
            if e < 0 {
                return status::BAD_SHAPE;
            }
            if let Some(f) = fixed(module, decl) {
                if e != f {
                    return status::BAD_SHAPE;
                }
            } else if let Extent::Dim(name) = decl {
                match dims.get(name.as_str()) {
                    Some(&bound) if bound != e => return status::BAD_SHAPE,
                    Some(_) => {}
                    None => {
                        dims.insert(name, e);
                    }
                }
                if d.needs.get(&(i, axis)).is_some_and(|&p| e <= p as i64) {
                    return status::BAD_SHAPE;
                }
            }
        }
        let empty = extents.contains(&0);
        if base[i] == 0 && !empty {
            return status::NULL_POINTER;
        }
        // Offsets, then bytes, then addresses (unsigned): any overflow is an error.
        let range =
            byte_range(&extents, &strides, dtype.size_bytes() as i64).and_then(|(lo, hi)| {
                Some((
                    base[i].checked_sub(lo.unsigned_abs())?,
                    base[i].checked_add(u64::try_from(hi).ok()?)?,
                ))
            });
        if empty {
            ranges.push(None);
            continue;
        }
        let Some(range) = range else {
            return status::BAD_SHAPE;
        };
        ranges.push(Some(range));
    }
    for j in d.ninputs..args.len() {
        let e = args[j].extents.clone().unwrap_or_default();
        let s = args[j].strides.clone().unwrap_or_default();
        if ranges[j].is_some() && self_overlaps(&e, &s) {
            return status::ALIASING;
        }
        for i in 0..j {
            if let (Some(a), Some(b)) = (ranges[i], ranges[j]) {
                if a.0 < b.1 && b.0 < a.1 {
                    return status::ALIASING;
                }
            }
        }
    }
    status::OK
}

/// A valid call: extents for the symbolic dims (0 to 5) and a random layout per argument.
fn valid_call(module: &Module, d: &Decl, rng: &mut Rng) -> Vec<Desc> {
    let values: HashMap<&str, i64> = d
        .dims
        .iter()
        .map(|n| {
            (
                n.as_str(),
                if rng.below(8) == 0 {
                    0
                } else {
                    1 + rng.below(5) as i64
                },
            )
        })
        .collect();
    d.args
        .iter()
        .enumerate()
        .map(|(i, (dtype, shape))| {
            let extents: Vec<i64> = shape
                .iter()
                .enumerate()
                .map(|(axis, e)| {
                    let v = fixed(module, e).unwrap_or_else(|| match e {
                        Extent::Dim(n) => values[n.as_str()],
                        Extent::Fixed(n) => *n as i64,
                    });
                    // A fixed position needs the axis to reach it.
                    d.needs.get(&(i, axis)).map_or(v, |&p| v.max(p as i64 + 1))
                })
                .collect();
            let sizes: Vec<usize> = extents.iter().map(|&e| e as usize).collect();
            let Layout { strides, .. } = random_layout(rng, &sizes, i < d.ninputs);
            Desc {
                dtype: dtype.code(),
                rank: shape.len() as i32,
                extents: Some(extents),
                strides: Some(strides),
                data: Data::Own,
            }
        })
        .collect()
}

/// Breaks the call in one random way (or makes two inputs share memory, which is allowed).
fn mutate(d: &Decl, args: &mut [Desc], nargs: &mut i64, null_args: &mut bool, rng: &mut Rng) {
    let n = args.len();
    let i = rng.below(n);
    let a = &mut args[i];
    let huge = [
        i64::MAX,
        i64::MIN,
        i64::MAX / 2,
        1 << 40,
        1 << 62,
        -(1 << 62),
    ];
    match rng.below(14) {
        0 => *nargs += if rng.below(2) == 0 { 1 } else { -1 },
        1 => *null_args = true,
        2 => a.dtype = [0, 5, -1, 99, (a.dtype % 4) + 1][rng.below(5)],
        3 => a.rank += [1, -1, 7, -3][rng.below(4)],
        4 => {
            if rng.below(2) == 0 {
                a.extents = None;
            } else {
                a.strides = None;
            }
        }
        5 => a.data = Data::Null,
        6 | 7 => {
            if let Some(e) = a.extents.as_mut().filter(|e| !e.is_empty()) {
                let k = rng.below(e.len());
                e[k] = [-1, e[k] + 1, e[k] - 1, 0, 1 << 40, i64::MAX, i64::MIN][rng.below(7)];
            }
        }
        8 | 9 => {
            if let Some(s) = a.strides.as_mut().filter(|s| !s.is_empty()) {
                let k = rng.below(s.len());
                s[k] = huge[rng.below(huge.len())];
            }
        }
        10 if i >= d.ninputs => {
            // An output with stride 0 (or equal strides) on an axis.
            if let Some(s) = a.strides.as_mut().filter(|s| !s.is_empty()) {
                let k = rng.below(s.len());
                s[k] = if rng.below(2) == 0 || s.len() < 2 {
                    0
                } else {
                    s[(k + 1) % s.len()]
                };
            }
        }
        11 | 12 => {
            // Point argument `i` into argument `j`'s buffer: an overlap when `i` or `j` is an
            // output, shared inputs otherwise.
            let j = rng.below(n);
            if j != i && args[j].dtype == args[i].dtype {
                args[i].data = Data::Into {
                    arg: j,
                    offset: rng.below(4),
                };
            }
        }
        _ => {}
    }
}

/// Byte size of the buffer an argument's layout needs, and the byte offset of element 0.
fn extent_bytes(a: &Desc, size: usize) -> Option<(usize, usize)> {
    // A rank-0 argument's shape and strides are never read, so they may be null.
    let (e, s) = (
        a.extents.clone().unwrap_or_default(),
        a.strides.clone().unwrap_or_default(),
    );
    let (lo, hi) = byte_range(&e, &s, size as i64)?;
    Some(((hi - lo) as usize, (-lo) as usize))
}

fn element_bytes(dtype: DType, s: Scalar) -> Vec<u8> {
    match s.cast(dtype) {
        Scalar::F32(v) => v.to_ne_bytes().to_vec(),
        Scalar::F64(v) => v.to_ne_bytes().to_vec(),
        Scalar::I32(v) => v.to_ne_bytes().to_vec(),
        Scalar::I64(v) => v.to_ne_bytes().to_vec(),
    }
}

fn read_element(dtype: DType, b: &[u8]) -> Scalar {
    match dtype {
        DType::F32 => Scalar::F32(f32::from_ne_bytes(b.try_into().unwrap())),
        DType::F64 => Scalar::F64(f64::from_ne_bytes(b.try_into().unwrap())),
        DType::I32 => Scalar::I32(i32::from_ne_bytes(b.try_into().unwrap())),
        DType::I64 => Scalar::I64(i64::from_ne_bytes(b.try_into().unwrap())),
    }
}

/// Byte offset of element `index` from element 0.
fn offset_of(index: &[usize], strides: &[i64], size: usize) -> i64 {
    index
        .iter()
        .zip(strides)
        .map(|(&i, &s)| i as i64 * s)
        .sum::<i64>()
        * size as i64
}

/// The largest buffer a call may need before it is left out (a valid call that addresses
/// terabytes cannot be backed by memory here).
const MAX_BUFFER: usize = 1 << 24;

/// The most elements an argument of a call may have before the call is left out.
const MAX_ELEMENTS: u128 = 1 << 16;

/// One call: predicts its status, sets memory up, calls, checks. Returns the status, or -1
/// for a call left out (one that cannot be backed by memory).
fn one_call(
    module: &Module,
    d: &Decl,
    entry: abi::KernelFn,
    no_access: &Region,
    rng: &mut Rng,
    mutated: bool,
    what: &str,
) -> i32 {
    let mut args = valid_call(module, d, rng);
    let (mut nargs, mut null_args) = (args.len() as i64, false);
    if mutated {
        mutate(d, &mut args, &mut nargs, &mut null_args, rng);
    }
    let sizes: Vec<usize> = d.args.iter().map(|(t, _)| t.size_bytes()).collect();
    let empty: Vec<bool> = args
        .iter()
        .map(|a| a.extents.as_ref().is_some_and(|e| e.contains(&0)))
        .collect();
    // First with every pointer into the inaccessible region: an argument rule broken there is
    // broken wherever the data lives, and the call must then touch nothing.
    let forbidden = no_access.base as u64 + (no_access.len / 2) as u64;
    let mut base: Vec<u64> = args
        .iter()
        .map(|a| if a.data == Data::Null { 0 } else { forbidden })
        .collect();
    let mut want = model(module, d, &args, nargs, null_args, &base);
    let mut buffers: Vec<Option<(Guarded, usize)>> = (0..args.len()).map(|_| None).collect();
    let elements = |a: &Desc| {
        a.extents
            .iter()
            .flatten()
            .fold(1u128, |n, &e| n.saturating_mul(e.max(0) as u128))
    };
    if (want == status::OK || want == status::ALIASING)
        && args.iter().any(|a| elements(a) > MAX_ELEMENTS)
    {
        // Valid, but too much work (a broadcast input of 2^40 elements needs no memory):
        // leave it out.
        return -1;
    }
    if want == status::OK || want == status::ALIASING {
        // The arguments are valid: give each its own guarded buffer (or a place in another's).
        for (i, a) in args.iter().enumerate() {
            if a.data == Data::Own && !empty[i] {
                let (bytes, zero) = extent_bytes(a, sizes[i]).unwrap();
                if bytes > MAX_BUFFER {
                    return -1;
                }
                buffers[i] = Some((Guarded::new(bytes, rng.below(2) == 0), zero));
            }
        }
        for (i, a) in args.iter().enumerate() {
            if empty[i] {
                continue;
            }
            base[i] = match a.data {
                Data::Own => {
                    let (g, zero) = buffers[i].as_ref().unwrap();
                    g.start as u64 + *zero as u64
                }
                Data::Into { arg, offset } => match &buffers[arg] {
                    Some((g, zero)) => g.start as u64 + (*zero + offset * sizes[i]) as u64,
                    None => return -1,
                },
                Data::Null => base[i],
            };
        }
        // An argument placed in another's buffer must stay inside it.
        for (i, a) in args.iter().enumerate() {
            let Data::Into { arg, .. } = a.data else {
                continue;
            };
            if empty[i] {
                continue;
            }
            let (g, _) = buffers[arg].as_ref().unwrap();
            let (bytes, zero) = extent_bytes(a, sizes[i]).unwrap();
            let (lo, hi) = (-(zero as i64), bytes as i64 - zero as i64);
            let (start, end) = (g.start as i64, g.start as i64 + g.bytes as i64);
            if (base[i] as i64) + lo < start || (base[i] as i64) + hi > end {
                return -1;
            }
        }
        want = model(module, d, &args, nargs, null_args, &base);
    }
    // Inputs: random elements over each own buffer; outputs: the sentinel everywhere.
    for (i, slot) in buffers.iter_mut().enumerate() {
        let Some((g, _)) = slot else { continue };
        let (dtype, size) = (d.args[i].0, sizes[i]);
        let n = g.bytes / size;
        let fill = if i < d.ninputs {
            random_array(rng, dtype, &[n], false)
        } else {
            let mut a = zeros(dtype, &[n]);
            for p in 0..n {
                a.set(&[p], sentinel(dtype));
            }
            a
        };
        let bytes = g.bytes_mut();
        for p in 0..n {
            bytes[p * size..(p + 1) * size].copy_from_slice(&element_bytes(dtype, fill.get(&[p])));
        }
    }
    let before: Vec<Option<Vec<u8>>> = buffers
        .iter()
        .map(|b| b.as_ref().map(|(g, _)| g.bytes().to_vec()))
        .collect();
    // Logical inputs, read through the descriptors.
    let read = |i: usize| -> Array {
        let dtype = d.args[i].0;
        let shape: Vec<usize> = args[i]
            .extents
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|&e| e as usize)
            .collect();
        let strides = args[i].strides.clone().unwrap_or_default();
        let mut a = zeros(dtype, &shape);
        for_each_index(&shape, |ix| {
            let at = base[i] as i64 + offset_of(ix, &strides, sizes[i]);
            // SAFETY: the element lies in a guarded buffer (checked above).
            let b = unsafe { std::slice::from_raw_parts(at as *const u8, sizes[i]) };
            a.set(ix, read_element(dtype, b));
        });
        a
    };
    let logical: Vec<Array> = if want == status::OK {
        (0..d.ninputs).map(read).collect()
    } else {
        Vec::new()
    };
    let descriptors: Vec<abi::Tensor> = args
        .iter()
        .enumerate()
        .map(|(i, a)| abi::Tensor {
            data: base[i] as *mut c_void,
            dtype: a.dtype,
            rank: a.rank,
            shape: a.extents.as_ref().map_or(std::ptr::null(), |e| e.as_ptr()),
            strides: a.strides.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
        })
        .collect();
    if std::env::var_os("EINC_ABI_TRACE").is_some() {
        eprintln!("{what}: nargs {nargs}, null {null_args}, want {want}, args {args:?}");
    }
    let ptr = if null_args {
        std::ptr::null()
    } else {
        descriptors.as_ptr()
    };
    // SAFETY: every descriptor's shape and strides hold `rank` entries or are null (a wrong
    // rank is rejected before they are read); data pointers either address guarded buffers
    // that cover what the call reaches, or the inaccessible region (a fault there is the bug
    // this test looks for). `nargs` larger than the array is rejected before it is read.
    let got = unsafe { entry(ptr, nargs) };
    assert_eq!(
        got,
        want,
        "{what}: the kernel returned {got} ({}), the ABI prescribes {want} ({}) for {args:?} \
         (nargs {nargs}, null args {null_args})",
        status::describe(got),
        status::describe(want)
    );
    // Every input byte, and every byte of an output's buffer that the output does not
    // address, is as it was; on an error, every byte is.
    let mut addressed: Vec<Vec<bool>> = buffers
        .iter()
        .map(|b| b.as_ref().map_or(Vec::new(), |(g, _)| vec![false; g.bytes]))
        .collect();
    if got == status::OK {
        let results = interp::run(module, &d.name, &logical).unwrap();
        for (k, w) in results.iter().enumerate() {
            let i = d.ninputs + k;
            let Some((g, zero)) = buffers[i].as_ref() else {
                continue;
            };
            let strides = args[i].strides.clone().unwrap_or_default();
            let mut out = zeros(w.dtype(), w.shape());
            for_each_index(w.shape(), |ix| {
                let at = (*zero as i64 + offset_of(ix, &strides, sizes[i])) as usize;
                out.set(ix, read_element(w.dtype(), &g.bytes()[at..at + sizes[i]]));
                addressed[i][at..at + sizes[i]]
                    .iter_mut()
                    .for_each(|b| *b = true);
            });
            compare(&out, w, Tolerance::F32)
                .unwrap_or_else(|e| panic!("{what}: output {k}: {e}; {args:?}"));
        }
    }
    for (i, b) in buffers.iter().enumerate() {
        let Some((g, _)) = b else { continue };
        let old = before[i].as_ref().unwrap();
        for (p, (x, y)) in g.bytes().iter().zip(old).enumerate() {
            assert!(
                x == y || (i >= d.ninputs && addressed[i][p]),
                "{what}: byte {p} of argument {i}'s buffer changed ({y} -> {x}); status {got}; \
                 {args:?}"
            );
        }
    }
    got
}

#[test]
fn random_descriptors_get_an_error_with_nothing_touched_or_the_right_results() {
    let (module, diags) = einc::compiler::sema::compile_source(SOURCE);
    let module = module.unwrap_or_else(|| panic!("{diags:?}"));
    let no_access = Region::new(64);
    let calls: u64 = std::env::var("EINC_ABI_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut seen: HashMap<i32, usize> = HashMap::new();
    let chosen = variants()
        .into_iter()
        .filter(|v| v.name == "-O2" || v.name == "-O0")
        .chain([random_schedules(7)]);
    for variant in chosen {
        let program = compile(&module, &variant).unwrap();
        for f in &module.funcs {
            let d = decl(&module, &f.name);
            let kernel = program.kernel(&f.name).unwrap();
            for n in 0..calls {
                let mut rng =
                    Rng::new(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ f.name.len() as u64 | 1);
                let what = format!("{} ({}), call {n}", f.name, variant.name);
                let code = one_call(
                    &module,
                    &d,
                    kernel.entry(),
                    &no_access,
                    &mut rng,
                    n % 2 == 1,
                    &what,
                );
                *seen.entry(code).or_default() += 1;
            }
        }
    }
    // Every status the model can predict came up.
    for code in [
        status::OK,
        status::BAD_ARG_COUNT,
        status::BAD_DTYPE,
        status::BAD_RANK,
        status::BAD_SHAPE,
        status::NULL_POINTER,
        status::ALIASING,
    ] {
        assert!(
            seen.get(&code).copied().unwrap_or(0) > 10,
            "status {code} came up too rarely: {seen:?}"
        );
    }
}

#[test]
fn temporaries_that_cannot_be_allocated_are_out_of_memory_with_nothing_written() {
    // `P` and the parts of its softmax are temporaries of f32[N, M]. With N = 1 and
    // M = 2^46 they need 2^48 bytes (256 TiB: more than a 47-bit address space, so `malloc`
    // fails whatever the overcommit policy). The input is one element broadcast along M
    // (stride 0), a valid argument.
    let source = "dims N, M\nkernel k(S: f32[N, M]) -> (r: f32[N]) {\n    \
                  P[i, j] = softmax[j](S[i, j])\n    r[i] = sum[j](P[i, j])\n}\n";
    let (module, diags) = einc::compiler::sema::compile_source(source);
    let module = module.unwrap_or_else(|| panic!("{diags:?}"));
    for variant in variants() {
        // The premise: the compiled kernel has a temporary that grows with M (a pass that
        // removed every one would make the call run 2^46 iterations instead).
        let loops = einc::compiler::compile::compile(&module, &variant.options).unwrap();
        let temps_grow_with_m = loops.funcs[0].buffers.iter().any(|b| {
            b.kind == einc::compiler::ir::loops::BufferKind::Temp
                && b.shape.contains(&Extent::Dim("M".into()))
        });
        assert!(
            temps_grow_with_m,
            "{}: no temporary depends on M; choose another kernel for this test",
            variant.name
        );
        let program = compile(&module, &variant).unwrap();
        let kernel = program.kernel("k").unwrap();
        let mut s = [1.5f32];
        let mut r = Guarded::new(4, true);
        r.bytes_mut()
            .copy_from_slice(&element_bytes(DType::F32, sentinel(DType::F32)));
        let (s_shape, s_strides) = ([1i64, 1 << 46], [0i64, 0]);
        let (r_shape, r_strides) = ([1i64], [1i64]);
        let args = [
            abi::Tensor {
                data: s.as_mut_ptr().cast(),
                dtype: DType::F32.code(),
                rank: 2,
                shape: s_shape.as_ptr(),
                strides: s_strides.as_ptr(),
            },
            abi::Tensor {
                data: r.start.cast(),
                dtype: DType::F32.code(),
                rank: 1,
                shape: r_shape.as_ptr(),
                strides: r_strides.as_ptr(),
            },
        ];
        // SAFETY: `s` holds the one element every index of S reaches; `r` holds r's element.
        let code = unsafe { (kernel.entry())(args.as_ptr(), 2) };
        assert_eq!(
            code,
            status::OUT_OF_MEMORY,
            "{}: {}",
            variant.name,
            status::describe(code)
        );
        assert_eq!(
            r.bytes(),
            element_bytes(DType::F32, sentinel(DType::F32)).as_slice(),
            "{}: the output was written",
            variant.name
        );
        assert_eq!(s, [1.5]);
    }
}
