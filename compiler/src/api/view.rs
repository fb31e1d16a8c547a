//! Typed views that kernels read and write: [`TensorRef`] (an input) and [`TensorMut`] (an
//! output), each a borrowed slice seen through a shape, element strides and an offset.
//!
//! Every constructor checks that each element the layout addresses lies inside the slice, so a
//! kernel called with views built in safe code never touches memory outside them. Output views
//! must also address each element once: a kernel writes every element of an output, and two
//! writes to one place would make the result depend on the loop order.

use einc_runtime::abi;
use einc_runtime::{Array, Buffer, DType};
use smallvec::SmallVec;
use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;

mod sealed {
    /// Keeps [`super::Element`] implemented only for the ABI's element types.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}

/// An element type kernels exchange: `f32`, `f64`, `i32` or `i64`.
pub trait Element: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The dtype of this element type.
    const DTYPE: DType;

    /// The elements of a buffer of this dtype (the buffer back if it has another dtype).
    fn take(buffer: Buffer) -> Result<Vec<Self>, Buffer>;
}

/// Implements [`Element`] for a type and its [`Buffer`] variant.
macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;

            fn take(buffer: Buffer) -> Result<Vec<Self>, Buffer> {
                match buffer {
                    Buffer::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    };
}

element!(f32, F32);
element!(f64, F64);
element!(i32, I32);
element!(i64, I64);

/// Why a view could not be built over a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewError {
    /// `shape` and `strides` have different lengths.
    RankMismatch {
        /// Length of the shape.
        shape: usize,
        /// Length of the strides.
        strides: usize,
    },
    /// A contiguous view's element count differs from the slice length.
    LengthMismatch {
        /// Elements the shape holds (`None` when the count overflows).
        elements: Option<usize>,
        /// The slice's length.
        len: usize,
    },
    /// Some element the layout addresses lies outside the slice.
    OutOfBounds {
        /// Lowest position addressed, relative to the slice start (may be negative).
        lowest: i128,
        /// Highest position addressed.
        highest: i128,
        /// The slice's length.
        len: usize,
    },
    /// An extent does not fit the ABI's 64-bit signed extents.
    TooLarge,
    /// An output view addresses some element more than once (for example a stride of 0).
    OverlappingOutput {
        /// The view's shape.
        shape: Vec<usize>,
        /// The view's strides.
        strides: Vec<isize>,
    },
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::RankMismatch { shape, strides } => {
                write!(
                    f,
                    "the shape has {shape} axes but the strides have {strides}"
                )
            }
            ViewError::LengthMismatch {
                elements: Some(n),
                len,
            } => write!(f, "the shape holds {n} elements but the slice has {len}"),
            ViewError::LengthMismatch {
                elements: None,
                len,
            } => write!(
                f,
                "the shape's element count overflows (the slice has {len} elements)"
            ),
            ViewError::OutOfBounds {
                lowest,
                highest,
                len,
            } => write!(
                f,
                "the layout addresses elements {lowest} to {highest} but the slice has {len} \
                 elements (0 to {})",
                *len as i128 - 1
            ),
            ViewError::TooLarge => write!(f, "an extent does not fit in a 64-bit signed integer"),
            ViewError::OverlappingOutput { shape, strides } => write!(
                f,
                "an output view must address each element once, but shape {shape:?} with \
                 strides {strides:?} reaches some element twice"
            ),
        }
    }
}

impl std::error::Error for ViewError {}

/// Per-axis numbers of a view, inline up to rank 4: building a view and calling a kernel with
/// it allocate nothing for the usual ranks.
type Axes<T> = SmallVec<[T; 4]>;

// The ABI's descriptors point straight at a view's `usize` extents and `isize` strides as
// `int64_t` arrays (`descriptor`), which needs both to be 64 bits wide.
const _: () = assert!(
    std::mem::size_of::<usize>() == 8 && std::mem::size_of::<isize>() == 8,
    "einc's Rust API needs a 64-bit target"
);

/// A layout checked against a slice: shape, strides and the offset of element `[0, ..., 0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub shape: Axes<usize>,
    pub strides: Axes<isize>,
    pub offset: usize,
}

