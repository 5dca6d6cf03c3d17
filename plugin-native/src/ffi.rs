//! The C ABI: segment per-frame features into labelled segments from a video
//! editor, a script (Python `ctypes`) or any language with a C FFI; and run
//! the method's jobs ([`syncseg_train`], [`syncseg_distill`]) through core's
//! pipeline, with the options as JSON (core's option structs: the same
//! names and defaults as the command line's, without the dashes).
//!
//! Conventions (after tract's C API):
//! * every fallible call returns a [`SyncsegStatus`] (`uint32_t`),
//!   `SYNCSEG_STATUS_OK` = 0;
//!   on failure [`syncseg_last_error`] gives a one-line message, valid until
//!   the next syncseg call on the same thread;
//! * objects are opaque handles created by `*_load`/`syncseg_segment` and
//!   released by the matching `*_free(&handle)`, which sets the caller's
//!   pointer to NULL; handles are tracked, so a freed or foreign pointer is
//!   reported as an error instead of being dereferenced (a double free
//!   through a stale copy is detected);
//! * no panic crosses the boundary: every export runs under `catch_unwind`
//!   and a panic becomes `SYNCSEG_STATUS_PANIC`;
//! * no Rust enum crosses the boundary: a C caller (or `ctypes`) can pass
//!   any bit pattern, and an out-of-range enum is undefined behaviour before
//!   any check runs; layouts and statuses are `uint32_t` with named
//!   constants, and every input is validated on entry.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use candle_core::Device;
use syncseg_core::features::Features;
use syncseg_core::model::SegModel;
use syncseg_core::predict::predict;

pub mod stream;

/// Version of this C ABI; bumped on any incompatible change. Compare with
/// [`syncseg_abi_version`] at load time. Version 2: statuses and layouts are
/// `uint32_t` (`SyncsegStatus`, `SyncsegLayout`) with `SYNCSEG_*` constants,
/// and an unknown layout is `SYNCSEG_STATUS_INVALID_ARGUMENT`. Added since,
/// without a bump (nothing existing changed): `syncseg_train`,
/// `syncseg_distill` and `SyncsegProgress`; the live segmentation of
/// [`stream`] (`syncseg_stream_*`, `SyncsegFrameLabel`).
pub const SYNCSEG_ABI_VERSION: u32 = 2;

/// Result of a call: one of the `SYNCSEG_STATUS_*` values. Values are only
/// ever appended. A fixed-width integer rather than a C enum, whose size
/// the C compiler chooses (`-fshort-enums`) and `ctypes` cannot know.
pub type SyncsegStatus = u32;
/// Success.
pub const SYNCSEG_STATUS_OK: SyncsegStatus = 0;
/// A required pointer argument was NULL.
pub const SYNCSEG_STATUS_NULL_POINTER: SyncsegStatus = 1;
/// An argument is unusable (sizes, NaN, UTF-8, an unknown layout, an
/// unknown or freed handle…).
pub const SYNCSEG_STATUS_INVALID_ARGUMENT: SyncsegStatus = 2;
/// A file could not be read or is not a syncseg model.
pub const SYNCSEG_STATUS_IO: SyncsegStatus = 3;
/// The model failed while running.
pub const SYNCSEG_STATUS_MODEL: SyncsegStatus = 4;
/// syncseg hit an internal error (a bug); the message says where.
pub const SYNCSEG_STATUS_PANIC: SyncsegStatus = 5;

/// Memory layout of a features buffer: one of the `SYNCSEG_LAYOUT_*`
/// values. A plain integer, checked on entry: a Rust enum received from C
/// holding any other value would be undefined behaviour before any check
/// (or `catch_unwind`) could run.
pub type SyncsegLayout = u32;
/// `[dim][frames]`: all frames of channel 0, then channel 1, … (MS-TCN `.npy`).
pub const SYNCSEG_LAYOUT_DIM_BY_TIME: SyncsegLayout = 0;
/// `[frames][dim]`: one feature vector per frame.
pub const SYNCSEG_LAYOUT_TIME_BY_DIM: SyncsegLayout = 1;

