//! Host arrays: an owned, typed buffer viewed through a shape and element strides.
//!
//! Strides are counted in elements (not bytes), like the ABI's tensor descriptor, and may be
//! any non-negative values, so a Fortran-order array or a transposed view is an `Array` whose
//! strides are not C-contiguous. Every element position is checked against the buffer when the
//! array is built, so indexing a valid `Array` never goes out of bounds.

use crate::dtype::DType;
use std::fmt;

/// One element value, tagged with its dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// An `f32` value.
    F32(f32),
    /// An `f64` value.
    F64(f64),
    /// An `i32` value.
    I32(i32),
    /// An `i64` value.
    I64(i64),
}

impl Scalar {
    /// The dtype of this value.
    pub fn dtype(self) -> DType {
        match self {
            Scalar::F32(_) => DType::F32,
            Scalar::F64(_) => DType::F64,
            Scalar::I32(_) => DType::I32,
            Scalar::I64(_) => DType::I64,
        }
    }

    /// Zero of the given dtype.
    pub fn zero(dtype: DType) -> Scalar {
        match dtype {
            DType::F32 => Scalar::F32(0.0),
            DType::F64 => Scalar::F64(0.0),
            DType::I32 => Scalar::I32(0),
            DType::I64 => Scalar::I64(0),
        }
    }

    /// The value as `f64` (exact for every `f32` and `i32`; rounds large `i64`).
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::F32(v) => f64::from(v),
            Scalar::F64(v) => v,
            Scalar::I32(v) => f64::from(v),
            Scalar::I64(v) => v as f64,
        }
    }

    /// Converts to `dtype` as numpy's `astype` does: floats to integers truncate toward zero
    /// (saturating, NaN to 0), integers wrap.
    pub fn cast(self, dtype: DType) -> Scalar {
        match (self, dtype) {
            (Scalar::I64(v), DType::I32) => Scalar::I32(v as i32),
            (Scalar::I64(v), DType::I64) => Scalar::I64(v),
            (Scalar::I32(v), DType::I64) => Scalar::I64(i64::from(v)),
            (Scalar::I32(v), DType::I32) => Scalar::I32(v),
            (Scalar::F32(v), DType::F32) => Scalar::F32(v),
            (s, DType::F32) => Scalar::F32(s.to_f64() as f32),
            (s, DType::F64) => Scalar::F64(s.to_f64()),
            (s, DType::I32) => Scalar::I32(s.to_f64() as i32),
            (s, DType::I64) => Scalar::I64(s.to_f64() as i64),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::F32(v) => write!(f, "{v}"),
            Scalar::F64(v) => write!(f, "{v}"),
            Scalar::I32(v) => write!(f, "{v}"),
            Scalar::I64(v) => write!(f, "{v}"),
        }
    }
}

/// A typed, owned element buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `i64` elements.
    I64(Vec<i64>),
}

impl Buffer {
    /// A buffer of `len` zeros. Like `vec!`, aborts if the memory cannot be allocated; use
    /// [`Buffer::try_zeros`] when `len` comes from a user.
    pub fn zeros(dtype: DType, len: usize) -> Buffer {
        match dtype {
            DType::F32 => Buffer::F32(vec![0.0; len]),
            DType::F64 => Buffer::F64(vec![0.0; len]),
            DType::I32 => Buffer::I32(vec![0; len]),
            DType::I64 => Buffer::I64(vec![0; len]),
        }
    }

    /// A buffer of `len` zeros, or [`ArrayError::TooLarge`] when the memory cannot be
    /// allocated (so a request for 10^12 elements is an error rather than an abort).
    pub fn try_zeros(dtype: DType, len: usize) -> Result<Buffer, ArrayError> {
        fn filled<T: Clone>(len: usize, zero: T) -> Result<Vec<T>, ArrayError> {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| ArrayError::TooLarge)?;
            v.resize(len, zero);
            Ok(v)
        }
        Ok(match dtype {
            DType::F32 => Buffer::F32(filled(len, 0.0)?),
            DType::F64 => Buffer::F64(filled(len, 0.0)?),
            DType::I32 => Buffer::I32(filled(len, 0)?),
            DType::I64 => Buffer::I64(filled(len, 0)?),
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
            Buffer::I32(_) => DType::I32,
            Buffer::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::I64(v) => v.len(),
        }
    }

    /// True when the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element at `pos`. Panics if `pos` is out of range (callers check bounds first).
    fn get(&self, pos: usize) -> Scalar {
        match self {
            Buffer::F32(v) => Scalar::F32(v[pos]),
            Buffer::F64(v) => Scalar::F64(v[pos]),
            Buffer::I32(v) => Scalar::I32(v[pos]),
            Buffer::I64(v) => Scalar::I64(v[pos]),
        }
    }

