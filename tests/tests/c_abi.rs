//! The C ABI driven from C: builds the cdylib, compiles tests/c/abi_smoke.c
//! with the system C compiler against the generated header, and runs it on
//! features of the synthetic benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;
use syncseg_core::model::{C2fConfig, ModelMeta, SegModel};
use syncseg_core::synth::{Generator, Preset, SynthConfig};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Builds `libsyncseg_native` (dev profile) and returns its folder.
fn build_cdylib() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "syncseg-native", "--lib"])
        .current_dir(workspace())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the cdylib failed");
    target_dir().join("debug")
}

fn compile_c(lib_dir: &Path, out: &Path) {
    let status = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(out)
        .arg(workspace().join("tests/c/abi_smoke.c"))
        .arg("-I")
        .arg(workspace().join("plugin-native/include"))
        .arg("-L")
        .arg(lib_dir)
        .args(["-lsyncseg_native", "-lm"])
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compiling abi_smoke.c failed");
}

#[test]
fn c_program_segments_features_and_survives_bad_input() {
    let lib_dir = build_cdylib();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("abi_smoke");
    compile_c(&lib_dir, &exe);

    // A model and one recording of the synthetic benchmark.
    let gen = Generator::new(SynthConfig::preset(Preset::Small, 1, Some(24)).unwrap());
    let rec = gen.recording(0).unwrap();
    let names = gen.class_names().to_vec();
    let meta = ModelMeta::new(
        C2fConfig::scaled(24, names.len(), 0.125),
        names,
        vec![],
        600,
    );
    let model_dir = dir.path().join("model");
    SegModel::new_seeded(meta, &Device::Cpu, 3)
        .unwrap()
        .save(&model_dir)
        .unwrap();
    let raw: Vec<u8> = rec.ego.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let feats = dir.path().join("features.f32");
    std::fs::write(&feats, raw).unwrap();

    let out = Command::new(&exe)
        .arg(&model_dir)
        .arg(&feats)
        .arg(rec.ego.dim.to_string())
        .arg(rec.ego.frames.to_string())
        .env("LD_LIBRARY_PATH", &lib_dir)
        .env("DYLD_LIBRARY_PATH", &lib_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "abi_smoke failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all C ABI checks passed"));
    assert!(
        stdout.contains("double free?"),
        "a stale handle is reported: {stdout}"
    );
}
