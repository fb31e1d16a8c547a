//! The Rust API: compile `.ein` source or an einsum to native code and call its kernels.
//!
//! ```no_run
//! use einc_compiler::api::{Program, TensorRef};
//! # fn main() -> Result<(), einc_compiler::api::Error> {
//! let program = Program::einsum("ij,jk->ik", &[
//!     (einc_runtime::DType::F32, &[2, 3]),
//!     (einc_runtime::DType::F32, &[3, 2]),
//! ])?;
//! let kernel = program.kernel("einsum")?;
//! let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let c = kernel.run(&[TensorRef::contiguous(&a, &[2, 3])?, TensorRef::contiguous(&b, &[3, 2])?])?;
//! assert_eq!(c[0].shape(), &[2, 2]);
//! # Ok(()) }
//! ```
//!
//! A [`Program`] is compiled once (tensor IR → [`crate::compile`]'s pipeline → loop IR →
//! Cranelift, JIT), with default [`CompileOptions`] or the ones given; [`Program::kernel`]
//! hands out [`Kernel`]s, cheap to clone, which keep the machine code alive. Every call goes
//! through the kernel's C ABI entry point (`docs/abi.md`), which validates the arguments
//! before touching memory; the views ([`TensorRef`], [`TensorMut`]) are checked against their
//! slices when built, so safe code cannot make a kernel read or write outside them.

mod call;
mod error;
#[cfg(feature = "ndarray")]
mod ndarray;
mod view;

pub use crate::codegen::{ArgSignature, KernelSignature};
pub use error::{show_einsum_error, Error, Status};
pub use view::{Element, TensorMut, TensorRef, ViewError};

pub use crate::compile::{CompileOptions, OptLevel};

use crate::codegen::{jit_compile_with, JitKernel, JitProgram};
use crate::diag::{render, SourceFile};
use crate::ir::loops;
use crate::ir::tensor::{self, Extent, TensorType};
use call::Binder;
use einc_runtime::abi::{self, KernelFn};
use einc_runtime::{Array, Buffer, DType};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A compiled program: the checked tensor IR, the options it was compiled with, the loop IR
/// the pipeline produced and every kernel's machine code.
pub struct Program {
    module: Arc<tensor::Module>,
    options: Arc<CompileOptions>,
    loops: loops::Module,
    jit: JitProgram,
    warnings: String,
    /// The thread count of the kernels taken from it ([`Program::set_num_threads`]).
    threads: Option<usize>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("kernels", &self.jit)
            .finish()
    }
}

impl Program {
    /// Compiles `.ein` source text (diagnostics name the file `<source>`).
    pub fn from_source(text: &str) -> Result<Program, Error> {
        Program::from_named_source("<source>", text)
    }

    /// Compiles `.ein` source text whose diagnostics name the file `name`.
    pub fn from_named_source(name: &str, text: &str) -> Result<Program, Error> {
        let (module, diags) = crate::sema::compile_source(text);
        let file = SourceFile::new(name, text);
        let errors = diags.iter().filter(|d| d.is_error()).count();
        match module {
            Some(module) if errors == 0 => {
                let mut program = Program::from_module(module)?;
                program.warnings = render(&diags, &file, false);
                Ok(program)
            }
            _ => Err(Error::Source {
                rendered: render(&diags, &file, false),
                errors: errors.max(1),
            }),
        }
    }

