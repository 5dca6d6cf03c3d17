//! The conformance suite of the op interface: every op, and every network
//! written over it, run on each backend against candle (the reference), with
//! one tolerance ([`Tolerance::PARITY`]).
//!
//! Each case is a graph written once ([`Case::build`], generic over
//! [`Ops`]); [`conform`] declares its parameters, initialises them at
//! random (BatchNorm statistics too, so folding shows), and checks on the
//! wgpu recorder (lavapipe in CI):
//! * eval mode (one window at a time, no mask): every output against
//!   candle's;
//! * training mode (batch statistics over a padded window, dropout from a
//!   seed): the loss Σ masked-MSE(outputs, random teachers), the gradient
//!   of every parameter, and the BatchNorm running statistics after the step.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::gpu;
use syncseg_core::model::adapter::{adapter_forward, AdapterConfig};
use syncseg_core::model::c2f_tcn::c2f_forward;
use syncseg_core::model::candle_ops::{CandleLayers, CandleOps};
use syncseg_core::model::declare::Declare;
use syncseg_core::model::ms_tcn::{ms_tcn_forward, MsTcnConfig};
use syncseg_core::model::ops::{ConvSpec, LayerNormSpec, LinearSpec, Ops};
use syncseg_core::model::tolerance::Tolerance;
use syncseg_core::model::C2fConfig;
use syncseg_core::vision::{vit_forward, Mlp, VitConfig};
use syncseg_core::Result;
use syncseg_shaders::graph::Graph;
use syncseg_shaders::kernels::mse_grad::MseParams;
use syncseg_shaders::ops::weights::FoldedWeights;
use syncseg_shaders::ops::Recorder;
use syncseg_shaders::train::params::{read_gradients, NetParams};

/// A graph over the ops: input `[cin, frames]` (and the real-frame mask)
/// to its outputs.
trait Case {
    fn cin(&self) -> usize;
    fn frames(&self) -> usize;
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, mask: Option<&O::T>) -> Result<Vec<O::T>>;
    /// Whether the device trains it (the ViT's ops run in inference only).
    fn trains(&self) -> bool {
        true
    }
}

const BATCH: usize = 2;
/// The second window's real frames end here (of [`Case::frames`]).
const PADDED_FROM: f32 = 0.7;
const DROPOUT_SEED: u64 = 1234;

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Random parameters: convolutions ±1/√fan_in, BatchNorm γ ∈ 1 ± 0.3,
/// β, means ±0.3, variances 0.6 … 1.1.
fn randomise(varmap: &VarMap) {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for (i, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let r = common::random(var.elem_count(), 1000 + i as u64);
        let v: Vec<f32> = if name.ends_with("running_var") {
            r.iter().map(|x| 0.85 + 0.25 * x).collect()
        } else if name.ends_with("running_mean") {
            r.iter().map(|x| 0.3 * x).collect()
        } else if var.rank() == 1 && data.contains_key(&name.replace(".weight", ".running_mean")) {
            r.iter().map(|x| 1.0 + 0.3 * x).collect()
        } else {
            let fan_in: usize = var.dims().iter().skip(1).product::<usize>().max(1);
            r.iter().map(|x| x / (fan_in as f32).sqrt()).collect()
        };
        var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

fn copy_vars(varmap: &VarMap) -> HashMap<String, Var> {
    varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap(),
            )
        })
        .collect()
}

fn check(t: &Tolerance, got: &[f32], want: &[f32], what: &str) {
    t.check(got, want, what).unwrap_or_else(|e| panic!("{e}"));
}

