//! `syncseg features`: DINOv2 frame features of a video file, and the
//! ViT options it shares with `syncseg segment`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use syncseg_core::features::Features;
use syncseg_core::npy::write_features;
use syncseg_core::vision::{Normalization, Preprocess, Vit};
use syncseg_shaders::Gpu;

use super::device::{DeviceChoice, FrameEncoder};
use crate::progress;
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
    #[arg(long)]
    video: PathBuf,
    #[command(flatten)]
    vit: VitArgs,
    /// Output `.npy`: float32 `[D, T]` (MS-TCN layout).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut vit = args
        .vit
        .encoder(super::device::open_gpu(args.vit.device)?)?;
    let (features, info) = args.vit.features_of(&args.video, &mut vit)?;
    write_features(&args.out, &features).with_context(|| format!("{}", args.out.display()))?;
    println!(
        "wrote {}: {} × {} frames ({}; video {}×{} at {} fps)",
        args.out.display(),
        features.dim,
        features.frames,
        match args.vit.fps {
            Some(f) => format!("sampled at {f} fps"),
            None => "every frame".to_string(),
        },
        info.width,
        info.height,
        info.fps
    );
    Ok(())
}
