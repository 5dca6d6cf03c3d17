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
//! * TPP on x7: max-pools 2, 3, 5, 6 (kernel = stride) → one shared 1×1 conv
//!   to 1 channel → linear upsampling back to |x7| → concat `[p2, p3, p5, p6, x7]`.
//! * `up`: linear ×2 upsampling (align_corners), zero-pad on the right to the
//!   skip's length when it is odd, concat `[skip, x]`, double_conv.
//! * heads `outcc0..4` = 1×1 conv on ReLU(x) → y1 … y5; `outcc` (no ReLU) → y.
//! * prediction = Σ wᵢ softmax(upsample(headᵢ, T)) / Σ w.
//!
//! The pool of 6 at T/64 needs T ≥ 384 ([`MIN_FRAMES`]); callers pad.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};

use super::batch_norm::MaskedBatchNorm;
use super::config::C2fConfig;
use super::interp::linear;

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

/// A same-padded 1-D convolution computed as im2col + one matrix product.
///
/// candle's own `conv1d` is fast forward but its backward (a transposed
/// convolution and a convolution over swapped axes) was 6× slower than the
/// forward here; written as shifted views and a matmul, the backward is two
/// matmuls and cheap copies, and the forward matches `conv1d` exactly.
#[derive(Debug, Clone)]
pub struct TemporalConv {
    weight: Tensor,
    bias: Tensor,
    k: usize,
}

impl TemporalConv {
    /// Creates or loads `weight` `[C_out, C_in, k]` and `bias` `[C_out]` with
    /// PyTorch's default initialisation (uniform ±1/√fan_in).
    pub fn new(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        let bound = 1.0 / ((cin * k) as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((cout, cin, k), "weight", init)?;
        let bias = vb.get_with_hints(cout, "bias", init)?;
        Ok(TemporalConv { weight, bias, k })
    }

    /// The weight `[C_out, C_in, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[C_out]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// `[B, C_in, T]` → `[B, C_out, T]`, zero padding k/2 on both sides.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, cin, t) = x.dims3()?;
        let cout = self.weight.dim(0)?;
        let cols = if self.k == 1 {
            x.clone()
        } else {
            let p = self.k / 2;
            let xp = x.pad_with_zeros(2, p, self.k - 1 - p)?;
            // cols[b, c*k + j, t] = xp[b, c, t + j]: the weight's own layout.
            let shifted: Vec<Tensor> = (0..self.k)
                .map(|j| xp.narrow(2, j, t))
                .collect::<Result<_>>()?;
            Tensor::stack(&shifted, 2)?.reshape((b, cin * self.k, t))?
        };
        let w = self
            .weight
            .reshape((1, cout, cin * self.k))?
            .broadcast_as((b, cout, cin * self.k))?;
        w.matmul(&cols)?
            .broadcast_add(&self.bias.reshape((1, cout, 1))?)
    }

    /// Eval-mode `bn(conv(x))` as one convolution with BatchNorm folded
    /// into its weight and bias: `w·scale`, `b·scale + shift`.
    pub fn forward_folded(&self, x: &Tensor, bn: &MaskedBatchNorm) -> Result<Tensor> {
        let (scale, shift) = bn.folded()?;
        let cout = self.weight.dim(0)?;
        let w = self.weight.broadcast_mul(&scale.reshape((cout, 1, 1))?)?;
        let b = ((&self.bias * &scale)? + shift)?;
        x.conv1d(&w, self.k / 2, 1, 1, 1)?
            .broadcast_add(&b.reshape((1, cout, 1))?)
    }
}

