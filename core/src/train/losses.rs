//! Training losses of the TAS literature and of the sync paper.
//!
//! * [`ensemble_cross_entropy`]: CE on `log(ensemble + 1e-10)`, as C2F-TCN
//!   and the sync release compute it (the ensemble is already a probability).
//! * [`truncated_mse`]: the T-MSE smoothing loss of MS-TCN (τ = 4), on the
//!   same log-probabilities, with the previous frame detached.
//! * [`level_mse`]: the TAS-model distillation loss, Σ over chosen heads of
//!   the mean squared difference between student and teacher logits.
//!
//! Every loss takes a valid-frame mask so that padding (and ignored
//! frames) count in no average — the reference code let padding in.

use candle_core::{DType, Result, Tensor};

/// Added inside the log, as in the reference code.
pub const LOG_EPS: f64 = 1e-10;

fn log_probs(probs: &Tensor) -> Result<Tensor> {
    (probs + LOG_EPS)?.log()
}

/// Mean negative log-likelihood of `targets` under `probs`.
///
/// `probs` `[B, K, T]`, `targets` `[B, T]` (u32; any value where `weight`
/// is 0), `weight` `[B, T]` f32: 1 for frames that count (real, not ignored).
pub fn ensemble_cross_entropy(probs: &Tensor, targets: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let logp = log_probs(probs)?;
    let picked = logp
        .gather(&targets.unsqueeze(1)?.to_dtype(DType::U32)?, 1)?
        .squeeze(1)?;
    let n = weight.sum_all()?;
    (picked * weight)?
        .sum_all()?
        .neg()?
        .broadcast_div(&n.clamp(1.0, f64::INFINITY)?)
}

/// The truncated MSE between consecutive frames' log-probabilities:
/// mean over batch, classes and valid consecutive pairs of min(Δ², τ²),
/// Δ = log p_t − detach(log p_{t−1}).
pub fn truncated_mse(probs: &Tensor, mask: &Tensor, tau: f64) -> Result<Tensor> {
    truncated_mse_against(probs, &probs.detach(), mask, tau)
}

/// T-MSE with the previous frames taken from `prev_probs` (a constant).
fn truncated_mse_against(
    probs: &Tensor,
    prev_probs: &Tensor,
    mask: &Tensor,
    tau: f64,
) -> Result<Tensor> {
    let (_, k, t) = probs.dims3()?;
    if t < 2 {
        return Tensor::zeros((), probs.dtype(), probs.device());
    }
    let next = log_probs(probs)?.narrow(2, 1, t - 1)?;
    let prev = log_probs(prev_probs)?.narrow(2, 0, t - 1)?.detach();
    let sq = (next - prev)?.sqr()?.clamp(0.0, tau * tau)?;
    let pair = (mask.narrow(1, 1, t - 1)? * mask.narrow(1, 0, t - 1)?)?.unsqueeze(1)?;
    let n = (pair.sum_all()? * k as f64)?;
    sq.broadcast_mul(&pair)?
        .sum_all()?
        .broadcast_div(&n.clamp(1.0, f64::INFINITY)?)
}

