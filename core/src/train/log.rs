//! `--log-json FILE`: one JSON record per epoch, appended, for plotting
//! long runs and for the memory soak tests.
//!
//! Each line is a self-contained object:
//!
//! ```json
//! {"run":"train","epoch":3,"epochs":30,"train_loss":1.92,"val":{…},"best":true,
//!  "steps":6,"seconds":2.1,"steps_per_s":2.86,"rss_bytes":5.1e8,"peak_rss_bytes":5.2e8}
//! ```
//!
//! `run` names the stage (`train`, `feature`, `tas`); a resumed run appends
//! to the same file, so a file holds one line per epoch actually trained.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::fit::{EpochRecord, Observer};
use crate::error::{Error, Result};

/// Appends epoch records to a JSON Lines file.
pub struct JsonLog {
    file: File,
    path: PathBuf,
    run: String,
    /// The first write error (reported by [`JsonLog::finish`]; a full disk
    /// must not stop a training run in the middle of an epoch).
    error: Option<std::io::Error>,
}

impl JsonLog {
    /// Opens (creates or appends to) `path`; records are tagged `run`.
    pub fn open(path: &Path, run: &str) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(JsonLog {
            file,
            path: path.to_path_buf(),
            run: run.to_string(),
            error: None,
        })
    }

    /// The first write error, if any.
    pub fn finish(self) -> Result<()> {
        match self.error {
            Some(e) => Err(Error::io(&self.path, e)),
            None => Ok(()),
        }
    }
}

/// The JSON line of one epoch.
pub fn record_json(run: &str, record: &EpochRecord, epochs: usize) -> serde_json::Value {
    let per_s = if record.seconds > 0.0 {
        record.steps as f64 / record.seconds
    } else {
        0.0
    };
    serde_json::json!({
        "run": run,
        "epoch": record.epoch,
        "epochs": epochs,
        "train_loss": record.train_loss,
        "val": record.val.as_ref().map(|v| serde_json::json!({"score": v.score, "details": v.details})),
        "best": record.best,
        "steps": record.steps,
        "seconds": record.seconds,
        "steps_per_s": per_s,
        "rss_bytes": record.memory.map(|m| m.rss_bytes),
        "peak_rss_bytes": record.memory.map(|m| m.peak_rss_bytes),
        "device_bytes": record.device_bytes,
    })
}

impl Observer for JsonLog {
    fn epoch(&mut self, record: &EpochRecord, epochs: usize) {
        if self.error.is_some() {
            return;
        }
        let line = record_json(&self.run, record, epochs).to_string();
        if let Err(e) = writeln!(self.file, "{line}").and_then(|_| self.file.flush()) {
            self.error = Some(e);
        }
    }
}

/// Two observers, both told everything (bars and a log).
pub struct Both<'a>(pub &'a mut dyn Observer, pub &'a mut dyn Observer);

impl Observer for Both<'_> {
    fn step(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        self.0.step(epoch, done, total, loss);
        self.1.step(epoch, done, total, loss);
    }
    fn epoch(&mut self, record: &EpochRecord, epochs: usize) {
        self.0.epoch(record, epochs);
        self.1.epoch(record, epochs);
    }
    fn check(&mut self) -> crate::error::Result<()> {
        self.0.check()?;
        self.1.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_line_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        for epoch in 1..=2 {
            let mut log = JsonLog::open(&path, "train").unwrap();
            log.epoch(
                &EpochRecord {
                    epoch,
                    train_loss: 0.5,
                    val: None,
                    best: true,
                    steps: 4,
                    seconds: 2.0,
                    memory: None,
                    device_bytes: None,
                },
                2,
            );
            log.finish().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["epoch"], 2);
        assert_eq!(lines[1]["steps_per_s"], 2.0);
        assert_eq!(lines[0]["run"], "train");
    }

    #[test]
    fn an_unwritable_path_is_named() {
        let err = JsonLog::open(Path::new("/nonexistent-dir/log.jsonl"), "train")
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("/nonexistent-dir/log.jsonl"),
            "{err}"
        );
    }
}
