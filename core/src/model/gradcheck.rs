//! Finite-difference checks of the gradients of syncseg's own layers
//! (im2col temporal convolution, masked BatchNorm, linear resampling, max
//! pooling of the mask pyramid) and of the distillation losses, in f64.
//!
//! Each check differentiates `L = Σ f(x)·r` (r a fixed random tensor) with
//! candle's autodiff and compares with central differences on every input
//! and parameter entry.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use super::batch_norm::MaskedBatchNorm;
use super::c2f_tcn::TemporalConv;
use super::interp::Resampler;

pub(crate) fn rand(shape: &[usize], seed: u64) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..shape.iter().product::<usize>())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect()
}

/// Checks d/dv Σ f()·r for every entry of every `vars`, where `f` reads them.
pub(crate) fn check(vars: &[Var], f: &dyn Fn() -> Tensor) {
    let out = f();
    let r = Tensor::from_vec(rand(out.dims(), 99), out.shape(), &Device::Cpu).unwrap();
    let loss = |o: Tensor| {
        (o * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (f() * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let h = 1e-6;
    let mut worst = 0f64;
    for var in vars {
        let g = grads
            .get(var)
            .expect("gradient reaches every var")
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in 0..base.len() {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss(f())
            };
            let num = (eval(h) - eval(-h)) / (2.0 * h);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            worst = worst.max((num - g[i]).abs() / (1.0 + num.abs()));
        }
    }
    assert!(worst < 1e-6, "worst relative gradient error {worst}");
}

pub(crate) fn var(shape: &[usize], seed: u64) -> Var {
    Var::from_vec(rand(shape, seed), shape, &Device::Cpu).unwrap()
}

#[test]
fn temporal_conv_gradients() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let conv = TemporalConv::new(3, 2, 5, vb).unwrap();
    let x = var(&[2, 3, 7], 1);
    let mut vars = varmap.all_vars();
    vars.push(x.clone());
    check(&vars, &|| conv.forward(x.as_tensor()).unwrap());
}

#[test]
fn temporal_conv_matches_candle_conv1d() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let conv = TemporalConv::new(3, 4, 5, vb).unwrap();
    let x = Tensor::from_vec(rand(&[2, 3, 9], 3), (2, 3, 9), &Device::Cpu).unwrap();
    let ours = conv.forward(&x).unwrap();
    let theirs = x
        .conv1d(conv.weight(), 2, 1, 1, 1)
        .unwrap()
        .broadcast_add(&conv.bias().reshape((1, 4, 1)).unwrap())
        .unwrap();
    let diff = (ours - theirs)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "{diff}");
}

#[test]
fn masked_batch_norm_gradients_ignore_padding() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let bn = MaskedBatchNorm::new(3, vb).unwrap();
    let x = var(&[2, 3, 6], 7);
    let mask = Tensor::new(
        &[
            [[1f64, 1.0, 1.0, 1.0, 0.0, 0.0]],
            [[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let mut vars: Vec<Var> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| !n.starts_with("running"))
        .map(|(_, v)| v.clone())
        .collect();
    vars.push(x.clone());
    // Only real frames are looked at, as the losses do.
    check(&vars, &|| {
        bn.forward_train(x.as_tensor(), Some(&mask))
            .unwrap()
            .broadcast_mul(&mask)
            .unwrap()
    });
    // And the statistics ignore what padding holds.
    let y1 = bn
        .forward_train(x.as_tensor(), Some(&mask))
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap();
    let padding = (mask.ones_like().unwrap() - &mask).unwrap();
    let noisy = x
        .as_tensor()
        .broadcast_add(&(padding * 50.0).unwrap())
        .unwrap();
    let y2 = bn
        .forward_train(&noisy, Some(&mask))
        .unwrap()
        .broadcast_mul(&mask)
        .unwrap();
    let diff = (y1 - y2)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "{diff}");
}

#[test]
fn linear_resampling_gradients() {
    let x = var(&[2, 3, 5], 9);
    let r = Resampler;
    check(std::slice::from_ref(&x), &|| {
        r.linear(x.as_tensor(), 11).unwrap()
    });
    check(std::slice::from_ref(&x), &|| {
        r.linear(x.as_tensor(), 3).unwrap()
    });
}

#[test]
fn distillation_loss_gradients() {
    use crate::train::losses::level_mse;
    let s0 = var(&[1, 3, 8], 11);
    let s1 = var(&[1, 3, 4], 12);
    let t = [
        Tensor::from_vec(rand(&[1, 3, 8], 13), (1, 3, 8), &Device::Cpu).unwrap(),
        Tensor::from_vec(rand(&[1, 3, 4], 14), (1, 3, 4), &Device::Cpu).unwrap(),
    ];
    let masks = [
        Some(Tensor::new(&[[[1f64, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]], &Device::Cpu).unwrap()),
        None,
    ];
    check(&[s0.clone(), s1.clone()], &|| {
        level_mse(
            &[s0.as_tensor().clone(), s1.as_tensor().clone()],
            &t,
            &[0, 1],
            &masks,
        )
        .unwrap()
    });
}
