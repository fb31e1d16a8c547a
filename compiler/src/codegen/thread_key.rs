//! Per-thread state of generated code, reached through a `pthread` key: the error message of
//! `einc_last_error` ([`last_error`](super::last_error)) and the scratch block of the
//! temporaries ([`scratch`](super::scratch)).
//!
//! Each such state has a key and a once-flag. A shared library defines both itself (local,
//! zero-initialised data); a JIT module imports them from this process ([`JitKey`]), so that
//! every JIT module of a process shares one key per state (a process may compile far more
//! modules than there are keys). The key is created once (`pthread_once`) with libc's `free`
//! as its destructor, so a thread's value is freed when the thread exits even after the code
//! that set it is gone (a closed library, a dropped JIT program). Only libc is called, so a
//! library still depends on libc alone.
//!
//! The functions that use the state are small and off the hot loops: [`SupportBuilder`]
//! compiles them with the cold settings ([`isa::COLD_CODE`](super::isa::COLD_CODE)).

use super::libcall::{Libcall, Libcalls};
use super::{declare, finish_with, CodegenError, Listing};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Value};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage as ClifLinkage, Module};
use std::sync::atomic::{AtomicU32, AtomicU64};

const I64: types::Type = types::I64;

/// The Rust side of one per-thread state of JIT modules: zero-initialised like
/// `PTHREAD_ONCE_INIT`; the key slot holds the key and, after it, 1 once it is created.
pub(crate) struct JitKey {
    once: AtomicU32,
    key: AtomicU64,
}

impl JitKey {
    pub(crate) const fn new() -> JitKey {
        JitKey {
            once: AtomicU32::new(0),
            key: AtomicU64::new(0),
        }
    }

    /// The key, once generated code has created it.
    #[cfg(test)]
    pub(crate) fn created_key(&self) -> Option<u32> {
        let slot = self.key.load(std::sync::atomic::Ordering::SeqCst);
        // The slot holds the key in its low 4 bytes and the created flag in the high 4 (x86-64
        // and aarch64 are little-endian).
        ((slot >> 32) != 0).then_some(slot as u32)
    }

    /// Makes the once-flag and key importable by a JIT module under these names.
    pub(crate) fn register(
        &'static self,
        builder: &mut cranelift_jit::JITBuilder,
        once_symbol: &str,
        key_symbol: &str,
    ) {
        builder.symbol(once_symbol, self.once.as_ptr().cast::<u8>().cast_const());
        builder.symbol(key_symbol, self.key.as_ptr().cast::<u8>().cast_const());
    }
}

/// A per-thread state's once-flag and key in one module, and the function creating the key.
#[derive(Clone, Copy)]
pub(crate) struct ThreadKey {
    once: DataId,
    key: DataId,
    init: FuncId,
}

impl ThreadKey {
    /// Declares the once-flag and key (`import`: from the process, as the JIT does; otherwise
    /// defined zero-initialised in the module) and defines `init_name`, `void init(void)`,
    /// which creates the key (destructor `free`) and marks it created.
    pub(crate) fn define<M: Module>(
        b: &mut SupportBuilder<'_, M>,
        import: bool,
        [once_symbol, key_symbol, init_name]: [&str; 3],
        listing: Listing<'_>,
    ) -> Result<ThreadKey, CodegenError> {
        let state = |module: &mut M, name: &str, size: usize| {
            let err = |e: cranelift_module::ModuleError| CodegenError::Cranelift {
                function: name.to_string(),
                message: e.to_string(),
            };
            if import {
                return module
                    .declare_data(name, ClifLinkage::Import, true, false)
                    .map_err(err);
            }
            let id = module
                .declare_data(name, ClifLinkage::Local, true, false)
                .map_err(err)?;
            let mut desc = DataDescription::new();
            desc.define_zeroinit(size);
            desc.set_align(8);
            module.define_data(id, &desc).map_err(err)?;
            Ok(id)
        };
        let once = state(b.module, once_symbol, 4)?;
        let key = state(b.module, key_symbol, 8)?;
        let init = b.function(
            init_name,
            ClifLinkage::Local,
            &[],
            &[],
            listing,
            |fb, module, libs, _| {
                let gv = module.declare_data_in_func(key, fb.func);
                let key_addr = fb.ins().symbol_value(I64, gv);
                let free = libs.func_ref(module, fb, Libcall::Free)?;
                let destructor = fb.ins().func_addr(I64, free);
                let status = call(
                    libs,
                    module,
                    fb,
                    Libcall::PthreadKeyCreate,
                    &[key_addr, destructor],
                )?;
                let created = fb.ins().icmp_imm_s(IntCC::Equal, status, 0);
                let flag = fb.ins().uextend(types::I32, created);
                fb.ins().store(MemFlagsData::trusted(), flag, key_addr, 4);
                fb.ins().return_(&[]);
                Ok(())
            },
        )?;
        Ok(ThreadKey { once, key, init })
    }

