//! The filetest runner: every file under `tests/filetests/` with a `// RUN:` line holds IR, a
//! pipeline and the expected output, in the spirit of Cranelift's filetests and MLIR's lit
//! tests. The format is documented in `docs/passes.md`; in short:
//!
//! ```text
//! // RUN: passes=delta-elim,dce            (optionally also level=tensor|loop)
//! <input IR>
//! // EXPECT:
//! // <the printed result, or `error: <message>`, one comment line per line>
//! // -----
//! <the next case; a case without a RUN line uses the previous case's>
//! ```
//!
//! On a mismatch the runner prints a diff (`-` expected, `+` actual) and fails;
//! `EINC_BLESS=1 cargo test --test filetests` rewrites the expectations instead. Files without
//! a RUN line (round-trip fixtures used by other tests) are skipped.

// Test helpers panic on broken fixtures: that is the failure the test reports.
#![allow(clippy::unwrap_used)]

use einc_compiler::passes::{run_pipeline, Dumps, Ir, Level, Pipeline, RunOptions};
use std::path::{Path, PathBuf};

const SEPARATOR: &str = "// -----";
const EXPECT: &str = "// EXPECT:";
const RUN: &str = "// RUN:";

/// One case of a file: its lines up to (not including) the EXPECT line, and the expected
/// output lines.
struct Case {
    /// The 1-based line of the file where the case starts.
    line: usize,
    head: Vec<String>,
    expected: Vec<String>,
}

fn split_cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    let mut start = 1;
    let mut flush = |lines: &mut Vec<&str>, start: usize| {
        let at = lines.iter().position(|l| l.trim_end() == EXPECT);
        let (head, tail) = match at {
            Some(n) => (&lines[..n], &lines[n + 1..]),
            None => (&lines[..], &[][..]),
        };
        let expected: Vec<String> = tail
            .iter()
            .map(|l| l.trim_end())
            .take_while(|l| l.starts_with("//"))
            .map(|l| {
                l.strip_prefix("// ")
                    .unwrap_or(l.trim_start_matches("//"))
                    .to_string()
            })
            .collect();
        cases.push(Case {
            line: start,
            head: head.iter().map(|l| l.to_string()).collect(),
            expected,
        });
        lines.clear();
    };
    for (n, line) in text.lines().enumerate() {
        if line.trim_end() == SEPARATOR {
            flush(&mut lines, start);
            start = n + 2;
        } else {
            lines.push(line);
        }
    }
    flush(&mut lines, start);
    cases
}

/// The `key=value` settings of the case's RUN line, if it has one.
fn run_line(case: &Case) -> Option<Vec<(String, String)>> {
    let line = case.head.iter().find_map(|l| l.trim().strip_prefix(RUN))?;
    Some(
        line.split_whitespace()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect(),
    )
}

/// Runs one case: the printed result, or `error: ...` lines.
fn run_case(case: &Case, run: &[(String, String)], default_level: Option<Level>) -> Vec<String> {
    let mut passes = String::new();
    let mut level = default_level;
    for (k, v) in run {
        match (k.as_str(), v.as_str()) {
            ("passes", v) => passes = v.to_string(),
            ("level", "tensor") => level = Some(Level::Tensor),
            ("level", "loop") => level = Some(Level::Loop),
            _ => panic!("unknown RUN setting `{k}={v}`: expected passes=... or level=tensor|loop"),
        }
    }
    // Comment lines are blanked so that parse errors keep the case's line numbers.
    let input: String = case
        .head
        .iter()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                "\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let result = Ir::parse(&input, level).and_then(|ir| {
        let pipeline = Pipeline::parse(&passes)?;
        let opts = RunOptions {
            verify_each: true,
            ..RunOptions::default()
        };
        run_pipeline(&pipeline, ir, &opts, &mut Dumps::default())
    });
    let text = match result {
        Ok(ir) => ir.print(),
        Err(e) => format!("error: {e}"),
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// A line diff (longest common subsequence): ` ` common, `-` expected only, `+` actual only.
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out += &format!("  {}\n", expected[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", expected[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", actual[j]);
            j += 1;
        }
    }
    out
}

/// The file with every case's expectation replaced by `actual`.
fn blessed(cases: &[Case], actual: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (k, (case, lines)) in cases.iter().zip(actual).enumerate() {
        if k > 0 {
            out += SEPARATOR;
            out += "\n";
        }
        let mut head = case.head.clone();
        while head.last().is_some_and(|l| l.trim().is_empty()) {
            head.pop();
        }
        for l in head {
            out += &l;
            out += "\n";
        }
        out += EXPECT;
        out += "\n";
        for l in lines {
            out += if l.is_empty() { "//" } else { "// " };
            out += l;
            out += "\n";
        }
        if k + 1 < cases.len() {
            out += "\n";
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn filetests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/filetests");
    let bless = std::env::var_os("EINC_BLESS").is_some_and(|v| v == "1");
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    let (mut ran, mut failures) = (0, Vec::new());
    for path in all {
        let text = std::fs::read_to_string(&path).unwrap();
        let cases = split_cases(&text);
        let Some(mut run) = cases.first().and_then(run_line) else {
            continue;
        };
        let default_level = match path.extension().and_then(|e| e.to_str()) {
            Some("tir") => Some(Level::Tensor),
            Some("lir") => Some(Level::Loop),
            _ => None,
        };
        let mut actual = Vec::new();
        for (k, case) in cases.iter().enumerate() {
            if let Some(r) = run_line(case) {
                run = r;
            }
            let lines = run_case(case, &run, default_level);
            if lines != case.expected && !bless {
                failures.push(format!(
                    "{}:{}: case {}:\n{}",
                    path.display(),
                    case.line,
                    k + 1,
                    diff(&case.expected, &lines)
                ));
            }
            actual.push(lines);
            ran += 1;
        }
        if bless {
            std::fs::write(&path, blessed(&cases, &actual)).unwrap();
        }
    }
    assert!(
        ran >= 5,
        "only {ran} filetest cases found under {}",
        root.display()
    );
    assert!(
        failures.is_empty(),
        "{} filetest case(s) failed (- expected, + actual):\n\n{}\n\
         EINC_BLESS=1 cargo test --test filetests rewrites the expectations.",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_diff_marks_removed_and_added_lines() {
    let s = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert_eq!(
        diff(&s(&["a", "b", "c"]), &s(&["a", "x", "c", "d"])),
        "  a\n- b\n+ x\n  c\n+ d\n"
    );
}

#[test]
fn blessing_rewrites_only_the_expectations() {
    let text = "// RUN: passes=dce\nfunc @f() -> () {\n  return\n}\n// EXPECT:\n// old\n\n// -----\nfunc @g() -> () {\n  return\n}\n";
    let cases = split_cases(text);
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].expected, vec!["old".to_string()]);
    let new = blessed(
        &cases,
        &[vec!["new".into(), String::new()], vec!["g".into()]],
    );
    assert_eq!(
        new,
        "// RUN: passes=dce\nfunc @f() -> () {\n  return\n}\n// EXPECT:\n// new\n//\n\n// -----\nfunc @g() -> () {\n  return\n}\n// EXPECT:\n// g\n"
    );
}
