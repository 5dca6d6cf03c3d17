//! The DINOv2 vision transformer (eval mode), returning the CLS token after
//! the final LayerNorm — the frame feature of the sync paper (ViT-L/14,
//! 1024-D).
//!
//! Weights load from a safetensors file in either layout users have: the
//! public DINOv2 checkpoints' (`cls_token`, `pos_embed`,
//! `patch_embed.proj`, `blocks.N.attn.qkv`, `blocks.N.ls1.gamma`, …, as
//! `torch.hub` models' `state_dict()` saved with safetensors) or Hugging
//! Face's `Dinov2Model` (`embeddings.*`, `encoder.layer.N.*`, separate
//! query/key/value). The architecture (width, depth, MLP kind, registers)
//! is read off the tensors; heads are width / 64 as in every DINOv2 model.
//!
//! The topology is written once, [`vit_forward`], over the op interface
//! ([`crate::model::ops::Ops`]): an image is a window of tokens `[D, N]`
//! (CLS, registers, patches). The patch embedding is a linear layer over
//! patches cut beforehand (`[3p², N]`, zero columns where CLS and registers
//! go); CLS, registers, position embeddings and the patch bias are one
//! additive table; LayerScale is folded into the projections it follows
//! when the weights load. [`Vit`] runs it on candle, the wgpu recorder on
//! the device.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::pos_embed::resize_bicubic;
use crate::error::{Error, Result};
use crate::model::candle_ops::{CandleLayers, CandleOps};
use crate::model::cpu_infer::{BufferPool, CpuInference};
use crate::model::declare::Declare;
use crate::model::ops::{LayerNormSpec, LinearSpec, Ops};

/// LayerNorm epsilon of every DINOv2 norm.
const LN_EPS: f64 = 1e-6;
/// DINOv2's offset in the position-embedding resize (see [`super::pos_embed`]).
const POS_OFFSET: f64 = 0.1;

/// The feed-forward block of each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mlp {
    /// fc1 → GELU → fc2 (ViT-S/B/L).
    Gelu {
        /// fc1's output width (4 × dim).
        hidden: usize,
    },
    /// SwiGLU: w12 → silu(a) · b → w3 (ViT-g).
    SwiGlu {
        /// Width of each SwiGLU half (4096 for ViT-g).
        hidden: usize,
    },
}

/// The architecture of a DINOv2 ViT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Token width (the feature dimension: 384, 768, 1024, 1536).
    pub dim: usize,
    /// Transformer layers.
    pub depth: usize,
    /// Attention heads (width / 64 in DINOv2).
    pub heads: usize,
    /// Patch side in pixels (14).
    pub patch: usize,
    /// The feed-forward block.
    pub mlp: Mlp,
    /// Register tokens (the `_reg` checkpoints: 4), 0 otherwise.
    pub registers: usize,
    /// Side of the checkpoint's position-embedding grid (37 for 518 px).
    pub pos_grid: usize,
}

impl VitConfig {
    /// ViT-S/14: 384-D, 12 layers, 6 heads.
    pub fn small() -> Self {
        Self::gelu(384, 12, 6)
    }
    /// ViT-B/14: 768-D, 12 layers, 12 heads.
    pub fn base() -> Self {
        Self::gelu(768, 12, 12)
    }
    /// ViT-L/14: 1024-D, 24 layers, 16 heads (the paper's).
    pub fn large() -> Self {
        Self::gelu(1024, 24, 16)
    }
    /// ViT-g/14: 1536-D, 40 layers, 24 heads, SwiGLU MLP.
    pub fn giant() -> Self {
        VitConfig {
            mlp: Mlp::SwiGlu { hidden: 4096 },
            ..Self::gelu(1536, 40, 24)
        }
    }

    fn gelu(dim: usize, depth: usize, heads: usize) -> Self {
        VitConfig {
            dim,
            depth,
            heads,
            patch: 14,
            mlp: Mlp::Gelu { hidden: 4 * dim },
            registers: 0,
            pos_grid: 37,
        }
    }

    /// The configuration a preset name stands for.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "small" | "vits14" => Ok(Self::small()),
            "base" | "vitb14" => Ok(Self::base()),
            "large" | "vitl14" => Ok(Self::large()),
            "giant" | "vitg14" => Ok(Self::giant()),
            other => Err(Error::invalid(format!(
                "ViT '{other}': expected small, base, large or giant"
            ))),
        }
    }
}

