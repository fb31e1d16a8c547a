//! The wide micro-kernel generator: `gemm.<dtype>.<MR>x<NR>` as x86-64 machine code with
//! 256-bit ymm vectors (AVX2 + FMA) or 512-bit zmm vectors (AVX-512 F/DQ/BW/VL), assembled with
//! iced-x86's code assembler. One generator, generic over the vector register ([`Width`]):
//! the two kernels differ only in the register file, in how an edge tile masks its columns
//! and in how A's element reaches the FMA.
//!
//! **Registers.** The tile lives in `MR * NV` accumulators (`NV = NR / lanes`: 8 f32 or 4 f64
//! lanes in a ymm register, 16 or 8 in a zmm one); one k step loads B's row into `NV`
//! registers and does one `vfmadd231` per accumulator (`acc = b * a + acc`: one rounding, the
//! evaluator's `fma(a, b, acc)`). A's element is broadcast from memory into one more register
//! (`vbroadcastss`/`vbroadcastsd`) and used by the row's `NV` FMAs; a zmm kernel with one
//! vector per row reads it in the FMA itself, as an embedded `{1toN}` broadcast operand, and
//! needs no broadcast register. The shapes generated ([`supports`]) are those whose k loop
//! fits the register file (16 ymm, 32 zmm) with `MR <= 12`, and whose accumulators leave two
//! registers free for the epilogue's temporaries (the two highest).
//!
//! **Row counts.** The code holds one copy of the k loop and epilogue for every row count
//! `r` in `1 ..= MR` and jumps to the one an m-tile needs: an edge tile reads and computes
//! exactly its rows (A needs no padding and no row is clamped), at the price of code size (a
//! few KiB per kernel). Rows `3g`, `3g + 1`, `3g + 2` of A are read at `[G_g]`, `[G_g + ms]`,
//! `[G_g + 2 ms]` from one pointer per three rows, which advances by `a_ks` per step: packed
//! and strided panels take the same loop.
//!
//! **Columns.** A full tile (`nr == NR`) loads and stores whole vectors. An edge tile masks
//! each vector's lanes to `lane < nr`: the ymm kernel with `vmaskmov` and a lane mask per
//! vector in its frame, the zmm kernel with masked moves under opmask registers `k1`.. (one
//! per vector); both masks are built once per call by comparing `nr` with a table of lane
//! numbers (after the code, read `rip`-relative). Vectors wholly past `nr` are skipped, so the
//! kernel reads and writes exactly the `mr x nr` elements of C. B is read over its full width,
//! as the contract allows.
//!
//! **Epilogue.** One branch per optional step per tile, each step elementwise and in the
//! contract's order: `C + t` (C first), `* scale` or `/ scale`, `+ bias`, then relu as
//! `max(0, v) + 0`: `vmaxps` returns its second operand when either is NaN or both are
//! zeros, so NaN stays NaN and `-0.0` stays `-0.0` until adding `+0.0` makes it `0.0`. The
//! scale is broadcast into the frame once per call; a bias along n is copied there once per
//! call (any stride, zeros past `nr`), a bias along m is broadcast per row.
//!
//! **Calling convention.** System V: the argument block in `rdi`; `rbx`, `rbp`, `r12`–`r15`
//! are saved and restored; `vzeroupper` before returning (the caller's code may use legacy
//! SSE encodings). A leaf function without unwind information and without relocations: the
//! lane table is addressed relative to `rip` inside the function itself.

use super::super::ukernel::{args, flags};
use super::Assembled;
use crate::ir::loops::UkernelShape;
use einc_runtime::DType;
use iced_x86::code_asm::asm_traits::*;
use iced_x86::code_asm::*;
use iced_x86::{BlockEncoderOptions, IcedError};
use std::marker::PhantomData;

/// A's row pointers: rows `3g .. 3g + 3` are read from `GROUPS[g]`.
const GROUPS: [AsmRegister64; 4] = [r11, rax, rbx, rcx];

/// The most rows a kernel can have (three per row pointer).
pub(super) const MAX_MR: u32 = 12;

/// The most vectors per row of a zmm tile: one opmask register each (`k1` ..= `k6`).
const MAX_NV_ZMM: usize = 6;

