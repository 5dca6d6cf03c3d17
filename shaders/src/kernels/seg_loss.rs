//! The segmentation loss (cross-entropy + truncated-MSE smoothing) and its
//! gradient with respect to the ensemble's probabilities (`seg_loss.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, ParamsId, Slot};

/// `seg_loss_grad` in `seg_loss.wgsl`.
pub const SEG_LOSS_GRAD: Kernel = Kernel {
    file: "seg_loss.wgsl",
    source: include_str!("seg_loss.wgsl"),
    entry: "seg_loss_grad",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// Host copy of `SegLossParams`: the normalisers come from the batch's
/// labels and masks, which the host has.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SegLossParams {
    classes: u32,
    t_len: u32,
    _pad0: [u32; 2],
    ce_scale: f32,
    tmse_scale: f32,
    tau2: f32,
    _pad1: u32,
}

impl SegLossParams {
    /// Core's loss `CE + smoothing · TMSE(τ)` over a batch whose frame
    /// weights are `weight [batch, T]` (0 on padding and ignored frames) and
    /// real frames `mask [batch, T]`.
    pub fn new(
        classes: usize,
        t_len: usize,
        weight: &[f32],
        mask: &[f32],
        smoothing: f64,
        tau: f64,
    ) -> Self {
        let n_ce: f64 = weight.iter().map(|&w| w as f64).sum();
        let n_pair: f64 = mask
            .chunks(t_len.max(1))
            .map(|row| row.windows(2).map(|w| (w[0] * w[1]) as f64).sum::<f64>())
            .sum();
        SegLossParams {
            classes: classes as u32,
            t_len: t_len as u32,
            _pad0: [0; 2],
            ce_scale: (1.0 / n_ce.max(1.0)) as f32,
            tmse_scale: (smoothing / (n_pair * classes as f64).max(1.0)) as f32,
            tau2: (tau * tau) as f32,
            _pad1: 0,
        }
    }
}

/// The buffers of the loss over a batch of `batch` windows.
#[derive(Debug, Clone, Copy)]
pub struct SegLossSlots {
    /// Ensemble probabilities `[batch, K, T]`.
    pub probs: Slot,
    /// Class per frame `[batch, T]` (u32).
    pub labels: Slot,
    pub weight: Slot,
    pub mask: Slot,
    /// ∂L/∂probs, written.
    pub dprobs: Slot,
    /// Per-frame loss `[batch, T]`, written.
    pub frame_loss: Slot,
    pub batch: usize,
}

/// Records the loss and its gradient; the returned parameter block is
/// rewritten with a new [`SegLossParams`] for every batch.
pub fn seg_loss_grad(g: &mut Graph, s: &SegLossSlots, params: &SegLossParams) -> ParamsId {
    g.dispatch(
        &SEG_LOSS_GRAD,
        &[s.probs, s.labels, s.weight, s.mask, s.dprobs, s.frame_loss],
        bytemuck::bytes_of(params),
        [groups(params.t_len as usize, 256), s.batch as u32, 1],
    )
}
