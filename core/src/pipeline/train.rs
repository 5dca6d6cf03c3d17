//! Supervised training of a segmentation network (C2F-TCN or MS-TCN++):
//! the exo teacher, the oracles.

use std::path::PathBuf;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::{close_log, layout, open_log, Engine, Monitor, Observers, StageReport, Trained};
use crate::error::{Error, Result};
use crate::labels::{read_bundle, Mapping};
use crate::model::{BackboneKind, ModelMeta, SegModel};
use crate::train::adam::AdamConfig;
use crate::train::data::load_labeled;
use crate::train::fit::{fit_with, FitConfig};
use crate::train::run_dir::RunDir;
use crate::train::supervised::{Supervised, SupervisedLoss};

/// What a training run reads and where it writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainInputs {
    /// Features: a folder of `<video>.npy` or an LMDB store.
    pub features: PathBuf,
    /// Folder of `<video>.txt` per-frame labels.
    pub labels: PathBuf,
    /// Class mapping: mapping.txt (`<id> <label>`) or mapping.csv.
    pub mapping: PathBuf,
    /// Training videos (a split bundle).
    pub videos: PathBuf,
    /// Validation videos of the same view, for model selection (never a
    /// test split).
    pub val_videos: Option<PathBuf>,
    /// The model directory (best epoch; `last/` holds the last epoch).
    pub out: PathBuf,
}

/// How to train. `Default` is the reference setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 weight decay (added to the gradient, as torch.optim.Adam).
    pub weight_decay: f64,
    /// Windows per batch.
    pub batch_size: usize,
    /// Seed of the initialisation and of the batch order.
    pub seed: u64,
    /// Labels ignored by the loss and left out of segment metrics.
    pub background: Vec<String>,
    /// Videos are cut into windows of at most this many frames.
    pub max_frames: usize,
    /// Weight of the smoothing (truncated MSE) loss.
    pub smoothing: f64,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    pub time_major: bool,
    /// The temporal network: C2F-TCN (the sync paper's) or MS-TCN++.
    pub backbone: BackboneKind,
    /// Multiplies every channel width of the reference network (C2F-TCN
    /// 256/128, MS-TCN++ 64).
    pub width_scale: f64,
    /// A causal network (MS-TCN++ only) with this look-ahead in frames,
    /// for streaming; `None`: the offline network.
    pub causal_lookahead: Option<usize>,
    /// Continue an interrupted run from `out/last`.
    pub resume: bool,
    /// Append one JSON record per epoch to this file.
    pub log_json: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 30,
            lr: 5e-4,
            weight_decay: 1e-4,
            batch_size: 4,
            seed: 0,
            background: Vec::new(),
            // The release's windows (C2F-TCN needs at least 384 frames).
            max_frames: 600,
            smoothing: SupervisedLoss::default().smoothing,
            patience: None,
            time_major: false,
            backbone: BackboneKind::default(),
            width_scale: 1.0,
            causal_lookahead: None,
            resume: false,
            log_json: None,
        }
    }
}

impl TrainOptions {
    /// The epoch loop's settings.
    pub fn fit_config(&self) -> FitConfig {
        FitConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            adam: AdamConfig {
                lr: self.lr,
                weight_decay: self.weight_decay,
                ..Default::default()
            },
            seed: self.seed,
            patience: self.patience,
        }
    }
}

