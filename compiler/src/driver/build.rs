//! `einc build FILE [-o DIR|PATH] [--target TRIPLE] [--target-cpu CPU] [--kernel K ...]
//! [--emit obj|asm|header|lib]`:
//! compiles kernels ahead of time into a shared library `lib<name>.so` and its C header
//! `<name>.h` (`<name>` is the file's stem), or just the object file, the disassembly or the
//! header. The library is linked by the system C compiler (`$CC`, else `cc`, or
//! `<arch>-linux-gnu-gcc` for another architecture), which also compiles the library's thread
//! pool (`runtime/c/einc_parallel.c`, docs/threads.md) into it; it depends only on libc and
//! libm (and libpthread where that is a separate library). An object file alone
//! (`--emit obj`) runs its parallel loops serially and needs nothing new.
//!
//! Nothing is written until everything has succeeded: the object is linked in a private
//! temporary directory, and the results are staged beside their destinations and renamed into
//! place together, so a failure leaves no partial files (nor a directory `-o` had to create).

use super::compile_args::CompileArgs;
use crate::codegen::{header, isa, object, CodegenError, Target, TargetCpu};
use crate::compile::CompileOptions;
use crate::ir::tensor;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use target_lexicon::{Architecture, OperatingSystem, HOST};

/// Arguments of `einc build`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .ein file.
    pub file: PathBuf,
    /// Where to write: a directory (existing, written with a trailing `/`, or for a library
    /// any path without an extension) receives `lib<name>.so` and `<name>.h` (or `<name>.o`,
    /// `<name>.asm`, `<name>.h` with --emit); any other path names the library (or the one
    /// emitted file; `-` is standard output for --emit asm and header), and the header goes
    /// beside the library. Default: `.`.
    #[arg(short = 'o', long = "output", value_name = "DIR|PATH")]
    pub output: Option<PathBuf>,
    /// The target: `host` or a triple such as `aarch64-unknown-linux-gnu` (x86-64 and aarch64).
    #[arg(long, default_value = "host", value_name = "TRIPLE")]
    pub target: String,
    /// The x86-64 CPU the code may assume: native (the target's own features: all of the
    /// host's, a triple's baseline), x86-64-v2 (runs on any x86-64-v2 CPU; carries the AVX2
    /// micro-kernels and Cranelift's and chooses once per process from CPUID), x86-64-v3 (AVX2
    /// kernels only) or x86-64-v4 (AVX-512 kernels only).
    #[arg(long, default_value = "native", value_name = "CPU", value_parser = parse_cpu)]
    pub target_cpu: TargetCpu,
    /// Build only this kernel (repeatable); default: every kernel of the file.
    #[arg(long = "kernel", value_name = "K")]
    pub kernels: Vec<String>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Emit::Lib)]
    pub emit: Emit,
    /// How to compile (`-O`, `--dims`): the pipeline `einc ir` shows with the same flags.
    #[command(flatten)]
    pub compile: CompileArgs,
}

/// What `einc build` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// The relocatable object file `<name>.o`.
    Obj,
    /// Cranelift's disassembly of the generated machine code, `<name>.asm`.
    Asm,
    /// The C header `<name>.h`.
    Header,
    /// The shared library `lib<name>.so` and its header `<name>.h`.
    Lib,
}

/// `--target-cpu`.
fn parse_cpu(s: &str) -> Result<TargetCpu, String> {
    TargetCpu::parse(s).ok_or_else(|| {
        let names: Vec<&str> = TargetCpu::ALL.iter().map(|c| c.name()).collect();
        format!("unknown CPU `{s}`: expected {}", names.join(", "))
    })
}

/// Runs `einc build`.
pub fn run(args: Args, color: bool) -> ExitCode {
    let target = match check_target(&args) {
        Ok(target) => target,
        Err(message) => return super::fail(message),
    };
    let (module, file) = match super::load_module_and_source(&args.file, color) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let mut opts = match args.compile.options(&module, Some(&file), color) {
        Ok(opts) => opts,
        Err(status) => return status,
    };
    opts.target = target;
    opts.cpu = args.target_cpu;
    match build(&module, &args, &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => super::fail(message),
    }
}

/// Parses the target and checks, before any work, that code can be generated for it and, for
/// a library, that it can be linked.
fn check_target(args: &Args) -> Result<Target, String> {
    let target = Target::parse(&args.target).map_err(|e| e.to_string())?;
    isa::build_isa_for(&target, args.target_cpu, true).map_err(|e| e.to_string())?;
    if args.emit == Emit::Lib {
        let linux = match &target {
            Target::Host => cfg!(target_os = "linux"),
            Target::Triple(t) => t.operating_system == OperatingSystem::Linux,
        };
        if !linux {
            return Err(format!(
                "einc build links shared libraries for Linux targets only, and `{}` is not one \
                 (use --emit obj to get the object file)",
                args.target
            ));
        }
        c_compiler(&target)?;
    }
    Ok(target)
}

