//! `syncseg distill`: adapt a teacher to the student view from unlabeled
//! synchronized pairs (TAS-model distillation). Reads no label file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::Device;
use syncseg_core::dataset::MultiViewDataset;
use syncseg_core::labels::read_bundle;
use syncseg_core::labels::Mapping;
use syncseg_core::model::{AdapterConfig, SegModel};
use syncseg_core::npy::{read_features, FeatureLayout};
use syncseg_core::train::adam::AdamConfig;
use syncseg_core::train::data::load_labeled;
use syncseg_core::train::distill::{
    make_pairs, read_procedures, AdaptLoss, Distill, LossConfig, Pair, PairOptions, Pairing,
    DEFAULT_LEVELS,
};
use syncseg_core::train::feature_distill::FeatureDistill;
use syncseg_core::train::fit::{fit_with, FitConfig, Objective, Observer, Silent};
use syncseg_core::train::run_dir::RunDir;
use syncseg_core::train::supervised::{LabeledVideo, Supervised, SupervisedLoss};

use super::device::{trainer, DeviceChoice, Trained};
use crate::progress::EpochBars;
use syncseg_core::train::log::{Both, JsonLog};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The teacher model directory (trained on the teacher view, e.g. exo).
    #[arg(long)]
    pub teacher: PathBuf,
    /// Folder of the teacher view's `<video>.npy` features (frame t of both
    /// views must show the same instant; otherwise use --dataset).
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    pub teacher_features: Option<PathBuf>,
    /// Folder of the student view's `<video>.npy` features (same names).
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    pub student_features: Option<PathBuf>,
    /// A multi-view dataset root (`features/<view>/`, optional `views.json`
    /// with per-view fps and time offsets): the views are aligned by
    /// timestamps. Use with --teacher-view and --student-view.
    #[arg(long, requires_all = ["teacher_view", "student_view"])]
    pub dataset: Option<PathBuf>,
    /// The teacher's view name in --dataset (e.g. exo).
    #[arg(long)]
    pub teacher_view: Option<String>,
    /// The student's view name in --dataset (e.g. ego).
    #[arg(long)]
    pub student_view: Option<String>,
    /// The unlabeled synchronized pairs (a split bundle).
    #[arg(long)]
    pub videos: PathBuf,
    /// Held-out pairs: the best epoch is the one with the lowest distillation
    /// loss on them (no labels of any split are read).
    #[arg(long)]
    pub val_videos: Option<PathBuf>,
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// What to distill: tas (the model's heads), feature (an input adapter),
    /// or both (adapter first, then the heads through it).
    #[arg(long, default_value = "tas", value_parser = parse_level)]
    pub level: Level,
    /// Heads to distill, comma-separated: 0 = full resolution (y), 1 = T/2
    /// (y5) … 5 = T/32 (y1). Default all six, as the paper's ablation found best.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// synchronized (the method), random (each student video with another
    /// recording's teacher view) or same-procedure (another recording of the
    /// same procedure; needs --procedures or the dataset's procedures.txt).
    #[arg(long, default_value = "synchronized", value_parser = parse_pairing)]
    pub pairing: Pairing,
    /// `video procedure` lines, for --pairing same-procedure (default:
    /// --dataset's procedures.txt).
    #[arg(long)]
    pub procedures: Option<PathBuf>,
    /// Drop this fraction of frames independently in each view (sync-robustness study).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Use this fraction of the pairs, drawn at random (amount-of-pairs study).
    #[arg(long, default_value_t = 1.0)]
    pub pairs_fraction: f64,
    /// The adaptation loss of TAS distillation: sync-mse (the method), or the
    /// paper's baselines mmd, coral, grl (UDA: trained with the task loss on
    /// --task-videos), tcc, sdtw (alignment).
    #[arg(long, default_value = "sync-mse", value_parser = parse_loss)]
    pub loss: AdaptLoss,
    /// Weight of a UDA loss next to the task loss.
    #[arg(long, default_value_t = 1.0)]
    pub loss_weight: f64,
    /// Smoothing γ of --loss sdtw.
    #[arg(long, default_value_t = 1.0)]
    pub sdtw_gamma: f64,
    /// Temperature of --loss tcc.
    #[arg(long, default_value_t = 0.1)]
    pub tcc_temperature: f64,
    /// Labelled teacher-view training videos (a split bundle) for the task
    /// loss of the UDA losses; labels from --task-labels.
    #[arg(long)]
    pub task_videos: Option<PathBuf>,
    /// Labelled teacher-view validation videos: UDA runs keep the epoch that
    /// scores best on them (source-domain validation; no student-view labels).
    #[arg(long)]
    pub task_val_videos: Option<PathBuf>,
    /// Folder of `<video>.txt` frame labels for --task-videos (default:
    /// --dataset's groundTruth).
    #[arg(long)]
    pub task_labels: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    #[arg(long)]
    pub time_major: bool,
    /// Adapter encoder layers (the paper: 12).
    #[arg(long, default_value_t = 2)]
    pub adapter_layers: usize,
    /// Adapter attention heads (the paper: 16).
    #[arg(long, default_value_t = 4)]
    pub adapter_heads: usize,
    /// Adapter width (the paper: 1024).
    #[arg(long, default_value_t = 64)]
    pub adapter_width: usize,
    /// Adapter feed-forward width.
    #[arg(long, default_value_t = 128)]
    pub adapter_ffn: usize,
    /// Epochs of adapter training (default: --epochs).
    #[arg(long)]
    pub adapter_epochs: Option<usize>,
    /// Learning rate of adapter training.
    #[arg(long, default_value_t = 1e-3)]
    pub adapter_lr: f64,
    /// Continue an interrupted run from OUT/last (on either device).
    #[arg(long)]
    pub resume: bool,
    /// Where the steps run: candle on the CPU, the WGSL training kernels on
    /// a wgpu adapter (the method: sync-mse at every --level), or `auto` (a
    /// hardware GPU when there is one and the run can use it).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Append one JSON record per epoch to this file (`run` is the stage:
    /// `adapter` or `distill`; loss, held-out loss, seconds, steps/s,
    /// resident memory).
    #[arg(long, value_name = "FILE")]
    pub log_json: Option<PathBuf>,
}

