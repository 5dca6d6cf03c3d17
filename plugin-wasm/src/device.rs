//! `options.device`: which backend a model runs on, and the policy of
//! `"auto"` shared by the segmenter and the frame encoder.

use std::sync::Arc;

use syncseg_shaders::Gpu;
use wasm_bindgen::prelude::*;

use crate::js::{has_webgpu, option};

/// The device asked for in the load options.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceChoice {
    WebGpu,
    Cpu,
    Auto,
}

impl DeviceChoice {
    /// `options.device`, `"auto"` when absent.
    pub(crate) fn parse(options: &JsValue) -> Result<Self, JsError> {
        let Some(v) = option(options, "device") else {
            return Ok(DeviceChoice::Auto);
        };
        match v.as_string().as_deref() {
            Some("webgpu") => Ok(DeviceChoice::WebGpu),
            Some("cpu") => Ok(DeviceChoice::Cpu),
            Some("auto") => Ok(DeviceChoice::Auto),
            _ => Err(JsError::new(&format!(
                "options.device {v:?}: expected \"webgpu\", \"cpu\" or \"auto\""
            ))),
        }
    }
}

/// The browser's WebGPU device with every kernel compiled.
pub(crate) async fn new_gpu() -> Result<Gpu, String> {
    if !has_webgpu() {
        return Err("WebGPU is unavailable here (navigator.gpu is undefined)".to_string());
    }
    Gpu::new().await.map_err(|e| e.to_string())
}

/// Opens WebGPU for `choice` and builds the model on it with `build`:
/// `Ok((Some(model), adapter))` on the GPU, `Ok((None, reason))` when
/// `"auto"` falls back to the CPU (no WebGPU, a failure, or only a software
/// fallback adapter, which is an order of magnitude slower than the wasm
/// CPU path: BENCHMARKS.md), an error when `"webgpu"` cannot be had.
pub(crate) async fn on_webgpu<T>(
    choice: DeviceChoice,
    build: impl FnOnce(Arc<Gpu>) -> Result<T, String>,
) -> Result<(Option<(T, Arc<Gpu>)>, Option<String>), JsError> {
    if choice == DeviceChoice::Cpu {
        return Ok((None, None));
    }
    let opened = async {
        // Shared through an Arc by the executors; a browser's wgpu types are
        // not Send, and nothing here crosses threads.
        #[allow(clippy::arc_with_non_send_sync)]
        let gpu = Arc::new(new_gpu().await?);
        if choice == DeviceChoice::Auto && gpu.info.device_type == wgpu::DeviceType::Cpu {
            return Err(format!(
                "the browser's WebGPU adapter {} is a software fallback, slower than the CPU path",
                gpu.describe()
            ));
        }
        let model = build(gpu.clone())?;
        Ok((model, gpu))
    }
    .await;
    match opened {
        Ok(m) => Ok((Some(m), None)),
        Err(e) if choice == DeviceChoice::WebGpu => Err(JsError::new(&e)),
        Err(e) => Ok((None, Some(e))),
    }
}
