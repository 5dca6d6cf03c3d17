//! The browser end to end: builds the wasm package (scripts/build-wasm.sh),
//! serves the demo page (plugin-wasm/www), drives Debian's headless Chromium
//! through playwright-core (tests/browser/run.mjs), and checks what the page
//! returned against the native CLI on the same model bundle and features:
//! WebGPU (SwiftShader without a GPU) and the CPU fallback give the CLI's
//! labels and segment confidences, every WGSL kernel compiles in Chrome, a
//! 100k-frame video segments on WebGPU, and without WebGPU the page falls
//! back to the CPU and says so.
//!
//! Needs node, /usr/bin/chromium and tests/browser/node_modules:
//! `bash scripts/test.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use syncseg_core::features::Features;
use syncseg_core::labels::{read_bundle, write_bundle};
use syncseg_core::npy::{read_features, write_features, FeatureLayout};

/// Frames of the long video (the "100k-frame input").
const LONG_FRAMES: usize = 100_000;
/// Feature dimension of the test model.
const DIM: usize = 64;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start ({e})"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tools the test drives; a missing one fails with how to install it.
fn require_tools() {
    let missing: Vec<&str> = [
        (
            "node",
            Command::new("node").arg("--version").output().is_ok(),
        ),
        ("/usr/bin/chromium", Path::new("/usr/bin/chromium").exists()),
        (
            "tests/browser/node_modules/playwright-core",
            workspace()
                .join("tests/browser/node_modules/playwright-core")
                .exists(),
        ),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}: `bash scripts/test.sh` installs node, chromium and playwright-core"
    );
}

/// The `syncseg` CLI (dev profile) for the native predictions.
fn build_cli() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo)
            .args(["build", "-p", "syncseg-native", "--bin", "syncseg"])
            .current_dir(workspace()),
        "building the syncseg CLI",
    );
    target_dir().join("debug/syncseg")
}

/// Runs the CLI, failing with its output.
fn syncseg(cli: &Path, args: &[&std::ffi::OsStr]) {
    run(
        Command::new(cli).args(args),
        &format!("syncseg {:?}", args[0]),
    );
}

/// A small trained model with a feature adapter (so the attention kernels
/// run too), as a bundle: a teacher trained on the exo view, then feature +
/// TAS distillation on the synchronized pairs. Returns the data folder.
fn trained_bundle(cli: &Path, dir: &Path, bundle: &Path) -> PathBuf {
    let data = dir.join("data");
    let d = |s: &str| data.join(s).into_os_string();
    let o = |s: &str| std::ffi::OsString::from(s);
    let dim = DIM.to_string();
    syncseg(
        cli,
        &[
            &o("synth"),
            &o("--out"),
            data.as_os_str(),
            &o("--seed"),
            &o("2"),
            &o("--dim"),
            &o(&dim),
        ],
    );
    let teacher = dir.join("teacher");
    syncseg(
        cli,
        &[
            &o("train"),
            &o("--features"),
            &d("features/exo"),
            &o("--labels"),
            &d("groundTruth"),
            &o("--mapping"),
            &d("mapping.txt"),
            &o("--videos"),
            &d("splits/exo_train.bundle"),
            &o("--val-videos"),
            &d("splits/exo_val.bundle"),
            &o("--background"),
            &o("background"),
            &o("--width-scale"),
            &o("0.125"),
            &o("--epochs"),
            &o("6"),
            &o("--out"),
            teacher.as_os_str(),
        ],
    );
    let student = dir.join("student");
    syncseg(
        cli,
        &[
            &o("distill"),
            &o("--teacher"),
            teacher.as_os_str(),
            &o("--teacher-features"),
            &d("features/exo"),
            &o("--student-features"),
            &d("features/ego"),
            &o("--videos"),
            &d("splits/adapt.bundle"),
            &o("--level"),
            &o("both"),
            &o("--epochs"),
            &o("1"),
            &o("--out"),
            student.as_os_str(),
        ],
    );
    syncseg(
        cli,
        &[
            &o("export-model"),
            &o("--model"),
            student.as_os_str(),
            &o("--out"),
            bundle.as_os_str(),
        ],
    );
    data
}

