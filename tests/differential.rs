//! Differential tests: the JIT (through the Rust API and each kernel's C ABI entry point)
//! against the reference interpreter, on every example kernel and on random programs.
//!
//! Inputs are laid out at random: C order, Fortran order, padded (strides with gaps) and with
//! reversed axes (negative strides). The unused elements of every buffer hold a sentinel, so
//! a kernel that read a gap would produce a wrong (for floats, NaN) result; outputs written
//! through [`Kernel::call`] get random layouts too, and their gaps must keep the sentinel.
//!
//! Integers compare exactly (both sides wrap the same way); floats compare with a tolerance
//! scaled by the magnitude of the expected value: 1e-5 for f32, 1e-12 for f64.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc::compiler::interp;
use einc::runtime::array::for_each_index;
use einc::runtime::{Array, Buffer, DType, Scalar};
use einc::{Kernel, Program, TensorMut, TensorRef};
use einc_compiler::rng::Rng;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// A generator whose seeds are spread out, so that neighbouring seeds give unrelated inputs.
fn seeded(seed: u64) -> Rng {
    Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
}

/// True with probability `percent`/100.
fn chance(rng: &mut Rng, percent: usize) -> bool {
    rng.below(100) < percent
}

/// A layout for `shape` inside a buffer of `len` elements: element `[i..]` is at
/// `offset + Σ i_k * strides[k]`.
#[derive(Debug)]
struct Layout {
    strides: Vec<isize>,
    offset: usize,
    len: usize,
}

/// A random layout: axes ordered C or Fortran or shuffled, sometimes padded, sometimes
/// reversed.
fn random_layout(rng: &mut Rng, shape: &[usize]) -> Layout {
    let mut order: Vec<usize> = (0..shape.len()).rev().collect(); // innermost first
    match rng.below(4) {
        0 => {}               // C order
        1 => order.reverse(), // Fortran order
        _ => {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
    }
    let padded = chance(rng, 50);
    let mut strides = vec![0isize; shape.len()];
    let mut acc = 1usize;
    for &axis in &order {
        let step = if padded { 1 + rng.below(2) } else { 1 };
        strides[axis] = (acc * step) as isize;
        acc = acc * step * shape[axis].max(1) + if padded { rng.below(3) } else { 0 };
    }
    let mut offset = if padded { rng.below(3) } else { 0 };
    for (axis, s) in strides.iter_mut().enumerate() {
        if chance(rng, 30) {
            offset += (shape[axis].saturating_sub(1)) * s.unsigned_abs();
            *s = -*s;
        }
    }
    let reach: usize = shape
        .iter()
        .zip(&strides)
        .map(|(&n, s)| n.saturating_sub(1) * s.unsigned_abs())
        .sum();
    let tail = if padded { rng.below(3) } else { 0 };
    Layout {
        strides,
        offset,
        len: offset + reach + 1 + tail,
    }
}

/// Buffer position of `index` under `layout`.
fn position(layout: &Layout, index: &[usize]) -> usize {
    let p = index
        .iter()
        .zip(&layout.strides)
        .fold(layout.offset as isize, |p, (&i, &s)| p + i as isize * s);
    p as usize
}

/// A value no computation here produces, marking the gaps of a buffer.
fn sentinel(dtype: DType) -> Scalar {
    match dtype {
        DType::F32 => Scalar::F32(f32::NAN),
        DType::F64 => Scalar::F64(f64::NAN),
        DType::I32 => Scalar::I32(-123_456_789),
        DType::I64 => Scalar::I64(-987_654_321_012),
    }
}

/// A random C-order array: floats in [-1, 1], integers in [-3, 3].
fn random_array(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Array {
    let mut a = Array::zeros(dtype, shape).unwrap();
    for_each_index(shape, |i| {
        let v = if dtype.is_float() {
            Scalar::F64(rng.below(2001) as f64 / 1000.0 - 1.0)
        } else {
            Scalar::I64(rng.below(7) as i64 - 3)
        };
        a.set(i, v);
    });
    a
}

/// `a`'s elements placed into a buffer with `layout`, gaps holding the sentinel.
fn place(a: &Array, layout: &Layout) -> Array {
    let mut buf = Array::zeros(a.dtype(), &[layout.len]).unwrap();
    for p in 0..layout.len {
        buf.set(&[p], sentinel(a.dtype()));
    }
    for_each_index(a.shape(), |i| buf.set(&[position(layout, i)], a.get(i)));
    buf
}

/// A view of `buf` (a rank-1 array made by [`place`]) with `layout` and `shape`.
fn view<'a>(buf: &'a Array, layout: &Layout, shape: &[usize]) -> TensorRef<'a> {
    let (o, s) = (layout.offset, layout.strides.as_slice());
    match buf.buffer() {
        Buffer::F32(v) => TensorRef::strided(v, o, shape, s),
        Buffer::F64(v) => TensorRef::strided(v, o, shape, s),
        Buffer::I32(v) => TensorRef::strided(v, o, shape, s),
        Buffer::I64(v) => TensorRef::strided(v, o, shape, s),
    }
    .unwrap()
}

