//! Every `examples/*.ein` file checks without errors, lowers to tensor IR that verifies, and
//! computes (in the reference interpreter) what explicit loops in this file compute.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]
// The expected values are written as the textbook index loops on purpose.
#![allow(clippy::needless_range_loop)]

use einc_compiler::interp;
use einc_compiler::ir::tensor::parser::parse_module;
use einc_compiler::ir::tensor::printer::print_module;
use einc_compiler::ir::tensor::verify::verify_module;
use einc_compiler::ir::tensor::Module;
use einc_compiler::rng::Rng;
use einc_compiler::sema::compile_source;
use einc_compiler::testkit::files::{example_files, examples_dir};
use einc_runtime::{Array, Buffer};
use std::path::Path;

fn compile(name: &str) -> Module {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let (module, diags) = compile_source(&text);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
    let module = module.unwrap_or_else(|| panic!("{name}: no module"));
    if let Err(e) = verify_module(&module) {
        panic!("{name} does not verify: {e:?}\n{}", print_module(&module));
    }
    module
}

#[test]
fn every_example_checks_lowers_and_verifies() {
    let names: Vec<String> = example_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &names {
        let module = compile(name);
        assert!(!module.funcs.is_empty(), "{name}");
        // The printed IR parses back to the same module and prints identically.
        let text = print_module(&module);
        let reparsed = parse_module(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert_eq!(print_module(&reparsed), text, "{name}");
        assert_eq!(reparsed, module, "{name}");
    }
}

#[test]
fn attention_checks_without_diagnostics_and_defines_its_gradient_kernel() {
    let text = std::fs::read_to_string(examples_dir().join("attention.ein")).unwrap();
    let (module, diags) = compile_source(&text);
    assert!(diags.is_empty(), "{diags:#?}");
    let grad = module.unwrap();
    let grad = grad.func("attention_grad").unwrap();
    let names = |ids: Vec<String>| ids.join(", ");
    let params = grad
        .params
        .iter()
        .map(|&p| grad.value(p).name.clone())
        .collect();
    assert_eq!(names(params), "X, WQ, WK, WV, dO");
    let results = grad.results.iter().map(|r| r.name.clone()).collect();
    assert_eq!(names(results), "dWQ, dWK, dWV");
}

#[test]
fn attention_lowers_to_the_documented_ir() {
    let mut module = compile("attention.ein");
    // The documented IR is the forward kernel's; `attention_grad` is tested in tests/grad.rs.
    module.funcs.retain(|f| f.name == "attention");
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests/tensor/attention.tir"),
    )
    .unwrap();
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(String::from)
            .collect()
    };
    assert_eq!(strip(&print_module(&module)), strip(&expected));
}

/// A tensor for the test: C-order values and a shape, with a C-order element accessor.
#[derive(Clone)]
struct T {
    v: Vec<f32>,
    shape: Vec<usize>,
}

impl T {
    fn random(rng: &mut Rng, shape: &[usize]) -> T {
        T {
            v: (0..shape.iter().product())
                .map(|_| rng.uniform(-1.0, 1.0) as f32)
                .collect(),
            shape: shape.to_vec(),
        }
    }

    fn at(&self, idx: &[usize]) -> f64 {
        let mut pos = 0;
        for (i, n) in idx.iter().zip(&self.shape) {
            assert!(i < n);
            pos = pos * n + i;
        }
        f64::from(self.v[pos])
    }

    fn array(&self) -> Array {
        Array::from_buffer(Buffer::F32(self.v.clone()), &self.shape).unwrap()
    }
}

fn run(module: &Module, func: &str, inputs: &[&T]) -> Vec<Vec<f64>> {
    let arrays: Vec<Array> = inputs.iter().map(|t| t.array()).collect();
    interp::run(module, func, &arrays)
        .unwrap_or_else(|e| panic!("{func}: {e}"))
        .iter()
        .map(Array::to_f64_vec)
        .collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}[{k}]: got {g}, want {w}"
        );
    }
}

