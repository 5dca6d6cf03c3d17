//! The C2F-TCN forward (eval mode) as a recorded graph: BatchNorm folded
//! into each convolution at load, concatenations as channel offsets into the
//! next convolution's weight, the up-path padding inside the resampling, the
//! heads' ensemble written straight into the video's probability rows.

use candle_core::Tensor;
use syncseg_core::model::batch_norm::MaskedBatchNorm;
use syncseg_core::model::c2f_tcn::TemporalConv;
use syncseg_core::model::{C2fConfig, C2fTcn};

use crate::error::Result;
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::conv::{conv, Activation, ConvWeights, InputPart, OutputRows};
use crate::kernels::ensemble::{ensemble_head, EnsembleParams};
use crate::kernels::pool::{max_pool, resample, resample_table};

/// A convolution's weight `[C_out, C_in, k]` and bias on the device.
#[derive(Debug, Clone)]
pub struct DeviceConv {
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    cout: usize,
    cin: usize,
    k: usize,
}

impl DeviceConv {
    /// Uploads `weight` `[C_out, C_in, k]` (or `[C_out, C_in]`) and `bias`.
    pub fn upload(gpu: &Gpu, weight: &Tensor, bias: &Tensor, label: &str) -> Result<Self> {
        let dims = weight.dims().to_vec();
        let (cout, cin, k) = match dims.as_slice() {
            [o, i, k] => (*o, *i, *k),
            [o, i] => (*o, *i, 1),
            _ => {
                return Err(crate::Error::Unsupported(format!(
                    "{label}: weight of shape {dims:?} is not a convolution or linear weight"
                )))
            }
        };
        let w: Vec<f32> = weight
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let b: Vec<f32> = bias
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        Ok(DeviceConv {
            weight: gpu.upload(&w, label),
            bias: gpu.upload(&b, label),
            cout,
            cin,
            k,
        })
    }

    /// Uploads `conv` with eval-mode `bn` folded in: `w·s`, `b·s + shift`.
    fn folded(gpu: &Gpu, conv: &TemporalConv, bn: &MaskedBatchNorm, label: &str) -> Result<Self> {
        let (scale, shift) = bn.folded()?;
        let cout = conv.weight().dim(0)?;
        let w = conv.weight().broadcast_mul(&scale.reshape((cout, 1, 1))?)?;
        let b = ((conv.bias() * &scale)? + shift)?;
        Self::upload(gpu, &w, &b, label)
    }

    /// The weights as slots of `g`.
    pub fn bind(&self, g: &mut Graph) -> ConvWeights {
        ConvWeights {
            weight: g.import(&self.weight),
            bias: g.import(&self.bias),
            cout: self.cout,
            cin: self.cin,
            k: self.k,
        }
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }
}

/// The C2F-TCN's weights on the device.
pub struct C2fWeights {
    cfg: C2fConfig,
    /// `inc`, `down1..6`, `up`, `up0..4`: (first, second) convolution.
    blocks: Vec<(DeviceConv, DeviceConv)>,
    tpp: DeviceConv,
    /// `[y, y5, y4, y3, y2, y1]`.
    heads: Vec<DeviceConv>,
}

