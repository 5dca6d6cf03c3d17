//! The Adam step as a kernel (`adam.wgsl`): parameters, gradients and both
//! moments stay on the device.

use super::{elementwise_grid, Access, Kernel};
use crate::graph::{Graph, ParamsId, Slot};

/// `adam_step` in `adam.wgsl`.
pub const ADAM_STEP: Kernel = Kernel {
    file: "adam.wgsl",
    source: include_str!("adam.wgsl"),
    entry: "adam_step",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::ReadWrite,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// Host copy of `Params` in `adam.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    n: u32,
    _pad0: [u32; 3],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
    _pad1: f32,
}

impl AdamParams {
    /// Step `step` (1-based) of `cfg` over `n` parameters; the bias
    /// corrections are computed in f64, as core's optimizer does.
    pub fn new(cfg: &syncseg_core::train::adam::AdamConfig, n: usize, step: u64) -> Self {
        let t = step.min(i32::MAX as u64) as i32;
        AdamParams {
            n: n as u32,
            _pad0: [0; 3],
            lr: cfg.lr as f32,
            beta1: cfg.beta1 as f32,
            beta2: cfg.beta2 as f32,
            eps: cfg.eps as f32,
            weight_decay: cfg.weight_decay as f32,
            bc1: (1.0 - cfg.beta1.powi(t)) as f32,
            bc2: (1.0 - cfg.beta2.powi(t)) as f32,
            _pad1: 0.0,
        }
    }
}

/// The device state of one parameter buffer: `n` floats of parameters and
/// gradient, and the two moments.
#[derive(Debug, Clone, Copy)]
pub struct AdamSlots {
    pub theta: Slot,
    pub grad: Slot,
    pub m: Slot,
    pub v: Slot,
    pub n: usize,
}

/// Records one Adam step; the returned parameter block is rewritten with
/// [`Graph::set_params`] and a new [`AdamParams`] before each replay.
pub fn adam_step(g: &mut Graph, s: &AdamSlots, params: &AdamParams) -> ParamsId {
    g.dispatch(
        &ADAM_STEP,
        &[s.theta, s.grad, s.m, s.v],
        bytemuck::bytes_of(params),
        elementwise_grid(s.n),
    )
}
