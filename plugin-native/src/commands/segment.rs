//! `syncseg segment`: from a video file to segments and editor markers in
//! one command (features, model, labels mapped back to every video frame).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::Device;
use syncseg_core::batch_job::{run_batch, BatchItem};
use syncseg_core::labels::write_frame_labels;
use syncseg_core::model::SegModel;
use syncseg_core::npy::write_features;
use syncseg_core::predict::Prediction;
use syncseg_core::video_list::{read_video_list, ListedVideo};
use syncseg_core::Error;

use super::batch::BatchArgs;
use super::device::{FrameEncoder, Runner};
use super::features::VitArgs;
use crate::progress::CliMonitor;
use crate::video::Sampling;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The video file (any container and codec FFmpeg reads).
    #[arg(long, required_unless_present = "videos", conflicts_with = "videos")]
    video: Option<PathBuf>,
    /// A list of video files, one a line (optionally a tab and its frame
    /// count, which balances shards): each is segmented into --out,
    /// finished videos are kept on a rerun, and `<out>/shards/` records the
    /// run (`syncseg shards status`).
    #[arg(long)]
    videos: Option<PathBuf>,
    /// Model directory or bundle; it must take the ViT's feature width.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    vit: VitArgs,
    /// Output folder: `<name>.txt` (a label per video frame),
    /// `<name>.segments.json`, `<name>.npy` (the features) and the export.
    #[arg(long)]
    out: PathBuf,
    /// Also export the segments as `<name>.<ext>` at the video's frame rate.
    #[arg(long)]
    export: Option<syncseg_core::export::ExportFormat>,
    #[command(flatten)]
    batch: BatchArgs,
}

/// The files [`segment_one`] writes for `name`.
fn outputs(args: &Args, name: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = ["npy", "txt", "segments.json"]
        .iter()
        .map(|ext| args.out.join(format!("{name}.{ext}")))
        .collect();
    if let Some(format) = args.export {
        paths.push(args.out.join(format!("{name}.{}", format.extension())));
    }
    paths
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let list = match &args.videos {
        Some(list) => Some(read_video_list(list)?),
        None => None,
    };
    if list.is_some() {
        args.batch.options().shard()?;
    }
    let model = SegModel::load(&args.model, &Device::Cpu)?;
    // One device for the ViT and the model.
    let gpu = super::device::open_gpu(args.vit.device)?;
    let mut vit = args.vit.encoder(gpu.clone())?;
    let want = model.meta.backbone.input_dim();
    if vit.dim() != want {
        bail!(
            "{}: the model takes {want}-dimensional features, the ViT in {} gives {}: use the ViT the model was trained on",
            args.model.display(),
            args.vit.weights.display(),
            vit.dim()
        );
    }
    let mut runner = super::device::Runner::on(gpu, &model)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let Some(list) = list else {
        let video = args
            .video
            .as_deref()
            .context("--video or --videos is required")?;
        let name = video
            .file_stem()
            .and_then(|s| s.to_str())
            .context("--video: the file name is not valid UTF-8")?
            .to_string();
        segment_one(&args, video, &name, &model, &mut vit, &mut runner)?;
        return Ok(());
    };
    let items: Vec<BatchItem> = list
        .iter()
        .map(|v| BatchItem {
            name: v.name.clone(),
            weight: v.weight(),
            outputs: outputs(&args, &v.name),
        })
        .collect();
    let by_name: HashMap<&str, &ListedVideo> = list.iter().map(|v| (v.name.as_str(), v)).collect();
    let report = run_batch(
        "segment",
        &args.out,
        &items,
        &args.batch.options(),
        &mut CliMonitor::train(),
        |item| {
            let video = by_name[item.name.as_str()];
            segment_one(
                &args,
                &video.path,
                &item.name,
                &model,
                &mut vit,
                &mut runner,
            )
            .map_err(|e| Error::invalid(format!("{e:#}")))
        },
    )?;
    println!(
        "segmented {} videos into {} ({} already there, {} frames now)",
        report.done,
        args.out.display(),
        report.reused,
        report.frames
    );
    Ok(())
}

/// Features, labels mapped back to every video frame, segments and the
/// export of one video into `args.out`, as `name`; returns the frames.
fn segment_one(
    args: &Args,
    video: &Path,
    name: &str,
    model: &SegModel,
    vit: &mut FrameEncoder,
    runner: &mut Runner<'_>,
) -> anyhow::Result<u64> {
    let (features, info) = args.vit.features_of(video, vit)?;
    let pred = runner.predict(&features)?;
    // Back to every video frame: each takes its nearest sampled frame.
    let sampling = Sampling {
        video_fps: info.fps.as_f64(),
        sample_fps: args.vit.fps.unwrap_or(info.fps.as_f64()),
    };
    let t = features.frames;
    let frames = match args.vit.fps {
        None => t,
        Some(f) => info
            .frames
            .map(|n| n as usize)
            .unwrap_or_else(|| (t as f64 * info.fps.as_f64() / f).round() as usize),
    };
    let pred = if frames == t && args.vit.fps.is_none() {
        pred
    } else {
        let k = pred.classes;
        let index: Vec<usize> = (0..frames as u64)
            .map(|n| sampling.label_of(n, t))
            .collect();
        let mut probs = vec![0f32; k * frames];
        for c in 0..k {
            for (n, &i) in index.iter().enumerate() {
                probs[c * frames + n] = pred.probs[c * t + i];
            }
        }
        Prediction::from_probs(probs, k, frames)
    };

    write_features(args.out.join(format!("{name}.npy")), &features)?;
    let classes = &model.meta.classes;
    let labels: Vec<&str> = pred
        .labels
        .iter()
        .map(|&l| classes[l as usize].as_str())
        .collect();
    write_frame_labels(args.out.join(format!("{name}.txt")), &labels)?;
    let segments = pred.segments(classes);
    syncseg_core::export::segments_file::SegmentsFile {
        video: name.to_string(),
        frames: frames as u64,
        fps: Some(info.fps.to_string()),
        segments: segments.clone(),
    }
    .write(args.out.join(format!("{name}.segments.json")))?;
    super::export::beside(
        args.export,
        Some(info.fps),
        &args.out,
        name,
        &segments,
        frames,
    )?;
    println!(
        "{}: {} segments over {frames} frames ({} fps) → {}",
        video.display(),
        segments.len(),
        info.fps,
        args.out.display()
    );
    Ok(frames as u64)
}
