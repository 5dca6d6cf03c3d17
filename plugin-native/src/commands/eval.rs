//! `syncseg eval`: the TAS metrics over folders of per-frame label files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use syncseg_core::labels::{read_bundle, read_frame_labels};
use syncseg_core::metrics::{EvalOptions, Evaluator};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of ground-truth files `<video>.txt` (one label per frame).
    #[arg(long)]
    gt: PathBuf,
    /// Folder of predictions with the same file names.
    #[arg(long)]
    pred: PathBuf,
    /// Score only these videos (a split bundle); default: every file in --gt.
    #[arg(long)]
    videos: Option<PathBuf>,
    /// A background label: removed from segment lists, kept in MoF (repeatable).
    #[arg(long = "background", value_name = "LABEL")]
    background: Vec<String>,
    /// Delete frames whose ground truth is background before scoring (the
    /// sync paper's release protocol).
    #[arg(long)]
    drop_background_frames: bool,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
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

fn videos_in(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry.with_context(|| format!("{}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "txt") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        bail!(
            "{}: no ground-truth files (<video>.txt) found",
            dir.display()
        );
    }
    Ok(names)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let videos = match &args.videos {
        Some(bundle) => read_bundle(bundle)?,
        None => videos_in(&args.gt)?,
    };
    let mut interner = Interner::default();
    let background: Vec<u32> = interner.ids(args.background.clone());
    let mut eval = Evaluator::new(EvalOptions {
        background,
        drop_background_frames: args.drop_background_frames,
    });
    for video in &videos {
        let gt_path = args.gt.join(format!("{video}.txt"));
        let pred_path = args.pred.join(format!("{video}.txt"));
        if !pred_path.exists() {
            bail!(
                "{}: missing prediction for video '{video}' (ground truth {})",
                pred_path.display(),
                gt_path.display()
            );
        }
        let gt = interner.ids(read_frame_labels(&gt_path)?);
        let pred = interner.ids(read_frame_labels(&pred_path)?);
        if gt.len() != pred.len() {
            bail!(
                "video '{video}': {} has {} frames but {} has {}",
                pred_path.display(),
                pred.len(),
                gt_path.display(),
                gt.len()
            );
        }
        eval.add_video(&gt, &pred)
            .with_context(|| format!("video '{video}'"))?;
    }
    let scores = eval.finish();
    if args.json {
        println!("{}", serde_json::to_string(&scores)?);
    } else {
        print!(
            "{}",
            syncseg_core::report::scores_table(&[("prediction", &scores)])
        );
    }
    Ok(())
}
