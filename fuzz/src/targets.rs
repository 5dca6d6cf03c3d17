//! The fuzz targets: one per parser or loader that reads user files, each
//! with the valid inputs its campaign starts from and the tokens of its
//! format. A target's body only has to not panic, abort or hang: errors
//! are the expected outcome of most mutants.

use std::path::{Path, PathBuf};

use candle_core::Device;
use syncseg_core::dataset::MultiViewDataset;
use syncseg_core::features::Features;
use syncseg_core::labels::{read_bundle, read_coarse_segments, read_frame_labels, Mapping};
use syncseg_core::model::{C2fConfig, ModelMeta, SegModel};
use syncseg_core::npy::{parse_features, read_npy, write_features, FeatureLayout};

/// One fuzz target.
pub struct Target {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it feeds.
    pub about: &'static str,
    /// Valid inputs to start from.
    pub seeds: fn(&Path) -> Vec<Vec<u8>>,
    /// Tokens of the format worth inserting.
    pub dictionary: &'static [&'static [u8]],
    /// Inputs longer than this are cut.
    pub max_len: usize,
    /// Feeds one input; `scratch` is an empty-at-start folder it may use.
    pub run: fn(&[u8], &Path),
}

/// Every target (with `SYNCSEG_FUZZ_SELFTEST=1`, also two that must be
/// reported: one panics, one allocates beyond any cap).
pub fn all() -> Vec<Target> {
    let mut targets = real();
    if std::env::var_os("SYNCSEG_FUZZ_SELFTEST").is_some() {
        targets.push(Target {
            name: "selftest-panic",
            about: "panics on every input (the harness must report it)",
            seeds: |_| vec![b"x".to_vec()],
            dictionary: &[],
            max_len: 16,
            run: |b, _| panic!("selftest: {} bytes", b.len()),
        });
        targets.push(Target {
            name: "selftest-alloc",
            about: "allocates 1 TiB (the cap must stop it)",
            seeds: |_| vec![b"x".to_vec()],
            dictionary: &[],
            max_len: 16,
            run: |b, _| {
                let v: Vec<u8> = Vec::with_capacity((1usize << 40) + b.len());
                std::hint::black_box(v);
            },
        });
    }
    targets
}

