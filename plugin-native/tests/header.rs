//! The committed C header must be exactly what cbindgen generates from the
//! Rust code: a hand-edited header that drifts from the library shifts enum
//! values and struct layouts silently. `SYNCSEG_BLESS=1 cargo test -p
//! syncseg-native --test header` rewrites it after an intended change.

use std::path::PathBuf;

#[test]
fn header_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = root.join("include/syncseg.h");
    if std::env::var_os("SYNCSEG_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} differs from what cbindgen generates; run SYNCSEG_BLESS=1 cargo test -p syncseg-native --test header",
        path.display()
    );
}
