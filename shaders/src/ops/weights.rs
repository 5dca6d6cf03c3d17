//! A network's inference weights on the device: every convolution and
//! linear layer of its topology (BatchNorm folded in at upload), and every
//! LayerNorm.

use std::collections::HashMap;

use candle_core::Tensor;
use syncseg_core::model::candle_ops::CandleLayers;
use syncseg_core::model::declare::{Declare, Layer};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, Slot};
use crate::kernels::conv::ConvWeights;

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
                return Err(Error::Unsupported(format!(
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

    /// The weights as slots of `g`.
    pub fn bind(&self, g: &mut Graph) -> ConvWeights {
        ConvWeights {
            weight: g.import(&self.weight),
            bias: g.import(&self.bias),
            cout: self.cout,
            cin: self.cin,
            k: self.k,
            dilation: 1,
            causal: false,
        }
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }
}

/// A LayerNorm's scale and shift on the device.
pub struct DeviceNorm {
    pub gamma: wgpu::Buffer,
    pub beta: wgpu::Buffer,
}

impl DeviceNorm {
    /// Uploads `gamma` and `beta` (`[C]` each).
    pub fn upload(gpu: &Gpu, gamma: &Tensor, beta: &Tensor, label: &str) -> Result<Self> {
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
    pub fn bind(&self, g: &mut Graph) -> (Slot, Slot) {
        (g.import(&self.gamma), g.import(&self.beta))
    }
}

/// Every convolution and linear layer of a network by name, eval-mode
/// BatchNorm folded in (`w·scale`, `b·scale + shift`), and its LayerNorms.
pub struct FoldedWeights {
    convs: HashMap<String, DeviceConv>,
    norms: HashMap<String, DeviceNorm>,
}

impl FoldedWeights {
    /// Uploads the layers `declared` (a network's declaration) from
    /// `layers`.
    pub fn upload(gpu: &Gpu, declared: &Declare, layers: &CandleLayers) -> Result<Self> {
        let mut convs = HashMap::new();
        let mut norms = HashMap::new();
        for layer in declared.layers() {
            match layer {
                Layer::Conv(s) => {
                    let conv = layers.conv(&s.name)?;
                    let device = match &s.norm {
                        Some(norm) => {
                            let (scale, shift) = layers.norm(norm)?.folded()?;
                            let w = conv
                                .weight()
                                .broadcast_mul(&scale.reshape((s.cout, 1, 1))?)?;
                            let b = ((conv.bias() * &scale)? + shift)?;
                            DeviceConv::upload(gpu, &w, &b, &s.name)?
                        }
                        None => DeviceConv::upload(gpu, conv.weight(), conv.bias(), &s.name)?,
                    };
                    convs.insert(s.name.clone(), device);
                }
                Layer::Linear(s) => {
                    let l = layers.linear(&s.name)?;
                    let device = DeviceConv::upload(gpu, &l.weight, &l.bias, &s.name)?;
                    convs.insert(s.name.clone(), device);
                }
                Layer::LayerNorm(s) => {
                    let n = layers.layer_norm(&s.name)?;
                    let device = DeviceNorm::upload(gpu, &n.weight, &n.bias, &s.name)?;
                    norms.insert(s.name.clone(), device);
                }
            }
        }
        Ok(FoldedWeights { convs, norms })
    }

    /// The LayerNorm `name`.
    pub fn norm(&self, name: &str) -> syncseg_core::Result<&DeviceNorm> {
        self.norms.get(name).ok_or_else(|| {
            syncseg_core::Error::invalid(format!("no layer norm {name} was uploaded"))
        })
    }

    /// The convolution `name`.
    pub fn get(&self, name: &str) -> syncseg_core::Result<&DeviceConv> {
        self.convs.get(name).ok_or_else(|| {
            syncseg_core::Error::invalid(format!("no convolution {name} was uploaded"))
        })
    }
}