fn real() -> Vec<Target> {
    vec![
        Target {
            name: "npy",
            about: ".npy features (every dtype, both layouts), parsed from bytes and read as a file",
            seeds: npy_seeds,
            dictionary: NPY_TOKENS,
            max_len: 1 << 16,
            run: run_npy,
        },
        Target {
            name: "frame-labels",
            about: "groundTruth/<video>.txt: one label per frame",
            seeds: |_| {
                vec![
                    b"take\ntake\npour\r\npour\n".to_vec(),
                    b"\xef\xbb\xbfa\n\nb\n".to_vec(),
                ]
            },
            dictionary: TEXT_TOKENS,
            max_len: 4096,
            run: |b, s| drop(read_frame_labels(write(s, "labels.txt", b))),
        },
        Target {
            name: "mapping",
            about: "mapping.txt (`<id> <name>`) and mapping.csv (`id,name`, quoted fields)",
            seeds: |_| {
                vec![
                    b"0 background\n1 take cup\n2 pour\n".to_vec(),
                    b"id,verb\n0,background\n1,\"take, cup\"\n2,pour\n".to_vec(),
                ]
            },
            dictionary: TEXT_TOKENS,
            max_len: 4096,
            run: |b, s| {
                let _ = Mapping::read(write(s, "mapping.txt", b));
                let _ = Mapping::read(write(s, "mapping.csv", b));
            },
        },
        Target {
            name: "coarse-segments",
            about: "Assembly101 coarse segments (`start<TAB>end<TAB>label`)",
            seeds: |_| vec![b"0\t12\ttake cup\n12\t40\tpour\n55\t60\tstir\n".to_vec()],
            dictionary: TEXT_TOKENS,
            max_len: 4096,
            run: |b, s| {
                if let Ok(segs) = read_coarse_segments(write(s, "coarse.txt", b)) {
                    use syncseg_core::labels::{coarse_to_frame_labels, CoarseOrigin};
                    // Bounded: a segment may end at frame 2^60, which the
                    // expansion must refuse rather than allocate.
                    let _ = coarse_to_frame_labels(&segs, CoarseOrigin::FirstStart, None, "bg");
                    let _ = coarse_to_frame_labels(&segs, CoarseOrigin::VideoStart, Some(100), "bg");
                }
            },
        },
        Target {
            name: "bundle",
            about: "split bundles (`splits/*.bundle`): one video name per line",
            seeds: |_| vec![b"# split 1\nP01_r01.txt\nP02_r03\n".to_vec()],
            dictionary: &[b"../", b"/", b"\\", b"\0", b".txt", b"#", b"\r\n", b".."],
            max_len: 4096,
            run: |b, s| drop(read_bundle(write(s, "train.bundle", b))),
        },
        Target {
            name: "views-json",
            about: "a dataset's views.json (frame rates, offsets, layouts, folders), then one recording",
            seeds: |_| {
                vec![
                    br#"{"label_fps": 30.0, "views": {"exo": {"fps": 30.0, "offset_s": 0.0, "layout": "dim_by_time"}, "ego": {"fps": 15.0, "offset_s": 0.5, "layout": "time_by_dim", "dir": "features/ego"}}}"#.to_vec(),
                    br#"{"views": {"exo": {}, "ego": {"layout": "dim_by_time"}}}"#.to_vec(),
                ]
            },
            dictionary: JSON_TOKENS,
            max_len: 4096,
            run: run_views_json,
        },
        Target {
            name: "model-dir",
            about: "a model directory: model.json + model.safetensors (input: u32 LE length of the JSON, the JSON, the weights)",
            seeds: model_dir_seeds,
            dictionary: MODEL_TOKENS,
            max_len: 1 << 18,
            run: run_model_dir,
        },
        Target {
            name: "model-bundle",
            about: "a single-file model bundle (`syncseg export-model`: safetensors with model.json in its metadata)",
            seeds: model_bundle_seeds,
            dictionary: MODEL_TOKENS,
            max_len: 1 << 18,
            run: |b, _| {
                if let Ok(m) = SegModel::from_bundle(b, &Device::Cpu, Path::new("fuzz.bundle")) {
                    exercise(&m);
                }
            },
        },
        Target {
            name: "segments-json",
            about: "<video>.segments.json, exported to every format at 24, 25, 24000/1001, 30000/1001, 60000/1001 (drop-frame too)",
            seeds: |_| {
                vec![br#"{"video": "P01 take", "frames": 5400, "fps": "30000/1001", "segments": [{"label": 0, "name": "background", "start": 0, "end": 120, "confidence": 0.9}, {"label": 2, "name": "3 eggs <&> \"q\"", "start": 120, "end": 700, "confidence": 0.5}, {"label": 1, "name": "LOCK cup\\", "start": 700, "end": 5400, "confidence": 1.0}]}"#.to_vec()]
            },
            dictionary: &[
                b"\\r", b"\\n", b"\\u2028", b"\\\\", b"<", b"&", b"|", b"#", b"M2 ", b"LOCK",
                b"\"start\": ", b"\"end\": ", b"\"frames\": ", b"18446744073709551615",
            ],
            max_len: 1 << 14,
            run: run_segments_json,
        },
        Target {
            name: "c-abi",
            about: "the C ABI's inputs: features buffer, sizes, layout, segment index, export format, frame rate, title",
            seeds: |_| {
                let mut a = CAbiInput::default().encode();
                a.extend((0..6 * 40).flat_map(|i| ((i % 7) as f32 * 0.3).to_le_bytes()));
                vec![a]
            },
            dictionary: &[
                b"edl\0", b"fcpxml\0", b"otio\0", b"vtt\0", b"srt\0", b"youtube\0",
                b"ffmetadata\0", b"csv\0", b"json\0", b"\x00\x00\xc0\x7f", b"\xff\xff\xff\xff",
            ],
            max_len: 1 << 14,
            run: run_c_abi,
        },
        Target {
            name: "pth",
            about: "`import --pth`: the reference checkpoint's pickle (data.pkl) inside its zip, with the fixture's storages",
            seeds: pth_seeds,
            dictionary: PICKLE_TOKENS,
            max_len: 1 << 16,
            run: run_pth,
        },
    ]
}

const TEXT_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\r",
    b"\t",
    b",",
    b"\"",
    b"\"\"",
    b" ",
    b"\xef\xbb\xbf",
    b"\0",
    b"\xe2\x80\xa8",
    b"\xff",
    b"#",
];

