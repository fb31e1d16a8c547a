//! The layering of `docs/architecture.md`, checked on the source: each module's non-test code
//! names (`crate::X`) only the layers below it. A back-edge (an IR level reaching into the
//! interpreter, `autodiff` into `sema`, the tensor printer into the verifier, ...) fails here
//! with the file and line that adds it.

use std::path::{Path, PathBuf};

/// Per module (a path under `compiler/src`, a directory or a file), the crate modules its
/// non-test code must not name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // The IR levels are the bottom: types, printers, parsers, verifiers, the loop evaluator.
    (
        "ir",
        &[
            "analysis", "api", "autodiff", "codegen", "compile", "driver", "interp", "lower",
            "passes", "paths", "sema", "syntax",
        ],
    ),
    // The printer prints what the verifier rejects, so it must not depend on it.
    (
        "ir/tensor/printer.rs",
        &["ir::tensor::verify", "super::verify"],
    ),
    // Oracles beside the pipeline: the IR only.
    (
        "interp",
        &[
            "analysis", "api", "autodiff", "codegen", "compile", "driver", "lower", "passes",
            "paths", "sema", "syntax",
        ],
    ),
    // Pure analyses and the path search know nothing above the IR.
    (
        "analysis",
        &[
            "api", "autodiff", "codegen", "compile", "driver", "interp", "lower", "passes",
            "paths", "sema", "syntax",
        ],
    ),
    (
        "paths",
        &[
            "analysis", "api", "autodiff", "codegen", "compile", "driver", "interp", "ir", "lower",
            "passes", "sema", "syntax",
        ],
    ),
    // `sema` calls `autodiff` for `grad` items, never the other way round.
    ("autodiff", &["api", "compile", "driver", "sema"]),
    ("syntax", &["api", "autodiff", "compile", "driver", "sema"]),
    ("sema", &["api", "compile", "driver"]),
    // The pipeline: passes → lower → codegen, each calling only downward.
    ("passes", &["api", "driver", "sema"]),
    (
        "lower",
        &[
            "api", "autodiff", "codegen", "compile", "driver", "passes", "sema",
        ],
    ),
    (
        "codegen",
        &[
            "api", "autodiff", "compile", "driver", "lower", "passes", "sema",
        ],
    ),
    ("compile.rs", &["api", "driver"]),
    ("api", &["driver"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `.rs` files under `path` (or `path` itself), test files left out.
fn files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("a readable directory")
            .map(|e| e.expect("an entry").path())
            .collect();
        entries.sort();
        for e in entries {
            if e.file_name().is_some_and(|n| n != "tests") {
                files(&e, out);
            }
        }
    } else if path.extension().is_some_and(|x| x == "rs")
        && path.file_name().is_some_and(|n| n != "tests.rs")
    {
        out.push(path.to_path_buf());
    }
}

/// The non-test lines of a file: everything before an inline `#[cfg(test)]` item, comments
/// left out.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(n, l)| (n + 1, l))
}

/// Whether `line` names `crate::<module>` (or `module` itself when it is a `super::` path) as
/// a path segment, not as a prefix of a longer name.
fn names(line: &str, module: &str) -> bool {
    let needle = if module.starts_with("super::") {
        module.to_string()
    } else {
        format!("crate::{module}")
    };
    line.match_indices(&needle).any(|(at, _)| {
        !line[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn every_layer_calls_only_the_layers_below_it() {
    let mut checked = 0;
    let mut edges = Vec::new();
    for (module, forbidden) in FORBIDDEN {
        let mut paths = Vec::new();
        files(&src().join(module), &mut paths);
        assert!(!paths.is_empty(), "no source under {module}");
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("a readable file");
            for (n, line) in code_lines(&text) {
                checked += 1;
                for f in forbidden.iter().filter(|f| names(line, f)) {
                    edges.push(format!("{}:{n}: {module} names {f}", path.display()));
                }
            }
        }
    }
    assert!(checked > 10_000, "only {checked} lines read");
    assert!(
        edges.is_empty(),
        "back-edges (see docs/architecture.md, Layering):\n{}",
        edges.join("\n")
    );
}

#[test]
fn the_check_sees_a_back_edge() {
    // The checker itself: a use line is found, a longer name and a comment are not.
    assert!(names("use crate::interp::{self, Value};", "interp"));
    assert!(names("    crate::sema::check(x)", "sema"));
    assert!(!names("use crate::interpreter;", "interp"));
    assert!(names("use super::verify::check;", "super::verify"));
    let text =
        "use crate::ir;\n// crate::sema\nfn f() {}\n#[cfg(test)]\nmod tests { use crate::sema; }\n";
    let lines: Vec<usize> = code_lines(text).map(|(n, _)| n).collect();
    assert_eq!(lines, [1, 3]);
}
