//! `syncseg bench step`: time one C2F-TCN inference and one training step
//! (forward + backward + Adam) on the CPU, or one training step with the
//! WGSL kernels on a wgpu adapter (with its memory), for BENCHMARKS.md.

use std::time::Instant;

use candle_core::{Device, Tensor};
use syncseg_core::model::cpu_infer::CpuInference;
use syncseg_core::model::{AdapterConfig, C2fConfig, Mode, ModelMeta, SegModel};
use syncseg_core::train::adam::{Adam, AdamConfig};
use syncseg_core::train::losses::{ensemble_cross_entropy, truncated_mse};
use syncseg_core::train::objective::{BatchLoss, TrainBatch};
use syncseg_core::train::supervised::SupervisedLoss;
use syncseg_shaders::train::WgpuStepper;

use super::bench_predict::AdapterSize;
use super::device::{open_gpu, DeviceChoice};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Feature dimension D.
    #[arg(long, default_value_t = 1024)]
    dim: usize,
    /// Frames T of the window.
    #[arg(long, default_value_t = 600)]
    frames: usize,
    /// Classes K.
    #[arg(long, default_value_t = 33)]
    classes: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed iterations (after 2 warm-up iterations).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Where the training step runs: candle on the CPU or the WGSL training
    /// kernels on the wgpu adapter (inference there: `bench predict`).
    #[arg(long, value_enum, default_value_t = DeviceChoice::default())]
    device: DeviceChoice,
    /// Warm-up iterations before timing.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Time a step of feature distillation of this adapter instead (the
    /// C2F-TCN frozen behind it).
    #[arg(long, value_enum, default_value_t = AdapterSize::None)]
    adapter: AdapterSize,
}

/// Forward FLOPs of the reference C2F-TCN per frame-window, counting a
/// multiply-add as 2 (convolutions dominate; pools, TPP and heads included).
fn forward_flops(c: &C2fConfig, t: usize) -> f64 {
    let e = c.encoder_widths;
    let d = c.decoder_width as f64;
    let up_in = c.up_in_widths();
    let mut macs = 0.0;
    let mut len = t as f64;
    // inc and the six downs: two k=5 convs each.
    let mut cin = c.input_dim as f64;
    let mut lens = vec![len];
    for (i, &w) in e.iter().enumerate() {
        if i > 0 {
            len = (len / 2.0).floor();
            lens.push(len);
        }
        macs += len * 5.0 * (cin * w as f64 + w as f64 * w as f64);
        cin = w as f64;
    }
    // ups: from T/32 up to T, two k=5 convs each, plus a 1×1 head.
    for (i, &win) in up_in.iter().enumerate() {
        let l = lens[5 - i];
        macs += l * 5.0 * (win as f64 * d + d * d) + l * d * c.num_classes as f64;
    }
    2.0 * macs
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.iters == 0 || args.frames == 0 || args.dim == 0 || args.batch == 0 {
        anyhow::bail!("--iters, --frames, --dim and --batch must be positive");
    }
    if args.adapter != AdapterSize::None {
        return adapter_step(&args);
    }
    let device = Device::Cpu;
    let cfg = C2fConfig::reference(args.dim, args.classes);
    let meta = ModelMeta::new(
        cfg.clone(),
        (0..args.classes).map(|i| format!("c{i}")).collect(),
        vec![],
        args.frames,
    );
    let model = SegModel::new_seeded(meta, &device, 0)?;
    let x = Tensor::randn(0f32, 1.0, (args.batch, args.dim, args.frames), &device)?;
    let y = Tensor::zeros((args.batch, args.frames), candle_core::DType::U32, &device)?;
    let mask = Tensor::ones((args.batch, args.frames), candle_core::DType::F32, &device)?;
    let mut adam = Adam::new(
        syncseg_core::train::trainable_vars(&model),
        AdamConfig::default(),
    )?;

    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| timed(&args, f);
    let fwd = forward_flops(&cfg, args.frames) * args.batch as f64;
    if let Some(gpu) = open_gpu(args.device)? {
        let device = gpu.describe();
        let mut stepper = WgpuStepper::new(gpu, &model, AdamConfig::default())?;
        let batch = TrainBatch {
            x: x.clone(),
            mask: mask.clone(),
            step: 0,
            loss: BatchLoss::Segmentation {
                labels: y.clone(),
                weight: mask.clone(),
                smoothing: SupervisedLoss::default().smoothing,
                tau: SupervisedLoss::default().tau,
            },
        };
        // A step as training takes it: inputs uploaded, one loss read back.
        let mut loss = f32::NAN;
        let step = time(&mut || {
            loss = pollster::block_on(stepper.step_batch(&batch))?;
            Ok(())
        })?;
        if !loss.is_finite() {
            anyhow::bail!("the training step's loss is {loss}");
        }
        let (params, acts) = (stepper.parameter_bytes(), stepper.peak_activation_bytes());
        let report = serde_json::json!({
            "device": device,
            "dim": args.dim, "frames": args.frames, "classes": args.classes, "batch": args.batch,
            "forward_gflop": fwd / 1e9,
            "train_step_ms": step * 1e3,
            "train_step_gflops": 3.0 * fwd / step / 1e9,
            "last_loss": loss,
            "parameter_bytes": params,
            "activation_bytes": acts,
            "peak_bytes": params + acts,
            "largest_buffer_bytes": stepper.largest_buffer_bytes(),
        });
        if args.json {
            println!("{report}");
        } else {
            println!(
                "C2F-TCN D={} T={} K={} B={} on {device}: forward {:.2} GFLOP\n  train step {:8.1} ms  ({:.1} GFLOP/s, fwd+bwd ≈ 3× fwd; last loss {loss:.4})\n  GPU memory  {:.1} MiB (parameters, gradients, Adam {:.1} MiB; activations {:.1} MiB); largest buffer {:.1} MiB",
                args.dim, args.frames, args.classes, args.batch, fwd / 1e9, step * 1e3,
                3.0 * fwd / step / 1e9,
                (params + acts) as f64 / 1048576.0,
                params as f64 / 1048576.0,
                acts as f64 / 1048576.0,
                stepper.largest_buffer_bytes() as f64 / 1048576.0,
            );
        }
        return Ok(());
    }
    // Inference as `predict` runs it on the CPU: the executor that reuses
    // its buffers across calls, from the features to the probabilities.
    let mut exec = CpuInference::new(model.net.layers());
    let infer = time(&mut || {
        let xb = exec.input_tensor(&x)?;
        let p = model.net.infer_cpu(&mut exec, &xb)?;
        std::hint::black_box(p.data().iter().sum::<f32>());
        Ok(())
    })?;
    let step = time(&mut || {
        let out = model
            .net
            .forward(&x, Mode::Train { mask: Some(&mask) }, 0)?;
        let p = model.net.probabilities(&out)?;
        let weights = SupervisedLoss::default();
        let smoothing = truncated_mse(&p, &mask, weights.tau)? * weights.smoothing;
        let loss = (ensemble_cross_entropy(&p, &y, &mask)? + smoothing?)?;
        adam.step(&loss.backward()?)?;
        Ok(())
    })?;
    let report = serde_json::json!({
        "dim": args.dim, "frames": args.frames, "classes": args.classes, "batch": args.batch,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "forward_gflop": fwd / 1e9,
        "inference_ms": infer * 1e3,
        "inference_gflops": fwd / infer / 1e9,
        "train_step_ms": step * 1e3,
        "train_step_gflops": 3.0 * fwd / step / 1e9,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "C2F-TCN D={} T={} K={} B={}: forward {:.2} GFLOP\n  inference  {:8.1} ms  ({:.1} GFLOP/s)\n  train step {:8.1} ms  ({:.1} GFLOP/s, fwd+bwd ≈ 3× fwd)",
            args.dim, args.frames, args.classes, args.batch, fwd / 1e9, infer * 1e3, fwd / infer / 1e9, step * 1e3,
            3.0 * fwd / step / 1e9
        );
    }
    Ok(())
}

