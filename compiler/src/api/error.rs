//! The API's error type: everything that can go wrong from source text to a kernel call.

use super::view::ViewError;
use crate::codegen::CodegenError;
use crate::compile::CompileError;
use crate::sema::einsum::EinsumError;
use einc_runtime::abi::status;
use einc_runtime::DType;
use std::fmt;
use std::path::PathBuf;

/// Why compiling or calling a kernel failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A source file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The `.ein` source has errors.
    Source {
        /// Every diagnostic (warnings included), rendered as text with `file:line:col`
        /// locations and the offending source lines.
        rendered: String,
        /// How many of them are errors.
        errors: usize,
    },
    /// A subscripts string does not apply to the operands.
    Einsum {
        /// The subscripts as given.
        subscripts: String,
        /// What is wrong and where.
        error: EinsumError,
    },
    /// The compiler's pipeline failed: compile options that do not fit the program (an
    /// unknown dim, a bad pipeline string), or a pass failed (a compiler bug).
    Compile(CompileError),
    /// Code generation failed.
    Codegen(CodegenError),
    /// The program has no kernel of that name.
    UnknownKernel {
        /// The name asked for.
        name: String,
        /// The kernels the program has.
        available: Vec<String>,
    },
    /// A view could not be built over a slice.
    View(ViewError),
    /// Arguments the kernel cannot take, found before calling it (when sizing outputs,
    /// converting results or specialising); the call's own checks are [`Error::Call`].
    Argument {
        /// The kernel.
        kernel: String,
        /// What is wrong, naming the argument.
        message: String,
    },
    /// The kernel's entry point rejected the call (nothing was written).
    Call {
        /// The kernel.
        kernel: String,
        /// The status the entry point returned.
        status: Status,
        /// Which argument is wrong and how.
        message: String,
    },
    /// An output buffer could not be allocated.
    OutOfMemory {
        /// The kernel.
        kernel: String,
        /// The output concerned.
        output: String,
        /// Its element type.
        dtype: DType,
        /// Its shape, as the inputs bound it.
        shape: Vec<u64>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, message } => write!(f, "cannot read {}: {message}", path.display()),
            Error::Source { rendered, errors } => {
                let plural = if *errors == 1 { "" } else { "s" };
                write!(f, "{errors} error{plural} in the source:\n{rendered}")
            }
            Error::Einsum { subscripts, error } => {
                f.write_str(&show_einsum_error(error, subscripts))
            }
            Error::Compile(e) => write!(f, "{e}"),
            Error::Codegen(e) => write!(f, "{e}"),
            Error::UnknownKernel { name, available } if available.is_empty() => {
                write!(f, "no kernel `{name}`: the program defines no kernels")
            }
            Error::UnknownKernel { name, available } => write!(
                f,
                "no kernel `{name}`; the program defines: {}",
                available.join(", ")
            ),
            Error::View(e) => write!(f, "invalid view: {e}"),
            Error::Argument { kernel, message } => write!(f, "kernel `{kernel}`: {message}"),
            Error::Call {
                kernel,
                status,
                message,
            } => write!(
                f,
                "kernel `{kernel}` rejected the call ({status}): {message}"
            ),
            Error::OutOfMemory {
                kernel,
                output,
                dtype,
                shape,
            } => {
                let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
                write!(
                    f,
                    "kernel `{kernel}`: cannot allocate output `{output}` ({}[{}]): {}",
                    dtype.name(),
                    dims.join(", "),
                    bytes_text(shape, *dtype)
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// "320000000000 bytes (298 GiB)": the size of an array of `shape` and `dtype`.
fn bytes_text(shape: &[u64], dtype: DType) -> String {
    let bytes = shape
        .iter()
        .try_fold(dtype.size_bytes() as u128, |acc, &n| {
            acc.checked_mul(u128::from(n))
        });
    let Some(bytes) = bytes else {
        return "more than 2^128 bytes".into();
    };
    let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut scaled = bytes as f64;
    let mut unit = None;
    for u in units {
        if scaled < 1024.0 {
            break;
        }
        scaled /= 1024.0;
        unit = Some(u);
    }
    match unit {
        None => format!("{bytes} bytes"),
        Some(u) => format!("{bytes} bytes ({scaled:.3} {u})"),
    }
}

impl From<ViewError> for Error {
    fn from(e: ViewError) -> Error {
        Error::View(e)
    }
}

impl From<CompileError> for Error {
    fn from(e: CompileError) -> Error {
        Error::Compile(e)
    }
}

impl From<CodegenError> for Error {
    fn from(e: CodegenError) -> Error {
        Error::Codegen(e)
    }
}

/// A non-zero status code of a kernel entry point (see `docs/abi.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Wrong number of arguments.
    BadArgCount,
    /// An argument's dtype differs from the declaration.
    BadDType,
    /// An argument's rank differs from the declaration.
    BadRank,
    /// An extent is negative, differs from a fixed extent or from an earlier binding of its
    /// dim, or the addressed range overflows.
    BadShape,
    /// A null pointer where memory is needed.
    NullPointer,
    /// An output overlaps another argument.
    Aliasing,
    /// A temporary could not be allocated.
    OutOfMemory,
    /// A body the JIT compiles on its first call failed to compile.
    CompileFailed,
    /// A code this version does not know.
    Unknown(i32),
}

impl Status {
    /// The status for a non-zero code.
    pub fn from_code(code: i32) -> Status {
        match code {
            status::BAD_ARG_COUNT => Status::BadArgCount,
            status::BAD_DTYPE => Status::BadDType,
            status::BAD_RANK => Status::BadRank,
            status::BAD_SHAPE => Status::BadShape,
            status::NULL_POINTER => Status::NullPointer,
            status::ALIASING => Status::Aliasing,
            status::OUT_OF_MEMORY => Status::OutOfMemory,
            status::COMPILE_FAILED => Status::CompileFailed,
            other => Status::Unknown(other),
        }
    }

    /// The ABI code.
    pub fn code(self) -> i32 {
        match self {
            Status::BadArgCount => status::BAD_ARG_COUNT,
            Status::BadDType => status::BAD_DTYPE,
            Status::BadRank => status::BAD_RANK,
            Status::BadShape => status::BAD_SHAPE,
            Status::NullPointer => status::NULL_POINTER,
            Status::Aliasing => status::ALIASING,
            Status::OutOfMemory => status::OUT_OF_MEMORY,
            Status::CompileFailed => status::COMPILE_FAILED,
            Status::Unknown(c) => c,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status {}: {}",
            self.code(),
            status::describe(self.code())
        )
    }
}

/// An einsum error with the subscripts and a caret under the offending bytes when it has a
/// location:
///
/// ```text
/// output label `j` appears more than once
///   | ij->jij
///   |       ^
/// ```
pub fn show_einsum_error(e: &EinsumError, subscripts: &str) -> String {
    let Some(span) = &e.span else {
        return e.message.clone();
    };
    // Columns count characters, not bytes, so a non-ASCII character gets one caret.
    let col = subscripts
        .get(..span.start)
        .map_or(0, |s| s.chars().count());
    let width = subscripts
        .get(span.clone())
        .map_or(1, |s| s.chars().count().max(1));
    format!(
        "{}\n  | {subscripts}\n  | {}{}",
        e.message,
        " ".repeat(col),
        "^".repeat(width)
    )
}
