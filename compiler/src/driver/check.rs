//! `einc check FILE`: parse and check a .ein file, print its diagnostics, exit 0 when it has no
//! errors (warnings and notes are still printed) and 1 otherwise.

use crate::diag::{render, SourceFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `einc check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file to check.
    pub file: PathBuf,
}

/// Runs `einc check`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let file = match read_source(&args.file) {
        Ok(file) => file,
        Err(message) => return super::fail(message),
    };
    let (_module, diags) = crate::sema::compile_source(&file.text);
    eprint!("{}", render(&diags, &file, color));
    if diags.iter().any(|d| d.is_error()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads a source file; the error names the file and, for text that is not UTF-8, the line and
/// column of the first bad byte.
pub(crate) fn read_source(path: &Path) -> Result<SourceFile, String> {
    let shown = super::display_path(path);
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(shown, text)),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(e.as_bytes().get(..offset).unwrap_or_default())
                .into_owned();
            let (line, col) = SourceFile::new("", valid).line_col(u32::MAX);
            Err(format!(
                "{shown}:{line}:{col}: the file is not valid UTF-8 (bad byte at offset {offset})"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("einc-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = read_source(Path::new("/nonexistent/k.ein")).unwrap_err();
        assert!(err.starts_with("cannot read /nonexistent/k.ein: "), "{err}");
    }

    #[test]
    fn non_utf8_text_is_located_by_line_and_column() {
        let path = temp_file("bad.ein", b"dims N\n# caf\xc3\xa9 \xff\n");
        let err = read_source(&path).unwrap_err();
        let shown = path.display();
        // Line 2: `# café ` is 7 characters, so the bad byte is in column 8 (byte offset 15).
        assert_eq!(
            err,
            format!("{shown}:2:8: the file is not valid UTF-8 (bad byte at offset 15)")
        );
    }

    #[test]
    fn exit_status_is_0_without_errors_even_with_warnings_and_1_with_errors() {
        let ok = temp_file(
            "ok.ein",
            b"dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[i] = A[i]\n}\n\
              kernel g = grad(f, wrt: [A])\n",
        );
        assert_eq!(run(Args { file: ok }, false), ExitCode::SUCCESS);
        let bad = temp_file(
            "bad_index.ein",
            b"dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[i] = A[j]\n}\n",
        );
        assert_eq!(run(Args { file: bad }, false), ExitCode::from(1));
    }
}
