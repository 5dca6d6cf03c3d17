//! C2F-TCN (Singhania et al.), as in the reference PyTorch code that the sync
//! paper's release reuses, with the same parameter names.
//!
//! ```text
//! x [B,D,T] ─inc─ x1 ─down1─ x2 ─down2─ x3 ─down3─ x4 ─down4─ x5 ─down5─ x6 ─down6─ x7 ─tpp─┐
//!                 │          │          │          │          │          │                │
//!   y  ◄─outcc─ up4 ◄──────── up3 ◄───── up2 ◄───── up1 ◄───── up0 ◄───── up ◄─────────────┘
//!           (T)      y5(T/2)      y4(T/4)   y3(T/8)    y2(T/16)   y1(T/32)
//! ```
//!
//! * `double_conv` = 2 × (TemporalConv k5 p2 → BatchNorm → ReLU); `down` = MaxPool1d(2) + double_conv.
//! * TPP on x7: max-pools `tpp_pools` (2, 3, 5, 6; kernel = stride) → one
//!   shared 1×1 conv to 1 channel → linear upsampling back to |x7| → concat
//!   `[p2, p3, p5, p6, x7]`.
//! * `up`: linear ×2 upsampling (align_corners), zero-pad on the right to the
//!   skip's length when it is odd, concat `[skip, x]`, double_conv.
//! * heads `outcc0..4` = 1×1 conv on ReLU(x) → y1 … y5; `outcc` (no ReLU) → y.
//! * prediction = Σ wᵢ softmax(upsample(headᵢ, T)) / Σ w.
//!
//! The pool of 6 at T/64 needs T ≥ 384 ([`MIN_FRAMES`]); callers pad.
//!
//! The topology is written once, [`c2f_forward`] over the op interface
//! ([`super::ops::Ops`]); [`C2fTcn`] runs it on candle tensors.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

use super::batch_norm::MaskedBatchNorm;
use super::candle_ops::{CandleLayers, CandleOps};
use super::config::C2fConfig;
use super::cpu_conv::{conv1d_same, ConvShape};
use super::declare::Declare;
use super::ops::{ConvSpec, Ops};
use crate::error::{Error, Result};

/// The shortest input the architecture accepts (six halvings, then a pool of 6).
pub const MIN_FRAMES: usize = 384;

/// Train mode (batch statistics over valid frames, running-stat updates) or eval.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// Running statistics; nothing is updated.
    Eval,
    /// Batch statistics; `mask` (`[B, T]`, 1 = real frame) keeps padding out.
    Train {
        /// Valid-frame mask at full resolution, if any frame is padding.
        mask: Option<&'a Tensor>,
    },
}

/// A same-padded (dilated) 1-D convolution, computed by
/// [`super::cpu_conv`]: one GEMM per tap over shifted views, forward and
/// backward, with no im2col copy.
///
/// candle's own `conv1d` builds a single-threaded im2col matrix forward and
/// its backward (a transposed convolution and a convolution over swapped
/// axes) was 6× slower than the forward; the op here is differentiable with
/// a backward of two GEMMs per tap.
#[derive(Debug, Clone)]
pub struct TemporalConv {
    weight: Tensor,
    bias: Tensor,
    k: usize,
    dilation: usize,
    causal: bool,
}

impl TemporalConv {
    /// Creates or loads `weight` `[C_out, C_in, k]` and `bias` `[C_out]` with
    /// PyTorch's default initialisation (uniform ±1/√fan_in).
    pub fn new(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Self::dilated(cin, cout, k, 1, vb)
    }

