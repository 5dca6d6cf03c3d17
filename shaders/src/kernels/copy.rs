//! Window extraction with zero padding (`copy.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, ParamsId, Slot};

/// `copy_window` in `copy.wgsl`.
pub const COPY_WINDOW: Kernel = Kernel {
    file: "copy.wgsl",
    source: include_str!("copy.wgsl"),
    entry: "copy_window",
    workgroup: [256, 1, 1],
    bindings: &[Access::Read, Access::ReadWrite, Access::Uniform],
};

/// Host copy of `WindowParams` in `copy.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WindowParams {
    pub rows: u32,
    pub src_stride: u32,
    pub src_t0: u32,
    pub len: u32,
    pub dst_t: u32,
    /// 1 for a window; `n` to take every `n`-th frame.
    pub src_step: u32,
    /// Destination frame of the first copied frame (frames before it are
    /// zero too).
    pub dst_t0: u32,
    pub _pad: u32,
}

/// `dst [rows, dst_t]`: frame `dst_t0 + i` = frame `src_t0 + i·src_step`
/// (`i < len`) of `src [rows, src_stride]`, every other frame zero. Returns the parameter block, which the caller rewrites
/// per window ([`Graph::set_params`]).
pub fn copy_window(g: &mut Graph, src: Slot, dst: Slot, params: WindowParams) -> ParamsId {
    g.dispatch(
        &COPY_WINDOW,
        &[src, dst],
        bytemuck::bytes_of(&params),
        [groups(params.dst_t as usize, 256), params.rows, 1],
    )
}
