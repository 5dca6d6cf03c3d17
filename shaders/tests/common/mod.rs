//! Shared by the GPU tests: one device per test binary, random data.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use rand::{Rng, SeedableRng};
use syncseg_shaders::graph::{Graph, Slot};
use syncseg_shaders::Gpu;

/// The test device. Without an adapter the tests fail (they do not skip):
/// `bash scripts/test.sh` installs Mesa's lavapipe, a CPU Vulkan driver.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = pollster::block_on(Gpu::new()).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("adapter: {}", gpu.describe());
        Arc::new(gpu)
    })
    .clone()
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

/// Asserts |got − want| ≤ tol·(1 + |want|) everywhere.
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(
            err <= tol * (1.0 + w.abs()),
            "{what}: element {i}: got {g}, want {w} (error {err:.3e})"
        );
    }
}
