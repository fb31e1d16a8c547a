//! The scratch block: where a body's temporaries live, kept between calls (`docs/abi.md`,
//! "Temporaries").
//!
//! A body lays out all its temporaries in one block (each at a 64-byte aligned offset) and asks
//! for it once per call with `acquire(bytes)`, then hands it back with `release(ptr)`. Each
//! thread keeps one block, the value of a `pthread` key ([`thread_key`](super::thread_key)):
//! `acquire` returns it when it is large enough; otherwise, for a request of at most
//! [`SCRATCH_LIMIT`] bytes, it allocates a block of the requested size, makes it the thread's
//! block and frees the old one; `release` keeps the thread's block and frees anything else.
//! Requests above the limit (and every request when the key cannot be had) get a block of
//! their own that `release` frees, as every temporary was before. So:
//!
//! - repeated calls reuse memory whose pages are already mapped (each call used to `malloc`
//!   and `free` its temporaries, and glibc unmapped large ones, so every call faulted its pages
//!   in again: a third of attention's time);
//! - threads never share a block, so concurrent calls need no lock or atomic, however many
//!   threads call the same kernel (a kernel-wide cached block taken with an atomic swap would
//!   serve one thread and send the others to `malloc`); one block serves every kernel a thread
//!   calls, from every module of the process (JIT) or of the library;
//! - memory is bounded: each thread keeps at most one block of at most [`SCRATCH_LIMIT`]
//!   bytes (plus a 64-byte header), the largest request of at most that size it has seen; the
//!   key's destructor (`free`) releases it when the thread exits;
//! - a request that cannot be met returns null, so the body records `OUT_OF_MEMORY` before
//!   writing anything, and the thread's block (if any) stays as it was.
//!
//! Blocks come from `aligned_alloc(64, n)` (C11, in libc) and start with a 64-byte header
//! holding their capacity; `acquire` returns the address after the header, aligned to 64.
//! Not async-signal-safe (neither is `malloc`): a kernel with temporaries must not be called
//! from a signal handler.

use super::libcall::{Libcall, Libcalls};
use super::thread_key::{call, JitKey, SupportBuilder, ThreadKey};
use super::{CodegenError, Listing};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MemFlagsData};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{FuncId, Linkage as ClifLinkage, Module};

/// The largest block a thread keeps between calls, in bytes (64 MiB). Larger requests are
/// allocated and freed per call.
pub const SCRATCH_LIMIT: i64 = 64 << 20;

/// The alignment of the address `acquire` returns, and the size of a block's header.
pub const SCRATCH_ALIGN: i64 = 64;

/// Requests above this many bytes fail at once (rounding them up could overflow; no machine
/// einc runs on has that much memory).
const MAX_REQUEST: i64 = 1 << 62;

/// Names of the once-flag and key of a module: defined by a library, imported by the JIT.
const ONCE_SYMBOL: &str = "einc.scratch.once";
const KEY_SYMBOL: &str = "einc.scratch.key";

/// The once-flag and key of JIT modules.
static JIT_KEY: JitKey = JitKey::new();

/// The symbols a JIT module's scratch functions import from this process.
pub(crate) fn jit_symbols(builder: &mut cranelift_jit::JITBuilder) {
    JIT_KEY.register(builder, ONCE_SYMBOL, KEY_SYMBOL);
}

const I64: types::Type = types::I64;

/// The scratch functions of one module.
#[derive(Clone, Copy)]
pub(crate) struct Scratch {
    /// `void *acquire(i64 bytes)`: a 64-aligned block of at least `bytes` bytes, or null.
    pub acquire: FuncId,
    /// `void release(void *block)`: hands back what `acquire` returned.
    pub release: FuncId,
}

impl Scratch {
    /// Defines the scratch functions (and, unless `import`ed as the JIT does, their state).
    pub(crate) fn define<M: Module>(
        b: &mut SupportBuilder<'_, M>,
        import: bool,
        mut listing: Listing<'_>,
    ) -> Result<Scratch, CodegenError> {
        let key = ThreadKey::define(
            b,
            import,
            [ONCE_SYMBOL, KEY_SYMBOL, "einc.scratch.init"],
            listing.reborrow(),
        )?;
        let acquire = b.function(
            "einc.scratch.acquire",
            ClifLinkage::Local,
            &[I64],
            &[I64],
            listing.reborrow(),
            |fb, module, libs, args| acquire(fb, module, libs, key, args[0]),
        )?;
        let release = b.function(
            "einc.scratch.release",
            ClifLinkage::Local,
            &[I64],
            &[],
            listing,
            |fb, module, libs, args| release(fb, module, libs, key, args[0]),
        )?;
        Ok(Scratch { acquire, release })
    }
}