/// The frame (offsets from `rsp`): a ymm kernel's lane mask per vector of B's row (4 ymm), the
/// broadcast scale (one vector), and the bias along n as `NR` contiguous elements (up to
/// [`MAX_NV_ZMM`] zmm vectors).
const MASKS: i32 = 0;
const SCALE: i32 = 4 * 32;
const BIAS_N: i32 = SCALE + 64;
const FRAME: i32 = BIAS_N + MAX_NV_ZMM as i32 * 64;

/// The callee-saved registers the kernel uses, in push order.
const SAVED: [AsmRegister64; 6] = [rbx, rbp, r12, r13, r14, r15];

/// The vector registers a kernel is generated with, and what differs between them.
pub(super) trait Width: Copy + Sized {
    /// Bytes per register.
    const BYTES: i32;
    /// Registers in the file.
    const REGS: usize;
    /// The most vectors per row of a tile.
    const MAX_NV: usize;
    /// Whether an FMA can read A's element as an embedded broadcast operand.
    const EMBEDDED_BROADCAST: bool;
    /// Register `n`.
    fn reg(n: usize) -> Self;
    /// A memory operand of one register's size.
    fn sized(at: AsmMemoryOperand) -> AsmMemoryOperand;
    /// Builds the edge-tile lane masks of every vector from `nr` (in `rax`, positive) and the
    /// lane table at `iota` (one label per vector); may use the epilogue's temporaries.
    fn masks(g: &mut Gen<Self>, iota: &[CodeLabel]) -> R;
    /// Makes vector `v`'s lane mask ready for [`Width::load_masked`] and
    /// [`Width::store_masked`] (ymm: loads it into a temporary).
    fn select_mask(g: &mut Gen<Self>, v: usize) -> R;
    /// `dst = [at]` in the lanes of vector `v`'s mask (other lanes: anything).
    fn load_masked(g: &mut Gen<Self>, v: usize, dst: Self, at: AsmMemoryOperand) -> R;
    /// `[at] = src` in the lanes of vector `v`'s mask only.
    fn store_masked(g: &mut Gen<Self>, v: usize, at: AsmMemoryOperand, src: Self) -> R;
}

/// 256-bit vectors: AVX2 + FMA, 16 registers.
impl Width for AsmRegisterYmm {
    const BYTES: i32 = 32;
    const REGS: usize = 16;
    const MAX_NV: usize = 4;
    const EMBEDDED_BROADCAST: bool = false;

    fn reg(n: usize) -> Self {
        const YMM: [AsmRegisterYmm; 16] = [
            ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13,
            ymm14, ymm15,
        ];
        YMM[n]
    }

    fn sized(at: AsmMemoryOperand) -> AsmMemoryOperand {
        ymmword_ptr(at)
    }

    /// Lane `j` of vector `v`'s mask (in the frame) is all ones when `v * lanes + j < nr`.
    fn masks(g: &mut Gen<Self>, iota: &[CodeLabel]) -> R {
        if g.f64 {
            g.a.vmovq(xmm15, rax)?;
            g.a.vpbroadcastq(ymm15, xmm15)?;
        } else {
            g.a.vmovd(xmm15, eax)?;
            g.a.vpbroadcastd(ymm15, xmm15)?;
        }
        for (v, label) in iota.iter().enumerate() {
            if g.f64 {
                g.a.vpcmpgtq(ymm14, ymm15, ymmword_ptr(*label))?;
            } else {
                g.a.vpcmpgtd(ymm14, ymm15, ymmword_ptr(*label))?;
            }
            g.a.vmovdqu(ymmword_ptr(rsp + (MASKS + 32 * v as i32)), ymm14)?;
        }
        Ok(())
    }

    fn select_mask(g: &mut Gen<Self>, v: usize) -> R {
        g.a.vmovdqu(ymm14, ymmword_ptr(rsp + (MASKS + 32 * v as i32)))
    }

    fn load_masked(g: &mut Gen<Self>, _: usize, dst: Self, at: AsmMemoryOperand) -> R {
        if g.f64 {
            g.a.vmaskmovpd(dst, ymm14, ymmword_ptr(at))
        } else {
            g.a.vmaskmovps(dst, ymm14, ymmword_ptr(at))
        }
    }

    fn store_masked(g: &mut Gen<Self>, _: usize, at: AsmMemoryOperand, src: Self) -> R {
        if g.f64 {
            g.a.vmaskmovpd(ymmword_ptr(at), ymm14, src)
        } else {
            g.a.vmaskmovps(ymmword_ptr(at), ymm14, src)
        }
    }
}

