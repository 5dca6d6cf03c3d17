//! The segmentation model: C2F-TCN in candle, and its on-disk form; the
//! feature-distillation adapter.

pub mod adapter;
pub mod batch_norm;
pub mod c2f_tcn;
pub mod checkpoint;
pub mod config;
#[cfg(test)]
pub(crate) mod gradcheck;
pub mod interp;
pub mod pth;

pub use adapter::{Adapter, AdapterConfig};
pub use c2f_tcn::{C2fOutput, C2fTcn, Mode, MIN_FRAMES};
pub use checkpoint::{ModelMeta, SegModel};
pub use config::C2fConfig;
