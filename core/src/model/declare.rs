//! [`Ops`] over shapes only: running a network's topology on [`Declare`]
//! lists its layers (and so every parameter's name and shape) without
//! allocating anything. Model creation, weight-file validation and the
//! device uploads all read the parameters from here, so the topology is
//! the one place they are written.

use super::ops::{ConvSpec, LayerNormSpec, LinearSpec, Ops};
use crate::error::{Error, Result};

/// One parameterised layer of a network.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// A temporal convolution (with its BatchNorm).
    Conv(ConvSpec),
    /// A linear layer over channels.
    Linear(LinearSpec),
    /// A LayerNorm over channels.
    LayerNorm(LayerNormSpec),
}

impl Layer {
    fn name(&self) -> &str {
        match self {
            Layer::Conv(s) => &s.name,
            Layer::Linear(s) => &s.name,
            Layer::LayerNorm(s) => &s.name,
        }
    }

    /// Its parameters as (name, shape): a convolution's weight and bias,
    /// then its BatchNorm's four tensors; a linear layer's weight and bias;
    /// a LayerNorm's weight and bias.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        match self {
            Layer::Conv(s) => {
                out.push((format!("{}.weight", s.name), vec![s.cout, s.cin, s.k]));
                out.push((format!("{}.bias", s.name), vec![s.cout]));
                if let Some(norm) = &s.norm {
                    for t in ["weight", "bias", "running_mean", "running_var"] {
                        out.push((format!("{norm}.{t}"), vec![s.cout]));
                    }
                }
            }
            Layer::Linear(s) => {
                out.push((format!("{}.weight", s.name), vec![s.cout, s.cin]));
                out.push((format!("{}.bias", s.name), vec![s.cout]));
            }
            Layer::LayerNorm(s) => {
                out.push((format!("{}.weight", s.name), vec![s.channels]));
                out.push((format!("{}.bias", s.name), vec![s.channels]));
            }
        }
        out
    }
}

/// Collects the layers a network applies, in first-use order.
#[derive(Debug, Default)]
pub struct Declare {
    layers: Vec<Layer>,
    specs: Vec<ConvSpec>,
}

impl Declare {
    /// An empty declaration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every layer seen, each once (a layer applied several times, as the
    /// C2F-TCN's shared TPP convolution, is listed once).
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The convolutions among [`Declare::layers`].
    pub fn specs(&self) -> &[ConvSpec] {
        &self.specs
    }

    /// The linear layers among [`Declare::layers`].
    pub fn linears(&self) -> impl Iterator<Item = &LinearSpec> {
        self.layers.iter().filter_map(|l| match l {
            Layer::Linear(s) => Some(s),
            _ => None,
        })
    }

    /// The LayerNorms among [`Declare::layers`].
    pub fn layer_norms(&self) -> impl Iterator<Item = &LayerNormSpec> {
        self.layers.iter().filter_map(|l| match l {
            Layer::LayerNorm(s) => Some(s),
            _ => None,
        })
    }

    /// Every parameter as (name, shape), layer by layer in first-use order.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.layers.iter().flat_map(Layer::param_shapes).collect()
    }

    /// Records `layer`; the same name twice must be the same layer.
    fn declare(&mut self, layer: Layer) -> Result<()> {
        match self.layers.iter().find(|l| l.name() == layer.name()) {
            Some(seen) if *seen != layer => Err(Error::invalid(format!(
                "{} is applied with two different shapes",
                layer.name()
            ))),
            Some(_) => Ok(()),
            None => {
                if let Layer::Conv(s) = &layer {
                    self.specs.push(s.clone());
                }
                self.layers.push(layer);
                Ok(())
            }
        }
    }
}

/// A tensor of [`Declare`]: `(channels, frames)`.
pub type Dims = (usize, usize);

fn same(a: &Dims, b: &Dims) -> Result<()> {
    if a != b {
        return Err(Error::invalid(format!(
            "adding tensors of shapes {a:?} and {b:?}"
        )));
    }
    Ok(())
}

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
        self.declare(Layer::Conv(spec.clone()))?;
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
        same(a, b)?;
        Ok(*a)
    }

    fn linear(&mut self, spec: &LinearSpec, x: &Dims) -> Result<Dims> {
        if x.0 != spec.cin {
            return Err(Error::invalid(format!(
                "{}: {} input channels, the layer takes {}",
                spec.name, x.0, spec.cin
            )));
        }
        self.declare(Layer::Linear(spec.clone()))?;
        Ok((spec.cout, x.1))
    }

    fn layer_norm(&mut self, spec: &LayerNormSpec, x: &Dims) -> Result<Dims> {
        if x.0 != spec.channels {
            return Err(Error::invalid(format!(
                "{}: {} channels, the norm takes {}",
                spec.name, x.0, spec.channels
            )));
        }
        self.declare(Layer::LayerNorm(spec.clone()))?;
        Ok(*x)
    }

    fn gelu(&mut self, x: &Dims) -> Result<Dims> {
        Ok(*x)
    }

    fn attention(&mut self, qkv: &Dims, heads: usize, key_mask: Option<&Dims>) -> Result<Dims> {
        if heads == 0 || !qkv.0.is_multiple_of(3 * heads) {
            return Err(Error::invalid(format!(
                "attention over {} rows: not q, k and v of {heads} equal heads",
                qkv.0
            )));
        }
        if let Some(m) = key_mask {
            same(m, &(1, qkv.1))?;
        }
        Ok((qkv.0 / 3, qkv.1))
    }

    fn swiglu(&mut self, x: &Dims) -> Result<Dims> {
        if !x.0.is_multiple_of(2) {
            return Err(Error::invalid(format!(
                "SwiGLU over {} channels: not two halves",
                x.0
            )));
        }
        Ok((x.0 / 2, x.1))
    }

    fn frames(&mut self, x: &Dims, start: usize, len: usize) -> Result<Dims> {
        if start + len > x.1 {
            return Err(Error::invalid(format!(
                "frames {start} .. {} of a {}-frame tensor",
                start + len,
                x.1
            )));
        }
        Ok((x.0, len))
    }

    fn add_constant(&mut self, x: &Dims, c: &[f64]) -> Result<Dims> {
        if c.len() != x.0 * x.1 {
            return Err(Error::invalid(format!(
                "a table of {} values added to a {} × {} tensor",
                c.len(),
                x.0,
                x.1
            )));
        }
        Ok(*x)
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
