//! One training step of the C2F-TCN as a recorded graph for a batch of
//! `B` windows of `T` frames: core's `c2f_forward` on a training
//! [`Recorder`] (batch statistics, every activation kept), the loss and its
//! gradient (segmentation on the heads' ensemble, or distillation of chosen
//! heads), the tape's backward, and Adam over every parameter that received
//! a gradient.

use std::sync::Arc;

use syncseg_core::model::c2f_tcn::{c2f_forward, mask_pyramid};
use syncseg_core::model::ops::Ops;
use syncseg_core::model::C2fConfig;
use syncseg_core::train::step::{BatchLoss, TrainBatch};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::mse_grad::MseParams;
use crate::kernels::seg_loss::SegLossParams;
use crate::ops::{MseInputs, Recorder, SegLossInputs};

use super::floats;
use super::params::{record_adam, NetParams};

/// Which loss a graph minimises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy and smoothing on the heads' ensemble.
    Segmentation,
    /// Σ over these levels (sorted, distinct) of the masked MSE to the
    /// teacher's head logits.
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
    /// Bytes of the buffers this graph allocated (activations, gradients of
    /// activations, tables), not counting the parameters.
    pub activation_bytes: u64,
    /// The largest of those buffers, in bytes (what one binding must hold).
    pub largest_buffer_bytes: u64,
}

/// Records the step for `batch` windows of `frames` frames (≥ 384).
pub fn record(
    gpu: Arc<Gpu>,
    cfg: &C2fConfig,
    p: &NetParams,
    batch: usize,
    frames: usize,
    kind: &LossKind,
) -> Result<TrainGraph> {
    let mut g = Graph::new(gpu);
    let mut r = Recorder::training(&mut g, p, batch);
    let (x, x_slot) = r.new_input(cfg.input_dim, frames, "x");
    let (mask, mask_slot) = r.new_input(1, frames, "mask");
    let out = c2f_forward(&mut r, cfg, &x, Some(&mask))?;
    let (loss_inputs, loss) = match kind {
        LossKind::Segmentation => {
            let probs = r.ensemble(&out.heads, &cfg.ensemble_weights)?;
            let (inputs, loss) = r.segmentation_loss(&probs, &mask)?;
            (LossSlots::Segmentation(inputs), loss)
        }
        LossKind::Distillation { levels } => {
            let mut masks = vec![mask.clone()];
            for l in 1..=levels.iter().copied().max().unwrap_or(0) {
                let next = r.max_pool(&masks[l - 1], 2)?;
                masks.push(next);
            }
            let terms: Vec<_> = levels
                .iter()
                .map(|&l| (out.heads[l].clone(), masks[l].clone()))
                .collect();
            let (inputs, loss) = r.mse_loss(&terms)?;
            (
                LossSlots::Distillation(levels.iter().copied().zip(inputs).collect()),
                loss,
            )
        }
    };
    let trained = r.backward()?;
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
        classes: cfg.num_classes,
        kind: kind.clone(),
        x: x_slot,
        mask: mask_slot,
        loss_inputs,
        loss,
        adam,
    })
}

/// The loss a batch asks for, as graphs are cached by it.
pub fn loss_kind(batch: &TrainBatch) -> Result<LossKind> {
    match &batch.loss {
        BatchLoss::Segmentation { .. } => Ok(LossKind::Segmentation),
        BatchLoss::OutputDistillation { levels, .. } => {
            if levels.is_empty() || levels.iter().any(|&l| l > 5) {
                return Err(Error::Unsupported(format!(
                    "distilled levels {levels:?}: choose among 0 … 5"
                )));
            }
            let mut levels = levels.clone();
            levels.sort_unstable();
            levels.dedup();
            Ok(LossKind::Distillation { levels })
        }
        BatchLoss::FeatureDistillation { .. } => Err(Error::Unsupported(
            "feature distillation trains the adapter, not the C2F-TCN".into(),
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
    // The device pools the mask itself; the host needs the pyramid for the
    // losses' normalisers.
    let pyramid = mask_pyramid(&batch.mask)?;
    let pyramid: Vec<Vec<f32>> = pyramid.iter().map(floats).collect::<Result<_>>()?;
    write(g.mask, &pyramid[0]);
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
            g.graph.set_params(inputs.params, bytemuck::bytes_of(&lp));
        }
        (LossSlots::Distillation(levels), BatchLoss::OutputDistillation { teacher, .. }) => {
            let mut offset = 0;
            for (level, inputs) in levels {
                let (level, tl) = (*level, t >> level);
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
