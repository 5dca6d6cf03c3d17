//! What the shards of a batch job have done, from their manifests
//! ([`crate::batch_job`]): `syncseg shards status OUT`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::batch_job::{ManifestHeader, ShardEnd, VideoRecord, VideoStatus, MANIFEST_DIR};
use crate::error::{Error, Result};

/// One shard's manifest as read.
#[derive(Debug, Clone)]
struct ShardManifest {
    path: PathBuf,
    header: ManifestHeader,
    /// The last record of each video.
    records: HashMap<String, VideoRecord>,
    end: Option<ShardEnd>,
}

/// Reads one manifest; a torn last line (a task killed mid-write) is ignored.
fn read_manifest(path: &Path) -> Result<ShardManifest> {
    let text = crate::fsio::read_text(path)?;
    let mut lines = text.lines();
    let first = lines
        .next()
        .ok_or_else(|| Error::format(path, "empty manifest"))?;
    let header: ManifestHeader = serde_json::from_str(first)
        .map_err(|e| Error::format(path, format!("line 1: not a shard manifest header: {e}")))?;
    let mut records = HashMap::new();
    let mut end = None;
    let rest: Vec<&str> = lines.collect();
    for (i, line) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        if let Ok(r) = serde_json::from_str::<VideoRecord>(line) {
            records.insert(r.video.clone(), r);
        } else if let Ok(e) = serde_json::from_str::<ShardEnd>(line) {
            end = Some(e);
        } else if !last {
            return Err(Error::format(
                path,
                format!(
                    "line {}: neither a video record nor the end of the shard",
                    i + 2
                ),
            ));
        }
    }
    Ok(ShardManifest {
        path: path.to_path_buf(),
        header,
        records,
        end,
    })
}

/// The state of one command's run over a list, across its shards.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// `predict`, `features` or `segment`.
    pub command: String,
    /// Shards of the list.
    pub num_shards: usize,
    /// Videos in the whole list.
    pub list_videos: usize,
    /// Shards that have a manifest.
    pub started_shards: usize,
    /// Shards with no manifest: never started (or started elsewhere).
    pub missing_shards: Vec<usize>,
    /// Shards that ran to their last video.
    pub finished_shards: usize,
    /// Videos done (computed or kept).
    pub done: usize,
    /// Of those, kept from an earlier run.
    pub reused: usize,
    /// Videos that failed: (shard, video, error).
    pub failed: Vec<(usize, String, String)>,
    /// Videos of started shards with no record: in flight, or their task
    /// was killed. (shard, video)
    pub pending: Vec<(usize, String)>,
    /// Videos of shards that have not started.
    pub unstarted_videos: usize,
    /// Frames computed.
    pub frames: u64,
    /// Seconds spent on videos, summed over shards.
    pub video_seconds: f64,
    /// The slowest finished shard's wall-clock seconds.
    pub slowest_shard_seconds: f64,
    /// Manifests of an earlier split of this command (another shard count
    /// or list) found beside the current ones and ignored.
    pub stale_manifests: Vec<PathBuf>,
}

impl RunStatus {
    /// Every video of the list is done.
    pub fn is_complete(&self) -> bool {
        self.missing_shards.is_empty() && self.failed.is_empty() && self.pending.is_empty()
    }
}

/// The runs recorded under `out` (the output folder of the batch
/// commands), one per command, from `out/shards/*.jsonl`. For a command
/// whose manifests disagree on the split (a rerun with another shard
/// count, or over another list), the most recently started split is
/// reported and the others are listed as stale.
pub fn status(out: &Path) -> Result<Vec<RunStatus>> {
    let dir = out.join(MANIFEST_DIR);
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::invalid(format!(
                "{}: no shard manifests (not the output folder of `predict`, `features` or `segment` over a list?)",
                out.display()
            ))
        } else {
            Error::io(&dir, e)
        }
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    let mut by_command: BTreeMap<String, Vec<ShardManifest>> = BTreeMap::new();
    for p in &paths {
        let m = read_manifest(p)?;
        by_command
            .entry(m.header.command.clone())
            .or_default()
            .push(m);
    }
    if by_command.is_empty() {
        return Err(Error::invalid(format!(
            "{}: no shard manifests (*.jsonl)",
            dir.display()
        )));
    }
    Ok(by_command.into_values().map(summarize).collect())
}

