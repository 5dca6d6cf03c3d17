//! `train --resume` after the process died anywhere — kill -9 at random
//! times, and an abort at each step of a checkpoint commit
//! (`SYNCSEG_FAILPOINT`) — ends with the weights of the uninterrupted run,
//! byte for byte; a second writer into the same `--out` is refused; a
//! checkpoint that cannot be resumed is named in a one-line error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use syncseg_core::train::run_dir::FAILPOINTS;

const EPOCHS: &str = "6";
const EPOCHS_N: u64 = 6;

fn syncseg() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_syncseg"));
    cmd.env("CI", "1").env_remove("SYNCSEG_FAILPOINT");
    cmd
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one `error: ` line of a failed run.
fn error_line(out: &Output) -> String {
    assert!(!out.status.success(), "should have failed");
    let err = stderr(out);
    err.lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {err}"))
        .to_string()
}

/// Synthetic data in `dir/name`, and a bundle of four of its exo training
/// videos (`small.bundle`), for runs of about a second.
fn synth(dir: &Path, name: &str, dim: &str) -> PathBuf {
    let data = dir.join(name);
    run_ok({
        let mut c = syncseg();
        c.args(["synth", "--out", p(&data), "--seed", "5", "--dim", dim]);
        c
    });
    let videos = std::fs::read_to_string(data.join("splits/exo_train.bundle")).unwrap();
    let four: Vec<&str> = videos.lines().take(4).collect();
    std::fs::write(data.join("small.bundle"), four.join("\n") + "\n").unwrap();
    data
}

/// `syncseg train` on four synthetic videos, quickly (a narrow model, two
/// steps an epoch, no validation: every epoch is the best and rewrites
/// OUT/model.*).
fn train(data: &Path, out: &Path, epochs: &str, resume: bool) -> Command {
    let mut cmd = syncseg();
    cmd.arg("train");
    for (flag, value) in [
        ("--features", data.join("features/exo")),
        ("--videos", data.join("small.bundle")),
        ("--labels", data.join("groundTruth")),
        ("--mapping", data.join("mapping.txt")),
        ("--out", out.to_path_buf()),
    ] {
        cmd.arg(flag).arg(value);
    }
    cmd.args(["--width-scale", "0.125", "--batch-size", "2"]);
    cmd.args(["--epochs", epochs, "--seed", "3"]);
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed:\n{}", stderr(&out));
    out
}

/// Resumes `out` (or starts it, when nothing was committed) to the end.
fn finish(data: &Path, out: &Path) {
    let resume = out.join("last").is_dir();
    run_ok(train(data, out, EPOCHS, resume));
}

/// The files that must equal the uninterrupted run's.
fn assert_same_as(reference: &Path, out: &Path, case: &str) {
    for file in [
        "model.safetensors",
        "model.json",
        "last/model.safetensors",
        "last/model.json",
        "last/optimizer.safetensors",
    ] {
        let read = |dir: &Path| std::fs::read(dir.join(file)).unwrap();
        assert!(read(reference) == read(out), "{case}: {file} differs");
    }
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("last/progress.json")).unwrap())
            .unwrap();
    assert_eq!(progress["epochs_done"], EPOCHS_N, "{case}");
    assert_eq!(
        progress["history"].as_array().unwrap().len() as u64,
        EPOCHS_N,
        "{case}"
    );
    // Nothing of an interrupted write is left.
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".syncseg.lock", "last", "model.json", "model.safetensors"],
        "{case}"
    );
}

