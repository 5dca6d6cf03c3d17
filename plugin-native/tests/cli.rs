//! End-to-end tests of the `syncseg` command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn syncseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncseg"))
        .args(args)
        .env("CI", "1")
        .output()
        .expect("the syncseg binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = syncseg(args);
    assert!(
        out.status.success(),
        "syncseg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its one-line error.
fn fails(args: &[&str]) -> String {
    let out = syncseg(args);
    assert!(!out.status.success(), "syncseg {args:?} should have failed");
    let err = String::from_utf8(out.stderr).unwrap();
    // Our errors are one line; clap's usage errors add a hint below theirs.
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {err}"));
    line.to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn synth(dir: &Path, seed: &str) -> PathBuf {
    let data = dir.join("data");
    ok(&["synth", "--out", p(&data), "--seed", seed, "--dim", "24"]);
    data
}

#[test]
fn synth_then_eval_of_ground_truth_against_itself_scores_100() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "3");
    for split in [
        "exo_train",
        "exo_val",
        "ego_train",
        "adapt",
        "adapt_val",
        "exo_test",
        "ego_test",
    ] {
        assert!(
            data.join(format!("splits/{split}.bundle")).exists(),
            "{split}"
        );
    }
    // Unlabeled pairs keep their labels apart from the labelled ones.
    let adapt = std::fs::read_to_string(data.join("splits/adapt.bundle")).unwrap();
    let first = adapt.lines().next().unwrap().trim_end_matches(".txt");
    assert!(!data.join(format!("groundTruth/{first}.txt")).exists());
    assert!(data.join(format!("groundTruth_adapt/{first}.txt")).exists());

    let gt = data.join("groundTruth");
    let json = ok(&[
        "eval",
        "--gt",
        p(&gt),
        "--pred",
        p(&gt),
        "--background",
        "background",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    for key in ["edit", "f1_10", "f1_25", "f1_50", "mof"] {
        assert_eq!(v[key].as_f64().unwrap(), 100.0, "{key}: {json}");
    }
    assert_eq!(v["videos"].as_u64().unwrap(), 41);
    let table = ok(&["eval", "--gt", p(&gt), "--pred", p(&gt)]);
    assert!(table.contains("100.00"), "{table}");

    // Determinism: the same seed writes the same bytes.
    let again = dir.path().join("again");
    ok(&["synth", "--out", p(&again), "--seed", "3", "--dim", "24"]);
    assert_eq!(
        std::fs::read(data.join("features/ego/rec0001.npy")).unwrap(),
        std::fs::read(again.join("features/ego/rec0001.npy")).unwrap()
    );
    let err = fails(&[
        "synth",
        "--out",
        p(&dir.path().join("x")),
        "--preset",
        "huge",
    ]);
    assert!(err.contains("unknown preset 'huge'"), "{err}");
    // A non-empty output folder is refused, not overwritten.
    let err = fails(&["synth", "--out", p(&data)]);
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn eval_errors_name_the_video_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let gt = dir.path().join("gt");
    let pred = dir.path().join("pred");
    std::fs::create_dir_all(&gt).unwrap();
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::write(gt.join("v1.txt"), "a\na\nb\n").unwrap();
    std::fs::write(gt.join("v2.txt"), "a\nb\n").unwrap();
    std::fs::write(pred.join("v1.txt"), "a\nb\n").unwrap();
    let err = fails(&["eval", "--gt", p(&gt), "--pred", p(&pred)]);
    assert!(
        err.contains("v1") && err.contains("2 frames") && err.contains("has 3"),
        "{err}"
    );
    std::fs::write(pred.join("v1.txt"), "a\na\nb\n").unwrap();
    let err = fails(&["eval", "--gt", p(&gt), "--pred", p(&pred)]);
    assert!(
        err.contains("missing prediction") && err.contains("v2"),
        "{err}"
    );
    let bundle = dir.path().join("one.bundle");
    std::fs::write(&bundle, "v1.txt\n").unwrap();
    let json = ok(&[
        "eval",
        "--gt",
        p(&gt),
        "--pred",
        p(&pred),
        "--videos",
        p(&bundle),
        "--json",
    ]);
    assert!(json.contains("\"videos\":1"), "{json}");
    std::fs::write(&bundle, "\n").unwrap();
    let err = fails(&[
        "eval",
        "--gt",
        p(&gt),
        "--pred",
        p(&pred),
        "--videos",
        p(&bundle),
    ]);
    assert!(err.contains("one.bundle"), "{err}");
}

/// Train a tiny teacher, predict, evaluate, distill with every label file
/// removed, and check the clear errors on bad input.
#[test]
fn train_predict_distill_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "5");
    // Paths inside the dataset as &'static str (a test may leak a few bytes)
    // so that argument lists can borrow them freely.
    let d = |s: &str| -> &'static str {
        Box::leak(data.join(s).to_str().unwrap().to_string().into_boxed_str())
    };
    let teacher = dir.path().join("teacher");
    let common = [
        "--labels",
        d("groundTruth"),
        "--mapping",
        d("mapping.txt"),
        "--background",
        "background",
        "--width-scale",
        "0.125",
        "--epochs",
        "2",
    ];
    let mut args = vec![
        "train",
        "--features",
        d("features/exo"),
        "--videos",
        d("splits/exo_train.bundle"),
        "--val-videos",
        d("splits/exo_val.bundle"),
        "--out",
        p(&teacher),
    ];
    args.extend(common);
    ok(&args);
    assert!(
        teacher.join("model.json").exists() && teacher.join("last/optimizer.safetensors").exists()
    );
    // --resume continues to a larger epoch count from last/.
    let mut resumed = args.clone();
    assert_eq!(resumed.last(), Some(&"2"), "--epochs comes last");
    *resumed.last_mut().unwrap() = "3";
    resumed.push("--resume");
    ok(&resumed);
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(teacher.join("last/progress.json")).unwrap())
            .unwrap();
    assert_eq!(progress["epochs_done"], 3);

    let preds = dir.path().join("preds");
    ok(&[
        "predict",
        "--model",
        p(&teacher),
        "--features",
        d("features/exo"),
        "--videos",
        d("splits/exo_test.bundle"),
        "--out",
        p(&preds),
        "--save-probs",
    ]);
    assert!(
        preds.join("rec0046.segments.json").exists() && preds.join("rec0046.probs.npy").exists()
    );
    // The WGSL executor gives the same labels as the CPU (lavapipe in CI;
    // skipped, saying so, without a wgpu adapter).
    if syncseg_shaders::testing::device().is_some() {
        let gpu_preds = dir.path().join("preds_gpu");
        ok(&[
            "predict",
            "--model",
            p(&teacher),
            "--features",
            d("features/exo"),
            "--videos",
            d("splits/exo_test.bundle"),
            "--out",
            p(&gpu_preds),
            "--device",
            "wgpu",
        ]);
        for name in syncseg_core::labels::read_bundle(d("splits/exo_test.bundle")).unwrap() {
            let read =
                |dir: &Path| std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap();
            assert_eq!(
                read(&preds),
                read(&gpu_preds),
                "{name}: CPU and wgpu labels"
            );
        }
    }
    ok(&[
        "eval",
        "--gt",
        d("groundTruth"),
        "--pred",
        p(&preds),
        "--videos",
        d("splits/exo_test.bundle"),
    ]);

    // Distillation must not need a single label file.
    std::fs::remove_dir_all(d("groundTruth")).unwrap();
    std::fs::remove_dir_all(d("groundTruth_adapt")).unwrap();
    std::fs::remove_file(d("mapping.txt")).unwrap();
    let student = dir.path().join("student");
    let out = ok(&[
        "distill",
        "--teacher",
        p(&teacher),
        "--teacher-features",
        d("features/exo"),
        "--student-features",
        d("features/ego"),
        "--videos",
        d("splits/adapt.bundle"),
        "--val-videos",
        d("splits/adapt_val.bundle"),
        "--out",
        p(&student),
        "--epochs",
        "1",
        "--levels",
        "1,2,3,4",
    ]);
    let _ = out;
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("model.json")).unwrap())
            .unwrap();
    assert_eq!(
        meta["provenance"]["levels"],
        serde_json::json!([1, 2, 3, 4])
    );

    // Bad input: a model given features of the wrong dimension.
    let other = dir.path().join("other");
    ok(&["synth", "--out", p(&other), "--dim", "16"]);
    let err = fails(&[
        "predict",
        "--model",
        p(&teacher),
        "--features",
        p(&other.join("features/exo")),
        "--videos",
        p(&other.join("splits/exo_test.bundle")),
        "--out",
        p(&dir.path().join("x")),
    ]);
    assert!(
        err.contains("24-dimensional") && err.contains("16"),
        "{err}"
    );
    // A label missing from the mapping names the file and the line.
    let labels = other.join("groundTruth");
    // rec0001 is the first training recording.
    std::fs::write(labels.join("rec0001.txt"), "background\nfly to the moon\n").unwrap();
    let err = fails(&[
        "train",
        "--features",
        p(&other.join("features/exo")),
        "--labels",
        p(&labels),
        "--mapping",
        p(&other.join("mapping.txt")),
        "--videos",
        p(&other.join("splits/exo_train.bundle")),
        "--out",
        p(&dir.path().join("y")),
        "--epochs",
        "1",
        "--width-scale",
        "0.125",
    ]);
    assert!(
        err.contains("line 2") && err.contains("fly to the moon"),
        "{err}"
    );
    // A corrupt checkpoint.
    let bad = dir.path().join("bad.pth");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    let err = fails(&[
        "import",
        "--pth",
        p(&bad),
        "--out",
        p(&dir.path().join("z")),
    ]);
    assert!(err.contains("bad.pth"), "{err}");
    assert!(!dir.path().join("z").exists(), "nothing half-written");
}

