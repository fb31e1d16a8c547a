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
