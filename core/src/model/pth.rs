//! Reading PyTorch checkpoints (`torch.save`'s zip format, PyTorch ≥ 1.6):
//! `archive/data.pkl` (a pickle describing the state dict) plus one stored
//! entry `archive/data/<key>` per storage.
//!
//! syncseg does not call candle's `pickle` reader: on a malformed file it
//! panics (a `_rebuild_tensor_v2` argument tuple of fewer than 4 items, a
//! storage tuple of fewer than 5, `_rebuild_from_type_v2` with fewer than
//! 3, `LONG1` of more than 8 bytes), allocates from the shape rather than the
//! storage (a shape larger than its storage asks for that many bytes and
//! aborts), and clones memoised objects deeply (a small pickle can ask for
//! exponential memory). Validating the pickle before calling it would mean
//! parsing it anyway, and `catch_unwind` cannot catch an allocation failure
//! (an abort) nor keep the panic message off stderr; so this module is the
//! reader: a pickle machine over the bytes of `data.pkl` that never
//! allocates more than the file holds, and tensor data read only after the
//! shape, dtype and offset have been checked against the storage's size,
//! and that against the archive entry's.
//!
//! Only what `torch.save(state_dict)` writes is understood; everything else
//! is an error naming the file.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// The largest `data.pkl` read (a state dict of 10 000 tensors is ~1 MB).
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// The deepest nesting of pickle objects (a state dict needs 6).
const MAX_DEPTH: usize = 64;
/// The most container items copied when a shared object is modified.
const MAX_COPIES: usize = 1 << 22;
/// The largest tensor rank.
const MAX_RANK: usize = 16;

/// A pickle value.
#[derive(Debug, Clone)]
enum Obj {
    Mark,
    None,
    Bool,
    Int(i64),
    Float,
    Str(String),
    /// A bytes object (its content is not kept).
    Bytes,
    Global(String, String),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    Dict(Vec<(Val, Val)>),
    /// `callable(*args)` (REDUCE, NEWOBJ).
    Call(Val, Val),
    /// `obj.__setstate__(state)` (BUILD) on anything but a dict.
    Build(Val, Val),
    /// A persistent id (a storage descriptor).
    Pers(Val),
}

/// A shared pickle value with its nesting depth.
#[derive(Debug, Clone)]
struct Node {
    depth: usize,
    obj: Obj,
}

type Val = Rc<Node>;

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::Mark => "mark",
            Obj::None => "None",
            Obj::Bool => "bool",
            Obj::Int(_) => "int",
            Obj::Float => "float",
            Obj::Str(_) => "str",
            Obj::Bytes => "bytes",
            Obj::Global(..) => "global",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Call(..) => "call",
            Obj::Build(..) => "build",
            Obj::Pers(_) => "persistent id",
        }
    }
}

fn depth_of<'a>(children: impl IntoIterator<Item = &'a Val>) -> usize {
    1 + children.into_iter().map(|c| c.depth).max().unwrap_or(0)
}

fn node(obj: Obj) -> std::result::Result<Val, String> {
    let depth = match &obj {
        Obj::Tuple(v) | Obj::List(v) => depth_of(v),
        Obj::Dict(kv) => depth_of(kv.iter().flat_map(|(k, v)| [k, v])),
        Obj::Call(a, b) | Obj::Build(a, b) => depth_of([a, b]),
        Obj::Pers(a) => depth_of([a]),
        _ => 0,
    };
    if depth > MAX_DEPTH {
        return Err(format!("objects nested more than {MAX_DEPTH} deep"));
    }
    Ok(Rc::new(Node { depth, obj }))
}

