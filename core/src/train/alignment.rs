//! Video-alignment losses, the sync paper's Table 3 alignment baselines:
//! soft-DTW (Cuturi & Blondel, 2017) as a divergence, and temporal
//! cycle-consistency (Dwibedi et al., 2019), classification variant. Both
//! compare two sequences `[N, D]` and `[M, D]` that show the same kind of
//! activity without frame-to-frame correspondence.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};

use super::uda::sq_distances;

/// softmin_γ(a, b, c) = −γ log Σ e^(−x/γ), computed around the minimum.
fn softmin(a: f64, b: f64, c: f64, gamma: f64) -> f64 {
    let m = a.min(b).min(c);
    if m == f64::INFINITY {
        return m;
    }
    let s = (-(a - m) / gamma).exp() + (-(b - m) / gamma).exp() + (-(c - m) / gamma).exp();
    m - gamma * s.ln()
}

/// The soft-DTW table R `(n+1)×(m+1)` of a cost matrix `d` `[n, m]`:
/// R₀₀ = 0, R_i0 = R_0j = +∞, R_ij = d_ij + softmin_γ(R_{i−1,j}, R_{i−1,j−1}, R_{i,j−1}).
fn forward_table(d: &[f64], n: usize, m: usize, gamma: f64) -> Vec<f64> {
    let w = m + 1;
    let mut r = vec![f64::INFINITY; (n + 1) * w];
    r[0] = 0.0;
    for i in 1..=n {
        for j in 1..=m {
            let best = softmin(
                r[(i - 1) * w + j],
                r[(i - 1) * w + j - 1],
                r[i * w + j - 1],
                gamma,
            );
            r[i * w + j] = d[(i - 1) * m + j - 1] + best;
        }
    }
    r
}

/// ∂R_nm/∂d `[n, m]` (Cuturi & Blondel's backward recursion, Algorithm 2).
fn gradient_table(d: &[f64], r: &[f64], n: usize, m: usize, gamma: f64) -> Vec<f64> {
    // Padded to (n+2)×(m+2), 1-based: the extra last row and column hold
    // R = −∞ (so they contribute nothing) except R_{n+1,m+1} = R_nm.
    let w = m + 2;
    let mut rp = vec![f64::NEG_INFINITY; (n + 2) * w];
    let mut dp = vec![0f64; (n + 2) * w];
    for i in 1..=n {
        for j in 1..=m {
            rp[i * w + j] = r[i * (m + 1) + j];
            dp[i * w + j] = d[(i - 1) * m + j - 1];
        }
    }
    rp[(n + 1) * w + m + 1] = r[n * (m + 1) + m];
    let mut e = vec![0f64; (n + 2) * w];
    e[(n + 1) * w + m + 1] = 1.0;
    for i in (1..=n).rev() {
        for j in (1..=m).rev() {
            let here = rp[i * w + j];
            let a = ((rp[(i + 1) * w + j] - here - dp[(i + 1) * w + j]) / gamma).exp();
            let b = ((rp[i * w + j + 1] - here - dp[i * w + j + 1]) / gamma).exp();
            let c = ((rp[(i + 1) * w + j + 1] - here - dp[(i + 1) * w + j + 1]) / gamma).exp();
            e[i * w + j] =
                e[(i + 1) * w + j] * a + e[i * w + j + 1] * b + e[(i + 1) * w + j + 1] * c;
        }
    }
    let mut g = vec![0f64; n * m];
    for i in 1..=n {
        for j in 1..=m {
            g[(i - 1) * m + j - 1] = e[i * w + j];
        }
    }
    g
}

/// soft-DTW of a cost matrix as a candle op with its own backward. The
/// forward table is kept for the backward (one op per call, so one table).
struct SoftDtwOp {
    gamma: f64,
    table: std::sync::Mutex<Option<Vec<f64>>>,
}

fn values(storage: &CpuStorage, layout: &Layout) -> Result<Vec<f64>> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("soft-DTW needs a contiguous cost matrix".into()))?;
    Ok(match storage {
        CpuStorage::F32(v) => v[start..end].iter().map(|&x| x as f64).collect(),
        CpuStorage::F64(v) => v[start..end].to_vec(),
        _ => candle_core::bail!("soft-DTW: cost matrix must be f32 or f64"),
    })
}

