//! `Model` (a loaded segmentation model), its `Prediction`s, and `export`
//! of segments to the editor formats.

use std::path::PathBuf;

use numpy::{AllowTypeChange, IntoPyArray, PyArray1, PyArray2, PyArrayLikeDyn, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use syncseg_core::export::{render, ExportFormat, ExportOptions, FrameRate};
use syncseg_core::model::SegModel;
use syncseg_core::pipeline::predict::{output_paths as output_paths_of, write_outputs};
use syncseg_core::pipeline::PredictOptions;
use syncseg_core::predict::{PredictedSegment, Prediction as CorePrediction};

use crate::arrays::{features_from, parse_layout};
use crate::errors::{invalid, OrPy};

/// A segmentation model (C2F-TCN or MS-TCN++, with its feature adapter if
/// distilled at the feature level), loaded on the CPU.
#[pyclass(module = "syncseg", frozen)]
pub struct Model {
    inner: SegModel,
    path: Option<PathBuf>,
}

impl Model {
    pub fn new(inner: SegModel, path: Option<PathBuf>) -> Self {
        Model { inner, path }
    }

    /// The loaded model.
    pub fn inner(&self) -> &SegModel {
        &self.inner
    }

    /// `pred` as a Python `Prediction`.
    fn to_python(&self, py: Python<'_>, pred: CorePrediction) -> PyResult<Prediction> {
        let names: Vec<String> = pred
            .labels
            .iter()
            .map(|&l| self.inner.meta.classes[l as usize].clone())
            .collect();
        let segments = pred.segments(&self.inner.meta.classes);
        let (k, t) = (pred.classes, pred.labels.len());
        let labels: Vec<i32> = pred.labels.iter().map(|&l| l as i32).collect();
        Ok(Prediction {
            labels: labels.into_pyarray(py).unbind(),
            probs: pred.probs.into_pyarray(py).reshape([k, t])?.unbind(),
            names,
            segments,
        })
    }

    /// Argument `prediction` as core's, checked against this model's
    /// classes.
    fn core_prediction(&self, py: Python<'_>, pred: &Prediction) -> PyResult<CorePrediction> {
        let probs = pred.probs.bind(py);
        let dims = probs.dims();
        let (k, t) = (dims[0], dims[1]);
        let probs = probs.to_vec()?;
        let classes = self.inner.meta.classes.len();
        if k != classes {
            return Err(invalid(format!(
                "`prediction`: {k} classes, but the model has {classes}"
            )));
        }
        let labels = pred.labels.bind(py).to_vec()?;
        if labels.len() != t {
            return Err(invalid(format!(
                "`prediction`: {} labels for {t} frames of probabilities",
                labels.len()
            )));
        }
        let labels = labels
            .iter()
            .map(|&l| {
                u32::try_from(l)
                    .ok()
                    .filter(|&l| (l as usize) < classes)
                    .ok_or_else(|| {
                        invalid(format!(
                            "`prediction`: label {l} is not a class of the model"
                        ))
                    })
            })
            .collect::<PyResult<Vec<u32>>>()?;
        Ok(CorePrediction {
            probs,
            classes: k,
            labels,
        })
    }
}

/// What `Model.write_outputs` writes from.
enum Source {
    Prediction(CorePrediction),
    Features(syncseg_core::features::Features),
}

/// The `export`/`fps`/`save_probs` arguments as core's predict options.
fn predict_options(
    export: Option<&str>,
    fps: Option<&str>,
    save_probs: bool,
) -> PyResult<PredictOptions> {
    let export = export
        .map(|f| f.parse::<ExportFormat>())
        .transpose()
        .map_err(|e| invalid(format!("`export`: {e}")))?;
    let fps = fps
        .map(|f| f.parse::<FrameRate>())
        .transpose()
        .map_err(|e| invalid(format!("`fps`: {e}")))?;
    if export.is_some() && fps.is_none() {
        return Err(invalid("`export` needs `fps` (the video's frame rate)"));
    }
    Ok(PredictOptions {
        save_probs,
        export,
        fps,
        ..PredictOptions::default()
    })
}

/// The files `syncseg predict` (and `Model.write_outputs`) writes for
/// `video` under `out` with these options: a video whose files all exist
/// is finished, which is how reruns skip it.
#[pyfunction]
#[pyo3(signature = (out, video, *, export = None, fps = None, save_probs = false))]
pub fn output_paths(
    out: PathBuf,
    video: &str,
    export: Option<&str>,
    fps: Option<&str>,
    save_probs: bool,
) -> PyResult<Vec<PathBuf>> {
    syncseg_core::labels::check_video_name(video).map_err(|e| invalid(format!("`video`: {e}")))?;
    let options = predict_options(export, fps, save_probs)?;
    Ok(output_paths_of(&out, video, &options))
}

/// Each of core's notes on an export as a Python `UserWarning`.
fn warn_all(py: Python<'_>, notes: &[String]) -> PyResult<()> {
    let warning = py.get_type::<pyo3::exceptions::PyUserWarning>();
    for note in notes {
        PyErr::warn(py, &warning, &std::ffi::CString::new(note.as_str())?, 1)?;
    }
    Ok(())
}

#[pymethods]
impl Model {
    /// Loads a model directory or a `.syncseg` bundle.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
        let inner = py
            .detach(|| SegModel::load(&path, &candle_core::Device::Cpu))
            .or_py()?;
        Ok(Model::new(inner, Some(path)))
    }

    /// Imports a reference PyTorch C2F-TCN state dict (`torch.save` of the
    /// sync paper's release or C2F-TCN's code) — `syncseg import`.
    #[staticmethod]
    #[pyo3(signature = (pth, *, mapping = None, window_frames = 600))]
    fn import_pth(
        py: Python<'_>,
        pth: PathBuf,
        mapping: Option<PathBuf>,
        window_frames: usize,
    ) -> PyResult<Model> {
        let classes = match &mapping {
            Some(p) => Some(
                syncseg_core::labels::Mapping::read(p)
                    .or_py()?
                    .names()
                    .to_vec(),
            ),
            None => None,
        };
        let mut inner = py
            .detach(|| SegModel::import_pth(&pth, classes, &candle_core::Device::Cpu))
            .or_py()?;
        inner.meta.window_frames = window_frames.max(1);
        Ok(Model::new(inner, None))
    }

    /// Writes the model: a directory, or one `.syncseg` file when `path`
    /// ends so.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let bundle = path.extension().is_some_and(|e| e == "syncseg");
        py.detach(|| {
            if bundle {
                self.inner.save_bundle(&path)
            } else {
                self.inner.save(&path)
            }
        })
        .or_py()
    }

    /// The class names, by label id.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.inner.meta.classes.clone()
    }

    /// The feature dimension D the model takes.
    #[getter]
    fn input_dim(&self) -> usize {
        self.inner.meta.backbone.input_dim()
    }

    /// "c2f-tcn" or "ms-tcn".
    #[getter]
    fn backbone(&self) -> String {
        self.inner.meta.backbone.kind().to_string()
    }

    /// Where the model was loaded from (None for an import not yet saved).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// Segments one video: `features` `[D, T]` ("dt") or `[T, D]` ("td"),
    /// any float dtype and memory order.
    #[pyo3(signature = (features, *, layout = "dt", device = "cpu"))]
    fn predict(
        &self,
        py: Python<'_>,
        features: PyArrayLikeDyn<'_, f32, AllowTypeChange>,
        layout: &str,
        device: &str,
    ) -> PyResult<Prediction> {
        if device != "cpu" {
            return Err(invalid(format!(
                "`device` '{device}': the Python package runs on the CPU (\"cpu\"); the GPU backend is the command line's `--device wgpu`"
            )));
        }
        let features = features_from("features", &features, parse_layout(layout)?)?;
        let pred = py
            .detach(|| syncseg_core::predict::predict(&self.inner, &features))
            .map_err(|e| invalid(format!("`features`: {e}")))?;
        self.to_python(py, pred)
    }

    /// A live segmentation of one video (`syncseg predict --stream`): the
    /// model must be causal (trained with `causal_lookahead`, an
    /// MS-TCN++ without a feature adapter).
    fn stream(&self) -> PyResult<crate::stream::Stream> {
        syncseg_core::stream::Stream::new(&self.inner)
            .map(crate::stream::Stream::new)
            .map_err(|e| invalid(e.to_string()))
    }

    /// Writes the files `syncseg predict` writes for one video, byte for
    /// byte, into `out` (created if missing): `<video>.txt` (a class name
    /// a frame), `<video>.segments.json`, with `save_probs` `<video>.probs.npy`,
    /// and with `export` (and `fps`) the editor file `<video>.<ext>`.
    /// `prediction` is a `Prediction` of this model, or features (as
    /// `predict` takes them, laid out as `layout`), segmented first.
    /// Returns the paths written; the export's notes are `UserWarning`s
    /// (a video the format cannot represent is not exported, as on the
    /// command line).
    #[pyo3(signature = (prediction, video, out, *, export = None, fps = None, save_probs = false, layout = "dt"))]
    #[allow(clippy::too_many_arguments)]
    fn write_outputs(
        &self,
        py: Python<'_>,
        prediction: &Bound<'_, PyAny>,
        video: &str,
        out: PathBuf,
        export: Option<&str>,
        fps: Option<&str>,
        save_probs: bool,
        layout: &str,
    ) -> PyResult<Vec<PathBuf>> {
        let options = predict_options(export, fps, save_probs)?;
        if video.is_empty() {
            return Err(invalid(
                "`video`: empty (the name outputs are written under)",
            ));
        }
        syncseg_core::labels::check_video_name(video)
            .map_err(|e| invalid(format!("`video`: {e}")))?;
        // A prediction is converted here, features are segmented below
        // with the GIL released.
        let source = match prediction.cast::<Prediction>() {
            Ok(pred) => Source::Prediction(self.core_prediction(py, pred.get())?),
            Err(_) => {
                let features: PyArrayLikeDyn<'_, f32, AllowTypeChange> =
                    prediction.extract().map_err(|_| {
                        invalid(format!(
                            "`prediction`: a Prediction or a 2-D array of features, not a {}",
                            prediction
                                .get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ))
                    })?;
                Source::Features(features_from(
                    "prediction",
                    &features,
                    parse_layout(layout)?,
                )?)
            }
        };
        let classes = &self.inner.meta.classes;
        let notes = py
            .detach(|| {
                let pred = match source {
                    Source::Prediction(pred) => pred,
                    Source::Features(features) => {
                        syncseg_core::predict::predict(&self.inner, &features).map_err(|e| {
                            syncseg_core::Error::invalid(format!("`prediction`: {e}"))
                        })?
                    }
                };
                std::fs::create_dir_all(&out).map_err(|e| syncseg_core::Error::io(&out, e))?;
                write_outputs(&out, video, &pred, classes, &options)
            })
            .or_py()?;
        warn_all(py, &notes)?;
        let mut paths = output_paths_of(&out, video, &options);
        // core reports an export it skipped as a `warning: …` line and
        // writes no file for it (its other lines are `note: …`).
        if let Some(format) = options.export {
            if notes.iter().any(|n| n.starts_with("warning:")) {
                let skipped = out.join(format!("{video}.{}", format.extension()));
                paths.retain(|p| *p != skipped);
            }
        }
        Ok(paths)
    }

    fn __repr__(&self) -> String {
        let b = &self.inner.meta.backbone;
        format!(
            "Model({}, D={}, K={}{})",
            b.kind(),
            b.input_dim(),
            b.num_classes(),
            self.path
                .as_ref()
                .map(|p| format!(", path='{}'", p.display()))
                .unwrap_or_default()
        )
    }
}

