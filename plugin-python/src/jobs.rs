//! `train`, `distill` and `synth`: core's jobs with the GIL released,
//! progress to a Python callback, and Ctrl-C checked between steps.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{Map, Value};
use syncseg_core::model::SegModel;
use syncseg_core::pipeline::{
    self, CpuEngine, DistillInputs, DistillOptions, Monitor, PredictOptions, StageReport,
    TrainInputs, TrainOptions,
};
use syncseg_core::train::fit::{EpochRecord, Observer};

use crate::convert::{field_names, from_args, kwargs_json, to_python};
use crate::errors::{invalid, OrPy};
use crate::model::Model;

/// The pipeline's monitor for a Python caller: every event goes to
/// `progress(event: dict)` (the C ABI's events, as dicts), and before each
/// step the interpreter's signal handlers run, so Ctrl-C (or a callback that
/// raises) stops the run there. The exception is kept and raised once the
/// job has returned; `last/` holds the last finished epoch, so the run
/// resumes with `resume=True`.
struct PyMonitor {
    progress: Option<Py<PyAny>>,
    raised: Option<PyErr>,
}

/// The message core carries out of a run stopped by a Python exception
/// (never shown: the exception is raised instead).
const STOPPED: &str = "stopped by a Python exception";

impl PyMonitor {
    fn send(&mut self, event: Value) {
        let Some(progress) = &self.progress else {
            return;
        };
        if self.raised.is_some() {
            return;
        }
        let result = Python::attach(|py| -> PyResult<()> {
            progress.call1(py, (to_python(py, &event)?,))?;
            Ok(())
        });
        if let Err(e) = result {
            self.raised = Some(e);
        }
    }

    /// The job's result, or the exception that stopped it.
    fn finish<T>(self, result: syncseg_core::Result<T>) -> PyResult<T> {
        match (self.raised, result) {
            (Some(e), _) => Err(e),
            (None, r) => r.or_py(),
        }
    }
}

impl Observer for PyMonitor {
    fn step(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        self.send(serde_json::json!({
            "event": "step", "epoch": epoch, "done": done, "total": total, "loss": loss,
        }));
    }

    fn epoch(&mut self, record: &EpochRecord, epochs: usize) {
        self.send(serde_json::json!({"event": "epoch", "epochs": epochs, "record": record}));
    }

    fn check(&mut self) -> syncseg_core::Result<()> {
        if self.raised.is_none() {
            if let Err(e) = Python::attach(|py| py.check_signals()) {
                self.raised = Some(e);
            }
        }
        match self.raised {
            Some(_) => Err(syncseg_core::Error::invalid(STOPPED)),
            None => Ok(()),
        }
    }
}

impl Monitor for PyMonitor {
    fn stage_started(&mut self, stage: &str, device: &str) {
        self.send(serde_json::json!({"event": "stage", "stage": stage, "device": device}));
    }

    fn stage_finished(&mut self, report: &StageReport) {
        self.send(serde_json::json!({"event": "stage_finished", "report": report}));
    }

    fn note(&mut self, text: &str) {
        self.send(serde_json::json!({"event": "note", "text": text}));
    }
}

/// Splits a job's arguments into its inputs (the fields of `I`) and its
/// options (the rest).
fn split<I: serde::Serialize + Default>(
    mut args: Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut inputs = Map::new();
    for name in field_names::<I>() {
        if let Some(v) = args.remove(&name) {
            inputs.insert(name, v);
        }
    }
    (inputs, args)
}

/// Refuses a device the package does not run on.
fn check_device(device: &str) -> PyResult<()> {
    match device {
        "cpu" => Ok(()),
        other => Err(invalid(format!(
            "`device` '{other}': the Python package runs on the CPU (\"cpu\"); the GPU backend is the command line's `--device wgpu`"
        ))),
    }
}

