//! Code generation: loop IR → Cranelift IR (CLIF) → machine code.
//!
//! Every kernel becomes these CLIF functions:
//! - `einc_K`, the exported C ABI entry point (see `runtime/src/abi.rs`), built by [`entry`]: it
//!   validates the arguments before touching any memory, fills the [`Frame`], and calls the
//!   body of the first variant whose stride facts the arguments meet, else the general body;
//! - `einc_K.body` (and `einc_K.variantN` for each variant), built by [`body`]: takes the
//!   [`scratch`] block for the temporaries, runs the loop nests reading every data pointer,
//!   stride and dim from the frame, hands the block back and returns a status. Keeping validation and loops in separate
//!   functions keeps each one moderate in size, which matters because Cranelift's compile time
//!   grows faster than linearly with function size;
//! - one function per micro-kernel the module's `ukernel` instructions call, built by
//!   [`ukernel`] with the calling convention of `docs/ukernel.md`.
//!
//! [`jit`] compiles a module in memory ([`jit_compile`]), leaving the general body of a kernel
//! with variants to its first call (most calls meet a variant's facts); [`object`] compiles it ahead of time
//! into a relocatable object file for a shared library, whose C header [`header`] writes;
//! [`clif_text`] prints the CLIF and [`compile_for_target`] compiles for another target
//! (x86-64 or aarch64, chosen in [`isa`]) without running anything. [`math`] emits transcendental functions (exp, log, tanh, sigmoid)
//! as inline CLIF so that hot loops never call libm.

pub mod body;
pub mod entry;
pub mod header;
pub mod isa;
pub mod jit;
pub mod last_error;
mod libcall;
pub mod math;
pub mod object;
pub mod scratch;
mod thread_key;
pub mod ukernel;
pub mod wide;
mod workers;

#[cfg(test)]
mod tests;

use crate::ir::loops::{self, BufferKind, DimDef, Extent};
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{types, Function, Type as ClifType};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_module::{FuncId, Linkage, Module, ModuleReloc};
use einc_runtime::DType;
use std::fmt;

pub use isa::Target;
pub use isa::TargetCpu;
pub use jit::{jit_compile, jit_compile_with, JitKernel, JitProgram};
pub use wide::{UkernelIsa, UkernelPlan};

/// Why a module could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodegenError {
    /// The target is not one einc generates code for, or Cranelift cannot build it here.
    Target(String),
    /// The loop IR uses something code generation does not support (or is malformed).
    Unsupported {
        /// The kernel concerned.
        kernel: String,
        /// What is wrong.
        message: String,
    },
    /// Cranelift rejected a generated function (a code generation bug) or failed to emit it.
    Cranelift {
        /// The CLIF function concerned.
        function: String,
        /// Cranelift's message.
        message: String,
    },
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodegenError::Target(m) => write!(f, "code generation target: {m}"),
            CodegenError::Unsupported { kernel, message } => {
                write!(f, "cannot compile kernel `{kernel}`: {message}")
            }
            CodegenError::Cranelift { function, message } => {
                write!(f, "Cranelift failed on function `{function}`: {message}")
            }
        }
    }
}

impl std::error::Error for CodegenError {}

/// One argument of a kernel, as the caller must pass it.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgSignature {
    /// The buffer's name in the loop IR (the tensor's name in the source).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Extents as declared: fixed, or a dim of [`KernelSignature::dims`].
    pub shape: Vec<Extent>,
}

/// What a kernel's entry point expects: `ninputs` inputs followed by the outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSignature {
    /// The kernel's name (the entry point is `einc_<name>`).
    pub name: String,
    /// Every argument, inputs first.
    pub args: Vec<ArgSignature>,
    /// How many of `args` are inputs.
    pub ninputs: usize,
    /// The module's dims, to resolve [`Extent::Dim`] (a dim with a value is fixed).
    pub dims: Vec<DimDef>,
}

/// An extent resolved against the module's dims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ext {
    /// Known at compile time.
    Fixed(i64),
    /// Symbolic dim number `n` of [`Frame::dims`], known at run time.
    Sym(usize),
}