/// Which part of the model is distilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The C2F-TCN's multi-resolution heads.
    Tas,
    /// A residual transformer adapter on the input features.
    Feature,
    /// The adapter, then the heads through it.
    Both,
}

fn parse_level(s: &str) -> Result<Level, String> {
    match s {
        "tas" => Ok(Level::Tas),
        "feature" => Ok(Level::Feature),
        "both" => Ok(Level::Both),
        other => Err(format!(
            "unknown level '{other}': expected tas, feature or both"
        )),
    }
}

fn parse_pairing(s: &str) -> Result<Pairing, String> {
    s.parse().map_err(|e: syncseg_core::Error| e.to_string())
}

fn parse_loss(s: &str) -> Result<AdaptLoss, String> {
    s.parse().map_err(|e: syncseg_core::Error| e.to_string())
}

/// The labelled teacher-view videos of the UDA losses' task loss, encoded
/// with the teacher's classes.
fn load_task_videos(
    args: &Args,
    bundle: &Path,
    teacher: &SegModel,
    layout: FeatureLayout,
) -> anyhow::Result<Vec<LabeledVideo>> {
    let features = match (&args.dataset, &args.teacher_view, &args.teacher_features) {
        (Some(root), Some(view), _) => root.join("features").join(view),
        (_, _, Some(dir)) => dir.clone(),
        _ => {
            bail!("--task-videos: no teacher-view features (give --dataset or --teacher-features)")
        }
    };
    let labels = match (&args.task_labels, &args.dataset) {
        (Some(dir), _) => dir.clone(),
        (None, Some(root)) => root.join("groundTruth"),
        (None, None) => bail!("--task-videos needs --task-labels (a folder of <video>.txt)"),
    };
    let mapping = Mapping::from_names(teacher.meta.classes.clone())?;
    let names = read_bundle(bundle)?;
    Ok(load_labeled(&features, &labels, &mapping, &names, layout)?)
}

