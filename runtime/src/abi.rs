//! The stable C ABI of compiled kernels (specified in `docs/abi.md`).
//!
//! Every kernel `K` is exported as
//! `int32_t einc_K(const einc_tensor *args, int64_t nargs)`: inputs first, then outputs, in
//! declaration order. Before touching any memory the kernel checks the call and returns one of
//! the [`status`] codes; on any error it writes nothing. `einc_K_info()` returns a
//! [`KernelInfo`] describing the signature, and `einc_abi_version()` returns [`ABI_VERSION`].
//!
//! The layouts here are `#[repr(C)]` and change only together with [`ABI_VERSION`].

use std::ffi::{c_char, c_void};

/// The ABI version: bumped on any change to a layout, a status code or an entry-point shape.
pub const ABI_VERSION: i32 = 1;

/// A tensor argument: `{ void *data; int32 dtype; int32 rank; const int64 *shape;
/// const int64 *strides; }`. Strides are in elements and may be any values (transposed,
/// broadcast with stride 0 for inputs, negative); `data` points at element `[0, 0, ...]`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Tensor {
    /// Address of element `[0, ..., 0]` (may be null only when some extent is 0).
    pub data: *mut c_void,
    /// A [`crate::DType`] code.
    pub dtype: i32,
    /// Number of axes.
    pub rank: i32,
    /// `rank` extents (may be null when `rank == 0`).
    pub shape: *const i64,
    /// `rank` element strides (may be null when `rank == 0`).
    pub strides: *const i64,
}

/// Status codes returned by a kernel entry point.
pub mod status {
    /// Success: the outputs hold the results.
    pub const OK: i32 = 0;
    /// `nargs` is not the kernel's argument count, or `args` is null with `nargs > 0`.
    pub const BAD_ARG_COUNT: i32 = 1;
    /// An argument's dtype code differs from the kernel's declaration.
    pub const BAD_DTYPE: i32 = 2;
    /// An argument's rank differs from the kernel's declaration.
    pub const BAD_RANK: i32 = 3;
    /// An extent is negative, differs from a fixed extent, or binds a dim inconsistently with
    /// another argument, or the strides make the addressed range overflow.
    pub const BAD_SHAPE: i32 = 4;
    /// A null `data` pointer with a non-zero element count, or null `shape`/`strides` with
    /// `rank > 0`.
    pub const NULL_POINTER: i32 = 5;
    /// An output's memory overlaps another argument's.
    pub const ALIASING: i32 = 6;
    /// A temporary buffer could not be allocated.
    pub const OUT_OF_MEMORY: i32 = 7;
    /// JIT only: a body compiled on its first call (the general body of a kernel with
    /// variants) failed to compile; nothing was written. A code generation bug, or no memory
    /// for code. Libraries compile every body ahead of time and never return it.
    pub const COMPILE_FAILED: i32 = 8;

    /// A short description of a status code, for error messages.
    pub fn describe(code: i32) -> &'static str {
        match code {
            OK => "success",
            BAD_ARG_COUNT => "wrong number of arguments",
            BAD_DTYPE => "wrong dtype",
            BAD_RANK => "wrong rank",
            BAD_SHAPE => "wrong shape",
            NULL_POINTER => "null pointer",
            ALIASING => "an output overlaps another argument",
            OUT_OF_MEMORY => "out of memory",
            COMPILE_FAILED => "compiling a body on its first call failed",
            _ => "unknown status",
        }
    }
}

/// The signature of a kernel entry point.
pub type KernelFn = unsafe extern "C" fn(args: *const Tensor, nargs: i64) -> i32;

/// Describes one argument of a kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ArgInfo {
    /// NUL-terminated name as declared.
    pub name: *const c_char,
    /// [`crate::DType`] code.
    pub dtype: i32,
    /// Number of axes.
    pub rank: i32,
    /// 1 for an output, 0 for an input.
    pub is_output: i32,
    /// Padding; always 0.
    pub reserved: i32,
    /// `rank` entries: `e >= 0` is a fixed extent; `e < 0` is dim number `-e - 1` of
    /// [`KernelInfo::dim_names`].
    pub extents: *const i64,
}

/// Describes a kernel: what `einc_K_info()` returns.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KernelInfo {
    /// [`ABI_VERSION`] of the library.
    pub abi_version: i32,
    /// Number of arguments (inputs + outputs).
    pub nargs: i32,
    /// Number of inputs (the first `ninputs` arguments).
    pub ninputs: i32,
    /// Number of symbolic dims.
    pub ndims: i32,
    /// NUL-terminated kernel name.
    pub name: *const c_char,
    /// `nargs` argument descriptions.
    pub args: *const ArgInfo,
    /// `ndims` NUL-terminated dim names.
    pub dim_names: *const *const c_char,
}

/// Size in bytes of [`Tensor`] (32 on 64-bit targets); code generation lays descriptors out
/// with these offsets.
pub const TENSOR_SIZE: usize = std::mem::size_of::<Tensor>();

/// Byte offsets of [`Tensor`]'s fields.
pub mod tensor_offsets {
    /// `data`
    pub const DATA: i32 = 0;
    /// `dtype`
    pub const DTYPE: i32 = 8;
    /// `rank`
    pub const RANK: i32 = 12;
    /// `shape`
    pub const SHAPE: i32 = 16;
    /// `strides`
    pub const STRIDES: i32 = 24;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn descriptor_layout_is_the_documented_one() {
        assert_eq!(TENSOR_SIZE, 32);
        assert_eq!(offset_of!(Tensor, data) as i32, tensor_offsets::DATA);
        assert_eq!(offset_of!(Tensor, dtype) as i32, tensor_offsets::DTYPE);
        assert_eq!(offset_of!(Tensor, rank) as i32, tensor_offsets::RANK);
        assert_eq!(offset_of!(Tensor, shape) as i32, tensor_offsets::SHAPE);
        assert_eq!(offset_of!(Tensor, strides) as i32, tensor_offsets::STRIDES);
    }

    #[test]
    fn every_status_code_has_a_description() {
        for code in 0..=8 {
            assert_ne!(status::describe(code), "unknown status", "code {code}");
        }
        assert_eq!(status::describe(99), "unknown status");
    }
}
