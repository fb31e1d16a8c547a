//! Calling a kernel through its C ABI entry point, and turning a failure into an error that
//! names the argument at fault.
//!
//! The entry point's status and message are authoritative: a failed call records what went
//! wrong for `einc_last_error()` (`docs/abi.md`), and the error carries that message. Only a
//! wrong argument count is described here, because the API knows how many inputs and outputs
//! the caller meant to pass, which the entry point cannot.

use super::error::{Error, Status};
use crate::codegen::{JitKernel, KernelSignature};
use crate::ir::tensor::Extent;
use einc_runtime::abi::{self, status};

/// Calls the entry point with `args` and maps a non-zero status to [`Error::Call`]. `split`
/// is how many inputs and outputs the caller passed, when known.
///
/// # Safety
/// `args` must satisfy the ABI's contract for the memory it points at: each `shape` and
/// `strides` pointer null or valid for `rank` reads, each `data` valid for every element its
/// layout addresses (reads for inputs, writes for outputs), for the duration of the call.
pub(crate) unsafe fn invoke(
    kernel: &JitKernel,
    threads: Option<usize>,
    args: &[abi::Tensor],
    split: Option<(usize, usize)>,
) -> Result<(), Error> {
    let nargs = i64::try_from(args.len()).unwrap_or(i64::MAX);
    // SAFETY: the caller upholds the ABI contract; the entry point validates the rest.
    let code = einc_runtime::parallel::with_num_threads(threads, || unsafe {
        (kernel.entry())(args.as_ptr(), nargs)
    });
    if code == status::OK {
        return Ok(());
    }
    let sig = kernel.signature();
    let message = match (code, split) {
        (status::BAD_ARG_COUNT, Some(split)) => argument_count(sig, split),
        _ => kernel
            .last_error()
            .unwrap_or_else(|| status::describe(code).to_string()),
    };
    Err(Error::Call {
        kernel: sig.name.clone(),
        status: Status::from_code(code),
        message,
    })
}

/// What the kernel takes, and what it was given.
fn argument_count(sig: &KernelSignature, (inputs, outputs): (usize, usize)) -> String {
    let names = |r: std::ops::Range<usize>| {
        let names: Vec<&str> = sig.args[r].iter().map(|a| a.name.as_str()).collect();
        names.join(", ")
    };
    let ninputs = sig.ninputs.min(sig.args.len());
    format!(
        "it takes {ninputs} input(s) ({}) and {} output(s) ({}), but was given {inputs} input(s) \
         and {outputs} output(s)",
        names(0..ninputs),
        sig.args.len() - ninputs,
        names(ninputs..sig.args.len()),
    )
}

/// `input `X`` or `output `O``, for messages.
pub(crate) fn who(sig: &KernelSignature, arg: usize) -> String {
    let role = if arg < sig.ninputs { "input" } else { "output" };
    match sig.args.get(arg) {
        Some(a) => format!("{role} `{}`", a.name),
        None => format!("argument {arg}"),
    }
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