const JSON_TOKENS: &[&[u8]] = &[
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\"",
    b"\"fps\": ",
    b"\"offset_s\": ",
    b"\"label_fps\": ",
    b"\"dir\": \"../..\"",
    b"\"layout\": \"time_by_dim\"",
    b"-",
    b"e308",
    b",",
    b":",
];

const NPY_TOKENS: &[&[u8]] = &[
    b"\x93NUMPY",
    b"'descr': '<f4'",
    b"'<f8'",
    b"'<f2'",
    b"'>f4'",
    b"'<i8'",
    b"'|u1'",
    b"'|O'",
    b"'<c8'",
    b"'fortran_order': True",
    b"'shape': (",
    b"(), ",
    b"(0,)",
    b", ",
    b")",
    b"}",
];

const MODEL_TOKENS: &[&[u8]] = &[
    b"\"input_dim\": ",
    b"\"num_classes\": ",
    b"\"encoder_widths\": [",
    b"\"decoder_width\": ",
    b"\"window_frames\": ",
    b"\"classes\": [\"\", \"a\\n\", \"a\"]",
    b"\"background\": [\"nope\"]",
    b"\"adapter\": {\"layers\": 4, \"heads\": 1024}",
    b"\"ensemble_weights\": [",
    b"\"dtype\":\"F64\"",
    b"\"dtype\":\"BF16\"",
    b"\"shape\":[",
    b"\"data_offsets\":[",
    b"2147483648",
    b"NaN",
    b"\x00\x00\xc0\x7f",
    b"\x00\x00\x80\x7f",
];

const PICKLE_TOKENS: &[&[u8]] = &[
    b"\x80\x02",
    b"ctorch._utils\n_rebuild_tensor_v2\n",
    b"ctorch\nFloatStorage\n",
    b"ctorch\nLongStorage\n",
    b"ccollections\nOrderedDict\n",
    b"X\x04\x00\x00\x000000",
    b")",
    b"(",
    b"t",
    b"R",
    b"Q",
    b"K\x00",
    b"J\xff\xff\xff\x7f",
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x85",
    b"\x86",
    b"\x87",
    b"N",
    b"}",
    b"]",
    b"e",
    b"s",
    b"u",
    b".",
    b"q\x01",
    b"h\x01",
    b"\x94",
];

/// Writes `bytes` to `scratch/name` (the loaders read files).
fn write(scratch: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch.join(name);
    std::fs::write(&path, bytes).expect("scratch folder is writable");
    path
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/c2f_tcn")
}

fn npy_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let f = Features::new(3, 5, (0..15).map(|i| i as f32 * 0.5).collect()).expect("shape");
    let p = scratch.join("seed.npy");
    write_features(&p, &f).expect("scratch folder is writable");
    seeds.push(std::fs::read(&p).expect("just written"));
    for name in ["case_T400_y1.npy", "case_T1000_y1.npy"] {
        if let Ok(b) = std::fs::read(fixtures().join(name)) {
            seeds.push(b);
        }
    }
    seeds
}

fn run_npy(bytes: &[u8], scratch: &Path) {
    for layout in [FeatureLayout::DimByTime, FeatureLayout::TimeByDim] {
        let _ = parse_features(bytes, layout, Path::new("fuzz.npy"));
    }
    let _ = read_npy(write(scratch, "fuzz.npy", bytes));
}