/// `frames` frames cut from the recordings one after the other.
fn long_video(recs: &[Features], frames: usize) -> Features {
    let mut channels: Vec<Vec<f32>> = (0..DIM).map(|_| Vec::with_capacity(frames)).collect();
    let mut t = 0;
    'outer: loop {
        for r in recs {
            for f in 0..r.frames {
                if t == frames {
                    break 'outer;
                }
                for (d, ch) in channels.iter_mut().enumerate() {
                    ch.push(r.data[d * r.frames + f]);
                }
                t += 1;
            }
        }
    }
    Features::new(DIM, frames, channels.concat()).unwrap()
}

fn native_labels(preds: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(preds.join(format!("{name}.txt")))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn native_segments(preds: &Path, name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(preds.join(format!("{name}.segments.json"))).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["segments"].as_array().unwrap().clone()
}

/// Checks one browser run against the native prediction.
fn check_run(run: &Value, want_device: &str, labels: &[String], segments: &[Value], what: &str) {
    assert_eq!(
        run["device"], want_device,
        "{what}: ran on {}",
        run["device"]
    );
    let names: Vec<&str> = run["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let got: Vec<&str> = run["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| names[v.as_u64().unwrap() as usize])
        .collect();
    assert_eq!(got.len(), labels.len(), "{what}: frames");
    let first_diff = got.iter().zip(labels).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "{what}: labels differ from the native CLI's"
    );
    let got_segments = run["segments"].as_array().unwrap();
    assert_eq!(got_segments.len(), segments.len(), "{what}: segment count");
    for (g, w) in got_segments.iter().zip(segments) {
        for key in ["start", "end", "label"] {
            assert_eq!(g[key], w[key], "{what}: segment {key}");
        }
        let (gc, wc) = (
            g["confidence"].as_f64().unwrap(),
            w["confidence"].as_f64().unwrap(),
        );
        assert!(
            (gc - wc).abs() < 1e-4,
            "{what}: confidence {gc} vs native {wc}"
        );
    }
}

