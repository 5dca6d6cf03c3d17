//! syncseg-core: exocentric-to-egocentric temporal action segmentation (TAS)
//! by knowledge distillation from unlabeled, time-synchronized exo/ego pairs
//! (Quattrocchi et al., "Synchronization is All You Need", ECCV 2024).
//!
//! This crate holds everything that needs no GPU: data formats, the
//! synthetic synchronized benchmark, exact TAS metrics, and (in candle) the
//! models, losses and training loops.

#![warn(missing_docs)]

pub mod error;
pub mod fsio;
pub mod metrics;
pub mod segments;

pub use error::{Error, Result};
pub mod model;
pub mod train;
pub mod predict;
pub mod report;
