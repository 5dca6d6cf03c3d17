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
//! OUT/last/objective.safetensors          an objective's own variables, if any
//! OUT/last/progress.json                  epochs done, best score, history
//! OUT/last/COMPLETE                       the marker of a whole checkpoint
//! OUT/.syncseg.lock                       the writer's lock (its pid)
//! ```
//!
//! The loop runs in a [`RunDir`], which keeps a second writer out of `OUT`
//! and commits `last/` as one unit: an interrupted run (kill -9 included)
//! leaves `last/` at the end of some finished epoch, with that epoch's
//! weights, optimiser state and progress together. Batch order depends only
//! on the seed and the epoch number, so a resumed run is the run that would
//! have happened without the interruption, bit for bit on the CPU.

use std::path::Path;

use candle_core::{Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::adam::AdamConfig;
use super::objective::{Objective, Validation};
use super::run_dir::{failpoint, RunDir};
use super::step::{AutodiffStepper, Stepper};
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
    /// Before each step: an error stops the run there, with that error
    /// (a user's interrupt). `last/` then holds the last finished epoch, so
    /// the run resumes from it.
    fn check(&mut self) -> Result<()> {
        Ok(())
    }
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
    out: &RunDir,
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
    out: &RunDir,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<Progress> {
    if objective.windows().is_empty() {
        return Err(Error::invalid("nothing to train on: no training windows"));
    }
    let extra = objective.extra_vars();
    let mut progress = Progress::default();
    if resume {
        let last = out.committed_last()?.ok_or_else(|| {
            Error::invalid(format!(
                "`resume`: {} has no interrupted run to resume (no last/ folder): run without `resume`",
                out.path().display()
            ))
        })?;
        progress = read_progress(&last, cfg.epochs)?;
        let saved = SegModel::load(&last, &model.device())?;
        check_same_shape(model, &saved, &last)?;
        model.copy_weights_from(&saved, &last)?;
        let opt_path = last.join("optimizer.safetensors");
        let state = load_state_file(&opt_path, &model.device(), "optimizer state")?;
        stepper
            .load_state(model, &state)
            .map_err(|e| Error::format(&opt_path, format!("{}{RESUME_HINT}", bare(&e))))?;
        if !extra.is_empty() {
            let path = last.join(OBJECTIVE_FILE);
            let saved = load_state_file(&path, &model.device(), "objective state")?;
            for (name, var) in &extra {
                let t = saved.get(name).ok_or_else(|| {
                    Error::format(&path, format!("no tensor '{name}'{RESUME_HINT}"))
                })?;
                if t.shape() != var.shape() {
                    return Err(Error::format(
                        &path,
                        format!(
                            "tensor '{name}' has shape {:?}, this run's is {:?}{RESUME_HINT}",
                            t.dims(),
                            var.dims()
                        ),
                    ));
                }
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
            observer.check()?;
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
            model.save(out.path())?;
            failpoint("epoch:best-saved");
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
        out.commit_last(|dir| save_last(model, stepper, &extra, &progress, dir))?;
        observer.epoch(&record, cfg.epochs);
    }
    Ok(progress)
}

/// Writes one generation of `last/` into `dir` (an empty folder that
/// [`RunDir::commit_last`] then commits).
fn save_last(
    model: &SegModel,
    stepper: &dyn Stepper,
    extra: &[(String, Var)],
    progress: &Progress,
    dir: &Path,
) -> Result<()> {
    model.save(dir)?;
    failpoint("last:partial");
    let opt_path = dir.join("optimizer.safetensors");
    candle_core::safetensors::save(&stepper.state()?, &opt_path)
        .map_err(|e| Error::format(&opt_path, format!("cannot write optimizer state: {e}")))?;
    if !extra.is_empty() {
        let state: std::collections::HashMap<String, Tensor> = extra
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let path = dir.join(OBJECTIVE_FILE);
        candle_core::safetensors::save(&state, &path)
            .map_err(|e| Error::format(&path, format!("cannot write objective state: {e}")))?;
    }
    let json = serde_json::to_string_pretty(progress).expect("progress serialises");
    crate::fsio::write_bytes_atomic(dir.join("progress.json"), json.as_bytes())
}

/// What to do about a `last/` that cannot be resumed.
const RESUME_HINT: &str =
    ": this checkpoint cannot be resumed; remove the last/ folder to train from scratch";

/// A candle error's message without the "tensor error: " prefix.
fn bare(e: &Error) -> String {
    match e {
        Error::Candle(c) => c.to_string(),
        other => other.to_string(),
    }
}

/// Reads and checks `last/progress.json` for a run of `epochs` epochs.
fn read_progress(last: &Path, epochs: usize) -> Result<Progress> {
    let path = last.join("progress.json");
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            Error::format(
                &path,
                format!(
                    "not UTF-8 text (invalid byte at offset {}){RESUME_HINT}",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::format(
                &path,
                format!("missing, so the checkpoint is incomplete{RESUME_HINT}"),
            ))
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let progress: Progress = serde_json::from_str(&text)
        .map_err(|e| Error::format(&path, format!("unreadable progress ({e}){RESUME_HINT}")))?;
    if progress.history.len() != progress.epochs_done
        || progress
            .best
            .is_some_and(|(_, e)| e == 0 || e > progress.epochs_done)
    {
        return Err(Error::format(
            &path,
            format!(
                "inconsistent progress: epochs_done is {} with {} epoch records and best epoch {:?}{RESUME_HINT}",
                progress.epochs_done,
                progress.history.len(),
                progress.best.map(|(_, e)| e)
            ),
        ));
    }
    if progress.epochs_done > epochs {
        return Err(Error::format(
            &path,
            format!(
                "{} epochs are done, more than `epochs` {epochs}: resume with `epochs` {} or more",
                progress.epochs_done, progress.epochs_done
            ),
        ));
    }
    Ok(progress)
}

/// Refuses a checkpoint whose model is not shaped as the one being trained.
fn check_same_shape(model: &SegModel, saved: &SegModel, last: &Path) -> Result<()> {
    let (mine, theirs) = (&model.meta, &saved.meta);
    let (a, b) = (&theirs.backbone, &mine.backbone);
    let what = if a.kind() != b.kind() {
        format!("is a {}, this run's model a {}", a.kind(), b.kind())
    } else if a.input_dim() != b.input_dim() {
        format!(
            "takes {}-dimensional features, this run's model {}",
            a.input_dim(),
            b.input_dim()
        )
    } else if a.num_classes() != b.num_classes() {
        format!(
            "has {} classes, this run's model {}",
            a.num_classes(),
            b.num_classes()
        )
    } else if a != b || theirs.adapter != mine.adapter {
        "has other layer widths or another adapter than this run's model".to_string()
    } else {
        return Ok(());
    };
    Err(Error::format(
        last.join(crate::model::checkpoint::META_FILE),
        format!("the checkpoint's model {what}{RESUME_HINT}, or resume with the run's own inputs"),
    ))
}

/// Loads a safetensors file of state, naming it (and `what`) on failure.
fn load_state_file(
    path: &Path,
    device: &candle_core::Device,
    what: &str,
) -> Result<std::collections::HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|e| match e {
        candle_core::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => Error::format(
            path,
            format!("missing, so the checkpoint has no {what}{RESUME_HINT}"),
        ),
        other => Error::format(path, format!("unreadable {what} ({other}){RESUME_HINT}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_with_progress(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let last = dir.path().join("last");
        std::fs::create_dir(&last).unwrap();
        std::fs::write(last.join("progress.json"), bytes).unwrap();
        (dir, last)
    }

    fn progress_json(epochs_done: &str, records: usize) -> Vec<u8> {
        let record = r#"{"epoch":1,"train_loss":1.0,"val":null,"best":true}"#;
        let history = vec![record; records].join(",");
        format!(r#"{{"epochs_done":{epochs_done},"best":[1.0,1],"history":[{history}]}}"#)
            .into_bytes()
    }

    /// One line naming progress.json, what is wrong and what to do.
    fn refused(bytes: &[u8], epochs: usize) -> String {
        let (_dir, last) = last_with_progress(bytes);
        let err = read_progress(&last, epochs).unwrap_err().to_string();
        assert!(
            err.contains(&last.join("progress.json").display().to_string()) && !err.contains('\n'),
            "{err}"
        );
        err
    }

    #[test]
    fn progress_is_read_back() {
        let (_dir, last) = last_with_progress(&progress_json("2", 2));
        let p = read_progress(&last, 2).unwrap();
        assert_eq!(
            (p.epochs_done, p.history.len(), p.best),
            (2, 2, Some((1.0, 1)))
        );
    }

    #[test]
    fn unusable_progress_is_named_with_what_is_wrong() {
        let err = refused(b"{\"epochs_done\": 1\xff}", 3);
        assert!(
            err.contains("not UTF-8") && err.contains("remove the last/"),
            "{err}"
        );
        let err = refused(b"{", 3);
        assert!(err.contains("unreadable progress"), "{err}");
        let err = refused(&progress_json("3", 3), 2);
        assert!(
            err.contains("3 epochs are done, more than `epochs` 2") && err.contains("`epochs` 3"),
            "{err}"
        );
        // 2^64 − 1 epochs: refused, no overflow in the epoch loop.
        let err = refused(&progress_json("18446744073709551615", 1), 2);
        assert!(err.contains("inconsistent progress"), "{err}");
        let err = refused(&progress_json("2", 1), 2);
        assert!(
            err.contains("epochs_done is 2 with 1 epoch records"),
            "{err}"
        );
    }

    #[test]
    fn missing_progress_is_an_incomplete_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_progress(dir.path(), 2).unwrap_err().to_string();
        assert!(err.contains("progress.json: missing"), "{err}");
    }

    #[test]
    fn corrupt_state_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        std::fs::write(&path, b"\x10\0\0\0\0\0\0\0{not json}").unwrap();
        let err = load_state_file(&path, &candle_core::Device::Cpu, "optimizer state")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&path.display().to_string())
                && err.contains("unreadable optimizer state"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = load_state_file(&path, &candle_core::Device::Cpu, "optimizer state")
            .unwrap_err()
            .to_string();
        assert!(err.contains("optimizer.safetensors: missing"), "{err}");
    }
}
