//! Ahead-of-time compilation: a loop-IR module becomes a relocatable, position-independent
//! object file that a C compiler links into a shared library (`einc build`).
//!
//! The object exports exactly the entry points of `docs/abi.md`: for each kernel `K` the
//! validating entry `einc_K` (the same code the JIT runs, from [`define_module`]) and
//! `einc_K_info`, a function returning the address of a static [`KernelInfo`] built here as
//! read-only data with relocations (the info struct, its argument array, the extents arrays, the
//! dim-name array and the NUL-terminated names); and once per object `einc_abi_version`,
//! `einc_kernel_list` (the info of every kernel, NULL-terminated) and the error functions of
//! [`last_error`] (`einc_last_error`, and `einc_error_record`, which the entry points call).
//!
//! [`KernelInfo`]: einc_runtime::abi::KernelInfo

use super::isa::TargetCpu;
use super::last_error::{self, LAST_ERROR_SYMBOL, RECORD_SYMBOL};
use super::wide::UkernelPlan;
use super::{
    body, declare, define_module, entry_symbol, finish, isa, CodegenError, KernelSignature,
    Listing, Target, Threads,
};
use crate::ir::loops::{self, Extent};
use cranelift_codegen::ir::{types, AbiParam, Endianness, InstBuilder};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, Linkage, Module};
use cranelift_object::ObjectModule;
use einc_runtime::abi::ABI_VERSION;
use einc_runtime::DType;

/// The symbol of the library-wide version function.
pub const ABI_VERSION_SYMBOL: &str = "einc_abi_version";

/// The symbol of the function listing every kernel of a library.
pub const KERNEL_LIST_SYMBOL: &str = "einc_kernel_list";

/// The symbol of a kernel's signature description function.
pub fn info_symbol(kernel: &str) -> String {
    format!("{}_info", entry_symbol(kernel))
}

/// One argument as `einc_arg_info` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgInfoData {
    /// The name as declared.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Whether the argument is an output.
    pub is_output: bool,
    /// One entry per axis: `e >= 0` is a fixed extent, `e < 0` is dim `-e - 1` of
    /// [`KernelInfoData::dim_names`].
    pub extents: Vec<i64>,
}

/// What `einc_K_info()` describes, as plain data (the object file and the C header are both
/// written from it, so they cannot disagree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelInfoData {
    /// The kernel's name.
    pub name: String,
    /// Inputs, then outputs.
    pub args: Vec<ArgInfoData>,
    /// How many of `args` are inputs.
    pub ninputs: usize,
    /// The symbolic dims the arguments use, in the order the module declares them.
    pub dim_names: Vec<String>,
}

/// Describes a kernel's signature: fixed dims become fixed extents; the symbolic dims its
/// arguments use are numbered in module order.
pub fn kernel_info(sig: &KernelSignature) -> Result<KernelInfoData, CodegenError> {
    let err = |message: String| CodegenError::Unsupported {
        kernel: sig.name.clone(),
        message,
    };
    let used = |name: &str| {
        sig.args.iter().any(|a| {
            a.shape
                .iter()
                .any(|e| matches!(e, Extent::Dim(d) if d == name))
        })
    };
    let dim_names: Vec<String> = sig
        .dims
        .iter()
        .filter(|d| d.value.is_none() && used(&d.name))
        .map(|d| d.name.clone())
        .collect();
    let fixed = |n: u64| {
        i64::try_from(n).map_err(|_| err(format!("extent {n} does not fit the ABI's int64_t")))
    };
    let mut args = Vec::with_capacity(sig.args.len());
    for (i, a) in sig.args.iter().enumerate() {
        let mut extents = Vec::with_capacity(a.shape.len());
        for e in &a.shape {
            extents.push(match e {
                Extent::Fixed(n) => fixed(*n)?,
                Extent::Dim(name) => match sig.dims.iter().find(|d| &d.name == name) {
                    Some(d) => match d.value {
                        Some(v) => fixed(v)?,
                        None => {
                            let n = dim_names.iter().position(|s| s == name).unwrap_or(0);
                            -1 - n as i64
                        }
                    },
                    None => {
                        return Err(err(format!(
                            "argument `{}` uses the undeclared dim `{name}`",
                            a.name
                        )))
                    }
                },
            });
        }
        args.push(ArgInfoData {
            name: a.name.clone(),
            dtype: a.dtype,
            is_output: i >= sig.ninputs,
            extents,
        });
    }
    Ok(KernelInfoData {
        name: sig.name.clone(),
        args,
        ninputs: sig.ninputs,
        dim_names,
    })
}

