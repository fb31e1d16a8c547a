//! Micro-kernel dispatch for libraries that must run on CPUs with and without AVX2
//! (`super::UkernelPlan::dispatch`, `einc build --target-cpu x86-64-v2`).
//!
//! Such a module carries, for every shape the wide kernels cover, the wide kernel
//! (`einc_ukernel_gemm_f32_6x16.avx2`), Cranelift's kernel (`....cranelift`) and, under the
//! kernel's own symbol that the bodies call, a small Cranelift function that calls one of them.
//! It reads a module-wide word, `einc_cpu_level.word`: 0 until the first call of any
//! dispatching kernel asks the CPU (`einc_cpu_level`, [`super::cpu_level_code`]) and stores the
//! answer, 1 for Cranelift's kernels, 2 for AVX2, 3 for AVX-512. The word is read and written
//! atomically; two threads that ask at once store the same answer. Per call this costs one
//! load, two branches and one more call, against the k loop of a register tile or more.

use super::super::ukernel::signature;
use super::super::{declare, finish, CodegenError, Listing};
use super::Assembled;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, BlockArg, InstBuilder, MemFlagsData};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};

/// The symbol of the CPU check.
const CHECK_SYMBOL: &str = "einc_cpu_level";

/// The CPU check of a module and the word that keeps its answer.
#[derive(Clone, Copy)]
pub(crate) struct CpuLevel {
    word: DataId,
    check: FuncId,
}

impl CpuLevel {
    /// Defines the word and the check in `module`, recording the check in `listing`.
    pub(crate) fn define<M: Module>(
        module: &mut M,
        listing: Listing<'_>,
    ) -> Result<CpuLevel, CodegenError> {
        let err = |name: &str, message: String| CodegenError::Cranelift {
            function: name.into(),
            message,
        };
        let word_name = format!("{CHECK_SYMBOL}.word");
        let word = module
            .declare_data(&word_name, Linkage::Local, true, false)
            .map_err(|e| err(&word_name, e.to_string()))?;
        let mut desc = DataDescription::new();
        desc.define_zeroinit(8);
        desc.set_align(8);
        module
            .define_data(word, &desc)
            .map_err(|e| err(&word_name, e.to_string()))?;
        let mut sig = module.make_signature();
        sig.returns.push(AbiParam::new(types::I64));
        let check = declare(module, CHECK_SYMBOL, Linkage::Local, sig)?;
        let bytes = super::cpu_level_code()?;
        module
            .define_function_bytes(check, 16, &bytes, &[])
            .map_err(|e| err(CHECK_SYMBOL, format!("{e:?}")))?;
        if let Listing::Asm(text) = listing {
            let code = Assembled {
                code_len: bytes.len(),
                bytes,
            };
            text.push_str(&format!("; {CHECK_SYMBOL} (machine code)\n"));
            text.push_str(&super::disassemble(&code));
            text.push('\n');
        }
        Ok(CpuLevel { word, check })
    }
}

/// Defines `id` (named `name`) as the function that calls `wide` where the CPU runs it (the
/// check answers at least `wide_level`, `UkernelIsa::cpu_level`), else `base`; all three have
/// the micro-kernels' signature.
#[allow(clippy::too_many_arguments)]
pub(crate) fn define<M: Module>(
    module: &mut M,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    (id, name): (FuncId, &str),
    (wide, wide_level): (FuncId, i64),
    base: FuncId,
    level: CpuLevel,
    listing: Listing<'_>,
) -> Result<(), CodegenError> {
    ctx.func.signature = signature(module);
    let mut fb = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let args = fb.block_params(entry)[0];
    let word = module.declare_data_in_func(level.word, fb.func);
    let word = fb.ins().symbol_value(types::I64, word);
    let flags = MemFlagsData::trusted();
    let known = fb.ins().atomic_load(types::I64, flags, word);
    let ready = fb.create_block();
    let answer = fb.append_block_param(ready, types::I64);
    let ask = fb.create_block();
    fb.ins()
        .brif(known, ready, &[BlockArg::from(known)], ask, &[]);

    fb.switch_to_block(ask);
    let check = module.declare_func_in_func(level.check, fb.func);
    let call = fb.ins().call(check, &[]);
    let got = fb.inst_results(call)[0];
    fb.ins().atomic_store(flags, got, word);
    fb.ins().jump(ready, &[BlockArg::from(got)]);

    fb.switch_to_block(ready);
    let use_wide = fb
        .ins()
        .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, answer, wide_level);
    let call_wide = fb.create_block();
    let call_base = fb.create_block();
    fb.ins().brif(use_wide, call_wide, &[], call_base, &[]);
    for (block, callee) in [(call_wide, wide), (call_base, base)] {
        fb.switch_to_block(block);
        let callee = module.declare_func_in_func(callee, fb.func);
        fb.ins().call(callee, &[args]);
        fb.ins().return_(&[]);
    }
    fb.seal_all_blocks();
    fb.finalize(module.target_config());
    finish(module, ctx, id, name, listing)
}
