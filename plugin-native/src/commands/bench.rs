//! `syncseg bench step`: time one C2F-TCN inference and one training step
//! (forward + backward + Adam) on the CPU, for BENCHMARKS.md.

use std::time::Instant;

use candle_core::{Device, Tensor};
use syncseg_core::model::{C2fConfig, Mode, ModelMeta, SegModel};
use syncseg_core::train::adam::{Adam, AdamConfig};
use syncseg_core::train::losses::{ensemble_cross_entropy, truncated_mse};

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

    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        for _ in 0..2 {
            f()?;
        }
        let start = Instant::now();
        for _ in 0..args.iters {
            f()?;
        }
        Ok(start.elapsed().as_secs_f64() / args.iters as f64)
    };
    let infer = time(&mut || {
        let out = model.net.forward(&x, Mode::Eval)?;
        model.net.ensemble(&out)?.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    })?;
    let step = time(&mut || {
        let out = model.net.forward(&x, Mode::Train { mask: Some(&mask) })?;
        let p = model.net.ensemble(&out)?;
        let loss =
            (ensemble_cross_entropy(&p, &y, &mask)? + (truncated_mse(&p, &mask, 4.0)? * 0.15)?)?;
        adam.step(&loss.backward()?)?;
        Ok(())
    })?;
    let fwd = forward_flops(&cfg, args.frames) * args.batch as f64;
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
