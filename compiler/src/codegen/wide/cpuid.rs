//! `einc_cpu_level`: what a library's micro-kernel dispatch asks the CPU once per process
//! (`super::UkernelPlan::dispatch`). Machine code because CPUID and XGETBV have no Cranelift
//! instruction.

use iced_x86::code_asm::*;
use iced_x86::IcedError;

/// CPUID leaf 1, ECX: FMA (bit 12), OSXSAVE (27), AVX (28).
const LEAF1_ECX: i32 = (1 << 12) | (1 << 27) | (1 << 28);
/// CPUID leaf 7, EBX: AVX2 (bit 5).
const LEAF7_EBX_AVX2: i32 = 1 << 5;
/// CPUID leaf 7, EBX: AVX-512 F (bit 16), DQ (17), BW (30), VL (31).
const LEAF7_EBX_AVX512: i32 = (1 << 16) | (1 << 17) | (1 << 30) | (1 << 31);
/// XCR0: SSE (bit 1) and AVX (bit 2) state saved by the OS.
const XCR0_SSE_AVX: i32 = 0b110;
/// XCR0: SSE, AVX, and the opmask (bit 5), upper zmm0-15 (6) and zmm16-31 (7) state.
const XCR0_AVX512: i32 = 0b1110_0110;

/// The code of `int64_t einc_cpu_level(void)` (see `super::cpu_level_code`).
pub(super) fn assemble() -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut baseline = a.create_label();
    let mut out = a.create_label();
    let mut avx2 = a.create_label();
    a.push(rbx)?;
    a.xor(eax, eax)?;
    a.cpuid()?;
    a.cmp(eax, 7)?;
    a.jb(baseline)?;
    a.mov(eax, 1)?;
    a.xor(ecx, ecx)?;
    a.cpuid()?;
    a.and(ecx, LEAF1_ECX)?;
    a.cmp(ecx, LEAF1_ECX)?;
    a.jne(baseline)?;
    a.xor(ecx, ecx)?;
    a.xgetbv()?;
    a.mov(r8d, eax)?;
    a.and(eax, XCR0_SSE_AVX)?;
    a.cmp(eax, XCR0_SSE_AVX)?;
    a.jne(baseline)?;
    a.mov(eax, 7)?;
    a.xor(ecx, ecx)?;
    a.cpuid()?;
    a.test(ebx, LEAF7_EBX_AVX2)?;
    a.jz(baseline)?;
    a.and(ebx, LEAF7_EBX_AVX512)?;
    a.cmp(ebx, LEAF7_EBX_AVX512)?;
    a.jne(avx2)?;
    a.and(r8d, XCR0_AVX512)?;
    a.cmp(r8d, XCR0_AVX512)?;
    a.jne(avx2)?;
    a.mov(eax, 3)?;
    a.jmp(out)?;
    a.set_label(&mut avx2)?;
    a.mov(eax, 2)?;
    a.jmp(out)?;
    a.set_label(&mut baseline)?;
    a.mov(eax, 1)?;
    a.set_label(&mut out)?;
    a.pop(rbx)?;
    a.ret()?;
    a.assemble(0)
}
