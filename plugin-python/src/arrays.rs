//! Features between NumPy and core: any array-like of numbers in either
//! layout (float64, Fortran order and strided views are converted), out as
//! float32 `[D, T]` arrays that own core's buffer (no copy).

use std::collections::BTreeMap;
use std::path::PathBuf;

use numpy::{AllowTypeChange, IntoPyArray, PyArray2, PyArrayLikeDyn, PyArrayMethods};
use pyo3::prelude::*;
use syncseg_core::features::Features;
use syncseg_core::npy::FeatureLayout;

use crate::errors::{invalid, OrPy};

/// The `layout` argument: "dt" (`[D, T]`, MS-TCN's files) or "td".
pub fn parse_layout(layout: &str) -> PyResult<FeatureLayout> {
    match layout {
        "dt" => Ok(FeatureLayout::DimByTime),
        "td" => Ok(FeatureLayout::TimeByDim),
        other => Err(invalid(format!(
            "`layout` '{other}': expected \"dt\" ([D, T]) or \"td\" ([T, D])"
        ))),
    }
}

/// Argument `name` as `[D, T]` features: a 2-D array-like laid out as
/// `layout`, not empty, all finite.
pub fn features_from(
    name: &str,
    array: &PyArrayLikeDyn<'_, f32, AllowTypeChange>,
    layout: FeatureLayout,
) -> PyResult<Features> {
    let view = array.as_array();
    let shape = view.shape().to_vec();
    if shape.len() != 2 {
        return Err(invalid(format!(
            "`{name}`: expected a 2-D array ({}), got shape {shape:?}",
            match layout {
                FeatureLayout::DimByTime => "[D, T]",
                FeatureLayout::TimeByDim => "[T, D]",
            }
        )));
    }
    if shape.contains(&0) {
        return Err(invalid(format!(
            "`{name}`: an empty array (shape {shape:?})"
        )));
    }
    let view = view
        .into_dimensionality::<numpy::ndarray::Ix2>()
        .map_err(|e| invalid(format!("`{name}`: {e}")))?;
    let dt = match layout {
        FeatureLayout::DimByTime => view,
        FeatureLayout::TimeByDim => view.reversed_axes(),
    };
    let (dim, frames) = dt.dim();
    // C order whatever the input's strides (one copy, none for [D, T]
    // float32 in C order beyond this one).
    let data: Vec<f32> = dt.iter().copied().collect();
    let features = Features::new(dim, frames, data).or_py()?;
    features
        .check_finite()
        .map_err(|e| invalid(format!("`{name}`: {e}")))?;
    Ok(features)
}

/// `features` as a float32 NumPy array `[D, T]` that takes over core's
/// buffer (a mapped file's values are copied once).
pub fn features_to_numpy(py: Python<'_>, features: Features) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let (dim, frames) = (features.dim, features.frames);
    features
        .data
        .into_vec()
        .into_pyarray(py)
        .reshape([dim, frames])
}

/// Reads features: a `.npy` file (laid out as `layout`), or one video
/// (`video=`) of a folder of `<video>.npy` or of an LMDB store. Returns
/// float32 `[D, T]`.
#[pyfunction]
#[pyo3(signature = (path, *, layout = "dt", video = None))]
pub fn load_features<'py>(
    py: Python<'py>,
    path: PathBuf,
    layout: &str,
    video: Option<String>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let layout = parse_layout(layout)?;
    let features = match &video {
        Some(video) => {
            py.detach(|| syncseg_core::video_features::read_video_features(&path, video, layout))
        }
        None if path.is_dir() => {
            return Err(invalid(format!(
                "{}: a folder{}: name the video with `video=`",
                path.display(),
                if syncseg_core::video_features::is_lmdb(&path) {
                    " (an LMDB store)"
                } else {
                    ""
                }
            )))
        }
        None => py.detach(|| syncseg_core::npy::read_features(&path, layout)),
    }
    .or_py()?;
    features_to_numpy(py, features)
}

/// The videos of an LMDB feature store and their frame counts.
#[pyfunction]
pub fn list_videos(py: Python<'_>, store: PathBuf) -> PyResult<BTreeMap<String, usize>> {
    let videos = py
        .detach(|| syncseg_core::lmdb_store::list_videos(&store))
        .or_py()?;
    Ok(videos.into_iter().collect())
}