/// The segmentation of one video.
#[pyclass(module = "syncseg", frozen)]
pub struct Prediction {
    /// Label id per frame, int32 `[T]`.
    #[pyo3(get)]
    labels: Py<PyArray1<i32>>,
    /// Ensemble probabilities, float32 `[K, T]`.
    #[pyo3(get)]
    probs: Py<PyArray2<f32>>,
    /// Class name per frame.
    #[pyo3(get)]
    names: Vec<String>,
    segments: Vec<PredictedSegment>,
}

fn segment_dict<'py>(py: Python<'py>, s: &PredictedSegment) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("label", s.label)?;
    d.set_item("name", &s.name)?;
    d.set_item("start", s.start)?;
    d.set_item("end", s.end)?;
    d.set_item("confidence", s.confidence)?;
    Ok(d)
}

#[pymethods]
impl Prediction {
    /// Maximal runs of one label: dicts of `label`, `name`, `start`, `end`
    /// (one past the last frame) and `confidence` (mean probability).
    #[getter]
    fn segments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for s in &self.segments {
            list.append(segment_dict(py, s)?)?;
        }
        Ok(list)
    }

    fn __len__(&self) -> usize {
        self.names.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Prediction({} frames, {} segments)",
            self.names.len(),
            self.segments.len()
        )
    }
}