fn load_pairs(
    args: &Args,
    bundle: &PathBuf,
    layout: FeatureLayout,
    seed: u64,
    fraction: f64,
) -> anyhow::Result<Vec<Pair>> {
    let names = read_bundle(bundle)?;
    let mut recs = Vec::with_capacity(names.len());
    if let (Some(root), Some(tv), Some(sv)) =
        (&args.dataset, &args.teacher_view, &args.student_view)
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
        let (Some(tdir), Some(sdir)) = (&args.teacher_features, &args.student_features) else {
            bail!("give --teacher-features and --student-features, or --dataset with --teacher-view and --student-view");
        };
        for name in names {
            let t = read_features(tdir.join(format!("{name}.npy")), layout)?;
            let s = read_features(sdir.join(format!("{name}.npy")), layout)?;
            let tol = syncseg_core::dataset::LENGTH_TOLERANCE_FRAMES;
            if t.frames.abs_diff(s.frames) > tol {
                bail!(
                    "pair '{name}': the teacher view has {} frames and the student view {}: not synchronized \
                     frame by frame (use --dataset with a views.json declaring each view's fps and offset)",
                    t.frames,
                    s.frames
                );
            }
            recs.push((name, t, s));
        }
    }
    let procedures = match (&args.procedures, &args.dataset) {
        (Some(file), _) => read_procedures(file)?,
        (None, Some(root)) if args.pairing == Pairing::SameProcedure => {
            read_procedures(&root.join("procedures.txt"))?
        }
        (None, _) if args.pairing == Pairing::SameProcedure => {
            bail!("--pairing same-procedure needs --procedures FILE (lines 'video procedure')")
        }
        _ => Default::default(),
    };
    let options = PairOptions {
        pairing: args.pairing,
        drop_rate: args.drop_rate,
        fraction,
        seed,
    };
    let offered = recs.len();
    let pairs = make_pairs(recs, &options, &procedures)?;
    if args.pairing == Pairing::SameProcedure && pairs.len() < offered {
        eprintln!(
            "note: {} of {offered} videos in {} have no other video of their procedure and are left out",
            offered - pairs.len(),
            bundle.display()
        );
    }
    Ok(pairs)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be positive");
    }
    let device = Device::Cpu;
    if args.resume && !args.out.is_dir() {
        bail!(
            "--resume: {} does not exist, so there is no interrupted run to resume: run without --resume",
            args.out.display()
        );
    }
    if let Some(path) = &args.log_json {
        // Fails before any work when the log cannot be written.
        JsonLog::open(path, "distill").context("--log-json")?;
    }
    let teacher = SegModel::load(&args.teacher, &device).context("loading --teacher")?;
    let layout = if args.time_major {
        FeatureLayout::TimeByDim
    } else {
        FeatureLayout::DimByTime
    };
    // --pairs-fraction thins the training pairs only; the held-out pairs
    // that select the epoch stay whole.
    let pairs = load_pairs(&args, &args.videos, layout, args.seed, args.pairs_fraction)?;
    let val = match &args.val_videos {
        Some(b) => load_pairs(&args, b, layout, args.seed.wrapping_add(1), 1.0)?,
        None => Vec::new(),
    };
    if args.loss != AdaptLoss::SyncMse && args.level != Level::Tas {
        bail!(
            "--loss {}: the baselines replace TAS distillation's MSE; use --level tas",
            args.loss.name()
        );
    }
    if args.loss.is_uda() && args.task_videos.is_none() {
        bail!(
            "--loss {}: a UDA loss trains with the task loss on labelled teacher-view videos; give --task-videos",
            args.loss.name()
        );
    }
    if args.task_videos.is_some() && !args.loss.is_uda() {
        bail!(
            "--task-videos: only the UDA losses (mmd, coral, grl) train with the task loss, not --loss {}",
            args.loss.name()
        );
    }
    // The device kernels cover the method itself: the synchronized MSE of
    // the heads and of the adapter's features. Refuse the GPU before
    // anything runs.
    let gpu_unsupported: Option<String> = if args.loss != AdaptLoss::SyncMse {
        Some(format!(
            "GPU training covers the method's loss (sync-mse); --loss {} trains on the CPU",
            args.loss.name()
        ))
    } else {
        None
    };
    if let (DeviceChoice::Wgpu, Some(why)) = (args.device, &gpu_unsupported) {
        bail!("--device wgpu: {why}");
    }
    let task_train = match &args.task_videos {
        Some(b) => load_task_videos(&args, b, &teacher, layout)?,
        None => Vec::new(),
    };
    let task_val = match &args.task_val_videos {
        Some(b) => load_task_videos(&args, b, &teacher, layout)?,
        None => Vec::new(),
    };
    let dim = teacher.meta.backbone.input_dim();
    if let Some(p) = pairs
        .iter()
        .chain(&val)
        .find(|p| p.student.dim != dim || p.teacher.dim != dim)
    {
        bail!(
            "pair '{}': features are {}/{}-dimensional but the teacher expects {dim}",
            p.name,
            p.teacher.dim,
            p.student.dim
        );
    }
    let levels = args
        .levels
        .clone()
        .unwrap_or_else(|| DEFAULT_LEVELS.to_vec());
    let adapter_cfg = AdapterConfig {
        layers: args.adapter_layers,
        heads: args.adapter_heads,
        width: args.adapter_width,
        ffn: args.adapter_ffn,
    };
    let loss_cfg = LossConfig {
        loss: args.loss,
        weight: args.loss_weight,
        sdtw_gamma: args.sdtw_gamma,
        tcc_temperature: args.tcc_temperature,
        seed: args.seed,
        ..Default::default()
    };
    let fit_cfg = |epochs: usize, lr: f64| FitConfig {
        epochs,
        batch_size: args.batch_size,
        adam: AdamConfig {
            lr,
            weight_decay: args.weight_decay,
            ..Default::default()
        },
        seed: args.seed,
        patience: None,
    };
    let provenance = |level: &str, cfg: &FitConfig| {
        serde_json::json!({
            "command": "distill",
            "level": level,
            "teacher": args.teacher.display().to_string(),
            "dataset": args.dataset.as_ref().map(|p| p.display().to_string()),
            "levels": if level == "feature" { None } else { Some(&levels) },
            "adapter": if level == "tas" { None } else { Some(&adapter_cfg) },
            "pairing": args.pairing,
            "drop_rate": args.drop_rate,
            "pairs_fraction": args.pairs_fraction,
            "loss": loss_cfg,
            "task_videos": args.task_videos.as_ref().map(|p| p.display().to_string()),
            "pairs": pairs.len(),
            "fit": cfg,
            "selection": if args.loss.is_uda() {
                if task_val.is_empty() { "last epoch" } else { "best F1@{10,25,50}+Edit+MoF on labelled teacher-view validation videos" }
            } else if val.is_empty() { "last epoch" } else { "lowest adaptation loss on held-out pairs (no labels)" },
        })
    };
    let window = teacher.meta.window_frames;

    // One writer per --out, for the whole run (both stages); taken once the
    // arguments and inputs are checked, so that a refused run writes nothing.
    let run = RunDir::open(&args.out)?;

    // Stage 1 (feature, both): train an adapter on the frozen features.
    let feature_run = match args.level {
        Level::Tas => None,
        Level::Feature => Some(None),
        Level::Both => Some(Some(RunDir::open(args.out.join("feature_stage"))?)),
    };
    let feature_out = feature_run
        .as_ref()
        .map(|stage| stage.as_ref().unwrap_or(&run));
    let mut student = match &feature_out {
        None => SegModel::load(&args.teacher, &device)?,
        Some(out) => {
            let resume = args.resume && out.committed_last()?.is_some();
            let mut student = SegModel::load(&args.teacher, &device)?;
            student.attach_adapter(&adapter_cfg, args.seed)?;
            let cfg = fit_cfg(args.adapter_epochs.unwrap_or(args.epochs), args.adapter_lr);
            student.meta.provenance = provenance("feature", &cfg);
            let objective = FeatureDistill::new(&pairs, &val, window, device.clone());
            let trainable = match &student.adapter {
                Some((adapter, varmap)) => adapter.named_vars(varmap)?,
                None => unreachable!("attached above"),
            };
            let stage = Stage {
                name: "adapter",
                trained: Trained::Adapter,
                device: args.device,
                gpu_unsupported: gpu_unsupported.as_deref(),
                log: args.log_json.as_deref(),
            };
            run_stage(
                &mut student,
                trainable,
                &objective,
                &cfg,
                out,
                resume,
                stage,
            )?;
            // Continue from the selected (best) adapter, not the last epoch.
            SegModel::load(out.path(), &device)?
        }
    };
    if args.level == Level::Feature {
        return Ok(());
    }

    // Stage 2 (tas, both): the student's heads mimic the teacher's; an
    // adapter from stage 1 stays frozen in front of them.
    let resume = args.resume && run.committed_last()?.is_some();
    if args.resume && args.level == Level::Tas && !resume {
        bail!(
            "--resume: {} has no interrupted run to resume (no last/ folder): run without --resume",
            args.out.display()
        );
    }
    let cfg = fit_cfg(args.epochs, args.lr);
    let level_name = if args.level == Level::Both {
        "both"
    } else {
        "tas"
    };
    student.meta.provenance = provenance(level_name, &cfg);
    let ignore: Vec<u32> = teacher
        .meta
        .background
        .iter()
        .filter_map(|b| teacher.meta.classes.iter().position(|c| c == b))
        .map(|i| i as u32)
        .collect();
    let task = args.loss.is_uda().then(|| {
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
    let trainable = syncseg_core::train::trainable_vars(&student);
    let stage = Stage {
        name: "distill",
        trained: Trained::Network,
        device: args.device,
        gpu_unsupported: gpu_unsupported.as_deref(),
        log: args.log_json.as_deref(),
    };
    run_stage(
        &mut student,
        trainable,
        &objective,
        &cfg,
        &run,
        resume,
        stage,
    )
}

/// A training stage's name and where it may run.
struct Stage<'a> {
    name: &'a str,
    trained: Trained,
    device: DeviceChoice,
    gpu_unsupported: Option<&'a str>,
    /// `--log-json`: epochs are appended there, tagged with `name`.
    log: Option<&'a Path>,
}

