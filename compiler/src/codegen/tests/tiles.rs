//! The loop IR of tiled code compiled and run against the evaluator, bit for bit: index
//! division, the lane order of `reduce_lanes`, scoped and aligned buffers, kernel variants and
//! their dispatch, and every micro-kernel shape, edge tile and epilogue.

use super::*;
use crate::codegen::{jit_compile_with, JitProgram, UkernelIsa};
use crate::ir::loops::eval::{run_function, select};
use crate::ir::loops::parser::parse_module;
use crate::ir::loops::verify::verify_module;
use crate::ir::loops::UkernelShape;
use crate::rng::Rng;
pub(super) use crate::testkit::layout::array_bits as bits;
use einc_runtime::abi::status;
use einc_runtime::{Array, Buffer, Scalar};

pub(super) const TILES: &str = include_str!("../../../../tests/filetests/loops/tiles.lir");

pub(super) fn parse(text: &str) -> Module {
    let m = parse_module(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(verify_module(&m), Ok(()), "{text}");
    m
}

/// An output the caller allocates: its shape and element strides (rows may be padded).
pub(super) struct Out {
    shape: Vec<usize>,
    strides: Vec<usize>,
}

impl Out {
    pub(super) fn c_order(shape: &[usize]) -> Out {
        let strides = einc_runtime::array::c_strides(shape).unwrap();
        Out {
            shape: shape.to_vec(),
            strides,
        }
    }

    /// Rows padded by `pad` elements (rank 2).
    fn padded(shape: &[usize], pad: usize) -> Out {
        Out {
            shape: shape.to_vec(),
            strides: vec![shape[1] + pad, 1],
        }
    }

    fn len(&self) -> usize {
        let far: usize = self
            .shape
            .iter()
            .zip(&self.strides)
            .map(|(e, s)| e.saturating_sub(1) * s)
            .sum();
        if self.shape.contains(&0) {
            0
        } else {
            far + 1
        }
    }
}

fn ptr(b: &Buffer, offset: usize) -> *mut std::ffi::c_void {
    match b {
        Buffer::F32(v) => v[offset..].as_ptr() as *mut std::ffi::c_void,
        Buffer::F64(v) => v[offset..].as_ptr() as *mut std::ffi::c_void,
        Buffer::I32(v) => v[offset..].as_ptr() as *mut std::ffi::c_void,
        Buffer::I64(v) => v[offset..].as_ptr() as *mut std::ffi::c_void,
    }
}

/// Calls kernel `name` of `program` on `inputs` (their own strides) with outputs laid out as
/// `outs` say; returns the status and the outputs as C-order arrays.
pub(super) fn run_jit(
    program: &JitProgram,
    name: &str,
    inputs: &[Array],
    outs: &[Out],
) -> (i32, Vec<Array>) {
    let k = program.kernel(name).unwrap();
    let sig = k.signature().clone();
    let mut out_bufs: Vec<Buffer> = outs
        .iter()
        .zip(&sig.args[inputs.len()..])
        .map(|(o, a)| Buffer::zeros(a.dtype, o.len().max(1)))
        .collect();
    let mut args = Vec::new();
    for (a, arr) in inputs.iter().enumerate() {
        args.push(Arg {
            data: ptr(arr.buffer(), arr.offset()),
            dtype: sig.args[a].dtype,
            shape: arr.shape().iter().map(|&e| e as i64).collect(),
            strides: arr.strides().iter().map(|&s| s as i64).collect(),
        });
    }
    for (o, b) in outs.iter().zip(&mut out_bufs) {
        args.push(Arg {
            data: ptr(b, 0),
            dtype: b.dtype(),
            shape: o.shape.iter().map(|&e| e as i64).collect(),
            strides: o.strides.iter().map(|&s| s as i64).collect(),
        });
    }
    let code = call(&k, &args);
    let arrays = outs
        .iter()
        .zip(out_bufs)
        .map(|(o, b)| {
            Array::with_layout(b, &o.shape, &o.strides, 0)
                .unwrap()
                .to_c_contiguous()
        })
        .collect();
    (code, arrays)
}

/// Runs kernel `name` compiled and in the evaluator; the outputs must agree bit for bit.
pub(super) fn agree(m: &Module, program: &JitProgram, name: &str, inputs: &[Array], outs: &[Out]) {
    let f = m.kernels().find(|f| f.name == name).unwrap();
    let want = run_function(m, f, inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (code, got) = run_jit(program, name, inputs, outs);
    assert_eq!(code, status::OK, "{name}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.shape(), w.shape());
        assert_eq!(
            bits(g),
            bits(w),
            "{name} on {:?}",
            inputs
                .iter()
                .map(|a| a.shape().to_vec())
                .collect::<Vec<_>>()
        );
    }
}

pub(super) fn f32_array(rng: &mut Rng, shape: &[usize]) -> Array {
    let n: usize = shape.iter().product();
    let v = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    Array::from_buffer(Buffer::F32(v), shape).unwrap()
}

fn f64_array(rng: &mut Rng, shape: &[usize], strides_of: Option<&[usize]>) -> Array {
    match strides_of {
        None => {
            let n: usize = shape.iter().product();
            let v = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            Array::from_buffer(Buffer::F64(v), shape).unwrap()
        }
        Some(strides) => {
            let far: usize = shape
                .iter()
                .zip(strides)
                .map(|(e, s)| e.saturating_sub(1) * s)
                .sum();
            let v = (0..=far).map(|_| rng.uniform(-1.0, 1.0)).collect();
            Array::with_layout(Buffer::F64(v), shape, strides, 0).unwrap()
        }
    }
}

/// `a` in Fortran order (rank 2): the same elements, transposed storage.
pub(super) fn fortran(a: &Array) -> Array {
    let (r, c) = (a.shape()[0], a.shape()[1]);
    let mut v = vec![0.0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            if let Scalar::F32(x) = a.get(&[i, j]) {
                v[i + j * r] = x;
            }
        }
    }
    Array::with_layout(Buffer::F32(v), &[r, c], &[1, r], 0).unwrap()
}

#[test]
fn tiled_matmul_agrees_with_the_evaluator_around_every_tile_edge() {
    let m = parse(TILES);
    let program = jit_compile(&m).unwrap();
    let mut rng = Rng::new(17);
    for mm in [1, 3, 4, 5, 8, 9] {
        for nn in [1, 7, 8, 9, 17] {
            for kk in [0, 1, 3, 64, 65, 130] {
                let a = f32_array(&mut rng, &[mm, kk]);
                let b = f32_array(&mut rng, &[kk, nn]);
                let c = [mm, nn];
                // C order (the variant), then Fortran A and padded C rows (the general body).
                agree(
                    &m,
                    &program,
                    "matmul",
                    &[a.clone(), b.clone()],
                    &[Out::c_order(&c)],
                );
                agree(
                    &m,
                    &program,
                    "matmul",
                    &[fortran(&a), b],
                    &[Out::padded(&c, 3)],
                );
            }
        }
    }
}

#[test]
fn dense_epilogue_and_index_operations_agree_with_the_evaluator() {
    let m = parse(TILES);
    let program = jit_compile(&m).unwrap();
    let mut rng = Rng::new(5);
    for rows in [1, 2, 3, 6] {
        for bias_stride in [1, 3] {
            let inputs = [
                f64_array(&mut rng, &[rows, 8], None),
                f64_array(&mut rng, &[8, 4], Some(&[5, 1])),
                f64_array(&mut rng, &[4], Some(&[bias_stride])),
                f64_array(&mut rng, &[], None),
            ];
            agree(
                &m,
                &program,
                "dense",
                &inputs,
                &[Out::padded(&[rows, 4], 1)],
            );
        }
    }
    for (r, c) in [(0, 3), (3, 0), (1, 1), (3, 5), (7, 2)] {
        let x: Vec<i32> = (0..(r * c) as i32).collect();
        let arr = Array::with_layout(Buffer::I32(x), &[r, c], &[1, r.max(1)], 0).unwrap();
        agree(&m, &program, "unflatten", &[arr], &[Out::c_order(&[r, c])]);
    }
}

#[test]
fn the_entry_point_runs_the_first_variant_whose_facts_hold() {
    // The variants write 1 and 2 and the general function 3, so the result shows which ran
    // (real variants compute the same thing; this is what makes the dispatch visible).
    let text = "dims N
func @k(%X: in f32[N, N] strided, %Y: out f32[] strided) {
  %v = const 3.0:f32
  store %v, %Y[]
}

func @k.rows(%X: in f32[N, N] strides[_, 1], %Y: out f32[] strided) variant of @k {
  %v = const 1.0:f32
  store %v, %Y[]
}

func @k.all(%X: in f32[N, N] contiguous, %Y: out f32[] strided) variant of @k {
  %v = const 2.0:f32
  store %v, %Y[]
}
";
    let m = parse(text);
    let program = jit_compile(&m).unwrap();
    let data = Buffer::F32(vec![0.0; 16]);
    let cases = [
        // C order: both variants hold, the first one in module order runs.
        (vec![2, 2], vec![2, 1], 1.0),
        // Padded rows: only the rows variant holds.
        (vec![2, 2], vec![4, 1], 1.0),
        // Transposed: neither holds.
        (vec![2, 2], vec![1, 2], 3.0),
        // Extents of 1 and 0 meet every fact, whatever the strides.
        (vec![1, 1], vec![7, 5], 1.0),
        (vec![0, 0], vec![1, 2], 1.0),
    ];
    for (shape, strides, want) in cases {
        let x = Array::with_layout(data.clone(), &shape, &strides, 0).unwrap();
        let (code, out) = run_jit(
            &program,
            "k",
            std::slice::from_ref(&x),
            &[Out::c_order(&[])],
        );
        assert_eq!(code, status::OK);
        assert_eq!(out[0].get(&[]), Scalar::F32(want), "{shape:?} {strides:?}");
        // The evaluator chooses the same body.
        let chosen = select(&m, &m.funcs[0], &[x]).unwrap();
        let expected = if want == 1.0 { "k.rows" } else { "k" };
        assert_eq!(chosen.name, expected);
    }
}

#[test]
fn a_c_order_fact_uses_the_extents_whatever_the_axes_between() {
    // Axis 0 is C order (stride B * C) even though axis 1's stride is the caller's.
    let text = "dims A, B, C
func @copy(%X: in f32[A, B, C] strides[c, _, 1], %Y: out f32[A, B, C] contiguous) {
  %c0 = index 0
  %a = dim A
  %b = dim B
  %c = dim C
  for %i = %c0 to %a step 1 {
    for %j = %c0 to %b step 1 {
      for %k = %c0 to %c step 1 {
        %x = load %X[%i, %j, %k] : f32
        store %x, %Y[%i, %j, %k]
      }
    }
  }
}
";
    let m = parse(text);
    let program = jit_compile(&m).unwrap();
    let data = Buffer::F32((0..24).map(|x| x as f32).collect());
    // Rows of 4 that overlap (stride 3 along axis 1), blocks of 12 along axis 0.
    let x = Array::with_layout(data.clone(), &[2, 3, 4], &[12, 3, 1], 0).unwrap();
    agree(&m, &program, "copy", &[x], &[Out::c_order(&[2, 3, 4])]);
    // An axis-0 stride that is not B * C is refused.
    let x = Array::with_layout(data, &[2, 3, 4], &[11, 3, 1], 0).unwrap();
    let (code, _) = run_jit(&program, "copy", &[x], &[Out::c_order(&[2, 3, 4])]);
    assert_eq!(code, status::BAD_SHAPE);
}

#[test]
fn pointers_agree_with_the_evaluator() {
    let m = parse(include_str!(
        "../../../../tests/filetests/loops/pointers.lir"
    ));
    let program = jit_compile(&m).unwrap();
    let mut rng = Rng::new(8);
    for n in [1, 2, 5] {
        let x = f64_array(&mut rng, &[n, n], Some(&[1, n + 1]));
        let v = f32_array(&mut rng, &[n, 4]);
        agree(
            &m,
            &program,
            "diag",
            &[x, v],
            &[Out::c_order(&[n]), Out::c_order(&[n, 4])],
        );
    }
}

#[test]
fn lanes_reduce_by_halves_in_compiled_code_too() {
    let text = "func @order(%Y: out f32[2] contiguous) {
  buffer %T: f32[4] contiguous align 64
  %c0 = index 0
  %c1 = index 1
  %c2 = index 2
  %c3 = index 3
  %big = const 100000000.0:f32
  %nbig = const -100000000.0:f32
  %one = const 1.0:f32
  store %big, %T[%c0]
  store %one, %T[%c1]
  store %nbig, %T[%c2]
  store %one, %T[%c3]
  %v = load %T[%c0] : vector<4xf32>
  %r = reduce_lanes add %v : f32
  store %r, %Y[%c0]
  %w = reduce_lanes min %v : f32
  store %w, %Y[%c1]
}
";
    let m = parse(text);
    let program = jit_compile(&m).unwrap();
    let (code, out) = run_jit(&program, "order", &[], &[Out::c_order(&[2])]);
    assert_eq!(code, status::OK);
    // (1e8 + -1e8) + (1 + 1), as docs/ir.md and the evaluator say.
    assert_eq!(out[0].buffer(), &Buffer::F32(vec![2.0, -1e8]));
    agree(&m, &program, "order", &[], &[Out::c_order(&[2])]);
}

