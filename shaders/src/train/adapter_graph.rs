//! One training step of the feature adapter θ(x) = x + Enc(x) recorded as a
//! graph: the forward keeping every activation, the feature-distillation
//! loss (masked MSE between θ(student features) and the teacher's features,
//! core's `FeatureDistill`), the backward, and Adam.
//!
//! A batch of `B` windows of `T` frames is laid out channel-major as
//! `[C, B·T]`, windows side by side: the linear layers are 1×1 convolutions
//! and LayerNorm acts per frame, so neither sees the windows' borders;
//! attention takes the windows as independent sequences of `T` tokens and
//! masks padded keys (−1e9, as the CPU adapter).

use std::sync::Arc;

use candle_core::Tensor;
use syncseg_core::model::adapter::sinusoidal_encoding;
use syncseg_core::model::{AdapterConfig, SegModel};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::attention::{attention, MAX_HEAD_DIM};
use crate::kernels::attention_grad::{attention_grad, AttentionTensors};
use crate::kernels::conv::{conv, Activation, ConvWeights, InputPart, OutputRows};
use crate::kernels::conv_grad::{conv_grad_input, conv_grad_weight, GradPart};
use crate::kernels::gelu::{gelu, gelu_grad};
use crate::kernels::layer_norm::layer_norm;
use crate::kernels::layer_norm_grad::layer_norm_grad;
use crate::kernels::mse_grad::{masked_mse_grad, MseParams, MseSlots};
use crate::kernels::reduce::{sum, PARTIALS};
use crate::kernels::row_sum::row_sum;

use super::params::{record_adam, DeviceParam};

/// LayerNorm epsilon (PyTorch's default, as the CPU adapter).
const LN_EPS: f32 = 1e-5;

/// A linear layer `[cout, cin]`: indices of its weight and bias.
#[derive(Debug, Clone, Copy)]
pub struct LinearParam {
    pub weight: usize,
    pub bias: usize,
    pub cout: usize,
    pub cin: usize,
}

/// A LayerNorm: indices of γ and β.
#[derive(Debug, Clone, Copy)]
pub struct NormParam {
    pub gamma: usize,
    pub beta: usize,
}

/// One pre-LayerNorm encoder layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerParams {
    pub norm1: NormParam,
    pub qkv: LinearParam,
    pub out: LinearParam,
    pub norm2: NormParam,
    pub fc1: LinearParam,
    pub fc2: LinearParam,
}

/// The adapter's trainable tensors on the device, one buffer each.
pub struct AdapterParams {
    pub cfg: AdapterConfig,
    pub input_dim: usize,
    pub params: Vec<DeviceParam>,
    pub in_proj: LinearParam,
    pub layers: Vec<LayerParams>,
    pub norm: NormParam,
    pub out_proj: LinearParam,
}

