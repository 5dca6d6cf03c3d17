//! Gradients of max pooling and linear resampling (`pool_grad.wgsl`).

use super::{groups, Access, Kernel};
use crate::graph::{Graph, Slot};

/// `max_pool_grad` in `pool_grad.wgsl`.
pub const MAX_POOL_GRAD: Kernel = Kernel {
    file: "pool_grad.wgsl",
    source: include_str!("pool_grad.wgsl"),
    entry: "max_pool_grad",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// `resample_linear_grad` in `pool_grad.wgsl`.
pub const RESAMPLE_LINEAR_GRAD: Kernel = Kernel {
    entry: "resample_linear_grad",
    ..MAX_POOL_GRAD
};

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MaxPoolGradParams {
    channels: u32,
    t_in: u32,
    t_out: u32,
    k: u32,
    flags: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ResampleGradParams {
    channels: u32,
    t_in: u32,
    t_up: u32,
    t_out: u32,
    dy_c0: u32,
    flags: u32,
    _pad: [u32; 2],
}

/// `dx [C, t_in] (+)= ∂L/∂x` of `y = max_pool(x, k)` from `dy [C, ⌊t_in/k⌋]`.
#[allow(clippy::too_many_arguments)]
pub fn max_pool_grad(
    g: &mut Graph,
    x: Slot,
    y: Slot,
    dy: Slot,
    dx: Slot,
    channels: usize,
    t_in: usize,
    k: usize,
    accumulate: bool,
) {
    let p = MaxPoolGradParams {
        channels: channels as u32,
        t_in: t_in as u32,
        t_out: (t_in / k) as u32,
        k: k as u32,
        flags: accumulate as u32,
        _pad: [0; 3],
    };
    g.dispatch(
        &MAX_POOL_GRAD,
        &[x, y, dy, dx],
        bytemuck::bytes_of(&p),
        [groups(t_in, 256), channels as u32, 1],
    );
}

/// For each source frame `i` of a `t_in → t_up` resampling, the first
/// output frame whose left source index is ≥ `i` (`t_in + 1` entries, the
/// last `t_up`); built from the same f64 arithmetic as
/// [`super::pool::resample_table`].
pub fn resample_grad_starts(t_in: usize, t_up: usize) -> Vec<u32> {
    let table = super::pool::resample_table(t_in, t_up);
    let mut starts = Vec::with_capacity(t_in + 1);
    for j in 0..t_up {
        // i0 is non-decreasing in j: frame j starts every index up to its i0.
        let i0 = table[2 * j] as usize;
        while starts.len() <= i0 {
            starts.push(j as u32);
        }
    }
    starts.resize(t_in + 1, t_up as u32);
    starts
}

/// `dx [C, t_in] (+)= ∂L/∂x` of [`super::pool::resample`] from rows
/// `dy_c0 ..` of `dy [·, t_out]`; `table` and `starts` are
/// [`super::pool::resample_table`] and [`resample_grad_starts`] of
/// `(t_in, t_up)` on the device.
#[allow(clippy::too_many_arguments)]
pub fn resample_grad(
    g: &mut Graph,
    dy: Slot,
    table: Slot,
    starts: Slot,
    dx: Slot,
    channels: usize,
    t_in: usize,
    t_up: usize,
    t_out: usize,
    dy_c0: usize,
    accumulate: bool,
) {
    let p = ResampleGradParams {
        channels: channels as u32,
        t_in: t_in as u32,
        t_up: t_up as u32,
        t_out: t_out as u32,
        dy_c0: dy_c0 as u32,
        flags: accumulate as u32,
        _pad: [0; 2],
    };
    g.dispatch(
        &RESAMPLE_LINEAR_GRAD,
        &[dy, table, starts, dx],
        bytemuck::bytes_of(&p),
        [groups(t_in, 256), channels as u32, 1],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_the_first_frame_of_each_source_index() {
        for (t_in, t_up) in [(1, 1), (1, 5), (3, 7), (7, 3), (5, 5), (12, 384), (400, 13)] {
            let table = crate::kernels::pool::resample_table(t_in, t_up);
            let starts = resample_grad_starts(t_in, t_up);
            assert_eq!(starts.len(), t_in + 1);
            for (i, &start) in starts.iter().enumerate() {
                let want = (0..t_up)
                    .find(|&j| table[2 * j] as usize >= i)
                    .unwrap_or(t_up);
                assert_eq!(start as usize, want, "{t_in}→{t_up}, i = {i}");
            }
        }
    }
}
