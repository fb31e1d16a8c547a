//! Tests of the interpreter: functions built by hand with a small builder, each result
//! compared with the same computation written as explicit loops here.

use super::{run, run_function, InterpError};
use crate::ir::tensor::{
    AxisMap, BinaryFn, CmpOp, Cond, DimDef, Expr, Extent, Function, Generic, IndexDef, IndexId,
    Input, Module, Op, OpKind, Reduce, ReduceKind, ResultDef, TensorType, UnaryFn, ValueId,
};
use einc_runtime::array::for_each_index;
use einc_runtime::{Array, Buffer, DType, Scalar};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `"4"` is a literal extent, anything else names a dim.
fn extent(s: &str) -> Extent {
    s.parse()
        .map_or_else(|_| Extent::Dim(s.to_string()), Extent::Fixed)
}

/// Splits a comma-separated list, so that `""` is the empty list (rank 0).
fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

/// The output indices of an op, and its reduction if any.
enum Out<'a> {
    /// An elementwise map writing these indices.
    Map(&'a str),
    /// A reduction writing the first indices, combining over the last.
    Reduce(&'a str, ReduceKind, &'a str),
}
use Out::{Map, Reduce as Red};

/// Builds a module of one function `f`, with index maps and extents written as short strings.
struct Builder {
    dims: Vec<DimDef>,
    f: Function,
}

impl Builder {
    /// `dims` are `(name, fixed value)`.
    fn new(dims: &[(&str, Option<u64>)]) -> Builder {
        Builder {
            dims: dims
                .iter()
                .map(|&(name, value)| DimDef {
                    name: name.to_string(),
                    value,
                })
                .collect(),
            f: Function {
                name: "f".to_string(),
                values: Vec::new(),
                params: Vec::new(),
                ops: Vec::new(),
                results: Vec::new(),
            },
        }
    }

    fn param(&mut self, name: &str, dtype: DType, shape: &[&str]) -> ValueId {
        let shape = shape.iter().map(|s| extent(s)).collect();
        let id = self.f.add_value(name, TensorType { dtype, shape });
        self.f.params.push(id);
        id
    }

    /// `indices` like `"i:M j:N k:4"`; each input map like `"i,k"` or `"0,j"`; index lists
    /// in `out` like `"i,j"`. The result's type is the op's.
    fn op(
        &mut self,
        name: &str,
        indices: &str,
        inputs: &[(ValueId, &str)],
        out: Out,
        body: Expr,
        dtype: DType,
    ) -> ValueId {
        let indices: Vec<IndexDef> = indices
            .split_whitespace()
            .map(|d| {
                let (name, e) = d.split_once(':').expect("index written name:extent");
                IndexDef {
                    name: name.to_string(),
                    extent: extent(e),
                }
            })
            .collect();
        let id = |n: &str| {
            let pos = indices.iter().position(|d| d.name == n);
            IndexId(pos.expect("index declared") as u32)
        };
        let list = |s: &str| items(s).map(id).collect::<Vec<_>>();
        let inputs = inputs
            .iter()
            .map(|&(value, map)| Input {
                value,
                map: items(map)
                    .map(|a| {
                        a.parse()
                            .map_or_else(|_| AxisMap::Index(id(a)), AxisMap::Fixed)
                    })
                    .collect(),
            })
            .collect();
        let (output, reduce) = match out {
            Out::Map(output) => (list(output), None),
            Out::Reduce(output, kind, over) => (
                list(output),
                Some(Reduce {
                    kind,
                    over: list(over),
                }),
            ),
        };
        let g = Generic {
            indices,
            inputs,
            output,
            reduce,
            body,
            dtype,
            schedule: None,
        };
        let shape = g.result_shape();
        let result = self.f.add_value(name, TensorType { dtype, shape });
        self.f.ops.push(Op {
            result,
            kind: OpKind::Generic(g),
        });
        result
    }

    fn result(&mut self, name: &str, value: ValueId) {
        self.f.results.push(ResultDef {
            name: name.to_string(),
            value,
        });
    }

    fn module(self) -> Module {
        Module {
            dims: self.dims,
            funcs: vec![self.f],
        }
    }
}

fn inp(n: u32) -> Expr {
    Expr::Input(n)
}
fn ix(n: u32) -> Expr {
    Expr::Index(IndexId(n))
}
fn lit(s: Scalar) -> Expr {
    Expr::Lit(s)
}
fn un(f: UnaryFn, x: Expr) -> Expr {
    Expr::Unary(f, Box::new(x))
}
fn bin(f: BinaryFn, a: Expr, b: Expr) -> Expr {
    Expr::Binary(f, Box::new(a), Box::new(b))
}
fn mul(a: Expr, b: Expr) -> Expr {
    bin(BinaryFn::Mul, a, b)
}
fn ids(ns: &[u32]) -> Vec<IndexId> {
    ns.iter().map(|&n| IndexId(n)).collect()
}

/// A C-contiguous array whose element at each index is `f(index)`.
fn fill(dtype: DType, shape: &[usize], f: impl Fn(&[usize]) -> Scalar) -> Array {
    let mut a = Array::zeros(dtype, shape).expect("small test array");
    for_each_index(shape, |i| a.set(i, f(i)));
    a
}

/// Deterministic, irregular test data: small multiples of 1/7 (not exact in binary, so float
/// rounding and accumulation order matter), different for each `seed`.
fn data(seed: usize, i: &[usize]) -> f64 {
    let h = i
        .iter()
        .fold(seed * 31 + 7, |h, &x| (h * 17 + x * 13 + 5) % 23);
    (h as f64 - 11.0) / 7.0
}

fn f32s(seed: usize, shape: &[usize]) -> Array {
    fill(DType::F32, shape, |i| Scalar::F32(data(seed, i) as f32))
}

fn f64s(seed: usize, shape: &[usize]) -> Array {
    fill(DType::F64, shape, |i| Scalar::F64(data(seed, i)))
}

