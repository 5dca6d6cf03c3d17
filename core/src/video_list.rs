//! Lists of video files for the per-video batch commands (`syncseg
//! features --videos LIST`, `syncseg segment --videos LIST`).
//!
//! One video a line: a path (relative paths from the list's folder, so a
//! list moves with its videos), optionally a tab and its frame count —
//! what an `ffprobe` pass over the collection gives — which then balances
//! shards; without it the file's size does. Blank lines and `#` comments
//! are skipped. A video's outputs are named after its file stem, so two
//! videos with one stem (`a/cam01.mp4`, `b/cam01.mp4`) are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::labels::check_video_name;

/// One line of a video list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVideo {
    /// The file (resolved against the list's folder).
    pub path: PathBuf,
    /// Its outputs' name: the file stem.
    pub name: String,
    /// The frame count the list gives, if any.
    pub frames: Option<u64>,
}

impl ListedVideo {
    /// Its work for balancing shards: frames when listed, else the file's
    /// size (0 when it cannot be read; the job then fails on it by name).
    pub fn weight(&self) -> u64 {
        self.frames
            .unwrap_or_else(|| std::fs::metadata(&self.path).map_or(0, |m| m.len()))
    }
}

/// Reads the video list `path`.
pub fn read_video_list(path: impl AsRef<Path>) -> Result<Vec<ListedVideo>> {
    let path = path.as_ref();
    let base = path.parent().unwrap_or(Path::new(""));
    parse_video_list(&crate::fsio::read_text(path)?, base).map_err(|m| Error::format(path, m))
}

fn parse_video_list(text: &str, base: &Path) -> std::result::Result<Vec<ListedVideo>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut videos = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (file, frames) = match line.split_once('\t') {
            Some((file, n)) => {
                let n = n.trim();
                let frames = n
                    .parse::<u64>()
                    .map_err(|_| format!("line {no}: '{n}' after the tab is not a frame count"))?;
                (file, Some(frames))
            }
            None => (line, None),
        };
        // Paths keep inner spaces; only the line's ends are trimmed.
        let file = file.trim();
        if file.is_empty() {
            return Err(format!("line {no}: no video path"));
        }
        let rel = Path::new(file);
        let name = rel
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("line {no}: '{file}' has no file name"))?
            .to_string();
        check_video_name(&name).map_err(|e| format!("line {no}: {e}"))?;
        if let Some(prev) = seen.insert(name.clone(), no) {
            return Err(format!(
                "line {no}: '{file}' is named '{name}' like the video on line {prev}: outputs are named after the file stem, so stems must differ"
            ));
        }
        let path = if rel.is_absolute() {
            rel.to_path_buf()
        } else {
            base.join(rel)
        };
        videos.push(ListedVideo { path, name, frames });
    }
    if videos.is_empty() {
        return Err("no videos listed".into());
    }
    Ok(videos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_paths_frames_and_comments() {
        let v = parse_video_list(
            "# recordings\n\nP01/cam01.mp4\t5400\n/abs/my video.MOV\r\n  P02/cam02.mkv  \n",
            Path::new("/data"),
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].path, Path::new("/data/P01/cam01.mp4"));
        assert_eq!((v[0].name.as_str(), v[0].frames), ("cam01", Some(5400)));
        assert_eq!(v[1].path, Path::new("/abs/my video.MOV"));
        assert_eq!(v[1].name, "my video");
        assert_eq!(v[2].name, "cam02");
    }

    #[test]
    fn refuses_what_cannot_be_named() {
        let err = |t: &str| parse_video_list(t, Path::new("")).unwrap_err();
        assert!(err("a/x.mp4\nb/x.mp4\n").contains("line 2"));
        assert!(err("x.mp4\tmany\n").contains("not a frame count"));
        assert!(err("# nothing\n").contains("no videos"));
        assert!(err("\t12\n").contains("no video path"));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_names_a_line(text in "[a-zA-Z0-9./ \t\n#_-]{0,200}") {
            match parse_video_list(&text, Path::new("/d")) {
                Ok(v) => prop_assert!(!v.is_empty()),
                Err(e) => prop_assert!(e.starts_with("line ") || e == "no videos listed", "{e}"),
            }
        }
    }
}
