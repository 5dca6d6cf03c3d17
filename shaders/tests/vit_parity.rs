//! The DINOv2 ViT on the GPU against the candle model (the CPU path of
//! `syncseg features`), on the test adapter (lavapipe in CI): GELU and
//! SwiGLU MLPs, registers, resized position embeddings, images whose tokens
//! cross the attention kernel's query tiles, batches of several sizes.

mod common;

use candle_core::{Device, Tensor};
use common::{assert_close, gpu, random, Tolerance};
use syncseg_core::vision::{Mlp, Vit, VitConfig};
use syncseg_shaders::WgpuVit;

fn config(dim: usize, depth: usize, heads: usize, patch: usize, mlp: Mlp) -> VitConfig {
    VitConfig {
        dim,
        depth,
        heads,
        patch,
        mlp,
        registers: 0,
        pos_grid: 3,
    }
}

fn check(cfg: VitConfig, image: usize, batches: &[usize], what: &str) {
    let vit = Vit::random_with_std(cfg, image, 0.2).unwrap();
    let mut gpu_vit = WgpuVit::new(gpu(), &vit).unwrap();
    for (i, &b) in batches.iter().enumerate() {
        let images = random(b * 3 * image * image, 100 + i as u64);
        let x = Tensor::from_slice(&images, (b, 3, image, image), &Device::Cpu).unwrap();
        let want: Vec<f64> = vit
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        let got = pollster::block_on(gpu_vit.embed(&images)).unwrap();
        assert_close(
            &got,
            &want,
            Tolerance::PARITY,
            &format!("{what}, batch of {b}"),
        );
    }
}

#[test]
fn gelu_vit_matches_candle() {
    skip_without_gpu!();
    // 28 px, patch 14: a 2×2 grid, position embeddings resized from 3×3.
    let cfg = config(64, 2, 2, 14, Mlp::Gelu { hidden: 256 });
    check(cfg, 28, &[1, 3, 1], "ViT GELU 64-D");
}

#[test]
fn swiglu_vit_with_registers_matches_candle() {
    skip_without_gpu!();
    let cfg = VitConfig {
        registers: 4,
        pos_grid: 2,
        ..config(96, 2, 3, 14, Mlp::SwiGlu { hidden: 80 })
    };
    check(cfg, 28, &[2], "ViT SwiGLU + 4 registers");
}

#[test]
fn images_of_many_tokens_attend_only_to_themselves() {
    skip_without_gpu!();
    // Patch 4 over 40 px: 101 tokens an image, across two query tiles of 64;
    // a batch of 3 puts image boundaries inside tiles.
    let cfg = VitConfig {
        pos_grid: 10,
        ..config(32, 1, 1, 4, Mlp::Gelu { hidden: 64 })
    };
    check(cfg, 40, &[3], "ViT 101 tokens");
}

#[test]
fn bad_inputs_are_errors() {
    skip_without_gpu!();
    let cfg = config(64, 1, 2, 14, Mlp::Gelu { hidden: 128 });
    let vit = Vit::random(cfg, 28).unwrap();
    let mut gpu_vit = WgpuVit::new(gpu(), &vit).unwrap();
    let err = pollster::block_on(gpu_vit.embed(&[0.0; 100])).unwrap_err();
    assert!(err.to_string().contains("3×28×28"), "{err}");
    // Heads wider than the attention kernel holds.
    let wide = config(256, 1, 1, 14, Mlp::Gelu { hidden: 128 });
    let vit = Vit::random(wide, 28).unwrap();
    let err = WgpuVit::new(gpu(), &vit).err().unwrap();
    assert!(err.to_string().contains("256 wide"), "{err}");
}
