//! A network's inference weights on the device: every convolution of its
//! topology, BatchNorm folded in at upload.

use std::collections::HashMap;

use candle_core::Tensor;
use syncseg_core::model::candle_ops::CandleLayers;
use syncseg_core::model::ops::ConvSpec;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Graph;
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
        }
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }
}

/// Every convolution of a network by name, eval-mode BatchNorm folded in
/// (`w·scale`, `b·scale + shift`).
pub struct FoldedWeights {
    convs: HashMap<String, DeviceConv>,
}

impl FoldedWeights {
    /// Uploads the convolutions `specs` (a network's declaration) from
    /// `layers`.
    pub fn upload(gpu: &Gpu, specs: &[ConvSpec], layers: &CandleLayers) -> Result<Self> {
        let mut convs = HashMap::with_capacity(specs.len());
        for s in specs {
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
        Ok(FoldedWeights { convs })
    }

    /// The convolution `name`.
    pub fn get(&self, name: &str) -> syncseg_core::Result<&DeviceConv> {
        self.convs.get(name).ok_or_else(|| {
            syncseg_core::Error::invalid(format!("no convolution {name} was uploaded"))
        })
    }
}
