//! Structure-aware: the bytes are the decisions of the random program generator
//! (`testkit::program`, shared with the differential tests), so every input is a well-typed
//! program. Each is compiled in two variants, one with random legal schedules and one other
//! picked by the input (`testkit::differential`), and checked against the interpreter on small
//! extents; any disagreement is a crash. Two compilations, not all of them, keep every input
//! well under libFuzzer's 1 s timeout even on a loaded machine, and the fuzzer fast; the
//! differential batch of the test suite compiles every case in every variant.

#![no_main]

use einc_compiler::testkit::choices::Choices;
use einc_compiler::testkit::differential::{variants_with_random_schedules, Case};
use einc_compiler::testkit::program::{generate, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = Config {
        max_points: 4_000,
        ..Config::default()
    };
    let g = generate(&mut Choices::new(data), &config);
    let seed = data.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
    let mut variants = variants_with_random_schedules(seed, 1);
    let random = variants.pop().expect("one random-schedule variant");
    let other = variants.swap_remove(seed as usize % variants.len());
    if let Err(f) = Case::generated(&g, seed).check(&[random, other]) {
        panic!("{f}\n{}\ndims: {:?}, seed {seed}", g.source, g.dims);
    }
});
