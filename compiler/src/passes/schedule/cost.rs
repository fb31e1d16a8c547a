//! The cost model: the GEMM register tile, cache blocks and packing for a contraction, chosen
//! from the machine model ([`Machine`]) and the GEMM's extents (known, or unknown until the
//! call). Every rule is written out in `docs/schedules.md` ("Cost model"); the numbers here are
//! the ones that page quotes.
//!
//! The model follows BLIS's analytical blocking (Low et al., "Analytical modeling is enough for
//! high-performance BLIS") and the `gemm` crate's rules for small problems: the register tile
//! maximises multiply-adds per load within the register file, `kc` keeps a micro-panel of A and
//! of B in half of L1, `mc` keeps the packed A block in half of L2, `nc` keeps the packed B
//! block in half of L3, and each block is then balanced so that the last one is not a sliver.

use crate::codegen::UkernelIsa;
use crate::target::Machine;

/// The extents of a GEMM as far as they are known at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmExtents {
    /// Rows of C (`None`: bound at call time).
    pub m: Option<u64>,
    /// Columns of C.
    pub n: Option<u64>,
    /// The summed extent.
    pub k: Option<u64>,
}

/// What the cost model chooses for one GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmChoice {
    /// Register tile rows.
    pub mr: u64,
    /// Register tile columns.
    pub nr: u64,
    /// A block rows.
    pub mc: u64,
    /// Block depth.
    pub kc: u64,
    /// B block columns.
    pub nc: u64,
    /// Whether A is packed.
    pub pack_a: bool,
}

/// The largest register tile considered: rows.
const MAX_MR: u64 = 12;
/// The largest register tile considered: columns, in vectors (Cranelift's and AVX2's; the
/// AVX-512 kernels cover up to 6, `UkernelIsa::tile_vectors`).
const MAX_NR_VECTORS: u64 = 4;
/// An extent the model assumes for a dim bound at call time (a "large" problem).
pub const ASSUMED_EXTENT: u64 = 1024;

/// Vector registers a `mr x nr` tile needs: one accumulator per vector of the tile, the `nr /
/// lanes` vectors of one row of B, and one register for the broadcast element of A.
pub fn tile_registers(mr: u64, nr: u64, lanes: u64) -> u64 {
    mr * nr / lanes + nr / lanes + 1
}

/// Vector FMAs a core starts per cycle (two 128-bit FMA pipes: Zen 2-4, Skylake, Neoverse).
const FMA_PIPES: f64 = 2.0;
/// Cycles from one FMA to the next on the same accumulator.
const FMA_LATENCY: f64 = 4.0;
/// Cycles one micro-kernel call costs besides its k loop: the caller's tile loop, the call,
/// the kernel's checks and its stores (measured on a Zen 4: about 80, from the time of GEMMs
/// with K = 10 and 375 to 500 calls).
const CALL_CYCLES: f64 = 80.0;
/// Cycles per element of an edge tile that the kernel finishes with scalar code.
const EDGE_CYCLES_PER_ELEMENT: f64 = 2.0;

/// Cycles of load and broadcast work per element of A or vector of B that one k step reads
/// (fitted to the micro-kernels measured on a Zen 4: 4x8 f32 runs at the FMA pipes' rate,
/// while 8x4 and 9x4, with more broadcasts per FMA, run slower).
const LOAD_CYCLES: f64 = 2.0 / 3.0;

/// Cycles one k step of an `mr x nr` tile (`nv` vectors of columns) takes: the most of its
/// FMAs over the pipes, the FMA latency (each accumulator takes one FMA per step), and its
/// loads (`mr` elements of A and `nv` vectors of B, [`LOAD_CYCLES`] each).
fn step_cycles(mr: u64, nv: u64) -> f64 {
    let fmas = (mr * nv) as f64;
    (fmas / FMA_PIPES)
        .max(FMA_LATENCY)
        .max((mr + nv) as f64 * LOAD_CYCLES)
}

