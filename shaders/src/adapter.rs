//! The feature adapter θ(x) = x + Enc(x) as a recorded graph over
//! channel-major `[W, T]` activations: every linear layer is a 1×1
//! convolution, attention streams keys through the online-softmax kernel,
//! the residual adds are the convolutions' `accumulate`.

use std::collections::HashMap;

use candle_core::Tensor;
use syncseg_core::model::adapter::sinusoidal_encoding;
use syncseg_core::model::Adapter;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, Slot};
use crate::kernels::attention::{attention, MAX_HEAD_DIM};
use crate::kernels::conv::{conv, Activation, InputPart, OutputRows};
use crate::kernels::layer_norm::layer_norm;
use crate::ops::weights::DeviceConv;

/// LayerNorm epsilon (PyTorch's default, as the CPU adapter).
const LN_EPS: f32 = 1e-5;

/// A LayerNorm's scale and shift on the device.
pub(crate) struct DeviceNorm {
    pub(crate) gamma: wgpu::Buffer,
    pub(crate) beta: wgpu::Buffer,
}

impl DeviceNorm {
    /// Uploads `gamma` and `beta` (`[C]` each).
    pub(crate) fn upload(gpu: &Gpu, gamma: &Tensor, beta: &Tensor, label: &str) -> Result<Self> {
        let v = |t: &Tensor| -> Result<wgpu::Buffer> {
            let t: Vec<f32> = t
                .flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1()?;
            Ok(gpu.upload(&t, label))
        };
        Ok(DeviceNorm {
            gamma: v(gamma)?,
            beta: v(beta)?,
        })
    }

    /// The scale and shift as slots of `g`.
    pub(crate) fn bind(&self, g: &mut Graph) -> (Slot, Slot) {
        (g.import(&self.gamma), g.import(&self.beta))
    }
}

struct DeviceLayer {
    norm1: DeviceNorm,
    qkv: DeviceConv,
    attn_out: DeviceConv,
    norm2: DeviceNorm,
    fc1: DeviceConv,
    fc2: DeviceConv,
}

/// The adapter's weights on the device.
pub struct AdapterWeights {
    width: usize,
    heads: usize,
    ffn: usize,
    input_dim: usize,
    in_proj: DeviceConv,
    layers: Vec<DeviceLayer>,
    norm: DeviceNorm,
    out_proj: DeviceConv,
}

