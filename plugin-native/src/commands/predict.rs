//! `syncseg predict`: per-frame labels, segments and probabilities: the
//! flags of [`syncseg_core::pipeline::predict`].

use std::path::PathBuf;

use syncseg_core::pipeline::predict::StreamOptions;
use syncseg_core::pipeline::{PredictInputs, PredictOptions};

use crate::progress::CliMonitor;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (from `syncseg train`, `distill` or `import`).
    #[arg(long)]
    model: PathBuf,
    /// Features: a folder of `<video>.npy` or an LMDB store.
    #[arg(long)]
    features: PathBuf,
    /// Videos to segment (a split bundle).
    #[arg(long)]
    videos: PathBuf,
    /// Output folder: `<video>.txt`, `<video>.segments.json` (and `.probs.npy`).
    #[arg(long)]
    out: PathBuf,
    /// Also write the ensemble probabilities `[K, T]` as `<video>.probs.npy`.
    #[arg(long)]
    save_probs: bool,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    #[arg(long)]
    time_major: bool,
    /// Also export the segments as `<video>.<ext>` (otio, edl, fcpxml, vtt, ...).
    #[arg(long, requires = "fps")]
    export: Option<syncseg_core::export::ExportFormat>,
    /// Frame rate of the videos for --export: 30000/1001, 29.97, 25, ...
    #[arg(long, allow_hyphen_values = true)]
    fps: Option<syncseg_core::export::FrameRate>,
    /// Where the model runs: cpu, wgpu (the GPU through Vulkan/Metal/DX12) or auto.
    #[arg(long, value_enum, default_value_t = super::device::DeviceChoice::default())]
    device: super::device::DeviceChoice,
    /// Emulate live segmentation with a causal model (`train --causal`):
    /// every video goes through the stream a chunk of frames at a time on
    /// the CPU, and `<video>.stream.json` records the time of each push.
    /// The labels are those of offline prediction, frame for frame.
    #[arg(long)]
    stream: bool,
    /// Frames per push with `--stream` (1: frame by frame).
    #[arg(long, value_name = "FRAMES", default_value_t = 1, requires = "stream")]
    chunk: usize,
    /// With `--stream`: the look-ahead the model must have (frames); a
    /// model trained with another is refused rather than run.
    #[arg(long, value_name = "FRAMES", requires = "stream")]
    lookahead: Option<usize>,
    #[command(flatten)]
    batch: super::batch::BatchArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.stream && args.device == super::device::DeviceChoice::Wgpu {
        anyhow::bail!("--stream runs on the CPU: leave out --device wgpu");
    }
    let inputs = PredictInputs {
        model: args.model,
        features: args.features,
        videos: args.videos,
        out: args.out,
    };
    let options = PredictOptions {
        save_probs: args.save_probs,
        time_major: args.time_major,
        export: args.export,
        fps: args.fps,
        stream: args.stream.then_some(StreamOptions {
            chunk: args.chunk,
            lookahead: args.lookahead,
        }),
    };
    let mut engine = super::device::DeviceEngine(args.device);
    let report = syncseg_core::pipeline::predict(
        &inputs,
        &options,
        &args.batch.options(),
        &mut engine,
        &mut CliMonitor::items("predict"),
    )?;
    let kept = if report.reused > 0 {
        format!(", {} already finished", report.reused)
    } else {
        String::new()
    };
    eprintln!(
        "segmented {} videos into {} ({}{kept})",
        report.videos,
        inputs.out.display(),
        report.device
    );
    Ok(())
}
