//! NumPy `.npy` files: reading float arrays and per-frame features, writing
//! `float32` arrays.
//!
//! Feature files come from many extractors, so the reader accepts what numpy
//! commonly writes for a float matrix: `float32`, `float16` or `float64`,
//! little- or big-endian, C or Fortran order, rank 1 or 2. Everything is
//! converted to `f32` in C order.
//!
//! The header is parsed here rather than by `npyz`'s reader because that
//! reader overflows (a panic in debug builds) on a shape whose element count
//! exceeds `u64`, allocates whatever header length the file claims before
//! checking it, and cannot tell a truncated data section from other I/O
//! errors; a feature loader must give a clear one-line error on any byte
//! string instead. Writing goes through
//! `npyz`'s writer, and the tests check each side against the other crate.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{transpose, Features};
use crate::fsio;

/// An array read from a `.npy` file: `shape` and the values in C order
/// (last axis fastest), converted to `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The array's shape (rank 1 or 2).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in C order.
    pub data: Vec<f32>,
}

/// How the axes of a 2-D feature file map to channels and frames.
///
/// MS-TCN-style datasets store `[D, T]` (channels first); many extractors
/// save `[T, D]` (one row per frame), hence the choice.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureLayout {
    /// `[D, T]`: one row per channel (MS-TCN, ASFormer, C2F-TCN releases).
    #[default]
    DimByTime,
    /// `[T, D]`: one row per frame.
    TimeByDim,
}

/// The message for an unusable rank, shared by the reader and its tests.
fn rank_message(shape: &[usize]) -> String {
    format!(
        "rank {} array (shape {shape:?}): features must be rank 1 or 2",
        shape.len()
    )
}

/// Reads a rank-1 or rank-2 float array from a `.npy` file into `f32`, C order.
///
/// Every failure is one line naming the file: missing file, bad magic,
/// malformed header, unsupported dtype, wrong rank, truncated data.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes).map_err(|msg| Error::format(path, msg))
}

/// Reads a feature file laid out as `layout` into `[D, T]` features.
///
/// A rank-1 array of length `N` is one channel over `N` frames (`D = 1`,
/// `T = N`) whatever the layout. Empty arrays and NaN/Inf values are refused;
/// the error names the (row, column) of the first bad value as stored in the
/// file, so it can be found with numpy.
///
/// Files of at least [`MAP_MIN_BYTES`] that already hold `[D, T]`
/// little-endian `float32` in C order (what syncseg and MS-TCN-style
/// extractors write) are memory-mapped and read in place, not copied: a
/// dataset larger than memory then trains with only the windows in use
/// resident (see [`crate::feature_data`]). Other files are decoded into
/// memory.
pub fn read_features(path: impl AsRef<Path>, layout: FeatureLayout) -> Result<Features> {
    let path = path.as_ref();
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(features) = map_features(path, layout)? {
        return Ok(features);
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_features(&bytes, layout, path)
}

/// Feature files from this size up are mapped rather than read.
pub const MAP_MIN_BYTES: u64 = 1 << 20;

/// The file mapped in place, or `None` when its dtype, byte order or
/// layout needs a conversion (or it is small).
#[cfg(not(target_arch = "wasm32"))]
fn map_features(path: &Path, layout: FeatureLayout) -> Result<Option<Features>> {
    use crate::feature_data::FeatureData;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size < MAP_MIN_BYTES {
        return Ok(None);
    }
    // SAFETY: the mapping is read-only; syncseg never writes feature files
    // in place (they are replaced by renaming), and the documented contract
    // is that inputs are not truncated while a run reads them.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let loc = locate(&map).map_err(|msg| Error::format(path, msg))?;
    let rank2 = loc.shape.len() == 2;
    if loc.float != Float::F32
        || loc.big_endian
        || (rank2 && (loc.fortran_order || layout == FeatureLayout::TimeByDim))
    {
        return Ok(None);
    }
    let Some(data) = FeatureData::mapped(std::sync::Arc::new(map), loc.data_start, loc.count)
    else {
        return Ok(None);
    };
    let (rows, cols) = check_values(&loc.shape, &data, path)?;
    Ok(Some(Features {
        dim: rows,
        frames: cols,
        data,
    }))
}

/// `(rows, cols)` of a rank-1 or rank-2 array whose values are usable
/// features: not empty, all finite.
fn check_values(shape: &[usize], data: &[f32], source: &Path) -> Result<(usize, usize)> {
    let (rows, cols) = match shape[..] {
        [n] => (1, n),
        [r, c] => (r, c),
        // The parser only returns rank 1 or 2.
        _ => return Err(Error::format(source, rank_message(shape))),
    };
    if rows == 0 || cols == 0 {
        return Err(Error::format(
            source,
            format!("empty array (shape {shape:?}): no feature values"),
        ));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let v = data[i];
        let at = if shape.len() == 1 {
            format!("index {i}")
        } else {
            format!("row {}, column {}", i / cols, i % cols)
        };
        return Err(Error::format(source, format!("contains {v} at ({at})")));
    }
    Ok((rows, cols))
}

/// [`read_features`] on the bytes of a `.npy` file already in memory (an
/// upload in a browser); `source` names it in errors.
pub fn parse_features(bytes: &[u8], layout: FeatureLayout, source: &Path) -> Result<Features> {
    let arr = parse_npy(bytes).map_err(|msg| Error::format(source, msg))?;
    let (rows, cols) = check_values(&arr.shape, &arr.data, source)?;
    let features = match (arr.shape.len(), layout) {
        (1, _) | (_, FeatureLayout::DimByTime) => Features::new(rows, cols, arr.data),
        (_, FeatureLayout::TimeByDim) => Features::from_time_major(rows, cols, arr.data),
    };
    features.map_err(|e| Error::format(source, e.to_string()))
}

/// Writes `data` (C order) as a little-endian `float32` `.npy` file of the
/// given shape, atomically: the file is complete or not there at all.
pub fn write_npy(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let want = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| Error::invalid(format!("array shape {shape:?} is too large")))?;
    if want != data.len() {
        return Err(Error::invalid(format!(
            "cannot write {}: shape {shape:?} needs {want} values, got {}",
            path.display(),
            data.len()
        )));
    }
    let shape64: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
    fsio::write_atomic(path, |w| {
        use npyz::WriterBuilder;
        let mut writer = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(w)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    })
}

