//! LMDB feature stores, as the sync paper's release and Assembly101 write
//! them: one environment per view, one entry per frame, the key
//! `{video}_{frame:010d}.jpg` and the value that frame's raw little-endian
//! `float32` feature (D = 1024 for the release's DINOv2 features).
//!
//! A store is opened read-only and its keys are listed once (LMDB maps the
//! file, so listing touches keys only, never copies a value); a video's
//! frames are then read when that video is loaded, by key. Videos and their
//! lengths come from the keys: everything before the last `_<digits>` (and
//! an image extension) names the video. Assembly101's keys
//! (`{video}/{view}/{view}_{frame:010d}.jpg`) name videos with slashes; a
//! name without them matches the one stored video under `{name}/`.
//!
//! Frames are numbered from 0 or from 1 (the release's are 1-based) and
//! must be contiguous; every value must have the size of the store's first.
//! Keys of another shape (a `__len__` some writers add) are ignored.
//!
//! heed allows one open environment per path in a process, and Python
//! callers load the same store many times, so stores are kept open in a
//! process-wide table and their key index is rebuilt when `data.mdb`
//! changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, WithoutTls};

use crate::error::{Error, Result};
use crate::features::Features;

/// The file that marks a directory as an LMDB environment.
pub const DATA_FILE: &str = "data.mdb";

/// Whether `path` is an LMDB environment directory (holds `data.mdb`).
pub fn is_store(path: &Path) -> bool {
    path.join(DATA_FILE).is_file()
}

/// One video's frames in a store.
#[derive(Debug, Clone)]
struct VideoKeys {
    /// Frame numbers as stored, sorted.
    frames: Vec<u64>,
    /// The width of the zero-padded number (10 in the release).
    digits: usize,
    /// The key's suffix after the number (`.jpg`).
    suffix: String,
}

/// The key index of a store at one version of its file.
struct Index {
    /// `(length, modification time)` of `data.mdb` when listed.
    stamp: (u64, Option<SystemTime>),
    videos: HashMap<String, VideoKeys>,
    /// Bytes of the first value (the store's feature size).
    value_bytes: Option<usize>,
}

/// An open store: the environment, its unnamed database and key index.
struct Store {
    /// The inode of `data.mdb` opened (a store deleted and written anew at
    /// the same path is another store).
    inode: u64,
    env: Env<WithoutTls>,
    db: Database<Bytes, Bytes>,
    index: Mutex<Option<Arc<Index>>>,
}

/// The stores opened by this process, by canonical path.
fn open_stores() -> &'static Mutex<HashMap<PathBuf, Arc<Store>>> {
    static STORES: std::sync::OnceLock<Mutex<HashMap<PathBuf, Arc<Store>>>> =
        std::sync::OnceLock::new();
    STORES.get_or_init(Default::default)
}

/// `path` as an LMDB error message names it.
fn lmdb_error(path: &Path, e: heed::Error) -> Error {
    match e {
        heed::Error::Io(io) => Error::io(path, io),
        other => Error::format(path, format!("LMDB: {other}")),
    }
}

/// `(inode, (length, modification time))` of the store's `data.mdb`.
/// (No inode off Unix: a rewritten store is then told by size and mtime.)
fn stamp_of(path: &Path) -> Result<(u64, (u64, Option<SystemTime>))> {
    let data = path.join(DATA_FILE);
    let meta = std::fs::metadata(&data).map_err(|e| Error::io(&data, e))?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok((inode, (meta.len(), meta.modified().ok())))
}

/// Opens (or finds open) the store at `path`.
fn store(path: &Path) -> Result<(Arc<Store>, Arc<Index>)> {
    if !is_store(path) {
        return Err(Error::format(
            path,
            format!("not an LMDB store (no {DATA_FILE})"),
        ));
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let (inode, stamp) = stamp_of(path)?;
    let store = {
        let mut stores = open_stores().lock().unwrap_or_else(|p| p.into_inner());
        if stores.get(&canonical).is_some_and(|s| s.inode != inode) {
            // Replaced on disk: close the old environment (heed opens a
            // path once) before opening the new one.
            if let Some(old) = stores.remove(&canonical) {
                if let Ok(old) = Arc::try_unwrap(old) {
                    old.env.prepare_for_closing().wait();
                }
            }
        }
        match stores.get(&canonical) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(open_env(path, &canonical, inode)?);
                stores.insert(canonical, s.clone());
                s
            }
        }
    };
    let mut index = store.index.lock().unwrap_or_else(|p| p.into_inner());
    let current = match index.as_ref() {
        Some(i) if i.stamp == stamp => i.clone(),
        _ => {
            let fresh = Arc::new(list_keys(path, &store, stamp)?);
            *index = Some(fresh.clone());
            fresh
        }
    };
    drop(index);
    Ok((store, current))
}

