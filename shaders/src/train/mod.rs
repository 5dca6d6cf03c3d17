//! Training on the GPU: forward, backward and Adam as one recorded graph
//! per batch shape, the parameters and Adam's moments kept on the device
//! between steps, and one readback (the loss) per step. What trains is a
//! segmentation network (supervised segmentation, output distillation) or
//! the feature adapter (feature distillation), each recorded from its one
//! topology in core.
//!
//! [`WgpuStepper`] plugs into core's epoch loop ([`syncseg_core::train::fit::fit_with`])
//! in place of candle's autodiff: batch order, validation, checkpoints,
//! early stopping and resumption are the CPU path's, and the model
//! directory it writes is the same (the variables are copied back by name
//! before each validation and checkpoint; Adam's moments are saved in core's
//! format, so a run may resume on the other device).

pub mod net_step;
pub mod params;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Tensor, Var};
use syncseg_core::model::SegModel;
use syncseg_core::train::adam::AdamConfig;
use syncseg_core::train::objective::TrainBatch;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::adam::AdamParams;
use net_step::{TrainGraph, Trained};
use params::{DeviceParam, NetParams};

/// Recorded graphs kept for reuse: full batches, the epoch's last partial
/// batch, and one more length.
const GRAPH_CACHE: usize = 3;

/// A network (C2F-TCN, MS-TCN++ or the feature adapter) training on the
/// device.
pub struct WgpuStepper {
    gpu: Arc<Gpu>,
    trained: Trained,
    /// Widest layer, in channels (what one activation binding holds per frame).
    widest: usize,
    params: NetParams,
    graphs: Vec<TrainGraph>,
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

/// The variables `trained` reads and writes in `model`, by name.
fn vars_of(trained: &Trained, model: &SegModel) -> Result<HashMap<String, Var>> {
    match trained {
        Trained::Backbone(_) => Ok(params::vars_of(model)),
        Trained::Adapter { .. } => match &model.adapter {
            Some((_, varmap)) => Ok(varmap
                .data()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()),
            None => Err(Error::Unsupported(
                "the model has no feature adapter to train".into(),
            )),
        },
    }
}

impl WgpuStepper {
    /// Trains `model`'s network (C2F-TCN or MS-TCN++). An adapter in front
    /// of it stays frozen (the objective applies it to the batch on the host).
    pub fn new(gpu: Arc<Gpu>, model: &SegModel, adam: AdamConfig) -> Result<Self> {
        Self::with(
            gpu,
            Trained::Backbone(model.meta.backbone.clone()),
            model,
            adam,
        )
    }

    /// Trains `model`'s feature adapter (the network behind it is not touched).
    pub fn adapter(gpu: Arc<Gpu>, model: &SegModel, adam: AdamConfig) -> Result<Self> {
        let Some((adapter, _)) = &model.adapter else {
            return Err(Error::Unsupported(
                "the model has no feature adapter to train".into(),
            ));
        };
        let trained = Trained::Adapter {
            cfg: adapter.config().clone(),
            input_dim: adapter.input_dim(),
        };
        Self::with(gpu, trained, model, adam)
    }

    fn with(gpu: Arc<Gpu>, trained: Trained, model: &SegModel, adam: AdamConfig) -> Result<Self> {
        let params = NetParams::upload(&gpu, &trained.specs()?, &vars_of(&trained, model)?)?;
        gpu.check()?;
        Ok(WgpuStepper {
            gpu,
            widest: trained.widest()?,
            trained,
            params,
            graphs: Vec::new(),
            adam,
            step: 0,
            peak_activation_bytes: 0,
            largest_buffer_bytes: 0,
        })
    }

    fn params(&self) -> &[DeviceParam] {
        &self.params.params
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
        let want = self.trained.input_dim();
        if d != want {
            return Err(Error::Unsupported(format!(
                "the model expects {want}-dimensional features, got {d}"
            )));
        }
        if let Trained::Backbone(syncseg_core::model::BackboneConfig::C2fTcn(_)) = &self.trained {
            if t < syncseg_core::model::c2f_tcn::MIN_FRAMES {
                return Err(Error::Unsupported(format!(
                    "C2F-TCN needs at least {} frames, got {t}",
                    syncseg_core::model::c2f_tcn::MIN_FRAMES
                )));
            }
        }
        // Find or record the graph and write the batch into it...
        let kind = net_step::loss_kind(&self.trained, batch)?;
        let (trained, params, widest) = (&self.trained, &self.params, self.widest);
        let i = cached(
            &mut self.graphs,
            |g| g.batch == b && g.frames == t && g.kind == kind,
            || {
                gpu.check_fits(b * widest * t, "a training batch's activation")?;
                net_step::record(gpu.clone(), trained, params, b, t, &kind)
            },
        )?;
        let g = &self.graphs[i];
        net_step::write_inputs(&gpu, g, batch)?;
        self.peak_activation_bytes = self.peak_activation_bytes.max(g.activation_bytes);
        self.largest_buffer_bytes = self.largest_buffer_bytes.max(g.largest_buffer_bytes);
        // ... then set this step's Adam parameters and run it.
        self.step += 1;
        let params = &self.params.params;
        for &(id, i) in &g.adam {
            let ap = AdamParams::new(&self.adam, params[i].n, self.step);
            g.graph.set_params(id, bytemuck::bytes_of(&ap));
        }
        g.graph.submit();
        let loss = gpu.read(g.graph.buffer(g.loss), 1).await?;
        Ok(loss[0])
    }

    /// Copies the parameters (and BatchNorm running statistics) into `model`.
    pub async fn read_into(&self, model: &SegModel) -> Result<()> {
        self.params
            .read_into(&self.gpu, &vars_of(&self.trained, model)?)
            .await
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
        self.params
            .write_from(&self.gpu, &vars_of(&self.trained, model)?)?;
        params::write_moments(&self.gpu, self.params(), state)?;
        let step = state
            .get("adam.step")
            .ok_or_else(|| Error::Unsupported("the optimizer state lacks adam.step".into()))?;
        self.step = floats(step)?.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
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
