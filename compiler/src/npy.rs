//! Reading and writing `.npy` files (numpy's array format) as [`einc_runtime::Array`]s.
//!
//! Reads f32, f64, i32 and i64 arrays, little- or big-endian, in C or Fortran order (a Fortran
//! file becomes an array with Fortran strides over the data as stored: nothing is copied).
//! Writes C-order little-endian files through `npyz`.
//!
//! The header is parsed here rather than by `npyz::NpyHeader`, because that multiplies the
//! shape unchecked (a crafted header overflows and panics) and allocates the header length
//! before checking it against the file. Every malformed file is an [`NpyError`], never a panic.

use einc_runtime::array::{c_strides, element_count};
use einc_runtime::{Array, Buffer, DType};
use npyz::WriterBuilder;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// Why a `.npy` file could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError {
    /// What went wrong (without the file name, which the caller knows).
    pub message: String,
}

impl NpyError {
    fn new(message: impl Into<String>) -> NpyError {
        NpyError {
            message: message.into(),
        }
    }
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NpyError {}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<Array, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| NpyError::new(format!("cannot read: {e}")))?;
    parse_npy(&bytes)
}

/// Decodes the bytes of a `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<Array, NpyError> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.get(..MAGIC.len()) != Some(MAGIC) {
        return Err(NpyError::new(
            "not a .npy file (it does not start with \"\\x93NUMPY\")",
        ));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[a, b]) => (a, b),
        _ => return Err(NpyError::new("truncated header: no format version")),
    };
    let (len_bytes, text_start) = match (major, minor) {
        (1, 0) => (2, 10),
        (2, 0) | (3, 0) => (4, 12),
        _ => {
            return Err(NpyError::new(format!(
                "unsupported .npy format version {major}.{minor}"
            )))
        }
    };
    let header_len = bytes
        .get(8..8 + len_bytes)
        .map(|b| {
            b.iter()
                .rev()
                .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
        })
        .ok_or_else(|| NpyError::new("truncated header: no header length"))?;
    let data_start = text_start + header_len;
    let text = bytes
        .get(text_start..data_start)
        .ok_or_else(|| NpyError::new("truncated header: the file ends inside the header"))?;
    let text = std::str::from_utf8(text)
        .map_err(|_| NpyError::new("bad header: the header text is not UTF-8"))?;
    let header = Header::parse(text)?;
    let data = bytes.get(data_start..).unwrap_or_default();
    header.decode(data)
}

/// What a header says.
struct Header {
    dtype: DType,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
}