/// The context array shared by a kernel's entry point and its bodies (the general function's
/// and every variant's, which have the same parameters): for each parameter in call order its
/// data pointer, then for each parameter one stride per axis, then every symbolic dim. The
/// entry point fills it after validation; the bodies only read it, each taking the strides its
/// own stride facts leave to run time.
pub(crate) struct Frame {
    /// Slot of parameter `n`'s data pointer.
    pub data_slot: Vec<usize>,
    /// Slot of the stride of axis 0 of parameter `n` (axis `k` is `stride_slot[n] + k`).
    pub stride_slot: Vec<usize>,
    /// Resolved shape of each parameter.
    pub param_shapes: Vec<Vec<Ext>>,
    /// Names of the symbolic dims, in module order; dim `n` lives in slot `dim_base + n`.
    pub dims: Vec<String>,
    /// Slot of symbolic dim 0.
    pub dim_base: usize,
    /// Total number of slots.
    pub slots: usize,
}

impl Frame {
    /// Lays out the context of a kernel from its general function.
    pub(crate) fn new(module: &loops::Module, f: &loops::Function) -> Result<Frame, CodegenError> {
        let dims: Vec<String> = module
            .dims
            .iter()
            .filter(|d| d.value.is_none())
            .map(|d| d.name.clone())
            .collect();
        let mut slots = f.params.len();
        let mut stride_slot = Vec::with_capacity(f.params.len());
        let mut param_shapes = Vec::with_capacity(f.params.len());
        for &p in &f.params {
            let b = f
                .buffer(p)
                .ok_or_else(|| unsupported(f, format!("parameter {} is not a buffer", p.0)))?;
            stride_slot.push(slots);
            slots += b.shape.len();
            param_shapes.push(resolve_shape(module, &dims, f, b)?);
        }
        let dim_base = slots;
        slots += dims.len();
        Ok(Frame {
            data_slot: (0..f.params.len()).collect(),
            stride_slot,
            param_shapes,
            dims,
            dim_base,
            slots,
        })
    }

    /// Resolves a dim name used by `Op::Dim`.
    pub(crate) fn dim(&self, module: &loops::Module, name: &str) -> Option<Ext> {
        resolve_extent(module, &self.dims, &Extent::Dim(name.to_string()))
    }

    /// Resolves the extents of every buffer of `f` (a body of this frame's kernel).
    pub(crate) fn shapes(
        &self,
        module: &loops::Module,
        f: &loops::Function,
    ) -> Result<Vec<Vec<Ext>>, CodegenError> {
        f.buffers
            .iter()
            .map(|b| resolve_shape(module, &self.dims, f, b))
            .collect()
    }

    /// Byte offset of a slot in the context array.
    pub(crate) fn offset(slot: usize) -> Result<i32, CodegenError> {
        i32::try_from(slot * 8).map_err(|_| CodegenError::Target("kernel context too large".into()))
    }
}

/// Resolves the extents of buffer `b` of `f`.
fn resolve_shape(
    module: &loops::Module,
    dims: &[String],
    f: &loops::Function,
    b: &loops::BufferDef,
) -> Result<Vec<Ext>, CodegenError> {
    b.shape
        .iter()
        .map(|e| resolve_extent(module, dims, e))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            unsupported(
                f,
                format!("buffer `{}` has an extent naming an unknown dim", b.name),
            )
        })
}

/// Resolves an extent: fixed literals and fixed dims give `Fixed`, symbolic dims `Sym`.
fn resolve_extent(module: &loops::Module, sym: &[String], e: &Extent) -> Option<Ext> {
    match e {
        Extent::Fixed(n) => i64::try_from(*n).ok().map(Ext::Fixed),
        Extent::Dim(name) => {
            let def = module.dims.iter().find(|d| &d.name == name)?;
            match def.value {
                Some(v) => i64::try_from(v).ok().map(Ext::Fixed),
                None => sym.iter().position(|s| s == name).map(Ext::Sym),
            }
        }
    }
}

