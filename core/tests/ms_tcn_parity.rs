//! MS-TCN++ parity with a PyTorch model of the release's architecture and
//! parameter names, through a checkpoint written by `torch.save` (fixture:
//! tests/fixtures/ms_tcn, made by make_fixture.py there).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use syncseg_core::model::ms_tcn::{MsTcn, MsTcnConfig};
use syncseg_core::model::pth::Pth;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/ms_tcn")
        .join(name)
}

fn imported() -> MsTcn {
    let cfg: MsTcnConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let path = fixture("model.pth");
    let tensors: HashMap<String, Tensor> = Pth::open(&path)
        .unwrap()
        .read_all(None)
        .unwrap()
        .into_iter()
        .collect();
    MsTcn::from_state_dict(&cfg, &tensors, &Device::Cpu, &path)
        .unwrap()
        .0
}

#[test]
fn eval_stages_match_pytorch() {
    let net = imported();
    for t in [37, 100] {
        let x = Tensor::read_npy(fixture(&format!("case_T{t}_input.npy"))).unwrap();
        let want = Tensor::read_npy(fixture(&format!("case_T{t}_stages.npy"))).unwrap();
        let got = Tensor::stack(&net.forward(&x, None).unwrap(), 0).unwrap();
        assert_eq!(got.dims(), want.dims());
        let err = (&got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(err <= 1e-4, "T = {t}: max |Δ| = {err:.2e}");
    }
}

#[test]
fn wrong_state_dicts_are_errors_naming_the_file_and_tensor() {
    let path = fixture("model.pth");
    let mut tensors: HashMap<String, Tensor> = Pth::open(&path)
        .unwrap()
        .read_all(None)
        .unwrap()
        .into_iter()
        .collect();
    let cfg: MsTcnConfig =
        serde_json::from_str(&std::fs::read_to_string(fixture("config.json")).unwrap()).unwrap();
    let wider = MsTcnConfig {
        f_maps: 16,
        ..cfg.clone()
    };
    let err = MsTcn::from_state_dict(&wider, &tensors, &Device::Cpu, &path)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.pth") && err.contains("shape"), "{err}");
    tensors.remove("Rs.1.conv_out.bias");
    let err = MsTcn::from_state_dict(&cfg, &tensors, &Device::Cpu, &path)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing tensor 'Rs.1.conv_out.bias'"), "{err}");
}