/// The paper's findings on benchmarks of other seeds than the one syncseg
/// was developed on (seed 0, D = 64), over three seeds (7, 8, 9; D = 48),
/// with the thresholds written before the three were run (2026-12-02):
/// on the mean over seeds, for Edit, F1@25 and MoF,
/// * TAS distillation beats no adaptation by ≥ 20 (it recovers the gap),
/// * the ego oracle beats no adaptation by ≥ 20 (the domain gap is real),
/// * TAS distillation beats random pairs by ≥ 15 (synchronization, not the
///   extra data, carries the adaptation);
///
/// and on every seed, TAS distillation beats no adaptation.
#[test]
#[ignore = "slow tier (three demo runs): bash scripts/test.sh runs it"]
fn demo_findings_hold_over_three_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = ["edit", "f1_25", "mof"];
    let (mut tas_gain, mut gap, mut sync_gain) = ([0f64; 3], [0f64; 3], [0f64; 3]);
    let seeds = ["7", "8", "9"];
    for seed in seeds {
        let out = dir.path().join(format!("demo{seed}"));
        let table = ok(&["demo", "--out", p(&out), "--seed", seed, "--dim", "48"]);
        assert!(table.contains("TAS distillation"), "{table}");
        assert!(out.join("timeline.svg").exists());
        eprintln!("seed {seed}:\n{table}");
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        let row = |name: &str| -> serde_json::Value {
            results["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["method"].as_str().unwrap().starts_with(name))
                .unwrap()["scores"]
                .clone()
        };
        let (none, tas, ego, rnd) = (
            row("no adaptation"),
            row("TAS"),
            row("ego-oracle"),
            row("Rnd"),
        );
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        for (i, k) in metrics.iter().enumerate() {
            assert!(
                f(&tas, k) > f(&none, k),
                "seed {seed}, {k}: TAS {} vs none {}",
                f(&tas, k),
                f(&none, k)
            );
            tas_gain[i] += (f(&tas, k) - f(&none, k)) / seeds.len() as f64;
            gap[i] += (f(&ego, k) - f(&none, k)) / seeds.len() as f64;
            sync_gain[i] += (f(&tas, k) - f(&rnd, k)) / seeds.len() as f64;
        }
    }
    for (i, k) in metrics.iter().enumerate() {
        eprintln!(
            "{k}, mean over seeds: TAS − none {:.2}, ego − none {:.2}, TAS − random pairs {:.2}",
            tas_gain[i], gap[i], sync_gain[i]
        );
        assert!(tas_gain[i] >= 20.0, "{k}: TAS − none {:.2}", tas_gain[i]);
        assert!(gap[i] >= 20.0, "{k}: the domain gap {:.2}", gap[i]);
        assert!(
            sync_gain[i] >= 15.0,
            "{k}: TAS − random pairs {:.2}",
            sync_gain[i]
        );
    }
}

