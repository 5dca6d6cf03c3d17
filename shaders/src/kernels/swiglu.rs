//! The SwiGLU gate (`swiglu.wgsl`).

use super::{Access, Kernel};
use crate::graph::{Graph, Slot};

/// `swiglu` in `swiglu.wgsl`.
pub const SWIGLU: Kernel = Kernel {
    file: "swiglu.wgsl",
    source: include_str!("swiglu.wgsl"),
    entry: "swiglu",
    workgroup: [256, 1, 1],
    bindings: &[Access::ReadWrite, Access::Read, Access::Uniform],
};

/// Workgroups per row of the 2-D grid (WebGPU allows 65535 per dimension).
const ROW: usize = 4096;

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
    let wgs = len.div_ceil(256).max(1);
    let (x, y) = if wgs <= ROW {
        (wgs, 1)
    } else {
        (ROW, wgs.div_ceil(ROW))
    };
    g.dispatch(
        &SWIGLU,
        &[a, b],
        bytemuck::bytes_of(&params),
        [x as u32, y as u32, 1],
    );
}
