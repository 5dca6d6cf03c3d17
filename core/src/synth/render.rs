//! From per-frame labels to per-view features.
//!
//! Each recording has one latent trajectory `z_t` (what is happening in the
//! scene), and each camera renders it through its own nonlinear map plus its
//! own nuisances:
//!
//! * **latent**: action = verb embedding + object embedding (so actions that
//!   share a verb or an object look alike), a within-action progress term
//!   (the start of "screw wheel" differs from its end), cross-fades over a
//!   few frames at boundaries, a per-recording style offset (performer,
//!   toy colour) and a slow drift, and small per-frame variability;
//! * **view map**: `x = gain · W2 · tanh(W1 z + c_rec + n_t)` with view
//!   matrices that share only part of their structure between exo and ego
//!   (`W = cos θ · W_shared + sin θ · W_own`), so an exo-trained model does
//!   not read ego features, yet both views carry the same scene content;
//! * **exo nuisances**: a per-recording camera-placement offset and mild
//!   sensor noise;
//! * **ego nuisances**: head motion (a slow random process entering before
//!   the nonlinearity, hence entangled with the content), occlusions (runs of
//!   frames where the hands hide the scene and the content is mostly
//!   replaced by the occluder), a per-recording headset offset and stronger
//!   sensor noise.
//!
//! Nothing here looks at the metric: the generator is parameterised by these
//! physical knobs only.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

use super::grammar::Vocabulary;

/// Knobs of the rendering.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RenderConfig {
    /// Feature dimension D of both views.
    pub dim: usize,
    /// Dimension of the latent scene state.
    pub latent_dim: usize,
    /// Hidden width of the views' nonlinear maps (the features' intrinsic rank).
    pub hidden_dim: usize,
    /// Angle θ (degrees) between exo and ego maps: 0 = same camera, 90 = unrelated.
    pub view_angle_deg: f64,
    /// Frames of cross-fade at each action boundary.
    pub blend_frames: usize,
    /// Per-recording style offset scale (latent units).
    pub style_scale: f64,
    /// Stationary std of the slow latent drift.
    pub drift_scale: f64,
    /// Per-frame latent variability.
    pub latent_noise: f64,
    /// Exo per-recording camera offset (pre-activation units).
    pub exo_offset: f64,
    /// Exo sensor noise (feature units).
    pub exo_noise: f64,
    /// Ego per-recording headset offset (pre-activation units).
    pub ego_offset: f64,
    /// Ego sensor noise (feature units).
    pub ego_noise: f64,
    /// Ego head-motion amplitude (pre-activation units).
    pub head_motion: f64,
    /// Fraction of ego frames occluded.
    pub occlusion_rate: f64,
    /// Median length of an occlusion, frames.
    pub occlusion_frames: f64,
}

impl RenderConfig {
    /// Checks every field (see [`super::SynthConfig::validate`]).
    pub fn validate(&self) -> crate::Result<()> {
        use super::{check_count, check_range};
        check_count("render.dim", self.dim, 1, 4096)?;
        check_count("render.latent_dim", self.latent_dim, 1, 1024)?;
        check_count("render.hidden_dim", self.hidden_dim, 1, 4096)?;
        check_range("render.view_angle_deg", self.view_angle_deg, 0.0, 90.0)?;
        check_count("render.blend_frames", self.blend_frames, 0, 10_000)?;
        for (field, v) in [
            ("render.style_scale", self.style_scale),
            ("render.drift_scale", self.drift_scale),
            ("render.latent_noise", self.latent_noise),
            ("render.exo_offset", self.exo_offset),
            ("render.exo_noise", self.exo_noise),
            ("render.ego_offset", self.ego_offset),
            ("render.ego_noise", self.ego_noise),
            ("render.head_motion", self.head_motion),
        ] {
            check_range(field, v, 0.0, 100.0)?;
        }
        check_range("render.occlusion_rate", self.occlusion_rate, 0.0, 1.0)?;
        check_range(
            "render.occlusion_frames",
            self.occlusion_frames,
            1.0,
            10_000.0,
        )?;
        Ok(())
    }
}

