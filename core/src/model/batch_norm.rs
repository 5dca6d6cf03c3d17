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

use candle_core::{Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use super::batch_norm_op::batch_norm_train;

/// PyTorch's default.
pub const EPS: f64 = 1e-5;
/// PyTorch's default.
pub const MOMENTUM: f64 = 0.1;
/// Fewest valid frames whose statistics a training batch normalises with;
/// below it (a single frame: variance 0) the running statistics are used.
pub const MIN_BATCH_FRAMES: f64 = 2.0;

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
    /// the running statistics. A mask with a single valid frame (fewer than
    /// [`MIN_BATCH_FRAMES`]) normalises with the running statistics instead
    /// and updates nothing.
    pub fn forward_train(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward_train_act(x, mask, false)
    }

    /// [`MaskedBatchNorm::forward_train`], then ReLU when `relu`, as one
    /// op with its own backward ([`batch_norm_train`]).
    pub fn forward_train_act(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        relu: bool,
    ) -> Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        if c != self.channels {
            candle_core::bail!(
                "batch-norm expects {} channels, got shape {:?}",
                self.channels,
                x.shape()
            );
        }
        if let Some(m) = mask {
            if m.dims3()? != (b, 1, t) {
                candle_core::bail!("batch-norm: mask {:?} for input {:?}", m.shape(), x.shape());
            }
            let n = m
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
            if n < 1.0 {
                candle_core::bail!("batch-norm: the mask selects no frame");
            }
            // One frame has no spread: its batch variance is 0 by
            // construction, and normalising by √(0 + ε) multiplies every
            // other (padded) frame by ~316 — layer after layer, until the
            // padding is inf and the masked losses 0·inf = NaN (issue 20:
            // `distill --batch-size 1` on a 1-frame tail window). With
            // fewer than two valid frames the layer normalises as in eval
            // mode and leaves the running statistics alone (PyTorch
            // refuses such a batch outright).
            if n < MIN_BATCH_FRAMES {
                let y = self.forward_eval(x)?;
                return if relu { y.relu() } else { Ok(y) };
            }
        }
        let (y, stats) = batch_norm_train(x, &self.weight, &self.bias, mask, EPS, relu)?;
        // Running statistics: unbiased variance as in PyTorch.
        let n = stats.frames;
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let update = |running: &Var, batch: &[f64], scale: f64| -> Result<()> {
            let old = running
                .as_tensor()
                .to_dtype(candle_core::DType::F64)?
                .to_vec1::<f64>()?;
            let new: Vec<f64> = old
                .iter()
                .zip(batch)
                .map(|(r, v)| r * (1.0 - MOMENTUM) + v * MOMENTUM * scale)
                .collect();
            let new = Tensor::from_vec(new, c, x.device())?.to_dtype(running.dtype())?;
            running.set(&new)
        };
        update(&self.running_mean, &stats.mean, 1.0)?;
        update(&self.running_var, &stats.var, unbias)?;
        Ok(y)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// One valid frame: normalised with the running statistics, which stay
    /// as they were (a zero batch variance scaled the padding by 1/√ε and
    /// dragged the running variance towards 0; issue 20).
    #[test]
    fn a_single_valid_frame_uses_the_running_statistics() {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let bn =
            MaskedBatchNorm::new(2, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let x = Tensor::new(&[[[3f32, 50.0, -7.0], [1.0, 2.0, 3.0]]], &dev).unwrap();
        let one = Tensor::new(&[[[1f32, 0.0, 0.0]]], &dev).unwrap();
        let y = bn.forward_train(&x, Some(&one)).unwrap();
        let eval = bn.forward_eval(&x).unwrap();
        let diff = (y - eval).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        let (rm, rv) = bn.running();
        assert_eq!(rm.as_tensor().to_vec1::<f32>().unwrap(), [0.0, 0.0]);
        assert_eq!(rv.as_tensor().to_vec1::<f32>().unwrap(), [1.0, 1.0]);
        // Two valid frames: batch statistics (frame 2 is padding).
        let two = Tensor::new(&[[[1f32, 1.0, 0.0]]], &dev).unwrap();
        let y = bn
            .forward_train(&x, Some(&two))
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        let z = 23.5 / (23.5f32 * 23.5 + EPS as f32).sqrt();
        assert!(
            (y[0][0][0] + z).abs() < 1e-5 && (y[0][0][1] - z).abs() < 1e-5,
            "{y:?}"
        );
        let rm = bn.running().0.as_tensor().to_vec1::<f32>().unwrap();
        assert!((rm[0] - 0.1 * 26.5).abs() < 1e-5, "{rm:?}");
    }
}
