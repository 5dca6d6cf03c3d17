//! `evaluate`: core's exact TAS metrics (MS-TCN's eval.py) over per-video
//! label sequences given as names or as integer ids.

use std::collections::HashMap;
use std::path::PathBuf;

use numpy::{AllowTypeChange, PyArrayLike1};
use pyo3::prelude::*;
use syncseg_core::metrics::{EvalOptions, Evaluator};

use crate::convert::to_python;
use crate::errors::{invalid, OrPy};

/// One video's labels as names: a sequence of str, or integers (named by
/// `mapping`, else by their decimal text).
fn video_labels(
    what: &str,
    item: &Bound<'_, PyAny>,
    mapping: Option<&[String]>,
) -> PyResult<Vec<String>> {
    if item.is_instance_of::<pyo3::types::PyString>() {
        return Err(invalid(format!(
            "`{what}`: a str, not a sequence of per-frame labels"
        )));
    }
    if let Ok(names) = item.extract::<Vec<String>>() {
        return Ok(names);
    }
    let ids: PyArrayLike1<'_, i64, AllowTypeChange> = item.extract().map_err(|_| {
        invalid(format!(
            "`{what}`: expected a sequence of label names (str) or of integer label ids"
        ))
    })?;
    let ids = ids.as_array();
    ids.iter().map(|&id| id_name(what, id, mapping)).collect()
}

/// The name of label id `id` (in argument `what`): `mapping`'s, else its
/// decimal text.
fn id_name(what: &str, id: i64, mapping: Option<&[String]>) -> PyResult<String> {
    match mapping {
        Some(names) => usize::try_from(id)
            .ok()
            .and_then(|i| names.get(i))
            .cloned()
            .ok_or_else(|| {
                invalid(format!(
                    "`{what}`: label id {id} is not in `mapping` ({} classes)",
                    names.len()
                ))
            }),
        None => Ok(id.to_string()),
    }
}

/// The `mapping` argument: a mapping file, or the class names in id order.
fn mapping_arg(mapping: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    let Some(m) = mapping else { return Ok(None) };
    if m.is_none() {
        return Ok(None);
    }
    if let Ok(names) = m.extract::<Vec<String>>() {
        if !m.is_instance_of::<pyo3::types::PyString>() {
            return Ok(Some(names));
        }
    }
    let path: PathBuf = m.extract().map_err(|_| {
        invalid(
            "`mapping`: give a mapping file (mapping.txt, mapping.csv) or a list of class names",
        )
    })?;
    Ok(Some(
        syncseg_core::labels::Mapping::read(&path)
            .or_py()?
            .names()
            .to_vec(),
    ))
}

/// Scores predictions against ground truth as MS-TCN's eval.py does: Edit,
/// F1@{10,25,50} and MoF (all ·100) and the number of videos.
#[pyfunction]
#[pyo3(signature = (gt, pred, *, background = Vec::new(), drop_background_frames = false, mapping = None))]
pub fn evaluate(
    py: Python<'_>,
    gt: &Bound<'_, PyAny>,
    pred: &Bound<'_, PyAny>,
    background: Vec<Bound<'_, PyAny>>,
    drop_background_frames: bool,
    mapping: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let mapping = mapping_arg(mapping)?;
    let gts: Vec<Bound<'_, PyAny>> = gt.try_iter()?.collect::<PyResult<_>>()?;
    let preds: Vec<Bound<'_, PyAny>> = pred.try_iter()?.collect::<PyResult<_>>()?;
    if gts.len() != preds.len() {
        return Err(invalid(format!(
            "`gt` has {} videos but `pred` has {}",
            gts.len(),
            preds.len()
        )));
    }
    // Names to dense ids shared by both sides and the background.
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut intern = |names: Vec<String>| -> Vec<u32> {
        names
            .into_iter()
            .map(|n| {
                let next = ids.len() as u32;
                *ids.entry(n).or_insert(next)
            })
            .collect()
    };
    let mut bg = Vec::new();
    for (i, b) in background.iter().enumerate() {
        let name = if let Ok(s) = b.extract::<String>() {
            s
        } else if let Ok(id) = b.extract::<i64>() {
            id_name(&format!("background[{i}]"), id, mapping.as_deref())?
        } else {
            return Err(invalid(format!(
                "`background`[{i}]: a label name (str) or id (int)"
            )));
        };
        bg.push(name);
    }
    let background = intern(bg);
    let mut eval = Evaluator::new(EvalOptions {
        background,
        drop_background_frames,
    });
    for (v, (g, p)) in gts.iter().zip(&preds).enumerate() {
        let g = intern(video_labels(&format!("gt[{v}]"), g, mapping.as_deref())?);
        let p = intern(video_labels(&format!("pred[{v}]"), p, mapping.as_deref())?);
        if g.len() != p.len() {
            return Err(invalid(format!(
                "video {v}: `gt` has {} frames but `pred` has {}",
                g.len(),
                p.len()
            )));
        }
        eval.add_video(&g, &p)
            .map_err(|e| invalid(format!("video {v}: {e}")))?;
    }
    let scores = serde_json::to_value(eval.finish()).map_err(|e| invalid(e.to_string()))?;
    to_python(py, &scores)
}
