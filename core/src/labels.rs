//! Label files: per-frame ground truth, class mappings, Assembly101 coarse
//! segments and split bundles.
//!
//! Each format has a reader that gives a one-line error naming the file and
//! the line, and a writer that is atomic and refuses values that would not
//! read back unchanged (so every write → read is a round trip).
//!
//! All readers accept `\n` or `\r\n` line ends, a UTF-8 byte-order mark, and
//! trailing whitespace on a line, since these files are often edited by hand
//! on every platform.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsio;

/// Numbered lines (1-based) of `text`, each trimmed of surrounding
/// whitespace (including a `\r`), with a leading byte-order mark removed.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()))
}

/// Why `label` cannot be written as one line that reads back unchanged,
/// or `None` when it can.
fn unwritable(label: &str) -> Option<&'static str> {
    if label.is_empty() {
        Some("is empty")
    } else if label.contains(['\n', '\r']) {
        Some("contains a line break")
    } else if label.trim() != label {
        Some("has leading or trailing whitespace")
    } else {
        None
    }
}

/// Shortens `s` for an error message.
fn clip(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Per-frame labels (MS-TCN groundTruth)
// ---------------------------------------------------------------------------

/// Reads an MS-TCN `groundTruth/<video>.txt`: one label name per frame, one
/// per line.
///
/// Blank lines at the end are ignored (editors add them); a blank line
/// before the last label is an error naming its line, because it would
/// shift every later frame by one.
pub fn read_frame_labels(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    parse_frame_labels(&fsio::read_text(path)?).map_err(|m| Error::format(path, m))
}

fn parse_frame_labels(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut labels = Vec::new();
    let mut blank: Option<usize> = None;
    for (no, line) in numbered_lines(text) {
        if line.is_empty() {
            blank.get_or_insert(no);
            continue;
        }
        if let Some(b) = blank {
            return Err(format!(
                "line {b}: blank line between labels (frame {b} has no label)"
            ));
        }
        labels.push(line.to_string());
    }
    if labels.is_empty() {
        return Err("no labels (the file is empty)".into());
    }
    Ok(labels)
}

/// Writes one label per line, atomically. Fails, writing nothing, when a
/// label is empty, has a line break or surrounding whitespace.
pub fn write_frame_labels(path: impl AsRef<Path>, labels: &[impl AsRef<str>]) -> Result<()> {
    let path = path.as_ref();
    let mut out = String::new();
    for (i, l) in labels.iter().enumerate() {
        let l = l.as_ref();
        if let Some(why) = unwritable(l) {
            return Err(Error::invalid(format!(
                "cannot write {}: the label of frame {i} {why}",
                path.display()
            )));
        }
        out.push_str(l);
        out.push('\n');
    }
    fsio::write_bytes_atomic(path, out.as_bytes())
}

// ---------------------------------------------------------------------------
// Class mapping
// ---------------------------------------------------------------------------

/// The class names of a dataset, by id `0..K-1`.
///
/// Read from MS-TCN `mapping.txt` (`<id> <label>`) or C2F-TCN/Assembly101
/// `mapping.csv` / `actions.csv`; ids must be exactly `0..K-1` in any order,
/// because models index their outputs by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    /// The file it came from, named in unknown-label errors.
    source: Option<PathBuf>,
}

