//! The C header of a library built by `einc build`: the ABI's shared types and constants
//! (`docs/abi.md`), then each kernel's entry points with its arguments, dtypes and dims in a
//! comment. The text is pinned by a test, so any change to it is deliberate.

use super::last_error::LAST_ERROR_SYMBOL;
use super::object::{
    check_symbols, info_symbol, kernel_info, ABI_VERSION_SYMBOL, KERNEL_LIST_SYMBOL,
    SET_PARALLEL_FOR_SYMBOL,
};
use super::{entry_symbol, kernel_signature, CodegenError};
use crate::ir::loops::{self, Extent};
use einc_runtime::abi::{status, ABI_VERSION};
use einc_runtime::DType;
use std::fmt::Write;

/// The part of every header that does not depend on the kernels. It is guarded by
/// `EINC_ABI_VERSION`, so that the headers of several einc libraries can be included together.
fn common_text() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#ifndef EINC_ABI_VERSION");
    let _ = writeln!(s, "#define EINC_ABI_VERSION {ABI_VERSION}");
    s.push_str("\n/* Element types (einc_tensor.dtype, einc_arg_info.dtype). */\n");
    for d in [DType::F32, DType::F64, DType::I32, DType::I64] {
        let _ = writeln!(s, "#define EINC_{} {}", d.name().to_uppercase(), d.code());
    }
    s.push_str(
        "\n/* Status codes. A kernel checks its arguments before touching any element and returns\n \
         * the first failure; on any error it writes nothing. */\n",
    );
    let codes = [
        (
            "EINC_OK",
            status::OK,
            "success: the outputs hold the results",
        ),
        (
            "EINC_BAD_ARG_COUNT",
            status::BAD_ARG_COUNT,
            "nargs is not the argument count, or args is null",
        ),
        (
            "EINC_BAD_DTYPE",
            status::BAD_DTYPE,
            "an argument's dtype differs",
        ),
        (
            "EINC_BAD_RANK",
            status::BAD_RANK,
            "an argument's rank differs",
        ),
        (
            "EINC_BAD_SHAPE",
            status::BAD_SHAPE,
            "a negative or wrong extent, or inconsistent dims",
        ),
        (
            "EINC_NULL_POINTER",
            status::NULL_POINTER,
            "null shape/strides (rank > 0) or data (elements > 0)",
        ),
        (
            "EINC_ALIASING",
            status::ALIASING,
            "an output overlaps another argument",
        ),
        (
            "EINC_OUT_OF_MEMORY",
            status::OUT_OF_MEMORY,
            "a temporary buffer could not be allocated",
        ),
    ];
    for (name, code, when) in codes {
        let define = format!("#define {name} {code}");
        let _ = writeln!(s, "{define:<29} /* {when} */");
    }
    s.push_str(
        r"
/* A tensor argument. Element [i0, i1, ...] is at
 * data + (i0*strides[0] + i1*strides[1] + ...) * sizeof(element). */
typedef struct {
    void          *data;     /* element [0, ..., 0]                   */
    int32_t        dtype;    /* EINC_F32, EINC_F64, EINC_I32, EINC_I64 */
    int32_t        rank;     /* number of axes                        */
    const int64_t *shape;    /* rank extents                          */
    const int64_t *strides;  /* rank strides, in elements (not bytes) */
} einc_tensor;

/* One argument of a kernel, as einc_K_info() describes it. */
typedef struct {
    const char    *name;       /* as declared                                          */
    int32_t        dtype;      /* dtype code                                           */
    int32_t        rank;
    int32_t        is_output;  /* 0 for inputs, 1 for outputs                          */
    int32_t        reserved;   /* 0                                                    */
    const int64_t *extents;    /* rank entries: e >= 0 fixed extent; e < 0 is dim -e-1 */
} einc_arg_info;

/* A kernel's signature: what einc_K_info() returns. */
typedef struct {
    int32_t              abi_version;  /* EINC_ABI_VERSION                  */
    int32_t              nargs;        /* inputs + outputs                  */
    int32_t              ninputs;      /* the first ninputs args are inputs */
    int32_t              ndims;
    const char          *name;
    const einc_arg_info *args;         /* nargs entries                     */
    const char *const   *dim_names;    /* ndims entries                     */
} einc_kernel_info;

/* A task of a parallel loop: runs iterations lo..hi with the loop's closure; returns 0. */
typedef int32_t (*einc_task_fn)(const void *closure, int64_t lo, int64_t hi);

/* A host's thread pool (einc_set_parallel_for): runs task(closure, lo, hi) for disjoint ranges
 * covering 0..n, each of at least grain iterations but the last, on any threads, and returns
 * 0 (or the first non-zero status of a task) once every call has returned. */
typedef int32_t (*einc_parallel_for_fn)(void *ctx, einc_task_fn task, const void *closure,
                                        int64_t n, int64_t grain);

#endif /* EINC_ABI_VERSION */
",
    );
    s
}