/// Runs pipeline job `name` (`job`) on the CPU with the GIL released:
/// `kwargs` split into its inputs `I` and options `O`, progress to
/// `progress`; returns the model it wrote to `out(&inputs)`.
fn run_job<I, O, R>(
    py: Python<'_>,
    name: &str,
    device: &str,
    progress: Option<Py<PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
    out: impl Fn(&I) -> &std::path::Path,
    job: impl FnOnce(&I, &O, &mut CpuEngine, &mut dyn Monitor) -> syncseg_core::Result<R> + Send,
) -> PyResult<Model>
where
    I: serde::Serialize + serde::de::DeserializeOwned + Default + Sync,
    O: serde::de::DeserializeOwned + Sync,
    R: Send,
{
    check_device(device)?;
    let (inputs, options) = split::<I>(kwargs_json(kwargs)?);
    let inputs: I = from_args(name, inputs)?;
    let options: O = from_args(name, options)?;
    let mut monitor = PyMonitor {
        progress,
        raised: None,
    };
    let result = py.detach(|| job(&inputs, &options, &mut CpuEngine, &mut monitor));
    monitor.finish(result)?;
    Model::open(py, out(&inputs))
}

/// Trains a segmentation network (C2F-TCN or MS-TCN++) with labels; see the
/// type stubs for the arguments (those of `syncseg train`).
#[pyfunction]
#[pyo3(signature = (*, device = "cpu", progress = None, **kwargs))]
pub fn train(
    py: Python<'_>,
    device: &str,
    progress: Option<Py<PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Model> {
    run_job(
        py,
        "train",
        device,
        progress,
        kwargs,
        |i: &TrainInputs| &i.out,
        |i, o: &TrainOptions, e, m| pipeline::train(i, o, e, m),
    )
}

/// Distills a teacher to the student view from synchronized pairs; see the
/// type stubs for the arguments (those of `syncseg distill`).
#[pyfunction]
#[pyo3(signature = (*, device = "cpu", progress = None, **kwargs))]
pub fn distill(
    py: Python<'_>,
    device: &str,
    progress: Option<Py<PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Model> {
    run_job(
        py,
        "distill",
        device,
        progress,
        kwargs,
        |i: &DistillInputs| &i.out,
        |i, o: &DistillOptions, e, m| pipeline::distill(i, o, e, m),
    )
}

/// The default options of `job` ("train", "distill" or "predict"), as a
/// dict: the one place they are written is core.
#[pyfunction]
pub fn defaults(py: Python<'_>, job: &str) -> PyResult<Py<PyAny>> {
    let value = match job {
        "train" => serde_json::to_value(TrainOptions::default()),
        "distill" => serde_json::to_value(DistillOptions::default()),
        "predict" => serde_json::to_value(PredictOptions::default()),
        other => {
            return Err(invalid(format!(
                "`job` '{other}': expected train, distill or predict"
            )))
        }
    }
    .map_err(|e| invalid(e.to_string()))?;
    to_python(py, &value)
}

/// Writes the synthetic synchronized exo/ego benchmark into `out` (a new
/// or empty folder) and returns `out`.
#[pyfunction]
#[pyo3(signature = (*, out, preset = "small", seed = 0, dim = None))]
pub fn synth(
    py: Python<'_>,
    out: PathBuf,
    preset: &str,
    seed: u64,
    dim: Option<usize>,
) -> PyResult<PathBuf> {
    use syncseg_core::synth::{Generator, SynthConfig};
    let preset = preset
        .parse()
        .map_err(|e: syncseg_core::Error| invalid(format!("`preset`: {e}")))?;
    let config = SynthConfig::preset(preset, seed, dim).or_py()?;
    let generator = Generator::new(config).or_py()?;
    py.detach(|| generator.write(&out, |_, _| {})).or_py()?;
    Ok(out)
}

/// Loads the model a job wrote.
impl Model {
    fn open(py: Python<'_>, out: &std::path::Path) -> PyResult<Model> {
        let inner = py
            .detach(|| SegModel::load(out, &candle_core::Device::Cpu))
            .or_py()?;
        Ok(Model::new(inner, Some(out.to_path_buf())))
    }
}
