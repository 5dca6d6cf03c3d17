//! Trainable state on the device: one buffer per parameter tensor (with its
//! gradient and Adam's two moments), and the C2F-TCN's BatchNorm running
//! statistics. Each buffer remembers which variables of the model's
//! `VarMap` it holds, so the model on the host is brought up to date by
//! name and saves exactly as the CPU path's does. The functions over
//! `&[DeviceParam]` serve every trained module (the C2F-TCN, the adapter).

use std::collections::HashMap;

use candle_core::{Tensor, TensorId, Var};
use syncseg_core::model::batch_norm::MaskedBatchNorm;
use syncseg_core::model::c2f_tcn::TemporalConv;
use syncseg_core::model::{C2fConfig, SegModel};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId};
use crate::kernels::adam::{adam_step, AdamParams, AdamSlots};

/// One optimised buffer: parameters θ, gradient, Adam's m and v.
pub struct DeviceParam {
    /// The variables packed in θ, in order.
    pub vars: Vec<PackedVar>,
    pub theta: wgpu::Buffer,
    pub grad: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    pub n: usize,
}

impl DeviceParam {
    /// Uploads `tensors` (named `names`) packed into one buffer, with zero
    /// gradient and moments.
    pub fn upload(gpu: &Gpu, tensors: &[(String, &Tensor)], label: &str) -> Result<Self> {
        let mut data = Vec::new();
        let mut vars = Vec::new();
        for (name, t) in tensors {
            let values = flat(t)?;
            vars.push(PackedVar::new(name.clone(), data.len(), t));
            data.extend(values);
        }
        let n = data.len();
        Ok(DeviceParam {
            vars,
            theta: gpu.upload(&data, label),
            grad: gpu.zeros(n, label),
            m: gpu.zeros(n, label),
            v: gpu.zeros(n, label),
            n,
        })
    }
}

/// Records an Adam step of every buffer in `params` but those in `frozen`;
/// returns each step's parameter block (rewritten per step: Adam's bias
/// correction depends on the step number) with the buffer's index.
pub fn record_adam(
    g: &mut Graph,
    params: &[DeviceParam],
    frozen: &[usize],
) -> Vec<(ParamsId, usize)> {
    let mut steps = Vec::with_capacity(params.len());
    for (i, param) in params.iter().enumerate() {
        if frozen.contains(&i) {
            continue;
        }
        let slots = AdamSlots {
            theta: g.import(&param.theta),
            grad: g.import(&param.grad),
            m: g.import(&param.m),
            v: g.import(&param.v),
            n: param.n,
        };
        let placeholder = AdamParams::new(&Default::default(), param.n, 1);
        steps.push((adam_step(g, &slots, &placeholder), i));
    }
    steps
}

/// A model variable inside a [`DeviceParam`].
#[derive(Debug, Clone)]
pub struct PackedVar {
    pub name: String,
    /// First float in the buffer.
    pub offset: usize,
    /// The variable's shape in the model.
    pub shape: Vec<usize>,
}

impl PackedVar {
    fn new(name: String, offset: usize, t: &Tensor) -> Self {
        PackedVar {
            name,
            offset,
            shape: t.dims().to_vec(),
        }
    }

    /// Floats it holds.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Its floats within the buffer's `data`.
    fn of<'d>(&self, data: &'d [f32]) -> &'d [f32] {
        &data[self.offset..self.offset + self.elements()]
    }
}

/// A convolution: indices of its weight and bias in [`C2fParams::params`].
#[derive(Debug, Clone, Copy)]
pub struct ConvParam {
    pub weight: usize,
    pub bias: usize,
    pub cout: usize,
    pub cin: usize,
    pub k: usize,
}

/// A BatchNorm layer: `[γ; β]` as one optimised buffer, and the running
/// statistics `[mean; var]`.
pub struct BnParam {
    pub gamma_beta: usize,
    pub running: wgpu::Buffer,
    /// Names of the running mean and variance in the model's `VarMap`.
    pub running_names: (String, String),
    pub channels: usize,
}

/// Every trainable tensor of a C2F-TCN, in the executor's order.
pub struct C2fParams {
    pub cfg: C2fConfig,
    pub params: Vec<DeviceParam>,
    /// `inc`, `down1..6`, `up`, `up0..4`: (conv, bn) × 2.
    pub blocks: Vec<[(ConvParam, BnParam); 2]>,
    pub tpp: ConvParam,
    /// `[y, y5, y4, y3, y2, y1]`.
    pub heads: Vec<ConvParam>,
}