#[test]
fn index_division_by_run_time_divisors() {
    // Divisors come from the extent D of the input (and its negation), so they are unknown at
    // compile time: 0, -1, and i64::MIN / -1 must not trap.
    let text = "dims D
func @div(%X: in f32[D] strided, %Y: out i64[4, 4] contiguous) {
  %c0 = index 0
  %c1 = index 1
  %c2 = index 2
  %c3 = index 3
  %d = dim D
  %nd = isub %c0, %d
  %a0 = index -7
  %a1 = index 9223372036854775807
  %a2 = index -9223372036854775808
  %q0 = idiv %a0, %d
  %r0 = irem %a0, %nd
  %q1 = idiv %a1, %nd
  %r1 = irem %a1, %d
  %q2 = idiv %a2, %nd
  %r2 = irem %a2, %nd
  %m = imax %a0, %nd
  %n = imin %a1, %d
  %v0 = cast %q0 : i64
  store %v0, %Y[%c0, %c0]
  %v1 = cast %r0 : i64
  store %v1, %Y[%c0, %c1]
  %v2 = cast %q1 : i64
  store %v2, %Y[%c0, %c2]
  %v3 = cast %r1 : i64
  store %v3, %Y[%c0, %c3]
  %v4 = cast %q2 : i64
  store %v4, %Y[%c1, %c0]
  %v5 = cast %r2 : i64
  store %v5, %Y[%c1, %c1]
  %v6 = cast %m : i64
  store %v6, %Y[%c1, %c2]
  %v7 = cast %n : i64
  store %v7, %Y[%c1, %c3]
  %c5 = index 5
  %q3 = idiv %a0, %c5
  %r3 = irem %a0, %c5
  %v8 = cast %q3 : i64
  store %v8, %Y[%c2, %c0]
  %v9 = cast %r3 : i64
  store %v9, %Y[%c2, %c1]
  %zero = const 0:i64
  store %zero, %Y[%c2, %c2]
  store %zero, %Y[%c2, %c3]
  store %zero, %Y[%c3, %c0]
  store %zero, %Y[%c3, %c1]
  store %zero, %Y[%c3, %c2]
  store %zero, %Y[%c3, %c3]
}
";
    let m = parse(text);
    let program = jit_compile(&m).unwrap();
    for d in 0..4 {
        let x = Array::zeros(DType::F32, &[d]).unwrap();
        agree(
            &m,
            &program,
            "div",
            std::slice::from_ref(&x),
            &[Out::c_order(&[4, 4])],
        );
        let (_, out) = run_jit(&program, "div", &[x], &[Out::c_order(&[4, 4])]);
        if d == 1 {
            // -7 / 1, -7 % -1, MAX / -1, MAX % 1, MIN / -1 (wraps), MIN % -1, ...
            let want = [-7, 0, -i64::MAX, 0, i64::MIN, 0, -1, 1, -1, -2];
            assert_eq!(&bits(&out[0])[..10], &want.map(|x| x as u64));
        }
    }
}

