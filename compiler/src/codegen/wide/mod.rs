//! Wide micro-kernels: `gemm` micro-kernels as x86-64 machine code with 256-bit (AVX2) or
//! 512-bit (AVX-512) vectors (issue #11), in place of the 128-bit Cranelift ones of
//! [`super::ukernel`].
//!
//! Cranelift 0.135 lowers only 128-bit vectors on x86-64, which caps its kernels at half of an
//! AVX2 core's FMA peak (a quarter of an AVX-512 core's). The generator here ([`kernel`])
//! assembles a kernel with the same
//! calling convention and the same semantics, bit for bit (`docs/ukernel.md`), with iced-x86;
//! [`super::ukernel::Ukernels`] defines those bytes for the kernel's `FuncId` with
//! `Module::define_function_bytes`, so JIT modules and object files both carry them and the
//! bodies call them like any other function. Which kernels a module gets is its
//! [`UkernelIsa`], resolved from the target and the compile options by [`resolve`];
//! `docs/ukernel.md` ("Wide kernels") records the choices and their measurements.

mod cpuid;
pub(crate) mod dispatch;
mod kernel;

use super::isa::TargetCpu;
use super::{CodegenError, Target};
use crate::ir::loops::UkernelShape;
use iced_x86::code_asm::{AsmRegisterYmm, AsmRegisterZmm};
use std::fmt;

/// What the micro-kernels of a module are made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UkernelIsa {
    /// Cranelift's 128-bit vector code (SSE/AVX on x86-64, NEON on aarch64).
    #[default]
    Cranelift,
    /// AVX2 + FMA machine code with 256-bit vectors (x86-64); shapes the generator does not
    /// cover keep the Cranelift kernel.
    Avx2,
    /// AVX-512 (F, DQ, BW, VL: x86-64-v4) machine code with 512-bit vectors, 32 registers and
    /// opmask-register edge tiles (x86-64); shapes the generator does not cover keep the
    /// Cranelift kernel.
    Avx512,
}

impl UkernelIsa {
    /// Every choice, in order of width.
    pub const ALL: [UkernelIsa; 3] = [UkernelIsa::Cranelift, UkernelIsa::Avx2, UkernelIsa::Avx512];

    /// The name options spell it with: `cranelift`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            UkernelIsa::Cranelift => "cranelift",
            UkernelIsa::Avx2 => "avx2",
            UkernelIsa::Avx512 => "avx512",
        }
    }

    /// Reads a name written by [`UkernelIsa::name`].
    pub fn parse(s: &str) -> Option<UkernelIsa> {
        UkernelIsa::ALL.into_iter().find(|i| i.name() == s)
    }

    /// The width in bytes of the vectors the micro-kernels use.
    pub fn vector_bytes(self) -> u32 {
        match self {
            UkernelIsa::Cranelift => 16,
            UkernelIsa::Avx2 => 32,
            UkernelIsa::Avx512 => 64,
        }
    }

    /// The vector registers a micro-kernel's k loop may use: the whole ymm (zmm) file for the
    /// generated kernels (they allocate their registers themselves); `None` for Cranelift's,
    /// whose budget is measured per target (`target::Machine::tile_registers`).
    pub fn tile_registers(self) -> Option<u32> {
        match self {
            UkernelIsa::Cranelift => None,
            UkernelIsa::Avx2 => Some(16),
            UkernelIsa::Avx512 => Some(32),
        }
    }

    /// The most vectors per row of a register tile the generated kernels cover (`None` for
    /// Cranelift's: the loop verifier's limit).
    pub fn tile_vectors(self) -> Option<u32> {
        match self {
            UkernelIsa::Cranelift => None,
            UkernelIsa::Avx2 => Some(<AsmRegisterYmm as kernel::Width>::MAX_NV as u32),
            UkernelIsa::Avx512 => Some(<AsmRegisterZmm as kernel::Width>::MAX_NV as u32),
        }
    }

    /// What [`cpu_level_code`] answers on a CPU that runs these kernels (every x86-64 CPU runs
    /// Cranelift's).
    pub(crate) fn cpu_level(self) -> i64 {
        match self {
            UkernelIsa::Cranelift => 1,
            UkernelIsa::Avx2 => 2,
            UkernelIsa::Avx512 => 3,
        }
    }

    /// The CPU features these kernels need, for messages.
    fn features(self) -> &'static str {
        match self {
            UkernelIsa::Cranelift => "none",
            UkernelIsa::Avx2 => "AVX2 and FMA",
            UkernelIsa::Avx512 => "AVX-512 F, DQ, BW and VL",
        }
    }

    /// Whether the machine the compiler runs on can execute these kernels.
    pub fn runs_on_host(self) -> bool {
        match self {
            UkernelIsa::Cranelift => true,
            UkernelIsa::Avx2 => host_has_avx2_fma(),
            UkernelIsa::Avx512 => host_has_avx2_fma() && host_has_avx512(),
        }
    }

    /// Whether micro-kernel `shape` is generated as this machine code (else a module with this
    /// choice keeps the Cranelift kernel for it).
    pub fn covers(self, shape: UkernelShape) -> bool {
        match self {
            UkernelIsa::Cranelift => false,
            UkernelIsa::Avx2 => kernel::supports::<AsmRegisterYmm>(shape),
            UkernelIsa::Avx512 => kernel::supports::<AsmRegisterZmm>(shape),
        }
    }
}

