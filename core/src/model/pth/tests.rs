//! `.pth` files built byte by byte: well-formed ones as torch.save writes
//! them, and each malformation the reader must refuse without panicking.

use super::*;

/// A pickle under construction (protocol 2, as torch.save writes).
#[derive(Default)]
pub(crate) struct Pkl(pub Vec<u8>);

impl Pkl {
    pub fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn global(&mut self, m: &str, n: &str) -> &mut Self {
        self.op(b"c")
            .op(m.as_bytes())
            .op(b"\n")
            .op(n.as_bytes())
            .op(b"\n")
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.op(b"X")
            .op(&(s.len() as u32).to_le_bytes())
            .op(s.as_bytes())
    }
    pub fn int(&mut self, i: i32) -> &mut Self {
        self.op(b"J").op(&i.to_le_bytes())
    }
    pub fn ints(&mut self, v: &[usize]) -> &mut Self {
        self.op(b"(");
        for x in v {
            self.int(*x as i32);
        }
        self.op(b"t")
    }
}

/// Writes one piece of a pickle.
type Part<'a> = Box<dyn Fn(&mut Pkl) + 'a>;

/// One state-dict entry, with knobs for malformations.
#[derive(Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub key: String,
    pub storage_len: usize,
    pub shape: Vec<usize>,
    pub offset: usize,
    /// How many of `_rebuild_tensor_v2`'s 6 arguments to write.
    pub args: usize,
    /// How many of the storage descriptor's 5 items to write.
    pub storage_items: usize,
    pub storage_class: &'static str,
}

impl Entry {
    pub fn new(name: &str, key: &str, shape: &[usize]) -> Self {
        Entry {
            name: name.into(),
            key: key.into(),
            storage_len: shape.iter().product(),
            shape: shape.to_vec(),
            offset: 0,
            args: 6,
            storage_items: 5,
            storage_class: "FloatStorage",
        }
    }
}

/// `data.pkl` for `entries` (an OrderedDict, as `state_dict()` is).
pub(crate) fn state_dict_pickle(entries: &[Entry]) -> Vec<u8> {
    let mut p = Pkl::default();
    p.op(&[0x80, 2])
        .global("collections", "OrderedDict")
        .op(b")R(");
    for e in entries {
        p.str(&e.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"(");
        let mut stride = vec![1usize; e.shape.len()];
        for i in (0..e.shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * e.shape[i + 1];
        }
        let mut args: Vec<Part<'static>> = Vec::new();
        let (key, class, len, items) = (
            e.key.clone(),
            e.storage_class,
            e.storage_len,
            e.storage_items,
        );
        args.push(Box::new(move |p: &mut Pkl| {
            p.op(b"(");
            let parts: [Part<'_>; 5] = [
                Box::new(|p: &mut Pkl| {
                    p.str("storage");
                }),
                Box::new(|p: &mut Pkl| {
                    p.global("torch", class);
                }),
                Box::new(|p: &mut Pkl| {
                    p.str(&key);
                }),
                Box::new(|p: &mut Pkl| {
                    p.str("cpu");
                }),
                Box::new(|p: &mut Pkl| {
                    p.int(len as i32);
                }),
            ];
            for part in parts.iter().take(items) {
                part(p);
            }
            p.op(b"tQ");
        }));
        let off = e.offset;
        args.push(Box::new(move |p: &mut Pkl| {
            p.int(off as i32);
        }));
        let shape = e.shape.clone();
        args.push(Box::new(move |p: &mut Pkl| {
            p.ints(&shape);
        }));
        args.push(Box::new(move |p: &mut Pkl| {
            p.ints(&stride);
        }));
        args.push(Box::new(|p: &mut Pkl| {
            p.op(&[0x89]);
        }));
        args.push(Box::new(|p: &mut Pkl| {
            p.global("collections", "OrderedDict").op(b")R");
        }));
        for a in args.iter().take(e.args) {
            a(&mut p);
        }
        p.op(b"tR");
    }
    p.op(b"u.");
    p.0
}

