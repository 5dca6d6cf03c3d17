//! Unsupervised domain-adaptation losses, the sync paper's Table 3 baselines:
//! multi-kernel MMD, Deep CORAL and a domain classifier behind a gradient
//! reversal layer (DANN). Each compares two sets of frames, `[N, D]` rows of
//! the source (exo) and `[M, D]` rows of the target (ego) domain; no
//! frame-to-frame correspondence is used.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use rand::{Rng, SeedableRng};

/// Number of Gaussian kernels of [`mmd`] (DAN's multi-kernel MMD).
pub const MMD_KERNELS: usize = 5;
/// Ratio of consecutive kernel bandwidths.
pub const MMD_KERNEL_MUL: f64 = 2.0;

/// Squared Euclidean distances `[N, M]` between the rows of `a` and `b`.
pub fn sq_distances(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let aa = a.sqr()?.sum_keepdim(1)?; // [N, 1]
    let bb = b.sqr()?.sum_keepdim(1)?.t()?; // [1, M]
    let ab = a.matmul(&b.t()?)?;
    aa.broadcast_add(&bb)?.broadcast_sub(&(ab * 2.0)?)?.relu()
}

/// Multi-kernel maximum mean discrepancy (biased estimate) between the rows
/// of `x` `[N, D]` and `y` `[M, D]`:
/// mean K(x, x') + mean K(y, y') − 2 mean K(x, y), with
/// K = Σᵢ exp(−‖·‖² / (b·2ⁱ)), i < 5, and b the mean squared distance
/// between distinct rows of both sets divided by 2^(5/2 rounded down) = 4,
/// computed on detached values (DAN / the transfer-learning reference).
pub fn mmd(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (n, _) = x.dims2()?;
    let (m, _) = y.dims2()?;
    let all = Tensor::cat(&[x, y], 0)?;
    let d2 = sq_distances(&all, &all)?;
    let total = n + m;
    let pairs = (total * total - total).max(1) as f64;
    let mean = d2.detach().sum_all()?.to_dtype(candle_core::DType::F64)?;
    let mean = mean.to_scalar::<f64>()? / pairs;
    let base = (mean / MMD_KERNEL_MUL.powi((MMD_KERNELS / 2) as i32)).max(1e-12);
    let mut k: Option<Tensor> = None;
    for i in 0..MMD_KERNELS {
        let bw = base * MMD_KERNEL_MUL.powi(i as i32);
        let term = (&d2 / -bw)?.exp()?;
        k = Some(match k {
            None => term,
            Some(acc) => (acc + term)?,
        });
    }
    let k = k.expect("at least one kernel");
    let kxx = k.narrow(0, 0, n)?.narrow(1, 0, n)?.mean_all()?;
    let kyy = k.narrow(0, n, m)?.narrow(1, n, m)?.mean_all()?;
    let kxy = k.narrow(0, 0, n)?.narrow(1, n, m)?.mean_all()?;
    (kxx + kyy)? - (kxy * 2.0)?
}

/// Covariance of the rows of `x` `[N, D]`, normalised by N − 1.
fn covariance(x: &Tensor) -> Result<Tensor> {
    let (n, _) = x.dims2()?;
    let centred = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    centred.t()?.matmul(&centred)? / (n.max(2) - 1) as f64
}

/// Deep CORAL: ‖C_x − C_y‖²_F / (4d²), covariances normalised by n − 1
/// (Sun & Saenko, 2016).
pub fn coral(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (_, d) = x.dims2()?;
    let diff = (covariance(x)? - covariance(y)?)?;
    diff.sqr()?.sum_all()? / (4.0 * (d * d) as f64)
}

/// The gradient reversal layer: the identity forward, the gradient times
/// −λ backward. Written as `x̄ + (x − x̄)·(−λ)` with `x̄` detached: the
/// second term is exactly zero forward and carries −λ backward.
pub fn grad_reverse(x: &Tensor, lambda: f64) -> Result<Tensor> {
    let held = x.detach();
    let reversed = ((x - &held)? * -lambda)?;
    held + reversed
}

/// DANN's schedule of the reversal weight: λ = 2 / (1 + e^(−10p)) − 1 for
/// training progress p ∈ [0, 1] (0 at the start, → 1 at the end).
pub fn grl_lambda(progress: f64) -> f64 {
    2.0 / (1.0 + (-10.0 * progress.clamp(0.0, 1.0)).exp()) - 1.0
}

