//! Micro-kernel speed in L1, against the 128-bit FMA peak of the machine (ignored: these are
//! measurements, not tests, and assert nothing about time). Run with
//! `cargo test --release -p einc-compiler --lib ukernel_speed -- --ignored --nocapture`;
//! `docs/ukernel.md` records the results.

use crate::codegen::ukernel::{flags, JitUkernel, UkernelArgs};
use crate::codegen::UkernelIsa;
use crate::ir::loops::UkernelShape;
use crate::rng::Rng;
use einc_runtime::DType;

/// `struct timespec` on 64-bit Linux.
#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// The CPU time this thread has used, in seconds. The machine is shared, so wall time would
/// count the time other processes run; the thread's own CPU time does not.
fn thread_seconds() -> f64 {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid `struct timespec` to write.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// A stopwatch of this thread's CPU time.
pub(super) struct Instant(f64);

impl Instant {
    pub(super) fn now() -> Instant {
        Instant(thread_seconds())
    }

    pub(super) fn elapsed(&self) -> f64 {
        thread_seconds() - self.0
    }
}

/// The core clock in Hz, from a chain of dependent integer additions (one per cycle).
#[cfg(target_arch = "x86_64")]
fn clock_hz() -> Option<f64> {
    let iterations: u64 = 10_000_000;
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let start = Instant::now();
        // SAFETY: register arithmetic only.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "add {x}, 1", "add {x}, 1", "add {x}, 1", "add {x}, 1",
                "sub {n}, 1",
                "jnz 2b",
                n = inout(reg) iterations => _,
                x = inout(reg) 0u64 => _,
                options(nomem, nostack),
            );
        }
        best = best.min(start.elapsed());
    }
    Some(iterations as f64 * 8.0 / best)
}

#[cfg(not(target_arch = "x86_64"))]
fn clock_hz() -> Option<f64> {
    None
}

/// GFLOP/s of micro-kernel `shape` (`wide`'s where it covers it) on packed panels of depth `kc` (A `tiles` panels of
/// `MR x kc`, B `kc x NR`, all in L1), best of several runs: with `per_call` m-tiles per call
/// (`tiles / per_call` calls cover the panels).
fn gflops(shape: UkernelShape, wide: UkernelIsa, kc: usize, tiles: usize, per_call: usize) -> f64 {
    let k = JitUkernel::compile_with(shape, wide).unwrap();
    let (mr, nr) = (shape.mr as usize, shape.nr as usize);
    let mut rng = Rng::new(1);
    let size = shape.dtype.size_bytes();
    let bytes = |n: usize, rng: &mut Rng| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                let x = rng.uniform(-1.0, 1.0);
                if size == 4 {
                    (x as f32).to_ne_bytes().to_vec()
                } else {
                    x.to_ne_bytes().to_vec()
                }
            })
            .collect()
    };
    let a = bytes(tiles * mr * kc, &mut rng);
    let b = bytes(kc * nr, &mut rng);
    let mut c = vec![0u8; tiles * mr * nr * size];
    let mut args = UkernelArgs {
        kc: kc as i64,
        mr: (per_call * mr) as i64,
        nr: nr as i64,
        a: a.as_ptr(),
        a_ms: 1,
        a_ks: mr as i64,
        b: b.as_ptr(),
        b_ks: nr as i64,
        c: c.as_mut_ptr(),
        c_ms: nr as i64,
        bias: std::ptr::null(),
        bias_s: 0,
        scale: 0,
        flags: flags::INIT,
        a_ts: (mr * kc) as i64,
    };
    let calls = (50_000_000 / (tiles * mr * nr * kc)).max(1);
    let starts: Vec<(*const u8, *mut u8)> = (0..tiles)
        .step_by(per_call)
        .map(|t| {
            (
                a[t * mr * kc * size..].as_ptr(),
                c[t * mr * nr * size..].as_mut_ptr(),
            )
        })
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..20 {
        let start = Instant::now();
        for _ in 0..calls {
            for &(pa, pc) in &starts {
                args.a = pa;
                args.c = pc;
                // SAFETY: A, B and C hold every element the call reads and writes.
                unsafe { (k.entry())(&args) };
            }
        }
        best = best.min(start.elapsed());
    }
    std::hint::black_box(&c);
    (2 * tiles * mr * nr * kc * calls) as f64 / best / 1e9
}

