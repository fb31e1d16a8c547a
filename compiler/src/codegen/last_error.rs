//! Per-thread error messages of compiled kernels: `einc_last_error()` (`docs/abi.md`).
//!
//! A failing check of an entry point does more than return its status: it formats a message
//! naming the argument, the axis and the values at fault (`input `X` axis 1 has extent 7, but
//! dim `D` is 8, as bound by input `WQ` axis 0`) into a buffer owned by the calling thread,
//! which `einc_last_error()` returns, like `dlerror`. Each message is a template fixed at
//! compile time ([`Failure`]) into which up to two run-time values are spliced: in a template,
//! the byte [`A`] (0x01) stands for the first value as a decimal integer, [`B`] (0x02) for the
//! second, and [`DTYPE_A`] (0x03) for the first as a dtype name (`f64`, or `code 9` for a code
//! that names no dtype).
//!
//! The buffer is the value of a `pthread` key ([`thread_key`](super::thread_key)); a thread's
//! buffer is `malloc`ed at its first failure and freed by the key's destructor (`free`) when
//! the thread exits. Only libc is called, so a library still depends on libc alone, and the
//! same code runs in the JIT. Nothing here runs on a successful call: like `errno`, the
//! message describes the last call *that failed* on the thread.
//!
//! Where the once-flag and the key live depends on how the module is used ([`Linkage`]): a
//! shared library defines them itself, and exports `einc_last_error` and `einc_error_record`
//! (the function the entry points call to record a failure) with preemptible linkage, so that
//! when several einc libraries share the global symbol namespace (a C program linked with
//! `-lattention -lmatmul`) every one of them records into, and `einc_last_error` reads from,
//! the buffer of the first: the message is always the last failure's. JIT modules import both
//! from this process ([`jit_symbols`]), so that all of them share one key (a process may
//! compile far more modules than there are keys).

use super::libcall::{Libcall, Libcalls};
use super::thread_key::{call, JitKey, SupportBuilder, ThreadKey};
use super::{CodegenError, Listing};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, BlockArg, FuncRef, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage as ClifLinkage, Module};
use std::collections::HashMap;

/// In a template: the first value, as a decimal integer.
pub(crate) const A: &str = "\u{1}";
/// In a template: the second value, as a decimal integer.
pub(crate) const B: &str = "\u{2}";
/// In a template: the first value as a dtype name (`f32`), or `code N`.
pub(crate) const DTYPE_A: &str = "\u{3}";

/// The capacity of a thread's message buffer, NUL included; longer messages are truncated.
pub const MESSAGE_CAPACITY: i64 = 1024;

/// The exported symbol returning the calling thread's last message.
pub const LAST_ERROR_SYMBOL: &str = "einc_last_error";
/// The exported symbol entry points call to record a failure.
pub const RECORD_SYMBOL: &str = "einc_error_record";

/// Names of the once-flag and key of a module: defined by a library, imported by the JIT.
const ONCE_SYMBOL: &str = "einc.error.once";
const KEY_SYMBOL: &str = "einc.error.key";

/// A failed check: its status code, its message template, and the values spliced into it.
pub(crate) struct Failure {
    /// The status the entry point returns.
    pub code: i32,
    /// The message, with [`A`], [`B`] and [`DTYPE_A`] where the values go.
    pub template: String,
    /// The first value (an `i64`), if the template uses it.
    pub a: Option<Value>,
    /// The second value (an `i64`), if the template uses it.
    pub b: Option<Value>,
}

impl Failure {
    /// A failure whose message has no run-time values.
    pub(crate) fn new(code: i32, template: impl Into<String>) -> Failure {
        Failure {
            code,
            template: template.into(),
            a: None,
            b: None,
        }
    }

    /// The same failure with its first value.
    pub(crate) fn with_a(mut self, a: Value) -> Failure {
        self.a = Some(a);
        self
    }

    /// The same failure with its second value.
    pub(crate) fn with_b(mut self, b: Value) -> Failure {
        self.b = Some(b);
        self
    }
}

/// How a module's error functions and state are linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Linkage {
    /// A shared library (or an object file for one): defines its once-flag and key, exports
    /// `einc_last_error` and `einc_error_record`.
    Library,
    /// A JIT module: imports the once-flag and key from the compiler's process; the functions
    /// are local.
    Jit,
}

/// The error functions of one Cranelift module and the message templates defined so far.
pub(crate) struct ErrorSupport {
    /// `i32 record(i32 code, const char *template, i64 a, i64 b)`: formats the message into
    /// the thread's buffer and returns `code`.
    pub record: FuncId,
    /// `const char *last_error(void)`: the thread's last message, or null.
    pub last_error: FuncId,
    templates: HashMap<String, DataId>,
}

