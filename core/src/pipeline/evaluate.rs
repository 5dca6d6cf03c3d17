//! Scoring folders of per-frame label files: Edit, F1@{10,25,50}, MoF.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::labels::{read_bundle, read_frame_labels};
use crate::metrics::{EvalOptions, Evaluator, Scores};

/// What an evaluation reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateInputs {
    /// Folder of ground-truth files `<video>.txt` (one label per frame).
    pub gt: PathBuf,
    /// Folder of predictions with the same file names.
    pub pred: PathBuf,
    /// Score only these videos (a split bundle); `None`: every file in `gt`.
    pub videos: Option<PathBuf>,
}

/// How to score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluateOptions {
    /// Background labels: removed from segment lists, kept in MoF.
    pub background: Vec<String>,
    /// Delete frames whose ground truth is background before scoring (the
    /// sync paper's release protocol).
    pub drop_background_frames: bool,
}

/// Maps label names to dense ids shared by ground truth and predictions.
#[derive(Default)]
struct Interner(HashMap<String, u32>);

impl Interner {
    fn ids(&mut self, names: Vec<String>) -> Vec<u32> {
        names
            .into_iter()
            .map(|n| {
                let next = self.0.len() as u32;
                *self.0.entry(n).or_insert(next)
            })
            .collect()
    }
}

fn videos_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "txt") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(Error::format(
            dir,
            "no ground-truth files (<video>.txt) found",
        ));
    }
    Ok(names)
}

/// Scores the predictions in `inputs.pred` against `inputs.gt`.
pub fn evaluate(inputs: &EvaluateInputs, options: &EvaluateOptions) -> Result<Scores> {
    let videos = match &inputs.videos {
        Some(bundle) => read_bundle(bundle)?,
        None => videos_in(&inputs.gt)?,
    };
    let mut interner = Interner::default();
    let background: Vec<u32> = interner.ids(options.background.clone());
    let mut eval = Evaluator::new(EvalOptions {
        background,
        drop_background_frames: options.drop_background_frames,
    });
    for video in &videos {
        let gt_path = inputs.gt.join(format!("{video}.txt"));
        let pred_path = inputs.pred.join(format!("{video}.txt"));
        if !pred_path.exists() {
            return Err(Error::format(
                &pred_path,
                format!(
                    "missing prediction for video '{video}' (ground truth {})",
                    gt_path.display()
                ),
            ));
        }
        let gt = interner.ids(read_frame_labels(&gt_path)?);
        let pred = interner.ids(read_frame_labels(&pred_path)?);
        if gt.len() != pred.len() {
            return Err(Error::invalid(format!(
                "video '{video}': {} has {} frames but {} has {}",
                pred_path.display(),
                pred.len(),
                gt_path.display(),
                gt.len()
            )));
        }
        eval.add_video(&gt, &pred)
            .map_err(|e| Error::invalid(format!("video '{video}': {e}")))?;
    }
    Ok(eval.finish())
}
