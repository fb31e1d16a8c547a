//! Target selection: which instruction set code is generated for, and with which Cranelift
//! settings. The host is described by cranelift-native (so its features, e.g. FMA and AVX, are
//! used); other targets by a target-lexicon triple with the architecture's baseline features.
//! einc generates code for x86-64 and aarch64 only.

use super::CodegenError;
use cranelift_codegen::isa::{self, OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_object::{ObjectBuilder, ObjectModule};
use std::str::FromStr;
use target_lexicon::{Architecture, Triple};

/// A code generation target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The machine the compiler runs on, with every feature it has.
    Host,
    /// Another machine, given by its triple, with its architecture's baseline features.
    Triple(Triple),
}

impl Target {
    /// Parses `host` or a target triple such as `aarch64-unknown-linux-gnu`.
    pub fn parse(s: &str) -> Result<Target, CodegenError> {
        if s == "host" {
            return Ok(Target::Host);
        }
        let triple = Triple::from_str(s)
            .map_err(|e| CodegenError::Target(format!("invalid target triple `{s}`: {e}")))?;
        Ok(Target::Triple(triple))
    }
}

/// The CPU an x86-64 library is built for (`einc build --target-cpu`): which instruction-set
/// extensions Cranelift's code may use, and which micro-kernels the library carries
/// (`codegen::wide::plan`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TargetCpu {
    /// The target's own features: every feature of the host, a triple's baseline.
    #[default]
    Native,
    /// x86-64-v2 (SSE4.2, POPCNT): runs on any x86-64 CPU of the last 15 years.
    X86_64V2,
    /// x86-64-v3 (AVX2, FMA, BMI1/2, LZCNT).
    X86_64V3,
    /// x86-64-v4 (v3 and AVX-512 F/DQ/VL/BW/CD).
    X86_64V4,
}

impl TargetCpu {
    /// Every level.
    pub const ALL: [TargetCpu; 4] = [
        TargetCpu::Native,
        TargetCpu::X86_64V2,
        TargetCpu::X86_64V3,
        TargetCpu::X86_64V4,
    ];

