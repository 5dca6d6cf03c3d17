//! Cutting videos into fixed-length windows and batching them as tensors.
//!
//! Videos are cut into consecutive windows of at most `window_frames`
//! frames (the release used 600). A batch pads its windows with zeros to a
//! common length of at least [`MIN_FRAMES`] (C2F-TCN's minimum), and carries
//! a mask so that padding counts in no loss and no BatchNorm statistic.

use candle_core::{Device, Result, Tensor};

use crate::features::Features;
use crate::model::MIN_FRAMES;

/// A window `[start, start + len)` of video `video`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Index of the video in the caller's list.
    pub video: usize,
    /// First frame.
    pub start: usize,
    /// Number of real frames.
    pub len: usize,
}

/// Consecutive non-overlapping windows covering every video.
pub fn windows(lengths: &[usize], window_frames: usize) -> Vec<Window> {
    let w = window_frames.max(1);
    let mut out = Vec::new();
    for (video, &n) in lengths.iter().enumerate() {
        let mut start = 0;
        while start < n {
            let len = w.min(n - start);
            out.push(Window { video, start, len });
            start += len;
        }
    }
    out
}

/// The padded length of a batch of windows.
pub fn padded_len(windows: &[Window]) -> usize {
    windows
        .iter()
        .map(|w| w.len)
        .max()
        .unwrap_or(0)
        .max(MIN_FRAMES)
}

/// Features of `windows` as `[B, D, T]` (zero-padded to `t`) and the valid
/// mask `[B, T]`. `frames_of(w)` gives the frame indices of window `w` in
/// its video (identity for aligned views, a resampling otherwise).
pub fn features_batch(
    videos: &[&Features],
    windows: &[Window],
    t: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let d = videos.first().map(|f| f.dim).unwrap_or(0);
    let b = windows.len();
    let mut x = vec![0f32; b * d * t];
    let mut mask = vec![0f32; b * t];
    for (i, w) in windows.iter().enumerate() {
        let f = videos[w.video];
        if f.dim != d {
            candle_core::bail!(
                "features of different dimensions in one batch ({} vs {d})",
                f.dim
            );
        }
        for c in 0..d {
            let src = &f.data[c * f.frames + w.start..c * f.frames + w.start + w.len];
            x[(i * d + c) * t..(i * d + c) * t + w.len].copy_from_slice(src);
        }
        mask[i * t..i * t + w.len].fill(1.0);
    }
    Ok((
        Tensor::from_vec(x, (b, d, t), device)?,
        Tensor::from_vec(mask, (b, t), device)?,
    ))
}

/// Labels of `windows` as `[B, T]` u32 targets and the `[B, T]` weight of
/// frames that count in the loss (real and not in `ignore`).
pub fn labels_batch(
    labels: &[&[u32]],
    windows: &[Window],
    t: usize,
    ignore: &[u32],
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let b = windows.len();
    let mut y = vec![0u32; b * t];
    let mut weight = vec![0f32; b * t];
    for (i, w) in windows.iter().enumerate() {
        for (j, &l) in labels[w.video][w.start..w.start + w.len].iter().enumerate() {
            if !ignore.contains(&l) {
                y[i * t + j] = l;
                weight[i * t + j] = 1.0;
            }
        }
    }
    Ok((
        Tensor::from_vec(y, (b, t), device)?,
        Tensor::from_vec(weight, (b, t), device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_frame_once() {
        let w = windows(&[1000, 600, 5], 600);
        assert_eq!(
            w,
            vec![
                Window {
                    video: 0,
                    start: 0,
                    len: 600
                },
                Window {
                    video: 0,
                    start: 600,
                    len: 400
                },
                Window {
                    video: 1,
                    start: 0,
                    len: 600
                },
                Window {
                    video: 2,
                    start: 0,
                    len: 5
                },
            ]
        );
        assert_eq!(padded_len(&w[3..]), MIN_FRAMES);
    }

    #[test]
    fn batches_pad_and_mask() {
        let f = Features::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let win = [Window {
            video: 0,
            start: 1,
            len: 2,
        }];
        let (x, m) = features_batch(&[&f], &win, 4, &Device::Cpu).unwrap();
        assert_eq!(
            x.to_vec3::<f32>().unwrap(),
            vec![vec![vec![2.0, 3.0, 0.0, 0.0], vec![5.0, 6.0, 0.0, 0.0]]]
        );
        assert_eq!(m.to_vec2::<f32>().unwrap(), vec![vec![1.0, 1.0, 0.0, 0.0]]);
        let labels: Vec<u32> = vec![0, 2, 1];
        let (y, w) = labels_batch(&[&labels], &win, 4, &[1], &Device::Cpu).unwrap();
        assert_eq!(y.to_vec2::<u32>().unwrap(), vec![vec![2, 0, 0, 0]]);
        assert_eq!(w.to_vec2::<f32>().unwrap(), vec![vec![1.0, 0.0, 0.0, 0.0]]);
    }
}
