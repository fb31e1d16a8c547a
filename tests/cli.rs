//! End-to-end tests of the `einc` binary: exit statuses and messages as a user sees them.

use std::process::Command;

fn einc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_einc"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = einc().arg("--help").output().expect("einc runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["check", "explain", "ir", "eval", "run"] {
        assert!(text.contains(cmd), "help lacks {cmd}: {text}");
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = einc().arg("frobnicate").output().expect("einc runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
}

// ---------------------------------------------------------------- einc eval / einc explain

use einc_compiler::npy;
use einc_runtime::{Array, Buffer, DType};
use std::path::{Path, PathBuf};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("einc-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

fn save(dir: &Path, name: &str, buffer: Buffer, shape: &[usize]) -> PathBuf {
    let path = dir.join(name);
    let array = Array::from_buffer(buffer, shape).expect("buffer matches shape");
    npy::write_npy(&path, &array).expect("npy written");
    path
}

fn eval(subscripts: &str, inputs: &[&Path], out: &Path) -> std::process::Output {
    einc()
        .arg("eval")
        .arg(subscripts)
        .args(inputs)
        .arg("-o")
        .arg(out)
        .output()
        .expect("einc runs")
}

#[test]
fn eval_matmul_promotes_and_matches_explicit_loops() {
    let dir = scratch("matmul");
    let a: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
    let b: Vec<i32> = vec![1, -1, 2, 0, -3, 4]; // 3x2
    let pa = save(&dir, "a.npy", Buffer::F32(a.clone()), &[2, 3]);
    let pb = save(&dir, "b.npy", Buffer::I32(b.clone()), &[3, 2]);
    let out = dir.join("c.npy");
    let run = eval("ij,jk->ik", &[&pa, &pb], &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut want = vec![0.0f64; 4];
    for i in 0..2 {
        for k in 0..2 {
            for j in 0..3 {
                want[i * 2 + k] += f64::from(a[i * 3 + j]) * f64::from(b[j * 2 + k]);
            }
        }
    }
    let c = npy::read_npy(&out).unwrap();
    assert_eq!(
        c.dtype(),
        DType::F64,
        "float32 with int32 is float64 in numpy"
    );
    assert_eq!(c.shape(), &[2, 2]);
    assert_eq!(c.to_f64_vec(), want);
}

#[test]
fn eval_error_exits_1_with_a_caret_and_writes_nothing() {
    let dir = scratch("mismatch");
    let pa = save(&dir, "a.npy", Buffer::F64(vec![0.0; 6]), &[2, 3]);
    let pb = save(&dir, "b.npy", Buffer::F64(vec![0.0; 20]), &[4, 5]);
    let out = dir.join("c.npy");
    let run = eval("ij,jk->ik", &[&pa, &pb], &out);
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "einc: error: label `j` has extent 3 in operand 0 but 4 in operand 1, and neither is 1\n  \
         | ij,jk->ik\n  |    ^\n"
    );
    assert!(!out.exists());
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "only the inputs remain: {names:?}");
}

#[test]
fn eval_rejects_unsupported_npy_files_by_name() {
    let dir = scratch("badnpy");
    let p = dir.join("u8.npy");
    let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[1, 2]);
    std::fs::write(&p, bytes).unwrap();
    let run = eval("i", &[&p], &dir.join("o.npy"));
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.starts_with("einc: error: ") && err.contains("unsupported dtype '|u1'"),
        "{err}"
    );
}