/// `x[t, d] * w[d, a]`, summed over d.
fn project(x: &T, w: &T) -> Vec<Vec<f64>> {
    let (tn, dn, an) = (x.shape[0], x.shape[1], w.shape[1]);
    (0..tn)
        .map(|t| {
            (0..an)
                .map(|a| (0..dn).map(|d| x.at(&[t, d]) * w.at(&[d, a])).sum())
                .collect()
        })
        .collect()
}

fn softmax_row(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

#[test]
fn attention_matches_explicit_loops() {
    let module = compile("attention.ein");
    let (tn, dn, kn) = (4, 3, 2);
    let mut rng = Rng::new(0x1234_5678);
    let x = T::random(&mut rng, &[tn, dn]);
    let wq = T::random(&mut rng, &[dn, kn]);
    let wk = T::random(&mut rng, &[dn, kn]);
    let wv = T::random(&mut rng, &[dn, kn]);
    let out = run(&module, "attention", &[&x, &wq, &wk, &wv]);
    let (q, k, v) = (project(&x, &wq), project(&x, &wk), project(&x, &wv));
    let mut want = Vec::new();
    for i in 0..tn {
        let s: Vec<f64> = (0..tn)
            .map(|j| (0..kn).map(|a| q[i][a] * k[j][a]).sum::<f64>() / (kn as f64).sqrt())
            .collect();
        let p = softmax_row(&s);
        for a in 0..kn {
            want.push((0..tn).map(|j| p[j] * v[j][a]).sum());
        }
    }
    assert_close("O", &out[0], &want);
}

#[test]
fn causal_attention_matches_explicit_loops() {
    let module = compile("causal_attention.ein");
    let (bn, tn, dn, hn, en) = (2, 3, 4, 2, 2);
    let mut rng = Rng::new(99);
    let x = T::random(&mut rng, &[bn, tn, dn]);
    let wq = T::random(&mut rng, &[hn, dn, en]);
    let wk = T::random(&mut rng, &[hn, dn, en]);
    let wv = T::random(&mut rng, &[hn, dn, en]);
    let wo = T::random(&mut rng, &[hn, en, dn]);
    let out = run(&module, "causal_attention", &[&x, &wq, &wk, &wv, &wo]);
    let proj = |w: &T, b: usize, h: usize, t: usize, e: usize| -> f64 {
        (0..dn).map(|d| x.at(&[b, t, d]) * w.at(&[h, d, e])).sum()
    };
    let mut want = vec![0.0; bn * tn * dn];
    for b in 0..bn {
        for h in 0..hn {
            for i in 0..tn {
                // Only positions j <= i take part; the others get weight exp(-inf) = 0.
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..en)
                            .map(|e| proj(&wq, b, h, i, e) * proj(&wk, b, h, j, e))
                            .sum::<f64>()
                            / (en as f64).sqrt()
                    })
                    .collect();
                let p = softmax_row(&s);
                for e in 0..en {
                    let a: f64 = (0..=i).map(|j| p[j] * proj(&wv, b, h, j, e)).sum();
                    for d in 0..dn {
                        want[(b * tn + i) * dn + d] += a * wo.at(&[h, e, d]);
                    }
                }
            }
        }
    }
    assert_close("Y", &out[0], &want);
}

#[test]
fn mlp_matches_explicit_loops() {
    let module = compile("mlp.ein");
    let (bn, in_, hn, on) = (3, 4, 5, 2);
    let mut rng = Rng::new(7);
    let x = T::random(&mut rng, &[bn, in_]);
    let w1 = T::random(&mut rng, &[in_, hn]);
    let b1 = T::random(&mut rng, &[hn]);
    let w2 = T::random(&mut rng, &[hn, on]);
    let b2 = T::random(&mut rng, &[on]);
    let out = run(&module, "mlp", &[&x, &w1, &b1, &w2, &b2]);
    let mut want = Vec::new();
    for b in 0..bn {
        let hid: Vec<f64> = (0..hn)
            .map(|h| {
                let z: f64 = (0..in_).map(|i| x.at(&[b, i]) * w1.at(&[i, h])).sum();
                (z + b1.at(&[h])).max(0.0)
            })
            .collect();
        for o in 0..on {
            want.push((0..hn).map(|h| hid[h] * w2.at(&[h, o])).sum::<f64>() + b2.at(&[o]));
        }
    }
    assert_close("Y", &out[0], &want);
}