/// Σ over `levels` of the masked mean squared difference of two heads.
///
/// `student` and `teacher` are the heads `[y, y5, …, y1]` of a forward
/// pass; `masks[l]` is the `[B, 1, Tₗ]` valid mask of head `l` (or `None`
/// when no frame is padding).
pub fn level_mse(
    student: &[Tensor],
    teacher: &[Tensor],
    levels: &[usize],
    masks: &[Option<Tensor>],
) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for &l in levels {
        let diff = (&student[l] - &teacher[l].detach())?.sqr()?;
        let term = match masks.get(l).and_then(|m| m.as_ref()) {
            None => diff.mean_all()?,
            Some(m) => {
                let k = diff.dim(1)? as f64;
                let n = (m.sum_all()? * k)?.clamp(1.0, f64::INFINITY)?;
                diff.broadcast_mul(m)?.sum_all()?.broadcast_div(&n)?
            }
        };
        total = Some(match total {
            Some(t) => (t + term)?,
            None => term,
        });
    }
    match total {
        Some(t) => Ok(t),
        None => Tensor::zeros((), student[0].dtype(), student[0].device()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t3(v: &[f32], shape: (usize, usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn cross_entropy_by_hand() {
        // B=1, K=2, T=3; frame 2 ignored.
        let p = t3(&[0.5, 0.25, 0.9, 0.5, 0.75, 0.1], (1, 2, 3));
        let y = Tensor::new(&[[0u32, 1, 1]], &Device::Cpu).unwrap();
        let w = Tensor::new(&[[1f32, 1.0, 0.0]], &Device::Cpu).unwrap();
        let l = ensemble_cross_entropy(&p, &y, &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let expect = -((0.5f64).ln() + (0.75f64).ln()) / 2.0;
        assert!((l as f64 - expect).abs() < 1e-6, "{l} vs {expect}");
    }

    #[test]
    fn truncated_mse_by_hand() {
        // K=1 for clarity: log p = [0, ln .5, ln 1e-9]; Δ² = ln²2 and clamped 16.
        let p = t3(&[1.0, 0.5, 1e-9], (1, 1, 3));
        let m = Tensor::new(&[[1f32, 1.0, 1.0]], &Device::Cpu).unwrap();
        let l = truncated_mse(&p, &m, 4.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let expect = ((2f64).ln().powi(2) + 16.0) / 2.0;
        assert!((l - expect).abs() < 1e-4, "{l} vs {expect}");
        // Masking the last frame leaves only the first pair.
        let m = Tensor::new(&[[1f32, 1.0, 0.0]], &Device::Cpu).unwrap();
        let l = truncated_mse(&p, &m, 4.0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        assert!((l - (2f64).ln().powi(2)).abs() < 1e-5);
    }

    #[test]
    fn level_mse_sums_chosen_levels() {
        let s = [t3(&[1.0, 2.0], (1, 1, 2)), t3(&[0.0], (1, 1, 1))];
        let t = [t3(&[0.0, 0.0], (1, 1, 2)), t3(&[3.0], (1, 1, 1))];
        let none = [None, None];
        let l = |lv: &[usize]| {
            level_mse(&s, &t, lv, &none)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(l(&[0]), 2.5);
        assert_eq!(l(&[1]), 9.0);
        assert_eq!(l(&[0, 1]), 11.5);
        let masks = [Some(t3(&[1.0, 0.0], (1, 1, 2))), None];
        assert_eq!(
            level_mse(&s, &t, &[0], &masks)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            1.0
        );
    }

    /// Central differences against candle's autodiff for CE + λ·T-MSE.
    /// T-MSE detaches the previous frame, so the function differentiated
    /// numerically holds the previous frames' probabilities at the point of
    /// evaluation: its derivative is exactly what autodiff computes.
    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        // Logits in f64 for clean differences; chosen so no Δ² sits at τ².
        let logits: Vec<f64> = (0..2 * 3 * 5)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3)
            .collect();
        let y = Tensor::new(&[[0u32, 2, 1, 1, 0], [2, 2, 0, 1, 1]], &dev).unwrap();
        let w = Tensor::new(
            &[[1f64, 1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]],
            &dev,
        )
        .unwrap();
        let x0 = Tensor::from_vec(logits.clone(), (2, 3, 5), &dev).unwrap();
        let p0 = candle_nn::ops::softmax(&x0, 1).unwrap();
        let f = |x: &Tensor| -> Tensor {
            let p = candle_nn::ops::softmax(x, 1).unwrap();
            let ce = ensemble_cross_entropy(&p, &y, &w).unwrap();
            let sm = truncated_mse_against(&p, &p0, &w, 4.0).unwrap();
            (ce + (sm * 0.15).unwrap()).unwrap()
        };
        let var = Var::from_tensor(&x0).unwrap();
        let grads = f(var.as_tensor()).backward().unwrap();
        let g = grads
            .get(&var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let h = 1e-5;
        let mut max_err = 0f64;
        for i in 0..logits.len() {
            let eval = |delta: f64| {
                let mut v = logits.clone();
                v[i] += delta;
                f(&Tensor::from_vec(v, (2, 3, 5), &dev).unwrap())
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let num = (eval(h) - eval(-h)) / (2.0 * h);
            max_err = max_err.max((num - g[i]).abs() / (1.0 + num.abs()));
        }
        assert!(max_err < 1e-6, "max relative gradient error {max_err}");
        // And the public loss is the same function at the evaluation point.
        let p = candle_nn::ops::softmax(&x0, 1).unwrap();
        let a = truncated_mse(&p, &w, 4.0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let b = truncated_mse_against(&p, &p0, &w, 4.0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(a, b);
    }
}