#[test]
fn demo_page_segments_like_the_native_cli_on_webgpu_and_cpu() {
    require_tools();
    let cli = build_cli();
    run(
        Command::new("bash")
            .arg(workspace().join("scripts/build-wasm.sh"))
            .current_dir(workspace()),
        "scripts/build-wasm.sh",
    );

    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let model = files.join("model.syncseg");
    let data = trained_bundle(&cli, dir.path(), &model);
    let tests = read_bundle(data.join("splits/ego_test.bundle")).unwrap();
    let mut names: Vec<String> = tests[..2].to_vec();
    let mut egos = Vec::new();
    for name in &names {
        let f = data.join(format!("features/ego/{name}.npy"));
        std::fs::copy(&f, files.join(format!("{name}.npy"))).unwrap();
        egos.push(read_features(&f, FeatureLayout::DimByTime).unwrap());
    }
    write_features(files.join("long.npy"), &long_video(&egos, LONG_FRAMES)).unwrap();
    names.push("long".into());
    let videos = dir.path().join("videos.bundle");
    write_bundle(&videos, &names).unwrap();

    let preds = dir.path().join("preds");
    run(
        Command::new(&cli)
            .args(["predict", "--device", "cpu", "--model"])
            .arg(&model)
            .arg("--features")
            .arg(&files)
            .arg("--videos")
            .arg(&videos)
            .arg("--out")
            .arg(&preds),
        "syncseg predict",
    );

    let out = dir.path().join("browser.json");
    // "auto" on SwiftShader (a software fallback adapter) runs on the CPU.
    let mut cases: Vec<Value> = names[..2]
        .iter()
        .map(|n| {
            let features = format!("/files/{n}.npy");
            serde_json::json!({"name": n, "features": features, "devices": ["webgpu", "cpu", "auto"]})
        })
        .collect();
    cases.push(
        serde_json::json!({"name": "long", "features": "/files/long.npy", "devices": ["webgpu"]}),
    );
    // Bad input for the error checks: not a model, features of another dim.
    std::fs::write(files.join("bad.syncseg"), b"not a model").unwrap();
    let other = Features::new(3, 500, vec![0.5; 1500]).unwrap();
    write_features(files.join("dim3.npy"), &other).unwrap();
    std::fs::write(files.join("bad.npy"), b"\x93NUMPY garbage").unwrap();
    let config = serde_json::json!({
        "root": workspace().join("plugin-wasm"),
        "files": files,
        "model": "/files/model.syncseg",
        "cases": cases,
        "fallback": {"features": format!("/files/{}.npy", names[0])},
        "out": out,
        "errors": {
            "bad_model": ["loadModelUrl", "/files/bad.syncseg"],
            "bad_npy": ["loadFeaturesUrl", "/files/bad.npy"],
            "wrong_dim": ["loadFeaturesUrl", "/files/dim3.npy"],
            "wrong_dim_segment": ["segment", "cpu"],
        },
    });
    let config_path = dir.path().join("config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    run(
        Command::new("node")
            .arg(workspace().join("tests/browser/run.mjs"))
            .arg(&config_path),
        "the headless Chromium run (tests/browser/run.mjs)",
    );
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for line in result["log"].as_array().unwrap() {
        eprintln!("{}", line.as_str().unwrap_or_default());
    }

    // Every kernel compiled in Chrome's WGSL compiler.
    let mut want: Vec<&str> = syncseg_shaders::kernels::ALL
        .iter()
        .map(|k| k.entry)
        .collect();
    want.sort_unstable();
    let got: Vec<&str> = result["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(got, want, "kernels compiled in Chromium");

    for case in result["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let labels = native_labels(&preds, name);
        let segments = native_segments(&preds, name);
        if name != "long" {
            assert!(
                segments.len() >= 2,
                "{name}: the test model predicts a single segment; a weak test"
            );
        }
        if case["features"]["truth"].is_object() {
            let truth = &case["features"]["truth"];
            let names = truth["names"].as_array().unwrap();
            let got: Vec<&str> = truth["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| names[v.as_u64().unwrap() as usize].as_str().unwrap())
                .collect();
            let gt = std::fs::read_to_string(data.join(format!("groundTruth/{name}.txt"))).unwrap();
            let want: Vec<&str> = gt.lines().collect();
            assert_eq!(got, want, "{name}: the page's synthetic ground truth");
            let shown = case["features"]["name"].as_str().unwrap();
            assert!(
                shown.starts_with(name),
                "generated {shown}, expected {name}"
            );
        }
        for r in case["runs"].as_array().unwrap() {
            let asked = r["asked"].as_str().unwrap();
            if asked == "auto" {
                let reason = r["fallbackReason"].as_str().unwrap_or_default();
                assert!(
                    reason.contains("software fallback"),
                    "{name}: auto on SwiftShader: {reason:?}"
                );
                check_run(r, "cpu", &labels, &segments, &format!("{name} on auto"));
                continue;
            }
            assert!(
                r["fallbackReason"].is_null(),
                "{name}: fell back: {}",
                r["fallbackReason"]
            );
            check_run(r, asked, &labels, &segments, &format!("{name} on {asked}"));
        }
    }

    // Bad input fails with a one-line message naming what is wrong, shown
    // in the page.
    let errors = &result["errors"];
    let expect = [
        ("bad_model", "model bundle"),
        ("bad_npy", "bad.npy"),
        ("wrong_dim_segment", "64-dimensional"),
    ];
    for (key, needle) in expect {
        let e = &errors[key];
        let msg = e["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: did not fail: {e}"));
        assert!(msg.contains(needle) && !msg.contains('\n'), "{key}: {msg}");
        assert_eq!(e["status"], msg, "{key}: the page shows the error");
    }
    assert!(
        errors["wrong_dim"].is_null(),
        "a 3-dim file is valid features: {}",
        errors["wrong_dim"]
    );

    // Without WebGPU the page runs on the CPU and says so.
    let fb = &result["fallback"];
    let run = &fb["case"]["runs"][0];
    let first = &names[0];
    check_run(
        run,
        "cpu",
        &native_labels(&preds, first),
        &native_segments(&preds, first),
        "fallback",
    );
    assert!(
        run["fallbackReason"].is_string(),
        "no fallback reason: {run}"
    );
    assert!(
        run["status"]
            .as_str()
            .unwrap()
            .contains("WebGPU is not available"),
        "the page does not say it fell back: {}",
        run["status"]
    );
}
