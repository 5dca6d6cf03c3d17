//! End-to-end tests of `syncseg export` (and `predict --export` arguments).

use std::path::Path;
use std::process::{Command, Output};

fn syncseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncseg"))
        .args(args)
        .env("CI", "1")
        .output()
        .expect("the syncseg binary runs")
}

/// The one `error: ` line of a failed run (clap adds a usage hint below).
fn error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_string()
}

/// A small `<video>.segments.json` as `syncseg predict` writes it, at 25 fps.
fn segments_file(dir: &Path) -> String {
    let path = dir.join("clip.segments.json");
    std::fs::write(
        &path,
        r#"{"video": "clip", "frames": 1000, "segments": [
  {"label": 0, "name": "background", "start": 0, "end": 300, "confidence": 0.9},
  {"label": 1, "name": "attach wheel", "start": 300, "end": 775, "confidence": 0.91},
  {"label": 2, "name": "tighten", "start": 775, "end": 1000, "confidence": 0.8}
]}"#,
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn exports_an_edl_to_a_file_and_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segments_file(dir.path());
    let out = dir.path().join("sub/clip.edl");
    let args = [
        "export",
        "--segments",
        &seg,
        "--fps",
        "25",
        "--format",
        "edl",
        "--background",
        "background",
    ];
    let mut with_out = args.to_vec();
    with_out.extend(["--out", out.to_str().unwrap()]);
    let run = syncseg(&with_out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.stdout.is_empty());
    let edl = std::fs::read_to_string(&out).unwrap();
    // The reference's running example: 00:12–00:31 at 25 fps is 300–775.
    assert_eq!(
        edl,
        "TITLE: clip\nFCM: NON-DROP FRAME\n\n\
         001  001      V     C        01:00:12:00 01:00:12:01 01:00:12:00 01:00:12:01\n\
         \x20|C:ResolveColorCyan |M:attach wheel |D:475\n\n\
         002  001      V     C        01:00:31:00 01:00:31:01 01:00:31:00 01:00:31:01\n\
         \x20|C:ResolveColorGreen |M:tighten |D:225\n"
    );
    let run = syncseg(&args);
    assert!(run.status.success());
    assert_eq!(String::from_utf8(run.stdout).unwrap(), edl);
}

#[test]
fn bad_fps_is_one_line_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segments_file(dir.path());
    for bad in ["abc", "0", "-25", "30000/0"] {
        let out = syncseg(&[
            "export",
            "--segments",
            &seg,
            // `=` so that clap takes "-25" as the value, not as a flag.
            &format!("--fps={bad}"),
            "--format",
            "edl",
        ]);
        let line = error_line(&out);
        assert!(line.contains("--fps") && line.contains(bad), "{line}");
        assert!(line.contains("frame rate"), "{line}");
    }
}

#[test]
fn impossible_exports_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segments_file(dir.path());
    // Without the background there are two chapters: YouTube needs three.
    let out = syncseg(&[
        "export",
        "--segments",
        &seg,
        "--fps",
        "25",
        "--format",
        "youtube",
        "--background",
        "background",
    ]);
    let line = error_line(&out);
    assert!(
        line.contains("clip.segments.json") && line.contains("3 chapters"),
        "{line}"
    );
    let out = syncseg(&[
        "export",
        "--segments",
        &seg,
        "--fps",
        "25",
        "--format",
        "vtt",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("WEBVTT"));
}

#[test]
fn predict_export_requires_fps() {
    let out = syncseg(&[
        "predict",
        "--model",
        "m",
        "--features",
        "f",
        "--videos",
        "v",
        "--out",
        "o",
        "--export",
        "edl",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--fps"), "{err}");
}

#[test]
fn a_negative_frame_rate_gets_the_parsers_error() {
    let out = syncseg(&[
        "export",
        "--segments",
        "x.json",
        "--fps",
        "-25",
        "--format",
        "srt",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("'-25'") && err.contains("must be positive"),
        "{err}"
    );
}

#[test]
fn changes_to_fit_a_format_are_one_note_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segments_file(dir.path());
    let out = syncseg(&[
        "export",
        "--segments",
        &seg,
        "--fps",
        "25",
        "--format",
        "ffmetadata",
        "--background",
        "background",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let notes: Vec<_> = err.lines().collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(
        notes[0].starts_with("note: FFMETADATA: a chapter '(other)' covers frames 0..300"),
        "{err}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("START=0\nEND=300\ntitle=(other)\n"), "{text}");
}

#[test]
fn an_edl_past_23_hours_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.segments.json");
    // 23 h at 25 fps: the record timecode (from 01:00:00:00) would be 24:00.
    let start = 23u64 * 3600 * 25;
    std::fs::write(
        &path,
        format!(
            r#"{{"video": "long", "frames": {}, "segments": [
  {{"label": 0, "name": "late", "start": {start}, "end": {}, "confidence": 0.9}}]}}"#,
            start + 100,
            start + 100
        ),
    )
    .unwrap();
    let out = syncseg(&[
        "export",
        "--segments",
        path.to_str().unwrap(),
        "--fps",
        "25",
        "--format",
        "edl",
    ]);
    let line = error_line(&out);
    assert!(
        line.contains("EDL timecode cannot express") && line.contains("'late'"),
        "{line}"
    );
}

#[test]
fn drop_frame_help_names_every_format_it_affects() {
    let out = syncseg(&["export", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    let at = help.find("--drop-frame").unwrap();
    let text = &help[at..(at + 300).min(help.len())];
    assert!(text.contains("EDL") && text.contains("FCPXML"), "{text}");
}
