use super::*;

fn small(seed: u64) -> Generator {
    Generator::new(SynthConfig::preset(Preset::Small, seed, Some(32)).unwrap())
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