/// The function a library exports to replace its thread pool with the host's
/// (`runtime/c/einc_parallel.c`, docs/abi.md "Threads").
pub const SET_PARALLEL_FOR_SYMBOL: &str = "einc_set_parallel_for";

/// An object file and what it contains.
#[derive(Clone, Debug)]
pub struct CompiledObject {
    /// The object file's bytes (ELF for Linux targets).
    pub bytes: Vec<u8>,
    /// The description of every kernel, in declaration order.
    pub kernels: Vec<KernelInfoData>,
}

/// Compiles every kernel of `m` for `target` at CPU level `cpu`, with the micro-kernels of
/// `wide`, into a position-independent object file that needs nothing but libc and libm: its
/// parallel loops run serially (`einc build --emit obj`).
pub fn emit_object(
    m: &loops::Module,
    target: &Target,
    cpu: TargetCpu,
    wide: UkernelPlan,
) -> Result<CompiledObject, CodegenError> {
    object_file(m, target, cpu, wide, Threads::Serial)
}

/// Compiles every kernel of `m` for `target` at CPU level `cpu`, with the micro-kernels of
/// `wide`, into the position-independent object file of a library: its parallel loops call
/// `einc_parallel_for`, which the library's thread pool (`runtime/c/einc_parallel.c`, linked
/// in by `einc build`) defines.
pub fn emit_library_object(
    m: &loops::Module,
    target: &Target,
    cpu: TargetCpu,
    wide: UkernelPlan,
) -> Result<CompiledObject, CodegenError> {
    object_file(m, target, cpu, wide, Threads::Pool)
}

fn object_file(
    m: &loops::Module,
    target: &Target,
    cpu: TargetCpu,
    wide: UkernelPlan,
    threads: Threads,
) -> Result<CompiledObject, CodegenError> {
    let mut module = isa::object_module_for(target, cpu)?;
    let kernels = define_library(&mut module, m, threads, Listing::None, wide)?;
    let bytes = module
        .finish()
        .emit()
        .map_err(|e| CodegenError::Target(format!("writing the object file: {e}")))?;
    Ok(CompiledObject { bytes, kernels })
}

/// Cranelift's disassembly of every function the object file for `target` would contain
/// (entry points, bodies and info functions), each headed by `; NAME`; machine-code
/// micro-kernels (`wide`) are listed by iced-x86's disassembler.
pub fn asm_text(
    m: &loops::Module,
    target: &Target,
    cpu: TargetCpu,
    wide: UkernelPlan,
) -> Result<String, CodegenError> {
    let mut module = isa::object_module_for(target, cpu)?;
    let mut text = String::new();
    define_library(&mut module, m, Threads::Pool, Listing::Asm(&mut text), wide)?;
    Ok(text)
}

/// Defines everything a library exports in `module` and returns the kernels' descriptions.
fn define_library(
    module: &mut ObjectModule,
    m: &loops::Module,
    threads: Threads,
    mut listing: Listing<'_>,
    wide: UkernelPlan,
) -> Result<Vec<KernelInfoData>, CodegenError> {
    check_symbols(m)?;
    let layout = Layout::of(module)?;
    let defined = define_module(
        module,
        m,
        last_error::Linkage::Library,
        threads,
        listing.reborrow(),
        None,
        wide,
    )?;
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut kernels = Vec::with_capacity(defined.kernels.len());
    let mut list = Blob::new();
    for k in &defined.kernels {
        let info = kernel_info(&k.signature)?;
        let data = define_info(module, &layout, &info)?;
        list.pointer(Some((data, 0)));
        let name = info_symbol(&info.name);
        define_constant_fn(
            module,
            &mut ctx,
            &mut fctx,
            &name,
            Constant::Address(data),
            listing.reborrow(),
        )?;
        kernels.push(info);
    }
    list.pointer(None);
    let list = list.define(module, &format!("{KERNEL_LIST_SYMBOL}.data"), "(library)")?;
    define_constant_fn(
        module,
        &mut ctx,
        &mut fctx,
        KERNEL_LIST_SYMBOL,
        Constant::Address(list),
        listing.reborrow(),
    )?;
    define_constant_fn(
        module,
        &mut ctx,
        &mut fctx,
        ABI_VERSION_SYMBOL,
        Constant::I32(ABI_VERSION),
        listing,
    )?;
    Ok(kernels)
}