fn run_stage(
    student: &mut SegModel,
    trainable: Vec<(String, candle_core::Var)>,
    objective: &dyn Objective,
    cfg: &FitConfig,
    out: &RunDir,
    resume: bool,
    stage: Stage,
) -> anyhow::Result<()> {
    let name = stage.name;
    let mut trainer = trainer(
        stage.device,
        student,
        stage.trained,
        trainable,
        objective,
        cfg.adam,
        stage.gpu_unsupported,
    )?;
    if stage.trained == Trained::Network && trainer.stepper.device_memory_bytes().is_none() {
        super::device::check_cpu_step_fits(student, objective, cfg.batch_size)?;
    }
    eprintln!("{name}: training on {}", trainer.device);
    student.meta.provenance["device"] = serde_json::json!(trainer.device);
    let mut log = stage
        .log
        .map(|p| JsonLog::open(p, name))
        .transpose()
        .context("--log-json")?;
    let mut bars = EpochBars::new(name);
    let mut silent = Silent;
    let logger: &mut dyn Observer = match log.as_mut() {
        Some(log) => log,
        None => &mut silent,
    };
    let progress = fit_with(
        student,
        trainer.stepper.as_mut(),
        objective,
        cfg,
        out,
        resume,
        &mut Both(&mut bars, logger),
    )?;
    bars.finish();
    if let Some(log) = log {
        log.finish().context("--log-json")?;
    }
    // Without held-out pairs the "score" is just the epoch number.
    let has_val = progress.history.iter().any(|r| r.val.is_some());
    match progress.best {
        Some((score, epoch)) if has_val => eprintln!(
            "{name}: saved {} (epoch {epoch}, held-out loss {:.5})",
            out.path().display(),
            -score
        ),
        _ => eprintln!(
            "{name}: saved {} (last epoch; no held-out pairs)",
            out.path().display()
        ),
    }
    Ok(())
}
