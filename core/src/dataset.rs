//! Multi-view datasets in the MS-TCN layout, and the alignment of
//! synchronized views onto one timeline.
//!
//! A dataset root looks like
//!
//! ```text
//! root/
//!   features/<view>/<video>.npy   one folder per view, same video names
//!   groundTruth/<video>.txt       per-frame labels, shared by all views
//!   mapping.txt | mapping.csv     class ids (optional when no labels are read)
//!   splits/*.bundle               video names
//!   views.json                    optional: per-view fps, offsets, layouts
//! ```
//!
//! Synchronized exo/ego pairs are the point of the method, so a
//! [`Recording`] always carries its views already aligned frame by frame,
//! by timestamps when frame rates are declared, else by index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::Features;
use crate::labels::{read_bundle, read_frame_labels, Mapping};
use crate::npy::{read_features, FeatureLayout};

/// Default for [`MultiViewDataset::length_tolerance`]: how many frames the
/// views and labels of one recording may differ in length when no frame
/// rates are declared. Feature extractors and video decoders commonly
/// disagree by a frame or two at the end of a video; a larger gap means the
/// files do not belong together. The longer ones are trimmed at the tail.
pub const LENGTH_TOLERANCE_FRAMES: usize = 2;

/// One view (camera) of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewSpec {
    /// The view's name, e.g. `exo` or `C10095_rgb`.
    pub name: String,
    /// Folder holding `<video>.npy` for this view.
    pub dir: PathBuf,
    /// Frame rate of the features, if declared. Either every view of a
    /// recording declares one (alignment by timestamps) or none does
    /// (alignment by frame index).
    pub fps: Option<f64>,
    /// Time on the reference clock, in seconds, at which this view's frame 0
    /// was captured (positive: the view started later). Needs `fps`.
    pub offset_s: f64,
    /// Axis order of the view's `.npy` files.
    pub layout: FeatureLayout,
}

/// A multi-view dataset opened at its root. See the module docs for the layout.
///
/// `views.json` at the root is optional; every field in it is optional:
///
/// ```json
/// {
///   "label_fps": 30.0,
///   "length_tolerance_frames": 2,
///   "views": {
///     "exo": { "fps": 30.0, "offset_s": 0.0, "layout": "dim_by_time" },
///     "ego": { "fps": 15.0, "offset_s": 0.5, "layout": "time_by_dim",
///              "dir": "features/ego_dinov2" }
///   },
///   "recordings": {
///     "P01_cooking": { "ego": { "offset_s": 2.37, "rate": 1.0004 } }
///   }
/// }
/// ```
///
/// - `label_fps`: frame rate of `groundTruth/` files; with view fps it makes
///   the labels the reference timeline.
/// - `length_tolerance_frames`: overrides [`LENGTH_TOLERANCE_FRAMES`].
/// - `views.<name>.fps`, `offset_s` (default 0), `layout` (`dim_by_time`,
///   the default, or `time_by_dim`), `dir` (default `features/<name>`,
///   relative to the root; `"features"` opens a classic single-view
///   MS-TCN dataset as one named view).
/// - `recordings.<video>.<view>.offset_s` (default: the view's) and `rate`
///   (default 1, within [`RATE_RANGE`]): that view's clock in that
///   recording ([`ViewClock`]), for pairs recorded by cameras that were not
///   synchronized alike. Needs the view's fps.
///
/// Unknown fields are errors, so a misspelt key is not silently ignored.
#[derive(Debug, Clone)]
pub struct MultiViewDataset {
    /// The dataset root.
    pub root: PathBuf,
    /// The opened views, in the order requested; the first is the reference
    /// timeline when labels do not provide one.
    pub views: Vec<ViewSpec>,
    /// Folder of the per-frame label files (`root/groundTruth`).
    pub labels_dir: PathBuf,
    /// Frame rate of the label files, if declared.
    pub label_fps: Option<f64>,
    /// Class mapping, `None` when the root has neither `mapping.txt` nor
    /// `mapping.csv` (enough for label-free distillation).
    pub mapping: Option<Mapping>,
    /// Allowed length difference in frames between views and labels when
    /// aligning by index (default [`LENGTH_TOLERANCE_FRAMES`]).
    pub length_tolerance: usize,
    /// Per-recording clocks of views (`recordings.<video>.<view>`), for
    /// pairs whose views are not synchronized alike.
    pub clocks: BTreeMap<String, BTreeMap<String, ViewClock>>,
}

