//! Calling a kernel through its C ABI entry point, and turning a status code into a message
//! that names the argument at fault.
//!
//! The entry point's status is authoritative: this module only re-derives, from the same
//! descriptors and in the entry point's checking order (`docs/abi.md`), which argument made
//! it fail, so that the error says more than the code alone.

use super::error::{Error, Status};
use crate::codegen::{JitKernel, KernelSignature};
use crate::ir::tensor::printer::print_type;
use crate::ir::tensor::{Extent, TensorType};
use einc_runtime::abi::{self, status};
use einc_runtime::DType;

/// Calls the entry point with `args` and maps a non-zero status to [`Error::Call`].
///
/// # Safety
/// `args` must satisfy the ABI's contract for the memory it points at: each `shape` and
/// `strides` pointer null or valid for `rank` reads, each `data` valid for every element its
/// layout addresses (reads for inputs, writes for outputs), for the duration of the call.
pub(crate) unsafe fn invoke(
    kernel: &JitKernel,
    args: &[abi::Tensor],
    split: Option<(usize, usize)>,
) -> Result<(), Error> {
    let nargs = i64::try_from(args.len()).unwrap_or(i64::MAX);
    // SAFETY: the caller upholds the ABI contract; the entry point validates the rest.
    let code = unsafe { (kernel.entry())(args.as_ptr(), nargs) };
    if code == status::OK {
        return Ok(());
    }
    // SAFETY: as above, the descriptors' shape and stride arrays are readable.
    let views: Vec<ArgView> = args.iter().map(|t| unsafe { ArgView::read(t) }).collect();
    let sig = kernel.signature();
    Err(Error::Call {
        kernel: sig.name.clone(),
        status: Status::from_code(code),
        message: explain(sig, &views, split, code)
            .unwrap_or_else(|| status::describe(code).to_string()),
    })
}

/// What a descriptor says, copied out so that messages can be derived without `unsafe`.
struct ArgView {
    dtype: i32,
    rank: i32,
    shape: Option<Vec<i64>>,
    strides: Option<Vec<i64>>,
    data: usize,
}

impl ArgView {
    /// # Safety
    /// Non-null `shape` and `strides` must be valid for `rank` reads.
    unsafe fn read(t: &abi::Tensor) -> ArgView {
        let read = |p: *const i64| {
            let n = usize::try_from(t.rank).ok().filter(|&n| n > 0)?;
            // SAFETY: non-null and valid for `rank` reads by the caller's promise.
            (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, n) }.to_vec())
        };
        ArgView {
            dtype: t.dtype,
            rank: t.rank,
            shape: if t.rank == 0 {
                Some(Vec::new())
            } else {
                read(t.shape)
            },
            strides: if t.rank == 0 {
                Some(Vec::new())
            } else {
                read(t.strides)
            },
            data: t.data as usize,
        }
    }

    /// The half-open byte range `[lo, hi)` the argument addresses, or `None` when it has no
    /// elements (or its layout is unreadable).
    fn byte_range(&self, size: usize) -> Option<(i128, i128)> {
        let (shape, strides) = (self.shape.as_ref()?, self.strides.as_ref()?);
        if shape.iter().any(|&n| n <= 0) {
            return None;
        }
        let (mut lo, mut hi) = (0i128, 0i128);
        for (&n, &s) in shape.iter().zip(strides) {
            let reach = i128::from(n - 1) * i128::from(s) * size as i128;
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        let base = self.data as i128;
        Some((base + lo, base + hi + size as i128))
    }
}

/// `input `X`` or `output `O``, for messages.
pub(crate) fn who(sig: &KernelSignature, arg: usize) -> String {
    let role = if arg < sig.ninputs { "input" } else { "output" };
    match sig.args.get(arg) {
        Some(a) => format!("{role} `{}`", a.name),
        None => format!("argument {arg}"),
    }
}

/// The declared type of an argument, as in the source: `f32[T, D]`.
fn declared(sig: &KernelSignature, arg: usize) -> String {
    sig.args.get(arg).map_or_else(
        || "?".into(),
        |a| {
            print_type(&TensorType {
                dtype: a.dtype,
                shape: a.shape.clone(),
            })
        },
    )
}

/// How a declared extent constrains an actual one.
enum Want<'s> {
    /// A literal extent.
    Literal(u64),
    /// A dim fixed in the source (`dims N = 3`).
    FixedDim(&'s str, u64),
    /// Symbolic dim number `n` of the signature's dims.
    Sym(usize),
}

fn want<'s>(sig: &'s KernelSignature, e: &'s Extent) -> Option<Want<'s>> {
    match e {
        Extent::Fixed(n) => Some(Want::Literal(*n)),
        Extent::Dim(name) => {
            let n = sig.dims.iter().position(|d| &d.name == name)?;
            Some(match sig.dims.get(n)?.value {
                Some(v) => Want::FixedDim(name, v),
                None => Want::Sym(n),
            })
        }
    }
}

/// Symbolic dims bound from argument shapes, first binding wins, as the entry point binds
/// them. Each binding remembers which argument and axis made it, for messages.
pub(crate) struct Binder<'s> {
    sig: &'s KernelSignature,
    bound: Vec<Option<(i64, usize, usize)>>,
}