/// The pickle machine.
struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    memo: HashMap<u32, Val>,
    copies: usize,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: u64) -> std::result::Result<&'a [u8], String> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "truncated at byte {} (an item of {n} bytes, {left} left)",
                self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> std::result::Result<u64, String> {
        let b = self.take(n as u64)?;
        Ok(b.iter().rev().fold(0u64, |v, x| (v << 8) | u64::from(*x)))
    }

    fn line(&mut self) -> std::result::Result<String, String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("a GLOBAL name without its newline")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn push(&mut self, obj: Obj) -> std::result::Result<(), String> {
        let v = node(obj)?;
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> std::result::Result<Val, String> {
        match self.stack.pop() {
            Some(v) if !matches!(v.obj, Obj::Mark) => Ok(v),
            _ => Err(format!("stack underflow at byte {}", self.pos)),
        }
    }

    fn pop_mark(&mut self) -> std::result::Result<Vec<Val>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v.obj, Obj::Mark))
            .ok_or_else(|| format!("no MARK for the opcode at byte {}", self.pos))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    /// The top of the stack, made unique (copied if the memo shares it) for
    /// modification.
    fn top_mut(&mut self) -> std::result::Result<&mut Node, String> {
        let top = self
            .stack
            .last_mut()
            .ok_or_else(|| format!("stack underflow at byte {}", self.pos))?;
        if Rc::strong_count(top) > 1 {
            self.copies += match &top.obj {
                Obj::List(v) => v.len(),
                Obj::Dict(v) => 2 * v.len(),
                _ => 1,
            };
            if self.copies > MAX_COPIES {
                return Err("too many copies of shared objects".into());
            }
        }
        Ok(Rc::make_mut(top))
    }

    fn extend(&mut self, items: Vec<Val>, dict: bool) -> std::result::Result<(), String> {
        let pos = self.pos;
        let top = self.top_mut()?;
        let depth = depth_of(&items);
        match (&mut top.obj, dict) {
            (Obj::List(v), false) => v.extend(items),
            (Obj::Dict(v), true) => {
                if !items.len().is_multiple_of(2) {
                    return Err(format!(
                        "SETITEMS with an odd number of items at byte {pos}"
                    ));
                }
                let mut it = items.into_iter();
                while let (Some(k), Some(x)) = (it.next(), it.next()) {
                    v.push((k, x));
                }
            }
            (other, _) => {
                return Err(format!(
                    "{} on a {} at byte {pos}",
                    if dict { "SETITEM" } else { "APPEND" },
                    other.kind()
                ))
            }
        }
        top.depth = top.depth.max(depth + 1);
        if top.depth > MAX_DEPTH {
            return Err(format!("objects nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    fn int(&mut self, v: i64) -> std::result::Result<(), String> {
        self.push(Obj::Int(v))
    }

    fn long(&mut self, n: u64) -> std::result::Result<(), String> {
        if n > 8 {
            return Err(format!("an integer of {n} bytes at byte {}", self.pos));
        }
        let b = self.take(n)?;
        let mut v = 0i64;
        for (i, x) in b.iter().enumerate() {
            v |= i64::from(*x) << (8 * i);
        }
        if n > 0 && n < 8 && b[n as usize - 1] & 0x80 != 0 {
            v -= 1i64 << (8 * n); // two's complement
        }
        self.int(v)
    }

    fn str(&mut self, n: u64) -> std::result::Result<(), String> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| "a string that is not UTF-8")?;
        self.push(Obj::Str(s.to_string()))
    }

    fn memo_put(&mut self, id: u32) -> std::result::Result<(), String> {
        let top = self.stack.last().ok_or("PUT on an empty stack")?.clone();
        self.memo.insert(id, top);
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> std::result::Result<(), String> {
        let v = self
            .memo
            .get(&id)
            .ok_or_else(|| format!("memo entry {id} used before it was set"))?
            .clone();
        self.stack.push(v);
        Ok(())
    }

    /// Runs to STOP; the value left on the stack.
    fn run(mut self) -> std::result::Result<Val, String> {
        loop {
            let at = self.pos;
            let op = self.u8().map_err(|_| "no STOP opcode".to_string())?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.le(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(node(Obj::Mark)?),
                b'N' => self.push(Obj::None)?,
                0x88 | 0x89 => self.push(Obj::Bool)?,
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.int(i64::from(v))?
                }
                b'K' => {
                    let v = self.le(1)?;
                    self.int(v as i64)?
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.int(v as i64)?
                }
                0x8a => {
                    let n = self.le(1)?;
                    self.long(n)?
                }
                0x8b => {
                    let n = self.le(4)?;
                    self.long(n)?
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Obj::Float)?
                }
                b'X' => {
                    let n = self.le(4)?;
                    self.str(n)?
                }
                0x8c => {
                    let n = self.le(1)?;
                    self.str(n)?
                }
                0x8d => {
                    let n = self.le(8)?;
                    self.str(n)?
                }
                b'T' | b'B' | b'U' | b'C' | 0x8e => {
                    let n = match op {
                        b'T' | b'B' => self.le(4)?,
                        0x8e => self.le(8)?,
                        _ => self.le(1)?,
                    };
                    self.take(n)?;
                    self.push(Obj::Bytes)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Obj::Global(module, name))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&module.obj, &name.obj) {
                        (Obj::Str(m), Obj::Str(n)) => {
                            let g = Obj::Global(m.clone(), n.clone());
                            self.push(g)?
                        }
                        _ => return Err(format!("STACK_GLOBAL without two strings at byte {at}")),
                    }
                }
                b')' => self.push(Obj::Tuple(Vec::new()))?,
                b']' => self.push(Obj::List(Vec::new()))?,
                b'}' => self.push(Obj::Dict(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Dict(Vec::new()))?;
                    self.extend(items, true)?
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = (0..n)
                        .map(|_| self.pop())
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    items.reverse();
                    self.push(Obj::Tuple(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend(vec![v], false)?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend(items, false)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend(vec![k, v], true)?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend(items, true)?
                }
                b'q' => {
                    let id = self.le(1)? as u32;
                    self.memo_put(id)?
                }
                b'r' => {
                    let id = self.le(4)? as u32;
                    self.memo_put(id)?
                }
                0x94 => {
                    let id = self.memo.len() as u32;
                    self.memo_put(id)?
                }
                b'h' => {
                    let id = self.le(1)? as u32;
                    self.memo_get(id)?
                }
                b'j' => {
                    let id = self.le(4)? as u32;
                    self.memo_get(id)?
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.stack.last().ok_or("DUP on an empty stack")?.clone();
                    self.stack.push(v)
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Obj::Pers(pid))?
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let ordered_dict = matches!(&func.obj,
                        Obj::Global(m, n) if m == "collections" && (n == "OrderedDict" || n == "defaultdict"));
                    if ordered_dict {
                        self.push(Obj::Dict(Vec::new()))?
                    } else {
                        self.push(Obj::Call(func, args))?
                    }
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    if matches!(obj.obj, Obj::Dict(_)) {
                        // An OrderedDict's `_metadata`: not part of the state dict.
                        self.stack.push(obj)
                    } else {
                        self.push(Obj::Build(obj, state))?
                    }
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {at}"
                    ))
                }
            }
        }
    }
}

