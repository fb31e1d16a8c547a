//! Loop IR text (`.lir`) on arbitrary bytes: the parser and the verifier; a module that
//! verifies prints and parses back to the same text, and code generation either compiles it
//! or refuses it with an error.

#![no_main]

use einc_compiler::codegen;
use einc_compiler::ir::loops::{parser, printer, verify};
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
    assert_eq!(printer::print_module(&back), printed);
    let _ = codegen::jit_compile(&module);
});
