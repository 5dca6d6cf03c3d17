//! The segmentation networks (C2F-TCN, MS-TCN++), written once over the op
//! interface; their on-disk form; the feature-distillation adapter.

pub mod adapter;
pub mod backbone;
pub mod batch_norm;
pub mod batch_norm_op;
pub mod c2f_tcn;
pub mod candle_ops;
pub mod checkpoint;
pub mod config;
pub mod cpu_conv;
pub(crate) mod cpu_float;
pub mod cpu_infer;
pub(crate) mod cpu_transformer;
pub mod declare;
pub mod dropout;
#[cfg(test)]
pub(crate) mod gradcheck;
pub mod interp;
pub mod ms_tcn;
pub mod ops;
pub mod pth;
pub mod tolerance;

pub use adapter::{Adapter, AdapterConfig};
pub use backbone::{BackboneConfig, BackboneKind, Network};
pub use c2f_tcn::{C2fOutput, C2fTcn, Mode, MIN_FRAMES};
pub use checkpoint::{ModelMeta, SegModel};
pub use config::C2fConfig;

/// Every variable of `varmap` as (name, shape), sorted (tests compare them
/// with the shapes a config implies).
#[cfg(test)]
pub(crate) fn var_shapes(varmap: &candle_nn::VarMap) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    out.sort();
    out
}
