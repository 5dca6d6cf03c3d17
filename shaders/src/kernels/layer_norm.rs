//! LayerNorm over channels (`layer_norm.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `layer_norm` in `layer_norm.wgsl`.
pub const LAYER_NORM: Kernel = Kernel {
    file: "layer_norm.wgsl",
    source: include_str!("layer_norm.wgsl"),
    entry: "layer_norm",
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
struct NormParams {
    channels: u32,
    frames: u32,
    eps: f32,
    _pad: u32,
}

/// `y = LayerNorm(x)` over the `channels` of each of `frames` frames.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    g: &mut Graph,
    x: Slot,
    gamma: Slot,
    beta: Slot,
    y: Slot,
    channels: usize,
    frames: usize,
    eps: f32,
) {
    let params = NormParams {
        channels: channels as u32,
        frames: frames as u32,
        eps,
        _pad: 0,
    };
    g.dispatch(
        &LAYER_NORM,
        &[x, gamma, beta, y],
        bytemuck::bytes_of(&params),
        [groups(frames, 256), 1, 1],
    );
}
