//! Training-mode masked BatchNorm (and the ReLU after it) as one candle op
//! with its own backward.
//!
//! Written with candle's primitives the layer was ~15 graph nodes (masked
//! sums, centring, squares, divisions, the affine map, the ReLU), each an
//! allocated tensor forward and a zero-filled gradient plus an addition
//! backward, and candle reduces the `[1, C, 1]` broadcasts' gradients over
//! two axes by a single-threaded strided walk (measured on the C2F-TCN at
//! D = 1024: a batch-4 training step 486–540 ms composed, 301–346 ms with
//! this op; BENCHMARKS.md). Here: one pass for the
//! statistics, one for the output; backward one pass for the two per-channel
//! sums, one for `dx`. Rows are split over candle's own CPU pool.
//!
//! With `x̂ = (x − μ)·s`, `s = 1/√(σ² + ε)`, `y = relu(γ·x̂ + β)`, `g = dy`
//! where the ReLU passed, `n` valid frames, `m` the 0/1 mask (padding is
//! normalised but is not in μ, σ²):
//!
//! ```text
//! dβ = Σ g          dγ = Σ g·x̂          (over every frame)
//! dx = γ·s·(g − m·(dβ + x̂·dγ)/n)
//! ```

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::cpu_float::{contiguous, in_element_type, CpuFloat as Float};

/// The batch statistics of one forward, per channel.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// μ over the valid frames.
    pub mean: Vec<f64>,
    /// σ² (biased) over the valid frames.
    pub var: Vec<f64>,
    /// How many frames were valid.
    pub frames: f64,
}

/// `relu?(γ·(x − μ)/√(σ² + ε) + β)` over `[B, C, T]` with μ, σ² over the
/// frames `mask` (`[B·T]`, 0/1; `None`: all) selects.
struct BatchNormOp {
    mask: Option<Vec<f64>>,
    eps: f64,
    relu: bool,
    /// Filled by the forward; read by the backward and by the caller (for
    /// the running statistics).
    stats: Arc<Mutex<Option<BatchStats>>>,
}

/// `Σ f(i)` over `0..n` with eight independent accumulators, so that the
/// additions vectorise: one accumulator is a chain of dependent f64 adds,
/// which made this op's reductions slower than candle's composed ones.
#[inline(always)]
fn sum8(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let full = n / 8 * 8;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += 8;
    }
    let tail: f64 = (full..n).map(&f).sum();
    acc.iter().sum::<f64>() + tail
}

/// `f(i)` for `i` in `0..n`, collected, on candle's CPU pool: its workers
/// spin between ops, where rayon's had gone to sleep after the GEMMs and
/// waking them cost more than these passes (measured: the op was slower
/// than candle's composed BatchNorm at batch 1 with rayon).
fn parallel_map<R: Default + Clone + Send + Sync>(
    n: usize,
    f: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    let mut out = vec![R::default(); n];
    let ptr = SharedMut(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        for i in range {
            // SAFETY: the pool hands out disjoint ranges of 0..n, and `out`
            // outlives the call, which returns when every range is done.
            unsafe { *ptr.at(i) = f(i) };
        }
    });
    out
}

/// `f(r, row r)` for each `len`-long row of `data`, on candle's CPU pool.
fn for_each_row<T: Send + Sync>(data: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let rows = data.len() / len;
    let ptr = SharedMut(data.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        for r in range {
            // SAFETY: rows of disjoint ranges do not overlap, and `data`
            // outlives the call.
            let row = unsafe { std::slice::from_raw_parts_mut(ptr.at(r * len), len) };
            f(r, row);
        }
    });
}

/// A pointer the pool's workers write disjoint elements through.
struct SharedMut<T>(*mut T);
unsafe impl<T: Send> Sync for SharedMut<T> {}
impl<T> SharedMut<T> {
    /// # Safety
    /// `i` must be inside the allocation.
    unsafe fn at(&self, i: usize) -> *mut T {
        self.0.add(i)
    }
}

/// Row `bi` of the mask (`None`: every frame valid).
fn mask_row(mask: &Option<Vec<f64>>, bi: usize, t: usize) -> Option<&[f64]> {
    mask.as_ref().map(|m| &m[bi * t..][..t])
}