fn conv(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> Result<TemporalConv> {
    TemporalConv::new(cin, cout, k, vb)
}

/// `conv.0` → `conv.1` (BN) → ReLU → `conv.3` → `conv.4` (BN) → ReLU.
#[derive(Debug, Clone)]
pub struct DoubleConv {
    conv1: TemporalConv,
    bn1: MaskedBatchNorm,
    conv2: TemporalConv,
    bn2: MaskedBatchNorm,
}

impl DoubleConv {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("conv");
        Ok(DoubleConv {
            conv1: conv(cin, cout, 5, vb.pp("0"))?,
            bn1: MaskedBatchNorm::new(cout, vb.pp("1"))?,
            conv2: conv(cout, cout, 5, vb.pp("3"))?,
            bn2: MaskedBatchNorm::new(cout, vb.pp("4"))?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode, mask: Option<&Tensor>) -> Result<Tensor> {
        match mode {
            // Inference: BatchNorm folded into the convolution (one pass
            // instead of four over each activation), and candle's forward
            // conv1d, which is faster than im2col-by-stacking without a backward.
            Mode::Eval => {
                let x = self.conv1.forward_folded(x, &self.bn1)?.relu()?;
                self.conv2.forward_folded(&x, &self.bn2)?.relu()
            }
            Mode::Train { .. } => {
                let x = self
                    .bn1
                    .forward_train(&self.conv1.forward(x)?, mask)?
                    .relu()?;
                self.bn2
                    .forward_train(&self.conv2.forward(&x)?, mask)?
                    .relu()
            }
        }
    }

    /// The two convolutions and their batch norms, for exporters and executors.
    pub fn parts(&self) -> [(&TemporalConv, &MaskedBatchNorm); 2] {
        [(&self.conv1, &self.bn1), (&self.conv2, &self.bn2)]
    }
}

/// The outputs of one forward pass.
#[derive(Debug, Clone)]
pub struct C2fOutput {
    /// The six heads' logits `[B, K, Tₗ]`, ordered `[y, y5, y4, y3, y2, y1]`:
    /// full resolution first, then T/2 … T/32. Distillation levels index this.
    pub heads: Vec<Tensor>,
    /// The last decoder features `[B, decoder_width, T]`.
    pub features: Tensor,
}

/// The C2F-TCN.
pub struct C2fTcn {
    cfg: C2fConfig,
    inc: DoubleConv,
    downs: Vec<DoubleConv>,
    tpp_conv: TemporalConv,
    ups: Vec<DoubleConv>,
    /// `outcc`, then `outcc4` … `outcc0`: the same order as [`C2fOutput::heads`].
    heads: Vec<TemporalConv>,
}

/// Names of the up blocks from the bottleneck upwards, and of their heads.
const UP_NAMES: [&str; 6] = ["up", "up0", "up1", "up2", "up3", "up4"];
const HEAD_NAMES: [&str; 6] = ["outcc0", "outcc1", "outcc2", "outcc3", "outcc4", "outcc"];

impl C2fTcn {
    /// Builds the model, creating or loading every tensor under `vb` with
    /// the reference names (`inc.conv.conv.0.weight`, `tpp.conv.weight`, …).
    pub fn new(cfg: &C2fConfig, vb: VarBuilder) -> Result<Self> {
        let e = cfg.encoder_widths;
        let inc = DoubleConv::new(cfg.input_dim, e[0], vb.pp("inc").pp("conv"))?;
        let downs = (0..6)
            .map(|i| {
                DoubleConv::new(
                    e[i],
                    e[i + 1],
                    vb.pp(format!("down{}", i + 1)).pp("max_pool_conv").pp("1"),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let tpp_conv = conv(e[6], 1, 1, vb.pp("tpp").pp("conv"))?;
        let up_in = cfg.up_in_widths();
        let ups = (0..6)
            .map(|i| DoubleConv::new(up_in[i], cfg.decoder_width, vb.pp(UP_NAMES[i]).pp("conv")))
            .collect::<Result<Vec<_>>>()?;
        let mut heads = HEAD_NAMES
            .iter()
            .map(|n| conv(cfg.decoder_width, cfg.num_classes, 1, vb.pp(*n).pp("conv")))
            .collect::<Result<Vec<_>>>()?;
        heads.reverse();
        // The reference keeps an unused `weights` parameter; load or create it
        // so state dicts round-trip with all 197 entries.
        vb.get_with_hints(6, "weights", Init::Const(1.0))?;
        Ok(C2fTcn {
            cfg: cfg.clone(),
            inc,
            downs,
            tpp_conv,
            ups,
            heads,
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

    /// Forward pass over `x` `[B, D, T]`, T ≥ [`MIN_FRAMES`].
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<C2fOutput> {
        let (_, d, t) = x.dims3()?;
        if d != self.cfg.input_dim {
            candle_core::bail!(
                "the model expects {}-dimensional features, got {d}",
                self.cfg.input_dim
            );
        }
        if t < MIN_FRAMES {
            candle_core::bail!(
                "C2F-TCN needs at least {MIN_FRAMES} frames, got {t} (pad the input)"
            );
        }
        // Valid-frame masks at every resolution: a pooled position is real if
        // any frame under it is (max-pooling the mask like the features).
        let masks: Vec<Option<Tensor>> = match mode {
            Mode::Train { mask: Some(m) } => mask_pyramid(m)?.into_iter().map(Some).collect(),
            _ => vec![None; 7],
        };

        let mut skips = Vec::with_capacity(7);
        let mut h = self.inc.forward(x, mode, masks[0].as_ref())?;
        skips.push(h.clone());
        for (i, down) in self.downs.iter().enumerate() {
            h = down.forward(&maxpool(&h, 2)?, mode, masks[i + 1].as_ref())?;
            skips.push(h.clone());
        }
        let x7 = self.tpp(&h)?;

        let mut heads = Vec::with_capacity(6);
        let mut h = x7;
        for (i, up) in self.ups.iter().enumerate() {
            let level = 5 - i; // skip index: x6 (5) … x1 (0)
            let skip = &skips[level];
            let t_skip = skip.dim(2)?;
            let t_up = 2 * h.dim(2)?;
            let mut upsampled = linear(&h, t_up)?;
            if t_skip > t_up {
                let diff = t_skip - t_up;
                upsampled = upsampled.pad_with_zeros(2, diff / 2, diff - diff / 2)?;
            }
            let cat = Tensor::cat(&[skip, &upsampled], 1)?;
            h = up.forward(&cat, mode, masks[level].as_ref())?;
            // Heads y1 … y5 see ReLU(h); the full-resolution head does not.
            let head = &self.heads[5 - i];
            heads.push(if i < 5 {
                head.forward(&h.relu()?)?
            } else {
                head.forward(&h)?
            });
        }
        heads.reverse();
        Ok(C2fOutput { heads, features: h })
    }

    fn tpp(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(2)?;
        let mut parts = Vec::with_capacity(5);
        for k in [2, 3, 5, 6] {
            let pooled = maxpool(x, k)?;
            let y = self.tpp_conv.forward(&pooled)?;
            parts.push(linear(&y, t)?);
        }
        parts.push(x.clone());
        Tensor::cat(&parts, 1)
    }

    /// The ensemble probabilities `[B, K, T]`: Σ wᵢ softmax(upsample(headᵢ)) / Σ w.
    pub fn ensemble(&self, out: &C2fOutput) -> Result<Tensor> {
        let t = out.heads[0].dim(2)?;
        let total: f32 = self.cfg.ensemble_weights.iter().sum();
        let mut acc: Option<Tensor> = None;
        for (head, &w) in out.heads.iter().zip(&self.cfg.ensemble_weights) {
            if w == 0.0 {
                continue;
            }
            let p = candle_nn::ops::softmax(&linear(head, t)?, 1)?;
            let p = (p * (w / total) as f64)?;
            acc = Some(match acc {
                Some(a) => (a + p)?,
                None => p,
            });
        }
        acc.ok_or_else(|| candle_core::Error::Msg("ensemble weights are all zero".into()))
    }

    /// The TPP block's shared 1×1 convolution (to one channel).
    pub fn tpp_conv(&self) -> &TemporalConv {
        &self.tpp_conv
    }

    /// The six 1×1 output heads in the order of [`C2fOutput::heads`]:
    /// `outcc` (full resolution), then `outcc4` … `outcc0`.
    pub fn heads(&self) -> &[TemporalConv] {
        &self.heads
    }

    /// The convolutions of the encoder and decoder, for executors that fold
    /// BatchNorm: `inc`, `down1..6`, `up`, `up0..4` in that order.
    pub fn blocks(&self) -> Vec<&DoubleConv> {
        std::iter::once(&self.inc)
            .chain(&self.downs)
            .chain(&self.ups)
            .collect()
    }
}

/// Valid-frame masks `[B, 1, Tₗ]` at the seven resolutions T, T/2 … T/64
/// (floor), from a full-resolution `[B, T]` mask: a pooled position is real
/// if any frame under it is. Index `l` < 6 is also the resolution of head `l`.
pub fn mask_pyramid(mask: &Tensor) -> Result<Vec<Tensor>> {
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
pub fn maxpool(x: &Tensor, k: usize) -> Result<Tensor> {
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
