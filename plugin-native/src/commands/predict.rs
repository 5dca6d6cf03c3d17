//! `syncseg predict`: per-frame labels, segments and probabilities.

use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use syncseg_core::export::segments_file::SegmentsFile;
use syncseg_core::labels::{read_bundle, write_frame_labels};
use syncseg_core::model::SegModel;
use syncseg_core::npy::{read_features, write_npy, FeatureLayout};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model directory (from `syncseg train`, `distill` or `import`).
    #[arg(long)]
    model: PathBuf,
    /// Folder of `<video>.npy` features.
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
    #[arg(long, value_enum, default_value_t = super::device::DeviceChoice::Cpu)]
    device: super::device::DeviceChoice,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = Device::Cpu;
    let model = SegModel::load(&args.model, &device)?;
    let names = read_bundle(&args.videos)?;
    let layout = if args.time_major {
        FeatureLayout::TimeByDim
    } else {
        FeatureLayout::DimByTime
    };
    let mut runner = super::device::Runner::open(args.device, &model)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}", args.out.display()))?;
    let pb = crate::progress::bar(names.len() as u64, "predict", "videos");
    for name in &names {
        let fpath = args.features.join(format!("{name}.npy"));
        let features = read_features(&fpath, layout)?;
        let pred = runner
            .predict(&features)
            .with_context(|| format!("{}", fpath.display()))?;
        let label_names: Vec<&str> = pred
            .labels
            .iter()
            .map(|&l| model.meta.classes[l as usize].as_str())
            .collect();
        write_frame_labels(args.out.join(format!("{name}.txt")), &label_names)?;
        SegmentsFile {
            video: name.clone(),
            frames: pred.labels.len() as u64,
            fps: None,
            segments: pred.segments(&model.meta.classes),
        }
        .write(args.out.join(format!("{name}.segments.json")))?;
        super::export::beside(
            args.export,
            args.fps,
            &args.out,
            name,
            &pred.segments(&model.meta.classes),
            pred.labels.len(),
        )?;
        if args.save_probs {
            write_npy(
                args.out.join(format!("{name}.probs.npy")),
                &[pred.classes, pred.labels.len()],
                &pred.probs,
            )?;
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    eprintln!(
        "segmented {} videos into {} ({})",
        names.len(),
        args.out.display(),
        runner.describe()
    );
    Ok(())
}
