//! The epoch loop shared by supervised training and distillation:
//! shuffled batches, Adam, per-epoch validation, best/last checkpoints,
//! early stopping and exact resumption.
//!
//! Output directory layout:
//!
//! ```text
//! OUT/model.json, OUT/model.safetensors   the best epoch so far (what `predict` reads)
//! OUT/last/model.*                        the last finished epoch
//! OUT/last/optimizer.safetensors          Adam's moments
//! OUT/last/progress.json                  epochs done, best score, history
//! ```
//!
//! Every file is replaced atomically, so an interrupted run can be resumed
//! from `last/` and never leaves a half-written model. Batch order depends
//! only on the seed and the epoch number, so a resumed run is the run that
//! would have happened without the interruption.

use std::path::Path;

use candle_core::{Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::adam::AdamConfig;
use super::step::{AutodiffStepper, Stepper, TrainBatch};
use super::windows::Window;
use crate::error::{Error, Result};
use crate::model::SegModel;

/// Settings of the loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Optimiser settings.
    pub adam: AdamConfig,
    /// Seed of the batch order.
    pub seed: u64,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
}

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

/// Where [`fit`] keeps an objective's own variables between resumptions.
const OBJECTIVE_FILE: &str = "objective.safetensors";

/// One epoch's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation, if any.
    pub val: Option<Validation>,
    /// Whether this epoch became the best.
    pub best: bool,
    /// Optimisation steps in the epoch.
    #[serde(default)]
    pub steps: usize,
    /// Wall time of the epoch: steps, validation and checkpoints.
    #[serde(default)]
    pub seconds: f64,
    /// The process's memory after the epoch (where the system reports it).
    #[serde(default)]
    pub memory: Option<crate::memory::MemoryUsage>,
    /// Device memory held by a GPU engine after the epoch.
    #[serde(default)]
    pub device_bytes: Option<u64>,
}

/// Progress saved in `last/progress.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Best score so far and its epoch.
    pub best: Option<(f64, usize)>,
    /// Every epoch's record.
    pub history: Vec<EpochRecord>,
}

