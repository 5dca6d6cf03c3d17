//! Backward of LayerNorm over channels (`layer_norm_grad.wgsl`).

use super::layer_norm::NormFrames;
use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `layer_norm_grad` in `layer_norm_grad.wgsl`.
pub const LAYER_NORM_GRAD: Kernel = Kernel {
    file: "layer_norm_grad.wgsl",
    source: include_str!("layer_norm_grad.wgsl"),
    entry: "layer_norm_grad",
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

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormGradParams {
    channels: u32,
    frames: u32,
    eps: f32,
    flags: u32,
    block: u32,
    _pad: [u32; 3],
}

/// `dx (+)= ∂L/∂x` of `y = LayerNorm(x)` over the channels of each frame
/// of `f`, and `gxhat = dy ⊙ x̂` (whose row sums are dγ; dy's are dβ).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_grad(
    g: &mut Graph,
    x: Slot,
    gamma: Slot,
    dy: Slot,
    dx: Slot,
    gxhat: Slot,
    f: NormFrames,
    eps: f32,
    accumulate: bool,
) {
    let frames = f.frames;
    let p = NormGradParams {
        channels: f.channels as u32,
        frames: frames as u32,
        eps,
        flags: accumulate as u32,
        block: f.block.max(1) as u32,
        _pad: [0; 3],
    };
    g.dispatch(
        &LAYER_NORM_GRAD,
        &[x, gamma, dy, dx, gxhat],
        bytemuck::bytes_of(&p),
        [groups(frames, 256), 1, 1],
    );
}
