//! Segmenting a split of videos with a trained model: per-frame labels,
//! segments, optionally probabilities and editor markers.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::{layout, Engine, Monitor};
use crate::batch_job::{run_batch, BatchItem, BatchOptions};
use crate::error::{Error, Result};
use crate::export::segments_file::SegmentsFile;
use crate::export::{render, ExportFormat, ExportOptions, FrameRate};
use crate::labels::{read_bundle, write_frame_labels};
use crate::model::SegModel;
use crate::npy::write_npy;
use crate::predict::{PredictedSegment, Prediction};
use crate::video_features::{read_video_features, source_path, video_weights};

/// What a prediction run reads and where it writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictInputs {
    /// Model directory (from `train`, `distill` or an import).
    pub model: PathBuf,
    /// Features: a folder of `<video>.npy` or an LMDB store.
    pub features: PathBuf,
    /// Videos to segment (a split bundle).
    pub videos: PathBuf,
    /// Output folder: `<video>.txt`, `<video>.segments.json` (and more).
    pub out: PathBuf,
}

/// What to write besides labels and segments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictOptions {
    /// Also write the ensemble probabilities `[K, T]` as `<video>.probs.npy`.
    pub save_probs: bool,
    /// Feature files are `[T, D]` instead of `[D, T]`.
    pub time_major: bool,
    /// Also export the segments as `<video>.<ext>` (needs `fps`).
    #[serde(with = "by_name")]
    pub export: Option<ExportFormat>,
    /// Frame rate of the videos, for `export`.
    #[serde(with = "by_name")]
    pub fps: Option<FrameRate>,
    /// Emulate live segmentation: each video goes through a causal
    /// model's [`crate::stream::Stream`] on the CPU, and
    /// `<video>.stream.json` records the cost of each push. The outputs
    /// are those of offline prediction, bit for bit.
    pub stream: Option<StreamOptions>,
}

/// How [`PredictOptions::stream`] feeds the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamOptions {
    /// Frames per push (1: frame by frame).
    pub chunk: usize,
    /// The look-ahead the model must have (frames); a model with another
    /// is refused rather than run.
    pub lookahead: Option<usize>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            chunk: 1,
            lookahead: None,
        }
    }
}

