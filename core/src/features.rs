//! Per-frame feature matrices.
//!
//! Features are stored as `[D, T]` row-major (`data[d * frames + t]`), the
//! layout of MS-TCN-style `features/<video>.npy` files, so that a file reads
//! into memory without a transpose and a 1-D temporal convolution sees each
//! channel as one contiguous row.

use crate::error::{Error, Result};
pub use crate::feature_data::FeatureData;

/// A `[D, T]` matrix of per-frame features: `dim` channels over `frames`
/// time steps, stored row-major as `data[d * frames + t]`.
///
/// The fields are public for zero-copy hand-off to tensor libraries; use
/// [`Features::new`] to build one with its length checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Number of feature channels `D`.
    pub dim: usize,
    /// Number of frames `T`.
    pub frames: usize,
    /// `D * T` values, channel-major: `data[d * frames + t]`; in memory or
    /// read in place from a mapped file (a `&[f32]` either way).
    pub data: FeatureData,
}

/// `a * b`, or an error naming the shape when it overflows `usize`.
fn checked_len(dim: usize, frames: usize) -> Result<usize> {
    dim.checked_mul(frames)
        .ok_or_else(|| Error::invalid(format!("feature shape [{dim}, {frames}] is too large")))
}

impl Features {
    /// Wraps `data` laid out as `[dim, frames]` (`data[d * frames + t]`),
    /// checking that it holds exactly `dim * frames` values.
    pub fn new(dim: usize, frames: usize, data: Vec<f32>) -> Result<Self> {
        let want = checked_len(dim, frames)?;
        if data.len() != want {
            return Err(Error::invalid(format!(
                "feature shape [{dim}, {frames}] needs {want} values, got {}",
                data.len()
            )));
        }
        Ok(Features {
            dim,
            frames,
            data: data.into(),
        })
    }

    /// Builds features from time-major data `[frames, dim]`
    /// (`data[t * dim + d]`, the layout of most feature extractors and of
    /// PyTorch `(T, D)` tensors), transposing it into `[D, T]`.
    pub fn from_time_major(frames: usize, dim: usize, data: Vec<f32>) -> Result<Self> {
        let want = checked_len(dim, frames)?;
        if data.len() != want {
            return Err(Error::invalid(format!(
                "time-major feature shape [{frames}, {dim}] needs {want} values, got {}",
                data.len()
            )));
        }
        Ok(Features {
            dim,
            frames,
            data: transpose(&data, frames, dim).into(),
        })
    }

    /// The same values laid out time-major `[frames, dim]` (`out[t * dim + d]`).
    pub fn to_time_major(&self) -> Vec<f32> {
        transpose(&self.data, self.dim, self.frames)
    }

    /// The value of channel `d` at frame `t`, or `None` when either index is
    /// out of range.
    pub fn get(&self, d: usize, t: usize) -> Option<f32> {
        if d < self.dim && t < self.frames {
            self.data.get(d * self.frames + t).copied()
        } else {
            None
        }
    }

    /// Channel `d` over all frames, a contiguous slice of length `frames`;
    /// `None` when `d` is out of range.
    pub fn channel(&self, d: usize) -> Option<&[f32]> {
        if d < self.dim {
            self.data.get(d * self.frames..(d + 1) * self.frames)
        } else {
            None
        }
    }

    /// The feature vector of frame `t` (length `dim`), gathered from the
    /// columns; `None` when `t` is out of range.
    pub fn frame(&self, t: usize) -> Option<Vec<f32>> {
        if t >= self.frames {
            return None;
        }
        Some(
            (0..self.dim)
                .map(|d| self.data[d * self.frames + t])
                .collect(),
        )
    }

