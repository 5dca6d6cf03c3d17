//! Per-video batch jobs that survive preemption and reruns: `predict`,
//! `features` and `segment` over a list of videos, one shard of it
//! ([`crate::shard`]) per task of an array job.
//!
//! * Every output file is written to a temporary name and renamed
//!   ([`crate::fsio::write_atomic`]), so a file is whole or absent.
//! * A video whose outputs all exist is finished: a rerun skips it (unless
//!   `overwrite`), so a crash or a preemption costs at most the video in
//!   flight; the rerun removes the temporary files that video's
//!   interrupted writes left (shards own disjoint videos, so no other task
//!   is writing them).
//! * Each shard keeps a manifest, `<out>/shards/<command>.<i>-of-<n>.jsonl`:
//!   a header line (the shard's videos, the whole list's size and digest)
//!   and one line per video as it ends (done or failed, seconds, frames).
//!   Lines are appended and flushed one at a time, so a killed task leaves
//!   every finished video's line; a torn last line is ignored when read.
//!   `syncseg shards status OUT` reads them ([`crate::shard_status`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::Monitor;
use crate::shard::{Shard, ShardSource};

/// The folder under a job's output that holds the shards' manifests.
pub const MANIFEST_DIR: &str = "shards";

/// One video of a batch job's list.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    /// The video's name (outputs are named after it).
    pub name: String,
    /// Its work, for balancing: frames, or bytes where frames are not known
    /// without decoding.
    pub weight: u64,
    /// The files it writes; all of them existing means it is finished.
    pub outputs: Vec<PathBuf>,
}

/// How a batch job splits and resumes its list (the `--shard-index`,
/// `--num-shards` and `--overwrite` flags of the per-video commands).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchOptions {
    /// This task's shard (from 0); with `num_shards`. Unset: from
    /// `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`, else the whole list.
    pub shard_index: Option<usize>,
    /// How many shards the list is split into. Unset: from
    /// `SLURM_ARRAY_TASK_COUNT` (required with `JOB_COMPLETION_INDEX`).
    pub num_shards: Option<usize>,
    /// Redo videos whose outputs exist instead of skipping them.
    pub overwrite: bool,
}

impl BatchOptions {
    /// The shard this process runs, from the options and the environment.
    pub fn shard(&self) -> Result<(Shard, ShardSource)> {
        Shard::resolve(self.shard_index, self.num_shards, |k| std::env::var(k).ok())
    }
}

/// The first line of a shard's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestHeader {
    /// The command that writes the outputs (`predict`, `features`, `segment`).
    pub command: String,
    /// This shard.
    pub shard_index: usize,
    /// Shards of the list.
    pub num_shards: usize,
    /// Videos in the whole list.
    pub list_videos: usize,
    /// CRC-32 of the whole list's names and weights: shards of one run agree on it.
    pub list_digest: String,
    /// This shard's videos, in the order they run.
    pub videos: Vec<String>,
    /// Their weights (frames or bytes), as `videos`.
    pub weights: Vec<u64>,
    /// When the task started (milliseconds since the Unix epoch).
    pub started_ms: u64,
    /// The host the task ran on, where known.
    pub host: Option<String>,
}

/// How one video ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoStatus {
    /// Its outputs are written.
    Done,
    /// It failed; the others went on.
    Failed,
}

/// A manifest line per video that ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoRecord {
    /// The video.
    pub video: String,
    /// Done or failed.
    pub status: VideoStatus,
    /// Its outputs existed and were kept (not redone).
    #[serde(default)]
    pub reused: bool,
    /// Frames processed (0 when reused or failed).
    #[serde(default)]
    pub frames: u64,
    /// Wall-clock seconds spent on it.
    #[serde(default)]
    pub seconds: f64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A manifest line once the shard's last video has ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEnd {
    /// Always true (marks the line).
    pub finished: bool,
    /// The task's wall-clock seconds.
    pub seconds: f64,
}

/// What a batch job did in this process.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReport {
    /// The shard it ran.
    pub shard: Shard,
    /// Videos in the whole list.
    pub list_videos: usize,
    /// Videos of this shard.
    pub shard_videos: usize,
    /// Videos computed now.
    pub done: usize,
    /// Videos skipped because their outputs existed.
    pub reused: usize,
    /// Videos that failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Frames computed now.
    pub frames: u64,
    /// The manifest written.
    pub manifest: PathBuf,
}