fn open_env(path: &Path, canonical: &Path, inode: u64) -> Result<Store> {
    let open = |flags: EnvFlags| {
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        // SAFETY: read-only; the store's contract (as for mapped .npy
        // files) is that it is not truncated or rewritten in place while a
        // run reads it. LMDB's own lock file covers concurrent writers.
        unsafe {
            options.flags(flags);
            options.open(canonical)
        }
    };
    let env = match open(EnvFlags::READ_ONLY) {
        // A store on read-only media or in a folder the user may not write:
        // LMDB cannot create or lock lock.mdb, so read without locks (a
        // feature store is not written while it is read).
        Err(heed::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            open(EnvFlags::READ_ONLY | EnvFlags::NO_LOCK)
        }
        other => other,
    }
    .map_err(|e| lmdb_error(path, e))?;
    let rtxn = env.read_txn().map_err(|e| lmdb_error(path, e))?;
    let db: Database<Bytes, Bytes> = env
        .open_database(&rtxn, None)
        .map_err(|e| lmdb_error(path, e))?
        .ok_or_else(|| Error::format(path, "LMDB: the store has no main database"))?;
    drop(rtxn);
    Ok(Store {
        inode,
        env,
        db,
        index: Mutex::new(None),
    })
}

/// `(video, frame number, digits, suffix)` of a frame's key, or `None` for
/// a key of another shape.
fn parse_key(key: &[u8]) -> Option<(&str, u64, usize, &str)> {
    let key = std::str::from_utf8(key).ok()?;
    // An image extension after the number (`.jpg`, `.png`), if any.
    let (stem, suffix) = match key.rfind('.') {
        Some(dot)
            if key[dot + 1..].len() <= 5
                && !key[dot + 1..].is_empty()
                && key[dot + 1..].bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            (&key[..dot], &key[dot..])
        }
        _ => (key, ""),
    };
    let underscore = stem.rfind('_')?;
    let (video, number) = (&stem[..underscore], &stem[underscore + 1..]);
    if video.is_empty() || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((video, number.parse().ok()?, number.len(), suffix))
}

fn list_keys(path: &Path, store: &Store, stamp: (u64, Option<SystemTime>)) -> Result<Index> {
    let rtxn = store.env.read_txn().map_err(|e| lmdb_error(path, e))?;
    let mut videos: HashMap<String, VideoKeys> = HashMap::new();
    let mut value_bytes = None;
    for entry in store.db.iter(&rtxn).map_err(|e| lmdb_error(path, e))? {
        let (key, value) = entry.map_err(|e| lmdb_error(path, e))?;
        let Some((video, frame, digits, suffix)) = parse_key(key) else {
            continue;
        };
        value_bytes.get_or_insert(value.len());
        let keys = videos.entry(video.to_owned()).or_insert_with(|| VideoKeys {
            frames: Vec::new(),
            digits,
            suffix: suffix.to_owned(),
        });
        keys.frames.push(frame);
    }
    for keys in videos.values_mut() {
        // LMDB orders keys bytewise: zero-padded numbers come sorted, others
        // (`v_9`, `v_10`) do not.
        keys.frames.sort_unstable();
    }
    Ok(Index {
        stamp,
        videos,
        value_bytes,
    })
}

impl Index {
    /// The stored video `name` means: itself, or the one under `name/`.
    fn find(&self, path: &Path, name: &str) -> Result<(&str, &VideoKeys)> {
        if let Some((k, v)) = self.videos.get_key_value(name) {
            return Ok((k, v));
        }
        let prefix = format!("{name}/");
        let under: Vec<_> = self
            .videos
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .collect();
        match under[..] {
            [(k, v)] => Ok((k, v)),
            [] => {
                let mut some: Vec<&str> = self.videos.keys().map(String::as_str).collect();
                some.sort_unstable();
                let n = some.len();
                some.truncate(3);
                Err(Error::format(
                    path,
                    if n == 0 {
                        format!(
                            "no frames of video '{name}': the store holds no keys of the form \
                             {{video}}_{{frame:010d}}.jpg"
                        )
                    } else {
                        format!(
                            "no frames of video '{name}' (no key {name}_0000000001.jpg); the store holds {n} videos, e.g. {}",
                            some.join(", ")
                        )
                    },
                ))
            }
            _ => {
                let mut names: Vec<&str> = under.iter().map(|(k, _)| k.as_str()).collect();
                names.sort_unstable();
                Err(Error::format(
                    path,
                    format!(
                        "video '{name}' is ambiguous: the store holds {}; name one of them",
                        names.join(", ")
                    ),
                ))
            }
        }
    }
}