/// The fixed, per-dataset parameters of both cameras and of the latent space.
pub struct World {
    cfg: RenderConfig,
    /// Latent embedding of every class, `[K][L]`.
    class_embedding: Vec<Vec<f32>>,
    /// Within-action progress direction of every class, `[K][L]`.
    class_progress: Vec<Vec<f32>>,
    exo: ViewMap,
    ego: ViewMap,
    /// How head motion enters the ego map, `[H][HEAD_DOF]`.
    head_in: Vec<f32>,
}

const HEAD_DOF: usize = 4;

/// One camera's map from latent state to features.
struct ViewMap {
    /// `[H, L]` row-major.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `[D, H]` row-major.
    w2: Vec<f32>,
}

fn gaussian_vec<R: Rng + ?Sized>(n: usize, std: f64, rng: &mut R) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let g: f64 = StandardNormal.sample(rng);
            (g * std) as f32
        })
        .collect()
}

fn mix(shared: &[f32], own: &[f32], theta: f64) -> Vec<f32> {
    let (s, c) = theta.sin_cos();
    shared
        .iter()
        .zip(own)
        .map(|(a, b)| (c * *a as f64 + s * *b as f64) as f32)
        .collect()
}

impl World {
    /// Draws the world for `vocab` with the dataset's seed stream.
    /// `cfg` is valid ([`RenderConfig::validate`]; rendering panics otherwise).
    pub fn sample(cfg: &RenderConfig, vocab: &Vocabulary, rng: &mut impl Rng) -> Self {
        let l = cfg.latent_dim;
        let unit = 1.0 / (l as f64).sqrt();
        let verbs = gaussian_vec(8 * l, unit, rng);
        let objects = gaussian_vec(10 * l, unit, rng);
        let verb_progress = gaussian_vec(8 * l, unit, rng);
        let background = gaussian_vec(l, unit, rng);
        let mut class_embedding = Vec::with_capacity(vocab.len());
        let mut class_progress = Vec::with_capacity(vocab.len());
        for k in 0..vocab.len() {
            match (vocab.verb[k], vocab.object[k]) {
                (Some(v), Some(o)) => {
                    let e = (0..l)
                        .map(|i| 1.2 * verbs[v * l + i] + 1.2 * objects[o * l + i])
                        .collect();
                    class_embedding.push(e);
                    class_progress.push(verb_progress[v * l..(v + 1) * l].to_vec());
                }
                _ => {
                    // Background: idle hands, a weak and variable signal.
                    class_embedding.push(background.iter().map(|x| 0.6 * x).collect());
                    class_progress.push(vec![0.0; l]);
                }
            }
        }
        let h = cfg.hidden_dim;
        let d = cfg.dim;
        let theta = cfg.view_angle_deg.to_radians();
        // Latent states have norms near 2, so W1 entries of std 0.7 put the
        // pre-activations in tanh's curved range without saturating it.
        let w1_shared = gaussian_vec(h * l, 0.7, rng);
        let w2_shared = gaussian_vec(d * h, 1.0 / (h as f64).sqrt(), rng);
        let b1_shared = gaussian_vec(h, 0.3, rng);
        let view = |rng: &mut dyn rand::RngCore| ViewMap {
            w1: mix(&w1_shared, &gaussian_vec(h * l, 0.7, rng), theta),
            b1: mix(&b1_shared, &gaussian_vec(h, 0.3, rng), theta),
            w2: mix(
                &w2_shared,
                &gaussian_vec(d * h, 1.0 / (h as f64).sqrt(), rng),
                theta,
            ),
        };
        let exo = view(rng);
        let ego = view(rng);
        let head_in = gaussian_vec(h * HEAD_DOF, 1.0, rng);
        World {
            cfg: cfg.clone(),
            class_embedding,
            class_progress,
            exo,
            ego,
            head_in,
        }
    }

