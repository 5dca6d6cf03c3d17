//! `syncseg bench predict` (whole-model latency on a backend) and
//! `syncseg bench kernels` (per-kernel rates on the wgpu adapter), for
//! BENCHMARKS.md.

use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use syncseg_core::features::Features;
use syncseg_core::model::{AdapterConfig, C2fConfig, ModelMeta, SegModel};

use super::device::{DeviceChoice, Runner};

/// Which feature adapter the benchmarked model carries.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterSize {
    /// No adapter (TAS distillation or a plain teacher).
    None,
    /// 2 layers, width 64.
    Small,
    /// The paper's: 12 layers, 16 heads, width 1024.
    Paper,
}

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::default())]
    device: DeviceChoice,
    /// Feature dimension D.
    #[arg(long, default_value_t = 1024)]
    dim: usize,
    /// Frames of the video.
    #[arg(long, default_value_t = 600)]
    frames: usize,
    /// Classes K.
    #[arg(long, default_value_t = 33)]
    classes: usize,
    /// The model's window (frames per forward pass); default: the whole video.
    #[arg(long)]
    window: Option<usize>,
    /// The feature adapter in front of the C2F-TCN.
    #[arg(long, value_enum, default_value_t = AdapterSize::None)]
    adapter: AdapterSize,
    /// Timed runs (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the benchmarked model as a bundle (for timing the same
    /// model elsewhere, e.g. in a browser: scripts/bench-browser.sh).
    #[arg(long)]
    save_model: Option<std::path::PathBuf>,
    /// Also write the benchmarked features as a `[D, T]` `.npy` file.
    #[arg(long)]
    save_features: Option<std::path::PathBuf>,
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let cfg = C2fConfig::reference(args.dim, args.classes);
    let window = args.window.unwrap_or(args.frames);
    let meta = ModelMeta::new(
        cfg,
        (0..args.classes).map(|i| format!("c{i}")).collect(),
        vec![],
        window,
    );
    let mut model = SegModel::new_seeded(meta, &Device::Cpu, 0)?;
    match args.adapter {
        AdapterSize::None => {}
        AdapterSize::Small => model.attach_adapter(&AdapterConfig::small(), 0)?,
        AdapterSize::Paper => model.attach_adapter(&AdapterConfig::paper(), 0)?,
    }
    let data = (0..args.dim * args.frames)
        .map(|i| ((i as f32) * 0.618).sin())
        .collect();
    let features = Features::new(args.dim, args.frames, data)?;
    if let Some(path) = &args.save_model {
        model.save_bundle(path)?;
    }
    if let Some(path) = &args.save_features {
        syncseg_core::npy::write_features(path, &features)?;
    }
    let mut runner = Runner::open(args.device, &model)?;
    runner.predict(&features)?;
    let start = Instant::now();
    for _ in 0..args.iters {
        runner.predict(&features)?;
    }
    let s = start.elapsed().as_secs_f64() / args.iters.max(1) as f64;
    let report = serde_json::json!({
        "device": runner.describe(), "dim": args.dim, "frames": args.frames,
        "classes": args.classes, "window": window, "adapter": format!("{:?}", args.adapter),
        "latency_ms": s * 1e3, "frames_per_s": args.frames as f64 / s,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "predict on {}: D={} T={} K={} window={} adapter={:?}: {:.1} ms ({:.0} frames/s)",
            runner.describe(),
            args.dim,
            args.frames,
            args.classes,
            window,
            args.adapter,
            s * 1e3,
            args.frames as f64 / s
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct KernelArgs {
    /// Frames T of the convolution, pooling and normalisation inputs.
    #[arg(long, default_value_t = 600)]
    frames: usize,
    /// Frames of the attention input (its cost grows as T²).
    #[arg(long, default_value_t = 600)]
    attention_frames: usize,
    /// Timed dispatches per kernel (after one warm-up).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn kernels(args: KernelArgs) -> anyhow::Result<()> {
    let gpu = pollster::block_on(syncseg_shaders::Gpu::new())?;
    let name = gpu.describe();
    let timings = syncseg_shaders::bench::time_kernels(
        Arc::new(gpu),
        args.frames,
        args.attention_frames,
        args.iters.max(1),
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "device": name, "kernels": timings })
        );
    } else {
        println!("kernels on {name}:");
        for k in &timings {
            println!(
                "  {:<36} {:10.3} ms  {:8.1} {}",
                k.kernel, k.ms, k.rate, k.unit
            );
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct VitBenchArgs {
    /// The DINOv2 architecture: small (ViT-S/14), base, large (ViT-L/14, the
    /// paper's) or giant.
    #[arg(long, default_value = "large")]
    size: String,
    /// Input side in pixels (224 in the paper).
    #[arg(long, default_value_t = 224)]
    image: usize,
    /// Frames per forward pass.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed batches (after one warm-up batch).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Where the ViT runs: cpu, wgpu or auto.
    #[arg(long, value_enum, default_value_t = super::device::DeviceChoice::default())]
    device: super::device::DeviceChoice,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the benchmarked weights as a DINOv2-layout safetensors
    /// file (for timing the same ViT in a browser:
    /// scripts/bench-browser-vit.sh).
    #[arg(long)]
    save_weights: Option<std::path::PathBuf>,
}

/// `syncseg bench vit`: frame-feature extraction rate of a DINOv2 ViT
/// (random weights of the real architecture; decoding and preprocessing
/// excluded, the GPU's upload and readback included).
pub fn vit(args: VitBenchArgs) -> anyhow::Result<()> {
    use syncseg_core::vision::{Vit, VitConfig};
    let cfg = VitConfig::preset(&args.size)?;
    if let Some(path) = &args.save_weights {
        save_random_vit(cfg, path)?;
    }
    let gpu = super::device::open_gpu(args.device)?;
    let mut vit = super::device::FrameEncoder::on(gpu, Vit::random(cfg, args.image)?)?;
    let device = vit.describe();
    let s = args.image;
    let batch = args.batch.max(1);
    let x: Vec<f32> =
        candle_core::Tensor::randn(0f32, 1.0, batch * 3 * s * s, &Device::Cpu)?.to_vec1()?;
    vit.embed(&x, batch)?;
    let start = Instant::now();
    for _ in 0..args.iters.max(1) {
        vit.embed(&x, batch)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let frames = (batch * args.iters.max(1)) as f64;
    let fps = frames / secs;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"size": args.size, "dim": cfg.dim, "depth": cfg.depth,
                "image": s, "batch": batch, "frames_per_s": fps, "device": device})
        );
    } else {
        println!(
            "ViT-{} ({}-D, {} layers) at {s} px on {device}, batch {batch}: {fps:.2} frames/s ({:.0} ms/frame)",
            args.size,
            cfg.dim,
            cfg.depth,
            1000.0 / fps
        );
    }
    Ok(())
}

/// Writes the weights `Vit::random(cfg, _)` draws (the same std and seed) to
/// `path`, atomically: a failed write leaves no file behind.
fn save_random_vit(
    cfg: syncseg_core::vision::VitConfig,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let tensors = syncseg_core::vision::vit::random_checkpoint(
        cfg,
        syncseg_core::vision::Vit::RANDOM_STD,
        0,
    )?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("weights");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    if let Err(e) = candle_core::safetensors::save(&tensors, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("{}: cannot write the weights: {e}", path.display());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("{}: {e}", path.display())
    })?;
    Ok(())
}
