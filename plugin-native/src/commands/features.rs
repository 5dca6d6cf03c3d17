//! `syncseg features`: DINOv2 frame features of a video file, and the
//! ViT options it shares with `syncseg segment`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashMap;

use anyhow::Context;
use syncseg_core::batch_job::{run_batch, BatchItem};
use syncseg_core::features::Features;
use syncseg_core::npy::write_features;
use syncseg_core::video_list::{read_video_list, ListedVideo};
use syncseg_core::vision::{Normalization, Preprocess, Vit};
use syncseg_core::Error;
use syncseg_shaders::Gpu;

use super::batch::BatchArgs;
use super::device::{DeviceChoice, FrameEncoder};
use crate::progress::{self, CliMonitor};
use crate::video::{self, VideoInfo};

/// How frames become features.
#[derive(clap::Args, Debug)]
pub struct VitArgs {
    /// DINOv2 weights (safetensors; the public checkpoints' layout or Hugging
    /// Face's Dinov2Model). The paper used ViT-L/14 (1024-D CLS token).
    #[arg(long)]
    pub weights: PathBuf,
    /// Sample the video at this rate (frames/s) instead of every frame;
    /// labels are mapped back to every frame.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Pixel normalisation: half (mean/std 0.5, the paper's release) or
    /// imagenet (DINOv2's own transforms).
    #[arg(long, default_value = "half")]
    pub normalization: Normalization,
    /// The shorter side is resized to this before the center crop.
    #[arg(long, default_value_t = 224)]
    pub resize: usize,
    /// Side of the center crop fed to the ViT (a multiple of 14).
    #[arg(long, default_value_t = 224)]
    pub crop: usize,
    /// Where the ViT (and, for `segment`, the model) runs: cpu, wgpu or auto.
    #[arg(long, value_enum, default_value_t = DeviceChoice::default())]
    pub device: DeviceChoice,
}

impl VitArgs {
    /// Loads the ViT on `gpu` (the CPU for `None`).
    pub fn encoder(&self, gpu: Option<Arc<Gpu>>) -> anyhow::Result<FrameEncoder> {
        let vit = FrameEncoder::on(gpu, Vit::load(&self.weights, self.crop)?)?;
        tracing::debug!("ViT on {}", vit.describe());
        Ok(vit)
    }

    /// Extracts the features of `video` with `vit`, with a progress bar
    /// (frames/s, ETA).
    pub fn features_of(
        &self,
        video: &Path,
        vit: &mut FrameEncoder,
    ) -> anyhow::Result<(Features, VideoInfo)> {
        if let Some(f) = self.fps {
            if !(f.is_finite() && f > 0.0) {
                anyhow::bail!("--fps {f}: must be a positive number of frames per second");
            }
        }
        let info = video::probe(video)?;
        let pre = Preprocess {
            resize: self.resize,
            crop: self.crop,
            normalization: self.normalization,
        };
        let expected = info.frames.map(|n| match self.fps {
            Some(f) => (n as f64 * f / info.fps.as_f64()).round() as u64,
            None => n,
        });
        let pb = progress::bar(expected.unwrap_or(0), "features", "frames");
        let features = video::extract(video, &info, self.fps, vit, &pre, |done| {
            pb.set_position(done as u64);
            let secs = pb.elapsed().as_secs_f64();
            if secs > 0.0 {
                pb.set_message(format!("{:.1} frames/s", done as f64 / secs));
            }
        })?;
        pb.finish_and_clear();
        Ok((features, info))
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The video file (any container and codec FFmpeg reads).
    #[arg(long, required_unless_present = "videos", conflicts_with = "videos")]
    video: Option<PathBuf>,
    /// A list of video files, one a line (optionally a tab and its frame
    /// count, which balances shards), for a batch: --out is then a folder
    /// of `<stem>.npy`, finished videos are kept on a rerun, and
    /// `<out>/shards/` records the run (`syncseg shards status`).
    #[arg(long)]
    videos: Option<PathBuf>,
    #[command(flatten)]
    vit: VitArgs,
    /// Output `.npy`: float32 `[D, T]` (MS-TCN layout); with --videos, a folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    batch: BatchArgs,
}

fn sampling(fps: Option<f64>) -> String {
    match fps {
        Some(f) => format!("sampled at {f} fps"),
        None => "every frame".to_string(),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let list = match &args.videos {
        Some(list) => Some(read_video_list(list)?),
        None => None,
    };
    if list.is_some() {
        args.batch.options().shard()?;
    }
    let mut vit = args
        .vit
        .encoder(super::device::open_gpu(args.vit.device)?)?;
    let Some(list) = list else {
        let video = args
            .video
            .as_deref()
            .context("--video or --videos is required")?;
        let (features, info) = args.vit.features_of(video, &mut vit)?;
        write_features(&args.out, &features).with_context(|| format!("{}", args.out.display()))?;
        println!(
            "wrote {}: {} × {} frames ({}; video {}×{} at {} fps)",
            args.out.display(),
            features.dim,
            features.frames,
            sampling(args.vit.fps),
            info.width,
            info.height,
            info.fps
        );
        return Ok(());
    };

    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("--out {}", out.display()))?;
    let items: Vec<BatchItem> = list
        .iter()
        .map(|v| BatchItem {
            name: v.name.clone(),
            weight: v.weight(),
            outputs: vec![out.join(format!("{}.npy", v.name))],
        })
        .collect();
    let by_name: HashMap<&str, &ListedVideo> = list.iter().map(|v| (v.name.as_str(), v)).collect();
    let report = run_batch(
        "features",
        out,
        &items,
        &args.batch.options(),
        &mut CliMonitor::train(),
        |item| {
            let video = by_name[item.name.as_str()];
            let started = std::time::Instant::now();
            let (features, _) = args
                .vit
                .features_of(&video.path, &mut vit)
                .map_err(|e| Error::invalid(format!("{e:#}")))?;
            write_features(&item.outputs[0], &features)?;
            eprintln!(
                "{}: {} × {} frames ({}) in {:.1} s",
                video.path.display(),
                features.dim,
                features.frames,
                sampling(args.vit.fps),
                started.elapsed().as_secs_f64()
            );
            Ok(features.frames as u64)
        },
    )?;
    println!(
        "wrote the features of {} videos into {} ({} already there, {} frames now)",
        report.done,
        out.display(),
        report.reused,
        report.frames
    );
    Ok(())
}