    /// Reads and compiles a `.ein` file.
    pub fn from_file(path: &Path) -> Result<Program, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Program::from_named_source(&path.display().to_string(), &text)
    }

    /// Compiles numpy's `einsum(subscripts, ...)` for operands of these dtypes and shapes
    /// (numpy's rules: implicit output, `...`, size-1 broadcasting, type promotion). The
    /// program has one kernel, `einsum`, with inputs `0`, `1`, ... and output `out`.
    pub fn einsum(subscripts: &str, operands: &[(DType, &[usize])]) -> Result<Program, Error> {
        Program::from_module(einsum_module(subscripts, operands)?)
    }

    /// Compiles an einsum once for every shape: each label becomes a symbolic dim named after
    /// it (so operands must agree on it exactly: no size-1 broadcasting), and `...` covers no
    /// axes. All operands have dtype `dtype`.
    pub fn einsum_symbolic(subscripts: &str, dtype: DType) -> Result<Program, Error> {
        let types = crate::sema::einsum::symbolic_operands(subscripts, dtype).map_err(|error| {
            Error::Einsum {
                subscripts: subscripts.to_string(),
                error,
            }
        })?;
        Program::from_module(einsum_of_types(subscripts, &types)?)
    }

    /// Compiles a checked tensor IR module (from `sema::compile_source` or built in code)
    /// with the default options (`-O2`).
    pub fn from_module(module: tensor::Module) -> Result<Program, Error> {
        Program::from_module_with(module, &CompileOptions::default())
    }

    /// Compiles a checked tensor IR module with `options` (its target must be the host: the
    /// JIT runs what it compiles).
    pub fn from_module_with(
        module: tensor::Module,
        options: &CompileOptions,
    ) -> Result<Program, Error> {
        if options.target != crate::codegen::Target::Host
            || options.cpu != crate::codegen::TargetCpu::Native
        {
            return Err(Error::Compile(crate::compile::CompileError::Options(
                "the JIT compiles for the host only; use `einc build --target` for another \
                 machine"
                    .into(),
            )));
        }
        let loops = crate::compile::compile(&module, options)?;
        let jit = jit_compile_with(&loops, options.ukernel_plan()?.isa)?;
        Ok(Program {
            module: Arc::new(module),
            options: Arc::new(options.clone()),
            loops,
            jit,
            warnings: String::new(),
            threads: None,
        })
    }

    /// The kernel called `name`.
    pub fn kernel(&self, name: &str) -> Result<Kernel, Error> {
        let jit = self.jit.kernel(name).ok_or_else(|| Error::UnknownKernel {
            name: name.to_string(),
            available: self.kernel_names().map(String::from).collect(),
        })?;
        Ok(Kernel {
            inner: Arc::new(KernelInner {
                jit,
                module: Arc::clone(&self.module),
                options: Arc::clone(&self.options),
                variants: Mutex::default(),
            }),
            threads: self.threads,
        })
    }

    /// Sets how many threads (the caller's included) the parallel loops of the kernels taken
    /// from this program afterwards use; `None` (the default) means the `EINC_NUM_THREADS`
    /// environment variable, else the cores the process may run on (docs/abi.md, "Threads").
    /// Results are bit-identical for any thread count.
    pub fn set_num_threads(&mut self, threads: Option<usize>) {
        self.threads = threads;
    }

    /// The kernels' names, in declaration order.
    pub fn kernel_names(&self) -> impl Iterator<Item = &str> {
        self.jit.kernels()
    }

    /// The checked tensor IR the program was compiled from.
    pub fn module(&self) -> &tensor::Module {
        &self.module
    }

    /// The loop IR the pipeline produced and the JIT compiled (what `einc ir --level=loop`
    /// prints for the same module and options).
    pub fn loop_module(&self) -> &loops::Module {
        &self.loops
    }

    /// The options the program was compiled with.
    pub fn options(&self) -> &CompileOptions {
        &self.options
    }

    /// The source's warnings and notes, rendered like errors (empty when there were none).
    pub fn warnings(&self) -> &str {
        &self.warnings
    }
}

/// The tensor IR of numpy's `einsum(subscripts, ...)` for operands of these dtypes and
/// shapes: what [`Program::einsum`] compiles (and the reference interpreter can run).
pub fn einsum_module(
    subscripts: &str,
    operands: &[(DType, &[usize])],
) -> Result<tensor::Module, Error> {
    let types: Vec<TensorType> = operands
        .iter()
        .map(|(dtype, shape)| TensorType {
            dtype: *dtype,
            shape: shape.iter().map(|&n| Extent::Fixed(n as u64)).collect(),
        })
        .collect();
    einsum_of_types(subscripts, &types)
}

fn einsum_of_types(subscripts: &str, types: &[TensorType]) -> Result<tensor::Module, Error> {
    crate::sema::einsum::einsum_function(subscripts, types)
        .map(|(module, _)| module)
        .map_err(|error| Error::Einsum {
            subscripts: subscripts.to_string(),
            error,
        })
}

/// A compiled kernel. Clones share the machine code (kept alive while any clone exists) and
/// the cache of shape-specialised variants.
#[derive(Clone)]
pub struct Kernel {
    inner: Arc<KernelInner>,
    /// The thread count of this handle's calls ([`Kernel::set_num_threads`]).
    threads: Option<usize>,
}

struct KernelInner {
    jit: JitKernel,
    /// The program's tensor IR, from which specialised variants are compiled.
    module: Arc<tensor::Module>,
    /// The options the program was compiled with (variants use them too).
    options: Arc<CompileOptions>,
    /// Variants with symbolic dims fixed, keyed by the dims' values.
    variants: Mutex<HashMap<Vec<Option<u64>>, Kernel>>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("signature", self.signature())
            .finish()
    }
}

