//! [`Ops`] over shapes only: running a network's topology on [`Declare`]
//! lists its convolutions (and so every parameter's name and shape)
//! without allocating anything. Model creation, weight-file validation and
//! the device uploads all read the parameters from here, so the topology
//! is the one place they are written.

use super::ops::{ConvSpec, Ops};
use crate::error::{Error, Result};

/// Collects the convolutions a network applies, in first-use order.
#[derive(Debug, Default)]
pub struct Declare {
    specs: Vec<ConvSpec>,
}

impl Declare {
    /// An empty declaration.
    pub fn new() -> Self {
        Self::default()
    }

    /// The convolutions seen, each once (a layer applied several times,
    /// as the C2F-TCN's shared TPP convolution, is listed once).
    pub fn specs(&self) -> &[ConvSpec] {
        &self.specs
    }

    /// Every parameter as (name, shape), in first-use order: each
    /// convolution's weight and bias, then its BatchNorm's four tensors.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for s in &self.specs {
            out.push((format!("{}.weight", s.name), vec![s.cout, s.cin, s.k]));
            out.push((format!("{}.bias", s.name), vec![s.cout]));
            if let Some(norm) = &s.norm {
                for t in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((format!("{norm}.{t}"), vec![s.cout]));
                }
            }
        }
        out
    }
}

/// A tensor of [`Declare`]: `(channels, frames)`.
pub type Dims = (usize, usize);

impl Ops for Declare {
    type T = Dims;

    fn dims(&self, x: &Dims) -> Dims {
        *x
    }

    fn conv(&mut self, spec: &ConvSpec, x: &Dims, _mask: Option<&Dims>) -> Result<Dims> {
        if x.0 != spec.cin {
            return Err(Error::invalid(format!(
                "{}: {} input channels, the convolution takes {}",
                spec.name, x.0, spec.cin
            )));
        }
        match self.specs.iter().find(|s| s.name == spec.name) {
            Some(seen) if seen != spec => {
                return Err(Error::invalid(format!(
                    "{} is applied with two different shapes",
                    spec.name
                )))
            }
            Some(_) => {}
            None => self.specs.push(spec.clone()),
        }
        Ok((spec.cout, x.1))
    }

    fn cat(&mut self, parts: &[&Dims]) -> Result<Dims> {
        let t = parts.first().map_or(0, |p| p.1);
        if parts.iter().any(|p| p.1 != t) {
            return Err(Error::invalid("concatenating tensors of different lengths"));
        }
        Ok((parts.iter().map(|p| p.0).sum(), t))
    }

    fn max_pool(&mut self, x: &Dims, k: usize) -> Result<Dims> {
        Ok((x.0, x.1 / k))
    }

    fn resample(&mut self, x: &Dims, _len: usize, pad_to: usize) -> Result<Dims> {
        Ok((x.0, pad_to))
    }

    fn add(&mut self, a: &Dims, b: &Dims) -> Result<Dims> {
        if a != b {
            return Err(Error::invalid(format!(
                "adding tensors of shapes {a:?} and {b:?}"
            )));
        }
        Ok(*a)
    }

    fn dropout(&mut self, x: &Dims, _p: f32) -> Result<Dims> {
        Ok(*x)
    }

    fn ensemble(&mut self, heads: &[Dims], _weights: &[f32]) -> Result<Dims> {
        heads
            .first()
            .copied()
            .ok_or_else(|| Error::invalid("an ensemble of no heads"))
    }
}
