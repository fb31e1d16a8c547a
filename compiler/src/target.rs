//! The machine model the schedule cost model reads: instruction set, vector width, register
//! file and cache sizes of the machine code is generated for.
//!
//! Cranelift 0.135 generates 128-bit vector code on both targets, so the vector width is 16
//! bytes whatever the host offers (AVX2/AVX-512 kernels are a later, separate path). The
//! register file is what that code can allocate: 16 xmm registers on x86-64 (Cranelift does
//! not use xmm16–31) and 32 NEON registers on aarch64.
//!
//! For the host, cache sizes come from Linux's `/sys/devices/system/cpu/cpu0/cache/index*`
//! (`level`, `type`, `size`); anything missing or unreadable falls back to the target's
//! documented defaults ([`Machine::defaults`]), and [`Machine::caches`] says which it used. Cross
//! targets always use the defaults: they describe a typical server core of the architecture and
//! are deliberately conservative (blocking for a smaller cache than the real one costs a few
//! per cent; blocking for a larger one can cost half the speed).

use crate::codegen::UkernelIsa;
use std::fmt;
use std::path::Path;

/// The instruction set code is generated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 (SSE2 baseline; FMA where the machine has it).
    X86_64,
    /// 64-bit ARM with NEON (FMA always present).
    Aarch64,
}

impl Isa {
    /// The name as target triples spell it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::X86_64 => "x86_64",
            Isa::Aarch64 => "aarch64",
        }
    }

    /// The instruction set of the machine the compiler runs on, when einc can generate code for
    /// it.
    pub fn host() -> Option<Isa> {
        if cfg!(target_arch = "x86_64") {
            Some(Isa::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Isa::Aarch64)
        } else {
            None
        }
    }
}

/// Where the cache sizes of a [`Machine`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheSource {
    /// Read from `/sys/devices/system/cpu/cpu0/cache` on the host.
    Host,
    /// The target's documented defaults (cross targets, or a host that does not say).
    Defaults,
}

/// Sizes of the data caches one core sees, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caches {
    /// Level-1 data cache.
    pub l1d: u64,
    /// Level-2 (unified) cache.
    pub l2: u64,
    /// Level-3 (unified, usually shared by several cores) cache.
    pub l3: u64,
    /// Cache line size.
    pub line: u64,
}

/// What the cost model knows about a target machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    /// The instruction set.
    pub isa: Isa,
    /// The width of the vector registers generated code uses, in bytes (16: Cranelift's 128-bit
    /// vectors).
    pub vector_bytes: u32,
    /// The number of vector registers generated code can allocate.
    pub vector_registers: u32,
    /// How many of them a micro-kernel's k loop may use (accumulators, B vectors and the
    /// broadcast) and still compile without spills under Cranelift's register allocator:
    /// measured, not derived (`docs/ukernel.md`: on x86-64 a tile using 15 of 16 registers
    /// spilled, one using 11 did not; on aarch64 tiles using 19 of 32 compile spill-free).
    pub tile_registers: u32,
    /// Whether a fused multiply-add instruction is available (otherwise `fma` is a multiply
    /// and an add).
    pub fma: bool,
    /// Data cache sizes.
    pub caches: Caches,
    /// Where `caches` came from.
    pub cache_source: CacheSource,
    /// The micro-kernels GEMM tiles are chosen for: Cranelift's (the vectors and registers
    /// above) or generated wide ones (`codegen::wide`), whose vector width and register
    /// budget [`Machine::tile_lanes`] and [`Machine::tile_budget`] give.
    pub ukernels: UkernelIsa,
}

impl Machine {
    /// The documented model of `isa` used for cross targets: 128-bit vectors, the register file
    /// Cranelift allocates, baseline features (no FMA on x86-64; always on aarch64), and these
    /// cache sizes per core:
    ///
    /// | isa | L1d | L2 | L3 | line |
    /// | --- | --- | --- | --- | --- |
    /// | x86-64 | 32 KiB | 512 KiB | 4 MiB | 64 B |
    /// | aarch64 | 32 KiB | 512 KiB | 4 MiB | 64 B |
    ///
    /// 32 KiB is the smallest L1d of current server cores (Zen 2–3, Skylake-SP, Neoverse N1 and
    /// Graviton have 32–64 KiB); 512 KiB the smallest L2 of the same parts; 4 MiB a per-core
    /// share of L3 that every one of them exceeds.
    pub fn defaults(isa: Isa) -> Machine {
        let (vector_registers, tile_registers, fma) = match isa {
            Isa::X86_64 => (16, 11, false),
            Isa::Aarch64 => (32, 19, true),
        };
        Machine {
            isa,
            vector_bytes: 16,
            vector_registers,
            tile_registers,
            fma,
            caches: Caches {
                l1d: 32 << 10,
                l2: 512 << 10,
                l3: 4 << 20,
                line: 64,
            },
            cache_source: CacheSource::Defaults,
            ukernels: UkernelIsa::Cranelift,
        }
    }

