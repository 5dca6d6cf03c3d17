//! [`Ops`] over candle tensors `[B, C, T]`: the reference implementation
//! and the CPU path, differentiable by candle's autodiff.

use std::collections::HashMap;

use candle_core::{Tensor, D};
use candle_nn::Init;

use super::batch_norm::MaskedBatchNorm;
use super::c2f_tcn::{maxpool, TemporalConv};
use super::declare::{Declare, Layer};
use super::dropout;
use super::interp::linear;
use super::ops::{Act, ConvSpec, LayerNormSpec, LinearInit, LinearSpec, Ops, MASK_PENALTY};
use crate::error::{Error, Result};

/// A linear layer over the channels of `[B, C, T]`: weight `[cout, cin]`,
/// bias `[cout]`.
#[derive(Debug, Clone)]
pub struct ChannelLinear {
    /// `[cout, cin]`.
    pub weight: Tensor,
    /// `[cout]`.
    pub bias: Tensor,
}

impl ChannelLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let cout = self.bias.dim(0)?;
        self.weight
            .broadcast_matmul(x)?
            .broadcast_add(&self.bias.reshape((cout, 1))?)
    }
}

/// A LayerNorm's scale and shift `[C]`.
#[derive(Debug, Clone)]
pub struct ChannelNorm {
    /// Scale γ.
    pub weight: Tensor,
    /// Shift β.
    pub bias: Tensor,
    /// Added to the variance.
    pub eps: f64,
}

impl ChannelNorm {
    /// Over the channels (dim 1) of `[B, C, T]`, written with
    /// differentiable primitives (candle's fused layer norm has no backward).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let c = self.weight.dim(0)?;
        let x = x.broadcast_sub(&x.mean_keepdim(1)?)?;
        let var = x.sqr()?.mean_keepdim(1)?;
        let x = x.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        x.broadcast_mul(&self.weight.reshape((c, 1))?)?
            .broadcast_add(&self.bias.reshape((c, 1))?)
    }
}

/// Exact (erf) GELU, PyTorch's `nn.GELU()` default. Written with `erf`
/// rather than candle's `gelu_erf` because the latter's backward uses a
/// 6-digit constant, which would make gradients only ~1e-6 accurate.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    let cdf = ((x / std::f64::consts::SQRT_2)?.erf()? + 1.0)?;
    (x * cdf)? * 0.5
}

/// A network's candle layers by parameter prefix.
#[derive(Debug, Clone, Default)]
pub struct CandleLayers {
    /// Convolutions by `ConvSpec::name`.
    pub convs: HashMap<String, TemporalConv>,
    /// BatchNorms by `ConvSpec::norm`.
    pub norms: HashMap<String, MaskedBatchNorm>,
    /// Linear layers by `LinearSpec::name`.
    pub linears: HashMap<String, ChannelLinear>,
    /// LayerNorms by `LayerNormSpec::name`.
    pub layer_norms: HashMap<String, ChannelNorm>,
}