fn conform(name: &str, case: &impl Case) {
    let tol = Tolerance::PARITY;
    let gpu = gpu();
    let (cin, t) = (case.cin(), case.frames());

    // Declaration → candle layers at random values; the device's copy.
    let mut declared = Declare::new();
    let outs = case.build(&mut declared, &(cin, t), Some(&(1, t))).unwrap();
    let out_dims: Vec<(usize, usize)> = outs.clone();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let layers = CandleLayers::new(&declared, &vb).unwrap();
    randomise(&varmap);
    let dev_vars = copy_vars(&varmap);

    let x = common::random(BATCH * cin * t, 7);
    let xt = Tensor::from_vec(x.clone(), (BATCH, cin, t), &Device::Cpu).unwrap();
    let real = (PADDED_FROM * t as f32) as usize;
    let mask: Vec<f32> = (0..BATCH * t)
        .map(|i| if i >= t && i % t >= real { 0.0 } else { 1.0 })
        .collect();
    let mt = Tensor::from_vec(mask.clone(), (BATCH, 1, t), &Device::Cpu).unwrap();

    // Eval: BatchNorm folded on the device, running statistics on candle.
    let want = case
        .build(&mut CandleOps::new(&layers, false), &xt, None)
        .unwrap();
    let folded = FoldedWeights::upload(&gpu, &declared, &layers).unwrap();
    for b in 0..BATCH {
        let mut g = Graph::new(gpu.clone());
        let input = g.constant(&x[b * cin * t..(b + 1) * cin * t], "x");
        let mut r = Recorder::inference(&mut g, &folded);
        let xd = r.input(input, cin, t);
        let got = case.build(&mut r, &xd, None).unwrap();
        let slots: Vec<_> = got.iter().map(|o| r.slot(o).unwrap()).collect();
        drop(r);
        g.submit();
        for (i, (slot, w)) in slots.iter().zip(&want).enumerate() {
            let w = flat(&w.narrow(0, b, 1).unwrap());
            let got = pollster::block_on(gpu.read(g.buffer(*slot), w.len())).unwrap();
            check(
                &tol,
                &got,
                &w,
                &format!("{name}: eval output {i}, window {b}"),
            );
        }
    }

    if !case.trains() {
        eprintln!(
            "{name}: {} outputs conform (inference only)",
            out_dims.len()
        );
        return;
    }
    // Training: Σ over outputs of the mean squared error to a teacher.
    let teachers: Vec<Vec<f32>> = out_dims
        .iter()
        .enumerate()
        .map(|(i, (c, l))| common::random(BATCH * c * l, 50 + i as u64))
        .collect();
    let mut ops = CandleOps::new(&layers, true).with_dropout_seed(DROPOUT_SEED);
    let outs = case.build(&mut ops, &xt, Some(&mt)).unwrap();
    let mut loss: Option<Tensor> = None;
    for ((out, teacher), (c, l)) in outs.iter().zip(&teachers).zip(&out_dims) {
        let teacher = Tensor::from_vec(teacher.clone(), (BATCH, *c, *l), &Device::Cpu).unwrap();
        let n = (BATCH * c * l) as f64;
        let term = (out - teacher)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .affine(1.0 / n, 0.0)
            .unwrap();
        loss = Some(match loss {
            Some(s) => (s + term).unwrap(),
            None => term,
        });
    }
    let loss = loss.unwrap();
    let want_loss = loss.to_scalar::<f32>().unwrap();
    let grads = loss.backward().unwrap();

    let params = NetParams::upload(&gpu, &declared, &dev_vars).unwrap();
    let mut g = Graph::new(gpu.clone());
    let mut r = Recorder::training(&mut g, &params, BATCH);
    let (xd, x_slot) = r.new_input(cin, t, "x");
    let (md, m_slot) = r.new_input(1, t, "mask");
    let outs = case.build(&mut r, &xd, Some(&md)).unwrap();
    // The loss counts every frame of every output: all-ones masks.
    let mut ones = Vec::new();
    let mut terms = Vec::new();
    for (out, (_, l)) in outs.iter().zip(&out_dims) {
        let (m, slot) = r.new_input(1, *l, "ones");
        ones.push((slot, *l));
        terms.push((out.clone(), m));
    }
    let (inputs, loss_slot) = r.mse_loss(&terms).unwrap();
    r.backward().unwrap();
    let dropouts = r.take_dropouts();
    drop(r);
    for (i, d) in dropouts.iter().enumerate() {
        d.seed(&g, DROPOUT_SEED, i);
    }
    let write = |slot, data: &[f32]| {
        gpu.queue
            .write_buffer(g.buffer(slot), 0, bytemuck::cast_slice(data))
    };
    write(x_slot, &x);
    write(m_slot, &mask);
    let mut offset = 0;
    for ((input, teacher), ((slot, l), (c, _))) in
        inputs.iter().zip(&teachers).zip(ones.iter().zip(&out_dims))
    {
        let m = vec![1f32; BATCH * l];
        write(*slot, &m);
        write(input.teacher, teacher);
        let p = MseParams::new(*c, *l, &m, false).at_offset(offset);
        g.set_params(input.params, bytemuck::bytes_of(&p));
        offset += BATCH * l;
    }
    g.submit();
    let got_loss = pollster::block_on(gpu.read(g.buffer(loss_slot), 1)).unwrap()[0];
    check(&tol, &[got_loss], &[want_loss], &format!("{name}: loss"));
    let got = pollster::block_on(read_gradients(&gpu, &params.params)).unwrap();
    let data = varmap.data().lock().unwrap();
    let trained: Vec<(&String, Vec<f32>)> = data
        .iter()
        .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
        .map(|(n, var)| {
            let want = grads.get(var).map(flat);
            (n, want.unwrap_or_else(|| vec![0.0; var.elem_count()]))
        })
        .collect();
    // A gradient's rounding error follows the magnitude of the terms summed
    // into it, not of the result: a convolution bias before a BatchNorm
    // has an exactly zero gradient made of cancelling O(dy) terms. Errors
    // are relative to at least 1 % of the network's largest gradient.
    let largest = trained
        .iter()
        .flat_map(|(_, g)| g.iter())
        .fold(0f32, |m, v| m.max(v.abs()));
    let grad_tol = Tolerance {
        floor: 1e-2 * largest,
        ..tol
    };
    let mut checked = 0;
    for (pname, want) in &trained {
        check(
            &grad_tol,
            &got[*pname],
            want,
            &format!("{name}: gradient of {pname}"),
        );
        checked += 1;
    }
    assert_eq!(checked, got.len(), "{name}: every parameter has a gradient");
    pollster::block_on(params.read_into(&gpu, &dev_vars)).unwrap();
    for (pname, var) in data.iter() {
        if pname.ends_with("running_mean") || pname.ends_with("running_var") {
            let got = flat(dev_vars[pname].as_tensor());
            check(
                &tol,
                &got,
                &flat(var.as_tensor()),
                &format!("{name}: {pname} after the step"),
            );
        }
    }
    eprintln!(
        "{name}: {} outputs, {checked} parameters conform",
        out_dims.len()
    );
}

