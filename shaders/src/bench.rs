//! Per-kernel timings on a device, for BENCHMARKS.md (`syncseg bench kernels`).

use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::{Graph, Slot};
use crate::kernels::attention::{attention, Attention, SeqLayout};
use crate::kernels::conv::{conv, Activation, ConvWeights, InputPart, OutputRows};
use crate::kernels::layer_norm::{layer_norm, NormFrames};
use crate::kernels::pool::{max_pool, resample, resample_table};

/// One kernel's measured time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTiming {
    /// What ran, with its shape.
    pub kernel: String,
    /// Milliseconds per dispatch (mean over the timed iterations).
    pub ms: f64,
    /// Useful floating-point operations per second (multiply-add = 2), in
    /// GFLOP/s; for memory-bound kernels, GB/s of compulsory traffic instead.
    pub rate: f64,
    /// "GFLOP/s" or "GB/s".
    pub unit: &'static str,
}

/// Times each kernel family at `frames` frames (attention at
/// `attention_frames`), `iters` dispatches after one warm-up.
pub fn time_kernels(
    gpu: Arc<Gpu>,
    frames: usize,
    attention_frames: usize,
    iters: usize,
) -> Result<Vec<KernelTiming>> {
    let t = frames;
    let mut out = Vec::new();
    let mut timed = |name: String,
                     work: f64,
                     unit: &'static str,
                     build: &dyn Fn(&mut Graph) -> Slot|
     -> Result<()> {
        let mut g = Graph::new(gpu.clone());
        let probe = build(&mut g);
        g.submit();
        pollster::block_on(gpu.read(g.buffer(probe), 1))?;
        let start = Instant::now();
        for _ in 0..iters {
            g.submit();
        }
        pollster::block_on(gpu.read(g.buffer(probe), 1))?;
        let s = start.elapsed().as_secs_f64() / iters as f64;
        out.push(KernelTiming {
            kernel: name,
            ms: s * 1e3,
            rate: work / s / 1e9,
            unit,
        });
        Ok(())
    };
    for (cin, cout, k) in [
        (1024, 256, 5),
        (256, 256, 5),
        (128, 128, 5),
        (1024, 4096, 1),
    ] {
        timed(
            format!("conv1d {cin}→{cout} k{k} T={t}"),
            2.0 * (cin * cout * k * t) as f64,
            "GFLOP/s",
            &|g| {
                let w = ConvWeights {
                    weight: g.alloc(cout * cin * k, "w"),
                    bias: g.alloc(cout, "b"),
                    cout,
                    cin,
                    k,
                    dilation: 1,
                    causal: false,
                };
                let x = g.alloc(cin * t, "x");
                let y = g.alloc(cout * t, "y");
                let part = [InputPart {
                    x,
                    ci0: 0,
                    channels: cin,
                }];
                let rows = OutputRows {
                    y,
                    co0: 0,
                    cout,
                    out_c0: 0,
                };
                conv(g, &w, &part, rows, t, Activation::Relu, false);
                y
            },
        )?;
    }
    let ta = attention_frames;
    let (heads, dh) = (16, 64);
    timed(
        format!("attention {heads}×{dh} T={ta}"),
        4.0 * (ta * ta * heads * dh) as f64,
        "GFLOP/s",
        &|g| {
            let w = heads * dh;
            let (q, k, v) = (
                g.alloc(w * ta, "q"),
                g.alloc(w * ta, "k"),
                g.alloc(w * ta, "v"),
            );
            let o = g.alloc(w * ta, "o");
            let layout = SeqLayout::side_by_side(ta, ta);
            let a = Attention {
                q: (q, 0),
                k: (k, 0),
                v: (v, 0),
                input: layout,
                o,
                output: layout,
                key_mask: None,
                heads,
                head_dim: dh,
                frames: ta,
                block: ta,
            };
            attention(g, &a);
            o
        },
    )?;
    timed(
        format!("layer_norm 1024 T={t}"),
        2.0 * 4.0 * (1024 * t) as f64,
        "GB/s",
        &|g| {
            let x = g.alloc(1024 * t, "x");
            let (gm, bt) = (g.alloc(1024, "g"), g.alloc(1024, "b"));
            let y = g.alloc(1024 * t, "y");
            layer_norm(g, x, gm, bt, y, NormFrames::whole(1024, t), 1e-5);
            y
        },
    )?;
    timed(
        format!("max_pool 256 T={t}"),
        4.0 * (256 * t + 256 * t / 2) as f64,
        "GB/s",
        &|g| {
            let x = g.alloc(256 * t, "x");
            let y = g.alloc(256 * (t / 2), "y");
            max_pool(g, x, y, 256, t, 2);
            y
        },
    )?;
    timed(
        format!("resample ×2 128 T={t}"),
        4.0 * (128 * t / 2 + 128 * t) as f64,
        "GB/s",
        &|g| {
            let half = t / 2;
            let x = g.alloc(128 * half, "x");
            let table = g.constant_u32(&resample_table(half, 2 * half), "table");
            let y = g.alloc(128 * t, "y");
            resample(g, x, table, y, 128, half, 2 * half, t, 0);
            y
        },
    )?;
    Ok(out)
}