/// Writes features as a `[D, T]` `float32` `.npy` file (the MS-TCN layout),
/// atomically.
pub fn write_features(path: impl AsRef<Path>, features: &Features) -> Result<()> {
    write_npy(path, &[features.dim, features.frames], &features.data)
}

/// The `.npy` magic string.
const MAGIC: &[u8] = b"\x93NUMPY";

/// Longest header accepted. numpy itself refuses headers over 10 000 bytes
/// by default; the cap bounds the work done on a hostile file.
const MAX_HEADER_LEN: usize = 1 << 20;

/// Element type of the data section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Float {
    F16,
    F32,
    F64,
}

impl Float {
    fn size(self) -> usize {
        match self {
            Float::F16 => 2,
            Float::F32 => 4,
            Float::F64 => 8,
        }
    }
}

/// Parses a whole `.npy` file. Errors are the message only; the caller adds
/// the path. Never panics, whatever the bytes.
/// Where a `.npy` file's values are and how they are stored, checked
/// against the file's size.
struct Located {
    shape: Vec<usize>,
    float: Float,
    big_endian: bool,
    fortran_order: bool,
    /// Byte offset of the first value.
    data_start: usize,
    /// Number of values.
    count: usize,
}

/// Parses the preamble and header of a `.npy` file.
fn locate(bytes: &[u8]) -> std::result::Result<Located, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        let hint = if bytes.starts_with(b"PK\x03\x04") {
            "; this looks like a .npz archive, extract the array first"
        } else {
            ""
        };
        return Err(format!("not a .npy file (bad magic{hint})"));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err("truncated: file ends inside the .npy preamble".into()),
    };
    // Version 1 has a u16 header length, versions 2 and 3 a u32 (3 = UTF-8 text).
    let (len_size, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let len_bytes = bytes
        .get(8..8 + len_size)
        .ok_or("truncated: file ends inside the .npy preamble")?;
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if header_len > MAX_HEADER_LEN {
        return Err(format!(
            "header length {header_len} bytes is implausibly large (corrupt file?)"
        ));
    }
    let start = 8 + len_size;
    let header_bytes = bytes.get(start..start + header_len).ok_or_else(|| {
        format!(
            "truncated: header says it is {header_len} bytes long, file holds {}",
            bytes.len() - start
        )
    })?;
    let text = if utf8 {
        std::str::from_utf8(header_bytes).map_err(|_| "header is not valid UTF-8".to_string())?
    } else {
        // Versions 1 and 2 are latin-1 in principle; anything non-ASCII is
        // unusable here anyway.
        std::str::from_utf8(header_bytes)
            .ok()
            .filter(|s| s.is_ascii())
            .ok_or("header is not ASCII text")?
    };
    let header = parse_header(text)?;
    let float = dtype_of(&header.descr)?;
    let shape = header.shape;
    if shape.is_empty() || shape.len() > 2 {
        return Err(rank_message(&shape));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let data_bytes = &bytes[start + header_len..];
    let need = count
        .checked_mul(float.size())
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    if data_bytes.len() < need {
        return Err(format!(
            "truncated: header says shape {shape:?} = {count} values, file holds {}",
            data_bytes.len() / float.size()
        ));
    }
    Ok(Located {
        shape,
        float,
        big_endian: header.big_endian,
        fortran_order: header.fortran_order,
        data_start: start + header_len,
        count,
    })
}

fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    let loc = locate(bytes)?;
    // Bytes past the data are ignored, as numpy.load does.
    let raw = &bytes[loc.data_start..loc.data_start + loc.count * loc.float.size()];
    let mut data = decode(raw, loc.float, loc.big_endian);
    let shape = loc.shape;
    if loc.fortran_order && shape.len() == 2 {
        // Fortran order stores column-major: the buffer is C-order [cols, rows].
        data = transpose(&data, shape[1], shape[0]);
    }
    Ok(NpyArray { shape, data })
}

