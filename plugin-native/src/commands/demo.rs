//! `syncseg demo`: the paper's Table 1 on the synthetic benchmark, end to end.
//!
//! 1. generate the synchronized exo/ego benchmark;
//! 2. train the exo teacher (= exo oracle) and the ego oracle with labels;
//! 3. adapt the teacher to ego from the unlabeled pairs: feature
//!    distillation (an input adapter), TAS distillation, both, and the
//!    "Rnd. MSE" control (TAS distillation on random pairs);
//! 4. segment the ego test videos with every model and score them;
//! 5. print the table, write `results.json`, `table.md` and `timeline.svg`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::Device;
use serde::Serialize;
use syncseg_core::labels::{read_bundle, Mapping};
use syncseg_core::metrics::{EvalOptions, Evaluator, Scores};
use syncseg_core::model::SegModel;
use syncseg_core::npy::FeatureLayout;
use syncseg_core::predict::predict;
use syncseg_core::report::scores_table;
use syncseg_core::report::timeline::{timeline_svg, TimelineVideo};
use syncseg_core::synth::{Generator, Preset, SynthConfig};
use syncseg_core::train::data::load_labeled;
use syncseg_core::train::distill::Pairing;

use super::device::DeviceChoice;
use super::{distill, train};

/// Marks a folder as the demo's own, so a re-run may replace it.
const MARKER: &str = ".syncseg-demo";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Benchmark size: small (minutes on 2 cores) or paper (Assembly101 split sizes; hours on a CPU).
    #[arg(long, default_value = "small", value_parser = super::synth::parse_preset)]
    preset: Preset,
    /// Output folder (data, models, results).
    #[arg(long, default_value = "syncseg-demo")]
    out: PathBuf,
    /// Seed of the benchmark and of every training run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Feature dimension of the benchmark (default: the preset's).
    #[arg(long)]
    dim: Option<usize>,
    /// Epochs of the supervised runs (exo teacher, ego oracle); default:
    /// the preset's budget (small 20, paper 50).
    #[arg(long)]
    epochs: Option<usize>,
    /// Epochs of each distillation run (and of its adapter stage); default:
    /// the preset's budget (small 15, paper 30).
    #[arg(long)]
    distill_epochs: Option<usize>,
}

/// Training budgets per preset.
pub(super) struct Budget {
    pub width_scale: f64,
    pub epochs: usize,
    pub lr: f64,
    pub distill_epochs: usize,
    pub distill_lr: f64,
}

pub(super) fn budget(preset: Preset) -> Budget {
    match preset {
        // A quarter-width C2F-TCN: the small benchmark has 64-D features and
        // ~20 training videos; the full width only costs time there.
        Preset::Small => Budget {
            width_scale: 0.25,
            epochs: 20,
            lr: 1e-3,
            distill_epochs: 15,
            distill_lr: 5e-4,
        },
        Preset::Paper => Budget {
            width_scale: 1.0,
            epochs: 50,
            lr: 5e-4,
            distill_epochs: 30,
            distill_lr: 1e-4,
        },
    }
}

/// One row of the table.
#[derive(Serialize)]
struct Row {
    method: String,
    train_view: &'static str,
    test_view: &'static str,
    uses_ego_labels: bool,
    scores: Scores,
}

