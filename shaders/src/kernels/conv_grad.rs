//! Gradients of the temporal convolution (`conv_grad.wgsl`): with respect
//! to its input and its weight. The bias's gradient is [`super::row_sum`].

use super::conv::ConvWeights;
use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};
use syncseg_core::model::ops::left_pad;

/// `conv1d_grad_input` in `conv_grad.wgsl`.
pub const CONV1D_GRAD_INPUT: Kernel = Kernel {
    file: "conv_grad.wgsl",
    source: include_str!("conv_grad.wgsl"),
    entry: "conv1d_grad_input",
    workgroup: [16, 16, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// `conv1d_grad_weight` in `conv_grad.wgsl`.
pub const CONV1D_GRAD_WEIGHT: Kernel = Kernel {
    entry: "conv1d_grad_weight",
    ..CONV1D_GRAD_INPUT
};

const TILE: u32 = 64;

/// Host copy of `Params` in `conv_grad.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GradParams {
    cin: u32,
    cout: u32,
    t_in: u32,
    t_out: u32,
    k: u32,
    pad: u32,
    dil: u32,
    w_cin: u32,
    w_ci0: u32,
    w_co0: u32,
    dy_c0: u32,
    flags: u32,
    batch: u32,
    x_bstride: u32,
    dy_bstride: u32,
    _pad: u32,
}

/// One input part of a (possibly concatenated) input, as in the forward:
/// rows of `x` (or of its gradient) that are input channels
/// `ci0 .. ci0 + channels` of the weight.
#[derive(Debug, Clone, Copy)]
pub struct GradPart {
    pub slot: Slot,
    pub ci0: usize,
    pub channels: usize,
}

fn params(
    w: &ConvWeights,
    part: &GradPart,
    frames: usize,
    batch: usize,
    accumulate: bool,
) -> GradParams {
    GradParams {
        cin: part.channels as u32,
        cout: w.cout as u32,
        t_in: frames as u32,
        t_out: frames as u32,
        k: w.k as u32,
        pad: left_pad(w.k, w.dilation, w.causal) as u32,
        dil: w.dilation as u32,
        w_cin: w.cin as u32,
        w_ci0: part.ci0 as u32,
        w_co0: 0,
        dy_c0: 0,
        flags: accumulate as u32,
        batch: batch as u32,
        x_bstride: (part.channels * frames) as u32,
        dy_bstride: (w.cout * frames) as u32,
        _pad: 0,
    }
}

/// `dx (+)= ∂L/∂x` of a same-padded convolution over `batch` windows of
/// `frames` frames, for the input part `dx` describes (`[batch, channels,
/// frames]`); `dy` is `[batch, C_out, frames]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_grad_input(
    g: &mut Graph,
    w: &ConvWeights,
    dy: Slot,
    dx: GradPart,
    frames: usize,
    batch: usize,
    accumulate: bool,
) {
    let p = params(w, &dx, frames, batch, accumulate);
    g.dispatch(
        &CONV1D_GRAD_INPUT,
        &[w.weight, dy, dx.slot],
        bytemuck::bytes_of(&p),
        [
            groups(frames, TILE),
            groups(dx.channels, TILE),
            batch as u32,
        ],
    );
}

/// `dw[:, ci0 .. ci0 + channels, :] (+)= ∂L/∂w` from the input part `x`,
/// summed over the `batch` windows; `dw` has the weight's `[C_out, C_in,
/// k]` layout.
#[allow(clippy::too_many_arguments)]
pub fn conv_grad_weight(
    g: &mut Graph,
    w: &ConvWeights,
    x: GradPart,
    dy: Slot,
    dw: Slot,
    frames: usize,
    batch: usize,
    accumulate: bool,
) {
    let p = params(w, &x, frames, batch, accumulate);
    g.dispatch(
        &CONV1D_GRAD_WEIGHT,
        &[x.slot, dy, dw],
        bytemuck::bytes_of(&p),
        [groups(x.channels * w.k, TILE), groups(w.cout, TILE), 1],
    );
}