#[test]
fn eval_accepts_odd_subscripts_like_numpy() {
    let dir = scratch("odd");
    let x = save(&dir, "x.npy", Buffer::F64(vec![2.5]), &[]);
    let y = save(&dir, "y.npy", Buffer::I32(vec![3]), &[]);
    let v = save(&dir, "v.npy", Buffer::I64(vec![1, 2, 3]), &[3]);
    let out = dir.join("o.npy");

    // `->` on a scalar is the scalar.
    let run = eval("->", &[&x], &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(npy::read_npy(&out).unwrap().to_f64_vec(), [2.5]);

    // Spaces anywhere; implicit output of two scalars is their product.
    let run = eval(" , ", &[&x, &y], &out);
    assert!(run.status.success());
    let r = npy::read_npy(&out).unwrap();
    assert_eq!((r.dtype(), r.to_f64_vec()), (DType::F64, vec![7.5]));

    // ` i , i ` sums the products: 1*1 + 2*2 + 3*3.
    let run = eval(" i , i ", &[&v, &v], &out);
    assert!(run.status.success());
    assert_eq!(npy::read_npy(&out).unwrap().to_f64_vec(), [14.0]);

    std::fs::remove_file(&out).unwrap();
    // numpy rejects `->,->` (two arrows) and an empty string without operands.
    for (subscripts, inputs) in [("->,->", vec![x.as_path(), y.as_path()]), ("", vec![])] {
        let run = eval(subscripts, &inputs, &out);
        assert_eq!(run.status.code(), Some(1), "{subscripts:?}");
        assert!(String::from_utf8_lossy(&run.stderr).starts_with("einc: error: "));
        assert!(!out.exists());
    }
}

#[test]
fn explain_prints_the_index_table() {
    let run = einc()
        .args(["explain", "ij,jk->ik", "--shapes", "3x4,4x5"])
        .output()
        .expect("einc runs");
    assert!(run.status.success());
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains("j      dummy (summed)  4       #0[1], #1[0]\n"),
        "{text}"
    );
    assert!(text.contains("optimised FLOPs:       120\n"), "{text}");

    let run = einc()
        .args(["explain", "model.ein"])
        .output()
        .expect("einc runs");
    assert_eq!(run.status.code(), Some(1));
    // A file is read to find its only kernel (--kernel may be left out).
    assert!(
        String::from_utf8_lossy(&run.stderr).starts_with("einc: error: cannot read model.ein: "),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

// ------------------------------------------------------- einc check / ir / run / explain FILE

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_every_example_and_reports_source_errors_with_location() {
    for name in [
        "attention.ein",
        "mlp.ein",
        "tucker.ein",
        "causal_attention.ein",
        "physics.ein",
    ] {
        let out = einc()
            .arg("check")
            .arg(example(name))
            .output()
            .expect("einc runs");
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    }
    let dir = scratch("check");
    let bad = dir.join("bad.ein");
    std::fs::write(
        &bad,
        "dims N\nkernel f(A: f32[N, N]) -> (v: f32[N]) {\n    v[i] = A[j, k] * A[k, k]\n}\n",
    )
    .expect("write");
    let out = einc()
        .args(["--color", "never", "check"])
        .arg(&bad)
        .output()
        .expect("einc runs");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:3:", bad.display())), "{err}");
    assert!(err.contains("`j`"), "{err}");
    assert!(err.contains("v[i] = A[j, k] * A[k, k]"), "{err}");
}

#[test]
fn ir_prints_one_kernel_or_names_the_kernels_there_are() {
    let out = einc()
        .arg("ir")
        .arg(example("physics.ein"))
        .args(["--kernel", "trace"])
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "func @trace(%A: f32[3, 3]) -> (t: f32) {\n  \
         %t = generic (i: 3) ins(%A[i, i]) -> [] reduce add over (i) { %0 } : f32\n    \
         schedule loops(order=[i], vector=[], unroll=[], parallel=[])\n  \
         return t = %t\n}\n"
    );
    let out = einc()
        .arg("ir")
        .arg(example("physics.ein"))
        .args(["--kernel", "nope"])
        .output()
        .expect("einc runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cross, det3, trace, substitute"));
}

#[test]
fn run_binds_dims_from_inputs_and_writes_each_output() {
    let dir = scratch("run");
    // substitute(A, x) -> (y = x, s = trace A), with N = 3 fixed by the file.
    let a = save(
        &dir,
        "a.npy",
        Buffer::F32((1..=9).map(|v| v as f32).collect()),
        &[3, 3],
    );
    let x = save(&dir, "x.npy", Buffer::F32(vec![0.5, -1.0, 2.0]), &[3]);
    let outdir = dir.join("out");
    let out = einc()
        .arg("run")
        .arg(example("physics.ein"))
        .args(["--kernel", "substitute"])
        .arg(format!("A={}", a.display()))
        .arg(format!("x={}", x.display()))
        .arg("--out-dir")
        .arg(&outdir)
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let y = npy::read_npy(&outdir.join("y.npy")).expect("y.npy");
    assert_eq!(y.to_f64_vec(), vec![0.5, -1.0, 2.0]);
    let s = npy::read_npy(&outdir.join("s.npy")).expect("s.npy");
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.to_f64_vec(), vec![1.0 + 5.0 + 9.0]);
}

