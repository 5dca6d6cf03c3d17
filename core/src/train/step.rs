//! One optimisation step, separated from the epoch loop so that the loop
//! ([`super::fit::fit_with`]) drives either candle's autodiff on the CPU or
//! an engine that keeps the model on a GPU and computes gradients with its
//! own backward kernels (`syncseg-shaders`' trainer).
//!
//! An engine without autodiff cannot run an arbitrary loss closure, so an
//! objective also *describes* its batch ([`TrainBatch`]): the inputs and
//! which loss to minimise over them. Objectives whose loss has no such
//! description (the UDA and alignment baselines) train on the CPU.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use super::adam::{Adam, AdamConfig};
use super::fit::Objective;
use super::windows::Window;
use crate::error::Result;
use crate::model::SegModel;

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

/// Takes optimisation steps of a model's variables.
pub trait Stepper {
    /// Computes the loss of `batch` under `objective`, updates the
    /// variables, and returns the loss.
    fn step(
        &mut self,
        model: &mut SegModel,
        objective: &dyn Objective,
        batch: &[Window],
    ) -> Result<f32>;
    /// Makes `model`'s variables (and BatchNorm statistics) current, before
    /// validation and checkpoints.
    fn sync(&mut self, model: &mut SegModel) -> Result<()>;
    /// The optimiser's state in [`Adam::state`]'s format (the format of
    /// `last/optimizer.safetensors` whichever engine wrote it).
    fn state(&self) -> Result<HashMap<String, Tensor>>;
    /// Restores [`Stepper::state`] after `model`'s weights were reloaded.
    fn load_state(&mut self, model: &SegModel, state: &HashMap<String, Tensor>) -> Result<()>;
    /// Bytes of device memory the engine holds now, for engines that keep
    /// the model on a device (logged per epoch; `None` on the CPU).
    fn device_memory_bytes(&self) -> Option<u64> {
        None
    }
}

/// candle's autodiff and core's Adam, on the model's own device.
pub struct AutodiffStepper {
    adam: Adam,
}

impl AutodiffStepper {
    /// An optimiser over `vars`.
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        Ok(AutodiffStepper {
            adam: Adam::new(vars, cfg)?,
        })
    }
}

impl Stepper for AutodiffStepper {
    fn step(
        &mut self,
        model: &mut SegModel,
        objective: &dyn Objective,
        batch: &[Window],
    ) -> Result<f32> {
        let loss = objective.loss(model, batch)?;
        let value = loss.to_scalar::<f32>()?;
        // A non-finite loss is reported by the loop before anything moves.
        if value.is_finite() {
            self.adam.step(&loss.backward()?)?;
        }
        Ok(value)
    }

    fn sync(&mut self, _model: &mut SegModel) -> Result<()> {
        Ok(())
    }

    fn state(&self) -> Result<HashMap<String, Tensor>> {
        Ok(self.adam.state()?)
    }

    fn load_state(&mut self, _model: &SegModel, state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(self.adam.load_state(state)?)
    }
}
