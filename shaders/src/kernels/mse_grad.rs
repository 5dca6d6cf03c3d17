//! The distillation MSE of one level and its gradient (`mse_grad.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, ParamsId, Slot};

/// `masked_mse_grad` in `mse_grad.wgsl`.
pub const MASKED_MSE_GRAD: Kernel = Kernel {
    file: "mse_grad.wgsl",
    source: include_str!("mse_grad.wgsl"),
    entry: "masked_mse_grad",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// Host copy of `MseParams`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MseParams {
    classes: u32,
    t_len: u32,
    flags: u32,
    loss_offset: u32,
    scale: f32,
    _pad1: [u32; 3],
}

impl MseParams {
    /// The level's normaliser from its real frames `mask [batch, t_len]`.
    pub fn new(classes: usize, t_len: usize, mask: &[f32], accumulate: bool) -> Self {
        let n: f64 = mask.iter().map(|&m| m as f64).sum();
        MseParams {
            classes: classes as u32,
            t_len: t_len as u32,
            flags: accumulate as u32,
            loss_offset: 0,
            scale: (1.0 / (n * classes as f64).max(1.0)) as f32,
            _pad1: [0; 3],
        }
    }
}

impl MseParams {
    /// Writes the level's frame losses from float `offset` of `frame_loss`.
    pub fn at_offset(mut self, offset: usize) -> Self {
        self.loss_offset = offset as u32;
        self
    }
}

/// The buffers of one level over `batch` windows: student and teacher
/// `[batch, K, T]`, `mask [batch, T]`; `ds` and `frame_loss [batch, T]` are
/// written.
#[derive(Debug, Clone, Copy)]
pub struct MseSlots {
    pub student: Slot,
    pub teacher: Slot,
    pub mask: Slot,
    pub ds: Slot,
    pub frame_loss: Slot,
    pub batch: usize,
}

/// Records the level's loss and gradient; rewrite the returned block with a
/// new [`MseParams`] per batch.
pub fn masked_mse_grad(g: &mut Graph, s: &MseSlots, params: &MseParams) -> ParamsId {
    g.dispatch(
        &MASKED_MSE_GRAD,
        &[s.student, s.teacher, s.mask, s.ds, s.frame_loss],
        bytemuck::bytes_of(params),
        [groups(params.t_len as usize, 256), s.batch as u32, 1],
    )
}
