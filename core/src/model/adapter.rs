//! The feature-distillation adapter of the sync paper: a residual transformer
//! encoder over time, θ(x) = x + Enc(x), applied to frozen per-frame features.
//!
//! ```text
//! x [B,D,T] ─▶ [B,T,D] ─in_proj─▶ [B,T,W] + PE(t) ─▶ layers × { h += Attn(LN₁ h); h += FFN(LN₂ h) }
//!          ─▶ norm ─out_proj─▶ [B,T,D] ─▶ [B,D,T] ─▶ + x
//! ```
//!
//! * `out_proj` starts at zero (weight and bias), so a fresh adapter is the
//!   identity and the student starts exactly at the teacher's features;
//!   distillation then only has to learn the exo→ego *difference*.
//! * Attention is genuine temporal self-attention: every frame attends to
//!   every (real) frame of the window. The paper's release reshaped the
//!   features so that each "sequence" had length 1, which silently turns the
//!   attention into a per-frame MLP; that is deliberately not reproduced.
//! * The positional encoding is the fixed sinusoidal one, computed at each
//!   call: it needs no parameters and is defined for any number of frames,
//!   whereas a learned table would cap the window length at training time.
//! * Pre-LayerNorm layers (norm inside the residual branch) keep the residual
//!   path clean, which is what makes the zero-initialised output exact and
//!   deep stacks (12 layers in the paper) trainable without warm-up tricks.
//! * No dropout: forward passes are deterministic.
//!
//! The topology is written once, [`adapter_forward`], over the op interface
//! ([`super::ops::Ops`]) and channel-major tensors `[B, C, T]`: every linear
//! layer acts per frame, LayerNorm over each frame's channels, attention
//! across one window's frames. [`Adapter`] runs it on candle (the CPU path,
//! with autodiff); the wgpu recorder runs the same function for inference
//! and training.
//!
//! Memory on the CPU: each layer materialises a `[B, heads, T, T]` score
//! tensor, which is fine for one window of up to a few thousand frames. Long
//! videos are cut into windows by the caller (see `train::windows`), not
//! here. (The GPU kernels stream the keys and never store the scores.)
//!
//! Tensor names under the [`VarBuilder`] (W = width, F = ffn, D = input dim):
//!
//! | name                          | shape     |
//! |-------------------------------|-----------|
//! | `in_proj.weight` / `.bias`    | [W, D] / [W] |
//! | `layers.{i}.norm1.weight` / `.bias` | [W] |
//! | `layers.{i}.attn.qkv.weight` / `.bias` | [3W, W] / [3W] — rows `0..W` are q, `W..2W` k, `2W..3W` v (one fused projection, as `nn.MultiheadAttention`'s `in_proj_weight`) |
//! | `layers.{i}.attn.out.weight` / `.bias` | [W, W] / [W] |
//! | `layers.{i}.norm2.weight` / `.bias` | [W] |
//! | `layers.{i}.ffn.fc1.weight` / `.bias` | [F, W] / [F] |
//! | `layers.{i}.ffn.fc2.weight` / `.bias` | [W, F] / [W] |
//! | `norm.weight` / `.bias`       | [W] |
//! | `out_proj.weight` / `.bias`   | [D, W] / [D] |
//!
//! Within a head of size `W / heads`, head `h` uses columns `h·W/heads ..
//! (h+1)·W/heads` of q, k and v, as PyTorch does.

use candle_core::{Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use super::candle_ops::{CandleLayers, CandleOps};
use super::declare::{Declare, Layer};
use super::ops::{LayerNormSpec, LinearInit, LinearSpec, Ops};
use crate::error::{Error, Result};

/// LayerNorm epsilon, PyTorch's default.
const LN_EPS: f64 = 1e-5;

/// The most encoder layers an adapter may have (the paper's has 12).
pub const MAX_LAYERS: usize = 1024;

/// Shape of the adapter's transformer encoder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdapterConfig {
    /// Number of encoder layers.
    pub layers: usize,
    /// Attention heads per layer; must divide `width`.
    pub heads: usize,
    /// Model width W (the features are projected from D to W and back).
    pub width: usize,
    /// Hidden size of each layer's feed-forward block.
    pub ffn: usize,
}

impl AdapterConfig {
    /// The paper's adapter: 12 layers, 16 heads, width 1024, FFN 4096.
    pub fn paper() -> Self {
        AdapterConfig {
            layers: 12,
            heads: 16,
            width: 1024,
            ffn: 4096,
        }
    }