/// 512-bit vectors: AVX-512 F/DQ/BW/VL, 32 registers and 8 opmask registers.
impl Width for AsmRegisterZmm {
    const BYTES: i32 = 64;
    const REGS: usize = 32;
    const MAX_NV: usize = MAX_NV_ZMM;
    const EMBEDDED_BROADCAST: bool = true;

    fn reg(n: usize) -> Self {
        const ZMM: [AsmRegisterZmm; 32] = [
            zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13,
            zmm14, zmm15, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25,
            zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
        ];
        ZMM[n]
    }

    fn sized(at: AsmMemoryOperand) -> AsmMemoryOperand {
        zmmword_ptr(at)
    }

    /// Bit `j` of opmask `k(v + 1)` is set when `v * lanes + j < nr`.
    fn masks(g: &mut Gen<Self>, iota: &[CodeLabel]) -> R {
        if g.f64 {
            g.a.vpbroadcastq(zmm31, rax)?;
        } else {
            g.a.vpbroadcastd(zmm31, eax)?;
        }
        for (v, label) in iota.iter().enumerate() {
            if g.f64 {
                g.a.vpcmpgtq(OPMASKS[v], zmm31, zmmword_ptr(*label))?;
            } else {
                g.a.vpcmpgtd(OPMASKS[v], zmm31, zmmword_ptr(*label))?;
            }
        }
        Ok(())
    }

    fn select_mask(_: &mut Gen<Self>, _: usize) -> R {
        Ok(())
    }

    fn load_masked(g: &mut Gen<Self>, v: usize, dst: Self, at: AsmMemoryOperand) -> R {
        let dst = with_opmask(dst, v).z();
        if g.f64 {
            g.a.vmovupd(dst, zmmword_ptr(at))
        } else {
            g.a.vmovups(dst, zmmword_ptr(at))
        }
    }

    fn store_masked(g: &mut Gen<Self>, v: usize, at: AsmMemoryOperand, src: Self) -> R {
        let at = mem_with_opmask(zmmword_ptr(at), v);
        if g.f64 {
            g.a.vmovupd(at, src)
        } else {
            g.a.vmovups(at, src)
        }
    }
}

/// The opmask register of each vector of a zmm tile's row.
const OPMASKS: [AsmRegisterK; MAX_NV_ZMM] = [k1, k2, k3, k4, k5, k6];

/// `reg {k(v + 1)}`.
fn with_opmask(reg: AsmRegisterZmm, v: usize) -> AsmRegisterZmm {
    match v {
        0 => reg.k1(),
        1 => reg.k2(),
        2 => reg.k3(),
        3 => reg.k4(),
        4 => reg.k5(),
        _ => reg.k6(),
    }
}

/// `at {k(v + 1)}`.
fn mem_with_opmask(at: AsmMemoryOperand, v: usize) -> AsmMemoryOperand {
    match v {
        0 => at.k1(),
        1 => at.k2(),
        2 => at.k3(),
        3 => at.k4(),
        4 => at.k5(),
        _ => at.k6(),
    }
}

/// Elements of `dtype` in a register of `W`.
fn lanes<W: Width>(dtype: DType) -> u32 {
    W::BYTES as u32 / dtype.size_bytes() as u32
}

/// Whether [`assemble`] generates `shape` with registers `W`: `NR` whole vectors, at most
/// `W::MAX_NV` of them, `MR <= 12`, the k loop's accumulators, B vectors and broadcast
/// register within the file, and two registers left beside the accumulators.
pub(super) fn supports<W: Width>(shape: UkernelShape) -> bool {
    let lanes = lanes::<W>(shape.dtype);
    let nv = (shape.nr / lanes.max(1)) as usize;
    let mr = shape.mr as usize;
    let broadcast = usize::from(!(W::EMBEDDED_BROADCAST && nv == 1));
    matches!(shape.dtype, DType::F32 | DType::F64)
        && shape.nr.is_multiple_of(lanes)
        && (1..=W::MAX_NV).contains(&nv)
        && (1..=MAX_MR as usize).contains(&mr)
        && mr * nv + nv + broadcast <= W::REGS
        && mr * nv + 2 <= W::REGS
}

