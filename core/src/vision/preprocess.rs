//! RGB frames to the ViT's input: resize the shorter side, center-crop,
//! scale to [0, 1], normalise — torchvision's `Resize(S)`, `CenterCrop(S)`,
//! `ToTensor()`, `Normalize(mean, std)` on PIL images, which the sync
//! paper's release applied to every decoded frame.

use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which mean and standard deviation normalise the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// mean 0.5, std 0.5 per channel: what the sync paper's release used.
    #[default]
    Half,
    /// ImageNet statistics, DINOv2's own transforms.
    Imagenet,
}

impl Normalization {
    fn mean_std(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Normalization::Half => ([0.5; 3], [0.5; 3]),
            Normalization::Imagenet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        }
    }
}

impl std::str::FromStr for Normalization {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "half" => Ok(Normalization::Half),
            "imagenet" => Ok(Normalization::Imagenet),
            other => Err(Error::invalid(format!(
                "normalization '{other}': expected half (the paper's release) or imagenet"
            ))),
        }
    }
}

/// The preprocessing of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// The shorter side is resized to this (bilinear, antialiased).
    pub resize: usize,
    /// Then the central `crop × crop` square is kept.
    pub crop: usize,
    /// The mean and std applied after scaling to [0, 1].
    pub normalization: Normalization,
}

impl Default for Preprocess {
    /// The release's: 224, 224, mean/std 0.5.
    fn default() -> Self {
        Preprocess {
            resize: 224,
            crop: 224,
            normalization: Normalization::Half,
        }
    }
}

impl Preprocess {
    /// The size a `(width, height)` frame is resized to: the shorter side
    /// becomes `resize`, the longer one keeps the aspect ratio (truncated,
    /// as torchvision).
    pub fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        let r = self.resize;
        if width <= height {
            (r, (r as u64 * height as u64 / width as u64) as usize)
        } else {
            ((r as u64 * width as u64 / height as u64) as usize, r)
        }
    }

    /// Writes the `[3, crop, crop]` input of one RGB frame (`width ×
    /// height × 3` bytes, rows top to bottom) into `out`.
    pub fn frame_into(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        out: &mut [f32],
    ) -> Result<()> {
        let c = self.crop;
        if width == 0 || height == 0 || rgb.len() != width * height * 3 {
            return Err(Error::invalid(format!(
                "a frame of {width}×{height} RGB needs {} bytes, got {}",
                width * height * 3,
                rgb.len()
            )));
        }
        if c == 0 || self.resize < c {
            return Err(Error::invalid(format!(
                "resize {} must be at least the crop {c} (> 0)",
                self.resize
            )));
        }
        assert_eq!(out.len(), 3 * c * c, "output size");
        let img = RgbImage::from_raw(width as u32, height as u32, rgb.to_vec())
            .expect("length checked above");
        let (rw, rh) = self.resized_size(width, height);
        let resized = if (rw, rh) == (width, height) {
            img
        } else {
            imageops::resize(&img, rw as u32, rh as u32, FilterType::Triangle)
        };
        // torchvision rounds the offsets half to even (Python's round).
        let top = ((rh - c) as f64 / 2.0).round_ties_even() as usize;
        let left = ((rw - c) as f64 / 2.0).round_ties_even() as usize;
        let (mean, std) = self.normalization.mean_std();
        for y in 0..c {
            for x in 0..c {
                let p = resized.get_pixel((left + x) as u32, (top + y) as u32);
                for ch in 0..3 {
                    out[ch * c * c + y * c + x] = (p[ch] as f32 / 255.0 - mean[ch]) / std[ch];
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_keeps_aspect_like_torchvision() {
        let p = Preprocess::default();
        assert_eq!(p.resized_size(640, 480), (298, 224));
        assert_eq!(p.resized_size(480, 640), (224, 298));
        assert_eq!(p.resized_size(224, 224), (224, 224));
    }

    #[test]
    fn uniform_frame_normalises_per_channel() {
        let p = Preprocess {
            resize: 16,
            crop: 14,
            normalization: Normalization::Half,
        };
        let (w, h) = (40, 30);
        let rgb: Vec<u8> = (0..w * h).flat_map(|_| [255u8, 0, 51]).collect();
        let mut out = vec![0f32; 3 * 14 * 14];
        p.frame_into(&rgb, w, h, &mut out).unwrap();
        for (ch, want) in [1.0f32, -1.0, 51.0 / 255.0 * 2.0 - 1.0].iter().enumerate() {
            assert!(out[ch * 196..(ch + 1) * 196]
                .iter()
                .all(|v| (v - want).abs() < 1e-5));
        }
    }

    #[test]
    fn crop_is_centred_without_resize() {
        // A 6×4 frame, resize 4 (no-op), crop 4: columns 1..5 are kept.
        let p = Preprocess {
            resize: 4,
            crop: 4,
            normalization: Normalization::Half,
        };
        let rgb: Vec<u8> = (0..4)
            .flat_map(|_| (0..6u8).flat_map(|x| [x * 40, 0, 0]))
            .collect();
        let mut out = vec![0f32; 3 * 16];
        p.frame_into(&rgb, 6, 4, &mut out).unwrap();
        let first_row: Vec<u8> = out[..4]
            .iter()
            .map(|v| ((v * 0.5 + 0.5) * 255.0).round() as u8)
            .collect();
        assert_eq!(first_row, vec![40, 80, 120, 160]);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let p = Preprocess::default();
        let mut out = vec![0f32; 3 * 224 * 224];
        assert!(p.frame_into(&[0; 10], 4, 4, &mut out).is_err());
    }
}