/// Names of the model's variables by tensor identity.
struct Names {
    by_id: HashMap<TensorId, String>,
}

impl Names {
    fn of(model: &SegModel) -> Self {
        let data = model
            .varmap
            .data()
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Names {
            by_id: data
                .iter()
                .map(|(name, var)| (var.as_tensor().id(), name.clone()))
                .collect(),
        }
    }

    fn get(&self, t: &Tensor) -> Result<String> {
        self.by_id.get(&t.id()).cloned().ok_or_else(|| {
            Error::Unsupported("a model tensor is not a variable of its VarMap".into())
        })
    }
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

impl C2fParams {
    /// Uploads `model`'s C2F-TCN (the adapter, if any, is not handled here).
    pub fn upload(gpu: &Gpu, model: &SegModel) -> Result<Self> {
        let names = Names::of(model);
        let net = &model.net;
        let mut params = Vec::new();
        let mut add = |tensors: &[&Tensor], label: &str| -> Result<usize> {
            let named = tensors
                .iter()
                .map(|t| Ok((names.get(t)?, *t)))
                .collect::<Result<Vec<_>>>()?;
            params.push(DeviceParam::upload(gpu, &named, label)?);
            Ok(params.len() - 1)
        };
        let mut conv = |c: &TemporalConv, label: &str| -> Result<ConvParam> {
            let (cout, cin, k) = c.weight().dims3()?;
            Ok(ConvParam {
                weight: add(&[c.weight()], label)?,
                bias: add(&[c.bias()], label)?,
                cout,
                cin,
                k,
            })
        };
        let mut blocks_conv = Vec::new();
        for (i, block) in net.blocks().iter().enumerate() {
            let [(c1, _), (c2, _)] = block.parts();
            blocks_conv.push([
                conv(c1, &format!("block{i}.conv1"))?,
                conv(c2, &format!("block{i}.conv2"))?,
            ]);
        }
        let tpp = conv(net.tpp_conv(), "tpp")?;
        let heads = net
            .heads()
            .iter()
            .enumerate()
            .map(|(i, h)| conv(h, &format!("head{i}")))
            .collect::<Result<Vec<_>>>()?;
        let mut blocks = Vec::new();
        for (i, (block, convs)) in net.blocks().iter().zip(blocks_conv).enumerate() {
            let [(_, b1), (_, b2)] = block.parts();
            let bn = |bn: &MaskedBatchNorm, params: &mut Vec<DeviceParam>| -> Result<BnParam> {
                let label = format!("block{i}.bn");
                let gamma_beta = {
                    let (g, b) = (bn.weight(), bn.bias());
                    let named = [(names.get(g)?, g), (names.get(b)?, b)];
                    params.push(DeviceParam::upload(gpu, &named, &label)?);
                    params.len() - 1
                };
                let (rm, rv) = bn.running();
                let mut running = flat(rm.as_tensor())?;
                running.extend(flat(rv.as_tensor())?);
                Ok(BnParam {
                    gamma_beta,
                    channels: running.len() / 2,
                    running: gpu.upload(&running, &label),
                    running_names: (names.get(rm.as_tensor())?, names.get(rv.as_tensor())?),
                })
            };
            let [c1, c2] = convs;
            blocks.push([(c1, bn(b1, &mut params)?), (c2, bn(b2, &mut params)?)]);
        }
        Ok(C2fParams {
            cfg: net.config().clone(),
            params,
            blocks,
            tpp,
            heads,
        })
    }

    /// Rewrites every parameter and running statistic from `model`
    /// (after a resume loaded other weights into it).
    pub fn write_from(&self, gpu: &Gpu, model: &SegModel) -> Result<()> {
        let vars = vars_of(model);
        write_values(gpu, &self.params, &vars)?;
        let var = |name: &str| {
            vars.get(name)
                .ok_or_else(|| Error::Unsupported(format!("the model has no variable {name}")))
        };
        for bn in self.batch_norms() {
            let mut data = flat(var(&bn.running_names.0)?.as_tensor())?;
            data.extend(flat(var(&bn.running_names.1)?.as_tensor())?);
            gpu.queue
                .write_buffer(&bn.running, 0, bytemuck::cast_slice(&data));
        }
        Ok(())
    }

