//! Building and reading plain JavaScript objects.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

/// A plain object under construction.
pub(crate) struct ObjectBuilder(Object);

impl ObjectBuilder {
    pub(crate) fn new() -> Self {
        ObjectBuilder(Object::new())
    }

    pub(crate) fn set(self, key: &str, value: impl Into<JsValue>) -> Self {
        // Setting a data property on a fresh plain object cannot throw.
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value.into());
        self
    }

    pub(crate) fn build(self) -> JsValue {
        self.0.into()
    }
}

/// A JS array of strings.
pub(crate) fn string_array(items: &[String]) -> Array {
    items.iter().map(|s| JsValue::from_str(s)).collect()
}

/// `options[key]` when `options` is an object and the property is defined.
pub(crate) fn option(options: &JsValue, key: &str) -> Option<JsValue> {
    if !options.is_object() {
        return None;
    }
    Reflect::get(options, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// Milliseconds from the page's monotonic clock (`performance.now()`, in
/// windows and workers alike); 0 where there is none.
pub(crate) fn now_ms() -> f64 {
    Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .filter(|p| p.is_object())
        .and_then(|p| {
            let now = Reflect::get(&p, &JsValue::from_str("now")).ok()?;
            let now: js_sys::Function = now.dyn_into().ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or(0.0)
}

/// Whether this global scope (window or worker) exposes `navigator.gpu`.
pub(crate) fn has_webgpu() -> bool {
    Reflect::get(&js_sys::global(), &JsValue::from_str("navigator"))
        .ok()
        .filter(|n| n.is_object())
        .and_then(|n| Reflect::get(&n, &JsValue::from_str("gpu")).ok())
        .is_some_and(|g| g.is_object())
}
