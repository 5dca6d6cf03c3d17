//! syncseg-shaders: WGSL compute kernels and the wgpu executor (to come: see the WGSL executor issue).
