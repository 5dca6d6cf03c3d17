//! `syncseg export`: predicted segments to editor, player and web formats.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use syncseg_core::export::segments_file::SegmentsFile;
use syncseg_core::export::{render, ExportFormat, ExportOptions, FrameRate};
use syncseg_core::predict::PredictedSegment;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `<video>.segments.json` as written by `syncseg predict`.
    #[arg(long)]
    segments: PathBuf,
    /// Frame rate of the video the features came from: 30000/1001, 29.97, 25, ...
    /// (a negative value reaches the parser and gets its error, not clap's).
    #[arg(long, allow_hyphen_values = true)]
    fps: FrameRate,
    /// otio, edl, fcpxml, vtt, ffmetadata, srt, youtube, csv or json.
    #[arg(long)]
    format: ExportFormat,
    /// Output file (written atomically); standard output without it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leave out segments of this class (repeatable), e.g. background.
    #[arg(long)]
    background: Vec<String>,
    /// Path or URL of the video, for the OTIO/FCPXML clip's media reference.
    #[arg(long)]
    media: Option<String>,
    /// Drop-frame timecode (29.97 and 59.94 only): EDL timecodes HH:MM:SS;FF
    /// and FCPXML's tcFormat="DF"; the other formats store exact times and
    /// are unaffected.
    #[arg(long)]
    drop_frame: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = SegmentsFile::read(&args.segments)?;
    let opts = ExportOptions {
        title: file.video,
        video_frames: Some(file.frames),
        background: args.background,
        media: args.media,
        drop_frame: args.drop_frame,
    };
    let out = render(args.format, &file.segments, args.fps, &opts)
        .with_context(|| format!("{}", args.segments.display()))?;
    for note in &out.notes {
        eprintln!("note: {note}");
    }
    match &args.out {
        Some(path) => syncseg_core::fsio::write_bytes_atomic(path, out.text.as_bytes())?,
        None => std::io::stdout().write_all(out.text.as_bytes())?,
    }
    Ok(())
}

/// `syncseg predict --export`: writes `<out>/<video>.<ext>` if a format was
/// asked for (clap makes `--fps` required with `--export`). A video the
/// format cannot represent gets a warning on stderr, not an error: the
/// batch's main outputs are already written.
pub fn beside(
    format: Option<ExportFormat>,
    fps: Option<FrameRate>,
    out: &Path,
    video: &str,
    segments: &[PredictedSegment],
    frames: usize,
) -> anyhow::Result<()> {
    for line in
        syncseg_core::pipeline::predict::export_beside(format, fps, out, video, segments, frames)?
    {
        eprintln!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: usize, end: usize) -> PredictedSegment {
        PredictedSegment {
            label: 0,
            name: "pour".into(),
            start,
            end,
            confidence: 0.9,
        }
    }

    #[test]
    fn a_video_the_format_cannot_hold_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let fps: FrameRate = "25".parse().unwrap();
        // 4 s: too short for YouTube chapters (30 s at least).
        beside(
            Some(ExportFormat::Youtube),
            Some(fps),
            dir.path(),
            "short",
            &[segment(0, 100)],
            100,
        )
        .unwrap();
        assert!(!dir.path().join("short.youtube.txt").exists());
        // The same call with a format that can hold it writes the file.
        beside(
            Some(ExportFormat::Srt),
            Some(fps),
            dir.path(),
            "short",
            &[segment(0, 100)],
            100,
        )
        .unwrap();
        assert!(dir.path().join("short.srt").exists());
    }
}