/// A per-frame domain classifier: Linear → ReLU → Linear to one logit
/// (source = 1, target = 0), with its own seeded initialisation (PyTorch's
/// uniform ±1/√fan_in) so that runs are reproducible.
pub struct DomainClassifier {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
}

impl DomainClassifier {
    /// A classifier of `dim`-dimensional frames with `hidden` units.
    pub fn seeded(
        dim: usize,
        hidden: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xc1a5_5f1e);
        let mut uniform = |shape: (usize, usize), fan_in: usize| -> Result<Var> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let v: Vec<f32> = (0..shape.0 * shape.1)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            Var::from_tensor(&Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
        };
        Ok(DomainClassifier {
            w1: uniform((hidden, dim), dim)?,
            b1: uniform((1, hidden), dim)?,
            w2: uniform((1, hidden), hidden)?,
            b2: uniform((1, 1), hidden)?,
        })
    }

    /// The trainable variables, named.
    pub fn vars(&self) -> Vec<(String, Var)> {
        [
            ("w1", &self.w1),
            ("b1", &self.b1),
            ("w2", &self.w2),
            ("b2", &self.b2),
        ]
        .into_iter()
        .map(|(n, v)| (format!("domain_classifier.{n}"), v.clone()))
        .collect()
    }

    /// Logits `[N]` of frames `[N, D]`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let h = x
            .matmul(&self.w1.as_tensor().t()?)?
            .broadcast_add(self.b1.as_tensor())?
            .relu()?;
        h.matmul(&self.w2.as_tensor().t()?)?
            .broadcast_add(self.b2.as_tensor())?
            .squeeze(D::Minus1)
    }

    /// The adversarial loss: binary cross-entropy of the classifier on
    /// source and target frames, each behind a gradient reversal of weight
    /// `lambda` (so the classifier learns to tell the domains apart while
    /// whatever produced the frames learns to make them indistinguishable).
    /// The mean of both sets' means.
    pub fn loss(&self, source: &Tensor, target: &Tensor, lambda: f64) -> Result<Tensor> {
        let s = self.logits(&grad_reverse(source, lambda)?)?;
        let t = self.logits(&grad_reverse(target, lambda)?)?;
        // BCE with logits: label 1 → softplus(−z), label 0 → softplus(z).
        let bce_s = softplus(&s.neg()?)?.mean_all()?;
        let bce_t = softplus(&t)?.mean_all()?;
        (bce_s + bce_t)? * 0.5
    }
}