/// One tensor of a checkpoint, as the pickle describes it (checked: the
/// data lies inside its storage).
#[derive(Debug, Clone, PartialEq)]
pub struct PthTensorInfo {
    /// The state-dict key.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
    /// The storage's key (`data/<key>` in the archive).
    pub storage: String,
    /// The first element's index in the storage.
    pub offset: usize,
    /// The storage's length in elements, as the pickle says.
    pub storage_len: usize,
}

/// An opened checkpoint.
pub struct Pth {
    path: PathBuf,
    archive: zip::ZipArchive<std::io::BufReader<std::fs::File>>,
    file_len: u64,
    /// The folder of `data.pkl` in the archive, with its trailing `/`.
    prefix: String,
    root: Val,
}

fn as_int(v: &Val) -> Option<i64> {
    match v.obj {
        Obj::Int(i) => Some(i),
        _ => None,
    }
}

fn as_ints(v: &Val) -> Option<Vec<i64>> {
    match &v.obj {
        Obj::Tuple(items) | Obj::List(items) => items.iter().map(as_int).collect(),
        _ => None,
    }
}

fn storage_dtype(class: &str) -> Option<DType> {
    Some(match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "ByteStorage" => DType::U8,
        "IntStorage" => DType::I32,
        "LongStorage" => DType::I64,
        _ => return None,
    })
}