/// One segment: frames `[start_frame, end_frame)` labelled `label`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncsegSegment {
    /// First frame.
    pub start_frame: i64,
    /// One past the last frame.
    pub end_frame: i64,
    /// Class id (index into the model's classes).
    pub label: u32,
    /// Mean probability of `label` over the segment.
    pub confidence: f32,
}

/// A loaded model (opaque).
pub struct SyncsegModel {
    model: SegModel,
}

/// The segments of one video (opaque).
pub struct SyncsegSegments {
    segments: Vec<SyncsegSegment>,
    names: Vec<CString>,
    /// The same segments as the exporters take them.
    predicted: Vec<syncseg_core::predict::PredictedSegment>,
    frames: usize,
}

/// Registry tag of the strings handed to C (they are `CString::into_raw`
/// pointers, freed by [`syncseg_string_free`]).
struct OwnedString;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Live handles by address, with their type, so that stale, foreign and
/// wrongly-typed pointers are refused instead of dereferenced.
static LIVE: Mutex<Option<HashMap<usize, TypeId>>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Option<HashMap<usize, TypeId>>> {
    // A panic while holding the lock cannot leave the set inconsistent.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn register<T: 'static>(b: Box<T>) -> *mut T {
    let p = Box::into_raw(b);
    live()
        .get_or_insert_with(HashMap::new)
        .insert(p as usize, TypeId::of::<T>());
    p
}

fn is_live<T: 'static>(p: *const T) -> bool {
    live().as_ref().and_then(|m| m.get(&(p as usize))) == Some(&TypeId::of::<T>())
}

struct Failure(SyncsegStatus, String);

type FfiResult = Result<(), Failure>;

fn fail<T>(status: SyncsegStatus, msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(status, msg.into()))
}

fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(c));
}

/// Runs `f` with panics caught, recording the error message.
fn guard(f: impl FnOnce() -> FfiResult) -> SyncsegStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            LAST_ERROR.with(|e| *e.borrow_mut() = None);
            SYNCSEG_STATUS_OK
        }
        Ok(Err(Failure(status, msg))) => {
            set_error(&msg);
            status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_error(&format!("internal error (please report): {what}"));
            SYNCSEG_STATUS_PANIC
        }
    }
}

/// Dereferences a live handle of type `T`.
fn handle<'a, T: 'static>(p: *const T, what: &str) -> Result<&'a T, Failure> {
    if p.is_null() {
        return fail(SYNCSEG_STATUS_NULL_POINTER, format!("{what} is NULL"));
    }
    if !is_live(p) {
        return fail(
            SYNCSEG_STATUS_INVALID_ARGUMENT,
            format!("{what} is not a live syncseg handle (already freed?)"),
        );
    }
    // SAFETY: the address was produced by `register` for a `Box<T>` of this
    // type and has not been freed (it is still in the live set).
    Ok(unsafe { &*p })
}

/// Frees a handle through the caller's pointer and nulls it.
fn release<T: 'static>(pp: *mut *mut T, what: &str) -> FfiResult {
    if pp.is_null() {
        return fail(
            SYNCSEG_STATUS_NULL_POINTER,
            format!("pointer to {what} is NULL"),
        );
    }
    // SAFETY: `pp` is non-null and points to the caller's handle variable.
    let p = unsafe { *pp };
    if p.is_null() {
        return Ok(()); // freeing NULL is a no-op, as free(3)
    }
    let removed = is_live(p as *const T)
        && live()
            .as_mut()
            .is_some_and(|m| m.remove(&(p as usize)).is_some());
    if !removed {
        return fail(
            SYNCSEG_STATUS_INVALID_ARGUMENT,
            format!("{what} is not a live syncseg handle (double free?)"),
        );
    }
    // SAFETY: the address came from `Box::into_raw` in `register` and was
    // live until the removal above, so it is freed exactly once.
    drop(unsafe { Box::from_raw(p) });
    // SAFETY: as above, `pp` is valid for writes.
    unsafe { *pp = std::ptr::null_mut() };
    Ok(())
}

