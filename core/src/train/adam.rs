//! Adam with L2 weight decay, as `torch.optim.Adam(weight_decay=…)` (the
//! reference C2F-TCN and the sync release): the decay is added to the
//! gradient before the moment updates, not decoupled as in AdamW.
//!
//! The moments are named after their variables so that they can be saved
//! with a checkpoint and training resumed exactly.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator guard.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The optimiser over a named set of variables.
pub struct Adam {
    cfg: AdamConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
}

impl Adam {
    /// An optimiser over `vars` (name, variable), sorted by name for determinism.
    pub fn new(mut vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        Ok(Adam {
            cfg,
            vars,
            m,
            v,
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Sets the learning rate (schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// One update from `grads`; variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            // Everything here is detached: the variable (and a gradient
            // computed from it) tracks candle's backprop graph, and a moment
            // built from it would keep the previous step's moment alive,
            // and that one the step before it — a chain growing by the
            // model's size every step (issue 19: ~0.85 GB per epoch).
            let w = var.as_tensor().detach();
            let g = g.detach();
            let g = if c.weight_decay != 0.0 {
                (g + (&w * c.weight_decay)?)?
            } else {
                g
            };
            let m = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let denom = ((&v / bc2)?.sqrt()? + c.eps)?;
            let update = ((&m / bc1)? / denom)?;
            var.set(&(w - (update * c.lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments and step count as named tensors, for a resumable checkpoint.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("adam.m.{name}"), self.m[i].clone());
            out.insert(format!("adam.v.{name}"), self.v[i].clone());
        }
        out.insert(
            "adam.step".to_string(),
            Tensor::new(
                &[self.step as f32],
                self.m
                    .first()
                    .map(|t| t.device())
                    .unwrap_or(&candle_core::Device::Cpu),
            )?,
        );
        Ok(out)
    }

    /// Restores what [`Adam::state`] saved; every variable must be present.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for (i, (name, _)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("adam.m.", &mut self.m[i]), ("adam.v.", &mut self.v[i])] {
                let key = format!("{prefix}{name}");
                let t = state.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimizer state lacks {key}"))
                })?;
                if t.shape() != slot.shape() {
                    candle_core::bail!(
                        "optimizer state {key} has shape {:?}, expected {:?}",
                        t.shape(),
                        slot.shape()
                    );
                }
                *slot = t.clone();
            }
        }
        let step = state
            .get("adam.step")
            .ok_or_else(|| candle_core::Error::Msg("optimizer state lacks adam.step".into()))?;
        self.step = step.to_vec1::<f32>()?.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The moments are plain values: a moment that tracked candle's
    /// backprop graph kept every earlier step's tensors alive (issue 19).
    #[test]
    fn moments_do_not_hold_the_graph() {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let cfg = AdamConfig {
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg).unwrap();
        for _ in 0..3 {
            let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        assert!(!opt.m[0].track_op() && !opt.v[0].track_op());
    }

    /// Two steps by hand on f(w) = w² with L2 0.1, lr 0.1.
    #[test]
    fn matches_hand_computed_torch_adam() {
        let w = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let cfg = AdamConfig {
            lr: 0.1,
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg).unwrap();
        // step 1: g = 2w + 0.1w = 2.1; m̂ = g, v̂ = g²; w -= 0.1·g/(|g|+eps) ≈ 0.9
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let w1 = w.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((w1 - 0.9).abs() < 1e-6, "{w1}");
        // step 2: g = 2.1·0.9 = 1.89; m = 0.9·0.21 + 0.1·1.89 … computed below.
        let g1 = 2.1f64;
        let g2 = 2.1 * 0.9;
        let m = 0.9 * (0.1 * g1) + 0.1 * g2;
        let v = 0.999 * (0.001 * g1 * g1) + 0.001 * g2 * g2;
        let mh = m / (1.0 - 0.81);
        let vh = v / (1.0 - 0.998001);
        let expect = 0.9 - 0.1 * mh / (vh.sqrt() + 1e-8);
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let w2 = w.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((w2 - expect).abs() < 1e-6, "{w2} vs {expect}");
    }
}
