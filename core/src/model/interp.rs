//! Linear resampling along time (`align_corners=True`), as PyTorch's
//! `F.interpolate(mode="linear", align_corners=True)`.
//!
//! candle has no linear resampling with a backward pass. It is a custom op
//! here: each output frame reads its two source taps (forward) and the
//! backward scatters each output's gradient back onto them, both O(T) in
//! time and memory. (Until issue 19 it was a product with a dense
//! `[T_in, T_out]` interpolation matrix cached per length: quadratic in the
//! window, 800 MB for one 20k-frame window, and a cache that grew with
//! every new padded length a run met.)

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// The two source frames of every output frame and the weight of the
/// second: `out[j] = (1 − w[j])·x[i0[j]] + w[j]·x[i1[j]]`, computed in f64
/// as PyTorch does (`src = j·(t_in − 1)/(t_out − 1)`, 0 when `t_out == 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Taps {
    /// First source frame of each output frame.
    pub i0: Vec<usize>,
    /// Second source frame (`i0 + 1`, clamped to the last frame).
    pub i1: Vec<usize>,
    /// Weight of `i1`, in f64.
    pub w: Vec<f64>,
}

impl Taps {
    /// The taps of resampling `t_in` frames to `t_out` (both ≥ 1).
    pub fn new(t_in: usize, t_out: usize) -> Self {
        let mut taps = Taps {
            i0: Vec::with_capacity(t_out),
            i1: Vec::with_capacity(t_out),
            w: Vec::with_capacity(t_out),
        };
        for j in 0..t_out {
            let src = if t_out > 1 {
                j as f64 * (t_in as f64 - 1.0) / (t_out as f64 - 1.0)
            } else {
                0.0
            };
            let i0 = (src.floor() as usize).min(t_in - 1);
            taps.i0.push(i0);
            taps.i1.push((i0 + 1).min(t_in - 1));
            taps.w.push(src - i0 as f64);
        }
        taps
    }
}

/// The `[t_in, t_out]` matrix `M` with `(x · M)[t] = x` linearly resampled
/// (a dense reference for tests).
pub fn linear_matrix(t_in: usize, t_out: usize) -> Vec<f32> {
    let taps = Taps::new(t_in, t_out);
    let mut m = vec![0f32; t_in * t_out];
    for j in 0..t_out {
        let w = taps.w[j] as f32;
        m[taps.i0[j] * t_out + j] += 1.0 - w;
        m[taps.i1[j] * t_out + j] += w;
    }
    m
}

/// Resamples the last axis of a tensor; stateless (nothing is cached).
#[derive(Debug, Default, Clone, Copy)]
pub struct Resampler;

impl Resampler {
    /// Resamples `x` `[…, t_in]` to `[…, t_out]` (differentiable).
    pub fn linear(&self, x: &Tensor, t_out: usize) -> Result<Tensor> {
        linear(x, t_out)
    }
}

/// Resamples the last axis of `x` `[…, t_in]` to `t_out` frames
/// (differentiable; f32 or f64).
pub fn linear(x: &Tensor, t_out: usize) -> Result<Tensor> {
    let t_in = x.dim(candle_core::D::Minus1)?;
    if t_in == t_out {
        return Ok(x.clone());
    }
    if t_in == 0 || t_out == 0 {
        candle_core::bail!("cannot resample {t_in} frames to {t_out}");
    }
    x.contiguous()?.apply_op1(Resample {
        t_in,
        t_out,
        adjoint: false,
    })
}

/// The resampling (`adjoint: false`, rows of `t_in` → rows of `t_out`) or
/// its transpose (`adjoint: true`, rows of `t_out` → rows of `t_in`, the
/// gradient of the first). Each is the other's backward.
#[derive(Debug, Clone, Copy)]
struct Resample {
    t_in: usize,
    t_out: usize,
    adjoint: bool,
}

impl Resample {
    /// (input row length, output row length).
    fn lengths(&self) -> (usize, usize) {
        if self.adjoint {
            (self.t_out, self.t_in)
        } else {
            (self.t_in, self.t_out)
        }
    }

    fn run<T: num_like::Float>(&self, x: &[T]) -> Vec<T> {
        let (n_in, n_out) = self.lengths();
        let taps = Taps::new(self.t_in, self.t_out);
        let w: Vec<T> = taps.w.iter().map(|&w| T::from_f64(w)).collect();
        let rows = x.len() / n_in;
        let mut out = vec![T::zero(); rows * n_out];
        for (src, dst) in x.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
            if self.adjoint {
                // dst[i] = Σ_j over the taps that read i, of their weight · src[j].
                for j in 0..self.t_out {
                    let (i0, i1, w) = (taps.i0[j], taps.i1[j], w[j]);
                    dst[i0] = dst[i0] + (T::one() - w) * src[j];
                    dst[i1] = dst[i1] + w * src[j];
                }
            } else {
                resample_row(&taps, &w, src, dst);
            }
        }
        out
    }
}

