//! Errors of the wgpu executor.

/// What can go wrong on the GPU path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No wgpu adapter (no GPU driver, no Vulkan/Metal/DX12, no WebGPU).
    #[error("no GPU adapter found ({0}); on Linux without a GPU install Mesa's lavapipe: apt-get install -y mesa-vulkan-drivers libvulkan1")]
    NoAdapter(String),
    /// The adapter refused the device (limits or features).
    #[error("the GPU adapter refused a device: {0}")]
    Device(String),
    /// A validation, out-of-memory or device-lost error reported by wgpu.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A tensor or model outside what the kernels or the device's limits take.
    #[error("{0}")]
    Unsupported(String),
    /// From the model side (loading, shapes).
    #[error(transparent)]
    Core(#[from] syncseg_core::Error),
    /// From candle, while reading weights.
    #[error("reading weights: {0}")]
    Candle(candle_core::Error),
}

// By hand rather than `#[from]`, which would also make candle's error the
// `source()`: printed as a chain, its text would appear twice.
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