/// The ViT's topology over `patches` `[3p², N]` (one image's patches
/// flattened as (channel, y, x) in raster order, zero columns for CLS and
/// the registers) and `embed` (`[D, N]` row-major, added after the patch
/// embedding): the CLS feature `[D, 1]` after the final LayerNorm.
///
/// Each layer: `x += proj(attn(norm1(x)))`, `x += mlp_out(act(mlp_in(norm2(x))))`
/// (LayerScale folded into `proj` and `mlp_out`).
pub fn vit_forward<O: Ops>(
    ops: &mut O,
    cfg: &VitConfig,
    patches: &O::T,
    embed: &[f64],
) -> Result<O::T> {
    let d = cfg.dim;
    let (cin, _) = ops.dims(patches);
    let norm = |name: String| LayerNormSpec {
        name,
        channels: d,
        eps: LN_EPS,
    };
    let h = ops.linear(&LinearSpec::new("patch_embed.proj", cin, d), patches)?;
    let mut h = ops.add_constant(&h, embed)?;
    for i in 0..cfg.depth {
        let b = |s: &str| format!("blocks.{i}.{s}");
        let a = ops.layer_norm(&norm(b("norm1")), &h)?;
        let qkv = ops.linear(&LinearSpec::new(b("attn.qkv"), d, 3 * d), &a)?;
        let ctx = ops.attention(&qkv, cfg.heads, None)?;
        let y = ops.linear(&LinearSpec::new(b("attn.proj"), d, d), &ctx)?;
        h = ops.add(&h, &y)?;
        let a = ops.layer_norm(&norm(b("norm2")), &h)?;
        let z = match cfg.mlp {
            Mlp::Gelu { hidden } => {
                let z = ops.linear(&LinearSpec::new(b("mlp.fc1"), d, hidden), &a)?;
                let z = ops.gelu(&z)?;
                ops.linear(&LinearSpec::new(b("mlp.fc2"), hidden, d), &z)?
            }
            Mlp::SwiGlu { hidden } => {
                let z = ops.linear(&LinearSpec::new(b("mlp.w12"), d, 2 * hidden), &a)?;
                let z = ops.swiglu(&z)?;
                ops.linear(&LinearSpec::new(b("mlp.w3"), hidden, d), &z)?
            }
        };
        h = ops.add(&h, &z)?;
    }
    // LayerNorm is per token: normalising the CLS token alone is the same.
    let cls = ops.frames(&h, 0, 1)?;
    ops.layer_norm(&norm("norm".into()), &cls)
}

/// The layers of a ViT of architecture `cfg` over `tokens` tokens.
pub fn vit_specs(cfg: &VitConfig, tokens: usize) -> Result<Declare> {
    let mut d = Declare::new();
    let p = cfg.patch;
    let embed = vec![0.0; cfg.dim * tokens];
    vit_forward(&mut d, cfg, &(3 * p * p, tokens), &embed)?;
    Ok(d)
}

/// A DINOv2 ViT ready to embed `image × image` inputs.
pub struct Vit {
    cfg: VitConfig,
    image: usize,
    /// Every linear layer (LayerScale folded in; the patch embedding's bias
    /// is in `embed`) and LayerNorm, by the checkpoint's names.
    layers: CandleLayers,
    /// `[D, N]` row-major: CLS + pos₀, registers, patch bias + posᵢ.
    embed: Vec<f64>,
    /// The CPU executor's activations, kept from one batch of frames to
    /// the next (a batch's shapes repeat; fresh pages cost ~6 %): for the
    /// last batch size met only, so that a video's shorter last batch
    /// does not leave a second set behind.
    buffers: Mutex<(usize, BufferPool)>,
}