impl CustomOp1 for SoftDtwOp {
    fn name(&self) -> &'static str {
        "soft-dtw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, m) = layout.shape().dims2()?;
        let d = values(storage, layout)?;
        let r = forward_table(&d, n, m, self.gamma);
        let v = r[n * (m + 1) + m];
        *self.table.lock().expect("soft-DTW table") = Some(r);
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(vec![v as f32]),
            _ => CpuStorage::F64(vec![v]),
        };
        Ok((out, Shape::from(())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (n, m) = arg.dims2()?;
        let d = arg.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let kept = self.table.lock().expect("soft-DTW table").take();
        let r = kept.unwrap_or_else(|| forward_table(&d, n, m, self.gamma));
        let g = gradient_table(&d, &r, n, m, self.gamma);
        let g = Tensor::from_vec(g, (n, m), arg.device())?.to_dtype(arg.dtype())?;
        Ok(Some(g.broadcast_mul(grad_res)?))
    }
}

/// soft-DTW value of a cost matrix `[N, M]` (differentiable in the costs).
pub fn soft_dtw_cost(cost: &Tensor, gamma: f64) -> Result<Tensor> {
    if !(gamma > 0.0 && gamma.is_finite()) {
        candle_core::bail!("soft-DTW γ {gamma}: must be a positive number");
    }
    cost.contiguous()?.apply_op1(SoftDtwOp {
        gamma,
        table: Default::default(),
    })
}

/// soft-DTW between sequences `x` `[N, D]` and `y` `[M, D]` with the squared
/// Euclidean cost.
pub fn soft_dtw(x: &Tensor, y: &Tensor, gamma: f64) -> Result<Tensor> {
    soft_dtw_cost(&sq_distances(x, y)?, gamma)
}

/// The soft-DTW divergence sdtw(x, y) − ½(sdtw(x, x) + sdtw(y, y)) (Blondel
/// et al., 2021): zero for x = y, non-negative, and not minimised by
/// collapsing both sequences as plain soft-DTW can be.
pub fn soft_dtw_divergence(x: &Tensor, y: &Tensor, gamma: f64) -> Result<Tensor> {
    let xy = soft_dtw(x, y, gamma)?;
    let xx = soft_dtw(x, x, gamma)?;
    let yy = soft_dtw(y, y, gamma)?;
    xy - ((xx + yy)? * 0.5)?
}

/// Mean cross-entropy of picking row i in `logits` `[N, N]` row i.
fn cycle_cross_entropy(logits: &Tensor) -> Result<Tensor> {
    let (n, _) = logits.dims2()?;
    let lse = {
        let max = logits.max_keepdim(D::Minus1)?.detach();
        (logits
            .broadcast_sub(&max)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            + max)?
    };
    let eye = Tensor::eye(n, logits.dtype(), logits.device())?;
    let diag = (logits * eye)?.sum_keepdim(D::Minus1)?;
    (lse - diag)?.mean_all()
}

/// One direction of TCC: every frame of `u` goes to its soft nearest
/// neighbour in `v` and back; cross-entropy of landing on itself.
fn tcc_cycle(u: &Tensor, v: &Tensor, temperature: f64) -> Result<Tensor> {
    let (_, d) = u.dims2()?;
    let scale = -1.0 / (d as f64 * temperature);
    let alpha = candle_nn::ops::softmax(&(sq_distances(u, v)? * scale)?, D::Minus1)?;
    let soft = alpha.matmul(v)?;
    cycle_cross_entropy(&(sq_distances(&soft, u)? * scale)?)
}