/// A zip archive of `files` (name, content, DEFLATE?), no compression
/// library needed: a DEFLATE entry is one stored DEFLATE block.
pub(crate) fn zip(files: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, deflate) in files {
        let crc = crc32fast::hash(data);
        let body: Vec<u8> = if *deflate {
            assert!(data.len() < 65536);
            let n = data.len() as u16;
            let mut b = vec![1u8];
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(&(!n).to_le_bytes());
            b.extend_from_slice(data);
            b
        } else {
            data.to_vec()
        };
        let method: u16 = if *deflate { 8 } else { 0 };
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&method.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes()); // time, date
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(body.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&0x04034b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 6]); // comment, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A `.pth` of `entries` whose storages hold `0, 1, 2, …` as f32.
pub(crate) fn pth(entries: &[Entry], deflate: bool) -> Vec<u8> {
    let pkl = state_dict_pickle(entries);
    let mut storages: Vec<(String, Vec<u8>)> = Vec::new();
    for e in entries {
        if storages.iter().any(|(k, _)| *k == e.key) {
            continue;
        }
        let bytes: Vec<u8> = (0..e.storage_len)
            .flat_map(|i| (i as f32).to_le_bytes())
            .collect();
        storages.push((format!("archive/data/{}", e.key), bytes));
    }
    let mut files: Vec<(&str, &[u8], bool)> = vec![("archive/data.pkl", &pkl, deflate)];
    for (k, b) in &storages {
        files.push((k, b, false));
    }
    files.push(("archive/version", b"3\n", false));
    zip(&files)
}

fn write(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.pth");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn read(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let (_dir, path) = write(bytes);
    Pth::open(&path)?.read_all(None)
}

fn refused(bytes: &[u8], want: &str) {
    let err = read(bytes).expect_err("must be refused").to_string();
    assert!(err.contains("crafted.pth") && err.contains(want), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn well_formed_checkpoints_read() {
    let mut b = Entry::new("b", "1", &[2]);
    b.storage_len = 5;
    b.offset = 3;
    let mut c = Entry::new("c", "1", &[]);
    c.storage_len = 5;
    c.offset = 1;
    let got: HashMap<String, Tensor> = read(&pth(&[Entry::new("a", "0", &[2, 3]), b, c], false))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        got["a"].to_vec2::<f32>().unwrap(),
        vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0]]
    );
    assert_eq!(got["b"].to_vec1::<f32>().unwrap(), vec![3.0, 4.0]);
    assert_eq!(got["c"].to_scalar::<f32>().unwrap(), 1.0);
}

#[test]
fn the_real_fixture_reads_as_candle_reads_it() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/c2f_tcn/model.pth");
    let mine: HashMap<String, Tensor> = Pth::open(&path)
        .unwrap()
        .read_all(None)
        .unwrap()
        .into_iter()
        .collect();
    let theirs = candle_core::pickle::read_all(&path).unwrap();
    assert_eq!(mine.len(), theirs.len());
    for (k, t) in theirs {
        let m = &mine[&k];
        assert_eq!(m.dims(), t.dims(), "{k}");
        assert_eq!(m.dtype(), t.dtype(), "{k}");
        let d = m
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let e = t
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(d, e, "{k}");
    }
}

#[test]
fn short_rebuild_tuple_is_an_error() {
    let mut e = Entry::new("w", "0", &[2, 2]);
    e.args = 3;
    refused(&pth(&[e], false), "_rebuild_tensor_v2 has 3 arguments");
}

#[test]
fn short_storage_tuple_is_an_error() {
    let mut e = Entry::new("w", "0", &[2, 2]);
    e.storage_items = 4;
    refused(&pth(&[e], false), "storage descriptor has 4 items");
}

