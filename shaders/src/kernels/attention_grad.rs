//! Backward of multi-head self-attention with a key mask
//! (`attention_grad.wgsl`).

use super::attention::Attention;
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
        Access::Uniform,
    ],
    ..ATTENTION_GRAD_STATS
};

/// Gradients of q, k and v given `d_o = ∂L/∂o` (in `a.output`'s layout),
/// written (or with `accumulate` added) into `dqkv` at the rows of q, k
/// and v in `a.input`'s layout; `stats` is scratch of `2·heads·frames`
/// floats.
pub fn attention_grad(
    g: &mut Graph,
    a: &Attention,
    d_o: Slot,
    stats: Slot,
    dqkv: Slot,
    accumulate: bool,
) {
    let flags = u32::from(a.key_mask.is_some()) | (u32::from(accumulate) << 1);
    let p = a.params(flags);
    let grid = [groups(a.frames, 64), a.heads as u32, 1];
    let bytes = bytemuck::bytes_of(&p);
    // Without a mask the kernels never read the mask binding; q stands in.
    let mask = a.key_mask.unwrap_or(a.q.0);
    let (q, k, v) = (a.q.0, a.k.0, a.v.0);
    g.dispatch(
        &ATTENTION_GRAD_STATS,
        &[q, k, a.o, d_o, mask, stats],
        bytes,
        grid,
    );
    g.dispatch(
        &ATTENTION_GRAD_Q,
        &[q, k, v, d_o, stats, mask, dqkv],
        bytes,
        grid,
    );
    g.dispatch(
        &ATTENTION_GRAD_KV,
        &[q, k, v, d_o, stats, mask, dqkv],
        bytes,
        grid,
    );
}