/// A seeded xorshift: the kill times are the same on every run of the test.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
#[ignore = "slow tier (a kill campaign): bash scripts/test.sh runs it"]
fn interrupted_runs_resume_to_the_uninterrupted_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "data", "24");

    // (1) The uninterrupted run.
    let reference = dir.path().join("reference");
    let started = Instant::now();
    run_ok(train(&data, &reference, EPOCHS, false));
    let full = started.elapsed().as_millis() as u64;

    // (2) kill -9 at seeded random times, resumed each time, then finished.
    let killed = dir.path().join("killed");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let epochs_done = |out: &Path| -> u64 {
        std::fs::read_to_string(out.join("last/progress.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["epochs_done"].as_u64())
            .unwrap_or(0)
    };
    let mut kills = 0;
    for _ in 0..4 {
        let done = epochs_done(&killed);
        if done == EPOCHS_N {
            break;
        }
        let mut child = train(&data, &killed, EPOCHS, done > 0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // At a random point of a random epoch of what is left: once
        // `target` epochs are committed, within about an epoch's time.
        let target = done + rng.below(EPOCHS_N - done);
        let delay = rng.below(full / EPOCHS_N + 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        while epochs_done(&killed) < target && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay));
        // SIGKILL; a run that already finished is left as it is.
        let _ = child.kill();
        let status = child.wait().unwrap();
        kills += usize::from(!status.success());
        eprintln!(
            "killed {delay} ms after epoch {target} ({status}): {done} → {} epochs done",
            epochs_done(&killed)
        );
    }
    assert!(kills > 0, "no run was killed before it finished");
    finish(&data, &killed);
    assert_same_as(&reference, &killed, "kill -9");

    // (3) An abort at each step of the second epoch's commit.
    for point in FAILPOINTS {
        let out = dir
            .path()
            .join(format!("abort-{}", point.replace(':', "-")));
        let mut cmd = train(&data, &out, EPOCHS, false);
        cmd.env("SYNCSEG_FAILPOINT", format!("{point}@2"));
        let died = cmd.output().unwrap();
        assert!(
            !died.status.success() && stderr(&died).contains(&format!("aborting at {point}")),
            "{point}: did not abort:\n{}",
            stderr(&died)
        );
        finish(&data, &out);
        assert_same_as(&reference, &out, point);
    }
}

#[test]
fn a_second_writer_into_the_same_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "data", "24");
    let out = dir.path().join("out");
    let mut first = train(&data, &out, "1000", false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first run writes its pid into the lock once it holds it.
    let lock = out.join(".syncseg.lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the first run never locked {lock:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for resume in [false, true] {
        let second = train(&data, &out, "2", resume).output().unwrap();
        let err = error_line(&second);
        assert!(
            err.contains(p(&out))
                && err.contains(&format!("process {}", first.id()))
                && err.contains("choose another --out"),
            "{err}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Killed, the first run holds nothing: the folder is usable again.
    run_ok(train(&data, &out, "1", false));
}

/// What `--resume` says about a checkpoint it cannot use: the file, what is
/// wrong, what to do, in one line, before any step.
#[test]
fn unusable_checkpoints_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "data", "24");
    let other = synth(dir.path(), "data16", "16");
    let out = dir.path().join("out");
    run_ok(train(&data, &out, "2", false));
    let last = out.join("last");
    let pristine = dir.path().join("pristine");
    std::fs::create_dir(&pristine).unwrap();
    for f in ["progress.json", "optimizer.safetensors"] {
        std::fs::copy(last.join(f), pristine.join(f)).unwrap();
    }
    let restore = || {
        for f in ["progress.json", "optimizer.safetensors"] {
            std::fs::copy(pristine.join(f), last.join(f)).unwrap();
        }
    };
    let resume = |data: &Path, epochs: &str| -> String {
        let run = train(data, &out, epochs, true).output().unwrap();
        assert!(
            !stderr(&run).contains("epoch 1/") && !stderr(&run).contains("epoch 3/"),
            "trained before refusing:\n{}",
            stderr(&run)
        );
        error_line(&run)
    };
    let named = |err: &str, file: &str| {
        let path: PathBuf = last.join(file);
        assert!(err.contains(p(&path)), "{err} does not name {file}");
    };

    // Features of another dimension.
    let err = resume(&other, "3");
    named(&err, "model.json");
    assert!(
        err.contains("24-dimensional") && err.contains("has 16"),
        "{err}"
    );

    // progress.json that is not UTF-8 is not "no interrupted run".
    std::fs::write(last.join("progress.json"), b"{\"epochs_done\": \xff}").unwrap();
    let err = resume(&data, "3");
    named(&err, "progress.json");
    assert!(
        err.contains("not UTF-8") && !err.contains("no interrupted run"),
        "{err}"
    );
    restore();

    // More epochs done than --epochs asks for.
    let err = resume(&data, "1");
    named(&err, "progress.json");
    assert!(
        err.contains("2 epochs are done, more than --epochs 1"),
        "{err}"
    );

    // A readable safetensors file that is not this run's optimizer state.
    std::fs::copy(
        last.join("model.safetensors"),
        last.join("optimizer.safetensors"),
    )
    .unwrap();
    let err = resume(&data, "3");
    named(&err, "optimizer.safetensors");
    assert!(err.contains("lacks"), "{err}");
    // A truncated one.
    std::fs::write(last.join("optimizer.safetensors"), b"\x05\0").unwrap();
    let err = resume(&data, "3");
    named(&err, "optimizer.safetensors");
    restore();

    // No --out, or no last/ in it: nothing to resume.
    let empty = dir.path().join("empty");
    let err = error_line(&train(&data, &empty, "3", true).output().unwrap());
    assert!(
        err.contains("does not exist, so there is no interrupted run"),
        "{err}"
    );
    assert!(!empty.exists(), "--resume created {empty:?}");
    std::fs::create_dir(&empty).unwrap();
    let err = error_line(&train(&data, &empty, "3", true).output().unwrap());
    assert!(
        err.contains("no interrupted run to resume (no last/ folder)"),
        "{err}"
    );
}