impl AdapterWeights {
    /// Uploads the adapter's variables from `varmap` (the one it was built on).
    pub fn upload(gpu: &Gpu, adapter: &Adapter, varmap: &candle_nn::VarMap) -> Result<Self> {
        let cfg = adapter.config();
        let head_dim = cfg.width / cfg.heads;
        if head_dim > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "the adapter's heads are {head_dim} wide; the GPU attention kernel takes at most {MAX_HEAD_DIM}"
            )));
        }
        let vars: HashMap<String, Tensor> = adapter
            .named_vars(varmap)?
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let get = |name: &str| -> Result<&Tensor> {
            vars.iter()
                .find(|(n, _)| *n == name || n.ends_with(&format!(".{name}")))
                .map(|(_, t)| t)
                .ok_or_else(|| Error::Unsupported(format!("adapter: no variable {name}")))
        };
        let linear = |name: &str| -> Result<DeviceConv> {
            DeviceConv::upload(
                gpu,
                get(&format!("{name}.weight"))?,
                get(&format!("{name}.bias"))?,
                name,
            )
        };
        let norm = |name: &str| -> Result<DeviceNorm> {
            DeviceNorm::upload(
                gpu,
                get(&format!("{name}.weight"))?,
                get(&format!("{name}.bias"))?,
                name,
            )
        };
        let layers = (0..cfg.layers)
            .map(|i| {
                let p = format!("layers.{i}");
                Ok(DeviceLayer {
                    norm1: norm(&format!("{p}.norm1"))?,
                    qkv: linear(&format!("{p}.attn.qkv"))?,
                    attn_out: linear(&format!("{p}.attn.out"))?,
                    norm2: norm(&format!("{p}.norm2"))?,
                    fc1: linear(&format!("{p}.ffn.fc1"))?,
                    fc2: linear(&format!("{p}.ffn.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdapterWeights {
            width: cfg.width,
            heads: cfg.heads,
            ffn: cfg.ffn,
            input_dim: adapter.input_dim(),
            in_proj: linear("in_proj")?,
            layers,
            norm: norm("norm")?,
            out_proj: linear("out_proj")?,
        })
    }

    /// Fails unless a `t`-frame window fits the device's bindings.
    pub fn check_fits(&self, gpu: &Gpu, t: usize) -> Result<()> {
        gpu.check_fits(self.width * t, "the adapter's activations for this window")?;
        gpu.check_fits(
            self.ffn * t,
            "the adapter's feed-forward activations for this window",
        )
    }
}

/// Records θ(x) for the window in `input` (channel parts of `[D, t]`) into
/// `output` (the same partition): `output = input + Enc(input)`.
pub fn record(
    g: &mut Graph,
    w: &AdapterWeights,
    input: &[InputPart],
    output: &[Slot],
    t: usize,
) -> Result<()> {
    let width = w.width;
    debug_assert_eq!(input.iter().map(|p| p.channels).sum::<usize>(), w.input_dim);
    let pe = sinusoidal_encoding(t, width, candle_core::DType::F32, &candle_core::Device::Cpu)?
        .t()?
        .contiguous()?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let pe = g.constant(&pe, "positions");
    let h = g.alloc(width * t, "adapter.h");
    g.copy(pe, h, width * t);
    let rows = |y: Slot, co0: usize, cout: usize| OutputRows {
        y,
        co0,
        cout,
        out_c0: 0,
    };
    let whole = |x: Slot, channels: usize| {
        [InputPart {
            x,
            ci0: 0,
            channels,
        }]
    };
    let in_proj = w.in_proj.bind(g);
    conv(
        g,
        &in_proj,
        input,
        rows(h, 0, width),
        t,
        Activation::None,
        true,
    );

    let a = g.alloc(width * t, "adapter.ln");
    let (q, k, v) = (
        g.alloc(width * t, "q"),
        g.alloc(width * t, "k"),
        g.alloc(width * t, "v"),
    );
    let ctx = g.alloc(width * t, "ctx");
    let f = g.alloc(w.ffn * t, "ffn");
    for layer in &w.layers {
        let (g1, b1) = layer.norm1.bind(g);
        layer_norm(g, h, g1, b1, a, width, t, LN_EPS);
        let qkv = layer.qkv.bind(g);
        for (i, dst) in [q, k, v].into_iter().enumerate() {
            conv(
                g,
                &qkv,
                &whole(a, width),
                rows(dst, i * width, width),
                t,
                Activation::None,
                false,
            );
        }
        attention(g, q, k, v, None, ctx, w.heads, width / w.heads, t, t);
        let out = layer.attn_out.bind(g);
        conv(
            g,
            &out,
            &whole(ctx, width),
            rows(h, 0, width),
            t,
            Activation::None,
            true,
        );
        let (g2, b2) = layer.norm2.bind(g);
        layer_norm(g, h, g2, b2, a, width, t, LN_EPS);
        let fc1 = layer.fc1.bind(g);
        conv(
            g,
            &fc1,
            &whole(a, width),
            rows(f, 0, w.ffn),
            t,
            Activation::Gelu,
            false,
        );
        let fc2 = layer.fc2.bind(g);
        conv(
            g,
            &fc2,
            &whole(f, w.ffn),
            rows(h, 0, width),
            t,
            Activation::None,
            true,
        );
    }
    let (gn, bn) = w.norm.bind(g);
    layer_norm(g, h, gn, bn, a, width, t, LN_EPS);
    let out_proj = w.out_proj.bind(g);
    for (part, &dst) in input.iter().zip(output) {
        g.copy(part.x, dst, part.channels * t);
        conv(
            g,
            &out_proj,
            &whole(a, width),
            rows(dst, part.ci0, part.channels),
            t,
            Activation::None,
            true,
        );
    }
    Ok(())
}
