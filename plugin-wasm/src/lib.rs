//! syncseg-wasm: the browser API (to come: see the browser issue).
