//! The C ABI of live segmentation: a causal model's [`Stream`] fed frame by
//! frame from an editor or a capture loop, each frame's label returned
//! `lookahead` frames after the frame went in.
//!
//! ```c
//! SyncsegStream *s = NULL;
//! syncseg_stream_new(model, &s);            // a causal MS-TCN++ model
//! SyncsegFrameLabel out[64]; size_t n = 0;
//! syncseg_stream_push(s, frame, dim, 1, out, 64, &n);  // n ≤ frames pushed
//! syncseg_stream_finish(s, out, 64, &n);    // the last `lookahead` frames
//! syncseg_stream_free(&s);
//! ```
//!
//! The stream owns copies of the model's weights: the model may be freed
//! while the stream lives. A stream is not thread-safe; use one per thread.

use syncseg_core::stream::{Stream, StreamLabel};

use super::{
    fail, guard, handle, out_ptr, register, release, Failure, FfiResult, SyncsegModel,
    SyncsegStatus, SYNCSEG_STATUS_INVALID_ARGUMENT, SYNCSEG_STATUS_MODEL,
    SYNCSEG_STATUS_NULL_POINTER,
};

/// A live segmentation (opaque).
pub struct SyncsegStream {
    stream: Stream,
}

/// One frame's label, as a stream emits it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncsegFrameLabel {
    /// The frame (0 = the first pushed).
    pub frame: i64,
    /// Class id (index into the model's classes).
    pub label: u32,
    /// Its probability.
    pub confidence: f32,
}

/// A stream of `model`, which must be a causal MS-TCN++ without a feature
/// adapter (`syncseg train --backbone ms-tcn --causal`), into `*out`. Free
/// it with [`syncseg_stream_free`].
///
/// # Safety
/// `out` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncseg_stream_new(
    model: *const SyncsegModel,
    out: *mut *mut SyncsegStream,
) -> SyncsegStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = std::ptr::null_mut();
        let m = handle(model, "model")?;
        let stream = Stream::new(&m.model)
            .or_else(|e| fail(SYNCSEG_STATUS_INVALID_ARGUMENT, e.to_string()))?;
        *out = register(Box::new(SyncsegStream { stream }));
        Ok(())
    })
}

/// The stream's look-ahead (frames between a frame's push and its label),
/// feature dimension and number of classes. Any out pointer may be NULL.
///
/// # Safety
/// Each out pointer is NULL or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn syncseg_stream_info(
    stream: *const SyncsegStream,
    out_lookahead: *mut usize,
    out_dim: *mut usize,
    out_classes: *mut usize,
) -> SyncsegStatus {
    guard(|| {
        let s = &handle(stream, "stream")?.stream;
        for (p, v) in [
            (out_lookahead, s.lookahead()),
            (out_dim, s.input_dim()),
            (out_classes, s.classes()),
        ] {
            if !p.is_null() {
                // SAFETY: non-null; the caller promises a writable size_t.
                unsafe { *p = v };
            }
        }
        Ok(())
    })
}

