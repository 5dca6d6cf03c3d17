//! Trainable state on the device: one buffer per parameter tensor (with its
//! gradient and Adam's two moments), and the networks' BatchNorm running
//! statistics. Each buffer remembers which variables of the model's
//! `VarMap` it holds, so the model on the host is brought up to date by
//! name and saves exactly as the CPU path's does. The functions over
//! `&[DeviceParam]` serve every trained network (C2F-TCN, MS-TCN++, the
//! adapter).

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use syncseg_core::model::declare::{Declare, Layer};
use syncseg_core::model::SegModel;

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

/// A convolution: indices of its weight and bias in [`NetParams::params`].
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

/// A LayerNorm: indices of γ and β in [`NetParams::params`].
#[derive(Debug, Clone, Copy)]
pub struct LnParam {
    pub gamma: usize,
    pub beta: usize,
}

/// Every trainable tensor of a network, from its declaration (the layers
/// its topology applies), looked up by layer name. A linear layer is a
/// convolution of width 1 (its weight `[cout, cin]` is `[cout, cin, 1]`).
pub struct NetParams {
    pub params: Vec<DeviceParam>,
    convs: HashMap<String, ConvParam>,
    norms: HashMap<String, BnParam>,
    layer_norms: HashMap<String, LnParam>,
}

fn flat(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

impl NetParams {
    /// Uploads the layers `declared` from the variables `vars` (by name).
    pub fn upload(gpu: &Gpu, declared: &Declare, vars: &HashMap<String, Var>) -> Result<Self> {
        let var = |name: &str| -> Result<(String, Tensor)> {
            let v = vars
                .get(name)
                .ok_or_else(|| Error::Unsupported(format!("the model has no variable {name}")))?;
            Ok((name.to_string(), v.as_tensor().clone()))
        };
        let mut params = Vec::new();
        let add = |names: &[&str], params: &mut Vec<DeviceParam>| -> Result<usize> {
            let named = names.iter().map(|n| var(n)).collect::<Result<Vec<_>>>()?;
            let refs: Vec<(String, &Tensor)> = named.iter().map(|(n, t)| (n.clone(), t)).collect();
            params.push(DeviceParam::upload(gpu, &refs, names[0])?);
            Ok(params.len() - 1)
        };
        // `{name}.weight` and `{name}.bias`, one buffer each.
        let weight_bias = |name: &str, params: &mut Vec<DeviceParam>| -> Result<(usize, usize)> {
            let w = add(&[&format!("{name}.weight")], params)?;
            Ok((w, add(&[&format!("{name}.bias")], params)?))
        };
        let mut convs = HashMap::new();
        let mut norms = HashMap::new();
        let mut layer_norms = HashMap::new();
        for layer in declared.layers() {
            let (name, cin, cout, k, norm) = match layer {
                Layer::Conv(s) => (&s.name, s.cin, s.cout, s.k, s.norm.as_ref()),
                Layer::Linear(s) => (&s.name, s.cin, s.cout, 1, None),
                Layer::LayerNorm(s) => {
                    let (gamma, beta) = weight_bias(&s.name, &mut params)?;
                    layer_norms.insert(s.name.clone(), LnParam { gamma, beta });
                    continue;
                }
            };
            let (weight, bias) = weight_bias(name, &mut params)?;
            let conv = ConvParam {
                weight,
                bias,
                cout,
                cin,
                k,
            };
            convs.insert(name.clone(), conv);
            if let Some(norm) = norm {
                let (g, b) = (format!("{norm}.weight"), format!("{norm}.bias"));
                let gamma_beta = add(&[&g, &b], &mut params)?;
                let names = (
                    format!("{norm}.running_mean"),
                    format!("{norm}.running_var"),
                );
                let mut running = flat(&var(&names.0)?.1)?;
                running.extend(flat(&var(&names.1)?.1)?);
                let bn = BnParam {
                    gamma_beta,
                    channels: cout,
                    running: gpu.upload(&running, norm),
                    running_names: names,
                };
                norms.insert(norm.clone(), bn);
            }
        }
        Ok(NetParams {
            params,
            convs,
            norms,
            layer_norms,
        })
    }

    /// The LayerNorm `name`.
    pub fn layer_norm(&self, name: &str) -> syncseg_core::Result<LnParam> {
        self.layer_norms.get(name).copied().ok_or_else(|| {
            syncseg_core::Error::invalid(format!("no layer norm {name} was uploaded"))
        })
    }

    /// The convolution `name`.
    pub fn conv(&self, name: &str) -> syncseg_core::Result<ConvParam> {
        self.convs.get(name).copied().ok_or_else(|| {
            syncseg_core::Error::invalid(format!("no convolution {name} was uploaded"))
        })
    }

    /// The BatchNorm `name`.
    pub fn norm(&self, name: &str) -> syncseg_core::Result<&BnParam> {
        self.norms.get(name).ok_or_else(|| {
            syncseg_core::Error::invalid(format!("no batch norm {name} was uploaded"))
        })
    }

    /// Rewrites every parameter and running statistic from `vars`
    /// (after a resume loaded other weights into the model).
    pub fn write_from(&self, gpu: &Gpu, vars: &HashMap<String, Var>) -> Result<()> {
        write_values(gpu, &self.params, vars)?;
        let var = |name: &str| {
            vars.get(name)
                .ok_or_else(|| Error::Unsupported(format!("the model has no variable {name}")))
        };
        for bn in self.norms.values() {
            let mut data = flat(var(&bn.running_names.0)?.as_tensor())?;
            data.extend(flat(var(&bn.running_names.1)?.as_tensor())?);
            gpu.queue
                .write_buffer(&bn.running, 0, bytemuck::cast_slice(&data));
        }
        Ok(())
    }

    /// Copies every parameter and running statistic into `vars`.
    pub async fn read_into(&self, gpu: &Gpu, vars: &HashMap<String, Var>) -> Result<()> {
        read_values(gpu, &self.params, vars).await?;
        for bn in self.norms.values() {
            let c = bn.channels;
            let data = gpu.read(&bn.running, 2 * c).await?;
            set_var(vars, &bn.running_names.0, &data[..c])?;
            set_var(vars, &bn.running_names.1, &data[c..])?;
        }
        Ok(())
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

pub(crate) fn vars_of(model: &SegModel) -> HashMap<String, Var> {
    model
        .varmap
        .data()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}
