use super::*;

fn small(seed: u64) -> Generator {
    Generator::new(SynthConfig::preset(Preset::Small, seed, Some(32)).unwrap()).unwrap()
}

#[test]
fn deterministic_and_independent_per_recording() {
    let a = small(3);
    let b = small(3);
    let r1 = a.recording(5).unwrap();
    let r2 = b.recording(5).unwrap();
    assert_eq!(r1.labels, r2.labels);
    assert_eq!(r1.exo.data, r2.exo.data);
    assert_eq!(r1.ego.data, r2.ego.data);
    let other = small(4).recording(5).unwrap();
    assert_ne!(r1.exo.data, other.exo.data);
}

#[test]
fn splits_have_preset_sizes() {
    let g = small(1);
    let s = SynthConfig::preset(Preset::Small, 1, None).unwrap().splits;
    let count = |role| (0..g.len()).filter(|&i| g.role(i) == role).count();
    assert_eq!(count(SplitRole::Train), s.train);
    assert_eq!(count(SplitRole::Adapt), s.adapt);
    assert_eq!(count(SplitRole::Test), s.test);
}

/// Nearest-class-mean frame classifier: a crude probe of what the features
/// carry, independent of any TAS model.
fn centroids(recs: &[(Vec<u32>, Features)], k: usize) -> Vec<Vec<f64>> {
    let d = recs[0].1.dim;
    let mut sum = vec![vec![0f64; d]; k];
    let mut n = vec![0usize; k];
    for (labels, f) in recs {
        for (t, &l) in labels.iter().enumerate() {
            for (i, s) in sum[l as usize].iter_mut().enumerate() {
                *s += f.get(i, t).unwrap() as f64;
            }
            n[l as usize] += 1;
        }
    }
    for (s, n) in sum.iter_mut().zip(n) {
        for v in s.iter_mut() {
            *v /= n.max(1) as f64;
        }
    }
    sum
}

fn accuracy(c: &[Vec<f64>], recs: &[(Vec<u32>, Features)]) -> f64 {
    let (mut ok, mut all) = (0usize, 0usize);
    for (labels, f) in recs {
        for (t, &l) in labels.iter().enumerate() {
            let best = (0..c.len())
                .min_by(|&a, &b| {
                    let da: f64 = c[a]
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (f.get(i, t).unwrap() as f64 - m).powi(2))
                        .sum();
                    let db: f64 = c[b]
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (f.get(i, t).unwrap() as f64 - m).powi(2))
                        .sum();
                    da.total_cmp(&db)
                })
                .unwrap();
            ok += (best == l as usize) as usize;
            all += 1;
        }
    }
    ok as f64 / all as f64
}

/// The benchmark's reason to exist: exo knowledge does not transfer to ego
/// as is, yet ego frames carry the action (an ego-trained probe reads them).
#[test]
fn exo_probe_fails_on_ego_while_ego_probe_works() {
    let g = small(11);
    let k = g.class_names().len();
    let train: Vec<usize> = (0..g.len())
        .filter(|&i| g.role(i) == SplitRole::Train)
        .collect();
    let test: Vec<usize> = (0..g.len())
        .filter(|&i| g.role(i) == SplitRole::Test)
        .collect();
    let view = |ids: &[usize], ego: bool| -> Vec<(Vec<u32>, Features)> {
        ids.iter()
            .map(|&i| {
                let r = g.recording(i).unwrap();
                (r.labels, if ego { r.ego } else { r.exo })
            })
            .collect()
    };
    let exo_c = centroids(&view(&train, false), k);
    let ego_c = centroids(&view(&train, true), k);
    let exo_exo = accuracy(&exo_c, &view(&test, false));
    let exo_ego = accuracy(&exo_c, &view(&test, true));
    let ego_ego = accuracy(&ego_c, &view(&test, true));
    let chance = 1.0 / k as f64;
    eprintln!("probe accuracy: exo->exo {exo_exo:.3}, exo->ego {exo_ego:.3}, ego->ego {ego_ego:.3}, chance {chance:.3}");
    assert!(exo_exo > ego_ego, "exo should be the easier view");
    assert!(
        ego_ego > exo_ego + 0.1,
        "ego features must carry the actions"
    );
    assert!(
        exo_exo < 0.85,
        "frames alone must not make the task trivial"
    );
}