/// Converts raw element bytes to `f32`.
fn decode(raw: &[u8], float: Float, big_endian: bool) -> Vec<f32> {
    let size = float.size();
    raw.chunks_exact(size)
        .map(|c| {
            // Normalise to little-endian, then decode once.
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(c);
            if big_endian {
                b[..size].reverse();
            }
            match float {
                Float::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                Float::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                Float::F64 => f64::from_le_bytes(b) as f32,
            }
        })
        .collect()
}

/// The fields of a `.npy` header that matter here.
#[derive(Debug)]
struct Header {
    descr: Value,
    fortran_order: bool,
    shape: Vec<usize>,
    big_endian: bool,
}

/// Maps the header's `descr` to a supported float type.
fn dtype_of(descr: &Value) -> std::result::Result<Float, String> {
    const EXPECTED: &str = "expected float32, float16 or float64";
    let s = match descr {
        Value::Str(s) => s,
        _ => return Err(format!("unsupported dtype {}: {EXPECTED}", descr.render())),
    };
    // '|' and '=' on a multi-byte float mean native order, which numpy only
    // writes from little-endian machines in practice; '>' is handled by the caller.
    let kind = s.strip_prefix(['<', '>', '|', '=']).unwrap_or(s);
    let float = match kind {
        "f2" | "e" => Float::F16,
        "f4" | "f" => Float::F32,
        "f8" | "d" => Float::F64,
        _ => return Err(format!("unsupported dtype {s}: {EXPECTED}")),
    };
    Ok(float)
}

/// A Python literal, the subset that appears in `.npy` headers.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(Option<u64>), // None: too large for u64
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// Python-like rendering for error messages.
    fn render(&self) -> String {
        match self {
            Value::Str(s) => format!("'{s}'"),
            Value::Int(Some(n)) => n.to_string(),
            Value::Int(None) => "<huge int>".into(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::None => "None".into(),
            Value::Tuple(items) => {
                let parts: Vec<String> = items.iter().map(Value::render).collect();
                match parts.len() {
                    1 => format!("({},)", parts[0]),
                    _ => format!("({})", parts.join(", ")),
                }
            }
            Value::List(items) => {
                let parts: Vec<String> = items.iter().map(Value::render).collect();
                format!("[{}]", parts.join(", "))
            }
            Value::Dict(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.render(), v.render()))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
        }
    }
}

