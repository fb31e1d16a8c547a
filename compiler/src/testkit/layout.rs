//! Arguments laid out the ways callers lay them out: C or Fortran order, permuted axes, padding
//! between elements and rows, reversed axes (negative strides) and, for inputs, broadcast axes
//! (stride 0). The elements of a buffer that no index reaches (the gaps) hold a sentinel, so a
//! kernel that reads a gap produces a wrong (for floats, NaN) result and one that writes a gap
//! is caught by [`Placed::check_gaps`].

use crate::rng::Rng;
use einc_runtime::abi;
use einc_runtime::array::for_each_index;
use einc_runtime::{Array, Buffer, DType, Scalar};

/// Where the elements of a shape live in a buffer of `len` elements: element `[i..]` is at
/// `offset + Σ i_k * strides[k]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// In elements, per axis; negative for a reversed axis, 0 for a broadcast one.
    pub strides: Vec<i64>,
    /// Position of element `[0, ..., 0]`.
    pub offset: usize,
    /// Buffer length.
    pub len: usize,
}

/// A random layout for `shape`: axes in C, Fortran or shuffled order, sometimes padded,
/// sometimes reversed, and (when `broadcast`) sometimes with stride 0 on an axis.
pub fn random_layout(rng: &mut Rng, shape: &[usize], broadcast: bool) -> Layout {
    let mut order: Vec<usize> = (0..shape.len()).rev().collect(); // innermost first
    match rng.below(4) {
        0 => {}
        1 => order.reverse(),
        _ => {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
    }
    let padded = rng.below(2) == 0;
    let mut strides = vec![0i64; shape.len()];
    let mut acc = 1usize;
    for &axis in &order {
        if broadcast && rng.below(10) == 0 {
            continue; // stride 0
        }
        let step = if padded { 1 + rng.below(2) } else { 1 };
        strides[axis] = (acc * step) as i64;
        acc = acc * step * shape[axis].max(1) + if padded { rng.below(3) } else { 0 };
    }
    let mut offset = if padded { rng.below(3) } else { 0 };
    for (axis, s) in strides.iter_mut().enumerate() {
        if rng.below(10) < 3 {
            offset += shape[axis].saturating_sub(1) * s.unsigned_abs() as usize;
            *s = -*s;
        }
    }
    let reach: usize = shape
        .iter()
        .zip(&strides)
        .map(|(&n, s)| n.saturating_sub(1) * s.unsigned_abs() as usize)
        .sum();
    let tail = if padded { rng.below(3) } else { 0 };
    Layout {
        strides,
        offset,
        len: offset + reach + 1 + tail,
    }
}

/// Buffer position of `index` under `layout`.
pub fn position(layout: &Layout, index: &[usize]) -> usize {
    let p = index
        .iter()
        .zip(&layout.strides)
        .fold(layout.offset as i64, |p, (&i, &s)| p + i as i64 * s);
    p as usize
}

/// A value no computation here produces, marking the gaps of a buffer.
pub fn sentinel(dtype: DType) -> Scalar {
    match dtype {
        DType::F32 => Scalar::F32(f32::from_bits(0x7fc0_1234)),
        DType::F64 => Scalar::F64(f64::from_bits(0x7ff8_0000_0012_3456)),
        DType::I32 => Scalar::I32(-123_456_789),
        DType::I64 => Scalar::I64(-987_654_321_012),
    }
}

/// The bits of a scalar, for exact comparisons (NaN payloads included).
pub fn bits(s: Scalar) -> u64 {
    match s {
        Scalar::F32(v) => u64::from(v.to_bits()),
        Scalar::F64(v) => v.to_bits(),
        Scalar::I32(v) => u64::from(v as u32),
        Scalar::I64(v) => v as u64,
    }
}

/// The bits of every element of an array in C order, for exact comparisons of whole results
/// (`-0.0` and NaN payloads included).
pub fn array_bits(a: &Array) -> Vec<u64> {
    let mut out = Vec::new();
    einc_runtime::array::for_each_index(a.shape(), |ix| out.push(bits(a.get(ix))));
    out
}

/// An argument placed in a buffer of its own with some layout.
#[derive(Clone, Debug)]
pub struct Placed {
    /// Where the elements are.
    pub layout: Layout,
    /// The logical shape.
    pub shape: Vec<usize>,
    /// The storage: `layout.len` elements.
    pub buffer: Buffer,
    extents: Vec<i64>,
}

impl Placed {
    /// `a`'s elements in a new buffer with `layout`; the gaps hold the sentinel. With stride-0
    /// axes several elements share a position and the last one written wins: read the
    /// argument back with [`Placed::logical`].
    pub fn new(a: &Array, layout: Layout) -> Placed {
        let mut buffer = Buffer::zeros(a.dtype(), layout.len);
        for p in 0..layout.len {
            put(&mut buffer, p, sentinel(a.dtype()));
        }
        for_each_index(a.shape(), |i| {
            put(&mut buffer, position(&layout, i), a.get(i))
        });
        Placed {
            layout,
            shape: a.shape().to_vec(),
            buffer,
            extents: a.shape().iter().map(|&n| n as i64).collect(),
        }
    }

    /// An output of `dtype` and `shape`: a random layout (no broadcast axes), every element
    /// and gap holding the sentinel.
    pub fn output(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Placed {
        let layout = random_layout(rng, shape, false);
        let mut out = Placed::new(&zeros(dtype, shape), layout);
        for p in 0..out.layout.len {
            put(&mut out.buffer, p, sentinel(dtype));
        }
        out
    }

    /// The logical elements, in a new C-order array.
    pub fn logical(&self) -> Array {
        let mut a = zeros(self.buffer.dtype(), &self.shape);
        for_each_index(&self.shape, |i| {
            a.set(i, take(&self.buffer, position(&self.layout, i)))
        });
        a
    }

    /// Checks that every gap still holds the sentinel.
    pub fn check_gaps(&self) -> Result<(), String> {
        let mut reached = vec![false; self.layout.len];
        for_each_index(&self.shape, |i| reached[position(&self.layout, i)] = true);
        let gap = bits(sentinel(self.buffer.dtype()));
        for (p, r) in reached.iter().enumerate() {
            let v = take(&self.buffer, p);
            if !r && bits(v) != gap {
                return Err(format!(
                    "wrote {v} into the gap at position {p} of a buffer laid out as {:?}",
                    self.layout
                ));
            }
        }
        Ok(())
    }

    /// The ABI descriptor of this argument. It points into `self`, which must outlive its use
    /// and not be touched meanwhile.
    pub fn descriptor(&mut self) -> abi::Tensor {
        let dtype = self.buffer.dtype();
        let data = data_pointer(&mut self.buffer, self.layout.offset);
        abi::Tensor {
            data,
            dtype: dtype.code(),
            rank: self.shape.len() as i32,
            shape: self.extents.as_ptr(),
            strides: self.layout.strides.as_ptr(),
        }
    }
}

/// A pointer to element `offset` of `b`.
fn data_pointer(b: &mut Buffer, offset: usize) -> *mut std::ffi::c_void {
    match b {
        Buffer::F32(v) => v[offset..].as_mut_ptr().cast(),
        Buffer::F64(v) => v[offset..].as_mut_ptr().cast(),
        Buffer::I32(v) => v[offset..].as_mut_ptr().cast(),
        Buffer::I64(v) => v[offset..].as_mut_ptr().cast(),
    }
}

/// Element `p` of `b`.
pub fn take(b: &Buffer, p: usize) -> Scalar {
    match b {
        Buffer::F32(v) => Scalar::F32(v[p]),
        Buffer::F64(v) => Scalar::F64(v[p]),
        Buffer::I32(v) => Scalar::I32(v[p]),
        Buffer::I64(v) => Scalar::I64(v[p]),
    }
}

/// Sets element `p` of `b` to `s` (converted to the buffer's dtype; NaN payloads survive).
pub fn put(b: &mut Buffer, p: usize, s: Scalar) {
    let s = s.cast(b.dtype());
    match (b, s) {
        (Buffer::F32(v), Scalar::F32(x)) => v[p] = x,
        (Buffer::F64(v), Scalar::F64(x)) => v[p] = x,
        (Buffer::I32(v), Scalar::I32(x)) => v[p] = x,
        (Buffer::I64(v), Scalar::I64(x)) => v[p] = x,
        _ => unreachable!("cast gives the buffer's dtype"),
    }
}

/// A C-order array of zeros (test shapes are small).
pub fn zeros(dtype: DType, shape: &[usize]) -> Array {
    Array::zeros(dtype, shape).unwrap_or_else(|_| unreachable!("test arrays are small"))
}