/// Receives progress (the CLI draws bars with it).
pub trait Observer {
    /// After each optimisation step.
    fn step(&mut self, _epoch: usize, _done: usize, _total: usize, _loss: f32) {}
    /// After each epoch.
    fn epoch(&mut self, _record: &EpochRecord, _epochs: usize) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Trains `vars` of `model` on `objective` with candle's autodiff; see the
/// module doc for `out`. With `resume`, continues from `out/last`.
pub fn fit(
    model: &mut SegModel,
    vars: Vec<(String, Var)>,
    objective: &dyn Objective,
    cfg: &FitConfig,
    out: &Path,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<Progress> {
    let mut vars = vars;
    vars.extend(objective.extra_vars());
    let mut stepper = AutodiffStepper::new(vars, cfg.adam)?;
    fit_with(model, &mut stepper, objective, cfg, out, resume, observer)
}

/// [`fit`] with the steps taken by `stepper` (which owns the optimiser).
pub fn fit_with(
    model: &mut SegModel,
    stepper: &mut dyn Stepper,
    objective: &dyn Objective,
    cfg: &FitConfig,
    out: &Path,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<Progress> {
    if objective.windows().is_empty() {
        return Err(Error::invalid("nothing to train on: no training windows"));
    }
    let last = out.join("last");
    let extra = objective.extra_vars();
    let mut progress = Progress::default();
    if resume {
        let progress_path = last.join("progress.json");
        let text = crate::fsio::read_text(&progress_path).map_err(|_| {
            Error::invalid(format!(
                "--resume: {} has no interrupted run to resume",
                out.display()
            ))
        })?;
        progress = serde_json::from_str(&text)
            .map_err(|e| Error::format(&progress_path, format!("unreadable progress: {e}")))?;
        let saved = SegModel::load(&last, &model.device())?;
        model.copy_weights_from(&saved, &last)?;
        let opt_path = last.join("optimizer.safetensors");
        let state = candle_core::safetensors::load(&opt_path, &model.device())
            .map_err(|e| Error::format(&opt_path, format!("unreadable optimizer state: {e}")))?;
        stepper.load_state(model, &state)?;
        if !extra.is_empty() {
            let path = last.join(OBJECTIVE_FILE);
            let saved = candle_core::safetensors::load(&path, &model.device())
                .map_err(|e| Error::format(&path, format!("unreadable objective state: {e}")))?;
            for (name, var) in &extra {
                let t = saved
                    .get(name)
                    .ok_or_else(|| Error::format(&path, format!("no tensor '{name}'")))?;
                var.set(t)?;
            }
        }
    }

    let mut since_best = progress
        .best
        .map(|(_, e)| progress.epochs_done.saturating_sub(e))
        .unwrap_or(0);
    for epoch in progress.epochs_done + 1..=cfg.epochs {
        if cfg.patience.is_some_and(|p| since_best >= p) {
            break;
        }
        let mut order: Vec<Window> = objective.windows().to_vec();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_0000);
        rng.set_stream(epoch as u64);
        order.shuffle(&mut rng);
        let batches: Vec<&[Window]> = order.chunks(cfg.batch_size.max(1)).collect();
        let total_steps = (batches.len() * cfg.epochs) as u64;
        let first_step = ((epoch - 1) * batches.len()) as u64;
        let started = std::time::Instant::now();
        let mut total = 0f64;
        for (i, batch) in batches.iter().enumerate() {
            objective.begin_step(first_step + i as u64, total_steps);
            let value = stepper.step(model, objective, batch)?;
            if !value.is_finite() {
                return Err(Error::invalid(format!(
                    "the training loss became {value} at epoch {epoch}, step {}: lower the learning rate",
                    i + 1
                )));
            }
            model.meta.steps += 1;
            total += value as f64;
            observer.step(epoch, i + 1, batches.len(), value);
        }
        stepper.sync(model)?;
        let val = objective.validate(model)?;
        // Without validation data the last epoch is the one kept.
        let score = val.as_ref().map(|v| v.score).unwrap_or(epoch as f64);
        let best = progress.best.is_none_or(|(s, _)| score > s);
        let mut record = EpochRecord {
            epoch,
            train_loss: total / batches.len() as f64,
            val,
            best,
            steps: batches.len(),
            seconds: 0.0,
            memory: None,
            device_bytes: None,
        };
        if best {
            progress.best = Some((score, epoch));
            since_best = 0;
            model.meta.provenance["selected_epoch"] = serde_json::json!(epoch);
            model.meta.provenance["selection_score"] = serde_json::json!(score);
            model.save(out)?;
        } else {
            since_best += 1;
        }
        // Steps, validation and the best checkpoint (not `last/`, written
        // below with this record in it).
        record.seconds = started.elapsed().as_secs_f64();
        record.memory = crate::memory::usage();
        record.device_bytes = stepper.device_memory_bytes();
        progress.epochs_done = epoch;
        progress.history.push(record.clone());
        // The objective's state first: progress.json, written last by
        // save_last, is the commit point a resume trusts.
        if !extra.is_empty() {
            let state: std::collections::HashMap<String, Tensor> = extra
                .iter()
                .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
                .collect();
            std::fs::create_dir_all(&last).map_err(|e| Error::io(&last, e))?;
            let path = last.join(OBJECTIVE_FILE);
            let tmp = last.join(".objective.safetensors.tmp");
            candle_core::safetensors::save(&state, &tmp)
                .map_err(|e| Error::format(&path, format!("cannot write objective state: {e}")))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        save_last(model, stepper, &progress, &last)?;
        observer.epoch(&record, cfg.epochs);
    }
    Ok(progress)
}

fn save_last(
    model: &SegModel,
    stepper: &dyn Stepper,
    progress: &Progress,
    last: &Path,
) -> Result<()> {
    model.save(last)?;
    let opt_path = last.join("optimizer.safetensors");
    let tmp = last.join(".optimizer.safetensors.tmp");
    candle_core::safetensors::save(&stepper.state()?, &tmp)
        .map_err(|e| Error::format(&opt_path, format!("cannot write optimizer state: {e}")))?;
    std::fs::rename(&tmp, &opt_path).map_err(|e| Error::io(&opt_path, e))?;
    let json = serde_json::to_string_pretty(progress).expect("progress serialises");
    crate::fsio::write_bytes_atomic(last.join("progress.json"), json.as_bytes())
}