    /// Copies every parameter and running statistic into `model`'s variables.
    pub async fn read_into(&self, gpu: &Gpu, model: &SegModel) -> Result<()> {
        let vars = vars_of(model);
        read_values(gpu, &self.params, &vars).await?;
        for bn in self.batch_norms() {
            let c = bn.channels;
            let data = gpu.read(&bn.running, 2 * c).await?;
            set_var(&vars, &bn.running_names.0, &data[..c])?;
            set_var(&vars, &bn.running_names.1, &data[c..])?;
        }
        Ok(())
    }

    fn batch_norms(&self) -> impl Iterator<Item = &BnParam> {
        self.blocks.iter().flat_map(|b| b.iter().map(|(_, bn)| bn))
    }
}

fn set_var(vars: &HashMap<String, Var>, name: &str, values: &[f32]) -> Result<()> {
    let v = vars
        .get(name)
        .ok_or_else(|| Error::Unsupported(format!("the model has no variable {name}")))?;
    let t = Tensor::from_slice(values, v.shape(), v.device())?;
    v.set(&t)?;
    Ok(())
}

/// Writes every parameter buffer from the variables of the same names.
pub fn write_values(gpu: &Gpu, params: &[DeviceParam], vars: &HashMap<String, Var>) -> Result<()> {
    for p in params {
        let mut data = Vec::with_capacity(p.n);
        for packed in &p.vars {
            let var = vars.get(&packed.name).ok_or_else(|| {
                Error::Unsupported(format!("the model has no variable {}", packed.name))
            })?;
            data.extend(flat(var.as_tensor())?);
        }
        gpu.queue
            .write_buffer(&p.theta, 0, bytemuck::cast_slice(&data));
    }
    Ok(())
}

/// Copies every parameter buffer into the variables of the same names.
pub async fn read_values(
    gpu: &Gpu,
    params: &[DeviceParam],
    vars: &HashMap<String, Var>,
) -> Result<()> {
    for p in params {
        let data = gpu.read(&p.theta, p.n).await?;
        for packed in &p.vars {
            set_var(vars, &packed.name, packed.of(&data))?;
        }
    }
    Ok(())
}

/// The last step's gradient of every variable, by name (diagnostics and
/// the parity tests).
pub async fn read_gradients(
    gpu: &Gpu,
    params: &[DeviceParam],
) -> Result<HashMap<String, Vec<f32>>> {
    let mut out = HashMap::new();
    for p in params {
        let g = gpu.read(&p.grad, p.n).await?;
        for packed in &p.vars {
            out.insert(packed.name.clone(), packed.of(&g).to_vec());
        }
    }
    Ok(out)
}

/// Adam's moments as named tensors (`adam.m.<var>`, `adam.v.<var>`).
pub async fn read_moments(gpu: &Gpu, params: &[DeviceParam]) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for p in params {
        let m = gpu.read(&p.m, p.n).await?;
        let v = gpu.read(&p.v, p.n).await?;
        for packed in &p.vars {
            for (prefix, data) in [("adam.m.", &m), ("adam.v.", &v)] {
                // Core's Adam keeps each moment in its variable's shape.
                let t = Tensor::from_slice(
                    packed.of(data),
                    packed.shape.as_slice(),
                    &candle_core::Device::Cpu,
                )?;
                out.insert(format!("{prefix}{}", packed.name), t);
            }
        }
    }
    Ok(out)
}

/// Writes Adam's moments from [`read_moments`]'s format; every variable
/// must be present with its number of elements.
pub fn write_moments(
    gpu: &Gpu,
    params: &[DeviceParam],
    state: &HashMap<String, Tensor>,
) -> Result<()> {
    for p in params {
        for (prefix, buffer) in [("adam.m.", &p.m), ("adam.v.", &p.v)] {
            let mut data = Vec::with_capacity(p.n);
            for packed in &p.vars {
                let (key, len) = (format!("{prefix}{}", packed.name), packed.elements());
                let t = state.get(&key).ok_or_else(|| {
                    Error::Unsupported(format!("the optimizer state lacks {key}"))
                })?;
                let values = flat(t)?;
                if values.len() != len {
                    return Err(Error::Unsupported(format!(
                        "the optimizer state's {key} has {} values, the model {len}",
                        values.len()
                    )));
                }
                data.extend(values);
            }
            gpu.queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(&data));
        }
    }
    Ok(())
}

fn vars_of(model: &SegModel) -> HashMap<String, Var> {
    model
        .varmap
        .data()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}
