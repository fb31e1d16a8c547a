//! The `.ein` programs the tests walk: the examples and the regression corpora, listed the
//! same way everywhere (sorted by path, so failures name the same first file on every run).

use std::path::{Path, PathBuf};

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The `.ein` files of `examples/`, sorted.
pub fn example_files() -> Vec<PathBuf> {
    ein_files(&examples_dir())
}

/// The `.ein` files directly in `dir`, sorted by path. Panics when `dir` cannot be read or holds
/// none: a test that silently walks an empty list would check nothing.
pub fn ein_files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "ein"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .ein files in {}", dir.display());
    files
}