/// The declared type of a buffer, as the source writes it: `f32[T, D]` (for messages).
pub(crate) fn buffer_type(b: &loops::BufferDef) -> String {
    crate::ir::tensor::printer::print_type(&crate::ir::tensor::TensorType {
        dtype: b.dtype,
        shape: b.shape.clone(),
    })
}

/// An `Unsupported` error for kernel `f`.
pub(crate) fn unsupported(f: &loops::Function, message: impl Into<String>) -> CodegenError {
    CodegenError::Unsupported {
        kernel: f.name.clone(),
        message: message.into(),
    }
}

/// The CLIF type of one element.
pub(crate) fn clif_scalar(d: DType) -> ClifType {
    match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I32 => types::I32,
        DType::I64 => types::I64,
    }
}

/// The signature of a kernel, from its loop IR.
pub fn kernel_signature(
    module: &loops::Module,
    f: &loops::Function,
) -> Result<KernelSignature, CodegenError> {
    let mut args = Vec::with_capacity(f.params.len());
    let mut ninputs = 0;
    for &p in &f.params {
        let b = f
            .buffer(p)
            .ok_or_else(|| unsupported(f, format!("parameter {} is not a buffer", p.0)))?;
        match b.kind {
            BufferKind::Input => ninputs += 1,
            BufferKind::Output => {}
            BufferKind::Temp | BufferKind::Scoped => {
                return Err(unsupported(
                    f,
                    format!("local buffer `{}` is a parameter", b.name),
                ))
            }
        }
        args.push(ArgSignature {
            name: b.name.clone(),
            dtype: b.dtype,
            shape: b.shape.clone(),
        });
    }
    Ok(KernelSignature {
        name: f.name.clone(),
        args,
        ninputs,
        dims: module.dims.clone(),
    })
}

/// The symbol name of a kernel's entry point.
pub fn entry_symbol(kernel: &str) -> String {
    format!("einc_{kernel}")
}

/// A kernel whose functions have been defined in a Cranelift module.
pub(crate) struct DefinedKernel {
    pub signature: KernelSignature,
    pub entry: FuncId,
}

/// Everything [`define_module`] defined: the kernels, the module's error functions, and the
/// general bodies it left to compile on their first call.
pub(crate) struct DefinedModule {
    pub kernels: Vec<DefinedKernel>,
    pub last_error: FuncId,
    /// `einc_error_record` (see [`last_error`]).
    pub record: FuncId,
    /// The deferred general bodies, in the order of [`LazyGeneral::slots`].
    pub deferred: Vec<DeferredBody>,
}

/// How the entry points of a JIT module reach general bodies that are compiled on their first
/// call ([`jit`]). Only a kernel with variants defers its general body: a call whose arguments
/// meet a variant's facts never needs it. The `n`th such kernel (in module order) uses
/// `slots[n]`.
pub(crate) struct LazyGeneral {
    /// The address of a word holding the code address of each deferred body once it is
    /// compiled, 0 before.
    pub slots: Vec<i64>,
    /// The first argument of the compiling function (what it needs to find the module).
    pub state: i64,
    /// The symbol of `int32 compile_and_call(state, int64 n, const int64 *frame)`, which
    /// compiles body `n` if no call has yet, stores its address in `slots[n]`, and calls it.
    pub symbol: &'static str,
}

/// A general body built, verified and declared, but not compiled (see [`LazyGeneral`]), with
/// the tasks it outlined (verified too).
pub(crate) struct DeferredBody {
    pub id: FuncId,
    pub name: String,
    pub func: Function,
    pub tasks: Vec<body::Task>,
}

/// What text [`define_module`] records about each function it defines.
pub(crate) enum Listing<'a> {
    /// Nothing.
    None,
    /// The CLIF as generated, before Cranelift's own optimisations.
    Clif(&'a mut String),
    /// Cranelift's disassembly of the machine code (its VCode printer).
    Asm(&'a mut String),
}

impl Listing<'_> {
    /// The same listing, borrowed again for one more function.
    fn reborrow(&mut self) -> Listing<'_> {
        match self {
            Listing::None => Listing::None,
            Listing::Clif(t) => Listing::Clif(t),
            Listing::Asm(t) => Listing::Asm(t),
        }
    }
}

