//! The whole model on the GPU against candle's CPU forward: probabilities
//! within 1e-4 and the same labels, with and without the feature adapter,
//! for lengths below the minimum, at a window, across windows and chunks.

mod common;

use candle_core::{Device, Tensor};
use common::{gpu, random, Tolerance};
use syncseg_core::features::Features;
use syncseg_core::model::{AdapterConfig, C2fConfig, ModelMeta, SegModel};
use syncseg_core::predict::{predict, Prediction};
use syncseg_shaders::WgpuSegmenter;

/// A small seeded model whose BatchNorm statistics, ensemble weights and
/// adapter output are far from their initial values, so that folding,
/// skipping a zero-weight head and the adapter all show in the output.
fn model(dim: usize, classes: usize, window: usize, adapter: bool) -> SegModel {
    let mut cfg = C2fConfig::scaled(dim, classes, 0.125);
    cfg.ensemble_weights = [1.0, 0.5, 0.0, 1.0, 2.0, 1.0];
    let names = (0..classes).map(|i| format!("c{i}")).collect();
    let meta = ModelMeta::new(cfg, names, vec![], window);
    let mut m = SegModel::new_seeded(meta, &Device::Cpu, 11).unwrap();
    let mut seed = 100;
    {
        let data = m.varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let n = var.elem_count();
            seed += 1;
            let r = random(n, seed);
            let values: Vec<f32> = if name.ends_with("running_var") {
                r.iter().map(|v| 0.6 + 0.5 * v.abs()).collect()
            } else if name.ends_with("running_mean") {
                r.iter().map(|v| 0.3 * v).collect()
            } else if var.rank() == 1 && name.ends_with(".weight") {
                r.iter().map(|v| 1.0 + 0.3 * v).collect()
            } else {
                continue;
            };
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    if adapter {
        let cfg = AdapterConfig {
            layers: 2,
            heads: 4,
            width: 32,
            ffn: 48,
        };
        m.attach_adapter(&cfg, 5).unwrap();
        let (_, varmap) = m.adapter.as_ref().unwrap();
        let data = varmap.data().lock().unwrap();
        for (name, var) in data.iter() {
            if name.contains("out_proj") {
                let r = random(var.elem_count(), 77);
                let t = Tensor::from_vec(r, var.shape(), &Device::Cpu).unwrap();
                var.set(&(t * 0.2).unwrap()).unwrap();
            }
        }
    }
    m
}

fn features(dim: usize, frames: usize, seed: u64) -> Features {
    // Smooth-ish random features: class evidence that persists over frames.
    let noise = random(dim * frames, seed);
    let slow = random(dim * (frames / 50 + 2), seed + 1);
    let data = (0..dim)
        .flat_map(|c| {
            let (noise, slow) = (&noise, &slow);
            (0..frames).map(move |t| {
                2.0 * slow[c * (frames / 50 + 2) + t / 50] + 0.5 * noise[c * frames + t]
            })
        })
        .collect();
    Features::new(dim, frames, data).unwrap()
}

fn compare(cpu: &Prediction, gpu: &Prediction, what: &str) {
    assert_eq!(cpu.probs.len(), gpu.probs.len(), "{what}");
    let worst = Tolerance::PARITY
        .check(&gpu.probs, &cpu.probs, what)
        .unwrap_or_else(|e| panic!("{e}"));
    // Labels: identical wherever the CPU's top two are not within 1e-5.
    let (k, t) = (cpu.classes, cpu.labels.len());
    for f in 0..t {
        if cpu.labels[f] != gpu.labels[f] {
            let mut col: Vec<f32> = (0..k).map(|c| cpu.probs[c * t + f]).collect();
            col.sort_by(|a, b| b.partial_cmp(a).unwrap());
            assert!(col[0] - col[1] < 1e-5, "{what}: frame {f} label differs");
        }
    }
    eprintln!("{what}: max relative error {worst:.2e}");
}

#[test]
fn segmenter_matches_cpu_at_every_length() {
    skip_without_gpu!();
    let (dim, classes) = (24, 6);
    let m = model(dim, classes, 500, false);
    let mut seg = WgpuSegmenter::new(gpu(), &m).unwrap();
    for (i, frames) in [1usize, 383, 500, 1337, 2800].into_iter().enumerate() {
        let f = features(dim, frames, i as u64);
        let cpu = predict(&m, &f).unwrap();
        let gpu = seg.predict_blocking(&f).unwrap();
        compare(&cpu, &gpu, &format!("{frames} frames"));
    }
}

/// MS-TCN++ (its last stage's softmax), cut into windows and chunks with
/// feature channels in parts, as the C2F-TCN; and a causal one with a
/// look-ahead, which runs over whole videos.
#[test]
fn ms_tcn_segmenter_matches_cpu() {
    skip_without_gpu!();
    for lookahead in [None, Some(7)] {
        ms_tcn_segmenter_case(lookahead);
    }
}

fn ms_tcn_segmenter_case(lookahead: Option<usize>) {
    let (dim, classes) = (24, 6);
    let cfg = syncseg_core::model::ms_tcn::MsTcnConfig {
        f_maps: 12,
        layers_pg: 6,
        layers_r: 4,
        refinements: 2,
        causal: lookahead.map(|lookahead| syncseg_core::model::ms_tcn::Causal { lookahead }),
        ..syncseg_core::model::ms_tcn::MsTcnConfig::reference(dim, classes)
    };
    let names = (0..classes).map(|i| format!("c{i}")).collect();
    let meta = ModelMeta::new(cfg, names, vec![], 500);
    let m = SegModel::new_seeded(meta, &Device::Cpu, 4).unwrap();
    let mut seg = WgpuSegmenter::new(gpu(), &m).unwrap();
    for (i, frames) in [1usize, 383, 500, 1337].into_iter().enumerate() {
        let f = features(dim, frames, 60 + i as u64);
        let cpu = predict(&m, &f).unwrap();
        let gpu = seg.predict_blocking(&f).unwrap();
        compare(
            &cpu,
            &gpu,
            &format!("ms-tcn {lookahead:?}, {frames} frames"),
        );
    }
    seg.limit_chunks(1100, 7);
    let f = features(dim, 2600, 70);
    compare(
        &predict(&m, &f).unwrap(),
        &seg.predict_blocking(&f).unwrap(),
        "ms-tcn, chunked",
    );
}

#[test]
fn segmenter_with_adapter_matches_cpu() {
    skip_without_gpu!();
    let (dim, classes) = (20, 5);
    let m = model(dim, classes, 400, true);
    let mut seg = WgpuSegmenter::new(gpu(), &m).unwrap();
    for (i, frames) in [50usize, 400, 1000].into_iter().enumerate() {
        let f = features(dim, frames, 40 + i as u64);
        let cpu = predict(&m, &f).unwrap();
        let gpu = seg.predict_blocking(&f).unwrap();
        compare(&cpu, &gpu, &format!("adapter, {frames} frames"));
    }
}

#[test]
fn long_videos_are_cut_into_chunks_and_feature_channels_into_parts() {
    skip_without_gpu!();
    let (dim, classes) = (24, 6);
    let m = model(dim, classes, 300, true);
    let mut seg = WgpuSegmenter::new(gpu(), &m).unwrap();
    // Chunks of at most two windows, features split into 5-row parts.
    seg.limit_chunks(700, 5);
    let f = features(dim, 2000, 9);
    let cpu = predict(&m, &f).unwrap();
    let gpu = seg.predict_blocking(&f).unwrap();
    compare(&cpu, &gpu, "chunked");
}

#[test]
fn wrong_input_is_an_error_not_a_panic() {
    skip_without_gpu!();
    let m = model(16, 4, 400, false);
    let mut seg = WgpuSegmenter::new(gpu(), &m).unwrap();
    let err = seg.predict_blocking(&features(8, 100, 1)).unwrap_err();
    assert!(err.to_string().contains("16-dimensional"), "{err}");
}