/// The body of `acquire(bytes)` (see the module doc).
fn acquire<M: Module>(
    fb: &mut FunctionBuilder,
    module: &mut M,
    libs: &mut Libcalls,
    key: ThreadKey,
    bytes: cranelift_codegen::ir::Value,
) -> Result<(), CodegenError> {
    let ret = fb.create_block();
    let result = fb.append_block_param(ret, I64);
    let sized = fb.create_block();
    let keyed = fb.create_block();
    let lookup = fb.create_block();
    let check = fb.create_block();
    let grow = fb.create_block();
    let set = fb.create_block();
    let replaced = fb.create_block();
    let set_failed = fb.create_block();
    let own = fb.create_block();
    let null = fb.ins().iconst(I64, 0);
    let too_big = fb
        .ins()
        .icmp_imm_u(IntCC::UnsignedGreaterThan, bytes, MAX_REQUEST);
    fb.ins()
        .brif(too_big, ret, &[BlockArg::from(null)], sized, &[]);

    // Whole 64-byte lines, at least one (aligned_alloc wants a multiple of the alignment).
    fb.switch_to_block(sized);
    let bumped = fb.ins().iadd_imm_s(bytes, SCRATCH_ALIGN - 1);
    let rounded = fb.ins().band_imm_s(bumped, -SCRATCH_ALIGN);
    let line = fb.ins().iconst(I64, SCRATCH_ALIGN);
    let size = fb.ins().umax(rounded, line);
    let align = fb.ins().iconst(I64, SCRATCH_ALIGN);
    let over_limit = fb
        .ins()
        .icmp_imm_u(IntCC::UnsignedGreaterThan, bytes, SCRATCH_LIMIT);
    fb.ins().brif(over_limit, own, &[], keyed, &[]);

    fb.switch_to_block(keyed);
    let (created, k) = key.load(fb, module, libs)?;
    fb.ins().brif(created, lookup, &[], own, &[]);

    // The thread's block, if it is large enough.
    fb.switch_to_block(lookup);
    let block = call(libs, module, fb, Libcall::PthreadGetSpecific, &[k])?;
    fb.ins().brif(block, check, &[], grow, &[]);
    fb.switch_to_block(check);
    let capacity = fb.ins().load(I64, MemFlagsData::trusted(), block, 0);
    let fits = fb
        .ins()
        .icmp(IntCC::UnsignedGreaterThanOrEqual, capacity, bytes);
    let usable = fb.ins().iadd_imm_s(block, SCRATCH_ALIGN);
    fb.ins()
        .brif(fits, ret, &[BlockArg::from(usable)], grow, &[]);

    // A larger block becomes the thread's; the old one is freed only once it is replaced.
    fb.switch_to_block(grow);
    let with_header = fb.ins().iadd_imm_s(size, SCRATCH_ALIGN);
    let fresh = call(
        libs,
        module,
        fb,
        Libcall::AlignedAlloc,
        &[align, with_header],
    )?;
    fb.ins().brif(fresh, set, &[], ret, &[BlockArg::from(null)]);
    fb.switch_to_block(set);
    fb.ins().store(MemFlagsData::trusted(), size, fresh, 0);
    let status = call(libs, module, fb, Libcall::PthreadSetSpecific, &[k, fresh])?;
    fb.ins().brif(status, set_failed, &[], replaced, &[]);
    fb.switch_to_block(replaced);
    libs.call(module, fb, Libcall::Free, &[block])?;
    let usable = fb.ins().iadd_imm_s(fresh, SCRATCH_ALIGN);
    fb.ins().jump(ret, &[BlockArg::from(usable)]);
    fb.switch_to_block(set_failed);
    libs.call(module, fb, Libcall::Free, &[fresh])?;
    fb.ins().jump(own, &[]);

    // A block of this call's own, which `release` frees.
    fb.switch_to_block(own);
    let p = call(libs, module, fb, Libcall::AlignedAlloc, &[align, size])?;
    fb.ins().jump(ret, &[BlockArg::from(p)]);

    fb.switch_to_block(ret);
    fb.ins().return_(&[result]);
    Ok(())
}

/// The body of `release(p)`: frees `p` unless it is the thread's block.
fn release<M: Module>(
    fb: &mut FunctionBuilder,
    module: &mut M,
    libs: &mut Libcalls,
    key: ThreadKey,
    p: cranelift_codegen::ir::Value,
) -> Result<(), CodegenError> {
    let lookup = fb.create_block();
    let free = fb.create_block();
    let done = fb.create_block();
    let (created, k) = key.load(fb, module, libs)?;
    fb.ins().brif(created, lookup, &[], free, &[]);
    fb.switch_to_block(lookup);
    let block = call(libs, module, fb, Libcall::PthreadGetSpecific, &[k])?;
    let usable = fb.ins().iadd_imm_s(block, SCRATCH_ALIGN);
    let same = fb.ins().icmp(IntCC::Equal, p, usable);
    let exists = fb.ins().icmp_imm_s(IntCC::NotEqual, block, 0);
    let kept = fb.ins().band(same, exists);
    fb.ins().brif(kept, done, &[], free, &[]);
    fb.switch_to_block(free);
    libs.call(module, fb, Libcall::Free, &[p])?;
    fb.ins().jump(done, &[]);
    fb.switch_to_block(done);
    fb.ins().return_(&[]);
    Ok(())
}

/// The calling thread's block in JIT modules, as its address and capacity, if it has one (for
/// tests of the policy above).
#[cfg(test)]
pub(crate) fn thread_block() -> Option<(usize, i64)> {
    extern "C" {
        fn pthread_getspecific(key: u32) -> *mut std::ffi::c_void;
    }
    let key = JIT_KEY.created_key()?;
    // SAFETY: `key` is a key `pthread_key_create` made; reading its value has no other effect.
    let block = unsafe { pthread_getspecific(key) };
    // SAFETY: a non-null value is a block `acquire` allocated, whose first 8 bytes hold its
    // capacity; only this thread uses it, and it is not running a kernel now.
    (!block.is_null()).then(|| (block as usize, unsafe { block.cast::<i64>().read() }))
}
