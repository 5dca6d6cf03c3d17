//! Tests of the exporters: rates, timecode, goldens, and round trips through
//! independent readers (quick-xml for FCPXML, OpenTimelineIO for OTIO).

use std::path::PathBuf;

use proptest::prelude::*;

use super::timecode::timecode;
use super::*;

fn rate(s: &str) -> FrameRate {
    s.parse().unwrap()
}

#[test]
fn frame_rates_parse() {
    for (s, n, d) in [
        ("30000/1001", 30000, 1001),
        ("29.97", 30000, 1001),
        ("25", 25, 1),
        ("23.976", 24000, 1001),
        ("23.98", 24000, 1001),
        ("59.94", 60000, 1001),
        ("119.88", 120000, 1001),
        ("24", 24, 1),
        ("50/2", 25, 1),
        ("12.5", 25, 2),
        ("30.0", 30, 1),
        (" 60 ", 60, 1),
    ] {
        let r = rate(s);
        assert_eq!((r.num(), r.den()), (n, d), "{s}");
    }
    assert_eq!(rate("30000/1001").to_string(), "30000/1001");
    assert_eq!(rate("25").to_string(), "25");
}

#[test]
fn bad_frame_rates_are_rejected_with_the_value() {
    for s in [
        "",
        "0",
        "0/1",
        "1/0",
        "-25",
        "-30000/1001",
        "abc",
        "25fps",
        "1e3",
        "30/",
        "/2",
        ".",
        "0.0",
        "nan",
        "99999999999",
    ] {
        let e = s.parse::<FrameRate>().unwrap_err().to_string();
        assert!(e.contains(&format!("'{s}'")), "{s}: {e}");
        assert!(e.contains("frame rate"), "{s}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

proptest! {
    #[test]
    fn fractions_parse_reduced(n in 1u32..1_000_000, d in 1u32..100_000) {
        let r: FrameRate = format!("{n}/{d}").parse().unwrap();
        // Same value, reduced, and the display parses back to itself.
        prop_assert_eq!(u64::from(r.num()) * u64::from(d), u64::from(n) * u64::from(r.den()));
        prop_assert_eq!(gcd(r.num().into(), r.den().into()), 1);
        prop_assert_eq!(r.to_string().parse::<FrameRate>().unwrap(), r);
    }

    #[test]
    fn ntsc_decimals_map_to_the_exact_rate(n in 6u32..=240) {
        // N·1000/1001 printed to 2 and 3 decimals, as people write 29.97/23.976
        // (below 6 the 2-decimal form is a whole number, taken exactly).
        let exact = f64::from(n) * 1000.0 / 1001.0;
        for digits in [2usize, 3] {
            let s = format!("{exact:.digits$}");
            let r: FrameRate = s.parse().unwrap();
            prop_assert_eq!(r, FrameRate::new(n * 1000, 1001).unwrap(), "{}", s);
        }
    }

    #[test]
    fn integers_parse_as_themselves(n in 1u32..100_000) {
        let r: FrameRate = n.to_string().parse().unwrap();
        prop_assert_eq!((r.num(), r.den()), (n, 1));
    }

    #[test]
    fn garbage_is_rejected(s in "[^0-9]*") {
        prop_assert!(s.parse::<FrameRate>().is_err());
    }

    #[test]
    fn drop_frame_skips_labels_not_frames(f in 0u64..10_000_000, sixty in any::<bool>()) {
        let r = if sixty { FrameRate::NTSC_60 } else { FrameRate::NTSC_30 };
        // Within the 24 h that timecode holds (2,589,408 frames at 29.97).
        let f = f % (super::timecode::frames_per_day(r, true).unwrap() - 1);
        let dropped = if sixty { 4 } else { 2 };
        let parse = |tc: &str| -> Vec<u64> { tc.split([':', ';']).map(|x| x.parse().unwrap()).collect() };
        let a = parse(&timecode(f, r, true).unwrap());
        let b = parse(&timecode(f + 1, r, true).unwrap());
        // Labels are strictly increasing...
        prop_assert!(b > a);
        // ...never a skipped label...
        prop_assert!(!(a[2] == 0 && a[1] % 10 != 0 && a[3] < dropped));
        // ...and consecutive frames are consecutive labels.
        let fps = r.nominal_fps();
        let idx = |t: &[u64]| ((t[0] * 60 + t[1]) * 60 + t[2]) * fps + t[3];
        let skip = if b[3] == dropped && b[2] == 0 && b[1] % 10 != 0 { dropped } else { 0 };
        prop_assert_eq!(idx(&b) - idx(&a), 1 + skip);
    }
}

#[test]
fn drop_frame_timecode_at_minute_boundaries() {
    let r = FrameRate::NTSC_30;
    for (f, tc) in [
        (0, "00:00:00;00"),
        (1799, "00:00:59;29"),
        (1800, "00:01:00;02"),
        (3597, "00:01:59;29"),
        (3598, "00:02:00;02"),
        (17981, "00:09:59;29"),
        (17982, "00:10:00;00"),
        (17983, "00:10:00;01"),
        (19781, "00:10:59;29"),
        (19782, "00:11:00;02"),
        (107891, "00:59:59;29"),
        (107892, "01:00:00;00"),
    ] {
        assert_eq!(timecode(f, r, true).unwrap(), tc, "frame {f}");
    }
    let r = FrameRate::NTSC_60;
    for (f, tc) in [
        (3599, "00:00:59;59"),
        (3600, "00:01:00;04"),
        (35963, "00:09:59;59"),
        (35964, "00:10:00;00"),
        (215784, "01:00:00;00"),
    ] {
        assert_eq!(timecode(f, r, true).unwrap(), tc, "frame {f}");
    }
}

#[test]
fn non_drop_timecode() {
    for (r, f, tc) in [
        ("30000/1001", 1800, "00:01:00:00"),
        ("30000/1001", 17982, "00:09:59:12"),
        ("25", 0, "00:00:00:00"),
        ("25", 24, "00:00:00:24"),
        ("25", 25, "00:00:01:00"),
        ("25", 90_000, "01:00:00:00"),
        ("24000/1001", 86_399, "00:59:59:23"),
        ("24", 24 * 3600 * 24 - 1, "23:59:59:23"),
        ("30000/1001", 30 * 3600 * 24 - 1, "23:59:59:29"),
    ] {
        assert_eq!(timecode(f, rate(r), false).unwrap(), tc, "{r} frame {f}");
    }
    // 24 h and past, up to u64::MAX: an error, not `24:00:00:00` or a wrap.
    for (r, df, f) in [
        ("24", false, 24 * 3600 * 24),
        ("24", false, 24 * 3600 * 25),
        ("25", false, u64::MAX),
        ("30000/1001", true, 2_589_408),
        ("60000/1001", true, u64::MAX),
        ("4294967295", false, u64::MAX - 1),
    ] {
        let e = timecode(f, rate(r), df).unwrap_err().to_string();
        assert!(e.contains("24 h") && e.contains("23:59:59"), "{e}");
    }
    assert_eq!(
        timecode(2_589_407, FrameRate::NTSC_30, true).unwrap(),
        "23:59:59;29"
    );
    let e = timecode(0, rate("25"), true).unwrap_err().to_string();
    assert!(e.contains("drop-frame") && e.contains("25"), "{e}");
}

#[test]
fn formats_parse_and_name_themselves() {
    for f in ExportFormat::ALL {
        assert_eq!(f.name().parse::<ExportFormat>().unwrap(), f);
        assert_eq!(f.name().to_uppercase().parse::<ExportFormat>().unwrap(), f);
    }
    assert_eq!("webvtt".parse::<ExportFormat>().unwrap(), ExportFormat::Vtt);
    let e = "mp4".parse::<ExportFormat>().unwrap_err().to_string();
    assert!(e.contains("'mp4'") && e.contains("otio, edl"), "{e}");
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/export")
}

/// The fixed segment list of the goldens, read as `syncseg predict` writes it.
fn fixture() -> (Vec<PredictedSegment>, ExportOptions) {
    let text = std::fs::read_to_string(data_dir().join("segments.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let segs = serde_json::from_value(v["segments"].clone()).unwrap();
    let opts = ExportOptions {
        title: v["video"].as_str().unwrap().into(),
        video_frames: v["frames"].as_u64(),
        background: vec!["background".into()],
        media: Some("/videos/assembly.mp4".into()),
        drop_frame: false,
    };
    (segs, opts)
}

fn render_fixture(format: ExportFormat, drop_frame: bool) -> Rendered {
    let (segs, mut opts) = fixture();
    opts.drop_frame = drop_frame;
    render(format, &segs, FrameRate::NTSC_30, &opts).unwrap()
}

#[test]
fn goldens() {
    let mut failed = Vec::new();
    for (format, df, file) in [
        (ExportFormat::Otio, false, "golden.otio"),
        (ExportFormat::Edl, false, "golden.edl"),
        (ExportFormat::Edl, true, "golden.df.edl"),
        (ExportFormat::Fcpxml, false, "golden.fcpxml"),
        (ExportFormat::Vtt, false, "golden.vtt"),
        (ExportFormat::Ffmetadata, false, "golden.ffmetadata.txt"),
        (ExportFormat::Srt, false, "golden.srt"),
        (ExportFormat::Youtube, false, "golden.youtube.txt"),
        (ExportFormat::Csv, false, "golden.csv"),
        (ExportFormat::Json, false, "golden.json"),
    ] {
        let got = render_fixture(format, df).text;
        let path = data_dir().join(file);
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            // Written outside the tree, to diff against the golden.
            let actual = std::env::temp_dir().join(format!("syncseg-{file}"));
            std::fs::write(&actual, &got).unwrap();
            failed.push(actual.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "differ from the goldens in {}: {failed:?}",
        data_dir().display()
    );
}

#[test]
fn notes_say_what_changed() {
    let yt = render_fixture(ExportFormat::Youtube, false);
    assert_eq!(
        yt.notes,
        ["YouTube: merged 1 chapters shorter than 10 s into their neighbours: 'check' at 0:30"]
    );
    assert!(render_fixture(ExportFormat::Edl, false).notes.is_empty());
    let (segs, mut opts) = fixture();
    opts.media = None;
    let n = render(ExportFormat::Otio, &segs, FrameRate::NTSC_30, &opts)
        .unwrap()
        .notes;
    assert!(n[0].contains("no media path"), "{n:?}");
}

fn seg(name: &str, start: usize, end: usize) -> PredictedSegment {
    PredictedSegment {
        label: 0,
        name: name.into(),
        start,
        end,
        confidence: 1.0,
    }
}

#[test]
fn youtube_rules() {
    let r = rate("25");
    let opts = ExportOptions::default();
    // 29.96 s cannot hold three 10 s chapters.
    let e = render(ExportFormat::Youtube, &[seg("a", 0, 749)], r, &opts).unwrap_err();
    assert!(e.to_string().contains("at least 30 s"), "{e}");
    // Long enough but one segment: fewer than three chapters.
    let e = render(ExportFormat::Youtube, &[seg("a", 0, 2000)], r, &opts).unwrap_err();
    assert!(e.to_string().contains("at least 3 chapters"), "{e}");
    // A gap at the start becomes a 0:00 chapter; a short first segment is
    // merged forward so the first chapter still starts at 0:00.
    let segs = [
        seg("a", 0, 100),
        seg("b", 100, 500),
        seg("c", 500, 800),
        seg("d", 800, 1100),
    ];
    let out = render(ExportFormat::Youtube, &segs, r, &opts).unwrap();
    assert_eq!(out.text, "0:00 b\n0:20 c\n0:32 d\n");
    let out = render(ExportFormat::Youtube, &segs[1..], r, &opts).unwrap();
    assert_eq!(out.text, "0:00 b\n0:20 c\n0:32 d\n");
    // Over an hour: h:mm:ss throughout.
    let segs = [
        seg("a", 0, 50_000),
        seg("b", 50_000, 90_000),
        seg("c", 90_000, 100_000),
    ];
    let out = render(ExportFormat::Youtube, &segs, r, &opts).unwrap();
    assert_eq!(out.text, "0:00:00 a\n0:33:20 b\n1:00:00 c\n");
}

#[test]
fn invalid_segments_are_rejected() {
    let r = rate("25");
    let o = ExportOptions::default();
    let e = render(ExportFormat::Csv, &[seg("a", 5, 5)], r, &o).unwrap_err();
    assert!(e.to_string().contains("segment 0 ('a')"), "{e}");
    let e = render(
        ExportFormat::Csv,
        &[seg("a", 0, 10), seg("b", 5, 20)],
        r,
        &o,
    )
    .unwrap_err();
    assert!(e.to_string().contains("segment 1 ('b')"), "{e}");
    let o = ExportOptions {
        video_frames: Some(5),
        ..Default::default()
    };
    let e = render(ExportFormat::Csv, &[seg("a", 0, 10)], r, &o).unwrap_err();
    assert!(e.to_string().contains("5 frames"), "{e}");
    let o = ExportOptions {
        drop_frame: true,
        ..Default::default()
    };
    assert!(render(ExportFormat::Edl, &[seg("a", 0, 10)], r, &o).is_err());
}

/// FCPXML `N/Ds` or `Ns` → frames at `rate`, which must be whole.
fn fcpx_frames(t: &str, r: FrameRate) -> u64 {
    let t = t.strip_suffix('s').unwrap();
    let (n, d) = t.split_once('/').unwrap_or((t, "1"));
    let (n, d): (u128, u128) = (n.parse().unwrap(), d.parse().unwrap());
    let num = n * u128::from(r.num());
    let den = d * u128::from(r.den());
    assert_eq!(num % den, 0, "{t}s is not a whole frame");
    (num / den) as u64
}

#[test]
fn fcpxml_reads_back_to_the_same_frames() {
    use quick_xml::events::Event;
    let (segs, opts) = fixture();
    for r in ["30000/1001", "25", "24000/1001", "60000/1001"] {
        let r = rate(r);
        let text = render(ExportFormat::Fcpxml, &segs, r, &opts).unwrap().text;
        let mut reader = quick_xml::Reader::from_str(&text);
        let (mut markers, mut chapters, mut version) = (Vec::new(), Vec::new(), None);
        loop {
            match reader.read_event().unwrap() {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => {
                    let attr = |k: &str| {
                        e.try_get_attribute(k)
                            .unwrap()
                            .map(|a| a.unescape_value().unwrap().into_owned())
                    };
                    match e.name().as_ref() {
                        b"fcpxml" => version = attr("version"),
                        b"format" => {
                            assert_eq!(fcpx_frames(&attr("frameDuration").unwrap(), r), 1)
                        }
                        b"marker" | b"chapter-marker" => {
                            let start = fcpx_frames(&attr("start").unwrap(), r);
                            let dur = fcpx_frames(&attr("duration").unwrap(), r);
                            let v = attr("value").unwrap();
                            if e.name().as_ref() == b"marker" {
                                markers.push((v, start as usize, (start + dur) as usize));
                            } else {
                                chapters.push((v, start as usize));
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        assert_eq!(version.as_deref(), Some("1.10"));
        let want: Vec<_> = segs
            .iter()
            .filter(|s| s.name != "background")
            .map(|s| (s.name.clone(), s.start, s.end))
            .collect();
        assert_eq!(markers, want, "at {r}");
        let starts: Vec<_> = want.iter().map(|(n, s, _)| (n.clone(), *s)).collect();
        assert_eq!(chapters, starts, "at {r}");
    }
}

/// Loads the OTIO golden with the real OpenTimelineIO package; skipped (with
/// a note) where Python or the package is missing. CI installs it.
#[test]
fn otio_loads_in_opentimelineio() {
    let has = std::process::Command::new("python3")
        .args(["-c", "import opentimelineio"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has {
        eprintln!("SKIPPED otio_loads_in_opentimelineio: `python3 -c 'import opentimelineio'` fails; pip install opentimelineio");
        return;
    }
    let (segs, opts) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assembly.otio");
    let text = render(ExportFormat::Otio, &segs, FrameRate::NTSC_30, &opts)
        .unwrap()
        .text;
    std::fs::write(&path, text).unwrap();
    let script = r#"
import sys, opentimelineio as otio
tl = otio.adapters.read_from_file(sys.argv[1])
clips = list(tl.find_clips())
assert len(clips) == 1, clips
c = clips[0]
print("clip", c.name, c.source_range.duration.value, c.source_range.duration.rate, c.media_reference.target_url)
for m in c.markers:
    r = m.marked_range
    print("marker", repr(m.name), repr(m.comment), m.color, r.start_time.value, r.duration.value, r.start_time.rate, m.metadata["syncseg"]["confidence"])
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let rate = 30000.0 / 1001.0;
    assert_eq!(
        lines.next().unwrap(),
        format!("clip assembly 3600.0 {rate} /videos/assembly.mp4")
    );
    let want: Vec<String> = segs
        .iter()
        .filter(|s| s.name != "background")
        .map(|s| {
            let q = if s.name.contains('\'') {
                format!("{:?}", s.name)
            } else {
                format!("'{}'", s.name.replace('\\', "\\\\"))
            };
            format!(
                "marker {q} {q} {} {:.1} {:.1} {rate} {}",
                ["RED", "ORANGE", "YELLOW", "GREEN", "CYAN"][s.label as usize],
                s.start as f64,
                (s.end - s.start) as f64,
                s.confidence
            )
        })
        .collect();
    assert_eq!(lines.collect::<Vec<_>>(), want);
}

fn named(names: &[&str], len: usize) -> Vec<PredictedSegment> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| seg(n, i * len, (i + 1) * len))
        .collect()
}

#[test]
fn edl_notes_are_empty_so_no_label_reads_as_an_event_or_a_cmx_comment() {
    // A comment line that starts with the name is an event to CMX readers
    // when the name starts with a digit, and a LOC/M2/ASC_SOP comment when it
    // starts with one of those words: the note before '|C:' stays empty.
    let names = [
        "3 eggs",
        "LOCK nuts",
        "M2 bolt",
        "ASC_SOP x",
        "FROM CLIP a",
        "* star",
    ];
    let out = render(
        ExportFormat::Edl,
        &named(&names, 50),
        rate("25"),
        &ExportOptions::default(),
    )
    .unwrap();
    let comments: Vec<_> = out.text.lines().filter(|l| l.contains("|M:")).collect();
    assert_eq!(comments.len(), names.len(), "{}", out.text);
    for (c, n) in comments.iter().zip(names) {
        assert_eq!(*c, format!(" |C:ResolveColorBlue |M:{n} |D:50"));
    }
}

#[test]
fn line_and_paragraph_separators_do_not_survive_one_line() {
    let name = "a\u{2028}b\u{2029}c\u{85}d\re";
    let segs = named(&[name, "x", "y"], 500);
    let o = ExportOptions::default();
    for f in [
        ExportFormat::Edl,
        ExportFormat::Youtube,
        ExportFormat::Srt,
        ExportFormat::Vtt,
    ] {
        let text = render(f, &segs, rate("25"), &o).unwrap().text;
        assert!(text.contains("a b c d e"), "{f}: {text:?}");
        assert!(
            !text.contains(['\u{2028}', '\u{2029}', '\u{85}', '\r']),
            "{f}"
        );
    }
}

#[test]
fn edl_refuses_what_timecode_cannot_express() {
    let r = rate("25");
    let o = ExportOptions::default();
    // 01:00:00:00 + 23 h − 2 frames: the last marker that fits (out point
    // 23:59:59:24).
    let last = 23 * 3600 * 25 - 1;
    let out = render(ExportFormat::Edl, &[seg("ok", last - 1, last)], r, &o).unwrap();
    assert!(out.text.contains("23:59:59:23 23:59:59:24"), "{}", out.text);
    for (start, end) in [
        (last, last + 1),
        (30 * 3600 * 25, 30 * 3600 * 25 + 10),
        (usize::MAX - 1, usize::MAX),
    ] {
        let e = render(ExportFormat::Edl, &[seg("late\nname", start, end)], r, &o)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("EDL timecode cannot express") && e.contains("'late name'"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
    // Drop-frame: a day is 2,589,408 frames at 29.97.
    let o = ExportOptions {
        drop_frame: true,
        ..Default::default()
    };
    let e = render(
        ExportFormat::Edl,
        &[seg("x", 2_589_408 - 107_892, 2_589_408)],
        FrameRate::NTSC_30,
        &o,
    )
    .unwrap_err();
    assert!(e.to_string().contains("23:59:59:29"), "{e}");
}

#[test]
fn fcpxml_media_urls_are_percent_encoded() {
    let segs = [seg("a", 0, 10)];
    for (media, src) in [
        ("/v/a b#1?x%é.mp4", "file:///v/a%20b%231%3Fx%25%C3%A9.mp4"),
        ("/v/a&b'c.mp4", "file:///v/a%26b%27c.mp4"),
        ("clips/日本.mov", "clips/%E6%97%A5%E6%9C%AC.mov"),
        ("https://x.org/a b?c", "https://x.org/a b?c"),
    ] {
        let o = ExportOptions {
            media: Some(media.into()),
            ..Default::default()
        };
        let text = render(ExportFormat::Fcpxml, &segs, rate("25"), &o)
            .unwrap()
            .text;
        assert!(text.contains(&format!("src=\"{src}\"")), "{media}: {text}");
    }
}

#[test]
fn ffmetadata_escapes_cr_and_keeps_a_final_backslash_off_the_line_break() {
    let segs = named(&["cr\rhere", "ends \\", "nul\0x"], 25);
    let o = ExportOptions {
        title: "t\\".into(),
        ..Default::default()
    };
    let out = render(ExportFormat::Ffmetadata, &segs, rate("25"), &o).unwrap();
    assert!(out.text.contains("title=cr\\\rhere\n"), "{:?}", out.text);
    assert!(out.text.contains("title=ends \\\\ \n"), "{:?}", out.text);
    assert!(out.text.contains("title=nulx\n"), "{:?}", out.text);
    assert!(
        out.text.starts_with(";FFMETADATA1\ntitle=t\\\\ \n"),
        "{:?}",
        out.text
    );
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(out.notes[0].contains("final '\\'"), "{:?}", out.notes);
}

#[test]
fn ffmetadata_starts_with_a_filler_chapter_when_the_first_segment_is_late() {
    let r = rate("25");
    let o = ExportOptions::default();
    let out = render(ExportFormat::Ffmetadata, &[seg("a", 250, 500)], r, &o).unwrap();
    assert_eq!(
        out.text,
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/25\nSTART=0\nEND=250\ntitle=(other)\n\
         [CHAPTER]\nTIMEBASE=1/25\nSTART=250\nEND=500\ntitle=a\n"
    );
    assert_eq!(out.notes.len(), 1);
    assert!(out.notes[0].contains("'(other)'"), "{:?}", out.notes);
    let out = render(ExportFormat::Ffmetadata, &[seg("a", 0, 500)], r, &o).unwrap();
    assert!(!out.text.contains("(other)") && out.notes.is_empty());
}

#[test]
fn srt_substitutes_markup_and_says_so() {
    let segs = named(&["a < b > c", "{\\an8} top", "plain {x}"], 25);
    let out = render(
        ExportFormat::Srt,
        &segs,
        rate("25"),
        &ExportOptions::default(),
    )
    .unwrap();
    assert!(out.text.contains("\na \u{FF1C} b > c\n"), "{}", out.text);
    assert!(out.text.contains("\n\u{FF5B}\\an8} top\n"), "{}", out.text);
    assert!(out.text.contains("\nplain {x}\n"), "{}", out.text);
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(
        out.notes[0].contains("SRT has no escape"),
        "{:?}",
        out.notes
    );
    let out = render(
        ExportFormat::Srt,
        &named(&["ok"], 25),
        rate("25"),
        &ExportOptions::default(),
    )
    .unwrap();
    assert!(out.notes.is_empty());
}

#[test]
fn youtube_merges_without_snowballing() {
    let r = rate("25");
    let o = ExportOptions::default();
    // Nine 7-s segments (63 s): merging each into its longer neighbour made
    // one chapter; into the shorter one gives four.
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    let out = render(ExportFormat::Youtube, &named(&names, 175), r, &o).unwrap();
    assert_eq!(out.text, "0:00 b\n0:14 d\n0:28 f\n0:42 h\n");
    assert!(
        out.notes[0].starts_with("YouTube: merged 5 chapters"),
        "{:?}",
        out.notes
    );
    // Where shortest-first leaves fewer than three (here two), the
    // left-to-right pass finds the most chapters the boundaries allow.
    let secs = |lens: &[usize]| -> Vec<PredictedSegment> {
        let mut at = 0;
        lens.iter()
            .zip(["p", "q", "r", "s", "t", "u", "v"])
            .map(|(l, n)| {
                at += l * 25;
                seg(n, at - l * 25, at)
            })
            .collect()
    };
    let out = render(ExportFormat::Youtube, &secs(&[9, 1, 7, 4, 6, 2, 4]), r, &o).unwrap();
    assert_eq!(out.text, "0:00 p\n0:10 r\n0:21 t\n");
    assert!(
        out.notes[0].starts_with("YouTube: merged 4 chapters"),
        "{:?}",
        out.notes
    );
    // 9, 2, 9, 2, 9 s (31 s) cannot make three chapters of 10 s at all.
    let e = render(ExportFormat::Youtube, &secs(&[9, 2, 9, 2, 9]), r, &o).unwrap_err();
    assert!(e.to_string().contains("allow 2"), "{e}");
    // Every chapter ≥ 10 s and the first at 0:00, for many 7-s segments.
    let many: Vec<String> = (0..200).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = render(ExportFormat::Youtube, &named(&refs, 175), r, &o).unwrap();
    let starts: Vec<u64> = out
        .text
        .lines()
        .map(|l| {
            let t: Vec<u64> = l
                .split(' ')
                .next()
                .unwrap()
                .split(':')
                .map(|x| x.parse().unwrap())
                .collect();
            t[0] * 60 + t[1]
        })
        .collect();
    assert_eq!(starts[0], 0);
    assert!(starts.len() >= 90, "{}", starts.len());
    for w in starts.windows(2) {
        assert!(w[1] - w[0] >= 10, "{w:?}");
    }
    assert!(200 * 7 - starts.last().unwrap() >= 10);
}

#[test]
fn youtube_notes_the_description_limit_and_angle_brackets() {
    let r = rate("25");
    let o = ExportOptions::default();
    let long: Vec<String> = (0..40)
        .map(|i| format!("{i:03} {}", "x".repeat(150)))
        .collect();
    let refs: Vec<&str> = long.iter().map(String::as_str).collect();
    let out = render(ExportFormat::Youtube, &named(&refs, 250), r, &o).unwrap();
    assert!(out.text.len() > 5000);
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("5000") && n.contains("characters")),
        "{:?}",
        out.notes
    );
    let out = render(
        ExportFormat::Youtube,
        &named(&["a<b>", "c", "d"], 250),
        r,
        &o,
    )
    .unwrap();
    assert!(
        out.text.starts_with("0:00 a\u{FF1C}b\u{FF1E}\n"),
        "{}",
        out.text
    );
    assert!(
        out.notes.iter().any(|n| n.contains("'<'")),
        "{:?}",
        out.notes
    );
    let out = render(ExportFormat::Youtube, &named(&["a", "b", "c"], 250), r, &o).unwrap();
    assert!(out.notes.is_empty(), "{:?}", out.notes);
}

/// Valid segments from arbitrary cut points: sorted, non-empty, disjoint.
fn segments_from(cuts: &mut [u64], names: &[String], gaps: &[bool]) -> Vec<PredictedSegment> {
    cuts.sort_unstable();
    let mut out = Vec::new();
    for (i, w) in cuts.windows(2).enumerate() {
        if w[0] < w[1] && !gaps.get(i).copied().unwrap_or(false) {
            out.push(PredictedSegment {
                label: i as u32 * 7,
                name: names[i % names.len()].clone(),
                start: w[0] as usize,
                end: w[1] as usize,
                confidence: 0.5,
            });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// No input panics: any names, frame numbers up to u64::MAX, any rate,
    /// every format; errors and notes are one line.
    #[test]
    fn no_export_input_panics(
        mut cuts in prop::collection::vec(prop_oneof![
            0u64..100_000,
            any::<u64>(),
            (u64::MAX - 1000)..=u64::MAX,
        ], 1..8),
        names in prop::collection::vec(any::<String>(), 1..4),
        gaps in prop::collection::vec(any::<bool>(), 0..8),
        num in prop_oneof![Just(24u32), Just(30000), Just(60000), 1u32..=u32::MAX],
        den in prop_oneof![Just(1u32), Just(1001), 1u32..=u32::MAX],
        drop_frame in any::<bool>(),
        title in any::<String>(),
        media in prop::option::of(any::<String>()),
        extra in prop_oneof![Just(0u64), any::<u64>()],
    ) {
        let segs = segments_from(&mut cuts, &names, &gaps);
        let r = FrameRate::new(num, den).unwrap();
        let last = cuts.last().copied().unwrap_or(0);
        let opts = ExportOptions {
            title,
            video_frames: Some(last.saturating_add(extra)),
            media,
            drop_frame,
            ..Default::default()
        };
        for f in ExportFormat::ALL {
            match render(f, &segs, r, &opts) {
                Ok(out) => {
                    for n in &out.notes {
                        prop_assert!(!n.contains('\n'), "{}: {:?}", f, n);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}: {}", f, e),
            }
        }
    }
}
