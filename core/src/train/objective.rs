//! What training optimises: an [`Objective`] names its windows, computes a
//! batch's loss with candle's autodiff, and — for engines without autodiff
//! (the device trainer) — describes the batch as inputs and one of the
//! losses they implement ([`TrainBatch`], [`BatchLoss`]).
//!
//! Its own module so that the epoch loop ([`super::fit`]) and the steppers
//! ([`super::step`]) both depend on it, and not on each other.

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use super::windows::Window;
use crate::error::Result;
use crate::model::SegModel;

/// What an objective reports after validation: higher `score` is better.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    /// Selection score (higher is better).
    pub score: f64,
    /// Details to log and keep in the history (metrics, losses).
    pub details: serde_json::Value,
}

/// A training objective: which windows exist, and the loss of a batch.
pub trait Objective {
    /// Every training window (the loop shuffles and batches them).
    fn windows(&self) -> &[Window];
    /// The loss of one batch, with the model in train mode.
    fn loss(&self, model: &SegModel, batch: &[Window]) -> Result<Tensor>;
    /// The batch described for an engine without autodiff (inputs and a
    /// loss it implements), or `None` when only [`Objective::loss`] can
    /// express this objective. `model` is the one being trained (for parts
    /// of it that stay frozen, such as an adapter in front of a distilled
    /// network).
    fn train_batch(&self, _model: &SegModel, _batch: &[Window]) -> Result<Option<TrainBatch>> {
        Ok(None)
    }
    /// Scores the current model on held-out data, if the objective has any.
    fn validate(&self, model: &SegModel) -> Result<Option<Validation>>;
    /// Called before each step's `loss` with the run's global step (0-based,
    /// counted across resumptions) and the run's total number of steps, for
    /// schedules and for objectives that draw extra batches.
    fn begin_step(&self, _step: u64, _total_steps: u64) {}
    /// Trainable variables the objective owns besides the model's (a domain
    /// classifier): optimised with the model, kept in `last/` for resuming,
    /// not part of the saved model.
    fn extra_vars(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
}

/// One batch as an engine without autodiff needs it.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    /// Features `[B, D, T]`, zero after each window's end.
    pub x: Tensor,
    /// Real frames `[B, T]` (1) and padding (0).
    pub mask: Tensor,
    /// The model's step count, which seeds the step's dropout masks.
    pub step: u64,
    /// What to minimise.
    pub loss: BatchLoss,
}

/// The losses a device engine implements.
#[derive(Debug, Clone)]
pub enum BatchLoss {
    /// Core's supervised loss on the heads' ensemble (C2F-TCN; MS-TCN++:
    /// on every stage, summed): cross-entropy over frames of non-zero
    /// `weight` plus `smoothing` · truncated MSE (τ).
    Segmentation {
        /// Class per frame `[B, T]` (u32).
        labels: Tensor,
        /// Cross-entropy weight per frame `[B, T]` (0 on padding and ignored classes).
        weight: Tensor,
        /// λ of the smoothing loss.
        smoothing: f64,
        /// τ of the smoothing loss.
        tau: f64,
    },
    /// Distillation of the output: Σ over `levels` of the masked MSE
    /// between the student's outputs' logits and the teacher's
    /// ([`super::losses::level_mse`]; C2F-TCN heads or MS-TCN++ stages).
    OutputDistillation {
        /// The teacher's output logits, one `[B, K, Tₗ]` per level (C2F-TCN:
        /// Tₗ = T >> l, l = 0 … 5; MS-TCN++: T for every stage; levels not
        /// distilled may be empty tensors).
        teacher: Vec<Tensor>,
        /// Distilled levels (C2F-TCN: 0 = full resolution … 5 = T/32;
        /// MS-TCN++: stage indices, 0 = prediction generation).
        levels: Vec<usize>,
    },
    /// Distillation of features through the model's adapter: the masked
    /// MSE between θ(`x`) and `target` (core's `FeatureDistill`).
    FeatureDistillation {
        /// The teacher view's features `[B, D, T]`.
        target: Tensor,
    },
}