impl CandleLayers {
    /// Creates (or loads, when `vb` holds them) the layers `declared`.
    /// New linear layers get candle's (unseeded) default initialisation or
    /// zeros, LayerNorms 1 and 0.
    pub fn new(declared: &Declare, vb: &candle_nn::VarBuilder) -> Result<Self> {
        let mut layers = CandleLayers::default();
        for layer in declared.layers() {
            match layer {
                Layer::Conv(s) => {
                    let conv =
                        TemporalConv::dilated(s.cin, s.cout, s.k, s.dilation, vb.pp(&s.name))?;
                    layers.convs.insert(s.name.clone(), conv);
                    if let Some(norm) = &s.norm {
                        let bn = MaskedBatchNorm::new(s.cout, vb.pp(norm))?;
                        layers.norms.insert(norm.clone(), bn);
                    }
                }
                Layer::Linear(s) => {
                    let lv = vb.pp(&s.name);
                    let linear = match s.init {
                        LinearInit::Uniform => {
                            let l = candle_nn::linear(s.cin, s.cout, lv)?;
                            let bias = l.bias().cloned().ok_or_else(|| {
                                Error::invalid(format!("{}: a linear layer without bias", s.name))
                            })?;
                            ChannelLinear {
                                weight: l.weight().clone(),
                                bias,
                            }
                        }
                        LinearInit::Zero => ChannelLinear {
                            weight: lv.get_with_hints(
                                (s.cout, s.cin),
                                "weight",
                                Init::Const(0.0),
                            )?,
                            bias: lv.get_with_hints(s.cout, "bias", Init::Const(0.0))?,
                        },
                    };
                    layers.linears.insert(s.name.clone(), linear);
                }
                Layer::LayerNorm(s) => {
                    let nv = vb.pp(&s.name);
                    let norm = ChannelNorm {
                        weight: nv.get_with_hints(s.channels, "weight", Init::Const(1.0))?,
                        bias: nv.get_with_hints(s.channels, "bias", Init::Const(0.0))?,
                        eps: s.eps,
                    };
                    layers.layer_norms.insert(s.name.clone(), norm);
                }
            }
        }
        Ok(layers)
    }

    /// The linear layer named `name`.
    pub fn linear(&self, name: &str) -> Result<&ChannelLinear> {
        self.linears
            .get(name)
            .ok_or_else(|| Error::invalid(format!("the network has no linear layer {name}")))
    }

    /// The LayerNorm named `name`.
    pub fn layer_norm(&self, name: &str) -> Result<&ChannelNorm> {
        self.layer_norms
            .get(name)
            .ok_or_else(|| Error::invalid(format!("the network has no layer norm {name}")))
    }

    /// The convolution named `name`.
    pub fn conv(&self, name: &str) -> Result<&TemporalConv> {
        self.convs
            .get(name)
            .ok_or_else(|| Error::invalid(format!("the network has no convolution {name}")))
    }

    /// The BatchNorm named `name`.
    pub fn norm(&self, name: &str) -> Result<&MaskedBatchNorm> {
        self.norms
            .get(name)
            .ok_or_else(|| Error::invalid(format!("the network has no batch norm {name}")))
    }
}

/// Runs ops on candle tensors, in training mode (batch statistics,
/// running-statistic updates, dropout) or eval mode (BatchNorm folded, no
/// dropout).
pub struct CandleOps<'a> {
    layers: &'a CandleLayers,
    train: bool,
    /// The step's dropout seed, and how many dropout ops ran so far.
    dropout_seed: u64,
    dropout_streams: u32,
}

impl<'a> CandleOps<'a> {
    /// Ops over `layers`; `train` selects batch statistics.
    pub fn new(layers: &'a CandleLayers, train: bool) -> Self {
        CandleOps {
            layers,
            train,
            dropout_seed: 0,
            dropout_streams: 0,
        }
    }

    /// Draws this step's dropout masks from `seed`.
    pub fn with_dropout_seed(mut self, seed: u64) -> Self {
        self.dropout_seed = seed;
        self
    }
}