impl fmt::Display for UkernelIsa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(target_arch = "x86_64")]
fn host_has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn host_has_avx2_fma() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn host_has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn host_has_avx512() -> bool {
    false
}

/// Whether `target` is an x86-64 machine.
fn is_x86_64(target: &Target) -> bool {
    match target {
        Target::Host => cfg!(target_arch = "x86_64"),
        Target::Triple(t) => t.architecture == target_lexicon::Architecture::X86_64,
    }
}

/// The micro-kernels for `target`: `forced` when given (an error when the target cannot run
/// them), else the widest the target is known to run: AVX-512 on an x86-64 host with AVX-512
/// F/DQ/BW/VL (the test suite has run them on such a host: `docs/testing.md`), AVX2 on one
/// with AVX2 and FMA, Cranelift's elsewhere (a cross target's baseline has neither).
pub fn resolve(target: &Target, forced: Option<UkernelIsa>) -> Result<UkernelIsa, CodegenError> {
    match forced {
        None => Ok(if *target != Target::Host {
            UkernelIsa::Cranelift
        } else if UkernelIsa::Avx512.runs_on_host() {
            UkernelIsa::Avx512
        } else if UkernelIsa::Avx2.runs_on_host() {
            UkernelIsa::Avx2
        } else {
            UkernelIsa::Cranelift
        }),
        Some(UkernelIsa::Cranelift) => Ok(UkernelIsa::Cranelift),
        Some(isa) if !is_x86_64(target) => Err(CodegenError::Target(format!(
            "{isa} micro-kernels need an x86-64 target"
        ))),
        Some(isa) if *target == Target::Host && !isa.runs_on_host() => {
            Err(CodegenError::Target(format!(
                "this machine cannot run {isa} micro-kernels (they need {})",
                isa.features()
            )))
        }
        Some(isa) => Ok(isa),
    }
}

/// How a module gets its micro-kernels: kernels of one kind, or (`dispatch`) both `isa`'s and
/// Cranelift's for every shape `isa` covers, chosen once per process from CPUID at the first
/// call (a library that must run on CPUs with and without AVX2: `--target-cpu x86-64-v2`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UkernelPlan {
    /// The widest kernels the module carries.
    pub isa: UkernelIsa,
    /// Whether each call chooses between `isa`'s kernel and Cranelift's from the CPU.
    pub dispatch: bool,
}

impl UkernelPlan {
    /// Kernels of kind `isa` only.
    pub fn fixed(isa: UkernelIsa) -> UkernelPlan {
        UkernelPlan {
            isa,
            dispatch: false,
        }
    }
}

impl fmt::Display for UkernelPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dispatch {
            write!(
                f,
                "{} or cranelift, chosen from CPUID at the first call",
                self.isa
            )
        } else {
            write!(f, "{}", self.isa)
        }
    }
}

