//! Training on the GPU: forward, backward and Adam as one recorded graph
//! per batch shape, the parameters and Adam's moments kept on the device
//! between steps, and one readback (the loss) per step. Two modules train:
//! the C2F-TCN (supervised segmentation, output distillation) and the
//! feature adapter (feature distillation).
//!
//! [`WgpuStepper`] plugs into core's epoch loop ([`syncseg_core::train::fit::fit_with`])
//! in place of candle's autodiff: batch order, validation, checkpoints,
//! early stopping and resumption are the CPU path's, and the model
//! directory it writes is the same (the variables are copied back by name
//! before each validation and checkpoint; Adam's moments are saved in core's
//! format, so a run may resume on the other device).

pub mod adapter_graph;
pub mod net_step;
pub mod params;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Tensor, Var};
use syncseg_core::model::{BackboneConfig, SegModel};
use syncseg_core::train::adam::AdamConfig;
use syncseg_core::train::objective::{BatchLoss, TrainBatch};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::adam::AdamParams;
use crate::kernels::mse_grad::MseParams;
use adapter_graph::{AdapterGraph, AdapterParams};
use net_step::TrainGraph;
use params::{DeviceParam, NetParams};

/// Recorded graphs kept for reuse: full batches, the epoch's last partial
/// batch, and one more length.
const GRAPH_CACHE: usize = 3;

/// What is trained, with its graphs.
enum Engine {
    Net {
        backbone: BackboneConfig,
        /// Widest layer, in channels (what one activation binding holds per frame).
        widest: usize,
        params: NetParams,
        graphs: Vec<TrainGraph>,
    },
    Adapter {
        params: AdapterParams,
        graphs: Vec<AdapterGraph>,
    },
}

/// A C2F-TCN or a feature adapter training on the device.
pub struct WgpuStepper {
    gpu: Arc<Gpu>,
    engine: Engine,
    adam: AdamConfig,
    step: u64,
    peak_activation_bytes: u64,
    largest_buffer_bytes: u64,
}

pub(crate) fn floats(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?)
}

/// The index of the cached graph `matches` picks, recording it with
/// `record` (and evicting the oldest) when there is none.
fn cached<G>(
    graphs: &mut Vec<G>,
    matches: impl Fn(&G) -> bool,
    record: impl FnOnce() -> Result<G>,
) -> Result<usize> {
    if let Some(i) = graphs.iter().position(matches) {
        return Ok(i);
    }
    if graphs.len() == GRAPH_CACHE {
        graphs.remove(0);
    }
    graphs.push(record()?);
    tracing::debug!(cached = graphs.len(), "recorded a training graph");
    Ok(graphs.len() - 1)
}

impl WgpuStepper {
    /// Trains `model`'s network (C2F-TCN or MS-TCN++). An adapter in front
    /// of it stays frozen (the objective applies it to the batch on the host).
    pub fn new(gpu: Arc<Gpu>, model: &SegModel, adam: AdamConfig) -> Result<Self> {
        let backbone = model.meta.backbone.clone();
        let specs = backbone.specs()?;
        let params = NetParams::upload(&gpu, specs.specs(), &params::vars_of(model))?;
        let widest = specs
            .specs()
            .iter()
            .map(|s| s.cin.max(s.cout))
            .max()
            .unwrap_or(1);
        Self::with(
            gpu,
            Engine::Net {
                backbone,
                widest,
                params,
                graphs: Vec::new(),
            },
            adam,
        )
    }

    /// Trains `model`'s feature adapter (the C2F-TCN is not touched).
    pub fn adapter(gpu: Arc<Gpu>, model: &SegModel, adam: AdamConfig) -> Result<Self> {
        let params = AdapterParams::upload(&gpu, model)?;
        Self::with(
            gpu,
            Engine::Adapter {
                params,
                graphs: Vec::new(),
            },
            adam,
        )
    }

    fn with(gpu: Arc<Gpu>, engine: Engine, adam: AdamConfig) -> Result<Self> {
        gpu.check()?;
        Ok(WgpuStepper {
            gpu,
            engine,
            adam,
            step: 0,
            peak_activation_bytes: 0,
            largest_buffer_bytes: 0,
        })
    }

    fn params(&self) -> &[DeviceParam] {
        match &self.engine {
            Engine::Net { params, .. } => &params.params,
            Engine::Adapter { params, .. } => &params.params,
        }
    }

    /// The device's description.
    pub fn device(&self) -> String {
        self.gpu.describe()
    }

    /// Bytes of the parameters, their gradients and Adam's moments.
    pub fn parameter_bytes(&self) -> u64 {
        self.params().iter().map(|p| p.n as u64 * 4 * 4).sum()
    }