impl Kernel {
    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.signature().name
    }

    /// Every argument the entry point takes (inputs, then outputs) and the dims.
    pub fn signature(&self) -> &KernelSignature {
        self.inner.jit.signature()
    }

    /// The inputs, in declaration order.
    pub fn inputs(&self) -> &[ArgSignature] {
        let sig = self.signature();
        sig.args.get(..sig.ninputs).unwrap_or_default()
    }

    /// The outputs, in declaration order.
    pub fn outputs(&self) -> &[ArgSignature] {
        let sig = self.signature();
        sig.args.get(sig.ninputs..).unwrap_or_default()
    }

    /// Sets how many threads (the caller's included) this handle's calls use for parallel
    /// loops, as [`Program::set_num_threads`] does (clones made afterwards inherit it). Calls
    /// through [`Kernel::entry`] use the default instead.
    pub fn set_num_threads(&mut self, threads: Option<usize>) {
        self.threads = threads;
    }

    /// How many threads this handle's calls use.
    pub fn num_threads(&self) -> usize {
        einc_runtime::parallel::with_num_threads(self.threads, einc_runtime::parallel::num_threads)
    }

    /// The C ABI entry point, valid while this kernel (or a clone) lives.
    pub fn entry(&self) -> KernelFn {
        self.inner.jit.entry()
    }

    /// Runs the kernel on `inputs`, writing `outputs` in place. Nothing is written when the
    /// call is rejected; the error names the argument at fault.
    ///
    /// A successful call allocates nothing when it has at most 8 arguments of rank at most 4
    /// (views keep their shapes and strides inline, and the descriptors are built on the
    /// stack), and neither does building a view of such a rank: the cost of a call is the
    /// entry point's checks and the kernel itself (`docs/performance.md`). Only a failure
    /// allocates, for its message.
    pub fn call(
        &self,
        inputs: &[TensorRef<'_>],
        outputs: &mut [TensorMut<'_>],
    ) -> Result<(), Error> {
        // Inline up to 8 arguments: a call allocates nothing.
        let descriptors: SmallVec<[abi::Tensor; 8]> = inputs
            .iter()
            .map(TensorRef::descriptor)
            .chain(outputs.iter_mut().map(TensorMut::descriptor))
            .collect();
        // SAFETY: every view was checked against the slice it borrows (or promised valid by
        // an unsafe constructor); inputs are shared borrows and outputs exclusive ones for the
        // duration of this call, and the views, which own the shape and stride arrays the
        // descriptors point at, are borrowed (so neither moved nor dropped) until it returns.
        unsafe {
            call::invoke(
                &self.inner.jit,
                self.threads,
                &descriptors,
                Some((inputs.len(), outputs.len())),
            )
        }
    }

    /// Calls the entry point with raw descriptors (inputs first, then outputs), mapping a
    /// non-zero status to [`Error::Call`].
    ///
    /// # Safety
    /// Each descriptor's `shape` and `strides` must be null or valid for `rank` reads, and its
    /// `data` valid for every element its layout addresses (reads for inputs, writes for
    /// outputs) during the call. The entry point itself checks everything else: counts,
    /// dtypes, ranks, extents, null pointers and overlapping outputs.
    pub unsafe fn call_raw(&self, args: &[abi::Tensor]) -> Result<(), Error> {
        // SAFETY: forwarded from the caller.
        unsafe { call::invoke(&self.inner.jit, self.threads, args, None) }
    }

    /// Runs the kernel on `inputs` and returns its outputs as new C-order arrays, sized from
    /// the dims the inputs bind.
    pub fn run(&self, inputs: &[TensorRef<'_>]) -> Result<Vec<Array>, Error> {
        self.run_buffers(inputs)?
            .into_iter()
            .zip(self.outputs())
            .map(|((buffer, shape), out)| {
                Array::from_buffer(buffer, &shape).map_err(|e| Error::Argument {
                    kernel: self.name().to_string(),
                    message: format!("output `{}`: {e}", out.name),
                })
            })
            .collect()
    }

    /// Allocates the outputs, calls the kernel and returns each output's buffer and shape.
    fn run_buffers(&self, inputs: &[TensorRef<'_>]) -> Result<Vec<(Buffer, Vec<usize>)>, Error> {
        let (shapes, guessed) = self.output_shapes(inputs)?;
        let mut buffers = Vec::with_capacity(shapes.len());
        for (shape, out) in shapes.iter().zip(self.outputs()) {
            let oom = || Error::OutOfMemory {
                kernel: self.name().to_string(),
                output: out.name.clone(),
                dtype: out.dtype,
                shape: shape.iter().map(|&n| n as u64).collect(),
            };
            let len = einc_runtime::array::element_count(shape).ok_or_else(oom)?;
            buffers.push(Buffer::try_zeros(out.dtype, len).map_err(|_| oom())?);
        }
        let mut views = buffers
            .iter_mut()
            .zip(&shapes)
            .map(|(b, shape)| match b {
                Buffer::F32(v) => TensorMut::contiguous(v, shape),
                Buffer::F64(v) => TensorMut::contiguous(v, shape),
                Buffer::I32(v) => TensorMut::contiguous(v, shape),
                Buffer::I64(v) => TensorMut::contiguous(v, shape),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.call(inputs, &mut views)?;
        drop(views);
        if guessed {
            // Only a call the entry point rejects leaves an output dim unbound.
            return Err(Error::Argument {
                kernel: self.name().to_string(),
                message: "the inputs do not bind every output dim".into(),
            });
        }
        Ok(buffers.into_iter().zip(shapes).collect())
    }

    /// The output shapes that `inputs` imply, and whether some extent had to be guessed
    /// because an input is missing or has the wrong rank (the call will then be rejected, with
    /// a message naming the input). Errors when an output uses a dim that no input carries:
    /// such a kernel must be called with [`Kernel::call`] and caller-sized outputs.
    fn output_shapes(&self, inputs: &[TensorRef<'_>]) -> Result<(Vec<Vec<usize>>, bool), Error> {
        let sig = self.signature();
        let mut binder = Binder::new(sig);
        for (n, (t, a)) in inputs.iter().zip(self.inputs()).enumerate() {
            if t.shape().len() == a.shape.len() {
                let shape: Vec<i64> = t.shape().iter().map(|&e| e as i64).collect();
                // A mismatch is left for the entry point to report.
                let _ = binder.bind(n, &shape);
            }
        }
        let mut guessed = false;
        let mut shapes = Vec::with_capacity(self.outputs().len());
        for out in self.outputs() {
            let mut shape = Vec::with_capacity(out.shape.len());
            for e in &out.shape {
                let n = match binder.extent(e) {
                    Some(n) => n,
                    None if self.inputs().iter().any(|i| i.shape.contains(e)) => {
                        guessed = true;
                        0
                    }
                    None => {
                        return Err(Error::Argument {
                            kernel: sig.name.clone(),
                            message: format!(
                                "output `{}` uses a dim that no input carries, so its shape is \
                                 unknown: call the kernel with an output view of the size you want",
                                out.name
                            ),
                        })
                    }
                };
                shape.push(n);
            }
            let shape = shape
                .iter()
                .map(|&n| usize::try_from(n))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| Error::OutOfMemory {
                    kernel: sig.name.clone(),
                    output: out.name.clone(),
                    dtype: out.dtype,
                    shape: shape.clone(),
                })?;
            shapes.push(shape);
        }
        Ok((shapes, guessed))
    }

    /// A variant of this kernel compiled with every symbolic dim that `input_shapes` bind
    /// fixed to its value, so that the generated loops have constant bounds and the pipeline
    /// plans with the real extents (contraction order, schedules). Variants are
    /// cached by the dims' values: asking again for the same values returns the same code.
    pub fn specialize(&self, input_shapes: &[&[usize]]) -> Result<Kernel, Error> {
        let sig = self.signature();
        let fail = |message: String| Error::Argument {
            kernel: sig.name.clone(),
            message,
        };
        if input_shapes.len() != sig.ninputs {
            return Err(fail(format!(
                "the kernel takes {} input(s), but {} shape(s) were given",
                sig.ninputs,
                input_shapes.len()
            )));
        }
        let mut binder = Binder::new(sig);
        for (n, (shape, a)) in input_shapes.iter().zip(self.inputs()).enumerate() {
            if shape.len() != a.shape.len() {
                return Err(fail(format!(
                    "{} has rank {}, but the kernel declares rank {}",
                    call::who(sig, n),
                    shape.len(),
                    a.shape.len()
                )));
            }
            let shape = shape
                .iter()
                .map(|&e| i64::try_from(e).map_err(|_| Error::View(ViewError::TooLarge)))
                .collect::<Result<Vec<i64>, Error>>()?;
            binder.bind(n, &shape).map_err(fail)?;
        }
        let key = binder.values();
        if key.iter().all(Option::is_none) {
            return Ok(self.clone());
        }
        let with_threads = |k: &Kernel| Kernel {
            threads: self.threads,
            ..k.clone()
        };
        let mut variants = self
            .inner
            .variants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = variants.get(&key) {
            return Ok(with_threads(k));
        }
        let func = self
            .inner
            .module
            .func(&sig.name)
            .ok_or_else(|| fail("the kernel is missing from its program".into()))?;
        let mut dims = self.inner.module.dims.clone();
        let mut options = (*self.inner.options).clone();
        for (d, v) in dims.iter_mut().zip(&key) {
            if v.is_some() {
                d.value = *v;
                // The dim is fixed now: a hint for it would be redundant or contradict it.
                options.dims.remove(&d.name);
            }
        }
        let module = tensor::Module {
            dims,
            funcs: vec![func.clone()],
        };
        let kernel = Program::from_module_with(module, &options)?.kernel(&sig.name)?;
        variants.insert(key, kernel.clone());
        Ok(with_threads(&kernel))
    }
}