/// The register tile for a GEMM of `dtype_bytes`-byte elements.
///
/// Candidates are `mr` in 1..=12 and `nr` = 1..=4 vectors whose registers
/// ([`tile_registers`]) fit the machine's measured spill-free budget
/// ([`Machine::tile_registers`]: 11 on x86-64, 19 on aarch64). Each is scored by the cycles
/// the whole GEMM would take (extents not known at compile time count as
/// [`ASSUMED_EXTENT`]): per tile and K block a call ([`CALL_CYCLES`]), per tile and k step
/// [`step_cycles`], and per edge tile that the kernel finishes in scalar code (C written in
/// place with fewer than `mr` rows or `nr` columns) [`EDGE_CYCLES_PER_ELEMENT`] per element.
/// The fewest cycles win; ties go to the tile with more accumulators, then to the taller one
/// (B, the streamed operand, is loaded less often). For large GEMMs this is the tile with the
/// most FMAs per cycle (4x8 f32 and 4x4 f64 on x86-64: 8 accumulators cover the FMA latency of
/// both pipes); for small or skinny ones, fewer calls and fewer edge tiles count.
pub fn register_tile(machine: &Machine, dtype_bytes: u64, e: GemmExtents) -> (u64, u64) {
    let lanes = u64::from(machine.tile_lanes(dtype_bytes as usize));
    let budget = u64::from(machine.tile_budget());
    let size = |x: Option<u64>| x.unwrap_or(ASSUMED_EXTENT).max(1);
    let (m, n, k) = (size(e.m), size(e.n), size(e.k));
    let mut best = (1, lanes);
    let mut best_key = (f64::MAX, 0, 0, 0);
    let max_nv = machine
        .ukernels
        .tile_vectors()
        .map_or(MAX_NR_VECTORS, u64::from);
    for nv in 1..=max_nv {
        let nr = nv * lanes;
        for mr in 1..=MAX_MR {
            if tile_registers(mr, nr, lanes) > budget {
                continue;
            }
            let kc = blocks(machine, dtype_bytes, mr, nr, e).kc;
            let (tm, tn, kb) = (m.div_ceil(mr), n.div_ceil(nr), k.div_ceil(kc));
            let tiles = (tm * tn) as f64;
            let edges = (tm * tn - (m / mr) * (n / nr)) as f64;
            let cycles = tiles * kb as f64 * CALL_CYCLES
                + tiles * k as f64 * step_cycles(mr, nv)
                + edges * kb as f64 * EDGE_CYCLES_PER_ELEMENT * (mr * nr) as f64;
            // Ties: more accumulators, then taller. With AVX-512's 32 registers many tiles
            // reach the FMA rate; there the fewest loads per FMA (A broadcasts and B vectors)
            // win first: measured at 1024^3 f32, 6x64 (10 loads per 24 FMAs) 1.05-1.10x numpy,
            // 4x96 (10) 1.04x, 8x48 (11) 1.01x, 12x32 (14) 0.99-1.02x, all with kc 256-512.
            let loads = if machine.ukernels == UkernelIsa::Avx512 {
                ((mr + nv) as f64 / (mr * nv) as f64 * 1e6) as u64
            } else {
                0
            };
            let key = (cycles, u64::MAX - loads, mr * nv, mr);
            let better = key.0 < best_key.0 * (1.0 - 1e-9)
                || (key.0 <= best_key.0 * (1.0 + 1e-9)
                    && (key.1, key.2, key.3) > (best_key.1, best_key.2, best_key.3));
            if better {
                best = (mr, nr);
                best_key = key;
            }
        }
    }
    best
}

/// Splits `extent` into the fewest blocks of at most `block` and returns the block size that
/// makes them equal (rounded up to a multiple of `multiple`); `block` itself when the extent is
/// unknown.
fn balance(extent: Option<u64>, block: u64, multiple: u64) -> u64 {
    match extent {
        Some(x) if x > 0 => {
            let blocks = x.div_ceil(block.max(1));
            x.div_ceil(blocks).div_ceil(multiple) * multiple
        }
        _ => block,
    }
}

