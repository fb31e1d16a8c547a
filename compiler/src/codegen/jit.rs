//! In-memory compilation: a loop-IR module becomes a [`JitProgram`] whose kernels are called
//! through their C ABI entry points.
//!
//! **Lazy general bodies.** A kernel with variants runs its general (strided) body only when
//! the arguments meet no variant's stride facts: a transposed or sliced view, a broadcast
//! input. That body is as long as the variant it generalises and costs as much to compile
//! (for `examples/attention.ein`, about 40% of the JIT's compile time), so the JIT builds and
//! verifies it with everything else but leaves Cranelift's compilation to its first call
//! (docs/performance.md, "Compile time"): the entry point loads the body's address from a
//! word of [`Code`] and calls it, or, while the word is 0, calls [`compile_and_call`], which
//! compiles the body under the module's lock (so two threads compile it once), defines it in
//! the same module, publishes its address and runs it. Code made executable stays untouched
//! (Cranelift's JIT maps new pages for functions defined after a finalisation), so other
//! threads keep running the kernel meanwhile. If that compilation fails (a code generation
//! bug, or no memory for code) the call returns `COMPILE_FAILED` with a message for
//! `einc_last_error`, and writes nothing. Object files compile every body ahead of time.

use super::{
    body, define_module, isa, last_error, scratch, CodegenError, DeferredBody, KernelSignature,
    LazyGeneral, Listing, Target, Threads, UkernelIsa, UkernelPlan,
};
use crate::ir::loops;
use cranelift_codegen::Context;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::Module;
use einc_runtime::abi::{status, KernelFn};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Owns the executable memory of compiled kernels (frees it when the last handle goes), and
/// compiles their deferred general bodies.
struct Code {
    /// The module, once compiled, with the bodies not compiled yet.
    jit: Mutex<Option<Jit>>,
    /// The code address of each deferred body once compiled, else 0 (the words the entry
    /// points load: [`LazyGeneral::slots`]).
    general: Box<[AtomicUsize]>,
}

/// A JIT module and what compiling its deferred bodies needs.
struct Jit {
    module: JITModule,
    /// Deferred body `n`, until it is compiled.
    deferred: Vec<Option<DeferredBody>>,
    /// The module's `einc_error_record`, to report a failed compilation.
    record: RecordFn,
}

/// `int32 record(int32 code, const char *template, int64 a, int64 b)` of a compiled module.
type RecordFn = unsafe extern "C" fn(i32, *const std::ffi::c_char, i64, i64) -> i32;

/// A body function: `int32 body(const int64 *frame)`.
type BodyFn = unsafe extern "C" fn(*const i64) -> i32;

/// The symbol under which JIT modules import [`compile_and_call`].
const COMPILE_AND_CALL_SYMBOL: &str = "einc.jit.compile_and_call";

impl Drop for Code {
    fn drop(&mut self) {
        let jit = match self.jit.get_mut() {
            Ok(m) => m.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(jit) = jit {
            // SAFETY: this is the last reference to the code (every `JitKernel` holds an `Arc`
            // to it), so no function pointer into it can be called any more.
            unsafe { jit.module.free_memory() };
        }
    }
}

impl Code {
    /// Deferred body `n`, compiled on the first call (by whichever thread gets the lock
    /// first); the error says why it could not be.
    fn general_body(&self, n: usize) -> Result<BodyFn, String> {
        let mut jit = self.jit.lock().unwrap_or_else(|p| p.into_inner());
        let slot = self
            .general
            .get(n)
            .ok_or_else(|| format!("no deferred body {n}"))?;
        let compiled = slot.load(Ordering::Acquire);
        if compiled == 0 {
            let jit = jit.as_mut().ok_or("the module is not compiled")?;
            let body = jit
                .deferred
                .get_mut(n)
                .and_then(Option::take)
                .ok_or_else(|| format!("deferred body {n} failed to compile before"))?;
            for task in body.tasks {
                let mut ctx = Context::for_function(task.func);
                jit.module
                    .define_function(task.id, &mut ctx)
                    .map_err(|e| format!("compiling `{}`: {e:?}", task.name))?;
            }
            let mut ctx = Context::for_function(body.func);
            jit.module
                .define_function(body.id, &mut ctx)
                .map_err(|e| format!("compiling `{}`: {e:?}", body.name))?;
            jit.module
                .finalize_definitions()
                .map_err(|e| format!("linking `{}`: {e}", body.name))?;
            let address = jit.module.get_finalized_function(body.id);
            slot.store(address as usize, Ordering::Release);
            // SAFETY: `address` is the finalized code of a body function, whose CLIF
            // signature `(i64) -> i32` in the host's default calling convention is `BodyFn`.
            return Ok(unsafe { std::mem::transmute::<*const u8, BodyFn>(address) });
        }
        // SAFETY: as above: a non-zero slot holds a finalized body's address.
        Ok(unsafe { std::mem::transmute::<usize, BodyFn>(compiled) })
    }

