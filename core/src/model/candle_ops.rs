//! [`Ops`] over candle tensors `[B, C, T]`: the reference implementation
//! and the CPU path, differentiable by candle's autodiff.

use std::collections::HashMap;

use candle_core::Tensor;

use super::batch_norm::MaskedBatchNorm;
use super::c2f_tcn::{maxpool, TemporalConv};
use super::dropout;
use super::interp::linear;
use super::ops::{Act, ConvSpec, Ops};
use crate::error::{Error, Result};

/// A network's candle layers by parameter prefix.
#[derive(Debug, Clone, Default)]
pub struct CandleLayers {
    /// Convolutions by `ConvSpec::name`.
    pub convs: HashMap<String, TemporalConv>,
    /// BatchNorms by `ConvSpec::norm`.
    pub norms: HashMap<String, MaskedBatchNorm>,
}

impl CandleLayers {
    /// Creates (or loads, when `vb` holds them) the layers of `specs`.
    pub fn new(specs: &[ConvSpec], vb: &candle_nn::VarBuilder) -> Result<Self> {
        let mut layers = CandleLayers::default();
        for s in specs {
            let conv = TemporalConv::dilated(s.cin, s.cout, s.k, s.dilation, vb.pp(&s.name))?;
            layers.convs.insert(s.name.clone(), conv);
            if let Some(norm) = &s.norm {
                let bn = MaskedBatchNorm::new(s.cout, vb.pp(norm))?;
                layers.norms.insert(norm.clone(), bn);
            }
        }
        Ok(layers)
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
