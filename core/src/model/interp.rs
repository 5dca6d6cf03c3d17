//! Linear resampling along time (`align_corners=True`), as a matrix product.
//!
//! candle has no linear upsampling with a backward pass. Writing it as
//! `x · M` with a fixed `[T_in, T_out]` interpolation matrix makes it
//! differentiable through candle's matmul for free, and is exact: each output
//! column holds the two weights PyTorch's `F.interpolate(mode="linear",
//! align_corners=True)` would use.

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Device, Result, Tensor};

/// The `[t_in, t_out]` matrix `M` with `(x · M)[t] = x` linearly resampled.
pub fn linear_matrix(t_in: usize, t_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; t_in * t_out];
    for j in 0..t_out {
        // PyTorch: src = j * (t_in - 1) / (t_out - 1), 0 when t_out == 1.
        let src = if t_out > 1 {
            j as f64 * (t_in as f64 - 1.0) / (t_out as f64 - 1.0)
        } else {
            0.0
        };
        let i0 = (src.floor() as usize).min(t_in - 1);
        let i1 = (i0 + 1).min(t_in - 1);
        let w = (src - i0 as f64) as f32;
        m[i0 * t_out + j] += 1.0 - w;
        m[i1 * t_out + j] += w;
    }
    m
}

/// Caches interpolation matrices by `(t_in, t_out)`: the same few lengths
/// recur at every step.
#[derive(Default)]
pub struct Resampler {
    cache: Mutex<HashMap<(usize, usize, DType), Tensor>>,
}

impl Resampler {
    /// Resamples `x` of shape `[B, C, t_in]` to `[B, C, t_out]`.
    pub fn linear(&self, x: &Tensor, t_out: usize) -> Result<Tensor> {
        let (b, c, t_in) = x.dims3()?;
        if t_in == t_out {
            return Ok(x.clone());
        }
        let m = self.matrix(t_in, t_out, x.dtype(), x.device())?;
        x.reshape((b * c, t_in))?.matmul(&m)?.reshape((b, c, t_out))
    }

    fn matrix(&self, t_in: usize, t_out: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut cache = self.cache.lock().expect("resampler cache poisoned");
        if let Some(m) = cache.get(&(t_in, t_out, dtype)) {
            return Ok(m.clone());
        }
        let m =
            Tensor::from_vec(linear_matrix(t_in, t_out), (t_in, t_out), device)?.to_dtype(dtype)?;
        cache.insert((t_in, t_out, dtype), m.clone());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_align_corners_by_hand() {
        // 3 -> 5: sources 0, 0.5, 1, 1.5, 2.
        let x = Tensor::new(&[[[0f32, 10.0, 20.0]]], &Device::Cpu).unwrap();
        let y = Resampler::default().linear(&x, 5).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![0.0, 5.0, 10.0, 15.0, 20.0]
        );
        // 1 -> 4 repeats; 4 -> 1 takes the first.
        let one = Tensor::new(&[[[7f32]]], &Device::Cpu).unwrap();
        let y = Resampler::default().linear(&one, 4).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![7.0; 4]
        );
        let four = Tensor::new(&[[[1f32, 2.0, 3.0, 4.0]]], &Device::Cpu).unwrap();
        let y = Resampler::default().linear(&four, 1).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0]
        );
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
