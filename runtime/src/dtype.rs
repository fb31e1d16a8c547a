//! Element types.

use std::fmt;

/// The element type of a tensor. The discriminants are the ABI's dtype codes and never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum DType {
    /// IEEE 754 binary32.
    F32 = 1,
    /// IEEE 754 binary64.
    F64 = 2,
    /// Two's-complement 32-bit integer; arithmetic wraps.
    I32 = 3,
    /// Two's-complement 64-bit integer; arithmetic wraps.
    I64 = 4,
}

impl DType {
    /// Every dtype, in ABI-code order.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::I64];

    /// The name used in `.ein` source and in IR text (`f32`, `f64`, `i32`, `i64`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::I64 => "i64",
        }
    }

    /// Parses a name as written by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The ABI code (the enum discriminant).
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The dtype with the given ABI code.
    pub fn from_code(code: i32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.code() == code)
    }

    /// Size of one element in bytes.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// True for `f32` and `f64`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// numpy's `result_type` for two operands of these dtypes: the smallest type that
    /// represents both. `i32` with `f32` gives `f64`, as numpy does.
    pub fn promote(self, other: DType) -> DType {
        use DType::*;
        match (self, other) {
            (a, b) if a == b => a,
            // Mixed pairs: any float makes f64 (an f32 cannot hold every i32); two ints make i64.
            (a, b) if a.is_float() || b.is_float() => F64,
            _ => I64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
            assert_eq!(DType::from_code(d.code()), Some(d));
        }
        assert_eq!(DType::from_name("f16"), None);
        assert_eq!(DType::from_code(0), None);
    }

    #[test]
    fn promotion_follows_numpy_result_type() {
        use DType::*;
        // Expected values are numpy.result_type's answers for these pairs.
        let table = [
            (F32, F32, F32),
            (F32, F64, F64),
            (F32, I32, F64),
            (F32, I64, F64),
            (F64, I32, F64),
            (F64, I64, F64),
            (I32, I32, I32),
            (I32, I64, I64),
            (I64, I64, I64),
        ];
        for (a, b, want) in table {
            assert_eq!(a.promote(b), want, "{a} with {b}");
            assert_eq!(b.promote(a), want, "{b} with {a}");
        }
    }
}