    /// Runs `init` once, then returns whether the key exists (an `i32`, non-zero when it
    /// does) and the key (an `i32`, meaningful only when it exists).
    pub(crate) fn load<M: Module>(
        self,
        fb: &mut FunctionBuilder,
        module: &mut M,
        libs: &mut Libcalls,
    ) -> Result<(Value, Value), CodegenError> {
        let once_gv = module.declare_data_in_func(self.once, fb.func);
        let once = fb.ins().symbol_value(I64, once_gv);
        let init_ref = module.declare_func_in_func(self.init, fb.func);
        let init_addr = fb.ins().func_addr(I64, init_ref);
        call(libs, module, fb, Libcall::PthreadOnce, &[once, init_addr])?;
        let key_gv = module.declare_data_in_func(self.key, fb.func);
        let key_addr = fb.ins().symbol_value(I64, key_gv);
        let created = fb
            .ins()
            .load(types::I32, MemFlagsData::trusted(), key_addr, 4);
        let key = fb
            .ins()
            .load(types::I32, MemFlagsData::trusted(), key_addr, 0);
        Ok((created, key))
    }

    /// [`ThreadKey::load`], returning null from the function being built when the key could
    /// not be created.
    pub(crate) fn value<M: Module>(
        self,
        fb: &mut FunctionBuilder,
        module: &mut M,
        libs: &mut Libcalls,
    ) -> Result<Value, CodegenError> {
        let (created, key) = self.load(fb, module, libs)?;
        let ok = fb.create_block();
        let none = fb.create_block();
        fb.ins().brif(created, ok, &[], none, &[]);
        fb.switch_to_block(none);
        let null = fb.ins().iconst(I64, 0);
        fb.ins().return_(&[null]);
        fb.switch_to_block(ok);
        Ok(key)
    }
}

/// Builds the small support functions of one module (error recording, scratch blocks).
pub(crate) struct SupportBuilder<'a, M: Module> {
    pub module: &'a mut M,
    /// The settings the functions are compiled with: [`isa::COLD_CODE`](super::isa::COLD_CODE)
    /// (they run once per call at most, outside every loop).
    pub cold: &'a dyn TargetIsa,
    pub ctx: &'a mut Context,
    pub fctx: &'a mut FunctionBuilderContext,
    pub libs: &'a mut Libcalls,
}

impl<M: Module> SupportBuilder<'_, M> {
    /// Declares `name` with `params` and `returns` and builds its body with `body`, which gets
    /// the builder (positioned in the entry block), the module, the libcalls and the entry
    /// block's parameters.
    pub(crate) fn function(
        &mut self,
        name: &str,
        linkage: ClifLinkage,
        params: &[types::Type],
        returns: &[types::Type],
        listing: Listing<'_>,
        body: impl FnOnce(
            &mut FunctionBuilder,
            &mut M,
            &mut Libcalls,
            &[Value],
        ) -> Result<(), CodegenError>,
    ) -> Result<FuncId, CodegenError> {
        let mut sig = self.module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns
            .extend(returns.iter().map(|&t| AbiParam::new(t)));
        let id = declare(self.module, name, linkage, sig.clone())?;
        self.ctx.func.signature = sig;
        self.libs.begin_function();
        let mut fb = FunctionBuilder::new(&mut self.ctx.func, self.fctx);
        let entry = fb.create_block();
        fb.append_block_params_for_function_params(entry);
        fb.switch_to_block(entry);
        let args = fb.block_params(entry).to_vec();
        body(&mut fb, self.module, self.libs, &args)?;
        fb.seal_all_blocks();
        fb.finalize(self.module.target_config());
        finish_with(self.module, Some(self.cold), self.ctx, id, name, listing)?;
        Ok(id)
    }
}

/// Calls a libc function that returns a value.
pub(crate) fn call<M: Module>(
    libs: &mut Libcalls,
    module: &mut M,
    fb: &mut FunctionBuilder,
    f: Libcall,
    args: &[Value],
) -> Result<Value, CodegenError> {
    libs.call(module, fb, f, args)?
        .ok_or_else(|| CodegenError::Target(format!("{f:?} returns nothing")))
}