/// `Some` when `v` rebuilds a tensor; `None` for other values (skipped).
fn tensor_info(name: &str, v: &Val) -> Option<std::result::Result<PthTensorInfo, String>> {
    let mut v = v.clone();
    // `_rebuild_parameter(data, requires_grad, hooks)` and
    // `_rebuild_from_type_v2(func, type, args, state)` wrap the real call.
    for _ in 0..4 {
        let Obj::Call(func, args) = &v.obj else {
            return None;
        };
        let Obj::Global(module, class) = &func.obj else {
            return None;
        };
        let Obj::Tuple(args) = &args.obj else {
            return Some(Err(format!(
                "tensor '{name}': {class} without an argument tuple"
            )));
        };
        match (module.as_str(), class.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2") => return Some(rebuild_args(name, args)),
            ("torch._utils", "_rebuild_parameter") => match args.first() {
                Some(data) => v = data.clone(),
                None => {
                    return Some(Err(format!(
                        "tensor '{name}': _rebuild_parameter without arguments"
                    )))
                }
            },
            ("torch._tensor", "_rebuild_from_type_v2") => {
                if args.len() < 3 {
                    return Some(Err(format!(
                        "tensor '{name}': _rebuild_from_type_v2 has {} arguments, expected 4",
                        args.len()
                    )));
                }
                match node(Obj::Call(args[0].clone(), args[2].clone())) {
                    Ok(call) => v = call,
                    Err(e) => return Some(Err(e)),
                }
            }
            _ => return None,
        }
    }
    None
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`.
fn rebuild_args(name: &str, args: &[Val]) -> std::result::Result<PthTensorInfo, String> {
    let bad = |what: String| format!("tensor '{name}': {what}");
    if args.len() < 4 {
        return Err(bad(format!(
            "_rebuild_tensor_v2 has {} arguments, expected at least 4 (storage, offset, size, stride)",
            args.len()
        )));
    }
    let Obj::Pers(pid) = &args[0].obj else {
        return Err(bad(format!(
            "the storage is a {}, not a persistent id",
            args[0].obj.kind()
        )));
    };
    let Obj::Tuple(pid) = &pid.obj else {
        return Err(bad("the storage descriptor is not a tuple".into()));
    };
    if pid.len() < 5 {
        return Err(bad(format!(
            "the storage descriptor has {} items, expected 5 ('storage', type, key, location, size)",
            pid.len()
        )));
    }
    let class = match &pid[1].obj {
        Obj::Global(_, c) => c.as_str(),
        _ => return Err(bad("the storage type is not a class".into())),
    };
    let dtype = storage_dtype(class)
        .ok_or_else(|| bad(format!("storage type {class} is not supported")))?;
    let storage = match &pid[2].obj {
        Obj::Str(s) => s.clone(),
        Obj::Int(i) => i.to_string(),
        _ => return Err(bad("the storage key is not a string".into())),
    };
    if storage.is_empty() || storage.contains(['/', '\\']) || storage.contains("..") {
        return Err(bad(format!("storage key '{storage}' is not a plain name")));
    }
    let count = |v: &Val, what: &str| -> std::result::Result<usize, String> {
        as_int(v)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| bad(format!("the {what} is not a non-negative integer")))
    };
    let storage_len = count(&pid[4], "storage size")?;
    let offset = count(&args[1], "storage offset")?;
    let size =
        as_ints(&args[2]).ok_or_else(|| bad("the size is not a tuple of integers".into()))?;
    let stride =
        as_ints(&args[3]).ok_or_else(|| bad("the stride is not a tuple of integers".into()))?;
    if size.len() > MAX_RANK || size.len() != stride.len() || size.iter().any(|d| *d < 0) {
        return Err(bad(format!(
            "size {size:?} with stride {stride:?} is not a tensor shape"
        )));
    }
    let shape: Vec<usize> = size.iter().map(|d| *d as usize).collect();
    let numel = shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    // Contiguous (row-major) only, as `state_dict()` tensors are.
    let mut want = 1i64;
    for (d, s) in size.iter().zip(&stride).rev() {
        if *d > 1 && *s != want {
            return Err(bad(format!(
                "size {size:?} with stride {stride:?} is not contiguous (save `t.contiguous()`)"
            )));
        }
        want = want.saturating_mul(*d);
    }
    if numel > 0
        && offset
            .checked_add(numel)
            .is_none_or(|end| end > storage_len)
    {
        return Err(bad(format!(
            "shape {shape:?} at offset {offset} needs {} elements, its storage holds {storage_len}",
            offset as u128 + numel as u128
        )));
    }
    Ok(PthTensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        storage,
        offset,
        storage_len,
    })
}

impl Pth {
    /// Opens `path` and runs its pickle; no tensor is read yet.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bad = |msg: String| Error::format(&path, msg);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
            bad(format!(
                "not a readable PyTorch checkpoint (not a zip archive as torch.save writes: {e})"
            ))
        })?;
        let names: Vec<String> = archive
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .filter(|n| n.ends_with("data.pkl") && (n == "data.pkl" || n.ends_with("/data.pkl")))
            .collect();
        let pkl = match names.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(bad(
                    "not a readable PyTorch checkpoint (no data.pkl in the archive)".into(),
                ))
            }
            _ => {
                return Err(bad(format!(
                    "not a readable PyTorch checkpoint ({} data.pkl entries)",
                    names.len()
                )))
            }
        };
        let prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
        let mut me = Pth {
            path: path.clone(),
            archive,
            file_len,
            prefix,
            root: node(Obj::None).expect("a leaf"),
        };
        if let Ok(order) = me.entry_bytes(&format!("{}byteorder", me.prefix), 16) {
            if order.trim_ascii() != b"little" {
                return Err(bad(format!(
                    "a checkpoint saved with byte order '{}': only little-endian ones are read",
                    String::from_utf8_lossy(order.trim_ascii())
                )));
            }
        }
        let bytes = me.entry_bytes(&pkl, MAX_PICKLE_BYTES)?;
        let machine = Machine {
            data: &bytes,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            copies: 0,
        };
        me.root = machine
            .run()
            .map_err(|e| bad(format!("not a readable PyTorch checkpoint ({pkl}: {e})")))?;
        Ok(me)
    }

    /// Index of `name` in the archive, refusing compressed entries.
    fn stored_entry(&mut self, name: &str) -> Result<(usize, u64)> {
        let bad = |msg: String| Error::format(&self.path, msg);
        let index = self
            .archive
            .index_for_name(name)
            .ok_or_else(|| bad(format!("the archive has no entry '{name}'")))?;
        let entry = self.archive.by_index_raw(index).map_err(|e| {
            Error::format(
                &self.path,
                format!("unreadable archive entry '{name}' ({e})"),
            )
        })?;
        let method = entry.compression();
        if method != zip::CompressionMethod::Stored {
            let method = if method == zip::CompressionMethod::DEFLATE {
                "DEFLATE".to_string()
            } else {
                format!("{method:?}")
            };
            return Err(Error::format(
                &self.path,
                format!(
                    "entry '{name}' is {method}-compressed; syncseg reads checkpoints as torch.save \
                     writes them (uncompressed): re-save it with torch.save, or re-zip it with `zip -0`"
                ),
            ));
        }
        let size = entry.size();
        if size > self.file_len {
            return Err(Error::format(
                &self.path,
                format!(
                    "entry '{name}' claims {size} bytes, more than the file holds ({})",
                    self.file_len
                ),
            ));
        }
        Ok((index, size))
    }

    /// Bytes `skip..skip + len` of the stored entry `index`.
    fn read_range(&mut self, index: usize, name: &str, skip: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path.clone();
        let unreadable = move |e: String| {
            Error::format(&path, format!("unreadable archive entry '{name}' ({e})"))
        };
        let mut entry = self
            .archive
            .by_index(index)
            .map_err(|e| unreadable(e.to_string()))?;
        std::io::copy(&mut (&mut entry).take(skip), &mut std::io::sink())
            .map_err(|e| unreadable(e.to_string()))?;
        // `len` is at most the entry's size, which is at most the file's.
        let mut out = Vec::with_capacity(len as usize);
        entry
            .take(len)
            .read_to_end(&mut out)
            .map_err(|e| unreadable(e.to_string()))?;
        if out.len() as u64 != len {
            return Err(unreadable(format!(
                "{} bytes where {len} were expected",
                out.len()
            )));
        }
        Ok(out)
    }

    fn entry_bytes(&mut self, name: &str, max: u64) -> Result<Vec<u8>> {
        let (index, size) = self.stored_entry(name)?;
        if size > max {
            return Err(Error::format(
                &self.path,
                format!("entry '{name}' has {size} bytes, more than the {max} accepted"),
            ));
        }
        self.read_range(index, name, 0, size)
    }

    /// The tensors of the top-level dict, or of the dict under `key` in it.
    /// Entries that are not tensors are skipped; a malformed tensor entry is
    /// an error naming it.
    pub fn tensor_infos(&self, key: Option<&str>) -> Result<Vec<PthTensorInfo>> {
        let mut dict = &self.root;
        // A TorchScript-style `Module` wrapper around the dict.
        if let Obj::Build(obj, state) = &dict.obj {
            if let Obj::Call(func, _) = &obj.obj {
                if matches!(&func.obj, Obj::Global(m, c) if m == "__torch__" && c == "Module") {
                    dict = state;
                }
            }
        }
        let Obj::Dict(items) = &dict.obj else {
            return Err(Error::format(
                &self.path,
                format!(
                    "the checkpoint holds a {}, not a state dict",
                    dict.obj.kind()
                ),
            ));
        };
        let items = match key {
            None => items,
            Some(key) => {
                let found = items
                    .iter()
                    .find(|(k, _)| matches!(&k.obj, Obj::Str(s) if s == key));
                match found.map(|(_, v)| &v.obj) {
                    Some(Obj::Dict(inner)) => inner,
                    _ => return Ok(Vec::new()),
                }
            }
        };
        let mut out = Vec::new();
        for (k, v) in items {
            let Obj::Str(name) = &k.obj else { continue };
            match tensor_info(name, v) {
                Some(Ok(info)) => out.push(info),
                Some(Err(e)) => return Err(Error::format(&self.path, e)),
                None => {}
            }
        }
        Ok(out)
    }

    /// Reads one tensor: its storage entry must hold exactly the storage the
    /// pickle describes, and only the tensor's own bytes are read.
    pub fn load(&mut self, info: &PthTensorInfo, device: &Device) -> Result<Tensor> {
        let name = format!("{}data/{}", self.prefix, info.storage);
        let (index, size) = self.stored_entry(&name)?;
        let esize = info.dtype.size_in_bytes() as u64;
        let storage_bytes = (info.storage_len as u64).checked_mul(esize);
        if storage_bytes != Some(size) {
            return Err(Error::format(
                &self.path,
                format!(
                    "tensor '{}': its storage '{name}' holds {size} bytes, the pickle says {} elements of {esize} bytes",
                    info.name, info.storage_len
                ),
            ));
        }
        let numel: usize = info.shape.iter().product(); // checked in `rebuild_args`
                                                        // offset + numel ≤ storage_len, so both products are ≤ size.
        let bytes = self.read_range(
            index,
            &name,
            info.offset as u64 * esize,
            numel as u64 * esize,
        )?;
        Tensor::from_raw_buffer(&bytes, info.dtype, &info.shape, device)
            .map_err(|e| Error::format(&self.path, format!("tensor '{}': {e}", info.name)))
    }

    /// Reads every tensor of [`Pth::tensor_infos`]`(key)`.
    pub fn read_all(&mut self, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
        let infos = self.tensor_infos(key)?;
        infos
            .iter()
            .map(|i| Ok((i.name.clone(), self.load(i, &Device::Cpu)?)))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