/// Nesting allowed in a header literal: a plain array header nests 2 deep;
/// the cap keeps the recursive parser's stack bounded on hostile input.
const MAX_DEPTH: usize = 32;

/// Parses the header dict and extracts `descr`, `fortran_order`, `shape`.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let value = p
        .value(0)
        .map_err(|e| format!("malformed header ({e}): {}", text.trim_end()))?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(format!(
            "malformed header (trailing text after the dict): {}",
            text.trim_end()
        ));
    }
    let Value::Dict(items) = value else {
        return Err(format!(
            "malformed header (not a dict): {}",
            text.trim_end()
        ));
    };
    let get = |key: &str| {
        items
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v)
            .ok_or_else(|| format!("malformed header (no '{key}' key): {}", text.trim_end()))
    };
    let descr = get("descr")?.clone();
    let fortran_order = match get("fortran_order")? {
        Value::Bool(b) => *b,
        v => {
            return Err(format!(
                "malformed header ('fortran_order' is {}, not True or False)",
                v.render()
            ))
        }
    };
    let shape_value = get("shape")?;
    let dims = match shape_value {
        Value::Tuple(dims) | Value::List(dims) => Some(dims),
        _ => None,
    };
    let shape = dims
        .and_then(|dims| {
            dims.iter()
                .map(|d| match d {
                    Value::Int(Some(n)) => usize::try_from(*n).ok(),
                    _ => None,
                })
                .collect::<Option<Vec<usize>>>()
        })
        .ok_or_else(|| {
            format!(
                "malformed header (shape {} is not a tuple of sizes)",
                shape_value.render()
            )
        })?;
    let big_endian = matches!(&descr, Value::Str(s) if s.starts_with('>'));
    Ok(Header {
        descr,
        fortran_order,
        shape,
        big_endian,
    })
}

