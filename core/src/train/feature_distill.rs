//! Feature distillation (the sync paper, Sec. 3 and supplementary A): a
//! residual transformer adapter θ(x) = x + Enc(x) on the frozen student-view
//! features, trained so that θ(ego) matches the exo features of the same
//! frames: L = mean over real frames and channels of (θ(ego) − exo)².
//! The C2F-TCN is untouched; at prediction time it reads θ(features).
//!
//! Unlike the release, the exo target never enters the adapter (no decoder
//! fed with the target), and attention runs over time within each window.
//! Label-free selection: minus the same loss on held-out pairs.

use candle_core::{Device, Tensor};

use super::distill::Pair;
use super::objective::{BatchLoss, Objective, TrainBatch, Validation};
use super::windows::{features_batch, windows, Window};
use crate::error::Result;
use crate::features::Features;
use crate::model::SegModel;

/// The feature-distillation objective over synchronized pairs.
pub struct FeatureDistill<'a> {
    pairs: &'a [Pair],
    val: &'a [Pair],
    windows: Vec<Window>,
    val_windows: Vec<Window>,
    device: Device,
}

impl<'a> FeatureDistill<'a> {
    /// Windows of `window_frames` over the pairs.
    pub fn new(pairs: &'a [Pair], val: &'a [Pair], window_frames: usize, device: Device) -> Self {
        let lens = |ps: &[Pair]| ps.iter().map(|p| p.student.frames).collect::<Vec<_>>();
        FeatureDistill {
            pairs,
            val,
            windows: windows(&lens(pairs), window_frames),
            val_windows: windows(&lens(val), window_frames),
            device,
        }
    }

    /// Student features, mask and teacher features of `batch`: the adapter
    /// needs no minimum length, so windows are padded to the longest only.
    fn tensors(&self, pairs: &[Pair], batch: &[Window]) -> Result<(Tensor, Tensor, Tensor)> {
        let t = batch.iter().map(|w| w.len).max().unwrap_or(1);
        let student: Vec<&Features> = pairs.iter().map(|p| &p.student).collect();
        let teacher: Vec<&Features> = pairs.iter().map(|p| &p.teacher).collect();
        let (x, mask) = features_batch(&student, batch, t, &self.device)?;
        let (target, _) = features_batch(&teacher, batch, t, &self.device)?;
        Ok((x, mask, target))
    }

    fn batch_loss(&self, model: &SegModel, pairs: &[Pair], batch: &[Window]) -> Result<Tensor> {
        let (x, mask, target) = self.tensors(pairs, batch)?;
        let adapted = model.adapt(&x, Some(&mask))?;
        let m = mask.unsqueeze(1)?;
        let d = x.dim(1)? as f64;
        let n = (m.sum_all()? * d)?.clamp(1.0, f64::INFINITY)?;
        Ok((adapted - target)?
            .sqr()?
            .broadcast_mul(&m)?
            .sum_all()?
            .broadcast_div(&n)?)
    }
}

impl Objective for FeatureDistill<'_> {
    fn windows(&self) -> &[Window] {
        &self.windows
    }

    fn loss(&self, model: &SegModel, batch: &[Window]) -> Result<Tensor> {
        self.batch_loss(model, self.pairs, batch)
    }

    fn train_batch(&self, model: &SegModel, batch: &[Window]) -> Result<Option<TrainBatch>> {
        let (x, mask, target) = self.tensors(self.pairs, batch)?;
        Ok(Some(TrainBatch {
            x,
            mask,
            step: model.meta.steps,
            loss: BatchLoss::FeatureDistillation { target },
        }))
    }

    fn validate(&self, model: &SegModel) -> Result<Option<Validation>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let mut total = 0f64;
        for w in &self.val_windows {
            total += self
                .batch_loss(model, self.val, std::slice::from_ref(w))?
                .to_scalar::<f32>()? as f64;
        }
        let loss = total / self.val_windows.len().max(1) as f64;
        Ok(Some(Validation {
            score: -loss,
            details: serde_json::json!({ "val_feature_loss": loss }),
        }))
    }
}
