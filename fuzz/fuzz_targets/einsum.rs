//! numpy subscripts with operand shapes: the einsum parser and planner, then (when valid)
//! compilation to machine code, for fixed shapes and for symbolic ones.
//!
//! Input format: byte 0 = number of operands (mod 7); per operand a dtype byte (mod 4) and a
//! rank byte (mod 6), then one byte per axis (extent mod 6); the rest is the subscripts string.

#![no_main]

use einc_compiler::compile::{compile, CompileOptions};
use einc_compiler::ir::tensor::{verify, Extent, TensorType};
use einc_compiler::sema::einsum::{einsum_function, symbolic_operands};
use einc_runtime::DType;
use libfuzzer_sys::fuzz_target;

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::I64];

fn checked(module: &einc_compiler::ir::tensor::Module) {
    if let Err(e) = verify::verify_module(module) {
        panic!("the einsum's IR does not verify: {e:?}");
    }
    let _ = compile(module, &CompileOptions::default());
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next().unwrap_or(0);
    let n = usize::from(next()) % 7;
    let mut types = Vec::new();
    for _ in 0..n {
        let dtype = DTYPES[usize::from(next()) % 4];
        let rank = usize::from(next()) % 6;
        let shape = (0..rank)
            .map(|_| Extent::Fixed(u64::from(next()) % 6))
            .collect();
        types.push(TensorType { dtype, shape });
    }
    let used = 1 + types.iter().map(|t| 2 + t.shape.len()).sum::<usize>();
    let subscripts = String::from_utf8_lossy(data.get(used..).unwrap_or_default());
    if let Ok((module, _)) = einsum_function(&subscripts, &types) {
        checked(&module);
    }
    if let Ok(symbolic) = symbolic_operands(&subscripts, DType::F32) {
        if let Ok((module, _)) = einsum_function(&subscripts, &symbolic) {
            checked(&module);
        }
    }
});
