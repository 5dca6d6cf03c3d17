//! Frame-wise prediction with a trained model, any video length.
//!
//! Videos are cut into windows of the model's training window length (each
//! window zero-padded to C2F-TCN's minimum of 384 frames) and processed
//! independently, as the reference release does; memory is bounded by one
//! window whatever the video length. A causal network runs over the whole
//! video at once, as its stream ([`crate::stream`]) does.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::Features;
use crate::model::cpu_infer::CpuInference;
use crate::model::{Mode, SegModel};
use crate::segments::segments_of;
use crate::train::windows::{features_batch, padded_len, windows, Window};

/// Windows per forward pass: amortises per-call overhead, bounds memory.
const WINDOWS_PER_BATCH: usize = 4;

/// A predicted segment with its class name and mean confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedSegment {
    /// Class id.
    pub label: u32,
    /// Class name.
    pub name: String,
    /// First frame.
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// Mean ensemble probability of `label` over the segment.
    pub confidence: f32,
}

/// The result for one video.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Ensemble probabilities `[K, T]` row-major.
    pub probs: Vec<f32>,
    /// Number of classes K.
    pub classes: usize,
    /// Arg-max label per frame.
    pub labels: Vec<u32>,
}

impl Prediction {
    /// The prediction from ensemble probabilities `[K, T]` row-major: the
    /// arg-max class per frame (the first on ties).
    pub fn from_probs(probs: Vec<f32>, classes: usize, frames: usize) -> Self {
        let labels = (0..frames)
            .map(|f| {
                let mut best = 0;
                for class in 1..classes {
                    if probs[class * frames + f] > probs[best * frames + f] {
                        best = class;
                    }
                }
                best as u32
            })
            .collect();
        Prediction {
            probs,
            classes,
            labels,
        }
    }

    /// Maximal runs of one label with their mean confidence.
    pub fn segments(&self, names: &[String]) -> Vec<PredictedSegment> {
        let t = self.labels.len();
        segments_of(&self.labels)
            .into_iter()
            .map(|s| {
                let row = &self.probs[s.label as usize * t..(s.label as usize + 1) * t];
                let conf = row[s.start..s.end].iter().sum::<f32>() / (s.end - s.start) as f32;
                PredictedSegment {
                    label: s.label,
                    name: names.get(s.label as usize).cloned().unwrap_or_default(),
                    start: s.start,
                    end: s.end,
                    confidence: conf,
                }
            })
            .collect()
    }
}

/// Runs `model` (eval mode) over `features` `[D, T]`, T ≥ 1.
pub fn predict(model: &SegModel, features: &Features) -> Result<Prediction> {
    let c = &model.meta.backbone;
    if features.dim != c.input_dim() {
        return Err(Error::invalid(format!(
            "the model expects {}-dimensional features, got {}",
            c.input_dim(),
            features.dim
        )));
    }
    if features.frames == 0 {
        return Err(Error::invalid("the video has no frames"));
    }
    let device = model.device();
    let k = c.num_classes();
    let t_total = features.frames;
    let mut probs = vec![0f32; k * t_total];
    // On the CPU, the executor that reuses its buffers from one batch of
    // windows to the next (the same bits as candle's eval path).
    let mut exec = device
        .is_cpu()
        .then(|| CpuInference::new(model.net.layers()));
    for (chunk, t) in window_batches(t_total, model.meta.prediction_window(t_total)) {
        let (x, _) = features_batch(&[features], &chunk, t, &device)?;
        let x = model.adapt(&x, None)?;
        let mut write = |p: &[f32]| {
            for (w, pw) in chunk.iter().zip(p.chunks_exact(k * t)) {
                for (class, row) in pw.chunks_exact(t).enumerate() {
                    probs[class * t_total + w.start..class * t_total + w.start + w.len]
                        .copy_from_slice(&row[..w.len]);
                }
            }
        };
        match exec.as_mut() {
            Some(exec) => {
                let x = exec.input_tensor(&x)?;
                write(model.net.infer_cpu(exec, &x)?.data());
            }
            None => {
                let out = model.net.forward(&x, Mode::Eval, model.meta.steps)?;
                let p: Tensor = model.net.probabilities(&out)?;
                write(&p.flatten_all()?.to_vec1::<f32>()?);
            }
        }
    }
    Ok(Prediction::from_probs(probs, k, t_total))
}

/// The windows of a `frames`-long video in the batches [`predict`] runs,
/// each batch with the length its windows are zero-padded to. The padded
/// length changes the C2F-TCN's output (its resampling depends on the
/// length), so every backend must use this same plan to agree.
pub fn window_batches(frames: usize, window_frames: usize) -> Vec<(Vec<Window>, usize)> {
    windows(&[frames], window_frames)
        .chunks(WINDOWS_PER_BATCH)
        .map(|chunk| (chunk.to_vec(), padded_len(chunk)))
        .collect()
}
