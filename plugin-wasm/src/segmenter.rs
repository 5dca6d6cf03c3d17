//! `Segmenter`: a model loaded on WebGPU or on the CPU, segmenting feature
//! arrays into labeled segments.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use candle_core::Device;
use js_sys::{Array, Int32Array, Promise};
use syncseg_core::features::Features;
use syncseg_core::model::SegModel;
use syncseg_core::predict::{predict, Prediction};
use syncseg_shaders::WgpuSegmenter;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::device::{new_gpu, on_webgpu, DeviceChoice};
use crate::js::{now_ms, option, string_array, ObjectBuilder};

/// The name model bundles are given in error messages.
const BUNDLE_NAME: &str = "model bundle";

/// What runs the model.
enum Backend {
    Cpu(Box<SegModel>),
    WebGpu(Box<WgpuSegmenter>),
}

/// A segmentation model ready to run, on WebGPU or on the CPU.
#[wasm_bindgen]
pub struct Segmenter {
    /// Shared with the promises of running calls; one call at a time.
    backend: Rc<RefCell<Backend>>,
    classes: Rc<Vec<String>>,
    input_dim: usize,
    adapter: String,
    fallback: Option<String>,
    kernels: Vec<String>,
    /// A new stream of the model (restarted for each `stream()`), or why
    /// the model cannot stream.
    stream: Result<syncseg_core::stream::Stream, String>,
}

#[wasm_bindgen]
impl Segmenter {
    /// Loads a model bundle (`syncseg export-model` writes it). With
    /// `device: "auto"` (the default) the model runs on WebGPU when the
    /// browser gives a hardware adapter and on the CPU otherwise
    /// (`fallbackReason` says why: no WebGPU, or only a software fallback
    /// adapter); `"webgpu"` takes any adapter and fails instead of falling
    /// back.
    pub async fn load(
        #[wasm_bindgen(js_name = modelBytes)] model_bytes: Vec<u8>,
        #[wasm_bindgen(unchecked_optional_param_type = "LoadOptions")] options: Option<JsValue>,
    ) -> Result<Segmenter, JsError> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let choice = DeviceChoice::parse(&options)?;
        let max_chunk_frames = match option(&options, "maxChunkFrames") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(n) if n >= 1.0 && n.fract() == 0.0 => Some(n as usize),
                _ => {
                    return Err(JsError::new(&format!(
                        "options.maxChunkFrames {v:?}: expected a positive integer"
                    )))
                }
            },
        };
        let model = SegModel::from_bundle(&model_bytes, &Device::Cpu, Path::new(BUNDLE_NAME))
            .map_err(|e| JsError::new(&e.to_string()))?;
        drop(model_bytes);
        let classes = Rc::new(model.meta.classes.clone());
        let input_dim = model.meta.backbone.input_dim();
        let stream = syncseg_core::stream::Stream::new(&model).map_err(|e| e.to_string());

        let (gpu, fallback) = on_webgpu(choice, |gpu| {
            let mut seg = WgpuSegmenter::new(gpu, &model).map_err(|e| e.to_string())?;
            if let Some(frames) = max_chunk_frames {
                seg.limit_chunks(frames, usize::MAX);
            }
            Ok(seg)
        })
        .await?;
        if let Some((seg, gpu)) = gpu {
            return Ok(Segmenter {
                backend: Rc::new(RefCell::new(Backend::WebGpu(Box::new(seg)))),
                classes,
                input_dim,
                adapter: gpu.describe(),
                fallback: None,
                kernels: gpu.kernel_entries().iter().map(|s| s.to_string()).collect(),
                stream,
            });
        }
        Ok(Segmenter {
            backend: Rc::new(RefCell::new(Backend::Cpu(Box::new(model)))),
            classes,
            input_dim,
            adapter: "candle CPU (wasm32)".to_string(),
            fallback,
            kernels: Vec::new(),
            stream,
        })
    }

    /// What runs the model: `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        match &*self.backend.borrow() {
            Backend::Cpu(_) => "cpu",
            Backend::WebGpu(_) => "webgpu",
        }
        .to_string()
    }

    /// The adapter's name and type, e.g. "SwiftShader Device (Subzero)
    /// (BrowserWebGpu, Cpu)", or "candle CPU (wasm32)".
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Why `device: "auto"` fell back to the CPU, if it did.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.fallback.clone()
    }

    /// The WGSL kernels compiled on the device (entry points); empty on the CPU.
    #[wasm_bindgen(getter, unchecked_return_type = "string[]")]
    pub fn kernels(&self) -> Array {
        string_array(&self.kernels)
    }

    /// The class names, index = label id.
    #[wasm_bindgen(getter, unchecked_return_type = "string[]")]
    pub fn classes(&self) -> Array {
        string_array(&self.classes)
    }

    /// The feature dimension the model expects.
    #[wasm_bindgen(getter, js_name = inputDim)]
    pub fn input_dim(&self) -> u32 {
        self.input_dim as u32
    }

    /// A live segmentation of one video, on the CPU whatever `device`: the
    /// model must be causal (`syncseg train --backbone ms-tcn --causal`).
    /// Push frames as they play; each label comes `lookahead` frames later
    /// and equals `segment`'s on the CPU.
    pub fn stream(&self) -> Result<crate::stream::Stream, JsError> {
        match &self.stream {
            Ok(proto) => Ok(crate::stream::Stream::new(
                proto.restart(),
                self.classes.clone(),
            )),
            Err(why) => Err(JsError::new(why)),
        }
    }

    /// Segments `features` `[dim, frames]` (row-major: one row per channel).
    /// One call at a time per segmenter.
    #[wasm_bindgen(unchecked_return_type = "Promise<Segmentation>")]
    // The borrow is held across the GPU's await on purpose: it is what makes
    // a second concurrent call fail cleanly instead of interleaving.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn segment(&self, features: Vec<f32>, dim: u32, frames: u32) -> Promise {
        let backend = self.backend.clone();
        let classes = self.classes.clone();
        future_to_promise(async move {
            let start = now_ms();
            let (dim, frames) = (dim as usize, frames as usize);
            if dim.checked_mul(frames) != Some(features.len()) {
                return Err(JsError::new(&format!(
                    "features: {} values, but dim × frames = {dim} × {frames} = {}",
                    features.len(),
                    dim as u64 * frames as u64
                ))
                .into());
            }
            let features = Features::new(dim, frames, features)
                .and_then(|f| f.check_finite().map(|_| f))
                .map_err(|e| JsError::new(&format!("features: {e}")))?;
            let mut backend = backend.try_borrow_mut().map_err(|_| {
                JsError::new("this segmenter is already running a segmentation; await it first")
            })?;
            let (prediction, device) = run(&mut backend, &features)
                .await
                .map_err(|e| JsError::new(&e))?;
            Ok(result(&prediction, &classes, device, now_ms() - start))
        })
    }
}

