//! `.npy` decoding on arbitrary bytes; an array that decodes writes and reads back with the
//! same dtype, shape and bits.

#![no_main]

use einc_compiler::npy::{parse_npy, write_npy_to};
use einc_runtime::array::for_each_index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(array) = parse_npy(data) else { return };
    let mut bytes = Vec::new();
    write_npy_to(&mut bytes, &array).expect("an array that was read can be written");
    let back = parse_npy(&bytes).expect("what was written reads back");
    assert_eq!(back.dtype(), array.dtype());
    assert_eq!(back.shape(), array.shape());
    for_each_index(array.shape(), |i| {
        let (a, b) = (array.get(i), back.get(i));
        assert!(
            a.to_f64().to_bits() == b.to_f64().to_bits() || a == b,
            "{a} became {b}"
        );
    });
});