/// An extent as the source wrote it: a number, a symbolic dim, or `N=3` for a fixed dim.
fn show_extent(sig: &super::KernelSignature, e: &Extent) -> String {
    match e {
        Extent::Fixed(n) => n.to_string(),
        Extent::Dim(name) => match sig
            .dims
            .iter()
            .find(|d| &d.name == name)
            .and_then(|d| d.value)
        {
            Some(v) => format!("{name}={v}"),
            None => name.clone(),
        },
    }
}

/// The header for the library `lib{name}.so` built from `source` (shown as given) with every
/// kernel of `m`.
pub fn header_text(m: &loops::Module, name: &str, source: &str) -> Result<String, CodegenError> {
    check_symbols(m)?;
    let guard: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "/* {name}.h: the C interface of lib{name}.so, generated by `einc build` from {source}.\n \
         * Do not edit. Calls follow the einc kernel ABI version {ABI_VERSION} (docs/abi.md): each\n \
         * kernel takes its inputs, then its outputs, as an array of einc_tensor descriptors. */"
    );
    let _ = writeln!(s, "#ifndef EINC_{guard}_H\n#define EINC_{guard}_H\n");
    s.push_str("#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    s.push_str(&common_text());
    let _ = writeln!(
        s,
        "\n/* The ABI version the library was built for: EINC_ABI_VERSION. */\nint32_t {ABI_VERSION_SYMBOL}(void);"
    );
    let _ = writeln!(
        s,
        "\n/* What went wrong in the last call of an einc kernel on this thread that returned a\n \
         * status other than EINC_OK, e.g. \"input `X` axis 1 has extent 7, but dim `D` is 8, as\n \
         * bound by input `WQ` axis 0\"; NULL when no call on this thread has failed. Successful\n \
         * calls leave it unchanged (like errno). The text stays valid until the next failing\n \
         * call on the same thread. */\nconst char *{LAST_ERROR_SYMBOL}(void);"
    );
    let _ = writeln!(
        s,
        "\n/* Every kernel of the library, as einc_K_info() describes it, then NULL. */\n\
         const einc_kernel_info *const *{KERNEL_LIST_SYMBOL}(void);"
    );
    let _ = writeln!(
        s,
        "\n/* Runs the library's parallel loops on the host's pool: fn(ctx, ...) from now on, or the\n \
         * library's own pool again when fn is NULL. The library's pool starts on the first\n \
         * parallel loop with EINC_NUM_THREADS threads, else one per CPU the process may run on.\n \
         * Results are bit-identical for any pool and thread count. Call it while no kernel of the\n \
         * library runs. */\nvoid {SET_PARALLEL_FOR_SYMBOL}(einc_parallel_for_fn fn, void *ctx);"
    );
    for f in m.kernels() {
        let sig = kernel_signature(m, f)?;
        let info = kernel_info(&sig)?;
        let names = |outputs: bool| {
            info.args
                .iter()
                .filter(|a| a.is_output == outputs)
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "\n/* {}({}) -> ({})\n *",
            info.name,
            names(false),
            names(true)
        );
        let width = info.args.iter().map(|a| a.name.len()).max().unwrap_or(0);
        let index_width = info.args.len().saturating_sub(1).to_string().len();
        for (i, (a, arg)) in info.args.iter().zip(&sig.args).enumerate() {
            let shape: Vec<String> = arg.shape.iter().map(|e| show_extent(&sig, e)).collect();
            let _ = writeln!(
                s,
                " *   args[{i:>index_width$}]  {:<width$}  {:<6}  {}[{}]",
                a.name,
                if a.is_output { "output" } else { "input" },
                a.dtype.name(),
                shape.join(", ")
            );
        }
        let _ = writeln!(s, " *");
        if info.dim_names.is_empty() {
            let _ = writeln!(s, " * Every extent is fixed.");
        } else {
            let (noun, verb) = match info.dim_names.len() {
                1 => ("Dim", "is"),
                _ => ("Dims", "are"),
            };
            let _ = writeln!(
                s,
                " * {noun} {} {verb} bound from the extents, left to right; the first binding wins.",
                info.dim_names.join(", ")
            );
        }
        let _ = writeln!(
            s,
            " * nargs = {}. */\nint32_t {}(const einc_tensor *args, int64_t nargs);\nconst einc_kernel_info *{}(void);",
            info.args.len(),
            entry_symbol(&info.name),
            info_symbol(&info.name)
        );
    }
    let _ = writeln!(
        s,
        "\n#ifdef __cplusplus\n}}\n#endif\n\n#endif /* EINC_{guard}_H */"
    );
    Ok(s)
}