fn out_ptr<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    if p.is_null() {
        return fail(SYNCSEG_STATUS_NULL_POINTER, format!("{what} is NULL"));
    }
    // SAFETY: non-null, and the caller promises it points to writable memory.
    Ok(unsafe { &mut *p })
}

fn utf8<'a>(s: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if s.is_null() {
        return fail(SYNCSEG_STATUS_NULL_POINTER, format!("{what} is NULL"));
    }
    // SAFETY: non-null; the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(s) }.to_str().or_else(|_| {
        fail(
            SYNCSEG_STATUS_INVALID_ARGUMENT,
            format!("{what} is not valid UTF-8"),
        )
    })
}

/// The ABI version of the loaded library ([`SYNCSEG_ABI_VERSION`] it was built with).
#[no_mangle]
pub extern "C" fn syncseg_abi_version() -> u32 {
    SYNCSEG_ABI_VERSION
}

/// The syncseg version, a static NUL-terminated string (do not free).
#[no_mangle]
pub extern "C" fn syncseg_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The last error on this thread, or NULL. Valid until the next syncseg call
/// on this thread; do not free.
#[no_mangle]
pub extern "C" fn syncseg_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
}

/// Loads a model directory (from `syncseg train`, `distill` or `import`)
/// or a single-file bundle (`syncseg export-model`) into `*out`. Free it
/// with [`syncseg_model_free`].
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncseg_model_load(
    path: *const c_char,
    out: *mut *mut SyncsegModel,
) -> SyncsegStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = std::ptr::null_mut();
        let path = utf8(path, "path")?;
        let model = SegModel::load(path, &Device::Cpu)
            .or_else(|e| fail(SYNCSEG_STATUS_IO, e.to_string()))?;
        *out = register(Box::new(SyncsegModel { model }));
        Ok(())
    })
}

/// Frees a model and sets `*model` to NULL. NULL `*model` is a no-op.
///
/// # Safety
/// `model` is NULL or points to a handle variable (the handle itself is checked).
#[no_mangle]
pub unsafe extern "C" fn syncseg_model_free(model: *mut *mut SyncsegModel) -> SyncsegStatus {
    guard(|| release(model, "model"))
}

/// The model's feature dimension and number of classes.
///
/// # Safety
/// `out_dim` and `out_classes` are NULL or point to writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn syncseg_model_info(
    model: *const SyncsegModel,
    out_dim: *mut usize,
    out_classes: *mut usize,
) -> SyncsegStatus {
    guard(|| {
        let m = handle(model, "model")?;
        *out_ptr(out_dim, "out_dim")? = m.model.meta.backbone.input_dim();
        *out_ptr(out_classes, "out_classes")? = m.model.meta.backbone.num_classes();
        Ok(())
    })
}