/// The cache blocks and packing for a GEMM with register tile `mr x nr`:
///
/// - `kc`: an `mr x kc` micro-panel of A and a `kc x nr` micro-panel of B take at most half of
///   L1, rounded down to a multiple of 16 and clamped to 16..=1024, then balanced over K; for
///   the AVX-512 kernels the `kc x nr` micro-panel of B takes at most a quarter of L2 (their
///   B panels stream from L2 at the FMA rate, and every K block costs each tile a pass over C:
///   measured at 2048^3 f32 with 6x64, kc 128 0.83x numpy, 384 1.02x, 512-1024 1.03-1.04x;
///   1024^3 f64 with 6x32, kc 256 1.07x, 512 1.10x, 1024 1.14x);
/// - `mc`: the packed `mc x kc` block of A takes at most half of L2, rounded down to a multiple
///   of `mr` and clamped to `mr..=512`, then balanced over M;
/// - `nc`: the packed `kc x nc` block of B takes at most half of L3, rounded down to a multiple
///   of `nr` and clamped to `nr..=4096`, then balanced over N;
/// - A is packed unless N is at most `2 nr` (known at compile time): then each A panel serves
///   at most two tiles and reading it in place is cheaper than copying it (the `gemm` crate's
///   rule for its broadcast operand). B is always packed: the micro-kernel reads `nr` full
///   columns, which only a zero-padded panel guarantees at the edges.
pub fn blocks(machine: &Machine, dtype_bytes: u64, mr: u64, nr: u64, e: GemmExtents) -> GemmChoice {
    let caches = machine.caches;
    let kc_max = if machine.ukernels == UkernelIsa::Avx512 {
        (caches.l2 / 4) / (nr * dtype_bytes)
    } else {
        (caches.l1d / 2) / ((mr + nr) * dtype_bytes)
    };
    let kc = (kc_max / 16 * 16).clamp(16, 1024);
    let kc = balance(e.k, kc, 1).min(kc);
    let mc_max = (caches.l2 / 2) / (kc * dtype_bytes);
    let mc = (mc_max / mr * mr).clamp(mr, 512 / mr * mr);
    let mc = balance(e.m, mc, mr).min(mc);
    let nc_max = (caches.l3 / 2) / (kc * dtype_bytes);
    let nc = (nc_max / nr * nr).clamp(nr, 4096 / nr * nr);
    let nc = balance(e.n, nc, nr).min(nc);
    let pack_a = e.n.is_none_or(|n| n > 2 * nr);
    GemmChoice {
        mr,
        nr,
        mc,
        kc,
        nc,
        pack_a,
    }
}

