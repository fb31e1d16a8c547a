//! Structure-aware: the bytes are the decisions of the random program generator
//! (`testkit::program`, shared with the differential tests), so every input is a well-typed
//! program. Each is compiled in every variant (random legal schedules included) and checked against the interpreter on small
//! extents (`testkit::differential`); any disagreement is a crash.

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
    if let Err(f) = Case::generated(&g, seed).check(&variants_with_random_schedules(seed, 1)) {
        panic!("{f}\n{}\ndims: {:?}, seed {seed}", g.source, g.dims);
    }
});
