//! Video frames from the page to RGB bytes: `ImageData` (or any object with
//! `data`, `width` and `height`) is read directly; anything a canvas can
//! draw (`VideoFrame`, `ImageBitmap`, `<video>`, `<img>`, a canvas) is drawn
//! onto an `OffscreenCanvas` at its natural size and read back. Works in
//! windows and workers alike.

use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn call(obj: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, String> {
    let f: Function = get(obj, method)
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| format!("no {method}() here"))?;
    let args: Array = args.iter().collect();
    f.apply(obj, &args).map_err(|e| {
        e.dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .unwrap_or_else(|| format!("{e:?}"))
    })
}

fn dimension(obj: &JsValue, keys: &[&str]) -> Option<usize> {
    keys.iter()
        .find_map(|k| get(obj, k).and_then(|v| v.as_f64()))
        .filter(|&v| v >= 1.0 && v.fract() == 0.0)
        .map(|v| v as usize)
}

/// One frame as `(rgb bytes, width, height)`.
pub(crate) fn rgb_of(source: &JsValue) -> Result<(Vec<u8>, usize, usize), String> {
    if !source.is_object() {
        return Err("not an image".into());
    }
    if let Some(data) = get(source, "data") {
        let (Some(w), Some(h)) = (
            dimension(source, &["width"]),
            dimension(source, &["height"]),
        ) else {
            return Err("image data without a positive integer width and height".into());
        };
        if !data.is_object() || get(&data, "length").and_then(|v| v.as_f64()).is_none() {
            return Err("image data whose data is not a byte array".into());
        }
        let rgba = Uint8Array::new(&data).to_vec();
        if rgba.len() != w * h * 4 {
            return Err(format!(
                "{w}×{h} RGBA needs {} bytes, the data has {}",
                w * h * 4,
                rgba.len()
            ));
        }
        let rgb = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        return Ok((rgb, w, h));
    }
    // VideoFrame: displayWidth; <video>: videoWidth; <img>: naturalWidth.
    let size = (
        dimension(
            source,
            &["displayWidth", "videoWidth", "naturalWidth", "width"],
        ),
        dimension(
            source,
            &["displayHeight", "videoHeight", "naturalHeight", "height"],
        ),
    );
    let (Some(w), Some(h)) = size else {
        return Err("not an image (expected ImageData, an ImageBitmap, a VideoFrame, a <video> with a decoded frame, an <img> or a canvas)".into());
    };
    let ctor: Function = get(&js_sys::global(), "OffscreenCanvas")
        .and_then(|c| c.dyn_into().ok())
        .ok_or("this browser has no OffscreenCanvas to read the frame's pixels; pass ImageData")?;
    let args: Array = [JsValue::from(w as u32), JsValue::from(h as u32)]
        .iter()
        .collect();
    let canvas = Reflect::construct(&ctor, &args).map_err(|e| format!("OffscreenCanvas: {e:?}"))?;
    let settings = Object::new();
    Reflect::set(&settings, &"willReadFrequently".into(), &JsValue::TRUE)
        .map_err(|e| format!("{e:?}"))?;
    let ctx = call(&canvas, "getContext", &["2d".into(), settings.into()])?;
    if ctx.is_null() {
        return Err("no 2D canvas context to read the frame's pixels".into());
    }
    call(&ctx, "drawImage", &[source.clone(), 0.into(), 0.into()])?;
    let image = call(
        &ctx,
        "getImageData",
        &[0.into(), 0.into(), (w as u32).into(), (h as u32).into()],
    )?;
    rgb_of(&image)
}
