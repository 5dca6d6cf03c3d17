//! How the test suites find their device: the one place that decides
//! whether a GPU test runs, skips or fails.
//!
//! Without a wgpu adapter a GPU test skips, saying why. `bash
//! scripts/test.sh` installs Mesa's lavapipe (a CPU Vulkan driver) and sets
//! `SYNCSEG_REQUIRE_GPU=1`, so in CI a missing adapter is a failure, not a
//! silent skip.

use std::sync::{Arc, OnceLock};

use crate::gpu::Gpu;

/// The variable that turns a missing adapter into a failure.
pub const REQUIRE_GPU: &str = "SYNCSEG_REQUIRE_GPU";

/// The process's test device (created once), or `None` when there is no
/// adapter and [`REQUIRE_GPU`] is unset; the reason is printed once.
///
/// # Panics
/// When there is no adapter and [`REQUIRE_GPU`] is set.
pub fn device() -> Option<Arc<Gpu>> {
    static GPU: OnceLock<Result<Arc<Gpu>, String>> = OnceLock::new();
    let found = GPU.get_or_init(|| {
        let gpu = pollster::block_on(Gpu::new()).map_err(|e| e.to_string())?;
        eprintln!("adapter: {}", gpu.describe());
        Ok(Arc::new(gpu))
    });
    match found {
        Ok(gpu) => Some(gpu.clone()),
        Err(e) if std::env::var_os(REQUIRE_GPU).is_some() => {
            panic!("{e} ({REQUIRE_GPU} is set)")
        }
        Err(e) => {
            static TOLD: OnceLock<()> = OnceLock::new();
            TOLD.get_or_init(|| {
                eprintln!("skipped: no wgpu adapter ({e}); bash scripts/test.sh installs one")
            });
            None
        }
    }
}
