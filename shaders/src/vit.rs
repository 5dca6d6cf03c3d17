//! The DINOv2 ViT of `syncseg_core::vision` on a wgpu device: core's
//! `vit_forward` recorded over a batch of `B` images, agreeing with the
//! CPU model.
//!
//! Layout: the images are the recorder's windows, `[B, C, N]` (N = CLS,
//! registers, patches): every linear layer is one 1×1 convolution over the
//! batch, LayerNorm is per token, and attention keeps each image's tokens
//! to themselves. The patches are cut on the host (`[B, 3p², N]`, zero
//! columns where CLS and registers go). The CLS token's final features are
//! one `[B, D]` readback per batch.

use std::collections::HashMap;
use std::sync::Arc;

use syncseg_core::model::ops::Ops;
use syncseg_core::vision::{vit_forward, Mlp, Vit, VitConfig};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, Slot};
use crate::kernels::attention::MAX_HEAD_DIM;
use crate::ops::weights::FoldedWeights;
use crate::ops::Recorder;

/// Images per forward pass unless the bindings say fewer.
pub const DEFAULT_BATCH: usize = 8;

/// One batch size's recorded graph.
struct Plan {
    graph: Graph,
    /// `[B, 3p², N]` patches.
    input: Slot,
    /// `[B, D]` CLS features.
    output: Slot,
}

/// A DINOv2 ViT loaded on a wgpu device.
pub struct WgpuVit {
    gpu: Arc<Gpu>,
    cfg: VitConfig,
    image: usize,
    /// Tokens per image.
    tokens: usize,
    /// `[D, N]`: CLS + pos₀, registers, patch bias + posᵢ.
    embed: Vec<f64>,
    weights: FoldedWeights,
    plans: HashMap<usize, Plan>,
}

impl WgpuVit {
    /// Uploads `vit`'s weights to `gpu`.
    pub fn new(gpu: Arc<Gpu>, vit: &Vit) -> Result<Self> {
        let cfg = *vit.config();
        if cfg.dim / cfg.heads > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "the ViT's heads are {} wide; the GPU attention kernel takes at most {MAX_HEAD_DIM}",
                cfg.dim / cfg.heads
            )));
        }
        let weights = FoldedWeights::upload(&gpu, &vit.specs()?, vit.layers())?;
        Ok(WgpuVit {
            gpu,
            cfg,
            image: vit.image_size(),
            tokens: vit.tokens(),
            embed: vit.embed_table().to_vec(),
            weights,
            plans: HashMap::new(),
        })
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The architecture.
    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// The input side in pixels.
    pub fn image_size(&self) -> usize {
        self.image
    }

    /// Floats of the widest activation per token (q, k and v together, or
    /// the MLP's hidden layer).
    fn widest(&self) -> usize {
        let p = self.cfg.patch;
        let hidden = match self.cfg.mlp {
            Mlp::Gelu { hidden } => hidden,
            Mlp::SwiGlu { hidden } => 2 * hidden,
        };
        hidden.max(3 * p * p).max(3 * self.cfg.dim)
    }

    /// The largest batch (≤ `wanted`) whose activations fit one binding;
    /// an error if not even one image does.
    pub fn batch_that_fits(&self, wanted: usize) -> Result<usize> {
        let per_image = (self.widest() * self.tokens * 4) as u64;
        let fits = (self.gpu.max_binding_bytes() / per_image) as usize;
        if fits == 0 {
            self.gpu
                .check_fits(self.widest() * self.tokens, "one image's ViT activations")?;
        }
        Ok(wanted.clamp(1, fits.max(1)))
    }

    /// CLS features `[B, D]` (row-major) of `B` preprocessed images
    /// `[B, 3, S, S]` (row-major, as [`syncseg_core::vision::Preprocess`]
    /// writes them). Async: a browser must not block on the GPU.
    pub async fn embed(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        let (s, d) = (self.image, self.cfg.dim);
        let per_image = 3 * s * s;
        if images.is_empty() || !images.len().is_multiple_of(per_image) {
            return Err(Error::Unsupported(format!(
                "{} floats are not a whole number of 3×{s}×{s} images",
                images.len()
            )));
        }
        let b = images.len() / per_image;
        if self.batch_that_fits(b)? < b {
            return Err(Error::Unsupported(format!(
                "a batch of {b} images does not fit this adapter's bindings; use at most {}",
                self.batch_that_fits(b)?
            )));
        }
        if !self.plans.contains_key(&b) {
            let plan = self.record(b)?;
            self.plans.insert(b, plan);
        }
        let plan = &self.plans[&b];
        let patches = self.patchify(images, b);
        self.gpu.queue.write_buffer(
            plan.graph.buffer(plan.input),
            0,
            bytemuck::cast_slice(&patches),
        );
        plan.graph.submit();
        // `[B, D, 1]` is `[B, D]` row-major.
        self.gpu.read(plan.graph.buffer(plan.output), d * b).await
    }

    /// `[B, 3p², N]`: column `1 + R + patch` of image `i` holds that patch
    /// flattened as (channel, y, x); CLS and register columns are zero.
    fn patchify(&self, images: &[f32], b: usize) -> Vec<f32> {
        let (s, p, n) = (self.image, self.cfg.patch, self.tokens);
        let grid = s / p;
        let first = 1 + self.cfg.registers;
        let rows = 3 * p * p;
        let mut x = vec![0f32; b * rows * n];
        for i in 0..b {
            let img = &images[i * 3 * s * s..(i + 1) * 3 * s * s];
            let out = &mut x[i * rows * n..(i + 1) * rows * n];
            for gy in 0..grid {
                for gx in 0..grid {
                    let col = first + gy * grid + gx;
                    for ch in 0..3 {
                        for py in 0..p {
                            let src = ch * s * s + (gy * p + py) * s + gx * p;
                            for px in 0..p {
                                let row = (ch * p + py) * p + px;
                                out[row * n + col] = img[src + px];
                            }
                        }
                    }
                }
            }
        }
        x
    }

    /// Records the forward pass for batches of `b` images.
    fn record(&self, b: usize) -> Result<Plan> {
        let (p, n) = (self.cfg.patch, self.tokens);
        let mut graph = Graph::new(self.gpu.clone());
        let mut r = Recorder::inference_over(&mut graph, &self.weights, b);
        let (x, input) = r.new_input(3 * p * p, n, "vit.patches");
        let cls = vit_forward(&mut r, &self.cfg, &x, &self.embed)?;
        debug_assert_eq!(r.dims(&cls), (self.cfg.dim, 1));
        let output = r.slot(&cls)?;
        drop(r);
        self.gpu.check()?;
        Ok(Plan {
            graph,
            input,
            output,
        })
    }
}
