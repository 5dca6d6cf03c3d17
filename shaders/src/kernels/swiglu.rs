//! The SwiGLU gate (`swiglu.wgsl`).

use super::{elementwise_grid, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `swiglu` in `swiglu.wgsl`.
pub const SWIGLU: Kernel = Kernel {
    file: "swiglu.wgsl",
    source: include_str!("swiglu.wgsl"),
    entry: "swiglu",
    workgroup: [256, 1, 1],
    bindings: &[Access::Read, Access::ReadWrite, Access::Uniform],
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GateParams {
    len: u32,
    block: u32,
    _pad: [u32; 2],
}

/// `y = silu(a) · b` over `x` = `[a; b]` per window, each half `block`
/// elements, `len` outputs in all (windows × `block`).
pub fn swiglu(g: &mut Graph, x: Slot, y: Slot, block: usize, len: usize) {
    let params = GateParams {
        len: len as u32,
        block: block.max(1) as u32,
        _pad: [0; 2],
    };
    g.dispatch(
        &SWIGLU,
        &[x, y],
        bytemuck::bytes_of(&params),
        elementwise_grid(len),
    );
}