impl Mapping {
    /// Reads a mapping file.
    ///
    /// - `mapping.txt`: lines `<id> <label>`; the label is everything after
    ///   the first run of whitespace, so it may contain spaces.
    /// - CSV: chosen when the extension is `.csv` or the first line's first
    ///   word contains a comma. An optional header line (detected when its
    ///   first field is not a number) names the columns; the id is the first
    ///   column and the label the second, or the `action_cls` column when the
    ///   header has one (Assembly101's `actions.csv`). Fields may be quoted.
    ///
    /// Blank lines are skipped. Duplicate ids or labels, ids outside
    /// `0..K-1` and empty labels are errors naming the line.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = fsio::read_text(path)?;
        let by_ext = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let mut m = parse_mapping(&text, by_ext).map_err(|msg| Error::format(path, msg))?;
        m.source = Some(path.to_path_buf());
        Ok(m)
    }

    /// Builds a mapping where `names[i]` has id `i`. Names must be unique,
    /// non-empty and free of line breaks and surrounding whitespace (so the
    /// mapping can be written and read back).
    pub fn from_names(names: Vec<String>) -> Result<Self> {
        if names.is_empty() {
            return Err(Error::invalid("a mapping needs at least one class"));
        }
        let mut ids = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if let Some(why) = unwritable(n) {
                return Err(Error::invalid(format!("class name {i} {why}")));
            }
            let id = u32::try_from(i).map_err(|_| Error::invalid("too many classes"))?;
            if let Some(prev) = ids.insert(n.clone(), id) {
                return Err(Error::invalid(format!(
                    "class name '{n}' is used for ids {prev} and {i}"
                )));
            }
        }
        Ok(Mapping {
            names,
            ids,
            source: None,
        })
    }

    /// The id of class `name`, if it is one.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of class `id`, or `None` when `id >= len()`.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(String::as_str)
    }

    /// Number of classes `K`.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no classes (never true for a mapping that was read
    /// or built successfully; present for API completeness).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All class names, indexed by id.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Converts per-frame label names to ids. An unknown label is an error
    /// naming `path_for_errors` (the ground-truth file), the line (frame
    /// index + 1), the label and the mapping file.
    pub fn encode(
        &self,
        labels: &[impl AsRef<str>],
        path_for_errors: impl AsRef<Path>,
    ) -> Result<Vec<u32>> {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let l = l.as_ref();
                self.id_of(l).ok_or_else(|| {
                    let src = match &self.source {
                        Some(p) => format!("{} ({} classes)", p.display(), self.len()),
                        None => format!("the mapping ({} classes)", self.len()),
                    };
                    Error::format(
                        &path_for_errors,
                        format!("line {}: label '{}' is not in {src}", i + 1, clip(l)),
                    )
                })
            })
            .collect()
    }

    /// Converts ids back to names; fails on an id `>= len()`.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter()
            .enumerate()
            .map(|(t, &id)| {
                self.name(id).map(str::to_string).ok_or_else(|| {
                    Error::invalid(format!(
                        "frame {t}: class id {id} is out of range for {} classes",
                        self.len()
                    ))
                })
            })
            .collect()
    }

    /// Writes the mapping as MS-TCN `mapping.txt` (`<id> <label>` lines), atomically.
    pub fn write_txt(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut out = String::new();
        for (i, n) in self.names.iter().enumerate() {
            out.push_str(&format!("{i} {n}\n"));
        }
        fsio::write_bytes_atomic(path, out.as_bytes())
    }
}

/// Splits one CSV line into fields, honouring double quotes (`""` inside
/// quotes is a literal quote). Fields are trimmed.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur).trim().to_string()),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur.trim().to_string());
    fields
}

