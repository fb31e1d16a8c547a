//! ndarray interoperability (cargo feature `ndarray`): views of any strides, including
//! negative and broadcast ones, become kernel arguments, and results come back as `ArrayD`.

use super::{Element, Error, Kernel, TensorMut, TensorRef};
use ndarray::{ArrayD, ArrayView, ArrayViewMut, Dimension, IxDyn};

impl<'a, A: Element, D: Dimension> From<ArrayView<'a, A, D>> for TensorRef<'a> {
    fn from(view: ArrayView<'a, A, D>) -> Self {
        // SAFETY: an `ArrayView` guarantees that every element its shape and strides address
        // from `as_ptr()` is readable and not mutated for `'a`; its extents fit `isize`.
        unsafe {
            TensorRef::from_raw_parts(view.as_ptr().cast(), A::DTYPE, view.shape(), view.strides())
        }
    }
}

impl<'a, A: Element, D: Dimension> From<ArrayViewMut<'a, A, D>> for TensorMut<'a> {
    fn from(mut view: ArrayViewMut<'a, A, D>) -> Self {
        // SAFETY: an `ArrayViewMut` guarantees exclusive, writable access to every element it
        // addresses for `'a`, and that no two indices address one element.
        unsafe {
            TensorMut::from_raw_parts(
                view.as_mut_ptr().cast(),
                A::DTYPE,
                view.shape(),
                view.strides(),
            )
        }
    }
}

impl Kernel {
    /// Runs the kernel like [`Kernel::run`] and returns the outputs as `ArrayD<T>`; every
    /// output must have dtype `T`.
    pub fn run_ndarray<T: Element>(
        &self,
        inputs: &[TensorRef<'_>],
    ) -> Result<Vec<ArrayD<T>>, Error> {
        let fail = |message: String| Error::Argument {
            kernel: self.name().to_string(),
            message,
        };
        if let Some(out) = self.outputs().iter().find(|o| o.dtype != T::DTYPE) {
            return Err(fail(format!(
                "output `{}` has dtype {}, not the {} asked for",
                out.name,
                out.dtype.name(),
                T::DTYPE.name()
            )));
        }
        self.run_buffers(inputs)?
            .into_iter()
            .map(|(buffer, shape)| {
                let data = T::take(buffer).map_err(|b| {
                    fail(format!("an output buffer has dtype {}", b.dtype().name()))
                })?;
                ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| fail(e.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2};

    #[test]
    fn views_keep_ndarray_strides_and_point_at_element_zero() {
        let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f64);
        let mut reversed = a.view();
        reversed.invert_axis(ndarray::Axis(0));
        let t = TensorRef::from(reversed.slice(s![.., ..;2]));
        assert_eq!((t.shape(), t.strides()), (&[3, 2][..], &[-4, 2][..]));
        assert_eq!(t.dtype(), einc_runtime::DType::F64);
        let mut b = Array2::<i32>::zeros((2, 2));
        let m = TensorMut::from(b.view_mut().reversed_axes());
        assert_eq!((m.shape(), m.strides()), (&[2, 2][..], &[1, 2][..]));
    }
}