/// The manifest file of `shard` of `command` under `out`.
pub fn manifest_path(out: &Path, command: &str, shard: Shard) -> PathBuf {
    out.join(MANIFEST_DIR).join(format!(
        "{command}.{}-of-{}.jsonl",
        shard.index, shard.count
    ))
}

/// CRC-32 (hex) of a list's names and weights.
pub fn list_digest(items: &[BatchItem]) -> String {
    let mut h = crc32fast::Hasher::new();
    for it in items {
        h.update(it.name.as_bytes());
        h.update(&[0]);
        h.update(&it.weight.to_le_bytes());
    }
    format!("{:08x}", h.finalize())
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The manifest being written: one flushed line at a time.
struct ManifestWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl ManifestWriter {
    /// Starts a fresh manifest with `header` (replacing an earlier run's).
    fn create(path: PathBuf, header: &ManifestHeader) -> Result<Self> {
        let mut line = serde_json::to_string(header).map_err(|e| Error::invalid(e.to_string()))?;
        line.push('\n');
        crate::fsio::write_bytes_atomic(&path, line.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(ManifestWriter { path, file })
    }

    fn append(&mut self, value: &impl Serialize) -> Result<()> {
        let mut line = serde_json::to_string(value).map_err(|e| Error::invalid(e.to_string()))?;
        line.push('\n');
        // One write per line: an append of a short line is not interleaved.
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Runs `work` over this task's shard of `items` (the whole list, in the
/// order every task sees it), skipping finished videos, recording each in
/// the shard's manifest under `out`. `work` returns the frames it
/// processed. A video that fails is recorded and the others go on; the
/// job then returns an error naming how many failed.
pub fn run_batch(
    command: &str,
    out: &Path,
    items: &[BatchItem],
    options: &BatchOptions,
    monitor: &mut dyn Monitor,
    mut work: impl FnMut(&BatchItem) -> Result<u64>,
) -> Result<BatchReport> {
    let (shard, source) = options.shard()?;
    let weights: Vec<u64> = items.iter().map(|i| i.weight).collect();
    let picked = shard.pick(&weights);
    let header = ManifestHeader {
        command: command.to_string(),
        shard_index: shard.index,
        num_shards: shard.count,
        list_videos: items.len(),
        list_digest: list_digest(items),
        videos: picked.iter().map(|&i| items[i].name.clone()).collect(),
        weights: picked.iter().map(|&i| items[i].weight).collect(),
        started_ms: unix_now_ms(),
        host: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
    };
    let path = manifest_path(out, command, shard);
    let mut manifest = ManifestWriter::create(path.clone(), &header)?;
    if !shard.is_whole() {
        let work: u64 = header.weights.iter().sum();
        let all: u64 = weights.iter().sum();
        monitor.note(&format!(
            "note: shard {} of {} ({source}): {} of {} videos, {:.1} % of the work",
            shard.index,
            shard.count,
            picked.len(),
            items.len(),
            if all == 0 {
                0.0
            } else {
                100.0 * work as f64 / all as f64
            }
        ));
    }

    let started = Instant::now();
    let mut report = BatchReport {
        shard,
        list_videos: items.len(),
        shard_videos: picked.len(),
        done: 0,
        reused: 0,
        failed: Vec::new(),
        frames: 0,
        manifest: path,
    };
    for (n, &i) in picked.iter().enumerate() {
        let item = &items[i];
        let t0 = Instant::now();
        let finished = !item.outputs.is_empty() && item.outputs.iter().all(|p| p.is_file());
        let record = if finished && !options.overwrite {
            report.reused += 1;
            VideoRecord {
                video: item.name.clone(),
                status: VideoStatus::Done,
                reused: true,
                frames: 0,
                seconds: 0.0,
                error: None,
            }
        } else {
            // What a killed earlier run of this shard was writing.
            for p in &item.outputs {
                crate::fsio::remove_stale_temps(p)?;
            }
            match work(item) {
                Ok(frames) => {
                    report.done += 1;
                    report.frames += frames;
                    VideoRecord {
                        video: item.name.clone(),
                        status: VideoStatus::Done,
                        reused: false,
                        frames,
                        seconds: t0.elapsed().as_secs_f64(),
                        error: None,
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    monitor.note(&format!("error: {text}"));
                    report.failed.push((item.name.clone(), text.clone()));
                    VideoRecord {
                        video: item.name.clone(),
                        status: VideoStatus::Failed,
                        reused: false,
                        frames: 0,
                        seconds: t0.elapsed().as_secs_f64(),
                        error: Some(text),
                    }
                }
            }
        };
        manifest.append(&record)?;
        monitor.item_done(n + 1, picked.len());
    }
    manifest.append(&ShardEnd {
        finished: true,
        seconds: started.elapsed().as_secs_f64(),
    })?;
    if report.reused > 0 {
        monitor.note(&format!(
            "note: {} of {} videos were already finished and kept (overwrite to redo them)",
            report.reused,
            picked.len()
        ));
    }
    if !report.failed.is_empty() {
        return Err(Error::invalid(format!(
            "{} of {} videos failed ({}): the errors are above and in {}",
            report.failed.len(),
            picked.len(),
            report
                .failed
                .iter()
                .take(3)
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
                + if report.failed.len() > 3 { ", …" } else { "" },
            report.manifest.display()
        )));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fit::Silent;

    fn items(dir: &Path, n: usize) -> Vec<BatchItem> {
        (0..n)
            .map(|i| BatchItem {
                name: format!("v{i}"),
                weight: (i as u64 * 37) % 11 + 1,
                outputs: vec![dir.join(format!("v{i}.txt"))],
            })
            .collect()
    }

    fn write(item: &BatchItem) -> Result<u64> {
        crate::fsio::write_bytes_atomic(&item.outputs[0], item.name.as_bytes())?;
        Ok(item.weight)
    }

    #[test]
    fn shards_write_the_whole_list_once_and_reruns_skip() {
        let dir = tempfile::tempdir().unwrap();
        let list = items(dir.path(), 13);
        let mut seen = Vec::new();
        for index in 0..3 {
            let opts = BatchOptions {
                shard_index: Some(index),
                num_shards: Some(3),
                overwrite: false,
            };
            let r = run_batch("t", dir.path(), &list, &opts, &mut Silent, |it| {
                seen.push(it.name.clone());
                write(it)
            })
            .unwrap();
            assert_eq!(r.reused, 0);
        }
        seen.sort();
        let mut all: Vec<String> = list.iter().map(|i| i.name.clone()).collect();
        all.sort();
        assert_eq!(seen, all);
        // A rerun of shard 1 computes nothing; with overwrite it redoes all.
        let opts = BatchOptions {
            shard_index: Some(1),
            num_shards: Some(3),
            overwrite: false,
        };
        let r = run_batch("t", dir.path(), &list, &opts, &mut Silent, |_| {
            panic!("nothing to redo")
        })
        .unwrap();
        assert_eq!((r.done, r.reused), (0, r.shard_videos));
        let opts = BatchOptions {
            overwrite: true,
            ..opts
        };
        let r = run_batch("t", dir.path(), &list, &opts, &mut Silent, write).unwrap();
        assert_eq!((r.done, r.reused), (r.shard_videos, 0));
    }

    #[test]
    fn a_failure_is_recorded_and_the_rest_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let list = items(dir.path(), 4);
        let err = run_batch(
            "t",
            dir.path(),
            &list,
            &BatchOptions::default(),
            &mut Silent,
            |it| {
                if it.name == "v2" {
                    Err(Error::invalid("v2.npy: broken"))
                } else {
                    write(it)
                }
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("1 of 4 videos failed (v2)"), "{err}");
        for i in [0, 1, 3] {
            assert!(dir.path().join(format!("v{i}.txt")).is_file());
        }
        let text =
            std::fs::read_to_string(manifest_path(dir.path(), "t", Shard::default())).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        let failed: VideoRecord = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(failed.status, VideoStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("v2.npy: broken"));
    }
}
