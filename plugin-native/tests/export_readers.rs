//! Every export format written by `syncseg export` for hostile labels at five
//! rates, read back by the independent readers editors and players use:
//! OpenTimelineIO (otio_json, otio-cmx3600-adapter, otio-fcpx-xml-adapter),
//! webvtt-py, srt, Python's csv and json, ffprobe/ffmpeg (FFMETADATA, its
//! MP4 chapters, SRT markup) and xmllint. Each segment's start, end and label
//! must survive, or the documented substitution.
//!
//! The readers are installed by `scripts/test.sh`. Where one is missing the
//! test fails saying so; `SYNCSEG_SKIP_READERS=1` skips it instead, except
//! under `CI=true`, where it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const RATES: [(u64, u64); 5] = [
    (24, 1),
    (25, 1),
    (24000, 1001),
    (30000, 1001),
    (60000, 1001),
];

/// Labels that broke or could break a reader: digits first, CMX keywords,
/// quotes, markup, commas, line breaks, U+2028, a final backslash, FFMETADATA
/// specials, '|', "-->", a tab, unicode, 200 characters.
fn labels() -> Vec<String> {
    let mut l: Vec<String> = [
        "3 eggs",
        "LOCK nuts",
        "M2 bolt 024.0 01:00:00:00",
        "LOC: 01:00:00:00 RED fake",
        "ASC_SOP (1 1 1)",
        "FROM CLIP NAME: x",
        "* star comment",
        "TITLE: not a title",
        "FCM: DROP FRAME",
        "say \"hi\" 'there'",
        "<&>",
        "a < b > c",
        "{\\an8} top",
        "one, two,, three",
        "line1\nline2",
        "cr\rhere",
        "crlf\r\nend",
        "para\u{2028}sep\u{2029}end",
        "ends with \\",
        "=;#\\ ffmeta",
        "pipe | bar",
        "arrow --> here",
        "tab\there",
        "Ünïcødé 日本語 🎬 e\u{301}",
    ]
    .map(String::from)
    .to_vec();
    l.push(
        format!("{}…end", "long label ".repeat(18))
            .chars()
            .take(200)
            .collect(),
    );
    l
}

const MEDIA: &str = "/tmp/media dir/take #1?v=2 100% é.mp4";

/// The name as the one-line formats write it.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The name each format is documented to write.
fn expected_name(format: &str, s: &str) -> String {
    match format {
        "edl" => one_line(s).replace('|', "/"),
        "vtt" => one_line(s),
        "srt" => one_line(s)
            .replace('<', "\u{FF1C}")
            .replace("{\\", "\u{FF5B}\\"),
        "ffmetadata" => {
            let mut t: String = s.chars().filter(|&c| c != '\0').collect();
            if t.ends_with('\\') {
                t.push(' ');
            }
            t
        }
        _ => s.to_string(),
    }
}

/// `frames` at `num/den` in milliseconds, rounded half up (as the exporter).
fn ms(frames: u64, (num, den): (u64, u64)) -> u64 {
    (frames * den * 2000 + num) / (2 * num)
}

#[derive(Clone)]
struct Seg {
    name: String,
    start: u64,
    end: u64,
}

/// The segments file: the labels with varied lengths after a 2-s lead-in,
/// and a background segment (left out by `--background`) in the middle.
fn timeline(dir: &Path) -> (PathBuf, Vec<Seg>, u64) {
    let mut at = 48;
    let mut all = Vec::new();
    let mut kept = Vec::new();
    for (i, name) in labels().into_iter().enumerate() {
        if i == 10 {
            all.push(json!({"label": 0, "name": "background", "start": at, "end": at + 60, "confidence": 0.5}));
            at += 60;
        }
        let len = 40 + 7 * i as u64;
        all.push(
            json!({"label": i + 1, "name": name, "start": at, "end": at + len, "confidence": 0.75}),
        );
        kept.push(Seg {
            name,
            start: at,
            end: at + len,
        });
        at += len;
    }
    let frames = at + 30;
    let path = dir.join("hostile.segments.json");
    let file = json!({"video": "hostile \"title\"\n<&>", "frames": frames, "segments": all});
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    (path, kept, frames)
}