/// A kernel that copies `C0` into `C` and then makes one micro-kernel call on the whole of `C`:
/// `tile M x N` (`M` may exceed `MR`), `kc K`, `init` when the extent of `I` is 1, with the
/// given epilogue (`factor`: none, or `scale` or `divide` with `relu`; `bias`: none, `m`, `n`).
/// With `panels`, A is `[P, K, MR]`: panels of `MR` rows read through the `mt` coordinate, as
/// a packed A is.
fn one_call(shape: UkernelShape, factor: &str, bias: &str, panels: bool) -> String {
    let scale_relu = factor != "none";
    let (t, nr) = (shape.dtype.name(), shape.nr);
    let (a_param, a_operand) = if panels {
        (
            format!("%A: in {t}[P, K, {}] strided", shape.mr),
            "a %A[%c0, %c0, %c0] (m: 2, k: 1, mt: 0)",
        )
    } else {
        (
            format!("%A: in {t}[M, K] strided"),
            "a %A[%c0, %c0] (m: 0, k: 1)",
        )
    };
    let bias_param = match bias {
        "m" => format!(", %bias: in {t}[M] strided"),
        "n" => format!(", %bias: in {t}[N] strided"),
        _ => String::new(),
    };
    let scale_param = if scale_relu {
        format!(", %s: in {t}[] strided")
    } else {
        String::new()
    };
    let mut epilogue = String::new();
    if scale_relu {
        epilogue.push_str(&format!(", {factor} %scale"));
    }
    if bias != "none" {
        epilogue.push_str(&format!(", bias %bias[%c0] ({bias}: 0)"));
    }
    if scale_relu {
        epilogue.push_str(", relu");
    }
    let load_scale = if scale_relu {
        format!("  %scale = load %s[] : {t}\n")
    } else {
        String::new()
    };
    format!(
        "func @k({a_param}, %B: in {t}[K, {nr}] strides[_, 1], \
         %C0: in {t}[M, N] strided, %I: in {t}[I] strided{bias_param}{scale_param}, \
         %C: out {t}[M, N] strides[_, 1]) {{
  %c0 = index 0
  %c1 = index 1
  %m = dim M
  %n = dim N
  %k = dim K
  %i = dim I
  %init = cmp eq %i, %c1
{load_scale}  for %r = %c0 to %m step 1 {{
    for %q = %c0 to %n step 1 {{
      %x = load %C0[%r, %q] : {t}
      store %x, %C[%r, %q]
    }}
  }}
  ukernel @{} kc %k, tile %m x %n, {a_operand}, b %B[%c0, %c0] (k: 0, n: 1), c %C[%c0, %c0] (m: 0, n: 1), init %init{epilogue}
}}
",
        shape.name()
    )
}