#[test]
fn shape_larger_than_its_storage_is_an_error() {
    // 2^31 × 2^31 elements over a storage of 4: candle allocates from the shape.
    let mut e = Entry::new("w", "0", &[2]);
    e.storage_len = 4;
    e.shape = vec![1 << 30, 1 << 30];
    let mut bytes = pth(&[e], false);
    refused(&bytes, "its storage holds 4");
    // A pickle whose storage size exceeds the entry.
    let mut e = Entry::new("w", "0", &[4]);
    bytes = pth(&[e.clone()], false);
    e.storage_len = 1 << 30;
    e.shape = vec![1 << 30];
    let pkl = state_dict_pickle(&[e]);
    let data: Vec<u8> = (0..4).flat_map(|i| (i as f32).to_le_bytes()).collect();
    refused(
        &zip(&[
            ("archive/data.pkl", &pkl, false),
            ("archive/data/0", &data, false),
        ]),
        "holds 16 bytes",
    );
    assert!(read(&bytes).is_ok());
}

#[test]
fn overflowing_shape_is_an_error() {
    let mut e = Entry::new("w", "0", &[2]);
    e.shape = vec![1 << 30; 3];
    refused(&pth(&[e], false), "overflows");
}

#[test]
fn deflate_is_refused_by_name() {
    refused(
        &pth(&[Entry::new("w", "0", &[2])], true),
        "DEFLATE-compressed",
    );
}

#[test]
fn unsupported_storage_and_layout_are_errors() {
    let mut e = Entry::new("w", "0", &[2]);
    e.storage_class = "ComplexFloatStorage";
    refused(&pth(&[e], false), "ComplexFloatStorage is not supported");
    // A transposed view.
    let mut p = Pkl::default();
    p.op(&[0x80, 2])
        .op(b"}(")
        .str("w")
        .global("torch._utils", "_rebuild_tensor_v2");
    p.op(b"((")
        .str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(6);
    p.op(b"tQ").int(0).ints(&[2, 3]).ints(&[1, 2]).op(b"tRu.");
    let data = [0u8; 24];
    refused(
        &zip(&[
            ("archive/data.pkl", &p.0, false),
            ("archive/data/0", &data, false),
        ]),
        "not contiguous",
    );
}

#[test]
fn malformed_pickles_are_errors_not_panics() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x80\x02".to_vec(), "no STOP"),
        (b"\x80\x02.".to_vec(), "stack underflow"),
        (b"\x80\x02X\xff\xff\xff\xff.".to_vec(), "truncated"),
        (b"\x80\x02\x8a\x40AAAA.".to_vec(), "integer of 64 bytes"),
        (b"\x80\x02h\x07.".to_vec(), "memo entry 7"),
        (b"\x80\x02]K\x01a.".to_vec(), "holds a list"),
        (b"\x80\x02KaKaa.".to_vec(), "APPEND on a int"),
        (b"\x80\x02}(K\x01u.".to_vec(), "odd number"),
        (b"\x80\x02\xfe.".to_vec(), "opcode 0xfe"),
        // `_rebuild_from_type_v2` and `_rebuild_parameter` with no arguments.
        (
            b"\x80\x02}X\x01\x00\x00\x00wctorch._tensor\n_rebuild_from_type_v2\n)Rs.".to_vec(),
            "_rebuild_from_type_v2 has 0",
        ),
        (
            b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_parameter\n)Rs.".to_vec(),
            "_rebuild_parameter without",
        ),
    ];
    for (pkl, want) in cases {
        refused(&zip(&[("archive/data.pkl", &pkl, false)]), want);
    }
    // Deep nesting and memo blow-up.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b"]"[0], 1));
    deep.extend(std::iter::repeat_n(0x85u8, 100_000));
    deep.push(b'.');
    refused(
        &zip(&[("archive/data.pkl", &deep, false)]),
        "nested more than",
    );
    let mut blow = b"\x80\x02]q\x00".to_vec();
    for _ in 0..40 {
        // l = [l, l]: doubling through the memo.
        blow.extend_from_slice(b"h\x00h\x00\x86q\x00");
    }
    blow.push(b'.');
    refused(&zip(&[("archive/data.pkl", &blow, false)]), "holds a tuple");
    // Not a zip; no data.pkl.
    refused(b"PK\x03\x04 not a zip", "not a readable PyTorch checkpoint");
    refused(&zip(&[("archive/version", b"3", false)]), "no data.pkl");
}