/// Argument `segments`: a `Prediction` or a list of segment dicts.
fn segments_arg(segments: &Bound<'_, PyAny>) -> PyResult<Vec<PredictedSegment>> {
    if let Ok(pred) = segments.cast::<Prediction>() {
        return Ok(pred.get().segments.clone());
    }
    let mut out = Vec::new();
    for (i, item) in segments.try_iter()?.enumerate() {
        let item = item?;
        let field = |name: &str| -> PyResult<Bound<'_, PyAny>> {
            item.get_item(name).map_err(|_| {
                invalid(format!(
                    "`segments`[{i}]: no '{name}' (a segment has label, name, start, end, confidence)"
                ))
            })
        };
        let bad = |name: &str| invalid(format!("`segments`[{i}]['{name}']: wrong type"));
        out.push(PredictedSegment {
            label: field("label")?.extract().map_err(|_| bad("label"))?,
            name: field("name")?.extract().map_err(|_| bad("name"))?,
            start: field("start")?.extract().map_err(|_| bad("start"))?,
            end: field("end")?.extract().map_err(|_| bad("end"))?,
            confidence: match item.get_item("confidence") {
                Ok(c) => c.extract().map_err(|_| bad("confidence"))?,
                Err(_) => 1.0,
            },
        });
    }
    Ok(out)
}