fn prepare_out(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out)?.next().is_none();
        if !empty {
            if !out.join(MARKER).exists() {
                bail!(
                    "{}: exists and is not a previous demo output; choose another --out",
                    out.display()
                );
            }
            for sub in ["data", "models"] {
                let p = out.join(sub);
                if p.exists() {
                    std::fs::remove_dir_all(&p).with_context(|| format!("{}", p.display()))?;
                }
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    std::fs::write(out.join(MARKER), b"syncseg demo output\n")
        .with_context(|| format!("{}", out.display()))?;
    Ok(())
}

pub(super) fn train_args(
    data: &Path,
    view: &str,
    out: PathBuf,
    b: &Budget,
    seed: u64,
) -> train::Args {
    train::Args {
        features: data.join("features").join(view),
        labels: data.join("groundTruth"),
        mapping: data.join("mapping.txt"),
        videos: data.join(format!("splits/{view}_train.bundle")),
        val_videos: Some(data.join(format!("splits/{view}_val.bundle"))),
        out,
        epochs: b.epochs,
        lr: b.lr,
        backbone: syncseg_core::model::BackboneKind::default(),
        weight_decay: 1e-4,
        batch_size: 4,
        seed,
        background: vec!["background".into()],
        max_frames: 600,
        smoothing: syncseg_core::train::supervised::SupervisedLoss::default().smoothing,
        patience: None,
        time_major: false,
        width_scale: b.width_scale,
        resume: false,
        // The demo and the paper's benchmark train with candle on the CPU:
        // their figures are the reference the GPU path is compared with.
        device: DeviceChoice::Cpu,
        log_json: None,
    }
}

pub(super) fn distill_args(
    data: &Path,
    teacher: PathBuf,
    out: PathBuf,
    level: distill::Level,
    pairing: Pairing,
    b: &Budget,
    seed: u64,
) -> distill::Args {
    distill::Args {
        teacher,
        teacher_features: None,
        student_features: None,
        dataset: Some(data.to_path_buf()),
        teacher_view: Some("exo".into()),
        student_view: Some("ego".into()),
        videos: data.join("splits/adapt.bundle"),
        val_videos: Some(data.join("splits/adapt_val.bundle")),
        out,
        levels: None,
        pairing,
        procedures: None,
        drop_rate: 0.0,
        pairs_fraction: 1.0,
        loss: syncseg_core::train::distill::AdaptLoss::SyncMse,
        loss_weight: 1.0,
        sdtw_gamma: 1.0,
        tcc_temperature: 0.1,
        task_videos: None,
        task_val_videos: None,
        task_labels: None,
        epochs: b.distill_epochs,
        lr: b.distill_lr,
        weight_decay: 1e-4,
        batch_size: 4,
        seed,
        time_major: false,
        resume: false,
        level,
        adapter_layers: 2,
        adapter_heads: 4,
        adapter_width: 64,
        adapter_ffn: 128,
        adapter_epochs: Some(b.distill_epochs),
        adapter_lr: 1e-3,
        device: DeviceChoice::Cpu,
        log_json: None,
    }
}

/// Predictions of `model` on `view`'s test split, scored with background removed.
pub(super) fn score(
    model_dir: &Path,
    data: &Path,
    view: &str,
    mapping: &Mapping,
) -> anyhow::Result<(Scores, Vec<Vec<u32>>)> {
    let model = SegModel::load(model_dir, &Device::Cpu)?;
    let names = read_bundle(data.join(format!("splits/{view}_test.bundle")))?;
    let bg = mapping.id_of("background").into_iter().collect::<Vec<_>>();
    let mut eval = Evaluator::new(EvalOptions::with_background(bg));
    let mut preds = Vec::new();
    // One video in memory at a time: the paper preset's test split is GBs.
    for name in &names {
        let v = load_labeled(
            &data.join("features").join(view),
            &data.join("groundTruth"),
            mapping,
            std::slice::from_ref(name),
            FeatureLayout::DimByTime,
        )?
        .remove(0);
        let p = predict(&model, &v.features)?;
        eval.add_video(&v.labels, &p.labels)
            .with_context(|| format!("video '{}'", v.name))?;
        preds.push(p.labels);
    }
    Ok((eval.finish(), preds))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    prepare_out(&args.out)?;
    let data = args.out.join("data");
    let models = args.out.join("models");
    let mut b = budget(args.preset);
    if let Some(e) = args.epochs {
        if e == 0 {
            bail!("--epochs must be positive");
        }
        b.epochs = e;
    }
    if let Some(e) = args.distill_epochs {
        if e == 0 {
            bail!("--distill-epochs must be positive");
        }
        b.distill_epochs = e;
    }
    // One JSON line per epoch of every run, and the wall time of each stage.
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}", logs.display()))?;
    let mut stages: Vec<(String, f64)> = Vec::new();
    let mut stage_started = std::time::Instant::now();
    let mut stage_done = |name: &str| {
        let secs = stage_started.elapsed().as_secs_f64();
        eprintln!("{name}: {secs:.0} s");
        stages.push((name.to_string(), secs));
        stage_started = std::time::Instant::now();
    };

    eprintln!(
        "[1/5] generating the {:?} synthetic exo/ego benchmark",
        args.preset
    );
    let gen = Generator::new(SynthConfig::preset(args.preset, args.seed, args.dim)?)?;
    let pb = crate::progress::bar(gen.len() as u64, "synth", "recordings");
    gen.write(&data, |done, _| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    stage_done("synth");

    eprintln!("[2/5] training the exo teacher (exo oracle) and the ego oracle, with labels");
    for (view, dir) in [("exo", "exo_teacher"), ("ego", "ego_oracle")] {
        let mut a = train_args(&data, view, models.join(dir), &b, args.seed);
        a.log_json = Some(logs.join(format!("{dir}.jsonl")));
        train::run(a)?;
        stage_done(dir);
    }

    eprintln!(
        "[3/5] adapting the teacher to ego from unlabeled synchronized pairs (no labels read)"
    );
    let teacher = models.join("exo_teacher");
    let runs = [
        (
            "feature_distill",
            distill::Level::Feature,
            Pairing::Synchronized,
        ),
        ("tas_distill", distill::Level::Tas, Pairing::Synchronized),
        ("both_distill", distill::Level::Both, Pairing::Synchronized),
        ("random_pairs", distill::Level::Tas, Pairing::Random),
    ];
    for (dir, level, pairing) in runs {
        let out = models.join(dir);
        let mut a = distill_args(&data, teacher.clone(), out, level, pairing, &b, args.seed);
        a.log_json = Some(logs.join(format!("{dir}.jsonl")));
        distill::run(a)?;
        stage_done(dir);
    }

    eprintln!("[4/5] segmenting and scoring the test videos");
    let mapping = Mapping::read(data.join("mapping.txt"))?;
    // (method, model, trained on, tested on, uses ego labels)
    let plan: [(&str, &str, &str, &str, bool); 7] = [
        ("exo-oracle (exo → exo)", "exo_teacher", "exo", "exo", false),
        ("ego-oracle (ego → ego)", "ego_oracle", "ego", "ego", true),
        (
            "no adaptation (exo → ego)",
            "exo_teacher",
            "exo",
            "ego",
            false,
        ),
        (
            "feature distillation",
            "feature_distill",
            "exo+pairs",
            "ego",
            false,
        ),
        ("TAS distillation", "tas_distill", "exo+pairs", "ego", false),
        (
            "feature + TAS distillation",
            "both_distill",
            "exo+pairs",
            "ego",
            false,
        ),
        (
            "Rnd. MSE (random pairs)",
            "random_pairs",
            "exo+pairs",
            "ego",
            false,
        ),
    ];
    let mut rows = Vec::new();
    let mut ego_preds: Vec<(String, Vec<Vec<u32>>)> = Vec::new();
    for (method, dir, train_view, test_view, uses_ego_labels) in plan {
        let (scores, preds) = score(&models.join(dir), &data, test_view, &mapping)?;
        if test_view == "ego" {
            ego_preds.push((method.to_string(), preds));
        }
        rows.push(Row {
            method: method.to_string(),
            train_view,
            test_view,
            uses_ego_labels,
            scores,
        });
    }
    stage_done("predict+score");

    eprintln!("[5/5] writing the report");
    let table_rows: Vec<(&str, &Scores)> = rows
        .iter()
        .map(|r| (r.method.as_str(), &r.scores))
        .collect();
    let table = scores_table(&table_rows);
    let results = serde_json::json!({
        "preset": args.preset,
        "seed": args.seed,
        "rows": rows,
        "note": "Scores on the ego test split (exo-oracle: exo test split); background removed from segments, kept in MoF.",
        "seconds": started.elapsed().as_secs_f64(),
        "budget": {"epochs": b.epochs, "distill_epochs": b.distill_epochs, "width_scale": b.width_scale},
        "stages": stages.iter().map(|(n, s)| serde_json::json!({"stage": n, "seconds": s})).collect::<Vec<_>>(),
        "peak_rss_bytes": syncseg_core::memory::usage().map(|m| m.peak_rss_bytes),
    });
    syncseg_core::fsio::write_bytes_atomic(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&results)?.as_bytes(),
    )?;
    syncseg_core::fsio::write_bytes_atomic(args.out.join("table.md"), table.as_bytes())?;

    // Timelines of the first three ego test videos.
    let names = read_bundle(data.join("splits/ego_test.bundle"))?;
    let gts = load_labeled(
        &data.join("features/ego"),
        &data.join("groundTruth"),
        &mapping,
        &names[..3.min(names.len())],
        FeatureLayout::DimByTime,
    )?;
    let videos: Vec<TimelineVideo> = gts
        .iter()
        .enumerate()
        .map(|(i, v)| TimelineVideo {
            name: &v.name,
            gt: &v.labels,
            rows: ego_preds
                .iter()
                .map(|(m, p)| (m.as_str(), p[i].as_slice()))
                .collect(),
        })
        .collect();
    let bg = mapping.id_of("background").into_iter().collect::<Vec<_>>();
    let svg = timeline_svg(&videos, mapping.names(), &bg);
    syncseg_core::fsio::write_bytes_atomic(args.out.join("timeline.svg"), svg.as_bytes())?;

    println!(
        "Exo→ego transfer on the synthetic benchmark ({:?} preset, seed {}):\n",
        args.preset, args.seed
    );
    print!("{table}");
    println!(
        "\nwrote {}/results.json, table.md and timeline.svg in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
