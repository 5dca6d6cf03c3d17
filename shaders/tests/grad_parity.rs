//! The training kernels against candle's autodiff and core's optimizer
//! (issue 9's parity criterion: relative error ≤ 1e-4 in f32), on the test
//! adapter (lavapipe in CI): convolution input/weight/bias gradients through
//! a fused ReLU, over concatenated inputs, at lengths across tile
//! boundaries; accumulation; max pooling (tied maxima included) and linear
//! resampling (up, down, into padded rows); the Adam step.

mod common;

use candle_core::{Device, Tensor, Var};
use common::{gpu, random, run, Tolerance};
use syncseg_core::train::adam::{Adam, AdamConfig};
use syncseg_shaders::graph::Graph;
use syncseg_shaders::kernels::activation_grad::relu_grad;
use syncseg_shaders::kernels::adam::{adam_step, AdamParams, AdamSlots};
use syncseg_shaders::kernels::conv::{Activation, ConvWeights, InputPart, OutputRows};
use syncseg_shaders::kernels::conv_grad::{conv_grad_input, conv_grad_weight, GradPart};
use syncseg_shaders::kernels::pool::{max_pool, resample_table};
use syncseg_shaders::kernels::pool_grad::{max_pool_grad, resample_grad, resample_grad_starts};
use syncseg_shaders::kernels::row_sum::row_sum;

