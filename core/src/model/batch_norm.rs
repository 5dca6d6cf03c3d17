//! BatchNorm1d whose training statistics skip padded frames.
//!
//! Videos are cut into windows and short windows are zero-padded to the
//! length the architecture needs; the reference code let those zeros into
//! BatchNorm's batch statistics (flaw 5 of its notes). Here the batch mean
//! and variance are taken over valid frames only (`mask` = 1), and the
//! running statistics are updated as PyTorch does (momentum 0.1, unbiased
//! variance in the running estimate, biased in the normalisation).
//! Parameter names follow PyTorch: `weight`, `bias`, `running_mean`,
//! `running_var`.

use candle_core::{Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder};

/// PyTorch's default.
pub const EPS: f64 = 1e-5;
/// PyTorch's default.
pub const MOMENTUM: f64 = 0.1;

/// A BatchNorm1d over `[B, C, T]`.
#[derive(Debug, Clone)]
pub struct MaskedBatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    channels: usize,
}

impl MaskedBatchNorm {
    /// Creates (or loads) the layer's tensors under `vb`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        Ok(MaskedBatchNorm {
            weight,
            bias,
            // A VarMap hands out Var-backed tensors; wrapping them again keeps
            // the same storage, so updates are visible to the VarMap and saved.
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            channels,
        })
    }

    /// γ `[C]` (trained).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// β `[C]` (trained).
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The running mean and variance `[C]` (updated in training mode).
    pub fn running(&self) -> (&Var, &Var) {
        (&self.running_mean, &self.running_var)
    }

    /// Eval mode: normalise with the running statistics.
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let mean = self
            .running_mean
            .as_detached_tensor()
            .reshape((1, self.channels, 1))?;
        let var = self
            .running_var
            .as_detached_tensor()
            .reshape((1, self.channels, 1))?;
        let scale = (self.weight.reshape((1, self.channels, 1))? / (var + EPS)?.sqrt()?)?;
        x.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&self.bias.reshape((1, self.channels, 1))?)
    }

    /// Train mode: normalise with the statistics of the valid frames of this
    /// batch (`mask`: `[B, 1, T]` of 0/1, or `None` for all valid) and update
    /// the running statistics.
    pub fn forward_train(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        if c != self.channels {
            candle_core::bail!(
                "batch-norm expects {} channels, got shape {:?}",
                self.channels,
                x.shape()
            );
        }
        let (mean, var, n) = match mask {
            None => {
                let n = (b * t) as f64;
                let mean = x.mean_keepdim(D::Minus1)?.mean_keepdim(0)?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim(D::Minus1)?.mean_keepdim(0)?;
                (mean, var, n)
            }
            Some(m) => {
                let n = m
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
                if n < 1.0 {
                    candle_core::bail!("batch-norm: the mask selects no frame");
                }
                let mean = (x.broadcast_mul(m)?.sum_keepdim(D::Minus1)?.sum_keepdim(0)? / n)?;
                let centered = x.broadcast_sub(&mean)?;
                let var = (centered
                    .sqr()?
                    .broadcast_mul(m)?
                    .sum_keepdim(D::Minus1)?
                    .sum_keepdim(0)?
                    / n)?;
                (mean, var, n)
            }
        };
        // Running statistics: detached, unbiased variance as in PyTorch.
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let rm = ((self.running_mean.as_tensor() * (1.0 - MOMENTUM))?
            + (mean.flatten_all()?.detach() * MOMENTUM)?)?;
        let rv = ((self.running_var.as_tensor() * (1.0 - MOMENTUM))?
            + (var.flatten_all()?.detach() * (MOMENTUM * unbias))?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        let scale = self
            .weight
            .reshape((1, c, 1))?
            .broadcast_div(&(var + EPS)?.sqrt()?)?;
        x.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&self.bias.reshape((1, c, 1))?)
    }

    /// `(scale, shift)` per channel such that eval mode is `x·scale + shift`:
    /// what an inference engine folds into the preceding convolution.
    pub fn folded(&self) -> Result<(Tensor, Tensor)> {
        let var = self.running_var.as_detached_tensor();
        let mean = self.running_mean.as_detached_tensor();
        let scale = (&self.weight / (var + EPS)?.sqrt()?)?;
        let shift = (&self.bias - (mean * &scale)?)?;
        Ok((scale, shift))
    }
}
