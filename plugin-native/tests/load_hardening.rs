//! Untrusted model files on the command line: crafted `.pth` checkpoints,
//! model directories and bundles with sizes that used to abort (134) or
//! panic (101) syncseg. Each must be exit code 1 with one error line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn syncseg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_syncseg"))
        .args(args)
        .env("CI", "1")
        .output()
        .expect("the syncseg binary runs")
}

/// Runs a command that must fail cleanly; returns its error line.
fn refused(args: &[&str], want: &[&str]) -> String {
    let out = syncseg(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "syncseg {args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    for w in want {
        assert!(lines[0].contains(w), "{w:?} not in: {err}");
    }
    err
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A zip of stored entries; `deflate` marks the first as DEFLATE (one
/// stored DEFLATE block, valid for any inflater).
fn zip(files: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (i, (name, data)) in files.iter().enumerate() {
        let deflated = deflate && i == 0;
        let mut body = Vec::new();
        if deflated {
            let n = data.len() as u16;
            body.push(1);
            body.extend_from_slice(&n.to_le_bytes());
            body.extend_from_slice(&(!n).to_le_bytes());
        }
        body.extend_from_slice(data);
        let offset = out.len() as u32;
        let mut common = Vec::new();
        common.extend_from_slice(&20u16.to_le_bytes());
        common.extend_from_slice(&0u16.to_le_bytes());
        common.extend_from_slice(&(if deflated { 8u16 } else { 0 }).to_le_bytes());
        common.extend_from_slice(&0u32.to_le_bytes());
        common.extend_from_slice(&crc32(data).to_le_bytes());
        common.extend_from_slice(&(body.len() as u32).to_le_bytes());
        common.extend_from_slice(&(data.len() as u32).to_le_bytes());
        common.extend_from_slice(&(name.len() as u16).to_le_bytes());
        common.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&common);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&common);
        central.extend_from_slice(&[0; 10]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for _ in 0..2 {
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd.to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    out
}

fn s(out: &mut Vec<u8>, text: &str) {
    out.push(b'X');
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn int(out: &mut Vec<u8>, v: u32) {
    out.push(b'J');
    out.extend_from_slice(&v.to_le_bytes());
}

/// `{name: _rebuild_tensor_v2(storage, 0, shape, stride, ...)}` with the
/// first `args` arguments and the first `items` storage items.
fn pickle(shape: &[u32], storage_len: u32, args: usize, items: usize) -> Vec<u8> {
    let mut k = b"\x80\x02}(".to_vec();
    s(&mut k, "inc.conv.conv.0.weight");
    k.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut st = b"(".to_vec();
    let mut its: Vec<Vec<u8>> = vec![Vec::new(); 5];
    s(&mut its[0], "storage");
    its[1].extend_from_slice(b"ctorch\nFloatStorage\n");
    s(&mut its[2], "0");
    s(&mut its[3], "cpu");
    int(&mut its[4], storage_len);
    for it in its.iter().take(items) {
        st.extend_from_slice(it);
    }
    st.extend_from_slice(b"tQ");
    parts.push(st);
    let mut off = Vec::new();
    int(&mut off, 0);
    parts.push(off);
    let mut size = b"(".to_vec();
    let mut stride = b"(".to_vec();
    let mut acc = 1u32;
    let mut strides = Vec::new();
    for d in shape.iter().rev() {
        strides.push(acc);
        acc = acc.wrapping_mul(*d);
    }
    for (d, st) in shape.iter().zip(strides.iter().rev()) {
        int(&mut size, *d);
        int(&mut stride, *st);
    }
    size.push(b't');
    stride.push(b't');
    parts.push(size);
    parts.push(stride);
    parts.push(vec![0x89]);
    parts.push(b"ccollections\nOrderedDict\n)R".to_vec());
    for part in parts.iter().take(args) {
        k.extend_from_slice(part);
    }
    k.extend_from_slice(b"tRu.");
    k
}

fn pth(dir: &Path, name: &str, pkl: &[u8], storage: &[u8], deflate: bool) -> PathBuf {
    let path = dir.join(name);
    let files: [(&str, &[u8]); 2] = [("archive/data.pkl", pkl), ("archive/data/0", storage)];
    std::fs::write(&path, zip(&files, deflate)).unwrap();
    path
}

#[test]
fn crafted_pth_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = [0u8; 16];
    let cases = [
        (
            "short_args.pth",
            pickle(&[2, 2], 4, 3, 5),
            false,
            "_rebuild_tensor_v2 has 3 arguments",
        ),
        (
            "short_storage.pth",
            pickle(&[2, 2], 4, 6, 4),
            false,
            "storage descriptor has 4 items",
        ),
        // 2^31 elements on a storage of 4 (candle allocated 8 GiB).
        (
            "big_shape.pth",
            pickle(&[1 << 16, 1 << 15], 4, 6, 5),
            false,
            "its storage holds 4",
        ),
        // A storage claiming 2^30 elements over 16 bytes.
        (
            "big_storage.pth",
            pickle(&[1 << 30], 1 << 30, 6, 5),
            false,
            "holds 16 bytes",
        ),
        (
            "deflate.pth",
            pickle(&[2, 2], 4, 6, 5),
            true,
            "DEFLATE-compressed",
        ),
        (
            "scalar.pth",
            pickle(&[], 4, 6, 5),
            false,
            "not a 3-D convolution kernel",
        ),
    ];
    for (name, pkl, deflate, want) in cases {
        let path = pth(dir.path(), name, &pkl, &data, deflate);
        refused(
            &["import", "--pth", p(&path), "--out", p(&out)],
            &[name, want],
        );
        assert!(!out.exists(), "nothing written for {name}");
    }
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/c2f_tcn/model.pth")
}

fn edit_json(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("model.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn crafted_model_directories_and_bundles_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let out = syncseg(&["import", "--pth", p(&fixture()), "--out", p(&model)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = dir.path().join("m.safetensors");
    assert!(
        syncseg(&["export-model", "--model", p(&model), "--out", p(&bundle)])
            .status
            .success()
    );
    let pristine = std::fs::read_to_string(model.join("model.json")).unwrap();
    let x = dir.path().join("x.safetensors");
    let export = |m: &Path| {
        vec![
            "export-model".to_string(),
            "--model".into(),
            p(m).into(),
            "--out".into(),
            p(&x).into(),
        ]
    };
    let run = |m: &Path, want: &[&str]| {
        let args = export(m);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, want)
    };
    // 2^31 aborted ("memory allocation of 558345748480 bytes failed"), 2^62 panicked.
    for v in [1u64 << 31, 1 << 62] {
        edit_json(&model, |j| j["c2f"]["input_dim"] = v.into());
        run(&model, &["model.json", "input_dim"]);
        std::fs::write(model.join("model.json"), &pristine).unwrap();
        edit_json(&model, |j| j["c2f"]["encoder_widths"][2] = v.into());
        run(&model, &["model.json", "encoder_widths"]);
        std::fs::write(model.join("model.json"), &pristine).unwrap();
        edit_json(&model, |j| {
            j["adapter"] = serde_json::json!({"layers": 1, "heads": 1, "width": v, "ffn": 4})
        });
        run(&model, &["model.json", "adapter config"]);
        std::fs::write(model.join("model.json"), &pristine).unwrap();
    }
    for (edit, want) in [
        (
            serde_json::json!({"window_frames": 0}),
            "window_frames is 0",
        ),
        (
            serde_json::json!({"background": ["sky"]}),
            "background class",
        ),
        (
            serde_json::json!({"classes": ["a", "b", "a", "d", "e"]}),
            "given twice",
        ),
        (
            serde_json::json!({"classes": ["a", "b\nc", "d", "e", "f"]}),
            "newline",
        ),
    ] {
        edit_json(&model, |j| {
            for (k, v) in edit.as_object().unwrap() {
                j[k] = v.clone();
            }
        });
        run(&model, &["model.json", want]);
        std::fs::write(model.join("model.json"), &pristine).unwrap();
    }
    edit_json(&model, |j| j["classes"][1] = "".into());
    run(&model, &["model.json", "class 1 has an empty name"]);
    std::fs::write(model.join("model.json"), &pristine).unwrap();
    // The same description inside a bundle.
    let bytes = std::fs::read(&bundle).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(header.contains("\\\"input_dim\\\":12"), "{header}");
    for v in ["2147483648", "4611686018427387904"] {
        let mut h = header.replace("\\\"input_dim\\\":12", &format!("\\\"input_dim\\\":{v}"));
        while h.len() % 8 != 0 {
            h.push(' ');
        }
        let mut crafted = (h.len() as u64).to_le_bytes().to_vec();
        crafted.extend_from_slice(h.as_bytes());
        crafted.extend_from_slice(&bytes[8 + n..]);
        let path = dir.path().join("crafted.safetensors");
        std::fs::write(&path, crafted).unwrap();
        run(&path, &["crafted.safetensors", "input_dim"]);
    }
    // Weights changed after model.json was written (as a save interrupted
    // between the two leaves them).
    let weights = model.join("model.safetensors");
    let mut w = std::fs::read(&weights).unwrap();
    let last = w.len() - 1;
    w[last] ^= 1;
    std::fs::write(&weights, w).unwrap();
    run(&model, &["model.safetensors", "interrupted"]);
}