    /// The largest per-step activation memory of any graph recorded so far.
    pub fn peak_activation_bytes(&self) -> u64 {
        self.peak_activation_bytes
    }

    /// The largest single buffer (activation or parameter) bound so far:
    /// what the adapter's storage-binding limit must hold.
    pub fn largest_buffer_bytes(&self) -> u64 {
        let params = self.params().iter().map(|p| p.n as u64 * 4).max();
        self.largest_buffer_bytes.max(params.unwrap_or(0))
    }

    /// One step on `batch`: uploads its inputs, replays the graph, reads
    /// the loss back.
    pub async fn step_batch(&mut self, batch: &TrainBatch) -> Result<f32> {
        let (b, d, t) = batch.x.dims3()?;
        let gpu = self.gpu.clone();
        // Find or record the graph and write the batch into it...
        let (i, bytes) = match &mut self.engine {
            Engine::Net {
                backbone,
                widest,
                params,
                graphs,
            } => {
                if d != backbone.input_dim() {
                    return Err(Error::Unsupported(format!(
                        "the model expects {}-dimensional features, got {d}",
                        backbone.input_dim()
                    )));
                }
                let c2f = matches!(backbone, BackboneConfig::C2fTcn(_));
                if c2f && t < syncseg_core::model::c2f_tcn::MIN_FRAMES {
                    return Err(Error::Unsupported(format!(
                        "C2F-TCN needs at least {} frames, got {t}",
                        syncseg_core::model::c2f_tcn::MIN_FRAMES
                    )));
                }
                let kind = net_step::loss_kind(backbone, batch)?;
                let widest = *widest;
                let i = cached(
                    graphs,
                    |g| g.batch == b && g.frames == t && g.kind == kind,
                    || {
                        gpu.check_fits(b * widest * t, "a training batch's activation")?;
                        net_step::record(gpu.clone(), backbone, params, b, t, &kind)
                    },
                )?;
                let g = &graphs[i];
                net_step::write_inputs(&gpu, g, batch)?;
                (i, (g.activation_bytes, g.largest_buffer_bytes))
            }
            Engine::Adapter { params, graphs } => {
                if d != params.input_dim {
                    return Err(Error::Unsupported(format!(
                        "the adapter expects {}-dimensional features, got {d}",
                        params.input_dim
                    )));
                }
                let BatchLoss::FeatureDistillation { target } = &batch.loss else {
                    return Err(Error::Unsupported(
                        "the adapter trains by feature distillation only".into(),
                    ));
                };
                if target.dims() != batch.x.dims() {
                    return Err(Error::Unsupported(format!(
                        "the target features are {:?}, the inputs {:?}",
                        target.dims(),
                        batch.x.dims()
                    )));
                }
                let widest = params.cfg.ffn.max(3 * params.cfg.width).max(d);
                let i = cached(
                    graphs,
                    |g| g.batch == b && g.frames == t,
                    || {
                        gpu.check_fits(b * widest * t, "a training batch's activation")?;
                        adapter_graph::record(gpu.clone(), params, b, t)
                    },
                )?;
                let g = &graphs[i];
                write_adapter_inputs(&gpu, g, &batch.x, &batch.mask, target)?;
                (i, (g.activation_bytes, g.largest_buffer_bytes))
            }
        };
        self.peak_activation_bytes = self.peak_activation_bytes.max(bytes.0);
        self.largest_buffer_bytes = self.largest_buffer_bytes.max(bytes.1);
        // ... then set this step's Adam parameters and run it.
        self.step += 1;
        let (graph, adam, loss): (&Graph, &[(ParamsId, usize)], Slot) = match &self.engine {
            Engine::Net { graphs, .. } => (&graphs[i].graph, &graphs[i].adam, graphs[i].loss),
            Engine::Adapter { graphs, .. } => (&graphs[i].graph, &graphs[i].adam, graphs[i].loss),
        };
        let params = self.params();
        for &(id, i) in adam {
            let ap = AdamParams::new(&self.adam, params[i].n, self.step);
            graph.set_params(id, bytemuck::bytes_of(&ap));
        }
        graph.submit();
        let loss = gpu.read(graph.buffer(loss), 1).await?;
        Ok(loss[0])
    }

