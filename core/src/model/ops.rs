//! The op interface every network is written against, once.
//!
//! A network's topology is a generic function over [`Ops`] (the C2F-TCN's
//! is [`super::c2f_tcn::c2f_forward`]); each backend decides how an op runs:
//!
//! * [`super::candle_ops::CandleOps`] — candle tensors with autodiff, the
//!   reference and the CPU path (train or eval mode);
//! * [`super::declare::Declare`] — shapes only: runs the topology to list
//!   the network's parameters (names, shapes, initialisation) without
//!   allocating, for model creation, file validation and device uploads;
//! * `syncseg_shaders::ops::Recorder` — records each op's wgpu kernels into
//!   a graph, and in training pushes its backward onto a tape.
//!
//! Tensors are per window `[C, T]` (channels, frames) over a batch the
//! backend knows. Parameters are named as in the reference PyTorch
//! `state_dict`, so the names are also the file format.

use crate::error::Result;

/// What [`Ops::attention`] adds to the score of a masked key. Large enough
/// that `exp(score − 1e9 − max)` is exactly 0 in f32 and f64, small enough
/// to stay finite in f32 (a window that is all padding gets a uniform
/// softmax rather than NaN).
pub const MASK_PENALTY: f64 = 1e9;

/// How a new [`LinearSpec`] layer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearInit {
    /// Weight and bias uniform in ±1/√cin (PyTorch's `nn.Linear`).
    Uniform,
    /// All zeros (the adapter's output projection, so that a fresh
    /// adapter is the identity).
    Zero,
}

/// A linear layer over the channels of every frame (a 1×1 convolution):
/// parameters `{name}.weight` `[cout, cin]` and `{name}.bias` `[cout]`,
/// as PyTorch's `nn.Linear`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearSpec {
    /// The parameter prefix.
    pub name: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// How a new layer starts.
    pub init: LinearInit,
}

impl LinearSpec {
    /// A linear layer initialised as PyTorch's.
    pub fn new(name: impl Into<String>, cin: usize, cout: usize) -> Self {
        LinearSpec {
            name: name.into(),
            cin,
            cout,
            init: LinearInit::Uniform,
        }
    }

    /// This layer starting at zero.
    pub fn zero(self) -> Self {
        LinearSpec {
            init: LinearInit::Zero,
            ..self
        }
    }
}

/// LayerNorm over the channels of every frame: parameters `{name}.weight`
/// (starting at 1) and `{name}.bias` (at 0), `[channels]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormSpec {
    /// The parameter prefix.
    pub name: String,
    /// Channels normalised together.
    pub channels: usize,
    /// Added to the variance.
    pub eps: f64,
}

/// The activation applied after a convolution (and its normalisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Identity.
    None,
    /// max(x, 0).
    Relu,
}

/// Zero frames before the first input frame of a `k`-tap convolution with
/// taps `dilation` apart: `dilation · (k − 1)` when causal (no tap reads a
/// later frame), `dilation · ⌊k/2⌋` when same-padded. Either way the output
/// has the input's length. Every backend pads by this.
pub fn left_pad(k: usize, dilation: usize, causal: bool) -> usize {
    if causal {
        dilation * k.saturating_sub(1)
    } else {
        dilation * (k / 2)
    }
}

/// One temporal convolution: its parameters `{name}.weight` `[C_out, C_in,
/// k]` and `{name}.bias` `[C_out]`, same padding, optionally followed by a
/// BatchNorm over valid frames (parameters `{norm}.weight`, `.bias`,
/// `.running_mean`, `.running_var`) and an activation.
///
/// Convolution + BatchNorm + activation is one op because backends run it
/// differently as a whole: folded into one convolution for inference,
/// three steps with batch statistics in training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvSpec {
    /// The convolution's parameter prefix.
    pub name: String,
    /// Input channels (all parts of a concatenated input).
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size (odd).
    pub k: usize,
    /// Frames between taps (padding `dilation · k/2` on both sides).
    pub dilation: usize,
    /// Causal: every tap reads frame `t` or earlier (zero padding
    /// `dilation · (k − 1)` on the left only), so output `t` depends on no
    /// later input: the convolutions of a streaming network.
    pub causal: bool,
    /// The BatchNorm's parameter prefix, if the convolution has one.
    pub norm: Option<String>,
    /// Applied last.
    pub act: Act,
}

impl ConvSpec {
    /// A convolution without normalisation or activation.
    pub fn plain(name: impl Into<String>, cin: usize, cout: usize, k: usize) -> Self {
        ConvSpec {
            name: name.into(),
            cin,
            cout,
            k,
            dilation: 1,
            causal: false,
            norm: None,
            act: Act::None,
        }
    }

    /// This convolution with taps `dilation` frames apart.
    pub fn dilated(self, dilation: usize) -> Self {
        ConvSpec { dilation, ..self }
    }

