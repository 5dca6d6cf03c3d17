//! Training: losses, the optimiser, windows, the shared epoch loop, and the
//! supervised and distillation objectives.

pub mod adam;
pub mod alignment;
pub mod budget;
pub mod data;
pub mod distill;
pub mod feature_distill;
pub mod fit;
pub mod log;
pub mod losses;
pub mod objective;
pub mod run_dir;
pub mod step;
pub mod supervised;
pub mod uda;
pub mod windows;

use candle_core::Var;

use crate::model::SegModel;

/// The variables an optimiser updates: every weight and bias, not the
/// BatchNorm running statistics nor the reference's unused `weights`.
pub fn trainable_vars(model: &SegModel) -> Vec<(String, Var)> {
    let data = model.varmap.data().lock().expect("varmap poisoned");
    data.iter()
        .filter(|(name, _)| {
            !name.ends_with(".running_mean")
                && !name.ends_with(".running_var")
                && name.as_str() != "weights"
        })
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect()
}