impl Header {
    fn parse(text: &str) -> Result<Header, NpyError> {
        let bad = |what: &str| NpyError::new(format!("bad header: {what} in {:?}", text.trim()));
        let mut p = LitParser { text, pos: 0 };
        let lit = p.value(0)?;
        p.skip_space();
        if p.pos != text.len() {
            return Err(bad("unexpected text after the dictionary"));
        }
        let Lit::Dict(entries) = lit else {
            return Err(bad("not a dictionary"));
        };
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| matches!(k, Lit::Str(s) if s == key))
                .map(|(_, v)| v)
                .ok_or_else(|| bad(&format!("no '{key}' entry")))
        };
        let (dtype, big_endian) = match get("descr")? {
            Lit::Str(descr) => dtype_of_descr(descr)?,
            _ => {
                return Err(NpyError::new(
                    "unsupported dtype: a structured (record) descr; einc reads f32, f64, i32 \
                     and i64 arrays",
                ))
            }
        };
        let fortran = match get("fortran_order")? {
            Lit::Bool(b) => *b,
            _ => return Err(bad("'fortran_order' is not True or False")),
        };
        let shape = match get("shape")? {
            Lit::Seq(items) => items
                .iter()
                .map(|it| match it {
                    Lit::Int(n) => usize::try_from(*n)
                        .map_err(|_| bad(&format!("the extent {n} is negative or too large"))),
                    _ => Err(bad("a shape entry is not an integer")),
                })
                .collect::<Result<Vec<usize>, NpyError>>()?,
            _ => return Err(bad("'shape' is not a tuple")),
        };
        Ok(Header {
            dtype,
            big_endian,
            fortran,
            shape,
        })
    }

    fn decode(&self, data: &[u8]) -> Result<Array, NpyError> {
        let count = element_count(&self.shape).ok_or_else(|| {
            NpyError::new(format!(
                "the shape {:?} has more elements than this machine can address",
                self.shape
            ))
        })?;
        let size = self.dtype.size_bytes();
        // As numpy does, the extents other than 0 must fit together as well: an empty array's
        // strides are still their products (found by the npy fuzz target: a Fortran-order
        // `(0, 2232, 2368556678695, ...)` read, but its C-order copy had no strides).
        let too_large = || NpyError::new(format!("the shape {:?} is too large", self.shape));
        self.shape
            .iter()
            .try_fold(size, |bytes, &n| bytes.checked_mul(n.max(1)))
            .filter(|&bytes| isize::try_from(bytes).is_ok())
            .ok_or_else(too_large)?;
        let needed = count.checked_mul(size).ok_or_else(too_large)?;
        let data = data.get(..needed).ok_or_else(|| {
            NpyError::new(format!(
                "truncated data: the shape {:?} of {} needs {needed} bytes but the file holds {}",
                self.shape,
                self.dtype,
                data.len()
            ))
        })?;
        let be = self.big_endian;
        let buffer = match self.dtype {
            DType::F32 => Buffer::F32(words(data, be).map(f32::from_bits).collect()),
            DType::F64 => Buffer::F64(dwords(data, be).map(f64::from_bits).collect()),
            DType::I32 => Buffer::I32(words(data, be).map(|w| w as i32).collect()),
            DType::I64 => Buffer::I64(dwords(data, be).map(|w| w as i64).collect()),
        };
        // The shape fits (checked above), so its strides do.
        let strides = if self.fortran {
            let rev: Vec<usize> = self.shape.iter().rev().copied().collect();
            let mut strides = c_strides(&rev).ok_or_else(too_large)?;
            strides.reverse();
            strides
        } else {
            c_strides(&self.shape).ok_or_else(too_large)?
        };
        Array::with_layout(buffer, &self.shape, &strides, 0)
            .map_err(|e| NpyError::new(format!("bad layout: {e}")))
    }
}

fn words(data: &[u8], big_endian: bool) -> impl Iterator<Item = u32> + '_ {
    data.chunks_exact(4).map(move |c| {
        let b = [c[0], c[1], c[2], c[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    })
}

fn dwords(data: &[u8], big_endian: bool) -> impl Iterator<Item = u64> + '_ {
    data.chunks_exact(8).map(move |c| {
        let b = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
        if big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        }
    })
}

/// The dtype and byte order named by a descr such as `'<f8'`.
fn dtype_of_descr(descr: &str) -> Result<(DType, bool), NpyError> {
    let unsupported = || {
        NpyError::new(format!(
            "unsupported dtype '{descr}': einc reads f32, f64, i32 and i64 arrays \
             ('<f4', '<f8', '<i4', '<i8' or their big-endian '>' forms)"
        ))
    };
    let ts: npyz::TypeStr = descr.parse().map_err(|_| unsupported())?;
    let big_endian = match ts.endianness() {
        npyz::Endianness::Little => false,
        npyz::Endianness::Big => true,
        npyz::Endianness::Irrelevant => return Err(unsupported()),
    };
    let dtype = match (ts.type_char(), ts.size_field()) {
        (npyz::TypeChar::Float, 4) => DType::F32,
        (npyz::TypeChar::Float, 8) => DType::F64,
        (npyz::TypeChar::Int, 4) => DType::I32,
        (npyz::TypeChar::Int, 8) => DType::I64,
        _ => return Err(unsupported()),
    };
    Ok((dtype, big_endian))
}

/// The Python literals a header uses.
enum Lit {
    Str(String),
    Bool(bool),
    Int(i128),
    None,
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

/// A recursive-descent reader of Python literals, bounded in depth so that a header of nested
/// brackets cannot overflow the stack.
struct LitParser<'a> {
    text: &'a str,
    pos: usize,
}

