//! The SwiGLU gate (`swiglu.wgsl`).

use super::{elementwise_grid, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `swiglu` in `swiglu.wgsl`.
pub const SWIGLU: Kernel = Kernel {
    file: "swiglu.wgsl",
    source: include_str!("swiglu.wgsl"),
    entry: "swiglu",
    workgroup: [256, 1, 1],
    bindings: &[Access::ReadWrite, Access::Read, Access::Uniform],
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GateParams {
    len: u32,
    _pad: [u32; 3],
}

/// `a = silu(a) · b` over the first `len` elements.
pub fn swiglu(g: &mut Graph, a: Slot, b: Slot, len: usize) {
    let params = GateParams {
        len: len as u32,
        _pad: [0; 3],
    };
    g.dispatch(
        &SWIGLU,
        &[a, b],
        bytemuck::bytes_of(&params),
        elementwise_grid(len),
    );
}
