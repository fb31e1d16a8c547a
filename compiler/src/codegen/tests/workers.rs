//! Kernel bodies compiled on worker threads (`codegen::workers`) give the module that
//! compiling them one after another on the calling thread gives, byte for byte.

use super::tiles::{parse, TILES};
use crate::codegen::object::emit_object;
use crate::codegen::workers::with_cores;
use crate::codegen::{Target, TargetCpu, UkernelIsa, UkernelPlan};

#[test]
fn worker_threads_change_no_byte_of_the_object_file() {
    // Several kernels, each with a contiguous variant: more bodies than threads.
    let m = parse(TILES);
    assert!(m.kernels().count() >= 2, "the module has several kernels");
    // With the AVX2 kernels behind a CPU dispatch: every kind of micro-kernel function.
    let plan = UkernelPlan {
        isa: UkernelIsa::Avx2,
        dispatch: true,
    };
    let serial = with_cores(0, || {
        emit_object(&m, &Target::Host, TargetCpu::X86_64V2, plan)
    })
    .unwrap();
    for cores in [2, 3, 8] {
        let parallel = with_cores(cores, || {
            emit_object(&m, &Target::Host, TargetCpu::X86_64V2, plan)
        })
        .unwrap();
        assert!(parallel.bytes == serial.bytes, "{cores} cores");
    }
}
