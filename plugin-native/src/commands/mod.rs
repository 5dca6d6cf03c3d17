//! The subcommands of `syncseg`, one file each.

mod batch;
mod bench;
mod bench_paper;
mod bench_predict;
mod demo;
pub(crate) mod device;
mod distill;
mod eval;
mod export;
mod export_model;
mod features;
mod import;
mod predict;
mod segment;
mod shards;
mod synth;
mod train;

use clap::{Parser, Subcommand};

/// syncseg: temporal action segmentation that transfers from fixed (exo) to
/// head-mounted (ego) cameras without ego labels.
#[derive(Parser, Debug)]
#[command(name = "syncseg", version, about, long_about = None)]
pub struct Cli {
    /// More logging (-v info, -vv debug); SYNCSEG_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the paper's Table 1 end to end on the synthetic benchmark.
    Demo(demo::Args),
    /// Generate the synthetic synchronized exo/ego benchmark (MS-TCN layout).
    Synth(synth::Args),
    /// Train a C2F-TCN with labels (the exo teacher, or an oracle).
    Train(train::Args),
    /// Adapt a teacher to another view from unlabeled synchronized pairs.
    Distill(Box<distill::Args>),
    /// Segment videos with a trained model.
    Predict(predict::Args),
    /// DINOv2 frame features of a video file (`[D, T]` .npy).
    Features(features::Args),
    /// From a video file to segments and editor markers in one command.
    Segment(segment::Args),
    /// Score per-frame predictions against ground truth (Edit, F1@{10,25,50}, MoF).
    Eval(eval::Args),
    /// Export predicted segments as editor markers, chapters or subtitles.
    Export(export::Args),
    /// Time the model's inference and training step on this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Batch jobs split over array tasks (Slurm, Kubernetes): their progress.
    #[command(subcommand)]
    Shards(ShardsCommand),
    /// Bundle a model directory into one file (for browsers and editor plugins).
    ExportModel(export_model::Args),
    /// Convert a reference PyTorch C2F-TCN checkpoint (.pth) into a model directory.
    Import(import::Args),
}

#[derive(Subcommand, Debug)]
pub enum ShardsCommand {
    /// Summarise a sharded run's output folder: done, failed and pending
    /// videos, shards not started; exits non-zero unless all are done.
    Status(shards::StatusArgs),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// One C2F-TCN inference and one training step (forward + backward + Adam).
    Step(bench::Args),
    /// Whole-model prediction latency on a backend (--device cpu|wgpu).
    Predict(bench_predict::PredictArgs),
    /// Frame-feature extraction rate of a DINOv2 ViT on the CPU.
    Vit(bench_predict::VitBenchArgs),
    /// Per-kernel time and GFLOP/s of the WGSL kernels on the wgpu adapter.
    Kernels(bench_predict::KernelArgs),
    /// The paper's comparisons and studies (Tables 3–6, supplementary Table 1)
    /// on the synthetic benchmark over seeds: report.md, results.json, plots.
    Paper(bench_paper::Args),
}

/// The long flags of the subcommand `matches` ran (`max-frames`, …), by
/// which errors name core's options.
pub fn flags_of(matches: &clap::ArgMatches) -> std::collections::HashSet<String> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        match cmd.find_subcommand(name) {
            Some(c) => cmd = c.clone(),
            None => break,
        }
        m = sub;
    }
    cmd.get_arguments()
        .filter_map(|a| a.get_long())
        .map(str::to_string)
        .collect()
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Train(a) => train::run(a),
        Command::Distill(a) => distill::run(*a),
        Command::Predict(a) => predict::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Features(a) => features::run(a),
        Command::Segment(a) => segment::run(a),
        Command::Export(a) => export::run(a),
        Command::Import(a) => import::run(a),
        Command::ExportModel(a) => export_model::run(a),
        Command::Shards(ShardsCommand::Status(a)) => shards::status(a),
        Command::Bench(BenchCommand::Step(a)) => bench::run(a),
        Command::Bench(BenchCommand::Predict(a)) => bench_predict::predict(a),
        Command::Bench(BenchCommand::Kernels(a)) => bench_predict::kernels(a),
        Command::Bench(BenchCommand::Vit(a)) => bench_predict::vit(a),
        Command::Bench(BenchCommand::Paper(a)) => bench_paper::run(a),
    }
}