/// Every baseline loss of the paper's Table 3 trains through the CLI; GRL
/// resumes with its domain classifier; bad combinations are clear errors.
#[test]
fn distill_baselines_and_studies() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "3");
    let d = |s: &str| -> &'static str {
        Box::leak(data.join(s).to_str().unwrap().to_string().into_boxed_str())
    };
    let teacher = dir.path().join("teacher");
    ok(&[
        "train",
        "--features",
        d("features/exo"),
        "--labels",
        d("groundTruth"),
        "--mapping",
        d("mapping.txt"),
        "--background",
        "background",
        "--videos",
        d("splits/exo_train.bundle"),
        "--out",
        p(&teacher),
        "--width-scale",
        "0.125",
        "--epochs",
        "1",
    ]);
    let distill = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "distill",
            "--teacher",
            p(&teacher),
            "--dataset",
            p(&data),
            "--teacher-view",
            "exo",
            "--student-view",
            "ego",
            "--videos",
            d("splits/adapt.bundle"),
            "--val-videos",
            d("splits/adapt_val.bundle"),
            "--out",
            p(out),
            "--epochs",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let task = [
        "--task-videos",
        d("splits/exo_train.bundle"),
        "--task-val-videos",
        d("splits/exo_val.bundle"),
    ];
    let runs: [(&str, Vec<&str>); 6] = [
        ("mmd", [&["--pairing", "random"][..], &task].concat()),
        ("coral", [&["--pairing", "random"][..], &task].concat()),
        ("grl", [&["--pairing", "random"][..], &task].concat()),
        ("tcc", vec!["--pairing", "same-procedure"]),
        ("sdtw", vec!["--pairing", "random", "--sdtw-gamma", "0.5"]),
        (
            "sync-mse",
            vec!["--pairs-fraction", "0.5", "--drop-rate", "0.02"],
        ),
    ];
    for (loss, extra) in &runs {
        let out = dir.path().join(loss);
        let mut e = vec!["--loss", loss];
        e.extend(extra.iter().copied());
        let mut args = distill(&out, &e);
        if extra.contains(&"same-procedure") {
            // The 4 held-out recordings perform 4 different procedures: no
            // same-procedure pair exists among them.
            let at = args.iter().position(|a| a == "--val-videos").unwrap();
            args.drain(at..at + 2);
        }
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap())
                .unwrap();
        assert_eq!(meta["provenance"]["loss"]["loss"], *loss, "{loss}");
        if *loss == "sync-mse" {
            assert_eq!(meta["provenance"]["pairs"], 8, "half of the 16 pairs");
        }
    }
    // GRL keeps its domain classifier in last/ and resumes with it.
    let grl = dir.path().join("grl");
    assert!(grl.join("last/objective.safetensors").exists());
    let mut e = vec!["--loss", "grl", "--pairing", "random", "--resume"];
    e.extend(task);
    let mut args = distill(&grl, &e);
    let epochs = args.iter().position(|a| a == "--epochs").unwrap();
    args[epochs + 1] = "2".into();
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(grl.join("last/progress.json")).unwrap())
            .unwrap();
    assert_eq!(progress["epochs_done"], 2);

    let x = dir.path().join("x");
    let fail = |extra: &[&str]| {
        let args = distill(&x, extra);
        fails(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let err = fail(&["--loss", "mmd"]);
    assert!(
        err.contains("--loss mmd") && err.contains("--task-videos"),
        "{err}"
    );
    let err = fail(&["--loss", "tcc", "--level", "both"]);
    assert!(err.contains("--level tas"), "{err}");
    let err = fail(&["--loss", "dtw"]);
    assert!(err.contains("unknown loss 'dtw'"), "{err}");
    let err = fail(&["--pairs-fraction", "0"]);
    assert!(err.contains("--pairs-fraction 0"), "{err}");
    let err = fail(&[
        "--loss",
        "tcc",
        "--task-videos",
        d("splits/exo_train.bundle"),
    ]);
    assert!(err.contains("only the UDA losses"), "{err}");
    let err = fail(&[
        "--pairing",
        "same-procedure",
        "--procedures",
        p(&dir.path().join("none.txt")),
    ]);
    assert!(err.contains("none.txt"), "{err}");
    assert!(!x.exists(), "nothing half-written");
}

/// `bench paper` on a reduced configuration (one seed, 16-D features, one
/// epoch a run): every table reported, cells cached and resumed, a changed
/// configuration refused.
#[test]
#[ignore = "slow tier (the paper study): bash scripts/test.sh runs it"]
fn bench_paper_reports_every_table_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("paper");
    let run = |extra: &[&str]| {
        let mut args = vec!["bench", "paper", "--seeds", "1", "--dim", "16"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", p(&out)]);
        ok(&args)
    };
    let first = run(&["--epochs", "1"]);
    assert!(first.contains("26 cell(s) computed, 0 cached"), "{first}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for heading in [
        "## Findings",
        "### Table 3",
        "### Table 4",
        "### Table 5",
        "### Table 6",
        "### Supplementary Table 1",
        "| TCC*",
        "| 50% of pairs",
        "| 3.0% dropped",
        "| EGO → EXO, distilled",
        "| heads 0–5",
    ] {
        assert!(report.contains(heading), "no '{heading}' in\n{report}");
    }
    assert!(!report.contains("not measured"), "{report}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let tables = results["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 5);
    for line in tables.iter().flat_map(|t| t["lines"].as_array().unwrap()) {
        assert_eq!(line["seeds"], serde_json::json!([0]), "{line}");
        let edit = line["metrics"]["Edit"]["mean"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&edit), "{line}");
    }
    // Table 4's pair counts follow the fractions of the 16 adaptation pairs.
    let t4 = &tables[1]["lines"];
    assert_eq!(t4[3]["pairs"].as_f64(), Some(8.0), "{t4}");
    for svg in ["pairs_fraction.svg", "drop_rate.svg"] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("<polyline"),
            "{svg}"
        );
    }

    // Everything cached; then one removed cell is all that is recomputed.
    assert!(run(&["--epochs", "1"]).contains("0 cell(s) computed, 26 cached"));
    std::fs::remove_file(out.join("cells/seed-0/mmd.json")).unwrap();
    assert!(run(&["--epochs", "1"]).contains("1 cell(s) computed, 25 cached"));

    let err = fails(&[
        "bench",
        "paper",
        "--seeds",
        "1",
        "--dim",
        "16",
        "--out",
        p(&out),
    ]);
    assert!(
        err.contains("--epochs 1") && err.contains("choose another --out"),
        "{err}"
    );
    let err = fails(&[
        "bench",
        "paper",
        "--seeds",
        "0",
        "--out",
        p(&dir.path().join("x")),
    ]);
    assert!(err.contains("--seeds"), "{err}");
    let occupied = dir.path().join("occupied");
    std::fs::create_dir_all(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let err = fails(&["bench", "paper", "--out", p(&occupied)]);
    assert!(err.contains("not a bench paper output"), "{err}");
}

