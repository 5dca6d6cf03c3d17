//! BatchNorm in training mode (`batch_norm.wgsl`): masked batch statistics,
//! the running-statistics update, the normalisation (with an optional
//! ReLU), and the backward. Inference folds BatchNorm into the convolution
//! instead (`conv.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

const FILE: &str = "batch_norm.wgsl";
const SOURCE: &str = include_str!("batch_norm.wgsl");

/// `bn_stats` in `batch_norm.wgsl`.
pub const BN_STATS: Kernel = Kernel {
    file: FILE,
    source: SOURCE,
    entry: "bn_stats",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// `bn_apply` in `batch_norm.wgsl`.
pub const BN_APPLY: Kernel = Kernel {
    entry: "bn_apply",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
    ..BN_STATS
};

/// `bn_grad_params` in `batch_norm.wgsl`.
pub const BN_GRAD_PARAMS: Kernel = Kernel {
    entry: "bn_grad_params",
    ..BN_APPLY
};

/// `bn_grad_input` in `batch_norm.wgsl`.
pub const BN_GRAD_INPUT: Kernel = Kernel {
    entry: "bn_grad_input",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
    ..BN_STATS
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BnParams {
    channels: u32,
    batch: u32,
    t_len: u32,
    flags: u32,
    eps: f32,
    momentum: f32,
    _pad: [u32; 2],
}

/// The buffers of one BatchNorm layer over a batch of `batch` windows of
/// `[channels, t_len]`.
#[derive(Debug, Clone, Copy)]
pub struct BatchNormSlots {
    /// `[γ (C), β (C)]`, the trained parameters.
    pub gamma_beta: Slot,
    /// `[running mean (C), running var (C)]`, updated by [`bn_stats`].
    pub running: Slot,
    /// `[μ (C), σ² (C), n]` of the current batch (`2C + 1` floats).
    pub stats: Slot,
    /// `mask [batch, t_len]`: 1 on real frames, 0 on padding.
    pub mask: Slot,
    pub channels: usize,
    pub batch: usize,
    pub t_len: usize,
}

impl BatchNormSlots {
    fn params(&self, flags: u32) -> BnParams {
        BnParams {
            channels: self.channels as u32,
            batch: self.batch as u32,
            t_len: self.t_len as u32,
            flags,
            eps: syncseg_core::model::batch_norm::EPS as f32,
            momentum: syncseg_core::model::batch_norm::MOMENTUM as f32,
            _pad: [0; 2],
        }
    }

    fn grid(&self) -> [u32; 3] {
        [
            groups(self.t_len, 256),
            self.channels as u32,
            self.batch as u32,
        ]
    }
}

/// Batch statistics of `x [batch, C, t_len]` over its real frames, and the
/// running statistics' update.
pub fn bn_stats(g: &mut Graph, bn: &BatchNormSlots, x: Slot) {
    g.dispatch(
        &BN_STATS,
        &[x, bn.mask, bn.stats, bn.running],
        bytemuck::bytes_of(&bn.params(0)),
        [bn.channels as u32, 1, 1],
    );
}

/// `y = γ·(x − μ)/sqrt(σ² + eps) + β` with the batch statistics, then ReLU
/// if `relu`.
pub fn bn_apply(g: &mut Graph, bn: &BatchNormSlots, x: Slot, y: Slot, relu: bool) {
    g.dispatch(
        &BN_APPLY,
        &[x, bn.stats, bn.gamma_beta, y],
        bytemuck::bytes_of(&bn.params(relu as u32)),
        bn.grid(),
    );
}

/// The backward from `dy` (after the ReLU's own backward): `dgb = [dγ, dβ]`
/// (overwritten), then `dx (+)= ∂L/∂x`.
pub fn bn_backward(
    g: &mut Graph,
    bn: &BatchNormSlots,
    x: Slot,
    dy: Slot,
    dgb: Slot,
    dx: Slot,
    accumulate: bool,
) {
    g.dispatch(
        &BN_GRAD_PARAMS,
        &[x, dy, bn.stats, dgb],
        bytemuck::bytes_of(&bn.params(0)),
        [bn.channels as u32, 1, 1],
    );
    g.dispatch(
        &BN_GRAD_INPUT,
        &[x, dy, bn.mask, bn.stats, bn.gamma_beta, dgb, dx],
        bytemuck::bytes_of(&bn.params(accumulate as u32)),
        bn.grid(),
    );
}