impl Layout {
    /// C-order layout of `shape` over a slice of exactly its element count.
    fn contiguous(shape: &[usize], len: usize) -> Result<Layout, ViewError> {
        let elements = einc_runtime::array::element_count(shape);
        if elements != Some(len) {
            return Err(ViewError::LengthMismatch { elements, len });
        }
        // C order: each stride is the product of the extents after it (no overflow: the
        // element count fits `len`, and a stride is at most that count unless an extent is 0).
        let mut strides: Axes<isize> = SmallVec::from_elem(0, shape.len());
        let mut acc: usize = 1;
        for (s, &n) in strides.iter_mut().zip(shape).rev() {
            *s = isize::try_from(acc).map_err(|_| ViewError::TooLarge)?;
            acc = acc.saturating_mul(n);
        }
        Layout::strided(len, 0, shape, &strides)
    }

    /// A strided layout, checked to address only positions `0..len`.
    fn strided(
        len: usize,
        offset: usize,
        shape: &[usize],
        strides: &[isize],
    ) -> Result<Layout, ViewError> {
        if shape.len() != strides.len() {
            return Err(ViewError::RankMismatch {
                shape: shape.len(),
                strides: strides.len(),
            });
        }
        if shape.iter().any(|&n| i64::try_from(n).is_err()) {
            return Err(ViewError::TooLarge);
        }
        let layout = Layout {
            shape: SmallVec::from_slice(shape),
            strides: SmallVec::from_slice(strides),
            offset,
        };
        if let Some((lowest, highest)) = layout.span() {
            if lowest < 0 || highest >= len as i128 {
                return Err(ViewError::OutOfBounds {
                    lowest,
                    highest,
                    len,
                });
            }
        }
        Ok(layout)
    }

    /// Lowest and highest slice position addressed, or `None` when the view has no elements.
    /// i128 holds every such sum of products of `usize` extents and `isize` strides.
    fn span(&self) -> Option<(i128, i128)> {
        if self.shape.contains(&0) {
            return None;
        }
        let mut lo = self.offset as i128;
        let mut hi = lo;
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            let reach = (n as i128 - 1) * s as i128;
            if reach < 0 {
                lo += reach;
            } else {
                hi += reach;
            }
        }
        Some((lo, hi))
    }

    /// Checks that no two indices address one position. Sorting the axes by stride magnitude,
    /// each stride must exceed the reach of all smaller ones: a sufficient condition that every
    /// C, Fortran, transposed, sliced or reversed layout meets.
    fn check_distinct(&self) -> Result<(), ViewError> {
        if self.shape.contains(&0) {
            return Ok(());
        }
        let mut axes: Axes<(u128, u128)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&n, _)| n > 1)
            .map(|(&n, &s)| (s.unsigned_abs() as u128, n as u128))
            .collect();
        axes.sort_unstable();
        let mut reach: u128 = 0;
        for (stride, n) in axes {
            if stride <= reach {
                return Err(ViewError::OverlappingOutput {
                    shape: self.shape.to_vec(),
                    strides: self.strides.to_vec(),
                });
            }
            reach += (n - 1) * stride;
        }
        Ok(())
    }
}

/// A read-only view of `f32`, `f64`, `i32` or `i64` elements: a kernel input.
///
/// Cheap to build; it borrows the data for `'a`. Strides are in elements and may be zero
/// (broadcast) or negative (reversed axes).
#[derive(Clone, Debug)]
pub struct TensorRef<'a> {
    /// Address of element `[0, ..., 0]`; every addressed element is readable for `'a`.
    ptr: *const c_void,
    dtype: DType,
    shape: Axes<usize>,
    strides: Axes<isize>,
    _borrow: PhantomData<&'a [u8]>,
}

// SAFETY: a `TensorRef` is a shared borrow of plain numbers, like `&[T]`.
unsafe impl Send for TensorRef<'_> {}
// SAFETY: as above.
unsafe impl Sync for TensorRef<'_> {}

impl<'a> TensorRef<'a> {
    /// A C-order (row-major) view of `data` with the given shape; `data` must hold exactly the
    /// shape's element count.
    pub fn contiguous<T: Element>(data: &'a [T], shape: &[usize]) -> Result<Self, ViewError> {
        let layout = Layout::contiguous(shape, data.len())?;
        Ok(Self::over(data, layout))
    }

    /// A view with explicit element strides: element `[i0, i1, ...]` is
    /// `data[offset + i0*strides[0] + i1*strides[1] + ...]`, which must lie inside `data` for
    /// every index.
    pub fn strided<T: Element>(
        data: &'a [T],
        offset: usize,
        shape: &[usize],
        strides: &[isize],
    ) -> Result<Self, ViewError> {
        let layout = Layout::strided(data.len(), offset, shape, strides)?;
        Ok(Self::over(data, layout))
    }