/// Whether the parallel loops of a module's bodies run on threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// Outlined into tasks run through `einc_parallel_for` ([`body`]), which the JIT binds to
    /// the runtime's pool and a library defines with its own.
    Pool,
    /// As ordinary loops on the calling thread (an object file on its own, which must link
    /// with nothing new).
    Serial,
}

/// Defines every kernel of `m` in `module`, and the error functions the entry points record
/// their failures with (linked as `errors` says), recording each function in `listing`. With
/// `lazy`, the general body of each kernel that has variants is only built and verified, and
/// returned in [`DefinedModule::deferred`]. The micro-kernels follow `wide`
/// ([`wide::UkernelPlan`]).
pub(crate) fn define_module<M: Module>(
    module: &mut M,
    m: &loops::Module,
    errors: last_error::Linkage,
    threads: Threads,
    listing: Listing<'_>,
    lazy: Option<&LazyGeneral>,
    wide: UkernelPlan,
) -> Result<DefinedModule, CodegenError> {
    // A listing records each function as it is compiled, in order: compile on this thread.
    if !matches!(listing, Listing::None) {
        let code = CodeChoices {
            errors,
            threads,
            wide,
        };
        return define_kernels(module, m, code, listing, lazy, None);
    }
    let isa = isa::with_settings(module.isa(), &[])?;
    std::thread::scope(|scope| {
        let mut workers = workers::Workers::new(scope, &*isa);
        let code = CodeChoices {
            errors,
            threads,
            wide,
        };
        let defined = define_kernels(module, m, code, listing, lazy, Some(&mut workers))?;
        workers.define_all(module)?;
        Ok(defined)
    })
}

/// How [`define_module`] generates a module's code: how the error functions link, whether
/// parallel loops use threads, and which micro-kernels.
#[derive(Clone, Copy)]
struct CodeChoices {
    errors: last_error::Linkage,
    threads: Threads,
    wide: UkernelPlan,
}

