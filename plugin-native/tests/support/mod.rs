//! Fixtures the CLI's video tests share: test videos made by FFmpeg, a
//! tiny random DINOv2 checkpoint in the public checkpoints' layout, and a
//! small random segmentation model.
#![allow(dead_code)] // each test crate uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use syncseg_core::model::{C2fConfig, ModelMeta, SegModel};

/// The tiny ViT's width (one head: DINOv2 has width / 64 heads).
pub const DIM: usize = 64;
/// The test video: 3 s at 10 fps.
pub const FRAMES: usize = 30;

/// A 96×64 `testsrc` video (moving pattern and counter), H.264 in MP4,
/// 3 s at 10 fps.
pub fn test_video(dir: &Path) -> PathBuf {
    clip(dir, "clip", 3)
}

/// A `testsrc` video `<name>.mp4` of `seconds` at 10 fps (96×64, H.264);
/// `seconds` also shifts the pattern, so clips differ in content.
pub fn clip(dir: &Path, name: &str, seconds: usize) -> PathBuf {
    let path = dir.join(format!("{name}.mp4"));
    let source = format!("testsrc=duration={seconds}:size=96x64:rate=10");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-f", "lavfi", "-i", &source])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg is installed (bash scripts/test.sh installs it)");
    assert!(status.success(), "ffmpeg could not generate the test video");
    path
}

/// Random DINOv2 weights: width 64, 1 layer, patch 14, a 4×4 position grid.
pub fn tiny_vit(dir: &Path) -> PathBuf {
    let (d, p, g, hidden) = (DIM, 14, 4, 128);
    let mut seed = 1u32;
    let mut t = HashMap::new();
    let mut put = |name: &str, shape: &[usize], scale: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        t.insert(
            name.to_string(),
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap(),
        );
    };
    put("cls_token", &[1, 1, d], 1.0);
    put("pos_embed", &[1, 1 + g * g, d], 1.0);
    put("mask_token", &[1, d], 1.0);
    put("patch_embed.proj.weight", &[d, 3, p, p], 0.05);
    put("patch_embed.proj.bias", &[d], 0.1);
    for (n, s) in [("norm1", d), ("norm2", d)] {
        put(&format!("blocks.0.{n}.weight"), &[s], 1.0);
        put(&format!("blocks.0.{n}.bias"), &[s], 0.1);
    }
    put("blocks.0.attn.qkv.weight", &[3 * d, d], 0.2);
    put("blocks.0.attn.qkv.bias", &[3 * d], 0.1);
    put("blocks.0.attn.proj.weight", &[d, d], 0.2);
    put("blocks.0.attn.proj.bias", &[d], 0.1);
    put("blocks.0.ls1.gamma", &[d], 0.5);
    put("blocks.0.ls2.gamma", &[d], 0.5);
    put("blocks.0.mlp.fc1.weight", &[hidden, d], 0.2);
    put("blocks.0.mlp.fc1.bias", &[hidden], 0.1);
    put("blocks.0.mlp.fc2.weight", &[d, hidden], 0.2);
    put("blocks.0.mlp.fc2.bias", &[d], 0.1);
    put("norm.weight", &[d], 1.0);
    put("norm.bias", &[d], 0.1);
    let path = dir.join("dinov2_tiny.safetensors");
    candle_core::safetensors::save(&t, &path).unwrap();
    path
}

pub fn tiny_model(dir: &Path, dim: usize) -> PathBuf {
    let names: Vec<String> = ["background", "pick", "place", "screw"]
        .map(String::from)
        .to_vec();
    let meta = ModelMeta::new(
        C2fConfig::scaled(dim, names.len(), 0.125),
        names,
        vec![],
        600,
    );
    let path = dir.join(format!("model{dim}"));
    SegModel::new_seeded(meta, &Device::Cpu, 5)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// The small input keeps the test fast: 32 px shorter side, 28 px crop (2×2 patches).
pub const SMALL: [&str; 4] = ["--resize", "32", "--crop", "28"];
