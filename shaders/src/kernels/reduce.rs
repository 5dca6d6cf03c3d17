//! Sum-of-squared-differences reduction (`reduce.wgsl`).

use super::{Access, Kernel};
use crate::graph::{Graph, Slot};

/// `reduce_sum` in `reduce.wgsl`.
pub const REDUCE_SUM: Kernel = Kernel {
    file: "reduce.wgsl",
    source: include_str!("reduce.wgsl"),
    entry: "reduce_sum",
    workgroup: [256, 1, 1],
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::Uniform,
    ],
};

/// Workgroups of the first pass: each sums a grid-strided share of the input.
pub const PARTIALS: usize = 256;

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    n: u32,
    mode: u32,
    _pad: [u32; 2],
}

/// One pass: `mode` 0 sums (a − b)², 1 sums a, over `n` elements, one
/// partial per workgroup into `out`.
fn pass(g: &mut Graph, a: Slot, b: Slot, out: Slot, n: usize, mode: u32, workgroups: usize) {
    let p = ReduceParams {
        n: n as u32,
        mode,
        _pad: [0; 2],
    };
    g.dispatch(
        &REDUCE_SUM,
        &[a, b, out],
        bytemuck::bytes_of(&p),
        [workgroups as u32, 1, 1],
    );
}

/// `out[0] = Σ (a − b)²` over `n` elements, through `partials`
/// (≥ [`PARTIALS`] floats): two dispatches, no atomics.
pub fn sum_sq_diff(g: &mut Graph, a: Slot, b: Slot, partials: Slot, out: Slot, n: usize) {
    pass(g, a, b, partials, n, 0, PARTIALS);
    pass(g, partials, partials, out, PARTIALS, 1, 1);
}

/// `out[0] = Σ x` over `n` elements, through `partials` (≥ [`PARTIALS`]
/// floats): the step's loss from per-frame losses.
pub fn sum(g: &mut Graph, x: Slot, partials: Slot, out: Slot, n: usize) {
    pass(g, x, x, partials, n, 1, PARTIALS);
    pass(g, partials, partials, out, PARTIALS, 1, 1);
}
