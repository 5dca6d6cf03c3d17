//! Shared by the GPU tests: one device per test binary, random data.

#![allow(dead_code)]

use std::sync::Arc;

use rand::{Rng, SeedableRng};
pub use syncseg_core::model::tolerance::Tolerance;
use syncseg_shaders::graph::{Graph, Slot};
use syncseg_shaders::Gpu;

/// The test device, or `None` (the reason printed) when there is none:
/// see [`syncseg_shaders::testing`].
pub fn try_gpu() -> Option<Arc<Gpu>> {
    syncseg_shaders::testing::device()
}

/// The test device (after [`skip_without_gpu!`]).
pub fn gpu() -> Arc<Gpu> {
    try_gpu().expect("a test without skip_without_gpu!() needs a wgpu adapter")
}

/// Returns from the test, with the reason printed, when there is no wgpu
/// adapter (see [`try_gpu`]).
#[macro_export]
macro_rules! skip_without_gpu {
    () => {
        if $crate::common::try_gpu().is_none() {
            return;
        }
    };
}

/// Records with `build`, runs, and reads back `n` floats of the slot it returns.
pub fn run(build: impl FnOnce(&mut Graph) -> (Slot, usize)) -> Vec<f32> {
    let gpu = gpu();
    let mut g = Graph::new(gpu.clone());
    let (out, n) = build(&mut g);
    g.submit();
    pollster::block_on(gpu.read(g.buffer(out), n)).unwrap()
}

/// `n` values uniform in [-1, 1).
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Asserts `got` is within `tol` of the f64 reference `want` (rounded to
/// f32), by the one rule of [`Tolerance`].
pub fn assert_close(got: &[f32], want: &[f64], tol: Tolerance, what: &str) {
    let want: Vec<f32> = want.iter().map(|&w| w as f32).collect();
    if let Err(e) = tol.check(got, &want, what) {
        panic!("{e}");
    }
}
