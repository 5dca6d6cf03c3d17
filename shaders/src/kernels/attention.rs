//! Multi-head self-attention with an online softmax (`attention.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `attention` in `attention.wgsl`.
pub const ATTENTION: Kernel = Kernel {
    file: "attention.wgsl",
    source: include_str!("attention.wgsl"),
    entry: "attention",
    workgroup: [64, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// The largest head size the kernel's per-thread arrays hold.
pub const MAX_HEAD_DIM: usize = 128;

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AttnParams {
    frames: u32,
    head_dim: u32,
    scale: f32,
    block: u32,
    flags: u32,
    _pad: [u32; 3],
}

/// `o = softmax(q kᵀ / √dh + key_bias) v` per head, all `[heads·dh,
/// frames]` channel-major; the frames are independent sequences of `block`
/// tokens each (the last may be shorter), `block = frames` for one
/// sequence. `key_bias [frames]` (0 or −1e9) masks padded keys; `None`
/// attends to every key of the sequence.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    g: &mut Graph,
    q: Slot,
    k: Slot,
    v: Slot,
    key_bias: Option<Slot>,
    o: Slot,
    heads: usize,
    head_dim: usize,
    frames: usize,
    block: usize,
) {
    assert!(head_dim <= MAX_HEAD_DIM, "checked when the model is loaded");
    assert!(block > 0, "empty sequences");
    let params = AttnParams {
        frames: frames as u32,
        head_dim: head_dim as u32,
        scale: 1.0 / (head_dim as f32).sqrt(),
        block: block as u32,
        flags: u32::from(key_bias.is_some()),
        _pad: [0; 3],
    };
    // Without a mask the kernel never reads the bias binding; q stands in.
    g.dispatch(
        &ATTENTION,
        &[q, k, v, key_bias.unwrap_or(q), o],
        bytemuck::bytes_of(&params),
        [
            groups(block.min(frames), 64),
            heads as u32,
            frames.div_ceil(block) as u32,
        ],
    );
}
