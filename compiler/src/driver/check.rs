//! `einc check FILE`: parse and check a .ein file, print its diagnostics, exit 0 when it has no
//! errors (warnings and notes are still printed) and 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `einc check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file to check.
    pub file: PathBuf,
}

/// Runs `einc check`.
pub fn run(args: Args, color: bool) -> ExitCode {
    match super::load_module(&args.file, color) {
        Ok(_) => ExitCode::SUCCESS,
        Err(status) => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::tests::temp_file;

    #[test]
    fn exit_status_is_0_without_errors_even_with_notes_and_1_with_errors() {
        // `i` appears three times: summed, with a note that Einstein's convention expects pairs.
        let ok = temp_file(
            "ok.ein",
            b"dims N\nkernel f(A: f32[N]) -> (t: f32) {\n    t = A[i] * A[i] * A[i]\n}\n\
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
