//! What the host knows of one WGSL entry point: its source, workgroup size
//! and bindings. A leaf module: the graph recorder and the GPU context use
//! it without depending on the kernels that declare themselves with it.

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