/// Asserts `got` matches candle's `want` by the parity rule, relative to
/// the tensor's scale floored at 1e-3 (a gradient element can be a
/// cancellation near 0).
fn assert_rel(got: &[f32], want: &[f32], what: &str) {
    let tol = Tolerance {
        floor: 1e-3,
        ..Tolerance::PARITY
    };
    match tol.check(got, want, what) {
        Ok(e) => eprintln!("{what}: relative error {e:.2e}"),
        Err(e) => panic!("{e}"),
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// loss = Σ relu(conv(concat(x₁, x₂), w) + b) ⊙ r over a batch of windows,
/// so ∂loss/∂out = r; `causal`: taps at and before `t` only.
fn conv_relu_case(
    parts: [usize; 2],
    cout: usize,
    k: usize,
    frames: usize,
    batch: usize,
    seed: u64,
    causal: bool,
) {
    use syncseg_shaders::kernels::conv::{conv_batch, Batch};
    let cin = parts[0] + parts[1];
    let dev = Device::Cpu;
    let xs: Vec<Vec<f32>> = parts
        .iter()
        .enumerate()
        .map(|(i, &c)| random(batch * c * frames, seed + i as u64))
        .collect();
    let w = random(cout * cin * k, seed + 10);
    let b = random(cout, seed + 11);
    let r = random(batch * cout * frames, seed + 12);

    // candle
    let vx: Vec<Var> = xs
        .iter()
        .zip(parts)
        .map(|(x, c)| {
            Var::from_tensor(&Tensor::from_slice(x, (batch, c, frames), &dev).unwrap()).unwrap()
        })
        .collect();
    // core's TemporalConv, as the CPU trainer runs it (candle's own conv1d
    // has a wrong weight gradient for batches of more than one window).
    let varmap = candle_nn::VarMap::new();
    let tconv = syncseg_core::model::c2f_tcn::TemporalConv::new(
        cin,
        cout,
        k,
        candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &dev),
    )
    .unwrap()
    .with_causal(causal);
    let (vw, vb) = {
        let vars = varmap.data().lock().unwrap();
        let (vw, vb) = (vars["weight"].clone(), vars["bias"].clone());
        vw.set(&Tensor::from_slice(&w, (cout, cin, k), &dev).unwrap())
            .unwrap();
        vb.set(&Tensor::from_slice(&b, cout, &dev).unwrap())
            .unwrap();
        (vw, vb)
    };
    let rt = Tensor::from_slice(&r, (batch, cout, frames), &dev).unwrap();
    let x = Tensor::cat(&[vx[0].as_tensor(), vx[1].as_tensor()], 1).unwrap();
    let y = tconv.forward(&x).unwrap().relu().unwrap();
    let want_y = flat(&y);
    let grads = (y * &rt).unwrap().sum_all().unwrap().backward().unwrap();
    let want_dx: Vec<Vec<f32>> = vx.iter().map(|v| flat(grads.get(v).unwrap())).collect();
    let want_dw = flat(grads.get(&vw).unwrap());
    let want_db = flat(grads.get(&vb).unwrap());

    // GPU: forward (for the ReLU mask), then the backward kernels.
    let gpu = gpu();
    let mut g = Graph::new(gpu.clone());
    let x_slots: Vec<_> = xs.iter().map(|x| g.constant(x, "x")).collect();
    let weights = ConvWeights {
        weight: g.constant(&w, "w"),
        bias: g.constant(&b, "b"),
        cout,
        cin,
        k,
        dilation: 1,
        causal,
    };
    let n = batch * cout * frames;
    let y = g.alloc(n, "y");
    let input_parts = [
        InputPart {
            x: x_slots[0],
            ci0: 0,
            channels: parts[0],
        },
        InputPart {
            x: x_slots[1],
            ci0: parts[0],
            channels: parts[1],
        },
    ];
    conv_batch(
        &mut g,
        &weights,
        &input_parts,
        OutputRows {
            y,
            co0: 0,
            cout,
            out_c0: 0,
        },
        frames,
        Batch {
            count: batch,
            y_rows: cout,
        },
        Activation::Relu,
        false,
    );
    let dy = g.constant(&r, "dy");
    let dz = g.alloc(n, "dz");
    relu_grad(&mut g, y, dy, dz, n, false);
    let dw = g.alloc(cout * cin * k, "dw");
    let db = g.alloc(cout, "db");
    let dxs: Vec<_> = parts
        .iter()
        .map(|&c| g.alloc(batch * c * frames, "dx"))
        .collect();
    for (i, part) in input_parts.iter().enumerate() {
        let dx = GradPart {
            slot: dxs[i],
            ci0: part.ci0,
            channels: part.channels,
        };
        conv_grad_input(&mut g, &weights, dz, dx, frames, batch, false);
        let x = GradPart {
            slot: part.x,
            ci0: part.ci0,
            channels: part.channels,
        };
        conv_grad_weight(&mut g, &weights, x, dz, dw, frames, batch, false);
    }
    for w in 0..batch {
        row_sum(&mut g, dz, w * cout, cout, frames, db, 0, 1.0, w > 0);
    }
    g.submit();
    let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
    let what = format!("B {batch} cin {parts:?} cout {cout} k {k} T {frames}");
    for (i, &c) in parts.iter().enumerate() {
        assert_rel(
            &read(dxs[i], batch * c * frames),
            &want_dx[i],
            &format!("{what}: dx{i}"),
        );
    }
    assert_rel(&read(y, n), &want_y, &format!("{what}: y"));
    {
        // f64 reference from the GPU's own dz, to tell a kernel error from candle's.
        let dzv = read(dz, n);
        let mut refw = vec![0f64; cout * cin * k];
        for b in 0..batch {
            for co in 0..cout {
                for ci in 0..cin {
                    let (xp, c0, cc) = if ci < parts[0] {
                        (&xs[0], 0, parts[0])
                    } else {
                        (&xs[1], parts[0], parts[1])
                    };
                    for kk in 0..k {
                        for t in 0..frames {
                            let pad = if causal { k - 1 } else { k / 2 };
                            let src = t as i64 + kk as i64 - pad as i64;
                            if src >= 0 && (src as usize) < frames {
                                refw[(co * cin + ci) * k + kk] += dzv[(b * cout + co) * frames + t]
                                    as f64
                                    * xp[(b * cc + ci - c0) * frames + src as usize] as f64;
                            }
                        }
                    }
                }
            }
        }
        let refw: Vec<f32> = refw.iter().map(|&v| v as f32).collect();
        assert_rel(
            &read(dw, cout * cin * k),
            &refw,
            &format!("{what}: dw vs f64"),
        );
    }
    assert_rel(&read(dw, cout * cin * k), &want_dw, &format!("{what}: dw"));
    assert_rel(&read(db, cout), &want_db, &format!("{what}: db"));
}

#[test]
fn conv_relu_gradients_match_candle() {
    skip_without_gpu!();
    conv_relu_case([1, 2], 1, 1, 1, 1, 1, false);
    // candle's conv1d backward underflows below T = 2·pad + 1.
    conv_relu_case([3, 5], 7, 5, 5, 1, 2, false);
    conv_relu_case([3, 5], 7, 5, 17, 3, 3, false);
    conv_relu_case([3, 5], 7, 5, 17, 3, 3, true);
    conv_relu_case([40, 30], 70, 3, 130, 2, 4, false);
    conv_relu_case([40, 30], 70, 3, 130, 2, 7, true);
    conv_relu_case([64, 65], 65, 5, 300, 1, 5, false);
    conv_relu_case([16, 8], 33, 1, 1000, 4, 6, false);
}

#[test]
fn gradients_accumulate_when_asked() {
    skip_without_gpu!();
    let (cin, cout, k, frames) = (5, 6, 3, 70);
    let x = random(cin * frames, 20);
    let w = random(cout * cin * k, 21);
    let dy = random(cout * frames, 22);
    let once = |times: usize| {
        run(|g| {
            let weights = ConvWeights {
                weight: g.constant(&w, "w"),
                bias: g.alloc(cout, "b"),
                cout,
                cin,
                k,
                dilation: 1,
                causal: false,
            };
            let xs = g.constant(&x, "x");
            let dys = g.constant(&dy, "dy");
            let dw = g.alloc(cout * cin * k, "dw");
            for i in 0..times {
                let part = GradPart {
                    slot: xs,
                    ci0: 0,
                    channels: cin,
                };
                conv_grad_weight(g, &weights, part, dys, dw, frames, 1, i > 0);
            }
            (dw, cout * cin * k)
        })
    };
    let (one, three) = (once(1), once(3));
    let tripled: Vec<f32> = one.iter().map(|v| 3.0 * v).collect();
    assert_rel(&three, &tripled, "dw accumulated over three windows");
}

#[test]
fn adam_kernel_follows_core_optimizer() {
    skip_without_gpu!();
    let n = 70_001; // more than one 256-wide workgroup row, odd
    let dev = Device::Cpu;
    let theta0 = random(n, 30);
    let grad = random(n, 31);
    let cfg = AdamConfig {
        lr: 1e-2,
        weight_decay: 1e-2,
        ..Default::default()
    };
    // core: loss = Σ θ ⊙ grad, so ∂loss/∂θ = grad at every step.
    let var = Var::from_tensor(&Tensor::from_slice(&theta0, n, &dev).unwrap()).unwrap();
    let gt = Tensor::from_slice(&grad, n, &dev).unwrap();
    let mut adam = Adam::new(vec![("theta".into(), var.clone())], cfg).unwrap();
    let steps = 3;
    for _ in 0..steps {
        let g = (var.as_tensor() * &gt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        adam.step(&g).unwrap();
    }
    let want = flat(var.as_tensor());

    let gpu = gpu();
    let mut g = Graph::new(gpu.clone());
    let slots = AdamSlots {
        theta: g.constant(&theta0, "theta"),
        grad: g.constant(&grad, "grad"),
        m: g.alloc(n, "m"),
        v: g.alloc(n, "v"),
        n,
    };
    let id = adam_step(&mut g, &slots, &AdamParams::new(&cfg, n, 1));
    for step in 1..=steps {
        g.set_params(id, bytemuck::bytes_of(&AdamParams::new(&cfg, n, step)));
        g.submit();
    }
    let got = pollster::block_on(gpu.read(g.buffer(slots.theta), n)).unwrap();
    assert_rel(&got, &want, "θ after three Adam steps");
}

#[test]
fn max_pool_gradient_matches_core() {
    skip_without_gpu!();
    let dev = Device::Cpu;
    for (channels, t_in, k, seed) in [
        (1, 2, 2, 40),
        (3, 7, 2, 41),
        (5, 300, 2, 42),
        (4, 61, 6, 43),
    ] {
        // Quantised values, so that windows have tied maxima too.
        let x: Vec<f32> = random(channels * t_in, seed)
            .iter()
            .map(|v| (v * 4.0).round())
            .collect();
        let t_out = t_in / k;
        let r = random(channels * t_out, seed + 1);
        let vx =
            Var::from_tensor(&Tensor::from_slice(&x, (1, channels, t_in), &dev).unwrap()).unwrap();
        let y = syncseg_core::model::c2f_tcn::maxpool(vx.as_tensor(), k).unwrap();
        let rt = Tensor::from_slice(&r, (1, channels, t_out), &dev).unwrap();
        let grads = (y * rt).unwrap().sum_all().unwrap().backward().unwrap();
        let want = flat(grads.get(&vx).unwrap());
        let got = run(|g| {
            let xs = g.constant(&x, "x");
            let ys = g.alloc(channels * t_out, "y");
            max_pool(g, xs, ys, channels, t_in, k);
            let dy = g.constant(&r, "dy");
            let dx = g.alloc(channels * t_in, "dx");
            max_pool_grad(g, xs, ys, dy, dx, channels, t_in, k, false);
            (dx, channels * t_in)
        });
        assert_rel(
            &got,
            &want,
            &format!("max pool C {channels} T {t_in} k {k}"),
        );
    }
}

#[test]
fn resample_gradient_matches_core() {
    skip_without_gpu!();
    let dev = Device::Cpu;
    let resampler = syncseg_core::model::interp::Resampler;
    for (channels, t_in, t_up, pad, seed) in [
        (1, 1, 4, 0, 50),
        (2, 3, 7, 2, 51),
        (3, 12, 384, 0, 52),
        (2, 19, 600, 17, 53),
        (2, 40, 13, 0, 54),
    ] {
        let t_out = t_up + pad;
        let x = random(channels * t_in, seed);
        // dy over the padded rows; the padding's values must not leak in.
        let dy = random((channels + 1) * t_out, seed + 1);
        let vx =
            Var::from_tensor(&Tensor::from_slice(&x, (1, channels, t_in), &dev).unwrap()).unwrap();
        let y = resampler.linear(vx.as_tensor(), t_up).unwrap();
        let r = Tensor::from_slice(&dy, (channels + 1, t_out), &dev)
            .unwrap()
            .narrow(0, 1, channels)
            .unwrap()
            .narrow(1, 0, t_up)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let grads = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        let want = flat(grads.get(&vx).unwrap());
        let got = run(|g| {
            let table = g.constant_u32(&resample_table(t_in, t_up), "table");
            let starts = g.constant_u32(&resample_grad_starts(t_in, t_up), "starts");
            let dys = g.constant(&dy, "dy");
            let dx = g.alloc(channels * t_in, "dx");
            resample_grad(
                g, dys, table, starts, dx, channels, t_in, t_up, t_out, 1, false,
            );
            (dx, channels * t_in)
        });
        assert_rel(
            &got,
            &want,
            &format!("resample C {channels} {t_in} → {t_up} (+{pad})"),
        );
    }
}

/// loss = Σ relu(BN(x)) ⊙ r over a batch with padded frames, against core's
/// `MaskedBatchNorm` in training mode: output, running statistics (through
/// the folded scale and shift), and the gradients of x, γ and β.
fn batch_norm_case(batch: usize, channels: usize, t_len: usize, real: &[usize], seed: u64) {
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};
    use syncseg_core::model::batch_norm::{MaskedBatchNorm, EPS};
    use syncseg_shaders::kernels::batch_norm::{bn_apply, bn_backward, bn_stats, BatchNormSlots};

    let dev = Device::Cpu;
    let x: Vec<f32> = random(batch * channels * t_len, seed)
        .iter()
        .enumerate()
        .map(|(i, v)| 3.0 * v + (i / t_len % channels) as f32) // per-channel offsets
        .collect();
    let gamma: Vec<f32> = random(channels, seed + 1)
        .iter()
        .map(|v| 1.0 + 0.5 * v)
        .collect();
    let beta = random(channels, seed + 2);
    let r = random(batch * channels * t_len, seed + 3);
    let mask: Vec<f32> = (0..batch * t_len)
        .map(|i| ((i % t_len) < real[i / t_len]) as u8 as f32)
        .collect();

    let varmap = VarMap::new();
    let bn =
        MaskedBatchNorm::new(channels, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
    let (vg, vb) = {
        let vars = varmap.data().lock().unwrap();
        let (vg, vb) = (vars["weight"].clone(), vars["bias"].clone());
        vg.set(&Tensor::from_slice(&gamma, channels, &dev).unwrap())
            .unwrap();
        vb.set(&Tensor::from_slice(&beta, channels, &dev).unwrap())
            .unwrap();
        (vg, vb)
    };
    let vx =
        Var::from_tensor(&Tensor::from_slice(&x, (batch, channels, t_len), &dev).unwrap()).unwrap();
    let mt = Tensor::from_slice(&mask, (batch, 1, t_len), &dev).unwrap();
    let y = bn
        .forward_train(vx.as_tensor(), Some(&mt))
        .unwrap()
        .relu()
        .unwrap();
    let rt = Tensor::from_slice(&r, (batch, channels, t_len), &dev).unwrap();
    let grads = (&y * &rt).unwrap().sum_all().unwrap().backward().unwrap();
    let want_y = flat(&y);
    let want_dx = flat(grads.get(&vx).unwrap());
    let want_dg = flat(grads.get(&vg).unwrap());
    let want_db = flat(grads.get(&vb).unwrap());
    let (scale, shift) = bn.folded().unwrap();
    let (want_scale, want_shift) = (flat(&scale), flat(&shift));

    let gpu = gpu();
    let mut g = Graph::new(gpu.clone());
    let gb: Vec<f32> = gamma.iter().chain(&beta).copied().collect();
    let running: Vec<f32> = (0..2 * channels)
        .map(|i| (i >= channels) as u8 as f32)
        .collect();
    let slots = BatchNormSlots {
        gamma_beta: g.constant(&gb, "gb"),
        running: g.constant(&running, "running"),
        stats: g.alloc(2 * channels + 1, "stats"),
        mask: g.constant(&mask, "mask"),
        channels,
        batch,
        t_len,
    };
    let xs = g.constant(&x, "x");
    let ys = g.alloc(x.len(), "y");
    bn_stats(&mut g, &slots, xs);
    bn_apply(&mut g, &slots, xs, ys, true);
    let dy = g.constant(&r, "dy");
    let dz = g.alloc(x.len(), "dz");
    relu_grad(&mut g, ys, dy, dz, x.len(), false);
    let dgb = g.alloc(2 * channels, "dgb");
    let dx = g.alloc(x.len(), "dx");
    bn_backward(&mut g, &slots, xs, dz, dgb, dx, false);
    g.submit();
    let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
    let what = format!("BN B {batch} C {channels} T {t_len} real {real:?}");
    assert_rel(&read(ys, x.len()), &want_y, &format!("{what}: y"));
    assert_rel(&read(dx, x.len()), &want_dx, &format!("{what}: dx"));
    let dgb = read(dgb, 2 * channels);
    assert_rel(&dgb[..channels], &want_dg, &format!("{what}: dγ"));
    assert_rel(&dgb[channels..], &want_db, &format!("{what}: dβ"));
    let run_stats = read(slots.running, 2 * channels);
    let got_scale: Vec<f32> = (0..channels)
        .map(|c| gamma[c] / (run_stats[channels + c] + EPS as f32).sqrt())
        .collect();
    let got_shift: Vec<f32> = (0..channels)
        .map(|c| beta[c] - run_stats[c] * got_scale[c])
        .collect();
    assert_rel(
        &got_scale,
        &want_scale,
        &format!("{what}: running variance"),
    );
    assert_rel(&got_shift, &want_shift, &format!("{what}: running mean"));
}

#[test]
fn batch_norm_training_matches_core() {
    skip_without_gpu!();
    batch_norm_case(1, 1, 2, &[2], 60);
    batch_norm_case(2, 3, 37, &[37, 20], 61);
    batch_norm_case(4, 70, 300, &[300, 1, 150, 299], 62);
    batch_norm_case(3, 5, 1000, &[1000, 1000, 1000], 63);
    // A single valid frame in the batch: eval-mode normalisation, running
    // statistics unchanged (core's rule; the batch variance 0 sent the
    // padding to inf).
    batch_norm_case(1, 3, 5, &[1], 64);
    batch_norm_case(3, 4, 9, &[0, 1, 0], 65);
}

/// Softmax probabilities `[batch, K, T]` from random logits (away from 0 and 1).
fn random_probs(batch: usize, classes: usize, t_len: usize, seed: u64) -> Vec<f32> {
    let z = random(batch * classes * t_len, seed);
    let mut p = vec![0f32; z.len()];
    for b in 0..batch {
        for t in 0..t_len {
            let at = |k: usize| (b * classes + k) * t_len + t;
            let sum: f32 = (0..classes).map(|k| (3.0 * z[at(k)]).exp()).sum();
            for k in 0..classes {
                p[at(k)] = (3.0 * z[at(k)]).exp() / sum;
            }
        }
    }
    p
}

/// Frames `[0, real)` of each window are real; every fifth real frame is
/// ignored (weight 0).
fn frames(
    batch: usize,
    t_len: usize,
    real: &[usize],
    classes: usize,
    seed: u64,
) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    let labels: Vec<u32> = random(batch * t_len, seed)
        .iter()
        .map(|v| ((v + 1.0) / 2.0 * classes as f32) as u32 % classes as u32)
        .collect();
    let mask: Vec<f32> = (0..batch * t_len)
        .map(|i| ((i % t_len) < real[i / t_len]) as u8 as f32)
        .collect();
    let weight: Vec<f32> = mask
        .iter()
        .enumerate()
        .map(|(i, &m)| if i % 5 == 3 { 0.0 } else { m })
        .collect();
    (labels, weight, mask)
}

/// Core's loss on `p` and its gradient.
fn core_loss(
    p: &[f32],
    (labels, weight, mask): &(Vec<u32>, Vec<f32>, Vec<f32>),
    dims: (usize, usize, usize),
    smoothing: f64,
) -> (f32, Vec<f32>) {
    use syncseg_core::train::losses::{ensemble_cross_entropy, truncated_mse};
    let (batch, classes, t_len) = dims;
    let dev = Device::Cpu;
    let vp =
        Var::from_tensor(&Tensor::from_slice(p, (batch, classes, t_len), &dev).unwrap()).unwrap();
    let y = Tensor::from_slice(labels, (batch, t_len), &dev).unwrap();
    let w = Tensor::from_slice(weight, (batch, t_len), &dev).unwrap();
    let m = Tensor::from_slice(mask, (batch, t_len), &dev).unwrap();
    let loss = (ensemble_cross_entropy(vp.as_tensor(), &y, &w).unwrap()
        + (truncated_mse(vp.as_tensor(), &m, 4.0).unwrap() * smoothing).unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    (loss.to_scalar().unwrap(), flat(grads.get(&vp).unwrap()))
}

#[test]
fn segmentation_loss_and_gradient_match_core() {
    skip_without_gpu!();
    use syncseg_shaders::kernels::reduce::{sum, PARTIALS};
    use syncseg_shaders::kernels::seg_loss::{seg_loss_grad, SegLossParams, SegLossSlots};
    for (batch, classes, t_len, real, seed) in [
        (1, 2, 2, vec![2], 70),
        (2, 5, 37, vec![37, 20], 71),
        (4, 33, 600, vec![600, 1, 300, 599], 72),
    ] {
        let p = random_probs(batch, classes, t_len, seed);
        let f = frames(batch, t_len, &real, classes, seed + 1);
        let (want_loss, want_dp) = core_loss(&p, &f, (batch, classes, t_len), 0.15);
        let gpu = gpu();
        let mut g = Graph::new(gpu.clone());
        let s = SegLossSlots {
            probs: g.constant(&p, "p"),
            labels: g.constant_u32(&f.0, "labels"),
            weight: g.constant(&f.1, "weight"),
            mask: g.constant(&f.2, "mask"),
            dprobs: g.alloc(p.len(), "dp"),
            frame_loss: g.alloc(batch * t_len, "frame loss"),
            batch,
        };
        seg_loss_grad(
            &mut g,
            &s,
            &SegLossParams::new(classes, t_len, &f.1, &f.2, 0.15, 4.0),
        );
        let partials = g.alloc(PARTIALS, "partials");
        let total = g.alloc(1, "loss");
        sum(&mut g, s.frame_loss, partials, total, batch * t_len);
        g.submit();
        let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
        let what = format!("loss B {batch} K {classes} T {t_len}");
        assert_rel(&read(s.dprobs, p.len()), &want_dp, &format!("{what}: dp"));
        assert_rel(&read(total, 1), &[want_loss], &format!("{what}: value"));
    }
}

#[test]
fn ensemble_backward_matches_core() {
    skip_without_gpu!();
    use syncseg_core::model::interp::Resampler;
    use syncseg_shaders::kernels::ensemble::{ensemble_head, EnsembleParams};
    use syncseg_shaders::kernels::ensemble_grad::ensemble_head_grad;
    let dev = Device::Cpu;
    let resampler = Resampler;
    let (classes, t_len) = (6, 384);
    // Six heads at C2F-TCN's lengths, the reference ensemble weights.
    let lens = [384, 192, 96, 48, 24, 12];
    let weights = [1.0f32, 1.0, 0.5, 0.5, 0.5, 0.5];
    let total: f32 = weights.iter().sum();
    let heads: Vec<Vec<f32>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            random(classes * l, 80 + i as u64)
                .iter()
                .map(|v| 3.0 * v)
                .collect()
        })
        .collect();
    let f = frames(1, t_len, &[300], classes, 90);

    // candle: p = Σ w_h softmax(resample(head_h)), then core's loss.
    let vars: Vec<Var> = heads
        .iter()
        .zip(lens)
        .map(|(h, l)| {
            Var::from_tensor(&Tensor::from_slice(h, (1, classes, l), &dev).unwrap()).unwrap()
        })
        .collect();
    let mut p: Option<Tensor> = None;
    for (v, &w) in vars.iter().zip(&weights) {
        let s =
            candle_nn::ops::softmax(&resampler.linear(v.as_tensor(), t_len).unwrap(), 1).unwrap();
        let s = (s * (w / total) as f64).unwrap();
        p = Some(match p {
            Some(a) => (a + s).unwrap(),
            None => s,
        });
    }
    let p = p.unwrap();
    let (_, dp) = core_loss(&flat(&p), &f, (1, classes, t_len), 0.15);
    let dpt = Tensor::from_slice(&dp, (1, classes, t_len), &dev).unwrap();
    // ∂L/∂head = backward of Σ p ⊙ dp (dp held fixed), which is the chain rule.
    let grads = (&p * &dpt).unwrap().sum_all().unwrap().backward().unwrap();

    let gpu = gpu();
    let mut g = Graph::new(gpu.clone());
    let probs = g.alloc(classes * t_len, "p");
    let dps = g.constant(&dp, "dp");
    let mut outs = Vec::new();
    for (i, (h, &l)) in heads.iter().zip(&lens).enumerate() {
        let head = g.constant(h, "head");
        let table = g.constant_u32(&resample_table(l, t_len), "table");
        let starts = g.constant_u32(&resample_grad_starts(l, t_len), "starts");
        let params = EnsembleParams {
            classes: classes as u32,
            t_head: l as u32,
            len: t_len as u32,
            out_stride: t_len as u32,
            out_t0: 0,
            accumulate: (i > 0) as u32,
            weight: weights[i] / total,
            _pad: 0,
        };
        ensemble_head(&mut g, head, table, probs, params, t_len);
        let dz = g.alloc(classes * t_len, "dz");
        ensemble_head_grad(
            &mut g,
            head,
            table,
            dps,
            dz,
            1,
            classes,
            l,
            t_len,
            weights[i] / total,
        );
        let dhead = g.alloc(classes * l, "dhead");
        resample_grad(
            &mut g, dz, table, starts, dhead, classes, l, t_len, t_len, 0, false,
        );
        outs.push((dhead, classes * l));
    }
    g.submit();
    let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
    assert_rel(
        &read(probs, classes * t_len),
        &flat(&p),
        "ensemble probabilities",
    );
    for (i, (v, (slot, n))) in vars.iter().zip(outs).enumerate() {
        assert_rel(
            &read(slot, n),
            &flat(grads.get(v).unwrap()),
            &format!("head {i} gradient"),
        );
    }
}

