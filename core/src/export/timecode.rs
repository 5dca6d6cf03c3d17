//! SMPTE timecode from frame numbers, non-drop and drop-frame.
//!
//! Drop-frame keeps 29.97/59.94 timecode close to wall-clock time by skipping
//! labels, never frames: at 29.97 the labels `;00` and `;01` (at 59.94 `;00`
//! to `;03`) are skipped at the start of every minute except every tenth.

use super::FrameRate;
use crate::error::{Error, Result};

/// Timecode `HH:MM:SS:FF` (non-drop) or `HH:MM:SS;FF` (drop-frame) of
/// `frame` counted from zero. SMPTE timecode ends at 23:59:59:FF: a frame at
/// or past 24 h is an error, not a wrapped (repeating) or `24:` label, either
/// of which would misplace markers.
pub fn timecode(frame: u64, rate: FrameRate, drop_frame: bool) -> Result<String> {
    let fps = rate.nominal_fps();
    if drop_frame && !rate.supports_drop_frame() {
        return Err(Error::invalid(format!(
            "drop-frame timecode exists only at 30000/1001 and 60000/1001, not at {rate}"
        )));
    }
    let day = frames_per_day(rate, drop_frame);
    if day.is_none_or(|day| frame >= day) {
        return Err(Error::invalid(format!(
            "frame {frame} is 24 h or more into the timecode at {rate}; SMPTE timecode ends at 23:59:59:{:02}",
            fps.saturating_sub(1)
        )));
    }
    let (label, sep) = if drop_frame {
        (drop_frame_label(frame, fps), ';')
    } else {
        (frame, ':')
    };
    Ok(format!(
        "{:02}:{:02}:{:02}{sep}{:02}",
        label / (fps * 3600),
        label / (fps * 60) % 60,
        label / fps % 60,
        label % fps
    ))
}

/// The frame count whose non-drop reading is `frame`'s drop-frame label.
fn drop_frame_label(frame: u64, fps: u64) -> u64 {
    let drop = fps / 15; // 2 at 30, 4 at 60
    let per_min = fps * 60 - drop;
    let per_10min = fps * 600 - 9 * drop;
    let (tens, rem) = (frame / per_10min, frame % per_10min);
    let skipped_minutes = if rem < drop {
        0
    } else {
        (rem - drop) / per_min
    };
    frame + 9 * drop * tens + drop * skipped_minutes
}

/// Frames in one hour of timecode labels (the usual 01:00:00:00 record start);
/// `None` where that overflows `u64` (it cannot: the nominal rate is at most
/// `u32::MAX`, but the arithmetic is checked all the same).
pub fn frames_per_hour(rate: FrameRate, drop_frame: bool) -> Option<u64> {
    let fps = rate.nominal_fps();
    if drop_frame && rate.supports_drop_frame() {
        Some(6 * (fps * 600 - 9 * (fps / 15)))
    } else {
        fps.checked_mul(3600)
    }
}

/// Frames in 24 h of timecode labels: the first frame without a label.
pub fn frames_per_day(rate: FrameRate, drop_frame: bool) -> Option<u64> {
    frames_per_hour(rate, drop_frame)?.checked_mul(24)
}
