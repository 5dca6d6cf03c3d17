//! The C2F-TCN's shape: what a model directory's JSON records about it.

use serde::{Deserialize, Serialize};

/// Channel widths and ensemble of a C2F-TCN.
///
/// The reference model is `encoder_widths = [256, 256, 256, 128, 128, 128,
/// 128]`, `decoder_width = 128`; other widths keep the structure (and the
/// parameter names) and scale its cost, e.g. for tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2fConfig {
    /// Input feature dimension D.
    pub input_dim: usize,
    /// Number of classes K.
    pub num_classes: usize,
    /// Output widths of `inc`, `down1` … `down6`.
    pub encoder_widths: [usize; 7],
    /// Output width of every up block.
    pub decoder_width: usize,
    /// Weights of the six heads in the ensemble, ordered `[y, y5, y4, y3, y2, y1]`
    /// (full resolution first). The sync release used six equal weights.
    pub ensemble_weights: [f32; 6],
}

impl C2fConfig {
    /// The reference architecture for `input_dim` features and `num_classes` classes.
    pub fn reference(input_dim: usize, num_classes: usize) -> Self {
        C2fConfig {
            input_dim,
            num_classes,
            encoder_widths: [256, 256, 256, 128, 128, 128, 128],
            decoder_width: 128,
            ensemble_weights: [1.0; 6],
        }
    }

    /// The reference architecture with every width multiplied by `scale`
    /// (rounded, at least 4): 0.5 gives a model with a quarter of the
    /// convolution cost, for quick runs on small data.
    pub fn scaled(input_dim: usize, num_classes: usize, scale: f64) -> Self {
        let mut cfg = C2fConfig::reference(input_dim, num_classes);
        let s = |w: usize| ((w as f64 * scale).round() as usize).max(4);
        cfg.encoder_widths = cfg.encoder_widths.map(s);
        cfg.decoder_width = s(cfg.decoder_width);
        cfg
    }

    /// Input widths of `up`, `up0` … `up4`: the previous decoder output (or
    /// the TPP output: bottleneck + 4 pooled maps) concatenated with the skip.
    pub fn up_in_widths(&self) -> [usize; 6] {
        let e = &self.encoder_widths;
        let d = self.decoder_width;
        [
            e[6] + 4 + e[5],
            d + e[4],
            d + e[3],
            d + e[2],
            d + e[1],
            d + e[0],
        ]
    }

    /// Checks that every width is positive and the ensemble has weight.
    pub fn validate(&self) -> crate::Result<()> {
        if self.input_dim == 0 || self.num_classes == 0 {
            return Err(crate::Error::invalid(
                "model config: input_dim and num_classes must be positive",
            ));
        }
        if self.encoder_widths.contains(&0) || self.decoder_width == 0 {
            return Err(crate::Error::invalid(
                "model config: every width must be positive",
            ));
        }
        let w: f32 = self.ensemble_weights.iter().sum();
        if w.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || self
                .ensemble_weights
                .iter()
                .any(|x| *x < 0.0 || !x.is_finite())
        {
            return Err(crate::Error::invalid(
                "model config: ensemble_weights must be non-negative with a positive sum",
            ));
        }
        Ok(())
    }
}