#[test]
fn every_micro_kernel_tile_and_epilogue_agrees_with_the_evaluator() {
    // The 128-bit kernels' shapes, the AVX2 kernels' (6x16, 4x24 and 12x8 f32, 6x8 and 4x12
    // f64; 1x4 and 3x2 stay Cranelift's on every path) and the AVX-512 kernels' (zmm: 12x32,
    // 9x48, 6x64 and 4x96 f32, 12x16, 6x32 and 4x48 f64; one vector per row, with the
    // broadcast in the FMA: 12x16 and 6x16 f32, 12x8 and 6x8 f64).
    let shapes = [
        (DType::F32, 4, 8),
        (DType::F64, 4, 4),
        (DType::F32, 8, 8),
        (DType::F32, 1, 4),
        (DType::F64, 3, 2),
        (DType::F32, 6, 16),
        (DType::F32, 4, 24),
        (DType::F32, 12, 8),
        (DType::F32, 2, 32),
        (DType::F64, 6, 8),
        (DType::F64, 4, 12),
        (DType::F32, 12, 32),
        (DType::F32, 9, 48),
        (DType::F32, 6, 64),
        (DType::F32, 4, 96),
        (DType::F32, 12, 16),
        (DType::F64, 12, 16),
        (DType::F64, 6, 32),
        (DType::F64, 4, 48),
        (DType::F64, 12, 8),
    ];
    let mut rng = Rng::new(41);
    for wide in UkernelIsa::ALL {
        if !wide.runs_on_host() {
            println!("SKIPPED: {wide} micro-kernels: this host cannot run them");
            continue;
        }
        println!("running: {wide} micro-kernels");
        for (dtype, mr, nr) in shapes {
            every_tile_and_epilogue(wide, UkernelShape { dtype, mr, nr }, &mut rng);
        }
    }
}