/// Mean seconds of `f` over `--iters` runs after `--warmup` runs.
fn timed(args: &Args, f: &mut dyn FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    for _ in 0..args.warmup {
        f()?;
    }
    let start = Instant::now();
    for _ in 0..args.iters {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() / args.iters as f64)
}

/// `bench step --adapter`: one feature-distillation step of the adapter
/// (forward, masked MSE to the teacher's features, backward, Adam).
fn adapter_step(args: &Args) -> anyhow::Result<()> {
    let device = Device::Cpu;
    let adapter = match args.adapter {
        AdapterSize::Small => AdapterConfig::small(),
        AdapterSize::Paper => AdapterConfig::paper(),
        AdapterSize::None => anyhow::bail!("--adapter none: no adapter to train"),
    };
    let meta = ModelMeta::new(
        C2fConfig::reference(args.dim, args.classes),
        (0..args.classes).map(|i| format!("c{i}")).collect(),
        vec![],
        args.frames,
    );
    let mut model = SegModel::new_seeded(meta, &device, 0)?;
    model.attach_adapter(&adapter, 0)?;
    let shape = (args.batch, args.dim, args.frames);
    let x = Tensor::randn(0f32, 1.0, shape, &device)?;
    let target = Tensor::randn(0f32, 1.0, shape, &device)?;
    let mask = Tensor::ones((args.batch, args.frames), candle_core::DType::F32, &device)?;
    let mut loss = f32::NAN;
    let (step, where_, memory) = match open_gpu(args.device)? {
        Some(gpu) => {
            let name = gpu.describe();
            let mut stepper = WgpuStepper::adapter(gpu, &model, AdamConfig::default())?;
            let batch = TrainBatch {
                x: x.clone(),
                mask: mask.clone(),
                step: 0,
                loss: BatchLoss::FeatureDistillation { target },
            };
            let step = timed(args, &mut || {
                loss = pollster::block_on(stepper.step_batch(&batch))?;
                Ok(())
            })?;
            let memory = stepper.parameter_bytes() + stepper.peak_activation_bytes();
            (step, name, Some(memory))
        }
        None => {
            let Some((a, varmap)) = &model.adapter else {
                anyhow::bail!("the adapter was not attached");
            };
            let mut adam = Adam::new(a.named_vars(varmap)?, AdamConfig::default())?;
            let step = timed(args, &mut || {
                let y = model.adapt(&x, Some(&mask))?;
                let l = (y - &target)?.sqr()?.mean_all()?;
                loss = l.to_scalar::<f32>()?;
                adam.step(&l.backward()?)?;
                Ok(())
            })?;
            (step, "cpu".to_string(), None)
        }
    };
    if !loss.is_finite() {
        anyhow::bail!("the training step's loss is {loss}");
    }
    let report = serde_json::json!({
        "device": where_, "adapter": adapter, "dim": args.dim, "frames": args.frames,
        "batch": args.batch, "parameters": adapter.num_params(args.dim),
        "train_step_ms": step * 1e3, "last_loss": loss, "device_memory_bytes": memory,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "adapter {} layers × width {} (FFN {}), D={} T={} B={} on {where_}: train step {:.1} ms (last loss {loss:.4}){}",
            adapter.layers, adapter.width, adapter.ffn, args.dim, args.frames, args.batch,
            step * 1e3,
            memory.map(|m| format!("; GPU memory {:.1} MiB", m as f64 / 1048576.0)).unwrap_or_default(),
        );
    }
    Ok(())
}
