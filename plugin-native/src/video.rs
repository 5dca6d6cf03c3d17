//! Video files to RGB frames through the system's `ffmpeg` (any container
//! and codec it reads), and frame features with a DINOv2 ViT.
//!
//! `ffprobe` gives the size, frame rate and frame count; `ffmpeg` pipes raw
//! `rgb24` frames on stdout. Without `--fps` every decoded frame comes out
//! once (`-fps_mode passthrough`), so frame `i` of the features is frame
//! `i` of the video and exports land on the right frames; with `--fps F`
//! ffmpeg's `fps` filter samples the video and [`Sampling::label_of`] maps
//! each original frame to its nearest sample.

use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use anyhow::{bail, Context};
use syncseg_core::export::FrameRate;
use syncseg_core::features::Features;
use syncseg_core::vision::Preprocess;

use crate::commands::device::FrameEncoder;

/// What `ffprobe` says of the first video stream.
#[derive(Debug, Clone)]
pub struct VideoInfo {
    pub width: usize,
    pub height: usize,
    /// The stream's frame rate (average rate, else the base rate).
    pub fps: FrameRate,
    /// Frames in the stream, when the container says or the duration tells.
    pub frames: Option<u64>,
}

fn tool_missing(tool: &str, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "{tool} not found: syncseg decodes video with FFmpeg; install it (Debian/Ubuntu: apt-get install ffmpeg, macOS: brew install ffmpeg) or put it on PATH"
        )
    } else {
        anyhow::anyhow!("cannot run {tool}: {e}")
    }
}

/// The last line FFmpeg printed, without the file name it starts with:
/// its errors end with the one that says what went wrong.
fn last_line(stderr: &str, path: &Path) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message");
    let prefix = format!("{}: ", path.display());
    line.trim()
        .strip_prefix(&prefix)
        .unwrap_or(line.trim())
        .to_string()
}

/// Reads the first video stream's properties.
pub fn probe(path: &Path) -> anyhow::Result<VideoInfo> {
    if !path.is_file() {
        bail!("{}: no such video file", path.display());
    }
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,duration:format=duration")
        .args(["-of", "json"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tool_missing("ffprobe", e))?;
    if !out.status.success() {
        bail!(
            "{}: ffprobe cannot read it: {}",
            path.display(),
            last_line(&String::from_utf8_lossy(&out.stderr), path)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{}: unreadable ffprobe output", path.display()))?;
    let Some(stream) = v["streams"].get(0) else {
        bail!("{}: no video stream", path.display());
    };
    let dim = |k: &str| stream[k].as_u64().filter(|&n| n > 0).map(|n| n as usize);
    let (Some(width), Some(height)) = (dim("width"), dim("height")) else {
        bail!("{}: the video stream has no frame size", path.display());
    };
    let rate = |k: &str| -> Option<FrameRate> {
        stream[k]
            .as_str()
            .filter(|s| !s.starts_with('0'))
            .and_then(|s| s.parse().ok())
    };
    let Some(fps) = rate("avg_frame_rate").or_else(|| rate("r_frame_rate")) else {
        bail!("{}: the video stream has no frame rate", path.display());
    };
    let number = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    let frames = number(&stream["nb_frames"]).map(|n| n as u64).or_else(|| {
        let duration = number(&stream["duration"]).or_else(|| number(&v["format"]["duration"]))?;
        Some((duration * fps.as_f64()).round() as u64)
    });
    Ok(VideoInfo {
        width,
        height,
        fps,
        frames,
    })
}

/// Raw RGB frames from an `ffmpeg` child process.
pub struct FrameReader {
    child: Child,
    stdout: ChildStdout,
    frame_bytes: usize,
    path: String,
}

impl FrameReader {
    /// Starts decoding `path`, every frame, or sampled at `sample_fps`.
    pub fn open(path: &Path, info: &VideoInfo, sample_fps: Option<f64>) -> anyhow::Result<Self> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-nostdin", "-i"]).arg(path);
        match sample_fps {
            Some(f) => cmd.args(["-vf", &format!("fps={f}")]),
            None => cmd.args(["-fps_mode", "passthrough"]),
        };
        cmd.args(["-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| tool_missing("ffmpeg", e))?;
        let stdout = child.stdout.take().expect("piped");
        Ok(FrameReader {
            child,
            stdout,
            frame_bytes: info.width * info.height * 3,
            path: path.display().to_string(),
        })
    }

    /// Fills `buf` with the next frame; false at the end of the video.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
        buf.resize(self.frame_bytes, 0);
        let mut filled = 0;
        while filled < buf.len() {
            let n = self
                .stdout
                .read(&mut buf[filled..])
                .with_context(|| format!("{}: reading frames from ffmpeg", self.path))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == buf.len() {
            return Ok(true);
        }
        let status = self.child.wait()?;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        if !status.success() || filled != 0 {
            bail!(
                "{}: ffmpeg failed to decode it ({status}): {}",
                self.path,
                last_line(&err, Path::new(&self.path))
            );
        }
        Ok(false)
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        // Stops ffmpeg early on errors; reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How feature frames relate to the video's frames.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// The video's frame rate.
    pub video_fps: f64,
    /// The features' rate (the video's without --fps).
    pub sample_fps: f64,
}

impl Sampling {
    /// The feature frame nearest in time to video frame `n` (of `samples`).
    pub fn label_of(&self, n: u64, samples: usize) -> usize {
        let t = n as f64 / self.video_fps;
        ((t * self.sample_fps).round() as usize).min(samples.saturating_sub(1))
    }
}

/// Frame features `[D, T]` of a video: decode, preprocess, ViT CLS tokens.
/// `progress(done)` is called after each batch.
pub fn extract(
    path: &Path,
    info: &VideoInfo,
    sample_fps: Option<f64>,
    vit: &mut FrameEncoder,
    pre: &Preprocess,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<Features> {
    let batch_size = vit.batch()?;
    let s = vit.image_size();
    if pre.crop != s {
        bail!(
            "the crop ({}) must equal the ViT's input size ({s})",
            pre.crop
        );
    }
    let mut reader = FrameReader::open(path, info, sample_fps)?;
    let mut frame = Vec::new();
    let mut batch: Vec<f32> = Vec::with_capacity(batch_size * 3 * s * s);
    let mut rows: Vec<f32> = Vec::new();
    let mut frames = 0;
    loop {
        let more = reader.next_frame(&mut frame)?;
        if more {
            let start = batch.len();
            batch.resize(start + 3 * s * s, 0.0);
            pre.frame_into(&frame, info.width, info.height, &mut batch[start..])
                .with_context(|| format!("{}: frame {frames}", path.display()))?;
        }
        let n = batch.len() / (3 * s * s);
        if n == batch_size || (!more && n > 0) {
            rows.extend(vit.embed(&batch, n)?);
            frames += n;
            batch.clear();
            progress(frames);
        }
        if !more {
            break;
        }
    }
    if frames == 0 {
        bail!("{}: no frames decoded", path.display());
    }
    Ok(Features::from_time_major(frames, vit.dim(), rows)?)
}
