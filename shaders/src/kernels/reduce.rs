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

/// `out[0] = Σ (a − b)²` over `n` elements, through `partials`
/// (≥ [`PARTIALS`] floats): two dispatches, no atomics.
pub fn sum_sq_diff(g: &mut Graph, a: Slot, b: Slot, partials: Slot, out: Slot, n: usize) {
    let first = ReduceParams {
        n: n as u32,
        mode: 0,
        _pad: [0; 2],
    };
    g.dispatch(
        &REDUCE_SUM,
        &[a, b, partials],
        bytemuck::bytes_of(&first),
        [PARTIALS as u32, 1, 1],
    );
    let second = ReduceParams {
        n: PARTIALS as u32,
        mode: 1,
        _pad: [0; 2],
    };
    g.dispatch(
        &REDUCE_SUM,
        &[partials, partials, out],
        bytemuck::bytes_of(&second),
        [1, 1, 1],
    );
}

/// `out[0] = Σ x` over `n` elements, through `partials` (≥ [`PARTIALS`]
/// floats): the step's loss from per-frame losses.
pub fn sum(g: &mut Graph, x: Slot, partials: Slot, out: Slot, n: usize) {
    for (input, output, n, wgs) in [(x, partials, n, PARTIALS), (partials, out, PARTIALS, 1)] {
        let p = ReduceParams {
            n: n as u32,
            mode: 1,
            _pad: [0; 2],
        };
        g.dispatch(
            &REDUCE_SUM,
            &[input, input, output],
            bytemuck::bytes_of(&p),
            [wgs as u32, 1, 1],
        );
    }
}