/// One row resampled: `dst[j] = (1 − w[j])·src[i0[j]] + w[j]·src[i1[j]]`
/// with `w` the taps' weights in the row's type (the op's forward, and the
/// CPU inference executor's, [`super::cpu_infer`]).
pub(crate) fn resample_row<T: num_like::Float>(taps: &Taps, w: &[T], src: &[T], dst: &mut [T]) {
    for (j, d) in dst.iter_mut().enumerate().take(taps.i0.len()) {
        *d = (T::one() - w[j]) * src[taps.i0[j]] + w[j] * src[taps.i1[j]];
    }
}

impl CustomOp1 for Resample {
    fn name(&self) -> &'static str {
        if self.adjoint {
            "linear-resample-adjoint"
        } else {
            "linear-resample"
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n_in, n_out) = self.lengths();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("linear resampling needs a contiguous input");
        };
        let mut dims = layout.dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == n_in => *last = n_out,
            _ => candle_core::bail!(
                "linear resampling of rows of {n_in} frames got shape {:?}",
                layout.dims()
            ),
        }
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.run(&v[start..end])),
            CpuStorage::F64(v) => CpuStorage::F64(self.run(&v[start..end])),
            _ => candle_core::bail!("linear resampling takes f32 or f64 tensors"),
        };
        Ok((out, Shape::from(dims)))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let transpose = Resample {
            adjoint: !self.adjoint,
            ..*self
        };
        Ok(Some(grad_res.contiguous()?.apply_op1(transpose)?))
    }
}

/// The float arithmetic the op needs, for f32 and f64.
pub(crate) mod num_like {
    pub trait Float:
        Copy
        + std::ops::Add<Output = Self>
        + std::ops::Sub<Output = Self>
        + std::ops::Mul<Output = Self>
    {
        fn zero() -> Self;
        fn one() -> Self;
        fn from_f64(v: f64) -> Self;
    }
    impl Float for f32 {
        fn zero() -> Self {
            0.0
        }
        fn one() -> Self {
            1.0
        }
        fn from_f64(v: f64) -> Self {
            v as f32
        }
    }
    impl Float for f64 {
        fn zero() -> Self {
            0.0
        }
        fn one() -> Self {
            1.0
        }
        fn from_f64(v: f64) -> Self {
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_align_corners_by_hand() {
        // 3 -> 5: sources 0, 0.5, 1, 1.5, 2.
        let x = Tensor::new(&[[[0f32, 10.0, 20.0]]], &Device::Cpu).unwrap();
        let y = Resampler.linear(&x, 5).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0.0, 5.0, 10.0, 15.0, 20.0]
        );
        // 1 -> 4 repeats; 4 -> 1 takes the first.
        let one = Tensor::new(&[[[7f32]]], &Device::Cpu).unwrap();
        let y = Resampler.linear(&one, 4).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![7.0; 4]
        );
        let four = Tensor::new(&[[[1f32, 2.0, 3.0, 4.0]]], &Device::Cpu).unwrap();
        let y = Resampler.linear(&four, 1).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0]
        );
    }

    /// The op equals the dense matrix product, forward and backward.
    #[test]
    fn matches_the_dense_matrix() {
        use candle_core::Var;
        for (a, b) in [
            (2, 7),
            (13, 26),
            (26, 13),
            (37, 75),
            (1, 4),
            (4, 1),
            (600, 19),
        ] {
            let data: Vec<f32> = (0..3 * a).map(|i| ((i * 37 % 101) as f32).sin()).collect();
            let x = Var::from_vec(data, (1, 3, a), &Device::Cpu).unwrap();
            let m = Tensor::from_vec(linear_matrix(a, b), (a, b), &Device::Cpu).unwrap();
            let dense = x.as_tensor().reshape((3, a)).unwrap().matmul(&m).unwrap();
            let ours = linear(x.as_tensor(), b).unwrap();
            let diff = (ours.reshape((3, b)).unwrap() - &dense)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-6, "{a} -> {b}: {diff}");
            // A weighted sum's gradient: the weights through the transpose.
            let g: Vec<f32> = (0..3 * b).map(|i| (i as f32 * 0.37).cos()).collect();
            let g = Tensor::from_vec(g, (1, 3, b), &Device::Cpu).unwrap();
            let grads = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let want = g.reshape((3, b)).unwrap().matmul(&m.t().unwrap()).unwrap();
            let got = grads.get(&x).unwrap().reshape((3, a)).unwrap();
            let diff = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-5, "{a} -> {b} gradient: {diff}");
        }
    }

    #[test]
    fn columns_are_convex_combinations() {
        for (a, b) in [(2, 7), (13, 26), (26, 13), (5, 5), (37, 75)] {
            let m = linear_matrix(a, b);
            for j in 0..b {
                let s: f32 = (0..a).map(|i| m[i * b + j]).sum();
                assert!((s - 1.0).abs() < 1e-6);
            }
        }
    }
}