/// `distill` resumes exactly too: GRL (whose domain classifier is kept in
/// `last/objective.safetensors`) and `--level both` (two stages, two
/// folders), each aborted inside a commit.
#[test]
fn distill_resumes_exactly_after_an_abort_inside_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), "data", "24");
    let videos = std::fs::read_to_string(data.join("splits/adapt.bundle")).unwrap();
    let four: Vec<&str> = videos.lines().take(4).collect();
    std::fs::write(data.join("adapt4.bundle"), four.join("\n") + "\n").unwrap();
    let teacher = dir.path().join("teacher");
    run_ok(train(&data, &teacher, "1", false));
    let distill = |out: &Path, extra: &[&str], resume: bool| -> Command {
        let mut cmd = syncseg();
        cmd.arg("distill")
            .arg("--teacher")
            .arg(&teacher)
            .arg("--dataset")
            .arg(&data)
            .arg("--videos")
            .arg(data.join("adapt4.bundle"))
            .arg("--out")
            .arg(out);
        cmd.args(["--teacher-view", "exo", "--student-view", "ego"]);
        cmd.args(["--batch-size", "2", "--seed", "3"]).args(extra);
        if resume {
            cmd.arg("--resume");
        }
        cmd
    };
    let task = data.join("small.bundle");
    let grl = [
        "--loss",
        "grl",
        "--pairing",
        "random",
        "--task-videos",
        p(&task),
        "--epochs",
        "3",
    ];
    let both = ["--level", "both", "--epochs", "2", "--adapter-epochs", "2"];
    let stage = [
        "adapter.safetensors",
        "feature_stage/last/optimizer.safetensors",
    ];
    let cases: [(&str, &[&str], &str, &[&str]); 4] = [
        (
            "grl",
            &grl,
            "last:partial@2",
            &["last/objective.safetensors"],
        ),
        (
            "grl",
            &grl,
            "last:retired@2",
            &["last/objective.safetensors"],
        ),
        // Stage 1's second commit, and stage 2's first (its third in all).
        ("both", &both, "last:retired@1", &stage),
        ("both", &both, "last:marked@3", &stage),
    ];
    let mut references = std::collections::HashMap::new();
    for (name, args, failpoint, files) in cases {
        let reference = references.entry(name).or_insert_with(|| {
            let out = dir.path().join(format!("{name}-reference"));
            run_ok(distill(&out, args, false));
            out
        });
        let out = dir
            .path()
            .join(format!("{name}-{}", failpoint.replace([':', '@'], "-")));
        let died = distill(&out, args, false)
            .env("SYNCSEG_FAILPOINT", failpoint)
            .output()
            .unwrap();
        assert!(
            !died.status.success() && stderr(&died).contains("SYNCSEG_FAILPOINT: aborting"),
            "{name} {failpoint}: did not abort:\n{}",
            stderr(&died)
        );
        run_ok(distill(&out, args, true));
        for file in [
            "model.safetensors",
            "model.json",
            "last/model.safetensors",
            "last/optimizer.safetensors",
        ]
        .iter()
        .chain(files)
        {
            let read = |dir: &Path| std::fs::read(dir.join(file)).unwrap();
            assert!(
                read(reference) == read(&out),
                "{name} {failpoint}: {file} differs"
            );
        }
    }
}