    /// Records `message` for `einc_last_error` and returns `code`.
    fn fail(&self, code: i32, message: &str) -> i32 {
        let record = self
            .jit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|jit| jit.record);
        // The template's bytes 1-3 are placeholders (`last_error`): a message has none.
        let text: Vec<u8> = message.bytes().filter(|b| *b > 3).collect();
        match (record, std::ffi::CString::new(text)) {
            // SAFETY: `record` is the module's error recorder and `template` a NUL-terminated
            // string without placeholders, alive for the call.
            (Some(record), Ok(template)) => unsafe { record(code, template.as_ptr(), 0, 0) },
            _ => code,
        }
    }
}

/// Compiles deferred general body `n` of the module whose [`Code`] is `code` if no call has
/// yet, then runs it on `frame`: what an entry point calls while the body's slot is 0.
///
/// # Safety
/// `code` must point at a live [`Code`] (the entry point that calls this keeps its module
/// alive, so the `Code` that owns it is), and `frame` at the frame of one of `n`'s kernel's
/// calls, validated and filled by its entry point.
unsafe extern "C" fn compile_and_call(code: *const Code, n: i64, frame: *const i64) -> i32 {
    // SAFETY: see the contract above.
    let code = unsafe { &*code };
    let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        code.general_body(usize::try_from(n).unwrap_or(usize::MAX))
    }))
    .unwrap_or_else(|_| Err("the compiler panicked".into()));
    match compiled {
        // SAFETY: `body` is this kernel's general body and `frame` its validated frame.
        Ok(body) => unsafe { body(frame) },
        Err(e) => code.fail(
            status::COMPILE_FAILED,
            &format!("compiling the general (strided) body on its first call failed: {e}"),
        ),
    }
}

/// `const char *last_error(void)` of a compiled module.
type LastErrorFn = unsafe extern "C" fn() -> *const std::ffi::c_char;

/// A compiled module: every kernel's entry point, in executable memory.
pub struct JitProgram {
    code: Arc<Code>,
    kernels: Vec<(KernelFn, Arc<KernelSignature>)>,
    last_error: LastErrorFn,
}

/// A handle to one compiled kernel; keeps its program's code alive.
#[derive(Clone)]
pub struct JitKernel {
    _code: Arc<Code>,
    entry: KernelFn,
    signature: Arc<KernelSignature>,
    last_error: LastErrorFn,
}

impl std::fmt::Debug for JitProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kernels()).finish()
    }
}

impl std::fmt::Debug for JitKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitKernel")
            .field("signature", &self.signature)
            .finish()
    }
}

/// Compiles every kernel of `m` for the host, with the widest micro-kernels it runs
/// ([`super::wide::resolve`]); the general body of a kernel with variants is compiled on its
/// first call (see the module doc).
pub fn jit_compile(m: &loops::Module) -> Result<JitProgram, CodegenError> {
    jit_compile_with(m, super::wide::resolve(&Target::Host, None)?)
}