/// Segments one video. `features` holds `len` floats = `dim × frames` in
/// `layout` (`SYNCSEG_LAYOUT_DIM_BY_TIME` or `SYNCSEG_LAYOUT_TIME_BY_DIM`;
/// any other value is refused); `dim` must be the model's. The result goes to `*out`; free it
/// with [`syncseg_segments_free`].
///
/// # Safety
/// `features` is NULL or points to `len` readable floats; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn syncseg_segment(
    model: *const SyncsegModel,
    features: *const f32,
    len: usize,
    dim: usize,
    frames: usize,
    layout: SyncsegLayout,
    out: *mut *mut SyncsegSegments,
) -> SyncsegStatus {
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = std::ptr::null_mut();
        let m = handle(model, "model")?;
        let time_major = match layout {
            SYNCSEG_LAYOUT_DIM_BY_TIME => false,
            SYNCSEG_LAYOUT_TIME_BY_DIM => true,
            other => {
                return fail(
                    SYNCSEG_STATUS_INVALID_ARGUMENT,
                    format!(
                        "layout is {other}: expected SYNCSEG_LAYOUT_DIM_BY_TIME (0) or SYNCSEG_LAYOUT_TIME_BY_DIM (1)"
                    ),
                )
            }
        };
        if features.is_null() {
            return fail(SYNCSEG_STATUS_NULL_POINTER, "features is NULL");
        }
        if frames == 0 {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                "frames is 0: nothing to segment",
            );
        }
        let want = m.model.meta.backbone.input_dim();
        if dim != want {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("dim is {dim} but the model expects {want}-dimensional features"),
            );
        }
        if dim.checked_mul(frames) != Some(len) {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("len is {len} but dim × frames = {dim} × {frames}"),
            );
        }
        // A slice may span at most isize::MAX bytes.
        if len > isize::MAX as usize / std::mem::size_of::<f32>() {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("len is {len}: more floats than an address space holds"),
            );
        }
        // The copy is allocated fallibly: a failed allocation aborts the
        // host instead of unwinding.
        let mut data = Vec::new();
        data.try_reserve_exact(len).or_else(|_| {
            fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("len is {len}: cannot allocate a copy of the features"),
            )
        })?;
        // SAFETY: non-null, at most isize::MAX bytes, and the caller
        // promises `len` readable floats.
        data.extend_from_slice(unsafe { std::slice::from_raw_parts(features, len) });
        let f = if time_major {
            Features::from_time_major(frames, dim, data)
        } else {
            Features::new(dim, frames, data)
        }
        .or_else(|e| fail(SYNCSEG_STATUS_INVALID_ARGUMENT, e.to_string()))?;
        if let Some((d, t, v)) = f.first_non_finite() {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!("features hold {v} at channel {d}, frame {t}"),
            );
        }
        let pred = predict(&m.model, &f).or_else(|e| fail(SYNCSEG_STATUS_MODEL, e.to_string()))?;
        let segs = pred.segments(&m.model.meta.classes);
        let names = segs
            .iter()
            .map(|s| CString::new(s.name.replace('\0', " ")).unwrap_or_default())
            .collect();
        let segments = segs
            .iter()
            .map(|s| SyncsegSegment {
                start_frame: s.start as i64,
                end_frame: s.end as i64,
                label: s.label,
                confidence: s.confidence,
            })
            .collect();
        *out = register(Box::new(SyncsegSegments {
            segments,
            names,
            predicted: segs,
            frames,
        }));
        Ok(())
    })
}

/// Number of segments.
///
/// # Safety
/// `out` is NULL or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn syncseg_segments_count(
    segments: *const SyncsegSegments,
    out: *mut usize,
) -> SyncsegStatus {
    guard(|| {
        *out_ptr(out, "out")? = handle(segments, "segments")?.segments.len();
        Ok(())
    })
}

/// Segment `index` into `*out`, and its class name into `*out_name` (owned
/// by `segments`; valid until it is freed). `out_name` may be NULL.
///
/// # Safety
/// `out` and `out_name` are NULL or point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn syncseg_segments_get(
    segments: *const SyncsegSegments,
    index: usize,
    out: *mut SyncsegSegment,
    out_name: *mut *const c_char,
) -> SyncsegStatus {
    guard(|| {
        let s = handle(segments, "segments")?;
        let Some(seg) = s.segments.get(index) else {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                format!(
                    "index {index} is out of range ({} segments)",
                    s.segments.len()
                ),
            );
        };
        *out_ptr(out, "out")? = *seg;
        if !out_name.is_null() {
            // SAFETY: non-null, caller-provided slot for a pointer.
            unsafe { *out_name = s.names[index].as_ptr() };
        }
        Ok(())
    })
}

/// Frees segments and sets `*segments` to NULL. NULL `*segments` is a no-op.
///
/// # Safety
/// `segments` is NULL or points to a handle variable (the handle itself is checked).
#[no_mangle]
pub unsafe extern "C" fn syncseg_segments_free(
    segments: *mut *mut SyncsegSegments,
) -> SyncsegStatus {
    guard(|| release(segments, "segments"))
}