/// One recording with all requested views on a common timeline: frame `t`
/// of every view, and label `t`, describe the same instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The video name.
    pub name: String,
    /// Aligned features, one per requested view, in request order; all have
    /// the same number of frames.
    pub views: Vec<Features>,
    /// Class ids per frame, when labels were loaded.
    pub labels: Option<Vec<u32>>,
    /// Frame rate of the common timeline, when known.
    pub fps: Option<f64>,
}

impl Recording {
    /// Number of frames on the common timeline.
    pub fn frames(&self) -> usize {
        self.views.first().map_or(0, |f| f.frames)
    }
}

/// Frame rates `views.json` accepts: from one frame a minute and a half
/// (sparse feature extraction) to high-speed cameras. Outside it, frame
/// arithmetic loses meaning (1e-308 makes every offset infinite frames).
pub const FPS_RANGE: (f64, f64) = (0.01, 10_000.0);
/// The largest view offset `views.json` accepts (seconds, about 11 days).
pub const MAX_OFFSET_S: f64 = 1e6;

/// `views.json`, as written by users.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewsFile {
    #[serde(default)]
    label_fps: Option<f64>,
    #[serde(default)]
    length_tolerance_frames: Option<usize>,
    #[serde(default)]
    views: BTreeMap<String, ViewEntry>,
    #[serde(default)]
    recordings: BTreeMap<String, BTreeMap<String, ClockEntry>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockEntry {
    #[serde(default)]
    offset_s: Option<f64>,
    #[serde(default)]
    rate: Option<f64>,
}

/// One view's clock in one recording (`views.json` `recordings.<video>.<view>`):
/// where its frame 0 sits on the reference clock, and how fast it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ViewClock {
    /// Seconds on the reference clock of the view's frame 0 (replaces the
    /// view's `offset_s` for this recording).
    pub offset_s: f64,
    /// The view's seconds per reference second (1.001: its clock runs
    /// 0.1 % fast, a drift). Default 1.
    pub rate: f64,
}

/// The clock rates `views.json` accepts for one recording's view: a drift
/// of up to a factor 2 either way (real camera clocks drift by < 0.1 %).
pub const RATE_RANGE: (f64, f64) = (0.5, 2.0);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewEntry {
    #[serde(default)]
    fps: Option<f64>,
    #[serde(default)]
    offset_s: Option<f64>,
    #[serde(default)]
    layout: FeatureLayout,
    #[serde(default)]
    dir: Option<PathBuf>,
}

