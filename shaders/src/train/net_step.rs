//! One training step of a network — a segmentation network (C2F-TCN or
//! MS-TCN++) or the feature adapter — as a recorded graph for a batch of
//! `B` windows of `T` frames: the network's topology from core on a
//! training [`Recorder`] (batch statistics, dropout, every activation
//! kept), the loss and its gradient (segmentation on the heads' ensemble or
//! on every stage, distillation of chosen outputs, or of the adapted
//! features), the tape's backward, and Adam over every parameter that
//! received a gradient.

use std::sync::Arc;

use syncseg_core::model::adapter::{adapter_forward, adapter_specs};
use syncseg_core::model::c2f_tcn::c2f_forward;
use syncseg_core::model::declare::Declare;
use syncseg_core::model::ms_tcn::ms_tcn_forward;
use syncseg_core::model::ops::Ops;
use syncseg_core::model::{AdapterConfig, BackboneConfig};
use syncseg_core::train::objective::{BatchLoss, TrainBatch};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::mse_grad::MseParams;
use crate::kernels::seg_loss::SegLossParams;
use crate::ops::{DTensor, DropoutStream, MseInputs, Recorder, SegLossInputs};

use super::floats;
use super::params::{record_adam, NetParams};

/// What a training graph trains.
#[derive(Debug, Clone)]
pub enum Trained {
    /// A segmentation network.
    Backbone(BackboneConfig),
    /// The feature adapter θ for `input_dim`-dimensional features (the
    /// network behind it stays frozen).
    Adapter {
        cfg: AdapterConfig,
        input_dim: usize,
    },
}

impl Trained {
    /// The feature dimension it takes.
    pub fn input_dim(&self) -> usize {
        match self {
            Trained::Backbone(b) => b.input_dim(),
            Trained::Adapter { input_dim, .. } => *input_dim,
        }
    }

    /// Its layers.
    pub fn specs(&self) -> syncseg_core::Result<Declare> {
        match self {
            Trained::Backbone(b) => b.specs(),
            Trained::Adapter { cfg, input_dim } => adapter_specs(cfg, *input_dim),
        }
    }

    /// Channels of its widest activation (what one binding holds per frame).
    pub fn widest(&self) -> syncseg_core::Result<usize> {
        Ok(match self {
            Trained::Backbone(_) => self
                .specs()?
                .specs()
                .iter()
                .map(|s| s.cin.max(s.cout))
                .max()
                .unwrap_or(1),
            Trained::Adapter { cfg, input_dim } => (3 * cfg.width).max(cfg.ffn).max(*input_dim),
        })
    }
}

/// Which loss a graph minimises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy and smoothing on the heads' ensemble (C2F-TCN) or on
    /// every stage (MS-TCN++).
    Segmentation,
    /// Σ over these levels (sorted, distinct) of the masked MSE to the
    /// teacher's output logits.
    Distillation { levels: Vec<usize> },
    /// The masked MSE of the adapted features to the teacher's features.
    Features,
}

/// The loss's inputs the host writes before each replay.
pub enum LossSlots {
    Segmentation(SegLossInputs),
    /// Per distilled level, in [`LossKind::Distillation`]'s order.
    Distillation(Vec<(usize, MseInputs)>),
    /// The teacher's features.
    Features(MseInputs),
}

/// The recorded step and the buffers the host writes before each replay.
pub struct TrainGraph {
    pub graph: Graph,
    pub batch: usize,
    pub frames: usize,
    /// Channels of the loss's tensors (classes, or feature dimensions).
    pub classes: usize,
    pub kind: LossKind,
    /// Features `[B, D, T]`.
    pub x: Slot,
    /// Real frames `[B, T]`.
    pub mask: Slot,
    pub loss_inputs: LossSlots,
    /// The step's loss, one float.
    pub loss: Slot,
    /// Adam's parameter block per updated parameter buffer (index into `params`).
    pub adam: Vec<(ParamsId, usize)>,
    /// The dropout ops, seeded per step from the batch's step.
    pub dropouts: Vec<DropoutStream>,
    /// The network (for the outputs' lengths and masks).
    pub trained: Trained,
    /// Bytes of the buffers this graph allocated (activations, gradients of
    /// activations, tables), not counting the parameters.
    pub activation_bytes: u64,
    /// The largest of those buffers, in bytes (what one binding must hold).
    pub largest_buffer_bytes: u64,
}