fn parse_mapping(text: &str, csv_by_ext: bool) -> std::result::Result<Mapping, String> {
    let mut lines = numbered_lines(text)
        .filter(|(_, l)| !l.is_empty())
        .peekable();
    let first = lines
        .peek()
        .map(|&(_, l)| l)
        .ok_or("no classes (the file is empty)")?;
    let csv = csv_by_ext
        || first
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains(','));

    let mut entries: Vec<(usize, u32, String)> = Vec::new();
    if csv {
        // The id is always the first column; the label the second, unless a
        // header names an `action_cls` column (Assembly101 actions.csv).
        let mut label_col = 1;
        if let Some(&(_, header)) = lines.peek() {
            let cols = csv_fields(header);
            if cols.first().is_some_and(|c| c.parse::<u64>().is_err()) {
                if let Some(i) = cols.iter().position(|c| c == "action_cls") {
                    label_col = i;
                }
                lines.next();
            }
        }
        for (no, line) in lines {
            let fields = csv_fields(line);
            if fields.len() <= label_col {
                return Err(format!(
                    "line {no}: expected at least {} comma-separated fields, got '{}'",
                    label_col + 1,
                    clip(line)
                ));
            }
            let id = parse_id(no, &fields[0])?;
            entries.push((no, id, fields[label_col].clone()));
        }
    } else {
        for (no, line) in lines {
            let Some((id, label)) = line.split_once(char::is_whitespace) else {
                return Err(format!(
                    "line {no}: expected '<id> <label>', got '{}'",
                    clip(line)
                ));
            };
            entries.push((no, parse_id(no, id)?, label.trim().to_string()));
        }
    }
    if entries.is_empty() {
        return Err("no classes (only a header line)".into());
    }

    // K entries with unique ids all below K are exactly 0..K-1.
    let k = entries.len();
    let mut names: Vec<Option<(usize, String)>> = vec![None; k];
    let mut ids: HashMap<String, (u32, usize)> = HashMap::with_capacity(k);
    for (no, id, label) in entries {
        if label.is_empty() {
            return Err(format!("line {no}: id {id} has an empty label"));
        }
        let slot = names.get_mut(id as usize).ok_or_else(|| {
            format!(
                "line {no}: id {id} is out of range: {k} classes need ids 0..{}",
                k - 1
            )
        })?;
        if let Some((prev, _)) = slot {
            return Err(format!("line {no}: id {id} already used on line {prev}"));
        }
        if let Some(&(prev_id, prev_no)) = ids.get(&label) {
            return Err(format!(
                "line {no}: label '{}' already has id {prev_id} (line {prev_no})",
                clip(&label)
            ));
        }
        ids.insert(label.clone(), (id, no));
        *slot = Some((no, label));
    }
    // Every slot is filled: k unique in-range ids for k slots.
    let names: Vec<String> = names.into_iter().flatten().map(|(_, n)| n).collect();
    Ok(Mapping {
        ids: ids.into_iter().map(|(n, (id, _))| (n, id)).collect(),
        names,
        source: None,
    })
}

fn parse_id(no: usize, s: &str) -> std::result::Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("line {no}: id '{}' is not a non-negative integer", clip(s)))
}

// ---------------------------------------------------------------------------
// Assembly101 coarse segments
// ---------------------------------------------------------------------------

/// One action segment of an Assembly101 coarse annotation: frames
/// `start..end` (end exclusive, 30 fps video frame indices) carry `label`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoarseSegment {
    /// First frame of the segment.
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// Action name, e.g. `attempt to screw chassis`.
    pub label: String,
}

/// Where frame 0 of the labels produced by [`coarse_to_frame_labels`] lies.
///
/// Assembly101's own loader treats the annotated span `[min start, max end)`
/// as the video, fetching features for exactly those frames, so
/// [`CoarseOrigin::FirstStart`] is the default. Use
/// [`CoarseOrigin::VideoStart`] when the features cover the whole recording
/// from its frame 0.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum CoarseOrigin {
    /// Output frame 0 is the earliest segment start (the reference loader).
    #[default]
    FirstStart,
    /// Output frame 0 is video frame 0; frames before the first segment get
    /// the fill label.
    VideoStart,
}

/// Reads an Assembly101 coarse label file: lines `start\tend\tlabel`
/// (e.g. `000006833\t000007554\tattempt to screw chassis`).
///
/// Fields are split on tabs and trimmed; fields after the label are ignored
/// (some files carry them); numbers may have leading zeros; blank lines are
/// skipped. `start < end` is required.
pub fn read_coarse_segments(path: impl AsRef<Path>) -> Result<Vec<CoarseSegment>> {
    let path = path.as_ref();
    parse_coarse(&fsio::read_text(path)?).map_err(|m| Error::format(path, m))
}

fn parse_coarse(text: &str) -> std::result::Result<Vec<CoarseSegment>, String> {
    let mut segs = Vec::new();
    for (no, line) in numbered_lines(text) {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        if f.len() < 3 {
            return Err(format!(
                "line {no}: expected tab-separated 'start<TAB>end<TAB>label', got '{}'",
                clip(line).replace('\t', "\\t")
            ));
        }
        let num = |s: &str, what: &str| {
            s.parse::<usize>().map_err(|_| {
                format!(
                    "line {no}: {what} frame '{}' is not a non-negative integer",
                    clip(s)
                )
            })
        };
        let (start, end) = (num(f[0], "start")?, num(f[1], "end")?);
        if start >= end {
            return Err(format!("line {no}: start {start} is not before end {end}"));
        }
        if f[2].is_empty() {
            return Err(format!("line {no}: empty label"));
        }
        segs.push(CoarseSegment {
            start,
            end,
            label: f[2].to_string(),
        });
    }
    if segs.is_empty() {
        return Err("no segments (the file is empty)".into());
    }
    Ok(segs)
}