/// Every edge size, `kc` and epilogue of micro-kernel `shape` from `wide`, against the
/// evaluator.
fn every_tile_and_epilogue(wide: UkernelIsa, shape: UkernelShape, rng: &mut Rng) {
    let dtype = shape.dtype;
    let (mr, nr) = (shape.mr, shape.nr);
    {
        let (big_m, big_n) = (mr as usize, nr as usize);
        let mut cases = Vec::new();
        for factor in ["none", "scale", "divide"] {
            for bias in ["none", "m", "n"] {
                cases.push((factor, bias, false));
            }
        }
        cases.extend([
            ("none", "none", true),
            ("scale", "m", true),
            ("divide", "n", true),
        ]);
        for (factor, bias, panels) in cases {
            let scale_relu = factor != "none";
            {
                let text = format!(
                    "dims M, N, K, I, P\n{}",
                    one_call(shape, factor, bias, panels)
                );
                let m = parse(&text);
                let program = jit_compile_with(&m, wide).unwrap();
                let lanes = shape.lanes() as usize;
                // Several m-tiles per call too: one more row, and two full tiles and a row.
                let mut ms = vec![0, 1, big_m - 1, big_m, big_m + 1, 2 * big_m + 1];
                let mut ns = vec![0, 1, lanes, 2 * lanes + 1, big_n - 1, big_n];
                // Around a ymm and a zmm vector (8 and 16 f32 lanes).
                ns.extend([
                    2 * lanes - 1,
                    2 * lanes,
                    4 * lanes - 1,
                    4 * lanes,
                    4 * lanes + 1,
                ]);
                ns.retain(|&n| n <= big_n);
                ns.sort_unstable();
                ms.dedup();
                ns.dedup();
                for &tm in &ms {
                    for &tn in &ns {
                        for kc in [0, 1, 3, 4, 5, 9] {
                            let init = rng.below(2);
                            // A as a transposed view of a larger buffer; B rows padded; the
                            // bias with stride 1 or 2; C rows padded.
                            let a_st = [1, tm + 2];
                            let b_st = [big_n + rng.below(3), 1];
                            let bias_len = if bias == "m" { tm } else { tn };
                            let bias_st = [1 + rng.below(2)];
                            let array = |rng: &mut Rng, shape: &[usize], st: Option<&[usize]>| {
                                let a = f64_array(rng, shape, st);
                                if dtype == DType::F32 {
                                    let v = a.buffer().clone();
                                    let Buffer::F64(v) = v else { unreachable!() };
                                    let v = v.iter().map(|x| *x as f32).collect();
                                    Array::with_layout(Buffer::F32(v), a.shape(), a.strides(), 0)
                                        .unwrap()
                                } else {
                                    a
                                }
                            };
                            // Panels: `[P, K, MR]` with padding between panels.
                            let a = if panels {
                                let p = tm.div_ceil(big_m);
                                let st = [(kc + 1) * big_m, big_m, 1];
                                array(rng, &[p, kc, big_m], Some(&st))
                            } else {
                                array(rng, &[tm, kc], Some(&a_st))
                            };
                            let mut inputs = vec![
                                a,
                                array(rng, &[kc, big_n], Some(&b_st)),
                                array(rng, &[tm, tn], None),
                                array(rng, &[init], None),
                            ];
                            if bias != "none" {
                                inputs.push(array(rng, &[bias_len], Some(&bias_st)));
                            }
                            if scale_relu {
                                inputs.push(array(rng, &[], None));
                            }
                            agree(&m, &program, "k", &inputs, &[Out::padded(&[tm, tn], 1)]);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn micro_kernels_compile_for_aarch64_and_x86_64() {
    let m = parse(TILES);
    for triple in ["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"] {
        let target = crate::codegen::Target::parse(triple).unwrap();
        for wide in crate::codegen::UkernelIsa::ALL {
            if crate::codegen::wide::resolve(&target, Some(wide)).is_ok() {
                crate::codegen::compile_for_target(&m, &target, wide)
                    .unwrap_or_else(|e| panic!("{triple} {wide}: {e}"));
            }
        }
    }
}

#[test]
fn the_rust_argument_block_has_the_documented_layout() {
    use crate::codegen::ukernel::{args, UkernelArgs};
    use std::mem::{offset_of, size_of};
    let offsets = [
        (offset_of!(UkernelArgs, kc), args::KC),
        (offset_of!(UkernelArgs, mr), args::MR),
        (offset_of!(UkernelArgs, nr), args::NR),
        (offset_of!(UkernelArgs, a), args::A),
        (offset_of!(UkernelArgs, a_ms), args::A_MS),
        (offset_of!(UkernelArgs, a_ks), args::A_KS),
        (offset_of!(UkernelArgs, b), args::B),
        (offset_of!(UkernelArgs, b_ks), args::B_KS),
        (offset_of!(UkernelArgs, c), args::C),
        (offset_of!(UkernelArgs, c_ms), args::C_MS),
        (offset_of!(UkernelArgs, bias), args::BIAS),
        (offset_of!(UkernelArgs, bias_s), args::BIAS_S),
        (offset_of!(UkernelArgs, scale), args::SCALE),
        (offset_of!(UkernelArgs, flags), args::FLAGS),
        (offset_of!(UkernelArgs, a_ts), args::A_TS),
    ];
    for (rust, doc) in offsets {
        assert_eq!(rust, doc as usize);
    }
    assert_eq!(size_of::<UkernelArgs>(), args::SIZE as usize);
}