/// The micro-kernels of a module for `target` at CPU level `cpu`, `forced` or chosen:
/// - `native`: [`resolve`] (the host's widest; a cross target's baseline: Cranelift's);
/// - `x86-64-v3`: AVX2 (the level has it), `x86-64-v4`: AVX-512, or `forced`;
/// - `x86-64-v2`: AVX2 (or the forced wide kernels) with Cranelift's beside it, chosen by
///   CPUID ([`UkernelPlan::dispatch`]), unless Cranelift's are forced: the library runs on any
///   x86-64-v2 CPU.
pub fn plan(
    target: &Target,
    cpu: TargetCpu,
    forced: Option<UkernelIsa>,
) -> Result<UkernelPlan, CodegenError> {
    if cpu == TargetCpu::Native {
        return resolve(target, forced).map(UkernelPlan::fixed);
    }
    if !is_x86_64(target) {
        return Err(CodegenError::Target(format!(
            "--target-cpu {cpu} is an x86-64 level, and the target is not x86-64"
        )));
    }
    let isa = forced.unwrap_or(if cpu == TargetCpu::X86_64V4 {
        UkernelIsa::Avx512
    } else {
        UkernelIsa::Avx2
    });
    Ok(UkernelPlan {
        isa,
        dispatch: cpu == TargetCpu::X86_64V2 && isa != UkernelIsa::Cranelift,
    })
}

/// The machine code of `int64_t einc_cpu_level(void)`: 3 when the CPU runs the AVX-512
/// kernels, 2 when it runs the AVX2 ones (CPUID reports AVX, FMA, OSXSAVE and, in leaf 7,
/// AVX2, and XCR0 has the SSE and AVX state enabled, so the OS saves ymm registers; for 3 also
/// AVX-512 F, DQ, BW and VL in leaf 7 and the opmask and zmm state in XCR0), else 1
/// ([`UkernelIsa::cpu_level`]). A leaf that saves `rbx` (CPUID writes it).
pub(crate) fn cpu_level_code() -> Result<Vec<u8>, CodegenError> {
    cpuid::assemble().map_err(|e| CodegenError::Target(format!("assembling the CPU check: {e}")))
}

/// A generated kernel: its bytes, of which the first `code_len` are instructions and the rest
/// its constants.
pub(crate) struct Assembled {
    pub bytes: Vec<u8>,
    pub code_len: usize,
}

/// The machine code of micro-kernel `shape` in `isa`, which must cover it.
pub(crate) fn assemble(isa: UkernelIsa, shape: UkernelShape) -> Result<Assembled, CodegenError> {
    let err = |m: String| CodegenError::Unsupported {
        kernel: super::ukernel::symbol(shape),
        message: m,
    };
    let code = match isa {
        _ if !isa.covers(shape) => return Err(err(format!("no {isa} kernel of this shape"))),
        UkernelIsa::Avx512 => kernel::assemble::<AsmRegisterZmm>(shape),
        _ => kernel::assemble::<AsmRegisterYmm>(shape),
    };
    code.map_err(|e| err(format!("assembling the {isa} kernel: {e}")))
}

/// A listing of a generated kernel in AT&T syntax: one instruction per line with its offset,
/// then its constants as bytes.
pub(crate) fn disassemble(code: &Assembled) -> String {
    use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction};
    let (insts, data) = code.bytes.split_at(code.code_len.min(code.bytes.len()));
    let mut decoder = Decoder::with_ip(64, insts, 0, DecoderOptions::NONE);
    let mut formatter = GasFormatter::new();
    let mut text = String::new();
    let mut line = String::new();
    let mut inst = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut inst);
        line.clear();
        formatter.format(&inst, &mut line);
        text.push_str(&format!("  {:5x}:  {line}\n", inst.ip()));
    }
    for (n, chunk) in data.chunks(16).enumerate() {
        let bytes: Vec<String> = chunk.iter().map(|b| format!("0x{b:02x}")).collect();
        let at = code.code_len + 16 * n;
        text.push_str(&format!("  {at:5x}:  .byte {}\n", bytes.join(", ")));
    }
    text
}
