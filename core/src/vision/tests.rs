//! The ViT against a plain f64 implementation written from the DINOv2
//! definition, on tiny random checkpoints; and the Hugging Face layout
//! against the official one.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::pos_embed::resize_bicubic;
use super::vit::{Mlp, Vit, VitConfig};

/// Random tensors in the official layout.
fn checkpoint(cfg: &VitConfig, seed: u64) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = HashMap::new();
    let mut put = |name: String, shape: Vec<usize>, scale: f32| {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| rng.random_range(-1.0..1.0f32) * scale)
            .collect();
        t.insert(name, (shape, v));
    };
    let (d, p, g) = (cfg.dim, cfg.patch, cfg.pos_grid);
    put("cls_token".into(), vec![1, 1, d], 1.0);
    put("pos_embed".into(), vec![1, 1 + g * g, d], 1.0);
    put("patch_embed.proj.weight".into(), vec![d, 3, p, p], 0.3);
    put("patch_embed.proj.bias".into(), vec![d], 0.1);
    if cfg.registers > 0 {
        put("register_tokens".into(), vec![1, cfg.registers, d], 1.0);
    }
    for i in 0..cfg.depth {
        let b = |s: &str| format!("blocks.{i}.{s}");
        for n in ["norm1", "norm2"] {
            put(b(&format!("{n}.weight")), vec![d], 1.0);
            put(b(&format!("{n}.bias")), vec![d], 0.2);
        }
        put(b("attn.qkv.weight"), vec![3 * d, d], 0.5);
        put(b("attn.qkv.bias"), vec![3 * d], 0.1);
        put(b("attn.proj.weight"), vec![d, d], 0.4);
        put(b("attn.proj.bias"), vec![d], 0.1);
        put(b("ls1.gamma"), vec![d], 0.5);
        put(b("ls2.gamma"), vec![d], 0.5);
        let (a, bname, h, out) = match cfg.mlp {
            Mlp::Gelu { hidden } => ("mlp.fc1", "mlp.fc2", hidden, hidden),
            Mlp::SwiGlu { hidden } => ("mlp.w12", "mlp.w3", hidden, 2 * hidden),
        };
        put(b(&format!("{a}.weight")), vec![out, d], 0.4);
        put(b(&format!("{a}.bias")), vec![out], 0.1);
        put(b(&format!("{bname}.weight")), vec![d, h], 0.4);
        put(b(&format!("{bname}.bias")), vec![d], 0.1);
    }
    put("norm.weight".into(), vec![d], 1.0);
    put("norm.bias".into(), vec![d], 0.2);
    t
}

fn tensors(ck: &HashMap<String, (Vec<usize>, Vec<f32>)>) -> HashMap<String, Tensor> {
    ck.iter()
        .map(|(k, (s, v))| {
            (
                k.clone(),
                Tensor::from_vec(v.clone(), s.as_slice(), &Device::Cpu).unwrap(),
            )
        })
        .collect()
}

fn layer_norm(x: &[f64], w: &[f32], b: &[f32]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - mean) / (var + 1e-6).sqrt() * w[i] as f64 + b[i] as f64)
        .collect()
}

fn linear(x: &[f64], w: &[f32], b: &[f32]) -> Vec<f64> {
    let inp = x.len();
    b.iter()
        .enumerate()
        .map(|(o, &bias)| bias as f64 + (0..inp).map(|i| w[o * inp + i] as f64 * x[i]).sum::<f64>())
        .collect()
}

fn erf(x: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26 is too coarse; integrate instead (x is small).
    let n = 2000;
    let h = x / n as f64;
    let f = |t: f64| (-t * t).exp();
    let s: f64 = (0..n)
        .map(|i| f(h * i as f64) + 4.0 * f(h * (i as f64 + 0.5)) + f(h * (i + 1) as f64))
        .sum();
    s * h / 6.0 * 2.0 / std::f64::consts::PI.sqrt()
}