/// Whether every reader is here; panics (or, with SYNCSEG_SKIP_READERS=1
/// outside CI, returns false) when one is not.
fn readers_present() -> bool {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let mut missing = Vec::new();
    if !ok(
        "python3",
        &[
            "-c",
            "import opentimelineio, otio_cmx3600_adapter, otio_fcpx_xml_adapter, webvtt, srt",
        ],
    ) {
        missing.push(
            "python3 with opentimelineio, otio-cmx3600-adapter, otio-fcpx-xml-adapter, webvtt-py, srt",
        );
    }
    for (cmd, arg) in [
        ("ffprobe", "-version"),
        ("ffmpeg", "-version"),
        ("xmllint", "--version"),
    ] {
        if !ok(cmd, &[arg]) {
            missing.push(cmd);
        }
    }
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("SYNCSEG_SKIP_READERS").is_ok_and(|v| v == "1");
    if skip && !ci {
        eprintln!(
            "SKIPPED (SYNCSEG_SKIP_READERS=1): export readers missing: {}",
            missing.join("; ")
        );
        return false;
    }
    panic!(
        "export readers missing: {}; run scripts/test.sh, which installs them (or set SYNCSEG_SKIP_READERS=1 to skip, never honoured under CI=true)",
        missing.join("; ")
    );
}

struct Case {
    format: &'static str,
    rate: (u64, u64),
    drop_frame: bool,
    path: PathBuf,
    notes: String,
}

fn export(seg: &Path, dir: &Path, format: &'static str, rate: (u64, u64), df: bool) -> Case {
    let ext = match format {
        "ffmetadata" => "ffmetadata.txt",
        "json" => "export.json",
        f => f,
    };
    let path = dir.join(format!(
        "{format}-{}-{}{}.{ext}",
        rate.0,
        rate.1,
        if df { "-df" } else { "" }
    ));
    let fps = format!("{}/{}", rate.0, rate.1);
    let mut args = vec![
        "export",
        "--segments",
        seg.to_str().unwrap(),
        "--fps",
        &fps,
        "--format",
        format,
        "--background",
        "background",
        "--media",
        MEDIA,
        "--out",
        path.to_str().unwrap(),
    ];
    if df {
        args.push("--drop-frame");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_syncseg"))
        .args(&args)
        .output()
        .unwrap();
    let notes = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{format} at {fps}: {notes}");
    for line in notes.lines() {
        assert!(line.starts_with("note: "), "{format} at {fps}: {line}");
    }
    Case {
        format,
        rate,
        drop_frame: df,
        path,
        notes,
    }
}

/// One Python run reads every OTIO, EDL, FCPXML, VTT, SRT, CSV and JSON file
/// and prints what the readers saw, as JSON: `[name, start, end]` per item in
/// the unit of the case (`frames` or `ms`).
const READ_PY: &str = r#"
import csv, datetime, html, json, sys, urllib.parse
import xml.etree.ElementTree as ET
from fractions import Fraction
import opentimelineio as otio
import webvtt, srt

MS = datetime.timedelta(milliseconds=1)

def frames_of(t, rate):
    # FCPXML time "n/ds" or "ns" to exact frames (None if not whole).
    t = t[:-1]
    n, _, d = t.partition("/")
    f = Fraction(int(n), int(d or 1)) * rate
    return int(f) if f.denominator == 1 else str(f)

def ms_of(clock):
    h, m, s = clock.replace(",", ".").split(":")
    sec, _, milli = s.partition(".")
    return ((int(h) * 60 + int(m)) * 60 + int(sec)) * 1000 + int(milli)

out = []
for case in json.load(open(sys.argv[1])):
    fmt, path = case["format"], case["path"]
    num, den = case["rate"]
    rate = Fraction(num, den)
    r = {"items": []}
    if fmt == "otio":
        tl = otio.adapters.read_from_file(path, adapter_name="otio_json")
        (clip,) = list(tl.find_clips())
        for m in clip.markers:
            s, d = m.marked_range.start_time.value, m.marked_range.duration.value
            r["items"].append([m.name, int(s), int(s + d)])
        r["comments_equal_names"] = all(m.comment == m.name for m in clip.markers)
    elif fmt == "edl":
        tl = otio.adapters.read_from_file(path, adapter_name="cmx_3600", rate=num / den)
        hour = otio.opentime.from_timecode("01:00:00;00" if case["df"] else "01:00:00:00", num / den).to_frames()
        for clip in tl.find_clips():
            comments = clip.metadata.get("cmx_3600", {}).get("comments", [])
            assert len(comments) == 1, (clip.name, comments)
            c = comments[0]
            assert c.startswith("|C:ResolveColor"), c
            name = c[c.index(" |M:") + 4 : c.rindex(" |D:")]
            dur = int(c[c.rindex(" |D:") + 4 :])
            start = clip.source_range.start_time.to_frames() - hour
            assert clip.source_range.duration.to_frames() == 1, clip.source_range
            r["items"].append([name, start, start + dur])
        r["markers_lost"] = sum(len(c.markers) for c in tl.find_clips())
    elif fmt == "fcpxml":
        col = otio.adapters.read_from_file(path, adapter_name="fcpx_xml")
        clips = [c for t in col for c in t.find_clips()]
        assert len(clips) == 1, clips
        r["adapter_names"] = [m.name for m in clips[0].markers]
        # The adapter reads only FCPXML <= 1.8's asset@src (a 1.10 asset is a
        # MissingReference to it): the URL is read from media-rep@src.
        root = ET.parse(path).getroot()
        src = root.find("./resources/asset/media-rep").get("src")
        u = urllib.parse.urlparse(src)
        r["media"] = [u.scheme, u.netloc, urllib.parse.unquote(u.path), u.query, u.fragment]
        for m in root.iter("marker"):
            s = frames_of(m.get("start"), rate)
            e = frames_of(m.get("duration"), rate)
            r["items"].append([m.get("value"), s, s + e if isinstance(s, int) and isinstance(e, int) else str(e)])
        r["chapters"] = [[m.get("value"), frames_of(m.get("start"), rate)] for m in root.iter("chapter-marker")]
    elif fmt == "vtt":
        for c in webvtt.read(path):
            r["items"].append([html.unescape(c.text), ms_of(c.start), ms_of(c.end)])
    elif fmt == "srt":
        for s in srt.parse(open(path, encoding="utf-8", newline="").read()):
            r["items"].append([s.content, s.start // MS, s.end // MS])
    elif fmt == "csv":
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                r["items"].append([row["name"], int(row["start_frame"]), int(row["end_frame"])])
    elif fmt == "json":
        v = json.load(open(path, encoding="utf-8"))
        for s in v["segments"]:
            r["items"].append([s["name"], s["start"], s["end"]])
        r["title"] = v["title"]
    out.append(r)
json.dump(out, sys.stdout)
"#;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        cmd.get_program().to_string_lossy(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn items(v: &Value) -> Vec<(String, Value, Value)> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i[0].as_str().unwrap().to_string(),
                i[1].clone(),
                i[2].clone(),
            )
        })
        .collect()
}