    /// Stores `value` (converted to the buffer's dtype) at `pos`.
    fn set(&mut self, pos: usize, value: Scalar) {
        match (self, value) {
            (Buffer::F32(v), s) => v[pos] = s.to_f64() as f32,
            (Buffer::F64(v), s) => v[pos] = s.to_f64(),
            (Buffer::I32(v), Scalar::I32(x)) => v[pos] = x,
            (Buffer::I32(v), Scalar::I64(x)) => v[pos] = x as i32,
            (Buffer::I32(v), s) => v[pos] = s.to_f64() as i32,
            (Buffer::I64(v), Scalar::I64(x)) => v[pos] = x,
            (Buffer::I64(v), Scalar::I32(x)) => v[pos] = i64::from(x),
            (Buffer::I64(v), s) => v[pos] = s.to_f64() as i64,
        }
    }
}

/// Why an array could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArrayError {
    /// `shape` and `strides` have different lengths.
    RankMismatch {
        /// Length of the shape.
        shape: usize,
        /// Length of the strides.
        strides: usize,
    },
    /// The element count overflows `usize`, or the memory cannot be allocated.
    TooLarge,
    /// Some element position lies outside the buffer.
    OutOfBounds {
        /// One past the largest position the layout addresses.
        needed: usize,
        /// The buffer's length.
        len: usize,
    },
}

impl fmt::Display for ArrayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrayError::RankMismatch { shape, strides } => {
                write!(f, "shape has {shape} axes but strides has {strides}")
            }
            ArrayError::TooLarge => write!(f, "the array is too large to allocate"),
            ArrayError::OutOfBounds { needed, len } => write!(
                f,
                "the layout addresses {needed} elements but the buffer holds {len}"
            ),
        }
    }
}

impl std::error::Error for ArrayError {}

/// An owned array: a buffer, a shape, element strides and an offset.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    buffer: Buffer,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// C-order (row-major) strides for `shape`, or `None` if the element count overflows.
pub fn c_strides(shape: &[usize]) -> Option<Vec<usize>> {
    let mut strides = vec![0; shape.len()];
    let mut acc: usize = 1;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.checked_mul(n)?;
    }
    Some(strides)
}

/// Number of elements of `shape`, or `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n))
}

impl Array {
    /// A C-contiguous array of zeros.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Array, ArrayError> {
        let len = element_count(shape).ok_or(ArrayError::TooLarge)?;
        Array::from_buffer(Buffer::try_zeros(dtype, len)?, shape)
    }

    /// A C-contiguous array over `buffer`, which must hold exactly the shape's element count.
    pub fn from_buffer(buffer: Buffer, shape: &[usize]) -> Result<Array, ArrayError> {
        let strides = c_strides(shape).ok_or(ArrayError::TooLarge)?;
        let len = element_count(shape).ok_or(ArrayError::TooLarge)?;
        if len != buffer.len() {
            return Err(ArrayError::OutOfBounds {
                needed: len,
                len: buffer.len(),
            });
        }
        Array::with_layout(buffer, shape, &strides, 0)
    }

    /// An array over `buffer` with explicit element strides and offset. Checks that every
    /// element position lies inside the buffer.
    pub fn with_layout(
        buffer: Buffer,
        shape: &[usize],
        strides: &[usize],
        offset: usize,
    ) -> Result<Array, ArrayError> {
        if shape.len() != strides.len() {
            return Err(ArrayError::RankMismatch {
                shape: shape.len(),
                strides: strides.len(),
            });
        }
        element_count(shape).ok_or(ArrayError::TooLarge)?;
        if !shape.contains(&0) {
            let mut last = offset;
            for (&n, &s) in shape.iter().zip(strides) {
                let span = (n - 1).checked_mul(s).ok_or(ArrayError::TooLarge)?;
                last = last.checked_add(span).ok_or(ArrayError::TooLarge)?;
            }
            if last >= buffer.len() {
                return Err(ArrayError::OutOfBounds {
                    needed: last.saturating_add(1),
                    len: buffer.len(),
                });
            }
        }
        Ok(Array {
            buffer,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.buffer.dtype()
    }

    /// Extent of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element stride of each axis.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Position of element 0 in the buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements (the product of the shape).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when some axis has extent 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The underlying buffer (in storage order, including any elements the layout skips).
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// True when the layout is C order with offset 0 and no gaps.
    pub fn is_c_contiguous(&self) -> bool {
        self.offset == 0
            && self.buffer.len() == self.len()
            && (self.is_empty() || c_strides(&self.shape).as_deref() == Some(&self.strides[..]))
    }

    fn position(&self, index: &[usize]) -> usize {
        assert_eq!(index.len(), self.shape.len(), "index rank");
        let mut pos = self.offset;
        for ((&i, &n), &s) in index.iter().zip(&self.shape).zip(&self.strides) {
            assert!(i < n, "index {i} out of range for extent {n}");
            pos += i * s;
        }
        pos
    }

    /// The element at `index`. Panics if `index` has the wrong rank or is out of range: callers
    /// index with loop counters bounded by [`Array::shape`].
    pub fn get(&self, index: &[usize]) -> Scalar {
        self.buffer.get(self.position(index))
    }

    /// Stores `value`, converted to the array's dtype, at `index` (panics like [`Array::get`]).
    pub fn set(&mut self, index: &[usize], value: Scalar) {
        let pos = self.position(index);
        self.buffer.set(pos, value);
    }

    /// The elements in C order, as a new C-contiguous array. Aborts if the copy cannot be
    /// allocated (a stride-0 view may be far larger than its buffer); see
    /// [`Array::try_to_c_contiguous`].
    pub fn to_c_contiguous(&self) -> Array {
        self.try_to_c_contiguous()
            .unwrap_or_else(|e| panic!("copying an array of shape {:?}: {e}", self.shape))
    }

    /// The elements in C order, as a new C-contiguous array, or [`ArrayError::TooLarge`] when
    /// the copy cannot be allocated.
    pub fn try_to_c_contiguous(&self) -> Result<Array, ArrayError> {
        if self.is_c_contiguous() {
            return Ok(self.clone());
        }
        let mut out = Array::zeros(self.dtype(), &self.shape)?;
        for_each_index(&self.shape, |idx| out.set(idx, self.get(idx)));
        Ok(out)
    }

    /// The elements in C order, converted to `f64` (handy for comparisons in tests).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.len());
        for_each_index(&self.shape, |idx| out.push(self.get(idx).to_f64()));
        out
    }
}