    /// This convolution causal (`true`) or same-padded.
    pub fn causal(self, causal: bool) -> Self {
        ConvSpec { causal, ..self }
    }

    /// Zero frames before the first input frame: `dilation · (k − 1)` for
    /// a causal convolution, `dilation · ⌊k/2⌋` for a same-padded one (whose
    /// output also has T frames).
    pub fn left_pad(&self) -> usize {
        left_pad(self.k, self.dilation, self.causal)
    }

    /// This convolution followed by a ReLU.
    pub fn relu(self) -> Self {
        ConvSpec {
            act: Act::Relu,
            ..self
        }
    }

    /// Convolution → BatchNorm `norm` → ReLU.
    pub fn bn_relu(
        name: impl Into<String>,
        norm: impl Into<String>,
        cin: usize,
        cout: usize,
        k: usize,
    ) -> Self {
        ConvSpec {
            norm: Some(norm.into()),
            act: Act::Relu,
            ..ConvSpec::plain(name, cin, cout, k)
        }
    }
}

/// The ops the networks use. Every op returns a new tensor; the backend
/// keeps what its backward needs.
pub trait Ops {
    /// A tensor handle (cheap to clone).
    type T: Clone;

    /// `(channels, frames)` of `x`.
    fn dims(&self, x: &Self::T) -> (usize, usize);

    /// `spec` over `x`; in training, BatchNorm statistics are taken over the
    /// frames `mask` (`[1, T]` of 0/1, `None`: all) marks real.
    fn conv(&mut self, spec: &ConvSpec, x: &Self::T, mask: Option<&Self::T>) -> Result<Self::T>;

    /// Concatenation along channels.
    fn cat(&mut self, parts: &[&Self::T]) -> Result<Self::T>;

    /// MaxPool1d with kernel = stride = `k` (⌊T/k⌋ frames).
    fn max_pool(&mut self, x: &Self::T, k: usize) -> Result<Self::T>;

    /// Linear resampling to `len` frames (`align_corners`), then zero
    /// padding on the right to `pad_to` ≥ `len` frames.
    fn resample(&mut self, x: &Self::T, len: usize, pad_to: usize) -> Result<Self::T>;

    /// `Σ wᵢ softmax(resample(headsᵢ, T)) / Σ w` over classes, at the frames
    /// T of the first head; heads of weight 0 are skipped.
    fn ensemble(&mut self, heads: &[Self::T], weights: &[f32]) -> Result<Self::T>;

    /// Softmax over channels at every frame.
    fn softmax(&mut self, x: &Self::T) -> Result<Self::T> {
        self.ensemble(std::slice::from_ref(x), &[1.0])
    }

    /// Element-wise `a + b` (a residual connection).
    fn add(&mut self, a: &Self::T, b: &Self::T) -> Result<Self::T>;

    /// `spec` over the channels of every frame.
    fn linear(&mut self, spec: &LinearSpec, x: &Self::T) -> Result<Self::T>;

    /// LayerNorm `spec` over the channels of every frame.
    fn layer_norm(&mut self, spec: &LayerNormSpec, x: &Self::T) -> Result<Self::T>;

    /// The exact (erf) GELU, element-wise.
    fn gelu(&mut self, x: &Self::T) -> Result<Self::T>;

    /// Multi-head scaled dot-product self-attention across the frames of
    /// each window. `qkv` `[3W, T]` holds q, k and v in rows `0..W`,
    /// `W..2W`, `2W..3W`; head `h` uses rows `h·W/heads .. (h+1)·W/heads`
    /// of each. Keys the mask `[1, T]` marks 0 get `−1e9` added to their
    /// scores; the result is `[W, T]`.
    fn attention(
        &mut self,
        qkv: &Self::T,
        heads: usize,
        key_mask: Option<&Self::T>,
    ) -> Result<Self::T>;

    /// SwiGLU's gate: `silu(a) · b` for `x` `[2H, T]` = `[a; b]`, giving
    /// `[H, T]`.
    fn swiglu(&mut self, x: &Self::T) -> Result<Self::T>;

    /// Frames `start .. start + len` of `x`.
    fn frames(&mut self, x: &Self::T, start: usize, len: usize) -> Result<Self::T>;

    /// `x` plus the table `c` (`[C, T]` row-major, the same for every
    /// window), e.g. a positional encoding.
    fn add_constant(&mut self, x: &Self::T, c: &[f64]) -> Result<Self::T>;

    /// Dropout with drop probability `p` in training (the kept elements
    /// scaled by 1/(1 − p), chosen by [`super::dropout::keep`] from the
    /// backend's seed for this step), the identity otherwise.
    fn dropout(&mut self, x: &Self::T, p: f32) -> Result<Self::T>;
}