/// Renders the segments in an editor format — `otio`, `edl`, `fcpxml`,
/// `vtt`, `ffmetadata`, `srt`, `youtube`, `csv` or `json` — at the frame
/// rate `fps_num / fps_den` (e.g. 30000/1001), titled `title` (may be NULL).
/// `*out` receives a NUL-terminated string; free it with
/// [`syncseg_string_free`].
///
/// # Safety
/// `format` and `title` are NULL or NUL-terminated strings; `out` is NULL or
/// points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn syncseg_segments_render(
    segments: *const SyncsegSegments,
    format: *const c_char,
    fps_num: u32,
    fps_den: u32,
    title: *const c_char,
    out: *mut *mut c_char,
) -> SyncsegStatus {
    use syncseg_core::export::{render, ExportFormat, ExportOptions, FrameRate};
    guard(|| {
        let out = out_ptr(out, "out")?;
        *out = std::ptr::null_mut();
        let s = handle(segments, "segments")?;
        let invalid =
            |e: syncseg_core::Error| Failure(SYNCSEG_STATUS_INVALID_ARGUMENT, e.to_string());
        let format: ExportFormat = utf8(format, "format")?.parse().map_err(invalid)?;
        let rate = FrameRate::new(fps_num, fps_den).map_err(invalid)?;
        let title = if title.is_null() {
            "syncseg".to_string()
        } else {
            utf8(title, "title")?.to_string()
        };
        let options = ExportOptions {
            title,
            video_frames: Some(s.frames as u64),
            ..Default::default()
        };
        let rendered = render(format, &s.predicted, rate, &options).map_err(invalid)?;
        let text = CString::new(rendered.text)
            .or_else(|_| fail(SYNCSEG_STATUS_PANIC, "rendered text holds a NUL byte"))?;
        let raw = text.into_raw();
        live()
            .get_or_insert_with(HashMap::new)
            .insert(raw as usize, TypeId::of::<OwnedString>());
        *out = raw;
        Ok(())
    })
}

/// Frees a string returned by syncseg and sets `*s` to NULL. NULL `*s` is a no-op.
///
/// # Safety
/// `s` is NULL or points to a pointer variable.
#[no_mangle]
pub unsafe extern "C" fn syncseg_string_free(s: *mut *mut c_char) -> SyncsegStatus {
    guard(|| {
        if s.is_null() {
            return fail(SYNCSEG_STATUS_NULL_POINTER, "pointer to string is NULL");
        }
        // SAFETY: non-null pointer to the caller's variable.
        let p = unsafe { *s };
        if p.is_null() {
            return Ok(());
        }
        let removed = is_live(p as *const OwnedString)
            && live()
                .as_mut()
                .is_some_and(|m| m.remove(&(p as usize)).is_some());
        if !removed {
            return fail(
                SYNCSEG_STATUS_INVALID_ARGUMENT,
                "string was not returned by syncseg or is already freed (double free?)",
            );
        }
        // SAFETY: `p` came from `CString::into_raw` (a rendering or a
        // report) and was live until removed above.
        drop(unsafe { CString::from_raw(p) });
        // SAFETY: non-null pointer to the caller's variable.
        unsafe { *s = std::ptr::null_mut() };
        Ok(())
    })
}

/// Receives a running job's progress: one JSON object per call
/// (NUL-terminated, valid during the call only), with `user` passed through:
/// * `{"event": "stage", "stage": "train" | "adapter" | "distill", "device": "cpu"}`;
/// * `{"event": "step", "epoch", "done", "total", "loss"}` after each batch;
/// * `{"event": "epoch", "epochs", "record": {...}}` after each epoch
///   (the record of `--log-json`);
/// * `{"event": "stage_finished", "report": {...}}`;
/// * `{"event": "note", "text": "..."}`.
///
/// Called on the thread that started the job; it must not call back into
/// syncseg.
pub type SyncsegProgress = Option<unsafe extern "C" fn(event: *const c_char, user: *mut c_void)>;

/// A pipeline monitor that forwards every event to a C callback.
struct CallbackMonitor {
    progress: SyncsegProgress,
    user: *mut c_void,
}