#[test]
fn run_errors_name_the_problem_and_write_nothing() {
    let dir = scratch("run-errors");
    let a = save(&dir, "a.npy", Buffer::F32(vec![0.0; 4]), &[2, 2]);
    let outdir = dir.join("out");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![format!("A={}", a.display())], "needs `x`"),
        (vec!["A".to_string()], "NAME=PATH"),
        (vec![format!("Z={}", a.display())], "no parameter `Z`"),
        (
            vec![format!("A={}", a.display()), format!("x={}", a.display())],
            "axis 0 has extent 2, but its declared extent is 3",
        ),
    ];
    for (inputs, want) in cases {
        let out = einc()
            .arg("run")
            .arg(example("physics.ein"))
            .args(["--kernel", "substitute"])
            .args(&inputs)
            .arg("--out-dir")
            .arg(&outdir)
            .output()
            .expect("einc runs");
        assert_eq!(out.status.code(), Some(1), "{inputs:?}");
        let err = text(&out.stderr);
        assert!(err.contains(want), "{inputs:?}: {err}");
        assert!(!outdir.join("y.npy").exists() && !outdir.join("s.npy").exists());
    }
}

#[test]
fn explain_kernel_shows_each_operation_of_a_file() {
    let out = einc()
        .arg("explain")
        .arg(example("mlp.ein"))
        .args(["--kernel", "mlp"])
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.starts_with("kernel mlp\n"), "{shown}");
    // The contraction inside relu sums i, which X and W1 both carry.
    assert!(
        shown.contains("i      dummy (summed)  I       X[1], W1[0]"),
        "{shown}"
    );
    assert!(
        shown.contains("class:   contraction: batch [], m [b], n [h], k [i]"),
        "{shown}"
    );
    assert!(shown.contains("points:  B*H*I"), "{shown}");
    // The path of its contractions: the widest machine code the host runs.
    use einc_compiler::codegen::UkernelIsa;
    let wide = if UkernelIsa::Avx512.runs_on_host() {
        "avx512"
    } else if UkernelIsa::Avx2.runs_on_host() {
        "avx2"
    } else {
        "cranelift"
    };
    assert!(
        shown.contains(&format!("micro-kernels: {wide} (")),
        "{shown}"
    );
    // The kernel of a file with one kernel need not be named; with several it must.
    let out = einc()
        .arg("explain")
        .arg(example("mlp.ein"))
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("kernel mlp\n"));
    let out = einc()
        .arg("explain")
        .arg(example("attention.ein"))
        .output()
        .expect("einc runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "the file defines 2 kernels (attention, attention_grad): name one with --kernel"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn explain_marks_batch_indices_prints_einsum_strings_powers_and_symmetry() {
    let dir = scratch("explain-more");
    let file = dir.join("k.ein");
    std::fs::write(
        &file,
        "dims B, M, N, K
         kernel k(X: f32[B, M, K], Y: f32[B, K, N], A: f32[M, N]) -> (Z: f32[B, M, N], G: f32[N, N]) {
             Z[b, m, n] = X[b, m, k] * Y[b, k, n]
             G[i, j] = A[k, i] * A[k, j]
}
",
    )
    .unwrap();
    let (code, shown, err) = einc_out(&["explain", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        shown.contains("b      free (batch)    B       X[0], Y[0]"),
        "{shown}"
    );
    assert!(shown.contains("einsum:  \"bmk,bkn->bmn\"\n"), "{shown}");
    assert!(shown.contains("einsum:     \"ki,kj->ij\"\n"), "{shown}");
    assert!(
        shown.contains("symmetric:  %G[i, j] = %G[j, i]\n"),
        "{shown}"
    );
    assert!(shown.contains("points:     N^2*M\n"), "{shown}");
    // Z is not symmetric.
    assert_eq!(shown.matches("symmetric:").count(), 1, "{shown}");
}

#[test]
fn the_only_kernel_is_the_default_run_writes_here_and_cast_converts() {
    let dir = scratch("defaults");
    std::fs::write(
        dir.join("one.ein"),
        "dims N\nkernel scale(x: f64[N]) -> (y: f64[N]) {\n    y[i] = 2 * x[i]\n}\n",
    )
    .unwrap();
    save(&dir, "x.npy", Buffer::F32(vec![1.0, 2.0, 3.0]), &[3]);
    let run = |extra: &[&str]| {
        einc()
            .current_dir(&dir)
            .args(["run", "one.ein", "x=x.npy"])
            .args(extra)
            .output()
            .expect("einc runs")
    };
    // f32 input, f64 parameter: rejected, unless asked to convert.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("input `x` has dtype f32, but the kernel declares f64[N]"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("y.npy").exists());
    let out = run(&["--cast"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "wrote ./y.npy (f64[3])\n");
    let y = npy::read_npy(&dir.join("y.npy")).expect("y.npy");
    assert_eq!(y.to_f64_vec(), vec![2.0, 4.0, 6.0]);
    let (code, shown, err) = einc_out(&["grad", dir.join("one.ein").to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(shown.contains("dx[i] = 2 * dy[i]"), "{shown}");
    let (code, _, err) = einc_out(&["gradcheck", dir.join("one.ein").to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn grad_prints_hessians_and_jacobians_with_symmetry_notes() {
    let dir = scratch("hessian");
    let file = dir.join("q.ein");
    std::fs::write(
        &file,
        "dims N\nkernel quad(A: f64[N, N], x: f64[N]) -> (f: f64) {\n    f = x[i] * A[i, j] * x[j]\n}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, shown, err) = einc_out(&["grad", path, "--hessian", "--wrt", "x"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        shown,
        "dims N\n\n\
         kernel quad_hessian(A: f64[N, N], x: f64[N]) -> (d2f_dx2: f64[N, N]) {\n    \
         d2f_dx2[e0, i0] = A[i0, e0] + A[e0, i0]\n\
         }\n\
         # d2f_dx2 is symmetric: d2f_dx2[i, j] = d2f_dx2[j, i] (a Hessian of a scalar: \
         Schwarz's theorem, where the second derivatives are continuous)\n"
    );
    // The Jacobian of f with respect to A is x xᵀ, symmetric as the derived op shows.
    let (code, shown, err) = einc_out(&["grad", path, "--jacobian", "--wrt", "A"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(shown.contains("    df_dA[i, j] = x[i] * x[j]\n"), "{shown}");
    assert!(
        shown.ends_with("# df_dA is symmetric: df_dA[i, j] = df_dA[j, i]\n"),
        "{shown}"
    );
    let (code, _, err) = einc_out(&["grad", path, "--hessian"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("a hessian is taken with respect to one input, not 2"),
        "{err}"
    );
}

/// Malformed input of every kind gets a message and a clean exit status: never a panic, a stack
/// overflow or a hang.
#[test]
fn check_survives_malformed_input() {
    let dir = scratch("malformed");
    let attention = std::fs::read(example("attention.ein")).expect("example");
    let nested = format!(
        "kernel k(A: f32[3]) -> (B: f32[3]) {{\n    B[i] = {}A[i]{}\n}}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let mut binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    binary.extend_from_slice(b"\xff\xfe\x00");
    let huge = "dims N = 1073741824\nkernel k(A: f32[N, N]) -> (B: f32[N, N]) {\n    \
                B[i, j] = A[j, i] * 2\n}\n";
    let cases: Vec<(&str, Vec<u8>, Option<i32>)> = vec![
        ("empty.ein", Vec::new(), Some(0)),
        ("binary.ein", binary, Some(1)),
        (
            "truncated.ein",
            attention[..attention.len() / 2].to_vec(),
            Some(1),
        ),
        ("nested.ein", nested.into_bytes(), Some(1)),
        ("huge.ein", huge.as_bytes().to_vec(), Some(0)),
        (
            "unicode.ein",
            "dims N\nkernel k(Ä: f32[N]) -> (B: f32[N]) {\n    B[i] = Ä[i] → 2\n}\n"
                .as_bytes()
                .to_vec(),
            Some(1),
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).expect("write");
        let out = einc()
            .args(["--color", "never", "check"])
            .arg(&path)
            .output()
            .expect("einc runs");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), want, "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        if want == Some(1) {
            assert!(err.contains("error"), "{name}: {err}");
        }
    }
}

// ---------------------------------------------------------------- grad, einc grad, gradcheck

#[test]
fn help_lists_the_gradient_subcommands() {
    let out = einc().arg("--help").output().expect("einc runs");
    let help = text(&out.stdout);
    for cmd in ["grad", "gradcheck"] {
        assert!(help.contains(cmd), "help lacks {cmd}: {help}");
    }
}

#[test]
fn run_executes_the_grad_item_of_the_attention_example() {
    // With WQ = WK = 0 every score is 0 and P is uniform (1/T), so dWQ = dWK = 0 and
    // dWV[d, a] = Σ_t X[t, d] · (1/T) Σ_i dO[i, a].
    let (t, d, k) = (2usize, 3usize, 2usize);
    let dir = scratch("run-grad");
    let xs: Vec<f32> = (0..t * d).map(|v| v as f32 * 0.5 - 1.0).collect();
    let wv: Vec<f32> = (0..d * k).map(|v| 0.25 * v as f32).collect();
    let dos: Vec<f32> = vec![1.0, -2.0, 0.5, 3.0];
    let x = save(&dir, "x.npy", Buffer::F32(xs.clone()), &[t, d]);
    let zero = save(&dir, "zero.npy", Buffer::F32(vec![0.0; d * k]), &[d, k]);
    let v = save(&dir, "wv.npy", Buffer::F32(wv), &[d, k]);
    let seed = save(&dir, "do.npy", Buffer::F32(dos.clone()), &[t, k]);
    let outdir = dir.join("out");
    let out = einc()
        .arg("run")
        .arg(example("attention.ein"))
        .args(["--kernel", "attention_grad"])
        .arg(format!("X={}", x.display()))
        .arg(format!("WQ={}", zero.display()))
        .arg(format!("WK={}", zero.display()))
        .arg(format!("WV={}", v.display()))
        .arg(format!("dO={}", seed.display()))
        .arg("--out-dir")
        .arg(&outdir)
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "no warnings: {}", text(&out.stderr));
    for name in ["dWQ", "dWK"] {
        let g = npy::read_npy(&outdir.join(format!("{name}.npy"))).expect("written");
        assert_eq!(g.shape(), &[d, k]);
        assert!(g.to_f64_vec().iter().all(|v| *v == 0.0), "{name}");
    }
    let dwv = npy::read_npy(&outdir.join("dWV.npy")).expect("written");
    let mut want = vec![0.0f64; d * k];
    for dd in 0..d {
        for a in 0..k {
            let mean: f64 = (0..t).map(|i| f64::from(dos[i * k + a])).sum::<f64>() / t as f64;
            want[dd * k + a] = (0..t).map(|tt| f64::from(xs[tt * d + dd]) * mean).sum();
        }
    }
    for (g, w) in dwv.to_f64_vec().iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "dWV: got {g}, want {w}");
    }
}

#[test]
fn grad_prints_checkable_source_and_gradcheck_reports_per_tensor() {
    let dir = scratch("grad");
    let src = dir.join("matmul.ein");
    std::fs::write(
        &src,
        "dims M, K, N\nkernel matmul(A: f64[M, K], B: f64[K, N]) -> (C: f64[M, N]) {\n    \
         C[i, j] = A[i, k] * B[k, j]\n}\n",
    )
    .expect("write");
    let out = einc()
        .arg("grad")
        .arg(&src)
        .args(["--kernel", "matmul", "--wrt", "A,B"])
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("    dA[i, k] = dC[i, j] * B[k, j]\n    dB[k, j] = A[i, k] * dC[i, j]\n"),
        "{printed}"
    );
    let derived = dir.join("matmul_grad.ein");
    std::fs::write(&derived, &printed).expect("write");
    let out = einc()
        .arg("check")
        .arg(&derived)
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = einc()
        .arg("gradcheck")
        .arg(example("mlp.ein"))
        .args(["--kernel", "mlp", "--wrt", "W1,b2", "--dims", "B=3,H=5"])
        .output()
        .expect("einc runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("dims B=3, I=3, H=5, O=2"), "{report}");
    assert!(
        report.contains("dW1 ") && report.contains("db2 "),
        "{report}"
    );
    assert!(!report.contains("dX"), "{report}");

    // An integer cast hides a dependence from the derivative: the check fails, exit 1.
    let cast = dir.join("cast.ein");
    std::fs::write(
        &cast,
        "dims N\nkernel f(x: f64[N]) -> (y: f64[N]) {\n    y[i] = f64(i32(x[i] * 1000000))\n}\n",
    )
    .expect("write");
    let out = einc()
        .arg("gradcheck")
        .arg(&cast)
        .args(["--kernel", "f"])
        .output()
        .expect("einc runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("FAILED"),
        "{}",
        text(&out.stdout)
    );

    let out = einc()
        .arg("grad")
        .arg(&src)
        .args(["--kernel", "matmul", "--wrt", "Z"])
        .output()
        .expect("einc runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("cannot differentiate `matmul`: `Z` is not a parameter of `matmul`"),
        "{}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------- einc ir pipelines / einc opt

/// Runs `einc` with `args`; returns (exit code, stdout, stderr).
fn einc_out(args: &[&str]) -> (Option<i32>, String, String) {
    let out = einc().args(args).output().expect("einc runs");
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn physics_path() -> String {
    example("physics.ein").display().to_string()
}

/// `substitute` after delta elimination, at tensor level (as `--kernel` prints it: the
/// function without the module's dims).
const SUBSTITUTE_AFTER: &str =
    "func @substitute(%A: f32[3, 3], %x: f32[3]) -> (y: f32[3], s: f32) {\n  \
%y = generic (i: 3) ins(%x[i]) -> [i] { %0 } : f32\n  \
%s = generic (i: 3) ins(%A[i, i]) -> [] reduce add over (i) { %0 } : f32\n  \
return y = %y, s = %s\n}\n";

/// [`SUBSTITUTE_AFTER`] after the whole `-O2` list: the `schedule` pass gives both ops a
/// `loops` schedule (extent 3 is less than a vector: nothing is vectorised).
const SUBSTITUTE_O2: &str =
    "func @substitute(%A: f32[3, 3], %x: f32[3]) -> (y: f32[3], s: f32) {\n  \
%y = generic (i: 3) ins(%x[i]) -> [i] { %0 } : f32\n    \
schedule loops(order=[i], vector=[], unroll=[], parallel=[i])\n  \
%s = generic (i: 3) ins(%A[i, i]) -> [] reduce add over (i) { %0 } : f32\n    \
schedule loops(order=[i], vector=[], unroll=[], parallel=[])\n  \
return y = %y, s = %s\n}\n";

#[test]
fn ir_print_after_all_heads_every_pass_down_to_clif() {
    // An explicit pipeline, so that the test is about the dump, not about the default list.
    let (code, out, err) = einc_out(&[
        "ir",
        &example("attention.ein").display().to_string(),
        "--print-after-all",
        "--level=clif",
        "--passes=delta-elim,eps-expand,dce,lower-to-loops,unroll,licm,strength-reduce,emit-clif",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let banners: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("// -----// IR after"))
        .collect();
    assert_eq!(
        banners,
        [
            "// -----// IR after delta-elim //----- //",
            "// -----// IR after eps-expand //----- //",
            "// -----// IR after dce //----- //",
            "// -----// IR after lower-to-loops //----- //",
            "// -----// IR after unroll //----- //",
            "// -----// IR after licm //----- //",
            "// -----// IR after strength-reduce //----- //",
            "// -----// IR after emit-clif //----- //",
        ]
    );
    // Tensor IR before the lowering, loop IR after it, and the result is not printed twice.
    let lowering = out.find("IR after lower-to-loops").unwrap();
    assert!(
        out[..lowering].contains("%S = generic (i: T, j: T, a: K)"),
        "{out}"
    );
    assert!(
        out[lowering..].contains("buffer %S: f32[T, T] contiguous"),
        "{out}"
    );
    // After each of the three tensor passes, the lowering and the three loop passes.
    assert_eq!(out.matches("func @attention(").count(), 7, "{out}");
    let clif = out.find("IR after emit-clif").unwrap();
    assert!(
        out[clif..].contains("; einc_attention.body\nfunction "),
        "{out}"
    );
    assert_eq!(out.matches("; einc_attention.body\n").count(), 1, "{out}");
}

#[test]
fn ir_print_after_all_is_the_pipeline_that_build_and_the_jit_run() {
    use einc_compiler::compile::{pipeline, CompileOptions, OptLevel};
    use einc_compiler::passes::Level;
    let path = example("attention.ein");
    for level in OptLevel::ALL {
        let o = format!("-O{}", level.name());
        let (code, out, err) =
            einc_out(&["ir", &path.display().to_string(), &o, "--print-after-all"]);
        assert_eq!(code, Some(0), "{err}");
        let shown: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("// -----// IR after "))
            .filter_map(|l| l.strip_suffix(" //----- //"))
            .collect();
        let opts = CompileOptions {
            level,
            ..CompileOptions::default()
        };
        let runs = pipeline(&opts, Level::Clif).unwrap().names();
        assert_eq!(shown.join(", "), runs, "{o}");
        // The loop IR of the dump is what the JIT compiled with the same options.
        let (code, loop_ir, err) =
            einc_out(&["ir", &path.display().to_string(), &o, "--level=loop"]);
        assert_eq!(code, Some(0), "{err}");
        let program = einc_compiler::api::Program::from_file(&path)
            .and_then(|p| einc_compiler::api::Program::from_module_with(p.module().clone(), &opts))
            .unwrap();
        let jit = einc_compiler::ir::loops::printer::print_module(program.loop_module());
        assert_eq!(loop_ir, jit, "{o}");
        let clif = out.find("IR after emit-clif").unwrap();
        let lowered = out[..clif].rfind(" //----- //\n").unwrap();
        assert_eq!(
            &out[lowered + 12..clif - "// -----// ".len()],
            loop_ir,
            "{o}"
        );
    }
}

#[test]
fn ir_dims_hints_are_checked_against_the_file_with_located_errors() {
    let (code, _, err) = einc_out(&["ir", &physics_path(), "--dims", "N=4,X=2"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("error: dim `N` is fixed to 3, so it cannot be 4"),
        "{err}"
    );
    assert!(err.contains("--dims:1:1"), "{err}");
    assert!(
        err.contains("error: no dim `X`; the module declares: N"),
        "{err}"
    );
    assert!(err.contains("--dims:1:5"), "{err}");
    // The contradiction points at the declaration in the file.
    assert!(err.contains("note: `N` is fixed here"), "{err}");
    assert!(err.contains("physics.ein:4:6"), "{err}");
    let (code, _, err) = einc_out(&["ir", &physics_path(), "--dims", "N=3,N=3"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("dim `N` is given twice"), "{err}");
    let (code, _, err) = einc_out(&["ir", &physics_path(), "--dims", "N=x"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("the extent in --dims must be a positive integer"),
        "{err}"
    );
    // A fixed dim may be repeated with its own extent; a symbolic one takes any.
    let (code, _, err) = einc_out(&["ir", &physics_path(), "--dims", "N=3"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = einc_out(&[
        "build",
        &example("attention.ein").display().to_string(),
        "--dims",
        "T=8,Q=1",
        "--emit",
        "header",
        "-o",
        "-",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no dim `Q`; the module declares: T, D, K"),
        "{err}"
    );
}

#[test]
fn ir_level_clif_prints_cranelift_ir() {
    let (code, out, err) = einc_out(&["ir", &physics_path(), "--kernel", "trace", "--level=clif"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("; einc_trace.body\nfunction "), "{out}");
    assert!(out.contains("; einc_trace\nfunction "), "{out}");
    let (code, _, err) = einc_out(&["ir", &physics_path(), "--level=clif", "--passes=dce"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("clif IR is produced by: emit-clif"), "{err}");
}

#[test]
fn ir_runs_the_tensor_passes_by_default_and_passes_picks_them() {
    let p = physics_path();
    let (code, out, err) = einc_out(&["ir", &p, "--kernel", "substitute"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, SUBSTITUTE_O2);
    let (_, out, _) = einc_out(&["ir", &p, "--kernel", "substitute", "--passes="]);
    assert!(out.contains("mul(delta<f32>(i, j), %0)"), "{out}");
    let (code, _, err) = einc_out(&["ir", &p, "--passes=dce,frobnicate"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("unknown pass `frobnicate`; the passes are: delta-elim, eps-expand, "),
        "{err}"
    );
    let (code, _, err) = einc_out(&["ir", &p, "--passes=eps-expand{max-rank=x}"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("bad value `x` for option `max-rank`"), "{err}");
}

#[test]
fn ir_print_changed_marks_unchanged_passes() {
    let (code, out, err) = einc_out(&[
        "ir",
        &physics_path(),
        "--kernel",
        "substitute",
        "--print-changed",
        "--level=tensor",
        "--passes=delta-elim,eps-expand,dce",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "// -----// IR after delta-elim //----- //\ndims N = 3\n\n{SUBSTITUTE_AFTER}\
             // IR after eps-expand: (unchanged)\n// IR after dce: (unchanged)\n"
        )
    );
}

#[test]
fn ir_print_before_print_after_and_stop_after() {
    let p = physics_path();
    let (code, out, err) = einc_out(&[
        "ir",
        &p,
        "--kernel",
        "substitute",
        "--print-before=delta-elim",
        "--print-after=dce",
        "--stop-after=delta-elim",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("// -----// IR before delta-elim //----- //\ndims N = 3\n"),
        "{out}"
    );
    assert!(out.contains("mul(delta<f32>(i, j), %0)"), "{out}");
    assert!(!out.contains("IR after dce"), "stopped before dce: {out}");
    assert!(out.ends_with(SUBSTITUTE_AFTER), "{out}");
    let (code, _, err) = einc_out(&[
        "ir",
        &p,
        "--passes=delta-elim,eps-expand,dce",
        "--stop-after=lower-to-loops",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(
            "pass `lower-to-loops` is not in the pipeline; it runs: delta-elim, eps-expand, dce"
        ),
        "{err}"
    );
    // --print-before-all: the IR before every pass, the first being the input.
    let (code, out, err) = einc_out(&[
        "ir",
        &p,
        "--kernel",
        "substitute",
        "--passes=delta-elim,dce",
        "--print-before-all",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("// -----// IR before delta-elim //----- //\ndims N = 3\n"),
        "{out}"
    );
    assert!(
        out.contains("// -----// IR before dce //----- //\n"),
        "{out}"
    );
    assert!(out.ends_with(SUBSTITUTE_AFTER), "{out}");
}

#[test]
fn ir_level_loop_lowers_and_level_mismatches_are_explained() {
    let p = physics_path();
    let (code, out, err) = einc_out(&["ir", &p, "--kernel", "trace", "--level=loop"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("func @trace(%A: in f32[3, 3] strided, %t: out f32[] strided) {"),
        "{out}"
    );
    let (code, _, err) = einc_out(&["ir", &p, "--level=loop", "--passes=dce"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("the pipeline ends at tensor level, but loop IR was asked for; loop IR is produced by: lower-to-loops"), "{err}");
}

#[test]
fn opt_reproduces_a_stage_of_a_dump() {
    let dir = scratch("opt");
    let p = physics_path();
    let (_, before, _) = einc_out(&["ir", &p, "--kernel", "substitute", "--passes="]);
    let tir = dir.join("substitute.tir");
    std::fs::write(&tir, &before).unwrap();
    let tir = tir.display().to_string();
    let (code, out, err) = einc_out(&["opt", &tir, "--passes=delta-elim,dce"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, SUBSTITUTE_AFTER);
    // No passes: the IR is verified and printed back.
    let (_, out, _) = einc_out(&["opt", &tir]);
    assert_eq!(out, before);
    // Loop IR from `einc ir --level=loop`, detected from the content under another extension.
    let (_, lir, _) = einc_out(&["ir", &p, "--kernel", "substitute", "--level=loop"]);
    let other = dir.join("substitute.txt");
    std::fs::write(&other, &lir).unwrap();
    let (code, out, err) = einc_out(&["opt", &other.display().to_string(), "--print-after-all"]);
    assert_eq!((code, out.as_str()), (Some(0), lir.as_str()), "{err}");
    let (code, _, err) = einc_out(&["opt", &other.display().to_string(), "--passes=dce"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("pass `dce` reads tensor IR, but the input is loop IR"),
        "{err}"
    );
    // Broken text names the file and position.
    std::fs::write(dir.join("bad.tir"), "func @f( {\n").unwrap();
    let (code, _, err) = einc_out(&["opt", &dir.join("bad.tir").display().to_string()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("bad.tir:1:"), "{err}");
}

#[test]
fn verify_each_is_accepted() {
    let (code, out, err) = einc_out(&[
        "ir",
        &physics_path(),
        "--kernel",
        "substitute",
        "--verify-each",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, SUBSTITUTE_O2);
}