#[test]
fn distillation_mse_matches_core() {
    skip_without_gpu!();
    use syncseg_core::train::losses::level_mse;
    use syncseg_shaders::kernels::mse_grad::{masked_mse_grad, MseParams, MseSlots};
    use syncseg_shaders::kernels::reduce::{sum, PARTIALS};
    let dev = Device::Cpu;
    for (batch, classes, t_len, real, seed) in [
        (1, 1, 1, vec![1], 100),
        (2, 7, 45, vec![45, 10], 101),
        (4, 33, 300, vec![300, 0, 7, 299], 102),
    ] {
        let s = random(batch * classes * t_len, seed);
        let u = random(batch * classes * t_len, seed + 1);
        let (_, _, mask) = frames(batch, t_len, &real, classes, seed + 2);
        let vs = Var::from_tensor(&Tensor::from_slice(&s, (batch, classes, t_len), &dev).unwrap())
            .unwrap();
        let ut = Tensor::from_slice(&u, (batch, classes, t_len), &dev).unwrap();
        let mt = Tensor::from_slice(&mask, (batch, 1, t_len), &dev).unwrap();
        let loss = level_mse(&[vs.as_tensor().clone()], &[ut], &[0], &[Some(mt)]).unwrap();
        let want_dv = flat(loss.backward().unwrap().get(&vs).unwrap());
        let want_loss: f32 = loss.to_scalar().unwrap();

        let gpu = gpu();
        let mut g = Graph::new(gpu.clone());
        let slots = MseSlots {
            student: g.constant(&s, "s"),
            teacher: g.constant(&u, "u"),
            mask: g.constant(&mask, "mask"),
            ds: g.alloc(s.len(), "ds"),
            frame_loss: g.alloc(batch * t_len, "frame loss"),
            batch,
        };
        masked_mse_grad(
            &mut g,
            &slots,
            &MseParams::new(classes, t_len, &mask, false),
        );
        let (partials, total) = (g.alloc(PARTIALS, "partials"), g.alloc(1, "loss"));
        sum(&mut g, slots.frame_loss, partials, total, batch * t_len);
        g.submit();
        let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
        let what = format!("MSE B {batch} K {classes} T {t_len}");
        assert_rel(&read(slots.ds, s.len()), &want_dv, &format!("{what}: ds"));
        assert_rel(&read(total, 1), &[want_loss], &format!("{what}: value"));
    }
}

