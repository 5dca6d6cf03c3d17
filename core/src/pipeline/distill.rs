//! Adapting a teacher to the student view from unlabeled synchronized pairs:
//! feature distillation (an input adapter), TAS distillation (the heads), or
//! both in two stages; and the paper's baselines in place of TAS
//! distillation's MSE. Reads no label file of the student view.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::{close_log, layout, open_log, Engine, Monitor, Observers, StageReport, Trained};
use crate::dataset::MultiViewDataset;
use crate::error::{Error, Result};
use crate::features::Features;
use crate::labels::{read_bundle, Mapping};
use crate::model::{AdapterConfig, SegModel};
use crate::npy::FeatureLayout;
use crate::train::adam::AdamConfig;
use crate::train::data::load_labeled;
use crate::train::distill::{
    make_pairs, read_procedures, AdaptLoss, Distill, LossConfig, Pair, PairOptions, Pairing,
};
use crate::train::feature_distill::FeatureDistill;
use crate::train::fit::{fit_with, FitConfig};
use crate::train::objective::Objective;
use crate::train::run_dir::RunDir;
use crate::train::supervised::{LabeledVideo, Supervised, SupervisedLoss};
use crate::video_features::read_video_features;

/// Which part of the model is distilled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The C2F-TCN's multi-resolution heads.
    #[default]
    Tas,
    /// A residual transformer adapter on the input features.
    Feature,
    /// The adapter, then the heads through it.
    Both,
}

impl Level {
    /// The level's name (`tas`, `feature`, `both`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Tas => "tas",
            Level::Feature => "feature",
            Level::Both => "both",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Level {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tas" => Ok(Level::Tas),
            "feature" => Ok(Level::Feature),
            "both" => Ok(Level::Both),
            other => Err(Error::invalid(format!(
                "unknown level '{other}': expected tas, feature or both"
            ))),
        }
    }
}

/// What a distillation run reads and where it writes.
///
/// The pairs come from two feature folders whose frame `t` shows the same
/// instant (`teacher_features`, `student_features`), or from a multi-view
/// dataset root aligned by timestamps (`dataset` with `teacher_view` and
/// `student_view`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillInputs {
    /// The teacher model directory (trained on the teacher view).
    pub teacher: PathBuf,
    /// The teacher view's features: a folder of `<video>.npy` or an LMDB store.
    pub teacher_features: Option<PathBuf>,
    /// The student view's features (same video names), as `teacher_features`.
    pub student_features: Option<PathBuf>,
    /// A multi-view dataset root (`features/<view>/`, optional `views.json`).
    pub dataset: Option<PathBuf>,
    /// The teacher's view in `dataset`.
    pub teacher_view: Option<String>,
    /// The student's view in `dataset`.
    pub student_view: Option<String>,
    /// The unlabeled synchronized pairs (a split bundle).
    pub videos: PathBuf,
    /// Held-out pairs: the best epoch is the one with the lowest
    /// distillation loss on them.
    pub val_videos: Option<PathBuf>,
    /// `video procedure` lines, for same-procedure pairing (default:
    /// `dataset`'s procedures.txt).
    pub procedures: Option<PathBuf>,
    /// Labelled teacher-view training videos (a split bundle) for the task
    /// loss of the UDA losses.
    pub task_videos: Option<PathBuf>,
    /// Labelled teacher-view validation videos of the UDA losses.
    pub task_val_videos: Option<PathBuf>,
    /// Folder of `<video>.txt` labels for `task_videos` (default:
    /// `dataset`'s groundTruth).
    pub task_labels: Option<PathBuf>,
    /// The model directory written.
    pub out: PathBuf,
}