    /// [`TemporalConv::new`] with taps `dilation` frames apart (padding
    /// `dilation · k/2` on both sides).
    pub fn dilated(
        cin: usize,
        cout: usize,
        k: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let bound = 1.0 / ((cin * k) as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((cout, cin, k), "weight", init)?;
        let bias = vb.get_with_hints(cout, "bias", init)?;
        Ok(TemporalConv {
            weight,
            bias,
            k,
            dilation,
            causal: false,
        })
    }

    /// This convolution causal (taps at and before `t`, zero padding
    /// `dilation · (k − 1)` on the left) or same-padded.
    pub fn with_causal(self, causal: bool) -> Self {
        TemporalConv { causal, ..self }
    }

    /// The weight `[C_out, C_in, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[C_out]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    fn shape(&self, relu: bool) -> ConvShape {
        ConvShape {
            k: self.k,
            dilation: self.dilation,
            causal: self.causal,
            relu,
        }
    }

    /// `[B, C_in, T]` → `[B, C_out, T]`, zero padding `dilation · k/2` on
    /// both sides.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv1d_same(x, &self.weight, &self.bias, self.shape(false))
    }

    /// Eval-mode `bn(conv(x))`, then ReLU when `relu`, as one convolution
    /// with BatchNorm folded into its weight and bias (`w·scale`,
    /// `b·scale + shift`) and the ReLU fused into its output pass. (Applying
    /// `scale` in the output pass instead, without the weight copy, measured
    /// ~7 % faster but rounds differently from the wgpu kernels, which fold
    /// the weights the same way: a 100k-frame browser parity case flipped a
    /// label.)
    pub fn forward_folded(
        &self,
        x: &Tensor,
        bn: &MaskedBatchNorm,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        let (scale, shift) = bn.folded()?;
        let cout = self.weight.dim(0)?;
        let w = self.weight.broadcast_mul(&scale.reshape((cout, 1, 1))?)?;
        let b = ((&self.bias * &scale)? + shift)?;
        conv1d_same(x, &w, &b, self.shape(relu))
    }
}

/// The outputs of one forward pass.
#[derive(Debug, Clone)]
pub struct C2fOutput<T = Tensor> {
    /// The six heads' logits `[B, K, Tₗ]`, ordered `[y, y5, y4, y3, y2, y1]`:
    /// full resolution first, then T/2 … T/32. Distillation levels index this.
    pub heads: Vec<T>,
    /// The last decoder features `[B, decoder_width, T]`.
    pub features: T,
}

/// Names of the up blocks from the bottleneck upwards, and of their heads.
const UP_NAMES: [&str; 6] = ["up", "up0", "up1", "up2", "up3", "up4"];
const HEAD_NAMES: [&str; 6] = ["outcc0", "outcc1", "outcc2", "outcc3", "outcc4", "outcc"];

/// `double_conv` under `prefix`: `{prefix}.0` → BN `.1` → ReLU → `.3` →
/// BN `.4` → ReLU, each convolution k = 5.
fn double_conv<O: Ops>(
    o: &mut O,
    prefix: &str,
    cout: usize,
    x: &O::T,
    mask: Option<&O::T>,
) -> Result<O::T> {
    let cin = o.dims(x).0;
    let first = ConvSpec::bn_relu(format!("{prefix}.0"), format!("{prefix}.1"), cin, cout, 5);
    let h = o.conv(&first, x, mask)?;
    let second = ConvSpec::bn_relu(format!("{prefix}.3"), format!("{prefix}.4"), cout, cout, 5);
    o.conv(&second, &h, mask)
}