    /// The latent trajectory `[T][L]` of a recording with these labels.
    fn latent(&self, labels: &[u32], rng: &mut impl Rng) -> Vec<Vec<f32>> {
        let l = self.cfg.latent_dim;
        let t_len = labels.len();
        // Latent vectors are drawn with per-coordinate std `scale/√L`, so that
        // each knob is the typical norm of its term.
        let unit = 1.0 / (l as f64).sqrt();
        let style = gaussian_vec(l, self.cfg.style_scale * unit, rng);
        // Segment boundaries, for progress and cross-fades.
        let mut seg_start = vec![0usize; t_len];
        let mut seg_end = vec![t_len; t_len];
        let mut s = 0;
        for t in 1..=t_len {
            if t == t_len || labels[t] != labels[s] {
                for u in s..t {
                    seg_start[u] = s;
                    seg_end[u] = t;
                }
                s = t;
            }
        }
        let rho: f64 = 0.995;
        let drift_innov = self.cfg.drift_scale * unit * (1.0 - rho * rho).sqrt();
        let mut drift = gaussian_vec(l, self.cfg.drift_scale * unit, rng);
        let noise = Normal::new(0.0, self.cfg.latent_noise * unit).expect("std >= 0");
        let blend = self.cfg.blend_frames as f64;
        let mut out = Vec::with_capacity(t_len);
        for t in 0..t_len {
            let k = labels[t] as usize;
            let (a, b) = (seg_start[t], seg_end[t]);
            let progress = if b - a > 1 {
                (t - a) as f64 / (b - a - 1) as f64
            } else {
                0.5
            };
            let own = |i: usize, k: usize, p: f64| {
                self.class_embedding[k][i] as f64
                    + 0.8 * (2.0 * p - 1.0) * self.class_progress[k][i] as f64
            };
            // Cross-fade with the neighbouring segment near the boundaries:
            // transitions are ambiguous in real video too.
            let (other, w_other) = if blend > 0.0 && a > 0 && ((t - a) as f64) < blend {
                (
                    Some((labels[a - 1] as usize, 1.0)),
                    0.5 * (1.0 - (t - a) as f64 / blend),
                )
            } else if blend > 0.0 && b < t_len && ((b - 1 - t) as f64) < blend {
                (
                    Some((labels[b] as usize, 0.0)),
                    0.5 * (1.0 - (b - 1 - t) as f64 / blend),
                )
            } else {
                (None, 0.0)
            };
            for d in drift.iter_mut() {
                let g: f64 = StandardNormal.sample(rng);
                *d = (rho * *d as f64 + drift_innov * g) as f32;
            }
            let z: Vec<f32> = (0..l)
                .map(|i| {
                    let mut v = own(i, k, progress);
                    if let Some((ko, po)) = other {
                        v = (1.0 - w_other) * v + w_other * own(i, ko, po);
                    }
                    (v + style[i] as f64 + drift[i] as f64 + noise.sample(rng)) as f32
                })
                .collect();
            out.push(z);
        }
        out
    }

    /// Renders both views of one recording: `(exo, ego)`, each `[D, T]`
    /// row-major. `rng` must be the recording's own stream.
    pub fn render(&self, labels: &[u32], rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<f32>) {
        let z = self.latent(labels, rng);
        let t_len = labels.len();
        let h = self.cfg.hidden_dim;

        // Exo: fixed camera, per-recording placement offset, mild noise.
        let exo_offset = gaussian_vec(h, self.cfg.exo_offset, rng);
        let exo = self.project(&self.exo, &z, |_, hid| {
            for (x, o) in hid.iter_mut().zip(&exo_offset) {
                *x += o;
            }
        });
        let exo = self.add_noise(exo, self.cfg.exo_noise, rng);

        // Ego: head motion, occlusions, headset offset, stronger noise.
        let ego_offset = gaussian_vec(h, self.cfg.ego_offset, rng);
        let head = head_motion(t_len, rng);
        let occluded = occlusions(
            t_len,
            self.cfg.latent_dim,
            self.cfg.occlusion_rate,
            self.cfg.occlusion_frames,
            rng,
        );
        let z_ego: Vec<Vec<f32>> = z
            .iter()
            .zip(&occluded)
            .map(|(zt, occ)| match occ {
                Some(o) => zt.iter().zip(o).map(|(a, b)| 0.25 * a + 0.75 * b).collect(),
                None => zt.clone(),
            })
            .collect();
        let amp = self.cfg.head_motion as f32;
        let ego = self.project(&self.ego, &z_ego, |t, hid| {
            for (j, x) in hid.iter_mut().enumerate() {
                let weights = &self.head_in[j * HEAD_DOF..(j + 1) * HEAD_DOF];
                let m: f32 = weights.iter().zip(&head[t]).map(|(w, h)| w * h).sum();
                *x += ego_offset[j] + amp * m;
            }
        });
        let ego = self.add_noise(ego, self.cfg.ego_noise, rng);
        (exo, ego)
    }