/// Pushes `frames` frames of features, frame-major (`len = frames × dim`
/// floats, each frame's `dim` values together), and writes the labels of
/// the frames that became ready, in order, to `out_labels`, their number
/// to `*out_count`. A push of `frames` frames readies at most `frames`
/// labels, so `capacity ≥ frames` always suffices; a smaller capacity is
/// refused before anything runs (the stream is unchanged). NaN or ±inf
/// features are refused likewise.
///
/// # Safety
/// `features` points to `len` readable floats (may be NULL when `len` is
/// 0); `out_labels` to `capacity` writable labels; `out_count` is writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn syncseg_stream_push(
    stream: *mut SyncsegStream,
    features: *const f32,
    len: usize,
    frames: usize,
    out_labels: *mut SyncsegFrameLabel,
    capacity: usize,
    out_count: *mut usize,
) -> SyncsegStatus {
    guard(|| {
        let count = out_ptr(out_count, "out_count")?;
        *count = 0;
        let s = handle_mut(stream, "stream")?;
        let dim = s.stream.input_dim();
        if frames.checked_mul(dim) != Some(len) {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("len is {len} but frames × dim = {frames} × {dim}"),
            );
        }
        if capacity < frames {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!(
                    "capacity is {capacity}: a push of {frames} frames may ready {frames} labels"
                ),
            );
        }
        if len == 0 {
            return Ok(());
        }
        if features.is_null() {
            return fail(SYNCSEG_STATUS_NULL_POINTER, "features is NULL");
        }
        if len > isize::MAX as usize / std::mem::size_of::<f32>() {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("len is {len}: more floats than an address space holds"),
            );
        }
        // SAFETY: non-null, at most isize::MAX bytes, and the caller
        // promises `len` readable floats.
        let x = unsafe { std::slice::from_raw_parts(features, len) };
        let labels = s
            .stream
            .push(x)
            .or_else(|e| fail(SYNCSEG_STATUS_INVALID_ARGUMENT, e.to_string()))?;
        write_labels(&labels, out_labels, capacity, count)
    })
}

/// Ends the stream: writes the labels of the last `lookahead` frames (at
/// most `lookahead`, so `capacity ≥ lookahead` suffices; less is refused
/// before anything runs). The stream takes no more frames after.
///
/// # Safety
/// As [`syncseg_stream_push`].
#[no_mangle]
pub unsafe extern "C" fn syncseg_stream_finish(
    stream: *mut SyncsegStream,
    out_labels: *mut SyncsegFrameLabel,
    capacity: usize,
    out_count: *mut usize,
) -> SyncsegStatus {
    guard(|| {
        let count = out_ptr(out_count, "out_count")?;
        *count = 0;
        let s = handle_mut(stream, "stream")?;
        let need = (s.stream.lookahead() as u64).min(s.stream.frames_pushed()) as usize;
        if capacity < need {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("capacity is {capacity}: finishing readies {need} labels"),
            );
        }
        let labels = s
            .stream
            .finish()
            .or_else(|e| fail(SYNCSEG_STATUS_MODEL, e.to_string()))?;
        write_labels(&labels, out_labels, capacity, count)
    })
}

/// Frees a stream and sets `*stream` to NULL. NULL `*stream` is a no-op.
///
/// # Safety
/// `stream` is NULL or points to a handle variable (the handle itself is checked).
#[no_mangle]
pub unsafe extern "C" fn syncseg_stream_free(stream: *mut *mut SyncsegStream) -> SyncsegStatus {
    guard(|| release(stream, "stream"))
}

/// The live stream behind `p`, for a change.
fn handle_mut<'a>(p: *mut SyncsegStream, what: &str) -> Result<&'a mut SyncsegStream, Failure> {
    handle(p.cast_const(), what)?;
    // SAFETY: `handle` checked that `p` is a live `SyncsegStream` from
    // `register`; the C caller owns it and promises no concurrent use.
    Ok(unsafe { &mut *p })
}

fn write_labels(
    labels: &[StreamLabel],
    out: *mut SyncsegFrameLabel,
    capacity: usize,
    count: &mut usize,
) -> FfiResult {
    if labels.is_empty() {
        return Ok(());
    }
    if out.is_null() {
        return fail(SYNCSEG_STATUS_NULL_POINTER, "out_labels is NULL");
    }
    // Checked by the callers before the stream ran; kept as a guard.
    if labels.len() > capacity {
        return fail(
            SYNCSEG_STATUS_MODEL,
            format!("{} labels for a capacity of {capacity}", labels.len()),
        );
    }
    // SAFETY: non-null; the caller promises `capacity` writable labels.
    let dst = unsafe { std::slice::from_raw_parts_mut(out, labels.len()) };
    for (d, l) in dst.iter_mut().zip(labels) {
        *d = SyncsegFrameLabel {
            frame: l.frame as i64,
            label: l.label,
            confidence: l.confidence,
        };
    }
    *count = labels.len();
    Ok(())
}