/// log(1 + eˣ), stable for large |x|.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    // max(x, 0) + log(1 + e^(−|x|))
    let pos = x.relu()?;
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    pos + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, var};

    fn m(rows: &[&[f64]]) -> Tensor {
        let d = rows[0].len();
        let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), d), &Device::Cpu).unwrap()
    }

    fn scalar(t: Tensor) -> f64 {
        t.to_scalar::<f64>().unwrap()
    }

    #[test]
    fn mmd_by_hand() {
        // x = {0}, y = {2} in 1-D: d² = 4 between them, 0 on the diagonal;
        // mean over distinct pairs = (4 + 4) / 2 = 4, base = 4 / 4 = 1.
        // K(x, y) = Σᵢ exp(−4 / 2ⁱ), K(x, x) = K(y, y) = 5.
        let x = m(&[&[0.0]]);
        let y = m(&[&[2.0]]);
        let kxy: f64 = (0..5).map(|i| (-4.0 / 2f64.powi(i)).exp()).sum();
        let want = 5.0 + 5.0 - 2.0 * kxy;
        assert!((scalar(mmd(&x, &y).unwrap()) - want).abs() < 1e-12);
        // Identical sets: zero.
        let a = m(&[&[0.0, 1.0], &[1.0, 0.5], &[-1.0, 2.0]]);
        assert!(scalar(mmd(&a, &a).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn coral_by_hand() {
        // x: rows (0,0), (2,2) → cov = [[2, 2], [2, 2]]; y: rows (0,0),
        // (2,−2) → cov = [[2, −2], [−2, 2]]. Difference: off-diagonal 4 each,
        // ‖·‖² = 32, / (4·2²) = 2.
        let x = m(&[&[0.0, 0.0], &[2.0, 2.0]]);
        let y = m(&[&[0.0, 0.0], &[2.0, -2.0]]);
        assert!((scalar(coral(&x, &y).unwrap()) - 2.0).abs() < 1e-12);
        // A shift of the mean changes no covariance.
        let shifted = (&x + 5.0).unwrap();
        assert!(scalar(coral(&x, &shifted).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn grl_reverses_gradients_only() {
        let x = var(&[3, 2], 4);
        let lambda = 0.7;
        let f = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap();
        let y = grad_reverse(x.as_tensor(), lambda).unwrap();
        let diff = (&y - x.as_tensor()).unwrap().abs().unwrap();
        assert_eq!(scalar(diff.max_all().unwrap()), 0.0, "identity forward");
        let g_rev = f(&y).backward().unwrap();
        let g = f(x.as_tensor()).backward().unwrap();
        let a = g_rev
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let b = g
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a + lambda * b).abs() < 1e-12, "{a} vs −λ·{b}");
        }
        assert_eq!(grl_lambda(0.0), 0.0);
        assert!((grl_lambda(1.0) - (2.0 / (1.0 + (-10f64).exp()) - 1.0)).abs() < 1e-15);
    }

    #[test]
    fn softplus_is_stable() {
        let x = m(&[&[-800.0, 0.0, 800.0]]);
        let v = softplus(&x).unwrap().to_vec2::<f64>().unwrap();
        assert!(v[0][0].abs() < 1e-300);
        assert!((v[0][1] - 2f64.ln()).abs() < 1e-15);
        assert_eq!(v[0][2], 800.0);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = var(&[4, 3], 1);
        let y = var(&[5, 3], 2);
        check(&[x.clone(), y.clone()], &|| {
            coral(x.as_tensor(), y.as_tensor()).unwrap()
        });
        check(&[x.clone(), y.clone()], &|| {
            sq_distances(x.as_tensor(), y.as_tensor()).unwrap()
        });
        let clf = DomainClassifier::seeded(3, 4, 7, DType::F64, &Device::Cpu).unwrap();
        // λ = −1 makes the reversal the identity backward: the plain BCE
        // gradient, which finite differences can see.
        let mut vars: Vec<Var> = clf.vars().into_iter().map(|(_, v)| v).collect();
        vars.push(x.clone());
        check(&vars, &|| {
            clf.loss(x.as_tensor(), y.as_tensor(), -1.0).unwrap()
        });
    }

    #[test]
    fn mmd_gradient_with_bandwidth_held() {
        // With the bandwidth's data dependence removed (it is detached on
        // purpose), autodiff must match finite differences taken with the
        // bandwidth fixed at its value at the base point.
        let x = var(&[3, 2], 5);
        let y = var(&[4, 2], 6);
        let base = {
            let all = Tensor::cat(&[x.as_tensor(), y.as_tensor()], 0).unwrap();
            scalar(sq_distances(&all, &all).unwrap().sum_all().unwrap()) / 42.0 / 4.0
        };
        let fixed = |x: &Tensor, y: &Tensor| -> Tensor {
            let all = Tensor::cat(&[x, y], 0).unwrap();
            let d2 = sq_distances(&all, &all).unwrap();
            let mut k = d2.zeros_like().unwrap();
            for i in 0..5 {
                k = (k + (&d2 / -(base * 2f64.powi(i))).unwrap().exp().unwrap()).unwrap();
            }
            let kxx = k
                .narrow(0, 0, 3)
                .unwrap()
                .narrow(1, 0, 3)
                .unwrap()
                .mean_all()
                .unwrap();
            let kyy = k
                .narrow(0, 3, 4)
                .unwrap()
                .narrow(1, 3, 4)
                .unwrap()
                .mean_all()
                .unwrap();
            let kxy = k
                .narrow(0, 0, 3)
                .unwrap()
                .narrow(1, 3, 4)
                .unwrap()
                .mean_all()
                .unwrap();
            ((kxx + kyy).unwrap() - (kxy * 2.0).unwrap()).unwrap()
        };
        // The fixed-bandwidth formula is mmd at the base point…
        let ours = scalar(mmd(x.as_tensor(), y.as_tensor()).unwrap());
        assert!((ours - scalar(fixed(x.as_tensor(), y.as_tensor()))).abs() < 1e-12);
        // …and mmd's gradient is the fixed formula's gradient there.
        let g1 = mmd(x.as_tensor(), y.as_tensor())
            .unwrap()
            .backward()
            .unwrap();
        let g2 = fixed(x.as_tensor(), y.as_tensor()).backward().unwrap();
        for v in [&x, &y] {
            let a = g1
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let b = g2
                .get(v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() < 1e-12);
            }
        }
        check(&[x.clone(), y.clone()], &|| {
            fixed(x.as_tensor(), y.as_tensor())
        });
    }
}