/// Runs `f` and returns its only result.
fn run1(m: &Module, inputs: &[Array]) -> Result<Array, InterpError> {
    let mut out = run(m, "f", inputs)?;
    assert_eq!(out.len(), 1, "one result");
    Ok(out.remove(0))
}

/// The same array with the same elements stored in Fortran (column-major) order.
fn fortran(a: &Array) -> Array {
    let shape = a.shape().to_vec();
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (s, &n) in strides.iter_mut().zip(&shape) {
        *s = acc;
        acc *= n.max(1);
    }
    let mut buf = Array::zeros(a.dtype(), &[acc]).expect("small test array");
    for_each_index(&shape, |i| {
        let pos: usize = i.iter().zip(&strides).map(|(x, s)| x * s).sum();
        buf.set(&[pos], a.get(i));
    });
    Array::with_layout(buf.buffer().clone(), &shape, &strides, 0).expect("valid layout")
}

/// The same elements in a larger buffer at offset 3, every axis with a gap (strides not C).
fn strided(a: &Array) -> Array {
    let shape = a.shape().to_vec();
    let mut strides = vec![0; shape.len()];
    let mut acc = 2;
    for (s, &n) in strides.iter_mut().zip(&shape).rev() {
        *s = acc;
        acc = acc * n.max(1) + 1;
    }
    let offset = 3;
    let mut buf = Array::zeros(a.dtype(), &[offset + acc]).expect("small test array");
    for_each_index(&shape, |i| {
        let pos: usize = offset + i.iter().zip(&strides).map(|(x, s)| x * s).sum::<usize>();
        buf.set(&[pos], a.get(i));
    });
    Array::with_layout(buf.buffer().clone(), &shape, &strides, offset).expect("valid layout")
}

/// `C[i, j] = sum_k A[i, k] * B[k, j]` over symbolic dims M, K, N.
fn matmul_module(dtype: DType) -> Module {
    let mut b = Builder::new(&[("M", None), ("K", None), ("N", None)]);
    let a = b.param("A", dtype, &["M", "K"]);
    let bb = b.param("B", dtype, &["K", "N"]);
    let c = b.op(
        "C",
        "i:M j:N k:K",
        &[(a, "i,k"), (bb, "k,j")],
        Red("i,j", ReduceKind::Add, "k"),
        mul(inp(0), inp(1)),
        dtype,
    );
    b.result("C", c);
    b.module()
}

/// The f32 matmul as explicit loops, accumulating in f32 in k order.
fn matmul_f32(a: &Array, b: &Array) -> Vec<f64> {
    let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
    let mut out = Vec::new();
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f32;
            for p in 0..k {
                acc += a.get(&[i, p]).to_f64() as f32 * b.get(&[p, j]).to_f64() as f32;
            }
            out.push(f64::from(acc));
        }
    }
    out
}

#[test]
fn matmul_f32_accumulates_in_f32() -> TestResult {
    let m = matmul_module(DType::F32);
    let (a, b) = (f32s(1, &[5, 7]), f32s(2, &[7, 3]));
    let c = run1(&m, &[a.clone(), b.clone()])?;
    assert_eq!(c.dtype(), DType::F32);
    assert_eq!(c.shape(), &[5, 3]);
    assert!(c.is_c_contiguous());
    assert_eq!(c.to_f64_vec(), matmul_f32(&a, &b));
    Ok(())
}

#[test]
fn matmul_64_cubed_is_fast_enough() -> TestResult {
    let m = matmul_module(DType::F32);
    let (a, b) = (f32s(3, &[64, 64]), f32s(4, &[64, 64]));
    let start = std::time::Instant::now();
    let c = run1(&m, &[a.clone(), b.clone()])?;
    let took = start.elapsed();
    assert_eq!(c.to_f64_vec(), matmul_f32(&a, &b));
    // Generous bound (debug build, shared machine); typically far below it.
    assert!(took.as_secs_f64() < 2.0, "64^3 matmul took {took:?}");
    Ok(())
}

#[test]
fn matmul_f64() -> TestResult {
    let m = matmul_module(DType::F64);
    let (a, b) = (f64s(5, &[4, 6]), f64s(6, &[6, 2]));
    let c = run1(&m, &[a.clone(), b.clone()])?;
    let mut want = Vec::new();
    for i in 0..4 {
        for j in 0..2 {
            let mut acc = 0f64;
            for k in 0..6 {
                acc += data(5, &[i, k]) * data(6, &[k, j]);
            }
            want.push(acc);
        }
    }
    assert_eq!(c.dtype(), DType::F64);
    assert_eq!(c.to_f64_vec(), want);
    Ok(())
}