/// Tensors by official name, from either layout.
fn official_names(raw: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let raw: HashMap<String, Tensor> = raw
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("dinov2.").map(str::to_string).unwrap_or(k),
                v,
            )
        })
        .collect();
    if !raw.contains_key("embeddings.cls_token") {
        return Ok(raw);
    }
    let mut out = HashMap::new();
    let mut qkv: HashMap<(String, String), [Option<Tensor>; 3]> = HashMap::new();
    for (k, v) in raw {
        let name = if let Some(rest) = k.strip_prefix("encoder.layer.") {
            let (i, rest) = rest.split_once('.').unwrap_or((rest, ""));
            let qkv_part = [
                ("attention.attention.query.", 0),
                ("attention.attention.key.", 1),
                ("attention.attention.value.", 2),
            ]
            .into_iter()
            .find_map(|(p, j)| rest.strip_prefix(p).map(|s| (j, s.to_string())));
            if let Some((j, suffix)) = qkv_part {
                qkv.entry((i.to_string(), suffix)).or_default()[j] = Some(v);
                continue;
            }
            let mapped = match rest {
                r if r.starts_with("attention.output.dense.") => {
                    r.replacen("attention.output.dense.", "attn.proj.", 1)
                }
                "layer_scale1.lambda1" => "ls1.gamma".to_string(),
                "layer_scale2.lambda1" => "ls2.gamma".to_string(),
                r if r.starts_with("mlp.weights_in.") => {
                    r.replacen("mlp.weights_in.", "mlp.w12.", 1)
                }
                r if r.starts_with("mlp.weights_out.") => {
                    r.replacen("mlp.weights_out.", "mlp.w3.", 1)
                }
                r => r.to_string(),
            };
            format!("blocks.{i}.{mapped}")
        } else {
            match k.as_str() {
                "embeddings.cls_token" => "cls_token".into(),
                "embeddings.mask_token" => "mask_token".into(),
                "embeddings.register_tokens" => "register_tokens".into(),
                "embeddings.position_embeddings" => "pos_embed".into(),
                k if k.starts_with("embeddings.patch_embeddings.projection.") => k.replacen(
                    "embeddings.patch_embeddings.projection.",
                    "patch_embed.proj.",
                    1,
                ),
                k if k.starts_with("layernorm.") => k.replacen("layernorm.", "norm.", 1),
                k => k.to_string(),
            }
        };
        out.insert(name, v);
    }
    for ((i, suffix), parts) in qkv {
        let [Some(q), Some(k), Some(v)] = parts else {
            return Err(Error::invalid(format!(
                "layer {i}: query, key and value {suffix} are not all present"
            )));
        };
        out.insert(
            format!("blocks.{i}.attn.qkv.{suffix}"),
            Tensor::cat(&[q, k, v], 0)?,
        );
    }
    Ok(out)
}

