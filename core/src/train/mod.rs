//! Training: losses, the optimiser, and the supervised and distillation loops.

pub mod adam;
pub mod losses;