#[test]
fn layer_norm_gradients_match_candle() {
    skip_without_gpu!();
    use syncseg_shaders::kernels::layer_norm::{layer_norm, NormFrames};
    use syncseg_shaders::kernels::layer_norm_grad::layer_norm_grad;
    let dev = Device::Cpu;
    let eps = 1e-5;
    for (channels, frames, seed) in [(1, 1, 110), (4, 3, 111), (64, 300, 112), (130, 17, 113)] {
        let x: Vec<f32> = random(channels * frames, seed)
            .iter()
            .map(|v| 2.0 * v + 0.5)
            .collect();
        let gamma: Vec<f32> = random(channels, seed + 1)
            .iter()
            .map(|v| 1.0 + 0.5 * v)
            .collect();
        let beta = random(channels, seed + 2);
        let r = random(channels * frames, seed + 3);
        // candle, on `[T, C]` as core's adapter computes it.
        let vx = Var::from_tensor(
            &Tensor::from_slice(&x, (channels, frames), &dev)
                .unwrap()
                .t()
                .unwrap()
                .contiguous()
                .unwrap(),
        )
        .unwrap();
        let vg = Var::from_tensor(&Tensor::from_slice(&gamma, channels, &dev).unwrap()).unwrap();
        let vb = Var::from_tensor(&Tensor::from_slice(&beta, channels, &dev).unwrap()).unwrap();
        let xc = vx
            .as_tensor()
            .broadcast_sub(&vx.as_tensor().mean_keepdim(1).unwrap())
            .unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(1).unwrap();
        let y = xc
            .broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(vg.as_tensor())
            .unwrap()
            .broadcast_add(vb.as_tensor())
            .unwrap();
        let rt = Tensor::from_slice(&r, (channels, frames), &dev)
            .unwrap()
            .t()
            .unwrap();
        let grads = (&y * &rt).unwrap().sum_all().unwrap().backward().unwrap();
        let want_dx = flat(&grads.get(&vx).unwrap().t().unwrap().contiguous().unwrap());

        let gpu = gpu();
        let mut g = Graph::new(gpu.clone());
        let (xs, gs, bs) = (
            g.constant(&x, "x"),
            g.constant(&gamma, "g"),
            g.constant(&beta, "b"),
        );
        let ys = g.alloc(x.len(), "y");
        let nf = NormFrames::whole(channels, frames);
        layer_norm(&mut g, xs, gs, bs, ys, nf, eps as f32);
        let dy = g.constant(&r, "dy");
        let (dx, gxhat) = (g.alloc(x.len(), "dx"), g.alloc(x.len(), "gxhat"));
        layer_norm_grad(&mut g, xs, gs, dy, dx, gxhat, nf, eps as f32, false);
        let (dg, db) = (g.alloc(channels, "dg"), g.alloc(channels, "db"));
        row_sum(&mut g, gxhat, 0, channels, frames, dg, 0, 1.0, false);
        row_sum(&mut g, dy, 0, channels, frames, db, 0, 1.0, false);
        g.submit();
        let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
        let what = format!("LayerNorm C {channels} T {frames}");
        assert_rel(
            &read(ys, x.len()),
            &flat(&y.t().unwrap().contiguous().unwrap()),
            &format!("{what}: y"),
        );
        assert_rel(&read(dx, x.len()), &want_dx, &format!("{what}: dx"));
        assert_rel(
            &read(dg, channels),
            &flat(grads.get(&vg).unwrap()),
            &format!("{what}: dγ"),
        );
        assert_rel(
            &read(db, channels),
            &flat(grads.get(&vb).unwrap()),
            &format!("{what}: dβ"),
        );
    }
}