/// [`define_module`], handing the kernel bodies to `workers` when given (the caller then
/// defines them with [`workers::Workers::define_all`]).
fn define_kernels<M: Module>(
    module: &mut M,
    m: &loops::Module,
    code: CodeChoices,
    mut listing: Listing<'_>,
    lazy: Option<&LazyGeneral>,
    mut workers: Option<&mut workers::Workers<'_, '_>>,
) -> Result<DefinedModule, CodegenError> {
    let CodeChoices {
        errors,
        threads,
        wide,
    } = code;
    let has_fma = module.isa().has_native_fma();
    let mut ctx = module.make_context();
    let mut fctx = cranelift_frontend::FunctionBuilderContext::new();
    let mut libs = libcall::Libcalls::default();
    // The error functions are the same in every module: a CLIF listing, which is for reading
    // the kernels, leaves them out; a disassembly lists everything the object contains.
    let mut support_listing = match &mut listing {
        Listing::Asm(text) => Listing::Asm(text),
        Listing::None | Listing::Clif(_) => Listing::None,
    };
    let errors_linkage = errors;
    // Entry points and error functions are cold code, compiled for compile speed.
    let cold = isa::with_settings(module.isa(), isa::COLD_CODE)?;
    let mut errors = last_error::ErrorSupport::define(
        module,
        &*cold,
        &mut ctx,
        &mut fctx,
        &mut libs,
        errors,
        support_listing.reborrow(),
    )?;
    // Only a module whose bodies have temporaries needs the scratch functions.
    let has_temps = m
        .funcs
        .iter()
        .any(|f| f.buffers.iter().any(|b| b.kind == BufferKind::Temp));
    let scratch = if has_temps {
        Some(scratch::Scratch::define(
            &mut thread_key::SupportBuilder {
                module: &mut *module,
                cold: &*cold,
                ctx: &mut ctx,
                fctx: &mut fctx,
                libs: &mut libs,
            },
            errors_linkage == last_error::Linkage::Jit,
            support_listing.reborrow(),
        )?)
    } else {
        None
    };
    let mut ukernels = ukernel::Ukernels::default();
    let threads = threads == Threads::Pool;
    check_variants(m)?;
    let mut kernels = Vec::new();
    let mut deferred = Vec::new();
    let mut compile_and_call = None;
    for f in m.kernels() {
        let signature = kernel_signature(m, f)?;
        let frame = Frame::new(m, f)?;
        let mut bodies = Vec::new();
        let variants: Vec<&loops::Function> = m.variants_of(&f.name).collect();
        for (n, v) in variants.iter().enumerate() {
            let name = format!("{}.variant{n}", entry_symbol(&f.name));
            let id = declare(module, &name, Linkage::Local, body::signature(module))?;
            let mut g = body::Codegen {
                module: &mut *module,
                ctx: &mut ctx,
                fctx: &mut fctx,
                libs: &mut libs,
                ukernels: &mut ukernels,
                errors: &mut errors,
                scratch,
                has_fma,
                threads,
            };
            let tasks = g.build(m, v, &frame, &name)?;
            define_tasks(module, tasks, workers.as_deref_mut(), listing.reborrow())?;
            match workers.as_deref_mut() {
                Some(workers) => {
                    let func = take_verified(module, &mut ctx, &name)?;
                    workers.compile(id, name, func);
                }
                None => finish(module, &mut ctx, id, &name, listing.reborrow())?,
            }
            bodies.push((*v, id));
        }
        let body_name = format!("{}.body", entry_symbol(&f.name));
        let body_id = declare(module, &body_name, Linkage::Local, body::signature(module))?;
        let mut g = body::Codegen {
            module: &mut *module,
            ctx: &mut ctx,
            fctx: &mut fctx,
            libs: &mut libs,
            ukernels: &mut ukernels,
            errors: &mut errors,
            scratch,
            has_fma,
            threads,
        };
        let tasks = g.build(m, f, &frame, &body_name)?;
        let general = match lazy {
            Some(lazy) if !bodies.is_empty() => {
                let func = take_verified(module, &mut ctx, &body_name)?;
                let tasks = tasks
                    .into_iter()
                    .map(|t| {
                        ctx.func = t.func;
                        let func = take_verified(module, &mut ctx, &t.name)?;
                        Ok(body::Task { func, ..t })
                    })
                    .collect::<Result<Vec<_>, CodegenError>>()?;
                let slot = *lazy.slots.get(deferred.len()).ok_or_else(|| {
                    CodegenError::Target("fewer lazy body slots than kernels with variants".into())
                })?;
                let compile = match compile_and_call {
                    Some(id) => id,
                    None => *compile_and_call.insert(declare(
                        module,
                        lazy.symbol,
                        Linkage::Import,
                        entry::compile_and_call_signature(module),
                    )?),
                };
                let general = entry::GeneralBody::Lazy {
                    slot,
                    state: lazy.state,
                    index: i64::try_from(deferred.len())
                        .map_err(|_| CodegenError::Target("too many kernels".into()))?,
                    compile,
                };
                deferred.push(DeferredBody {
                    id: body_id,
                    name: body_name,
                    func,
                    tasks,
                });
                general
            }
            _ => {
                define_tasks(module, tasks, workers.as_deref_mut(), listing.reborrow())?;
                match workers.as_deref_mut() {
                    Some(workers) => {
                        let func = take_verified(module, &mut ctx, &body_name)?;
                        workers.compile(body_id, body_name, func);
                    }
                    None => finish(module, &mut ctx, body_id, &body_name, listing.reborrow())?,
                }
                entry::GeneralBody::Defined(body_id)
            }
        };

        let entry_name = entry_symbol(&f.name);
        let entry_id = declare(
            module,
            &entry_name,
            Linkage::Export,
            entry::signature(module),
        )?;
        entry::build(
            module,
            &mut ctx,
            &mut fctx,
            m,
            f,
            &frame,
            &bodies,
            general,
            &mut errors,
        )?;
        finish_with(
            module,
            Some(&*cold),
            &mut ctx,
            entry_id,
            &entry_name,
            listing.reborrow(),
        )?;
        kernels.push(DefinedKernel {
            signature,
            entry: entry_id,
        });
    }
    ukernels.define_all(module, &mut ctx, &mut fctx, listing, wide)?;
    Ok(DefinedModule {
        kernels,
        last_error: errors.last_error,
        record: errors.record,
        deferred,
    })
}