    /// The name `--target-cpu` spells it with (Cranelift's and LLVM's preset names).
    pub fn name(self) -> &'static str {
        match self {
            TargetCpu::Native => "native",
            TargetCpu::X86_64V2 => "x86-64-v2",
            TargetCpu::X86_64V3 => "x86-64-v3",
            TargetCpu::X86_64V4 => "x86-64-v4",
        }
    }

    /// Reads a name written by [`TargetCpu::name`].
    pub fn parse(s: &str) -> Option<TargetCpu> {
        TargetCpu::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl std::fmt::Display for TargetCpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Builds the Cranelift ISA for `target`. `pic` selects position-independent code (needed
/// for shared libraries; the JIT requires non-PIC code).
pub fn build_isa(target: &Target, pic: bool) -> Result<OwnedTargetIsa, CodegenError> {
    build_isa_for(target, TargetCpu::Native, pic)
}

/// [`build_isa`] for CPU level `cpu`: anything but [`TargetCpu::Native`] needs an x86-64
/// target and replaces its features by the level's (Cranelift's preset of the same name, with
/// AVX itself for v3 and v4, which the presets leave out).
pub fn build_isa_for(
    target: &Target,
    cpu: TargetCpu,
    pic: bool,
) -> Result<OwnedTargetIsa, CodegenError> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags
            .set(name, value)
            .map_err(|e| CodegenError::Target(format!("setting {name}={value}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    // Cranelift re-verifies its IR between its own passes when this is on: in debug builds
    // (tests) only. Every function einc generates is still verified once, before Cranelift
    // compiles it (`codegen::finish`); release builds skip the re-checks of Cranelift's own
    // transformations, a sixth of the JIT's compile time (docs/performance.md).
    set(
        &mut flags,
        "enable_verifier",
        if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        },
    )?;
    set(&mut flags, "is_pic", if pic { "true" } else { "false" })?;
    // JIT code may be placed far from the libc functions it calls.
    set(&mut flags, "use_colocated_libcalls", "false")?;
    // Scoped buffers can make a frame larger than a guard page: probe it page by page.
    set(&mut flags, "enable_probestack", "true")?;
    set(&mut flags, "probestack_strategy", "inline")?;
    let mut builder = match target {
        Target::Host if cpu == TargetCpu::Native => cranelift_native::builder()
            .map_err(|e| CodegenError::Target(format!("the host machine is not supported: {e}")))?,
        Target::Host => isa::lookup(Triple::host())
            .map_err(|e| CodegenError::Target(format!("the host machine is not supported: {e}")))?,
        Target::Triple(triple) => {
            match triple.architecture {
                Architecture::X86_64 | Architecture::Aarch64(_) => {}
                other => {
                    return Err(CodegenError::Target(format!(
                        "unsupported architecture `{other}` (einc targets x86_64 and aarch64)"
                    )))
                }
            }
            isa::lookup(triple.clone())
                .map_err(|e| CodegenError::Target(format!("target `{triple}`: {e}")))?
        }
    };
    if cpu != TargetCpu::Native {
        if builder.triple().architecture != Architecture::X86_64 {
            return Err(CodegenError::Target(format!(
                "--target-cpu {cpu} is an x86-64 level, and the target is `{}`",
                builder.triple()
            )));
        }
        let level = |e: cranelift_codegen::settings::SetError| {
            CodegenError::Target(format!("CPU level {cpu}: {e}"))
        };
        builder.enable(cpu.name()).map_err(level)?;
        if cpu != TargetCpu::X86_64V2 {
            builder.enable("has_avx").map_err(level)?;
        }
    }
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| CodegenError::Target(format!("building the target ISA: {e}")))
}

/// The settings of cold code: entry points (argument validation, run once per call) and the
/// error-message functions (run only when a call fails). They make up about half of a module's
/// instructions but little of its run time, so they are compiled for compile speed: without
/// the mid-end optimiser and with the single-pass register allocator, which together take a
/// sixth off the JIT's compile time of attention (docs/performance.md) and cost a few
/// nanoseconds per call. Kernel bodies and micro-kernels keep the full settings.
pub(crate) const COLD_CODE: &[(&str, &str)] =
    &[("opt_level", "none"), ("regalloc_algorithm", "single_pass")];

/// `isa` with some of its shared settings replaced by `changes` (name, value), every other
/// setting, and its ISA-specific flags (e.g. the host's CPU features), kept.
pub(crate) fn with_settings(
    isa: &dyn TargetIsa,
    changes: &[(&str, &str)],
) -> Result<OwnedTargetIsa, CodegenError> {
    let err = |e: String| CodegenError::Target(format!("deriving the target ISA: {e}"));
    let mut flags = settings::builder();
    for v in isa.flags().iter() {
        let value = changes
            .iter()
            .find(|(name, _)| *name == v.name)
            .map_or_else(|| v.value_string(), |(_, value)| (*value).to_string());
        flags.set(v.name, &value).map_err(|e| err(e.to_string()))?;
    }
    let mut builder = isa::lookup(isa.triple().clone()).map_err(|e| err(e.to_string()))?;
    for v in isa.isa_flags() {
        builder
            .set(v.name, &v.value_string())
            .map_err(|e| err(e.to_string()))?;
    }
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| err(e.to_string()))
}

/// A Cranelift module that emits an object file for `target` (position-independent, so that it
/// can go into a shared library).
pub fn object_module(target: &Target) -> Result<ObjectModule, CodegenError> {
    object_module_for(target, TargetCpu::Native)
}

/// [`object_module`] for CPU level `cpu`.
pub fn object_module_for(target: &Target, cpu: TargetCpu) -> Result<ObjectModule, CodegenError> {
    let isa = build_isa_for(target, cpu, true)?;
    let builder = ObjectBuilder::new(isa, "einc", cranelift_module::default_libcall_names())
        .map_err(|e| CodegenError::Target(format!("object file for this target: {e}")))?;
    Ok(ObjectModule::new(builder))
}
