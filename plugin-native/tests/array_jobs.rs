//! Batch jobs split over array tasks: the Slurm and Kubernetes templates in
//! `examples/`, run here by emulating each engine's environment over local
//! processes, give the same bytes as one process over the whole list; reruns
//! keep finished videos; `syncseg shards status` reports what is missing.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use support::{clip, tiny_model, tiny_vit, SMALL};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_syncseg")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `syncseg args` with `env`, one CPU thread unless `env` says otherwise.
fn syncseg(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).env("CI", "1").env("RAYON_NUM_THREADS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the syncseg binary runs")
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wait_all(children: Vec<(String, Child)>) {
    for (what, child) in children {
        check(child.wait_with_output().unwrap(), &what);
    }
}

/// Every file under `dir` but the shard manifests, by relative path.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name == "shards" {
            continue;
        }
        assert!(path.is_file(), "unexpected {}", path.display());
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {name}");
        files.insert(name, std::fs::read(&path).unwrap());
    }
    files
}

/// Manifest records of `dir/shards/<file>`, after the header.
fn records(dir: &Path, file: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("shards").join(file)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("video").is_some())
        .collect()
}

/// The videos each shard's manifest header assigns it: disjoint and
/// covering `expected` videos.
fn assert_disjoint_cover(dir: &Path, command: &str, shards: usize, expected: usize) {
    let mut all = Vec::new();
    for i in 0..shards {
        let file = dir
            .join("shards")
            .join(format!("{command}.{i}-of-{shards}.jsonl"));
        let text = std::fs::read_to_string(&file).unwrap();
        let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        for v in header["videos"].as_array().unwrap() {
            all.push(v.as_str().unwrap().to_string());
        }
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (n, all.len()),
        (expected, expected),
        "shards overlap or miss videos"
    );
}

/// Five clips of 1–5 s listed in `videos.txt` (one with its frame count),
/// the tiny ViT, and the features of all of them by one process.
struct Collection {
    dir: tempfile::TempDir,
    list: PathBuf,
    weights: PathBuf,
    reference: BTreeMap<String, Vec<u8>>,
}

fn collection(threads: &str) -> Collection {
    clips(threads, &[3, 1, 5, 2, 4])
}

/// Clips of `seconds` (one with its frame count), listed and extracted by
/// one process.
fn clips(threads: &str, seconds: &[usize]) -> Collection {
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let mut list = String::from("# recordings\n");
    for (i, &secs) in seconds.iter().enumerate() {
        clip(&videos, &format!("rec{i}"), secs);
        if i == 2 {
            list.push_str(&format!("videos/rec{i}.mp4\t{}\n", secs * 10));
        } else {
            list.push_str(&format!("videos/rec{i}.mp4\n"));
        }
    }
    let list_path = dir.path().join("videos.txt");
    std::fs::write(&list_path, list).unwrap();
    let weights = tiny_vit(dir.path());
    let single = dir.path().join("single");
    let mut args = vec![
        "features",
        "--videos",
        p(&list_path),
        "--weights",
        p(&weights),
        "--out",
        p(&single),
    ];
    args.extend(SMALL);
    check(
        syncseg(&args, &[("RAYON_NUM_THREADS", threads)]),
        "one process",
    );
    let reference = outputs(&single);
    assert_eq!(reference.len(), seconds.len(), "{:?}", reference.keys());
    Collection {
        list: list_path,
        weights,
        reference,
        dir,
    }
}