/// The whole GEMM choice: [`register_tile`], then [`blocks`].
pub fn gemm(machine: &Machine, dtype_bytes: u64, e: GemmExtents) -> GemmChoice {
    let (mr, nr) = register_tile(machine, dtype_bytes, e);
    blocks(machine, dtype_bytes, mr, nr, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{Caches, Isa};

    fn zen4() -> Machine {
        let mut m = Machine::defaults(Isa::X86_64);
        m.fma = true;
        m.caches = Caches {
            l1d: 48 << 10,
            l2: 1 << 20,
            l3: 32 << 20,
            line: 64,
        };
        m
    }

    const UNKNOWN: GemmExtents = GemmExtents {
        m: None,
        n: None,
        k: None,
    };

    fn known(m: u64, n: u64, k: u64) -> GemmExtents {
        GemmExtents {
            m: Some(m),
            n: Some(n),
            k: Some(k),
        }
    }

    #[test]
    fn register_tiles_fit_the_register_file() {
        let x86 = Machine::defaults(Isa::X86_64);
        let arm = Machine::defaults(Isa::Aarch64);
        // 16 xmm, 11 usable without spills: 4 x 8 f32 (8 accumulators + 2 B vectors + 1
        // broadcast); 6 x 8 (15) and 3 x 12 (13) do not fit.
        assert_eq!(register_tile(&x86, 4, UNKNOWN), (4, 8));
        assert_eq!(register_tile(&x86, 8, UNKNOWN), (4, 4));
        // 32 NEON registers, 19 usable: 8 x 8 f32 (16 + 2 + 1) and 5 x 12 (15 + 3 + 1) keep
        // both FMA pipes busy; 8 x 8 takes fewer calls. f64: 5 x 6 (15 + 3 + 1) and 8 x 4
        // (16 + 2 + 1) tie on the k loop; 5 x 6 keeps deeper K blocks, so fewer calls.
        assert_eq!(register_tile(&arm, 4, UNKNOWN), (8, 8));
        assert_eq!(register_tile(&arm, 8, UNKNOWN), (5, 6));
        for (m, bytes) in [(&x86, 4), (&x86, 8), (&arm, 4), (&arm, 8)] {
            let lanes = u64::from(m.lanes(bytes as usize));
            let (mr, nr) = register_tile(m, bytes, UNKNOWN);
            assert!(tile_registers(mr, nr, lanes) <= u64::from(m.tile_registers));
            assert_eq!(nr % lanes, 0);
        }
    }

    #[test]
    fn known_small_extents_avoid_wasted_tile_rows() {
        let x86 = Machine::defaults(Isa::X86_64);
        // M = 3: a 4-row tile would compute a row of padding; 3 x 8 does not.
        assert_eq!(register_tile(&x86, 4, known(3, 1024, 64)), (3, 8));
        // N = 4: one vector of columns.
        let (_, nr) = register_tile(&x86, 4, known(1024, 4, 64));
        assert_eq!(nr, 4);
    }

    #[test]
    fn small_sums_take_fewer_calls_and_fewer_edge_tiles() {
        let x86 = Machine::defaults(Isa::X86_64);
        // M = 1000, N = 10, K = 10 (the second step of `ij,jk,kl->il`): a call costs more than
        // its ten k steps, so a tall one-vector tile (N in three tiles) beats 4 x 8 (N in two,
        // 250 rows of tiles) and 2 x 12 (500 calls, each an edge tile): measured 14.4 us with
        // 8 x 4 against 15.6 with 4 x 8 and 23 with 2 x 12.
        let (mr, nr) = register_tile(&x86, 4, known(1000, 10, 10));
        assert!(mr >= 8 && nr == 4, "{mr} x {nr}");
        // A long sum makes the k loop dominate again: 4 x 8.
        assert_eq!(register_tile(&x86, 4, known(1000, 1000, 1000)), (4, 8));
    }

    #[test]
    fn blocks_follow_the_caches_and_balance_over_known_extents() {
        let m = zen4();
        // kc: 24 KiB / ((6 + 8) * 4 B) = 438 -> 432; mc: 512 KiB / (432 * 4) = 303 -> 300;
        // nc: 16 MiB / (432 * 4) = 9709 -> clamped to 4096.
        let c = blocks(&m, 4, 6, 8, UNKNOWN);
        assert_eq!((c.kc, c.mc, c.nc, c.pack_a), (432, 300, 4096, true));
        // K = 1000 splits into 3 blocks of 334; then mc <= 512 KiB / (334 * 4 B) = 392 -> 390,
        // and M = 1000 splits into 3 blocks of 334 (a multiple of 6: 336); N = 1000 fits one
        // block of 1000 (a multiple of 8).
        let c = blocks(&m, 4, 6, 8, known(1000, 1000, 1000));
        assert_eq!((c.kc, c.mc, c.nc), (334, 336, 1000));
        // Tiny problems get tiny blocks; N <= 2 nr reads A in place.
        let c = blocks(&m, 4, 6, 8, known(3, 5, 7));
        assert_eq!((c.kc, c.mc, c.nc, c.pack_a), (7, 6, 8, false));
        for e in [
            UNKNOWN,
            known(1, 1, 1),
            known(4096, 4096, 4096),
            known(7, 9000, 3),
        ] {
            let c = blocks(&m, 8, 6, 4, e);
            assert!(
                c.kc >= 1 && c.mc.is_multiple_of(6) && c.nc.is_multiple_of(4),
                "{c:?}"
            );
        }
    }
}
