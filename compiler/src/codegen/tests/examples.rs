//! Differential test: every kernel of every `examples/*.ein` file, lowered and JIT-compiled,
//! computes what the reference interpreter computes, on C-order and on transposed inputs.

use super::*;
use crate::codegen::KernelSignature;
use crate::interp;
use crate::lower::lower_module;
use crate::sema::compile_source;
use einc_runtime::abi::status;
use einc_runtime::{Array, Buffer};

/// Extents of an argument with symbolic dim number `n` sized `n + 2` (distinct, so a mix-up
/// of dims shows).
fn shape_of(sig: &KernelSignature, arg: usize) -> Vec<usize> {
    let sym: Vec<&str> = sig
        .dims
        .iter()
        .filter(|d| d.value.is_none())
        .map(|d| d.name.as_str())
        .collect();
    sig.args[arg]
        .shape
        .iter()
        .map(|e| match e {
            Extent::Fixed(n) => *n as usize,
            Extent::Dim(name) => match sig
                .dims
                .iter()
                .find(|d| &d.name == name)
                .and_then(|d| d.value)
            {
                Some(v) => v as usize,
                None => sym.iter().position(|s| s == name).unwrap() + 2,
            },
        })
        .collect()
}

fn buffer(dtype: DType, len: usize, seed: usize) -> Buffer {
    let val = |i: usize| ((i * 7919 + seed * 104729) % 23) as f64 / 8.0 - 1.4;
    match dtype {
        DType::F32 => Buffer::F32((0..len).map(|i| val(i) as f32).collect()),
        DType::F64 => Buffer::F64((0..len).map(val).collect()),
        DType::I32 => Buffer::I32((0..len).map(|i| (val(i) * 8.0) as i32).collect()),
        DType::I64 => Buffer::I64((0..len).map(|i| (val(i) * 8.0) as i64).collect()),
    }
}

fn data_ptr(b: &mut Buffer) -> *mut std::ffi::c_void {
    match b {
        Buffer::F32(v) => v.as_mut_ptr().cast(),
        Buffer::F64(v) => v.as_mut_ptr().cast(),
        Buffer::I32(v) => v.as_mut_ptr().cast(),
        Buffer::I64(v) => v.as_mut_ptr().cast(),
    }
}

fn to_f64(b: &Buffer) -> Vec<f64> {
    match b {
        Buffer::F32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        Buffer::F64(v) => v.clone(),
        Buffer::I32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        Buffer::I64(v) => v.iter().map(|x| *x as f64).collect(),
    }
}

/// C-order strides, or (when `transposed`) the strides of the transposed storage of a
/// rank-2 array.
fn strides(shape: &[usize], transposed: bool) -> Vec<i64> {
    if transposed && shape.len() == 2 {
        return vec![1, shape[0] as i64];
    }
    let mut s = vec![1i64; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1] as i64;
    }
    s
}

#[test]
fn every_example_kernel_agrees_with_the_interpreter() {
    let files = crate::testkit::files::example_files();
    let mut kernels = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let tm = compile_source(&text)
            .0
            .unwrap_or_else(|| panic!("{}", path.display()));
        let lm = lower_module(&tm).unwrap();
        let program = jit_compile(&lm).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for name in program.kernels() {
            let k = program.kernel(name).unwrap();
            let sig = k.signature();
            for transposed in [false, true] {
                let mut arrays = Vec::new();
                let mut bufs = Vec::new();
                let mut shapes = Vec::new();
                for (a, arg) in sig.args.iter().enumerate() {
                    let shape = shape_of(sig, a);
                    let len: usize = shape.iter().product();
                    let b = if a < sig.ninputs {
                        buffer(arg.dtype, len, a)
                    } else {
                        Buffer::zeros(arg.dtype, len)
                    };
                    if a < sig.ninputs {
                        // The interpreter gets the same elements in C order.
                        let st = strides(&shape, transposed);
                        let mut c = Buffer::zeros(arg.dtype, len);
                        let src = to_f64(&b);
                        let mut dst = to_f64(&c);
                        einc_runtime::array::for_each_index(&shape, |ix| {
                            let off: i64 = ix.iter().zip(&st).map(|(i, s)| *i as i64 * s).sum();
                            let flat: usize = ix
                                .iter()
                                .zip(strides(&shape, false))
                                .map(|(i, s)| i * s as usize)
                                .sum();
                            dst[flat] = src[off as usize];
                        });
                        c = match arg.dtype {
                            DType::F32 => Buffer::F32(dst.iter().map(|x| *x as f32).collect()),
                            DType::F64 => Buffer::F64(dst),
                            DType::I32 => Buffer::I32(dst.iter().map(|x| *x as i32).collect()),
                            DType::I64 => Buffer::I64(dst.iter().map(|x| *x as i64).collect()),
                        };
                        arrays.push(Array::from_buffer(c, &shape).unwrap());
                    }
                    bufs.push(b);
                    shapes.push(shape);
                }
                let want = interp::run(&tm, name, &arrays).unwrap();
                let args: Vec<Arg> = bufs
                    .iter_mut()
                    .zip(&shapes)
                    .zip(&sig.args)
                    .enumerate()
                    .map(|(a, ((b, shape), arg))| Arg {
                        data: data_ptr(b),
                        dtype: arg.dtype,
                        shape: shape.iter().map(|e| *e as i64).collect(),
                        strides: strides(shape, transposed && a < sig.ninputs),
                    })
                    .collect();
                assert_eq!(call(&k, &args), status::OK, "{name}");
                for (o, w) in want.iter().enumerate() {
                    let got = to_f64(&bufs[sig.ninputs + o]);
                    let w = w.to_c_contiguous().to_f64_vec();
                    assert_eq!(got.len(), w.len());
                    for (i, (g, w)) in got.iter().zip(&w).enumerate() {
                        let tol = 1e-4 * w.abs().max(1.0);
                        assert!(
                            (g - w).abs() <= tol,
                            "{name} output {o}[{i}]: {g} vs {w} (transposed {transposed})"
                        );
                    }
                }
            }
            kernels += 1;
        }
    }
    assert!(kernels >= 5);
}
