//! One optimisation step, separated from the epoch loop so that the loop
//! ([`super::fit::fit_with`]) drives either candle's autodiff on the CPU or
//! an engine that keeps the model on a GPU and computes gradients with its
//! own backward kernels (`syncseg-shaders`' trainer).
//!
//! An engine without autodiff cannot run an arbitrary loss closure, so an
//! objective also *describes* its batch ([`super::objective::TrainBatch`]): the inputs and
//! which loss to minimise over them. Objectives whose loss has no such
//! description (the UDA and alignment baselines) train on the CPU.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use super::adam::{Adam, AdamConfig};
use super::objective::Objective;
use super::windows::Window;
use crate::error::Result;
use crate::model::SegModel;

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
