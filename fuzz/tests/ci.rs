//! The bounded fuzz run of `.ci/run`: every target for a fixed number of
//! mutants (capped in time), each in its own process so that an abort
//! (an allocation over the cap, a hang) fails that target and names the
//! mutant to rebuild, while the others still run.
//!
//! `SYNCSEG_FUZZ_ITERATIONS` / `SYNCSEG_FUZZ_SECONDS` change the budget.

use std::process::Command;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[test]
fn every_target_survives_a_bounded_campaign() {
    let exe = env!("CARGO_BIN_EXE_syncseg-fuzz");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listing = Command::new(exe)
        .arg("list")
        .output()
        .expect("syncseg-fuzz runs");
    let names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(names.len() >= 9, "targets: {names:?}");
    let findings = tempfile::tempdir().unwrap();
    let iterations = env_or("SYNCSEG_FUZZ_ITERATIONS", "4000");
    let seconds = env_or("SYNCSEG_FUZZ_SECONDS", "8");
    let mut failed = Vec::new();
    for name in &names {
        let out = Command::new(exe)
            .args(["run", "--target", name, "--iterations", &iterations])
            .args(["--seconds", &seconds, "--seed", "20261202"])
            .arg("--corpus")
            .arg(root.join("corpus"))
            .arg("--findings")
            .arg(findings.path())
            .output()
            .expect("syncseg-fuzz runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The table row (executions, time, findings) for the log.
        eprint!(
            "{}",
            stdout.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n"
        );
        if !out.status.success() {
            let why: Vec<&str> = stdout
                .lines()
                .chain(stderr.lines())
                .filter(|l| {
                    l.contains("PANIC")
                        || l.contains("ALLOCATION")
                        || l.contains("HANG")
                        || l.starts_with("error")
                })
                .collect();
            failed.push(format!("{name} ({}): {}", out.status, why.join(" | ")));
        }
    }
    assert!(failed.is_empty(), "fuzz findings:\n{}", failed.join("\n"));
}

/// The harness reports what it exists to find: a panic (saved, exit 1) and
/// an allocation over the cap (named, process aborted).
#[test]
fn the_harness_reports_panics_and_oversized_allocations() {
    let exe = env!("CARGO_BIN_EXE_syncseg-fuzz");
    let findings = tempfile::tempdir().unwrap();
    let run = |target: &str| {
        Command::new(exe)
            .args(["run", "--target", target, "--iterations", "3"])
            .arg("--findings")
            .arg(findings.path())
            .env("SYNCSEG_FUZZ_SELFTEST", "1")
            .output()
            .expect("syncseg-fuzz runs")
    };
    let out = run("selftest-panic");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("PANIC (corpus") && stdout.contains("selftest: 1 bytes"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_dir(findings.path()).unwrap().count(), 1);
    let out = run("selftest-alloc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("ALLOCATION of 1099511627777 bytes over the cap: target selftest-alloc"),
        "{stderr}"
    );
}
