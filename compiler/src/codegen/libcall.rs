//! Calls from generated code into the C library: `aligned_alloc`/`malloc`/`free` for the scratch
//! block of temporaries and the error messages, the libm
//! functions that have no inline implementation (`pow`), and the `pthread` key functions that
//! hold each thread's error message (`last_error`). Each function is declared once per
//! Cranelift module and imported once per CLIF function.

use super::CodegenError;
use cranelift_codegen::ir::{self, types, AbiParam, FuncRef, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::HashMap;

/// A C library function generated code may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Libcall {
    /// `void *malloc(size_t)`
    Malloc,
    /// `void free(void *)`
    Free,
    /// `void *aligned_alloc(size_t alignment, size_t size)` (C11)
    AlignedAlloc,
    /// A libm function on `f32` (`powf`, ...) or `f64` (`pow`, ...).
    Math(MathFn, FloatWidth),
    /// `int pthread_once(pthread_once_t *, void (*)(void))`
    PthreadOnce,
    /// `int pthread_key_create(pthread_key_t *, void (*)(void *))`
    PthreadKeyCreate,
    /// `void *pthread_getspecific(pthread_key_t)`
    PthreadGetSpecific,
    /// `int pthread_setspecific(pthread_key_t, const void *)`
    PthreadSetSpecific,
}

/// libm functions generated code calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MathFn {
    /// `pow(x, y)`
    Pow,
}

/// Which floating-point type a libm function works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FloatWidth {
    /// `f32`: the `...f` functions.
    F32,
    /// `f64`
    F64,
}

impl Libcall {
    fn name(self) -> &'static str {
        match self {
            Libcall::Malloc => "malloc",
            Libcall::Free => "free",
            Libcall::AlignedAlloc => "aligned_alloc",
            Libcall::Math(f, w) => match (f, w) {
                (MathFn::Pow, FloatWidth::F32) => "powf",
                (MathFn::Pow, FloatWidth::F64) => "pow",
            },
            Libcall::PthreadOnce => "pthread_once",
            Libcall::PthreadKeyCreate => "pthread_key_create",
            Libcall::PthreadGetSpecific => "pthread_getspecific",
            Libcall::PthreadSetSpecific => "pthread_setspecific",
        }
    }

    /// Parameter and result types.
    fn types(self) -> (&'static [ir::Type], Option<ir::Type>) {
        match self {
            Libcall::Malloc => (&[types::I64], Some(types::I64)),
            Libcall::Free => (&[types::I64], None),
            Libcall::AlignedAlloc => (&[types::I64, types::I64], Some(types::I64)),
            Libcall::Math(MathFn::Pow, FloatWidth::F32) => {
                (&[types::F32, types::F32], Some(types::F32))
            }
            Libcall::Math(MathFn::Pow, FloatWidth::F64) => {
                (&[types::F64, types::F64], Some(types::F64))
            }
            // pthread_once_t and pthread_key_t are 32-bit on the Linux targets einc supports.
            Libcall::PthreadOnce | Libcall::PthreadKeyCreate => {
                (&[types::I64, types::I64], Some(types::I32))
            }
            Libcall::PthreadGetSpecific => (&[types::I32], Some(types::I64)),
            Libcall::PthreadSetSpecific => (&[types::I32, types::I64], Some(types::I32)),
        }
    }
}

/// Declarations of C library functions in one Cranelift module, and their imports into the
/// function being built.
#[derive(Default)]
pub(crate) struct Libcalls {
    ids: HashMap<Libcall, FuncId>,
    refs: HashMap<Libcall, FuncRef>,
}

impl Libcalls {
    /// Forgets the imports of the previous function; call before building a new one.
    pub(crate) fn begin_function(&mut self) {
        self.refs.clear();
    }

    /// Emits a call to `f` and returns its result (if it has one).
    pub(crate) fn call<M: Module>(
        &mut self,
        module: &mut M,
        fb: &mut FunctionBuilder,
        f: Libcall,
        args: &[Value],
    ) -> Result<Option<Value>, CodegenError> {
        let fref = self.func_ref(module, fb, f)?;
        let inst = fb.ins().call(fref, args);
        Ok(fb.inst_results(inst).first().copied())
    }

    /// `f` imported into the function being built (to call it or take its address).
    pub(crate) fn func_ref<M: Module>(
        &mut self,
        module: &mut M,
        fb: &mut FunctionBuilder,
        f: Libcall,
    ) -> Result<FuncRef, CodegenError> {
        Ok(match self.refs.get(&f) {
            Some(r) => *r,
            None => {
                let id = match self.ids.get(&f) {
                    Some(id) => *id,
                    None => {
                        let (params, ret) = f.types();
                        let mut sig = module.make_signature();
                        sig.params.extend(params.iter().map(|t| AbiParam::new(*t)));
                        sig.returns.extend(ret.map(AbiParam::new));
                        let id = super::declare(module, f.name(), Linkage::Import, sig)?;
                        self.ids.insert(f, id);
                        id
                    }
                };
                let r = module.declare_func_in_func(id, fb.func);
                self.refs.insert(f, r);
                r
            }
        })
    }
}