    fn over<T: Element>(data: &'a [T], layout: Layout) -> Self {
        TensorRef {
            ptr: element_zero(data.as_ptr(), &layout).cast(),
            dtype: T::DTYPE,
            shape: layout.shape,
            strides: layout.strides,
            _borrow: PhantomData,
        }
    }

    /// A view of a runtime [`Array`] (its layout was checked when the array was built).
    pub fn from_array(array: &'a Array) -> Self {
        let layout = Layout {
            shape: SmallVec::from_slice(array.shape()),
            // An `Array`'s strides index its buffer, whose length fits `isize`.
            strides: array.strides().iter().map(|&s| s as isize).collect(),
            offset: array.offset(),
        };
        match array.buffer() {
            Buffer::F32(v) => Self::over(v, layout),
            Buffer::F64(v) => Self::over(v, layout),
            Buffer::I32(v) => Self::over(v, layout),
            Buffer::I64(v) => Self::over(v, layout),
        }
    }

    /// A view from its raw parts.
    ///
    /// # Safety
    /// Every element `ptr + Σ i_k*strides[k]` (in elements of `dtype`) for indices within
    /// `shape` must be valid for reads of one element, and not written by anyone, for `'a`;
    /// extents must fit `i64`.
    pub unsafe fn from_raw_parts(
        ptr: *const c_void,
        dtype: DType,
        shape: &[usize],
        strides: &[isize],
    ) -> Self {
        TensorRef {
            ptr,
            dtype,
            shape: SmallVec::from_slice(shape),
            strides: SmallVec::from_slice(strides),
            _borrow: PhantomData,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Extent of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element stride of each axis.
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// The ABI descriptor of this view; it points at the view's own shape and strides, so
    /// the view must stay where it is while the descriptor is used.
    pub(crate) fn descriptor(&self) -> abi::Tensor {
        descriptor(self.ptr.cast_mut(), self.dtype, &self.shape, &self.strides)
    }
}

impl<'a> From<&'a Array> for TensorRef<'a> {
    fn from(array: &'a Array) -> Self {
        TensorRef::from_array(array)
    }
}

/// A writable view of `f32`, `f64`, `i32` or `i64` elements: a kernel output.
///
/// It borrows the data mutably for `'a`. Strides may be negative; each element must be
/// addressed once (so no stride 0 on an axis longer than 1).
#[derive(Debug)]
pub struct TensorMut<'a> {
    /// Address of element `[0, ..., 0]`; every addressed element is writable, and reached by
    /// no other view, for `'a`.
    ptr: *mut c_void,
    dtype: DType,
    shape: Axes<usize>,
    strides: Axes<isize>,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a `TensorMut` is an exclusive borrow of plain numbers, like `&mut [T]`.
unsafe impl Send for TensorMut<'_> {}
// SAFETY: as above; shared access to a `TensorMut` gives no access to the elements.
unsafe impl Sync for TensorMut<'_> {}

impl<'a> TensorMut<'a> {
    /// A C-order view of `data` with the given shape; `data` must hold exactly the shape's
    /// element count.
    pub fn contiguous<T: Element>(data: &'a mut [T], shape: &[usize]) -> Result<Self, ViewError> {
        let layout = Layout::contiguous(shape, data.len())?;
        Ok(Self::over(data, layout))
    }

    /// A view with explicit element strides, like [`TensorRef::strided`]; the layout must
    /// also address each element once.
    pub fn strided<T: Element>(
        data: &'a mut [T],
        offset: usize,
        shape: &[usize],
        strides: &[isize],
    ) -> Result<Self, ViewError> {
        let layout = Layout::strided(data.len(), offset, shape, strides)?;
        layout.check_distinct()?;
        Ok(Self::over(data, layout))
    }

    fn over<T: Element>(data: &'a mut [T], layout: Layout) -> Self {
        TensorMut {
            ptr: element_zero(data.as_mut_ptr().cast_const(), &layout)
                .cast_mut()
                .cast(),
            dtype: T::DTYPE,
            shape: layout.shape,
            strides: layout.strides,
            _borrow: PhantomData,
        }
    }