    /// A small adapter for tests and the synthetic benchmark: 2 layers,
    /// 4 heads, width 64, FFN 128.
    pub fn small() -> Self {
        AdapterConfig {
            layers: 2,
            heads: 4,
            width: 64,
            ffn: 128,
        }
    }

    /// Checks that every size is positive and that `heads` divides `width`.
    pub fn validate(&self) -> crate::Result<()> {
        if self.layers == 0 || self.heads == 0 || self.width == 0 || self.ffn == 0 {
            return Err(crate::Error::invalid(format!(
                "adapter config: layers, heads, width and ffn must all be positive \
                 (got layers {}, heads {}, width {}, ffn {})",
                self.layers, self.heads, self.width, self.ffn
            )));
        }
        if self.width > super::config::MAX_DIM || self.ffn > super::config::MAX_DIM {
            return Err(crate::Error::invalid(format!(
                "adapter config: width {} and ffn {} must be at most {}",
                self.width,
                self.ffn,
                super::config::MAX_DIM
            )));
        }
        if self.layers > MAX_LAYERS {
            return Err(crate::Error::invalid(format!(
                "adapter config: {} layers, at most {MAX_LAYERS} are accepted",
                self.layers
            )));
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(crate::Error::invalid(format!(
                "adapter config: width {} is not divisible by heads {}",
                self.width, self.heads
            )));
        }
        Ok(())
    }

    /// Every tensor of the adapter with its shape (the table in the module
    /// documentation), from its topology, without allocating any; call
    /// [`AdapterConfig::validate`] first.
    pub fn param_shapes(&self, input_dim: usize) -> Vec<(String, Vec<usize>)> {
        adapter_specs(self, input_dim)
            .map(|d| d.param_shapes())
            .unwrap_or_default()
    }

