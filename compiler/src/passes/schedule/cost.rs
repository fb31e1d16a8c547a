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
/// The largest register tile considered: columns, in vectors.
const MAX_NR_VECTORS: u64 = 4;
/// An extent the model assumes for a dim bound at call time (a "large" problem).
pub const ASSUMED_EXTENT: u64 = 1024;

/// Vector registers a `mr x nr` tile needs: one accumulator per vector of the tile, the `nr /
/// lanes` vectors of one row of B, and one register for the broadcast element of A.
pub fn tile_registers(mr: u64, nr: u64, lanes: u64) -> u64 {
    mr * nr / lanes + nr / lanes + 1
}

/// The register tile for a GEMM of `dtype_bytes`-byte elements.
///
/// Candidates are `mr` in 1..=12 and `nr` = 1..=4 vectors whose registers
/// ([`tile_registers`]) fit the machine's measured spill-free budget
/// ([`Machine::tile_registers`]: 11 on x86-64, 19 on aarch64). Each is scored by multiply-adds per element loaded
/// in one k step, `mr * nr / (mr + nr / lanes)`, times the fraction of the padded tiles that is
/// useful work when M and N are known (`M / (⌈M/mr⌉ mr)`, the same for N). The best score wins;
/// ties go to the tile with more accumulators (more independent FMA chains hide the FMA
/// latency better), then to the taller one (B, the streamed operand, is loaded less often).
pub fn register_tile(machine: &Machine, dtype_bytes: u64, e: GemmExtents) -> (u64, u64) {
    let lanes = u64::from(machine.lanes(dtype_bytes as usize));
    let budget = u64::from(machine.tile_registers);
    let useful = |extent: Option<u64>, tile: u64| match extent {
        Some(x) if x > 0 => x as f64 / (x.div_ceil(tile) * tile) as f64,
        _ => 1.0,
    };
    let mut best = (1, lanes);
    let mut best_key = (f64::MIN, 0, 0);
    for nv in 1..=MAX_NR_VECTORS {
        let nr = nv * lanes;
        for mr in 1..=MAX_MR {
            if tile_registers(mr, nr, lanes) > budget {
                continue;
            }
            let intensity = (mr * nr) as f64 / (mr + nv) as f64;
            let score = intensity * useful(e.m, mr) * useful(e.n, nr);
            let key = (score, mr * nv, mr);
            let better = key.0 > best_key.0 + 1e-9
                || ((key.0 - best_key.0).abs() <= 1e-9
                    && (key.1, key.2) > (best_key.1, best_key.2));
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
///   L1, rounded down to a multiple of 16 and clamped to 16..=1024, then balanced over K;
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
    let kc_max = (caches.l1d / 2) / ((mr + nr) * dtype_bytes);
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
        // 32 NEON registers, 19 usable: 5 x 12 f32 (15 + 3 + 1) loads less per FMA than
        // 8 x 8 (16 + 2 + 1).
        assert_eq!(register_tile(&arm, 4, UNKNOWN), (5, 12));
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