/// How to distill. `Default` is the method (synchronized pairs, MSE on all
/// six heads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillOptions {
    /// What to distill.
    pub level: Level,
    /// Outputs to distill: the C2F-TCN's heads 0 = full resolution (y),
    /// 1 = T/2 (y5) … 5 = T/32 (y1); MS-TCN++'s stages 0 (prediction
    /// generation) … R. `None`: every output of the teacher.
    pub levels: Option<Vec<usize>>,
    /// Which teacher-view video goes with each student-view video.
    pub pairing: Pairing,
    /// Drop this fraction of frames independently in each view.
    pub drop_rate: f64,
    /// Use this fraction of the pairs, drawn at random.
    pub pairs_fraction: f64,
    /// The adaptation loss of TAS distillation.
    pub loss: AdaptLoss,
    /// Weight of a UDA loss next to the task loss.
    pub loss_weight: f64,
    /// Smoothing γ of the soft-DTW loss.
    pub sdtw_gamma: f64,
    /// Temperature of the TCC loss.
    pub tcc_temperature: f64,
    /// Epochs of TAS distillation (and of the adapter, unless `adapter_epochs`).
    pub epochs: usize,
    /// Adam learning rate of TAS distillation.
    pub lr: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Windows per batch.
    pub batch_size: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    pub time_major: bool,
    /// Adapter encoder layers (the paper: 12).
    pub adapter_layers: usize,
    /// Adapter attention heads (the paper: 16).
    pub adapter_heads: usize,
    /// Adapter width (the paper: 1024).
    pub adapter_width: usize,
    /// Adapter feed-forward width.
    pub adapter_ffn: usize,
    /// Epochs of adapter training (`None`: `epochs`).
    pub adapter_epochs: Option<usize>,
    /// Learning rate of adapter training.
    pub adapter_lr: f64,
    /// A causal student (MS-TCN++ teachers, `level` tas) with this
    /// look-ahead in frames, for streaming: it starts from the teacher's
    /// weights (a causal network has the offline one's parameters) and
    /// learns to follow the teacher's outputs from the past (and L frames)
    /// only. `None`: the student is the teacher's network.
    pub causal_lookahead: Option<usize>,
    /// Continue an interrupted run from `out/last`.
    pub resume: bool,
    /// Append one JSON record per epoch to this file (tagged with the
    /// stage: `adapter` or `distill`).
    pub log_json: Option<PathBuf>,
}

impl Default for DistillOptions {
    fn default() -> Self {
        let loss = LossConfig::default();
        let pairs = PairOptions::default();
        DistillOptions {
            level: Level::default(),
            levels: None,
            pairing: pairs.pairing,
            drop_rate: pairs.drop_rate,
            pairs_fraction: pairs.fraction,
            loss: loss.loss,
            loss_weight: loss.weight,
            sdtw_gamma: loss.sdtw_gamma,
            tcc_temperature: loss.tcc_temperature,
            epochs: 30,
            lr: 1e-4,
            weight_decay: 1e-4,
            batch_size: 4,
            seed: 0,
            time_major: false,
            adapter_layers: 2,
            adapter_heads: 4,
            adapter_width: 64,
            adapter_ffn: 128,
            adapter_epochs: None,
            adapter_lr: 1e-3,
            causal_lookahead: None,
            resume: false,
            log_json: None,
        }
    }
}

impl DistillOptions {
    /// The adapter's shape.
    pub fn adapter(&self) -> AdapterConfig {
        AdapterConfig {
            layers: self.adapter_layers,
            heads: self.adapter_heads,
            width: self.adapter_width,
            ffn: self.adapter_ffn,
        }
    }

    /// The adaptation loss and its settings.
    pub fn loss_config(&self) -> LossConfig {
        LossConfig {
            loss: self.loss,
            weight: self.loss_weight,
            sdtw_gamma: self.sdtw_gamma,
            tcc_temperature: self.tcc_temperature,
            seed: self.seed,
            ..Default::default()
        }
    }

    fn fit_config(&self, epochs: usize, lr: f64) -> FitConfig {
        FitConfig {
            epochs,
            batch_size: self.batch_size,
            adam: AdamConfig {
                lr,
                weight_decay: self.weight_decay,
                ..Default::default()
            },
            seed: self.seed,
            patience: None,
        }
    }
}

/// How a distillation run ended.
#[derive(Debug, Clone, Serialize)]
pub struct DistillReport {
    /// Training pairs used.
    pub pairs: usize,
    /// The stages run: `adapter`, then `distill` (one of them for the
    /// levels `feature` and `tas`).
    pub stages: Vec<StageReport>,
}