#[test]
#[ignore]
fn ukernel_speed() {
    let hz = clock_hz();
    // 128-bit FMAs: two per cycle, 4 f32 or 2 f64 lanes, 2 FLOP each.
    let peak = |d: DType| hz.map(|hz| hz * 2.0 * (16 / d.size_bytes()) as f64 * 2.0 / 1e9);
    if let Some(hz) = hz {
        println!("clock {:.2} GHz", hz / 1e9);
    }
    for (dtype, mr, nr) in [(DType::F32, 4, 8), (DType::F64, 4, 4), (DType::F32, 6, 8)] {
        for kc in [64, 256] {
            let g = gflops(
                UkernelShape { dtype, mr, nr },
                UkernelIsa::Cranelift,
                kc,
                1,
                1,
            );
            let share = peak(dtype).map_or(String::new(), |p| {
                format!(" = {:.0}% of the 128-bit peak {p:.1}", 100.0 * g / p)
            });
            println!("gemm.{dtype}.{mr}x{nr} kc {kc}: {g:.1} GFLOP/s{share}");
        }
    }
}

/// Short K (10 to 16, as in Tucker and the chain): 16 m-tiles done by 16 calls, or by one call
/// that walks them (`mr = 16 * MR`), as the GETT lowering now makes it; Cranelift's 4x8 f32
/// kernel, the AVX2 6x16 and the AVX-512 12x32 where the host runs them.
#[test]
#[ignore]
fn ukernel_speed_short_k() {
    let hz = clock_hz();
    let shape = |mr, nr| UkernelShape {
        dtype: DType::F32,
        mr,
        nr,
    };
    let mut kinds = vec![(UkernelIsa::Cranelift, shape(4, 8))];
    for (isa, tile) in [
        (UkernelIsa::Avx2, shape(6, 16)),
        (UkernelIsa::Avx512, shape(12, 32)),
    ] {
        if isa.runs_on_host() {
            kinds.push((isa, tile));
        } else {
            println!("SKIPPED: {isa}: this host cannot run these micro-kernels");
        }
    }
    for (wide, shape) in kinds {
        let bits = wide.vector_bytes() * 8;
        // Two FMAs per cycle, 2 FLOP per f32 lane.
        let peak = hz.map(|hz| hz * 2.0 * f64::from(bits / 32) * 2.0 / 1e9);
        for kc in [10, 16, 64] {
            for per_call in [1, 16] {
                let g = gflops(shape, wide, kc, 16, per_call);
                let share = peak.map_or(String::new(), |p| {
                    format!(" = {:.0}% of the {bits}-bit peak {p:.1}", 100.0 * g / p)
                });
                let name = shape.name();
                println!(
                    "{wide} {name} kc {kc}, {per_call} m-tiles per call: {g:.1} GFLOP/s{share}"
                );
            }
        }
    }
}