/// The once-flag and key of JIT modules (see the module doc).
static JIT_KEY: JitKey = JitKey::new();

/// The symbols a JIT module's error functions import from this process.
pub(crate) fn jit_symbols(builder: &mut cranelift_jit::JITBuilder) {
    JIT_KEY.register(builder, ONCE_SYMBOL, KEY_SYMBOL);
}

impl ErrorSupport {
    /// Declares and defines the error functions (and, for a library, their state) in `module`.
    pub(crate) fn define<M: Module>(
        module: &mut M,
        cold: &dyn TargetIsa,
        ctx: &mut Context,
        fctx: &mut FunctionBuilderContext,
        libs: &mut Libcalls,
        linkage: Linkage,
        mut listing: Listing<'_>,
    ) -> Result<ErrorSupport, CodegenError> {
        let mut support = ErrorSupport {
            record: FuncId::from_u32(0),
            last_error: FuncId::from_u32(0),
            templates: HashMap::new(),
        };
        let dtypes = support.template(module, "f32\0f64\0i32\0i64")?;
        let dtype_code = support.template(module, "code ")?;
        let (record_name, last_name, exported) = match linkage {
            Linkage::Library => (RECORD_SYMBOL, LAST_ERROR_SYMBOL, ClifLinkage::Preemptible),
            Linkage::Jit => ("einc.error.record", "einc.error.last", ClifLinkage::Local),
        };
        let mut b = Builder(SupportBuilder {
            module,
            cold,
            ctx,
            fctx,
            libs,
        });
        let key = ThreadKey::define(
            &mut b.0,
            linkage == Linkage::Jit,
            [ONCE_SYMBOL, KEY_SYMBOL, "einc.error.init"],
            listing.reborrow(),
        )?;
        let buffer = b.define_buffer(key, listing.reborrow())?;
        let append = b.define_append(listing.reborrow())?;
        let append_int = b.define_append_int(append, listing.reborrow())?;
        support.record = b.define_record(
            record_name,
            exported,
            Helpers {
                buffer,
                append,
                append_int,
                dtypes,
                dtype_code,
            },
            listing.reborrow(),
        )?;
        support.last_error = b.define_last_error(last_name, exported, key, listing)?;
        Ok(support)
    }

    /// Emits, where `fb` is, the call that records `failure` through `record` (this
    /// function's import of [`ErrorSupport::record`]); returns its status code (an `i32`).
    pub(crate) fn emit_record<M: Module>(
        &mut self,
        module: &mut M,
        fb: &mut FunctionBuilder,
        record: FuncRef,
        failure: &Failure,
    ) -> Result<Value, CodegenError> {
        let template = self.template(module, &failure.template)?;
        let template = module.declare_data_in_func(template, fb.func);
        let template = fb.ins().symbol_value(types::I64, template);
        let zero = fb.ins().iconst(types::I64, 0);
        let code = fb.ins().iconst(types::I32, i64::from(failure.code));
        let (a, b) = (failure.a.unwrap_or(zero), failure.b.unwrap_or(zero));
        let inst = fb.ins().call(record, &[code, template, a, b]);
        Ok(fb.inst_results(inst)[0])
    }

    /// The data object holding `text` NUL-terminated (one per distinct text).
    pub(crate) fn template<M: Module>(
        &mut self,
        module: &mut M,
        text: &str,
    ) -> Result<DataId, CodegenError> {
        if let Some(&id) = self.templates.get(text) {
            return Ok(id);
        }
        let name = format!("einc.error.message.{}", self.templates.len());
        let err = |e: cranelift_module::ModuleError| CodegenError::Cranelift {
            function: name.clone(),
            message: e.to_string(),
        };
        let id = module
            .declare_data(&name, ClifLinkage::Local, false, false)
            .map_err(err)?;
        let mut desc = DataDescription::new();
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        desc.define(bytes.into_boxed_slice());
        module.define_data(id, &desc).map_err(err)?;
        self.templates.insert(text.to_string(), id);
        Ok(id)
    }
}

/// The module-internal functions `record` calls, and its two constant strings.
struct Helpers {
    buffer: FuncId,
    append: FuncId,
    append_int: FuncId,
    dtypes: DataId,
    dtype_code: DataId,
}

/// Builds the error functions of one module.
struct Builder<'a, M: Module>(SupportBuilder<'a, M>);

