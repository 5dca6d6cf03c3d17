//! The WGSL kernels, one file per family, each beside the Rust that
//! describes its entry points (workgroup size, bindings) and encodes its
//! dispatches. The descriptions here are the single source of truth for the
//! host side; a test checks each against what naga reads from the shader.

pub mod attention;
pub mod conv;
pub mod copy;
pub mod ensemble;
pub mod layer_norm;
pub mod pool;
pub mod reduce;
pub mod swiglu;

/// How a kernel binds one resource (group 0, binding = index in the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>`
    ReadWrite,
    /// `var<uniform>` (the dispatch's parameters; always last)
    Uniform,
}

/// One compute entry point.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// The `.wgsl` file it lives in (relative to `shaders/src/kernels`).
    pub file: &'static str,
    /// The WGSL source.
    pub source: &'static str,
    /// The entry point's name.
    pub entry: &'static str,
    /// `@workgroup_size`.
    pub workgroup: [u32; 3],
    /// Bindings 0, 1, … of group 0.
    pub bindings: &'static [Access],
}

/// Every kernel, for pipeline creation and validation.
pub const ALL: &[Kernel] = &[
    conv::CONV1D,
    pool::MAX_POOL,
    pool::RESAMPLE_LINEAR,
    copy::COPY_WINDOW,
    ensemble::ENSEMBLE_HEAD,
    layer_norm::LAYER_NORM,
    attention::ATTENTION,
    reduce::REDUCE_SUM,
    swiglu::SWIGLU,
];

/// Number of workgroups of `size` that cover `n` items.
pub(crate) fn groups(n: usize, size: u32) -> u32 {
    n.div_ceil(size as usize) as u32
}
