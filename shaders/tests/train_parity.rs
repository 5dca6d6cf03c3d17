//! The training step on the device against core's CPU step (candle's
//! autodiff and core's Adam) on the same model and batch: the loss, every
//! variable's gradient, the BatchNorm running statistics and the parameters
//! after Adam, for supervised segmentation, output distillation and the
//! adapter's feature distillation; then the loss curve over several steps.
//! The batch has a padded window and frames of an ignored class, so the
//! masks at every resolution matter.

mod common;

use std::collections::HashMap;

use candle_core::Device;
use common::gpu;
use syncseg_core::features::Features;
use syncseg_core::model::tolerance::Tolerance;
use syncseg_core::model::{C2fConfig, ModelMeta, SegModel};
use syncseg_core::train::adam::{Adam, AdamConfig};
use syncseg_core::train::objective::Objective;
use syncseg_core::train::supervised::{LabeledVideo, Supervised, SupervisedLoss};
use syncseg_core::train::windows::Window;
use syncseg_shaders::train::WgpuStepper;

const DIM: usize = 12;
const CLASSES: usize = 5;

/// Two videos whose features follow their (piecewise constant) labels.
fn videos() -> Vec<LabeledVideo> {
    [(700usize, 1u64), (450, 2)]
        .iter()
        .map(|&(frames, seed)| {
            let labels: Vec<u32> = (0..frames)
                .map(|t| ((t / 90 + seed as usize) % CLASSES) as u32)
                .collect();
            let noise = common::random(DIM * frames, seed);
            let mut data = vec![0f32; DIM * frames];
            for d in 0..DIM {
                for t in 0..frames {
                    let signal = if labels[t] as usize == d % CLASSES {
                        1.0
                    } else {
                        0.0
                    };
                    data[d * frames + t] = signal + 0.5 * noise[d * frames + t];
                }
            }
            LabeledVideo {
                name: format!("v{seed}"),
                features: Features::new(DIM, frames, data).unwrap(),
                labels,
            }
        })
        .collect()
}

fn model() -> SegModel {
    let names: Vec<String> = (0..CLASSES).map(|c| format!("c{c}")).collect();
    let meta = ModelMeta::new(
        C2fConfig::scaled(DIM, CLASSES, 0.0625),
        names,
        vec!["c0".into()],
        400,
    );
    SegModel::new_seeded(meta, &Device::Cpu, 11).unwrap()
}

