//! C2F-TCN inference on the CPU executor in a loop, for profiling
//! (`perf record`) and timing apart from the training step:
//!
//!     cargo run --release -p syncseg-core --example infer_loop -- [DIM] [BATCH] [ITERS] [FRAMES] [CLASSES]
//!
//! The reference widths (T = 600, K = 33 unless given); one warm-up call,
//! then the mean of ITERS calls.
use candle_core::{Device, Tensor};
use syncseg_core::model::cpu_infer::CpuInference;
use syncseg_core::model::{C2fConfig, ModelMeta, SegModel};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> syncseg_core::Result<()> {
    let (dim, batch, iters) = (arg(1, 1024), arg(2, 1), arg(3, 20).max(1));
    let (frames, classes) = (arg(4, 600), arg(5, 33));
    let dev = Device::Cpu;
    let meta = ModelMeta::new(
        C2fConfig::reference(dim, classes),
        (0..classes).map(|i| format!("c{i}")).collect(),
        vec![],
        frames,
    );
    let model = SegModel::new_seeded(meta, &dev, 0)?;
    let x = Tensor::randn(0f32, 1.0, (batch, dim, frames), &dev)?;
    let mut exec = CpuInference::new(model.net.layers());
    let mut total = 0.0;
    for i in 0..=iters {
        let t0 = std::time::Instant::now();
        let xb = exec.input_tensor(&x)?;
        let p = model.net.infer_cpu(&mut exec, &xb)?;
        std::hint::black_box(p.data()[0]);
        if i > 0 {
            total += t0.elapsed().as_secs_f64();
        }
    }
    println!(
        "D={dim} B={batch} T={frames} K={classes}: inference {:.2} ms (mean of {iters})",
        total / iters as f64 * 1e3
    );
    Ok(())
}