impl CallbackMonitor {
    fn send(&self, event: serde_json::Value) {
        if let Some(f) = self.progress {
            let text = CString::new(event.to_string()).unwrap_or_default();
            // SAFETY: the caller gave a function of this signature; the
            // string lives until the call returns.
            unsafe { f(text.as_ptr(), self.user) }
        }
    }
}

impl syncseg_core::train::fit::Observer for CallbackMonitor {
    fn step(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        self.send(serde_json::json!({
            "event": "step", "epoch": epoch, "done": done, "total": total, "loss": loss,
        }));
    }

    fn epoch(&mut self, record: &syncseg_core::train::fit::EpochRecord, epochs: usize) {
        self.send(serde_json::json!({"event": "epoch", "epochs": epochs, "record": record}));
    }
}

impl syncseg_core::pipeline::Monitor for CallbackMonitor {
    fn stage_started(&mut self, stage: &str, device: &str) {
        self.send(serde_json::json!({"event": "stage", "stage": stage, "device": device}));
    }

    fn stage_finished(&mut self, report: &syncseg_core::pipeline::StageReport) {
        self.send(serde_json::json!({"event": "stage_finished", "report": report}));
    }

    fn note(&mut self, text: &str) {
        self.send(serde_json::json!({"event": "note", "text": text}));
    }
}

/// Parses `json` (NULL or empty: `{}`) as `T`, naming `what` on failure.
fn parse_json<T: serde::de::DeserializeOwned>(
    json: *const c_char,
    what: &str,
) -> Result<T, Failure> {
    let text = if json.is_null() {
        "{}"
    } else {
        utf8(json, what)?
    };
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text)
        .or_else(|e| fail(SYNCSEG_STATUS_INVALID_ARGUMENT, format!("{what}: {e}")))
}

/// The status of a failed job: I/O and file formats, arguments, the rest.
fn job_failure(e: syncseg_core::Error) -> Failure {
    let status = match &e {
        syncseg_core::Error::Io { .. } | syncseg_core::Error::Format { .. } => SYNCSEG_STATUS_IO,
        syncseg_core::Error::Invalid(_) => SYNCSEG_STATUS_INVALID_ARGUMENT,
        _ => SYNCSEG_STATUS_MODEL,
    };
    Failure(status, e.to_string())
}

/// Writes `report` as a JSON string to `*out` (when `out` is not NULL).
fn hand_out_json(report: &impl serde::Serialize, out: *mut *mut c_char) -> FfiResult {
    if out.is_null() {
        return Ok(());
    }
    let text = serde_json::to_string(report)
        .or_else(|e| fail(SYNCSEG_STATUS_PANIC, format!("the report: {e}")))?;
    let text = CString::new(text)
        .or_else(|_| fail(SYNCSEG_STATUS_PANIC, "the report holds a NUL byte"))?;
    let raw = text.into_raw();
    live()
        .get_or_insert_with(HashMap::new)
        .insert(raw as usize, TypeId::of::<OwnedString>());
    // SAFETY: non-null; the caller promises a writable pointer variable.
    unsafe { *out = raw };
    Ok(())
}

/// Runs a pipeline job on the CPU: parses its inputs and options, reports
/// progress to the callback, hands out the report.
///
/// # Safety
/// As [`syncseg_train`].
unsafe fn run_job<I, O, R>(
    inputs_json: *const c_char,
    options_json: *const c_char,
    progress: SyncsegProgress,
    user: *mut c_void,
    report_json: *mut *mut c_char,
    job: impl FnOnce(
        &I,
        &O,
        &mut dyn syncseg_core::pipeline::Engine,
        &mut dyn syncseg_core::pipeline::Monitor,
    ) -> syncseg_core::Result<R>,
) -> SyncsegStatus
where
    I: serde::de::DeserializeOwned,
    O: serde::de::DeserializeOwned,
    R: serde::Serialize,
{
    guard(|| {
        if !report_json.is_null() {
            // SAFETY: non-null and writable, as the caller promises.
            unsafe { *report_json = std::ptr::null_mut() };
        }
        if inputs_json.is_null() {
            return fail(SYNCSEG_STATUS_NULL_POINTER, "inputs_json is NULL");
        }
        let inputs: I = parse_json(inputs_json, "inputs_json")?;
        let options: O = parse_json(options_json, "options_json")?;
        let mut monitor = CallbackMonitor { progress, user };
        let mut engine = syncseg_core::pipeline::CpuEngine;
        let report = job(&inputs, &options, &mut engine, &mut monitor).map_err(job_failure)?;
        hand_out_json(&report, report_json)
    })
}