/// Every variant specialises an existing kernel and has its parameters (the entry point passes
/// the kernel's frame to every body, so they must agree; the verifier checks the full rule).
fn check_variants(m: &loops::Module) -> Result<(), CodegenError> {
    for v in &m.funcs {
        let Some(general) = &v.variant_of else {
            continue;
        };
        let g = m.kernels().find(|g| &g.name == general).ok_or_else(|| {
            unsupported(v, format!("it is a variant of unknown kernel `{general}`"))
        })?;
        let param = |f: &loops::Function, p: &loops::BufferId| {
            f.buffer(*p).map(|b| (b.kind, b.dtype, b.shape.clone()))
        };
        let same = v.params.len() == g.params.len()
            && v.params
                .iter()
                .zip(&g.params)
                .all(|(p, q)| param(v, p).is_some() && param(v, p) == param(g, q));
        if !same {
            return Err(unsupported(
                v,
                format!("its parameters differ from those of kernel `{general}`"),
            ));
        }
    }
    Ok(())
}

/// Defines the task functions a body outlined (or hands them to `workers`), recording each in
/// `listing`.
fn define_tasks<M: Module>(
    module: &mut M,
    tasks: Vec<body::Task>,
    workers: Option<&mut workers::Workers<'_, '_>>,
    mut listing: Listing<'_>,
) -> Result<(), CodegenError> {
    let ctx = &mut module.make_context();
    match workers {
        Some(workers) => {
            for t in tasks {
                ctx.func = t.func;
                let func = take_verified(module, ctx, &t.name)?;
                workers.compile(t.id, t.name, func);
            }
        }
        None => {
            for t in tasks {
                ctx.func = t.func;
                finish(module, ctx, t.id, &t.name, listing.reborrow())?;
            }
        }
    }
    Ok(())
}

/// Declares a function, mapping Cranelift's error.
pub(crate) fn declare<M: Module>(
    module: &mut M,
    name: &str,
    linkage: Linkage,
    sig: cranelift_codegen::ir::Signature,
) -> Result<FuncId, CodegenError> {
    module
        .declare_function(name, linkage, &sig)
        .map_err(|e| CodegenError::Cranelift {
            function: name.to_string(),
            message: e.to_string(),
        })
}

/// Verifies the function built in `ctx`, defines it, records it in `listing` and clears `ctx`.
pub(crate) fn finish<M: Module>(
    module: &mut M,
    ctx: &mut Context,
    id: FuncId,
    name: &str,
    listing: Listing<'_>,
) -> Result<(), CodegenError> {
    finish_with(module, None, ctx, id, name, listing)
}

/// Verifies the function built in `ctx` (every function einc generates, before Cranelift
/// compiles it).
fn verify(isa: &dyn TargetIsa, ctx: &Context, name: &str) -> Result<(), CodegenError> {
    cranelift_codegen::verify_function(&ctx.func, isa).map_err(|e| CodegenError::Cranelift {
        function: name.to_string(),
        message: cranelift_codegen::print_errors::pretty_verifier_error(&ctx.func, None, e),
    })
}

/// Verifies the function built in `ctx` and takes it out, clearing `ctx`: for a body compiled
/// elsewhere (on a worker thread, or on its first call).
fn take_verified<M: Module>(
    module: &mut M,
    ctx: &mut Context,
    name: &str,
) -> Result<cranelift_codegen::ir::Function, CodegenError> {
    verify(module.isa(), ctx, name)?;
    let func = std::mem::replace(&mut ctx.func, cranelift_codegen::ir::Function::new());
    module.clear_context(ctx);
    Ok(func)
}

