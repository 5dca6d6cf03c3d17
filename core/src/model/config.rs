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

    /// Checks that every width is positive and at most [`MAX_DIM`], and that
    /// the ensemble has weight. Model files are untrusted: this runs before
    /// anything is allocated from the widths.
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
        let sizes = [
            ("input_dim", self.input_dim),
            ("num_classes", self.num_classes),
            ("decoder_width", self.decoder_width),
        ];
        let widths = self.encoder_widths.iter().map(|w| ("encoder_widths", *w));
        if let Some((name, v)) = sizes.into_iter().chain(widths).find(|(_, v)| *v > MAX_DIM) {
            return Err(crate::Error::invalid(format!(
                "model config: {name} {v} is larger than {MAX_DIM}, the most syncseg accepts"
            )));
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

    /// Every tensor of the state dict (but `num_batches_tracked`) with its
    /// shape, computed from the widths without allocating any of them, in
    /// the reference names. Call [`C2fConfig::validate`] first (the sizes
    /// are then far from overflowing). `model::checkpoint` checks a weights
    /// file against this list before building the network.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::with_capacity(197);
        let conv = |out: &mut Vec<(String, Vec<usize>)>, p: &str, cin: usize, cout: usize, k| {
            out.push((format!("{p}.weight"), vec![cout, cin, k]));
            out.push((format!("{p}.bias"), vec![cout]));
        };
        let double = |out: &mut Vec<(String, Vec<usize>)>, p: &str, cin: usize, cout: usize| {
            conv(out, &format!("{p}.conv.0"), cin, cout, 5);
            for bn in ["1", "4"] {
                for t in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((format!("{p}.conv.{bn}.{t}"), vec![cout]));
                }
            }
            conv(out, &format!("{p}.conv.3"), cout, cout, 5);
        };
        let e = self.encoder_widths;
        double(&mut out, "inc.conv", self.input_dim, e[0]);
        for i in 0..6 {
            double(
                &mut out,
                &format!("down{}.max_pool_conv.1", i + 1),
                e[i],
                e[i + 1],
            );
        }
        conv(&mut out, "tpp.conv", e[6], 1, 1);
        for (name, cin) in UP_NAMES.iter().zip(self.up_in_widths()) {
            double(&mut out, &format!("{name}.conv"), cin, self.decoder_width);
        }
        for name in HEAD_NAMES {
            conv(
                &mut out,
                &format!("{name}.conv"),
                self.decoder_width,
                self.num_classes,
                1,
            );
        }
        out.push(("weights".to_string(), vec![6]));
        out
    }
}

/// The largest width, feature dimension or class count a model may have
/// (2^20): far above any real C2F-TCN, small enough that products of a few
/// sizes cannot overflow.
pub const MAX_DIM: usize = 1 << 20;

/// The names of the up blocks and heads (as in `c2f_tcn`).
const UP_NAMES: [&str; 6] = ["up", "up0", "up1", "up2", "up3", "up4"];
const HEAD_NAMES: [&str; 6] = ["outcc0", "outcc1", "outcc2", "outcc3", "outcc4", "outcc"];

/// The number of scalars of `shapes`, or `None` past `u64`.
pub(crate) fn count_params(shapes: &[(String, Vec<usize>)]) -> Option<u64> {
    shapes.iter().try_fold(0u64, |acc, (_, s)| {
        let n = s
            .iter()
            .try_fold(1u64, |n, d| n.checked_mul(u64::try_from(*d).ok()?))?;
        acc.checked_add(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_shapes_match_the_network() {
        let cfg = C2fConfig::scaled(6, 3, 0.05);
        let (_, varmap) = crate::model::C2fTcn::init(&cfg, &candle_core::Device::Cpu).unwrap();
        let real = crate::model::var_shapes(&varmap);
        let mut want = cfg.param_shapes();
        want.sort();
        assert_eq!(want, real);
    }

    #[test]
    fn huge_sizes_are_refused() {
        let mut cfg = C2fConfig::scaled(6, 3, 0.05);
        cfg.input_dim = 1 << 31;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("input_dim 2147483648"), "{err}");
        let mut cfg = C2fConfig::scaled(6, 3, 0.05);
        cfg.encoder_widths[3] = 1 << 62;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("encoder_widths"), "{err}");
    }
}