/// Buffers with writable access for outputs: each output's layout, shape and storage.
struct OutBuf {
    layout: Layout,
    shape: Vec<usize>,
    data: Buffer,
}

impl OutBuf {
    fn new(rng: &mut Rng, dtype: DType, shape: &[usize]) -> OutBuf {
        let layout = random_layout(rng, shape);
        let data = place(&Array::zeros(dtype, shape).unwrap(), &layout)
            .buffer()
            .clone();
        OutBuf {
            layout,
            shape: shape.to_vec(),
            data,
        }
    }

    fn view(&mut self) -> TensorMut<'_> {
        let (o, s, shape) = (self.layout.offset, &self.layout.strides, &self.shape);
        match &mut self.data {
            Buffer::F32(v) => TensorMut::strided(v, o, shape, s),
            Buffer::F64(v) => TensorMut::strided(v, o, shape, s),
            Buffer::I32(v) => TensorMut::strided(v, o, shape, s),
            Buffer::I64(v) => TensorMut::strided(v, o, shape, s),
        }
        .unwrap()
    }

    /// The logical elements, after checking that every gap still holds the sentinel.
    fn read(&self, what: &str) -> Array {
        let buf = Array::from_buffer(self.data.clone(), &[self.layout.len]).unwrap();
        let mut written = vec![false; self.layout.len];
        let mut a = Array::zeros(self.data.dtype(), &self.shape).unwrap();
        for_each_index(&self.shape, |i| {
            let p = position(&self.layout, i);
            written[p] = true;
            a.set(i, buf.get(&[p]));
        });
        let gap = sentinel(self.data.dtype());
        for (p, w) in written.iter().enumerate() {
            let v = buf.get(&[p]);
            assert!(
                *w || v.to_f64().to_bits() == gap.to_f64().to_bits(),
                "{what}: the kernel wrote {v} into a gap at position {p} of {:?}",
                self.layout
            );
        }
        a
    }
}

/// Asserts that `got` matches the interpreter's `want`.
fn assert_close(got: &Array, want: &Array, what: &str) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for_each_index(want.shape(), |i| {
        let (g, w) = (got.get(i), want.get(i));
        let ok = match (g, w) {
            (Scalar::I32(a), Scalar::I32(b)) => a == b,
            (Scalar::I64(a), Scalar::I64(b)) => a == b,
            (g, w) => {
                let tol = if w.dtype() == DType::F32 { 1e-5 } else { 1e-12 };
                let (g, w) = (g.to_f64(), w.to_f64());
                (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * w.abs().max(1.0)
            }
        };
        assert!(
            ok,
            "{what}: at {i:?} the JIT gives {g}, the interpreter {w}"
        );
    });
}

/// Runs `kernel` on `inputs` laid out at random, both through `run` and through `call` with
/// random output layouts, and compares with the interpreter.
fn check_kernel(program: &Program, kernel: &Kernel, inputs: &[Array], rng: &mut Rng, what: &str) {
    let want = interp::run(program.module(), kernel.name(), inputs)
        .unwrap_or_else(|e| panic!("{what}: the interpreter fails: {e}"));
    let layouts: Vec<Layout> = inputs
        .iter()
        .map(|a| random_layout(rng, a.shape()))
        .collect();
    let buffers: Vec<Array> = inputs
        .iter()
        .zip(&layouts)
        .map(|(a, l)| place(a, l))
        .collect();
    let views: Vec<TensorRef<'_>> = buffers
        .iter()
        .zip(&layouts)
        .zip(inputs)
        .map(|((b, l), a)| view(b, l, a.shape()))
        .collect();
    let what = format!("{what} with input layouts {layouts:?}");
    let got = kernel.run(&views).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(got.len(), want.len());
    for (n, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(g, w, &format!("{what}, run, output {n}"));
    }
    let mut outs: Vec<OutBuf> = want
        .iter()
        .map(|w| OutBuf::new(rng, w.dtype(), w.shape()))
        .collect();
    let mut out_views: Vec<TensorMut<'_>> = outs.iter_mut().map(OutBuf::view).collect();
    kernel
        .call(&views, &mut out_views)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    drop(out_views);
    for (n, (o, w)) in outs.iter().zip(&want).enumerate() {
        let what = format!("{what}, call, output {n} laid out as {:?}", o.layout);
        assert_close(&o.read(&what), w, &what);
    }
}

