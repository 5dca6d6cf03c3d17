//! Fuzzing of syncseg's parsers and loaders on stable Rust.
//!
//! `syncseg-fuzz run` mutates valid files of every format a user can hand
//! to syncseg (see [`targets::all`]) and feeds them to the real loaders.
//! A finding is a panic, an allocation larger than the cap (the loaders
//! must size allocations by what the file can hold), or a hang. `.ci/run`
//! runs a few seconds per target (`tests/ci.rs`); NOTES.md records the
//! long campaigns.

pub mod mutate;
pub mod runner;
pub mod targets;