/// Rejects modules whose kernels cannot be exported to C: a name that is not a C identifier
/// (possible in IR text), or symbols that would clash: kernel `a` exports `einc_a_info`, which
/// is also the entry of a kernel named `a_info`, and a kernel `abi_version` would export
/// `einc_abi_version`.
pub(crate) fn check_symbols(m: &loops::Module) -> Result<(), CodegenError> {
    let mut seen: Vec<(String, &str)> = [
        ABI_VERSION_SYMBOL,
        KERNEL_LIST_SYMBOL,
        LAST_ERROR_SYMBOL,
        RECORD_SYMBOL,
        body::PARALLEL_FOR_SYMBOL,
        SET_PARALLEL_FOR_SYMBOL,
    ]
    .iter()
    .map(|s| (s.to_string(), "the library"))
    .collect();
    for f in m.kernels() {
        let mut chars = f.name.chars();
        let identifier = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return Err(CodegenError::Unsupported {
                kernel: f.name.clone(),
                message: "its name is not a C identifier".into(),
            });
        }
        for symbol in [entry_symbol(&f.name), info_symbol(&f.name)] {
            if let Some((_, owner)) = seen.iter().find(|(s, _)| *s == symbol) {
                return Err(CodegenError::Unsupported {
                    kernel: f.name.clone(),
                    message: format!(
                        "its symbol `{symbol}` is already exported by {owner}; rename the kernel"
                    ),
                });
            }
            seen.push((symbol, &f.name));
        }
    }
    Ok(())
}

/// The byte order and pointer width of the target, which the info structs are laid out for.
struct Layout {
    little: bool,
}

impl Layout {
    fn of(module: &ObjectModule) -> Result<Layout, CodegenError> {
        let isa = module.isa();
        if isa.pointer_bytes() != 8 {
            return Err(CodegenError::Target(format!(
                "the einc ABI needs 64-bit pointers; {} has {}-byte pointers",
                isa.triple(),
                isa.pointer_bytes()
            )));
        }
        Ok(Layout {
            little: isa.endianness() == Endianness::Little,
        })
    }

    fn i32(&self, out: &mut Vec<u8>, v: i32) {
        out.extend(if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        });
    }

    fn i64(&self, out: &mut Vec<u8>, v: i64) {
        out.extend(if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        });
    }
}

/// Read-only data with pointers to other data objects, filled in by relocations.
struct Blob {
    bytes: Vec<u8>,
    /// (offset of a pointer field, target object, byte offset into it)
    relocs: Vec<(usize, DataId, i64)>,
}

impl Blob {
    fn new() -> Blob {
        Blob {
            bytes: Vec::new(),
            relocs: Vec::new(),
        }
    }

    /// Appends a pointer to `target + offset`, or a null pointer.
    fn pointer(&mut self, target: Option<(DataId, i64)>) {
        if let Some((id, offset)) = target {
            self.relocs.push((self.bytes.len(), id, offset));
        }
        self.bytes.extend([0; 8]);
    }

    /// Defines the blob as the local data object `name`. Callers pass null instead of the
    /// address of an empty array, so blobs are never empty.
    fn define(
        self,
        module: &mut ObjectModule,
        name: &str,
        kernel: &str,
    ) -> Result<DataId, CodegenError> {
        let err = |e: cranelift_module::ModuleError| CodegenError::Cranelift {
            function: name.to_string(),
            message: e.to_string(),
        };
        let id = module
            .declare_data(name, Linkage::Local, false, false)
            .map_err(err)?;
        let mut desc = DataDescription::new();
        desc.define(self.bytes.into_boxed_slice());
        desc.set_align(8);
        for (offset, target, addend) in self.relocs {
            let gv = module.declare_data_in_data(target, &mut desc);
            let offset = u32::try_from(offset).map_err(|_| CodegenError::Unsupported {
                kernel: kernel.to_string(),
                message: "the signature description is too large".into(),
            })?;
            desc.write_data_addr(offset, gv, addend);
        }
        module.define_data(id, &desc).map_err(err)?;
        Ok(id)
    }
}