/// The wide kernels (`codegen::wide`) against their vectors' FMA peak, one m-tile per call
/// (short K: [`ukernel_speed_short_k`]): the AVX2 shapes and the one-vector 4x8 and 4x4; the
/// AVX-512 candidates (f32 12x32, 9x48, 8x48, 6x64, 4x96; f64 half as wide) and the
/// one-vector tiles whose FMAs read A's element as an embedded broadcast.
#[test]
#[ignore]
fn wide_ukernel_speed() {
    let hz = clock_hz();
    if let Some(hz) = hz {
        println!("clock {:.2} GHz", hz / 1e9);
    }
    let avx2: &[(DType, u32, u32)] = &[
        (DType::F32, 6, 16),
        (DType::F32, 4, 24),
        (DType::F32, 12, 8),
        (DType::F32, 2, 32),
        (DType::F32, 4, 8),
        (DType::F64, 6, 8),
        (DType::F64, 4, 12),
        (DType::F64, 4, 4),
    ];
    let avx512: &[(DType, u32, u32)] = &[
        (DType::F32, 12, 32),
        (DType::F32, 9, 48),
        (DType::F32, 8, 48),
        (DType::F32, 6, 64),
        (DType::F32, 4, 96),
        (DType::F32, 12, 16),
        (DType::F32, 6, 16),
        (DType::F64, 12, 16),
        (DType::F64, 9, 24),
        (DType::F64, 6, 32),
        (DType::F64, 4, 48),
        (DType::F64, 12, 8),
    ];
    for (isa, shapes) in [(UkernelIsa::Avx2, avx2), (UkernelIsa::Avx512, avx512)] {
        if !isa.runs_on_host() {
            println!("SKIPPED: {isa}: this host cannot run these micro-kernels");
            continue;
        }
        let bits = isa.vector_bytes() * 8;
        for &(dtype, mr, nr) in shapes {
            // Two FMAs per cycle, 2 FLOP per lane.
            let lanes = f64::from(isa.vector_bytes()) / dtype.size_bytes() as f64;
            let peak = hz.map(|hz| hz * 2.0 * lanes * 2.0 / 1e9);
            for kc in [64, 256] {
                let g = gflops(UkernelShape { dtype, mr, nr }, isa, kc, 1, 1);
                let share = peak.map_or(String::new(), |p| {
                    format!(" = {:.0}% of the {bits}-bit peak {p:.1}", 100.0 * g / p)
                });
                println!("{isa} gemm.{dtype}.{mr}x{nr} kc {kc}: {g:.1} GFLOP/s{share}");
            }
        }
    }
}

/// A module calling each micro-kernel of `shapes` once.
fn calls(shapes: &[(DType, u32, u32)]) -> String {
    let mut text = String::from("dims M, N, K\n");
    for (n, (dtype, mr, nr)) in shapes.iter().enumerate() {
        let shape = UkernelShape {
            dtype: *dtype,
            mr: *mr,
            nr: *nr,
        };
        let t = dtype.name();
        text.push_str(&format!(
            "func @k{n}(%A: in {t}[M, K] strided, %B: in {t}[K, N] strides[_, 1], \
             %C: out {t}[M, N] strides[_, 1]) {{
  %c0 = index 0
  %m = dim M
  %n = dim N
  %k = dim K
  %t = cmp eq %c0, %c0
  ukernel @{} kc %k, tile %m x %n, a %A[%c0, %c0] (m: 0, k: 1), b %B[%c0, %c0] (k: 0, n: 1), c %C[%c0, %c0] (m: 0, n: 1), init %t
}}
",
            shape.name()
        ));
    }
    text
}

/// Writes the disassembly of the micro-kernels for the host (the x86-64 shapes) and for
/// aarch64 (its larger shapes) to `$EINC_ASM_DIR/<target>.s`, to read what they compile to.
#[test]
#[ignore]
fn ukernel_asm() {
    let Ok(dir) = std::env::var("EINC_ASM_DIR") else {
        println!("set EINC_ASM_DIR to a directory for the listings");
        return;
    };
    let x86 = [(DType::F32, 4, 8), (DType::F64, 4, 4), (DType::F32, 6, 8)];
    let arm = [(DType::F32, 8, 8), (DType::F64, 8, 4), (DType::F32, 4, 8)];
    for (triple, shapes) in [("host", &x86[..]), ("aarch64-unknown-linux-gnu", &arm[..])] {
        let m = crate::ir::loops::parser::parse_module(&calls(shapes)).unwrap();
        let target = crate::codegen::Target::parse(triple).unwrap();
        let asm = crate::codegen::object::asm_text(
            &m,
            &target,
            crate::codegen::TargetCpu::Native,
            crate::codegen::UkernelPlan::fixed(UkernelIsa::Cranelift),
        )
        .unwrap();
        std::fs::write(format!("{dir}/{triple}.s"), asm).unwrap();
    }
}
