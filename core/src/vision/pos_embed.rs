//! Resizing a checkpoint's position embeddings to another patch grid.
//!
//! DINOv2 checkpoints carry embeddings for a 37×37 grid (518 px); a 224 px
//! input has a 16×16 grid. DINOv2 resizes them with PyTorch's bicubic
//! interpolation (a = −0.75, `align_corners=False`, border taps clamped),
//! passing `scale_factor = (out + 0.1) / in` — the 0.1 offset avoids a
//! floating-point rounding of the output size — so the source coordinate
//! of output cell `o` is `(o + 0.5) · in / (out + 0.1) − 0.5`. Computed on
//! the host in f64, once per grid.

/// PyTorch's cubic convolution coefficient.
const A: f64 = -0.75;

/// The four cubic weights for a fractional offset `t` in [0, 1).
fn cubic_weights(t: f64) -> [f64; 4] {
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Per output cell along one axis: the four clamped source indices and
/// their weights.
fn taps(input: usize, output: usize, offset: f64) -> Vec<([usize; 4], [f64; 4])> {
    let scale = input as f64 / (output as f64 + offset);
    (0..output)
        .map(|o| {
            let src = (o as f64 + 0.5) * scale - 0.5;
            let base = src.floor();
            let w = cubic_weights(src - base);
            let idx =
                [-1i64, 0, 1, 2].map(|k| (base as i64 + k).clamp(0, input as i64 - 1) as usize);
            (idx, w)
        })
        .collect()
}

/// Resizes `grid` (`[in_h · in_w, dim]` row-major, rows in raster order) to
/// `[out_h · out_w, dim]`. `offset` is DINOv2's 0.1 (0 gives PyTorch's
/// plain `size=` resize). The same size with offset 0 is the identity.
pub fn resize_bicubic(
    grid: &[f32],
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
    dim: usize,
    offset: f64,
) -> Vec<f32> {
    assert_eq!(grid.len(), in_h * in_w * dim, "grid size");
    let ty = taps(in_h, out_h, offset);
    let tx = taps(in_w, out_w, offset);
    let mut out = vec![0f32; out_h * out_w * dim];
    let mut acc = vec![0f64; dim];
    for (oy, (iy, wy)) in ty.iter().enumerate() {
        for (ox, (ix, wx)) in tx.iter().enumerate() {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for (&y, &wy) in iy.iter().zip(wy) {
                for (&x, &wx) in ix.iter().zip(wx) {
                    let row = &grid[(y * in_w + x) * dim..(y * in_w + x + 1) * dim];
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += wy * wx * v as f64;
                    }
                }
            }
            let o = (oy * out_w + ox) * dim;
            for (dst, a) in out[o..o + dim].iter_mut().zip(&acc) {
                *dst = *a as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one() {
        for t in [0.0, 0.1, 0.25, 0.5, 0.9] {
            let s: f64 = cubic_weights(t).iter().sum();
            assert!((s - 1.0).abs() < 1e-12, "t={t}: {s}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn same_size_without_offset_is_identity() {
        let grid: Vec<f32> = (0..5 * 4 * 3).map(|i| (i as f32 * 0.37).sin()).collect();
        let out = resize_bicubic(&grid, (5, 4), (5, 4), 3, 0.0);
        for (a, b) in grid.iter().zip(&out) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn constants_stay_constant() {
        let out = resize_bicubic(&vec![2.5; 37 * 37], (37, 37), (16, 16), 1, 0.1);
        assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-5));
    }

    #[test]
    fn matches_pytorch_bicubic_on_a_ramp() {
        // torch.nn.functional.interpolate(torch.arange(4.).view(1, 1, 1, 4),
        // size=(1, 2), mode="bicubic", align_corners=False) = [0.40625,
        // 2.59375]: a = -0.75 with clamped border taps (worked by hand).
        let out = resize_bicubic(&[0.0, 1.0, 2.0, 3.0], (1, 4), (1, 2), 1, 0.0);
        assert_eq!(out, vec![0.40625, 2.59375]);
    }
}
