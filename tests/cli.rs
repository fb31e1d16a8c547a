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
    assert!(text.contains("multiply-adds:  60\n"), "{text}");

    let run = einc()
        .args(["explain", "model.ein"])
        .output()
        .expect("einc runs");
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "einc: error: explain model.ein: not implemented yet\n"
    );
}
