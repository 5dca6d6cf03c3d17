//! Loading labelled videos from features (a folder of `.npy` files or an
//! LMDB store) and a labels folder (the CLI's `--features DIR --labels DIR
//! --mapping FILE --videos BUNDLE`).

use std::path::Path;

use super::supervised::LabeledVideo;
use crate::dataset::LENGTH_TOLERANCE_FRAMES;
use crate::error::{Error, Result};
use crate::features::Features;
use crate::labels::{read_frame_labels, Mapping};
use crate::npy::FeatureLayout;
use crate::video_features::{read_video_features, source_path};

/// Reads each video's features from `dir` (`<video>.npy` or an LMDB store).
pub fn load_features(
    dir: &Path,
    videos: &[String],
    layout: FeatureLayout,
) -> Result<Vec<Features>> {
    videos
        .iter()
        .map(|v| read_video_features(dir, v, layout))
        .collect()
}

/// Reads features and labels of every video; lengths must agree within
/// [`LENGTH_TOLERANCE_FRAMES`] (the longer side's tail is trimmed), and all
/// videos must share one feature dimension.
pub fn load_labeled(
    features_dir: &Path,
    labels_dir: &Path,
    mapping: &Mapping,
    videos: &[String],
    layout: FeatureLayout,
) -> Result<Vec<LabeledVideo>> {
    let mut out: Vec<LabeledVideo> = Vec::with_capacity(videos.len());
    for name in videos {
        let fpath = source_path(features_dir, name);
        let lpath = labels_dir.join(format!("{name}.txt"));
        let features = read_video_features(features_dir, name, layout)?;
        let labels = mapping.encode(&read_frame_labels(&lpath)?, &lpath)?;
        if let Some(first) = out.first() {
            if first.features.dim != features.dim {
                return Err(Error::format(
                    &fpath,
                    format!(
                        "{}-dimensional features, but {} has {}",
                        features.dim, first.name, first.features.dim
                    ),
                ));
            }
        }
        let (nf, nl) = (features.frames, labels.len());
        if nf.abs_diff(nl) > LENGTH_TOLERANCE_FRAMES {
            return Err(Error::invalid(format!(
                "video '{name}': {} has {nl} labels but {} has {nf} frames",
                lpath.display(),
                fpath.display()
            )));
        }
        let n = nf.min(nl);
        let features = if n < nf {
            features.select_frames(&(0..n).collect::<Vec<_>>())?
        } else {
            features
        };
        let mut labels = labels;
        labels.truncate(n);
        out.push(LabeledVideo {
            name: name.clone(),
            features,
            labels,
        });
    }
    Ok(out)
}