/// Issue 20: out-of-range values are a one-line error naming the field and
/// its range (a negative σ panicked in `LogNormal::new`, zero actions or
/// procedures in `random_range` or `% 0`).
#[test]
fn invalid_configs_name_the_field() {
    let base = || SynthConfig::preset(Preset::Small, 0, Some(8)).unwrap();
    let cases: Vec<(&str, SynthConfig)> = vec![
        ("grammar.duration_sigma", {
            let mut c = base();
            c.grammar.duration_sigma = -0.1;
            c
        }),
        ("grammar.speed_sigma", {
            let mut c = base();
            c.grammar.speed_sigma = f64::NAN;
            c
        }),
        ("render.ego_noise", {
            let mut c = base();
            c.render.ego_noise = -1.0;
            c
        }),
        ("render.occlusion_frames", {
            let mut c = base();
            c.render.occlusion_frames = f64::INFINITY;
            c
        }),
        ("actions", {
            let mut c = base();
            c.actions = 0;
            c
        }),
        ("grammar.procedures", {
            let mut c = base();
            c.grammar.procedures = 0;
            c
        }),
        ("grammar.steps.1", {
            let mut c = base();
            c.grammar.steps = (5, 2);
            c
        }),
        ("step_frames.0", {
            let mut c = base();
            c.step_frames = (0.0, 10.0);
            c
        }),
        ("grammar.gap_prob", {
            let mut c = base();
            c.grammar.gap_prob = 1.5;
            c
        }),
        ("splits.test", {
            let mut c = base();
            c.splits.test = 0;
            c
        }),
        ("render.latent_dim", {
            let mut c = base();
            c.render.latent_dim = 0;
            c
        }),
        ("GiB", {
            let mut c = base();
            c.grammar.steps = (1000, 1000);
            c.step_frames = (1000.0, 100_000.0);
            c.render.dim = 4096;
            c
        }),
    ];
    for (field, cfg) in cases {
        let err = Generator::new(cfg).err().expect(field).to_string();
        assert!(
            err.contains(field) && err.contains("allowed") && !err.contains('\n'),
            "{field}: {err}"
        );
    }
}

mod random_configs {
    use super::*;
    use proptest::prelude::*;

    /// Small valid values, and every kind of invalid one.
    fn real(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
        prop_oneof![
            60 => lo..=hi,
            1 => prop::sample::select(vec![
                -1.0,
                0.0,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                1e300,
                -1e-300,
            ]),
        ]
    }

    fn count(lo: usize, hi: usize) -> impl Strategy<Value = usize> {
        prop_oneof![
            60 => lo..=hi,
            1 => prop::sample::select(vec![0, usize::MAX, usize::MAX / 2, 1 << 40]),
        ]
    }

    fn config() -> impl Strategy<Value = SynthConfig> {
        let top = (
            count(2, 6),
            (real(1.0, 15.0), real(15.0, 30.0)),
            real(1.0, 60.0),
            (
                count(1, 2),
                count(1, 2),
                count(1, 2),
                count(1, 2),
                count(1, 2),
            ),
        );
        let grammar = (
            count(1, 3),
            (count(1, 3), count(3, 5)),
            (
                real(0.0, 1.0),
                real(0.0, 1.0),
                real(0.0, 1.0),
                real(0.0, 1.0),
                real(0.0, 1.0),
            ),
            real(1.0, 10.0),
            (real(0.0, 1.0), real(0.0, 1.0)),
        );
        let render = (
            (count(1, 8), count(1, 8), count(1, 8), count(0, 6)),
            real(0.0, 90.0),
            prop::collection::vec(real(0.0, 2.0), 8),
            (real(0.0, 1.0), real(1.0, 20.0)),
        );
        (top, grammar, render, any::<u64>()).prop_map(|(top, g, r, seed)| {
            let mut c = SynthConfig::preset(Preset::Small, seed, Some(8)).unwrap();
            (c.actions, c.step_frames, c.fps) = (top.0, top.1, top.2);
            let s = top.3;
            c.splits = SplitSizes {
                train: s.0,
                val: s.1,
                adapt: s.2,
                adapt_val: s.3,
                test: s.4,
            };
            let gr = &mut c.grammar;
            (gr.procedures, gr.steps) = (g.0, g.1);
            (
                gr.optional_prob,
                gr.skip_prob,
                gr.swappable_prob,
                gr.swap_prob,
                gr.gap_prob,
            ) = g.2;
            gr.gap_median_frames = g.3;
            (gr.duration_sigma, gr.speed_sigma) = g.4;
            let re = &mut c.render;
            (re.dim, re.latent_dim, re.hidden_dim, re.blend_frames) = r.0;
            re.view_angle_deg = r.1;
            let v = &r.2;
            (
                re.style_scale,
                re.drift_scale,
                re.latent_noise,
                re.exo_offset,
            ) = (v[0], v[1], v[2], v[3]);
            (re.exo_noise, re.ego_offset, re.ego_noise, re.head_motion) = (v[4], v[5], v[6], v[7]);
            (re.occlusion_rate, re.occlusion_frames) = r.3;
            c
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// A random configuration is an error or a dataset: never a panic
        /// (about 60% of them are valid, each field invalid in one of 60).
        #[test]
        fn never_panics(cfg in config()) {
            let dim = cfg.render.dim;
            match Generator::new(cfg) {
                Err(e) => prop_assert!(e.to_string().starts_with("synthetic config: ")),
                Ok(gen) => {
                    for i in 0..gen.len().min(2) {
                        let rec = gen.recording(i).unwrap();
                        prop_assert!(!rec.labels.is_empty());
                        prop_assert_eq!(rec.exo.frames, rec.labels.len());
                        prop_assert_eq!(rec.ego.dim, dim);
                        prop_assert!(rec.exo.data.iter().chain(&rec.ego.data).all(|v| v.is_finite()));
                        let classes = gen.class_names().len() as u32;
                        prop_assert!(rec.labels.iter().all(|&l| l < classes));
                    }
                }
            }
        }
    }
}