/// Compiles every WGSL kernel on the browser's WebGPU adapter and returns
/// their entry points; rejects with the failing kernels' compiler messages.
#[wasm_bindgen(js_name = compileKernels, unchecked_return_type = "string[]")]
pub async fn compile_kernels() -> Result<JsValue, JsError> {
    let gpu = new_gpu().await.map_err(|e| JsError::new(&e))?;
    let entries: Vec<String> = gpu.kernel_entries().iter().map(|s| s.to_string()).collect();
    Ok(string_array(&entries).into())
}

async fn run(
    backend: &mut Backend,
    features: &Features,
) -> Result<(Prediction, &'static str), String> {
    match backend {
        Backend::Cpu(model) => predict(model, features)
            .map(|p| (p, "cpu"))
            .map_err(|e| e.to_string()),
        Backend::WebGpu(seg) => seg
            .predict(features)
            .await
            .map(|p| (p, "webgpu"))
            .map_err(|e| e.to_string()),
    }
}

/// The `Segmentation` object.
fn result(p: &Prediction, classes: &[String], device: &str, millis: f64) -> JsValue {
    let labels: Vec<i32> = p.labels.iter().map(|&l| l as i32).collect();
    let segments: Array = p
        .segments(classes)
        .into_iter()
        .map(|s| {
            ObjectBuilder::new()
                .set("label", s.label)
                .set("name", s.name)
                .set("start", s.start as u32)
                .set("end", s.end as u32)
                .set("confidence", s.confidence)
                .build()
        })
        .collect();
    ObjectBuilder::new()
        .set("labels", Int32Array::from(&labels[..]))
        .set("names", string_array(classes))
        .set("segments", segments)
        .set("device", device)
        .set("millis", millis)
        .build()
}
