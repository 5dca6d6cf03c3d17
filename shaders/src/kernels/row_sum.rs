//! Per-row sums over time (`row_sum.wgsl`): bias gradients, BatchNorm's
//! per-channel sums.

use super::{Access, Kernel};
use crate::graph::{Graph, Slot};

/// `row_sum` in `row_sum.wgsl`.
pub const ROW_SUM: Kernel = Kernel {
    file: "row_sum.wgsl",
    source: include_str!("row_sum.wgsl"),
    entry: "row_sum",
    workgroup: [256, 1, 1],
    bindings: &[Access::Read, Access::ReadWrite, Access::Uniform],
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowSumParams {
    t_len: u32,
    row0: u32,
    out0: u32,
    flags: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// `out[out0 + r] (+)= scale · Σ_t x[row0 + r, t]` for `rows` rows of
/// `t_len` frames.
#[allow(clippy::too_many_arguments)]
pub fn row_sum(
    g: &mut Graph,
    x: Slot,
    row0: usize,
    rows: usize,
    t_len: usize,
    out: Slot,
    out0: usize,
    scale: f32,
    accumulate: bool,
) {
    let p = RowSumParams {
        t_len: t_len as u32,
        row0: row0 as u32,
        out0: out0 as u32,
        flags: accumulate as u32,
        scale,
        _pad: [0; 3],
    };
    g.dispatch(
        &ROW_SUM,
        &[x, out],
        bytemuck::bytes_of(&p),
        [rows as u32, 1, 1],
    );
}
