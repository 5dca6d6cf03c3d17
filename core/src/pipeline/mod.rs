//! The method's pipeline as a library: [`train`] a segmentation model with
//! labels, [`distill`] a teacher to another view from unlabeled synchronized
//! pairs (feature, TAS or both stages), [`predict`] videos with a model and
//! [`evaluate`] predictions; [`study`] holds the budgets of the paper's
//! comparisons on the synthetic benchmark.
//!
//! Every job takes its inputs (paths, which have no default) and its options
//! (plain serde structs whose `Default` is the one place each default is
//! written; the command line, the demo and `bench paper` read them there).
//!
//! Where the steps run is the caller's choice, through an [`Engine`]: core
//! has [`CpuEngine`] (candle's autodiff); a GPU engine lives with the GPU
//! code (the command line's wraps `syncseg-shaders`). Progress goes to a
//! [`Monitor`].
//!
//! Errors name options, not command-line flags: an option appears in
//! backticks as its field name (`` `drop_rate` 1.5: must be in [0, 1) ``), so
//! that a front end can rename it ([`rename_options`]; the command line
//! shows `--drop-rate`).

pub mod distill;
pub mod evaluate;
pub mod predict;
pub mod study;
pub mod train;

use candle_core::Var;

use crate::error::{Error, Result};
use crate::features::Features;
use crate::model::SegModel;
use crate::npy::FeatureLayout;
use crate::predict::Prediction;
use crate::train::adam::AdamConfig;
use crate::train::fit::{EpochRecord, Observer, Silent};
use crate::train::objective::Objective;
use crate::train::step::{AutodiffStepper, Stepper};

pub use distill::{distill, DistillInputs, DistillOptions, DistillReport, Level};
pub use evaluate::{evaluate, EvaluateInputs, EvaluateOptions};
pub use predict::{predict, PredictInputs, PredictOptions, PredictReport};
pub use train::{train, TrainInputs, TrainOptions};

/// Which part of a model a training stage updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trained {
    /// The segmentation network, C2F-TCN or MS-TCN++ (an adapter in front
    /// of it stays frozen).
    Network,
    /// The feature adapter (the network behind it stays frozen).
    Adapter,
}

/// What takes a training stage's steps, and where.
pub struct Trainer {
    /// The step engine.
    pub stepper: Box<dyn Stepper>,
    /// Where it runs: "cpu" or a GPU adapter's description.
    pub device: String,
}

/// A model ready to segment videos on some device.
pub trait Segmenter {
    /// Ensemble probabilities and labels of one video.
    fn predict(&mut self, features: &Features) -> Result<Prediction>;
    /// Where it runs: "cpu" or a GPU adapter's description.
    fn describe(&self) -> String;
}

/// Where a job's training steps and predictions run.
pub trait Engine {
    /// Called once a run's options are checked, before anything is written,
    /// when the run can only train on the CPU (`why`: its objective has no
    /// device kernels). An engine that must not fall back refuses here.
    fn check_cpu_only(&mut self, _why: &str) -> Result<()> {
        Ok(())
    }

    /// A stepper that trains `vars` (the `trained` part of `model`) under
    /// `objective` with Adam `adam`. `cpu_only` is as in
    /// [`Engine::check_cpu_only`].
    fn trainer(
        &mut self,
        model: &SegModel,
        trained: Trained,
        vars: Vec<(String, Var)>,
        objective: &dyn Objective,
        adam: AdamConfig,
        cpu_only: Option<&str>,
    ) -> Result<Trainer>;

    /// `model` ready to segment.
    fn segmenter<'m>(&mut self, model: &'m SegModel) -> Result<Box<dyn Segmenter + 'm>>;
}

/// candle on the CPU: autodiff steps, [`crate::predict::predict`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

impl CpuEngine {
    /// The CPU stepper of `vars` and `objective`'s own variables.
    pub fn trainer(
        mut vars: Vec<(String, Var)>,
        objective: &dyn Objective,
        adam: AdamConfig,
    ) -> Result<Trainer> {
        vars.extend(objective.extra_vars());
        Ok(Trainer {
            stepper: Box::new(AutodiffStepper::new(vars, adam)?),
            device: "cpu".into(),
        })
    }
}

struct CpuSegmenter<'m>(&'m SegModel);

impl Segmenter for CpuSegmenter<'_> {
    fn predict(&mut self, features: &Features) -> Result<Prediction> {
        crate::predict::predict(self.0, features)
    }
    fn describe(&self) -> String {
        "cpu".into()
    }
}