/// Temporal cycle-consistency, classification variant, both directions
/// averaged: similarities are −‖a − b‖² / (D · temperature) as in the TCC
/// reference (temperature 0.1 there).
pub fn tcc(u: &Tensor, v: &Tensor, temperature: f64) -> Result<Tensor> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        candle_core::bail!("TCC temperature {temperature}: must be a positive number");
    }
    (tcc_cycle(u, v, temperature)? + tcc_cycle(v, u, temperature)?)? * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, rand, var};
    use candle_core::Device;

    fn m(rows: &[&[f64]]) -> Tensor {
        let d = rows[0].len();
        let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), d), &Device::Cpu).unwrap()
    }

    fn scalar(t: Tensor) -> f64 {
        t.to_scalar::<f64>().unwrap()
    }

    /// Exact DTW of a cost matrix, the textbook recursion.
    fn dtw(d: &[f64], n: usize, m: usize) -> f64 {
        let w = m + 1;
        let mut r = vec![f64::INFINITY; (n + 1) * w];
        r[0] = 0.0;
        for i in 1..=n {
            for j in 1..=m {
                let best = r[(i - 1) * w + j]
                    .min(r[(i - 1) * w + j - 1])
                    .min(r[i * w + j - 1]);
                r[i * w + j] = d[(i - 1) * m + j - 1] + best;
            }
        }
        r[n * w + m]
    }

    #[test]
    fn soft_dtw_by_hand() {
        // d = [[1, 2], [3, 0.5]]: R11 = 1, R12 = 3, R21 = 4,
        // R22 = 0.5 + softmin(3, 1, 4) = 0.5 − log(e⁻³ + e⁻¹ + e⁻⁴) at γ = 1.
        let d = m(&[&[1.0, 2.0], &[3.0, 0.5]]);
        let want = 0.5 - ((-3f64).exp() + (-1f64).exp() + (-4f64).exp()).ln();
        assert!((scalar(soft_dtw_cost(&d, 1.0).unwrap()) - want).abs() < 1e-12);
        // One column: a single path, whatever γ.
        let x = m(&[&[0.0], &[1.0]]);
        let y = m(&[&[0.0]]);
        assert!((scalar(soft_dtw(&x, &y, 0.3).unwrap()) - 1.0).abs() < 1e-12);
        assert!(soft_dtw_cost(&d, 0.0).is_err());
    }

    #[test]
    fn soft_dtw_tends_to_dtw() {
        for (seed, n, mm) in [(1u64, 6usize, 5usize), (2, 3, 9), (3, 7, 7)] {
            let d: Vec<f64> = rand(&[n, mm], seed).iter().map(|v| v.abs() * 3.0).collect();
            let exact = dtw(&d, n, mm);
            let t = Tensor::from_vec(d, (n, mm), &Device::Cpu).unwrap();
            let soft = scalar(soft_dtw_cost(&t, 1e-4).unwrap());
            // softmin_γ ≥ min − γ log 3 per cell: within (n+m)·γ·log 3.
            assert!(soft <= exact + 1e-12, "{soft} > {exact}");
            assert!(
                exact - soft < (n + mm) as f64 * 1e-4 * 3f64.ln(),
                "{soft} vs {exact}"
            );
        }
    }

    #[test]
    fn soft_dtw_divergence_is_zero_on_equal_sequences_and_positive_otherwise() {
        let x = m(&[&[0.0, 1.0], &[1.0, 1.0], &[2.0, 0.0]]);
        let y = m(&[&[0.0, 1.0], &[2.0, 0.0]]);
        assert!(scalar(soft_dtw_divergence(&x, &x, 0.5).unwrap()).abs() < 1e-12);
        assert!(scalar(soft_dtw_divergence(&x, &y, 0.5).unwrap()) > 0.0);
    }

    #[test]
    fn tcc_by_hand() {
        // u = {0, 1}, v = {0}, temperature 0.1, D = 1. u → v → u: both
        // frames land on 0; logits of frame 0: (0, −10), frame 1: (0, −10).
        // CE: log(1 + e⁻¹⁰) and 10 + log(1 + e⁻¹⁰). v → u → v: one frame, 0.
        let u = m(&[&[0.0], &[1.0]]);
        let v = m(&[&[0.0]]);
        let l = (1.0 + (-10f64).exp()).ln();
        let want = 0.5 * ((l + 10.0 + l) / 2.0);
        assert!((scalar(tcc(&u, &v, 0.1).unwrap()) - want).abs() < 1e-12);
        // Well-separated identical sequences cycle back exactly.
        let w = m(&[&[0.0], &[10.0], &[20.0]]);
        assert!(scalar(tcc(&w, &w, 0.1).unwrap()) < 1e-12);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = var(&[5, 3], 11);
        let y = var(&[4, 3], 12);
        check(&[x.clone(), y.clone()], &|| {
            soft_dtw(x.as_tensor(), y.as_tensor(), 0.7).unwrap()
        });
        check(&[x.clone(), y.clone()], &|| {
            soft_dtw_divergence(x.as_tensor(), y.as_tensor(), 1.3).unwrap()
        });
        check(&[x.clone(), y.clone()], &|| {
            tcc(x.as_tensor(), y.as_tensor(), 0.5).unwrap()
        });
        let c = var(&[4, 6], 13);
        check(std::slice::from_ref(&c), &|| {
            soft_dtw_cost(c.as_tensor(), 0.2).unwrap()
        });
    }

    #[test]
    fn f32_costs_work() {
        let d = Tensor::new(&[[1f32, 2.0], [3.0, 0.5]], &Device::Cpu).unwrap();
        let v = soft_dtw_cost(&d, 1.0).unwrap().to_scalar::<f32>().unwrap();
        let want = 0.5 - ((-3f64).exp() + (-1f64).exp() + (-4f64).exp()).ln();
        assert!((v as f64 - want).abs() < 1e-6);
    }
}
