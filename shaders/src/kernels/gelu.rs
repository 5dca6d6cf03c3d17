//! Exact GELU and its backward for training (`gelu.wgsl`).

use super::{elementwise_grid, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `gelu` in `gelu.wgsl`.
pub const GELU: Kernel = Kernel {
    file: "gelu.wgsl",
    source: include_str!("gelu.wgsl"),
    entry: "gelu",
    workgroup: [256, 1, 1],
    bindings: &[Access::Read, Access::ReadWrite, Access::Uniform],
};

/// `gelu_grad` in `gelu.wgsl`.
pub const GELU_GRAD: Kernel = Kernel {
    entry: "gelu_grad",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
    ..GELU
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GeluParams {
    n: u32,
    flags: u32,
    _pad: [u32; 2],
}

/// `y = gelu(z)` over `n` elements.
pub fn gelu(g: &mut Graph, z: Slot, y: Slot, n: usize) {
    let p = GeluParams {
        n: n as u32,
        flags: 0,
        _pad: [0; 2],
    };
    g.dispatch(&GELU, &[z, y], bytemuck::bytes_of(&p), elementwise_grid(n));
}

/// `dz (+)= dy · gelu'(z)` over `n` elements.
pub fn gelu_grad(g: &mut Graph, z: Slot, dy: Slot, dz: Slot, n: usize, accumulate: bool) {
    let p = GeluParams {
        n: n as u32,
        flags: accumulate as u32,
        _pad: [0; 2],
    };
    g.dispatch(
        &GELU_GRAD,
        &[z, dy, dz],
        bytemuck::bytes_of(&p),
        elementwise_grid(n),
    );
}
