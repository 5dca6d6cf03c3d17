//! `FrameEncoder`: DINOv2 frame features of video frames in the page, on
//! WebGPU (the WGSL ViT) or on the CPU (candle), preprocessed as natively.

use std::cell::RefCell;
use std::rc::Rc;

use candle_core::{Device, Tensor};
use js_sys::{Array, Float32Array, Promise};
use syncseg_core::vision::{Normalization, Preprocess, Vit};
use syncseg_shaders::vit::DEFAULT_BATCH;
use syncseg_shaders::WgpuVit;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::device::{on_webgpu, DeviceChoice};
use crate::frames::rgb_of;
use crate::js::{option, ObjectBuilder};

/// The name weight files are given in error messages.
const WEIGHTS_NAME: &str = "ViT weights";

enum Backend {
    Cpu(Vit),
    WebGpu(WgpuVit),
}

/// A DINOv2 ViT ready to turn frames into features.
#[wasm_bindgen]
pub struct FrameEncoder {
    backend: Rc<RefCell<Backend>>,
    pre: Preprocess,
    dim: usize,
    adapter: String,
    fallback: Option<String>,
}

fn size_option(options: &JsValue, key: &str, default: usize) -> Result<usize, JsError> {
    match option(options, key) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(n) if n >= 1.0 && n.fract() == 0.0 => Ok(n as usize),
            _ => Err(JsError::new(&format!(
                "options.{key} {v:?}: expected a positive integer"
            ))),
        },
    }
}

#[wasm_bindgen]
impl FrameEncoder {
    /// Loads DINOv2 weights (a safetensors file in the public checkpoints'
    /// layout or Hugging Face's `Dinov2Model`). Options: `device` as for
    /// `Segmenter.load`; `resize` (224), `crop` (224, a multiple of the
    /// patch) and `normalization` (`"half"`, the paper's release, or
    /// `"imagenet"`), as `syncseg features` takes them.
    pub async fn load(
        weights: Vec<u8>,
        #[wasm_bindgen(unchecked_optional_param_type = "EncoderOptions")] options: Option<JsValue>,
    ) -> Result<FrameEncoder, JsError> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let choice = DeviceChoice::parse(&options)?;
        let normalization =
            match option(&options, "normalization") {
                None => Normalization::Half,
                Some(v) => v.as_string().unwrap_or_default().parse().map_err(
                    |e: syncseg_core::Error| JsError::new(&format!("options.normalization: {e}")),
                )?,
            };
        let pre = Preprocess {
            resize: size_option(&options, "resize", 224)?,
            crop: size_option(&options, "crop", 224)?,
            normalization,
        };
        if pre.resize < pre.crop {
            return Err(JsError::new(&format!(
                "options.resize {} must be at least options.crop {}",
                pre.resize, pre.crop
            )));
        }
        let vit = Vit::from_safetensors_bytes(&weights, pre.crop, WEIGHTS_NAME)
            .map_err(|e| JsError::new(&e.to_string()))?;
        drop(weights);
        let dim = vit.config().dim;
        let (gpu, fallback) = on_webgpu(choice, |gpu| {
            WgpuVit::new(gpu, &vit).map_err(|e| e.to_string())
        })
        .await?;
        let (backend, adapter) = match gpu {
            Some((v, gpu)) => (Backend::WebGpu(v), gpu.describe()),
            None => (Backend::Cpu(vit), "candle CPU (wasm32)".to_string()),
        };
        Ok(FrameEncoder {
            backend: Rc::new(RefCell::new(backend)),
            pre,
            dim,
            adapter,
            fallback,
        })
    }

    /// The feature width (384 for ViT-S/14, 1024 for ViT-L/14).
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> u32 {
        self.dim as u32
    }

    /// What runs the ViT: `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        match &*self.backend.borrow() {
            Backend::Cpu(_) => "cpu",
            Backend::WebGpu(_) => "webgpu",
        }
        .to_string()
    }

    /// The adapter's name and type, or "candle CPU (wasm32)".
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Why `device: "auto"` fell back to the CPU, if it did.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.fallback.clone()
    }

    /// Features `[dim, frames]` of one frame or an array of frames, each an
    /// `ImageData`, `ImageBitmap`, `VideoFrame`, `<video>`, `<img>` or
    /// canvas (the caller keeps ownership: close `VideoFrame`s afterwards).
    /// One call at a time per encoder.
    #[wasm_bindgen(unchecked_return_type = "Promise<FeatureArray>")]
    // As in `Segmenter.segment`: the borrow across the GPU's await is what
    // turns a concurrent call into a clean error.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn encode(
        &self,
        #[wasm_bindgen(unchecked_param_type = "FrameSource | FrameSource[]")] frames: JsValue,
    ) -> Promise {
        let backend = self.backend.clone();
        let (pre, dim) = (self.pre, self.dim);
        future_to_promise(async move {
            let sources: Vec<JsValue> = if Array::is_array(&frames) {
                Array::from(&frames).iter().collect()
            } else {
                vec![frames]
            };
            if sources.is_empty() {
                return Err(JsError::new("encode: no frames given").into());
            }
            // Preprocess everything first: the pixels are read while the
            // caller's frames are certainly alive.
            let s = pre.crop;
            let mut images = vec![0f32; sources.len() * 3 * s * s];
            for (i, (src, out)) in sources
                .iter()
                .zip(images.chunks_exact_mut(3 * s * s))
                .enumerate()
            {
                let (rgb, w, h) =
                    rgb_of(src).map_err(|e| JsError::new(&format!("frame {i}: {e}")))?;
                pre.frame_into(&rgb, w, h, out)
                    .map_err(|e| JsError::new(&format!("frame {i}: {e}")))?;
            }
            let mut backend = backend.try_borrow_mut().map_err(|_| {
                JsError::new("this encoder is already encoding frames; await it first")
            })?;
            let rows = embed(&mut backend, &images, sources.len())
                .await
                .map_err(|e| JsError::new(&e))?;
            // [frames, dim] → [dim, frames].
            let n = sources.len();
            let mut data = vec![0f32; dim * n];
            for (t, row) in rows.chunks_exact(dim).enumerate() {
                for (c, v) in row.iter().enumerate() {
                    data[c * n + t] = *v;
                }
            }
            Ok(ObjectBuilder::new()
                .set("data", Float32Array::from(&data[..]))
                .set("dim", dim as u32)
                .set("frames", n as u32)
                .build())
        })
    }
}

/// CLS rows `[n, D]` of `n` preprocessed images, in batches the backend takes.
async fn embed(backend: &mut Backend, images: &[f32], n: usize) -> Result<Vec<f32>, String> {
    let per = images.len() / n;
    match backend {
        Backend::Cpu(vit) => {
            let s = vit.image_size();
            let mut rows = Vec::new();
            for chunk in images.chunks(DEFAULT_BATCH * per) {
                let b = chunk.len() / per;
                let x = Tensor::from_slice(chunk, (b, 3, s, s), &Device::Cpu)
                    .map_err(|e| e.to_string())?;
                let f = vit
                    .forward(&x)
                    .and_then(|f| Ok(f.flatten_all()?.to_vec1::<f32>()?))
                    .map_err(|e| e.to_string())?;
                rows.extend(f);
            }
            Ok(rows)
        }
        Backend::WebGpu(vit) => {
            let batch = vit
                .batch_that_fits(DEFAULT_BATCH)
                .map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for chunk in images.chunks(batch * per) {
                rows.extend(vit.embed(chunk).await.map_err(|e| e.to_string())?);
            }
            Ok(rows)
        }
    }
}
