//! Backward of multi-head self-attention with a key mask
//! (`attention_grad.wgsl`).

use super::attention::MAX_HEAD_DIM;
use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

const FILE: &str = "attention_grad.wgsl";
const SOURCE: &str = include_str!("attention_grad.wgsl");

/// `attention_grad_stats` in `attention_grad.wgsl`.
pub const ATTENTION_GRAD_STATS: Kernel = Kernel {
    file: FILE,
    source: SOURCE,
    entry: "attention_grad_stats",
    workgroup: [64, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// `attention_grad_q` in `attention_grad.wgsl`.
pub const ATTENTION_GRAD_Q: Kernel = Kernel {
    entry: "attention_grad_q",
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
    ..ATTENTION_GRAD_STATS
};

/// `attention_grad_kv` in `attention_grad.wgsl`.
pub const ATTENTION_GRAD_KV: Kernel = Kernel {
    entry: "attention_grad_kv",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Uniform,
    ],
    ..ATTENTION_GRAD_STATS
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    frames: u32,
    head_dim: u32,
    scale: f32,
    flags: u32,
    block: u32,
    _pad: [u32; 3],
}

/// The attention's tensors, all `[heads·dh, frames]` channel-major, and
/// the per-key additive mask `key_bias [frames]` (0 or −1e9); the frames
/// are independent sequences of `block` tokens (`block = frames` for one).
#[derive(Debug, Clone, Copy)]
pub struct AttentionTensors {
    pub q: Slot,
    pub k: Slot,
    pub v: Slot,
    /// The forward's output.
    pub o: Slot,
    pub key_bias: Slot,
    pub heads: usize,
    pub head_dim: usize,
    pub frames: usize,
    pub block: usize,
}

/// Gradients of q, k and v given `d_o = ∂L/∂o`; `stats` is scratch of
/// `2·heads·frames` floats.
#[allow(clippy::too_many_arguments)]
pub fn attention_grad(
    g: &mut Graph,
    a: &AttentionTensors,
    d_o: Slot,
    stats: Slot,
    dq: Slot,
    dk: Slot,
    dv: Slot,
    accumulate: bool,
) {
    assert!(
        a.head_dim <= MAX_HEAD_DIM,
        "checked when the model is loaded"
    );
    let p = Params {
        frames: a.frames as u32,
        head_dim: a.head_dim as u32,
        scale: 1.0 / (a.head_dim as f32).sqrt(),
        flags: accumulate as u32,
        block: a.block.max(1) as u32,
        _pad: [0; 3],
    };
    let grid = [groups(a.frames, 64), a.heads as u32, 1];
    let bytes = bytemuck::bytes_of(&p);
    g.dispatch(
        &ATTENTION_GRAD_STATS,
        &[a.q, a.k, a.o, d_o, a.key_bias, stats],
        bytes,
        grid,
    );
    g.dispatch(
        &ATTENTION_GRAD_Q,
        &[a.q, a.k, a.v, d_o, stats, a.key_bias, dq],
        bytes,
        grid,
    );
    g.dispatch(
        &ATTENTION_GRAD_KV,
        &[a.q, a.k, a.v, d_o, stats, a.key_bias, dk, dv],
        bytes,
        grid,
    );
}