impl Vit {
    /// Loads a safetensors checkpoint for `image × image` inputs (224 in
    /// the paper); the architecture comes from the tensors. Errors name the
    /// file and the missing or misshapen tensor.
    pub fn load(path: impl AsRef<Path>, image: usize) -> Result<Self> {
        let path = path.as_ref();
        // Read first: a missing file is an I/O error, not "not a safetensors file".
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let raw = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| Error::format(path, format!("not a safetensors file ({e})")))?;
        Self::from_tensors(raw, image).map_err(|e| Error::format(path, e.to_string()))
    }

    /// [`Vit::load`] from the bytes of a safetensors file (a browser's
    /// `File`); `name` is what errors call it.
    pub fn from_safetensors_bytes(bytes: &[u8], image: usize, name: &str) -> Result<Self> {
        let raw = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| Error::invalid(format!("{name}: not a safetensors file ({e})")))?;
        Self::from_tensors(raw, image).map_err(|e| Error::invalid(format!("{name}: {e}")))
    }

    /// [`Vit::load`] from tensors already in memory (either layout).
    pub fn from_tensors(raw: HashMap<String, Tensor>, image: usize) -> Result<Self> {
        let t = official_names(raw)?;
        let get = |name: &str| -> Result<Tensor> {
            t.get(name)
                .ok_or_else(|| {
                    Error::invalid(format!("tensor '{name}' missing: not a DINOv2 checkpoint"))
                })?
                .to_dtype(DType::F32)
                .map_err(Error::from)
        };
        let cls = get("cls_token")?;
        let dim = *cls.dims().last().unwrap_or(&0);
        let depth = (0..)
            .take_while(|i| t.contains_key(&format!("blocks.{i}.norm1.weight")))
            .count();
        let patch_w = get("patch_embed.proj.weight")?;
        let patch = patch_w.dim(D::Minus1)?;
        let pos = get("pos_embed")?;
        let tokens = pos.dim(1)?;
        let pos_grid = ((tokens - 1) as f64).sqrt().round() as usize;
        if pos_grid * pos_grid + 1 != tokens {
            return Err(Error::invalid(format!(
                "pos_embed has {tokens} tokens: not 1 + a square grid"
            )));
        }
        let mlp = if t.contains_key("blocks.0.mlp.w12.weight") {
            Mlp::SwiGlu {
                hidden: get("blocks.0.mlp.w3.weight")?.dim(1)?,
            }
        } else {
            Mlp::Gelu {
                hidden: get("blocks.0.mlp.fc1.weight")?.dim(0)?,
            }
        };
        let registers = t
            .get("register_tokens")
            .map(|r| r.dim(1))
            .transpose()?
            .unwrap_or(0);
        let cfg = VitConfig {
            dim,
            depth,
            heads: (dim / 64).max(1),
            patch,
            mlp,
            registers,
            pos_grid,
        };
        Self::build(cfg, &get, image)
    }

    /// Builds the model from tensors by official name with `cfg`'s shapes
    /// (tests use this with their own head count).
    pub fn build(
        cfg: VitConfig,
        get: &dyn Fn(&str) -> Result<Tensor>,
        image: usize,
    ) -> Result<Self> {
        if cfg.depth == 0 || cfg.dim == 0 || cfg.heads == 0 || !cfg.dim.is_multiple_of(cfg.heads) {
            return Err(Error::invalid(format!(
                "unusable ViT: width {}, depth {}, heads {}",
                cfg.dim, cfg.depth, cfg.heads
            )));
        }
        if image == 0 || cfg.patch == 0 || !image.is_multiple_of(cfg.patch) {
            return Err(Error::invalid(format!(
                "input size {image} is not a multiple of the patch size {}",
                cfg.patch
            )));
        }
        let d = cfg.dim;
        let shaped = |name: &str, dims: &[usize]| -> Result<Tensor> {
            let x = get(name)?;
            if x.dims() != dims {
                return Err(Error::invalid(format!(
                    "tensor '{name}' has shape {:?}, expected {dims:?}",
                    x.dims()
                )));
            }
            Ok(x)
        };
        // The layers' tensors as `vit_forward` names them.
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        let mut linear = |name: &str, out: usize, inp: usize, scale: Option<&str>| -> Result<()> {
            let mut w = shaped(&format!("{name}.weight"), &[out, inp])?;
            let mut b = shaped(&format!("{name}.bias"), &[out])?;
            // LayerScale `[out]` folded in: ls·(W x + b) = (ls·W) x + ls·b.
            if let Some(ls) = scale {
                if get(ls).is_ok() {
                    let g = shaped(ls, &[d])?;
                    w = w.broadcast_mul(&g.unsqueeze(1)?)?;
                    b = (b * g)?;
                }
            }
            tensors.insert(format!("{name}.weight"), w);
            tensors.insert(format!("{name}.bias"), b);
            Ok(())
        };
        let p = cfg.patch;
        for i in 0..cfg.depth {
            let b = |s: &str| format!("blocks.{i}.{s}");
            linear(&b("attn.qkv"), 3 * d, d, None)?;
            linear(&b("attn.proj"), d, d, Some(&b("ls1.gamma")))?;
            match cfg.mlp {
                Mlp::Gelu { hidden } => {
                    linear(&b("mlp.fc1"), hidden, d, None)?;
                    linear(&b("mlp.fc2"), d, hidden, Some(&b("ls2.gamma")))?;
                }
                Mlp::SwiGlu { hidden } => {
                    linear(&b("mlp.w12"), 2 * hidden, d, None)?;
                    linear(&b("mlp.w3"), d, hidden, Some(&b("ls2.gamma")))?;
                }
            }
        }
        let mut norms = vec!["norm".to_string()];
        for i in 0..cfg.depth {
            norms.push(format!("blocks.{i}.norm1"));
            norms.push(format!("blocks.{i}.norm2"));
        }
        for n in norms {
            for part in ["weight", "bias"] {
                let name = format!("{n}.{part}");
                tensors.insert(name.clone(), shaped(&name, &[d])?);
            }
        }
        let patch_w = shaped("patch_embed.proj.weight", &[d, 3, p, p])?.reshape((d, 3 * p * p))?;
        let patch_b = shaped("patch_embed.proj.bias", &[d])?;
        tensors.insert("patch_embed.proj.weight".into(), patch_w);
        tensors.insert(
            "patch_embed.proj.bias".into(),
            Tensor::zeros(d, DType::F32, &Device::Cpu)?,
        );

        // The additive table: token j of every image starts as embed[:, j].
        let cls = shaped("cls_token", &[1, 1, d])?.reshape((1, d))?;
        let registers = match cfg.registers {
            0 => None,
            r => Some(shaped("register_tokens", &[1, r, d])?.reshape((r, d))?),
        };
        let g = cfg.pos_grid;
        let pos_raw = shaped("pos_embed", &[1, 1 + g * g, d])?.reshape((1 + g * g, d))?;
        let grid = image / p;
        let pos = if grid == g {
            pos_raw
        } else {
            let cls_pos = pos_raw.narrow(0, 0, 1)?;
            let patches = pos_raw
                .narrow(0, 1, g * g)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let resized = resize_bicubic(&patches, (g, g), (grid, grid), d, POS_OFFSET);
            let resized = Tensor::from_vec(resized, (grid * grid, d), &Device::Cpu)?;
            Tensor::cat(&[cls_pos, resized], 0)?
        };
        let mut rows = vec![(cls + pos.narrow(0, 0, 1)?)?];
        rows.extend(registers);
        rows.push(
            pos.narrow(0, 1, grid * grid)?
                .broadcast_add(&patch_b.unsqueeze(0)?)?,
        );
        let embed: Vec<f64> = Tensor::cat(&rows, 0)?
            .t()?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;

        let tokens = 1 + cfg.registers + grid * grid;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let layers = CandleLayers::new(&vit_specs(&cfg, tokens)?, &vb)?;
        Ok(Vit {
            cfg,
            image,
            layers,
            embed,
            buffers: Mutex::new((0, BufferPool::default())),
        })
    }

    /// A model of architecture `cfg` with random weights (normal, std
    /// 0.02; LayerNorm near identity; always the same draw): for benchmarks
    /// and tests, never for features.
    pub fn random(cfg: VitConfig, image: usize) -> Result<Self> {
        Self::random_with_std(cfg, image, Self::RANDOM_STD)
    }

    /// The weights' standard deviation in [`Vit::random`].
    pub const RANDOM_STD: f32 = 0.02;

    /// [`Vit::random`] with weights of standard deviation `std` (LayerNorm
    /// scales 1 + that noise): larger values make parity tests meaningful.
    pub fn random_with_std(cfg: VitConfig, image: usize, std: f32) -> Result<Self> {
        let tensors = random_checkpoint(cfg, std, 0)?;
        let get = |name: &str| -> Result<Tensor> {
            tensors
                .get(name)
                .cloned()
                .ok_or_else(|| Error::invalid(format!("tensor '{name}' missing")))
        };
        Self::build(cfg, &get, image)
    }

    /// The architecture.
    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// The input side in pixels.
    pub fn image_size(&self) -> usize {
        self.image
    }

    /// Tokens per image: CLS, registers, then the patches in raster order.
    pub fn tokens(&self) -> usize {
        let grid = self.image / self.cfg.patch;
        1 + self.cfg.registers + grid * grid
    }

    /// The layers (LayerScale folded in), for uploads to a device.
    pub fn layers(&self) -> &CandleLayers {
        &self.layers
    }

    /// The layers as [`vit_forward`] declares them.
    pub fn specs(&self) -> Result<Declare> {
        vit_specs(&self.cfg, self.tokens())
    }

    /// The table added after the patch embedding, `[D, N]` row-major.
    pub fn embed_table(&self) -> &[f64] {
        &self.embed
    }

    /// Every LayerNorm's epsilon.
    pub const LN_EPS: f64 = LN_EPS;

    /// The CLS features `[B, dim]` of preprocessed images `[B, 3, S, S]`.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = images.dims4()?;
        let (s, p) = (self.image, self.cfg.patch);
        if (c, h, w) != (3, s, s) {
            return Err(Error::invalid(format!(
                "images are {c}×{h}×{w}, the ViT takes 3×{s}×{s}"
            )));
        }
        let grid = s / p;
        // Frame-major `[B, N, 3p²]` (candle's CPU matmuls and fused
        // LayerNorm are fastest over the last dimension): each patch a token
        // flattened as (channel, y, x), in raster order after the CLS and
        // register tokens (zeros).
        let patches = images
            .reshape((b, 3, grid, p, grid, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b, grid * grid, 3 * p * p))?
            .pad_with_zeros(1, 1 + self.cfg.registers, 0)?;
        if images.device().is_cpu() && images.dtype() == candle_core::DType::F32 {
            // The CPU executor, channel-major `[B, 3p², N]`: no per-op
            // allocations, one fork-join per layer, attention per
            // (frame, head) task (BENCHMARKS.md, issue 22).
            let pool = {
                let mut kept = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
                if kept.0 != b {
                    *kept = (b, BufferPool::default());
                }
                kept.1.clone()
            };
            let mut exec = CpuInference::with_pool(&self.layers, &pool);
            let x = exec.input_tensor(&patches.transpose(1, 2)?.contiguous()?)?;
            let cls = vit_forward(&mut exec, &self.cfg, &x, &self.embed)?;
            let d = self.cfg.dim;
            return Ok(Tensor::from_slice(cls.data(), (b, d), images.device())?);
        }
        let mut ops = CandleOps::new(&self.layers, false).frame_major();
        let cls = vit_forward(&mut ops, &self.cfg, &patches, &self.embed)?;
        Ok(cls.squeeze(1)?)
    }
}