/// Mean training loss per epoch from a run's `last/progress.json`.
fn train_losses(out: &Path) -> Vec<f64> {
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("last/progress.json")).unwrap())
            .unwrap();
    progress["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["train_loss"].as_f64().unwrap())
        .collect()
}

/// `--device wgpu` trains and distils with the WGSL training kernels
/// (lavapipe in CI): the model directory is the CPU path's, a run resumes
/// on the other device, the first epoch's loss follows the CPU's, and what
/// the kernels do not cover is refused before anything is written.
#[test]
fn train_and_distill_on_the_gpu() {
    if syncseg_shaders::testing::device().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "5");
    let d = |s: &str| -> &'static str {
        Box::leak(data.join(s).to_str().unwrap().to_string().into_boxed_str())
    };
    let train = |out: &Path, device: &str, epochs: &str, resume: bool| -> String {
        let mut args = vec![
            "train",
            "--features",
            d("features/exo"),
            "--videos",
            d("splits/exo_train.bundle"),
            "--val-videos",
            d("splits/exo_val.bundle"),
            "--labels",
            d("groundTruth"),
            "--mapping",
            d("mapping.txt"),
            "--background",
            "background",
            "--width-scale",
            "0.125",
            "--out",
            p(out),
            "--device",
            device,
            "--epochs",
            epochs,
        ];
        if resume {
            args.push("--resume");
        }
        let out = syncseg(&args);
        assert!(
            out.status.success(),
            "syncseg {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let (cpu, gpu) = (dir.path().join("cpu"), dir.path().join("gpu"));
    train(&cpu, "cpu", "1", false);
    let log = train(&gpu, "wgpu", "2", false);
    assert!(
        log.contains("training on ") && !log.contains("training on cpu"),
        "{log}"
    );
    for file in [
        "model.json",
        "model.safetensors",
        "last/model.safetensors",
        "last/optimizer.safetensors",
        "last/progress.json",
    ] {
        assert!(gpu.join(file).exists(), "{file} missing");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gpu.join("model.json")).unwrap()).unwrap();
    assert_ne!(meta["provenance"]["device"], "cpu");
    // Same model, same batches: the first epoch's mean loss agrees to the
    // rounding noise of Adam's trajectory (3e-4 measured).
    let (c, g) = (train_losses(&cpu)[0], train_losses(&gpu)[0]);
    assert!((c - g).abs() <= 2e-3 * c, "epoch 1 loss: cpu {c}, gpu {g}");
    // The GPU's optimiser state resumes on the CPU, and the CPU's on the GPU.
    train(&gpu, "cpu", "3", true);
    assert_eq!(train_losses(&gpu).len(), 3);
    train(&cpu, "wgpu", "2", true);
    assert_eq!(train_losses(&cpu).len(), 2);
    // --device auto does not train on a software adapter.
    let auto = dir.path().join("auto");
    let log = train(&auto, "auto", "1", false);
    assert!(log.contains("training on cpu"), "{log}");

    // The method on the device: no label is read.
    let student = dir.path().join("student");
    let distill = |out: &Path, extra: &[&str]| -> Output {
        let mut args = vec![
            "distill",
            "--teacher",
            p(&gpu),
            "--teacher-features",
            d("features/exo"),
            "--student-features",
            d("features/ego"),
            "--videos",
            d("splits/adapt.bundle"),
            "--val-videos",
            d("splits/adapt_val.bundle"),
            "--out",
            p(out),
            "--epochs",
            "1",
        ];
        args.extend(extra);
        syncseg(&args)
    };
    let run = distill(&student, &["--levels", "1,2,3,4", "--device", "wgpu"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let loss = train_losses(&student)[0];
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    let preds = dir.path().join("preds");
    ok(&[
        "predict",
        "--model",
        p(&student),
        "--features",
        d("features/ego"),
        "--videos",
        d("splits/ego_test.bundle"),
        "--out",
        p(&preds),
    ]);
    assert!(preds.join("rec0046.segments.json").exists());
    // Both levels: the adapter, then the network behind it, on the device;
    // the adapter stage's loss follows the CPU's (1e-6 measured).
    let both = dir.path().join("both");
    let both_cpu = dir.path().join("both_cpu");
    for (out, device) in [(&both, "wgpu"), (&both_cpu, "cpu")] {
        let run = distill(
            out,
            &[
                "--level",
                "both",
                "--adapter-epochs",
                "1",
                "--device",
                device,
            ],
        );
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let (c, g) = (
        train_losses(&both_cpu.join("feature_stage"))[0],
        train_losses(&both.join("feature_stage"))[0],
    );
    assert!((c - g).abs() <= 1e-4 * c, "adapter loss: cpu {c}, gpu {g}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(both.join("model.json")).unwrap()).unwrap();
    assert!(meta["adapter"].is_object(), "{meta}");
    ok(&[
        "predict",
        "--model",
        p(&both),
        "--features",
        d("features/ego"),
        "--videos",
        d("splits/ego_test.bundle"),
        "--out",
        p(&dir.path().join("preds_both")),
        "--device",
        "wgpu",
    ]);
    // The benchmark's step on the device reports a finite loss and memory.
    for extra in [
        &["--frames", "400"][..],
        &["--adapter", "small", "--frames", "64"],
    ] {
        let mut args = vec![
            "bench",
            "step",
            "--device",
            "wgpu",
            "--dim",
            "16",
            "--classes",
            "5",
        ];
        args.extend(["--warmup", "0", "--iters", "1", "--json"]);
        args.extend(extra);
        let report: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
        assert!(
            report["last_loss"].as_f64().unwrap().is_finite(),
            "{report}"
        );
        assert!(report["train_step_ms"].as_f64().unwrap() > 0.0, "{report}");
        let memory = &report[if extra[0] == "--adapter" {
            "device_memory_bytes"
        } else {
            "peak_bytes"
        }];
        assert!(memory.as_u64().unwrap() > 0, "{report}");
    }
    // The baselines have no device kernels: refused before anything runs.
    let tcc = dir.path().join("tcc");
    let run = distill(&tcc, &["--loss", "tcc", "--device", "wgpu"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("--device wgpu") && err.contains("--loss tcc"),
        "{err}"
    );
    assert!(!tcc.exists(), "nothing written");
}

/// Issue 20: `distill --batch-size 1` on a 601-frame pair (its 1-frame tail
/// window is a batch of its own) and on a 5-frame pair finished with "the
/// training loss became NaN": BatchNorm over one valid frame.
#[test]
fn distill_short_windows_with_batch_size_1() {
    use syncseg_core::features::Features;
    use syncseg_core::model::{C2fConfig, ModelMeta, SegModel};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let dim = 4;
    for view in ["exo", "ego"] {
        std::fs::create_dir_all(root.join(view)).unwrap();
        for (name, frames) in [("long", 601), ("short", 5)] {
            let s = if view == "exo" { 0.37 } else { 0.91 };
            let data = (0..dim * frames).map(|i| (i as f32 * s).sin()).collect();
            let f = Features::new(dim, frames, data).unwrap();
            syncseg_core::npy::write_features(root.join(view).join(format!("{name}.npy")), &f)
                .unwrap();
        }
    }
    let pairs = root.join("pairs.bundle");
    syncseg_core::labels::write_bundle(&pairs, &["long", "short"]).unwrap();
    let meta = ModelMeta::new(
        C2fConfig::scaled(dim, 3, 0.0625),
        vec!["background".into(), "a".into(), "b".into()],
        vec![],
        600,
    );
    let teacher = root.join("teacher");
    SegModel::new_seeded(meta, &candle_core::Device::Cpu, 2)
        .unwrap()
        .save(&teacher)
        .unwrap();
    let student = root.join("student");
    ok(&[
        "distill",
        "--teacher",
        p(&teacher),
        "--teacher-features",
        p(&root.join("exo")),
        "--student-features",
        p(&root.join("ego")),
        "--videos",
        p(&pairs),
        "--val-videos",
        p(&pairs),
        "--out",
        p(&student),
        "--epochs",
        "2",
        "--batch-size",
        "1",
    ]);
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("last/progress.json")).unwrap())
            .unwrap();
    for epoch in progress["history"].as_array().unwrap() {
        let loss = epoch["train_loss"].as_f64().unwrap();
        assert!(loss.is_finite(), "{epoch}");
    }
}

/// A causal MS-TCN++ trained with a look-ahead, then segmented offline and
/// as a frame-by-frame stream: the same labels and probabilities, byte for
/// byte, and a `.stream.json` of push times; what cannot stream is refused
/// in one line naming why.
#[test]
fn causal_model_streams_what_offline_prediction_gives() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "8");
    let d = |s: &str| data.join(s).to_str().unwrap().to_string();
    let model = dir.path().join("causal");
    let train = |out: &Path, extra: &[&str]| {
        let (f, l, m, v) = (
            d("features/exo"),
            d("groundTruth"),
            d("mapping.txt"),
            d("splits/exo_train.bundle"),
        );
        let mut args = vec![
            "train",
            "--features",
            &f,
            "--labels",
            &l,
            "--mapping",
            &m,
            "--videos",
            &v,
            "--epochs",
            "2",
            "--width-scale",
            "0.25",
            "--out",
            p(out),
        ];
        args.extend(extra);
        syncseg(&args)
    };
    let out = train(
        &model,
        &["--backbone", "ms-tcn", "--causal", "--lookahead", "4"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["ms_tcn"]["causal"]["lookahead"], 4);

    let (f, v) = (d("features/exo"), d("splits/exo_test.bundle"));
    let predict = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--model",
            p(&model),
            "--features",
            &f,
            "--videos",
            &v,
            "--out",
            p(out),
            "--save-probs",
        ];
        args.extend(extra);
        ok(&args);
    };
    let (offline, live) = (dir.path().join("offline"), dir.path().join("live"));
    predict(&offline, &[]);
    predict(&live, &["--stream", "--lookahead", "4"]);
    let videos = std::fs::read_to_string(&v).unwrap();
    // A bundle lists label files: `rec0046.txt`.
    for video in videos.lines().filter_map(|l| l.strip_suffix(".txt")) {
        for ext in ["txt", "probs.npy", "segments.json"] {
            let name = format!("{video}.{ext}");
            assert_eq!(
                std::fs::read(offline.join(&name)).unwrap(),
                std::fs::read(live.join(&name)).unwrap(),
                "{name}"
            );
        }
        let stats: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(live.join(format!("{video}.stream.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (stats["chunk"].as_u64(), stats["lookahead"].as_u64()),
            (Some(1), Some(4))
        );
        assert!(stats["max_push_s"].as_f64().unwrap() > 0.0);
    }

    let wrong = fails(&[
        "predict",
        "--model",
        p(&model),
        "--features",
        &f,
        "--videos",
        &v,
        "--out",
        p(&dir.path().join("x")),
        "--stream",
        "--lookahead",
        "8",
    ]);
    assert!(wrong.contains("look-ahead is 4, not 8"), "{wrong}");
    let c2f = fails(&[
        "train",
        "--features",
        &f,
        "--labels",
        &d("groundTruth"),
        "--mapping",
        &d("mapping.txt"),
        "--videos",
        &v,
        "--out",
        p(&dir.path().join("y")),
        "--causal",
    ]);
    assert!(c2f.contains("must be an MS-TCN++"), "{c2f}");
    assert!(
        !dir.path().join("y").exists(),
        "a refused run writes nothing"
    );
    let no_causal = fails(&[
        "train",
        "--features",
        &f,
        "--labels",
        &d("groundTruth"),
        "--mapping",
        &d("mapping.txt"),
        "--videos",
        &v,
        "--out",
        p(&dir.path().join("z")),
        "--lookahead",
        "3",
    ]);
    // clap's: "the following required arguments were not provided: --causal".
    assert!(no_causal.contains("required arguments"), "{no_causal}");
}