#[test]
fn gelu_and_its_gradient_match_candle() {
    skip_without_gpu!();
    use syncseg_shaders::kernels::gelu::{gelu, gelu_grad};
    let dev = Device::Cpu;
    let n = 70_001;
    let z: Vec<f32> = random(n, 120).iter().map(|v| 6.0 * v).collect();
    let r = random(n, 121);
    let vz = Var::from_tensor(&Tensor::from_slice(&z, n, &dev).unwrap()).unwrap();
    // core's adapter: 0.5 · z · (1 + erf(z / √2)).
    let y = ((vz.as_tensor()
        * ((vz.as_tensor() / std::f64::consts::SQRT_2)
            .unwrap()
            .erf()
            .unwrap()
            + 1.0)
            .unwrap())
    .unwrap()
        * 0.5)
        .unwrap();
    let rt = Tensor::from_slice(&r, n, &dev).unwrap();
    let grads = (&y * &rt).unwrap().sum_all().unwrap().backward().unwrap();
    let gpu = gpu();
    let mut g = Graph::new(gpu.clone());
    let zs = g.constant(&z, "z");
    let ys = g.alloc(n, "y");
    gelu(&mut g, zs, ys, n);
    let dy = g.constant(&r, "dy");
    let dz = g.alloc(n, "dz");
    gelu_grad(&mut g, zs, dy, dz, n, false);
    g.submit();
    let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
    assert_rel(&read(ys, n), &flat(&y), "gelu");
    assert_rel(&read(dz, n), &flat(grads.get(&vz).unwrap()), "gelu'");
}