/// Longest label sequence [`coarse_to_frame_labels`] will build (about 38
/// hours at 30 fps; ~100 MB of labels): a corrupt frame number must not
/// exhaust memory (the fuzzer's allocation cap found 1 << 27 used 3 GB).
pub const MAX_COARSE_FRAMES: usize = 1 << 22;

/// Expands coarse segments into one label per frame.
///
/// Frame `i` of the result is video frame `origin + i`, where `origin` is
/// the earliest start ([`CoarseOrigin::FirstStart`], as the Assembly101
/// reference) or 0. The length is `n_frames` when given (labels past it are
/// dropped, as the reference trims the span to the frames a view has, and
/// missing frames are filled), else `max end - origin`. Frames no segment
/// covers get `fill` (e.g. a background class). Overlapping segments are an
/// error naming both (numbered from 1 in file order).
pub fn coarse_to_frame_labels(
    segments: &[CoarseSegment],
    origin: CoarseOrigin,
    n_frames: Option<usize>,
    fill: &str,
) -> Result<Vec<String>> {
    let (Some(min_start), Some(max_end)) = (
        segments.iter().map(|s| s.start).min(),
        segments.iter().map(|s| s.end).max(),
    ) else {
        return Err(Error::invalid("no coarse segments to expand"));
    };
    let origin = match origin {
        CoarseOrigin::FirstStart => min_start,
        CoarseOrigin::VideoStart => 0,
    };
    let len = n_frames.unwrap_or(max_end - origin);
    if len > MAX_COARSE_FRAMES {
        return Err(Error::invalid(format!(
            "coarse labels would span {len} frames (over {MAX_COARSE_FRAMES}): corrupt frame numbers?"
        )));
    }
    let describe = |i: usize, s: &CoarseSegment| {
        format!(
            "segment {} [{}, {}) '{}'",
            i + 1,
            s.start,
            s.end,
            clip(&s.label)
        )
    };
    let mut order: Vec<usize> = (0..segments.len()).collect();
    order.sort_by_key(|&i| (segments[i].start, segments[i].end));
    let mut out = vec![fill.to_string(); len];
    // The earlier segment reaching furthest right: any overlap involves it.
    let mut reach: Option<usize> = None;
    for &i in &order {
        let s = &segments[i];
        if s.start >= s.end {
            return Err(Error::invalid(format!(
                "{} is empty or reversed",
                describe(i, s)
            )));
        }
        if let Some(j) = reach.filter(|&j| segments[j].end > s.start) {
            return Err(Error::invalid(format!(
                "{} overlaps {}",
                describe(j.min(i), &segments[j.min(i)]),
                describe(j.max(i), &segments[j.max(i)])
            )));
        }
        if reach.is_none_or(|j| s.end > segments[j].end) {
            reach = Some(i);
        }
        for slot in out.iter_mut().take(s.end - origin).skip(s.start - origin) {
            slot.clone_from(&s.label);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Split bundles
// ---------------------------------------------------------------------------

/// Reads a split bundle (`splits/*.bundle`): one video name per line.
///
/// A trailing `.txt` is stripped (MS-TCN bundles list `<video>.txt`); blank
/// lines and `#` comments are skipped. A name listed twice is an error (it
/// would be trained or scored twice), and so is a bundle with no names.
pub fn read_bundle(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    parse_bundle(&fsio::read_text(path)?).map_err(|m| Error::format(path, m))
}

fn parse_bundle(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (no, line) in numbered_lines(text) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.strip_suffix(".txt").unwrap_or(line).trim_end();
        if name.is_empty() {
            return Err(format!("line {no}: '.txt' without a video name"));
        }
        check_video_name(name).map_err(|e| format!("line {no}: {e}"))?;
        if let Some(prev) = seen.insert(name.to_string(), no) {
            return Err(format!(
                "line {no}: video '{}' already listed on line {prev}",
                clip(name)
            ));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err("no video names".into());
    }
    Ok(names)
}

/// Refuses a video name that is not a plain file name. Names are joined to
/// directories (`features/<name>.npy`, `--out/<name>.txt`), so a separator,
/// `..`, an absolute path or a drive prefix would read or write outside them.
pub fn check_video_name(name: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "video name '{}' {why}: a video name is a file name without its extension, not a path",
            clip(&name.escape_debug().to_string())
        ))
    };
    if name.contains(['/', '\\']) {
        return bad("contains a path separator");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name == "." || name == ".." {
        return bad("is a directory reference");
    }
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(p)), None) if p == name => Ok(()),
        _ => bad("is not a plain file name on this system"),
    }
}

