//! Supervised training of a C2F-TCN (the exo teacher and the oracles).
//!
//! Loss (C2F-TCN / sync release): cross-entropy on `log(ensemble + 1e-10)`
//! over frames that are real and not labelled with an ignored (background)
//! class, plus λ · T-MSE (τ = 4) over real frames. Model selection uses the
//! validation videos of the same view — never a test split — scored by
//! F1@10 + F1@25 + F1@50 + Edit + MoF (the Assembly101 baseline's criterion).

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::losses::{ensemble_cross_entropy, truncated_mse};
use super::objective::{BatchLoss, Objective, TrainBatch, Validation};
use super::windows::{features_batch, labels_batch, padded_len, windows, Window};
use crate::error::Result;
use crate::features::Features;
use crate::metrics::{EvalOptions, Evaluator, Scores};
use crate::model::{Mode, SegModel};

/// A labelled video in memory.
#[derive(Debug, Clone)]
pub struct LabeledVideo {
    /// Video name.
    pub name: String,
    /// Features `[D, T]`.
    pub features: Features,
    /// Label id per frame, T of them.
    pub labels: Vec<u32>,
}

/// Loss settings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SupervisedLoss {
    /// Weight λ of the smoothing loss.
    pub smoothing: f64,
    /// Truncation τ of the smoothing loss.
    pub tau: f64,
}

impl Default for SupervisedLoss {
    fn default() -> Self {
        SupervisedLoss {
            smoothing: 0.15,
            tau: 4.0,
        }
    }
}

/// The supervised objective over in-memory videos.
pub struct Supervised<'a> {
    train: &'a [LabeledVideo],
    val: &'a [LabeledVideo],
    windows: Vec<Window>,
    ignore: Vec<u32>,
    loss: SupervisedLoss,
    device: Device,
}

impl<'a> Supervised<'a> {
    /// Windows of `window_frames` over `train`; frames labelled with an
    /// `ignore` id count in no cross-entropy.
    pub fn new(
        train: &'a [LabeledVideo],
        val: &'a [LabeledVideo],
        window_frames: usize,
        ignore: Vec<u32>,
        loss: SupervisedLoss,
        device: Device,
    ) -> Self {
        let lengths: Vec<usize> = train.iter().map(|v| v.labels.len()).collect();
        Supervised {
            train,
            val,
            windows: windows(&lengths, window_frames),
            ignore,
            loss,
            device,
        }
    }
}

impl Supervised<'_> {
    /// Features `[B, D, T]`, real-frame mask `[B, T]`, labels `[B, T]` and
    /// cross-entropy weights `[B, T]` of `batch`.
    fn tensors(&self, batch: &[Window]) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
        let t = padded_len(batch);
        let feats: Vec<&Features> = self.train.iter().map(|v| &v.features).collect();
        let labels: Vec<&[u32]> = self.train.iter().map(|v| v.labels.as_slice()).collect();
        let (x, mask) = features_batch(&feats, batch, t, &self.device)?;
        let (y, weight) = labels_batch(&labels, batch, t, &self.ignore, &self.device)?;
        Ok((x, mask, y, weight))
    }
}

impl Objective for Supervised<'_> {
    fn windows(&self) -> &[Window] {
        &self.windows
    }

    fn loss(&self, model: &SegModel, batch: &[Window]) -> Result<Tensor> {
        let (x, mask, y, weight) = self.tensors(batch)?;
        let mode = Mode::Train { mask: Some(&mask) };
        let out = model.net.forward(&x, mode, model.meta.steps)?;
        // The ensemble's (C2F-TCN), or every stage's summed (MS-TCN++).
        let mut total: Option<Tensor> = None;
        for probs in model.net.loss_probabilities(&out)? {
            let ce = ensemble_cross_entropy(&probs, &y, &weight)?;
            let sm = truncated_mse(&probs, &mask, self.loss.tau)?;
            let term = (ce + (sm * self.loss.smoothing)?)?;
            total = Some(match total {
                Some(t) => (t + term)?,
                None => term,
            });
        }
        total.ok_or_else(|| crate::Error::invalid("the network has no output"))
    }

    fn train_batch(&self, model: &SegModel, batch: &[Window]) -> Result<Option<TrainBatch>> {
        let (x, mask, labels, weight) = self.tensors(batch)?;
        Ok(Some(TrainBatch {
            x,
            mask,
            step: model.meta.steps,
            loss: BatchLoss::Segmentation {
                labels,
                weight,
                smoothing: self.loss.smoothing,
                tau: self.loss.tau,
            },
        }))
    }

    fn validate(&self, model: &SegModel) -> Result<Option<Validation>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let scores = evaluate_model(model, self.val, &self.ignore)?;
        Ok(Some(Validation {
            score: selection_score(&scores),
            details: serde_json::to_value(scores).expect("scores serialise"),
        }))
    }
}

/// F1@10 + F1@25 + F1@50 + Edit + MoF.
pub fn selection_score(s: &Scores) -> f64 {
    s.f1_10 + s.f1_25 + s.f1_50 + s.edit + s.mof
}

/// Predicts every video and scores it with `background` removed from segments.
pub fn evaluate_model(
    model: &SegModel,
    videos: &[LabeledVideo],
    background: &[u32],
) -> Result<Scores> {
    let mut eval = Evaluator::new(EvalOptions::with_background(background.to_vec()));
    for v in videos {
        let pred = crate::predict::predict(model, &v.features)?;
        eval.add_video(&v.labels, &pred.labels)?;
    }
    Ok(eval.finish())
}