/// Random weights of architecture `cfg` by official name (the public
/// checkpoints' layout; save them with `candle_core::safetensors::save`):
/// normal with standard deviation `std`, LayerNorm scales `1 + N(0, std)`,
/// drawn from `seed` (the same seed gives the same weights: a test whose
/// margins depend on the draw is then the same test on every run).
/// For tests and benchmarks; never for real features.
pub fn random_checkpoint(cfg: VitConfig, std: f32, seed: u64) -> Result<HashMap<String, Tensor>> {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let d = cfg.dim;
    let (p, g) = (cfg.patch, cfg.pos_grid);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("cls_token".into(), vec![1, 1, d]),
        ("pos_embed".into(), vec![1, 1 + g * g, d]),
        ("patch_embed.proj.weight".into(), vec![d, 3, p, p]),
        ("patch_embed.proj.bias".into(), vec![d]),
        ("norm.weight".into(), vec![d]),
        ("norm.bias".into(), vec![d]),
    ];
    if cfg.registers > 0 {
        shapes.push(("register_tokens".into(), vec![1, cfg.registers, d]));
    }
    let (fc_in, fc_out, hidden) = match cfg.mlp {
        Mlp::Gelu { hidden } => ("fc1", "fc2", hidden),
        Mlp::SwiGlu { hidden } => ("w12", "w3", hidden),
    };
    let fc_in_width = match cfg.mlp {
        Mlp::Gelu { .. } => hidden,
        Mlp::SwiGlu { .. } => 2 * hidden,
    };
    for i in 0..cfg.depth {
        let b = |s: &str| format!("blocks.{i}.{s}");
        for (name, shape) in [
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.proj.weight", vec![d, d]),
            ("attn.proj.bias", vec![d]),
            ("ls1.gamma", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
            ("ls2.gamma", vec![d]),
        ] {
            shapes.push((b(name), shape));
        }
        shapes.push((b(&format!("mlp.{fc_in}.weight")), vec![fc_in_width, d]));
        shapes.push((b(&format!("mlp.{fc_in}.bias")), vec![fc_in_width]));
        shapes.push((b(&format!("mlp.{fc_out}.weight")), vec![d, hidden]));
        shapes.push((b(&format!("mlp.{fc_out}.bias")), vec![d]));
    }
    let noise = rand_distr::Normal::new(0f32, std)
        .map_err(|e| Error::invalid(format!("random weights of std {std}: {e}")))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = HashMap::new();
    for (name, shape) in shapes {
        let mean = if name.ends_with("norm1.weight")
            || name.ends_with("norm2.weight")
            || name == "norm.weight"
        {
            1f32
        } else {
            0f32
        };
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| mean + noise.sample(&mut rng)).collect();
        tensors.insert(
            name,
            Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?,
        );
    }
    Ok(tensors)
}