/// Random inputs for `kernel`: each symbolic dim gets an extent in 1..=4.
fn random_inputs(kernel: &Kernel, rng: &mut Rng) -> Vec<Array> {
    let sig = kernel.signature();
    let values: BTreeMap<&str, usize> = sig
        .dims
        .iter()
        .map(|d| {
            let v = d.value.map_or_else(|| 1 + rng.below(4), |v| v as usize);
            (d.name.as_str(), v)
        })
        .collect();
    kernel
        .inputs()
        .iter()
        .map(|a| {
            let shape: Vec<usize> = a
                .shape
                .iter()
                .map(|e| match e {
                    einc::compiler::ir::tensor::Extent::Fixed(n) => *n as usize,
                    einc::compiler::ir::tensor::Extent::Dim(d) => values[d.as_str()],
                })
                .collect();
            random_array(rng, a.dtype, &shape)
        })
        .collect()
}

#[test]
fn every_example_kernel_agrees_with_the_interpreter() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ein"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "examples: {files:?}");
    let mut kernels = 0;
    for file in &files {
        let program =
            Program::from_file(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for name in program.kernel_names().map(String::from).collect::<Vec<_>>() {
            let kernel = program.kernel(&name).unwrap();
            kernels += 1;
            for seed in 0..6 {
                let mut rng = seeded(seed * 7919 + kernels);
                let inputs = random_inputs(&kernel, &mut rng);
                let what = format!("{}: kernel {name}, seed {seed}", file.display());
                check_kernel(&program, &kernel, &inputs, &mut rng, &what);
            }
        }
    }
    assert!(kernels >= 9, "only {kernels} kernels found");
}

/// How a random program's extents are declared.
#[derive(Clone, Copy, Debug)]
enum Dims {
    /// `dims DA, DB`: bound at call time.
    Symbolic,
    /// `dims DA = 2`.
    Fixed,
    /// Literal extents in the declarations.
    Literal,
}

/// A random einsum-like program as `.ein` source, and its inputs.
#[derive(Debug)]
struct RandomProgram {
    source: String,
    inputs: Vec<Array>,
}

const LABELS: &[u8] = b"ijkl";