const I64: types::Type = types::I64;

impl<M: Module> Builder<'_, M> {
    /// `char *buffer(void)`: the thread's buffer, allocated (empty) on first use; null when
    /// the key or the buffer cannot be had.
    fn define_buffer(
        &mut self,
        keys: ThreadKey,
        listing: Listing<'_>,
    ) -> Result<FuncId, CodegenError> {
        self.0.function(
            "einc.error.buffer",
            ClifLinkage::Local,
            &[],
            &[I64],
            listing,
            |fb, module, libs, _| {
                let key = keys.value(fb, module, libs)?;
                let ret = fb.create_block();
                let ptr = fb.append_block_param(ret, I64);
                let alloc = fb.create_block();
                let current = call(libs, module, fb, Libcall::PthreadGetSpecific, &[key])?;
                fb.ins()
                    .brif(current, ret, &[BlockArg::from(current)], alloc, &[]);
                fb.switch_to_block(alloc);
                let cap = fb.ins().iconst(I64, MESSAGE_CAPACITY);
                let fresh = call(libs, module, fb, Libcall::Malloc, &[cap])?;
                let set = fb.create_block();
                let null = fb.ins().iconst(I64, 0);
                fb.ins().brif(fresh, set, &[], ret, &[BlockArg::from(null)]);
                fb.switch_to_block(set);
                let nul = fb.ins().iconst(types::I8, 0);
                fb.ins().store(MemFlagsData::trusted(), nul, fresh, 0);
                let status = call(libs, module, fb, Libcall::PthreadSetSpecific, &[key, fresh])?;
                let failed = fb.create_block();
                fb.ins()
                    .brif(status, failed, &[], ret, &[BlockArg::from(fresh)]);
                fb.switch_to_block(failed);
                libs.call(module, fb, Libcall::Free, &[fresh])?;
                let null = fb.ins().iconst(I64, 0);
                fb.ins().jump(ret, &[BlockArg::from(null)]);
                fb.switch_to_block(ret);
                fb.ins().return_(&[ptr]);
                Ok(())
            },
        )
    }

    /// `i64 append(char *buf, i64 at, const char *s)`: copies `s` to `buf + at` as far as the
    /// buffer has room (keeping one byte for the NUL); returns the new length.
    fn define_append(&mut self, listing: Listing<'_>) -> Result<FuncId, CodegenError> {
        self.0.function(
            "einc.error.append",
            ClifLinkage::Local,
            &[I64, I64, I64],
            &[I64],
            listing,
            |fb, _, _, args| {
                let (buf, at, s) = (args[0], args[1], args[2]);
                let scan = fb.create_block();
                let p = fb.append_block_param(scan, I64);
                let i = fb.append_block_param(scan, I64);
                let put = fb.create_block();
                let store = fb.create_block();
                let ret = fb.create_block();
                let len = fb.append_block_param(ret, I64);
                fb.ins()
                    .jump(scan, &[BlockArg::from(s), BlockArg::from(at)]);
                fb.switch_to_block(scan);
                let c = fb.ins().uload8(types::I32, MemFlagsData::trusted(), p, 0);
                fb.ins().brif(c, put, &[], ret, &[BlockArg::from(i)]);
                fb.switch_to_block(put);
                let room = fb
                    .ins()
                    .icmp_imm_s(IntCC::SignedLessThan, i, MESSAGE_CAPACITY - 1);
                fb.ins().brif(room, store, &[], ret, &[BlockArg::from(i)]);
                fb.switch_to_block(store);
                let addr = fb.ins().iadd(buf, i);
                fb.ins().istore8(MemFlagsData::trusted(), c, addr, 0);
                let p1 = fb.ins().iadd_imm_s(p, 1);
                let i1 = fb.ins().iadd_imm_s(i, 1);
                fb.ins()
                    .jump(scan, &[BlockArg::from(p1), BlockArg::from(i1)]);
                fb.switch_to_block(ret);
                fb.ins().return_(&[len]);
                Ok(())
            },
        )
    }

    /// `i64 append_int(char *buf, i64 at, i64 v)`: appends `v` in decimal.
    fn define_append_int(
        &mut self,
        append: FuncId,
        listing: Listing<'_>,
    ) -> Result<FuncId, CodegenError> {
        self.0.function(
            "einc.error.append_int",
            ClifLinkage::Local,
            &[I64, I64, I64],
            &[I64],
            listing,
            |fb, module, _, args| {
                let (buf, at, v) = (args[0], args[1], args[2]);
                // 20 digits, a sign and the NUL fit in 24 bytes.
                let slot = fb.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    24,
                    0,
                ));
                let base = fb.ins().stack_addr(I64, slot, 0);
                let nul = fb.ins().iconst(types::I8, 0);
                fb.ins().store(MemFlagsData::trusted(), nul, base, 23);
                let negative = fb.ins().icmp_imm_s(IntCC::SignedLessThan, v, 0);
                let zero = fb.ins().iconst(I64, 0);
                let flipped = fb.ins().isub(zero, v);
                // As an unsigned number, `0 - i64::MIN` is its magnitude.
                let magnitude = fb.ins().select(negative, flipped, v);
                let digit = fb.create_block();
                let m = fb.append_block_param(digit, I64);
                let pos = fb.append_block_param(digit, I64);
                let sign = fb.create_block();
                let sign_pos = fb.append_block_param(sign, I64);
                let emit = fb.create_block();
                let start = fb.append_block_param(emit, I64);
                let last = fb.ins().iconst(I64, 23);
                fb.ins()
                    .jump(digit, &[BlockArg::from(magnitude), BlockArg::from(last)]);
                fb.switch_to_block(digit);
                let pos1 = fb.ins().iadd_imm_s(pos, -1);
                let d = fb.ins().urem_imm_u(m, 10);
                let ch = fb.ins().iadd_imm_s(d, i64::from(b'0'));
                let addr = fb.ins().iadd(base, pos1);
                fb.ins().istore8(MemFlagsData::trusted(), ch, addr, 0);
                let q = fb.ins().udiv_imm_u(m, 10);
                fb.ins().brif(
                    q,
                    digit,
                    &[BlockArg::from(q), BlockArg::from(pos1)],
                    sign,
                    &[BlockArg::from(pos1)],
                );
                fb.switch_to_block(sign);
                let minus = fb.create_block();
                fb.ins()
                    .brif(negative, minus, &[], emit, &[BlockArg::from(sign_pos)]);
                fb.switch_to_block(minus);
                let p = fb.ins().iadd_imm_s(sign_pos, -1);
                let addr = fb.ins().iadd(base, p);
                let dash = fb.ins().iconst(types::I8, i64::from(b'-'));
                fb.ins().store(MemFlagsData::trusted(), dash, addr, 0);
                fb.ins().jump(emit, &[BlockArg::from(p)]);
                fb.switch_to_block(emit);
                let s = fb.ins().iadd(base, start);
                let append = module.declare_func_in_func(append, fb.func);
                let inst = fb.ins().call(append, &[buf, at, s]);
                let len = fb.inst_results(inst)[0];
                fb.ins().return_(&[len]);
                Ok(())
            },
        )
    }

    /// `i32 record(i32 code, const char *template, i64 a, i64 b)` (see the module doc).
    fn define_record(
        &mut self,
        name: &str,
        linkage: ClifLinkage,
        h: Helpers,
        listing: Listing<'_>,
    ) -> Result<FuncId, CodegenError> {
        self.0.function(
            name,
            linkage,
            &[types::I32, I64, I64, I64],
            &[types::I32],
            listing,
            |fb, module, _, args| {
                let (code, template, a, b) = (args[0], args[1], args[2], args[3]);
                let buffer = module.declare_func_in_func(h.buffer, fb.func);
                let append = module.declare_func_in_func(h.append, fb.func);
                let append_int = module.declare_func_in_func(h.append_int, fb.func);
                let dtypes = module.declare_data_in_func(h.dtypes, fb.func);
                let dtype_code = module.declare_data_in_func(h.dtype_code, fb.func);
                let call_fn = |fb: &mut FunctionBuilder, f: FuncRef, args: &[Value]| {
                    let inst = fb.ins().call(f, args);
                    fb.inst_results(inst).first().copied()
                };
                let out = fb.create_block();
                let start = fb.create_block();
                let buf = call_fn(fb, buffer, &[]).unwrap_or(a);
                fb.ins().brif(buf, start, &[], out, &[]);

                let scan = fb.create_block();
                let t = fb.append_block_param(scan, I64);
                let i = fb.append_block_param(scan, I64);
                let next = fb.create_block();
                let i_next = fb.append_block_param(next, I64);
                let done = fb.create_block();
                let i_done = fb.append_block_param(done, I64);
                fb.switch_to_block(start);
                let zero = fb.ins().iconst(I64, 0);
                fb.ins()
                    .jump(scan, &[BlockArg::from(template), BlockArg::from(zero)]);

                fb.switch_to_block(scan);
                let c = fb.ins().uload8(types::I32, MemFlagsData::trusted(), t, 0);
                let dispatch = fb.create_block();
                fb.ins().brif(c, dispatch, &[], done, &[BlockArg::from(i)]);

                // Placeholders, then ordinary bytes.
                fb.switch_to_block(dispatch);
                let mut blocks = Vec::new();
                for marker in 1..=3 {
                    let is = fb.ins().icmp_imm_s(IntCC::Equal, c, marker);
                    let then = fb.create_block();
                    let otherwise = fb.create_block();
                    fb.ins().brif(is, then, &[], otherwise, &[]);
                    blocks.push(then);
                    fb.switch_to_block(otherwise);
                }
                let room = fb
                    .ins()
                    .icmp_imm_s(IntCC::SignedLessThan, i, MESSAGE_CAPACITY - 1);
                let store = fb.create_block();
                fb.ins().brif(room, store, &[], next, &[BlockArg::from(i)]);
                fb.switch_to_block(store);
                let addr = fb.ins().iadd(buf, i);
                fb.ins().istore8(MemFlagsData::trusted(), c, addr, 0);
                let i1 = fb.ins().iadd_imm_s(i, 1);
                fb.ins().jump(next, &[BlockArg::from(i1)]);

                for (block, value) in blocks[..2].iter().zip([a, b]) {
                    fb.switch_to_block(*block);
                    let len = call_fn(fb, append_int, &[buf, i, value]).unwrap_or(i);
                    fb.ins().jump(next, &[BlockArg::from(len)]);
                }
                // A dtype code 1..=4 names an entry of the table "f32\0f64\0i32\0i64".
                fb.switch_to_block(blocks[2]);
                let index = fb.ins().iadd_imm_s(a, -1);
                let known = fb.ins().icmp_imm_u(IntCC::UnsignedLessThan, index, 4);
                let named = fb.create_block();
                let unnamed = fb.create_block();
                fb.ins().brif(known, named, &[], unnamed, &[]);
                fb.switch_to_block(named);
                let table = fb.ins().symbol_value(I64, dtypes);
                let offset = fb.ins().imul_imm_s(index, 4);
                let s = fb.ins().iadd(table, offset);
                let len = call_fn(fb, append, &[buf, i, s]).unwrap_or(i);
                fb.ins().jump(next, &[BlockArg::from(len)]);
                fb.switch_to_block(unnamed);
                let prefix = fb.ins().symbol_value(I64, dtype_code);
                let len = call_fn(fb, append, &[buf, i, prefix]).unwrap_or(i);
                let len = call_fn(fb, append_int, &[buf, len, a]).unwrap_or(len);
                fb.ins().jump(next, &[BlockArg::from(len)]);

                fb.switch_to_block(next);
                let t1 = fb.ins().iadd_imm_s(t, 1);
                fb.ins()
                    .jump(scan, &[BlockArg::from(t1), BlockArg::from(i_next)]);

                fb.switch_to_block(done);
                let end = fb.ins().iadd(buf, i_done);
                let nul = fb.ins().iconst(types::I8, 0);
                fb.ins().store(MemFlagsData::trusted(), nul, end, 0);
                fb.ins().jump(out, &[]);
                fb.switch_to_block(out);
                fb.ins().return_(&[code]);
                Ok(())
            },
        )
    }

    /// `const char *last_error(void)`: the thread's message, or null when it has none.
    fn define_last_error(
        &mut self,
        name: &str,
        linkage: ClifLinkage,
        keys: ThreadKey,
        listing: Listing<'_>,
    ) -> Result<FuncId, CodegenError> {
        self.0.function(
            name,
            linkage,
            &[],
            &[I64],
            listing,
            |fb, module, libs, _| {
                let key = keys.value(fb, module, libs)?;
                let p = call(libs, module, fb, Libcall::PthreadGetSpecific, &[key])?;
                let check = fb.create_block();
                let ret = fb.create_block();
                let result = fb.append_block_param(ret, I64);
                let null = fb.ins().iconst(I64, 0);
                fb.ins().brif(p, check, &[], ret, &[BlockArg::from(null)]);
                fb.switch_to_block(check);
                let first = fb.ins().uload8(types::I32, MemFlagsData::trusted(), p, 0);
                let null = fb.ins().iconst(I64, 0);
                let r = fb.ins().select(first, p, null);
                fb.ins().jump(ret, &[BlockArg::from(r)]);
                fb.switch_to_block(ret);
                fb.ins().return_(&[result]);
                Ok(())
            },
        )
    }
}
