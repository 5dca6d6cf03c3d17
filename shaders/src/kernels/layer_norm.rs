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
    block: u32,
}

/// The frames a LayerNorm normalises: `frames` in all, laid out `[B,
/// channels, block]` (`block = frames` for one `[channels, frames]`).
#[derive(Debug, Clone, Copy)]
pub struct NormFrames {
    pub channels: usize,
    pub frames: usize,
    pub block: usize,
}

impl NormFrames {
    /// One channel-major `[channels, frames]`.
    pub fn whole(channels: usize, frames: usize) -> Self {
        NormFrames {
            channels,
            frames,
            block: frames,
        }
    }
}

/// `y = LayerNorm(x)` over the channels of each frame of `f`.
pub fn layer_norm(
    g: &mut Graph,
    x: Slot,
    gamma: Slot,
    beta: Slot,
    y: Slot,
    f: NormFrames,
    eps: f32,
) {
    let frames = f.frames;
    let params = NormParams {
        channels: f.channels as u32,
        frames: frames as u32,
        eps,
        block: f.block.max(1) as u32,
    };
    g.dispatch(
        &LAYER_NORM,
        &[x, gamma, beta, y],
        bytemuck::bytes_of(&params),
        [groups(frames, 256), 1, 1],
    );
}