    /// Number of trainable scalars for features of dimension `input_dim`.
    pub fn num_params(&self, input_dim: usize) -> usize {
        self.param_shapes(input_dim)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// The adapter's topology, θ(x) = x + Enc(x), over `x` `[D, T]`; `mask`
/// `[1, T]` (1 real, 0 padding) keeps every frame from attending to
/// padded ones.
pub fn adapter_forward<O: Ops>(
    ops: &mut O,
    cfg: &AdapterConfig,
    x: &O::T,
    mask: Option<&O::T>,
) -> Result<O::T> {
    let (d, t) = ops.dims(x);
    let (w, f) = (cfg.width, cfg.ffn);
    let norm = |name: String| LayerNormSpec {
        name,
        channels: w,
        eps: LN_EPS,
    };
    let h = ops.linear(&LinearSpec::new("in_proj", d, w), x)?;
    let mut h = ops.add_constant(&h, &sinusoidal_table(t, w))?;
    for i in 0..cfg.layers {
        let p = format!("layers.{i}");
        // h += Attn(LN₁ h)
        let a = ops.layer_norm(&norm(format!("{p}.norm1")), &h)?;
        let qkv = ops.linear(&LinearSpec::new(format!("{p}.attn.qkv"), w, 3 * w), &a)?;
        let ctx = ops.attention(&qkv, cfg.heads, mask)?;
        let out = ops.linear(&LinearSpec::new(format!("{p}.attn.out"), w, w), &ctx)?;
        h = ops.add(&h, &out)?;
        // h += FFN(LN₂ h)
        let a = ops.layer_norm(&norm(format!("{p}.norm2")), &h)?;
        let z = ops.linear(&LinearSpec::new(format!("{p}.ffn.fc1"), w, f), &a)?;
        let z = ops.gelu(&z)?;
        let z = ops.linear(&LinearSpec::new(format!("{p}.ffn.fc2"), f, w), &z)?;
        h = ops.add(&h, &z)?;
    }
    let a = ops.layer_norm(&norm("norm".into()), &h)?;
    let delta = ops.linear(&LinearSpec::new("out_proj", w, d).zero(), &a)?;
    ops.add(x, &delta)
}

/// The adapter's layers for `input_dim`-dimensional features.
pub fn adapter_specs(cfg: &AdapterConfig, input_dim: usize) -> Result<Declare> {
    cfg.validate()?;
    if input_dim == 0 {
        return Err(Error::invalid("adapter: input_dim must be positive"));
    }
    let mut d = Declare::new();
    // One frame declares every layer.
    adapter_forward(&mut d, cfg, &(input_dim, 1), Some(&(1, 1)))?;
    Ok(d)
}

/// The residual temporal transformer adapter θ(x) = x + Enc(x) on candle.
#[derive(Debug, Clone)]
pub struct Adapter {
    cfg: AdapterConfig,
    input_dim: usize,
    layers: CandleLayers,
    /// The declared layers (names without the builder's prefix).
    declared: Vec<Layer>,
    /// The builder's prefix ("" or "name.").
    prefix: String,
}

impl Adapter {
    /// Builds the adapter for features of dimension `input_dim`, creating or
    /// loading its tensors under `vb` (names in the module docs).
    ///
    /// With a [`VarMap`]-backed builder, the linear layers get candle's
    /// (unseeded) default initialisation; call [`Adapter::init_seeded`] for
    /// reproducible weights. `out_proj` is created at zero either way.
    pub fn new(cfg: &AdapterConfig, input_dim: usize, vb: VarBuilder) -> Result<Self> {
        let declared = adapter_specs(cfg, input_dim)?;
        let layers = CandleLayers::new(&declared, &vb)?;
        let prefix = match vb.prefix() {
            p if p.is_empty() => String::new(),
            p => format!("{p}."),
        };
        Ok(Adapter {
            cfg: cfg.clone(),
            input_dim,
            layers,
            declared: declared.layers().to_vec(),
            prefix,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdapterConfig {
        &self.cfg
    }

    /// The feature dimension D it maps to itself.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// The candle layers (for uploads to a device).
    pub fn layers(&self) -> &CandleLayers {
        &self.layers
    }

    /// The full names of the adapter's variables (including the builder's
    /// prefix), layer by layer in the topology's order.
    pub fn param_names(&self) -> Vec<String> {
        self.declared
            .iter()
            .flat_map(Layer::param_shapes)
            .map(|(n, _)| format!("{}{n}", self.prefix))
            .collect()
    }

    /// The adapter's own variables in `varmap` (the one its builder came
    /// from), named, for an optimiser that must train the adapter and
    /// nothing else (the teacher's and student's backbones stay frozen).
    /// A name missing from `varmap` is an error.
    pub fn named_vars(&self, varmap: &VarMap) -> Result<Vec<(String, Var)>> {
        let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        self.param_names()
            .into_iter()
            .map(|name| {
                let var = data.get(&name).cloned().ok_or_else(|| {
                    Error::invalid(format!("adapter: variable {name} not in varmap"))
                })?;
                Ok((name, var))
            })
            .collect()
    }

    /// Re-initialises every adapter variable in `varmap` from `seed`:
    /// linear weights and biases uniform in ±1/√fan_in (PyTorch's default),
    /// LayerNorm weight 1 and bias 0, `out_proj` zero (so the adapter is
    /// again the identity). candle's initialisers draw from an unseeded
    /// generator, so without this, runs would not be reproducible. Values
    /// are drawn in f64 and cast, so an f32 and an f64 adapter from the same
    /// seed agree to f32 rounding.
    pub fn init_seeded(&self, varmap: &VarMap, seed: u64) -> Result<()> {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        let var = |name: &str| {
            let full = format!("{}{name}", self.prefix);
            data.get(&full)
                .cloned()
                .ok_or_else(|| Error::invalid(format!("adapter: variable {full} not in varmap")))
        };
        let fill = |v: &Var, values: Vec<f64>| -> Result<()> {
            let t = Tensor::from_vec(values, v.shape(), v.device())?.to_dtype(v.dtype())?;
            Ok(v.set(&t)?)
        };
        for layer in &self.declared {
            match layer {
                Layer::Linear(s) => {
                    for part in ["weight", "bias"] {
                        let v = var(&format!("{}.{part}", s.name))?;
                        let n = v.elem_count();
                        let values = match s.init {
                            LinearInit::Uniform => {
                                let bound = 1.0 / (s.cin as f64).sqrt();
                                let dist = rand_distr::Uniform::new_inclusive(-bound, bound)
                                    .map_err(|e| Error::invalid(format!("adapter init: {e}")))?;
                                (0..n).map(|_| dist.sample(&mut rng)).collect()
                            }
                            LinearInit::Zero => vec![0.0; n],
                        };
                        fill(&v, values)?;
                    }
                }
                Layer::LayerNorm(s) => {
                    fill(&var(&format!("{}.weight", s.name))?, vec![1.0; s.channels])?;
                    fill(&var(&format!("{}.bias", s.name))?, vec![0.0; s.channels])?;
                }
                Layer::Conv(s) => {
                    return Err(Error::invalid(format!(
                        "adapter: unexpected convolution {}",
                        s.name
                    )))
                }
            }
        }
        Ok(())
    }

    /// θ(x) = x + Enc(x) for features `x` [B, D, T].
    ///
    /// `mask` [B, T] (any float or integer dtype, 1 = real frame, 0 =
    /// padding) keeps every frame from attending to padded frames, so the
    /// outputs on real frames do not depend on what the padding holds. The
    /// outputs *at* padded frames are meaningless and must be masked out of
    /// any loss by the caller.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, d, t) = x.dims3()?;
        if d != self.input_dim {
            return Err(Error::invalid(format!(
                "adapter: input has {d} channels, the adapter was built for {}",
                self.input_dim
            )));
        }
        let mask = match mask {
            Some(m) if m.dims() != [b, t] => {
                return Err(Error::invalid(format!(
                    "adapter: mask has shape {:?}, expected [{b}, {t}] for input {:?}",
                    m.dims(),
                    x.dims()
                )))
            }
            // `[1, T]` per window, frame-major as the ops' tensors.
            Some(m) => Some(m.to_dtype(x.dtype())?.reshape((b, t, 1))?),
            None => None,
        };
        // Frame-major, each frame's channels contiguous (candle's CPU
        // matmuls and reductions are fastest over the last dimension); in
        // training mode, every op differentiable (the adapter has no batch
        // statistics or dropout, so nothing else differs).
        let mut ops = CandleOps::new(&self.layers, true).frame_major();
        let frames = x.transpose(1, 2)?.contiguous()?;
        let y = adapter_forward(&mut ops, &self.cfg, &frames, mask.as_ref())?;
        Ok(y.transpose(1, 2)?.contiguous()?)
    }
}

/// The fixed sinusoidal positional encoding of "Attention is all you need",
/// channel-major `[width, T]` (row-major): row 2i is sin(t·ω_i), row 2i+1
/// is cos(t·ω_i), with ω_i = 10000^(−2i/width). Computed, not learned, so
/// it exists for any T. An odd width simply ends on a sine row.
pub fn sinusoidal_table(frames: usize, width: usize) -> Vec<f64> {
    let mut data = Vec::with_capacity(frames * width);
    for j in 0..width {
        let i = (j / 2) as f64;
        let omega = (10000f64).powf(-2.0 * i / width as f64);
        for t in 0..frames {
            let angle = t as f64 * omega;
            data.push(if j % 2 == 0 { angle.sin() } else { angle.cos() });
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::adam::{Adam, AdamConfig};
    use candle_core::{DType, Device};
    use rand::SeedableRng;
    use rand_distr::Distribution;

    fn build(cfg: &AdapterConfig, d: usize, dtype: DType, seed: u64) -> (Adapter, VarMap) {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu);
        let a = Adapter::new(cfg, d, vb).unwrap();
        a.init_seeded(&varmap, seed).unwrap();
        (a, varmap)
    }

    #[test]
    fn param_shapes_match_the_network() {
        let cfg = AdapterConfig::small();
        let (_, varmap) = build(&cfg, 6, DType::F32, 0);
        let real = crate::model::var_shapes(&varmap);
        let mut want = cfg.param_shapes(6);
        want.sort();
        assert_eq!(want, real);
        let n: usize = want.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(n, cfg.num_params(6));
    }

    #[test]
    fn huge_sizes_are_refused() {
        for cfg in [
            AdapterConfig {
                width: 1 << 31,
                heads: 1,
                ..AdapterConfig::small()
            },
            AdapterConfig {
                ffn: 1 << 62,
                ..AdapterConfig::small()
            },
            AdapterConfig {
                layers: 1 << 40,
                ..AdapterConfig::small()
            },
        ] {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
    }

    fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| rand_distr::StandardNormal.sample(&mut rng))
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    /// Overwrites variable `name` with N(0, scale²) values.
    fn perturb(varmap: &VarMap, name: &str, scale: f64, seed: u64) {
        let data = varmap.data().lock().unwrap();
        let var = &data[name];
        let t = (randn(var.dims(), var.dtype(), seed) * scale).unwrap();
        var.set(&t).unwrap();
    }

    fn tiny() -> AdapterConfig {
        AdapterConfig {
            layers: 2,
            heads: 4,
            width: 16,
            ffn: 32,
        }
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    #[test]
    fn config_validation_and_presets() {
        assert!(AdapterConfig::paper().validate().is_ok());
        assert!(AdapterConfig::small().validate().is_ok());
        let bad = AdapterConfig {
            heads: 3,
            ..AdapterConfig::small()
        };
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("not divisible"), "{msg}");
        let zero = AdapterConfig {
            layers: 0,
            ..AdapterConfig::small()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("positive"));
        let json = serde_json::to_string(&AdapterConfig::paper()).unwrap();
        let back: AdapterConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, AdapterConfig::paper());
        // Adapter::new refuses an invalid config with the same message.
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let err = Adapter::new(&bad, 8, vb).unwrap_err().to_string();
        assert!(err.contains("not divisible"), "{err}");
    }

    #[test]
    fn param_count_and_names_match_varmap() {
        let cfg = tiny();
        let (a, varmap) = build(&cfg, 12, DType::F32, 0);
        let vars = a.named_vars(&varmap).unwrap();
        assert_eq!(vars.len(), varmap.all_vars().len());
        let total: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
        assert_eq!(total, cfg.num_params(12));
        for n in [
            "in_proj.weight",
            "layers.1.attn.qkv.weight",
            "layers.0.attn.out.bias",
            "layers.1.norm2.weight",
            "layers.0.ffn.fc1.bias",
            "layers.1.ffn.fc2.weight",
            "norm.bias",
            "out_proj.weight",
        ] {
            assert!(a.param_names().iter().any(|p| p == n), "{n}");
        }
        let data = varmap.data().lock().unwrap();
        assert_eq!(data["layers.0.attn.qkv.weight"].dims(), [48, 16]);
        // A prefixed builder prefixes every name.
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu).pp("adapter");
        let p = Adapter::new(&cfg, 12, vb).unwrap();
        assert!(p.param_names().iter().all(|n| n.starts_with("adapter.")));
        p.init_seeded(&vm, 1).unwrap();
    }

    #[test]
    fn seeded_init_is_reproducible() {
        let (_, v1) = build(&tiny(), 12, DType::F32, 7);
        let (_, v2) = build(&tiny(), 12, DType::F32, 7);
        let (d1, d2) = (v1.data().lock().unwrap(), v2.data().lock().unwrap());
        for (name, var) in d1.iter() {
            assert_eq!(
                max_abs_diff(var.as_tensor(), d2[name].as_tensor()),
                0.0,
                "{name}"
            );
        }
        let w = d1["layers.0.ffn.fc2.weight"].as_tensor().abs().unwrap();
        let max = w
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max > 0.0 && max <= 1.0 / 32f32.sqrt());
        assert_eq!(
            d1["norm.weight"]
                .as_tensor()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            16.0
        );
    }

    /// (1) A fresh adapter is exactly the identity, seeded or not.
    #[test]
    fn identity_at_init() {
        let x = randn(&[2, 12, 37], DType::F32, 1);
        let (a, _) = build(&tiny(), 12, DType::F32, 3);
        let y = a.forward(&x, None).unwrap();
        assert_eq!(max_abs_diff(&x, &y), 0.0);
        // candle's default (unseeded) init also starts at the identity.
        let vm = VarMap::new();
        let a = Adapter::new(
            &tiny(),
            12,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let y = a.forward(&x, None).unwrap();
        assert_eq!(max_abs_diff(&x, &y), 0.0);
    }

    /// (2) Shapes: [B, D, T] in, [B, D, T] out; bad shapes are errors.
    #[test]
    fn shapes() {
        let (a, varmap) = build(&tiny(), 12, DType::F32, 3);
        perturb(&varmap, "out_proj.weight", 0.1, 5);
        let x = randn(&[2, 12, 37], DType::F32, 1);
        let mask = Tensor::ones((2, 37), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(a.forward(&x, Some(&mask)).unwrap().dims(), [2, 12, 37]);
        assert_eq!(a.forward(&x, None).unwrap().dims(), [2, 12, 37]);
        // T = 1 works (no positional table to run out of).
        let x1 = randn(&[1, 12, 1], DType::F32, 2);
        assert_eq!(a.forward(&x1, None).unwrap().dims(), [1, 12, 1]);
        let wrong_d = randn(&[2, 11, 37], DType::F32, 1);
        assert!(a.forward(&wrong_d, None).is_err());
        let wrong_mask = Tensor::ones((2, 36), DType::F32, &Device::Cpu).unwrap();
        assert!(a.forward(&x, Some(&wrong_mask)).is_err());
    }

    /// (3) Real frames never see what the padding holds.
    #[test]
    fn key_padding_mask() {
        let (b, d, t, pad) = (2, 12, 30, 5);
        let (a, varmap) = build(&tiny(), d, DType::F32, 3);
        perturb(&varmap, "out_proj.weight", 0.5, 11);
        perturb(&varmap, "out_proj.bias", 0.5, 12);
        let real = randn(&[b, d, t - pad], DType::F32, 1);
        let zeros = Tensor::zeros((b, d, pad), DType::F32, &Device::Cpu).unwrap();
        let noise = (randn(&[b, d, pad], DType::F32, 2) * 10.0).unwrap();
        let xa = Tensor::cat(&[&real, &zeros], 2).unwrap();
        let xb = Tensor::cat(&[&real, &noise], 2).unwrap();
        let mut m = vec![1u8; b * t];
        for bi in 0..b {
            for ti in t - pad..t {
                m[bi * t + ti] = 0;
            }
        }
        let mask = Tensor::from_vec(m, (b, t), &Device::Cpu).unwrap();
        let ya = a
            .forward(&xa, Some(&mask))
            .unwrap()
            .narrow(2, 0, t - pad)
            .unwrap();
        let yb = a
            .forward(&xb, Some(&mask))
            .unwrap()
            .narrow(2, 0, t - pad)
            .unwrap();
        let diff = max_abs_diff(&ya, &yb);
        assert!(diff < 1e-6, "masked outputs differ by {diff}");
        // The test can fail: without the mask the padding leaks in.
        let ua = a.forward(&xa, None).unwrap().narrow(2, 0, t - pad).unwrap();
        let ub = a.forward(&xb, None).unwrap().narrow(2, 0, t - pad).unwrap();
        assert!(max_abs_diff(&ua, &ub) > 1e-2);
        // And the adapter is not trivially the identity here.
        assert!(max_abs_diff(&ya, &real) > 1e-2);
    }

    /// (4) Frame order matters: without positional information, attention and
    /// per-frame layers would be permutation-equivariant, and reversing the
    /// input would just reverse the output.
    #[test]
    fn positional_information() {
        let (d, t) = (12, 25);
        let (a, varmap) = build(&tiny(), d, DType::F32, 3);
        perturb(&varmap, "out_proj.weight", 0.5, 11);
        let x = randn(&[1, d, t], DType::F32, 1);
        let rev =
            Tensor::from_vec((0..t as u32).rev().collect::<Vec<_>>(), t, &Device::Cpu).unwrap();
        let x_rev = x.index_select(&rev, 2).unwrap();
        let y = a.forward(&x, None).unwrap();
        let y_rev = a
            .forward(&x_rev, None)
            .unwrap()
            .index_select(&rev, 2)
            .unwrap();
        let diff = max_abs_diff(&y, &y_rev);
        assert!(diff > 1e-2, "reversal is equivariant (diff {diff})");
        // Sanity: the encoding itself is the textbook one.
        // Channel-major [6, 4]: frame 3 of rows 0, 1, 2.
        let pe = sinusoidal_table(4, 6);
        let w2 = 10000f64.powf(-2.0 / 6.0);
        assert!((pe[3] - 3f64.sin()).abs() < 1e-12);
        assert!((pe[4 + 3] - 3f64.cos()).abs() < 1e-12);
        assert!((pe[2 * 4 + 3] - (3.0 * w2).sin()).abs() < 1e-12);
    }

    /// (5) Autodiff gradients agree with central differences in f64.
    #[test]
    fn gradient_check_f64() {
        let cfg = AdapterConfig {
            layers: 2,
            heads: 2,
            width: 8,
            ffn: 12,
        };
        let (b, d, t) = (2, 5, 7);
        let (a, varmap) = build(&cfg, d, DType::F64, 21);
        perturb(&varmap, "out_proj.weight", 0.5, 31);
        perturb(&varmap, "out_proj.bias", 0.5, 32);
        // Non-trivial LayerNorm affine parameters, so their gradients are generic.
        perturb(&varmap, "layers.0.norm1.bias", 0.3, 33);
        let x = randn(&[b, d, t], DType::F64, 1);
        let r = randn(&[b, d, t], DType::F64, 2);
        // Pad the last two frames of the second sequence, to check the masked path too.
        let mut m = vec![1f64; b * t];
        m[2 * t - 1] = 0.0;
        m[2 * t - 2] = 0.0;
        let mask = Tensor::from_vec(m, (b, t), &Device::Cpu).unwrap();
        let loss = |a: &Adapter| -> Tensor {
            let y = a.forward(&x, Some(&mask)).unwrap();
            (y.sqr().unwrap() * &r).unwrap().sum_all().unwrap()
        };
        let grads = loss(&a).backward().unwrap();
        let vars: std::collections::HashMap<String, Var> =
            a.named_vars(&varmap).unwrap().into_iter().collect();
        let checks: &[(&str, &[usize])] = &[
            ("in_proj.weight", &[0, 7, 33]),
            ("in_proj.bias", &[3]),
            ("layers.0.attn.qkv.weight", &[1, 70, 150]), // q, k and v rows
            // q and v biases: a key bias adds q·b_k to every score of a query,
            // which softmax ignores, so its gradient is exactly zero.
            ("layers.1.attn.qkv.bias", &[2, 18]),
            ("layers.0.attn.out.weight", &[5]),
            ("layers.1.ffn.fc1.weight", &[0, 50]),
            ("layers.0.ffn.fc2.weight", &[17]),
            ("layers.0.norm1.weight", &[2]),
            ("layers.1.norm2.bias", &[6]),
            ("norm.weight", &[4]),
            ("out_proj.weight", &[9]),
        ];
        let h = 1e-5;
        let mut worst = 0f64;
        for (name, idxs) in checks {
            let var = &vars[*name];
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("no grad for {name}"));
            let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let orig = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for &i in *idxs {
                let eval = |delta: f64| {
                    let mut v = orig.clone();
                    v[i] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    loss(&a).to_scalar::<f64>().unwrap()
                };
                let numeric = (eval(h) - eval(-h)) / (2.0 * h);
                eval(0.0);
                let analytic = g[i];
                let rel = (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(1e-6);
                assert!(
                    analytic.abs() > 1e-4,
                    "{name}[{i}]: gradient {analytic} too small to be a meaningful check"
                );
                assert!(
                    rel < 1e-6,
                    "{name}[{i}]: autodiff {analytic} vs numeric {numeric} (rel {rel:e})"
                );
                worst = worst.max(rel);
            }
        }
        eprintln!("gradient check: worst relative error {worst:e}");
    }

    /// (6) It learns a time-dependent shift target[:, :, t] = x[:, :, t] + v·sin(t/5),
    /// which only the positional path can express, on fresh inputs every step.
    #[test]
    fn trains_on_time_dependent_shift() {
        let (b, d, t) = (4, 8, 32);
        let cfg = AdapterConfig {
            layers: 1,
            heads: 2,
            width: 32,
            ffn: 64,
        };
        let (a, varmap) = build(&cfg, d, DType::F32, 5);
        let v = randn(&[1, d, 1], DType::F32, 99);
        let s: Vec<f32> = (0..t).map(|i| (i as f32 / 5.0).sin()).collect();
        let s = Tensor::from_vec(s, (1, 1, t), &Device::Cpu).unwrap();
        let shift = v.broadcast_mul(&s).unwrap(); // [1, D, T]
        let mse = |a: &Adapter, seed: u64| -> Tensor {
            let x = randn(&[b, d, t], DType::F32, seed);
            let target = x.broadcast_add(&shift).unwrap();
            (a.forward(&x, None).unwrap() - target)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
        };
        let eval = |a: &Adapter| -> f32 {
            (0..4)
                .map(|k| mse(a, 10_000 + k).to_scalar::<f32>().unwrap())
                .sum::<f32>()
                / 4.0
        };
        let before = eval(&a);
        let mut opt = Adam::new(
            a.named_vars(&varmap).unwrap(),
            AdamConfig {
                lr: 3e-3,
                ..Default::default()
            },
        )
        .unwrap();
        for step in 0..200 {
            let loss = mse(&a, step);
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let after = eval(&a);
        eprintln!("adapter toy: held-out MSE {before} → {after}");
        assert!(after * 10.0 < before, "MSE {before} → {after}");
    }
}