fn values(model: &SegModel) -> HashMap<String, Vec<f32>> {
    let data = model.varmap.data().lock().unwrap();
    data.iter()
        .map(|(n, v)| {
            (
                n.clone(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect()
}

/// max |got − want| / max(|want|∞, floor) over one tensor (the suite's
/// one [`Tolerance`] rule).
fn rel(got: &[f32], want: &[f32], floor: f32) -> f32 {
    Tolerance {
        floor,
        ..Tolerance::PARITY
    }
    .error(got, want)
}

/// The bias of a block's convolution `conv.0` or `conv.3`, each followed by
/// a BatchNorm (`conv.1`, `conv.4`).
fn feeds_batch_norm(name: &str) -> bool {
    name.ends_with(".conv.0.bias") || name.ends_with(".conv.3.bias")
}

const ADAM: AdamConfig = AdamConfig {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 1e-4,
};

/// One step of `objective` on [`batch`] on each side: the CPU's loss and
/// gradients (not yet applied), and the device's step, whose loss must
/// equal the CPU's to 1e-4.
fn first_step(
    objective: &dyn Objective,
    cpu: &SegModel,
    dev: &SegModel,
    stepper: &mut WgpuStepper,
    what: &str,
) -> candle_core::backprop::GradStore {
    let batch = batch();
    let loss = objective.loss(cpu, &batch).unwrap();
    let cpu_loss = loss.to_scalar::<f32>().unwrap();
    let grads = loss.backward().unwrap();
    let described = objective.train_batch(dev, &batch).unwrap().unwrap();
    let gpu_loss = pollster::block_on(stepper.step_batch(&described)).unwrap();
    eprintln!("{what} loss: cpu {cpu_loss}, gpu {gpu_loss}");
    assert!(
        (gpu_loss - cpu_loss).abs() <= 1e-4 * cpu_loss.abs(),
        "{what} loss: gpu {gpu_loss} vs cpu {cpu_loss}"
    );
    grads
}

/// Compares every variable after one Adam step on each side. Running
/// statistics are exact functions of the batch (≤ 1e-4). A parameter moves
/// by ±lr·(m̂/√v̂) ≈ ±lr on a first step, so an element whose gradient is
/// within rounding of zero may step the other way: allowed for at most
/// 0.1 % of the elements, by at most 2·lr.
fn assert_same_after_adam(want: &HashMap<String, Vec<f32>>, got: &HashMap<String, Vec<f32>>) {
    let (mut flipped, mut total, mut worst_stat) = (0usize, 0usize, 0f32);
    for (name, w) in want {
        if name.ends_with(".running_mean") || name.ends_with(".running_var") {
            worst_stat = worst_stat.max(rel(&got[name], w, 1e-3));
            continue;
        }
        for (g, w) in got[name].iter().zip(w) {
            let d = (g - w).abs();
            assert!(d <= 2.0 * ADAM.lr as f32 + 1e-5, "{name}: {g} vs {w}");
            flipped += usize::from(d > 1e-5);
            total += 1;
        }
    }
    eprintln!("after Adam: running statistics {worst_stat:.2e}; {flipped} of {total} parameters stepped apart");
    assert!(
        worst_stat <= 1e-4,
        "running statistics differ by {worst_stat:.2e}"
    );
    assert!(
        flipped * 1000 <= total,
        "{flipped} of {total} parameters differ after Adam"
    );
}

/// The device's gradients against the CPU's over `vars` (those `skip`
/// names left out): the worst relative error and its variable, and the
/// variables the CPU gave no gradient (out of the loss's reach).
fn gradient_errors(
    stepper: &WgpuStepper,
    grads: &candle_core::backprop::GradStore,
    vars: &[(String, candle_core::Var)],
    skip: impl Fn(&str) -> bool,
) -> ((f32, String), Vec<String>) {
    let gpu_grads = pollster::block_on(stepper.gradients()).unwrap();
    assert_eq!(
        gpu_grads.len(),
        vars.len(),
        "one device gradient per variable"
    );
    let mut worst = (0f32, String::new());
    let mut unreached = Vec::new();
    for (name, var) in vars {
        let Some(want) = grads.get(var) else {
            unreached.push(name.clone());
            continue;
        };
        if skip(name) {
            continue;
        }
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let e = rel(&gpu_grads[name], &want, 1e-6);
        if e > worst.0 {
            worst = (e, name.clone());
        }
    }
    (worst, unreached)
}

/// Every one of `vars`' gradients on the device against the CPU's, within
/// 1e-4 of each tensor's largest (those `skip` names left out); returns the
/// variables out of the loss's reach.
fn assert_gradients_match(
    stepper: &WgpuStepper,
    grads: &candle_core::backprop::GradStore,
    vars: &[(String, candle_core::Var)],
    skip: impl Fn(&str) -> bool,
    what: &str,
) -> Vec<String> {
    let (worst, unreached) = gradient_errors(stepper, grads, vars, skip);
    eprintln!(
        "{what}: {} gradients, worst relative error {:.2e} ({}); {} variables unreached",
        vars.len() - unreached.len(),
        worst.0,
        worst.1,
        unreached.len()
    );
    assert!(
        worst.0 <= 1e-4,
        "{what}: gradient of {}: {:.2e}",
        worst.1,
        worst.0
    );
    unreached
}

/// A padded window (300 real frames of 400) and a full one; class 0 ignored.
fn batch() -> Vec<Window> {
    vec![
        Window {
            video: 0,
            start: 400,
            len: 300,
        },
        Window {
            video: 1,
            start: 0,
            len: 400,
        },
    ]
}

#[test]
fn one_step_matches_autodiff_gradients_statistics_and_adam() {
    skip_without_gpu!();
    let train = videos();
    let objective = Supervised::new(
        &train,
        &[],
        400,
        vec![0],
        SupervisedLoss::default(),
        Device::Cpu,
    );
    let (cpu, dev) = (model(), model());
    let mut stepper = WgpuStepper::new(gpu(), &dev, ADAM).unwrap();
    let grads = first_step(&objective, &cpu, &dev, &mut stepper, "segmentation");

    // Every trainable variable's gradient. A convolution bias right before
    // a BatchNorm has an exactly zero gradient (BatchNorm subtracts the
    // batch mean, padding frames included); both sides must agree it is
    // zero to rounding, relative to the largest gradient of the model.
    let gpu_grads = pollster::block_on(stepper.gradients()).unwrap();
    let trainable = syncseg_core::train::trainable_vars(&cpu);
    let cpu_grads: HashMap<String, Vec<f32>> = trainable
        .iter()
        .map(|(name, var)| {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("no CPU gradient for {name}"));
            (name.clone(), g.flatten_all().unwrap().to_vec1().unwrap())
        })
        .collect();
    let norm = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let global = cpu_grads.values().map(|g| norm(g)).fold(0f32, f32::max);
    for (name, want) in &cpu_grads {
        if feeds_batch_norm(name) {
            let got = &gpu_grads[name];
            let (c, g) = (norm(want) / global, norm(got) / global);
            assert!(
                c <= 1e-5 && g <= 1e-5,
                "{name} should be ~0: cpu {c:.1e}, gpu {g:.1e}"
            );
        }
    }
    let unreached = assert_gradients_match(
        &stepper,
        &grads,
        &trainable,
        feeds_batch_norm,
        "segmentation",
    );
    assert!(unreached.is_empty(), "{unreached:?}");

    // Adam on the CPU side, then every variable.
    let mut adam = Adam::new(trainable, ADAM).unwrap();
    adam.step(&grads).unwrap();
    let mut dev = dev;
    syncseg_core::train::step::Stepper::sync(&mut stepper, &mut dev).unwrap();
    assert_same_after_adam(&values(&cpu), &values(&dev));
}

/// MS-TCN++ (written once in core, recorded by the device): one supervised
/// step — the loss summed over every stage, dropout drawn from the model's
/// step count — against candle's autodiff: loss, every gradient, and every
/// parameter after Adam; offline and causal with a look-ahead (causal
/// convolutions, the input delayed and the outputs cropped).
#[test]
fn ms_tcn_step_matches_autodiff_with_dropout() {
    skip_without_gpu!();
    for lookahead in [None, Some(5)] {
        ms_tcn_step_case(lookahead);
    }
}

fn ms_tcn_step_case(lookahead: Option<usize>) {
    let train = videos();
    let objective = Supervised::new(
        &train,
        &[],
        400,
        vec![0],
        SupervisedLoss::default(),
        Device::Cpu,
    );
    let names: Vec<String> = (0..CLASSES).map(|c| format!("c{c}")).collect();
    let cfg = syncseg_core::model::ms_tcn::MsTcnConfig {
        f_maps: 8,
        layers_pg: 5,
        layers_r: 3,
        refinements: 2,
        causal: lookahead.map(|lookahead| syncseg_core::model::ms_tcn::Causal { lookahead }),
        ..syncseg_core::model::ms_tcn::MsTcnConfig::reference(DIM, CLASSES)
    };
    let meta = ModelMeta::new(cfg, names, vec!["c0".into()], 400);
    let make = || {
        let mut m = SegModel::new_seeded(meta.clone(), &Device::Cpu, 3).unwrap();
        m.meta.steps = 17;
        m
    };
    let (cpu, mut dev) = (make(), make());
    let mut stepper = WgpuStepper::new(gpu(), &dev, ADAM).unwrap();
    let grads = first_step(&objective, &cpu, &dev, &mut stepper, "ms-tcn");
    let trainable = syncseg_core::train::trainable_vars(&cpu);
    let unreached = assert_gradients_match(&stepper, &grads, &trainable, |_| false, "ms-tcn");
    assert!(unreached.is_empty(), "{unreached:?}");
    let mut adam = Adam::new(trainable, ADAM).unwrap();
    adam.step(&grads).unwrap();
    syncseg_core::train::step::Stepper::sync(&mut stepper, &mut dev).unwrap();
    assert_same_after_adam(&values(&cpu), &values(&dev));
}

/// Ten steps over the four windows of the two videos (batches of two, two
/// of them padded). Adam makes training chaotic at the rounding level: a
/// CPU run on inputs scaled by (1 + 1e-7) leaves the CPU's own curve by
/// ~1e-2 within ten steps (measured). The tolerance is stated against that
/// noise: the first three losses agree to 1e-4, and no step differs from
/// the CPU by more than 4× the perturbed CPU run's largest difference.
#[test]
fn loss_curve_follows_the_cpu_within_its_own_rounding_noise() {
    skip_without_gpu!();
    let train = videos();
    let mut perturbed = videos();
    for v in &mut perturbed {
        for x in v.features.data.iter_mut() {
            *x *= 1.0 + 1e-7;
        }
    }
    let objective = |videos| {
        Supervised::new(
            videos,
            &[],
            400,
            vec![0],
            SupervisedLoss::default(),
            Device::Cpu,
        )
    };
    let (exact, noisy) = (objective(&train), objective(&perturbed));
    let (cpu, cpu_noisy, dev) = (model(), model(), model());
    let windows = exact.windows().to_vec();
    let batches: Vec<&[Window]> = windows.chunks(2).collect();
    let mut adam = Adam::new(syncseg_core::train::trainable_vars(&cpu), ADAM).unwrap();
    let mut adam_noisy = Adam::new(syncseg_core::train::trainable_vars(&cpu_noisy), ADAM).unwrap();
    let mut stepper = WgpuStepper::new(gpu(), &dev, ADAM).unwrap();
    let (mut gpu_worst, mut noise) = (0f32, 1e-4f32);
    let mut curves = Vec::new();
    for step in 0..10 {
        let batch = batches[step % batches.len()];
        let loss = exact.loss(&cpu, batch).unwrap();
        let c = loss.to_scalar::<f32>().unwrap();
        adam.step(&loss.backward().unwrap()).unwrap();
        let loss = noisy.loss(&cpu_noisy, batch).unwrap();
        let n = loss.to_scalar::<f32>().unwrap();
        adam_noisy.step(&loss.backward().unwrap()).unwrap();
        let described = exact.train_batch(&dev, batch).unwrap().unwrap();
        let g = pollster::block_on(stepper.step_batch(&described)).unwrap();
        let (eg, en) = ((g - c).abs() / c, (n - c).abs() / c);
        eprintln!(
            "step {step}: cpu {c:.6}, gpu {g:.6} ({eg:.1e}), perturbed cpu {n:.6} ({en:.1e})"
        );
        if step < 3 {
            assert!(eg <= 1e-4, "step {step}: gpu {g} vs cpu {c}");
        }
        gpu_worst = gpu_worst.max(eg);
        noise = noise.max(en);
        curves.push((c, g));
    }
    assert!(
        gpu_worst <= 4.0 * noise,
        "the GPU curve leaves the CPU's by {gpu_worst:.1e}, its own rounding noise is {noise:.1e}"
    );
    // Both curves descend.
    let (first, last) = (curves[0], curves[9]);
    assert!(last.0 < first.0 && last.1 < first.1, "{curves:?}");
}

/// The recordings of [`videos`] seen by a teacher (their features) and a
/// student (the same features mixed with noise).
fn pairs() -> Vec<syncseg_core::train::distill::Pair> {
    use syncseg_core::train::distill::Pair;
    let teacher_view = videos();
    let student_view: Vec<Features> = teacher_view
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let noise = common::random(v.features.data.len(), 40 + i as u64);
            let data = v
                .features
                .data
                .iter()
                .zip(&noise)
                .map(|(x, n)| 0.7 * x + 0.3 * n)
                .collect();
            Features::new(DIM, v.features.frames, data).unwrap()
        })
        .collect();
    teacher_view
        .iter()
        .zip(student_view)
        .map(|(v, student)| Pair {
            name: v.name.clone(),
            teacher: v.features.clone(),
            student,
        })
        .collect()
}

/// The method's loss: the student (a fresh model) distils a teacher's head
/// logits at levels 1, 3 and 4 on other features of the same recordings.
/// Heads 0, 2 and 5 and the finest decoder stage get no gradient in
/// candle's autodiff, so core's Adam leaves them alone: the device must too.
#[test]
fn distillation_step_matches_autodiff_and_leaves_unreached_parameters() {
    skip_without_gpu!();
    use syncseg_core::train::distill::Distill;
    let pairs = pairs();
    let names: Vec<String> = (0..CLASSES).map(|c| format!("c{c}")).collect();
    let meta = ModelMeta::new(C2fConfig::scaled(DIM, CLASSES, 0.0625), names, vec![], 400);
    let teacher = SegModel::new_seeded(meta, &Device::Cpu, 5).unwrap();
    let objective = Distill::new(&teacher, &pairs, &[], vec![1, 3, 4], 400, Device::Cpu).unwrap();
    let (cpu, dev) = (model(), model());
    let mut stepper = WgpuStepper::new(gpu(), &dev, ADAM).unwrap();
    let grads = first_step(&objective, &cpu, &dev, &mut stepper, "distillation");

    let trainable = syncseg_core::train::trainable_vars(&cpu);
    let unreached = assert_gradients_match(
        &stepper,
        &grads,
        &trainable,
        feeds_batch_norm,
        "distillation",
    );
    // Three heads (weight, bias) and one decoder block (two convolutions
    // and two BatchNorms).
    assert_eq!(unreached.len(), 3 * 2 + 2 * 2 + 2 * 2, "{unreached:?}");

    let mut adam = Adam::new(trainable, ADAM).unwrap();
    adam.step(&grads).unwrap();
    let mut dev = dev;
    syncseg_core::train::step::Stepper::sync(&mut stepper, &mut dev).unwrap();
    let (want, got) = (values(&cpu), values(&dev));
    let untouched = values(&model());
    for name in &unreached {
        assert_eq!(got[name], untouched[name], "{name} moved on the device");
        assert_eq!(want[name], untouched[name], "{name} moved on the CPU");
    }
    assert_same_after_adam(&want, &got);
}

/// Feature distillation: one step of the adapter (two layers, two heads)
/// on a padded batch against candle's autodiff, then Adam. The adapter's
/// variables are randomised first: a fresh adapter's zero output projection
/// would stop every gradient but its own.
#[test]
fn adapter_step_matches_autodiff() {
    skip_without_gpu!();
    use syncseg_core::model::AdapterConfig;
    use syncseg_core::train::feature_distill::FeatureDistill;
    let pairs = pairs();
    let objective = FeatureDistill::new(&pairs, &[], 400, Device::Cpu);
    let cfg = AdapterConfig {
        layers: 2,
        heads: 2,
        width: 16,
        ffn: 32,
    };
    let with_adapter = || {
        let mut m = model();
        m.attach_adapter(&cfg, 3).unwrap();
        let (adapter, varmap) = m.adapter.as_ref().unwrap();
        for (i, (name, var)) in adapter.named_vars(varmap).unwrap().iter().enumerate() {
            let noise = common::random(var.elem_count(), 200 + i as u64);
            let base = if name.contains("norm") && name.ends_with(".weight") {
                1.0
            } else {
                0.0
            };
            let values: Vec<f32> = noise.iter().map(|v| base + 0.3 * v).collect();
            var.set(&candle_core::Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
        m
    };
    let (cpu, dev) = (with_adapter(), with_adapter());
    let adapter_values = |m: &SegModel| -> HashMap<String, Vec<f32>> {
        let (adapter, varmap) = m.adapter.as_ref().unwrap();
        adapter
            .named_vars(varmap)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    };
    let mut stepper = WgpuStepper::adapter(gpu(), &dev, ADAM).unwrap();
    let grads = first_step(&objective, &cpu, &dev, &mut stepper, "feature distillation");

    let (adapter, varmap) = cpu.adapter.as_ref().unwrap();
    let vars = adapter.named_vars(varmap).unwrap();
    let unreached = assert_gradients_match(&stepper, &grads, &vars, |_| false, "adapter");
    assert!(unreached.is_empty(), "{unreached:?}");

    let mut adam = Adam::new(vars, ADAM).unwrap();
    adam.step(&grads).unwrap();
    let before = values(&dev);
    let mut dev = dev;
    syncseg_core::train::step::Stepper::sync(&mut stepper, &mut dev).unwrap();
    assert_eq!(values(&dev), before, "the C2F-TCN must not move");
    assert_same_after_adam(&adapter_values(&cpu), &adapter_values(&dev));
}
