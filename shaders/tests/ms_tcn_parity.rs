//! MS-TCN++, written once in core (`ms_tcn_forward`), recorded on wgpu
//! against candle: every stage's logits in eval mode, and one training
//! step's loss and gradient of every parameter with dropout on (the same
//! seeded masks on both backends) and padded frames out of the loss.

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use common::gpu;
use syncseg_core::model::ms_tcn::{ms_tcn_forward, ms_tcn_specs, MsTcn, MsTcnConfig};
use syncseg_shaders::graph::Graph;
use syncseg_shaders::ops::weights::FoldedWeights;
use syncseg_shaders::ops::Recorder;
use syncseg_shaders::train::params::{read_gradients, NetParams};

fn config() -> MsTcnConfig {
    MsTcnConfig {
        f_maps: 8,
        layers_pg: 5,
        layers_r: 4,
        refinements: 2,
        ..MsTcnConfig::reference(6, 4)
    }
}

fn vars(varmap: &candle_nn::VarMap) -> HashMap<String, Var> {
    varmap.data().lock().unwrap().clone()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// max |got − want| / max(|want|∞, 1e-3).
fn rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    err / scale
}

#[test]
fn eval_stages_match_candle() {
    let gpu = gpu();
    let cfg = config();
    let (net, _) = MsTcn::init(&cfg, &Device::Cpu).unwrap();
    // Longer than the largest dilation (16) and not a power of two.
    let t = 77;
    let x = Tensor::new(common::random(6 * t, 3), &Device::Cpu)
        .unwrap()
        .reshape((1, 6, t))
        .unwrap();
    let want = net.forward(&x, None).unwrap();
    let weights =
        FoldedWeights::upload(&gpu, ms_tcn_specs(&cfg).unwrap().specs(), net.layers()).unwrap();
    let mut g = Graph::new(gpu.clone());
    let input = g.constant(&flat(&x), "x");
    let mut r = Recorder::inference(&mut g, &weights);
    let xd = r.input(input, 6, t);
    let stages = ms_tcn_forward(&mut r, &cfg, &xd).unwrap();
    let slots: Vec<_> = stages.iter().map(|s| r.slot(s).unwrap()).collect();
    drop(r);
    g.submit();
    for (s, (slot, want)) in slots.iter().zip(&want).enumerate() {
        let got = pollster::block_on(gpu.read(g.buffer(*slot), 4 * t)).unwrap();
        let e = rel(&got, &flat(want));
        assert!(e < 1e-4, "stage {s}: relative error {e:.2e}");
    }
}

#[test]
fn training_gradients_match_autodiff_with_dropout() {
    let gpu = gpu();
    let cfg = config();
    let (net, varmap) = MsTcn::init(&cfg, &Device::Cpu).unwrap();
    let (b, t, k) = (2, 60, cfg.num_classes);
    let x = Tensor::new(common::random(b * 6 * t, 5), &Device::Cpu)
        .unwrap()
        .reshape((b, 6, t))
        .unwrap();
    // The second window is padding after frame 41.
    let mask: Vec<f32> = (0..b * t)
        .map(|i| if i >= t && i % t > 41 { 0.0 } else { 1.0 })
        .collect();
    let teachers: Vec<Vec<f32>> = (0..cfg.stages())
        .map(|s| common::random(b * k * t, 10 + s as u64))
        .collect();
    let seed = 42;

    // candle: Σ over stages of the masked MSE to the teacher (core's
    // level_mse normaliser: real frames × classes).
    let stages = net.forward(&x, Some(seed)).unwrap();
    let m = Tensor::new(mask.as_slice(), &Device::Cpu)
        .unwrap()
        .reshape((b, 1, t))
        .unwrap();
    let n = mask.iter().sum::<f32>() as f64 * k as f64;
    let mut loss: Option<Tensor> = None;
    for (s, out) in stages.iter().enumerate() {
        let teacher = Tensor::new(teachers[s].as_slice(), &Device::Cpu)
            .unwrap()
            .reshape((b, k, t))
            .unwrap();
        let term = ((out - teacher)
            .unwrap()
            .sqr()
            .unwrap()
            .broadcast_mul(&m)
            .unwrap())
        .sum_all()
        .unwrap()
        .affine(1.0 / n, 0.0)
        .unwrap();
        loss = Some(match loss {
            Some(l) => (l + term).unwrap(),
            None => term,
        });
    }
    let loss = loss.unwrap();
    let grads = loss.backward().unwrap();
    let want_loss = loss.to_scalar::<f32>().unwrap();

    // wgpu: the same topology on a training recorder.
    let specs = ms_tcn_specs(&cfg).unwrap();
    let params = NetParams::upload(&gpu, specs.specs(), &vars(&varmap)).unwrap();
    let mut g = Graph::new(gpu.clone());
    let mut r = Recorder::training(&mut g, &params, b);
    let (xd, x_slot) = r.new_input(6, t, "x");
    let (md, m_slot) = r.new_input(1, t, "mask");
    let stages = ms_tcn_forward(&mut r, &cfg, &xd).unwrap();
    let terms: Vec<_> = stages.iter().map(|s| (s.clone(), md.clone())).collect();
    let (inputs, loss_slot) = r.mse_loss(&terms).unwrap();
    let trained = r.backward().unwrap();
    let dropouts = r.take_dropouts();
    drop(r);
    assert_eq!(
        dropouts.len(),
        cfg.layers_pg + cfg.refinements * cfg.layers_r
    );
    for (i, d) in dropouts.iter().enumerate() {
        d.seed(&g, seed, i);
    }
    gpu.queue
        .write_buffer(g.buffer(x_slot), 0, bytemuck::cast_slice(&flat(&x)));
    gpu.queue
        .write_buffer(g.buffer(m_slot), 0, bytemuck::cast_slice(&mask));
    let mut offset = 0;
    for (input, teacher) in inputs.iter().zip(&teachers) {
        gpu.queue
            .write_buffer(g.buffer(input.teacher), 0, bytemuck::cast_slice(teacher));
        let p = syncseg_shaders::kernels::mse_grad::MseParams::new(k, t, &mask, false)
            .at_offset(offset);
        g.set_params(input.params, bytemuck::bytes_of(&p));
        offset += b * t;
    }
    g.submit();
    let got_loss = pollster::block_on(gpu.read(g.buffer(loss_slot), 1)).unwrap()[0];
    assert!(
        (got_loss - want_loss).abs() <= 1e-4 * want_loss.abs(),
        "loss {got_loss} vs {want_loss}"
    );
    assert_eq!(trained.len(), params.params.len(), "every parameter trains");
    let got = pollster::block_on(read_gradients(&gpu, &params.params)).unwrap();
    let vars = vars(&varmap);
    assert_eq!(got.len(), vars.len());
    for (name, var) in &vars {
        let want = flat(grads.get(var).unwrap());
        let e = rel(&got[name], &want);
        assert!(e < 1e-4, "{name}: relative gradient error {e:.2e}");
    }
}