#[test]
fn attention_gradients_match_candle() {
    skip_without_gpu!();
    use syncseg_shaders::kernels::attention::{Attention, SeqLayout};
    use syncseg_shaders::kernels::attention_grad::attention_grad;
    let dev = Device::Cpu;
    // (heads, head size, frames, real keys per sequence, tokens per
    // independent sequence, seed): a batch of windows is sequences side by
    // side, each with its padding at the end.
    for (heads, head_dim, frames, real, block, seed) in [
        (1, 1, 1, 1, 1, 130),
        (2, 8, 37, 30, 37, 131),
        (4, 16, 200, 200, 200, 132),
        (1, 128, 70, 41, 70, 133),
        (2, 8, 120, 29, 40, 134),
        (3, 4, 100, 25, 30, 135),
    ] {
        let w = heads * head_dim;
        let (q, k, v, r) = (
            random(w * frames, seed),
            random(w * frames, seed + 1),
            random(w * frames, seed + 2),
            random(w * frames, seed + 3),
        );
        // Padded keys are masked with −1e9, as core's adapter does.
        let bias: Vec<f32> = (0..frames)
            .map(|t| if t % block < real { 0.0 } else { -1e9 })
            .collect();
        let var = |x: &[f32]| {
            Var::from_tensor(&Tensor::from_slice(x, (w, frames), &dev).unwrap()).unwrap()
        };
        let (vq, vk, vv) = (var(&q), var(&k), var(&v));
        let bt = Tensor::from_slice(&bias, (1, frames), &dev).unwrap();
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut outs = Vec::new();
        for h in 0..heads {
            let mut seqs = Vec::new();
            for start in (0..frames).step_by(block) {
                let len = block.min(frames - start);
                let rows = |x: &Var| {
                    x.as_tensor()
                        .narrow(0, h * head_dim, head_dim)
                        .unwrap()
                        .narrow(1, start, len)
                        .unwrap()
                        .t()
                        .unwrap()
                };
                let s = ((rows(&vq).matmul(&rows(&vk).t().unwrap()).unwrap() * scale).unwrap())
                    .broadcast_add(&bt.narrow(1, start, len).unwrap())
                    .unwrap();
                let p = candle_nn::ops::softmax(&s, 1).unwrap();
                seqs.push(p.matmul(&rows(&vv)).unwrap().t().unwrap());
            }
            outs.push(Tensor::cat(&seqs, 1).unwrap());
        }
        let o = Tensor::cat(&outs, 0).unwrap();
        let rt = Tensor::from_slice(&r, (w, frames), &dev).unwrap();
        let grads = (&o * &rt).unwrap().sum_all().unwrap().backward().unwrap();

        let gpu = gpu();
        let mut g = Graph::new(gpu.clone());
        // q, k and v fused into one `[3W, frames]` buffer, the sequences
        // side by side, as the gradients are written.
        let qkv: Vec<f32> = [&q, &k, &v].into_iter().flatten().copied().collect();
        let qkv = g.constant(&qkv, "qkv");
        let mask: Vec<f32> = bias
            .iter()
            .map(|&b| if b == 0.0 { 1.0 } else { 0.0 })
            .collect();
        let a = Attention {
            q: (qkv, 0),
            k: (qkv, w),
            v: (qkv, 2 * w),
            input: SeqLayout::side_by_side(frames, block),
            o: g.constant(&flat(&o), "o"),
            output: SeqLayout::side_by_side(frames, block),
            key_mask: Some(g.constant(&mask, "mask")),
            heads,
            head_dim,
            frames,
            block,
        };
        let d_o = g.constant(&r, "do");
        let stats = g.alloc(2 * heads * frames, "stats");
        let dqkv = g.alloc(3 * w * frames, "dqkv");
        attention_grad(&mut g, &a, d_o, stats, dqkv, false);
        g.submit();
        let read = |s, n| pollster::block_on(gpu.read(g.buffer(s), n)).unwrap();
        let what =
            format!("attention H {heads} dh {head_dim} T {frames} real {real} block {block}");
        let got = read(dqkv, 3 * w * frames);
        for (i, (name, var)) in [("dq", &vq), ("dk", &vk), ("dv", &vv)]
            .into_iter()
            .enumerate()
        {
            let n = w * frames;
            assert_rel(
                &got[i * n..(i + 1) * n],
                &flat(grads.get(var).unwrap()),
                &format!("{what}: {name}"),
            );
        }
    }
}
