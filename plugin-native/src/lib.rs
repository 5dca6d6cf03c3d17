//! syncseg-native: the `syncseg` command-line tool (src/main.rs) and the C ABI
//! library for video editors ([`ffi`]; header `include/syncseg.h`).

pub mod ffi;