    /// A new matrix whose frame `i` is this matrix's frame `indices[i]`.
    ///
    /// This one gather serves nearest-neighbour resampling between frame
    /// rates, trimming, and simulated frame drops; indices may repeat and
    /// need not be sorted. Fails on an index `>= frames`.
    pub fn select_frames(&self, indices: &[usize]) -> Result<Features> {
        if let Some((i, &bad)) = indices.iter().enumerate().find(|(_, &t)| t >= self.frames) {
            return Err(Error::invalid(format!(
                "frame index {bad} (position {i}) is out of range for {} frames",
                self.frames
            )));
        }
        let n = indices.len();
        if n == self.frames && indices.iter().enumerate().all(|(i, &t)| i == t) {
            // Every frame in order (aligned views, lengths that agree): the
            // same matrix, and a mapped file stays mapped.
            return Ok(self.clone());
        }
        let mut data = Vec::with_capacity(checked_len(self.dim, n)?);
        for d in 0..self.dim {
            let row = &self.data[d * self.frames..(d + 1) * self.frames];
            data.extend(indices.iter().map(|&t| row[t]));
        }
        Ok(Features {
            dim: self.dim,
            frames: n,
            data: data.into(),
        })
    }

    /// The first non-finite value as `(d, t, value)`, scanning frames in
    /// time order (so the earliest bad frame is reported), or `None`.
    pub fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        if self.data.iter().all(|v| v.is_finite()) {
            return None;
        }
        (0..self.frames)
            .flat_map(|t| (0..self.dim).map(move |d| (d, t)))
            .map(|(d, t)| (d, t, self.data[d * self.frames + t]))
            .find(|(_, _, v)| !v.is_finite())
    }

    /// Fails if any value is NaN or infinite, naming the first bad `(d, t)`:
    /// a single NaN in the input spreads through every convolution and
    /// silently ruins a training run, so it is caught at the door.
    pub fn check_finite(&self) -> Result<()> {
        match self.first_non_finite() {
            None => Ok(()),
            Some((d, t, v)) => Err(Error::invalid(format!(
                "features contain {v} at channel {d}, frame {t}"
            ))),
        }
    }
}

/// Transposes a row-major `[rows, cols]` matrix into `[cols, rows]`.
pub(crate) fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Features {
        // D = 2, T = 3: channel 0 = [0, 1, 2], channel 1 = [10, 11, 12].
        Features::new(2, 3, vec![0., 1., 2., 10., 11., 12.]).unwrap()
    }

    #[test]
    fn new_checks_length() {
        let err = Features::new(2, 3, vec![0.0; 5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature shape [2, 3] needs 6 values, got 5"
        );
        assert!(Features::new(usize::MAX, 2, vec![]).is_err());
    }

    #[test]
    fn accessors() {
        let f = sample();
        assert_eq!(f.get(1, 2), Some(12.));
        assert_eq!(f.get(2, 0), None);
        assert_eq!(f.get(0, 3), None);
        assert_eq!(f.frame(1), Some(vec![1., 11.]));
        assert_eq!(f.frame(3), None);
        assert_eq!(f.channel(1), Some(&[10., 11., 12.][..]));
        assert_eq!(f.channel(2), None);
    }

    #[test]
    fn time_major_round_trip() {
        let f = sample();
        let tm = f.to_time_major();
        assert_eq!(tm, vec![0., 10., 1., 11., 2., 12.]);
        assert_eq!(Features::from_time_major(3, 2, tm).unwrap(), f);
        assert!(Features::from_time_major(3, 2, vec![0.0; 4]).is_err());
    }

    #[test]
    fn select_frames_gathers_columns() {
        let f = sample();
        let g = f.select_frames(&[2, 0, 0]).unwrap();
        assert_eq!(g.frames, 3);
        assert_eq!(g.data, vec![2., 0., 0., 12., 10., 10.]);
        let empty = f.select_frames(&[]).unwrap();
        assert_eq!((empty.dim, empty.frames, empty.data.len()), (2, 0, 0));
        let err = f.select_frames(&[0, 3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame index 3 (position 1) is out of range for 3 frames"
        );
    }

    #[test]
    fn check_finite_reports_earliest_frame() {
        let mut f = sample();
        assert!(f.check_finite().is_ok());
        f.data[2] = f32::INFINITY; // (d 0, t 2)
        f.data[4] = f32::NAN; // (d 1, t 1): earlier in time
        let err = f.check_finite().unwrap_err();
        assert_eq!(
            err.to_string(),
            "features contain NaN at channel 1, frame 1"
        );
    }
}