/// Calls `f` with every index of `shape` in C order (last axis fastest). Calls it once with
/// the empty index for a rank-0 shape, and never when some extent is 0.
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let Ok(()) = try_for_each_index::<std::convert::Infallible>(shape, |idx| {
        f(idx);
        Ok(())
    });
}

/// Like [`for_each_index`], but stops at and returns the first error `f` returns.
pub fn try_for_each_index<E>(
    shape: &[usize],
    mut f: impl FnMut(&[usize]) -> Result<(), E>,
) -> Result<(), E> {
    if shape.contains(&0) {
        return Ok(());
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx)?;
        let mut axis = shape.len();
        loop {
            if axis == 0 {
                return Ok(());
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < shape[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_layout_reads_like_c_layout() {
        // [[1, 2, 3], [4, 5, 6]] stored column-major.
        let buf = Buffer::F64(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let a = Array::with_layout(buf, &[2, 3], &[1, 2], 0).expect("valid layout");
        assert!(!a.is_c_contiguous());
        assert_eq!(a.to_f64_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(a.to_c_contiguous().is_c_contiguous());
    }

    #[test]
    fn layouts_outside_the_buffer_are_rejected() {
        let buf = Buffer::F32(vec![0.0; 5]);
        let err = Array::with_layout(buf, &[2, 3], &[3, 1], 0).expect_err("must be rejected");
        assert_eq!(err, ArrayError::OutOfBounds { needed: 6, len: 5 });
        let huge = Array::zeros(DType::F32, &[usize::MAX, 2]).expect_err("must be rejected");
        assert_eq!(huge, ArrayError::TooLarge);
        // Representable but far beyond any machine's memory: an error, not an abort.
        let unallocatable =
            Array::zeros(DType::F64, &[1_000_000, 1_000_000]).expect_err("must be rejected");
        assert_eq!(unallocatable, ArrayError::TooLarge);
    }

    #[test]
    fn index_iteration_covers_rank_zero_and_empty_shapes() {
        let mut seen = Vec::new();
        for_each_index(&[2, 2], |i| seen.push(i.to_vec()));
        assert_eq!(seen, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
        let mut count = 0;
        for_each_index(&[], |_| count += 1);
        assert_eq!(count, 1);
        for_each_index(&[3, 0], |_| count += 1);
        assert_eq!(count, 1);
    }

    #[test]
    fn integer_stores_wrap_and_float_casts_truncate() {
        let mut a = Array::zeros(DType::I32, &[2]).expect("small array");
        a.set(&[0], Scalar::I64(i64::from(i32::MAX) + 1));
        a.set(&[1], Scalar::F64(-2.7));
        assert_eq!(a.get(&[0]), Scalar::I32(i32::MIN));
        assert_eq!(a.get(&[1]), Scalar::I32(-2));
    }
}