impl BatchNormOp {
    /// Per channel, `(Σ m·x, Σ m·x²-centred)` → μ, σ².
    fn stats<T: Float>(&self, x: &[T], (b, c, t): (usize, usize, usize)) -> BatchStats {
        let frames = match &self.mask {
            Some(m) => m.iter().sum(),
            None => (b * t) as f64,
        };
        let per_channel: Vec<(f64, f64)> = parallel_map(c, |ch| {
            let row = |bi: usize| &x[(bi * c + ch) * t..][..t];
            let mut sum = 0.0;
            for bi in 0..b {
                let xr = row(bi);
                sum += match mask_row(&self.mask, bi, t) {
                    Some(m) => sum8(t, |j| xr[j].to_f64() * m[j]),
                    None => sum8(t, |j| xr[j].to_f64()),
                };
            }
            let mean = sum / frames;
            let mut sq = 0.0;
            for bi in 0..b {
                let xr = row(bi);
                sq += match mask_row(&self.mask, bi, t) {
                    Some(m) => sum8(t, |j| (xr[j].to_f64() - mean).powi(2) * m[j]),
                    None => sum8(t, |j| (xr[j].to_f64() - mean).powi(2)),
                };
            }
            (mean, sq / frames)
        });
        BatchStats {
            mean: per_channel.iter().map(|p| p.0).collect(),
            var: per_channel.iter().map(|p| p.1).collect(),
            frames,
        }
    }

    fn forward<T: Float>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        dims: (usize, usize, usize),
    ) -> Vec<T> {
        let (_, c, t) = dims;
        let stats = self.stats(x, dims);
        // y = x·a + shift per channel.
        let a: Vec<f64> = (0..c)
            .map(|ch| gamma[ch].to_f64() / (stats.var[ch] + self.eps).sqrt())
            .collect();
        let shift: Vec<f64> = (0..c)
            .map(|ch| beta[ch].to_f64() - stats.mean[ch] * a[ch])
            .collect();
        let mut y = vec![T::from_f64(0.0); x.len()];
        for_each_row(&mut y, t, |r, yr| {
            let xr = &x[r * t..][..t];
            let ch = r % c;
            let (a, s) = (a[ch], shift[ch]);
            for (o, &v) in yr.iter_mut().zip(xr) {
                let z = v.to_f64() * a + s;
                *o = T::from_f64(if self.relu { z.max(0.0) } else { z });
            }
        });
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
        y
    }
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "syncseg-masked-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = xl.shape().dims3()?;
        if gl.shape().dims1()? != dims.1 || bl.shape().dims1()? != dims.1 {
            candle_core::bail!("batch norm: γ and β must have one entry per channel");
        }
        if let Some(m) = &self.mask {
            if m.len() != dims.0 * dims.2 {
                candle_core::bail!("batch norm: the mask does not cover the batch's frames");
            }
        }
        let y = in_element_type!(xs, T => self.forward::<T>(
            contiguous(xs, xl, "batch norm: the input")?,
            contiguous(gs, gl, "batch norm: γ")?,
            contiguous(bs, bl, "batch norm: β")?,
            dims,
        ));
        Ok((y, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| candle_core::Error::Msg("batch norm: backward before forward".into()))?;
        let (b, c, t) = x.dims3()?;
        let grads = BatchNormGrad {
            op: self,
            stats,
            gamma: gamma.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?,
        };
        let flat = dy
            .contiguous()?
            .apply_op3_no_bwd(&x.contiguous()?, &y.contiguous()?, &grads)?;
        let n = b * c * t;
        let dx = flat.narrow(0, 0, n)?.reshape((b, c, t))?;
        let dgamma = flat.narrow(0, n, c)?;
        let dbeta = flat.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// The backward as an op over `(dy, x, y)`: `[dx (B·C·T), dγ (C), dβ (C)]`
/// flat, one output (candle's ops have one).
struct BatchNormGrad<'a> {
    op: &'a BatchNormOp,
    stats: BatchStats,
    gamma: Vec<f64>,
}

