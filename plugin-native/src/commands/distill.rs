//! `syncseg distill`: adapt a teacher to the student view from unlabeled
//! synchronized pairs (TAS-model distillation): the flags of
//! [`syncseg_core::pipeline::distill`]. Reads no label file.

use std::path::PathBuf;

use syncseg_core::pipeline::{DistillInputs, DistillOptions, Level};
use syncseg_core::train::distill::{AdaptLoss, Pairing};

use super::device::{DeviceChoice, DeviceEngine};
use crate::progress::CliMonitor;

/// The defaults of the flags.
fn d() -> DistillOptions {
    DistillOptions::default()
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The teacher model directory (trained on the teacher view, e.g. exo).
    #[arg(long)]
    pub teacher: PathBuf,
    /// The teacher view's features: a folder of `<video>.npy` or an LMDB
    /// store (frame t of both views must show the same instant; otherwise
    /// use --dataset).
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    pub teacher_features: Option<PathBuf>,
    /// The student view's features, as --teacher-features (same names).
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
    #[arg(long, default_value_t = d().level, value_parser = parse_level)]
    pub level: Level,
    /// Outputs to distill, comma-separated: the C2F-TCN's heads 0 = full
    /// resolution (y), 1 = T/2 (y5) … 5 = T/32 (y1); MS-TCN++'s stages 0
    /// (prediction generation) … R. Default: every output (all six heads,
    /// as the paper's ablation found best).
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// synchronized (the method), random (each student video with another
    /// recording's teacher view) or same-procedure (another recording of the
    /// same procedure; needs --procedures or the dataset's procedures.txt).
    #[arg(long, default_value_t = d().pairing, value_parser = parse_pairing)]
    pub pairing: Pairing,
    /// `video procedure` lines, for --pairing same-procedure (default:
    /// --dataset's procedures.txt).
    #[arg(long)]
    pub procedures: Option<PathBuf>,
    /// Drop this fraction of frames independently in each view (sync-robustness study).
    #[arg(long, default_value_t = d().drop_rate)]
    pub drop_rate: f64,
    /// Use this fraction of the pairs, drawn at random (amount-of-pairs study).
    #[arg(long, default_value_t = d().pairs_fraction)]
    pub pairs_fraction: f64,
    /// The adaptation loss of TAS distillation: sync-mse (the method), or the
    /// paper's baselines mmd, coral, grl (UDA: trained with the task loss on
    /// --task-videos), tcc, sdtw (alignment).
    #[arg(long, default_value_t = d().loss, value_parser = parse_loss)]
    pub loss: AdaptLoss,
    /// Weight of a UDA loss next to the task loss.
    #[arg(long, default_value_t = d().loss_weight)]
    pub loss_weight: f64,
    /// Smoothing γ of --loss sdtw.
    #[arg(long, default_value_t = d().sdtw_gamma)]
    pub sdtw_gamma: f64,
    /// Temperature of --loss tcc.
    #[arg(long, default_value_t = d().tcc_temperature)]
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
    #[arg(long, default_value_t = d().epochs)]
    pub epochs: usize,
    #[arg(long, default_value_t = d().lr)]
    pub lr: f64,
    #[arg(long, default_value_t = d().weight_decay)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = d().batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value_t = d().seed)]
    pub seed: u64,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    #[arg(long)]
    pub time_major: bool,
    /// Adapter encoder layers (the paper: 12).
    #[arg(long, default_value_t = d().adapter_layers)]
    pub adapter_layers: usize,
    /// Adapter attention heads (the paper: 16).
    #[arg(long, default_value_t = d().adapter_heads)]
    pub adapter_heads: usize,
    /// Adapter width (the paper: 1024).
    #[arg(long, default_value_t = d().adapter_width)]
    pub adapter_width: usize,
    /// Adapter feed-forward width.
    #[arg(long, default_value_t = d().adapter_ffn)]
    pub adapter_ffn: usize,
    /// Epochs of adapter training (default: --epochs).
    #[arg(long)]
    pub adapter_epochs: Option<usize>,
    /// Learning rate of adapter training.
    #[arg(long, default_value_t = d().adapter_lr)]
    pub adapter_lr: f64,
    /// A causal student for live segmentation (`predict --stream`): the
    /// teacher's MS-TCN++ made causal, from its weights; the teacher may be
    /// offline. With `--level tas`.
    #[arg(long)]
    pub causal: bool,
    /// With `--causal`: frames of future context the student sees before
    /// it labels a frame.
    #[arg(long, value_name = "FRAMES", requires = "causal")]
    pub lookahead: Option<usize>,
    /// Continue an interrupted run from OUT/last (on either device).
    #[arg(long)]
    pub resume: bool,
    /// Where the steps run: candle on the CPU, the WGSL training kernels on
    /// a wgpu adapter (the method: sync-mse at every --level), or `auto` (a
    /// hardware GPU when there is one and the run can use it).
    #[arg(long, value_enum, default_value_t = DeviceChoice::default())]
    pub device: DeviceChoice,
    /// Append one JSON record per epoch to this file (`run` is the stage:
    /// `adapter` or `distill`; loss, held-out loss, seconds, steps/s,
    /// resident memory).
    #[arg(long, value_name = "FILE")]
    pub log_json: Option<PathBuf>,
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.parse().map_err(|e: syncseg_core::Error| e.to_string())
}

fn parse_pairing(s: &str) -> Result<Pairing, String> {
    s.parse().map_err(|e: syncseg_core::Error| e.to_string())
}

fn parse_loss(s: &str) -> Result<AdaptLoss, String> {
    s.parse().map_err(|e: syncseg_core::Error| e.to_string())
}

impl Args {
    /// The job's inputs and options.
    pub fn job(self) -> (DistillInputs, DistillOptions) {
        let inputs = DistillInputs {
            teacher: self.teacher,
            teacher_features: self.teacher_features,
            student_features: self.student_features,
            dataset: self.dataset,
            teacher_view: self.teacher_view,
            student_view: self.student_view,
            videos: self.videos,
            val_videos: self.val_videos,
            procedures: self.procedures,
            task_videos: self.task_videos,
            task_val_videos: self.task_val_videos,
            task_labels: self.task_labels,
            out: self.out,
        };
        let options = DistillOptions {
            level: self.level,
            levels: self.levels,
            pairing: self.pairing,
            drop_rate: self.drop_rate,
            pairs_fraction: self.pairs_fraction,
            loss: self.loss,
            loss_weight: self.loss_weight,
            sdtw_gamma: self.sdtw_gamma,
            tcc_temperature: self.tcc_temperature,
            epochs: self.epochs,
            lr: self.lr,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            seed: self.seed,
            time_major: self.time_major,
            adapter_layers: self.adapter_layers,
            adapter_heads: self.adapter_heads,
            adapter_width: self.adapter_width,
            adapter_ffn: self.adapter_ffn,
            adapter_epochs: self.adapter_epochs,
            adapter_lr: self.adapter_lr,
            causal_lookahead: self.causal.then(|| self.lookahead.unwrap_or(0)),
            resume: self.resume,
            log_json: self.log_json,
        };
        (inputs, options)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut engine = DeviceEngine(args.device);
    let (inputs, options) = args.job();
    syncseg_core::pipeline::distill(&inputs, &options, &mut engine, &mut CliMonitor::distill())?;
    Ok(())
}