/// [`finish`], compiling with `isa` when given (the module's target with other settings:
/// [`isa::COLD_CODE`], or the micro-kernels' optimiser off) rather than the module's own; the
/// code is then defined as bytes with its relocations, as `define_function` does itself.
pub(crate) fn finish_with<M: Module>(
    module: &mut M,
    isa: Option<&dyn TargetIsa>,
    ctx: &mut Context,
    id: FuncId,
    name: &str,
    mut listing: Listing<'_>,
) -> Result<(), CodegenError> {
    let err = |message: String| CodegenError::Cranelift {
        function: name.to_string(),
        message,
    };
    verify(isa.unwrap_or(module.isa()), ctx, name)?;
    if let Listing::Clif(text) = &mut listing {
        text.push_str(&format!("; {name}\n{}\n", ctx.func.display()));
    }
    ctx.set_disasm(matches!(listing, Listing::Asm(_)));
    match isa {
        None => module
            .define_function(id, ctx)
            .map_err(|e| err(format!("{e:?}")))?,
        Some(isa) => {
            ctx.compile(isa, &mut ControlPlane::default())
                .map_err(|e| err(format!("{:?}", e.inner)))?;
            define_compiled(module, isa, ctx, id, name)?;
        }
    }
    if let Listing::Asm(text) = listing {
        let asm = ctx
            .compiled_code()
            .and_then(|c| c.vcode.as_deref())
            .ok_or_else(|| err("Cranelift produced no disassembly".into()))?;
        text.push_str(&format!("; {name}\n{asm}\n"));
    }
    module.clear_context(ctx);
    Ok(())
}

/// Defines the machine code Cranelift compiled in `ctx` for `isa` as function `id`, with its
/// relocations, as `Module::define_function` does after compiling.
fn define_compiled<M: Module>(
    module: &mut M,
    isa: &dyn TargetIsa,
    ctx: &Context,
    id: FuncId,
    name: &str,
) -> Result<(), CodegenError> {
    let err = |message: String| CodegenError::Cranelift {
        function: name.to_string(),
        message,
    };
    let code = ctx
        .compiled_code()
        .ok_or_else(|| err("Cranelift produced no code".into()))?;
    let align = u64::from(code.buffer.alignment)
        .max(u64::from(isa.function_alignment().minimum))
        .max(isa.symbol_alignment());
    let relocs: Vec<ModuleReloc> = code
        .buffer
        .relocs()
        .iter()
        .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
        .collect();
    module
        .define_function_bytes(id, align, code.code_buffer(), &relocs)
        .map_err(|e| err(format!("{e:?}")))
}

/// CLIF text of every function of `m` (entry points and bodies), as generated for `target`
/// with micro-kernels `wide` (machine-code kernels are named, having no CLIF).
pub fn clif_text(
    m: &loops::Module,
    target: &Target,
    wide: UkernelIsa,
) -> Result<String, CodegenError> {
    let mut module = isa::object_module(target)?;
    let mut text = String::new();
    define_module(
        &mut module,
        m,
        last_error::Linkage::Library,
        Threads::Pool,
        Listing::Clif(&mut text),
        None,
        UkernelPlan::fixed(wide),
    )?;
    Ok(text)
}

/// Compiles every kernel of `m` to machine code for `target` with micro-kernels `wide` and
/// discards the result: checks that the target can compile the module
/// ([`object::emit_object`] keeps the code).
pub fn compile_for_target(
    m: &loops::Module,
    target: &Target,
    wide: UkernelIsa,
) -> Result<(), CodegenError> {
    let mut module = isa::object_module(target)?;
    define_module(
        &mut module,
        m,
        last_error::Linkage::Library,
        Threads::Pool,
        Listing::None,
        None,
        UkernelPlan::fixed(wide),
    )?;
    Ok(())
}
