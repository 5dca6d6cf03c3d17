//! The DINOv2 ViT of `syncseg_core::vision` as a recorded graph: frame
//! features on a wgpu device, agreeing with the CPU model.
//!
//! Layout: the `B` images of a batch lie side by side as channel-major
//! tokens `[D, B·N]` (N = CLS, registers, patches), so every linear layer is
//! one 1×1 convolution over all tokens, LayerNorm is per token, and the
//! attention kernel keeps each image's tokens to themselves (sequences of N).
//! The patch embedding is a matmul over patches cut on the host (`[3p², B·N]`,
//! zero columns where CLS and registers go); CLS, registers, position
//! embeddings and the patch bias are one additive table. LayerScale is folded
//! into the projections it follows. At the end the CLS columns are gathered
//! and normalised: one `[D, B]` readback per batch.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Tensor, D};
use candle_nn::{LayerNorm, Linear};
use syncseg_core::vision::{Mlp, Vit, VitConfig};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, Slot};
use crate::kernels::attention::{attention, Attention, SeqLayout, MAX_HEAD_DIM};
use crate::kernels::conv::{conv, Activation, InputPart, OutputRows};
use crate::kernels::copy::{copy_window, WindowParams};
use crate::kernels::layer_norm::{layer_norm, NormFrames};
use crate::kernels::swiglu::swiglu;
use crate::ops::weights::{DeviceConv, DeviceNorm};

/// Images per forward pass unless the bindings say fewer.
pub const DEFAULT_BATCH: usize = 8;

struct DeviceBlock {
    norm1: DeviceNorm,
    qkv: DeviceConv,
    /// LayerScale folded in.
    proj: DeviceConv,
    norm2: DeviceNorm,
    mlp_in: DeviceConv,
    /// LayerScale folded in.
    mlp_out: DeviceConv,
}

/// One batch size's recorded graph.
struct Plan {
    graph: Graph,
    /// `[3p², B·N]` patches.
    input: Slot,
    /// `[D, B]` CLS features.
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
    embed: Vec<f32>,
    patch: DeviceConv,
    blocks: Vec<DeviceBlock>,
    norm: DeviceNorm,
    eps: f32,
    plans: HashMap<usize, Plan>,
}

fn bias(l: &Linear) -> Result<&Tensor> {
    l.bias()
        .ok_or_else(|| Error::Unsupported("a ViT linear layer without a bias".into()))
}

fn norm(gpu: &Gpu, n: &LayerNorm, label: &str) -> Result<DeviceNorm> {
    let beta = n
        .bias()
        .ok_or_else(|| Error::Unsupported(format!("{label}: LayerNorm without a bias")))?;
    DeviceNorm::upload(gpu, n.weight(), beta, label)
}

/// `l` with its outputs scaled by `scale` (LayerScale), if any.
fn scaled(gpu: &Gpu, l: &Linear, scale: Option<&Tensor>, label: &str) -> Result<DeviceConv> {
    match scale {
        None => DeviceConv::upload(gpu, l.weight(), bias(l)?, label),
        Some(g) => {
            let w = l.weight().broadcast_mul(&g.unsqueeze(D::Minus1)?)?;
            let b = bias(l)?.mul(g)?;
            DeviceConv::upload(gpu, &w, &b, label)
        }
    }
}