/// The machine code of micro-kernel `shape` with registers `W` ([`supports`] accepts it), to
/// be placed at any address: it has no relocations.
pub(super) fn assemble<W: Width>(shape: UkernelShape) -> Result<Assembled, IcedError>
where
    CodeAssembler: Ops<W>,
{
    let lanes = lanes::<W>(shape.dtype);
    let mut g = Gen::<W> {
        a: CodeAssembler::new(64)?,
        f64: shape.dtype == DType::F64,
        mr: shape.mr as usize,
        nv: (shape.nr / lanes) as usize,
        lanes: lanes as i32,
        size: shape.dtype.size_bytes() as i32,
        shift: shape.dtype.size_bytes().trailing_zeros(),
        width: PhantomData,
    };
    let table = g.kernel()?;
    let out =
        g.a.assemble_options(0, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS)?;
    let code_len = usize::try_from(out.label_ip(&table)?).unwrap_or(usize::MAX);
    Ok(Assembled {
        bytes: out.inner.code_buffer,
        code_len,
    })
}

/// The state of generating one kernel.
pub(super) struct Gen<W> {
    a: CodeAssembler,
    f64: bool,
    /// `MR`.
    mr: usize,
    /// Vectors per row of the tile.
    nv: usize,
    /// Elements per vector.
    lanes: i32,
    /// Bytes per element, and its log2.
    size: i32,
    shift: u32,
    width: PhantomData<W>,
}

type R = Result<(), IcedError>;

/// The vector instructions the generator emits on registers `W`, whatever their width.
pub(super) trait Ops<W>:
    CodeAsmVmovups<W, AsmMemoryOperand>
    + CodeAsmVmovups<AsmMemoryOperand, W>
    + CodeAsmVmovupd<W, AsmMemoryOperand>
    + CodeAsmVmovupd<AsmMemoryOperand, W>
    + CodeAsmVbroadcastss<W, AsmMemoryOperand>
    + CodeAsmVbroadcastsd<W, AsmMemoryOperand>
    + CodeAsmVfmadd231ps<W, W, W>
    + CodeAsmVfmadd231pd<W, W, W>
    + CodeAsmVfmadd231ps<W, W, AsmMemoryOperand>
    + CodeAsmVfmadd231pd<W, W, AsmMemoryOperand>
    + CodeAsmVaddps<W, W, W>
    + CodeAsmVaddpd<W, W, W>
    + CodeAsmVaddps<W, W, AsmMemoryOperand>
    + CodeAsmVaddpd<W, W, AsmMemoryOperand>
    + CodeAsmVmulps<W, W, AsmMemoryOperand>
    + CodeAsmVmulpd<W, W, AsmMemoryOperand>
    + CodeAsmVdivps<W, W, AsmMemoryOperand>
    + CodeAsmVdivpd<W, W, AsmMemoryOperand>
    + CodeAsmVmaxps<W, W, W>
    + CodeAsmVmaxpd<W, W, W>
    + CodeAsmVxorps<W, W, W>
{
}

impl<W, T> Ops<W> for T where
    T: CodeAsmVmovups<W, AsmMemoryOperand>
        + CodeAsmVmovups<AsmMemoryOperand, W>
        + CodeAsmVmovupd<W, AsmMemoryOperand>
        + CodeAsmVmovupd<AsmMemoryOperand, W>
        + CodeAsmVbroadcastss<W, AsmMemoryOperand>
        + CodeAsmVbroadcastsd<W, AsmMemoryOperand>
        + CodeAsmVfmadd231ps<W, W, W>
        + CodeAsmVfmadd231pd<W, W, W>
        + CodeAsmVfmadd231ps<W, W, AsmMemoryOperand>
        + CodeAsmVfmadd231pd<W, W, AsmMemoryOperand>
        + CodeAsmVaddps<W, W, W>
        + CodeAsmVaddpd<W, W, W>
        + CodeAsmVaddps<W, W, AsmMemoryOperand>
        + CodeAsmVaddpd<W, W, AsmMemoryOperand>
        + CodeAsmVmulps<W, W, AsmMemoryOperand>
        + CodeAsmVmulpd<W, W, AsmMemoryOperand>
        + CodeAsmVdivps<W, W, AsmMemoryOperand>
        + CodeAsmVdivpd<W, W, AsmMemoryOperand>
        + CodeAsmVmaxps<W, W, W>
        + CodeAsmVmaxpd<W, W, W>
        + CodeAsmVxorps<W, W, W>
{
}