#[test]
fn tucker_and_cp_match_explicit_loops() {
    let module = compile("tucker.ein");
    let (i_n, j_n, k_n, p_n, q_n, s_n, r_n) = (2, 3, 2, 2, 3, 2, 3);
    let mut rng = Rng::new(2024);
    let g = T::random(&mut rng, &[p_n, q_n, s_n]);
    let u = T::random(&mut rng, &[i_n, p_n]);
    let v = T::random(&mut rng, &[j_n, q_n]);
    let w = T::random(&mut rng, &[k_n, s_n]);
    let out = run(&module, "tucker", &[&g, &u, &v, &w]);
    let mut want = Vec::new();
    for i in 0..i_n {
        for j in 0..j_n {
            for k in 0..k_n {
                let mut acc = 0.0;
                for a in 0..p_n {
                    for b in 0..q_n {
                        for c in 0..s_n {
                            acc += g.at(&[a, b, c]) * u.at(&[i, a]) * v.at(&[j, b]) * w.at(&[k, c]);
                        }
                    }
                }
                want.push(acc);
            }
        }
    }
    assert_close("tucker T", &out[0], &want);

    let lam = T::random(&mut rng, &[r_n]);
    let a = T::random(&mut rng, &[i_n, r_n]);
    let b = T::random(&mut rng, &[j_n, r_n]);
    let c = T::random(&mut rng, &[k_n, r_n]);
    let out = run(&module, "cp", &[&lam, &a, &b, &c]);
    let mut want = Vec::new();
    for i in 0..i_n {
        for j in 0..j_n {
            for k in 0..k_n {
                want.push(
                    (0..r_n)
                        .map(|r| lam.at(&[r]) * a.at(&[i, r]) * b.at(&[j, r]) * c.at(&[k, r]))
                        .sum(),
                );
            }
        }
    }
    assert_close("cp T", &out[0], &want);
}

#[test]
fn physics_kernels_match_explicit_formulas() {
    let module = compile("physics.ein");
    let mut rng = Rng::new(31337);
    let a = T::random(&mut rng, &[3]);
    let b = T::random(&mut rng, &[3]);
    let (x, y) = (|k| a.at(&[k]), |k| b.at(&[k]));
    let cross = vec![
        x(1) * y(2) - x(2) * y(1),
        x(2) * y(0) - x(0) * y(2),
        x(0) * y(1) - x(1) * y(0),
    ];
    assert_close("cross", &run(&module, "cross", &[&a, &b])[0], &cross);

    let m = T::random(&mut rng, &[3, 3]);
    let e = |r: usize, c: usize| m.at(&[r, c]);
    let det = e(0, 0) * (e(1, 1) * e(2, 2) - e(1, 2) * e(2, 1))
        - e(0, 1) * (e(1, 0) * e(2, 2) - e(1, 2) * e(2, 0))
        + e(0, 2) * (e(1, 0) * e(2, 1) - e(1, 1) * e(2, 0));
    assert_close("det3", &run(&module, "det3", &[&m])[0], &[det]);

    let trace = e(0, 0) + e(1, 1) + e(2, 2);
    assert_close("trace", &run(&module, "trace", &[&m])[0], &[trace]);

    let out = run(&module, "substitute", &[&m, &a]);
    assert_close("substitute y", &out[0], &[x(0), x(1), x(2)]);
    assert_close("substitute s", &out[1], &[trace]);
}
