//! Tests of `.npy` reading and writing, on hand-written files.

use super::*;
use einc_runtime::Scalar;

/// A version 1.0 file with the given header text and data bytes.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    let text = format!("{header}\n");
    out.extend_from_slice(&u16::try_from(text.len()).unwrap().to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn fortran_big_endian_f64_keeps_its_layout() {
    // [[1, 2, 3], [4, 5, 6]] stored column-major, big-endian.
    let data: Vec<u8> = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let a = parse_npy(&file(
        "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }",
        &data,
    ))
    .unwrap();
    assert_eq!(a.shape(), &[2, 3]);
    assert_eq!(a.strides(), &[1, 2]);
    assert_eq!(a.buffer(), &Buffer::F64(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    assert_eq!(a.to_f64_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn every_supported_dtype_reads_in_both_byte_orders() {
    let le = parse_npy(&file(
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
        &[1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff],
    ))
    .unwrap();
    assert_eq!(le.buffer(), &Buffer::I32(vec![1, -2]));
    let be = parse_npy(&file(
        "{\"descr\": \">i8\", \"fortran_order\": False, \"shape\": (1,)}",
        &[0, 0, 0, 0, 0, 0, 1, 2],
    ))
    .unwrap();
    assert_eq!(be.buffer(), &Buffer::I64(vec![258]));
    let f = parse_npy(&file(
        "{'descr': '>f4', 'fortran_order': False, 'shape': ()}",
        &1.5f32.to_be_bytes(),
    ))
    .unwrap();
    assert_eq!(f.rank(), 0);
    assert_eq!(f.get(&[]), Scalar::F32(1.5));
}

#[test]
fn written_files_are_c_order_little_endian_and_read_back() {
    let fortran =
        Array::with_layout(Buffer::I32(vec![1, 4, 2, 5, 3, 6]), &[2, 3], &[1, 2], 0).unwrap();
    let mut bytes = Vec::new();
    write_npy_to(&mut bytes, &fortran).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("'descr': '<i4'"), "{text}");
    assert!(text.contains("'fortran_order': False"), "{text}");
    assert!(text.contains("'shape': (2, 3, )"), "{text}");
    let data: Vec<u8> = [1i32, 2, 3, 4, 5, 6]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert!(bytes.ends_with(&data));
    let back = parse_npy(&bytes).unwrap();
    assert_eq!(back.buffer(), &Buffer::I32(vec![1, 2, 3, 4, 5, 6]));

    for (buffer, shape) in [
        (Buffer::F32(vec![0.5, -1.0]), vec![2, 1]),
        (Buffer::F64(vec![]), vec![0, 3]),
        (Buffer::I64(vec![-7]), vec![]),
    ] {
        let a = Array::from_buffer(buffer.clone(), &shape).unwrap();
        let mut bytes = Vec::new();
        write_npy_to(&mut bytes, &a).unwrap();
        let back = parse_npy(&bytes).unwrap();
        assert_eq!(back.shape(), &shape[..]);
        assert_eq!(back.buffer(), &buffer);
    }
}

#[test]
fn unsupported_dtypes_are_named() {
    for descr in ["<u2", "|b1", "<c16", "<f2"] {
        let err = parse_npy(&file(
            &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"),
            &[0; 16],
        ))
        .unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("unsupported dtype '{descr}'")),
            "{err}"
        );
    }
    let err = parse_npy(&file(
        "{'descr': [('a', '<i4'), ('b', '<f8')], 'fortran_order': False, 'shape': (1,), }",
        &[0; 12],
    ))
    .unwrap_err();
    assert!(err.message.contains("structured"), "{err}");
}

#[test]
fn malformed_files_are_errors() {
    let cases: [(Vec<u8>, &str); 11] = [
        (b"PK\x03\x04".to_vec(), "not a .npy file"),
        (b"\x93NUMPY\x09\x00\x00\x00".to_vec(), "version 9.0"),
        (b"\x93NUMPY\x01\x00\xff\x00{'descr'".to_vec(), "truncated header"),
        (
            file("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", &[0; 31]),
            "truncated data: the shape [2, 2] of f64 needs 32 bytes but the file holds 31",
        ),
        (
            file(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }",
                &[],
            ),
            "more elements than this machine can address",
        ),
        // Empty, but the other extents overflow together (as numpy refuses them too); found by
        // the npy fuzz target in Fortran order, whose C-order copy then had no strides.
        (
            file(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (0, 2232, 2368556678695, 2232, 2368556678695907783), }",
                &[],
            ),
            "the shape [0, 2232, 2368556678695, 2232, 2368556678695907783] is too large",
        ),
        (
            file(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1152921504606846976, 0), }",
                &[],
            ),
            "is too large",
        ),
        (
            file("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", &[]),
            "the extent -1 is negative",
        ),
        (file("{'descr': '<f8', 'shape': (1,), }", &[0; 8]), "no 'fortran_order' entry"),
        (file(&"[".repeat(10_000), &[]), "nesting too deep"),
        (file("{'descr': '<f8' 'x'}", &[]), "expected ',' or '}'"),
    ];
    for (bytes, want) in cases {
        let err = parse_npy(&bytes).unwrap_err();
        assert!(err.message.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn empty_arrays_with_large_extents_read_and_write_back() {
    // Extents whose product fits, one of them 0: strides exist in both orders.
    for order in ["True", "False"] {
        let header = format!(
            "{{'descr': '<f4', 'fortran_order': {order}, 'shape': (3, 0, 288230376151711744), }}"
        );
        let a = parse_npy(&file(&header, &[])).unwrap();
        let mut bytes = Vec::new();
        write_npy_to(&mut bytes, &a).unwrap();
        let back = parse_npy(&bytes).unwrap();
        assert_eq!(back.shape(), &[3, 0, 288230376151711744]);
    }
}

#[test]
fn no_truncation_or_byte_flip_of_a_valid_file_panics() {
    let mut bytes = file(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
        &[0; 24],
    );
    for n in 0..bytes.len() {
        let _ = parse_npy(&bytes[..n]);
    }
    for i in 0..bytes.len() {
        for v in [0u8, b'(', b'\'', b'9', 0xff] {
            let old = bytes[i];
            bytes[i] = v;
            let _ = parse_npy(&bytes);
            bytes[i] = old;
        }
    }
}