/// Trains a segmentation model on the CPU, as `syncseg train` does.
/// `inputs_json` is a `TrainInputs` object (`features`, `labels`,
/// `mapping`, `videos`, optional `val_videos`, `out`: paths);
/// `options_json` a `TrainOptions` object whose fields all have defaults
/// (NULL or `"{}"`: the reference setting; e.g. `{"epochs": 50,
/// "backbone": "ms-tcn"}`); an unknown field is refused. `progress` (may be
/// NULL) receives the job's events. On success, `*report_json` (when
/// `report_json` is not NULL) is the stage's report as JSON; free it with
/// [`syncseg_string_free`]. Nothing is written when an input or option is
/// refused.
///
/// # Safety
/// The strings are NULL or NUL-terminated; `progress` is NULL or a function
/// of the declared type; `report_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn syncseg_train(
    inputs_json: *const c_char,
    options_json: *const c_char,
    progress: SyncsegProgress,
    user: *mut c_void,
    report_json: *mut *mut c_char,
) -> SyncsegStatus {
    // SAFETY: as this function's contract.
    unsafe {
        run_job(
            inputs_json,
            options_json,
            progress,
            user,
            report_json,
            |i, o, e, m| syncseg_core::pipeline::train(i, o, e, m),
        )
    }
}