fn run_views_json(bytes: &[u8], scratch: &Path) {
    let root = scratch.join("ds");
    for view in ["exo", "ego"] {
        let dir = root.join("features").join(view);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).expect("scratch folder is writable");
            let f = Features::new(4, 6, vec![0.25; 24]).expect("shape");
            write_features(dir.join("v1.npy"), &f).expect("scratch folder is writable");
        }
    }
    std::fs::write(root.join("views.json"), bytes).expect("scratch folder is writable");
    if let Ok(ds) = MultiViewDataset::open(&root, &["exo", "ego"]) {
        let _ = ds.load_recording_unlabeled("v1", &["exo", "ego"]);
    }
}

/// A tiny but complete model: every code path of loading and prediction.
fn tiny_model() -> SegModel {
    let cfg = C2fConfig::scaled(6, 3, 0.02);
    let meta = ModelMeta::new(
        cfg,
        vec!["background".into(), "take".into(), "pour".into()],
        vec!["background".into()],
        64,
    );
    SegModel::new_seeded(meta, &Device::Cpu, 1).expect("a valid config")
}

/// Loads succeeded: the model must also run (or refuse) without panicking.
/// Inputs are sized from the model only within bounds this target chose,
/// so an accepted but absurd config cannot make the harness allocate.
fn exercise(model: &SegModel) {
    let dim = model.meta.backbone.input_dim();
    if dim > 4096 {
        return;
    }
    for frames in [1, 37] {
        let f = Features::new(dim, frames, vec![0.5; dim * frames]).expect("shape");
        let _ = syncseg_core::predict::predict(model, &f);
    }
}

fn model_dir_seeds(scratch: &Path) -> Vec<Vec<u8>> {
    let dir = scratch.join("seed-model");
    tiny_model().save(&dir).expect("scratch folder is writable");
    let json = std::fs::read(dir.join("model.json")).expect("just written");
    let weights = std::fs::read(dir.join("model.safetensors")).expect("just written");
    vec![join_parts(&json, &weights)]
}

fn join_parts(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = (a.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

/// The inverse of [`join_parts`] for any bytes (a mutated length is clamped).
fn split_parts(bytes: &[u8]) -> (&[u8], &[u8]) {
    if bytes.len() < 4 {
        return (bytes, &[]);
    }
    let n = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let rest = &bytes[4..];
    rest.split_at(n.min(rest.len()))
}

fn run_model_dir(bytes: &[u8], scratch: &Path) {
    let (json, weights) = split_parts(bytes);
    let dir = scratch.join("model");
    std::fs::create_dir_all(&dir).expect("scratch folder is writable");
    // model.json's CRC of the weights would refuse every mutated weights
    // file before the checks behind it: for odd-length inputs, re-seal it.
    let resealed = if bytes.len() % 2 == 1 {
        reseal(json, weights)
    } else {
        None
    };
    write(&dir, "model.json", resealed.as_deref().unwrap_or(json));
    write(&dir, "model.safetensors", weights);
    if let Ok(m) = SegModel::load(&dir, &Device::Cpu) {
        exercise(&m);
    }
}

/// `json` with its `files` digest of model.safetensors replaced by the
/// digest of `weights` (`None` when it has none or is not JSON).
fn reseal(json: &[u8], weights: &[u8]) -> Option<Vec<u8>> {
    use syncseg_core::model::checkpoint::{FileDigest, FILES_KEY, WEIGHTS_FILE};
    let mut v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let files = v.get_mut(FILES_KEY)?.as_object_mut()?;
    files.insert(
        WEIGHTS_FILE.to_string(),
        serde_json::to_value(FileDigest::of(weights)).ok()?,
    );
    serde_json::to_vec(&v).ok()
}

fn model_bundle_seeds(_: &Path) -> Vec<Vec<u8>> {
    vec![tiny_model().to_bundle().expect("bundles")]
}

/// The reference checkpoint's zip entries but `data.pkl`, read once.
fn pth_storages() -> &'static [(String, Vec<u8>)] {
    static ENTRIES: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    ENTRIES.get_or_init(|| {
        let mut entries = Vec::new();
        let Ok(file) = std::fs::File::open(fixtures().join("model.pth")) else {
            return entries;
        };
        let mut zip = zip::ZipArchive::new(file).expect("the fixture is a zip");
        for i in 0..zip.len() {
            let mut e = zip.by_index(i).expect("fixture entry");
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).expect("fixture entry reads");
            let name = e.name().map(|n| n.to_string()).unwrap_or_default();
            entries.push((name, data));
        }
        entries
    })
}