/// conv (k = 5) → BatchNorm → ReLU, twice (C2F-TCN's double conv).
struct DoubleConv;
impl Case for DoubleConv {
    fn cin(&self) -> usize {
        6
    }
    fn frames(&self) -> usize {
        40
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, m: Option<&O::T>) -> Result<Vec<O::T>> {
        let a = o.conv(&ConvSpec::bn_relu("c.0", "c.1", 6, 9, 5), x, m)?;
        Ok(vec![o.conv(
            &ConvSpec::bn_relu("c.3", "c.4", 9, 9, 5),
            &a,
            m,
        )?])
    }
}

/// Dilated convolutions (MS-TCN++'s), with and without ReLU.
struct Dilated;
impl Case for Dilated {
    fn cin(&self) -> usize {
        5
    }
    fn frames(&self) -> usize {
        37
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        let a = o.conv(&ConvSpec::plain("d4", 5, 7, 3).dilated(4).relu(), x, None)?;
        let b = o.conv(&ConvSpec::plain("d16", 7, 3, 3).dilated(16), &a, None)?;
        Ok(vec![a, b])
    }
}

/// Concatenation as channel offsets: two branches into one convolution,
/// gradients back into each part.
struct Concat;
impl Case for Concat {
    fn cin(&self) -> usize {
        4
    }
    fn frames(&self) -> usize {
        30
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        let a = o.conv(&ConvSpec::plain("a", 4, 3, 3), x, None)?;
        let b = o.conv(&ConvSpec::plain("b", 4, 5, 1).relu(), x, None)?;
        let cat = o.cat(&[&a, &b, &a])?;
        Ok(vec![o.conv(&ConvSpec::plain("f", 11, 2, 3), &cat, None)?])
    }
}

