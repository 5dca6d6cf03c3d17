//! The heads' softmax ensemble (`ensemble.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, ParamsId, Slot};

/// `ensemble_head` in `ensemble.wgsl`.
pub const ENSEMBLE_HEAD: Kernel = Kernel {
    file: "ensemble.wgsl",
    source: include_str!("ensemble.wgsl"),
    entry: "ensemble_head",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// Host copy of `EnsembleParams` in `ensemble.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EnsembleParams {
    pub classes: u32,
    pub t_head: u32,
    pub len: u32,
    pub out_stride: u32,
    pub out_t0: u32,
    pub accumulate: u32,
    pub weight: f32,
    pub _pad: u32,
}

/// Adds (or writes) `weight · softmax(resample(head))` for frames
/// `0 .. len` to `out` at `out_t0`; `dispatch_frames` bounds `len` for
/// every use of the returned parameter block.
pub fn ensemble_head(
    g: &mut Graph,
    head: Slot,
    table: Slot,
    out: Slot,
    params: EnsembleParams,
    dispatch_frames: usize,
) -> ParamsId {
    g.dispatch(
        &ENSEMBLE_HEAD,
        &[head, table, out],
        bytemuck::bytes_of(&params),
        [groups(dispatch_frames, 256), 1, 1],
    )
}

/// [`ensemble_head`] over `batch` windows (workgroup y), for training: `head`
/// is `[batch, K, t_head]` and `out` `[batch, K, out_stride]`.
pub fn ensemble_head_batch(
    g: &mut Graph,
    head: Slot,
    table: Slot,
    out: Slot,
    params: EnsembleParams,
    batch: usize,
) -> ParamsId {
    g.dispatch(
        &ENSEMBLE_HEAD,
        &[head, table, out],
        bytemuck::bytes_of(&params),
        [groups(params.len as usize, 256), batch as u32, 1],
    )
}