/// Defines the static `einc_kernel_info` of a kernel and everything it points to; returns the
/// info struct's data object.
fn define_info(
    module: &mut ObjectModule,
    layout: &Layout,
    info: &KernelInfoData,
) -> Result<DataId, CodegenError> {
    let base = info_symbol(&info.name);
    let kernel = info.name.as_str();
    let too_many = |what: &str| CodegenError::Unsupported {
        kernel: kernel.to_string(),
        message: format!("too many {what} for the ABI's int32_t counts"),
    };

    // Every name, NUL-terminated, in one string table: kernel, arguments, dims.
    let mut strings = Blob::new();
    let mut string = |s: &str| {
        let at = strings.bytes.len() as i64;
        strings.bytes.extend(s.as_bytes());
        strings.bytes.push(0);
        at
    };
    let kernel_name = string(&info.name);
    let arg_names: Vec<i64> = info.args.iter().map(|a| string(&a.name)).collect();
    let dim_names: Vec<i64> = info.dim_names.iter().map(|d| string(d)).collect();
    let strings = strings.define(module, &format!("{base}.strings"), kernel)?;

    // Every argument's extents, concatenated; each argument points at its own run.
    let mut extents = Blob::new();
    let mut starts = Vec::with_capacity(info.args.len());
    for a in &info.args {
        starts.push(extents.bytes.len() as i64);
        for &e in &a.extents {
            layout.i64(&mut extents.bytes, e);
        }
    }
    let extents = if extents.bytes.is_empty() {
        None
    } else {
        Some(extents.define(module, &format!("{base}.extents"), kernel)?)
    };

    let mut args = Blob::new();
    for ((a, &name), &start) in info.args.iter().zip(&arg_names).zip(&starts) {
        let rank = i32::try_from(a.extents.len()).map_err(|_| too_many("axes"))?;
        args.pointer(Some((strings, name)));
        layout.i32(&mut args.bytes, a.dtype.code());
        layout.i32(&mut args.bytes, rank);
        layout.i32(&mut args.bytes, i32::from(a.is_output));
        layout.i32(&mut args.bytes, 0);
        args.pointer(extents.filter(|_| rank > 0).map(|id| (id, start)));
    }
    let args = if args.bytes.is_empty() {
        None
    } else {
        Some(args.define(module, &format!("{base}.args"), kernel)?)
    };

    let mut dims = Blob::new();
    for &name in &dim_names {
        dims.pointer(Some((strings, name)));
    }
    let dims = if dims.bytes.is_empty() {
        None
    } else {
        Some(dims.define(module, &format!("{base}.dims"), kernel)?)
    };

    let mut kinfo = Blob::new();
    let count = |n: usize, what: &str| i32::try_from(n).map_err(|_| too_many(what));
    layout.i32(&mut kinfo.bytes, ABI_VERSION);
    layout.i32(&mut kinfo.bytes, count(info.args.len(), "arguments")?);
    layout.i32(&mut kinfo.bytes, count(info.ninputs, "inputs")?);
    layout.i32(&mut kinfo.bytes, count(info.dim_names.len(), "dims")?);
    kinfo.pointer(Some((strings, kernel_name)));
    kinfo.pointer(args.map(|id| (id, 0)));
    kinfo.pointer(dims.map(|id| (id, 0)));
    kinfo.define(module, &format!("{base}.data"), kernel)
}

/// What a constant function returns.
enum Constant {
    /// The address of a data object.
    Address(DataId),
    /// An `int32_t`.
    I32(i32),
}

/// Defines the exported function `name(void)` returning `value`.
fn define_constant_fn(
    module: &mut ObjectModule,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    name: &str,
    value: Constant,
    listing: Listing<'_>,
) -> Result<(), CodegenError> {
    let ptr = module.isa().pointer_type();
    let mut sig = module.make_signature();
    sig.returns.push(AbiParam::new(match value {
        Constant::Address(_) => ptr,
        Constant::I32(_) => types::I32,
    }));
    let id = declare(module, name, Linkage::Export, sig.clone())?;
    ctx.func.signature = sig;
    let mut fb = FunctionBuilder::new(&mut ctx.func, fctx);
    let block = fb.create_block();
    fb.switch_to_block(block);
    fb.seal_block(block);
    let v = match value {
        Constant::I32(v) => fb.ins().iconst(types::I32, i64::from(v)),
        Constant::Address(data) => {
            let gv = module.declare_data_in_func(data, fb.func);
            fb.ins().symbol_value(ptr, gv)
        }
    };
    fb.ins().return_(&[v]);
    fb.finalize(module.target_config());
    finish(module, ctx, id, name, listing)
}
