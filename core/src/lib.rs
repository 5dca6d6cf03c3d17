//! syncseg-core: exocentric-to-egocentric temporal action segmentation (TAS)
//! by knowledge distillation from unlabeled, time-synchronized exo/ego pairs
//! (Quattrocchi et al., "Synchronization is All You Need", ECCV 2024).
//!
//! This crate holds everything that needs no GPU: data formats, the
//! synthetic synchronized benchmark, exact TAS metrics, and (in candle) the
//! models, losses and training loops.

#![warn(missing_docs)]

pub mod batch_job;
pub mod dataset;
pub mod error;
pub mod export;
pub mod feature_data;
pub mod features;
pub mod fsio;
pub mod labels;
#[cfg(not(target_arch = "wasm32"))]
pub mod lmdb_store;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod pipeline;
pub mod predict;
pub mod report;
pub mod segments;
pub mod shard;
pub mod shard_status;
pub mod stream;
pub mod synth;
pub mod train;
pub mod video_features;
pub mod video_list;
pub mod vision;

pub use error::{Error, Result};