#[test]
fn matmul_i32_wraps_around() -> TestResult {
    let m = matmul_module(DType::I32);
    let val = |seed: i32, i: &[usize]| -> i32 {
        let h = i
            .iter()
            .fold(seed, |h, &x| h.wrapping_mul(7919).wrapping_add(x as i32));
        (h % 100_000) * 3_001 + 77_777
    };
    let a = fill(DType::I32, &[3, 4], |i| Scalar::I32(val(11, i)));
    let b = fill(DType::I32, &[4, 5], |i| Scalar::I32(val(12, i)));
    let c = run1(&m, &[a, b])?;
    let mut want = Vec::new();
    let mut wrapped = false;
    for i in 0..3 {
        for j in 0..5 {
            let mut acc = 0i32;
            for k in 0..4 {
                let (x, y) = (val(11, &[i, k]), val(12, &[k, j]));
                wrapped |= x.checked_mul(y).is_none();
                acc = acc.wrapping_add(x.wrapping_mul(y));
            }
            want.push(Scalar::I32(acc));
        }
    }
    assert!(
        wrapped,
        "the data must overflow i32 for this test to mean anything"
    );
    let mut got = Vec::new();
    for_each_index(c.shape(), |i| got.push(c.get(i)));
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn batched_matmul() -> TestResult {
    let mut b = Builder::new(&[]);
    let x = b.param("X", DType::F32, &["2", "3", "5"]);
    let y = b.param("Y", DType::F32, &["2", "5", "4"]);
    let z = b.op(
        "Z",
        "b:2 i:3 j:4 k:5",
        &[(x, "b,i,k"), (y, "b,k,j")],
        Red("b,i,j", ReduceKind::Add, "k"),
        mul(inp(0), inp(1)),
        DType::F32,
    );
    b.result("Z", z);
    let (xs, ys) = (f32s(1, &[2, 3, 5]), f32s(2, &[2, 5, 4]));
    let got = run1(&b.module(), &[xs, ys])?;
    let mut want = Vec::new();
    for bi in 0..2 {
        for i in 0..3 {
            for j in 0..4 {
                let mut acc = 0f32;
                for k in 0..5 {
                    acc += data(1, &[bi, i, k]) as f32 * data(2, &[bi, k, j]) as f32;
                }
                want.push(f64::from(acc));
            }
        }
    }
    assert_eq!(got.shape(), &[2, 3, 4]);
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

#[test]
fn repeated_index_gives_trace_and_diagonal() -> TestResult {
    let mut b = Builder::new(&[("N", None)]);
    let a = b.param("A", DType::F64, &["N", "N"]);
    let tr = b.op(
        "tr",
        "i:N",
        &[(a, "i,i")],
        Red("", ReduceKind::Add, "i"),
        inp(0),
        DType::F64,
    );
    let diag = b.op("d", "i:N", &[(a, "i,i")], Map("i"), inp(0), DType::F64);
    b.result("tr", tr);
    b.result("d", diag);
    let out = run(&b.module(), "f", &[f64s(3, &[4, 4])])?;
    let diag_want: Vec<f64> = (0..4).map(|i| data(3, &[i, i])).collect();
    let trace_want = diag_want.iter().fold(0.0, |acc, x| acc + x);
    assert_eq!(out[0].shape(), &[] as &[usize]);
    assert_eq!(out[0].to_f64_vec(), vec![trace_want]);
    assert_eq!(out[1].to_f64_vec(), diag_want);
    Ok(())
}

#[test]
fn transpose() -> TestResult {
    let mut b = Builder::new(&[("M", None), ("N", None)]);
    let a = b.param("A", DType::I64, &["M", "N"]);
    let t = b.op(
        "T",
        "i:M j:N",
        &[(a, "i,j")],
        Map("j,i"),
        inp(0),
        DType::I64,
    );
    b.result("T", t);
    let x = fill(DType::I64, &[2, 3], |i| {
        Scalar::I64((10 * i[0] + i[1]) as i64)
    });
    let got = run1(&b.module(), &[x])?;
    assert_eq!(got.shape(), &[3, 2]);
    assert_eq!(got.to_f64_vec(), vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    Ok(())
}

#[test]
fn fixed_zero_broadcasts_a_size_one_axis() -> TestResult {
    let mut b = Builder::new(&[("M", None), ("N", None)]);
    let a = b.param("A", DType::F32, &["M", "N"]);
    let bias = b.param("b", DType::F32, &["1", "N"]);
    let o = b.op(
        "O",
        "i:M j:N",
        &[(a, "i,j"), (bias, "0,j")],
        Map("i,j"),
        bin(BinaryFn::Add, inp(0), inp(1)),
        DType::F32,
    );
    b.result("O", o);
    let got = run1(&b.module(), &[f32s(1, &[3, 4]), f32s(2, &[1, 4])])?;
    let mut want = Vec::new();
    for i in 0..3 {
        for j in 0..4 {
            want.push(f64::from(data(1, &[i, j]) as f32 + data(2, &[0, j]) as f32));
        }
    }
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

#[test]
fn three_operand_contraction() -> TestResult {
    let mut b = Builder::new(&[]);
    let a = b.param("A", DType::F64, &["2", "3"]);
    let bb = b.param("B", DType::F64, &["3", "4"]);
    let c = b.param("C", DType::F64, &["4", "5"]);
    let d = b.op(
        "D",
        "i:2 j:3 k:4 l:5",
        &[(a, "i,j"), (bb, "j,k"), (c, "k,l")],
        Red("i,l", ReduceKind::Add, "j,k"),
        mul(mul(inp(0), inp(1)), inp(2)),
        DType::F64,
    );
    b.result("D", d);
    let got = run1(
        &b.module(),
        &[f64s(1, &[2, 3]), f64s(2, &[3, 4]), f64s(3, &[4, 5])],
    )?;
    let mut want = Vec::new();
    for i in 0..2 {
        for l in 0..5 {
            let mut acc = 0.0;
            for j in 0..3 {
                for k in 0..4 {
                    acc += data(1, &[i, j]) * data(2, &[j, k]) * data(3, &[k, l]);
                }
            }
            want.push(acc);
        }
    }
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

/// `out[i] = reduce over j of A[i, j]`.
fn row_reduce(kind: ReduceKind, dtype: DType, a: Array) -> Result<Array, InterpError> {
    let mut b = Builder::new(&[("M", None), ("N", None)]);
    let p = b.param("A", dtype, &["M", "N"]);
    let r = b.op(
        "r",
        "i:M j:N",
        &[(p, "i,j")],
        Red("i", kind, "j"),
        inp(0),
        dtype,
    );
    b.result("r", r);
    run1(&b.module(), &[a])
}

#[test]
fn row_max_min_and_prod() -> TestResult {
    let rows = [
        [1.5f32, -2.0, 7.25, 0.5],
        [-1.0, f32::NAN, 3.0, -8.0],
        [0.0, -0.5, -0.25, 2.0],
    ];
    let a = fill(DType::F32, &[3, 4], |i| Scalar::F32(rows[i[0]][i[1]]));
    let max = row_reduce(ReduceKind::Max, DType::F32, a.clone())?.to_f64_vec();
    let min = row_reduce(ReduceKind::Min, DType::F32, a.clone())?.to_f64_vec();
    let prod = row_reduce(ReduceKind::Mul, DType::F32, a)?.to_f64_vec();
    assert_eq!(max[0], 7.25);
    assert!(max[1].is_nan(), "max propagates NaN");
    assert_eq!(max[2], 2.0);
    assert_eq!(min[0], -2.0);
    assert!(min[1].is_nan(), "min propagates NaN");
    assert_eq!(min[2], -0.5);
    assert_eq!(prod[0], f64::from(1.5f32 * -2.0 * 7.25 * 0.5));
    assert!(prod[1].is_nan());
    assert_eq!(prod[2], 0.0);

    // Integer products wrap.
    let big = fill(DType::I32, &[1, 3], |_| Scalar::I32(100_000));
    let p = row_reduce(ReduceKind::Mul, DType::I32, big)?;
    let want = 100_000i32.wrapping_mul(100_000).wrapping_mul(100_000);
    assert_eq!(p.get(&[0]), Scalar::I32(want));
    Ok(())
}

#[test]
fn softmax_pipeline_matches_a_direct_softmax() -> TestResult {
    let mut b = Builder::new(&[("T", None)]);
    let s = b.param("S", DType::F32, &["T", "T"]);
    let m = b.op(
        "m",
        "i:T j:T",
        &[(s, "i,j")],
        Red("i", ReduceKind::Max, "j"),
        inp(0),
        DType::F32,
    );
    let e = b.op(
        "e",
        "i:T j:T",
        &[(s, "i,j"), (m, "i")],
        Map("i,j"),
        un(UnaryFn::Exp, bin(BinaryFn::Sub, inp(0), inp(1))),
        DType::F32,
    );
    let z = b.op(
        "z",
        "i:T j:T",
        &[(e, "i,j")],
        Red("i", ReduceKind::Add, "j"),
        inp(0),
        DType::F32,
    );
    let p = b.op(
        "P",
        "i:T j:T",
        &[(e, "i,j"), (z, "i")],
        Map("i,j"),
        bin(BinaryFn::Div, inp(0), inp(1)),
        DType::F32,
    );
    b.result("P", p);
    let n = 5;
    let got = run1(&b.module(), &[f32s(9, &[n, n])])?;
    let mut want = Vec::new();
    for i in 0..n {
        let row: Vec<f32> = (0..n).map(|j| data(9, &[i, j]) as f32).collect();
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let exps: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
        let sum = exps.iter().fold(0f32, |a, b| a + b);
        want.extend(exps.iter().map(|x| f64::from(x / sum)));
    }
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

#[test]
fn causal_mask_selects_on_index_comparison() -> TestResult {
    let mut b = Builder::new(&[("T", None)]);
    let s = b.param("S", DType::F64, &["T", "T"]);
    let masked = Expr::Select(
        Box::new(Cond::Cmp(CmpOp::Le, Box::new(ix(1)), Box::new(ix(0)))),
        Box::new(inp(0)),
        Box::new(lit(Scalar::F64(f64::NEG_INFINITY))),
    );
    let o = b.op(
        "O",
        "i:T j:T",
        &[(s, "i,j")],
        Map("i,j"),
        masked,
        DType::F64,
    );
    b.result("O", o);
    let got = run1(&b.module(), &[f64s(2, &[4, 4])])?;
    let mut want = Vec::new();
    for i in 0..4 {
        for j in 0..4 {
            want.push(if j <= i {
                data(2, &[i, j])
            } else {
                f64::NEG_INFINITY
            });
        }
    }
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

#[test]
fn conditions_combine_with_and_or_not() -> TestResult {
    // out[i] = 1 when (i > 0 and not i == 2) or i == 4, else 0.
    let mut b = Builder::new(&[]);
    let cmp = |op, n| {
        Box::new(Cond::Cmp(
            op,
            Box::new(ix(0)),
            Box::new(lit(Scalar::I64(n))),
        ))
    };
    let cond = Cond::Or(
        Box::new(Cond::And(
            cmp(CmpOp::Gt, 0),
            Box::new(Cond::Not(cmp(CmpOp::Eq, 2))),
        )),
        cmp(CmpOp::Eq, 4),
    );
    let body = Expr::Select(
        Box::new(cond),
        Box::new(lit(Scalar::I32(1))),
        Box::new(lit(Scalar::I32(0))),
    );
    let o = b.op("o", "i:5", &[], Map("i"), body, DType::I32);
    b.result("o", o);
    let got = run1(&b.module(), &[])?;
    let want: Vec<f64> = (0..5)
        .map(|i| f64::from(u8::from((i > 0 && i != 2) || i == 4)))
        .collect();
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

#[test]
fn delta_is_one_when_all_index_values_are_equal() -> TestResult {
    let mut b = Builder::new(&[]);
    let x = b.param("x", DType::F64, &["3"]);
    // D[i, j] = delta(i, j) * x[i]: a diagonal matrix.
    let d = b.op(
        "D",
        "i:3 j:3",
        &[(x, "i")],
        Map("i,j"),
        mul(Expr::Delta(ids(&[0, 1]), DType::F64), inp(0)),
        DType::F64,
    );
    // T[i, j, k] = delta(i, j, k).
    let t = b.op(
        "T",
        "i:2 j:2 k:2",
        &[],
        Map("i,j,k"),
        Expr::Delta(ids(&[0, 1, 2]), DType::I32),
        DType::I32,
    );
    b.result("D", d);
    b.result("T", t);
    let out = run(&b.module(), "f", &[f64s(4, &[3])])?;
    let mut want = Vec::new();
    for i in 0..3 {
        for j in 0..3 {
            want.push(if i == j { data(4, &[i]) } else { 0.0 });
        }
    }
    assert_eq!(out[0].to_f64_vec(), want);
    let mut want = Vec::new();
    for_each_index(&[2, 2, 2], |i| {
        want.push(f64::from(u8::from(i[0] == i[1] && i[1] == i[2])));
    });
    assert_eq!(out[1].to_f64_vec(), want);
    Ok(())
}

#[test]
fn eps_gives_cross_product_and_determinant() -> TestResult {
    let eps = |dtype| Expr::Eps(ids(&[0, 1, 2]), dtype);
    let mut b = Builder::new(&[]);
    let u = b.param("u", DType::F64, &["3"]);
    let v = b.param("v", DType::F64, &["3"]);
    let a = b.param("A", DType::F64, &["3", "3"]);
    let cross = b.op(
        "c",
        "i:3 j:3 k:3",
        &[(u, "j"), (v, "k")],
        Red("i", ReduceKind::Add, "j,k"),
        mul(mul(eps(DType::F64), inp(0)), inp(1)),
        DType::F64,
    );
    // det A = eps(i, j, k) A[0, i] A[1, j] A[2, k], the rows read at fixed positions.
    let det = b.op(
        "det",
        "i:3 j:3 k:3",
        &[(a, "0,i"), (a, "1,j"), (a, "2,k")],
        Red("", ReduceKind::Add, "i,j,k"),
        mul(mul(mul(eps(DType::F64), inp(0)), inp(1)), inp(2)),
        DType::F64,
    );
    b.result("c", cross);
    b.result("det", det);
    let (uv, vv) = ([1.0, -2.0, 3.0], [4.0, 0.5, -6.0]);
    let m = [[2.0, -1.0, 0.5], [3.0, 4.0, -2.0], [1.0, 0.0, 5.0]];
    let out = run(
        &b.module(),
        "f",
        &[
            fill(DType::F64, &[3], |i| Scalar::F64(uv[i[0]])),
            fill(DType::F64, &[3], |i| Scalar::F64(vv[i[0]])),
            fill(DType::F64, &[3, 3], |i| Scalar::F64(m[i[0]][i[1]])),
        ],
    )?;
    let cross_want = vec![
        uv[1] * vv[2] - uv[2] * vv[1],
        uv[2] * vv[0] - uv[0] * vv[2],
        uv[0] * vv[1] - uv[1] * vv[0],
    ];
    let det_want = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    // The data are small dyadic numbers, so both orders of summation are exact.
    assert_eq!(out[0].to_f64_vec(), cross_want);
    assert_eq!(out[1].to_f64_vec(), vec![det_want]);
    Ok(())
}

#[test]
fn eps_of_every_index_triple() -> TestResult {
    let mut b = Builder::new(&[]);
    let e = b.op(
        "e",
        "i:3 j:3 k:3",
        &[],
        Map("i,j,k"),
        Expr::Eps(ids(&[0, 1, 2]), DType::I64),
        DType::I64,
    );
    b.result("e", e);
    let got = run1(&b.module(), &[])?;
    let mut want = Vec::new();
    for_each_index(&[3, 3, 3], |i| {
        let sign = match (i[0], i[1], i[2]) {
            (0, 1, 2) | (1, 2, 0) | (2, 0, 1) => 1.0,
            (0, 2, 1) | (2, 1, 0) | (1, 0, 2) => -1.0,
            _ => 0.0,
        };
        want.push(sign);
    });
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

#[test]
fn cast_truncates_floats_and_wraps_integers() -> TestResult {
    let mut b = Builder::new(&[]);
    let x = b.param("x", DType::F64, &["4"]);
    let y = b.param("y", DType::I64, &["2"]);
    let xi = b.op(
        "xi",
        "i:4",
        &[(x, "i")],
        Map("i"),
        Expr::Cast(DType::I32, Box::new(inp(0))),
        DType::I32,
    );
    let yi = b.op(
        "yi",
        "i:2",
        &[(y, "i")],
        Map("i"),
        Expr::Cast(DType::I32, Box::new(inp(0))),
        DType::I32,
    );
    let idx = b.op(
        "idx",
        "i:3",
        &[],
        Map("i"),
        Expr::Cast(DType::F32, Box::new(ix(0))),
        DType::F32,
    );
    b.result("xi", xi);
    b.result("yi", yi);
    b.result("idx", idx);
    let xs = [-2.7, 2.7, 1e10, f64::NAN];
    let ys = [i64::from(i32::MAX) + 1, -1];
    let out = run(
        &b.module(),
        "f",
        &[
            fill(DType::F64, &[4], |i| Scalar::F64(xs[i[0]])),
            fill(DType::I64, &[2], |i| Scalar::I64(ys[i[0]])),
        ],
    )?;
    let got: Vec<Scalar> = (0..4).map(|i| out[0].get(&[i])).collect();
    // numpy astype: truncation toward zero, saturation, NaN to 0 (Rust's `as`).
    let want: Vec<Scalar> = xs.iter().map(|&v| Scalar::I32(v as i32)).collect();
    assert_eq!(got, want);
    assert_eq!(got[0], Scalar::I32(-2));
    assert_eq!(out[1].get(&[0]), Scalar::I32(i32::MIN));
    assert_eq!(out[1].get(&[1]), Scalar::I32(-1));
    assert_eq!(out[2].dtype(), DType::F32);
    assert_eq!(out[2].to_f64_vec(), vec![0.0, 1.0, 2.0]);
    Ok(())
}

#[test]
fn dim_value_scales_by_sqrt_of_a_bound_dim() -> TestResult {
    let mut b = Builder::new(&[("T", None), ("K", None)]);
    let s = b.param("S", DType::F32, &["T", "K"]);
    let body = bin(
        BinaryFn::Div,
        inp(0),
        un(UnaryFn::Sqrt, Expr::DimValue("K".to_string(), DType::F32)),
    );
    let o = b.op("O", "i:T j:K", &[(s, "i,j")], Map("i,j"), body, DType::F32);
    b.result("O", o);
    let got = run1(&b.module(), &[f32s(1, &[2, 6])])?;
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..6 {
            want.push(f64::from(data(1, &[i, j]) as f32 / 6f32.sqrt()));
        }
    }
    assert_eq!(got.to_f64_vec(), want);
    Ok(())
}

#[test]
fn fortran_order_and_offset_strided_inputs() -> TestResult {
    let m = matmul_module(DType::F32);
    let (a, b) = (f32s(1, &[4, 6]), f32s(2, &[6, 5]));
    let want = matmul_f32(&a, &b);
    for (x, y) in [
        (fortran(&a), b.clone()),
        (a.clone(), strided(&b)),
        (strided(&a), fortran(&b)),
    ] {
        assert!(!x.is_c_contiguous() || !y.is_c_contiguous());
        assert_eq!(run1(&m, &[x, y])?.to_f64_vec(), want);
    }
    Ok(())
}

#[test]
fn strided_input_returned_as_a_result_is_made_c_contiguous() -> TestResult {
    let mut b = Builder::new(&[("M", None), ("N", None)]);
    let a = b.param("A", DType::F64, &["M", "N"]);
    b.result("A", a);
    let x = f64s(3, &[3, 2]);
    let got = run1(&b.module(), &[fortran(&x)])?;
    assert!(got.is_c_contiguous());
    assert_eq!(got, x);
    Ok(())
}

#[test]
fn rank_zero_inputs_and_outputs() -> TestResult {
    let mut b = Builder::new(&[("N", None)]);
    let x = b.param("x", DType::F64, &["N"]);
    let s = b.param("s", DType::F64, &[]);
    let scaled = b.op(
        "y",
        "i:N",
        &[(x, "i"), (s, "")],
        Map("i"),
        mul(inp(0), inp(1)),
        DType::F64,
    );
    let total = b.op(
        "t",
        "i:N",
        &[(scaled, "i")],
        Red("", ReduceKind::Add, "i"),
        inp(0),
        DType::F64,
    );
    let doubled = b.op(
        "d",
        "",
        &[(total, "")],
        Map(""),
        mul(inp(0), lit(Scalar::F64(2.0))),
        DType::F64,
    );
    b.result("d", doubled);
    let sv = Array::from_buffer(Buffer::F64(vec![1.5]), &[])?;
    let got = run1(&b.module(), &[f64s(2, &[5]), sv])?;
    let total_want = (0..5).fold(0.0, |acc, i| acc + data(2, &[i]) * 1.5);
    assert_eq!(got.shape(), &[] as &[usize]);
    assert_eq!(got.to_f64_vec(), vec![total_want * 2.0]);
    Ok(())
}

#[test]
fn zero_extents_give_empty_outputs_and_identities() -> TestResult {
    // K = 0: every element is an empty sum.
    let m = matmul_module(DType::F32);
    let c = run1(&m, &[f32s(1, &[2, 0]), f32s(2, &[0, 3])])?;
    assert_eq!(c.shape(), &[2, 3]);
    assert_eq!(c.to_f64_vec(), vec![0.0; 6]);
    // M = 0: an empty output.
    let c = run1(&m, &[f32s(1, &[0, 4]), f32s(2, &[4, 3])])?;
    assert_eq!(c.shape(), &[0, 3]);
    assert!(c.is_empty());
    // Empty max/min/prod reductions give their identities.
    let empty = |dtype| Array::zeros(dtype, &[2, 0]).expect("empty array");
    let cases = [
        (ReduceKind::Max, DType::F32, Scalar::F32(f32::NEG_INFINITY)),
        (ReduceKind::Min, DType::F64, Scalar::F64(f64::INFINITY)),
        (ReduceKind::Max, DType::I32, Scalar::I32(i32::MIN)),
        (ReduceKind::Min, DType::I32, Scalar::I32(i32::MAX)),
        (ReduceKind::Max, DType::I64, Scalar::I64(i64::MIN)),
        (ReduceKind::Min, DType::I64, Scalar::I64(i64::MAX)),
        (ReduceKind::Mul, DType::I64, Scalar::I64(1)),
        (ReduceKind::Add, DType::F64, Scalar::F64(0.0)),
    ];
    for (kind, dtype, want) in cases {
        let r = row_reduce(kind, dtype, empty(dtype))?;
        assert_eq!((r.get(&[0]), r.get(&[1])), (want, want), "{kind:?} {dtype}");
    }
    Ok(())
}

/// A unary function and its reference implementation.
type Unary<T> = (UnaryFn, fn(T) -> T);
/// A binary function and its reference implementation.
type Binary<T> = (BinaryFn, fn(T, T) -> T);

/// Applies `body` (over inputs %0 and %1) elementwise to two vectors.
fn elementwise(dtype: DType, body: Expr, x: Array, y: Array) -> Result<Vec<Scalar>, InterpError> {
    let mut b = Builder::new(&[("N", None)]);
    let p = b.param("x", dtype, &["N"]);
    let q = b.param("y", dtype, &["N"]);
    let o = b.op("o", "i:N", &[(p, "i"), (q, "i")], Map("i"), body, dtype);
    b.result("o", o);
    let out = run1(&b.module(), &[x, y])?;
    Ok((0..out.len()).map(|i| out.get(&[i])).collect())
}

#[test]
fn integer_arithmetic_wraps_and_division_by_zero_gives_zero() -> TestResult {
    let xs = [i32::MAX, i32::MIN, 7, -7, 5, i32::MIN];
    let ys = [1, -1, 2, 2, 0, 3];
    let vec = |v: [i32; 6]| fill(DType::I32, &[6], move |i| Scalar::I32(v[i[0]]));
    let cases: [Binary<i32>; 6] = [
        (BinaryFn::Add, i32::wrapping_add),
        (BinaryFn::Sub, i32::wrapping_sub),
        (BinaryFn::Mul, i32::wrapping_mul),
        (
            BinaryFn::Div,
            |a, b| if b == 0 { 0 } else { a.wrapping_div(b) },
        ),
        (BinaryFn::Max, |a, b| a.max(b)),
        (BinaryFn::Min, |a, b| a.min(b)),
    ];
    for (f, reference) in cases {
        let got = elementwise(DType::I32, bin(f, inp(0), inp(1)), vec(xs), vec(ys))?;
        let want: Vec<Scalar> = xs
            .iter()
            .zip(&ys)
            .map(|(&a, &b)| Scalar::I32(reference(a, b)))
            .collect();
        assert_eq!(got, want, "{f:?}");
    }
    // Spot checks written out: truncation toward zero, MIN / -1 wraps, x / 0 is 0.
    let div = elementwise(
        DType::I32,
        bin(BinaryFn::Div, inp(0), inp(1)),
        vec(xs),
        vec(ys),
    )?;
    assert_eq!(div[1], Scalar::I32(i32::MIN));
    assert_eq!(div[3], Scalar::I32(-3));
    assert_eq!(div[4], Scalar::I32(0));
    // Unary integer functions wrap too.
    let neg = elementwise(DType::I32, un(UnaryFn::Neg, inp(0)), vec(xs), vec(ys))?;
    assert_eq!(neg[1], Scalar::I32(i32::MIN));
    let abs = elementwise(DType::I32, un(UnaryFn::Abs, inp(0)), vec(xs), vec(ys))?;
    assert_eq!(abs[3], Scalar::I32(7));
    let relu = elementwise(DType::I32, un(UnaryFn::Relu, inp(0)), vec(xs), vec(ys))?;
    assert_eq!(relu[3], Scalar::I32(0));
    assert_eq!(relu[2], Scalar::I32(7));
    Ok(())
}

#[test]
fn float_functions_follow_their_definitions() -> TestResult {
    let xs = [0.5f32, -1.25, 2.0, f32::NAN, 0.0];
    let ys = [3.0f32, f32::NAN, -0.5, 1.0, 2.0];
    let vec = |v: [f32; 5]| fill(DType::F32, &[5], move |i| Scalar::F32(v[i[0]]));
    let unary: [Unary<f32>; 9] = [
        (UnaryFn::Neg, |x| -x),
        (UnaryFn::Abs, f32::abs),
        (UnaryFn::Exp, f32::exp),
        (UnaryFn::Log, f32::ln),
        (UnaryFn::Sqrt, f32::sqrt),
        (UnaryFn::Rsqrt, |x| 1.0 / x.sqrt()),
        (UnaryFn::Tanh, f32::tanh),
        (UnaryFn::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        (UnaryFn::Relu, |x| if x.is_nan() { x } else { x.max(0.0) }),
    ];
    let same = |got: &[Scalar], want: &[f32], what: &str| {
        for (g, w) in got.iter().zip(want) {
            let Scalar::F32(g) = *g else {
                panic!("{what}: not f32")
            };
            assert!(g == *w || (g.is_nan() && w.is_nan()), "{what}: {g} != {w}");
        }
    };
    for (f, reference) in unary {
        let got = elementwise(DType::F32, un(f, inp(0)), vec(xs), vec(ys))?;
        let want: Vec<f32> = xs.iter().map(|&x| reference(x)).collect();
        same(&got, &want, &format!("{f:?}"));
    }
    let binary: [Binary<f32>; 5] = [
        (BinaryFn::Sub, |a, b| a - b),
        (BinaryFn::Div, |a, b| a / b),
        (BinaryFn::Pow, f32::powf),
        (BinaryFn::Max, |a, b| {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.max(b)
            }
        }),
        (BinaryFn::Min, |a, b| {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.min(b)
            }
        }),
    ];
    for (f, reference) in binary {
        let got = elementwise(DType::F32, bin(f, inp(0), inp(1)), vec(xs), vec(ys))?;
        let want: Vec<f32> = xs.iter().zip(&ys).map(|(&a, &b)| reference(a, b)).collect();
        same(&got, &want, &format!("{f:?}"));
    }
    Ok(())
}

#[test]
fn run_function_runs_a_function_outside_the_module() -> TestResult {
    let m = matmul_module(DType::F64);
    let dims_only = Module {
        dims: m.dims.clone(),
        funcs: Vec::new(),
    };
    let (a, b) = (f64s(1, &[2, 2]), f64s(2, &[2, 2]));
    let via_module = run(&m, "f", &[a.clone(), b.clone()])?;
    let direct = run_function(&dims_only, &m.funcs[0], &[a, b])?;
    assert_eq!(direct, via_module);
    Ok(())
}

/// The message of the error `result` must be.
fn message<T>(result: Result<T, InterpError>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn call_errors_name_what_is_wrong() {
    let m = matmul_module(DType::F32);
    let ok = f32s(1, &[2, 3]);
    assert_eq!(
        message(run(&m, "g", &[])),
        "the module has no function named `g`"
    );
    assert_eq!(
        message(run(&m, "f", std::slice::from_ref(&ok))),
        "function `f` takes 2 input(s) but was given 1"
    );
    assert_eq!(
        message(run(&m, "f", &[ok.clone(), f64s(1, &[3, 2])])),
        "input `B` must have dtype f32, but has dtype f64"
    );
    assert_eq!(
        message(run(&m, "f", &[ok.clone(), f32s(1, &[3])])),
        "input `B` must have rank 2, but has rank 1"
    );
    assert_eq!(
        message(run(&m, "f", &[ok.clone(), f32s(1, &[4, 2])])),
        "dim `K` is bound inconsistently: input `A` axis 1 has extent 3, but input `B` axis 0 \
         has extent 4"
    );
    assert_eq!(
        run(&m, "f", &[ok, f32s(1, &[4, 2])]),
        Err(InterpError::Call(super::CallError::DimConflict {
            dim: "K".to_string(),
            first: super::DimBinding {
                param: "A".to_string(),
                axis: 1,
                value: 3
            },
            second: super::DimBinding {
                param: "B".to_string(),
                axis: 0,
                value: 4
            },
        }))
    );
}

#[test]
fn extents_must_match_literal_and_fixed_dims() {
    let mut b = Builder::new(&[("K", Some(4))]);
    let p = b.param("P", DType::F64, &["2", "K"]);
    b.result("P", p);
    let m = b.module();
    assert_eq!(
        message(run(&m, "f", &[f64s(1, &[3, 4])])),
        "input `P` axis 0 has extent 3, but its declared extent is 2"
    );
    assert_eq!(
        message(run(&m, "f", &[f64s(1, &[2, 5])])),
        "input `P` axis 1 has extent 5, but dim `K` is fixed to 4"
    );
}

#[test]
fn too_large_outputs_are_errors_not_aborts() {
    // An outer product of two 10^6-vectors has 10^12 elements.
    let mut b = Builder::new(&[("M", None), ("N", None)]);
    let x = b.param("x", DType::F64, &["M"]);
    let y = b.param("y", DType::F64, &["N"]);
    let o = b.op(
        "O",
        "i:M j:N",
        &[(x, "i"), (y, "j")],
        Map("i,j"),
        mul(inp(0), inp(1)),
        DType::F64,
    );
    b.result("O", o);
    let v = Array::zeros(DType::F64, &[1_000_000]).expect("8 MB");
    assert_eq!(
        message(run(&b.module(), "f", &[v.clone(), v])),
        "value `%O` (f64, shape [1000000, 1000000]) is too large to allocate"
    );
}

/// A change that breaks a well-formed function.
type Edit = dyn FnOnce(&mut Generic, &mut Function);

/// The message of running `f(A: f32[2, 3]) -> B = A[i, j]` after `edit` changes its op and
/// function.
fn malformed_message(edit: impl FnOnce(&mut Generic, &mut Function)) -> String {
    let mut b = Builder::new(&[]);
    let a = b.param("A", DType::F32, &["2", "3"]);
    let r = b.op(
        "B",
        "i:2 j:3",
        &[(a, "i,j")],
        Map("i,j"),
        inp(0),
        DType::F32,
    );
    b.result("B", r);
    let mut m = b.module();
    let f = &mut m.funcs[0];
    let mut op = f.ops.remove(0);
    let OpKind::Generic(g) = &mut op.kind;
    edit(g, f);
    f.ops.push(op);
    message(run(&m, "f", &[f32s(1, &[2, 3])]))
}

#[test]
fn malformed_modules_are_errors_not_panics() {
    let cases: Vec<(Box<Edit>, &str)> = vec![
        (
            Box::new(|g, _| g.inputs[0].value = ValueId(9)),
            "the op defining %B: input %0 reads value #9 before it is defined",
        ),
        (
            Box::new(|g, _| g.inputs[0].value = ValueId(1)),
            "the op defining %B: input %0 reads %B before it is defined",
        ),
        (
            Box::new(|g, _| g.body = inp(1)),
            "the op defining %B: the body reads input %1 but the op has 1 inputs",
        ),
        (
            Box::new(|g, _| g.body = ix(5)),
            "the op defining %B: the body uses index #5 but the op has 2 indices",
        ),
        (
            Box::new(|g, _| g.body = bin(BinaryFn::Add, inp(0), lit(Scalar::F64(1.0)))),
            "the op defining %B: the operands of `add` have dtypes f32 and f64",
        ),
        (
            Box::new(|g, _| g.body = Expr::Cast(DType::F64, Box::new(inp(0)))),
            "the op defining %B: the body has dtype f64 but the op has dtype f32",
        ),
        (
            Box::new(|g, _| {
                g.body = Expr::Cast(DType::I32, Box::new(inp(0)));
                g.dtype = DType::I32;
            }),
            "the op defining %B: the op has dtype i32 but %B is declared f32",
        ),
        (
            Box::new(|g, _| g.inputs[0].map = vec![AxisMap::Index(IndexId(0))]),
            "the op defining %B: input %0 has a map of 1 entries for %A of rank 2",
        ),
        (
            Box::new(|g, _| g.inputs[0].map[1] = AxisMap::Index(IndexId(0))),
            "the op defining %B: input %0 axis 1 has extent 3 but index `i` has extent 2",
        ),
        (
            Box::new(|g, _| g.inputs[0].map[1] = AxisMap::Fixed(3)),
            "the op defining %B: input %0 axis 1 reads fixed position 3 of an axis of extent 3",
        ),
        (
            Box::new(|g, _| g.output = ids(&[0])),
            "the op defining %B: index `j` is neither an output index nor reduced",
        ),
        (
            Box::new(|g, _| g.output = ids(&[0, 0])),
            "the op defining %B: index `i` appears twice among the output and reduced indices",
        ),
        (
            Box::new(|g, _| g.output = ids(&[0, 7])),
            "the op defining %B: index #7 is out of range",
        ),
        (
            Box::new(|g, _| g.indices[1].extent = Extent::Dim("Q".to_string())),
            "dim `Q` is not declared by the module",
        ),
        (
            Box::new(|_, f| f.results[0].value = ValueId(4)),
            "result `B` returns value #4, which is never defined",
        ),
        (
            Box::new(|_, f| f.params.push(ValueId(0))),
            "function `f` takes 2 input(s) but was given 1",
        ),
    ];
    for (edit, want) in cases {
        let got = malformed_message(edit);
        let want = if want.starts_with("function") {
            want.to_string()
        } else {
            format!("malformed IR in function `f`: {want}")
        };
        assert_eq!(got, want);
    }
}

#[test]
fn transcendental_functions_on_integers_are_malformed() {
    let got = malformed_message(|g, _| {
        g.body = un(UnaryFn::Exp, Expr::Cast(DType::I32, Box::new(inp(0))));
    });
    assert_eq!(
        got,
        "malformed IR in function `f`: the op defining %B: `exp` needs a float operand, got i32"
    );
}

#[test]
fn unbound_and_duplicate_definitions_are_malformed() {
    // A symbolic dim that no parameter binds.
    let mut b = Builder::new(&[("N", None)]);
    let o = b.op("o", "i:N", &[], Map("i"), lit(Scalar::F32(1.0)), DType::F32);
    b.result("o", o);
    assert_eq!(
        message(run(&b.module(), "f", &[])),
        "malformed IR in function `f`: dim `N` has no value: it is not fixed and no parameter \
         binds it"
    );
    // An op redefining a parameter.
    let mut b = Builder::new(&[]);
    let p = b.param("p", DType::F32, &[]);
    b.op("o", "", &[], Map(""), lit(Scalar::F32(1.0)), DType::F32);
    b.result("p", p);
    let mut m = b.module();
    m.funcs[0].ops[0].result = p;
    let input = Array::from_buffer(Buffer::F32(vec![2.0]), &[]).expect("scalar");
    assert_eq!(
        message(run(&m, "f", &[input])),
        "malformed IR in function `f`: %p is defined twice"
    );
}
