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
    let iterations = env_or("SYNCSEG_FUZZ_ITERATIONS", "1500");
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