/// The C2F-TCN's topology, once for every backend: `x` `[D, T]` (T ≥
/// [`MIN_FRAMES`]) to the six heads and the last decoder features. `mask`
/// (`[1, T]`, 1 = real frame) keeps padding out of training-mode
/// BatchNorm statistics; a pooled position is real if any frame under it is.
pub fn c2f_forward<O: Ops>(
    o: &mut O,
    cfg: &C2fConfig,
    x: &O::T,
    mask: Option<&O::T>,
) -> Result<C2fOutput<O::T>> {
    let e = cfg.encoder_widths;
    let mut masks = vec![mask.cloned()];
    for i in 0..6 {
        let next = match &masks[i] {
            Some(m) => Some(o.max_pool(m, 2)?),
            None => None,
        };
        masks.push(next);
    }

    // Encoder: inc, then six × (MaxPool1d(2) → double_conv).
    let mut skips = Vec::with_capacity(7);
    let mut h = double_conv(o, "inc.conv.conv", e[0], x, masks[0].as_ref())?;
    skips.push(h.clone());
    for i in 0..6 {
        let pooled = o.max_pool(&h, 2)?;
        let prefix = format!("down{}.max_pool_conv.1.conv", i + 1);
        h = double_conv(o, &prefix, e[i + 1], &pooled, masks[i + 1].as_ref())?;
        skips.push(h.clone());
    }

    // TPP: each pool → the one shared 1×1 conv to a channel → resampled
    // back to |x7|, concatenated before x7.
    let t7 = o.dims(&h).1;
    let tpp = ConvSpec::plain("tpp.conv", e[6], 1, 1);
    let mut parts = Vec::with_capacity(cfg.tpp_pools.len() + 1);
    for &k in &cfg.tpp_pools {
        let pooled = o.max_pool(&h, k)?;
        let y = o.conv(&tpp, &pooled, None)?;
        parts.push(o.resample(&y, t7, t7)?);
    }
    parts.push(h);
    let refs: Vec<&O::T> = parts.iter().collect();
    let mut h = o.cat(&refs)?;

    // Decoder: ×2 resampling zero-padded to the skip's length, concat
    // `[skip, x]`, double_conv, head.
    let mut heads = Vec::with_capacity(6);
    for (i, up) in UP_NAMES.iter().enumerate() {
        let level = 5 - i; // skip index: x6 (5) … x1 (0)
        let skip = &skips[level];
        let t_skip = o.dims(skip).1;
        let t_up = 2 * o.dims(&h).1;
        let upsampled = o.resample(&h, t_up, t_skip.max(t_up))?;
        let cat = o.cat(&[skip, &upsampled])?;
        h = double_conv(
            o,
            &format!("{up}.conv.conv"),
            cfg.decoder_width,
            &cat,
            masks[level].as_ref(),
        )?;
        // Heads y1 … y5 see ReLU(h) in the reference, the full-resolution
        // head h itself: h ends in a ReLU, so both are h.
        let head = ConvSpec::plain(
            format!("{}.conv", HEAD_NAMES[i]),
            cfg.decoder_width,
            cfg.num_classes,
            1,
        );
        heads.push(o.conv(&head, &h, None)?);
    }
    heads.reverse();
    Ok(C2fOutput { heads, features: h })
}

/// Every convolution of `cfg`'s C2F-TCN, from its topology.
pub fn c2f_specs(cfg: &C2fConfig) -> Result<Declare> {
    let mut d = Declare::new();
    c2f_forward(&mut d, cfg, &(cfg.input_dim, MIN_FRAMES), None)?;
    Ok(d)
}

/// The reference's unused `weights` parameter (kept so that state dicts
/// round-trip with all 197 entries).
pub const UNUSED_WEIGHTS: &str = "weights";

/// The C2F-TCN on candle tensors.
pub struct C2fTcn {
    cfg: C2fConfig,
    layers: CandleLayers,
}

impl C2fTcn {
    /// Builds the model, creating or loading every tensor under `vb` with
    /// the reference names (`inc.conv.conv.0.weight`, `tpp.conv.weight`, …).
    pub fn new(cfg: &C2fConfig, vb: VarBuilder) -> Result<Self> {
        let layers = CandleLayers::new(&c2f_specs(cfg)?, &vb)?;
        vb.get_with_hints(6, UNUSED_WEIGHTS, Init::Const(1.0))?;
        Ok(C2fTcn {
            cfg: cfg.clone(),
            layers,
        })
    }

