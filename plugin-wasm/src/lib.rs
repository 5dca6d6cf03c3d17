//! syncseg-wasm: temporal action segmentation in browsers and web-based
//! editors, on WebGPU when the browser has an adapter and on the CPU (candle
//! compiled to wasm32) otherwise.
//!
//! ```js
//! import init, { Segmenter } from "syncseg-wasm";
//! await init();
//! const seg = await Segmenter.load(modelBytes, { device: "auto" });
//! const out = await seg.segment(features, dim, frames); // [D, T] row-major
//! console.log(seg.device, out.segments);
//!
//! // From video frames: DINOv2 features on WebGPU, then segments.
//! const vit = await FrameEncoder.load(weightsBytes, { device: "auto" });
//! const f = await vit.encode([imageBitmap, videoFrame, imageData]); // {data, dim, frames}
//! ```
//!
//! Everything that touches the GPU is async: a browser cannot block on a
//! readback. The CPU path computes synchronously inside the returned promise,
//! so pages run it in a Web Worker (as the demo page does).

mod data;
mod device;
mod encoder;
mod frames;
mod js;
mod segmenter;
mod stream;

pub use data::{parse_features, synthetic_recording};
pub use encoder::FrameEncoder;
pub use segmenter::{compile_kernels, Segmenter};
pub use stream::Stream;

use wasm_bindgen::prelude::*;

/// The syncseg version this package was built from.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Where a segmenter runs: "webgpu", "cpu", or "auto" (WebGPU when the browser gives an adapter, else the CPU). */
export type DeviceChoice = "webgpu" | "cpu" | "auto";

/** Options of `Segmenter.load`. */
export interface LoadOptions {
  device?: DeviceChoice;
  /** Caps the frames uploaded to the GPU at once (whole windows; default: what the device's limits allow). */
  maxChunkFrames?: number;
}

/** A maximal run of one predicted label; `end` is one past the last frame. */
export interface Segment {
  label: number;
  name: string;
  start: number;
  end: number;
  /** Mean ensemble probability of `label` over the segment. */
  confidence: number;
}

/** The result of `Segmenter.segment`. */
export interface Segmentation {
  /** Arg-max label id per frame. */
  labels: Int32Array;
  /** Class names, index = label id. */
  names: string[];
  segments: Segment[];
  /** What ran it: "webgpu" or "cpu". */
  device: string;
  /** Wall time of the call in milliseconds. */
  millis: number;
}

/** One frame's label from `Stream.push`/`finish`, `lookahead` frames after the frame. */
export interface StreamLabel {
  /** The frame (0 = the first pushed). */
  frame: number;
  label: number;
  name: string;
  /** The probability of `label`. */
  confidence: number;
}

/** Features `[dim, frames]` row-major (channel-major, as MS-TCN-style `.npy` files). */
export interface FeatureArray {
  data: Float32Array;
  dim: number;
  frames: number;
}

/** Options of `FrameEncoder.load`. */
export interface EncoderOptions {
  device?: DeviceChoice;
  /** The shorter side is resized to this (default 224), then center-cropped. */
  resize?: number;
  /** The square fed to the ViT (default 224; a multiple of the patch, 14). */
  crop?: number;
  /** "half" (mean/std 0.5, the paper's release; default) or "imagenet". */
  normalization?: "half" | "imagenet";
}

/** A frame `FrameEncoder.encode` takes: pixels, or anything a canvas can draw. */
export type FrameSource =
  | ImageData
  | { data: Uint8ClampedArray | Uint8Array; width: number; height: number }
  | ImageBitmap
  | VideoFrame
  | HTMLVideoElement
  | HTMLImageElement
  | HTMLCanvasElement
  | OffscreenCanvas;

/** One synthetic synchronized recording (the CLI's `syncseg synth` generator). */
export interface SyntheticRecording {
  name: string;
  dim: number;
  frames: number;
  exo: Float32Array;
  ego: Float32Array;
  /** Ground-truth label id per frame. */
  labels: Int32Array;
  names: string[];
}
"#;
