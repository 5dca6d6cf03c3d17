//! Inputs for the segmenter: `.npy` feature files read in the page, and the
//! synthetic synchronized recordings of `syncseg synth`.

use std::path::Path;

use js_sys::{Float32Array, Int32Array};
use syncseg_core::npy::{self, FeatureLayout};
use syncseg_core::synth::{Generator, Preset, SplitRole, SynthConfig};
use wasm_bindgen::prelude::*;

use crate::js::{string_array, ObjectBuilder};

/// Reads a `.npy` feature file (float16/32/64, rank 1 or 2) into `[dim,
/// frames]` features. `layout` is `"dim_by_time"` (MS-TCN style, the
/// default) or `"time_by_dim"` (one row per frame); `name` names the file in
/// errors.
#[wasm_bindgen(js_name = parseFeatures, unchecked_return_type = "FeatureArray")]
pub fn parse_features(
    bytes: &[u8],
    #[wasm_bindgen(unchecked_optional_param_type = "\"dim_by_time\" | \"time_by_dim\"")]
    layout: Option<String>,
    #[wasm_bindgen(unchecked_optional_param_type = "string")] name: Option<String>,
) -> Result<JsValue, JsError> {
    let layout = match layout.as_deref() {
        None | Some("dim_by_time") => FeatureLayout::DimByTime,
        Some("time_by_dim") => FeatureLayout::TimeByDim,
        Some(other) => {
            return Err(JsError::new(&format!(
                "layout '{other}': expected dim_by_time or time_by_dim"
            )))
        }
    };
    let name = name.unwrap_or_else(|| "features.npy".to_string());
    let f = npy::parse_features(bytes, layout, Path::new(&name))
        .map_err(|e| JsError::new(&e.to_string()))?;
    Ok(ObjectBuilder::new()
        .set("data", Float32Array::from(&f.data[..]))
        .set("dim", f.dim as u32)
        .set("frames", f.frames as u32)
        .build())
}

/// Test recording `index` (0-based, within the test split) of the synthetic
/// benchmark `syncseg synth --preset PRESET --seed SEED [--dim DIM]` writes:
/// the same world, labels and both views, bit for bit.
#[wasm_bindgen(js_name = syntheticRecording, unchecked_return_type = "SyntheticRecording")]
pub fn synthetic_recording(
    #[wasm_bindgen(unchecked_param_type = "\"small\" | \"paper\"")] preset: &str,
    seed: u32,
    dim: Option<u32>,
    index: u32,
) -> Result<JsValue, JsError> {
    let preset: Preset = preset
        .parse()
        .map_err(|e: syncseg_core::Error| JsError::new(&e.to_string()))?;
    let cfg = SynthConfig::preset(preset, seed as u64, dim.map(|d| d as usize))
        .map_err(|e| JsError::new(&e.to_string()))?;
    let gen = Generator::new(cfg).map_err(|e| JsError::new(&e.to_string()))?;
    let tests: Vec<usize> = (0..gen.len())
        .filter(|&i| gen.role(i) == SplitRole::Test)
        .collect();
    let &i = tests.get(index as usize).ok_or_else(|| {
        JsError::new(&format!(
            "recording index {index}: the {preset:?} preset has {} test recordings",
            tests.len()
        ))
    })?;
    let rec = gen.recording(i).map_err(|e| JsError::new(&e.to_string()))?;
    let labels: Vec<i32> = rec.labels.iter().map(|&l| l as i32).collect();
    Ok(ObjectBuilder::new()
        .set("name", rec.name.as_str())
        .set("dim", rec.exo.dim as u32)
        .set("frames", rec.exo.frames as u32)
        .set("exo", Float32Array::from(&rec.exo.data[..]))
        .set("ego", Float32Array::from(&rec.ego.data[..]))
        .set("labels", Int32Array::from(&labels[..]))
        .set("names", string_array(gen.class_names()))
        .build())
}
