//! Temporal convolution / linear layer (`conv.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};
use syncseg_core::model::ops::left_pad;

/// `conv1d` in `conv.wgsl`.
pub const CONV1D: Kernel = Kernel {
    file: "conv.wgsl",
    source: include_str!("conv.wgsl"),
    entry: "conv1d",
    workgroup: [16, 16, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// Output tile of one workgroup: 64 channels × 64 frames.
const TILE: u32 = 64;

/// Activation fused into the convolution's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    None = 0,
    /// max(x, 0).
    Relu = 1,
    /// Exact (erf) GELU.
    Gelu = 2,
}

/// Host copy of `Params` in `conv.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    pub cin: u32,
    pub cout: u32,
    pub t_in: u32,
    pub t_out: u32,
    pub k: u32,
    pub pad: u32,
    pub dil: u32,
    pub w_cin: u32,
    pub w_ci0: u32,
    pub w_co0: u32,
    pub out_c0: u32,
    pub flags: u32,
    pub x_bstride: u32,
    pub y_bstride: u32,
    pub _pad: [u32; 2],
}

/// A convolution weight `[C_out, C_in, k]` and bias `[C_out]` on the device.
#[derive(Debug, Clone, Copy)]
pub struct ConvWeights {
    pub weight: Slot,
    pub bias: Slot,
    pub cout: usize,
    pub cin: usize,
    pub k: usize,
    /// Frames between taps (padding `dilation · k/2` on both sides).
    pub dilation: usize,
    /// Taps at and before `t` only (padding `dilation · (k − 1)` on the
    /// left): [`syncseg_core::model::ops::left_pad`].
    pub causal: bool,
}

/// One input part: `channels` rows of `x` that are input channels
/// `ci0 .. ci0 + channels` of the weight.
#[derive(Debug, Clone, Copy)]
pub struct InputPart {
    pub x: Slot,
    pub ci0: usize,
    pub channels: usize,
}

/// Where the output goes: output channels `co0 .. co0 + cout` of the weight
/// into rows `out_c0 ..` of `y`.
#[derive(Debug, Clone, Copy)]
pub struct OutputRows {
    pub y: Slot,
    pub co0: usize,
    pub cout: usize,
    pub out_c0: usize,
}

/// A batch of windows stored back to back: every input part's buffer is
/// `[count, channels, frames]` and the output's `[count, y_rows, frames]`.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    pub count: usize,
    /// Rows of one window of the output buffer.
    pub y_rows: usize,
}

/// Encodes `y (+)= act(conv(concat(parts)) + b)`, same padding (k/2), over
/// `frames` frames: one dispatch per part, the bias with the first and the
/// activation with the last. With `accumulate`, the first part adds to what
/// `y` holds (a residual connection).
pub fn conv(
    g: &mut Graph,
    w: &ConvWeights,
    parts: &[InputPart],
    out: OutputRows,
    frames: usize,
    act: Activation,
    accumulate: bool,
) {
    let single = Batch {
        count: 1,
        y_rows: 0,
    };
    conv_batch(g, w, parts, out, frames, single, act, accumulate);
}

/// [`conv`] over a batch of windows (workgroup z), for training.
#[allow(clippy::too_many_arguments)]
pub fn conv_batch(
    g: &mut Graph,
    w: &ConvWeights,
    parts: &[InputPart],
    out: OutputRows,
    frames: usize,
    batch: Batch,
    act: Activation,
    accumulate: bool,
) {
    for (i, part) in parts.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == parts.len();
        let mut flags = 0;
        if accumulate || !first {
            flags |= 1;
        }
        if first {
            flags |= 2;
        }
        if last {
            flags |= (act as u32) << 2;
        }
        let stride = |rows: usize| {
            if batch.count > 1 {
                (rows * frames) as u32
            } else {
                0
            }
        };
        let params = ConvParams {
            cin: part.channels as u32,
            cout: out.cout as u32,
            t_in: frames as u32,
            t_out: frames as u32,
            k: w.k as u32,
            pad: left_pad(w.k, w.dilation, w.causal) as u32,
            dil: w.dilation as u32,
            w_cin: w.cin as u32,
            w_ci0: part.ci0 as u32,
            w_co0: out.co0 as u32,
            out_c0: out.out_c0 as u32,
            flags,
            x_bstride: stride(part.channels),
            y_bstride: stride(batch.y_rows),
            _pad: [0; 2],
        };
        g.dispatch(
            &CONV1D,
            &[part.x, w.weight, w.bias, out.y],
            bytemuck::bytes_of(&params),
            [
                groups(frames, TILE),
                groups(out.cout, TILE),
                batch.count as u32,
            ],
        );
    }
}