/// Names of the view folders under `root/features`, sorted.
pub fn available_views(root: impl AsRef<Path>) -> Result<Vec<String>> {
    let dir = root.as_ref().join("features");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

impl MultiViewDataset {
    /// Opens the dataset at `root` with the views `view_names` (at least
    /// one; the first is the reference timeline when labels have no fps).
    ///
    /// Reads `views.json` and the mapping if present. Fails, listing the
    /// views that exist, when a view folder is missing; fails on invalid
    /// frame rates or on fps declared for some requested views but not all.
    pub fn open(root: impl AsRef<Path>, view_names: &[&str]) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::format(&root, "dataset root is not a folder"));
        }
        let json_path = root.join("views.json");
        let config: ViewsFile = if json_path.exists() {
            let text = crate::fsio::read_text(&json_path)?;
            serde_json::from_str(&text).map_err(|e| Error::format(&json_path, e.to_string()))?
        } else {
            ViewsFile::default()
        };
        let bad_json = |msg: String| Error::format(&json_path, msg);
        let positive = |v: f64| (FPS_RANGE.0..=FPS_RANGE.1).contains(&v);
        if let Some(f) = config.label_fps.filter(|&f| !positive(f)) {
            return Err(bad_json(format!(
                "label_fps must be a frame rate in [{}, {}], got {f}",
                FPS_RANGE.0, FPS_RANGE.1
            )));
        }

        let listing = || match available_views(&root) {
            Ok(v) if !v.is_empty() => v.join(", "),
            Ok(_) => "none".to_string(),
            Err(_) => "none: no features/ folder".to_string(),
        };
        if view_names.is_empty() {
            return Err(Error::invalid(format!(
                "{}: no views requested (views found: {})",
                root.display(),
                listing()
            )));
        }
        let mut views: Vec<ViewSpec> = Vec::with_capacity(view_names.len());
        for &name in view_names {
            if views.iter().any(|v| v.name == name) {
                return Err(Error::invalid(format!("view '{name}' requested twice")));
            }
            let entry = config.views.get(name);
            let fps = entry.and_then(|e| e.fps);
            let offset_s = entry.and_then(|e| e.offset_s);
            if let Some(f) = fps.filter(|&f| !positive(f)) {
                return Err(bad_json(format!(
                    "view '{name}': fps must be a frame rate in [{}, {}], got {f}",
                    FPS_RANGE.0, FPS_RANGE.1
                )));
            }
            match (fps, offset_s) {
                (_, Some(o)) if !(-MAX_OFFSET_S..=MAX_OFFSET_S).contains(&o) => {
                    return Err(bad_json(format!(
                        "view '{name}': offset_s must be within ±{MAX_OFFSET_S} s, got {o}"
                    )))
                }
                (None, Some(o)) if o != 0.0 => {
                    return Err(bad_json(format!(
                        "view '{name}' declares offset_s but no fps: offsets need a frame rate"
                    )))
                }
                _ => {}
            }
            let dir = match entry.and_then(|e| e.dir.clone()) {
                Some(d) => root.join(d),
                None => root.join("features").join(name),
            };
            if !dir.is_dir() {
                return Err(Error::format(
                    &dir,
                    format!(
                        "view '{name}' not found: no such folder (views found: {})",
                        listing()
                    ),
                ));
            }
            views.push(ViewSpec {
                name: name.to_string(),
                dir,
                fps,
                offset_s: offset_s.unwrap_or(0.0),
                layout: entry.map(|e| e.layout).unwrap_or_default(),
            });
        }
        let with_fps: Vec<&str> = views
            .iter()
            .filter(|v| v.fps.is_some())
            .map(|v| v.name.as_str())
            .collect();
        if !with_fps.is_empty() && with_fps.len() != views.len() {
            let without: Vec<&str> = views
                .iter()
                .filter(|v| v.fps.is_none())
                .map(|v| v.name.as_str())
                .collect();
            return Err(bad_json(format!(
                "fps is declared for {} but not for {}: declare it for all views or none",
                with_fps.join(", "),
                without.join(", ")
            )));
        }

        let known = available_views(&root).unwrap_or_default();
        let mut clocks = BTreeMap::new();
        for (video, entries) in &config.recordings {
            let mut per_view = BTreeMap::new();
            for (view, e) in entries {
                if !config.views.contains_key(view) && !known.contains(view) {
                    return Err(bad_json(format!(
                        "recordings.{video}: unknown view '{view}' (views found: {})",
                        listing()
                    )));
                }
                let fps = config.views.get(view).and_then(|v| v.fps);
                if fps.is_none() {
                    return Err(bad_json(format!(
                        "recordings.{video}.{view}: a clock needs the view's fps (views.{view}.fps)"
                    )));
                }
                let offset_s = e
                    .offset_s
                    .or_else(|| config.views.get(view).and_then(|v| v.offset_s))
                    .unwrap_or(0.0);
                if !(-MAX_OFFSET_S..=MAX_OFFSET_S).contains(&offset_s) {
                    return Err(bad_json(format!(
                        "recordings.{video}.{view}: offset_s must be within ±{MAX_OFFSET_S} s, got {offset_s}"
                    )));
                }
                let rate = e.rate.unwrap_or(1.0);
                if !(RATE_RANGE.0..=RATE_RANGE.1).contains(&rate) {
                    return Err(bad_json(format!(
                        "recordings.{video}.{view}: rate must be in [{}, {}], got {rate}",
                        RATE_RANGE.0, RATE_RANGE.1
                    )));
                }
                per_view.insert(view.clone(), ViewClock { offset_s, rate });
            }
            clocks.insert(video.clone(), per_view);
        }

        // mapping.txt wins when both exist: it is the MS-TCN original.
        let mapping = ["mapping.txt", "mapping.csv"]
            .iter()
            .map(|n| root.join(n))
            .find(|p| p.is_file())
            .map(Mapping::read)
            .transpose()?;

        Ok(MultiViewDataset {
            labels_dir: root.join("groundTruth"),
            label_fps: config.label_fps,
            length_tolerance: config
                .length_tolerance_frames
                .unwrap_or(LENGTH_TOLERANCE_FRAMES),
            root,
            views,
            mapping,
            clocks,
        })
    }

    /// The clock of `view` in `video`: its per-recording entry, else the
    /// view's offset at rate 1.
    pub fn clock(&self, video: &str, view: &ViewSpec) -> ViewClock {
        self.clocks
            .get(video)
            .and_then(|c| c.get(&view.name))
            .copied()
            .unwrap_or(ViewClock {
                offset_s: view.offset_s,
                rate: 1.0,
            })
    }

    /// The opened view called `name`.
    pub fn view(&self, name: &str) -> Result<&ViewSpec> {
        self.views.iter().find(|v| v.name == name).ok_or_else(|| {
            let opened: Vec<&str> = self.views.iter().map(|v| v.name.as_str()).collect();
            Error::invalid(format!(
                "unknown view '{name}' (opened: {})",
                opened.join(", ")
            ))
        })
    }

    /// Path of the feature file of `video` in view `view`.
    pub fn feature_path(&self, video: &str, view: &str) -> Result<PathBuf> {
        Ok(self.view(view)?.dir.join(format!("{video}.npy")))
    }

    /// Path of the label file of `video` (it may not exist).
    pub fn labels_path(&self, video: &str) -> PathBuf {
        self.labels_dir.join(format!("{video}.txt"))
    }

    /// Whether `video` has a label file.
    pub fn has_labels(&self, video: &str) -> bool {
        self.labels_path(video).is_file()
    }

    /// Names of the videos of the first view (its `.npy` files), sorted.
    pub fn videos(&self) -> Result<Vec<String>> {
        let Some(first) = self.views.first() else {
            return Ok(Vec::new());
        };
        let dir = &first.dir;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.extension().is_some_and(|e| e == "npy") {
                if let Some(stem) = path.file_stem() {
                    names.push(stem.to_string_lossy().into_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Reads the split `splits/<name>` (`.bundle` is appended unless `name`
    /// already names an existing file or ends with it).
    pub fn split(&self, name: &str) -> Result<Vec<String>> {
        let dir = self.root.join("splits");
        let exact = dir.join(name);
        let path = if name.ends_with(".bundle") || exact.is_file() {
            exact
        } else {
            dir.join(format!("{name}.bundle"))
        };
        read_bundle(path)
    }

    /// Loads the features of `video` in view `view`, unaligned.
    pub fn load_view(&self, video: &str, view: &str) -> Result<Features> {
        let spec = self.view(view)?;
        read_features(spec.dir.join(format!("{video}.npy")), spec.layout)
    }

    /// Loads the labels of `video` as class ids. Needs the mapping.
    pub fn load_labels(&self, video: &str) -> Result<Vec<u32>> {
        let mapping = self.mapping.as_ref().ok_or_else(|| {
            Error::format(
                &self.root,
                "no mapping.txt or mapping.csv: labels cannot be read",
            )
        })?;
        let path = self.labels_path(video);
        let names = read_frame_labels(&path)?;
        mapping.encode(&names, &path)
    }

    /// Loads `video` with its labels, views aligned on one timeline (see
    /// [`Self::load_recording_unlabeled`] for the rules). `views` empty
    /// means all opened views. Fails if the label file is missing.
    pub fn load_recording(&self, video: &str, views: &[&str]) -> Result<Recording> {
        let labels = self.load_labels(video)?;
        self.assemble(video, views, Some(labels))
    }

    /// Loads `video` without reading any label file (the distillation stage
    /// has none), views aligned on one timeline.
    ///
    /// - When the views declare fps, the reference timeline is the labels'
    ///   (if loaded and `label_fps` is declared) or else the first view's.
    ///   Reference frame `t` is at time `t / fps_ref` (plus the first view's
    ///   offset when it is the reference) and takes view frame
    ///   `round((time - offset_s) * fps_view)`, clamped to the view's frames:
    ///   nearest-neighbour resampling, ties to the later frame. Labels
    ///   without a declared fps are taken to be on the first view's frames.
    /// - Without fps, all views (and labels) must have equal lengths within
    ///   [`Self::length_tolerance`]; all are trimmed to the shortest.
    ///
    /// A length mismatch names the video, both files and both lengths.
    pub fn load_recording_unlabeled(&self, video: &str, views: &[&str]) -> Result<Recording> {
        self.assemble(video, views, None)
    }

    fn assemble(&self, video: &str, names: &[&str], labels: Option<Vec<u32>>) -> Result<Recording> {
        let specs: Vec<&ViewSpec> = if names.is_empty() {
            self.views.iter().collect()
        } else {
            names.iter().map(|n| self.view(n)).collect::<Result<_>>()?
        };
        let Some(&first) = specs.first() else {
            return Err(Error::invalid(format!("video '{video}': no views to load")));
        };
        let mut feats = Vec::with_capacity(specs.len());
        for s in &specs {
            feats.push(self.load_view(video, &s.name)?);
        }
        let tol = self.length_tolerance;
        let labels_path = self.labels_path(video);
        let path_of = |s: &ViewSpec| s.dir.join(format!("{video}.npy"));
        // One line naming the video, both files and both lengths.
        let mismatch = |a: (&Path, usize, &str), b: (&Path, usize, &str)| {
            Error::invalid(format!(
                "video '{video}': {} has {} {} but {} has {} {} (more than {tol} apart)",
                a.0.display(),
                a.1,
                a.2,
                b.0.display(),
                b.1,
                b.2
            ))
        };

        let Some(fps0) = first.fps else {
            // Alignment by index: every length within the tolerance, trim the tails.
            let mut lens: Vec<(PathBuf, usize, &str)> = Vec::new();
            if let Some(l) = &labels {
                lens.push((labels_path.clone(), l.len(), "labels"));
            }
            for (s, f) in specs.iter().zip(&feats) {
                lens.push((path_of(s), f.frames, "frames"));
            }
            let longest = lens.iter().max_by_key(|e| e.1).map(|e| e.1).unwrap_or(0);
            let shortest = lens.iter().map(|e| e.1).min().unwrap_or(0);
            if longest - shortest > tol {
                // Name the labels first when they are one side of the gap.
                let lo = lens.iter().position(|e| e.1 == shortest).unwrap_or(0);
                let hi = lens.iter().position(|e| e.1 == longest).unwrap_or(0);
                let (a, b) = (&lens[lo.min(hi)], &lens[lo.max(hi)]);
                return Err(mismatch((&a.0, a.1, a.2), (&b.0, b.1, b.2)));
            }
            let keep: Vec<usize> = (0..shortest).collect();
            let views = feats
                .iter()
                .map(|f| f.select_frames(&keep))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Recording {
                name: video.to_string(),
                views,
                labels: labels.map(|mut l| {
                    l.truncate(shortest);
                    l
                }),
                fps: None,
            });
        };

        // Alignment by timestamps. A view's frame rate on the reference
        // clock is its fps times its clock's rate (exactly its fps at rate 1).
        let clocks: Vec<ViewClock> = specs.iter().map(|s| self.clock(video, s)).collect();
        let fps0 = fps0 * clocks[0].rate;
        let (fps_ref, origin_s, len, labels) = match (labels, self.label_fps) {
            (Some(l), Some(fps)) => (fps, 0.0, l.len(), Some(l)),
            (Some(mut l), None) => {
                let t0 = feats[0].frames;
                if l.len().abs_diff(t0) > tol {
                    return Err(mismatch(
                        (&labels_path, l.len(), "labels"),
                        (&path_of(first), t0, "frames"),
                    ));
                }
                let n = l.len().min(t0);
                l.truncate(n);
                (fps0, clocks[0].offset_s, n, Some(l))
            }
            (None, _) => (fps0, clocks[0].offset_s, feats[0].frames, None),
        };
        let mut views = Vec::with_capacity(feats.len());
        for ((s, f), clock) in specs.iter().zip(&feats).zip(&clocks) {
            // open() checked all or none have fps.
            let fps_v = s.fps.unwrap_or(fps0) * clock.rate;
            let offset_s = clock.offset_s;
            let (ref_end, view_end) = (
                origin_s + len as f64 / fps_ref,
                offset_s + f.frames as f64 / fps_v,
            );
            if view_end <= origin_s || offset_s >= ref_end {
                return Err(Error::invalid(format!(
                    "video '{video}': {} covers {:.3}s..{:.3}s, outside the reference timeline {:.3}s..{:.3}s",
                    path_of(s).display(),
                    offset_s,
                    view_end,
                    origin_s,
                    ref_end
                )));
            }
            let last = f.frames.saturating_sub(1) as f64;
            let idx: Vec<usize> = (0..len)
                .map(|t| {
                    // t * fps_v / fps_ref first: exact for integral rates, so
                    // 15-of-30 fps ties land exactly on .5.
                    let x = t as f64 * fps_v / fps_ref + (origin_s - offset_s) * fps_v;
                    // Round half up, with slack for the offset's rounding error.
                    (x + 0.5 + 1e-9).floor().clamp(0.0, last) as usize
                })
                .collect();
            views.push(f.select_frames(&idx)?);
        }
        Ok(Recording {
            name: video.to_string(),
            views,
            labels,
            fps: Some(fps_ref),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::write_frame_labels;
    use crate::npy::{write_features, write_npy};

    /// Features whose value at (d, t) is `100 * d + t`, so a frame's value
    /// tells which source frame it came from.
    fn ramp(dim: usize, frames: usize) -> Features {
        let data = (0..dim)
            .flat_map(|d| (0..frames).map(move |t| (100 * d + t) as f32))
            .collect();
        Features::new(dim, frames, data).unwrap()
    }

    /// A dataset with views `exo` and `ego`, classes a/b, one video `v1`.
    fn dataset(exo: usize, ego: usize, labels: Option<usize>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write_features(r.join("features/exo/v1.npy"), &ramp(2, exo)).unwrap();
        write_features(r.join("features/ego/v1.npy"), &ramp(2, ego)).unwrap();
        std::fs::write(r.join("mapping.txt"), "0 a\n1 b\n").unwrap();
        if let Some(n) = labels {
            let l: Vec<&str> = (0..n).map(|t| if t % 2 == 0 { "a" } else { "b" }).collect();
            write_frame_labels(r.join("groundTruth/v1.txt"), &l).unwrap();
        }
        dir
    }

    fn frame_values(f: &Features) -> Vec<f32> {
        f.channel(0).unwrap().to_vec()
    }

    #[test]
    fn index_alignment_trims_within_tolerance() {
        let dir = dataset(100, 98, Some(99));
        let ds = MultiViewDataset::open(dir.path(), &["exo", "ego"]).unwrap();
        assert!(ds.label_fps.is_none());
        let rec = ds.load_recording("v1", &[]).unwrap();
        assert_eq!(rec.frames(), 98);
        assert_eq!(rec.views[1].frames, 98);
        assert_eq!(rec.labels.as_ref().unwrap().len(), 98);
        assert_eq!(rec.labels.as_ref().unwrap()[..3], [0, 1, 0]);
        assert_eq!(rec.views[0].get(1, 97), Some(197.0));
        assert_eq!(rec.fps, None);
        // Subset and order of views follow the request.
        let rec = ds.load_recording_unlabeled("v1", &["ego"]).unwrap();
        assert_eq!((rec.views.len(), rec.frames(), rec.labels), (1, 98, None));
    }

    #[test]
    fn index_alignment_mismatch_names_files_and_lengths() {
        let dir = dataset(95, 95, Some(100));
        let ds = MultiViewDataset::open(dir.path(), &["exo", "ego"]).unwrap();
        let err = ds.load_recording("v1", &[]).unwrap_err().to_string();
        let gt = dir.path().join("groundTruth/v1.txt");
        let exo = dir.path().join("features/exo/v1.npy");
        assert_eq!(
            err,
            format!(
                "video 'v1': {} has 100 labels but {} has 95 frames (more than 2 apart)",
                gt.display(),
                exo.display()
            )
        );
        // Views alone can mismatch too.
        let dir = dataset(90, 95, None);
        let ds = MultiViewDataset::open(dir.path(), &["exo", "ego"]).unwrap();
        let err = ds
            .load_recording_unlabeled("v1", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has 90 frames but") && err.contains("has 95 frames"),
            "{err}"
        );
    }

    #[test]
    fn timestamp_alignment_with_fps_and_offset() {
        // Labels and exo at 30 fps; ego at 15 fps, started 0.5 s later, stored [T, D].
        let dir = dataset(60, 1, Some(60));
        let r = dir.path();
        let ego = ramp(2, 30);
        write_npy(
            r.join("features/ego/v1.npy"),
            &[30, 2],
            &ego.to_time_major(),
        )
        .unwrap();
        std::fs::write(
            r.join("views.json"),
            r#"{"label_fps": 30, "views": {
                "exo": {"fps": 30},
                "ego": {"fps": 15, "offset_s": 0.5, "layout": "time_by_dim"}}}"#,
        )
        .unwrap();
        let ds = MultiViewDataset::open(r, &["exo", "ego"]).unwrap();
        let rec = ds.load_recording("v1", &[]).unwrap();
        assert_eq!(rec.fps, Some(30.0));
        assert_eq!(rec.frames(), 60);
        assert_eq!(
            frame_values(&rec.views[0]),
            (0..60).map(|t| t as f32).collect::<Vec<_>>()
        );
        // Ego frame for reference frame t: round(t/2 - 7.5) clamped to 0..=29.
        let ego = frame_values(&rec.views[1]);
        assert_eq!(ego[..16], [0.0; 16]);
        assert_eq!(ego[16..20], [1., 1., 2., 2.]);
        assert_eq!(ego[59], 22.0); // 29.5 - 7.5
        assert_eq!(rec.views[1].get(1, 59), Some(122.0));

        // Unlabeled: the first view is the reference.
        let rec = ds.load_recording_unlabeled("v1", &["ego", "exo"]).unwrap();
        assert_eq!((rec.frames(), rec.fps), (30, Some(15.0)));
        // Ego frame j is at 0.5 + j/15 s, i.e. exo frame 15 + 2j.
        assert_eq!(frame_values(&rec.views[1])[..3], [15., 17., 19.]);
        assert_eq!(frame_values(&rec.views[1])[29], 59.0);
    }

    /// A recording's own clock for a view: its offset replaces the view's,
    /// its rate scales the view's frames per reference second; other
    /// recordings keep the view's offset.
    #[test]
    fn per_recording_clocks_shift_and_stretch_a_view() {
        let dir = dataset(100, 100, None);
        let r = dir.path();
        write_features(r.join("features/exo/v2.npy"), &ramp(2, 100)).unwrap();
        write_features(r.join("features/ego/v2.npy"), &ramp(2, 100)).unwrap();
        std::fs::write(
            r.join("views.json"),
            r#"{"views": {"exo": {"fps": 10}, "ego": {"fps": 10, "offset_s": 0.3}},
                "recordings": {"v1": {"ego": {"offset_s": -1.0, "rate": 1.25}}}}"#,
        )
        .unwrap();
        let ds = MultiViewDataset::open(r, &["exo", "ego"]).unwrap();
        // v1: ego frame for exo frame t is round((t/10 + 1) · 1.25 · 10).
        let ego = frame_values(&ds.load_recording_unlabeled("v1", &[]).unwrap().views[1]);
        assert_eq!(ego[..4], [13.0, 14.0, 15.0, 16.0]); // 12.5 rounds up, 13.75, 15, 16.25
        assert_eq!(ego[60], 88.0); // (6 + 1) · 12.5 = 87.5
        assert_eq!(ego[99], 99.0); // clamped to the last frame
                                   // v2: the view's own offset, rate 1: ego frame round(t − 3).
        let ego = frame_values(&ds.load_recording_unlabeled("v2", &[]).unwrap().views[1]);
        assert_eq!(ego[..5], [0.0, 0.0, 0.0, 0.0, 1.0]);
        // The same offset declared per recording gives the same frames.
        std::fs::write(
            r.join("views.json"),
            r#"{"views": {"exo": {"fps": 10}, "ego": {"fps": 10}},
                "recordings": {"v2": {"ego": {"offset_s": 0.3}}}}"#,
        )
        .unwrap();
        let ds = MultiViewDataset::open(r, &["exo", "ego"]).unwrap();
        let again = frame_values(&ds.load_recording_unlabeled("v2", &[]).unwrap().views[1]);
        assert_eq!(again, ego);
        assert_eq!(
            ds.clock("v2", ds.view("ego").unwrap()),
            ViewClock {
                offset_s: 0.3,
                rate: 1.0
            }
        );
        // Refused in one line naming the recording and the view.
        let refused = |text: &str| {
            std::fs::write(r.join("views.json"), text).unwrap();
            MultiViewDataset::open(r, &["exo", "ego"])
                .unwrap_err()
                .to_string()
        };
        let views = r#""views": {"exo": {"fps": 10}, "ego": {"fps": 10}}"#;
        let e = refused(&format!(
            r#"{{{views}, "recordings": {{"v1": {{"eg0": {{"rate": 1}}}}}}}}"#
        ));
        assert!(e.contains("recordings.v1: unknown view 'eg0'"), "{e}");
        let e = refused(&format!(
            r#"{{{views}, "recordings": {{"v1": {{"ego": {{"rate": 0}}}}}}}}"#
        ));
        assert!(
            e.contains("recordings.v1.ego: rate must be in [0.5, 2]"),
            "{e}"
        );
        let e = refused(&format!(
            r#"{{{views}, "recordings": {{"v1": {{"ego": {{"drift": 1}}}}}}}}"#
        ));
        assert!(e.contains("unknown field `drift`"), "{e}");
        let e = refused(r#"{"recordings": {"v1": {"ego": {"offset_s": 1}}}}"#);
        assert!(e.contains("a clock needs the view's fps"), "{e}");
    }

    #[test]
    fn timestamp_alignment_refuses_disjoint_views() {
        let dir = dataset(30, 30, None);
        std::fs::write(
            dir.path().join("views.json"),
            r#"{"views": {"exo": {"fps": 30}, "ego": {"fps": 30, "offset_s": 5}}}"#,
        )
        .unwrap();
        let ds = MultiViewDataset::open(dir.path(), &["exo", "ego"]).unwrap();
        let err = ds
            .load_recording_unlabeled("v1", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the reference timeline"), "{err}");
    }

    #[test]
    fn open_errors() {
        let dir = dataset(10, 10, None);
        let r = dir.path();
        let err = MultiViewDataset::open(r, &["exo", "top"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("view 'top' not found"), "{err}");
        assert!(err.contains("(views found: ego, exo)"), "{err}");
        assert!(!err.contains('\n'));
        assert!(MultiViewDataset::open(r, &[])
            .unwrap_err()
            .to_string()
            .contains("ego, exo"));
        assert!(MultiViewDataset::open(r.join("nope"), &["exo"]).is_err());

        let json = |text: &str| {
            std::fs::write(r.join("views.json"), text).unwrap();
            MultiViewDataset::open(r, &["exo", "ego"])
                .unwrap_err()
                .to_string()
        };
        assert!(
            json(r#"{"views": {"exo": {"fps": 30}}}"#).contains("declared for exo but not for ego")
        );
        assert!(json(r#"{"views": {"exo": {"fsp": 30}}}"#).contains("unknown field"));
        assert!(
            json(r#"{"views": {"exo": {"fps": -1}, "ego": {"fps": 1}}}"#).contains("frame rate")
        );
        for fps in ["1e-308", "1e308", "0.001", "20000"] {
            let text = format!(r#"{{"views": {{"exo": {{"fps": {fps}}}, "ego": {{"fps": 30}}}}}}"#);
            let err = json(&text);
            assert!(
                err.contains("view 'exo': fps must be a frame rate in [0.01, 10000]"),
                "{err}"
            );
        }
        let err = json(r#"{"label_fps": 1e308}"#);
        assert!(err.contains("label_fps must be a frame rate"), "{err}");
        let err = json(r#"{"views": {"exo": {"fps": 30, "offset_s": 1e300}, "ego": {"fps": 30}}}"#);
        assert!(err.contains("offset_s must be within"), "{err}");
        assert!(json(r#"{"views": {"ego": {"offset_s": 1}}}"#).contains("no fps"));
        assert!(json("{").contains("views.json"));
    }

    #[test]
    fn missing_files() {
        let dir = dataset(10, 10, None);
        let ds = MultiViewDataset::open(dir.path(), &["exo", "ego"]).unwrap();
        let err = ds.load_view("v9", "exo").unwrap_err().to_string();
        assert!(err.contains("features/exo/v9.npy"), "{err}");
        let err = ds
            .load_recording_unlabeled("v9", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("v9.npy"), "{err}");
        // No groundTruth/ at all: unlabeled works, labeled names the file.
        assert!(!ds.has_labels("v1"));
        assert!(ds.load_recording_unlabeled("v1", &[]).is_ok());
        let err = ds.load_recording("v1", &[]).unwrap_err().to_string();
        assert!(err.contains("groundTruth/v1.txt"), "{err}");
        assert!(ds
            .load_view("v1", "side")
            .unwrap_err()
            .to_string()
            .contains("opened: exo, ego"));
    }

    #[test]
    fn videos_splits_and_single_view_layout() {
        let dir = dataset(10, 10, Some(10));
        let r = dir.path();
        write_features(r.join("features/exo/v2.npy"), &ramp(2, 4)).unwrap();
        std::fs::create_dir_all(r.join("splits")).unwrap();
        std::fs::write(r.join("splits/train.split1.bundle"), "v1.txt\nv2.txt\n").unwrap();
        let ds = MultiViewDataset::open(r, &["exo"]).unwrap();
        assert_eq!(ds.videos().unwrap(), ["v1", "v2"]);
        assert_eq!(ds.split("train.split1").unwrap(), ["v1", "v2"]);
        assert_eq!(ds.split("train.split1.bundle").unwrap(), ["v1", "v2"]);
        assert_eq!(ds.mapping.as_ref().map(Mapping::len), Some(2));

        // A classic single-view MS-TCN dataset, named through views.json.
        write_features(r.join("features/v3.npy"), &ramp(3, 5)).unwrap();
        std::fs::write(
            r.join("views.json"),
            r#"{"views": {"main": {"dir": "features"}}}"#,
        )
        .unwrap();
        let ds = MultiViewDataset::open(r, &["main"]).unwrap();
        assert_eq!(ds.load_view("v3", "main").unwrap().dim, 3);
    }
}