    /// This machine with micro-kernels `ukernels`.
    pub fn with_ukernels(self, ukernels: UkernelIsa) -> Machine {
        Machine { ukernels, ..self }
    }

    /// Elements of `dtype_bytes` bytes in one vector of the micro-kernels (4 f32 in
    /// Cranelift's 128-bit kernels, 8 in AVX2's).
    pub fn tile_lanes(&self, dtype_bytes: usize) -> u32 {
        let lanes = self.ukernels.vector_bytes() as usize / dtype_bytes.max(1);
        u32::try_from(lanes.max(1)).unwrap_or(1)
    }

    /// The vector registers a micro-kernel's k loop may use: [`Machine::tile_registers`] for
    /// Cranelift's kernels, the whole register file for generated ones.
    pub fn tile_budget(&self) -> u32 {
        self.ukernels
            .tile_registers()
            .unwrap_or(self.tile_registers)
    }

    /// The model of the machine the compiler runs on: its instruction set and FMA support, and
    /// the cache sizes Linux reports (defaults for any it does not). `None` when einc cannot
    /// generate code for the host.
    pub fn host() -> Option<Machine> {
        let isa = Isa::host()?;
        let mut m = Machine::defaults(isa);
        m.fma = host_has_fma();
        if let Some(caches) = read_caches(Path::new("/sys/devices/system/cpu/cpu0/cache")) {
            m.caches = caches.over(m.caches);
            m.cache_source = CacheSource::Host;
        }
        Some(m)
    }

    /// The model of a code generation target: the host's ([`Machine::host`]) or, for a triple,
    /// its architecture's defaults. `None` for an architecture einc does not generate code for.
    pub fn for_target(target: &crate::codegen::Target) -> Option<Machine> {
        match target {
            crate::codegen::Target::Host => Machine::host(),
            crate::codegen::Target::Triple(t) => match t.architecture {
                target_lexicon::Architecture::X86_64 => Some(Machine::defaults(Isa::X86_64)),
                target_lexicon::Architecture::Aarch64(_) => Some(Machine::defaults(Isa::Aarch64)),
                _ => None,
            },
        }
    }