const MAX_DEPTH: usize = 16;

impl LitParser<'_> {
    fn err(&self, what: &str) -> NpyError {
        NpyError::new(format!(
            "bad header: {what} at byte {} of {:?}",
            self.pos,
            self.text.trim()
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek_after_space(&mut self) -> Option<u8> {
        self.skip_space();
        self.peek()
    }

    fn eat(&mut self, b: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, NpyError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.skip_space();
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                while !self.eat(b'}') {
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return Err(self.err("expected ':'"));
                    }
                    entries.push((k, self.value(depth + 1)?));
                    if !self.eat(b',') && self.peek_after_space() != Some(b'}') {
                        return Err(self.err("expected ',' or '}'"));
                    }
                }
                Ok(Lit::Dict(entries))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                while !self.eat(close) {
                    items.push(self.value(depth + 1)?);
                    if !self.eat(b',') && self.peek_after_space() != Some(close) {
                        return Err(self.err("expected ',' or a closing bracket"));
                    }
                }
                Ok(Lit::Seq(items))
            }
            Some(q @ (b'\'' | b'"')) => {
                let start = self.pos + 1;
                let len = self.text[start..]
                    .find(char::from(q))
                    .ok_or_else(|| self.err("unterminated string"))?;
                self.pos = start + len + 1;
                Ok(Lit::Str(self.text[start..start + len].to_string()))
            }
            Some(b) if b == b'-' || b.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
                let n = self.text[start..self.pos]
                    .parse::<i128>()
                    .map_err(|_| self.err("bad integer"))?;
                // Python 2 wrote long integers with an `L` suffix.
                if self.peek() == Some(b'L') {
                    self.pos += 1;
                }
                Ok(Lit::Int(n))
            }
            _ => {
                let rest = self.text.get(self.pos..).unwrap_or_default();
                for (word, lit) in [
                    ("True", Lit::Bool(true)),
                    ("False", Lit::Bool(false)),
                    ("None", Lit::None),
                ] {
                    if rest.starts_with(word) {
                        self.pos += word.len();
                        return Ok(lit);
                    }
                }
                Err(self.err("expected a value"))
            }
        }
    }
}

/// Writes `array` as a C-order little-endian `.npy` file to `w`.
pub fn write_npy_to(w: impl Write, array: &Array) -> Result<(), NpyError> {
    let copy;
    let c = if array.is_c_contiguous() {
        array
    } else {
        copy = array
            .try_to_c_contiguous()
            .map_err(|e| NpyError::new(format!("cannot write: {e}")))?;
        &copy
    };
    let shape: Vec<u64> = c.shape().iter().map(|&n| n as u64).collect();
    let io = |e: std::io::Error| NpyError::new(format!("cannot write: {e}"));
    fn put<T: npyz::Serialize + Copy>(
        w: impl Write,
        descr: &str,
        shape: &[u64],
        values: &[T],
    ) -> std::io::Result<()> {
        let ts: npyz::TypeStr = descr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut out = npyz::WriteOptions::<T>::new()
            .dtype(npyz::DType::new_scalar(ts))
            .shape(shape)
            .writer(w)
            .begin_nd()?;
        out.extend(values.iter().copied())?;
        out.finish()
    }
    match c.buffer() {
        Buffer::F32(v) => put(w, "<f4", &shape, v),
        Buffer::F64(v) => put(w, "<f8", &shape, v),
        Buffer::I32(v) => put(w, "<i4", &shape, v),
        Buffer::I64(v) => put(w, "<i8", &shape, v),
    }
    .map_err(io)
}

/// Writes `array` as a C-order little-endian `.npy` file at `path`.
pub fn write_npy(path: &Path, array: &Array) -> Result<(), NpyError> {
    let file =
        std::fs::File::create(path).map_err(|e| NpyError::new(format!("cannot create: {e}")))?;
    let mut w = std::io::BufWriter::new(file);
    write_npy_to(&mut w, array)?;
    w.flush()
        .map_err(|e| NpyError::new(format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests;
