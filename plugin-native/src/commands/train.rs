//! `syncseg train`: supervised training (C2F-TCN or MS-TCN++) (the exo teacher, the
//! oracles): the flags of [`syncseg_core::pipeline::train`].

use std::path::PathBuf;

use syncseg_core::model::BackboneKind;
use syncseg_core::pipeline::{TrainInputs, TrainOptions};

use super::device::{DeviceChoice, DeviceEngine};
use crate::progress::CliMonitor;

/// The defaults of the flags.
fn d() -> TrainOptions {
    TrainOptions::default()
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Features: a folder of `<video>.npy` (`[D, T]` float arrays) or an
    /// LMDB store (keys `{video}_{frame:010d}.jpg`, raw float32 values).
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
    #[arg(long, default_value_t = d().epochs)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = d().lr)]
    pub lr: f64,
    /// L2 weight decay (added to the gradient, as torch.optim.Adam).
    #[arg(long, default_value_t = d().weight_decay)]
    pub weight_decay: f64,
    /// Windows per batch.
    #[arg(long, default_value_t = d().batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value_t = d().seed)]
    pub seed: u64,
    /// Labels ignored by the loss and left out of segment metrics (repeatable).
    #[arg(long = "background", value_name = "LABEL")]
    pub background: Vec<String>,
    /// Videos are cut into windows of at most this many frames.
    #[arg(long, default_value_t = d().max_frames)]
    pub max_frames: usize,
    /// Weight of the smoothing (truncated MSE) loss.
    #[arg(long, default_value_t = d().smoothing)]
    pub smoothing: f64,
    /// Stop after this many epochs without a better validation score.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    #[arg(long)]
    pub time_major: bool,
    /// The temporal network: `c2f-tcn` (the sync paper's C2F-TCN) or `ms-tcn`
    /// (MS-TCN++: 11 + 3 × 10 dilated layers of 64 maps).
    #[arg(long, default_value_t = d().backbone)]
    pub backbone: BackboneKind,
    /// Multiply every channel width of the reference network (C2F-TCN
    /// 256/128, MS-TCN++ 64) by this.
    #[arg(long, default_value_t = d().width_scale)]
    pub width_scale: f64,
    /// A causal network for live segmentation (`syncseg predict --stream`,
    /// the C ABI's `syncseg_stream_*`): every convolution reads the past
    /// only. MS-TCN++ only.
    #[arg(long)]
    pub causal: bool,
    /// With `--causal`: frames of future context the network sees before
    /// it labels a frame (the stream's latency, in frames).
    #[arg(long, value_name = "FRAMES", requires = "causal")]
    pub lookahead: Option<usize>,
    /// Continue an interrupted run from OUT/last (on either device).
    #[arg(long)]
    pub resume: bool,
    /// Where the steps run: candle on the CPU, the WGSL training kernels on
    /// a wgpu adapter, or `auto` (a hardware GPU when there is one).
    #[arg(long, value_enum, default_value_t = DeviceChoice::default())]
    pub device: DeviceChoice,
    /// Append one JSON record per epoch to this file (loss, validation,
    /// seconds, steps/s, resident memory).
    #[arg(long, value_name = "FILE")]
    pub log_json: Option<PathBuf>,
}

impl Args {
    /// The job's inputs and options.
    pub fn job(self) -> (TrainInputs, TrainOptions) {
        let inputs = TrainInputs {
            features: self.features,
            labels: self.labels,
            mapping: self.mapping,
            videos: self.videos,
            val_videos: self.val_videos,
            out: self.out,
        };
        let options = TrainOptions {
            epochs: self.epochs,
            lr: self.lr,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            seed: self.seed,
            background: self.background,
            max_frames: self.max_frames,
            smoothing: self.smoothing,
            patience: self.patience,
            time_major: self.time_major,
            backbone: self.backbone,
            width_scale: self.width_scale,
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
    syncseg_core::pipeline::train(&inputs, &options, &mut engine, &mut CliMonitor::train())?;
    Ok(())
}
