//! Tensor IR text (`.tir`) on arbitrary bytes: the parser and the verifier; a module that
//! verifies prints, parses back and prints the same text, and goes through every optimisation level with
//! the verifier after each pass (a pass that breaks verified IR is a bug; a pass may refuse
//! IR it does not support with an error).

#![no_main]

use einc_compiler::compile::{self, CompileOptions, OptLevel};
use einc_compiler::codegen;
use einc_compiler::ir::tensor::{parser, printer, verify};
use einc_compiler::passes::{Dumps, Ir, Level, RunOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(module) = parser::parse_module(&text) else {
        return;
    };
    if verify::verify_module(&module).is_err() {
        return;
    }
    let printed = printer::print_module(&module);
    let back = parser::parse_module(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    // Compared as text: literals print bit-exactly, and NaN != NaN as a value.
    assert_eq!(printer::print_module(&back), printed);
    let run = RunOptions {
        verify_each: true,
        ..RunOptions::default()
    };
    for level in OptLevel::ALL {
        let opts = CompileOptions {
            level,
            ..CompileOptions::default()
        };
        match compile::run(module.clone(), &opts, Level::Loop, &run, &mut Dumps::default()) {
            Ok(Ir::Loop(loops)) => {
                let _ = codegen::jit_compile(&loops);
            }
            Ok(_) => {}
            Err(e) => {
                let e = e.to_string();
                assert!(
                    !e.contains("fails the verifier") && !e.contains(" reported "),
                    "-O{}: {e}\n{printed}",
                    level.name()
                );
            }
        }
    }
});