/// Trains a network (C2F-TCN or MS-TCN++) on `inputs` into `inputs.out`; the steps run on
/// `engine`. Nothing is written when the inputs or options are refused.
pub fn train(
    inputs: &TrainInputs,
    options: &TrainOptions,
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
) -> Result<StageReport> {
    let o = options;
    if o.max_frames == 0 || o.epochs == 0 || o.batch_size == 0 {
        return Err(Error::invalid(
            "`max_frames`, `epochs` and `batch_size` must be positive",
        ));
    }
    if !(o.width_scale > 0.0 && o.width_scale <= 4.0) {
        return Err(Error::invalid(format!(
            "`width_scale` {}: must be in (0, 4]",
            o.width_scale
        )));
    }
    let device = Device::Cpu;
    // Opened first: a log that cannot be written fails before any work.
    let mut log = open_log(o.log_json.as_deref(), "train")?;
    let mapping = Mapping::read(&inputs.mapping)?;
    let layout = layout(o.time_major);
    let names = read_bundle(&inputs.videos)?;
    let train = load_labeled(&inputs.features, &inputs.labels, &mapping, &names, layout)?;
    let val = match &inputs.val_videos {
        Some(b) => load_labeled(
            &inputs.features,
            &inputs.labels,
            &mapping,
            &read_bundle(b)?,
            layout,
        )?,
        None => Vec::new(),
    };
    let mut ignore = Vec::new();
    for b in &o.background {
        ignore.push(mapping.id_of(b).ok_or_else(|| {
            Error::invalid(format!(
                "`background` '{b}' is not a class of {}",
                inputs.mapping.display()
            ))
        })?);
    }
    let dim = train[0].features.dim;
    if let Some(v) = val.iter().find(|v| v.features.dim != dim) {
        return Err(Error::invalid(format!(
            "validation video '{}' has {}-dimensional features, training videos {dim}",
            v.name, v.features.dim
        )));
    }
    let out = &inputs.out;
    if o.resume && !out.is_dir() {
        return Err(Error::invalid(format!(
            "`resume`: {} does not exist, so there is no interrupted run to resume: run without `resume`",
            out.display()
        )));
    }
    // Locked before last/ is read (no other run writes there meanwhile), or
    // once the inputs are checked (a refused run writes nothing).
    let run = o.resume.then(|| RunDir::open(out)).transpose()?;
    let mut model = if let Some(run) = &run {
        let last = run.committed_last()?.ok_or_else(|| {
            Error::invalid(format!(
                "`resume`: {} has no interrupted run to resume (no last/ folder): run without `resume`",
                out.display()
            ))
        })?;
        let model = SegModel::load(&last, &device)?;
        let meta_file = last.join(crate::model::checkpoint::META_FILE);
        let backbone = &model.meta.backbone;
        if backbone.kind() != o.backbone {
            return Err(Error::invalid(format!(
                "{}: the checkpoint's model is a {}, not a {} (`backbone`): resume with the backbone the run was started with, or train into a new `out`",
                meta_file.display(),
                backbone.kind(),
                o.backbone
            )));
        }
        if backbone.lookahead() != o.causal_lookahead {
            let say = |l: Option<usize>| match l {
                Some(l) => format!("causal with look-ahead {l}"),
                None => "not causal".to_string(),
            };
            return Err(Error::invalid(format!(
                "{}: the checkpoint's model is {}, the options ask for {}: resume with the settings the run was started with, or train into a new `out`",
                meta_file.display(),
                say(backbone.lookahead()),
                say(o.causal_lookahead)
            )));
        }
        if backbone.input_dim() != dim {
            return Err(Error::invalid(format!(
                "{}: the checkpoint's model takes {}-dimensional features, `features` {} has {dim}: resume with the features the run was started with, or train into a new `out`",
                meta_file.display(),
                backbone.input_dim(),
                inputs.features.display()
            )));
        }
        if model.meta.classes != mapping.names() {
            return Err(Error::invalid(format!(
                "{}: the checkpoint's model has {} classes, other than `mapping` {} ({}): resume with the mapping the run was started with, or train into a new `out`",
                meta_file.display(),
                model.meta.classes.len(),
                inputs.mapping.display(),
                mapping.len()
            )));
        }
        model
    } else {
        let mut backbone = o.backbone.config(dim, mapping.len(), o.width_scale);
        if let Some(l) = o.causal_lookahead {
            backbone = backbone.with_lookahead(l)?;
        }
        let meta = ModelMeta::new(
            backbone,
            mapping.names().to_vec(),
            o.background.clone(),
            o.max_frames,
        );
        SegModel::new_seeded(meta, &device, o.seed)?
    };
    let cfg = o.fit_config();
    model.meta.provenance = serde_json::json!({
        "command": "train",
        "features": inputs.features.display().to_string(),
        "videos": inputs.videos.display().to_string(),
        "val_videos": inputs.val_videos.as_ref().map(|p| p.display().to_string()),
        "fit": cfg,
        "smoothing": o.smoothing,
    });
    let loss = SupervisedLoss {
        smoothing: o.smoothing,
        ..Default::default()
    };
    let objective = Supervised::new(&train, &val, o.max_frames, ignore, loss, device);
    let trainable = crate::train::trainable_vars(&model);
    let mut trainer = engine.trainer(
        &model,
        Trained::Network,
        trainable,
        &objective,
        cfg.adam,
        None,
    )?;
    if trainer.stepper.device_memory_bytes().is_none() {
        super::check_cpu_step_fits(&model, &objective, o.batch_size)?;
    }
    let run = match run {
        Some(run) => run,
        None => RunDir::open(out)?,
    };
    monitor.stage_started("train", &trainer.device);
    model.meta.provenance["device"] = serde_json::json!(trainer.device);
    let progress = fit_with(
        &mut model,
        trainer.stepper.as_mut(),
        &objective,
        &cfg,
        &run,
        o.resume,
        &mut Observers {
            monitor: &mut *monitor,
            log: log.as_mut(),
        },
    )?;
    close_log(log)?;
    let report = StageReport {
        stage: "train".into(),
        out: out.clone(),
        device: trainer.device,
        best: progress.best,
        validated: !val.is_empty(),
        epochs_done: progress.epochs_done,
    };
    monitor.stage_finished(&report);
    Ok(report)
}