fn pth_seeds(_: &Path) -> Vec<Vec<u8>> {
    pth_storages()
        .iter()
        .filter(|(n, _)| n.ends_with("/data.pkl"))
        .map(|(_, d)| d.clone())
        .collect()
}

/// Writes the fixture's zip with `pickle` as its `data.pkl` (stored, so the
/// mutant reaches the unpickler rather than a checksum).
fn run_pth(pickle: &[u8], scratch: &Path) {
    use std::io::Write;
    let path = scratch.join("fuzz.pth");
    {
        let file = std::fs::File::create(&path).expect("scratch folder is writable");
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in pth_storages() {
            zip.start_file(name.as_str(), opts).expect("zip entry");
            let data = if name.ends_with("/data.pkl") {
                pickle
            } else {
                data
            };
            zip.write_all(data).expect("zip entry");
        }
        zip.finish().expect("zip written");
    }
    if let Ok(m) = SegModel::import_pth(&path, None, &Device::Cpu) {
        exercise(&m);
    }
}

/// The scalar arguments of one C ABI session, in the input's first bytes.
#[derive(Default)]
struct CAbiInput {
    layout: u32,
    dim_delta: i8,
    frames: u16,
    len_delta: i8,
    index: u32,
    fps_num: u32,
    fps_den: u32,
    format: [u8; 12],
    title: [u8; 16],
}

impl CAbiInput {
    const LEN: usize = 4 + 1 + 2 + 1 + 4 + 4 + 4 + 12 + 16;

    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend(self.layout.to_le_bytes());
        v.push(self.dim_delta as u8);
        v.extend(40u16.max(self.frames).to_le_bytes());
        v.push(self.len_delta as u8);
        v.extend(self.index.to_le_bytes());
        v.extend(30000u32.to_le_bytes());
        v.extend(1001u32.to_le_bytes());
        v.extend(b"edl\0\0\0\0\0\0\0\0\0");
        v.extend(b"take \xe2\x80\xa8 <&>\0\0\0\0");
        v
    }

    fn decode(b: &[u8]) -> Option<(Self, &[u8])> {
        if b.len() < Self::LEN {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let mut format = [0u8; 12];
        format.copy_from_slice(&b[20..32]);
        let mut title = [0u8; 16];
        title.copy_from_slice(&b[32..48]);
        Some((
            CAbiInput {
                layout: u32_at(0),
                dim_delta: b[4] as i8,
                frames: u16::from_le_bytes([b[5], b[6]]),
                len_delta: b[7] as i8,
                index: u32_at(8),
                fps_num: u32_at(12),
                fps_den: u32_at(16),
                format,
                title,
            },
            &b[Self::LEN..],
        ))
    }
}

/// The tiny model loaded once through `syncseg_model_load`.
fn c_abi_model() -> usize {
    static MODEL: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MODEL.get_or_init(|| {
        use syncseg_native::ffi::*;
        let dir = std::env::temp_dir().join(format!("syncseg-fuzz-model-{}", std::process::id()));
        tiny_model().save(&dir).expect("temp folder is writable");
        let path = std::ffi::CString::new(dir.to_str().expect("UTF-8 temp path")).expect("no NUL");
        let mut m: *mut SyncsegModel = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer.
        let status = unsafe { syncseg_model_load(path.as_ptr(), &mut m) };
        assert_eq!(status, SYNCSEG_STATUS_OK, "the tiny model loads");
        // Loaded into memory: the files are no longer needed.
        let _ = std::fs::remove_dir_all(&dir);
        m as usize
    })
}