/// The labelled teacher-view videos of the UDA losses' task loss, encoded
/// with the teacher's classes.
fn load_task_videos(
    inputs: &DistillInputs,
    bundle: &Path,
    teacher: &SegModel,
    layout: FeatureLayout,
) -> Result<Vec<LabeledVideo>> {
    let features =
        match (
            &inputs.dataset,
            &inputs.teacher_view,
            &inputs.teacher_features,
        ) {
            (Some(root), Some(view), _) => root.join("features").join(view),
            (_, _, Some(dir)) => dir.clone(),
            _ => return Err(Error::invalid(
                "`task_videos`: no teacher-view features (give `dataset` or `teacher_features`)",
            )),
        };
    let labels = match (&inputs.task_labels, &inputs.dataset) {
        (Some(dir), _) => dir.clone(),
        (None, Some(root)) => root.join("groundTruth"),
        (None, None) => {
            return Err(Error::invalid(
                "`task_videos` needs `task_labels` (a folder of <video>.txt)",
            ))
        }
    };
    let mapping = Mapping::from_names(teacher.meta.classes.clone())?;
    let names = read_bundle(bundle)?;
    load_labeled(&features, &labels, &mapping, &names, layout)
}

/// The recordings of `names` as (name, teacher view, student view), read
/// from two feature sources and checked to be synchronized frame by frame.
fn read_feature_pairs(
    teacher_features: &Path,
    student_features: &Path,
    names: Vec<String>,
    layout: FeatureLayout,
) -> Result<Vec<(String, Features, Features)>> {
    let mut recs = Vec::with_capacity(names.len());
    for name in names {
        let t = read_video_features(teacher_features, &name, layout)?;
        let s = read_video_features(student_features, &name, layout)?;
        let tol = crate::dataset::LENGTH_TOLERANCE_FRAMES;
        if t.frames.abs_diff(s.frames) > tol {
            return Err(Error::invalid(format!(
                "pair '{name}': the teacher view has {} frames and the student view {}: not synchronized \
                 frame by frame (use `dataset` with a views.json declaring each view's fps and offset)",
                t.frames, s.frames
            )));
        }
        recs.push((name, t, s));
    }
    Ok(recs)
}

/// The label-free held-out pair loss of `student` against `teacher`, the
/// score distillation selects its epoch on: over the synchronized pairs of
/// `videos` (every frame; teacher view from `teacher_features`, student
/// view from `student_features`), the MSE between the student's heads and
/// the teacher's, summed over `levels` (default: every head) and averaged
/// over windows. Students distilled with different `levels` compare on it
/// only when it is taken over the same `levels`.
pub fn pair_loss(
    teacher: &SegModel,
    student: &SegModel,
    teacher_features: &Path,
    student_features: &Path,
    videos: &Path,
    levels: Option<Vec<usize>>,
    time_major: bool,
) -> Result<f64> {
    let names = read_bundle(videos)?;
    let recs = read_feature_pairs(
        teacher_features,
        student_features,
        names,
        layout(time_major),
    )?;
    let pairs = make_pairs(recs, &PairOptions::default(), &Default::default())?;
    let levels = levels.unwrap_or_else(|| (0..teacher.meta.backbone.outputs()).collect());
    let objective = Distill::new(
        teacher,
        &[],
        &pairs,
        levels,
        teacher.meta.window_frames,
        Device::Cpu,
    )?;
    let validation = objective.validate(student)?.ok_or_else(|| {
        Error::invalid(format!(
            "`videos` {}: no held-out windows",
            videos.display()
        ))
    })?;
    Ok(-validation.score)
}

