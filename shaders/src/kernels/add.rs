//! Element-wise add, with an optional dropout mask (`add.wgsl`).

use super::{elementwise_grid, Access, Kernel};
use crate::graph::{Graph, ParamsId, Slot};

/// `add_into` in `add.wgsl`.
pub const ADD_INTO: Kernel = Kernel {
    file: "add.wgsl",
    source: include_str!("add.wgsl"),
    entry: "add_into",
    workgroup: [256, 1, 1],
    bindings: &[Access::Read, Access::ReadWrite, Access::Uniform],
};

/// Host copy of `Params` in `add.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AddParams {
    n: u32,
    flags: u32,
    seed: u32,
    p: f32,
}

impl AddParams {
    /// `out (+)= x` over `n` elements.
    pub fn new(n: usize, accumulate: bool) -> Self {
        AddParams {
            n: n as u32,
            flags: accumulate as u32,
            seed: 0,
            p: 0.0,
        }
    }

    /// With the dropout mask of stream `seed` and drop probability `p`
    /// (core's `model::dropout::keep`).
    pub fn dropout(self, seed: u32, p: f32) -> Self {
        AddParams {
            flags: self.flags | 2,
            seed,
            p,
            ..self
        }
    }
}

/// Records `out (+)= x · mask` as `params` say; returns the parameter block
/// (a dropout's seed is rewritten every step).
pub fn add_into(g: &mut Graph, x: Slot, out: Slot, params: AddParams) -> ParamsId {
    g.dispatch(
        &ADD_INTO,
        &[x, out],
        bytemuck::bytes_of(&params),
        elementwise_grid(params.n as usize),
    )
}
