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
    /// Kernels (= strides) of the TPP block's max-pools on the bottleneck.
    /// Written to `model.json` only when not the reference's.
    #[serde(
        default = "reference_tpp_pools",
        skip_serializing_if = "is_reference_tpp_pools"
    )]
    pub tpp_pools: Vec<usize>,
}

/// The reference TPP pools.
pub const TPP_POOLS: [usize; 4] = [2, 3, 5, 6];

fn reference_tpp_pools() -> Vec<usize> {
    TPP_POOLS.to_vec()
}

fn is_reference_tpp_pools(pools: &Vec<usize>) -> bool {
    pools.as_slice() == TPP_POOLS
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
            tpp_pools: reference_tpp_pools(),
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
    /// the TPP output: bottleneck + one map per pool) concatenated with the skip.
    pub fn up_in_widths(&self) -> [usize; 6] {
        let e = &self.encoder_widths;
        let d = self.decoder_width;
        [
            e[6] + self.tpp_pools.len() + e[5],
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
        // The bottleneck of a MIN_FRAMES window has 6 frames.
        if self.tpp_pools.is_empty()
            || self.tpp_pools.len() > 16
            || self.tpp_pools.iter().any(|&k| !(1..=6).contains(&k))
        {
            return Err(crate::Error::invalid(format!(
                "model config: tpp_pools {:?}: 1 to 16 pools, each 1 … 6",
                self.tpp_pools
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
    /// shape, in the reference names, from the topology
    /// ([`super::c2f_tcn::c2f_specs`]) without allocating any of them. Call
    /// [`C2fConfig::validate`] first. `model::checkpoint` checks a weights
    /// file against this list before building the network.
    pub fn param_shapes(&self) -> crate::Result<Vec<(String, Vec<usize>)>> {
        let mut out = super::c2f_tcn::c2f_specs(self)?.param_shapes();
        out.push((super::c2f_tcn::UNUSED_WEIGHTS.to_string(), vec![6]));
        Ok(out)
    }
}

/// The largest width, feature dimension or class count a model may have
/// (2^20): far above any real C2F-TCN, small enough that products of a few
/// sizes cannot overflow.
pub const MAX_DIM: usize = 1 << 20;

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
        let mut want = cfg.param_shapes().unwrap();
        assert_eq!(want.len(), 171); // 197 with the 26 num_batches_tracked
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
