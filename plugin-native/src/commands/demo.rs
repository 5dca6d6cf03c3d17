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
use serde::Serialize;
use syncseg_core::labels::{read_bundle, Mapping};
use syncseg_core::metrics::Scores;
use syncseg_core::model::BackboneKind;
use syncseg_core::npy::FeatureLayout;
use syncseg_core::pipeline::study::{score, Budget};
use syncseg_core::pipeline::{CpuEngine, Level};
use syncseg_core::report::scores_table;
use syncseg_core::report::timeline::{timeline_svg, TimelineVideo};
use syncseg_core::synth::{Generator, Preset, SynthConfig};
use syncseg_core::train::data::load_labeled;
use syncseg_core::train::distill::Pairing;

use crate::progress::CliMonitor;

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
    /// The temporal network of every model: `c2f-tcn` (the paper's) or
    /// `ms-tcn` (MS-TCN++; TAS distillation then distils its stages).
    #[arg(long, default_value_t = BackboneKind::default())]
    backbone: BackboneKind,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    prepare_out(&args.out)?;
    let data = args.out.join("data");
    let models = args.out.join("models");
    let mut b = Budget::for_preset(args.preset);
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
        // The demo and the paper's benchmark train with candle on the CPU:
        // their figures are the reference the GPU path is compared with.
        let (inputs, mut options) = b.train(&data, view, models.join(dir), args.seed);
        options.backbone = args.backbone;
        options.log_json = Some(logs.join(format!("{dir}.jsonl")));
        syncseg_core::pipeline::train(&inputs, &options, &mut CpuEngine, &mut CliMonitor::train())?;
        stage_done(dir);
    }

    eprintln!(
        "[3/5] adapting the teacher to ego from unlabeled synchronized pairs (no labels read)"
    );
    let teacher = models.join("exo_teacher");
    let runs = [
        ("feature_distill", Level::Feature, Pairing::Synchronized),
        ("tas_distill", Level::Tas, Pairing::Synchronized),
        ("both_distill", Level::Both, Pairing::Synchronized),
        ("random_pairs", Level::Tas, Pairing::Random),
    ];
    for (dir, level, pairing) in runs {
        let out = models.join(dir);
        let (inputs, mut options) =
            b.distill(&data, teacher.clone(), out, level, pairing, args.seed);
        options.log_json = Some(logs.join(format!("{dir}.jsonl")));
        syncseg_core::pipeline::distill(
            &inputs,
            &options,
            &mut CpuEngine,
            &mut CliMonitor::distill(),
        )?;
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
        "backbone": args.backbone,
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
    let bg = mapping
        .id_of(syncseg_core::pipeline::study::BACKGROUND)
        .into_iter()
        .collect::<Vec<_>>();
    let svg = timeline_svg(&videos, mapping.names(), &bg);
    syncseg_core::fsio::write_bytes_atomic(args.out.join("timeline.svg"), svg.as_bytes())?;

    println!(
        "Exo→ego transfer on the synthetic benchmark ({:?} preset, seed {}, {}):\n",
        args.preset, args.seed, args.backbone
    );
    print!("{table}");
    println!(
        "\nwrote {}/results.json, table.md and timeline.svg in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