/// Records the step for `batch` windows of `frames` frames (C2F-TCN: ≥ 384).
pub fn record(
    gpu: Arc<Gpu>,
    trained: &Trained,
    p: &NetParams,
    batch: usize,
    frames: usize,
    kind: &LossKind,
) -> Result<TrainGraph> {
    let mut g = Graph::new(gpu);
    let mut r = Recorder::training(&mut g, p, batch);
    let (x, x_slot) = r.new_input(trained.input_dim(), frames, "x");
    let (mask, mask_slot) = r.new_input(1, frames, "mask");
    let (loss_inputs, loss, classes) = match (trained, kind) {
        (Trained::Adapter { cfg, input_dim }, LossKind::Features) => {
            let y = adapter_forward(&mut r, cfg, &x, Some(&mask))?;
            let (inputs, loss) = r.mse_loss(&[(y, mask)])?;
            let inputs = inputs
                .into_iter()
                .next()
                .ok_or_else(|| Error::Unsupported("internal: a loss of no terms".into()))?;
            (LossSlots::Features(inputs), loss, *input_dim)
        }
        (Trained::Backbone(backbone), LossKind::Segmentation | LossKind::Distillation { .. }) => {
            let (inputs, loss) = backbone_loss(&mut r, backbone, &x, &mask, kind)?;
            (inputs, loss, backbone.num_classes())
        }
        _ => {
            return Err(Error::Unsupported(format!(
                "internal: a {kind:?} graph for another network"
            )))
        }
    };
    let trained_params = r.backward()?;
    let dropouts = r.take_dropouts();
    drop(r);
    // Parameters out of the loss's reach (a head out of the loss; for
    // distillation of coarse levels, the decoder stages finer than the
    // finest of them) have no gradient in candle's autodiff either: like
    // core's optimiser, leave them alone (no decay, no moment update).
    let frozen: Vec<usize> = (0..p.params.len())
        .filter(|i| !trained_params.contains(i))
        .collect();
    let adam = record_adam(&mut g, &p.params, &frozen);
    Ok(TrainGraph {
        activation_bytes: g.owned_bytes(),
        largest_buffer_bytes: g.largest_owned_bytes(),
        graph: g,
        batch,
        frames,
        classes,
        kind: kind.clone(),
        x: x_slot,
        mask: mask_slot,
        loss_inputs,
        loss,
        adam,
        dropouts,
        trained: trained.clone(),
    })
}

/// A segmentation network's forward and `kind`'s loss on it.
fn backbone_loss(
    r: &mut Recorder<'_>,
    backbone: &BackboneConfig,
    x: &DTensor,
    mask: &DTensor,
    kind: &LossKind,
) -> Result<(LossSlots, Slot)> {
    let outputs = match backbone {
        BackboneConfig::C2fTcn(cfg) => c2f_forward(r, cfg, x, Some(mask))?.heads,
        BackboneConfig::MsTcn(cfg) => ms_tcn_forward(r, cfg, x)?,
    };
    Ok(match kind {
        LossKind::Segmentation => {
            let probs = match backbone {
                BackboneConfig::C2fTcn(cfg) => vec![r.ensemble(&outputs, &cfg.ensemble_weights)?],
                BackboneConfig::MsTcn(_) => outputs
                    .iter()
                    .map(|o| r.softmax(o))
                    .collect::<syncseg_core::Result<_>>()?,
            };
            let (inputs, loss) = r.segmentation_loss(&probs, mask)?;
            (LossSlots::Segmentation(inputs), loss)
        }
        LossKind::Distillation { levels } => {
            // C2F-TCN's heads are at T >> l (pooled masks), MS-TCN++'s
            // stages at T.
            let mut masks = vec![mask.clone()];
            for l in 1..=levels.iter().copied().max().unwrap_or(0) {
                let next = match backbone {
                    BackboneConfig::C2fTcn(_) => r.max_pool(&masks[l - 1], 2)?,
                    BackboneConfig::MsTcn(_) => mask.clone(),
                };
                masks.push(next);
            }
            let terms: Vec<_> = levels
                .iter()
                .map(|&l| (outputs[l].clone(), masks[l].clone()))
                .collect();
            let (inputs, loss) = r.mse_loss(&terms)?;
            (
                LossSlots::Distillation(levels.iter().copied().zip(inputs).collect()),
                loss,
            )
        }
        LossKind::Features => {
            return Err(Error::Unsupported(
                "feature distillation trains the adapter, not the network".into(),
            ))
        }
    })
}

