//! `Stream`: live segmentation by a causal model (`Model.stream()`), frames
//! pushed as they come, each label returned `lookahead` frames later.

use numpy::{AllowTypeChange, PyArrayLikeDyn};
use pyo3::prelude::*;
use syncseg_core::stream::{Stream as CoreStream, StreamLabel};

use crate::errors::invalid;

/// A live segmentation of one video. Not shared between threads (create
/// one per thread).
#[pyclass(module = "syncseg", unsendable)]
pub struct Stream {
    inner: CoreStream,
}

impl Stream {
    pub fn new(inner: CoreStream) -> Self {
        Stream { inner }
    }
}

type Labels = Vec<(u64, u32, f32)>;

fn tuples(labels: Vec<StreamLabel>) -> Labels {
    labels
        .into_iter()
        .map(|l| (l.frame, l.label, l.confidence))
        .collect()
}

#[pymethods]
impl Stream {
    /// Pushes one frame's features `[D]`, or frames `[n, D]` (a frame a
    /// row), any float dtype; returns `(frame, label, confidence)` of every
    /// frame whose label became ready, in order.
    fn push(&mut self, frames: PyArrayLikeDyn<'_, f32, AllowTypeChange>) -> PyResult<Labels> {
        let view = frames.as_array();
        let d = self.inner.input_dim();
        let shape = view.shape().to_vec();
        let fits = match shape.as_slice() {
            [n] => *n == d,
            [_, n] => *n == d,
            _ => false,
        };
        if !fits {
            return Err(invalid(format!(
                "`frames`: expected [{d}] or [n, {d}] (a frame a row), got shape {shape:?}"
            )));
        }
        // Logical (C) order: frame-major whatever the strides.
        let data: Vec<f32> = view.iter().copied().collect();
        self.inner
            .push(&data)
            .map(tuples)
            .map_err(|e| invalid(format!("`frames`: {e}")))
    }

    /// Ends the stream: the labels of its last `lookahead` frames.
    fn finish(&mut self) -> PyResult<Labels> {
        self.inner
            .finish()
            .map(tuples)
            .map_err(|e| invalid(e.to_string()))
    }

    /// Frames between a frame's push and its label.
    #[getter]
    fn lookahead(&self) -> usize {
        self.inner.lookahead()
    }

    /// The feature dimension D of a frame.
    #[getter]
    fn input_dim(&self) -> usize {
        self.inner.input_dim()
    }

    /// Frames pushed so far.
    #[getter]
    fn frames_pushed(&self) -> u64 {
        self.inner.frames_pushed()
    }
}
