//! Max pooling and linear resampling along time (`pool.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `max_pool` in `pool.wgsl`.
pub const MAX_POOL: Kernel = Kernel {
    file: "pool.wgsl",
    source: include_str!("pool.wgsl"),
    entry: "max_pool",
    workgroup: [256, 1, 1],
    bindings: &[Access::Read, Access::ReadWrite, Access::Uniform],
};

/// `resample_linear` in `pool.wgsl`.
pub const RESAMPLE_LINEAR: Kernel = Kernel {
    file: "pool.wgsl",
    source: include_str!("pool.wgsl"),
    entry: "resample_linear",
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
struct PoolParams {
    channels: u32,
    t_in: u32,
    t_out: u32,
    k: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ResampleParams {
    channels: u32,
    t_in: u32,
    t_up: u32,
    t_out: u32,
    out_c0: u32,
    _pad: [u32; 3],
}

/// `y [C, ⌊t_in/k⌋] = MaxPool1d(kernel = stride = k)(x [C, t_in])`.
pub fn max_pool(g: &mut Graph, x: Slot, y: Slot, channels: usize, t_in: usize, k: usize) {
    let t_out = t_in / k;
    let params = PoolParams {
        channels: channels as u32,
        t_in: t_in as u32,
        t_out: t_out as u32,
        k: k as u32,
    };
    g.dispatch(
        &MAX_POOL,
        &[x, y],
        bytemuck::bytes_of(&params),
        [groups(t_out, 256), channels as u32, 1],
    );
}

/// The `(i0, weight bits)` table of linear resampling `t_in → t_up`
/// (`align_corners`): core's taps (computed in f64), so both sides use the
/// same f32 weights.
pub fn resample_table(t_in: usize, t_up: usize) -> Vec<u32> {
    let taps = syncseg_core::model::interp::Taps::new(t_in, t_up);
    taps.i0
        .iter()
        .zip(&taps.w)
        .flat_map(|(&i0, &w)| [i0 as u32, (w as f32).to_bits()])
        .collect()
}

/// Rows `out_c0 .. out_c0 + channels` of `y [·, t_out]` = `x [C, t_in]`
/// resampled to `t_up` frames then zero-padded on the right to `t_out`.
/// `table` is [`resample_table`]`(t_in, t_up)` on the device.
#[allow(clippy::too_many_arguments)]
pub fn resample(
    g: &mut Graph,
    x: Slot,
    table: Slot,
    y: Slot,
    channels: usize,
    t_in: usize,
    t_up: usize,
    t_out: usize,
    out_c0: usize,
) {
    let params = ResampleParams {
        channels: channels as u32,
        t_in: t_in as u32,
        t_up: t_up as u32,
        t_out: t_out as u32,
        out_c0: out_c0 as u32,
        _pad: [0; 3],
    };
    g.dispatch(
        &RESAMPLE_LINEAR,
        &[x, table, y],
        bytemuck::bytes_of(&params),
        [groups(t_out, 256), channels as u32, 1],
    );
}