fn build(module: &tensor::Module, args: &Args, opts: &CompileOptions) -> Result<(), String> {
    let target = &opts.target;
    let module = select_kernels(module, &args.kernels)?;
    let name = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kernels".into());
    let source = args
        .file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| super::display_path(&args.file));
    let dest = Dest::of(args.output.as_deref(), args.emit)?;
    let lm = crate::compile::compile(&module, opts).map_err(|e| e.to_string())?;
    let wide = opts.ukernel_plan().map_err(|e| e.to_string())?;
    let codegen = |e: CodegenError| e.to_string();
    let files = match args.emit {
        Emit::Obj => vec![(
            dest.file(&format!("{name}.o")),
            object::emit_object(&lm, target, opts.cpu, wide)
                .map_err(codegen)?
                .bytes,
        )],
        Emit::Asm => vec![(
            dest.file(&format!("{name}.asm")),
            object::asm_text(&lm, target, opts.cpu, wide)
                .map_err(codegen)?
                .into_bytes(),
        )],
        Emit::Header => vec![(
            dest.file(&format!("{name}.h")),
            header::header_text(&lm, &name, &source)
                .map_err(codegen)?
                .into_bytes(),
        )],
        Emit::Lib => {
            let header = header::header_text(&lm, &name, &source).map_err(codegen)?;
            let obj = object::emit_library_object(&lm, target, opts.cpu, wide).map_err(codegen)?;
            let lib = link(&obj.bytes, &name, target)?;
            vec![
                (dest.file(&format!("lib{name}.so")), lib),
                (dest.beside(&format!("{name}.h")), header.into_bytes()),
            ]
        }
    };
    match dest {
        Dest::Stdout => {
            for (_, bytes) in &files {
                print!("{}", String::from_utf8_lossy(bytes));
            }
            Ok(())
        }
        _ => commit(&files),
    }
}

/// The module restricted to the named kernels (all of them when none is named).
fn select_kernels(module: &tensor::Module, names: &[String]) -> Result<tensor::Module, String> {
    if names.is_empty() {
        return Ok(module.clone());
    }
    let mut funcs = Vec::with_capacity(names.len());
    for name in names {
        let f = module
            .func(name)
            .ok_or_else(|| super::unknown_kernel(module, name))?;
        if !funcs.iter().any(|g: &tensor::Function| g.name == f.name) {
            funcs.push(f.clone());
        }
    }
    Ok(tensor::Module {
        dims: module.dims.clone(),
        funcs,
    })
}

/// Where the results go.
enum Dest {
    /// Into this directory, each under its default name.
    Dir(PathBuf),
    /// The main result to this path; others into its directory.
    File(PathBuf),
    /// To standard output (text results only).
    Stdout,
}

impl Dest {
    fn of(output: Option<&Path>, emit: Emit) -> Result<Dest, String> {
        let Some(path) = output else {
            return Ok(Dest::Dir(PathBuf::from(".")));
        };
        if path.as_os_str() == "-" {
            return match emit {
                Emit::Asm | Emit::Header => Ok(Dest::Stdout),
                Emit::Obj | Emit::Lib => Err(
                    "`-o -` (standard output) works only with --emit asm or --emit header".into(),
                ),
            };
        }
        let trailing_slash = path.as_os_str().to_string_lossy().ends_with('/');
        // `-o out` for a library means a directory (two files are written); a library file
        // is named with its extension (`-o libattn.so`).
        let bare_for_lib = emit == Emit::Lib && path.extension().is_none();
        if trailing_slash || path.is_dir() || bare_for_lib {
            Ok(Dest::Dir(path.to_path_buf()))
        } else {
            Ok(Dest::File(path.to_path_buf()))
        }
    }

    /// The path of the main result, whose default file name is `default`.
    fn file(&self, default: &str) -> PathBuf {
        match self {
            Dest::Dir(d) => d.join(default),
            Dest::File(p) => p.clone(),
            Dest::Stdout => PathBuf::from("-"),
        }
    }

    /// The path of a secondary result: in the directory, or beside the main result.
    fn beside(&self, name: &str) -> PathBuf {
        match self {
            Dest::Dir(d) => d.join(name),
            Dest::File(p) => p.with_file_name(name),
            Dest::Stdout => PathBuf::from("-"),
        }
    }
}

/// The command that runs the C compiler for `target`: `$CC` (split on whitespace, so that
/// `CC="ccache gcc"` works) or the default compiler, which must be on `PATH`.
fn c_compiler(target: &Target) -> Result<Vec<String>, String> {
    if let Some(cc) = std::env::var_os("CC").filter(|cc| !cc.is_empty()) {
        let cc = cc.to_string_lossy().into_owned();
        let words: Vec<String> = cc.split_whitespace().map(str::to_string).collect();
        return match words.first() {
            Some(program) if find_program(program) => Ok(words),
            _ => Err(format!(
                "no C compiler found: CC is `{cc}`, which cannot be found; set CC to a C compiler"
            )),
        };
    }
    let default = default_c_compiler(target);
    if find_program(default) {
        Ok(vec![default.to_string()])
    } else {
        Err(format!("no C compiler found: set CC or install {default}"))
    }
}