    /// The trained variables of `model`, by name.
    fn vars(&self, model: &SegModel) -> Result<HashMap<String, Var>> {
        Ok(match (&self.engine, &model.adapter) {
            (Engine::Adapter { .. }, Some((adapter, varmap))) => {
                adapter.named_vars(varmap)?.into_iter().collect()
            }
            (Engine::Adapter { .. }, None) => {
                return Err(Error::Unsupported("the model has no adapter".into()))
            }
            (Engine::Net { .. }, _) => model
                .varmap
                .data()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }

    /// Copies the parameters (and BatchNorm running statistics) into `model`.
    pub async fn read_into(&self, model: &SegModel) -> Result<()> {
        match &self.engine {
            Engine::Net { params, .. } => {
                params.read_into(&self.gpu, &params::vars_of(model)).await
            }
            Engine::Adapter { params, .. } => {
                params::read_values(&self.gpu, &params.params, &self.vars(model)?).await
            }
        }
    }

    /// The last step's gradient of every variable, by name.
    pub async fn gradients(&self) -> Result<HashMap<String, Vec<f32>>> {
        params::read_gradients(&self.gpu, self.params()).await
    }

    /// Adam's state in core's format.
    pub async fn optimizer_state(&self) -> Result<HashMap<String, Tensor>> {
        let mut state = params::read_moments(&self.gpu, self.params()).await?;
        state.insert(
            "adam.step".into(),
            Tensor::new(&[self.step as f32], &candle_core::Device::Cpu)?,
        );
        Ok(state)
    }

    /// Restores the parameters from `model` and Adam from `state`.
    pub fn load(&mut self, model: &SegModel, state: &HashMap<String, Tensor>) -> Result<()> {
        match &self.engine {
            Engine::Net { params, .. } => params.write_from(&self.gpu, &params::vars_of(model))?,
            Engine::Adapter { params, .. } => {
                params::write_values(&self.gpu, &params.params, &self.vars(model)?)?
            }
        }
        params::write_moments(&self.gpu, self.params(), state)?;
        let step = state
            .get("adam.step")
            .ok_or_else(|| Error::Unsupported("the optimizer state lacks adam.step".into()))?;
        self.step = floats(step)?.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
}

/// Writes an adapter batch: `[B, C, T]` tensors become `[C, B·T]` (windows
/// side by side), padded keys get the attention's −1e9, and the loss its
/// normaliser.
fn write_adapter_inputs(
    gpu: &Gpu,
    g: &AdapterGraph,
    x: &Tensor,
    mask: &Tensor,
    target: &Tensor,
) -> Result<()> {
    let (b, d, t) = x.dims3()?;
    let side_by_side = |v: &Tensor| -> Result<Vec<f32>> {
        floats(&v.permute((1, 0, 2))?.contiguous()?.reshape((d, b * t))?)
    };
    let write = |slot, data: &[f32]| {
        gpu.queue
            .write_buffer(g.graph.buffer(slot), 0, bytemuck::cast_slice(data))
    };
    write(g.x, &side_by_side(x)?);
    write(g.target, &side_by_side(target)?);
    let mask = floats(mask)?;
    write(g.mask, &mask);
    let bias: Vec<f32> = mask
        .iter()
        .map(|&m| if m > 0.5 { 0.0 } else { -1e9 })
        .collect();
    write(g.key_bias, &bias);
    let mp = MseParams::new(d, b * t, &mask, false);
    g.graph.set_params(g.loss_params, bytemuck::bytes_of(&mp));
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
fn core_error(e: Error) -> syncseg_core::Error {
    match e {
        Error::Core(e) => e,
        Error::Candle(e) => syncseg_core::Error::Candle(e),
        other => syncseg_core::Error::invalid(other.to_string()),
    }
}

// The epoch loop is synchronous; natively the device is polled to completion.
#[cfg(not(target_arch = "wasm32"))]
impl syncseg_core::train::step::Stepper for WgpuStepper {
    fn step(
        &mut self,
        model: &mut SegModel,
        objective: &dyn syncseg_core::train::objective::Objective,
        batch: &[syncseg_core::train::windows::Window],
    ) -> syncseg_core::Result<f32> {
        let described = objective.train_batch(model, batch)?.ok_or_else(|| {
            syncseg_core::Error::invalid(
                "this objective has no GPU implementation (train it with --device cpu)",
            )
        })?;
        pollster::block_on(self.step_batch(&described)).map_err(core_error)
    }

    fn sync(&mut self, model: &mut SegModel) -> syncseg_core::Result<()> {
        pollster::block_on(self.read_into(model)).map_err(core_error)
    }

    fn state(&self) -> syncseg_core::Result<HashMap<String, Tensor>> {
        pollster::block_on(self.optimizer_state()).map_err(core_error)
    }

    fn load_state(
        &mut self,
        model: &SegModel,
        state: &HashMap<String, Tensor>,
    ) -> syncseg_core::Result<()> {
        self.load(model, state).map_err(core_error)
    }

    fn device_memory_bytes(&self) -> Option<u64> {
        self.gpu.allocated_bytes()
    }
}
