//! In-memory compilation: a loop-IR module becomes a [`JitProgram`] whose kernels are called
//! through their C ABI entry points.

use super::{
    define_module, isa, last_error, scratch, CodegenError, KernelSignature, Listing, Target,
};
use crate::ir::loops;
use cranelift_jit::{JITBuilder, JITModule};
use einc_runtime::abi::KernelFn;
use std::sync::{Arc, Mutex};

/// Owns the executable memory of compiled kernels; frees it when the last handle goes.
struct Code {
    module: Mutex<Option<JITModule>>,
}

impl Drop for Code {
    fn drop(&mut self) {
        let module = match self.module.get_mut() {
            Ok(m) => m.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(module) = module {
            // SAFETY: this is the last reference to the code (every `JitKernel` holds an `Arc`
            // to it), so no function pointer into it can be called any more.
            unsafe { module.free_memory() };
        }
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

/// Compiles every kernel of `m` for the host.
pub fn jit_compile(m: &loops::Module) -> Result<JitProgram, CodegenError> {
    let isa = isa::build_isa(&Target::Host, false)?;
    let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
    last_error::jit_symbols(&mut builder);
    scratch::jit_symbols(&mut builder);
    let mut module = JITModule::new(builder);
    let defined = define_module(&mut module, m, last_error::Linkage::Jit, Listing::None)?;
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
    Ok(JitProgram {
        code: Arc::new(Code {
            module: Mutex::new(Some(module)),
        }),
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