impl Engine for CpuEngine {
    fn trainer(
        &mut self,
        _model: &SegModel,
        _trained: Trained,
        vars: Vec<(String, Var)>,
        objective: &dyn Objective,
        adam: AdamConfig,
        _cpu_only: Option<&str>,
    ) -> Result<Trainer> {
        CpuEngine::trainer(vars, objective, adam)
    }

    fn segmenter<'m>(&mut self, model: &'m SegModel) -> Result<Box<dyn Segmenter + 'm>> {
        Ok(Box::new(CpuSegmenter(model)))
    }
}

/// How a training stage ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageReport {
    /// The stage: `train`, `adapter` or `distill`.
    pub stage: String,
    /// The model directory written.
    pub out: std::path::PathBuf,
    /// Where it trained.
    pub device: String,
    /// The selected epoch and its score (higher is better), if any.
    pub best: Option<(f64, usize)>,
    /// Whether epochs were scored on held-out data (otherwise the selected
    /// epoch is the last).
    pub validated: bool,
    /// Epochs finished, resumed ones included.
    pub epochs_done: usize,
}

/// Receives a job's progress: every epoch and step (as an [`Observer`]),
/// and the start and end of each training stage.
pub trait Monitor: Observer {
    /// A stage starts training on `device`.
    fn stage_started(&mut self, _stage: &str, _device: &str) {}
    /// A stage has saved its model.
    fn stage_finished(&mut self, _report: &StageReport) {}
    /// A line the user should see that is not an error (`note: …`,
    /// `warning: …`).
    fn note(&mut self, _text: &str) {}
    /// `done` of `total` items (videos) of a job without epochs are done.
    fn item_done(&mut self, _done: usize, _total: usize) {}
}

impl Monitor for Silent {}

/// The monitor's epochs and an optional per-epoch JSON log, together.
struct Observers<'a> {
    monitor: &'a mut dyn Monitor,
    log: Option<&'a mut crate::train::log::JsonLog>,
}

impl Observer for Observers<'_> {
    fn step(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        self.monitor.step(epoch, done, total, loss);
        if let Some(log) = self.log.as_deref_mut() {
            log.step(epoch, done, total, loss);
        }
    }
    fn epoch(&mut self, record: &EpochRecord, epochs: usize) {
        self.monitor.epoch(record, epochs);
        if let Some(log) = self.log.as_deref_mut() {
            log.epoch(record, epochs);
        }
    }
    fn check(&mut self) -> Result<()> {
        self.monitor.check()
    }
}

/// The feature files' layout for the `time_major` option.
pub(crate) fn layout(time_major: bool) -> FeatureLayout {
    if time_major {
        FeatureLayout::TimeByDim
    } else {
        FeatureLayout::DimByTime
    }
}

/// Opens the `log_json` file of a stage (`run` tags its records).
pub(crate) fn open_log(
    path: Option<&std::path::Path>,
    run: &str,
) -> Result<Option<crate::train::log::JsonLog>> {
    path.map(|p| crate::train::log::JsonLog::open(p, run))
        .transpose()
        .map_err(|e| Error::invalid(format!("`log_json`: {e}")))
}

/// Closes a stage's log: its first write error, if any.
pub(crate) fn close_log(log: Option<crate::train::log::JsonLog>) -> Result<()> {
    match log {
        Some(log) => log
            .finish()
            .map_err(|e| Error::invalid(format!("`log_json`: {e}"))),
        None => Ok(()),
    }
}

/// Refuses, before training, a C2F-TCN step on the CPU that cannot fit in
/// the memory the system has available (core's estimate).
pub fn check_cpu_step_fits(
    model: &SegModel,
    objective: &dyn Objective,
    batch_size: usize,
) -> Result<()> {
    let windows = objective.windows();
    let frames = windows
        .iter()
        .map(|w| w.len)
        .max()
        .unwrap_or(0)
        .max(crate::model::MIN_FRAMES);
    let parameters: usize = crate::train::trainable_vars(model)
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    crate::train::budget::check_step_fits(
        &model.meta.backbone,
        parameters,
        batch_size.min(windows.len()).max(1),
        frames,
        crate::memory::available_bytes(),
    )
}

