//! Each kernel against a plain CPU reference (f64) on the test adapter
//! (lavapipe in CI): odd lengths, length 1, lengths across tile boundaries.

mod common;

use common::{assert_close, random, run, Tolerance};
use syncseg_core::model::dropout;
use syncseg_core::model::interp::linear_matrix;
use syncseg_shaders::kernels::add::{add_into, AddParams};
use syncseg_shaders::kernels::attention::{attention, Attention, SeqLayout};
use syncseg_shaders::kernels::conv::{conv, Activation, ConvWeights, InputPart, OutputRows};
use syncseg_shaders::kernels::copy::{copy_window, WindowParams};
use syncseg_shaders::kernels::ensemble::{ensemble_head, EnsembleParams};
use syncseg_shaders::kernels::layer_norm::{layer_norm, NormFrames};
use syncseg_shaders::kernels::pool::{max_pool, resample, resample_table};
use syncseg_shaders::kernels::reduce::{sum_sq_diff, PARTIALS};
use syncseg_shaders::kernels::swiglu::swiglu;

fn gelu(x: f64) -> f64 {
    // erf via libm-quality series is not in std; use the identity with erfc
    // from a high-precision rational approximation (|error| < 1e-12 here is
    // not needed: the kernel's own approximation is 1.2e-7).
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// erf to ~1e-15 by its Maclaurin series (|x| < 3) or continued fraction.
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let v = if a < 3.0 {
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc continued fraction (Lentz), converges fast for a ≥ 3.
        let mut f = a;
        let mut c = a;
        let mut d = 0.0;
        for i in 1..200 {
            let an = i as f64 / 2.0;
            d = a + an * d;
            d = 1.0 / d;
            c = a + an / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    v.copysign(x)
}

/// Reference: y[o, t] = act(Σ w[o, c, j] x[c, t + j − pad] + b[o]) (+ y0),
/// pad = k/2 (same) or k − 1 (causal).
fn conv_ref(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (cin, cout, k, t, causal): (usize, usize, usize, usize, bool),
    act: Activation,
    y0: Option<&[f32]>,
) -> Vec<f64> {
    let pad = if causal { k - 1 } else { k / 2 };
    let mut y = vec![0f64; cout * t];
    for o in 0..cout {
        for tt in 0..t {
            let mut s = b[o] as f64;
            for c in 0..cin {
                for j in 0..k {
                    let src = tt as isize + j as isize - pad as isize;
                    if src >= 0 && (src as usize) < t {
                        s += w[(o * cin + c) * k + j] as f64 * x[c * t + src as usize] as f64;
                    }
                }
            }
            if let Some(y0) = y0 {
                s += y0[o * t + tt] as f64;
            }
            y[o * t + tt] = match act {
                Activation::None => s,
                Activation::Relu => s.max(0.0),
                Activation::Gelu => gelu(s),
            };
        }
    }
    y
}

#[test]
fn conv_matches_reference_across_shapes_parts_and_activations() {
    skip_without_gpu!();
    let shapes = [
        (1, 1, 1, 1),
        (3, 2, 5, 1),
        (3, 2, 5, 2),
        (7, 70, 5, 65),
        (16, 64, 5, 64),
        (20, 5, 1, 129),
        (33, 17, 3, 200),
        (130, 65, 5, 97),
    ];
    for (n, &(cin, cout, k, t)) in shapes.iter().enumerate() {
        for (a, act) in [Activation::None, Activation::Relu, Activation::Gelu]
            .into_iter()
            .enumerate()
        {
            let seed = (n * 10 + a) as u64;
            let x = random(cin * t, seed);
            let w = random(cout * cin * k, seed + 100);
            let b = random(cout, seed + 200);
            let y0 = random(cout * t, seed + 300);
            let accumulate = a == 1;
            // Every other shape causal (padding k − 1 on the left only).
            let causal = n % 2 == 1;
            let want = conv_ref(
                &x,
                &w,
                &b,
                (cin, cout, k, t, causal),
                act,
                accumulate.then_some(&y0[..]),
            );
            // The input split into two channel parts (a concatenation).
            let split = cin / 2;
            let got = run(|g| {
                let weights = ConvWeights {
                    weight: g.constant(&w, "w"),
                    bias: g.constant(&b, "b"),
                    cout,
                    cin,
                    k,
                    dilation: 1,
                    causal,
                };
                let mut parts = Vec::new();
                if split > 0 {
                    parts.push(InputPart {
                        x: g.constant(&x[..split * t], "x0"),
                        ci0: 0,
                        channels: split,
                    });
                }
                parts.push(InputPart {
                    x: g.constant(&x[split * t..], "x1"),
                    ci0: split,
                    channels: cin - split,
                });
                let y = g.constant(&y0, "y");
                let out = OutputRows {
                    y,
                    co0: 0,
                    cout,
                    out_c0: 0,
                };
                conv(g, &weights, &parts, out, t, act, accumulate);
                (y, cout * t)
            });
            assert_close(
                &got,
                &want,
                Tolerance::relative(2e-5),
                &format!("conv {cin}→{cout} k{k} T{t} {act:?}"),
            );
        }
    }
}

#[test]
fn conv_output_channel_ranges_land_at_row_offsets() {
    skip_without_gpu!();
    // Rows 4..9 of the weight into rows 2..7 of an 8-row output.
    let (cin, cout_all, k, t) = (6, 12, 5, 31);
    let x = random(cin * t, 1);
    let w = random(cout_all * cin * k, 2);
    let b = random(cout_all, 3);
    let full = conv_ref(
        &x,
        &w,
        &b,
        (cin, cout_all, k, t, false),
        Activation::None,
        None,
    );
    let got = run(|g| {
        let weights = ConvWeights {
            weight: g.constant(&w, "w"),
            bias: g.constant(&b, "b"),
            cout: cout_all,
            cin,
            k,
            dilation: 1,
            causal: false,
        };
        let xs = g.constant(&x, "x");
        let y = g.alloc(8 * t, "y");
        let part = [InputPart {
            x: xs,
            ci0: 0,
            channels: cin,
        }];
        let out = OutputRows {
            y,
            co0: 4,
            cout: 5,
            out_c0: 2,
        };
        conv(g, &weights, &part, out, t, Activation::None, false);
        (y, 8 * t)
    });
    let mut want = vec![0f64; 8 * t];
    want[2 * t..7 * t].copy_from_slice(&full[4 * t..9 * t]);
    assert_close(&got, &want, Tolerance::relative(2e-5), "conv rows");
}

#[test]
fn max_pool_matches_reference() {
    skip_without_gpu!();
    for (c, t_in, k) in [
        (1, 1, 1),
        (3, 2, 2),
        (2, 13, 3),
        (4, 600, 5),
        (5, 301, 6),
        (2, 1000, 2),
    ] {
        let x = random(c * t_in, t_in as u64);
        let t_out = t_in / k;
        let got = run(|g| {
            let xs = g.constant(&x, "x");
            let y = g.alloc(c * t_out, "y");
            max_pool(g, xs, y, c, t_in, k);
            (y, c * t_out)
        });
        let want: Vec<f64> = (0..c)
            .flat_map(|ch| {
                let x = &x;
                (0..t_out).map(move |t| {
                    (0..k)
                        .map(|j| x[ch * t_in + t * k + j] as f64)
                        .fold(f64::MIN, f64::max)
                })
            })
            .collect();
        assert_close(
            &got,
            &want,
            Tolerance::relative(0.0),
            &format!("max_pool {c}x{t_in} k{k}"),
        );
    }
}

#[test]
fn resample_matches_the_cpu_interpolation_matrix_with_padding_and_offsets() {
    skip_without_gpu!();
    for (c, t_in, t_up, t_out, c0) in [
        (1, 1, 4, 4, 0),
        (2, 4, 1, 1, 0),
        (3, 3, 5, 5, 1),
        (2, 13, 26, 27, 0),
        (4, 37, 75, 75, 2),
        (1, 600, 300, 300, 0),
        (2, 5, 5, 6, 0),
    ] {
        let x = random(c * t_in, (t_in * 31 + t_up) as u64);
        let m = linear_matrix(t_in, t_up);
        let rows = c0 + c;
        let got = run(|g| {
            let xs = g.constant(&x, "x");
            let table = g.constant_u32(&resample_table(t_in, t_up), "table");
            let y = g.alloc(rows * t_out, "y");
            resample(g, xs, table, y, c, t_in, t_up, t_out, c0);
            (y, rows * t_out)
        });
        let mut want = vec![0f64; rows * t_out];
        for ch in 0..c {
            for j in 0..t_up {
                want[(c0 + ch) * t_out + j] = (0..t_in)
                    .map(|i| x[ch * t_in + i] as f64 * m[i * t_up + j] as f64)
                    .sum();
            }
        }
        assert_close(
            &got,
            &want,
            Tolerance::relative(1e-6),
            &format!("resample {t_in}→{t_up} (+pad {t_out})"),
        );
    }
}

#[test]
fn layer_norm_matches_reference() {
    skip_without_gpu!();
    for (c, t) in [(1, 1), (7, 3), (64, 300), (130, 257)] {
        let x: Vec<f32> = random(c * t, c as u64)
            .iter()
            .map(|v| v * 3.0 + 0.5)
            .collect();
        let gamma = random(c, 5);
        let beta = random(c, 6);
        let got = run(|g| {
            let xs = g.constant(&x, "x");
            let (gs, bs) = (g.constant(&gamma, "g"), g.constant(&beta, "b"));
            let y = g.alloc(c * t, "y");
            layer_norm(g, xs, gs, bs, y, NormFrames::whole(c, t), 1e-5);
            (y, c * t)
        });
        let mut want = vec![0f64; c * t];
        for tt in 0..t {
            let col: Vec<f64> = (0..c).map(|ch| x[ch * t + tt] as f64).collect();
            let mean = col.iter().sum::<f64>() / c as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            for ch in 0..c {
                want[ch * t + tt] =
                    (col[ch] - mean) / (var + 1e-5).sqrt() * gamma[ch] as f64 + beta[ch] as f64;
            }
        }
        assert_close(
            &got,
            &want,
            Tolerance::relative(1e-5),
            &format!("layer_norm {c}x{t}"),
        );
    }
}

#[test]
fn attention_matches_reference_without_storing_scores() {
    skip_without_gpu!();
    // (heads, head size, frames, tokens per independent sequence), each
    // without and with a key mask (the last quarter of every sequence
    // padded, as a batch of training windows).
    let cases = [
        (1, 1, 1, 1),
        (2, 3, 17, 17),
        (4, 16, 100, 100),
        (1, 64, 257, 257),
        (2, 128, 33, 33),
        (1, 8, 3000, 3000),
        // A ViT batch: 3 images of 257 tokens, heads of 64.
        (2, 64, 771, 257),
        // Sequences shorter than a query tile, the last one cut short.
        (3, 5, 100, 30),
    ];
    for (masked, (heads, dh, t, block)) in [false, true]
        .into_iter()
        .flat_map(|m| cases.into_iter().map(move |c| (m, c)))
    {
        let padded = |j: usize| masked && j % block >= block - block / 4;
        let bias: Vec<f32> = (0..t).map(|j| if padded(j) { -1e9 } else { 0.0 }).collect();
        let w = heads * dh;
        let scale = 2.0; // sharper softmax than unit-variance inputs give
        let q: Vec<f32> = random(w * t, 1).iter().map(|v| v * scale).collect();
        let k: Vec<f32> = random(w * t, 2).iter().map(|v| v * scale).collect();
        let v = random(w * t, 3);
        let got = run(|g| {
            let (qs, ks, vs) = (
                g.constant(&q, "q"),
                g.constant(&k, "k"),
                g.constant(&v, "v"),
            );
            let o = g.alloc(w * t, "o");
            let mask: Vec<f32> = bias
                .iter()
                .map(|&b| if b == 0.0 { 1.0 } else { 0.0 })
                .collect();
            let layout = SeqLayout::side_by_side(t, block);
            let a = Attention {
                q: (qs, 0),
                k: (ks, 0),
                v: (vs, 0),
                input: layout,
                o,
                output: layout,
                key_mask: masked.then(|| g.constant(&mask, "mask")),
                heads,
                head_dim: dh,
                frames: t,
                block,
            };
            attention(g, &a);
            (o, w * t)
        });
        let mut want = vec![0f64; w * t];
        for h in 0..heads {
            for i in 0..t {
                let keys: Vec<usize> = ((i / block * block)..((i / block + 1) * block).min(t))
                    .filter(|&j| !padded(j))
                    .collect();
                let s: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        (0..dh)
                            .map(|d| {
                                q[(h * dh + d) * t + i] as f64 * k[(h * dh + d) * t + j] as f64
                            })
                            .sum::<f64>()
                            / (dh as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..dh {
                    want[(h * dh + d) * t + i] = keys
                        .iter()
                        .zip(&e)
                        .map(|(&j, ej)| ej / z * v[(h * dh + d) * t + j] as f64)
                        .sum();
                }
            }
        }
        assert_close(
            &got,
            &want,
            Tolerance::relative(1e-5),
            &format!("attention H{heads} dh{dh} T{t} block {block} masked {masked}"),
        );
    }
}

/// `out (+)= x · mask`: plain, accumulating, and with core's dropout mask
/// (the same elements dropped as on the CPU), across the 2-D grid's rows.
#[test]
fn add_into_matches_the_cpu_with_and_without_dropout() {
    skip_without_gpu!();
    for n in [1usize, 257, 1_048_579] {
        let x = random(n, 21);
        let before = random(n, 22);
        for (accumulate, p) in [(false, 0.0f32), (true, 0.0), (false, 0.5), (true, 0.3)] {
            let seed = dropout::stream_seed(9, 4);
            let got = run(|g| {
                let (sx, out) = (g.constant(&x, "x"), g.constant(&before, "out"));
                let mut params = AddParams::new(n, accumulate);
                if p > 0.0 {
                    params = params.dropout(seed, p);
                }
                add_into(g, sx, out, params);
                (out, n)
            });
            let mask = dropout::mask(seed, n, p);
            let want: Vec<f64> = (0..n)
                .map(|i| {
                    let v = x[i] as f64 * mask[i] as f64;
                    if accumulate {
                        v + before[i] as f64
                    } else {
                        v
                    }
                })
                .collect();
            assert_close(
                &got,
                &want,
                Tolerance::relative(1e-6),
                &format!("add n={n} acc={accumulate} p={p}"),
            );
        }
    }
}

/// The gate over `[B, 2H, T]` windows: each window's halves pair up.
#[test]
fn swiglu_gates_each_windows_halves() {
    skip_without_gpu!();
    for (windows, block) in [
        (1usize, 1usize),
        (1, 255),
        (3, 256),
        (2, 257),
        (1, 1_048_579),
    ] {
        let n = windows * block;
        let x: Vec<f32> = random(2 * n, 11).iter().map(|v| v * 6.0).collect();
        let got = run(|g| {
            let (sx, sy) = (g.constant(&x, "x"), g.alloc(n, "y"));
            swiglu(g, sx, sy, block, n);
            (sy, n)
        });
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let at = i / block * 2 * block + i % block;
                let (a, b) = (x[at] as f64, x[at + block] as f64);
                a / (1.0 + (-a).exp()) * b
            })
            .collect();
        assert_close(
            &got,
            &want,
            Tolerance::relative(1e-6),
            &format!("swiglu {windows} × {block}"),
        );
    }
}

#[test]
fn ensemble_head_adds_weighted_softmax_of_resampled_logits() {
    skip_without_gpu!();
    let (k, t_head, t, len, stride, t0) = (5, 7, 20, 17, 30, 4);
    let logits: Vec<f32> = random(k * t_head, 9).iter().map(|v| v * 4.0).collect();
    let before = random(k * stride, 10);
    let weight = 0.25f32;
    let got = run(|g| {
        let head = g.constant(&logits, "head");
        let table = g.constant_u32(&resample_table(t_head, t), "table");
        let out = g.constant(&before, "out");
        let params = EnsembleParams {
            classes: k as u32,
            t_head: t_head as u32,
            len: len as u32,
            out_stride: stride as u32,
            out_t0: t0 as u32,
            accumulate: 1,
            weight,
            _pad: 0,
        };
        ensemble_head(g, head, table, out, params, t);
        (out, k * stride)
    });
    let m = linear_matrix(t_head, t);
    let mut want: Vec<f64> = before.iter().map(|v| *v as f64).collect();
    for tt in 0..len {
        let z: Vec<f64> = (0..k)
            .map(|c| {
                (0..t_head)
                    .map(|i| logits[c * t_head + i] as f64 * m[i * t + tt] as f64)
                    .sum()
            })
            .collect();
        let mx = z.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = z.iter().map(|v| (v - mx).exp()).sum();
        for c in 0..k {
            want[c * stride + t0 + tt] += weight as f64 * (z[c] - mx).exp() / sum;
        }
    }
    assert_close(&got, &want, Tolerance::relative(1e-6), "ensemble");
}

#[test]
fn sum_of_squared_differences_is_a_two_pass_tree() {
    skip_without_gpu!();
    for n in [1usize, 255, 256, 257, 10_000, 1_000_003] {
        let a = random(n, n as u64);
        let b = random(n, n as u64 + 1);
        let got = run(|g| {
            let (sa, sb) = (g.constant(&a, "a"), g.constant(&b, "b"));
            let partials = g.alloc(PARTIALS, "partials");
            let out = g.alloc(1, "out");
            sum_sq_diff(g, sa, sb, partials, out, n);
            (out, 1)
        });
        let want: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum();
        assert_close(
            &got,
            &[want],
            Tolerance::relative(1e-5),
            &format!("sum (a-b)² n={n}"),
        );
    }
}

#[test]
fn copy_window_zero_pads_past_the_real_frames() {
    skip_without_gpu!();
    // Steps: a window (1) and a gather of every 7th frame (CLS tokens);
    // a window placed 9 frames into the destination (the gradient of
    // taking frames).
    for (step, len, dst_t0) in [(1usize, 20usize, 0usize), (7, 6, 0), (1, 20, 9)] {
        copy_window_case(step, len, dst_t0);
    }
}

fn copy_window_case(step: usize, len: usize, dst_t0: usize) {
    let (rows, stride, t0, dst_t) = (3, 50, 7, 32);
    let src = random(rows * stride, 4);
    let got = run(|g| {
        let s = g.constant(&src, "src");
        let d = g.constant(&vec![9.0; rows * dst_t], "dst");
        let params = WindowParams {
            rows: rows as u32,
            src_stride: stride as u32,
            src_t0: t0 as u32,
            len: len as u32,
            dst_t: dst_t as u32,
            src_step: step as u32,
            dst_t0: dst_t0 as u32,
            _pad: 0,
        };
        copy_window(g, s, d, params);
        (d, rows * dst_t)
    });
    let want: Vec<f64> = (0..rows)
        .flat_map(|r| {
            let src = &src;
            (0..dst_t).map(move |t| {
                if t >= dst_t0 && t - dst_t0 < len {
                    src[r * stride + t0 + (t - dst_t0) * step] as f64
                } else {
                    0.0
                }
            })
        })
        .collect();
    assert_close(
        &got,
        &want,
        Tolerance::relative(0.0),
        &format!("copy_window step {step}"),
    );
}
