//! The `syncseg` Python module (its native part, `syncseg._syncseg`):
//! core's pipeline (train, distill), models and predictions over NumPy
//! arrays (and the files `syncseg predict` writes), the label-free
//! held-out pair loss, the exact TAS metrics, the synthetic benchmark and
//! the editor exporters. The pure-Python package around it (`python/syncseg`) adds
//! the tqdm bar and re-exports everything here.
//!
//! Jobs take keyword arguments named as the command line's flags with
//! underscores; their defaults are core's (`TrainOptions::default()` …),
//! never written again here: the arguments are read into core's serde
//! structs, so an unknown or mistyped one is refused by name.

mod arrays;
mod convert;
mod errors;
mod jobs;
mod metrics;
mod model;
mod pairs;
mod stream;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _syncseg(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<model::Model>()?;
    m.add_class::<model::Prediction>()?;
    m.add_class::<stream::Stream>()?;
    m.add_function(wrap_pyfunction!(jobs::train, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::distill, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::defaults, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::synth, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::load_features, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::list_videos, m)?)?;
    m.add_function(wrap_pyfunction!(model::export, m)?)?;
    m.add_function(wrap_pyfunction!(model::output_paths, m)?)?;
    m.add_function(wrap_pyfunction!(pairs::pair_loss, m)?)?;
    Ok(())
}
