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

/// Where token `n` of row `r` of a tensor lies in its buffer:
/// `(n / block)·seq + r·row + n % block`, for frames made of independent
/// sequences of `block` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqLayout {
    /// Elements between the starts of two sequences.
    pub seq: usize,
    /// Elements between two rows of one sequence.
    pub row: usize,
}

impl SeqLayout {
    /// Channel-major `[rows, frames]`, the sequences side by side along
    /// the frames (a ViT's images).
    pub fn side_by_side(frames: usize, block: usize) -> Self {
        SeqLayout {
            seq: block,
            row: frames,
        }
    }

    /// `[B, rows, block]`: every sequence a window of its own (a training
    /// batch, as every recorded network lays out its tensors).
    pub fn batch_major(rows: usize, block: usize) -> Self {
        SeqLayout {
            seq: rows * block,
            row: block,
        }
    }
}

/// One attention's tensors: q, k and v (buffers and first rows: they may
/// be one fused `qkv` buffer) with their layout, the output, and the key
/// mask `[frames]` (1 real, 0 padding; `None` attends to every key of the
/// sequence).
#[derive(Debug, Clone, Copy)]
pub struct Attention {
    pub q: (Slot, usize),
    pub k: (Slot, usize),
    pub v: (Slot, usize),
    pub input: SeqLayout,
    pub o: Slot,
    pub output: SeqLayout,
    pub key_mask: Option<Slot>,
    pub heads: usize,
    pub head_dim: usize,
    /// Tokens in all: sequences × `block` (the last may be shorter).
    pub frames: usize,
    pub block: usize,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AttnParams {
    frames: u32,
    head_dim: u32,
    scale: f32,
    block: u32,
    flags: u32,
    in_seq: u32,
    in_row: u32,
    out_seq: u32,
    out_row: u32,
    q_row0: u32,
    k_row0: u32,
    v_row0: u32,
}

impl Attention {
    /// The kernels' parameters; `flags` as each kernel reads them.
    pub(crate) fn params(&self, flags: u32) -> AttnParams {
        assert!(
            self.head_dim <= MAX_HEAD_DIM,
            "checked when the model is loaded"
        );
        assert!(self.block > 0, "empty sequences");
        AttnParams {
            frames: self.frames as u32,
            head_dim: self.head_dim as u32,
            scale: 1.0 / (self.head_dim as f32).sqrt(),
            block: self.block as u32,
            flags,
            in_seq: self.input.seq as u32,
            in_row: self.input.row as u32,
            out_seq: self.output.seq as u32,
            out_row: self.output.row as u32,
            q_row0: self.q.1 as u32,
            k_row0: self.k.1 as u32,
            v_row0: self.v.1 as u32,
        }
    }
}

/// `o = softmax(q kᵀ / √dh + mask) v` per head and sequence.
pub fn attention(g: &mut Graph, a: &Attention) {
    let params = a.params(u32::from(a.key_mask.is_some()));
    // Without a mask the kernel never reads the mask binding; q stands in.
    g.dispatch(
        &ATTENTION,
        &[a.q.0, a.k.0, a.v.0, a.key_mask.unwrap_or(a.q.0), a.o],
        bytemuck::bytes_of(&params),
        [
            groups(a.block.min(a.frames), 64),
            a.heads as u32,
            a.frames.div_ceil(a.block) as u32,
        ],
    );
}