/// A recursive-descent parser over the header bytes.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match self.peek() {
            None => Err("unexpected end".into()),
            Some(b'\'' | b'"') => self.string(),
            Some(b'(') => self.seq(b')', depth).map(Value::Tuple),
            Some(b'[') => self.seq(b']', depth).map(Value::List),
            Some(b'{') => self.dict(depth),
            Some(c) if c.is_ascii_digit() => Ok(self.int()),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    b"None" => Ok(Value::None),
                    w => Err(format!("unknown word '{}'", String::from_utf8_lossy(w))),
                }
            }
            Some(c) => Err(format!("unexpected character '{}'", c as char)),
        }
    }

    fn int(&mut self) -> Value {
        let mut n: Option<u64> = Some(0);
        while let Some(&c) = self.s.get(self.i).filter(|c| c.is_ascii_digit()) {
            n = n
                .and_then(|n| n.checked_mul(10))
                .and_then(|n| n.checked_add(u64::from(c - b'0')));
            self.i += 1;
        }
        // Python 2 numpy wrote long integers as `3L`.
        if matches!(self.s.get(self.i), Some(b'L' | b'l')) {
            self.i += 1;
        }
        Value::Int(n)
    }

    fn string(&mut self) -> std::result::Result<Value, String> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return Err("unterminated string".into()),
                Some(&c) if c == quote => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    // Keep escaped characters verbatim: header strings are dtype codes
                    // and field names, never meaningful escapes.
                    let c = *self.s.get(self.i + 1).ok_or("unterminated string")?;
                    out.push(c);
                    self.i += 2;
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        Ok(Value::Str(String::from_utf8_lossy(&out).into_owned()))
    }

    fn seq(&mut self, close: u8, depth: usize) -> std::result::Result<Vec<Value>, String> {
        self.i += 1; // opening bracket
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(format!("expected ',' or '{}'", close as char)),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> std::result::Result<Value, String> {
        self.i += 1; // '{'
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Dict(items));
            }
            let key = self.value(depth + 1)?;
            if self.peek() != Some(b':') {
                return Err("expected ':' after a dict key".into());
            }
            self.i += 1;
            let value = self.value(depth + 1)?;
            items.push((key, value));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err("expected ',' or '}'".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `.npy` file, version 1.0, built by hand: header text padded with
    /// spaces to a 64-byte boundary and ended by '\n', as numpy writes it.
    fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut header = dict.into_bytes();
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out
    }

    fn le32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn write_tmp(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn err_of(bytes: &[u8]) -> String {
        let (_d, path) = write_tmp(bytes);
        let msg = read_npy(&path).unwrap_err().to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(!msg.contains('\n'), "multi-line error: {msg:?}");
        msg[path.display().to_string().len()..].to_string()
    }

    #[test]
    fn reads_c_order_f32() {
        let bytes = npy_bytes("<f4", false, "(2, 3)", &le32(&[1., 2., 3., 4., 5., 6.]));
        let arr = parse_npy(&bytes).unwrap();
        assert_eq!(arr.shape, vec![2, 3]);
        assert_eq!(arr.data, vec![1., 2., 3., 4., 5., 6.]);
    }

    #[test]
    fn reads_fortran_order_transposed_to_c() {
        // The 2x3 matrix [[1,2,3],[4,5,6]] stored column by column.
        let bytes = npy_bytes("<f4", true, "(2, 3)", &le32(&[1., 4., 2., 5., 3., 6.]));
        let arr = parse_npy(&bytes).unwrap();
        assert_eq!(arr.shape, vec![2, 3]);
        assert_eq!(arr.data, vec![1., 2., 3., 4., 5., 6.]);
        // Rank 1 Fortran is the same as C.
        let bytes = npy_bytes("<f4", true, "(3,)", &le32(&[7., 8., 9.]));
        assert_eq!(parse_npy(&bytes).unwrap().data, vec![7., 8., 9.]);
    }

    #[test]
    fn reads_f16_f64_and_big_endian() {
        let f16: Vec<u8> = [1.5f32, -2.0, 0.25]
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        let arr = parse_npy(&npy_bytes("<f2", false, "(3,)", &f16)).unwrap();
        assert_eq!(arr.data, vec![1.5, -2.0, 0.25]);

        let f64le: Vec<u8> = [0.1f64, 1e10]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let arr = parse_npy(&npy_bytes("<f8", false, "(1, 2)", &f64le)).unwrap();
        assert_eq!(arr.data, vec![0.1f32, 1e10f32]);

        let f32be: Vec<u8> = [1.0f32, -3.25]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let arr = parse_npy(&npy_bytes(">f4", false, "(2,)", &f32be)).unwrap();
        assert_eq!(arr.data, vec![1.0, -3.25]);

        let f64be: Vec<u8> = [2.5f64, 4.0, 6.0, 8.0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let arr = parse_npy(&npy_bytes(">f8", true, "(2, 2)", &f64be)).unwrap();
        assert_eq!(arr.data, vec![2.5, 6.0, 4.0, 8.0]);

        let f16be: Vec<u8> = half::f16::from_f32(0.5).to_be_bytes().to_vec();
        let arr = parse_npy(&npy_bytes(">f2", false, "(1,)", &f16be)).unwrap();
        assert_eq!(arr.data, vec![0.5]);
    }

    #[test]
    fn reads_version_2_and_python2_longs() {
        let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
        let header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }\n";
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&le32(&[3., 4.]));
        let arr = parse_npy(&bytes).unwrap();
        assert_eq!((arr.shape, arr.data), (vec![1, 2], vec![3., 4.]));
    }

    #[test]
    fn agrees_with_npyz() {
        // Our writer's output read by npyz, and npyz's output read by us.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        write_npy(&path, &[3, 4], &data).unwrap();
        let file = npyz::NpyFile::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(file.shape(), &[3, 4]);
        assert_eq!(file.into_vec::<f32>().unwrap(), data);

        let mut buf = Vec::new();
        {
            use npyz::WriterBuilder;
            let mut w = npyz::WriteOptions::<f64>::new()
                .default_dtype()
                .order(npyz::Order::Fortran)
                .shape(&[2, 3])
                .writer(&mut buf)
                .begin_nd()
                .unwrap();
            // Column-major storage of [[0,1,2],[3,4,5]].
            w.extend([0.0, 3.0, 1.0, 4.0, 2.0, 5.0]).unwrap();
            w.finish().unwrap();
        }
        let arr = parse_npy(&buf).unwrap();
        assert_eq!(arr.shape, vec![2, 3]);
        assert_eq!(arr.data, vec![0., 1., 2., 3., 4., 5.]);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            err_of(b"hello world, not numpy"),
            ": not a .npy file (bad magic)"
        );
        assert_eq!(err_of(b""), ": not a .npy file (bad magic)");
        assert!(err_of(b"PK\x03\x04rest").contains(".npz archive"));
        assert_eq!(
            err_of(&npy_bytes("<f4", false, "(2, 3)", &le32(&[1., 2., 3., 4.]))),
            ": truncated: header says shape [2, 3] = 6 values, file holds 4"
        );
        assert_eq!(
            err_of(&npy_bytes("<i4", false, "(2,)", &[0; 8])),
            ": unsupported dtype <i4: expected float32, float16 or float64"
        );
        assert!(err_of(&npy_bytes("|O", false, "(2,)", &[0; 8])).contains("unsupported dtype |O"));
        assert_eq!(
            err_of(&npy_bytes("<f4", false, "(1, 2, 3)", &[0; 24])),
            ": rank 3 array (shape [1, 2, 3]): features must be rank 1 or 2"
        );
        assert!(err_of(&npy_bytes("<f4", false, "()", &[0; 4])).contains("rank 0 array"));
        assert!(err_of(b"\x93NUMPY\x04\x00").contains("unsupported .npy format version 4.0"));
        assert!(err_of(b"\x93NUMPY\x01\x00\xff\x00{").contains("truncated: header says"));
        let bad = npy_bytes("<f4", false, "(2, 'x')", &[]);
        assert!(
            err_of(&bad).contains("malformed header"),
            "{}",
            err_of(&bad)
        );
        let huge = npy_bytes("<f4", false, "(99999999999999999999, 2)", &[]);
        assert!(err_of(&huge).contains("malformed header"));
        let overflow = npy_bytes("<f8", false, "(4294967296, 4294967296)", &[]);
        assert!(err_of(&overflow).contains("too large"));
        let record = b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(record.len() as u16).to_le_bytes());
        bytes.extend_from_slice(record);
        assert!(err_of(&bytes).contains("unsupported dtype [('a', '<f4')]"));

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.npy");
        let msg = read_npy(&missing).unwrap_err().to_string();
        assert!(msg.contains("nope.npy") && !msg.contains('\n'), "{msg}");
    }

    #[test]
    fn read_features_layouts_and_checks() {
        let data = le32(&[1., 2., 3., 4., 5., 6.]);
        let (_d, p) = write_tmp(&npy_bytes("<f4", false, "(2, 3)", &data));
        let f = read_features(&p, FeatureLayout::DimByTime).unwrap();
        assert_eq!((f.dim, f.frames), (2, 3));
        assert_eq!(f.get(1, 0), Some(4.));
        let g = read_features(&p, FeatureLayout::TimeByDim).unwrap();
        assert_eq!((g.dim, g.frames), (3, 2));
        assert_eq!(g.frame(1), Some(vec![4., 5., 6.]));

        let (_d, p) = write_tmp(&npy_bytes("<f4", false, "(3,)", &le32(&[1., 2., 3.])));
        let f = read_features(&p, FeatureLayout::TimeByDim).unwrap();
        assert_eq!((f.dim, f.frames), (1, 3));

        let (_d, p) = write_tmp(&npy_bytes(
            "<f4",
            false,
            "(2, 3)",
            &le32(&[1., 2., 3., 4., f32::NAN, f32::INFINITY]),
        ));
        let msg = read_features(&p, FeatureLayout::DimByTime)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(&p.display().to_string()), "{msg}");
        assert!(
            msg.ends_with(": contains NaN at (row 1, column 1)"),
            "{msg}"
        );

        let (_d, p) = write_tmp(&npy_bytes("<f4", false, "(4, 0)", &[]));
        let msg = read_features(&p, FeatureLayout::DimByTime)
            .unwrap_err()
            .to_string();
        assert!(
            msg.ends_with("empty array (shape [4, 0]): no feature values"),
            "{msg}"
        );
    }

    /// Files of MAP_MIN_BYTES and more in syncseg's own layout are read in
    /// place; the values, and every check, are those of the in-memory path.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn large_feature_files_are_mapped_in_place() {
        let (d, t) = (64, 4200); // 1.03 MiB of values
        let values: Vec<f32> = (0..d * t)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01)
            .collect();
        let bytes = npy_bytes("<f4", false, &format!("({d}, {t})"), &le32(&values));
        let (_d, p) = write_tmp(&bytes);
        let mapped = read_features(&p, FeatureLayout::DimByTime).unwrap();
        assert!(mapped.data.is_mapped());
        let decoded = parse_features(&bytes, FeatureLayout::DimByTime, &p).unwrap();
        assert!(!decoded.data.is_mapped());
        assert_eq!(mapped, decoded);
        // A whole-range selection keeps the mapping; a real one copies.
        let all: Vec<usize> = (0..t).collect();
        assert!(mapped.select_frames(&all).unwrap().data.is_mapped());
        let head = mapped.select_frames(&all[..10]).unwrap();
        assert!(!head.data.is_mapped());
        assert_eq!(head.get(3, 9), decoded.get(3, 9));
        // Layouts and dtypes that need a conversion are decoded as before.
        let tm = read_features(&p, FeatureLayout::TimeByDim).unwrap();
        assert!(!tm.data.is_mapped());
        assert_eq!((tm.dim, tm.frames), (t, d));
        let f64_bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f64).to_le_bytes())
            .collect();
        let (_d2, p64) = write_tmp(&npy_bytes("<f8", false, &format!("({d}, {t})"), &f64_bytes));
        let wide = read_features(&p64, FeatureLayout::DimByTime).unwrap();
        assert!(!wide.data.is_mapped());
        assert_eq!(wide, decoded);
        // A NaN in a mapped file is refused with the same message.
        let mut bad = values.clone();
        bad[5 * t + 17] = f32::NAN;
        let (_d3, pbad) = write_tmp(&npy_bytes(
            "<f4",
            false,
            &format!("({d}, {t})"),
            &le32(&bad),
        ));
        let msg = read_features(&pbad, FeatureLayout::DimByTime)
            .unwrap_err()
            .to_string();
        assert!(
            msg.ends_with(": contains NaN at (row 5, column 17)"),
            "{msg}"
        );
        // A truncated large file is an error, not a fault.
        let (_d4, pcut) = write_tmp(&bytes[..bytes.len() - 4]);
        let msg = read_features(&pcut, FeatureLayout::DimByTime)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn write_features_round_trip_and_atomicity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/f.npy");
        let f = Features::new(2, 2, vec![1., 2., 3., 4.]).unwrap();
        write_features(&p, &f).unwrap();
        assert_eq!(read_features(&p, FeatureLayout::DimByTime).unwrap(), f);
        let err = write_npy(&p, &[3], &[1.0]).unwrap_err().to_string();
        assert!(err.contains("needs 3 values, got 1"), "{err}");
        // The failed write left the previous file alone.
        assert_eq!(read_features(&p, FeatureLayout::DimByTime).unwrap(), f);
    }

    #[test]
    fn layout_serde_names() {
        let s = serde_json::to_string(&FeatureLayout::TimeByDim).unwrap();
        assert_eq!(s, "\"time_by_dim\"");
        assert_eq!(FeatureLayout::default(), FeatureLayout::DimByTime);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn write_read_round_trip(
            rows in 1usize..6,
            cols in 1usize..40,
            rank1 in any::<bool>(),
            seed in proptest::collection::vec(any::<f32>(), 240),
        ) {
            let shape = if rank1 { vec![cols] } else { vec![rows, cols] };
            let n: usize = shape.iter().product();
            let data = seed[..n].to_vec();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r.npy");
            write_npy(&path, &shape, &data).unwrap();
            let arr = read_npy(&path).unwrap();
            prop_assert_eq!(arr.shape, shape);
            // Compare bits so NaN payloads count as equal.
            let a: Vec<u32> = arr.data.iter().map(|x| x.to_bits()).collect();
            let b: Vec<u32> = data.iter().map(|x| x.to_bits()).collect();
            prop_assert_eq!(a, b);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_npy(&bytes);
            let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = parse_npy(&with_magic);
        }

        #[test]
        fn header_parser_never_panics(text in "[{}()\\[\\]':, a-zA-Z0-9<>]{0,80}") {
            let _ = parse_header(&text);
        }
    }
}