    /// Elements of `dtype_bytes` bytes in one vector register (4 for f32, 2 for f64).
    pub fn lanes(&self, dtype_bytes: usize) -> u32 {
        let lanes = self.vector_bytes as usize / dtype_bytes.max(1);
        u32::try_from(lanes.max(1)).unwrap_or(1)
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = |n: u64| n >> 10;
        write!(
            f,
            "{}: {}-bit vectors, {} vector registers, {}FMA; L1d {} KiB, L2 {} KiB, L3 {} KiB ({})",
            self.isa.name(),
            self.vector_bytes * 8,
            self.vector_registers,
            if self.fma { "" } else { "no " },
            kib(self.caches.l1d),
            kib(self.caches.l2),
            kib(self.caches.l3),
            match self.cache_source {
                CacheSource::Host => "read from the host",
                CacheSource::Defaults => "defaults",
            }
        )?;
        if self.ukernels != UkernelIsa::Cranelift {
            write!(f, "; {} micro-kernels", self.ukernels)?;
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
fn host_has_fma() -> bool {
    std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn host_has_fma() -> bool {
    // aarch64 always has it; no other host generates code.
    true
}

/// Cache sizes read from a sysfs cache directory; `None` for a level it does not list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ReadCaches {
    l1d: Option<u64>,
    l2: Option<u64>,
    l3: Option<u64>,
    line: Option<u64>,
}

impl ReadCaches {
    /// These sizes, with `defaults` for those not read.
    fn over(self, defaults: Caches) -> Caches {
        Caches {
            l1d: self.l1d.unwrap_or(defaults.l1d),
            l2: self.l2.unwrap_or(defaults.l2),
            l3: self.l3.unwrap_or(defaults.l3),
            line: self.line.unwrap_or(defaults.line),
        }
    }
}

/// Reads `index*/{level,type,size,coherency_line_size}` under `dir` (Linux's
/// `/sys/devices/system/cpu/cpu0/cache`). Returns `None` when no data or unified cache of
/// level 1–3 could be read.
fn read_caches(dir: &Path) -> Option<ReadCaches> {
    let mut found = ReadCaches::default();
    let read = |path: &Path, file: &str| {
        std::fs::read_to_string(path.join(file))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let is_index = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("index"));
        if !is_index {
            continue;
        }
        let (Some(level), Some(kind), Some(size)) = (
            read(&path, "level"),
            read(&path, "type"),
            read(&path, "size").as_deref().and_then(parse_size),
        ) else {
            continue;
        };
        if kind == "Instruction" || size == 0 {
            continue;
        }
        let slot = match level.as_str() {
            "1" => &mut found.l1d,
            "2" => &mut found.l2,
            "3" => &mut found.l3,
            _ => continue,
        };
        *slot = Some(size);
        if found.line.is_none() {
            found.line = read(&path, "coherency_line_size").and_then(|s| s.parse().ok());
        }
    }
    (found.l1d.is_some() || found.l2.is_some() || found.l3.is_some()).then_some(found)
}

/// A sysfs size such as `48K`, `1024K`, `32M` or `512` (bytes).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("32768K"), Some(32 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    /// A fake sysfs directory: index0 L1d, index1 L1i (ignored), index2 L2, index3 L3.
    fn fake_sysfs(name: &str, caches: &[(&str, &str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("einc-target-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (n, (level, kind, size)) in caches.iter().enumerate() {
            let d = dir.join(format!("index{n}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
            std::fs::write(d.join("coherency_line_size"), "128\n").unwrap();
        }
        dir
    }

    #[test]
    fn sysfs_caches_are_read_and_instruction_caches_ignored() {
        let dir = fake_sysfs(
            "full",
            &[
                ("1", "Data", "48K"),
                ("1", "Instruction", "32K"),
                ("2", "Unified", "1024K"),
                ("3", "Unified", "32768K"),
            ],
        );
        let read = read_caches(&dir).unwrap();
        assert_eq!(
            read,
            ReadCaches {
                l1d: Some(48 << 10),
                l2: Some(1 << 20),
                l3: Some(32 << 20),
                line: Some(128),
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_levels_fall_back_to_the_defaults() {
        let dir = fake_sysfs("partial", &[("1", "Data", "64K"), ("2", "Unified", "junk")]);
        let read = read_caches(&dir).unwrap();
        let caches = read.over(Machine::defaults(Isa::Aarch64).caches);
        assert_eq!(caches.l1d, 64 << 10);
        assert_eq!(caches.l2, 512 << 10);
        assert_eq!(caches.l3, 4 << 20);
        assert_eq!(caches.line, 128);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            read_caches(&dir),
            None,
            "a missing directory reads as nothing"
        );
    }

    #[test]
    fn defaults_describe_the_cranelift_register_files() {
        let x86 = Machine::defaults(Isa::X86_64);
        assert_eq!(
            (x86.vector_bytes, x86.vector_registers, x86.fma),
            (16, 16, false)
        );
        let arm = Machine::defaults(Isa::Aarch64);
        assert_eq!(
            (arm.vector_bytes, arm.vector_registers, arm.fma),
            (16, 32, true)
        );
        assert_eq!(x86.lanes(4), 4);
        assert_eq!(x86.lanes(8), 2);
        assert_eq!(
            x86.to_string(),
            "x86_64: 128-bit vectors, 16 vector registers, no FMA; L1d 32 KiB, L2 512 KiB, \
             L3 4096 KiB (defaults)"
        );
    }

    #[test]
    fn triples_get_their_architecture_defaults() {
        let t = |s: &str| Machine::for_target(&crate::codegen::Target::parse(s).unwrap());
        assert_eq!(
            t("aarch64-unknown-linux-gnu"),
            Some(Machine::defaults(Isa::Aarch64))
        );
        assert_eq!(
            t("x86_64-unknown-linux-gnu"),
            Some(Machine::defaults(Isa::X86_64))
        );
        assert_eq!(t("riscv64gc-unknown-linux-gnu"), None);
        assert_eq!(t("host"), Machine::host());
    }

    #[test]
    fn the_host_model_has_the_host_isa() {
        let host = Machine::host();
        assert_eq!(host.map(|m| m.isa), Isa::host());
        if let Some(m) = host {
            assert!(m.caches.l1d >= 4 << 10 && m.caches.l1d <= m.caches.l2.max(m.caches.l1d));
        }
    }
}