/// A C caller that keeps to the header's contract (pointers valid for the
/// lengths passed) and passes anything else: a panic caught at the
/// boundary (`SYNCSEG_STATUS_PANIC`) is a finding.
fn run_c_abi(bytes: &[u8], _: &Path) {
    use std::ffi::{c_char, CStr};
    use syncseg_native::ffi::*;
    let Some((a, rest)) = CAbiInput::decode(bytes) else {
        return;
    };
    let no_panic = |status: SyncsegStatus, call: &str| {
        if status == SYNCSEG_STATUS_PANIC {
            // SAFETY: the last error is a valid C string until the next call.
            let msg = unsafe { CStr::from_ptr(syncseg_last_error()) };
            panic!(
                "{call} panicked across the C ABI: {}",
                msg.to_string_lossy()
            );
        }
        status
    };
    let model = c_abi_model() as *const SyncsegModel;
    let floats: Vec<f32> = rest
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let dim = (6 + a.dim_delta as i64).max(0) as usize;
    let len = ((floats.len() as i64) + a.len_delta as i64).clamp(0, floats.len() as i64) as usize;
    let mut segs: *mut SyncsegSegments = std::ptr::null_mut();
    // SAFETY: `floats` holds at least `len` values.
    let status = unsafe {
        syncseg_segment(
            model,
            floats.as_ptr(),
            len,
            dim,
            a.frames as usize,
            a.layout,
            &mut segs,
        )
    };
    if no_panic(status, "syncseg_segment") != SYNCSEG_STATUS_OK {
        return;
    }
    let mut count = 0usize;
    // SAFETY: a live handle and a valid out pointer.
    no_panic(
        unsafe { syncseg_segments_count(segs, &mut count) },
        "syncseg_segments_count",
    );
    let mut seg = SyncsegSegment {
        start_frame: 0,
        end_frame: 0,
        label: 0,
        confidence: 0.0,
    };
    let mut name: *const c_char = std::ptr::null();
    for index in [
        0,
        a.index as usize,
        count.saturating_sub(1),
        count,
        usize::MAX,
    ] {
        // SAFETY: as above.
        no_panic(
            unsafe { syncseg_segments_get(segs, index, &mut seg, &mut name) },
            "syncseg_segments_get",
        );
    }
    let mut format = a.format;
    format[11] = 0;
    let mut title = a.title;
    title[15] = 0;
    let mut text: *mut c_char = std::ptr::null_mut();
    // SAFETY: NUL-terminated buffers and a valid out pointer.
    let status = unsafe {
        syncseg_segments_render(
            segs,
            format.as_ptr().cast(),
            a.fps_num,
            a.fps_den,
            title.as_ptr().cast(),
            &mut text,
        )
    };
    if no_panic(status, "syncseg_segments_render") == SYNCSEG_STATUS_OK {
        // SAFETY: a string returned by render.
        no_panic(
            unsafe { syncseg_string_free(&mut text) },
            "syncseg_string_free",
        );
    }
    // SAFETY: the handle from syncseg_segment.
    no_panic(
        unsafe { syncseg_segments_free(&mut segs) },
        "syncseg_segments_free",
    );
}

fn run_segments_json(bytes: &[u8], scratch: &Path) {
    use syncseg_core::export::segments_file::SegmentsFile;
    use syncseg_core::export::{render, ExportFormat, ExportOptions, FrameRate};
    let Ok(file) = SegmentsFile::read(write(scratch, "v.segments.json", bytes)) else {
        return;
    };
    for (num, den) in [
        (24, 1),
        (25, 1),
        (24000, 1001),
        (30000, 1001),
        (60000, 1001),
    ] {
        let rate = FrameRate::new(num, den).expect("a valid rate");
        for drop_frame in [false, true] {
            let opts = ExportOptions {
                title: file.video.clone(),
                video_frames: Some(file.frames),
                background: vec!["background".into()],
                media: Some("/media/P01 #1?.mp4".into()),
                drop_frame,
            };
            for format in ExportFormat::ALL {
                if let Ok(out) = render(format, &file.segments, rate, &opts) {
                    assert!(
                        out.notes.iter().all(|n| !n.contains('\n')),
                        "{format:?}: a note of more than one line"
                    );
                }
            }
        }
    }
}
