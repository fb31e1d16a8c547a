//! The `einc` command-line tool. All logic lives in [`einc_compiler::driver`].

use std::process::ExitCode;

fn main() -> ExitCode {
    einc_compiler::driver::main()
}