/// The CLS feature of one `[3, S, S]` image, in f64 from the definition.
fn reference(
    ck: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    cfg: &VitConfig,
    s: usize,
    img: &[f32],
) -> Vec<f64> {
    let w = |n: &str| &ck[n].1;
    let (d, p, g) = (cfg.dim, cfg.patch, s / cfg.patch);
    let pg = cfg.pos_grid;
    let pos_patch = if pg == g {
        w("pos_embed")[d..].to_vec()
    } else {
        resize_bicubic(&w("pos_embed")[d..], (pg, pg), (g, g), d, 0.1)
    };
    let mut tokens: Vec<Vec<f64>> = vec![w("cls_token")
        .iter()
        .zip(&w("pos_embed")[..d])
        .map(|(a, b)| (*a + *b) as f64)
        .collect()];
    if cfg.registers > 0 {
        for r in 0..cfg.registers {
            tokens.push(
                w("register_tokens")[r * d..(r + 1) * d]
                    .iter()
                    .map(|&v| v as f64)
                    .collect(),
            );
        }
    }
    for py in 0..g {
        for px in 0..g {
            let mut e = vec![0f64; d];
            for (o, eo) in e.iter_mut().enumerate() {
                let mut acc = w("patch_embed.proj.bias")[o] as f64;
                for c in 0..3 {
                    for y in 0..p {
                        for x in 0..p {
                            let wv =
                                w("patch_embed.proj.weight")[((o * 3 + c) * p + y) * p + x] as f64;
                            acc += wv * img[(c * s + py * p + y) * s + px * p + x] as f64;
                        }
                    }
                }
                *eo = acc + pos_patch[(py * g + px) * d + o] as f64;
            }
            tokens.push(e);
        }
    }
    let (h, hd) = (cfg.heads, d / cfg.heads);
    for i in 0..cfg.depth {
        let b = |s: &str| format!("blocks.{i}.{s}");
        let normed: Vec<Vec<f64>> = tokens
            .iter()
            .map(|t| layer_norm(t, w(&b("norm1.weight")), w(&b("norm1.bias"))))
            .collect();
        let qkv: Vec<Vec<f64>> = normed
            .iter()
            .map(|t| linear(t, w(&b("attn.qkv.weight")), w(&b("attn.qkv.bias"))))
            .collect();
        let n = tokens.len();
        let mut attn_out = vec![vec![0f64; d]; n];
        for head in 0..h {
            for qi in 0..n {
                let q = &qkv[qi][head * hd..(head + 1) * hd];
                let scores: Vec<f64> = (0..n)
                    .map(|ki| {
                        let k = &qkv[ki][d + head * hd..d + (head + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (ki, sc) in scores.iter().enumerate() {
                    let a = (sc - m).exp() / z;
                    for j in 0..hd {
                        attn_out[qi][head * hd + j] += a * qkv[ki][2 * d + head * hd + j];
                    }
                }
            }
        }
        for (t, a) in tokens.iter_mut().zip(&attn_out) {
            let y = linear(a, w(&b("attn.proj.weight")), w(&b("attn.proj.bias")));
            for j in 0..d {
                t[j] += w(&b("ls1.gamma"))[j] as f64 * y[j];
            }
            let z = layer_norm(t, w(&b("norm2.weight")), w(&b("norm2.bias")));
            let y = match cfg.mlp {
                Mlp::Gelu { .. } => {
                    let hdn: Vec<f64> = linear(&z, w(&b("mlp.fc1.weight")), w(&b("mlp.fc1.bias")))
                        .into_iter()
                        .map(|v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt())))
                        .collect();
                    linear(&hdn, w(&b("mlp.fc2.weight")), w(&b("mlp.fc2.bias")))
                }
                Mlp::SwiGlu { hidden } => {
                    let ab = linear(&z, w(&b("mlp.w12.weight")), w(&b("mlp.w12.bias")));
                    let hdn: Vec<f64> = (0..hidden)
                        .map(|j| ab[j] / (1.0 + (-ab[j]).exp()) * ab[hidden + j])
                        .collect();
                    linear(&hdn, w(&b("mlp.w3.weight")), w(&b("mlp.w3.bias")))
                }
            };
            for j in 0..d {
                t[j] += w(&b("ls2.gamma"))[j] as f64 * y[j];
            }
        }
    }
    layer_norm(&tokens[0], w("norm.weight"), w("norm.bias"))
}

fn image(s: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..3 * s * s)
        .map(|_| rng.random_range(-1.0..1.0f32))
        .collect()
}

fn check(cfg: VitConfig, s: usize) {
    let ck = checkpoint(&cfg, 7);
    let t = tensors(&ck);
    let get = |n: &str| -> crate::Result<Tensor> {
        t.get(n)
            .cloned()
            .ok_or_else(|| crate::Error::invalid(format!("missing {n}")))
    };
    let vit = Vit::build(cfg, &get, s).unwrap();
    let imgs: Vec<Vec<f32>> = (0..2).map(|i| image(s, i)).collect();
    let batch = Tensor::from_vec(imgs.concat(), (2, 3, s, s), &Device::Cpu).unwrap();
    let got = vit.forward(&batch).unwrap().to_vec2::<f32>().unwrap();
    for (img, row) in imgs.iter().zip(&got) {
        let want = reference(&ck, &cfg, s, img);
        for (a, b) in row.iter().zip(&want) {
            assert!(
                (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{cfg:?}: {a} vs {b}"
            );
        }
    }
}

fn tiny(mlp: Mlp, registers: usize, pos_grid: usize) -> VitConfig {
    VitConfig {
        dim: 8,
        depth: 2,
        heads: 2,
        patch: 2,
        mlp,
        registers,
        pos_grid,
    }
}

#[test]
fn vit_matches_the_definition_with_resized_positions() {
    check(tiny(Mlp::Gelu { hidden: 16 }, 0, 4), 6);
}

#[test]
fn vit_matches_the_definition_on_the_checkpoint_grid_with_registers_and_swiglu() {
    check(tiny(Mlp::SwiGlu { hidden: 6 }, 2, 3), 6);
}

#[test]
fn hugging_face_layout_loads_to_the_same_model() {
    // dim 64 → 1 head either way (heads are read as dim / 64).
    let cfg = VitConfig {
        dim: 64,
        depth: 1,
        heads: 1,
        patch: 2,
        mlp: Mlp::Gelu { hidden: 32 },
        registers: 0,
        pos_grid: 3,
    };
    let ck = checkpoint(&cfg, 3);
    let official = tensors(&ck);
    let mut hf = HashMap::new();
    for (k, v) in &official {
        let name = match k.as_str() {
            "cls_token" => "embeddings.cls_token".to_string(),
            "pos_embed" => "embeddings.position_embeddings".to_string(),
            k if k.starts_with("patch_embed.proj.") => k.replace(
                "patch_embed.proj.",
                "embeddings.patch_embeddings.projection.",
            ),
            k if k.starts_with("norm.") => k.replace("norm.", "layernorm."),
            k if k.contains("attn.qkv.") => {
                let suffix = k.rsplit('.').next().unwrap();
                for (j, part) in ["query", "key", "value"].iter().enumerate() {
                    hf.insert(
                        format!("encoder.layer.0.attention.attention.{part}.{suffix}"),
                        v.narrow(0, j * 64, 64).unwrap(),
                    );
                }
                continue;
            }
            k => k
                .replace("blocks.", "encoder.layer.")
                .replace("attn.proj.", "attention.output.dense.")
                .replace("ls1.gamma", "layer_scale1.lambda1")
                .replace("ls2.gamma", "layer_scale2.lambda1"),
        };
        hf.insert(name, v.clone());
    }
    let s = 4;
    let img = Tensor::from_vec(image(s, 1), (1, 3, s, s), &Device::Cpu).unwrap();
    let a = Vit::from_tensors(official, s)
        .unwrap()
        .forward(&img)
        .unwrap();
    let b = Vit::from_tensors(hf, s).unwrap().forward(&img).unwrap();
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let cfg = tiny(Mlp::Gelu { hidden: 16 }, 0, 3);
    let mut t = tensors(&checkpoint(&cfg, 1));
    t.remove("blocks.1.attn.proj.bias");
    let err = Vit::from_tensors(t, 6).err().unwrap().to_string();
    assert!(err.contains("blocks.1.attn.proj.bias"), "{err}");
    let err = Vit::from_tensors(tensors(&checkpoint(&cfg, 1)), 7)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("patch size"), "{err}");
}

#[test]
fn random_models_of_every_preset_build() {
    for name in ["small", "base", "large", "giant"] {
        let mut cfg = VitConfig::preset(name).unwrap();
        cfg.depth = 1; // one layer is enough to check the shapes
        let vit = Vit::random(cfg, 28).unwrap();
        let x = Tensor::zeros((1, 3, 28, 28), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(vit.forward(&x).unwrap().dims(), &[1, cfg.dim]);
    }
}

#[test]
fn missing_and_corrupt_weights_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("dinov2.safetensors");
    let err = Vit::load(&missing, 224).err().unwrap().to_string();
    assert!(err.contains("dinov2.safetensors: "), "{err}");
    assert!(!err.contains("not a safetensors file"), "{err}");
    std::fs::write(&missing, b"\x08\0\0\0\0\0\0\0{}").unwrap();
    let err = Vit::load(&missing, 224).err().unwrap().to_string();
    assert!(err.contains("not a safetensors file"), "{err}");
}