/// Max pooling (a kernel that does not divide T) and resampling back with
/// right padding, a tensor consumed twice (its gradients accumulate).
struct PoolResample;
impl Case for PoolResample {
    fn cin(&self) -> usize {
        3
    }
    fn frames(&self) -> usize {
        47
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        let a = o.conv(&ConvSpec::plain("a", 3, 4, 3), x, None)?;
        let p = o.max_pool(&a, 3)?; // 15 frames
        let up = o.resample(&p, 30, 47)?;
        let cat = o.cat(&[&a, &up])?;
        Ok(vec![o.conv(&ConvSpec::plain("f", 8, 3, 1), &cat, None)?, p])
    }
}

/// The softmax ensemble of heads at three resolutions, a zero weight
/// skipped; a softmax over channels.
struct Ensemble;
impl Case for Ensemble {
    fn cin(&self) -> usize {
        4
    }
    fn frames(&self) -> usize {
        24
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        let h0 = o.conv(&ConvSpec::plain("h0", 4, 5, 1), x, None)?;
        let p1 = o.max_pool(x, 2)?;
        let h1 = o.conv(&ConvSpec::plain("h1", 4, 5, 1), &p1, None)?;
        let p2 = o.max_pool(&p1, 2)?;
        let h2 = o.conv(&ConvSpec::plain("h2", 4, 5, 1), &p2, None)?;
        let e = o.ensemble(&[h0.clone(), h1, h2], &[1.0, 0.0, 2.0])?;
        Ok(vec![e, o.softmax(&h0)?])
    }
}

/// A residual block with dropout (MS-TCN++'s dilated residual layer).
struct ResidualDropout;
impl Case for ResidualDropout {
    fn cin(&self) -> usize {
        6
    }
    fn frames(&self) -> usize {
        33
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        let h = o.conv(&ConvSpec::plain("in", 6, 8, 1), x, None)?;
        let a = o.conv(&ConvSpec::plain("d", 8, 8, 3).dilated(2).relu(), &h, None)?;
        let b = o.conv(&ConvSpec::plain("p", 8, 8, 1), &a, None)?;
        let dropped = o.dropout(&b, 0.5)?;
        let sum = o.add(&h, &dropped)?;
        Ok(vec![o.conv(
            &ConvSpec::plain("out", 8, 3, 1),
            &sum,
            None,
        )?])
    }
}

/// The transformer ops: a linear layer, a constant table, LayerNorm, the
/// fused q/k/v projection into attention with the key mask, GELU.
struct Transformer;
impl Case for Transformer {
    fn cin(&self) -> usize {
        5
    }
    fn frames(&self) -> usize {
        29
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, m: Option<&O::T>) -> Result<Vec<O::T>> {
        let h = o.linear(&LinearSpec::new("in", 5, 12), x)?;
        let table: Vec<f64> = (0..12 * 29).map(|i| (i as f64 * 0.37).sin()).collect();
        let h = o.add_constant(&h, &table)?;
        let norm = LayerNormSpec {
            name: "ln".into(),
            channels: 12,
            eps: 1e-5,
        };
        let a = o.layer_norm(&norm, &h)?;
        let qkv = o.linear(&LinearSpec::new("qkv", 12, 36), &a)?;
        let ctx = o.attention(&qkv, 3, m)?;
        let f = o.gelu(&ctx)?;
        Ok(vec![o.linear(&LinearSpec::new("out", 12, 4), &f)?, a])
    }
}

/// The feature adapter, whole (its output projection random, not zero).
struct Adapter(AdapterConfig);
impl Case for Adapter {
    fn cin(&self) -> usize {
        7
    }
    fn frames(&self) -> usize {
        45
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, m: Option<&O::T>) -> Result<Vec<O::T>> {
        Ok(vec![adapter_forward(o, &self.0, x, m)?])
    }
}

/// SwiGLU's gate and taking frames (inference only, as the ViT).
struct GateAndFrames;
impl Case for GateAndFrames {
    fn cin(&self) -> usize {
        4
    }
    fn frames(&self) -> usize {
        21
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        let z = o.linear(&LinearSpec::new("w12", 4, 10), x)?;
        let gated = o.swiglu(&z)?;
        let first = o.frames(&gated, 0, 1)?;
        let middle = o.frames(&z, 5, 7)?;
        Ok(vec![gated, first, middle])
    }
    fn trains(&self) -> bool {
        false
    }
}