/// The videos of the store at `path` and their frame counts, sorted by name.
pub fn list_videos(path: &Path) -> Result<Vec<(String, usize)>> {
    let (_, index) = store(path)?;
    let mut out: Vec<(String, usize)> = index
        .videos
        .iter()
        .map(|(k, v)| (k.clone(), v.frames.len()))
        .collect();
    out.sort();
    Ok(out)
}

/// Reads video `name`'s frames from the store at `path` into `[D, T]`
/// features: contiguous frames, values of one size, all finite.
pub fn read_video(path: &Path, name: &str) -> Result<Features> {
    let (store, index) = store(path)?;
    let (video, keys) = index.find(path, name)?;
    let frames = &keys.frames;
    let first = frames[0];
    if first > 1 {
        return Err(Error::format(
            path,
            format!(
                "video '{name}': its first frame is {first}: frames must be numbered from 0 or 1"
            ),
        ));
    }
    if let Some(w) = frames.windows(2).find(|w| w[1] != w[0] + 1) {
        let what = if w[1] == w[0] {
            format!("frame {} is stored twice (keys of different widths)", w[0])
        } else {
            format!(
                "frame {} is missing (frames {first}..{} stored)",
                w[0] + 1,
                frames[frames.len() - 1]
            )
        };
        return Err(Error::format(path, format!("video '{name}': {what}")));
    }
    let value_bytes = index.value_bytes.unwrap_or(0);
    if value_bytes == 0 || value_bytes % 4 != 0 {
        return Err(Error::format(
            path,
            format!("values of {value_bytes} bytes: a frame's feature is raw float32 (a multiple of 4 bytes)"),
        ));
    }
    let dim = value_bytes / 4;
    let t_len = frames.len();
    let mut data = vec![
        0f32;
        dim.checked_mul(t_len).ok_or_else(|| {
            Error::format(
                path,
                format!("video '{name}': [{dim}, {t_len}] is too large"),
            )
        })?
    ];
    let rtxn = store.env.read_txn().map_err(|e| lmdb_error(path, e))?;
    let mut key = String::new();
    for (t, &frame) in frames.iter().enumerate() {
        key.clear();
        use std::fmt::Write as _;
        let _ = write!(
            key,
            "{video}_{frame:0width$}{}",
            keys.suffix,
            width = keys.digits
        );
        let value = store
            .db
            .get(&rtxn, key.as_bytes())
            .map_err(|e| lmdb_error(path, e))?
            .ok_or_else(|| {
                Error::format(
                    path,
                    format!("key '{key}' disappeared while reading: the store changed"),
                )
            })?;
        if value.len() != value_bytes {
            return Err(Error::format(
                path,
                format!(
                    "key '{key}': a value of {} bytes, but the store's features are {dim} float32 ({value_bytes} bytes)",
                    value.len()
                ),
            ));
        }
        for (d, bytes) in value.chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            if !v.is_finite() {
                return Err(Error::format(
                    path,
                    format!("key '{key}': contains {v} at dimension {d}"),
                ));
            }
            data[d * t_len + t] = v;
        }
    }
    Features::new(dim, t_len, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `entries` into a new store at `dir` (what Python's `lmdb`
    /// package does with `env.begin(write=True).put`).
    fn write_store(dir: &Path, entries: &[(String, Vec<u8>)]) {
        std::fs::create_dir_all(dir).unwrap();
        // SAFETY: a fresh directory that nothing else opens.
        let env = unsafe { EnvOpenOptions::new().map_size(64 << 20).open(dir).unwrap() };
        let mut wtxn = env.write_txn().unwrap();
        let db: Database<Bytes, Bytes> = env.create_database(&mut wtxn, None).unwrap();
        for (k, v) in entries {
            db.put(&mut wtxn, k.as_bytes(), v).unwrap();
        }
        wtxn.commit().unwrap();
        env.prepare_for_closing().wait();
    }

    fn frame(dim: usize, video: usize, t: usize) -> Vec<u8> {
        (0..dim)
            .flat_map(|d| ((video * 1000 + t * 10 + d) as f32).to_le_bytes())
            .collect()
    }

    #[test]
    fn keys_parse_in_the_release_and_assembly101_layouts() {
        assert_eq!(
            parse_key(b"P01_R01_0000000042.jpg"),
            Some(("P01_R01", 42, 10, ".jpg"))
        );
        assert_eq!(
            parse_key(b"nusar-1/C10095_rgb/C10095_rgb_0000000001.jpg"),
            Some(("nusar-1/C10095_rgb/C10095_rgb", 1, 10, ".jpg"))
        );
        assert_eq!(parse_key(b"v_7"), Some(("v", 7, 1, "")));
        assert_eq!(parse_key(b"__len__"), None);
        assert_eq!(parse_key(b"_0001.jpg"), None);
        assert_eq!(parse_key(b"v_12a.jpg"), None);
        assert_eq!(parse_key(&[0xff, b'_', b'1']), None);
    }

    #[test]
    fn a_store_reads_as_features_by_video() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("ego");
        let mut entries = vec![("__len__".to_string(), b"7".to_vec())];
        for (v, name) in ["a_b", "c"].iter().enumerate() {
            for t in 0..(3 + v) {
                entries.push((format!("{name}_{:010}.jpg", t + 1), frame(4, v, t)));
            }
        }
        write_store(&store_dir, &entries);
        assert!(is_store(&store_dir));
        assert_eq!(
            list_videos(&store_dir).unwrap(),
            vec![("a_b".into(), 3), ("c".into(), 4)]
        );
        let f = read_video(&store_dir, "c").unwrap();
        assert_eq!((f.dim, f.frames), (4, 4));
        // [D, T]: channel d of frame t is 1000 + 10 t + d.
        assert_eq!(f.get(2, 3), Some(1032.0));
        assert_eq!(f.get(0, 0), Some(1000.0));
        // Read again (the store stays open; heed refuses a second open).
        assert_eq!(read_video(&store_dir, "a_b").unwrap().frames, 3);
        let err = read_video(&store_dir, "zz").unwrap_err().to_string();
        assert!(
            err.contains("no frames of video 'zz'") && err.contains("holds 2 videos, e.g. a_b, c"),
            "{err}"
        );
    }

    #[test]
    fn assembly101_names_match_under_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<_> = (0..2)
            .map(|t| (format!("seq1/C1_rgb/C1_rgb_{:010}.jpg", t), frame(2, 0, t)))
            .collect();
        write_store(dir.path(), &entries);
        assert_eq!(read_video(dir.path(), "seq1").unwrap().frames, 2);
        assert_eq!(
            read_video(dir.path(), "seq1/C1_rgb/C1_rgb").unwrap().frames,
            2
        );
    }

    #[test]
    fn missing_frames_and_wrong_sizes_are_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for t in [1, 2, 4] {
            entries.push((format!("gap_{t:010}.jpg"), frame(4, 0, t)));
        }
        for t in 1..=3 {
            let mut v = frame(4, 1, t);
            if t == 2 {
                v.truncate(12);
            }
            entries.push((format!("short_{t:010}.jpg"), v));
        }
        entries.push(("late_0000000005.jpg".into(), frame(4, 2, 0)));
        entries.push((
            "nan_0000000001.jpg".into(),
            f32::NAN.to_le_bytes().repeat(4),
        ));
        write_store(dir.path(), &entries);
        let err = |v: &str| read_video(dir.path(), v).unwrap_err().to_string();
        let e = err("gap");
        assert!(
            e.contains("video 'gap': frame 3 is missing (frames 1..4 stored)"),
            "{e}"
        );
        let e = err("short");
        assert!(
            e.contains("key 'short_0000000002.jpg': a value of 12 bytes, but the store's features are 4 float32 (16 bytes)"),
            "{e}"
        );
        let e = err("late");
        assert!(e.contains("its first frame is 5"), "{e}");
        let e = err("nan");
        assert!(
            e.contains("key 'nan_0000000001.jpg': contains NaN at dimension 0"),
            "{e}"
        );
        let e = read_video(&dir.path().join("nothing"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an LMDB store (no data.mdb)"), "{e}");
    }
}