fn summarize(manifests: Vec<ShardManifest>) -> RunStatus {
    // The current split: that of the most recently started manifest.
    let newest = manifests
        .iter()
        .max_by_key(|m| m.header.started_ms)
        .map(|m| (m.header.num_shards, m.header.list_digest.clone()))
        .unwrap_or_default();
    let (current, stale): (Vec<_>, Vec<_>) = manifests
        .into_iter()
        .partition(|m| (m.header.num_shards, m.header.list_digest.clone()) == newest);
    let h0 = &current[0].header;
    let mut s = RunStatus {
        command: h0.command.clone(),
        num_shards: h0.num_shards,
        list_videos: h0.list_videos,
        started_shards: 0,
        missing_shards: Vec::new(),
        finished_shards: 0,
        done: 0,
        reused: 0,
        failed: Vec::new(),
        pending: Vec::new(),
        unstarted_videos: h0.list_videos,
        frames: 0,
        video_seconds: 0.0,
        slowest_shard_seconds: 0.0,
        stale_manifests: stale.into_iter().map(|m| m.path).collect(),
    };
    let mut by_index: BTreeMap<usize, &ShardManifest> = BTreeMap::new();
    for m in &current {
        // Two manifests of one shard cannot both be here (same file name).
        by_index.insert(m.header.shard_index, m);
    }
    s.missing_shards = (0..s.num_shards)
        .filter(|i| !by_index.contains_key(i))
        .collect();
    for (&i, m) in &by_index {
        s.started_shards += 1;
        s.unstarted_videos = s.unstarted_videos.saturating_sub(m.header.videos.len());
        if let Some(end) = &m.end {
            s.finished_shards += 1;
            s.slowest_shard_seconds = s.slowest_shard_seconds.max(end.seconds);
        }
        for v in &m.header.videos {
            match m.records.get(v) {
                None => s.pending.push((i, v.clone())),
                Some(r) => {
                    s.frames += r.frames;
                    s.video_seconds += r.seconds;
                    match r.status {
                        VideoStatus::Done => {
                            s.done += 1;
                            s.reused += usize::from(r.reused);
                        }
                        VideoStatus::Failed => {
                            s.failed
                                .push((i, v.clone(), r.error.clone().unwrap_or_default()))
                        }
                    }
                }
            }
        }
    }
    s
}