/// Renders segments (a `Prediction` or a list of segment dicts) as an
/// editor file: otio, edl, fcpxml, vtt, ffmetadata, srt, youtube, csv,
/// json. Returns the file's text.
#[pyfunction]
#[pyo3(signature = (segments, *, fps = "30000/1001", format = "otio", title = "", video_frames = None, background = Vec::new(), media = None, drop_frame = false))]
#[allow(clippy::too_many_arguments)]
pub fn export(
    py: Python<'_>,
    segments: &Bound<'_, PyAny>,
    fps: &str,
    format: &str,
    title: &str,
    video_frames: Option<u64>,
    background: Vec<String>,
    media: Option<String>,
    drop_frame: bool,
) -> PyResult<String> {
    let segments = segments_arg(segments)?;
    let format: ExportFormat = format
        .parse()
        .map_err(|e: syncseg_core::Error| invalid(format!("`format`: {e}")))?;
    let rate: FrameRate = fps
        .parse()
        .map_err(|e: syncseg_core::Error| invalid(format!("`fps`: {e}")))?;
    let options = ExportOptions {
        title: title.to_string(),
        video_frames,
        background,
        media,
        drop_frame,
    };
    let rendered = render(format, &segments, rate, &options).or_py()?;
    warn_all(py, &rendered.notes)?;
    Ok(rendered.text)
}