/// One random program: 1–4 operands of rank 0–3 over labels `ijkl` (repeats within an
/// operand allowed), an explicit or implicit output, either an `einsum(...)` statement (with
/// size-1 broadcasting and mixed dtypes) or an index statement with an explicit `sum`.
fn random_program(seed: u64) -> RandomProgram {
    let mut rng = seeded(seed);
    let extent: BTreeMap<u8, usize> = LABELS.iter().map(|&l| (l, 1 + rng.below(3))).collect();
    let einsum_form = chance(&mut rng, 50);
    let dims = [Dims::Symbolic, Dims::Fixed, Dims::Literal][rng.below(3)];
    let base = [DType::F32, DType::F64, DType::I32, DType::I64][rng.below(4)];
    let nops = 1 + rng.below(4);
    let terms: Vec<Vec<u8>> = (0..nops)
        .map(|_| (0..rng.below(4)).map(|_| LABELS[rng.below(4)]).collect())
        .collect();
    let dtypes: Vec<DType> = (0..nops)
        .map(|_| {
            if einsum_form && chance(&mut rng, 25) {
                [DType::F32, DType::F64, DType::I32, DType::I64][rng.below(4)]
            } else {
                base
            }
        })
        .collect();
    // Size-1 broadcasting (einsum form only): an occurrence of a label that the operand
    // holds once, when another operand carries the label at full size.
    let holders = |l: u8| terms.iter().filter(|t| t.contains(&l)).count();
    let broadcast: Vec<Vec<bool>> = terms
        .iter()
        .map(|t| {
            t.iter()
                .map(|&l| {
                    einsum_form
                        && t.iter().filter(|&&m| m == l).count() == 1
                        && holders(l) > 1
                        && chance(&mut rng, 20)
                })
                .collect()
        })
        .collect();
    // A label broadcast everywhere it occurs has extent 1 in the output.
    let full = |l: u8| {
        terms
            .iter()
            .zip(&broadcast)
            .any(|(t, b)| t.iter().zip(b).any(|(&m, &b)| m == l && !b))
    };
    let mut used: Vec<u8> = terms.iter().flatten().copied().collect();
    used.sort_unstable();
    used.dedup();
    let implicit = einsum_form && chance(&mut rng, 30);
    let output: Vec<u8> = if implicit {
        let all: Vec<u8> = terms.iter().flatten().copied().collect();
        used.iter()
            .copied()
            .filter(|l| all.iter().filter(|&m| m == l).count() == 1)
            .collect()
    } else {
        let mut pool = used.clone();
        let mut out = Vec::new();
        while !pool.is_empty() && chance(&mut rng, 60) {
            out.push(pool.remove(rng.below(pool.len())));
        }
        out
    };
    let dim_name = |l: u8| format!("D{}", char::from(l.to_ascii_uppercase()));
    let show = |l: u8, b: bool| -> String {
        match (b, dims) {
            (true, _) => "1".into(),
            (false, Dims::Literal) => extent[&l].to_string(),
            (false, _) => dim_name(l),
        }
    };
    let out_dtype = dtypes.iter().copied().reduce(DType::promote).unwrap();
    let mut src = String::new();
    if !matches!(dims, Dims::Literal) && !used.is_empty() {
        let decls: Vec<String> = used
            .iter()
            .map(|&l| match dims {
                Dims::Fixed => format!("{} = {}", dim_name(l), extent[&l]),
                _ => dim_name(l),
            })
            .collect();
        src.push_str(&format!("dims {}\n", decls.join(", ")));
    }
    let params: Vec<String> = terms
        .iter()
        .zip(&broadcast)
        .zip(&dtypes)
        .enumerate()
        .map(|(n, ((t, b), d))| {
            let shape: Vec<String> = t.iter().zip(b).map(|(&l, &b)| show(l, b)).collect();
            format!("A{n}: {}[{}]", d.name(), shape.join(", "))
        })
        .collect();
    let out_shape: Vec<String> = output.iter().map(|&l| show(l, !full(l))).collect();
    src.push_str(&format!(
        "kernel k({}) -> (out: {}[{}]) {{\n",
        params.join(", "),
        out_dtype.name(),
        out_shape.join(", ")
    ));
    let idx = |t: &[u8]| -> String {
        t.iter()
            .map(|&l| char::from(l).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if einsum_form {
        let subs: Vec<String> = terms
            .iter()
            .map(|t| t.iter().map(|&l| char::from(l)).collect())
            .collect();
        let mut subscripts = subs.join(",");
        if !implicit {
            subscripts.push_str("->");
            subscripts.extend(output.iter().map(|&l| char::from(l)));
        }
        let args: Vec<String> = (0..nops).map(|n| format!("A{n}")).collect();
        src.push_str(&format!(
            "    out = einsum(\"{subscripts}\", {})\n",
            args.join(", ")
        ));
    } else {
        let factors: Vec<String> = terms
            .iter()
            .enumerate()
            .map(|(n, t)| {
                if t.is_empty() {
                    format!("A{n}")
                } else {
                    format!("A{n}[{}]", idx(t))
                }
            })
            .collect();
        let summed: Vec<u8> = used
            .iter()
            .copied()
            .filter(|l| !output.contains(l))
            .collect();
        let product = factors.join(" * ");
        let rhs = if summed.is_empty() {
            product
        } else {
            format!("sum[{}]({product})", idx(&summed))
        };
        let lhs = if output.is_empty() {
            "out".to_string()
        } else {
            format!("out[{}]", idx(&output))
        };
        src.push_str(&format!("    {lhs} = {rhs}\n"));
    }
    src.push_str("}\n");
    let inputs = terms
        .iter()
        .zip(&broadcast)
        .zip(&dtypes)
        .map(|((t, b), &d)| {
            let shape: Vec<usize> = t
                .iter()
                .zip(b)
                .map(|(l, &b)| if b { 1 } else { extent[l] })
                .collect();
            random_array(&mut rng, d, &shape)
        })
        .collect();
    RandomProgram {
        source: src,
        inputs,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_agree_with_the_interpreter(seed in any::<u64>()) {
        let p = random_program(seed);
        let program = Program::from_source(&p.source)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", p.source));
        let kernel = program.kernel("k").unwrap();
        let mut rng = Rng::new(seed ^ 0x5EED);
        check_kernel(&program, &kernel, &p.inputs, &mut rng, &format!("seed {seed}:\n{}", p.source));
    }
}

/// Random programs (a fixed set of seeds) compiled with each pass of `-O2` left out in turn:
/// every pass's contribution is checked on its own, not only the sum of them.
#[test]
fn random_programs_agree_with_the_interpreter_with_each_pass_left_out() {
    use einc_compiler::compile::{pipeline, CompileOptions};
    use einc_compiler::passes::Level;
    let passes: Vec<String> = pipeline(&CompileOptions::default(), Level::Loop)
        .unwrap()
        .names()
        .split(", ")
        .filter(|&name| name != "lower-to-loops")
        .map(String::from)
        .collect();
    assert!(passes.len() >= 6, "{passes:?}");
    for seed in 0..24u64 {
        let p = random_program(seed);
        let module = Program::from_source(&p.source)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", p.source))
            .module()
            .clone();
        for left_out in &passes {
            let opts = CompileOptions {
                disabled: vec![left_out.clone()],
                ..CompileOptions::default()
            };
            let program = Program::from_module_with(module.clone(), &opts)
                .unwrap_or_else(|e| panic!("seed {seed} without {left_out}: {e}"));
            let kernel = program.kernel("k").unwrap();
            let mut rng = Rng::new(seed ^ 0x5EED);
            let what = format!("seed {seed} without {left_out}:\n{}", p.source);
            check_kernel(&program, &kernel, &p.inputs, &mut rng, &what);
        }
    }
}

/// Random programs (a fixed set of seeds) compiled with the `-O2` pipeline whose `schedule`
/// pass draws a random legal schedule for every op (`schedule{random=SEED}`, several seeds per
/// program): a schedule may change the speed, never the result (`docs/schedules.md`).
#[test]
fn random_programs_agree_with_the_interpreter_under_random_schedules() {
    use einc_compiler::compile::{pipeline, CompileOptions};
    use einc_compiler::passes::Level;
    let names = pipeline(&CompileOptions::default(), Level::Loop)
        .unwrap()
        .names();
    assert!(names.split(", ").any(|n| n == "schedule"), "{names}");
    for seed in 0..24u64 {
        let p = random_program(seed);
        let module = Program::from_source(&p.source)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", p.source))
            .module()
            .clone();
        for draw in 1..=3u64 {
            let random = seed * 3 + draw;
            let list: Vec<String> = names
                .split(", ")
                .map(|n| match n {
                    "schedule" => format!("schedule{{random={random}}}"),
                    _ => n.to_string(),
                })
                .collect();
            let opts = CompileOptions {
                pipeline: Some(list.join(",")),
                ..CompileOptions::default()
            };
            let program = Program::from_module_with(module.clone(), &opts)
                .unwrap_or_else(|e| panic!("seed {seed}, schedule random={random}: {e}"));
            let kernel = program.kernel("k").unwrap();
            let mut rng = Rng::new(seed ^ 0x5EED);
            let what = format!("seed {seed}, schedule random={random}:\n{}", p.source);
            check_kernel(&program, &kernel, &p.inputs, &mut rng, &what);
        }
    }
}

#[test]
fn random_programs_cover_every_form() {
    // The generator must produce each form the property test claims to cover.
    let sources: Vec<String> = (0..200).map(|s| random_program(s).source).collect();
    for needle in [
        "einsum(", "sum[", "dims D", " = 2", "f32[", "f64[", "i32[", "i64[", ", 1", "->\"",
    ] {
        assert!(
            sources.iter().any(|s| s.contains(needle)),
            "no generated program contains {needle:?}"
        );
    }
    assert!(
        sources.iter().any(|s| s.matches("A3").count() > 0),
        "no 4-operand program"
    );
    assert!(sources
        .iter()
        .any(|s| s.contains("i, i") || s.contains("\"ii")));
}