/// `cc` for the host's architecture, else the Debian cross compiler's name.
fn default_c_compiler(target: &Target) -> &'static str {
    match target {
        Target::Triple(t) if t.architecture != HOST.architecture => match t.architecture {
            Architecture::Aarch64(_) => "aarch64-linux-gnu-gcc",
            _ => "x86_64-linux-gnu-gcc",
        },
        _ => "cc",
    }
}

/// Whether `program` names an existing file, directly (with a `/`) or through `PATH`.
fn find_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| !dir.as_os_str().is_empty() && dir.join(program).is_file())
    })
}

/// A private temporary directory, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let base = std::env::temp_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("einc-build-{}-{stamp}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| {
            format!(
                "cannot create a temporary directory in {}: {e}",
                super::display_path(&base)
            )
        })?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The C source of a library's thread pool, which defines the `einc_parallel_for` that the
/// library's parallel loops call and exports `einc_set_parallel_for`.
const POOL_SOURCE: &str = include_str!("../../../runtime/c/einc_parallel.c");

/// Links the object file and the thread pool into the shared library `lib<name>.so` and
/// returns its bytes.
fn link(obj: &[u8], name: &str, target: &Target) -> Result<Vec<u8>, String> {
    let cc = c_compiler(target)?;
    let tmp = TempDir::new()?;
    let obj_path = tmp.0.join(format!("{name}.o"));
    let pool_path = tmp.0.join("einc_parallel.c");
    let lib_name = format!("lib{name}.so");
    let lib_path = tmp.0.join(&lib_name);
    std::fs::write(&obj_path, obj).map_err(|e| format!("cannot write the object file: {e}"))?;
    std::fs::write(&pool_path, POOL_SOURCE)
        .map_err(|e| format!("cannot write the thread pool's source: {e}"))?;
    let (program, pre) = cc
        .split_first()
        .ok_or("no C compiler found: set CC or install cc")?;
    let mut cmd = Command::new(program);
    cmd.args(pre)
        .arg("-shared")
        .arg("-o")
        .arg(&lib_path)
        .arg(&obj_path)
        // The pool: only `einc_set_parallel_for` is exported (the source marks it).
        .args(["-O2", "-fPIC", "-fvisibility=hidden", "-pthread"])
        .arg(&pool_path)
        .arg(format!("-Wl,-soname,{lib_name}"))
        // The object's code needs no executable stack; say so rather than let the linker guess.
        .arg("-Wl,-z,noexecstack")
        // libm is needed only when a kernel calls `pow`; otherwise leave it out of NEEDED.
        // libpthread holds the pthread key functions of `einc_last_error` before glibc 2.34
        // (later, libc does, and --as-needed leaves libpthread out).
        .arg("-Wl,--as-needed")
        .arg("-lm")
        .arg("-lpthread");
    let shown = cc.join(" ");
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no C compiler found: cannot run `{shown}`"),
        _ => format!("cannot run the C compiler `{shown}`: {e}"),
    })?;
    if !out.status.success() {
        return Err(format!(
            "linking {lib_name} with `{shown}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    std::fs::read(&lib_path).map_err(|e| format!("cannot read the linked {lib_name}: {e}"))
}

/// Writes every file all or nothing: each goes to a temporary name beside its destination, and
/// only when all are written are they renamed into place. Missing directories are created; on
/// failure the temporaries, the files already renamed and the directories created are removed.
fn commit(files: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
    let mut created: Vec<PathBuf> = Vec::new();
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    let mut placed: Vec<&Path> = Vec::new();
    let result = stage(files, &mut created, &mut staged).and_then(|()| {
        for (tmp, path) in &staged {
            std::fs::rename(tmp, path).map_err(|e| {
                format!("{}: cannot write the file: {e}", super::display_path(path))
            })?;
            placed.push(path);
        }
        Ok(())
    });
    if result.is_err() {
        for (tmp, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        // A rename failed after others succeeded: a library without its header (or the
        // reverse) would be a partial result.
        for path in placed {
            let _ = std::fs::remove_file(path);
        }
        // Innermost first, so that each directory is empty when its turn comes.
        for dir in created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    result
}

/// Writes each file's temporary, creating missing directories (recorded in `created`).
fn stage<'a>(
    files: &'a [(PathBuf, Vec<u8>)],
    created: &mut Vec<PathBuf>,
    staged: &mut Vec<(PathBuf, &'a Path)>,
) -> Result<(), String> {
    for (path, bytes) in files {
        let shown = super::display_path(path);
        let name = path
            .file_name()
            .ok_or_else(|| format!("{shown}: the output path names no file"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_dirs(&dir, created)
            .map_err(|e| format!("cannot create the output directory {}: {e}", dir.display()))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = std::fs::write(&tmp, bytes);
        staged.push((tmp, path));
        written.map_err(|e| format!("{shown}: cannot write the file: {e}"))?;
    }
    Ok(())
}

/// Creates `dir` and its missing ancestors, recording each one created, outermost first.
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent, created)?;
    }
    std::fs::create_dir(dir)?;
    created.push(dir.to_path_buf());
    Ok(())
}