fn load_pairs(
    inputs: &DistillInputs,
    options: &DistillOptions,
    bundle: &Path,
    seed: u64,
    fraction: f64,
    monitor: &mut dyn Monitor,
) -> Result<Vec<Pair>> {
    let layout = layout(options.time_major);
    let names = read_bundle(bundle)?;
    let mut recs = Vec::with_capacity(names.len());
    if let (Some(root), Some(tv), Some(sv)) =
        (&inputs.dataset, &inputs.teacher_view, &inputs.student_view)
    {
        // Timestamp alignment (or equal lengths within tolerance) is the
        // dataset's job; no label file is opened.
        let ds = MultiViewDataset::open(root, &[tv.as_str(), sv.as_str()])?;
        for name in names {
            let mut rec = ds.load_recording_unlabeled(&name, &[tv.as_str(), sv.as_str()])?;
            let student = rec.views.pop().expect("two views requested");
            let teacher = rec.views.pop().expect("two views requested");
            recs.push((name, teacher, student));
        }
    } else {
        let (Some(tdir), Some(sdir)) = (&inputs.teacher_features, &inputs.student_features) else {
            return Err(Error::invalid(
                "give `teacher_features` and `student_features`, or `dataset` with `teacher_view` and `student_view`",
            ));
        };
        recs = read_feature_pairs(tdir, sdir, names, layout)?;
    }
    let procedures =
        match (&inputs.procedures, &inputs.dataset) {
            (Some(file), _) => read_procedures(file)?,
            (None, Some(root)) if options.pairing == Pairing::SameProcedure => {
                read_procedures(&root.join("procedures.txt"))?
            }
            (None, _) if options.pairing == Pairing::SameProcedure => return Err(Error::invalid(
                "`pairing` same-procedure needs `procedures` (a file of lines 'video procedure')",
            )),
            _ => Default::default(),
        };
    let pair_options = PairOptions {
        pairing: options.pairing,
        drop_rate: options.drop_rate,
        fraction,
        seed,
    };
    let offered = recs.len();
    let pairs = make_pairs(recs, &pair_options, &procedures)?;
    if options.pairing == Pairing::SameProcedure && pairs.len() < offered {
        monitor.note(&format!(
            "note: {} of {offered} videos in {} have no other video of their procedure and are left out",
            offered - pairs.len(),
            bundle.display()
        ));
    }
    Ok(pairs)
}

/// The distilled outputs: `options.levels`, or every output of `teacher`.
fn levels_of(options: &DistillOptions, teacher: &SegModel) -> Vec<usize> {
    options
        .levels
        .clone()
        .unwrap_or_else(|| (0..teacher.meta.backbone.outputs()).collect())
}

