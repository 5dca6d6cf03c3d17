//! syncseg-shaders: WGSL compute kernels and a wgpu executor for syncseg
//! models, natively (Vulkan, Metal, DX12) and in browsers (WebGPU).
//!
//! * [`kernels`] — one `.wgsl` file per kernel family beside the Rust that
//!   describes its bindings and records its dispatches;
//! * [`gpu`] — adapter, limits, pipelines (created once), async readback;
//! * [`graph`] — recorded dispatch sequences replayed per window;
//! * [`ops`] — core's op interface on wgpu: the networks written once in
//!   core recorded as graphs (inference, and training with a backward tape);
//! * [`train`] — a network's training step (forward, backward, Adam) on the device;
//! * [`segmenter`] — frame-wise prediction agreeing with the CPU path;
//! * [`vit`] — DINOv2 frame features (the CLS token) agreeing with the CPU model.
//!
//! Layout convention: activations are channel-major `[B, C, T]` f32, as the
//! features on disk; a linear layer is a 1×1 temporal convolution.

// Times with `Instant` and blocks on readbacks: native only.
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod kernel;
pub mod kernels;
pub mod ops;
pub mod segmenter;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod train;
pub mod vit;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use segmenter::WgpuSegmenter;
pub use vit::WgpuVit;
