//! C2F-TCN parity with the reference PyTorch model, through a checkpoint
//! written by `torch.save` (fixture: tests/fixtures/c2f_tcn, made by
//! make_fixture.py there).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use syncseg_core::model::{BackboneConfig, C2fConfig, Mode, SegModel};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/c2f_tcn")
        .join(name)
}

fn npy(name: &str) -> Tensor {
    Tensor::read_npy(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn imported() -> SegModel {
    let mut model = SegModel::import_pth(fixture("model.pth"), None, &Device::Cpu).unwrap();
    let cfg: C2fConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    // Shapes alone determine everything but the ensemble weights.
    let BackboneConfig::C2fTcn(mut from_shapes) = model.meta.backbone.clone() else {
        panic!("imported as {}", model.meta.backbone.kind());
    };
    from_shapes.ensemble_weights = cfg.ensemble_weights;
    assert_eq!(from_shapes, cfg);
    model.meta.backbone = BackboneConfig::C2fTcn(cfg);
    model.rebuild().unwrap();
    assert_eq!(
        model.meta.steps, 1234,
        "num_batches_tracked is carried over"
    );
    model
}

#[test]
fn eval_forward_matches_pytorch() {
    let model = imported();
    for t in [400, 517, 1000] {
        let x = npy(&format!("case_T{t}_input.npy")).unsqueeze(0).unwrap();
        let out = model.net.c2f().unwrap().forward(&x, Mode::Eval).unwrap();
        for (head, name) in out.heads.iter().zip(["y", "y5", "y4", "y3", "y2", "y1"]) {
            let want = npy(&format!("case_T{t}_{name}.npy"));
            let err = max_abs_diff(&head.squeeze(0).unwrap(), &want);
            assert!(err < 1e-4, "T={t} head {name}: max |diff| {err}");
        }
        let feat = max_abs_diff(
            &out.features.squeeze(0).unwrap(),
            &npy(&format!("case_T{t}_feat.npy")),
        );
        assert!(feat < 1e-4, "T={t} features: {feat}");
        let probs = model
            .net
            .c2f()
            .unwrap()
            .ensemble(&out.heads)
            .unwrap()
            .squeeze(0)
            .unwrap();
        let err = max_abs_diff(&probs, &npy(&format!("case_T{t}_probs.npy")));
        assert!(err < 1e-5, "T={t} ensemble: {err}");
    }
}

#[test]
fn train_mode_batch_norm_matches_pytorch() {
    let model = imported();
    let x = npy("case_T400_input.npy").unsqueeze(0).unwrap();
    let out = model
        .net
        .c2f()
        .unwrap()
        .forward(&x, Mode::Train { mask: None })
        .unwrap();
    let err = max_abs_diff(
        &out.heads[0].squeeze(0).unwrap(),
        &npy("case_T400_train_y.npy"),
    );
    assert!(err < 1e-4, "train-mode y: {err}");
}

#[test]
fn reference_state_dict_names_and_shapes() {
    let listing = std::fs::read_to_string(fixture("reference_state_dict_D1024_K33.txt")).unwrap();
    let mut want: Vec<(String, Vec<usize>)> = listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, shape) = l.split_once(' ').unwrap();
            let dims = shape
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().unwrap())
                .collect();
            (name.to_string(), dims)
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), 197);
    let meta = syncseg_core::model::ModelMeta::new(
        C2fConfig::reference(1024, 33),
        (0..33).map(|i| format!("c{i}")).collect(),
        vec![],
        600,
    );
    let model = SegModel::new(meta, &Device::Cpu).unwrap();
    let mut got: Vec<(String, Vec<usize>)> = model
        .state_dict()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.dims().to_vec()))
        .collect();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn save_load_round_trip_keeps_outputs() {
    let model = imported();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    model.save(&path).unwrap();
    // Saving again over an existing directory replaces it whole.
    model.save(&path).unwrap();
    let back = SegModel::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.meta, model.meta);
    let x = npy("case_T400_input.npy").unsqueeze(0).unwrap();
    let a = model.net.forward(&x, Mode::Eval, 0).unwrap();
    let b = back.net.forward(&x, Mode::Eval, 0).unwrap();
    assert_eq!(max_abs_diff(&a[0], &b[0]), 0.0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no staging folder left"
    );
}

#[test]
fn bad_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.pth");
    let bytes = std::fs::read(fixture("model.pth")).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let err = SegModel::import_pth(&corrupt, None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("corrupt.pth") && err.contains("not a readable PyTorch checkpoint"),
        "{err}"
    );
    assert!(!err.contains('\n'));

    let err = SegModel::import_pth(fixture("model_wrong_names.pth"), None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model_wrong_names.pth") && err.contains("inc.conv.conv.0.weight"),
        "{err}"
    );

    let err = SegModel::import_pth(dir.path().join("absent.pth"), None, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("absent.pth"), "{err}");

    let classes = Some(vec!["a".to_string(); 3]);
    let err = SegModel::import_pth(fixture("model.pth"), classes, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("5 classes") && err.contains("names 3"),
        "{err}"
    );

    // A model directory with garbage weights.
    let model_dir = dir.path().join("m");
    imported().save(&model_dir).unwrap();
    std::fs::write(model_dir.join("model.safetensors"), b"garbage").unwrap();
    let err = SegModel::load(&model_dir, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn single_file_bundle_round_trip() {
    let mut model = imported();
    model
        .attach_adapter(&syncseg_core::model::AdapterConfig::small(), 1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.syncseg");
    model.save_bundle(&path).unwrap();
    let back = SegModel::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.meta, model.meta);
    assert!(back.adapter.is_some());
    let x = npy("case_T400_input.npy").unsqueeze(0).unwrap();
    let a = model
        .net
        .forward(&model.adapt(&x, None).unwrap(), Mode::Eval, 0)
        .unwrap();
    let b = back
        .net
        .forward(&back.adapt(&x, None).unwrap(), Mode::Eval, 0)
        .unwrap();
    assert_eq!(max_abs_diff(&a[0], &b[0]), 0.0);

    // A plain safetensors file (the directory's weights) is not a bundle.
    let plain = dir.path().join("plain.safetensors");
    candle_core::safetensors::save(&model.state_dict().unwrap(), &plain).unwrap();
    let err = SegModel::load(&plain, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("plain.safetensors") && err.contains("not a syncseg model bundle"),
        "{err}"
    );
    std::fs::write(&plain, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let err = SegModel::load(&plain, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("plain.safetensors"), "{err}");
}
