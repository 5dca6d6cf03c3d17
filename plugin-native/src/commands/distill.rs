//! `syncseg distill`: adapt a teacher to the student view from unlabeled
//! synchronized pairs (TAS-model distillation). Reads no label file.

use std::path::PathBuf;

use anyhow::{bail, Context};
use candle_core::Device;
use syncseg_core::labels::read_bundle;
use syncseg_core::model::SegModel;
use syncseg_core::npy::{read_features, FeatureLayout};
use syncseg_core::train::adam::AdamConfig;
use syncseg_core::train::distill::{make_pairs, Distill, Pair, Pairing, DEFAULT_LEVELS};
use syncseg_core::train::fit::{fit, FitConfig};

use crate::progress::EpochBars;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The teacher model directory (trained on the teacher view, e.g. exo).
    #[arg(long)]
    pub teacher: PathBuf,
    /// Folder of the teacher view's `<video>.npy` features.
    #[arg(long)]
    pub teacher_features: PathBuf,
    /// Folder of the student view's `<video>.npy` features (same names).
    #[arg(long)]
    pub student_features: PathBuf,
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
    /// Heads to distill, comma-separated: 0 = full resolution (y), 1 = T/2
    /// (y5) … 5 = T/32 (y1). Default all six, as the paper's ablation found best.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// synchronized (the method) or random (each ego video with another exo video).
    #[arg(long, default_value = "synchronized", value_parser = parse_pairing)]
    pub pairing: Pairing,
    /// Drop this fraction of frames independently in each view (sync-robustness study).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
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
    /// Continue an interrupted run from OUT/last.
    #[arg(long)]
    pub resume: bool,
}

fn parse_pairing(s: &str) -> Result<Pairing, String> {
    match s {
        "synchronized" => Ok(Pairing::Synchronized),
        "random" => Ok(Pairing::Random),
        other => Err(format!(
            "unknown pairing '{other}': expected synchronized or random"
        )),
    }
}

fn load_pairs(
    args: &Args,
    bundle: &PathBuf,
    layout: FeatureLayout,
    seed: u64,
) -> anyhow::Result<Vec<Pair>> {
    let names = read_bundle(bundle)?;
    let mut recs = Vec::with_capacity(names.len());
    for name in names {
        let t = read_features(args.teacher_features.join(format!("{name}.npy")), layout)?;
        let s = read_features(args.student_features.join(format!("{name}.npy")), layout)?;
        let tol = syncseg_core::dataset::LENGTH_TOLERANCE_FRAMES;
        if t.frames.abs_diff(s.frames) > tol && args.drop_rate == 0.0 {
            bail!(
                "pair '{name}': the teacher view has {} frames and the student view {} — not synchronized \
                 (declare frame rates and offsets in a views.json, or resample)",
                t.frames,
                s.frames
            );
        }
        recs.push((name, t, s));
    }
    Ok(make_pairs(recs, args.pairing, args.drop_rate, seed)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be positive");
    }
    let device = Device::Cpu;
    let teacher = SegModel::load(&args.teacher, &device).context("loading --teacher")?;
    let layout = if args.time_major {
        FeatureLayout::TimeByDim
    } else {
        FeatureLayout::DimByTime
    };
    let pairs = load_pairs(&args, &args.videos, layout, args.seed)?;
    let val = match &args.val_videos {
        Some(b) => load_pairs(&args, b, layout, args.seed.wrapping_add(1))?,
        None => Vec::new(),
    };
    let dim = teacher.meta.c2f.input_dim;
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
    // The student starts as a copy of the teacher.
    let mut student = if args.resume {
        SegModel::load(args.out.join("last"), &device)
            .with_context(|| format!("--resume: no resumable run in {}", args.out.display()))?
    } else {
        SegModel::load(&args.teacher, &device)?
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
        patience: None,
    };
    student.meta.provenance = serde_json::json!({
        "command": "distill",
        "level": "tas",
        "teacher": args.teacher.display().to_string(),
        "levels": levels,
        "pairing": args.pairing,
        "drop_rate": args.drop_rate,
        "pairs": pairs.len(),
        "fit": cfg,
        "selection": if val.is_empty() { "last epoch" } else { "lowest distillation loss on held-out pairs (no labels)" },
    });
    let objective = Distill::new(
        &teacher,
        &pairs,
        &val,
        levels,
        teacher.meta.window_frames,
        device,
    )?;
    let trainable = syncseg_core::train::trainable_vars(&student);
    let mut bars = EpochBars::new("distill");
    let progress = fit(
        &mut student,
        trainable,
        &objective,
        &cfg,
        &args.out,
        args.resume,
        &mut bars,
    )?;
    bars.finish();
    if let Some((score, epoch)) = progress.best {
        eprintln!(
            "distilled into {} (epoch {epoch}, held-out distillation loss {:.5})",
            args.out.display(),
            -score
        );
    }
    Ok(())
}