/// Serde of an optional value by its `Display`/`FromStr` text.
mod by_name {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: std::fmt::Display, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// What a prediction run did.
#[derive(Debug, Clone, Serialize)]
pub struct PredictReport {
    /// Videos segmented now (this shard's, less those already finished).
    pub videos: usize,
    /// Videos of this shard whose outputs existed and were kept.
    pub reused: usize,
    /// Videos in this shard (the whole bundle unless sharded).
    pub shard_videos: usize,
    /// Where the model ran.
    pub device: String,
}

/// The files [`write_outputs`] writes for `video` under `out`.
pub fn output_paths(out: &Path, video: &str, options: &PredictOptions) -> Vec<PathBuf> {
    let mut paths = vec![
        out.join(format!("{video}.txt")),
        out.join(format!("{video}.segments.json")),
    ];
    if options.save_probs {
        paths.push(out.join(format!("{video}.probs.npy")));
    }
    if let (Some(format), Some(_)) = (options.export, options.fps) {
        paths.push(out.join(format!("{video}.{}", format.extension())));
    }
    if options.stream.is_some() {
        paths.push(out.join(format!("{video}.stream.json")));
    }
    paths
}

/// Writes one video's outputs (each file atomically): `<video>.txt` (a
/// label a frame), `<video>.segments.json`, and as `options` ask
/// `<video>.probs.npy` and `<video>.<ext>`. Returns the export's notes
/// and warnings. Every surface that segments videos into files (the
/// command line, the Python package's Ray pipeline) writes through here.
pub fn write_outputs(
    out: &Path,
    video: &str,
    pred: &Prediction,
    classes: &[String],
    options: &PredictOptions,
) -> Result<Vec<String>> {
    if options.export.is_some() && options.fps.is_none() {
        return Err(Error::invalid(
            "`export` needs `fps` (the videos' frame rate)",
        ));
    }
    let label_names: Vec<&str> = pred
        .labels
        .iter()
        .map(|&l| classes[l as usize].as_str())
        .collect();
    write_frame_labels(out.join(format!("{video}.txt")), &label_names)?;
    let segments = pred.segments(classes);
    SegmentsFile {
        video: video.to_string(),
        frames: pred.labels.len() as u64,
        fps: None,
        segments: segments.clone(),
    }
    .write(out.join(format!("{video}.segments.json")))?;
    let notes = export_beside(
        options.export,
        options.fps,
        out,
        video,
        &segments,
        pred.labels.len(),
    )?;
    if options.save_probs {
        write_npy(
            out.join(format!("{video}.probs.npy")),
            &[pred.classes, pred.labels.len()],
            &pred.probs,
        )?;
    }
    Ok(notes)
}

/// Segments every video of `inputs.videos` into `inputs.out` — or this
/// task's shard of them (`batch`): videos whose outputs exist are kept
/// unless `batch.overwrite`, and `out/shards/` records each video
/// ([`crate::batch_job`]).
pub fn predict(
    inputs: &PredictInputs,
    options: &PredictOptions,
    batch: &BatchOptions,
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
) -> Result<PredictReport> {
    if options.export.is_some() && options.fps.is_none() {
        return Err(Error::invalid(
            "`export` needs `fps` (the videos' frame rate)",
        ));
    }
    batch.shard()?;
    let model = SegModel::load(&inputs.model, &Device::Cpu)?;
    let names = read_bundle(&inputs.videos)?;
    let layout = layout(options.time_major);
    let out = &inputs.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let weights = video_weights(&inputs.features, &names);
    let items: Vec<BatchItem> = names
        .iter()
        .zip(weights)
        .map(|(name, weight)| BatchItem {
            name: name.clone(),
            weight,
            outputs: output_paths(out, name, options),
        })
        .collect();
    let mut segmenter = match &options.stream {
        None => Some(engine.segmenter(&model)?),
        Some(s) => {
            // Refused before any video is read.
            let in_model = |e: String| Error::invalid(format!("{}: {e}", inputs.model.display()));
            crate::stream::Stream::new(&model).map_err(|e| in_model(e.to_string()))?;
            let have = model.meta.backbone.lookahead();
            if let Some(want) = s.lookahead.filter(|&l| Some(l) != have) {
                return Err(in_model(format!(
                    "the model's look-ahead is {}, not {want}: stream with the model's, or train another",
                    have.unwrap_or(0)
                )));
            }
            if s.chunk == 0 {
                return Err(Error::invalid("stream `chunk` must be at least one frame"));
            }
            None
        }
    };
    let mut notes = Vec::new();
    let report = run_batch("predict", out, &items, batch, monitor, |item| {
        let name = &item.name;
        let fpath = source_path(&inputs.features, name);
        let features = read_video_features(&inputs.features, name, layout)?;
        let in_file = |e: Error| Error::invalid(format!("{}: {e}", fpath.display()));
        let pred = match (&mut segmenter, &options.stream) {
            (Some(segmenter), _) => segmenter.predict(&features).map_err(in_file)?,
            (None, s) => {
                let chunk = s.as_ref().map_or(1, |s| s.chunk);
                let (pred, stats) =
                    crate::stream::stream_features(&model, &features, chunk).map_err(in_file)?;
                let json = serde_json::to_vec_pretty(&stats)
                    .map_err(|e| Error::invalid(format!("stream stats: {e}")))?;
                crate::fsio::write_bytes_atomic(out.join(format!("{name}.stream.json")), &json)?;
                pred
            }
        };
        notes.extend(write_outputs(
            out,
            name,
            &pred,
            &model.meta.classes,
            options,
        )?);
        Ok(pred.labels.len() as u64)
    });
    for line in notes {
        monitor.note(&line);
    }
    let report = report?;
    Ok(PredictReport {
        videos: report.done,
        reused: report.reused,
        shard_videos: report.shard_videos,
        device: match &segmenter {
            Some(s) => s.describe(),
            None => "cpu (stream)".to_string(),
        },
    })
}

/// Writes `<out>/<video>.<ext>` when a format and a frame rate are given.
/// A video the format cannot represent is skipped, not an error (a batch's
/// main outputs are already written): the returned lines say so
/// (`warning: …`), with the format's notes (`note: …`).
pub fn export_beside(
    format: Option<ExportFormat>,
    fps: Option<FrameRate>,
    out: &Path,
    video: &str,
    segments: &[PredictedSegment],
    frames: usize,
) -> Result<Vec<String>> {
    let (Some(format), Some(fps)) = (format, fps) else {
        return Ok(Vec::new());
    };
    let opts = ExportOptions {
        title: video.to_string(),
        video_frames: Some(frames as u64),
        ..Default::default()
    };
    let rendered = match render(format, segments, fps, &opts) {
        Ok(r) => r,
        Err(e) => {
            return Ok(vec![format!(
                "warning: {video}: not exported as {format}: {e}"
            )])
        }
    };
    let lines = rendered
        .notes
        .iter()
        .map(|note| format!("note: {video}: {note}"))
        .collect();
    let path = out.join(format!("{video}.{}", format.extension()));
    crate::fsio::write_bytes_atomic(path, rendered.text.as_bytes())?;
    Ok(lines)
}