/// Starts task `id` of a Slurm array of `count` running the sbatch script.
fn slurm_task(c: &Collection, out: &Path, id: usize, count: usize) -> (String, Child) {
    let script = repo().join("examples/slurm/features.sbatch");
    let child = Command::new("bash")
        .arg(&script)
        .args([p(&c.list), p(&c.weights), p(out)])
        .args(SMALL)
        .env("SYNCSEG", bin())
        .env("CI", "1")
        .env("SLURM_ARRAY_JOB_ID", "4242")
        .env("SLURM_ARRAY_TASK_ID", id.to_string())
        .env("SLURM_ARRAY_TASK_MIN", "0")
        .env("SLURM_ARRAY_TASK_MAX", (count - 1).to_string())
        .env("SLURM_ARRAY_TASK_COUNT", count.to_string())
        .env("SLURM_CPUS_PER_TASK", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    (format!("slurm task {id}"), child)
}

fn status(out: &Path) -> Output {
    syncseg(&["shards", "status", p(out)], &[])
}

#[test]
fn slurm_array_emulation_equals_one_process_and_resumes() {
    let c = collection("1");
    let out = c.dir.path().join("array");
    // Tasks 0 and 2 of 3 run (at once); 1 has not started yet.
    wait_all(vec![slurm_task(&c, &out, 0, 3), slurm_task(&c, &out, 2, 3)]);
    let s = status(&out);
    assert!(
        !s.status.success(),
        "status must fail while a shard is missing"
    );
    let text = String::from_utf8_lossy(&s.stdout);
    assert!(text.contains("not started: shard 1"), "{text}");

    wait_all(vec![slurm_task(&c, &out, 1, 3)]);
    let text = check(status(&out), "shards status");
    assert!(text.contains("features: 5 of 5 videos done"), "{text}");
    assert_eq!(
        outputs(&out),
        c.reference,
        "the shards' union differs from one process"
    );
    // Shards are disjoint: every video was computed once.
    let computed: usize = (0..3)
        .map(|i| records(&out, &format!("features.{i}-of-3.jsonl")).len())
        .sum();
    assert_eq!(computed, 5);

    // A rerun keeps everything; a preempted video (its output gone) is the
    // only one redone.
    wait_all(vec![slurm_task(&c, &out, 0, 3)]);
    assert!(records(&out, "features.0-of-3.jsonl")
        .iter()
        .all(|r| r["reused"] == true));
    let victim = records(&out, "features.2-of-3.jsonl")[0]["video"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(out.join(format!("{victim}.npy"))).unwrap();
    wait_all(vec![slurm_task(&c, &out, 2, 3)]);
    let redone: Vec<String> = records(&out, "features.2-of-3.jsonl")
        .iter()
        .filter(|r| r["reused"] == false)
        .map(|r| r["video"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(redone, [victim]);
    assert_eq!(outputs(&out), c.reference);
}

#[test]
fn a_killed_task_loses_at_most_the_video_in_flight() {
    let c = clips("1", &[5; 10]);
    let out = c.dir.path().join("killed");
    let manifest = out.join("shards/features.0-of-1.jsonl");
    let mut args = vec![
        "features".to_string(),
        "--videos".into(),
        p(&c.list).into(),
        "--weights".into(),
        p(&c.weights).into(),
        "--out".into(),
        p(&out).into(),
    ];
    args.extend(SMALL.iter().map(|s| s.to_string()));
    let mut child = Command::new(bin())
        .args(&args)
        .env("CI", "1")
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once three videos are recorded: mid-way through the fourth.
    let started = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(&manifest).map_or(0, |t| t.lines().count());
        if lines >= 4 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the task ended before it was killed"
        );
        assert!(started.elapsed().as_secs() < 120, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Whole outputs only (a write in flight may have left a temporary file).
    let finished = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(".npy")
        })
        .count();
    assert!((3..10).contains(&finished), "{finished} videos written");

    // The rerun computes only what was not finished, and the result is
    // that of an uninterrupted run, with no temporary file left.
    let out2 = syncseg(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    check(out2, "the rerun");
    let redone = records(&out, "features.0-of-1.jsonl")
        .iter()
        .filter(|r| r["reused"] == false)
        .count();
    assert_eq!(redone, 10 - finished);
    assert_eq!(outputs(&out), c.reference);
}

/// The Indexed Job's YAML as JSON (read by PyYAML: the test reads the
/// template as Kubernetes would, not with a parser of its own).
fn job_spec() -> serde_json::Value {
    let yaml = repo().join("examples/k8s/features-job.yaml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&yaml)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyYAML could not read {}: {}",
        yaml.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `$(VAR)` references expanded from the container's environment, as the
/// kubelet does for `command` and `args`.
fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut s = arg.to_string();
    for (k, v) in env {
        s = s.replace(&format!("$({k})"), v);
    }
    s
}

#[test]
fn kubernetes_indexed_job_emulation_equals_one_process() {
    let spec = job_spec();
    let job = &spec["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    let completions = job["completions"].as_u64().unwrap() as usize;
    let parallelism = job["parallelism"].as_u64().unwrap() as usize;
    let container = &job["template"]["spec"]["containers"][0];
    let mut env: BTreeMap<String, String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let threads = env.get("RAYON_NUM_THREADS").cloned().unwrap_or("1".into());
    let c = collection(&threads);
    let out = c.dir.path().join("indexed");
    // The volumes, mounted here.
    env.insert("VIDEO_LIST".into(), p(&c.list).into());
    env.insert("VIT_WEIGHTS".into(), p(&c.weights).into());
    env.insert("FEATURES_OUT".into(), p(&out).into());
    let command: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| expand(a.as_str().unwrap(), &env))
        .collect();
    assert_eq!(command, ["syncseg"]);
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| expand(a.as_str().unwrap(), &env))
        .collect();
    let n = args.iter().position(|a| a == "--num-shards").unwrap();
    assert_eq!(
        args[n + 1],
        completions.to_string(),
        "--num-shards must equal the Job's completions"
    );

    // The pods, `parallelism` at a time, each with its completion index.
    for wave in (0..completions).collect::<Vec<_>>().chunks(parallelism) {
        let pods = wave
            .iter()
            .map(|&i| {
                let child = Command::new(bin())
                    .args(&args)
                    .args(SMALL)
                    .envs(&env)
                    .env("CI", "1")
                    .env("JOB_COMPLETION_INDEX", i.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (format!("pod {i}"), child)
            })
            .collect();
        wait_all(pods);
    }
    let text = check(status(&out), "shards status");
    assert!(text.contains(&format!("{completions} started")), "{text}");
    assert_disjoint_cover(&out, "features", completions, 5);
    assert_eq!(
        outputs(&out),
        c.reference,
        "the pods' union differs from one process"
    );
}

/// Random `[dim, frames]` features as `.npy`.
fn write_features(path: &Path, dim: usize, frames: usize, seed: u32) {
    let mut s = seed;
    let data: Vec<f32> = (0..dim * frames)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect();
    syncseg_core::npy::write_npy(path, &[dim, frames], &data).unwrap();
}

#[test]
fn predict_shards_cover_the_bundle_and_report_failures() {
    let dir = tempfile::tempdir().unwrap();
    let dim = 16;
    let model = tiny_model(dir.path(), dim);
    let feats = dir.path().join("features");
    std::fs::create_dir_all(&feats).unwrap();
    let names: Vec<String> = (0..7).map(|i| format!("v{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        write_features(
            &feats.join(format!("{n}.npy")),
            dim,
            100 + 150 * i,
            i as u32,
        );
    }
    let bundle = dir.path().join("all.bundle");
    std::fs::write(&bundle, names.join("\n")).unwrap();
    let run = |out: &Path, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "predict",
            "--model",
            p(&model),
            "--features",
            p(&feats),
            "--videos",
            p(&bundle),
            "--out",
            p(out),
            "--export",
            "vtt",
            "--fps",
            "25",
        ];
        args.extend(extra);
        syncseg(&args, env)
    };
    let single = dir.path().join("single");
    check(run(&single, &[], &[]), "predict");
    let reference = outputs(&single);
    assert_eq!(reference.len(), 21);

    // Three shards by flags, and the same split from Slurm's variables.
    let sharded = dir.path().join("sharded");
    for i in 0..3 {
        let idx = i.to_string();
        check(
            run(&sharded, &["--shard-index", &idx, "--num-shards", "3"], &[]),
            "a shard",
        );
    }
    assert_eq!(outputs(&sharded), reference);
    let from_env = dir.path().join("from-env");
    for i in 0..3 {
        let id = i.to_string();
        let task = run(
            &from_env,
            &[],
            &[
                ("SLURM_ARRAY_TASK_ID", &id),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        );
        check(task, "a Slurm task");
    }
    assert_eq!(outputs(&from_env), reference);
    let videos = |dir: &Path, i: usize| -> Vec<serde_json::Value> {
        records(dir, &format!("predict.{i}-of-3.jsonl"))
            .into_iter()
            .map(|r| r["video"].clone())
            .collect()
    };
    for i in 0..3 {
        assert_eq!(videos(&sharded, i), videos(&from_env, i), "shard {i}");
    }

    // A broken feature file: its shard fails naming it, the other videos of
    // the shard are written, and status lists it.
    let broken = dir.path().join("broken");
    std::fs::write(feats.join("v3.npy"), b"not an npy file").unwrap();
    let mut failed = 0;
    for i in 0..2 {
        let idx = i.to_string();
        let out = run(&broken, &["--shard-index", &idx, "--num-shards", "2"], &[]);
        if !out.status.success() {
            failed += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("v3.npy"), "{err}");
            assert!(err.contains("1 of "), "{err}");
        }
    }
    assert_eq!(failed, 1);
    assert_eq!(outputs(&broken).len(), 18);
    let s = status(&broken);
    assert!(!s.status.success());
    let text = String::from_utf8_lossy(&s.stdout);
    assert!(
        text.contains("1 failed") && text.contains("v3 (shard"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&s.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_shard_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("videos.txt");
    std::fs::write(&list, "a.mp4\n").unwrap();
    let fails = |args: &[&str], env: &[(&str, &str)]| {
        let out = syncseg(args, env);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "a one-line error expected: {err}");
        lines[0].to_string()
    };
    let base = [
        "features",
        "--videos",
        p(&list),
        "--weights",
        "missing.safetensors",
        "--out",
        p(dir.path()),
    ];
    let with = |extra: &[&'static str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend(extra);
        a
    };
    let err = fails(&with(&["--shard-index", "3", "--num-shards", "3"]), &[]);
    assert!(
        err.contains("--shard-index 3") && err.contains("--num-shards"),
        "{err}"
    );
    let err = fails(&with(&["--shard-index", "1"]), &[]);
    assert!(err.contains("--num-shards"), "{err}");
    let err = fails(&with(&[]), &[("JOB_COMPLETION_INDEX", "2")]);
    assert!(
        err.contains("JOB_COMPLETION_INDEX") && err.contains("--num-shards"),
        "{err}"
    );
    let err = fails(
        &with(&[]),
        &[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    assert!(err.contains("SLURM_ARRAY_TASK_ID 5"), "{err}");
    let err = fails(&["shards", "status", p(dir.path())], &[]);
    assert!(err.contains("no shard manifests"), "{err}");
    // Two videos with one name.
    std::fs::write(&list, "a/x.mp4\nb/x.mkv\n").unwrap();
    let err = fails(&base, &[]);
    assert!(
        err.contains("videos.txt") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn segment_over_a_list_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let weights = tiny_vit(dir.path());
    let model = tiny_model(dir.path(), support::DIM);
    clip(dir.path(), "a", 2);
    clip(dir.path(), "b", 3);
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "a.mp4\nb.mp4\n").unwrap();
    let out = dir.path().join("seg");
    let mut args = vec![
        "segment",
        "--videos",
        p(&list),
        "--model",
        p(&model),
        "--weights",
        p(&weights),
        "--out",
        p(&out),
        "--export",
        "srt",
    ];
    args.extend(SMALL);
    let text = check(syncseg(&args, &[]), "segment");
    assert!(text.contains("segmented 2 videos"), "{text}");
    let first = outputs(&out);
    assert_eq!(first.len(), 8, "{:?}", first.keys());
    let text = check(syncseg(&args, &[]), "segment again");
    assert!(
        text.contains("segmented 0 videos") && text.contains("2 already there"),
        "{text}"
    );
    args.push("--overwrite");
    let text = check(syncseg(&args, &[]), "segment --overwrite");
    assert!(text.contains("segmented 2 videos"), "{text}");
    assert_eq!(outputs(&out), first);
}
