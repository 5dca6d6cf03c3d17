//! The paper's comparisons on the synthetic benchmark (the demo's Table 1,
//! `bench paper`'s Tables 3–6): the training budget of each preset, the
//! runs on a benchmark folder, and the scoring of a test split.
//!
//! A benchmark folder is what [`crate::synth::Generator::write`] writes:
//! `features/<view>/`, `groundTruth/`, `mapping.txt`, `splits/`.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::distill::{DistillInputs, DistillOptions, Level};
use super::train::{TrainInputs, TrainOptions};
use crate::error::{Error, Result};
use crate::labels::{read_bundle, Mapping};
use crate::metrics::{EvalOptions, Evaluator, Scores};
use crate::model::SegModel;
use crate::npy::FeatureLayout;
use crate::synth::Preset;
use crate::train::data::load_labeled;
use crate::train::distill::Pairing;

/// The background class of the synthetic benchmark.
pub const BACKGROUND: &str = "background";

/// The training budget of a preset.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// C2F-TCN width multiplier.
    pub width_scale: f64,
    /// Epochs of the supervised runs (exo teacher, ego oracle).
    pub epochs: usize,
    /// Their learning rate.
    pub lr: f64,
    /// Epochs of each distillation run (and of its adapter stage).
    pub distill_epochs: usize,
    /// Learning rate of TAS distillation.
    pub distill_lr: f64,
}

impl Budget {
    /// The budget of `preset`.
    pub fn for_preset(preset: Preset) -> Self {
        match preset {
            // A quarter-width C2F-TCN: the small benchmark has 64-D features
            // and ~20 training videos; the full width only costs time there.
            Preset::Small => Budget {
                width_scale: 0.25,
                epochs: 20,
                lr: 1e-3,
                distill_epochs: 15,
                distill_lr: 5e-4,
            },
            Preset::Paper => Budget {
                width_scale: 1.0,
                epochs: 50,
                lr: 5e-4,
                distill_epochs: 30,
                distill_lr: 1e-4,
            },
        }
    }

    /// Supervised training on `view`'s labelled training split of the
    /// benchmark in `data`, selected on its validation split.
    pub fn train(
        &self,
        data: &Path,
        view: &str,
        out: PathBuf,
        seed: u64,
    ) -> (TrainInputs, TrainOptions) {
        let inputs = TrainInputs {
            features: data.join("features").join(view),
            labels: data.join("groundTruth"),
            mapping: data.join("mapping.txt"),
            videos: data.join(format!("splits/{view}_train.bundle")),
            val_videos: Some(data.join(format!("splits/{view}_val.bundle"))),
            out,
        };
        let options = TrainOptions {
            epochs: self.epochs,
            lr: self.lr,
            seed,
            background: vec![BACKGROUND.into()],
            width_scale: self.width_scale,
            ..Default::default()
        };
        (inputs, options)
    }

    /// Distillation of `teacher` from exo to ego on the benchmark's
    /// adaptation pairs, selected on its held-out pairs.
    pub fn distill(
        &self,
        data: &Path,
        teacher: PathBuf,
        out: PathBuf,
        level: Level,
        pairing: Pairing,
        seed: u64,
    ) -> (DistillInputs, DistillOptions) {
        let inputs = DistillInputs {
            teacher,
            dataset: Some(data.to_path_buf()),
            teacher_view: Some("exo".into()),
            student_view: Some("ego".into()),
            videos: data.join("splits/adapt.bundle"),
            val_videos: Some(data.join("splits/adapt_val.bundle")),
            out,
            ..Default::default()
        };
        let options = DistillOptions {
            level,
            pairing,
            epochs: self.distill_epochs,
            lr: self.distill_lr,
            seed,
            adapter_epochs: Some(self.distill_epochs),
            ..Default::default()
        };
        (inputs, options)
    }
}

/// Predictions of the model in `model_dir` on `view`'s test split of the
/// benchmark in `data` (on the CPU: the reference figures), scored with
/// the background left out of segments; and each video's labels.
pub fn score(
    model_dir: &Path,
    data: &Path,
    view: &str,
    mapping: &Mapping,
) -> Result<(Scores, Vec<Vec<u32>>)> {
    let model = SegModel::load(model_dir, &Device::Cpu)?;
    let names = read_bundle(data.join(format!("splits/{view}_test.bundle")))?;
    let bg = mapping.id_of(BACKGROUND).into_iter().collect::<Vec<_>>();
    let mut eval = Evaluator::new(EvalOptions::with_background(bg));
    let mut preds = Vec::new();
    // One video in memory at a time: the paper preset's test split is GBs.
    for name in &names {
        let v = load_labeled(
            &data.join("features").join(view),
            &data.join("groundTruth"),
            mapping,
            std::slice::from_ref(name),
            FeatureLayout::DimByTime,
        )?
        .remove(0);
        let p = crate::predict::predict(&model, &v.features)?;
        eval.add_video(&v.labels, &p.labels)
            .map_err(|e| Error::invalid(format!("video '{}': {e}", v.name)))?;
        preds.push(p.labels);
    }
    Ok((eval.finish(), preds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's runs differ from the options' defaults only in what the
    /// budget sets.
    #[test]
    fn study_runs_are_the_defaults_but_for_the_budget() {
        let b = Budget::for_preset(Preset::Small);
        let (_, t) = b.train(Path::new("d"), "exo", "o".into(), 3);
        assert_eq!(
            t,
            TrainOptions {
                epochs: 20,
                lr: 1e-3,
                seed: 3,
                background: vec!["background".into()],
                width_scale: 0.25,
                ..Default::default()
            }
        );
        let (i, d) = b.distill(
            Path::new("d"),
            "t".into(),
            "o".into(),
            Level::Both,
            Pairing::Random,
            3,
        );
        assert_eq!(i.teacher_view.as_deref(), Some("exo"));
        assert_eq!(
            d,
            DistillOptions {
                level: Level::Both,
                pairing: Pairing::Random,
                epochs: 15,
                lr: 5e-4,
                seed: 3,
                adapter_epochs: Some(15),
                ..Default::default()
            }
        );
    }
}