impl C2fWeights {
    /// Uploads `net`'s weights, BatchNorm folded.
    pub fn upload(gpu: &Gpu, net: &C2fTcn) -> Result<Self> {
        let blocks = net
            .blocks()
            .iter()
            .enumerate()
            .map(|(i, block)| {
                let [(c1, b1), (c2, b2)] = block.parts();
                Ok((
                    DeviceConv::folded(gpu, c1, b1, &format!("block{i}.conv1"))?,
                    DeviceConv::folded(gpu, c2, b2, &format!("block{i}.conv2"))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let t = net.tpp_conv();
        let tpp = DeviceConv::upload(gpu, t.weight(), t.bias(), "tpp")?;
        let heads = net
            .heads()
            .iter()
            .enumerate()
            .map(|(i, h)| DeviceConv::upload(gpu, h.weight(), h.bias(), &format!("head{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(C2fWeights {
            cfg: net.config().clone(),
            blocks,
            tpp,
            heads,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &C2fConfig {
        &self.cfg
    }
}

/// The recorded C2F-TCN for one padded window length.
pub struct C2fGraph {
    /// Per head with a non-zero weight: its ensemble dispatch and template
    /// parameters (the output frame and stride are set per window).
    pub ensemble: Vec<(ParamsId, EnsembleParams)>,
}

/// Records the forward over the window held in `input` (channel parts of
/// `[D, t]`), and the ensemble into `probs`. `t` ≥ MIN_FRAMES.
pub fn record(
    g: &mut Graph,
    w: &C2fWeights,
    input: &[InputPart],
    t: usize,
    probs: Slot,
) -> C2fGraph {
    let e = w.cfg.encoder_widths;
    let d = w.cfg.decoder_width;
    let k = w.cfg.num_classes;
    let lens: Vec<usize> = (0..7).map(|i| t >> i).collect();

    let double = |g: &mut Graph, block: usize, parts: &[InputPart], len: usize| -> Slot {
        let (c1, c2) = &w.blocks[block];
        let (cw1, cw2) = (c1.bind(g), c2.bind(g));
        let a = g.alloc(c1.cout * len, "act");
        let rows = |y: Slot, cout: usize| OutputRows {
            y,
            co0: 0,
            cout,
            out_c0: 0,
        };
        conv(
            g,
            &cw1,
            parts,
            rows(a, c1.cout),
            len,
            Activation::Relu,
            false,
        );
        let out = g.alloc(c2.cout * len, "act");
        let part = [InputPart {
            x: a,
            ci0: 0,
            channels: c1.cout,
        }];
        conv(
            g,
            &cw2,
            &part,
            rows(out, c2.cout),
            len,
            Activation::Relu,
            false,
        );
        out
    };
    let whole = |x: Slot, channels: usize| InputPart {
        x,
        ci0: 0,
        channels,
    };

    // Encoder.
    let mut skips = vec![double(g, 0, input, lens[0])];
    for i in 1..7 {
        let pooled = g.alloc(e[i - 1] * lens[i], "pool");
        max_pool(g, skips[i - 1], pooled, e[i - 1], lens[i - 1], 2);
        let x = double(g, i, &[whole(pooled, e[i - 1])], lens[i]);
        skips.push(x);
    }

    // TPP: four pooled maps → one shared 1×1 conv → resampled back to |x7|.
    let l6 = lens[6];
    let tpp_up = g.alloc(4 * l6, "tpp");
    let tpp = w.tpp.bind(g);
    for (j, pool) in [2usize, 3, 5, 6].into_iter().enumerate() {
        let lp = l6 / pool;
        let pooled = g.alloc(e[6] * lp, "tpp.pool");
        max_pool(g, skips[6], pooled, e[6], l6, pool);
        let c = g.alloc(lp, "tpp.conv");
        let out = OutputRows {
            y: c,
            co0: 0,
            cout: 1,
            out_c0: 0,
        };
        conv(
            g,
            &tpp,
            &[whole(pooled, e[6])],
            out,
            lp,
            Activation::None,
            false,
        );
        let table = g.constant_u32(&resample_table(lp, l6), "table");
        resample(g, c, table, tpp_up, 1, lp, l6, l6, j);
    }

    // Decoder: resample ×2 (zero-padded to the skip's length), concat as
    // channel offsets, double conv, head.
    let mut heads: Vec<Option<(Slot, usize)>> = vec![None; 6];
    let mut h = skips[6];
    for i in 0..6 {
        let level = 5 - i;
        let (l_in, l_out) = (lens[level + 1], lens[level]);
        let table = g.constant_u32(&resample_table(l_in, 2 * l_in), "table");
        let mut parts = vec![whole(skips[level], e[level])];
        if i == 0 {
            let ua = g.alloc(4 * l_out, "up");
            resample(g, tpp_up, table, ua, 4, l_in, 2 * l_in, l_out, 0);
            let ub = g.alloc(e[6] * l_out, "up");
            resample(g, h, table, ub, e[6], l_in, 2 * l_in, l_out, 0);
            parts.push(InputPart {
                x: ua,
                ci0: e[5],
                channels: 4,
            });
            parts.push(InputPart {
                x: ub,
                ci0: e[5] + 4,
                channels: e[6],
            });
        } else {
            let u = g.alloc(d * l_out, "up");
            resample(g, h, table, u, d, l_in, 2 * l_in, l_out, 0);
            parts.push(InputPart {
                x: u,
                ci0: e[level],
                channels: d,
            });
        }
        h = double(g, 7 + i, &parts, l_out);
        // Heads y1 … y5 take ReLU(h) in the reference; h already ends in a ReLU.
        let head = &w.heads[5 - i];
        let hw = head.bind(g);
        let logits = g.alloc(k * l_out, "logits");
        let out = OutputRows {
            y: logits,
            co0: 0,
            cout: k,
            out_c0: 0,
        };
        conv(g, &hw, &[whole(h, d)], out, l_out, Activation::None, false);
        heads[5 - i] = Some((logits, l_out));
    }

    // Ensemble: Σ wᵢ softmax(resample(headᵢ, t)) / Σ w, in the CPU's order.
    let total: f32 = w.cfg.ensemble_weights.iter().sum();
    let mut ensemble = Vec::new();
    for (j, head) in heads.iter().enumerate() {
        let weight = w.cfg.ensemble_weights[j];
        if weight == 0.0 {
            continue;
        }
        let (logits, l) = head.expect("every head recorded");
        let table = g.constant_u32(&resample_table(l, t), "table");
        let params = EnsembleParams {
            classes: k as u32,
            t_head: l as u32,
            len: t as u32,
            out_stride: t as u32,
            out_t0: 0,
            accumulate: u32::from(!ensemble.is_empty()),
            weight: weight / total,
            _pad: 0,
        };
        let id = ensemble_head(g, logits, table, probs, params, t);
        ensemble.push((id, params));
    }
    C2fGraph { ensemble }
}
