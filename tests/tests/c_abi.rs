//! The C ABI driven from C: builds the cdylib, compiles the programs in
//! tests/c with the system C compiler against the generated header, and
//! runs them on the synthetic benchmark: segmenting features
//! (abi_smoke.c), streaming a causal model frame by frame (abi_stream.c),
//! and training and distilling through the pipeline (abi_train.c).

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

fn compile_c(lib_dir: &Path, source: &str, out: &Path) {
    let status = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(out)
        .arg(workspace().join("tests/c").join(source))
        .arg("-I")
        .arg(workspace().join("plugin-native/include"))
        .arg("-L")
        .arg(lib_dir)
        .args(["-lsyncseg_native", "-lm"])
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compiling {source} failed");
}

/// Runs the compiled C program `exe` with `args` against the cdylib in
/// `lib_dir`, prints its output, asserts it exited 0 and returns stdout.
fn run_c(exe: &Path, lib_dir: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", lib_dir)
        .env("DYLD_LIBRARY_PATH", lib_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{} failed ({:?}):\n{stdout}\n{stderr}",
        exe.display(),
        out.status
    );
    stdout
}

/// A model directory and one synthetic ego recording as raw `[dim][frames]`
/// float32: `(model_dir, features_file, dim, frames)`.
fn model_and_features(dir: &Path) -> (PathBuf, PathBuf, usize, usize) {
    let gen = Generator::new(SynthConfig::preset(Preset::Small, 1, Some(24)).unwrap()).unwrap();
    let rec = gen.recording(0).unwrap();
    let names = gen.class_names().to_vec();
    let meta = ModelMeta::new(
        C2fConfig::scaled(24, names.len(), 0.125),
        names,
        vec![],
        600,
    );
    let model_dir = dir.join("model");
    SegModel::new_seeded(meta, &Device::Cpu, 3)
        .unwrap()
        .save(&model_dir)
        .unwrap();
    let raw: Vec<u8> = rec.ego.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let feats = dir.join("features.f32");
    std::fs::write(&feats, raw).unwrap();
    (model_dir, feats, rec.ego.dim, rec.ego.frames)
}

#[test]
fn c_program_segments_features_and_survives_bad_input() {
    let lib_dir = build_cdylib();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("abi_smoke");
    compile_c(&lib_dir, "abi_smoke.c", &exe);
    let (model_dir, feats, dim, frames) = model_and_features(dir.path());
    // The model as a directory, and as the single-file bundle.
    let bundle = dir.path().join("model.syncseg");
    SegModel::load(&model_dir, &Device::Cpu)
        .unwrap()
        .save_bundle(&bundle)
        .unwrap();
    for model in [&model_dir, &bundle] {
        let (dim, frames) = (dim.to_string(), frames.to_string());
        let stdout = run_c(
            &exe,
            &lib_dir,
            &[
                model.as_os_str(),
                feats.as_os_str(),
                dim.as_ref(),
                frames.as_ref(),
                dir.path().as_os_str(),
            ],
        );
        assert!(stdout.contains("all C ABI checks passed"));
        assert!(
            stdout.contains("double free?"),
            "a stale handle is reported: {stdout}"
        );
        let edl = std::fs::read_to_string(dir.path().join("markers.edl")).unwrap();
        assert!(edl.starts_with("TITLE: abi smoke"), "{edl}");
        assert!(edl.contains("|M:"), "Resolve marker comments: {edl}");
        let otio = std::fs::read_to_string(dir.path().join("markers.otio")).unwrap();
        let otio: serde_json::Value = serde_json::from_str(&otio).unwrap();
        assert_eq!(otio["OTIO_SCHEMA"], "Timeline.1");
        assert!(otio.to_string().contains("Marker.2"));
    }
}

/// A causal MS-TCN++ streamed from C, frame by frame and in uneven chunks,
/// labels every frame as offline segmentation does; an offline model is
/// refused.
#[test]
fn c_program_streams_a_causal_model_frame_by_frame() {
    use syncseg_core::model::ms_tcn::MsTcnConfig;
    let lib_dir = build_cdylib();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("abi_stream");
    compile_c(&lib_dir, "abi_stream.c", &exe);
    let (offline, feats, dim, frames) = model_and_features(dir.path());
    let classes = SegModel::load(&offline, &Device::Cpu).unwrap().meta.classes;
    let cfg = MsTcnConfig {
        f_maps: 16,
        layers_pg: 6,
        layers_r: 5,
        refinements: 2,
        ..MsTcnConfig::reference(dim, classes.len())
    }
    .with_lookahead(6);
    let causal = dir.path().join("causal");
    SegModel::new_seeded(ModelMeta::new(cfg, classes, vec![], 600), &Device::Cpu, 5)
        .unwrap()
        .save(&causal)
        .unwrap();
    let (dim, frames) = (dim.to_string(), frames.to_string());
    let stdout = run_c(
        &exe,
        &lib_dir,
        &[
            causal.as_os_str(),
            offline.as_os_str(),
            feats.as_os_str(),
            dim.as_ref(),
            frames.as_ref(),
        ],
    );
    assert!(stdout.contains("all C ABI stream checks passed"));
    assert!(stdout.contains("causal MS-TCN++"), "{stdout}");
}

/// A teacher trained and distilled from C, with progress callbacks; refused
/// jobs write nothing.
#[test]
fn c_program_trains_and_distills_through_the_pipeline() {
    let lib_dir = build_cdylib();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("abi_train");
    compile_c(&lib_dir, "abi_train.c", &exe);
    let data = dir.path().join("data");
    let cfg = SynthConfig::preset(Preset::Small, 4, Some(24)).unwrap();
    Generator::new(cfg)
        .unwrap()
        .write(&data, |_, _| {})
        .unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let stdout = run_c(&exe, &lib_dir, &[data.as_os_str(), out.as_os_str()]);
    assert!(stdout.contains("all C ABI training checks passed"));
    // The student is a model the CLI's loader takes, with the teacher's classes.
    let teacher = SegModel::load(out.join("teacher"), &Device::Cpu).unwrap();
    let student = SegModel::load(out.join("student"), &Device::Cpu).unwrap();
    assert_eq!(student.meta.classes, teacher.meta.classes);
}

/// The README's Python `ctypes` example, extracted from the README and run.
#[test]
fn readme_ctypes_example_runs() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme
        .find("<!-- ctypes-example -->")
        .expect("README marks the ctypes example");
    let code = readme[start..]
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a python block follows the marker");
    let lib_dir = build_cdylib();
    let dir = tempfile::tempdir().unwrap();
    let (model_dir, feats, dim, frames) = model_and_features(dir.path());
    let script = dir.path().join("example.py");
    std::fs::write(&script, code).unwrap();
    let lib = lib_dir.join(format!(
        "{}syncseg_native{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let out = Command::new("python3")
        .arg(&script)
        .env("SYNCSEG_LIB", &lib)
        .env("MODEL_DIR", &model_dir)
        .env("FEATURES", &feats)
        .env("DIM", dim.to_string())
        .env("FRAMES", frames.to_string())
        .output()
        .expect("python3 is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One line per segment, covering the video from frame 0 to `frames`.
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert!(!rows.is_empty(), "no segments printed");
    assert_eq!(rows[0][0], "0");
    assert_eq!(rows.last().unwrap()[1], frames.to_string());
}