    /// A fresh model with PyTorch-default initialisation in a new [`VarMap`].
    pub fn init(cfg: &C2fConfig, device: &Device) -> Result<(Self, VarMap)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = C2fTcn::new(cfg, vb)?;
        Ok((model, varmap))
    }

    /// The configuration.
    pub fn config(&self) -> &C2fConfig {
        &self.cfg
    }

    /// The candle layers by parameter prefix.
    pub fn layers(&self) -> &CandleLayers {
        &self.layers
    }

    /// Forward pass over `x` `[B, D, T]`, T ≥ [`MIN_FRAMES`].
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<C2fOutput> {
        let (_, d, t) = x.dims3()?;
        if d != self.cfg.input_dim {
            return Err(Error::invalid(format!(
                "the model expects {}-dimensional features, got {d}",
                self.cfg.input_dim
            )));
        }
        if t < MIN_FRAMES {
            return Err(Error::invalid(format!(
                "C2F-TCN needs at least {MIN_FRAMES} frames, got {t} (pad the input)"
            )));
        }
        let (train, mask) = match mode {
            Mode::Eval => (false, None),
            Mode::Train { mask } => (true, mask.map(mask_channel).transpose()?),
        };
        let mut ops = CandleOps::new(&self.layers, train);
        c2f_forward(&mut ops, &self.cfg, x, mask.as_ref())
    }

    /// The ensemble probabilities `[B, K, T]`: Σ wᵢ softmax(upsample(headᵢ)) / Σ w.
    pub fn ensemble(&self, heads: &[Tensor]) -> Result<Tensor> {
        CandleOps::new(&self.layers, false).ensemble(heads, &self.cfg.ensemble_weights)
    }
}

/// A `[B, T]` mask as the `[B, 1, T]` f32 tensor the ops take.
fn mask_channel(mask: &Tensor) -> Result<Tensor> {
    Ok(mask.unsqueeze(1)?.to_dtype(DType::F32)?)
}

/// Valid-frame masks `[B, 1, Tₗ]` at the seven resolutions T, T/2 … T/64
/// (floor), from a full-resolution `[B, T]` mask: a pooled position is real
/// if any frame under it is. Index `l` < 6 is also the resolution of head `l`.
pub fn mask_pyramid(mask: &Tensor) -> candle_core::Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(7);
    out.push(mask.unsqueeze(1)?.to_dtype(DType::F32)?);
    for i in 0..6 {
        let next = maxpool(&out[i], 2)?;
        out.push(next);
    }
    Ok(out)
}

/// MaxPool1d with kernel = stride = `k` on `[B, C, T]` (floor of T/k outputs).
///
/// A max over the last axis of `[B, C, T/k, k]`, not candle's `max_pool2d`:
/// the latter's backward (candle 0.11) scales the gradient by (#maxima)/k
/// and, when k does not divide T, upsamples it to the wrong frames, so the
/// encoder below each pooling trained on a wrong gradient. A reduction's
/// backward sends the whole gradient to the maximum (to every tied one).
pub fn maxpool(x: &Tensor, k: usize) -> candle_core::Result<Tensor> {
    let (b, c, t) = x.dims3()?;
    let n = t / k;
    x.narrow(2, 0, n * k)?.reshape((b, c, n, k))?.max(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// d/dx Σ maxpool(x) is 1 at each window's maximum and 0 elsewhere,
    /// including the frames after the last whole window.
    #[test]
    fn max_pool_gradient_is_one_at_each_maximum() {
        let x = [1.0f32, 3.0, 2.0, 0.0, 5.0, -1.0, 4.0];
        let v =
            Var::from_tensor(&Tensor::from_slice(&x, (1, 1, 7), &Device::Cpu).unwrap()).unwrap();
        let y = maxpool(v.as_tensor(), 2).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [3.0, 2.0, 5.0]
        );
        let w = Tensor::from_slice(&[1.0f32, 10.0, 100.0], (1, 1, 3), &Device::Cpu).unwrap();
        let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
        let dx = g
            .get(&v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(dx, [0.0, 1.0, 10.0, 0.0, 100.0, 0.0, 0.0]);
    }
}