impl WgpuVit {
    /// Uploads `vit`'s weights to `gpu`.
    pub fn new(gpu: Arc<Gpu>, vit: &Vit) -> Result<Self> {
        let cfg = *vit.config();
        let (d, heads) = (cfg.dim, cfg.heads);
        if d / heads > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "the ViT's heads are {} wide; the GPU attention kernel takes at most {MAX_HEAD_DIM}",
                d / heads
            )));
        }
        let n = vit.tokens();
        let r = cfg.registers;
        // The additive table: token j of every image starts as embed[:, j].
        let pos = vit.pos_embed().squeeze(0)?; // [1 + P, D]
        let cls = (vit.cls_token().squeeze(0)? + pos.narrow(0, 0, 1)?)?;
        let patches = pos
            .narrow(0, 1, n - 1 - r)?
            .broadcast_add(&bias(vit.patch_embed())?.unsqueeze(0)?)?;
        let mut rows = vec![cls];
        if let Some(reg) = vit.register_tokens() {
            rows.push(reg.squeeze(0)?);
        }
        rows.push(patches);
        let embed: Vec<f32> = Tensor::cat(&rows, 0)?
            .t()?
            .contiguous()?
            .flatten_all()?
            .to_vec1()?;
        debug_assert_eq!(embed.len(), d * n);
        let patch_w = vit.patch_embed().weight();
        let no_bias = Tensor::zeros(d, candle_core::DType::F32, &candle_core::Device::Cpu)?;
        let patch = DeviceConv::upload(&gpu, patch_w, &no_bias, "patch_embed")?;
        let blocks = vit
            .blocks()
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let l = |s: &str| format!("blocks.{i}.{s}");
                Ok(DeviceBlock {
                    norm1: norm(&gpu, &b.norm1, &l("norm1"))?,
                    qkv: scaled(&gpu, &b.qkv, None, &l("qkv"))?,
                    proj: scaled(&gpu, &b.proj, b.ls1.as_ref(), &l("proj"))?,
                    norm2: norm(&gpu, &b.norm2, &l("norm2"))?,
                    mlp_in: scaled(&gpu, &b.mlp_in, None, &l("mlp_in"))?,
                    mlp_out: scaled(&gpu, &b.mlp_out, b.ls2.as_ref(), &l("mlp_out"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = norm(&gpu, vit.norm(), "norm")?;
        Ok(WgpuVit {
            gpu,
            cfg,
            image: vit.image_size(),
            tokens: n,
            embed,
            patch,
            blocks,
            norm,
            eps: Vit::LN_EPS as f32,
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

    /// Floats of the widest activation per token (the MLP's hidden layer).
    fn widest(&self) -> usize {
        let p = self.cfg.patch;
        let hidden = match self.cfg.mlp {
            Mlp::Gelu { hidden } | Mlp::SwiGlu { hidden } => hidden,
        };
        hidden.max(3 * p * p).max(self.cfg.dim)
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
        let (s, p, d) = (self.image, self.cfg.patch, self.cfg.dim);
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
            let plan = self.record(b);
            self.plans.insert(b, plan);
        }
        let plan = &self.plans[&b];
        let patches = self.patchify(images, b);
        debug_assert_eq!(patches.len(), 3 * p * p * b * self.tokens);
        self.gpu.queue.write_buffer(
            plan.graph.buffer(plan.input),
            0,
            bytemuck::cast_slice(&patches),
        );
        plan.graph.submit();
        let cls = self.gpu.read(plan.graph.buffer(plan.output), d * b).await?;
        // [D, B] → [B, D].
        Ok((0..b)
            .flat_map(|i| (0..d).map(move |c| (i, c)))
            .map(|(i, c)| cls[c * b + i])
            .collect())
    }

    /// `[3p², B·N]`: column `i·N + 1 + R + patch` holds that patch flattened
    /// as (channel, y, x); CLS and register columns are zero.
    fn patchify(&self, images: &[f32], b: usize) -> Vec<f32> {
        let (s, p, n) = (self.image, self.cfg.patch, self.tokens);
        let grid = s / p;
        let first = 1 + self.cfg.registers;
        let cols = b * n;
        let mut x = vec![0f32; 3 * p * p * cols];
        for i in 0..b {
            let img = &images[i * 3 * s * s..(i + 1) * 3 * s * s];
            for gy in 0..grid {
                for gx in 0..grid {
                    let col = i * n + first + gy * grid + gx;
                    for ch in 0..3 {
                        for py in 0..p {
                            let src = ch * s * s + (gy * p + py) * s + gx * p;
                            for px in 0..p {
                                let row = (ch * p + py) * p + px;
                                x[row * cols + col] = img[src + px];
                            }
                        }
                    }
                }
            }
        }
        x
    }

    /// Records the forward pass for batches of `b` images.
    fn record(&self, b: usize) -> Plan {
        let (d, p, n, heads) = (self.cfg.dim, self.cfg.patch, self.tokens, self.cfg.heads);
        let t = b * n;
        let mut g = Graph::new(self.gpu.clone());
        let input = g.alloc(3 * p * p * t, "vit.patches");
        let tiled: Vec<f32> = self
            .embed
            .chunks(n)
            .flat_map(|row| std::iter::repeat_n(row, b).flatten().copied())
            .collect();
        let embed = g.constant(&tiled, "vit.embed");
        let h = g.alloc(d * t, "vit.h");
        let a = g.alloc(d * t, "vit.ln");
        let (q, k, v) = (
            g.alloc(d * t, "q"),
            g.alloc(d * t, "k"),
            g.alloc(d * t, "v"),
        );
        let ctx = g.alloc(d * t, "ctx");
        let (hidden, swiglu_mlp) = match self.cfg.mlp {
            Mlp::Gelu { hidden } => (hidden, false),
            Mlp::SwiGlu { hidden } => (hidden, true),
        };
        let f = g.alloc(hidden * t, "mlp");
        let f2 = if swiglu_mlp {
            Some(g.alloc(hidden * t, "mlp.gate"))
        } else {
            None
        };
        let rows = |y: Slot, co0: usize, cout: usize| OutputRows {
            y,
            co0,
            cout,
            out_c0: 0,
        };
        let whole = |x: Slot, channels: usize| {
            [InputPart {
                x,
                ci0: 0,
                channels,
            }]
        };

        g.copy(embed, h, d * t);
        let patch = self.patch.bind(&mut g);
        conv(
            &mut g,
            &patch,
            &whole(input, 3 * p * p),
            rows(h, 0, d),
            t,
            Activation::None,
            true,
        );
        for blk in &self.blocks {
            let (g1, b1) = blk.norm1.bind(&mut g);
            layer_norm(&mut g, h, g1, b1, a, NormFrames::whole(d, t), self.eps);
            let qkv = blk.qkv.bind(&mut g);
            for (i, dst) in [q, k, v].into_iter().enumerate() {
                conv(
                    &mut g,
                    &qkv,
                    &whole(a, d),
                    rows(dst, i * d, d),
                    t,
                    Activation::None,
                    false,
                );
            }
            // The images side by side: sequences of n tokens.
            let layout = SeqLayout::side_by_side(t, n);
            let att = Attention {
                q: (q, 0),
                k: (k, 0),
                v: (v, 0),
                input: layout,
                o: ctx,
                output: layout,
                key_mask: None,
                heads,
                head_dim: d / heads,
                frames: t,
                block: n,
            };
            attention(&mut g, &att);
            let proj = blk.proj.bind(&mut g);
            conv(
                &mut g,
                &proj,
                &whole(ctx, d),
                rows(h, 0, d),
                t,
                Activation::None,
                true,
            );
            let (g2, b2) = blk.norm2.bind(&mut g);
            layer_norm(&mut g, h, g2, b2, a, NormFrames::whole(d, t), self.eps);
            let mlp_in = blk.mlp_in.bind(&mut g);
            match f2 {
                None => conv(
                    &mut g,
                    &mlp_in,
                    &whole(a, d),
                    rows(f, 0, hidden),
                    t,
                    Activation::Gelu,
                    false,
                ),
                Some(gate) => {
                    for (half, dst) in [f, gate].into_iter().enumerate() {
                        conv(
                            &mut g,
                            &mlp_in,
                            &whole(a, d),
                            rows(dst, half * hidden, hidden),
                            t,
                            Activation::None,
                            false,
                        );
                    }
                    swiglu(&mut g, f, gate, hidden * t);
                }
            }
            let mlp_out = blk.mlp_out.bind(&mut g);
            conv(
                &mut g,
                &mlp_out,
                &whole(f, hidden),
                rows(h, 0, d),
                t,
                Activation::None,
                true,
            );
        }
        // CLS tokens (column i·N of image i), then the final norm on them.
        let cls = g.alloc(d * b, "vit.cls");
        copy_window(
            &mut g,
            h,
            cls,
            WindowParams {
                rows: d as u32,
                src_stride: t as u32,
                src_t0: 0,
                len: b as u32,
                dst_t: b as u32,
                src_step: n as u32,
                _pad: [0; 2],
            },
        );
        let output = g.alloc(d * b, "vit.out");
        let (gn, bn) = self.norm.bind(&mut g);
        layer_norm(
            &mut g,
            cls,
            gn,
            bn,
            output,
            NormFrames::whole(d, b),
            self.eps,
        );
        Plan {
            graph: g,
            input,
            output,
        }
    }
}