/// The loss a batch asks for, as graphs are cached by it.
pub fn loss_kind(trained: &Trained, batch: &TrainBatch) -> Result<LossKind> {
    match (trained, &batch.loss) {
        (Trained::Adapter { .. }, BatchLoss::FeatureDistillation { .. }) => Ok(LossKind::Features),
        (Trained::Adapter { .. }, _) => Err(Error::Unsupported(
            "the adapter trains by feature distillation only".into(),
        )),
        (Trained::Backbone(_), BatchLoss::Segmentation { .. }) => Ok(LossKind::Segmentation),
        (Trained::Backbone(backbone), BatchLoss::OutputDistillation { levels, .. }) => {
            let n = backbone.outputs();
            if levels.is_empty() || levels.iter().any(|&l| l >= n) {
                return Err(Error::Unsupported(format!(
                    "distilled levels {levels:?}: choose among 0 … {}",
                    n - 1
                )));
            }
            let mut levels = levels.clone();
            levels.sort_unstable();
            levels.dedup();
            Ok(LossKind::Distillation { levels })
        }
        (Trained::Backbone(_), BatchLoss::FeatureDistillation { .. }) => Err(Error::Unsupported(
            "feature distillation trains the adapter, not the network".into(),
        )),
    }
}

/// Writes `batch`'s inputs and the loss's normalisers into `g`, recorded
/// for its shape and loss.
pub fn write_inputs(gpu: &Gpu, g: &TrainGraph, batch: &TrainBatch) -> Result<()> {
    let (b, _, t) = batch.x.dims3()?;
    let queue = &gpu.queue;
    let write = |slot, data: &[f32]| {
        queue.write_buffer(g.graph.buffer(slot), 0, bytemuck::cast_slice(data))
    };
    write(g.x, &floats(&batch.x)?);
    // The device pools the mask itself; the host needs each output's mask
    // for the losses' normalisers.
    let pyramid = match &g.trained {
        Trained::Backbone(backbone) => backbone.output_masks(&batch.mask)?,
        Trained::Adapter { .. } => vec![batch.mask.clone()],
    };
    let pyramid: Vec<Vec<f32>> = pyramid.iter().map(floats).collect::<Result<_>>()?;
    write(g.mask, &pyramid[0]);
    for (i, d) in g.dropouts.iter().enumerate() {
        d.seed(&g.graph, batch.step, i);
    }
    let k = g.classes;
    match (&g.loss_inputs, &batch.loss) {
        (
            LossSlots::Segmentation(inputs),
            BatchLoss::Segmentation {
                labels,
                weight,
                smoothing,
                tau,
            },
        ) => {
            let labels: Vec<u32> = labels.flatten_all()?.to_vec1()?;
            queue.write_buffer(
                g.graph.buffer(inputs.labels),
                0,
                bytemuck::cast_slice(&labels),
            );
            let weight = floats(weight)?;
            write(inputs.weight, &weight);
            let lp = SegLossParams::new(k, t, &weight, &pyramid[0], *smoothing, *tau);
            for &id in &inputs.params {
                g.graph.set_params(id, bytemuck::bytes_of(&lp));
            }
        }
        (LossSlots::Features(inputs), BatchLoss::FeatureDistillation { target }) => {
            if target.dims() != batch.x.dims() {
                return Err(Error::Unsupported(format!(
                    "the target features are {:?}, the inputs {:?}",
                    target.dims(),
                    batch.x.dims()
                )));
            }
            write(inputs.teacher, &floats(target)?);
            let mp = MseParams::new(k, t, &pyramid[0], false);
            g.graph.set_params(inputs.params, bytemuck::bytes_of(&mp));
        }
        (LossSlots::Distillation(levels), BatchLoss::OutputDistillation { teacher, .. }) => {
            let Trained::Backbone(backbone) = &g.trained else {
                return Err(Error::Unsupported(
                    "internal: output distillation of the adapter".into(),
                ));
            };
            let mut offset = 0;
            for (level, inputs) in levels {
                let (level, tl) = (*level, backbone.output_frames(*level, t));
                let u = teacher.get(level).ok_or_else(|| {
                    Error::Unsupported(format!("no teacher logits for level {level}"))
                })?;
                if u.dims() != [b, k, tl] {
                    return Err(Error::Unsupported(format!(
                        "the teacher's level {level} is {:?}, the student's [{b}, {k}, {tl}]",
                        u.dims()
                    )));
                }
                write(inputs.teacher, &floats(u)?);
                let mp = MseParams::new(k, tl, &pyramid[level], false).at_offset(offset);
                g.graph.set_params(inputs.params, bytemuck::bytes_of(&mp));
                offset += b * tl;
            }
        }
        _ => {
            return Err(Error::Unsupported(
                "internal: a graph recorded for another loss".into(),
            ))
        }
    }
    Ok(())
}
