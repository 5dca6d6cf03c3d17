//! Hostile names and missing files through the real binary: video names
//! that are paths are refused before anything is read or written, and OS
//! errors are printed once.

use std::path::Path;
use std::process::Command;

fn syncseg(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_syncseg"))
        .args(args)
        .env("CI", "1")
        .output()
        .expect("the syncseg binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn bundle_lines_that_are_paths_write_nothing_outside_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/c2f_tcn/model.pth");
    let model = root.join("model");
    let (ok, err) = syncseg(&["import", "--pth", p(&fixture), "--out", p(&model)]);
    assert!(ok, "{err}");
    // A victim feature file outside the features folder, 12-D like the model.
    let victim_dir = root.join("elsewhere");
    let f = syncseg_core::features::Features::new(12, 20, vec![0.1; 240]).unwrap();
    syncseg_core::npy::write_features(victim_dir.join("victim.npy"), &f).unwrap();
    let features = root.join("features");
    std::fs::create_dir_all(&features).unwrap();
    let out = root.join("a/b/out");
    for line in [
        format!("{}", victim_dir.join("victim").display()),
        "../../../elsewhere/victim".to_string(),
    ] {
        let bundle = root.join("test.bundle");
        std::fs::write(&bundle, format!("# test\n{line}\n")).unwrap();
        let (ok, err) = syncseg(&[
            "predict",
            "--model",
            p(&model),
            "--features",
            p(&features),
            "--videos",
            p(&bundle),
            "--out",
            p(&out),
        ]);
        assert!(!ok, "{line}: predict accepted a path as a video name");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("test.bundle: line 2: video name"), "{err}");
        assert!(err.contains("contains a path separator"), "{err}");
        assert!(!victim_dir.join("victim.txt").exists());
        assert!(!victim_dir.join("victim.segments.json").exists());
        assert!(!root.join("elsewhere/victim.txt").exists());
    }
}

#[test]
fn os_errors_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model");
    let (ok, err) = syncseg(&[
        "predict",
        "--model",
        p(&missing),
        "--features",
        p(dir.path()),
        "--videos",
        p(&dir.path().join("x.bundle")),
        "--out",
        p(&dir.path().join("out")),
    ]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-model"), "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
}