impl AdapterParams {
    /// Uploads `model`'s adapter.
    pub fn upload(gpu: &Gpu, model: &SegModel) -> Result<Self> {
        let Some((adapter, varmap)) = &model.adapter else {
            return Err(Error::Unsupported(
                "the model has no feature adapter to train".into(),
            ));
        };
        let cfg = adapter.config().clone();
        if cfg.width / cfg.heads > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "the adapter's heads are {} wide; the GPU attention kernels take at most {MAX_HEAD_DIM}",
                cfg.width / cfg.heads
            )));
        }
        let vars = adapter.named_vars(varmap)?;
        let mut params = Vec::new();
        let mut add = |name: &str| -> Result<(usize, Vec<usize>)> {
            let (full, var) = vars
                .iter()
                .find(|(n, _)| n == name || n.ends_with(&format!(".{name}")))
                .ok_or_else(|| Error::Unsupported(format!("adapter: no variable {name}")))?;
            let t: &Tensor = var.as_tensor();
            params.push(DeviceParam::upload(gpu, &[(full.clone(), t)], name)?);
            Ok((params.len() - 1, t.dims().to_vec()))
        };
        let mut linear = |name: &str| -> Result<LinearParam> {
            let (weight, dims) = add(&format!("{name}.weight"))?;
            let (bias, _) = add(&format!("{name}.bias"))?;
            Ok(LinearParam {
                weight,
                bias,
                cout: dims[0],
                cin: dims[1],
            })
        };
        let in_proj = linear("in_proj")?;
        let mut layer_linears = Vec::new();
        for i in 0..cfg.layers {
            let p = format!("layers.{i}");
            layer_linears.push([
                linear(&format!("{p}.attn.qkv"))?,
                linear(&format!("{p}.attn.out"))?,
                linear(&format!("{p}.ffn.fc1"))?,
                linear(&format!("{p}.ffn.fc2"))?,
            ]);
        }
        let out_proj = linear("out_proj")?;
        let mut norm = |name: &str| -> Result<NormParam> {
            Ok(NormParam {
                gamma: add(&format!("{name}.weight"))?.0,
                beta: add(&format!("{name}.bias"))?.0,
            })
        };
        let mut layers = Vec::new();
        for (i, [qkv, out, fc1, fc2]) in layer_linears.into_iter().enumerate() {
            layers.push(LayerParams {
                norm1: norm(&format!("layers.{i}.norm1"))?,
                qkv,
                out,
                norm2: norm(&format!("layers.{i}.norm2"))?,
                fc1,
                fc2,
            });
        }
        let norm = norm("norm")?;
        Ok(AdapterParams {
            cfg,
            input_dim: adapter.input_dim(),
            params,
            in_proj,
            layers,
            norm,
            out_proj,
        })
    }
}

/// The recorded step and the buffers the host writes before each replay.
pub struct AdapterGraph {
    pub graph: Graph,
    pub batch: usize,
    pub frames: usize,
    /// Student features and the teacher's, `[D, B·T]`.
    pub x: Slot,
    pub target: Slot,
    /// Real frames `[B·T]` and the attention's key bias (0 or −1e9).
    pub mask: Slot,
    pub key_bias: Slot,
    pub loss_params: ParamsId,
    pub loss: Slot,
    pub adam: Vec<(ParamsId, usize)>,
    pub activation_bytes: u64,
    pub largest_buffer_bytes: u64,
}

/// What one layer's backward needs from its forward.
struct LayerActs {
    h_in: Slot,
    a1: Slot,
    q: Slot,
    k: Slot,
    v: Slot,
    ctx: Slot,
    h_mid: Slot,
    a2: Slot,
    z: Slot,
    f: Slot,
}

struct Recorder<'a> {
    g: Graph,
    p: &'a AdapterParams,
    n: usize,
}

impl Recorder<'_> {
    fn weights(&mut self, l: &LinearParam) -> ConvWeights {
        ConvWeights {
            weight: self.g.import(&self.p.params[l.weight].theta),
            bias: self.g.import(&self.p.params[l.bias].theta),
            cout: l.cout,
            cin: l.cin,
            k: 1,
            dilation: 1,
        }
    }

    fn theta(&mut self, i: usize) -> Slot {
        self.g.import(&self.p.params[i].theta)
    }

    fn grad(&mut self, i: usize) -> Slot {
        self.g.import(&self.p.params[i].grad)
    }

    /// `y (+)= x Wᵀ + b` over the `n` frames, output rows `co0 .. co0 + rows`
    /// of the layer.
    fn linear(&mut self, l: &LinearParam, x: Slot, y: Slot, co0: usize, rows: usize, acc: bool) {
        let w = self.weights(l);
        let parts = [InputPart {
            x,
            ci0: 0,
            channels: l.cin,
        }];
        let out = OutputRows {
            y,
            co0,
            cout: rows,
            out_c0: 0,
        };
        conv(&mut self.g, &w, &parts, out, self.n, Activation::None, acc);
    }

    /// Weight and bias gradients from `dy [cout, n]` and the layer's input
    /// `x`, and `dx = dy W` into `dx` when asked.
    fn linear_backward(&mut self, l: &LinearParam, x: Slot, dy: Slot, dx: Option<Slot>) {
        let w = self.weights(l);
        let (dw, db) = (self.grad(l.weight), self.grad(l.bias));
        let part = |slot| GradPart {
            slot,
            ci0: 0,
            channels: l.cin,
        };
        conv_grad_weight(&mut self.g, &w, part(x), dy, dw, self.n, 1, false);
        row_sum(&mut self.g, dy, 0, l.cout, self.n, db, 0, 1.0, false);
        if let Some(dx) = dx {
            conv_grad_input(&mut self.g, &w, dy, part(dx), self.n, 1, false);
        }
    }

    fn norm(&mut self, nrm: &NormParam, x: Slot, y: Slot) {
        let (gamma, beta) = (self.theta(nrm.gamma), self.theta(nrm.beta));
        let w = self.p.cfg.width;
        layer_norm(&mut self.g, x, gamma, beta, y, w, self.n, LN_EPS);
    }

    /// `dx += LayerNorm'(x)ᵀ dy`, with γ's and β's gradients; `gx` is scratch.
    fn norm_backward(&mut self, nrm: &NormParam, x: Slot, dy: Slot, dx: Slot, gx: Slot, acc: bool) {
        let w = self.p.cfg.width;
        let gamma = self.theta(nrm.gamma);
        let (dgamma, dbeta) = (self.grad(nrm.gamma), self.grad(nrm.beta));
        layer_norm_grad(&mut self.g, x, gamma, dy, dx, gx, w, self.n, LN_EPS, acc);
        row_sum(&mut self.g, gx, 0, w, self.n, dgamma, 0, 1.0, false);
        row_sum(&mut self.g, dy, 0, w, self.n, dbeta, 0, 1.0, false);
    }
}