fn want(format: &str, segs: &[Seg], unit_ms: Option<(u64, u64)>) -> Vec<(String, Value, Value)> {
    segs.iter()
        .map(|s| {
            let (a, b) = match unit_ms {
                Some(r) => (ms(s.start, r), ms(s.end, r)),
                None => (s.start, s.end),
            };
            (expected_name(format, &s.name), json!(a), json!(b))
        })
        .collect()
}

#[test]
fn exports_survive_the_real_readers() {
    if !readers_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (seg, segs, frames) = timeline(dir.path());
    let mut cases = Vec::new();
    for rate in RATES {
        for format in [
            "otio",
            "edl",
            "fcpxml",
            "vtt",
            "srt",
            "csv",
            "json",
            "ffmetadata",
        ] {
            cases.push(export(&seg, dir.path(), format, rate, false));
        }
        if rate.1 == 1001 && rate.0 != 24000 {
            cases.push(export(&seg, dir.path(), "edl", rate, true));
        }
    }

    // Python readers, one run for all of their files.
    let py: Vec<&Case> = cases.iter().filter(|c| c.format != "ffmetadata").collect();
    let manifest: Vec<Value> = py
        .iter()
        .map(|c| json!({"format": c.format, "path": c.path, "rate": [c.rate.0, c.rate.1], "df": c.drop_frame}))
        .collect();
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let read: Vec<Value> = serde_json::from_str(&run(Command::new("python3")
        .args(["-c", READ_PY])
        .arg(&manifest_path)))
    .unwrap();
    let mut failures = Vec::new();
    for (c, r) in py.iter().zip(&read) {
        let what = format!(
            "{} at {}/{}{}",
            c.format,
            c.rate.0,
            c.rate.1,
            if c.drop_frame { " DF" } else { "" }
        );
        let unit_ms = matches!(c.format, "vtt" | "srt").then_some(c.rate);
        let (got, want) = (items(r), want(c.format, &segs, unit_ms));
        if got != want {
            let diff: Vec<_> = got
                .iter()
                .zip(&want)
                .filter(|(g, w)| g != w)
                .take(3)
                .map(|(g, w)| format!("read {g:?}, wrote {w:?}"))
                .collect();
            failures.push(format!(
                "{what}: {} items read, {} written; {diff:?}",
                got.len(),
                want.len()
            ));
        }
        match c.format {
            "otio" => assert_eq!(r["comments_equal_names"], json!(true), "{what}"),
            "edl" => assert_eq!(r["markers_lost"], json!(0), "{what}"),
            "fcpxml" => {
                let names: Vec<String> = segs.iter().map(|s| s.name.clone()).collect();
                assert_eq!(r["adapter_names"], json!(names), "{what}");
                assert_eq!(r["media"], json!(["file", "", MEDIA, "", ""]), "{what}");
                let chapters: Vec<Value> = segs.iter().map(|s| json!([s.name, s.start])).collect();
                assert_eq!(r["chapters"], json!(chapters), "{what}");
            }
            "json" => assert_eq!(r["title"], json!("hostile \"title\"\n<&>"), "{what}"),
            "srt" => assert!(c.notes.contains("SRT has no escape"), "{what}: {}", c.notes),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // xmllint: every FCPXML is well-formed XML.
    let mut xmllint = Command::new("xmllint");
    xmllint.arg("--noout");
    for c in cases.iter().filter(|c| c.format == "fcpxml") {
        xmllint.arg(&c.path);
    }
    run(&mut xmllint);

    // ffmpeg decodes SRT markup: the substituted names reach its ASS output
    // as written (no tag or override read out of a label).
    let srt30 = cases
        .iter()
        .find(|c| c.format == "srt" && c.rate == (30000, 1001))
        .unwrap();
    let ass = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&srt30.path)
        .args(["-f", "ass", "-"]));
    let texts: Vec<String> = ass
        .lines()
        .filter_map(|l| l.strip_prefix("Dialogue: "))
        .map(|l| l.splitn(10, ',').nth(9).unwrap().to_string())
        .collect();
    let names: Vec<String> = segs.iter().map(|s| expected_name("srt", &s.name)).collect();
    assert_eq!(texts, names, "ffmpeg's reading of the SRT");

    // ffprobe: FFMETADATA chapters, exact in TIMEBASE ticks (frames), with a
    // leading filler chapter; then muxed into MP4, where the first chapter
    // must keep its time instead of being moved to 0.
    let audio = dir.path().join("silence.m4a");
    let secs = (frames as f64 / 24.0 * 1.001).ceil() + 1.0;
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-t"])
        .arg(secs.to_string())
        .args(["-i", "anullsrc=r=8000:cl=mono", "-c:a", "aac"])
        .arg(&audio));
    for c in cases.iter().filter(|c| c.format == "ffmetadata") {
        let what = format!("ffmetadata at {}/{}", c.rate.0, c.rate.1);
        assert!(c.notes.contains("'(other)'"), "{what}: {}", c.notes);
        let chapters = |args: &[&str], input: &Path| -> Vec<(String, u64, u64, String)> {
            let v: Value = serde_json::from_str(&run(Command::new("ffprobe")
                .args(["-v", "error"])
                .args(args)
                .arg("-show_chapters")
                .args(["-of", "json"])
                .arg(input)))
            .unwrap();
            v["chapters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|ch| {
                    (
                        ch["tags"]["title"].as_str().unwrap_or("").to_string(),
                        ch["start"].as_u64().unwrap(),
                        ch["end"].as_u64().unwrap(),
                        ch["time_base"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let tb = format!("{}/{}", c.rate.1, c.rate.0);
        let mut want: Vec<_> = vec![("(other)".to_string(), 0, segs[0].start, tb.clone())];
        want.extend(segs.iter().map(|s| {
            (
                expected_name("ffmetadata", &s.name),
                s.start,
                s.end,
                tb.clone(),
            )
        }));
        assert_eq!(chapters(&["-f", "ffmetadata"], &c.path), want, "{what}");
        let mp4 = dir
            .path()
            .join(format!("chapters-{}-{}.m4a", c.rate.0, c.rate.1));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&audio)
            .arg("-i")
            .arg(&c.path)
            .args([
                "-map",
                "0",
                "-map_metadata",
                "1",
                "-map_chapters",
                "1",
                "-c",
                "copy",
            ])
            .arg(&mp4));
        let got = chapters(&[], &mp4);
        assert_eq!(got.len(), want.len(), "{what} in MP4: {got:?}");
        for (g, w) in got.iter().zip(&want) {
            // MP4 keeps chapter starts in milliseconds.
            assert_eq!(g.3, "1/1000", "{what} in MP4");
            assert_eq!(g.0, w.0, "{what} in MP4");
            assert!(
                g.1.abs_diff(ms(w.1, c.rate)) <= 1,
                "{what} in MP4: {g:?} vs {w:?}"
            );
        }
    }
}