    /// A view from its raw parts.
    ///
    /// # Safety
    /// Every element `ptr + Σ i_k*strides[k]` (in elements of `dtype`) for indices within
    /// `shape` must be valid for writes of one element, and accessed through no other pointer,
    /// for `'a`; no two indices may address one element; extents must fit `i64`.
    pub unsafe fn from_raw_parts(
        ptr: *mut c_void,
        dtype: DType,
        shape: &[usize],
        strides: &[isize],
    ) -> Self {
        TensorMut {
            ptr,
            dtype,
            shape: SmallVec::from_slice(shape),
            strides: SmallVec::from_slice(strides),
            _borrow: PhantomData,
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Extent of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element stride of each axis.
    pub fn strides(&self) -> &[isize] {
        &self.strides
    }

    /// The ABI descriptor of this view, like [`TensorRef::descriptor`]; it takes `&mut self`
    /// because the kernel writes through it.
    pub(crate) fn descriptor(&mut self) -> abi::Tensor {
        descriptor(self.ptr, self.dtype, &self.shape, &self.strides)
    }
}

/// The address of element `[0, ..., 0]` of a checked layout over `data`. For a view with no
/// elements the offset may lie past the slice, so the slice start stands in (the ABI never
/// reads through it).
fn element_zero<T>(data: *const T, layout: &Layout) -> *const T {
    if layout.span().is_some() {
        data.wrapping_add(layout.offset)
    } else {
        data
    }
}

/// A descriptor over a view's parts: `shape` and `strides` are read in place as `int64_t`
/// arrays (64-bit `usize` and `isize`, asserted above; constructors reject extents beyond
/// `i64`), so it borrows them.
fn descriptor(data: *mut c_void, dtype: DType, shape: &[usize], strides: &[isize]) -> abi::Tensor {
    abi::Tensor {
        data,
        dtype: dtype.code(),
        // Ranks beyond i32 cannot be built: no slice of extents that long fits in memory
        // with a slice of elements to view.
        rank: i32::try_from(shape.len()).unwrap_or(i32::MAX),
        shape: shape.as_ptr().cast::<i64>(),
        strides: strides.as_ptr().cast::<i64>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_checked_against_the_slice() {
        let data = [0f32; 6];
        assert!(TensorRef::contiguous(&data, &[2, 3]).is_ok());
        assert_eq!(
            TensorRef::contiguous(&data, &[2, 4]).unwrap_err(),
            ViewError::LengthMismatch {
                elements: Some(8),
                len: 6
            }
        );
        // Reversed rows: element [0, 0] is data[3], the view reaches data[0..=5].
        let v = TensorRef::strided(&data, 3, &[2, 3], &[-3, 1]).unwrap();
        assert_eq!(v.strides(), &[-3, 1]);
        assert_eq!(
            TensorRef::strided(&data, 2, &[2, 3], &[-3, 1]).unwrap_err(),
            ViewError::OutOfBounds {
                lowest: -1,
                highest: 4,
                len: 6
            }
        );
        assert_eq!(
            TensorRef::strided(&data, 0, &[2, 3], &[1]).unwrap_err(),
            ViewError::RankMismatch {
                shape: 2,
                strides: 1
            }
        );
        // No elements: any offset and strides are fine.
        assert!(TensorRef::strided(&data, 100, &[0, 5], &[99, 99]).is_ok());
        assert_eq!(
            TensorRef::strided(&data, 0, &[0, usize::MAX], &[1, 1]).unwrap_err(),
            ViewError::TooLarge
        );
    }

    #[test]
    fn outputs_must_address_each_element_once() {
        let mut data = [0i64; 12];
        assert!(TensorMut::strided(&mut data, 0, &[3, 4], &[1, 3]).is_ok());
        assert!(TensorMut::strided(&mut data, 11, &[3, 4], &[-4, -1]).is_ok());
        assert!(TensorMut::strided(&mut data, 0, &[1, 4], &[0, 1]).is_ok());
        for strides in [[0, 1], [2, 1], [1, 1]] {
            assert!(
                matches!(
                    TensorMut::strided(&mut data, 0, &[2, 4], &strides),
                    Err(ViewError::OverlappingOutput { .. })
                ),
                "{strides:?}"
            );
        }
        // Broadcast inputs are fine.
        assert!(TensorRef::strided(&data, 0, &[2, 4], &[0, 1]).is_ok());
    }
}
