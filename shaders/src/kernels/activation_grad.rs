//! Backward of the fused activations (`activation_grad.wgsl`).

use super::{elementwise_grid, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `relu_grad` in `activation_grad.wgsl`.
pub const RELU_GRAD: Kernel = Kernel {
    file: "activation_grad.wgsl",
    source: include_str!("activation_grad.wgsl"),
    entry: "relu_grad",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReluGradParams {
    n: u32,
    flags: u32,
    _pad: [u32; 2],
}

/// `dx (+)= dy · [y > 0]` over `n` elements, `y` being the ReLU's output.
pub fn relu_grad(g: &mut Graph, y: Slot, dy: Slot, dx: Slot, n: usize, accumulate: bool) {
    let p = ReluGradParams {
        n: n as u32,
        flags: accumulate as u32,
        _pad: [0; 2],
    };
    g.dispatch(
        &RELU_GRAD,
        &[y, dy, dx],
        bytemuck::bytes_of(&p),
        elementwise_grid(n),
    );
}
