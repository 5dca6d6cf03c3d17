//! Where a C2F-TCN training step's time goes on the CPU: forward, backward
//! and the Adam update timed apart (BENCHMARKS.md, issue 22's profile).
//!
//!     cargo run --release -p syncseg-core --example step_stages -- [DIM] [BATCH] [ITERS]
//!
//! The reference widths, T = 600, K = 33, one warm-up step. (The CLI's
//! `syncseg bench step` times the whole step; this splits it.)
use candle_core::{DType, Device, Tensor};
use syncseg_core::model::{C2fConfig, Mode, ModelMeta, SegModel};
use syncseg_core::train::adam::{Adam, AdamConfig};
use syncseg_core::train::losses::{ensemble_cross_entropy, truncated_mse};
use syncseg_core::train::supervised::SupervisedLoss;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> syncseg_core::Result<()> {
    let (dim, batch, iters) = (arg(1, 1024), arg(2, 1), arg(3, 10).max(1));
    let (frames, classes) = (600, 33);
    let dev = Device::Cpu;
    let meta = ModelMeta::new(
        C2fConfig::reference(dim, classes),
        (0..classes).map(|i| format!("c{i}")).collect(),
        vec![],
        frames,
    );
    let model = SegModel::new_seeded(meta, &dev, 0)?;
    let x = Tensor::randn(0f32, 1.0, (batch, dim, frames), &dev)?;
    let y = Tensor::zeros((batch, frames), DType::U32, &dev)?;
    let mask = Tensor::ones((batch, frames), DType::F32, &dev)?;
    let vars = syncseg_core::train::trainable_vars(&model);
    let mut adam = Adam::new(vars, AdamConfig::default())?;
    let weights = SupervisedLoss::default();
    let mut seconds = [0.0f64; 3];
    for i in 0..=iters {
        let t0 = std::time::Instant::now();
        let out = model
            .net
            .forward(&x, Mode::Train { mask: Some(&mask) }, 0)?;
        let p = model.net.probabilities(&out)?;
        let smooth = (truncated_mse(&p, &mask, weights.tau)? * weights.smoothing)?;
        let loss = (ensemble_cross_entropy(&p, &y, &mask)? + smooth)?;
        let t1 = std::time::Instant::now();
        let grads = loss.backward()?;
        let t2 = std::time::Instant::now();
        adam.step(&grads)?;
        let t3 = std::time::Instant::now();
        if i > 0 {
            seconds[0] += (t1 - t0).as_secs_f64();
            seconds[1] += (t2 - t1).as_secs_f64();
            seconds[2] += (t3 - t2).as_secs_f64();
        }
    }
    let ms = seconds.map(|s| s * 1e3 / iters as f64);
    println!(
        "D={dim} B={batch} T={frames}: forward {:.1} ms, backward {:.1} ms, Adam {:.1} ms, step {:.1} ms",
        ms[0],
        ms[1],
        ms[2],
        ms.iter().sum::<f64>()
    );
    Ok(())
}
