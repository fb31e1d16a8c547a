//! Contraction paths against opt_einsum, on the random tensor networks of
//! `tests/fixtures/paths.txt` (3 to 14 operands; written by `tests/fixtures/gen_paths.py`, which
//! says how to regenerate it):
//!
//! - einc's cost model counts opt_einsum's own reference path exactly as opt_einsum does
//!   (naive FLOPs, FLOPs of the path, largest intermediate): the model is checked on paths
//!   einc did not choose;
//! - einc's path (`einc explain --format json`) costs no more FLOPs than opt_einsum's `optimal`
//!   (up to 8 operands) or `dp` (beyond);
//! - the numbers `explain` prints for its path are opt_einsum's count of that path.

use einc_compiler::ir::tensor::{Extent, OpKind, TensorType};
use einc_compiler::passes::contraction_path::product;
use einc_compiler::paths::{evaluate, ssa_path, Network};
use einc_runtime::DType;
use std::process::Command;

struct Case {
    subscripts: String,
    shapes: String,
    reference: String,
    ref_path: Vec<Vec<usize>>,
    ref_counts: [u128; 3],
    einc_path: Vec<Vec<usize>>,
    einc_counts: [u128; 3],
}

fn parse_path(s: &str) -> Vec<Vec<usize>> {
    s.split('|')
        .map(|step| {
            step.split('-')
                .map(|p| p.parse().expect("a position"))
                .collect()
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/paths.txt"
    ))
    .expect("the fixture exists");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(';').collect();
            assert_eq!(f.len(), 11, "{l}");
            let n = |k: usize| f[k].parse::<u128>().expect("a count");
            Case {
                subscripts: f[0].to_string(),
                shapes: f[1].to_string(),
                reference: f[2].to_string(),
                ref_path: parse_path(f[3]),
                ref_counts: [n(4), n(5), n(6)],
                einc_path: parse_path(f[7]),
                einc_counts: [n(8), n(9), n(10)],
            }
        })
        .collect()
}

/// The network of an einsum, as the path pass and `explain` read it.
fn network(c: &Case) -> Network {
    let types: Vec<TensorType> = c
        .shapes
        .split(',')
        .map(|s| TensorType {
            dtype: DType::F32,
            shape: s
                .split('x')
                .filter(|d| !d.is_empty())
                .map(|d| Extent::Fixed(d.parse().expect("an extent")))
                .collect(),
        })
        .collect();
    let (_, func) = einc_compiler::sema::einsum::einsum_function(&c.subscripts, &types)
        .expect("the einsum is valid");
    let OpKind::Generic(g) = &func.ops[0].kind;
    let extent = |e: &Extent| match e {
        Extent::Fixed(n) => *n,
        Extent::Dim(_) => unreachable!("the fixture's extents are numbers"),
    };
    product(g, &extent).expect("an einsum is a product").network
}

#[test]
fn the_cost_model_counts_opt_einsums_paths_as_opt_einsum_does() {
    let cases = cases();
    assert!(cases.len() >= 90, "{}", cases.len());
    for c in &cases {
        let net = network(c);
        let ssa = ssa_path(&c.ref_path, net.inputs.len()).expect("a valid path");
        let p = evaluate(&net, ssa, None);
        assert_eq!(
            [p.naive_flops, p.opt_flops, p.largest_intermediate],
            c.ref_counts,
            "{} {}",
            c.subscripts,
            c.shapes
        );
    }
}

/// `"key": 123` in a JSON object printed by `explain`.
fn json_int(json: &str, key: &str) -> u128 {
    let at = json.find(&format!("\"{key}\": ")).expect(key) + key.len() + 4;
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("an integer")
}

/// The `"path"` of `explain`'s JSON.
fn json_path(json: &str) -> Vec<Vec<usize>> {
    let at = json.find("\"path\": [").expect("a path") + 9;
    let end = at + json[at..].find("]]").map_or(0, |e| e + 1);
    json[at..end]
        .split("], [")
        .map(|step| {
            step.trim_matches(|c| c == '[' || c == ']')
                .split(", ")
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().expect("a position"))
                .collect()
        })
        .collect()
}

#[test]
fn explain_plans_no_worse_than_opt_einsum_and_counts_as_it_does() {
    for c in cases() {
        let out = Command::new(env!("CARGO_BIN_EXE_einc"))
            .args([
                "explain",
                &c.subscripts,
                "--shapes",
                &c.shapes,
                "--format",
                "json",
            ])
            .output()
            .expect("einc runs");
        let json = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let counts = [
            json_int(&json, "naive_flops"),
            json_int(&json, "opt_flops"),
            json_int(&json, "largest_intermediate"),
        ];
        assert!(
            counts[1] <= c.ref_counts[1],
            "{} {}: einc's path costs {} FLOPs, opt_einsum's {} {}",
            c.subscripts,
            c.shapes,
            counts[1],
            c.reference,
            c.ref_counts[1]
        );
        assert_eq!(
            json_path(&json),
            c.einc_path,
            "{} {}: einc chooses another path than when the fixture was written; if that is \
             intended, regenerate it with tests/fixtures/gen_paths.py",
            c.subscripts,
            c.shapes
        );
        assert_eq!(counts, c.einc_counts, "{} {}", c.subscripts, c.shapes);
    }
}