/// Distills `inputs.teacher` into a student written to `inputs.out`; the
/// steps run on `engine`. Nothing is written when the inputs or options are
/// refused.
pub fn distill(
    inputs: &DistillInputs,
    options: &DistillOptions,
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
) -> Result<DistillReport> {
    let o = options;
    if o.epochs == 0 || o.batch_size == 0 {
        return Err(Error::invalid("`epochs` and `batch_size` must be positive"));
    }
    if o.level != Level::Feature {
        crate::train::distill::check_loss(&o.loss_config())?;
    }
    let device = Device::Cpu;
    let out = &inputs.out;
    if o.resume && !out.is_dir() {
        return Err(Error::invalid(format!(
            "`resume`: {} does not exist, so there is no interrupted run to resume: run without `resume`",
            out.display()
        )));
    }
    // Fails before any work when the log cannot be written.
    open_log(o.log_json.as_deref(), "distill")?;
    let teacher = SegModel::load(&inputs.teacher, &device)
        .map_err(|e| Error::invalid(format!("loading `teacher`: {e}")))?;
    if o.causal_lookahead.is_some() && o.level != Level::Tas {
        return Err(Error::invalid(format!(
            "`causal_lookahead` with `level` {}: a causal student cannot have a feature adapter (it attends over whole windows); use `level` tas",
            o.level.name()
        )));
    }
    if let Some(l) = o.causal_lookahead {
        teacher.meta.backbone.clone().with_lookahead(l)?;
    }
    if o.level != Level::Feature {
        crate::train::distill::check_levels(&levels_of(o, &teacher), &teacher.meta.backbone)?;
    }
    let layout = layout(o.time_major);
    // `pairs_fraction` thins the training pairs only; the held-out pairs
    // that select the epoch stay whole.
    let pairs = load_pairs(inputs, o, &inputs.videos, o.seed, o.pairs_fraction, monitor)?;
    let val = match &inputs.val_videos {
        Some(b) => load_pairs(inputs, o, b, o.seed.wrapping_add(1), 1.0, monitor)?,
        None => Vec::new(),
    };
    if o.loss != AdaptLoss::SyncMse && o.level != Level::Tas {
        return Err(Error::invalid(format!(
            "`loss` {}: the baselines replace TAS distillation's MSE; use `level` tas",
            o.loss.name()
        )));
    }
    if o.loss.is_uda() && inputs.task_videos.is_none() {
        return Err(Error::invalid(format!(
            "`loss` {}: a UDA loss trains with the task loss on labelled teacher-view videos; give `task_videos`",
            o.loss.name()
        )));
    }
    if inputs.task_videos.is_some() && !o.loss.is_uda() {
        return Err(Error::invalid(format!(
            "`task_videos`: only the UDA losses (mmd, coral, grl) train with the task loss, not `loss` {}",
            o.loss.name()
        )));
    }
    // The device kernels cover the method itself: the synchronized MSE of
    // the heads and of the adapter's features. Refuse the GPU before
    // anything runs.
    let cpu_only: Option<String> = (o.loss != AdaptLoss::SyncMse).then(|| {
        format!(
            "GPU training covers the method's loss (sync-mse); `loss` {} trains on the CPU",
            o.loss.name()
        )
    });
    if let Some(why) = &cpu_only {
        engine.check_cpu_only(why)?;
    }
    let task_train = match &inputs.task_videos {
        Some(b) => load_task_videos(inputs, b, &teacher, layout)?,
        None => Vec::new(),
    };
    let task_val = match &inputs.task_val_videos {
        Some(b) => load_task_videos(inputs, b, &teacher, layout)?,
        None => Vec::new(),
    };
    let dim = teacher.meta.backbone.input_dim();
    if let Some(p) = pairs
        .iter()
        .chain(&val)
        .find(|p| p.student.dim != dim || p.teacher.dim != dim)
    {
        return Err(Error::invalid(format!(
            "pair '{}': features are {}/{}-dimensional but the teacher expects {dim}",
            p.name, p.teacher.dim, p.student.dim
        )));
    }
    let levels = levels_of(o, &teacher);
    let adapter_cfg = o.adapter();
    let loss_cfg = o.loss_config();
    let provenance = |level: &str, cfg: &FitConfig| {
        serde_json::json!({
            "command": "distill",
            "level": level,
            "teacher": inputs.teacher.display().to_string(),
            "dataset": inputs.dataset.as_ref().map(|p| p.display().to_string()),
            "levels": if level == "feature" { None } else { Some(&levels) },
            "adapter": if level == "tas" { None } else { Some(&adapter_cfg) },
            "pairing": o.pairing,
            "drop_rate": o.drop_rate,
            "pairs_fraction": o.pairs_fraction,
            "loss": loss_cfg,
            "task_videos": inputs.task_videos.as_ref().map(|p| p.display().to_string()),
            "pairs": pairs.len(),
            "fit": cfg,
            "selection": if o.loss.is_uda() {
                if task_val.is_empty() { "last epoch" } else { "best F1@{10,25,50}+Edit+MoF on labelled teacher-view validation videos" }
            } else if val.is_empty() { "last epoch" } else { "lowest adaptation loss on held-out pairs (no labels)" },
        })
    };
    let window = teacher.meta.window_frames;
    let mut stages = Vec::new();

    // One writer per `out`, for the whole run (both stages); taken once the
    // options and inputs are checked, so that a refused run writes nothing.
    let run = RunDir::open(out)?;

    // Stage 1 (feature, both): train an adapter on the frozen features.
    let feature_run = match o.level {
        Level::Tas => None,
        Level::Feature => Some(None),
        Level::Both => Some(Some(RunDir::open(out.join("feature_stage"))?)),
    };
    let feature_out = feature_run
        .as_ref()
        .map(|stage| stage.as_ref().unwrap_or(&run));
    let mut student = match &feature_out {
        None => {
            let mut student = SegModel::load(&inputs.teacher, &device)?;
            if let Some(l) = o.causal_lookahead {
                // The same parameters in a causal network.
                student.meta.backbone = student.meta.backbone.clone().with_lookahead(l)?;
                student.rebuild()?;
            }
            student
        }
        Some(stage_out) => {
            let resume = o.resume && stage_out.committed_last()?.is_some();
            let mut student = SegModel::load(&inputs.teacher, &device)?;
            student.attach_adapter(&adapter_cfg, o.seed)?;
            let cfg = o.fit_config(o.adapter_epochs.unwrap_or(o.epochs), o.adapter_lr);
            student.meta.provenance = provenance("feature", &cfg);
            let objective = FeatureDistill::new(&pairs, &val, window, device.clone());
            let trainable = match &student.adapter {
                Some((adapter, varmap)) => adapter.named_vars(varmap)?,
                None => unreachable!("attached above"),
            };
            let stage = Stage {
                name: "adapter",
                trained: Trained::Adapter,
                cpu_only: cpu_only.as_deref(),
                log: o.log_json.as_deref(),
            };
            stages.push(run_stage(
                &mut student,
                trainable,
                &objective,
                &cfg,
                stage_out,
                resume,
                stage,
                engine,
                monitor,
            )?);
            // Continue from the selected (best) adapter, not the last epoch.
            SegModel::load(stage_out.path(), &device)?
        }
    };
    if o.level == Level::Feature {
        return Ok(DistillReport {
            pairs: pairs.len(),
            stages,
        });
    }

    // Stage 2 (tas, both): the student's heads mimic the teacher's; an
    // adapter from stage 1 stays frozen in front of them.
    let resume = o.resume && run.committed_last()?.is_some();
    if o.resume && o.level == Level::Tas && !resume {
        return Err(Error::invalid(format!(
            "`resume`: {} has no interrupted run to resume (no last/ folder): run without `resume`",
            out.display()
        )));
    }
    let cfg = o.fit_config(o.epochs, o.lr);
    student.meta.provenance = provenance(o.level.name(), &cfg);
    let ignore: Vec<u32> = teacher
        .meta
        .background
        .iter()
        .filter_map(|b| teacher.meta.classes.iter().position(|c| c == b))
        .map(|i| i as u32)
        .collect();
    let task = o.loss.is_uda().then(|| {
        Supervised::new(
            &task_train,
            &task_val,
            window,
            ignore,
            SupervisedLoss::default(),
            device.clone(),
        )
    });
    let objective = Distill::with_loss(
        &teacher,
        &pairs,
        &val,
        levels.clone(),
        window,
        device,
        loss_cfg,
        task,
    )?;
    let trainable = crate::train::trainable_vars(&student);
    let stage = Stage {
        name: "distill",
        trained: Trained::Network,
        cpu_only: cpu_only.as_deref(),
        log: o.log_json.as_deref(),
    };
    stages.push(run_stage(
        &mut student,
        trainable,
        &objective,
        &cfg,
        &run,
        resume,
        stage,
        engine,
        monitor,
    )?);
    Ok(DistillReport {
        pairs: pairs.len(),
        stages,
    })
}

