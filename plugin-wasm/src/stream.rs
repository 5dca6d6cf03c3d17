//! `Stream`: live segmentation in the browser by a causal model
//! (`Segmenter.stream()`), on the CPU: frames pushed as a video plays, each
//! label returned `lookahead` frames later, equal to `segment`'s.

use std::rc::Rc;

use js_sys::Array;
use syncseg_core::stream::{Stream as CoreStream, StreamLabel};
use wasm_bindgen::prelude::*;

use crate::js::ObjectBuilder;

/// A live segmentation of one video.
#[wasm_bindgen]
pub struct Stream {
    inner: CoreStream,
    classes: Rc<Vec<String>>,
}

impl Stream {
    pub(crate) fn new(inner: CoreStream, classes: Rc<Vec<String>>) -> Self {
        Stream { inner, classes }
    }

    fn labels(&self, labels: Vec<StreamLabel>) -> Array {
        labels
            .into_iter()
            .map(|l| {
                ObjectBuilder::new()
                    .set("frame", l.frame as f64)
                    .set("label", l.label)
                    .set(
                        "name",
                        self.classes
                            .get(l.label as usize)
                            .cloned()
                            .unwrap_or_default(),
                    )
                    .set("confidence", l.confidence)
                    .build()
            })
            .collect()
    }
}

#[wasm_bindgen]
impl Stream {
    /// Pushes frames: `frames` holds `n × inputDim` floats, a frame's
    /// features together (one frame, or several). Returns the labels of
    /// the frames that became ready, in order.
    #[wasm_bindgen(unchecked_return_type = "StreamLabel[]")]
    pub fn push(&mut self, frames: Vec<f32>) -> Result<Array, JsError> {
        let labels = self
            .inner
            .push(&frames)
            .map_err(|e| JsError::new(&format!("frames: {e}")))?;
        Ok(self.labels(labels))
    }

    /// Ends the stream: the labels of its last `lookahead` frames.
    #[wasm_bindgen(unchecked_return_type = "StreamLabel[]")]
    pub fn finish(&mut self) -> Result<Array, JsError> {
        let labels = self
            .inner
            .finish()
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(self.labels(labels))
    }

    /// Frames between a frame's push and its label.
    #[wasm_bindgen(getter)]
    pub fn lookahead(&self) -> u32 {
        self.inner.lookahead() as u32
    }

    /// Features per frame.
    #[wasm_bindgen(getter, js_name = inputDim)]
    pub fn input_dim(&self) -> u32 {
        self.inner.input_dim() as u32
    }
}
