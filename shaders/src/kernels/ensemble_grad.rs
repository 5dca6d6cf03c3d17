//! Backward of one head's ensemble contribution (`ensemble_grad.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `ensemble_head_grad` in `ensemble_grad.wgsl`.
pub const ENSEMBLE_HEAD_GRAD: Kernel = Kernel {
    file: "ensemble_grad.wgsl",
    source: include_str!("ensemble_grad.wgsl"),
    entry: "ensemble_head_grad",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EnsembleGradParams {
    classes: u32,
    t_head: u32,
    len: u32,
    _pad0: u32,
    weight: f32,
    _pad1: [u32; 3],
}

/// `dz [batch, K, len]` = the gradient of the head's resampled logits,
/// given `dp [batch, K, len]` = ∂L/∂(ensemble probabilities); `head` is
/// `[batch, K, t_head]` and `table` [`super::pool::resample_table`]`(t_head,
/// len)` on the device; `weight` is the head's share of the ensemble.
#[allow(clippy::too_many_arguments)]
pub fn ensemble_head_grad(
    g: &mut Graph,
    head: Slot,
    table: Slot,
    dp: Slot,
    dz: Slot,
    batch: usize,
    classes: usize,
    t_head: usize,
    len: usize,
    weight: f32,
) {
    let p = EnsembleGradParams {
        classes: classes as u32,
        t_head: t_head as u32,
        len: len as u32,
        _pad0: 0,
        weight,
        _pad1: [0; 3],
    };
    g.dispatch(
        &ENSEMBLE_HEAD_GRAD,
        &[head, table, dp, dz],
        bytemuck::bytes_of(&p),
        [groups(len, 256), batch as u32, 1],
    );
}
