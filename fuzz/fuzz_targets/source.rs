//! `.ein` source on arbitrary bytes: lexer, parser (with recovery), sema, diagnostics
//! rendering; when the program checks, the tensor IR verifies, prints and parses back
//! unchanged, and compiles to machine code. The AST printer's output is a fixed point.

#![no_main]

use einc_compiler::compile::{compile, CompileOptions};
use einc_compiler::diag::{render, SourceFile};
use einc_compiler::ir::tensor::{parser, printer, verify};
use einc_compiler::{codegen, sema, syntax};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (program, parse_diags) = syntax::parse(&text);
    let file = SourceFile::new("fuzz.ein", text.as_ref());
    let _ = render(&parse_diags, &file, false);
    if parse_diags.iter().any(|d| d.is_error()) {
        return;
    }
    // Printing a parsed program and parsing it again gives the same text.
    let printed = syntax::print_program(&program);
    let (again, diags) = syntax::parse(&printed);
    assert!(
        !diags.iter().any(|d| d.is_error()),
        "the printed program does not parse:\n{printed}"
    );
    assert_eq!(syntax::print_program(&again), printed);

    let (module, diags) = sema::check_program(&program);
    let _ = render(&diags, &file, false);
    let Some(module) = module else { return };
    if let Err(e) = verify::verify_module(&module) {
        panic!("sema's output does not verify: {e:?}\n{text}");
    }
    let tir = printer::print_module(&module);
    let back = parser::parse_module(&tir).unwrap_or_else(|e| panic!("{e}\n{tir}"));
    assert_eq!(printer::print_module(&back), tir);
    if let Ok(loops) = compile(&module, &CompileOptions::default()) {
        let _ = codegen::jit_compile(&loops);
    }
});