/// A training stage's name and where it may run.
struct Stage<'a> {
    name: &'a str,
    trained: Trained,
    cpu_only: Option<&'a str>,
    /// `log_json`: epochs are appended there, tagged with `name`.
    log: Option<&'a Path>,
}

#[allow(clippy::too_many_arguments)]
fn run_stage(
    student: &mut SegModel,
    trainable: Vec<(String, candle_core::Var)>,
    objective: &dyn Objective,
    cfg: &FitConfig,
    out: &RunDir,
    resume: bool,
    stage: Stage,
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
) -> Result<StageReport> {
    let name = stage.name;
    let trainer = engine.trainer(
        student,
        stage.trained,
        trainable,
        objective,
        cfg.adam,
        stage.cpu_only,
    )?;
    let mut trainer = trainer;
    if stage.trained == Trained::Network && trainer.stepper.device_memory_bytes().is_none() {
        super::check_cpu_step_fits(student, objective, cfg.batch_size)?;
    }
    monitor.stage_started(name, &trainer.device);
    student.meta.provenance["device"] = serde_json::json!(trainer.device);
    let mut log = open_log(stage.log, name)?;
    let progress = fit_with(
        student,
        trainer.stepper.as_mut(),
        objective,
        cfg,
        out,
        resume,
        &mut Observers {
            monitor: &mut *monitor,
            log: log.as_mut(),
        },
    )?;
    close_log(log)?;
    let report = StageReport {
        stage: name.into(),
        out: out.path().to_path_buf(),
        device: trainer.device,
        best: progress.best,
        // Without held-out data the "score" is just the epoch number.
        validated: progress.history.iter().any(|r| r.val.is_some()),
        epochs_done: progress.epochs_done,
    };
    monitor.stage_finished(&report);
    Ok(report)
}