impl BatchNormGrad<'_> {
    fn run<T: Float>(
        &self,
        dy: &[T],
        x: &[T],
        y: &[T],
        (b, c, t): (usize, usize, usize),
    ) -> Vec<T> {
        let s: Vec<f64> = self
            .stats
            .var
            .iter()
            .map(|v| 1.0 / (v + self.op.eps).sqrt())
            .collect();
        let mean = &self.stats.mean;
        let relu = self.op.relu;
        let g = |i: usize| {
            let d = dy[i].to_f64();
            // The ReLU passed where its output is positive (NaN: it did not).
            if relu && y[i].to_f64().partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                0.0
            } else {
                d
            }
        };
        // Per channel: dγ = Σ g·x̂, dβ = Σ g.
        let sums: Vec<(f64, f64)> = parallel_map(c, |ch| {
            let (mut dg, mut db) = (0.0, 0.0);
            for bi in 0..b {
                let base = (bi * c + ch) * t;
                db += sum8(t, |j| g(base + j));
                dg += sum8(t, |j| g(base + j) * (x[base + j].to_f64() - mean[ch]));
            }
            (dg * s[ch], db)
        });
        let inv_n = 1.0 / self.stats.frames;
        let mut out = vec![T::from_f64(0.0); b * c * t + 2 * c];
        let (dx, tail) = out.split_at_mut(b * c * t);
        for_each_row(dx, t, |r, row| {
            let (bi, ch) = (r / c, r % c);
            let (dg, db) = sums[ch];
            let (k, mu, sc) = (self.gamma[ch] * s[ch], mean[ch], s[ch]);
            let base = r * t;
            let dxi = |j: usize, w: f64| {
                let i = base + j;
                let xhat = (x[i].to_f64() - mu) * sc;
                k * (g(i) - w * (db + xhat * dg) * inv_n)
            };
            match mask_row(&self.op.mask, bi, t) {
                Some(m) => row
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, o)| *o = T::from_f64(dxi(j, m[j]))),
                None => row
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, o)| *o = T::from_f64(dxi(j, 1.0))),
            }
        });
        for ch in 0..c {
            tail[ch] = T::from_f64(sums[ch].0);
            tail[c + ch] = T::from_f64(sums[ch].1);
        }
        out
    }
}

impl CustomOp3 for BatchNormGrad<'_> {
    fn name(&self) -> &'static str {
        "syncseg-masked-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        dys: &CpuStorage,
        dyl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = xl.shape().dims3()?;
        let len = dims.0 * dims.1 * dims.2 + 2 * dims.1;
        let out = in_element_type!(xs, T => self.run::<T>(
            contiguous(dys, dyl, "batch norm: the gradient")?,
            contiguous(xs, xl, "batch norm: the input")?,
            contiguous(ys, yl, "batch norm: the output")?,
            dims,
        ));
        Ok((out, Shape::from(len)))
    }
}

/// Training-mode BatchNorm of `x` `[B, C, T]` with γ, β `[C]` and the
/// statistics of the frames `mask` (`[B, 1, T]` 0/1) selects, then ReLU when
/// `relu`: differentiable in `x`, γ and β. Returns the output and the batch
/// statistics (for the running estimates).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mask: Option<&Tensor>,
    eps: f64,
    relu: bool,
) -> candle_core::Result<(Tensor, BatchStats)> {
    let mask = match mask {
        Some(m) => Some(
            m.to_dtype(candle_core::DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?,
        ),
        None => None,
    };
    let stats = Arc::new(Mutex::new(None));
    let op = BatchNormOp {
        mask,
        eps,
        relu,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| candle_core::Error::Msg("batch norm: the forward did not run".into()))?;
    Ok((y, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, var};
    use candle_core::Device;

    /// Finite differences of the fused op's backward in `x`, γ and β, with
    /// and without the ReLU, with and without padding in a batch of two.
    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let mask = Tensor::new(
            &[[[1f64, 1.0, 1.0, 0.0, 0.0]], [[1.0, 0.0, 1.0, 1.0, 0.0]]],
            &dev,
        )
        .unwrap();
        for relu in [false, true] {
            for m in [None, Some(&mask)] {
                let x = var(&[2, 3, 5], 11);
                let gamma = var(&[3], 12);
                let beta = var(&[3], 13);
                let vars = [x.clone(), gamma.clone(), beta.clone()];
                check(&vars, &|| {
                    batch_norm_train(
                        x.as_tensor(),
                        gamma.as_tensor(),
                        beta.as_tensor(),
                        m,
                        1e-5,
                        relu,
                    )
                    .unwrap()
                    .0
                });
            }
        }
    }

    /// The statistics are those of the valid frames only, and the output
    /// is the textbook normalisation of every frame with them.
    #[test]
    fn statistics_skip_padding() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[1f64, 3.0, 100.0]]], &dev).unwrap();
        let mask = Tensor::new(&[[[1f64, 1.0, 0.0]]], &dev).unwrap();
        let one = Tensor::new(&[1f64], &dev).unwrap();
        let zero = Tensor::new(&[0f64], &dev).unwrap();
        let (y, stats) = batch_norm_train(&x, &one, &zero, Some(&mask), 0.0, false).unwrap();
        assert_eq!((stats.mean[0], stats.var[0], stats.frames), (2.0, 1.0, 2.0));
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            [-1.0, 1.0, 98.0]
        );
    }
}