impl<'s> Binder<'s> {
    /// No dims bound yet.
    pub fn new(sig: &'s KernelSignature) -> Binder<'s> {
        Binder {
            sig,
            bound: vec![None; sig.dims.len()],
        }
    }

    /// Checks argument `arg`'s extents (its rank already matches) and binds its dims; the
    /// error names the first offending axis.
    pub fn bind(&mut self, arg: usize, shape: &[i64]) -> Result<(), String> {
        let sig = self.sig;
        let Some(a) = sig.args.get(arg) else {
            return Ok(());
        };
        for (axis, (&n, e)) in shape.iter().zip(&a.shape).enumerate() {
            let at = || format!("{} axis {axis} has extent {n}", who(sig, arg));
            if n < 0 {
                return Err(format!("{}, which is negative", at()));
            }
            match want(sig, e) {
                Some(Want::Literal(v)) if u64::try_from(n) != Ok(v) => {
                    return Err(format!("{}, but its declared extent is {v}", at()))
                }
                Some(Want::FixedDim(d, v)) if u64::try_from(n) != Ok(v) => {
                    return Err(format!("{}, but dim `{d}` is fixed to {v}", at()))
                }
                Some(Want::Sym(d)) => match self.bound.get(d).copied().flatten() {
                    None => {
                        if let Some(slot) = self.bound.get_mut(d) {
                            *slot = Some((n, arg, axis));
                        }
                    }
                    Some((v, by, by_axis)) if v != n => {
                        let dim = sig.dims.get(d).map_or("?", |d| d.name.as_str());
                        return Err(format!(
                            "{}, but dim `{dim}` is {v}, as bound by {} axis {by_axis}",
                            at(),
                            who(sig, by)
                        ));
                    }
                    Some(_) => {}
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// The value of an extent: its literal or fixed value, or its dim's binding.
    pub fn extent(&self, e: &Extent) -> Option<u64> {
        match want(self.sig, e)? {
            Want::Literal(v) | Want::FixedDim(_, v) => Some(v),
            Want::Sym(d) => self
                .bound
                .get(d)
                .copied()
                .flatten()
                .and_then(|(v, _, _)| u64::try_from(v).ok()),
        }
    }

    /// The value bound to each dim of the signature (`None` if unbound or fixed).
    pub fn values(&self) -> Vec<Option<u64>> {
        self.bound
            .iter()
            .map(|b| b.and_then(|(v, _, _)| u64::try_from(v).ok()))
            .collect()
    }
}

/// Re-derives why the entry point returned `code`, following its checking order. `split`
/// is how many inputs and outputs the caller passed, when known.
fn explain(
    sig: &KernelSignature,
    args: &[ArgView],
    split: Option<(usize, usize)>,
    code: i32,
) -> Option<String> {
    let dtype_of = |a: &ArgView| DType::from_code(a.dtype);
    match code {
        status::BAD_ARG_COUNT => {
            let names = |r: std::ops::Range<usize>| {
                let names: Vec<&str> = sig.args.get(r)?.iter().map(|a| a.name.as_str()).collect();
                Some(names.join(", "))
            };
            let noutputs = sig.args.len() - sig.ninputs.min(sig.args.len());
            let expected = format!(
                "it takes {} input(s) ({}) and {noutputs} output(s) ({})",
                sig.ninputs,
                names(0..sig.ninputs)?,
                names(sig.ninputs..sig.args.len())?,
            );
            Some(match split {
                Some((i, o)) => format!("{expected}, but was given {i} input(s) and {o} output(s)"),
                None => format!("{expected}, but was given {} argument(s)", args.len()),
            })
        }
        status::BAD_DTYPE => args
            .iter()
            .zip(&sig.args)
            .enumerate()
            .find_map(|(n, (a, s))| {
                (a.dtype != s.dtype.code()).then(|| {
                    let got =
                        dtype_of(a).map_or(format!("dtype code {}", a.dtype), |d| d.name().into());
                    format!(
                        "{} has dtype {got}, but the kernel declares {}",
                        who(sig, n),
                        declared(sig, n)
                    )
                })
            }),
        status::BAD_RANK => args
            .iter()
            .zip(&sig.args)
            .enumerate()
            .find_map(|(n, (a, s))| {
                (a.rank as i64 != s.shape.len() as i64).then(|| {
                    format!(
                        "{} has rank {}, but the kernel declares {}",
                        who(sig, n),
                        a.rank,
                        declared(sig, n)
                    )
                })
            }),
        status::NULL_POINTER => args.iter().enumerate().find_map(|(n, a)| {
            if a.shape.is_none() || a.strides.is_none() {
                return Some(format!(
                    "{} has a null shape or strides pointer",
                    who(sig, n)
                ));
            }
            let empty = a.shape.as_ref().is_some_and(|s| s.contains(&0));
            (a.data == 0 && !empty)
                .then(|| format!("{} has a null data pointer but has elements", who(sig, n)))
        }),
        status::BAD_SHAPE => {
            let mut binder = Binder::new(sig);
            for (n, a) in args.iter().enumerate() {
                if let Err(message) = binder.bind(n, a.shape.as_deref()?) {
                    return Some(message);
                }
                let size = dtype_of(a)?.size_bytes();
                if a.byte_range(size)
                    .is_some_and(|(lo, hi)| lo < 0 || hi > i128::from(u64::MAX))
                {
                    return Some(format!(
                        "{}: its extents and strides address memory beyond the address space",
                        who(sig, n)
                    ));
                }
            }
            None
        }
        status::ALIASING => {
            let ranges: Vec<Option<(i128, i128)>> = args
                .iter()
                .map(|a| a.byte_range(dtype_of(a)?.size_bytes()))
                .collect();
            (sig.ninputs..args.len()).find_map(|out| {
                let (lo, hi) = ranges.get(out).copied().flatten()?;
                ranges.iter().enumerate().find_map(|(other, r)| {
                    let (olo, ohi) = (*r)?;
                    (other != out && lo < ohi && olo < hi).then(|| {
                        format!("{} overlaps {} in memory", who(sig, out), who(sig, other))
                    })
                })
            })
        }
        status::OUT_OF_MEMORY => Some("the kernel could not allocate its temporary buffers".into()),
        _ => None,
    }
}