/// Writes a split bundle atomically, one `<video>.txt` per line: MS-TCN's
/// loaders open `groundTruth/` + the line as is, so the suffix keeps the
/// file usable by them; [`read_bundle`] strips it again.
pub fn write_bundle(path: impl AsRef<Path>, names: &[impl AsRef<str>]) -> Result<()> {
    let path = path.as_ref();
    let fail = |msg: String| Error::invalid(format!("cannot write {}: {msg}", path.display()));
    if names.is_empty() {
        return Err(fail("no video names".into()));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for n in names {
        let n = n.as_ref();
        if let Some(why) = unwritable(n) {
            return Err(fail(format!("video name '{}' {why}", clip(n))));
        }
        check_video_name(n).map_err(fail)?;
        if n.starts_with('#') {
            return Err(fail(format!(
                "video name '{}' starts with '#' and would read as a comment",
                clip(n)
            )));
        }
        if !seen.insert(n) {
            return Err(fail(format!("video '{}' is listed twice", clip(n))));
        }
        out.push_str(n);
        out.push_str(".txt\n");
    }
    fsio::write_bytes_atomic(path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tmp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    /// The error message of `r` with the path prefix removed.
    fn msg<T: std::fmt::Debug>(r: Result<T>, path: &Path) -> String {
        let m = r.unwrap_err().to_string();
        assert!(!m.contains('\n'), "multi-line error: {m:?}");
        let prefix = format!("{}: ", path.display());
        m.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("error does not name {}: {m}", path.display()))
            .to_string()
    }

    #[test]
    fn frame_labels_tolerate_crlf_and_trailing_blanks() {
        let (_d, p) = tmp_file("v.txt", "\u{feff}take \r\ntake\r\nscrew wheel\t\r\n\r\n\n");
        assert_eq!(
            read_frame_labels(&p).unwrap(),
            vec!["take", "take", "screw wheel"]
        );
    }

    #[test]
    fn frame_label_errors() {
        let (_d, p) = tmp_file("v.txt", "a\na\n\nb\n");
        assert_eq!(
            msg(read_frame_labels(&p), &p),
            "line 3: blank line between labels (frame 3 has no label)"
        );
        let (_d, p) = tmp_file("v.txt", "\n \n");
        assert_eq!(
            msg(read_frame_labels(&p), &p),
            "no labels (the file is empty)"
        );
        let (_d, p) = tmp_file("v.txt", "");
        assert!(read_frame_labels(p.with_file_name("missing.txt"))
            .unwrap_err()
            .to_string()
            .contains("missing.txt"));
    }

    #[test]
    fn frame_labels_write_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gt/v.txt");
        let labels = ["a b", "c", "c"];
        write_frame_labels(&p, &labels).unwrap();
        assert_eq!(read_frame_labels(&p).unwrap(), labels);
        let err = write_frame_labels(&p, &["ok", " pad"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("frame 1 has leading or trailing whitespace"),
            "{err}"
        );
        assert_eq!(read_frame_labels(&p).unwrap(), labels);
    }

    #[test]
    fn mapping_txt() {
        let (_d, p) = tmp_file(
            "mapping.txt",
            "1 take wheel\n0 background\r\n2  screw  wheel \n\n",
        );
        let m = Mapping::read(&p).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.names(), ["background", "take wheel", "screw  wheel"]);
        assert_eq!(m.id_of("take wheel"), Some(1));
        assert_eq!(m.id_of("nope"), None);
        assert_eq!(m.name(2), Some("screw  wheel"));
        assert_eq!(m.name(3), None);
        let ids = m.encode(&["background", "take wheel"], "gt.txt").unwrap();
        assert_eq!(ids, vec![0, 1]);
        assert_eq!(m.decode(&ids).unwrap(), vec!["background", "take wheel"]);
        assert!(m.decode(&[3]).is_err());
    }

    #[test]
    fn mapping_csv_variants() {
        let (_d, p) = tmp_file(
            "mapping.csv",
            "label_id,label_name\n0,SIL\n1,\"pour, milk\"\n",
        );
        let m = Mapping::read(&p).unwrap();
        assert_eq!(m.names(), ["SIL", "pour, milk"]);
        // Headerless CSV detected by content despite a .txt name.
        let (_d, p) = tmp_file("mapping.txt", "0,a\n1,b\n");
        assert_eq!(Mapping::read(&p).unwrap().names(), ["a", "b"]);
        // Assembly101 actions.csv: label from the action_cls column.
        let (_d, p) = tmp_file(
            "actions.csv",
            "action_id,verb_id,noun_id,action_cls,verb_cls,noun_cls\n\
             1,2,3,attach cabin,attach,cabin\n0,1,1,detach base,detach,base\n",
        );
        assert_eq!(
            Mapping::read(&p).unwrap().names(),
            ["detach base", "attach cabin"]
        );
    }

    #[test]
    fn mapping_errors() {
        let cases = [
            ("0 a\n0 b\n", "line 2: id 0 already used on line 1"),
            ("0 a\n1 a\n", "line 2: label 'a' already has id 0 (line 1)"),
            (
                "0 a\n2 b\n",
                "line 2: id 2 is out of range: 2 classes need ids 0..1",
            ),
            ("0 a\nx b\n", "line 2: id 'x' is not a non-negative integer"),
            ("0 a\n1\n", "line 2: expected '<id> <label>', got '1'"),
            ("", "no classes (the file is empty)"),
        ];
        for (text, want) in cases {
            let (_d, p) = tmp_file("mapping.txt", text);
            assert_eq!(msg(Mapping::read(&p), &p), want, "for {text:?}");
        }
        let (_d, p) = tmp_file("mapping.csv", "id,name\n");
        assert_eq!(
            msg(Mapping::read(&p), &p),
            "no classes (only a header line)"
        );
        let (_d, p) = tmp_file("mapping.csv", "id,name\n0\n");
        assert!(msg(Mapping::read(&p), &p).starts_with("line 2: expected at least 2"));
    }

    #[test]
    fn encode_names_file_line_label_and_mapping() {
        let (_d, p) = tmp_file("mapping.txt", "0 a\n1 b\n");
        let m = Mapping::read(&p).unwrap();
        let gt = Path::new("groundTruth/v1.txt");
        let err = m.encode(&["a", "b", "zz"], gt).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "groundTruth/v1.txt: line 3: label 'zz' is not in {} (2 classes)",
                p.display()
            )
        );
    }

    #[test]
    fn mapping_from_names_and_write() {
        let m = Mapping::from_names(vec!["bg".into(), "take cup".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mapping.txt");
        m.write_txt(&p).unwrap();
        let back = Mapping::read(&p).unwrap();
        assert_eq!(back.names(), m.names());
        assert!(Mapping::from_names(vec![]).is_err());
        assert!(Mapping::from_names(vec!["a".into(), "a".into()]).is_err());
        assert!(Mapping::from_names(vec!["a\nb".into()]).is_err());
    }

    #[test]
    fn coarse_segments_parse() {
        let (_d, p) = tmp_file(
            "assembly_x.txt",
            "000006833\t000007554\tattempt to screw chassis\n\
             7554\t7600\t detach wheel \textra\tfields\r\n\n",
        );
        let segs = read_coarse_segments(&p).unwrap();
        assert_eq!(
            segs,
            vec![
                CoarseSegment {
                    start: 6833,
                    end: 7554,
                    label: "attempt to screw chassis".into()
                },
                CoarseSegment {
                    start: 7554,
                    end: 7600,
                    label: "detach wheel".into()
                },
            ]
        );
    }

    #[test]
    fn coarse_errors() {
        let cases = [
            (
                "10 20 take\n",
                "line 1: expected tab-separated 'start<TAB>end<TAB>label', got '10 20 take'",
            ),
            ("20\t10\ttake\n", "line 1: start 20 is not before end 10"),
            (
                "1\t2\ta\nx\t10\ttake\n",
                "line 2: start frame 'x' is not a non-negative integer",
            ),
            (
                "1\t2\t\n",
                "line 1: expected tab-separated 'start<TAB>end<TAB>label', got '1\\t2'",
            ),
            ("1\t2\t \tx\n", "line 1: empty label"),
            ("\n", "no segments (the file is empty)"),
        ];
        for (text, want) in cases {
            let (_d, p) = tmp_file("c.txt", text);
            assert_eq!(msg(read_coarse_segments(&p), &p), want, "for {text:?}");
        }
    }

    fn seg(start: usize, end: usize, label: &str) -> CoarseSegment {
        CoarseSegment {
            start,
            end,
            label: label.into(),
        }
    }

    #[test]
    fn coarse_expansion() {
        let segs = [seg(12, 14, "b"), seg(10, 12, "a"), seg(15, 16, "c")];
        let l = coarse_to_frame_labels(&segs, CoarseOrigin::FirstStart, None, "bg").unwrap();
        assert_eq!(l, ["a", "a", "b", "b", "bg", "c"]);
        let l = coarse_to_frame_labels(&segs, CoarseOrigin::VideoStart, None, "bg").unwrap();
        assert_eq!(l.len(), 16);
        assert_eq!(&l[9..], ["bg", "a", "a", "b", "b", "bg", "c"]);
        let l = coarse_to_frame_labels(&segs, CoarseOrigin::FirstStart, Some(3), "bg").unwrap();
        assert_eq!(l, ["a", "a", "b"]);
        let l = coarse_to_frame_labels(&segs, CoarseOrigin::FirstStart, Some(8), "bg").unwrap();
        assert_eq!(l, ["a", "a", "b", "b", "bg", "c", "bg", "bg"]);
    }

    #[test]
    fn coarse_overlap_and_empty_errors() {
        let segs = [seg(0, 10, "a"), seg(20, 30, "c"), seg(5, 12, "b")];
        let err = coarse_to_frame_labels(&segs, CoarseOrigin::FirstStart, None, "bg")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "segment 1 [0, 10) 'a' overlaps segment 3 [5, 12) 'b'");
        assert!(coarse_to_frame_labels(&[], CoarseOrigin::FirstStart, None, "bg").is_err());
        let huge = [seg(0, usize::MAX, "a")];
        assert!(coarse_to_frame_labels(&huge, CoarseOrigin::FirstStart, None, "bg").is_err());
    }

    #[test]
    fn bundles() {
        let (_d, p) = tmp_file(
            "train.split1.bundle",
            "# train split\nrgb-01-1.txt\r\n\nrgb-02-1\n  rgb-03-1.txt  \n",
        );
        assert_eq!(
            read_bundle(&p).unwrap(),
            ["rgb-01-1", "rgb-02-1", "rgb-03-1"]
        );
        let (_d, p) = tmp_file("b.bundle", "a.txt\nb\na\n");
        assert_eq!(
            msg(read_bundle(&p), &p),
            "line 3: video 'a' already listed on line 1"
        );
        let (_d, p) = tmp_file("b.bundle", "# only a comment\n\n");
        assert_eq!(msg(read_bundle(&p), &p), "no video names");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bundle");
        write_bundle(&p, &["v1", "v2"]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "v1.txt\nv2.txt\n");
        assert_eq!(read_bundle(&p).unwrap(), ["v1", "v2"]);
        assert!(write_bundle(&p, &["#x"]).is_err());
        assert!(write_bundle(&p, &["a", "a"]).is_err());
        assert!(write_bundle(&p, &[] as &[&str]).is_err());
    }

    #[test]
    fn bundle_names_are_not_paths() {
        for (line, why) in [
            ("/abs/dir/victim", "contains a path separator"),
            ("../../x/victim.txt", "contains a path separator"),
            ("..", "is a directory reference"),
            (".", "is a directory reference"),
            ("a\\b", "contains a path separator"),
            ("nul\0byte", "contains a control character"),
        ] {
            let (_d, p) = tmp_file("b.bundle", &format!("ok\n{line}\n"));
            let m = msg(read_bundle(&p), &p);
            assert!(m.starts_with("line 2: video name '"), "{m}");
            assert!(m.contains(why), "{line}: {m}");
            assert!(write_bundle(&p, &[line]).is_err(), "{line}");
        }
        // Dots and spaces inside a name are fine.
        let (_d, p) = tmp_file("b.bundle", "P01 take.2..x\n");
        assert_eq!(read_bundle(&p).unwrap(), ["P01 take.2..x"]);
    }

    /// Labels that the writers accept: no surrounding whitespace or breaks.
    fn label() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_][a-zA-Z0-9_ ,.-]{0,12}[a-zA-Z0-9_]"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn parsers_never_panic(text in "(?s).{0,300}") {
            let _ = parse_frame_labels(&text);
            let _ = parse_mapping(&text, false);
            let _ = parse_mapping(&text, true);
            let _ = parse_coarse(&text);
            let _ = parse_bundle(&text);
        }

        #[test]
        fn parsers_never_panic_on_plausible_lines(
            lines in proptest::collection::vec("[0-9]{0,3}[ \t,]{0,2}[a-z\"#]{0,4}[\t ,]?[0-9a-z]{0,3}", 0..12)
        ) {
            let text = lines.join("\n");
            let _ = parse_mapping(&text, false);
            let _ = parse_mapping(&text, true);
            if let Ok(segs) = parse_coarse(&text) {
                let _ = coarse_to_frame_labels(&segs, CoarseOrigin::FirstStart, None, "bg");
                let _ = coarse_to_frame_labels(&segs, CoarseOrigin::VideoStart, Some(5), "bg");
            }
        }

        #[test]
        fn frame_labels_round_trip(labels in proptest::collection::vec(label(), 1..20)) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("v.txt");
            write_frame_labels(&p, &labels).unwrap();
            prop_assert_eq!(read_frame_labels(&p).unwrap(), labels);
        }

        #[test]
        fn mapping_round_trip(names in proptest::collection::hash_set(label(), 1..10)) {
            let names: Vec<String> = names.into_iter().collect();
            let m = Mapping::from_names(names.clone()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("mapping.txt");
            m.write_txt(&p).unwrap();
            let back = Mapping::read(&p).unwrap();
            prop_assert_eq!(back.names(), &names[..]);
        }

        #[test]
        fn bundle_round_trip(names in proptest::collection::hash_set("[a-z0-9_-]{1,10}(\\.txt)?", 1..10)) {
            let names: Vec<String> = names.into_iter().collect();
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("s.bundle");
            write_bundle(&p, &names).unwrap();
            prop_assert_eq!(read_bundle(&p).unwrap(), names);
        }

        #[test]
        fn coarse_round_trip(
            parts in proptest::collection::vec((0usize..5, 1usize..6, label()), 1..8)
        ) {
            // Non-overlapping segments with gaps, written in the file format.
            let mut t = 3;
            let mut segs = Vec::new();
            for (gap, len, l) in parts {
                segs.push(seg(t + gap, t + gap + len, &l));
                t += gap + len;
            }
            let text: String = segs
                .iter()
                .map(|s| format!("{:09}\t{:09}\t{}\n", s.start, s.end, s.label))
                .collect();
            prop_assert_eq!(&parse_coarse(&text).unwrap(), &segs);
            let frames = coarse_to_frame_labels(&segs, CoarseOrigin::FirstStart, None, "~").unwrap();
            prop_assert_eq!(frames.len(), t - segs[0].start);
            for s in &segs {
                for f in s.start..s.end {
                    prop_assert_eq!(&frames[f - segs[0].start], &s.label);
                }
            }
        }
    }
}