/// [`jit_compile`] with micro-kernels `wide`, which the host must be able to run.
pub fn jit_compile_with(m: &loops::Module, wide: UkernelIsa) -> Result<JitProgram, CodegenError> {
    super::wide::resolve(&Target::Host, Some(wide))?;
    let isa = isa::build_isa(&Target::Host, false)?;
    let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
    last_error::jit_symbols(&mut builder);
    scratch::jit_symbols(&mut builder);
    builder.symbol(COMPILE_AND_CALL_SYMBOL, compile_and_call as *const u8);
    builder.symbol(
        body::PARALLEL_FOR_SYMBOL,
        einc_runtime::parallel::parallel_for as *const u8,
    );
    let mut module = JITModule::new(builder);
    let lazy_bodies = m
        .kernels()
        .filter(|f| m.variants_of(&f.name).next().is_some())
        .count();
    let code = Arc::new(Code {
        jit: Mutex::new(None),
        general: (0..lazy_bodies).map(|_| AtomicUsize::new(0)).collect(),
    });
    let lazy = LazyGeneral {
        slots: code.general.iter().map(|s| s.as_ptr() as i64).collect(),
        state: Arc::as_ptr(&code) as i64,
        symbol: COMPILE_AND_CALL_SYMBOL,
    };
    let defined = define_module(
        &mut module,
        m,
        last_error::Linkage::Jit,
        Threads::Pool,
        Listing::None,
        Some(&lazy),
        UkernelPlan::fixed(wide),
    )?;
    module
        .finalize_definitions()
        .map_err(|e| CodegenError::Cranelift {
            function: "(linking)".into(),
            message: e.to_string(),
        })?;
    let ptr = module.get_finalized_function(defined.last_error);
    // SAFETY: `ptr` is the finalized code of a function whose CLIF signature is `() -> i64` (a
    // pointer) in the host's default calling convention, which is `LastErrorFn`.
    let last_error = unsafe { std::mem::transmute::<*const u8, LastErrorFn>(ptr) };
    let ptr = module.get_finalized_function(defined.record);
    // SAFETY: `ptr` is the finalized code of `einc_error_record`, whose CLIF signature is
    // `(i32, i64, i64, i64) -> i32` in the host's default calling convention: `RecordFn`.
    let record = unsafe { std::mem::transmute::<*const u8, RecordFn>(ptr) };
    let kernels = defined
        .kernels
        .into_iter()
        .map(|k| {
            let ptr = module.get_finalized_function(k.entry);
            // SAFETY: `ptr` is the finalized code of a function whose CLIF signature is
            // `(i64, i64) -> i32` in the host's default calling convention, which is `KernelFn`.
            let entry = unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) };
            (entry, Arc::new(k.signature))
        })
        .collect();
    *code.jit.lock().unwrap_or_else(|p| p.into_inner()) = Some(Jit {
        module,
        deferred: defined.deferred.into_iter().map(Some).collect(),
        record,
    });
    Ok(JitProgram {
        code,
        kernels,
        last_error,
    })
}

impl JitProgram {
    /// The kernel called `name`, if the module has one.
    pub fn kernel(&self, name: &str) -> Option<JitKernel> {
        self.kernels
            .iter()
            .find(|(_, s)| s.name == name)
            .map(|(entry, signature)| JitKernel {
                _code: Arc::clone(&self.code),
                entry: *entry,
                signature: Arc::clone(signature),
                last_error: self.last_error,
            })
    }

    /// The kernels' names, in declaration order.
    pub fn kernels(&self) -> impl Iterator<Item = &str> {
        self.kernels.iter().map(|(_, s)| s.name.as_str())
    }
}

#[cfg(test)]
impl JitProgram {
    /// Makes every deferred body not compiled yet fail to compile on its first call (tests
    /// the failure's report: it cannot be provoked from valid loop IR).
    pub(crate) fn fail_deferred_bodies(&self) {
        if let Some(jit) = self
            .code
            .jit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            jit.deferred.iter_mut().for_each(|d| *d = None);
        }
    }

    /// How many deferred bodies there are, and how many of them are compiled.
    pub(crate) fn deferred_bodies(&self) -> (usize, usize) {
        let compiled = self.code.general.iter();
        let compiled = compiled.filter(|s| s.load(Ordering::Acquire) != 0);
        (self.code.general.len(), compiled.count())
    }
}

impl JitKernel {
    /// The C ABI entry point (`einc_K`). Calling it is safe as long as the descriptors it is
    /// given describe memory the caller owns; it validates everything else.
    pub fn entry(&self) -> KernelFn {
        self.entry
    }

    /// What the kernel expects.
    pub fn signature(&self) -> &KernelSignature {
        &self.signature
    }

    /// The message of the last failed call of a kernel on this thread (`einc_last_error()`,
    /// docs/abi.md), or `None` when none has failed. Every JIT-compiled kernel of the process
    /// shares it.
    pub fn last_error(&self) -> Option<String> {
        // SAFETY: the function takes no arguments and returns null or a pointer to the calling
        // thread's NUL-terminated message buffer, which lives until the thread exits.
        let p = unsafe { (self.last_error)() };
        // SAFETY: non-null `p` points at a NUL-terminated string (see above).
        (!p.is_null()).then(|| {
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into()
        })
    }
}