/// Distills a teacher into a student view on the CPU, as `syncseg
/// distill` does: `inputs_json` is a `DistillInputs` object (`teacher`,
/// `teacher_features` and `student_features` or `dataset` with the views,
/// `videos`, `out`, …), `options_json` a `DistillOptions` object (NULL or
/// `"{}"`: the method, TAS distillation of every output; e.g. `{"level":
/// "both"}`). Otherwise as [`syncseg_train`]; the report lists the stages.
///
/// # Safety
/// As [`syncseg_train`].
#[no_mangle]
pub unsafe extern "C" fn syncseg_distill(
    inputs_json: *const c_char,
    options_json: *const c_char,
    progress: SyncsegProgress,
    user: *mut c_void,
    report_json: *mut *mut c_char,
) -> SyncsegStatus {
    // SAFETY: as this function's contract.
    unsafe {
        run_job(
            inputs_json,
            options_json,
            progress,
            user,
            report_json,
            |i, o, e, m| syncseg_core::pipeline::distill(i, o, e, m),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncseg_core::model::{C2fConfig, ModelMeta};

    fn model(dim: usize) -> *mut SyncsegModel {
        let meta = ModelMeta::new(
            C2fConfig::scaled(dim, 3, 0.0625),
            vec!["a".into(), "b".into(), "c".into()],
            vec![],
            600,
        );
        let model = SegModel::new_seeded(meta, &Device::Cpu, 1).unwrap();
        register(Box::new(SyncsegModel { model }))
    }

    fn last_error() -> String {
        let p = syncseg_last_error();
        assert!(!p.is_null(), "a failure leaves a message");
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Issue 20: the layout is a u32 checked on entry; 2 and u32::MAX were
    /// undefined behaviour as a Rust enum parameter.
    #[test]
    fn unknown_layouts_and_impossible_sizes_are_refused() {
        let (dim, frames) = (2, 5);
        let m = model(dim);
        let feats: Vec<f32> = (0..dim * frames).map(|i| i as f32 * 0.1).collect();
        let mut out: *mut SyncsegSegments = std::ptr::null_mut();
        let segment = |len: usize, dim: usize, frames: usize, layout: u32, out| unsafe {
            syncseg_segment(m, feats.as_ptr(), len, dim, frames, layout, out)
        };
        for layout in [2, 3, 0xFFFF_FFFF] {
            assert_eq!(
                segment(dim * frames, dim, frames, layout, &mut out),
                SYNCSEG_STATUS_INVALID_ARGUMENT
            );
            assert!(last_error().contains(&format!("layout is {layout}")));
            assert!(out.is_null());
        }
        for layout in [SYNCSEG_LAYOUT_DIM_BY_TIME, SYNCSEG_LAYOUT_TIME_BY_DIM] {
            assert_eq!(
                segment(dim * frames, dim, frames, layout, &mut out),
                SYNCSEG_STATUS_OK,
                "{}",
                last_error()
            );
            assert_eq!(
                unsafe { syncseg_segments_free(&mut out) },
                SYNCSEG_STATUS_OK
            );
        }
        // dim × frames overflows usize; len beyond any address space.
        for (len, frames) in [
            (dim * frames, usize::MAX / 2 + 1),
            (usize::MAX, frames),
            (usize::MAX, usize::MAX / dim),
            // Consistent sizes, but more bytes than a slice may span.
            (usize::MAX - 1, usize::MAX / 2),
        ] {
            let status = segment(len, dim, frames, SYNCSEG_LAYOUT_DIM_BY_TIME, &mut out);
            assert_eq!(status, SYNCSEG_STATUS_INVALID_ARGUMENT, "{len} {frames}");
            assert!(last_error().starts_with("len is"), "{}", last_error());
        }
        assert!(last_error().contains("address space"), "{}", last_error());
        let mut m = m;
        assert_eq!(unsafe { syncseg_model_free(&mut m) }, SYNCSEG_STATUS_OK);
    }

    /// Extreme but valid frame rates and indices: an error or a result,
    /// never SYNCSEG_STATUS_PANIC.
    #[test]
    fn extreme_rates_and_indices_do_not_panic() {
        let m = model(1);
        let frames = 700;
        let feats: Vec<f32> = (0..frames).map(|i| (i as f32 * 0.05).sin()).collect();
        let mut segs: *mut SyncsegSegments = std::ptr::null_mut();
        let status = unsafe { syncseg_segment(m, feats.as_ptr(), frames, 1, frames, 0, &mut segs) };
        assert_eq!(status, SYNCSEG_STATUS_OK);
        let mut seg = SyncsegSegment {
            start_frame: 0,
            end_frame: 0,
            label: 0,
            confidence: 0.0,
        };
        let status =
            unsafe { syncseg_segments_get(segs, usize::MAX, &mut seg, std::ptr::null_mut()) };
        assert_eq!(status, SYNCSEG_STATUS_INVALID_ARGUMENT);
        for format in syncseg_core::export::ExportFormat::ALL {
            let name = CString::new(format.to_string()).unwrap();
            for (num, den) in [
                (u32::MAX, 1),
                (1, u32::MAX),
                (u32::MAX, u32::MAX - 1),
                (0, 1),
            ] {
                let mut text: *mut c_char = std::ptr::null_mut();
                let status = unsafe {
                    syncseg_segments_render(segs, name.as_ptr(), num, den, c"t".as_ptr(), &mut text)
                };
                assert!(
                    status == SYNCSEG_STATUS_OK || status == SYNCSEG_STATUS_INVALID_ARGUMENT,
                    "{format} at {num}/{den}: status {status}: {}",
                    last_error()
                );
                assert_eq!(unsafe { syncseg_string_free(&mut text) }, SYNCSEG_STATUS_OK);
            }
        }
        let mut m = m;
        assert_eq!(
            unsafe { syncseg_segments_free(&mut segs) },
            SYNCSEG_STATUS_OK
        );
        assert_eq!(unsafe { syncseg_model_free(&mut m) }, SYNCSEG_STATUS_OK);
    }
}
