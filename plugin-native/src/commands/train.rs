//! `syncseg train`: supervised C2F-TCN training (the exo teacher, the oracles).

use std::path::PathBuf;

use anyhow::{bail, Context};
use candle_core::Device;
use syncseg_core::labels::{read_bundle, Mapping};
use syncseg_core::model::{BackboneKind, ModelMeta, SegModel};
use syncseg_core::npy::FeatureLayout;
use syncseg_core::train::adam::AdamConfig;
use syncseg_core::train::data::load_labeled;
use syncseg_core::train::fit::{fit_with, FitConfig, Observer, Silent};
use syncseg_core::train::log::{Both, JsonLog};
use syncseg_core::train::run_dir::RunDir;
use syncseg_core::train::supervised::{Supervised, SupervisedLoss};

use super::device::{trainer, DeviceChoice, Trained};
use crate::progress::EpochBars;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of `<video>.npy` features, `[D, T]` float arrays.
    #[arg(long)]
    pub features: PathBuf,
    /// Folder of `<video>.txt` per-frame labels.
    #[arg(long)]
    pub labels: PathBuf,
    /// Class mapping: mapping.txt (`<id> <label>`) or mapping.csv.
    #[arg(long)]
    pub mapping: PathBuf,
    /// Training videos (a split bundle).
    #[arg(long)]
    pub videos: PathBuf,
    /// Validation videos of the same view, for model selection (never a test split).
    #[arg(long)]
    pub val_videos: Option<PathBuf>,
    /// Output model directory (best epoch; `last/` holds the last epoch).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// L2 weight decay (added to the gradient, as torch.optim.Adam).
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Windows per batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Labels ignored by the loss and left out of segment metrics (repeatable).
    #[arg(long = "background", value_name = "LABEL")]
    pub background: Vec<String>,
    /// Videos are cut into windows of at most this many frames.
    #[arg(long, default_value_t = 600)]
    pub max_frames: usize,
    /// Weight of the smoothing (truncated MSE) loss.
    #[arg(long, default_value_t = syncseg_core::train::supervised::SupervisedLoss::default().smoothing)]
    pub smoothing: f64,
    /// Stop after this many epochs without a better validation score.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    #[arg(long)]
    pub time_major: bool,
    /// The temporal network: `c2f-tcn` (the sync paper's C2F-TCN) or `ms-tcn`
    /// (MS-TCN++: 11 + 3 × 10 dilated layers of 64 maps).
    #[arg(long, default_value_t = BackboneKind::default())]
    pub backbone: BackboneKind,
    /// Multiply every channel width of the reference network (C2F-TCN
    /// 256/128, MS-TCN++ 64) by this.
    #[arg(long, default_value_t = 1.0)]
    pub width_scale: f64,
    /// Continue an interrupted run from OUT/last (on either device).
    #[arg(long)]
    pub resume: bool,
    /// Where the steps run: candle on the CPU, the WGSL training kernels on
    /// a wgpu adapter, or `auto` (a hardware GPU when there is one).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Append one JSON record per epoch to this file (loss, validation,
    /// seconds, steps/s, resident memory).
    #[arg(long, value_name = "FILE")]
    pub log_json: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.max_frames == 0 || args.epochs == 0 || args.batch_size == 0 {
        bail!("--max-frames, --epochs and --batch-size must be positive");
    }
    if !(args.width_scale > 0.0 && args.width_scale <= 4.0) {
        bail!("--width-scale {}: must be in (0, 4]", args.width_scale);
    }
    let device = Device::Cpu;
    // Opened first: a log that cannot be written fails before any work.
    let mut log = args
        .log_json
        .as_deref()
        .map(|p| JsonLog::open(p, "train"))
        .transpose()
        .context("--log-json")?;
    let mapping = Mapping::read(&args.mapping)?;
    let layout = if args.time_major {
        FeatureLayout::TimeByDim
    } else {
        FeatureLayout::DimByTime
    };
    let names = read_bundle(&args.videos)?;
    let train = load_labeled(&args.features, &args.labels, &mapping, &names, layout)?;
    let val = match &args.val_videos {
        Some(b) => load_labeled(
            &args.features,
            &args.labels,
            &mapping,
            &read_bundle(b)?,
            layout,
        )?,
        None => Vec::new(),
    };
    let mut ignore = Vec::new();
    for b in &args.background {
        ignore.push(mapping.id_of(b).with_context(|| {
            format!(
                "--background '{b}' is not a class of {}",
                args.mapping.display()
            )
        })?);
    }
    let dim = train[0].features.dim;
    if let Some(v) = val.iter().find(|v| v.features.dim != dim) {
        bail!(
            "validation video '{}' has {}-dimensional features, training videos {dim}",
            v.name,
            v.features.dim
        );
    }
    if args.resume && !args.out.is_dir() {
        bail!(
            "--resume: {} does not exist, so there is no interrupted run to resume: run without --resume",
            args.out.display()
        );
    }
    // Locked before last/ is read (no other run writes there meanwhile), or
    // once the inputs are checked (a refused run writes nothing).
    let run = args.resume.then(|| RunDir::open(&args.out)).transpose()?;
    let mut model = if let Some(run) = &run {
        let last = run.committed_last()?.with_context(|| {
            format!(
                "--resume: {} has no interrupted run to resume (no last/ folder): run without --resume",
                args.out.display()
            )
        })?;
        let model = SegModel::load(&last, &device)?;
        let backbone = &model.meta.backbone;
        if backbone.kind() != args.backbone {
            bail!(
                "{}: the checkpoint's model is a {}, not a {} (--backbone): resume with the backbone the run was started with, or train into a new --out",
                last.join(syncseg_core::model::checkpoint::META_FILE).display(),
                backbone.kind(),
                args.backbone
            );
        }
        if backbone.input_dim() != dim {
            bail!(
                "{}: the checkpoint's model takes {}-dimensional features, --features {} has {dim}: resume with the features the run was started with, or train into a new --out",
                last.join(syncseg_core::model::checkpoint::META_FILE).display(),
                backbone.input_dim(),
                args.features.display()
            );
        }
        if model.meta.classes != mapping.names() {
            bail!(
                "{}: the checkpoint's model has {} classes, other than --mapping {} ({}): resume with the mapping the run was started with, or train into a new --out",
                last.join(syncseg_core::model::checkpoint::META_FILE).display(),
                model.meta.classes.len(),
                args.mapping.display(),
                mapping.len()
            );
        }
        model
    } else {
        let meta = ModelMeta::new(
            args.backbone.config(dim, mapping.len(), args.width_scale),
            mapping.names().to_vec(),
            args.background.clone(),
            args.max_frames,
        );
        SegModel::new_seeded(meta, &device, args.seed)?
    };
    let cfg = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        adam: AdamConfig {
            lr: args.lr,
            weight_decay: args.weight_decay,
            ..Default::default()
        },
        seed: args.seed,
        patience: args.patience,
    };
    model.meta.provenance = serde_json::json!({
        "command": "train",
        "features": args.features.display().to_string(),
        "videos": args.videos.display().to_string(),
        "val_videos": args.val_videos.as_ref().map(|p| p.display().to_string()),
        "fit": cfg,
        "smoothing": args.smoothing,
    });
    let loss = SupervisedLoss {
        smoothing: args.smoothing,
        ..Default::default()
    };
    let objective = Supervised::new(&train, &val, args.max_frames, ignore, loss, device);
    let trainable = syncseg_core::train::trainable_vars(&model);
    let mut trainer = trainer(
        args.device,
        &model,
        Trained::Network,
        trainable,
        &objective,
        cfg.adam,
        None,
    )?;
    if trainer.stepper.device_memory_bytes().is_none() {
        super::device::check_cpu_step_fits(&model, &objective, args.batch_size)?;
    }
    let run = match run {
        Some(run) => run,
        None => RunDir::open(&args.out)?,
    };
    eprintln!("training on {}", trainer.device);
    model.meta.provenance["device"] = serde_json::json!(trainer.device);
    let mut bars = EpochBars::new("train");
    let mut silent = Silent;
    let logger: &mut dyn Observer = match log.as_mut() {
        Some(log) => log,
        None => &mut silent,
    };
    let progress = fit_with(
        &mut model,
        trainer.stepper.as_mut(),
        &objective,
        &cfg,
        &run,
        args.resume,
        &mut Both(&mut bars, logger),
    )?;
    bars.finish();
    if let Some(log) = log {
        log.finish().context("--log-json")?;
    }
    match progress.best {
        Some((score, epoch)) if !val.is_empty() => eprintln!(
            "best epoch {epoch} (validation F1@{{10,25,50}}+Edit+MoF = {score:.2}) saved to {}",
            args.out.display()
        ),
        _ => eprintln!(
            "last epoch saved to {} (no validation videos)",
            args.out.display()
        ),
    }
    Ok(())
}
