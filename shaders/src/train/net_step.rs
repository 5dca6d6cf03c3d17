//! One training step of a segmentation network (C2F-TCN or MS-TCN++) as a
//! recorded graph for a batch of `B` windows of `T` frames: the network's
//! topology from core on a training [`Recorder`] (batch statistics, dropout,
//! every activation kept), the loss and its gradient (segmentation on the
//! heads' ensemble or on every stage, or distillation of chosen outputs),
//! the tape's backward, and Adam over every parameter that received a
//! gradient.

use std::sync::Arc;

use syncseg_core::model::c2f_tcn::c2f_forward;
use syncseg_core::model::ms_tcn::ms_tcn_forward;
use syncseg_core::model::ops::Ops;
use syncseg_core::model::BackboneConfig;
use syncseg_core::train::objective::{BatchLoss, TrainBatch};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::mse_grad::MseParams;
use crate::kernels::seg_loss::SegLossParams;
use crate::ops::{DropoutStream, MseInputs, Recorder, SegLossInputs};

use super::floats;
use super::params::{record_adam, NetParams};

/// Which loss a graph minimises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy and smoothing on the heads' ensemble (C2F-TCN) or on
    /// every stage (MS-TCN++).
    Segmentation,
    /// Σ over these levels (sorted, distinct) of the masked MSE to the
    /// teacher's output logits.
    Distillation { levels: Vec<usize> },
}

/// The loss's inputs the host writes before each replay.
pub enum LossSlots {
    Segmentation(SegLossInputs),
    /// Per distilled level, in [`LossKind::Distillation`]'s order.
    Distillation(Vec<(usize, MseInputs)>),
}

/// The recorded step and the buffers the host writes before each replay.
pub struct TrainGraph {
    pub graph: Graph,
    pub batch: usize,
    pub frames: usize,
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
    pub backbone: BackboneConfig,
    /// Bytes of the buffers this graph allocated (activations, gradients of
    /// activations, tables), not counting the parameters.
    pub activation_bytes: u64,
    /// The largest of those buffers, in bytes (what one binding must hold).
    pub largest_buffer_bytes: u64,
}

/// Records the step for `batch` windows of `frames` frames (C2F-TCN: ≥ 384).
pub fn record(
    gpu: Arc<Gpu>,
    backbone: &BackboneConfig,
    p: &NetParams,
    batch: usize,
    frames: usize,
    kind: &LossKind,
) -> Result<TrainGraph> {
    let mut g = Graph::new(gpu);
    let mut r = Recorder::training(&mut g, p, batch);
    let (x, x_slot) = r.new_input(backbone.input_dim(), frames, "x");
    let (mask, mask_slot) = r.new_input(1, frames, "mask");
    let outputs = match backbone {
        BackboneConfig::C2fTcn(cfg) => c2f_forward(&mut r, cfg, &x, Some(&mask))?.heads,
        BackboneConfig::MsTcn(cfg) => ms_tcn_forward(&mut r, cfg, &x)?,
    };
    let (loss_inputs, loss) = match kind {
        LossKind::Segmentation => {
            let probs = match backbone {
                BackboneConfig::C2fTcn(cfg) => vec![r.ensemble(&outputs, &cfg.ensemble_weights)?],
                BackboneConfig::MsTcn(_) => outputs
                    .iter()
                    .map(|o| r.softmax(o))
                    .collect::<syncseg_core::Result<_>>()?,
            };
            let (inputs, loss) = r.segmentation_loss(&probs, &mask)?;
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
    };
    let trained = r.backward()?;
    let dropouts = r.take_dropouts();
    drop(r);
    // Parameters out of the loss's reach (a head out of the loss; for
    // distillation of coarse levels, the decoder stages finer than the
    // finest of them) have no gradient in candle's autodiff either: like
    // core's optimiser, leave them alone (no decay, no moment update).
    let frozen: Vec<usize> = (0..p.params.len())
        .filter(|i| !trained.contains(i))
        .collect();
    let adam = record_adam(&mut g, &p.params, &frozen);
    Ok(TrainGraph {
        activation_bytes: g.owned_bytes(),
        largest_buffer_bytes: g.largest_owned_bytes(),
        graph: g,
        batch,
        frames,
        classes: backbone.num_classes(),
        kind: kind.clone(),
        x: x_slot,
        mask: mask_slot,
        loss_inputs,
        loss,
        adam,
        dropouts,
        backbone: backbone.clone(),
    })
}

/// The loss a batch asks for, as graphs are cached by it.
pub fn loss_kind(backbone: &BackboneConfig, batch: &TrainBatch) -> Result<LossKind> {
    match &batch.loss {
        BatchLoss::Segmentation { .. } => Ok(LossKind::Segmentation),
        BatchLoss::OutputDistillation { levels, .. } => {
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
        BatchLoss::FeatureDistillation { .. } => Err(Error::Unsupported(
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
    let pyramid = g.backbone.output_masks(&batch.mask)?;
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
        (LossSlots::Distillation(levels), BatchLoss::OutputDistillation { teacher, .. }) => {
            let mut offset = 0;
            for (level, inputs) in levels {
                let (level, tl) = (*level, g.backbone.output_frames(*level, t));
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