impl<W: Width> Gen<W>
where
    CodeAssembler: Ops<W>,
{
    /// Register `n`.
    fn v(&self, n: usize) -> W {
        W::reg(n)
    }

    /// The epilogue's temporaries: the two highest registers, never accumulators.
    fn temps(&self) -> (W, W) {
        (W::reg(W::REGS - 1), W::reg(W::REGS - 2))
    }

    /// The whole function; returns the label of the lane table that follows its code.
    fn kernel(&mut self) -> Result<CodeLabel, IcedError> {
        let big_mr = self.mr as i32;
        let big_nr = self.nv as i32 * self.lanes;
        let mut done = self.a.create_label();
        let mut tile = self.a.create_label();
        let mut next = self.a.create_label();
        let mut iota: Vec<CodeLabel> = (0..self.nv).map(|_| self.a.create_label()).collect();
        let mut rows: Vec<CodeLabel> = (0..self.mr).map(|_| self.a.create_label()).collect();

        for r in SAVED {
            self.a.push(r)?;
        }
        self.a.sub(rsp, FRAME)?;
        self.a.mov(r15, qword_ptr(rdi + args::MR))?;
        self.a.test(r15, r15)?;
        self.a.jle(done)?;
        self.a.mov(rax, qword_ptr(rdi + args::NR))?;
        self.a.test(rax, rax)?;
        self.a.jle(done)?;

        // Lane masks: lane `j` of vector `v` is selected when `v * lanes + j < nr`.
        W::masks(self, &iota)?;
        // The scale, broadcast (the field is always readable; used only with its flags).
        let (t, _) = self.temps();
        self.broadcast(t, rdi + args::SCALE)?;
        self.a.vmovups(W::sized(rsp + SCALE), t)?;

        // A bias along n, copied to the frame once per call: nr elements, zeros after.
        let mut no_bias_n = self.a.create_label();
        self.a.mov(rdx, qword_ptr(rdi + args::FLAGS))?;
        self.a.test(dl, flags::BIAS as i32)?;
        self.a.jz(no_bias_n)?;
        self.a.test(dl, flags::BIAS_M as i32)?;
        self.a.jnz(no_bias_n)?;
        self.a.vxorps(t, t, t)?;
        for v in 0..self.nv as i32 {
            self.a.vmovups(W::sized(rsp + (BIAS_N + W::BYTES * v)), t)?;
        }
        self.a.mov(rcx, qword_ptr(rdi + args::BIAS))?;
        self.a.mov(rsi, qword_ptr(rdi + args::BIAS_S))?;
        self.a.shl(rsi, self.shift)?;
        self.a.xor(r10d, r10d)?;
        let mut copy = self.a.create_label();
        self.a.set_label(&mut copy)?;
        if self.f64 {
            self.a.vmovsd(xmm15, qword_ptr(rcx))?;
            self.a.vmovsd(qword_ptr(rsp + r10 * 8 + BIAS_N), xmm15)?;
        } else {
            self.a.vmovss(xmm15, dword_ptr(rcx))?;
            self.a.vmovss(dword_ptr(rsp + r10 * 4 + BIAS_N), xmm15)?;
        }
        self.a.add(rcx, rsi)?;
        self.a.inc(r10)?;
        self.a.cmp(r10, rax)?;
        self.a.jl(copy)?;
        self.a.set_label(&mut no_bias_n)?;

        // kc (a negative count is 0), and the first m-tile's A, C and bias.
        self.a.mov(rbp, qword_ptr(rdi + args::KC))?;
        self.a.xor(eax, eax)?;
        self.a.test(rbp, rbp)?;
        self.a.cmovl(rbp, rax)?;
        self.a.mov(r12, qword_ptr(rdi + args::A))?;
        self.a.mov(r13, qword_ptr(rdi + args::C))?;
        self.a.mov(r14, qword_ptr(rdi + args::BIAS))?;

        // Each m-tile: rows = min(left, MR), then the code for that many rows.
        self.a.set_label(&mut tile)?;
        self.a.mov(eax, big_mr)?;
        self.a.cmp(r15, rax)?;
        self.a.cmovl(rax, r15)?;
        for r in (2..=self.mr).rev() {
            self.a.cmp(rax, r as i32)?;
            self.a.je(rows[r - 1])?;
        }
        self.a.jmp(rows[0])?;
        for r in (1..=self.mr).rev() {
            self.a.set_label(&mut rows[r - 1])?;
            self.rows(r)?;
            self.a.jmp(next)?;
        }

        // The next m-tile: A by a_ts, C by MR rows, a bias along m by MR elements.
        self.a.set_label(&mut next)?;
        self.a.sub(r15, big_mr)?;
        self.a.jle(done)?;
        self.a.mov(rax, qword_ptr(rdi + args::A_TS))?;
        self.a.shl(rax, self.shift)?;
        self.a.add(r12, rax)?;
        self.a
            .imul_3(rax, qword_ptr(rdi + args::C_MS), big_mr * self.size)?;
        self.a.add(r13, rax)?;
        self.a
            .test(byte_ptr(rdi + args::FLAGS), flags::BIAS_M as i32)?;
        self.a.jz(tile)?;
        self.a
            .imul_3(rax, qword_ptr(rdi + args::BIAS_S), big_mr * self.size)?;
        self.a.add(r14, rax)?;
        self.a.jmp(tile)?;

        self.a.set_label(&mut done)?;
        self.a.vzeroupper()?;
        self.a.add(rsp, FRAME)?;
        for r in SAVED.iter().rev() {
            self.a.pop(*r)?;
        }
        self.a.ret()?;

        // The lane numbers 0 .. NR, one vector per label.
        for (v, label) in iota.iter_mut().enumerate() {
            self.a.set_label(label)?;
            let mut bytes = Vec::with_capacity(W::BYTES as usize);
            for j in 0..self.lanes {
                let lane = i64::from(v as i32 * self.lanes + j);
                if self.f64 {
                    bytes.extend_from_slice(&lane.to_le_bytes());
                } else {
                    bytes.extend_from_slice(&(lane as i32).to_le_bytes());
                }
            }
            self.a.db(&bytes)?;
        }
        debug_assert!(big_nr <= W::MAX_NV as i32 * self.lanes);
        Ok(iota[0])
    }

    /// The k loop and the epilogue of an m-tile of `r` rows.
    fn rows(&mut self, r: usize) -> R {
        let groups = r.div_ceil(3);
        // C's rows, every cache line and the last byte, into L1 while the k loop runs: the
        // epilogue reads (or writes) them after hundreds of cycles of FMAs, and rows `c_ms`
        // apart rarely stay cached between the calls of a GEMM (measured: 12% of the kernel's
        // samples waited on C in matmul 1024^3 without this).
        let row_bytes = self.nv as i32 * W::BYTES;
        self.a.mov(rax, r13)?;
        self.a.mov(rcx, qword_ptr(rdi + args::C_MS))?;
        self.a.shl(rcx, self.shift)?;
        for _ in 0..r {
            for line in (0..row_bytes).step_by(64) {
                self.a.prefetcht0(byte_ptr(rax + line))?;
            }
            self.a.prefetcht0(byte_ptr(rax + (row_bytes - 1)))?;
            self.a.add(rax, rcx)?;
        }
        self.a.mov(rsi, qword_ptr(rdi + args::A_MS))?;
        self.a.shl(rsi, self.shift)?;
        self.a.mov(rdx, qword_ptr(rdi + args::A_KS))?;
        self.a.shl(rdx, self.shift)?;
        self.a.mov(r8, qword_ptr(rdi + args::B))?;
        self.a.mov(r9, qword_ptr(rdi + args::B_KS))?;
        self.a.shl(r9, self.shift)?;
        self.a.mov(GROUPS[0], r12)?;
        for g in 1..groups {
            self.a.lea(GROUPS[g], ptr(rsi + rsi * 2))?;
            self.a.add(GROUPS[g], GROUPS[g - 1])?;
        }
        for n in 0..r * self.nv {
            let acc = self.v(n);
            self.a.vxorps(acc, acc, acc)?;
        }

        // kc / 4 iterations of four steps, then kc % 4 single steps.
        let mut unrolled = self.a.create_label();
        let mut tail = self.a.create_label();
        let mut single = self.a.create_label();
        let mut epilogue = self.a.create_label();
        self.a.mov(r10, rbp)?;
        self.a.shr(r10, 2)?;
        self.a.jz(tail)?;
        self.a.set_label(&mut unrolled)?;
        for _ in 0..4 {
            self.step(r, groups)?;
        }
        self.a.dec(r10)?;
        self.a.jnz(unrolled)?;
        self.a.set_label(&mut tail)?;
        self.a.mov(r10, rbp)?;
        self.a.and(r10, 3)?;
        self.a.jz(epilogue)?;
        self.a.set_label(&mut single)?;
        self.step(r, groups)?;
        self.a.dec(r10)?;
        self.a.jnz(single)?;
        self.a.set_label(&mut epilogue)?;
        self.epilogue(r)
    }

    /// One k step of `r` rows.
    fn step(&mut self, r: usize, groups: usize) -> R {
        let nv = self.nv;
        let b: Vec<W> = (r * nv..r * nv + nv).map(W::reg).collect();
        let bcast = self.v(r * nv + nv);
        let embedded = W::EMBEDDED_BROADCAST && nv == 1;
        for (v, reg) in b.iter().enumerate() {
            self.load(*reg, r8 + W::BYTES * v as i32)?;
        }
        for ii in 0..r {
            let g = GROUPS[ii / 3];
            let at: AsmMemoryOperand = match ii % 3 {
                0 => g.into(),
                1 => g + rsi,
                _ => g + rsi * 2,
            };
            if embedded {
                // `acc = b * {1toN}[at] + acc`.
                let acc = self.v(ii);
                if self.f64 {
                    self.a.vfmadd231pd(acc, b[0], qword_bcst(at))?;
                } else {
                    self.a.vfmadd231ps(acc, b[0], dword_bcst(at))?;
                }
                continue;
            }
            self.broadcast(bcast, at)?;
            for (v, reg) in b.iter().enumerate() {
                let acc = self.v(ii * nv + v);
                if self.f64 {
                    self.a.vfmadd231pd(acc, *reg, bcast)?;
                } else {
                    self.a.vfmadd231ps(acc, *reg, bcast)?;
                }
            }
        }
        for g in &GROUPS[..groups] {
            self.a.add(*g, rdx)?;
        }
        self.a.add(r8, r9)
    }

    /// Finishes and stores the `r x nr` tile at `r13` (then falls through).
    fn epilogue(&mut self, r: usize) -> R {
        let nv = self.nv;
        let big_nr = nv as i32 * self.lanes;
        let (t, m) = self.temps();
        let accs: Vec<W> = (0..r * nv).map(W::reg).collect();
        self.a.mov(rdx, qword_ptr(rdi + args::FLAGS))?;
        self.a.mov(rsi, qword_ptr(rdi + args::NR))?;
        self.a.mov(rcx, qword_ptr(rdi + args::C_MS))?;
        self.a.shl(rcx, self.shift)?;

        // v = C + t unless init.
        let mut added = self.a.create_label();
        let mut masked = self.a.create_label();
        self.a.test(dl, flags::INIT as i32)?;
        self.a.jnz(added)?;
        self.a.cmp(rsi, big_nr)?;
        self.a.jne(masked)?;
        self.a.mov(rax, r13)?;
        for ii in 0..r {
            for v in 0..nv {
                let acc = self.v(ii * nv + v);
                self.load(t, rax + W::BYTES * v as i32)?;
                self.add(acc, t, acc)?;
            }
            self.a.add(rax, rcx)?;
        }
        self.a.jmp(added)?;
        self.a.set_label(&mut masked)?;
        self.masked_columns(r, added, |g, v, at, acc| {
            W::load_masked(g, v, t, at)?;
            g.add(acc, t, acc)
        })?;
        self.a.set_label(&mut added)?;

        // * scale, / scale.
        self.by_scale(&accs, flags::SCALE, false)?;
        self.by_scale(&accs, flags::DIVIDE, true)?;

        // + bias: along m one broadcast element per row, along n the frame's copy.
        let mut biased = self.a.create_label();
        let mut along_n = self.a.create_label();
        self.a.test(dl, flags::BIAS as i32)?;
        self.a.jz(biased)?;
        self.a.test(dl, flags::BIAS_M as i32)?;
        self.a.jz(along_n)?;
        self.a.mov(rax, r14)?;
        self.a.mov(r8, qword_ptr(rdi + args::BIAS_S))?;
        self.a.shl(r8, self.shift)?;
        for ii in 0..r {
            self.broadcast(t, rax.into())?;
            for v in 0..nv {
                let acc = self.v(ii * nv + v);
                self.add(acc, acc, t)?;
            }
            self.a.add(rax, r8)?;
        }
        self.a.jmp(biased)?;
        self.a.set_label(&mut along_n)?;
        for ii in 0..r {
            for v in 0..nv {
                let acc = self.v(ii * nv + v);
                let at = W::sized(rsp + (BIAS_N + W::BYTES * v as i32));
                if self.f64 {
                    self.a.vaddpd(acc, acc, at)?;
                } else {
                    self.a.vaddps(acc, acc, at)?;
                }
            }
        }
        self.a.set_label(&mut biased)?;

        // relu: max(0, v) + 0.
        let mut rectified = self.a.create_label();
        self.a.test(dl, flags::RELU as i32)?;
        self.a.jz(rectified)?;
        self.a.vxorps(m, m, m)?;
        for acc in &accs {
            if self.f64 {
                self.a.vmaxpd(t, m, *acc)?;
            } else {
                self.a.vmaxps(t, m, *acc)?;
            }
            self.add(*acc, t, m)?;
        }
        self.a.set_label(&mut rectified)?;

        // Store: whole vectors for a full tile, masked vectors up to nr for an edge tile.
        let mut stored = self.a.create_label();
        let mut masked = self.a.create_label();
        self.a.cmp(rsi, big_nr)?;
        self.a.jne(masked)?;
        self.a.mov(rax, r13)?;
        for ii in 0..r {
            for v in 0..nv {
                let at = W::sized(rax + W::BYTES * v as i32);
                let acc = self.v(ii * nv + v);
                if self.f64 {
                    self.a.vmovupd(at, acc)?;
                } else {
                    self.a.vmovups(at, acc)?;
                }
            }
            self.a.add(rax, rcx)?;
        }
        self.a.jmp(stored)?;
        self.a.set_label(&mut masked)?;
        self.masked_columns(r, stored, |g, v, at, acc| W::store_masked(g, v, at, acc))?;
        self.a.set_label(&mut stored)
    }

    /// The edge-tile access of C: for each vector `v` with lanes below `nr` (`rsi`), its lane
    /// mask selected ([`Width::select_mask`]), then `op(v, C(ii, v)'s address, accumulator
    /// (ii, v))` for each row `ii < r` (rows from `r13`, `rcx` bytes apart); jumps to `done`
    /// at the first vector wholly past `nr`, so no masked-off vector is touched.
    fn masked_columns(
        &mut self,
        r: usize,
        done: CodeLabel,
        op: impl Fn(&mut Self, usize, AsmMemoryOperand, W) -> R,
    ) -> R {
        for v in 0..self.nv {
            self.a.cmp(rsi, v as i32 * self.lanes)?;
            self.a.jle(done)?;
            W::select_mask(self, v)?;
            self.a.mov(rax, r13)?;
            for ii in 0..r {
                let acc = self.v(ii * self.nv + v);
                op(self, v, rax + W::BYTES * v as i32, acc)?;
                self.a.add(rax, rcx)?;
            }
        }
        Ok(())
    }

    /// `acc = acc * scale` (or `/ scale` with `divide`) for every accumulator, when `bit` is
    /// set in the flags (`dl`); the scale is the frame's broadcast copy.
    fn by_scale(&mut self, accs: &[W], bit: i64, divide: bool) -> R {
        let mut skip = self.a.create_label();
        self.a.test(dl, bit as i32)?;
        self.a.jz(skip)?;
        for acc in accs {
            let s = W::sized(rsp + SCALE);
            match (self.f64, divide) {
                (false, false) => self.a.vmulps(*acc, *acc, s)?,
                (true, false) => self.a.vmulpd(*acc, *acc, s)?,
                (false, true) => self.a.vdivps(*acc, *acc, s)?,
                (true, true) => self.a.vdivpd(*acc, *acc, s)?,
            }
        }
        self.a.set_label(&mut skip)
    }

    /// `dst = [at]` (a whole vector).
    fn load(&mut self, dst: W, at: AsmMemoryOperand) -> R {
        if self.f64 {
            self.a.vmovupd(dst, W::sized(at))
        } else {
            self.a.vmovups(dst, W::sized(at))
        }
    }

    /// `dst = [at]` in every lane.
    fn broadcast(&mut self, dst: W, at: AsmMemoryOperand) -> R {
        if self.f64 {
            self.a.vbroadcastsd(dst, qword_ptr(at))
        } else {
            self.a.vbroadcastss(dst, dword_ptr(at))
        }
    }

    /// `dst = x + y`.
    fn add(&mut self, dst: W, x: W, y: W) -> R {
        if self.f64 {
            self.a.vaddpd(dst, x, y)
        } else {
            self.a.vaddps(dst, x, y)
        }
    }
}