/// Records the step for `batch` windows of `frames` frames.
pub fn record(
    gpu: Arc<Gpu>,
    p: &AdapterParams,
    batch: usize,
    frames: usize,
) -> Result<AdapterGraph> {
    let (d, w, ffn, heads) = (p.input_dim, p.cfg.width, p.cfg.ffn, p.cfg.heads);
    let n = batch * frames;
    let mut r = Recorder {
        g: Graph::new(gpu),
        p,
        n,
    };

    // Inputs, and the positional encoding of each window's frames.
    let x = r.g.alloc(d * n, "x");
    let target = r.g.alloc(d * n, "target");
    let mask = r.g.alloc(n, "mask");
    let key_bias = r.g.alloc(n, "key_bias");
    let pe: Vec<f32> = sinusoidal_encoding(
        frames,
        w,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?
    .t()?
    .contiguous()?
    .flatten_all()?
    .to_vec1()?;
    let pe: Vec<f32> = (0..w)
        .flat_map(|c| {
            let row = &pe[c * frames..(c + 1) * frames];
            (0..batch).flat_map(move |_| row.iter().copied())
        })
        .collect();
    let pe = r.g.constant(&pe, "positions");

    // Forward.
    let h0 = r.g.alloc(w * n, "h0");
    r.g.copy(pe, h0, w * n);
    r.linear(&p.in_proj, x, h0, 0, w, true);
    let mut h = h0;
    let mut acts = Vec::with_capacity(p.layers.len());
    for layer in &p.layers {
        let a1 = r.g.alloc(w * n, "a1");
        r.norm(&layer.norm1, h, a1);
        let (q, k, v) = (
            r.g.alloc(w * n, "q"),
            r.g.alloc(w * n, "k"),
            r.g.alloc(w * n, "v"),
        );
        for (i, dst) in [q, k, v].into_iter().enumerate() {
            r.linear(&layer.qkv, a1, dst, i * w, w, false);
        }
        let ctx = r.g.alloc(w * n, "ctx");
        attention(
            &mut r.g,
            q,
            k,
            v,
            Some(key_bias),
            ctx,
            heads,
            w / heads,
            n,
            frames,
        );
        let h_mid = r.g.alloc(w * n, "h_mid");
        r.g.copy(h, h_mid, w * n);
        r.linear(&layer.out, ctx, h_mid, 0, w, true);
        let a2 = r.g.alloc(w * n, "a2");
        r.norm(&layer.norm2, h_mid, a2);
        let z = r.g.alloc(ffn * n, "z");
        r.linear(&layer.fc1, a2, z, 0, ffn, false);
        let f = r.g.alloc(ffn * n, "f");
        gelu(&mut r.g, z, f, ffn * n);
        let h_out = r.g.alloc(w * n, "h_out");
        r.g.copy(h_mid, h_out, w * n);
        r.linear(&layer.fc2, f, h_out, 0, w, true);
        acts.push(LayerActs {
            h_in: h,
            a1,
            q,
            k,
            v,
            ctx,
            h_mid,
            a2,
            z,
            f,
        });
        h = h_out;
    }
    let a = r.g.alloc(w * n, "a");
    r.norm(&p.norm, h, a);
    let y = r.g.alloc(d * n, "y");
    r.g.copy(x, y, d * n);
    r.linear(&p.out_proj, a, y, 0, d, true);

    // Loss: Σ m (y − target)² / (n_real · D), and ∂L/∂y.
    let dy = r.g.alloc(d * n, "d.y");
    let frame_loss = r.g.alloc(n, "frame_loss");
    let slots = MseSlots {
        student: y,
        teacher: target,
        mask,
        ds: dy,
        frame_loss,
        batch: 1,
    };
    let loss_params = masked_mse_grad(&mut r.g, &slots, &MseParams::new(d, n, &[], false));
    let partials = r.g.alloc(PARTIALS, "partials");
    let loss = r.g.alloc(1, "loss");
    sum(&mut r.g, frame_loss, partials, loss, n);

    // Backward. One buffer carries ∂L/∂h down the residual stream; the
    // branches' gradients are scratch reused by every layer.
    let dh = r.g.alloc(w * n, "d.h");
    let da = r.g.alloc(w * n, "d.a");
    let gx = r.g.alloc(w * n, "d.xhat");
    let df = r.g.alloc(ffn * n, "d.f");
    let dz = r.g.alloc(ffn * n, "d.z");
    let dctx = r.g.alloc(w * n, "d.ctx");
    let (dq, dk, dv) = (
        r.g.alloc(w * n, "d.q"),
        r.g.alloc(w * n, "d.k"),
        r.g.alloc(w * n, "d.v"),
    );
    let dqkv = r.g.alloc(3 * w * n, "d.qkv");
    let stats = r.g.alloc(2 * heads * n, "attention.stats");
    r.linear_backward(&p.out_proj, a, dy, Some(da));
    r.norm_backward(&p.norm, h, da, dh, gx, false);
    for (layer, act) in p.layers.iter().zip(&acts).rev() {
        // h_out = h_mid + fc2(gelu(fc1(LN₂(h_mid)))).
        r.linear_backward(&layer.fc2, act.f, dh, Some(df));
        gelu_grad(&mut r.g, act.z, df, dz, ffn * n, false);
        r.linear_backward(&layer.fc1, act.a2, dz, Some(da));
        r.norm_backward(&layer.norm2, act.h_mid, da, dh, gx, true);
        // h_mid = h_in + out(attention(qkv(LN₁(h_in)))).
        r.linear_backward(&layer.out, act.ctx, dh, Some(dctx));
        let tensors = AttentionTensors {
            q: act.q,
            k: act.k,
            v: act.v,
            o: act.ctx,
            key_bias,
            heads,
            head_dim: w / heads,
            frames: n,
            block: frames,
        };
        attention_grad(&mut r.g, &tensors, dctx, stats, dq, dk, dv, false);
        for (i, part) in [dq, dk, dv].into_iter().enumerate() {
            r.g.copy_range(part, 0, dqkv, i * w * n, w * n);
        }
        r.linear_backward(&layer.qkv, act.a1, dqkv, Some(da));
        r.norm_backward(&layer.norm1, act.h_in, da, dh, gx, true);
    }
    // The input features are not trained.
    r.linear_backward(&p.in_proj, x, dh, None);

    // Adam over every tensor.
    let adam = record_adam(&mut r.g, &p.params, &[]);

    Ok(AdapterGraph {
        activation_bytes: r.g.owned_bytes(),
        largest_buffer_bytes: r.g.largest_owned_bytes(),
        graph: r.g,
        batch,
        frames,
        x,
        target,
        mask,
        key_bias,
        loss_params,
        loss,
        adam,
    })
}
