//! Where the features of a run's videos come from: `features` (and
//! `teacher_features`, `student_features`) name a folder of
//! `<video>.npy` files (MS-TCN's layout) or an LMDB store (the sync
//! paper's release, Assembly101; see [`crate::lmdb_store`]).

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::features::Features;
use crate::npy::{read_features, FeatureLayout};

/// Whether `source` is an LMDB store rather than a folder of `.npy` files.
pub fn is_lmdb(source: &Path) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::lmdb_store::is_store(source)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = source;
        false
    }
}

/// What errors about video `name`'s features name: its `.npy` file, or the
/// store.
pub fn source_path(source: &Path, name: &str) -> PathBuf {
    if is_lmdb(source) {
        source.to_path_buf()
    } else {
        source.join(format!("{name}.npy"))
    }
}

/// How much work each video of `names` in `source` is, for balancing
/// shards ([`crate::shard`]): its frames in an LMDB store, its file's size
/// in a folder (proportional to frames at one feature width); 0 when
/// missing (the job then fails on that video, by name).
pub fn video_weights(source: &Path, names: &[String]) -> Vec<u64> {
    #[cfg(not(target_arch = "wasm32"))]
    if is_lmdb(source) {
        let frames: std::collections::HashMap<String, usize> =
            crate::lmdb_store::list_videos(source)
                .map(|v| v.into_iter().collect())
                .unwrap_or_default();
        return names
            .iter()
            .map(|n| frames.get(n).map_or(0, |&f| f as u64))
            .collect();
    }
    names
        .iter()
        .map(|n| std::fs::metadata(source.join(format!("{n}.npy"))).map_or(0, |m| m.len()))
        .collect()
}

/// The `[D, T]` features of video `name` from `source`: `source/<name>.npy`
/// laid out as `layout`, or the video's frames in the LMDB store `source`
/// (one value a frame, whatever `layout` says).
pub fn read_video_features(source: &Path, name: &str, layout: FeatureLayout) -> Result<Features> {
    #[cfg(not(target_arch = "wasm32"))]
    if is_lmdb(source) {
        return crate::lmdb_store::read_video(source, name);
    }
    read_features(source.join(format!("{name}.npy")), layout)
}