/// `text` with every option named in backticks (`` `max_frames` ``)
/// replaced by `rename(name)` where that gives a name (the command line:
/// `--max-frames`); other backticked text is left as it is.
pub fn rename_options(text: &str, rename: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let is_option = !name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        match is_option.then(|| rename(name)).flatten() {
            Some(renamed) => {
                out.push_str(&renamed);
                rest = &after[close + 1..];
            }
            None => {
                out.push('`');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Generator, Preset, SynthConfig};
    use crate::train::distill::Pairing;

    /// train → distill → predict → evaluate through the library, on a
    /// small benchmark, one epoch each; refused options write nothing.
    #[test]
    fn the_pipeline_runs_end_to_end_on_the_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Generator::new(SynthConfig::preset(Preset::Small, 0, Some(8)).unwrap())
            .unwrap()
            .write(&data, |_, _| {})
            .unwrap();
        let mut budget = study::Budget::for_preset(Preset::Small);
        budget.epochs = 1;
        budget.distill_epochs = 1;
        let teacher = dir.path().join("teacher");
        let (inputs, options) = budget.train(&data, "exo", teacher.clone(), 0);
        let report = train(&inputs, &options, &mut CpuEngine, &mut Silent).unwrap();
        assert_eq!((report.epochs_done, report.device.as_str()), (1, "cpu"));
        assert!(report.validated && report.best.is_some());

        let student = dir.path().join("student");
        let (inputs, options) = budget.distill(
            &data,
            teacher.clone(),
            student.clone(),
            Level::Tas,
            Pairing::Synchronized,
            0,
        );
        let report = distill(&inputs, &options, &mut CpuEngine, &mut Silent).unwrap();
        assert_eq!(report.stages.len(), 1);
        assert_eq!(report.stages[0].stage, "distill");
        assert!(report.pairs > 0);

        let refused = dir.path().join("refused");
        let bad = DistillOptions {
            drop_rate: 1.5,
            ..options.clone()
        };
        let inputs_refused = DistillInputs {
            out: refused.clone(),
            ..inputs.clone()
        };
        let err = distill(&inputs_refused, &bad, &mut CpuEngine, &mut Silent)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`drop_rate` 1.5: must be in [0, 1)"), "{err}");
        assert!(!refused.exists(), "nothing written");
        let bad = DistillOptions {
            levels: Some(vec![6]),
            ..options.clone()
        };
        let err = distill(&inputs_refused, &bad, &mut CpuEngine, &mut Silent)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`levels` [6]"), "{err}");
        assert!(!refused.exists(), "nothing written");

        let pred = dir.path().join("pred");
        let report = predict(
            &PredictInputs {
                model: student,
                features: data.join("features/ego"),
                videos: data.join("splits/ego_test.bundle"),
                out: pred.clone(),
            },
            &PredictOptions::default(),
            &crate::batch_job::BatchOptions::default(),
            &mut CpuEngine,
            &mut Silent,
        )
        .unwrap();
        assert!(report.videos > 0);
        let scores = evaluate(
            &EvaluateInputs {
                gt: data.join("groundTruth"),
                pred,
                videos: Some(data.join("splits/ego_test.bundle")),
            },
            &EvaluateOptions {
                background: vec![study::BACKGROUND.into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert!((0.0..=100.0).contains(&scores.mof), "{scores:?}");
    }

    /// Options read from JSON take the defaults for what is left out.
    #[test]
    fn options_deserialize_over_their_defaults() {
        let t: TrainOptions = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(
            t,
            TrainOptions {
                epochs: 3,
                ..Default::default()
            }
        );
        let d: DistillOptions =
            serde_json::from_str(r#"{"level": "both", "pairing": "same-procedure"}"#).unwrap();
        assert_eq!((d.level, d.pairing), (Level::Both, Pairing::SameProcedure));
        assert_eq!(d.levels, DistillOptions::default().levels);
        let p: PredictOptions =
            serde_json::from_str(r#"{"export": "srt", "fps": "30000/1001"}"#).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap()["fps"], "30000/1001");
    }

    #[test]
    fn options_are_renamed_and_other_quotes_kept() {
        let flag = |n: &str| (n != "classes").then(|| format!("--{}", n.replace('_', "-")));
        assert_eq!(
            rename_options(
                "`max_frames`, `epochs` and `batch_size` must be positive",
                flag
            ),
            "--max-frames, --epochs and --batch-size must be positive"
        );
        assert_eq!(
            rename_options("edit `classes`, or save `t.contiguous()`; `x", flag),
            "edit `classes`, or save `t.contiguous()`; `x"
        );
        assert_eq!(
            rename_options("`drop_rate` 0.5: `", flag),
            "--drop-rate 0.5: `"
        );
    }
}