    /// `x_t = gain · W2 tanh(W1 z_t + b1 + nuisance_t)`, written as `[D, T]`.
    fn project(
        &self,
        map: &ViewMap,
        z: &[Vec<f32>],
        nuisance: impl Fn(usize, &mut [f32]),
    ) -> Vec<f32> {
        let (d, h, l) = (self.cfg.dim, self.cfg.hidden_dim, self.cfg.latent_dim);
        let t_len = z.len();
        // tanh of a unit-ish Gaussian has a second moment near 0.4: rescale
        // so features have roughly unit variance, like normalised real ones.
        let gain = (1.0f32 / 0.4).sqrt();
        let mut out = vec![0f32; d * t_len];
        let mut hid = vec![0f32; h];
        for (t, zt) in z.iter().enumerate() {
            for ((x, row), b) in hid.iter_mut().zip(map.w1.chunks_exact(l)).zip(&map.b1) {
                *x = b + row.iter().zip(zt).map(|(a, b)| a * b).sum::<f32>();
            }
            nuisance(t, &mut hid);
            for x in hid.iter_mut() {
                *x = x.tanh();
            }
            for i in 0..d {
                let row = &map.w2[i * h..(i + 1) * h];
                out[i * t_len + t] = gain * row.iter().zip(&hid).map(|(a, b)| a * b).sum::<f32>();
            }
        }
        out
    }

    fn add_noise(&self, mut x: Vec<f32>, std: f64, rng: &mut impl Rng) -> Vec<f32> {
        let n = Normal::new(0.0, std).expect("std >= 0");
        for v in x.iter_mut() {
            *v += n.sample(rng) as f32;
        }
        x
    }
}

/// A slow head-motion process, `[T][HEAD_DOF]`, AR(1) with unit stationary std.
fn head_motion(t_len: usize, rng: &mut impl Rng) -> Vec<[f32; HEAD_DOF]> {
    let rho: f64 = 0.97;
    let innov = (1.0 - rho * rho).sqrt();
    let mut state = [0f64; HEAD_DOF];
    for s in state.iter_mut() {
        *s = StandardNormal.sample(rng);
    }
    (0..t_len)
        .map(|_| {
            let mut out = [0f32; HEAD_DOF];
            for (s, o) in state.iter_mut().zip(out.iter_mut()) {
                let g: f64 = StandardNormal.sample(rng);
                *s = rho * *s + innov * g;
                *o = *s as f32;
            }
            out
        })
        .collect()
}

/// Occlusion events: for each frame, the occluder's latent pattern if the
/// frame is occluded. Events start as a Poisson process sized so that about
/// `rate` of the frames are covered.
fn occlusions(
    t_len: usize,
    latent_dim: usize,
    rate: f64,
    median: f64,
    rng: &mut impl Rng,
) -> Vec<Option<Vec<f32>>> {
    let mut out = vec![None; t_len];
    if rate <= 0.0 || t_len == 0 {
        return out;
    }
    let start_prob = (rate / median).min(1.0);
    let len_dist = rand_distr::LogNormal::new(median.ln(), 0.5).expect("sigma >= 0");
    let mut t = 0;
    while t < t_len {
        if rng.random_bool(start_prob) {
            let len = (len_dist.sample(rng).round() as usize).max(1);
            // The occluder (a hand, the other arm) has its own appearance.
            let pattern = gaussian_vec(latent_dim, 1.0 / (latent_dim as f64).sqrt(), rng);
            for slot in out.iter_mut().skip(t).take(len) {
                *slot = Some(pattern.clone());
            }
            t += len;
        } else {
            t += 1;
        }
    }
    out
}