impl Ops for CandleOps<'_> {
    type T = Tensor;

    fn dims(&self, x: &Tensor) -> (usize, usize) {
        let d = x.dims();
        (d[d.len() - 2], d[d.len() - 1])
    }

    fn conv(&mut self, spec: &ConvSpec, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let conv = self.layers.conv(&spec.name)?;
        let y = match &spec.norm {
            // Inference: BatchNorm folded into the convolution (one pass
            // instead of four over each activation), and candle's forward
            // conv1d, faster than im2col-by-stacking when no backward follows.
            Some(norm) if !self.train => conv.forward_folded(x, self.layers.norm(norm)?)?,
            Some(norm) => self
                .layers
                .norm(norm)?
                .forward_train(&conv.forward(x)?, mask)?,
            None => conv.forward(x)?,
        };
        Ok(match spec.act {
            Act::None => y,
            Act::Relu => y.relu()?,
        })
    }

    fn cat(&mut self, parts: &[&Tensor]) -> Result<Tensor> {
        Ok(Tensor::cat(parts, 1)?)
    }

    fn max_pool(&mut self, x: &Tensor, k: usize) -> Result<Tensor> {
        Ok(maxpool(x, k)?)
    }

    fn resample(&mut self, x: &Tensor, len: usize, pad_to: usize) -> Result<Tensor> {
        let y = linear(x, len)?;
        Ok(if pad_to > len {
            y.pad_with_zeros(2, 0, pad_to - len)?
        } else {
            y
        })
    }

    fn add(&mut self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        Ok((a + b)?)
    }

    fn linear(&mut self, spec: &LinearSpec, x: &Tensor) -> Result<Tensor> {
        Ok(self.layers.linear(&spec.name)?.forward(x)?)
    }

    fn layer_norm(&mut self, spec: &LayerNormSpec, x: &Tensor) -> Result<Tensor> {
        Ok(self.layers.layer_norm(&spec.name)?.forward(x)?)
    }

    fn gelu(&mut self, x: &Tensor) -> Result<Tensor> {
        Ok(gelu(x)?)
    }

    fn attention(
        &mut self,
        qkv: &Tensor,
        heads: usize,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, rows, t) = qkv.dims3()?;
        let w = rows / 3;
        let hd = w / heads;
        // [B, W, T] → [B, heads, hd, T]: head h's rows, channel-major.
        let part = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(1, i * w, w)?
                .contiguous()?
                .reshape((b, heads, hd, t))
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        // [B, heads, T (queries), T (keys)]
        let scores = (q.transpose(2, 3)?.matmul(&k)? / (hd as f64).sqrt())?;
        let scores = match key_mask {
            Some(m) => {
                // 1 → 0, 0 → −1e9, broadcast over heads and queries.
                let bias = m
                    .to_dtype(qkv.dtype())?
                    .affine(MASK_PENALTY, -MASK_PENALTY)?;
                scores.broadcast_add(&bias.reshape((b, 1, 1, t))?)?
            }
            None => scores,
        };
        // The composed softmax (not `softmax_last_dim`) because it has a backward.
        let attn = candle_nn::ops::softmax(&scores, D::Minus1)?;
        // [B, heads, hd, T]: each query's context, channel-major again.
        let ctx = v.matmul(&attn.transpose(2, 3)?)?;
        Ok(ctx.reshape((b, w, t))?)
    }

    fn swiglu(&mut self, x: &Tensor) -> Result<Tensor> {
        let h = self.dims(x).0 / 2;
        let a = x.narrow(1, 0, h)?;
        let b = x.narrow(1, h, h)?;
        Ok((candle_nn::ops::silu(&a)? * b)?)
    }

    fn frames(&mut self, x: &Tensor, start: usize, len: usize) -> Result<Tensor> {
        Ok(x.narrow(2, start, len)?)
    }

    fn add_constant(&mut self, x: &Tensor, c: &[f64]) -> Result<Tensor> {
        let (ch, t) = self.dims(x);
        let table = Tensor::from_slice(c, (1, ch, t), x.device())?.to_dtype(x.dtype())?;
        Ok(x.broadcast_add(&table)?)
    }

    fn dropout(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        if !self.train || p == 0.0 {
            return Ok(x.clone());
        }
        let seed = dropout::stream_seed(self.dropout_seed, self.dropout_streams);
        self.dropout_streams += 1;
        let m = dropout::mask(seed, x.elem_count(), p);
        let m = Tensor::from_vec(m, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok((x * m)?)
    }

    fn ensemble(&mut self, heads: &[Tensor], weights: &[f32]) -> Result<Tensor> {
        let t = self.dims(&heads[0]).1;
        let total: f32 = weights.iter().sum();
        let mut acc: Option<Tensor> = None;
        for (head, &w) in heads.iter().zip(weights) {
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
        acc.ok_or_else(|| Error::invalid("ensemble weights are all zero"))
    }
}
