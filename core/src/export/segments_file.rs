//! `<video>.segments.json`: what `syncseg predict` and `syncseg segment`
//! write per video and `syncseg export` reads back.
//!
//! ```json
//! {"video": "P01_r01", "frames": 5400, "fps": "30000/1001",
//!  "segments": [{"label": 3, "name": "take cup", "start": 0, "end": 120, "confidence": 0.91}, ...]}
//! ```
//!
//! `fps` is optional (only `segment`, which knows the video, writes it).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::predict::PredictedSegment;

/// The predicted segments of one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentsFile {
    /// The video's name.
    pub video: String,
    /// Its number of frames.
    pub frames: u64,
    /// Its frame rate as written by `syncseg segment` (`30000/1001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<String>,
    /// The segments, in order, covering at most `frames`.
    pub segments: Vec<PredictedSegment>,
}

impl SegmentsFile {
    /// Reads `path`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::parse(&crate::fsio::read_text(path)?, path)
    }

    /// Parses the text of `path`. Order, overlaps and bounds are checked
    /// where they matter, by [`render`](super::render).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| Error::format(path, format!("not a segments file: {e}")))
    }

    /// Writes the file atomically.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(format!("segments do not serialise: {e}")))?;
        crate::fsio::write_bytes_atomic(path, json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: usize, end: usize) -> PredictedSegment {
        PredictedSegment {
            label: 1,
            name: "take".into(),
            start,
            end,
            confidence: 0.5,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.segments.json");
        let file = SegmentsFile {
            video: "v".into(),
            frames: 30,
            fps: Some("25".into()),
            segments: vec![seg(0, 10), seg(12, 30)],
        };
        file.write(&path).unwrap();
        assert_eq!(SegmentsFile::read(&path).unwrap(), file);
        // Written by `predict` (no fps).
        let text = r#"{"video": "v", "frames": 3, "segments": []}"#;
        assert_eq!(SegmentsFile::parse(text, &path).unwrap().fps, None);
        let err = SegmentsFile::parse("{\"video\": 3}", &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("v.segments.json: not a segments file"),
            "{err}"
        );
    }
}