/// The DINOv2 ViT, whole, on 9 patches of 3 × 2 × 2 (GELU and SwiGLU
/// MLPs), one register token.
struct Vit(VitConfig);
impl Case for Vit {
    fn cin(&self) -> usize {
        3 * self.0.patch * self.0.patch
    }
    fn frames(&self) -> usize {
        1 + self.0.registers + 9
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        let embed: Vec<f64> = common::random(self.0.dim * self.frames(), 77)
            .iter()
            .map(|&v| v as f64)
            .collect();
        Ok(vec![vit_forward(o, &self.0, x, &embed)?])
    }
    fn trains(&self) -> bool {
        false
    }
}

/// The C2F-TCN, whole.
struct C2f(C2fConfig);
impl Case for C2f {
    fn cin(&self) -> usize {
        self.0.input_dim
    }
    fn frames(&self) -> usize {
        400
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, m: Option<&O::T>) -> Result<Vec<O::T>> {
        let out = c2f_forward(o, &self.0, x, m)?;
        let mut v = out.heads.clone();
        v.push(o.ensemble(&out.heads, &self.0.ensemble_weights)?);
        Ok(v)
    }
}

/// MS-TCN++, whole.
struct MsTcn(MsTcnConfig);
impl Case for MsTcn {
    fn cin(&self) -> usize {
        self.0.input_dim
    }
    fn frames(&self) -> usize {
        70
    }
    fn build<O: Ops>(&self, o: &mut O, x: &O::T, _m: Option<&O::T>) -> Result<Vec<O::T>> {
        ms_tcn_forward(o, &self.0, x)
    }
}

#[test]
fn convolution_batch_norm_relu() {
    skip_without_gpu!();
    conform("double conv", &DoubleConv);
}

#[test]
fn dilated_convolution() {
    skip_without_gpu!();
    conform("dilated", &Dilated);
}

#[test]
fn concatenation_as_channel_offsets() {
    skip_without_gpu!();
    conform("concat", &Concat);
}

#[test]
fn max_pool_and_resampling() {
    skip_without_gpu!();
    conform("pool + resample", &PoolResample);
}

#[test]
fn ensemble_and_softmax() {
    skip_without_gpu!();
    conform("ensemble", &Ensemble);
}

#[test]
fn residual_add_and_dropout() {
    skip_without_gpu!();
    conform("residual + dropout", &ResidualDropout);
}

#[test]
fn transformer_ops() {
    skip_without_gpu!();
    conform("transformer ops", &Transformer);
}

#[test]
fn feature_adapter() {
    skip_without_gpu!();
    let cfg = AdapterConfig {
        layers: 2,
        heads: 2,
        width: 16,
        ffn: 24,
    };
    conform("adapter", &Adapter(cfg));
}

#[test]
fn swiglu_and_frames() {
    skip_without_gpu!();
    conform("swiglu + frames", &GateAndFrames);
}

#[test]
fn vit() {
    skip_without_gpu!();
    for mlp in [Mlp::Gelu { hidden: 24 }, Mlp::SwiGlu { hidden: 10 }] {
        let cfg = VitConfig {
            dim: 12,
            depth: 2,
            heads: 3,
            patch: 2,
            mlp,
            registers: 1,
            pos_grid: 3,
        };
        conform(&format!("ViT ({mlp:?})"), &Vit(cfg));
    }
}

#[test]
fn c2f_tcn() {
    skip_without_gpu!();
    let mut cfg = C2fConfig::scaled(10, 4, 0.0625);
    cfg.ensemble_weights = [1.0, 0.5, 0.0, 1.0, 2.0, 1.0];
    conform("C2F-TCN", &C2f(cfg));
}

#[test]
fn ms_tcn() {
    skip_without_gpu!();
    let cfg = MsTcnConfig {
        f_maps: 8,
        layers_pg: 5,
        layers_r: 3,
        refinements: 2,
        ..MsTcnConfig::reference(6, 4)
    };
    conform("MS-TCN++", &MsTcn(cfg));
}