/// Lists the first `max` of `items`, then how many more.
fn list_some(f: &mut fmt::Formatter<'_>, items: &[String], max: usize) -> fmt::Result {
    for it in items.iter().take(max) {
        writeln!(f, "    {it}")?;
    }
    if items.len() > max {
        writeln!(f, "    … and {} more", items.len() - max)?;
    }
    Ok(())
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} of {} videos done ({} kept from earlier runs), {} failed, {} pending, {} in shards not started",
            self.command,
            self.done,
            self.list_videos,
            self.reused,
            self.failed.len(),
            self.pending.len(),
            self.unstarted_videos
        )?;
        writeln!(
            f,
            "  shards: {} of {} started, {} finished; {} frames in {:.1} s of video work (slowest shard {:.1} s)",
            self.started_shards,
            self.num_shards,
            self.finished_shards,
            self.frames,
            self.video_seconds,
            self.slowest_shard_seconds
        )?;
        if !self.missing_shards.is_empty() {
            let ids: Vec<String> = self.missing_shards.iter().map(|i| i.to_string()).collect();
            writeln!(f, "  not started: shard {}", ids.join(", "))?;
        }
        if !self.failed.is_empty() {
            writeln!(f, "  failed:")?;
            let lines: Vec<String> = self
                .failed
                .iter()
                .map(|(i, v, e)| format!("{v} (shard {i}): {e}"))
                .collect();
            list_some(f, &lines, 20)?;
        }
        if !self.pending.is_empty() {
            writeln!(f, "  pending (in flight, or the task was stopped):")?;
            let lines: Vec<String> = self
                .pending
                .iter()
                .map(|(i, v)| format!("{v} (shard {i})"))
                .collect();
            list_some(f, &lines, 20)?;
        }
        for p in &self.stale_manifests {
            writeln!(f, "  ignored (an earlier split): {}", p.display())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_job::{manifest_path, run_batch, BatchItem, BatchOptions};
    use crate::shard::Shard;
    use crate::train::fit::Silent;

    fn list(dir: &Path, n: usize) -> Vec<BatchItem> {
        (0..n)
            .map(|i| BatchItem {
                name: format!("v{i}"),
                weight: 1 + i as u64,
                outputs: vec![dir.join(format!("v{i}.txt"))],
            })
            .collect()
    }

    fn shard(i: usize, n: usize) -> BatchOptions {
        BatchOptions {
            shard_index: Some(i),
            num_shards: Some(n),
            overwrite: false,
        }
    }

    #[test]
    fn status_names_missing_failed_and_pending_work() {
        let dir = tempfile::tempdir().unwrap();
        let items = list(dir.path(), 9);
        let ok = |it: &BatchItem| {
            crate::fsio::write_bytes_atomic(&it.outputs[0], b"x")?;
            Ok(10)
        };
        run_batch(
            "features",
            dir.path(),
            &items,
            &shard(0, 3),
            &mut Silent,
            ok,
        )
        .unwrap();
        let _ = run_batch(
            "features",
            dir.path(),
            &items,
            &shard(1, 3),
            &mut Silent,
            |it| {
                if it.name == "v7" {
                    Err(Error::invalid("v7.mp4: cannot decode"))
                } else {
                    ok(it)
                }
            },
        );
        let s = &status(dir.path()).unwrap()[0];
        assert!(!s.is_complete());
        assert_eq!(s.missing_shards, vec![2]);
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].1, "v7");
        assert!(
            s.to_string()
                .contains("v7 (shard 1): v7.mp4: cannot decode"),
            "{s}"
        );

        // A task killed after its first video: the rest of its shard pending,
        // and a torn last line does not stop the reader.
        let path = manifest_path(dir.path(), "features", Shard { index: 2, count: 3 });
        run_batch(
            "features",
            dir.path(),
            &items,
            &shard(2, 3),
            &mut Silent,
            ok,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.truncate(2);
        std::fs::write(&path, format!("{}\n{{\"video\":\"v", lines.join("\n"))).unwrap();
        let s = &status(dir.path()).unwrap()[0];
        assert!(s.missing_shards.is_empty());
        assert!(!s.pending.is_empty());
        assert_eq!(s.finished_shards, 2);

        // Everything redone: complete.
        for i in 0..3 {
            let opts = BatchOptions {
                overwrite: i == 1,
                ..shard(i, 3)
            };
            run_batch("features", dir.path(), &items, &opts, &mut Silent, ok).unwrap();
        }
        let s = &status(dir.path()).unwrap()[0];
        assert!(s.is_complete(), "{s}");
        assert_eq!(s.done, 9);
    }

    #[test]
    fn an_earlier_split_is_reported_stale() {
        let dir = tempfile::tempdir().unwrap();
        let items = list(dir.path(), 5);
        let ok = |it: &BatchItem| {
            crate::fsio::write_bytes_atomic(&it.outputs[0], b"x")?;
            Ok(1)
        };
        run_batch("predict", dir.path(), &items, &shard(0, 2), &mut Silent, ok).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        run_batch("predict", dir.path(), &items, &shard(0, 1), &mut Silent, ok).unwrap();
        let s = &status(dir.path()).unwrap()[0];
        assert_eq!(s.num_shards, 1);
        assert!(s.is_complete(), "{s}");
        assert_eq!(s.stale_manifests.len(), 1);
    }

    #[test]
    fn a_folder_without_manifests_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = status(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no shard manifests"), "{err}");
    }
}
