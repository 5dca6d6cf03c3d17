//! What one training step needs in memory, checked before a run
//! starts so that a batch that cannot fit is an error with a remedy, not
//! the kernel's OOM killer an hour in.
//!
//! Peak memory of a run (BENCHMARKS.md, "Memory"):
//!
//! ```text
//! peak ≈ program + 4·P·4 bytes (weights, gradients, Adam's m and v)
//!        + α · 4·B·T·S(cfg) bytes (one batch's activations and their gradients)
//!        + the features held in memory (mapped files: only the pages in use)
//! ```
//!
//! `S(cfg)` counts the floats per frame the forward keeps for the backward
//! (im2col inputs, convolution, BatchNorm and ReLU outputs, concatenations,
//! the heads) at every resolution; α = 5 was measured on candle's CPU
//! backend (its backward holds the gradients and temporaries of about four
//! more such tensors at the peak): full width, D = 1024, B = 1, 4, 8.

use crate::error::{Error, Result};
use crate::model::ms_tcn::MsTcnConfig;
use crate::model::{BackboneConfig, C2fConfig};

/// Measured ratio of a step's peak activation memory to the floats the
/// forward keeps (see the module doc).
const ALPHA: f64 = 5.0;

/// Floats per frame of a window that a training forward keeps.
pub fn kept_floats_per_frame(cfg: &BackboneConfig) -> f64 {
    match cfg {
        BackboneConfig::C2fTcn(c) => c2f_kept_floats_per_frame(c),
        BackboneConfig::MsTcn(c) => ms_tcn_kept_floats_per_frame(c),
    }
}

/// MS-TCN++ (every layer at full resolution): a dual dilated layer keeps
/// two im2col inputs (3F each), their outputs, the concatenation, the
/// fusion and its ReLU, the dropout's output and mask and the sum (≈ 15F);
/// a dilated residual layer ≈ 9F; each stage its input and logits.
fn ms_tcn_kept_floats_per_frame(cfg: &MsTcnConfig) -> f64 {
    let (f, k) = (cfg.f_maps as f64, cfg.num_classes as f64);
    let pg = cfg.input_dim as f64 + f + cfg.layers_pg as f64 * 15.0 * f + k;
    let r = 3.0 * k + f + cfg.layers_r as f64 * 9.0 * f;
    pg + cfg.refinements as f64 * r + 4.0 * k
}

/// The C2F-TCN, summed over its resolutions.
fn c2f_kept_floats_per_frame(cfg: &C2fConfig) -> f64 {
    // A double convolution keeps per frame: the first conv's im2col (3·cin)
    // and the rest (conv out, BatchNorm twice, ReLU, second im2col 3·cout, …).
    let double_conv = |cin: usize, cout: usize| (3 * cin + 11 * cout) as f64;
    let e = cfg.encoder_widths;
    let mut s = double_conv(cfg.input_dim, e[0]);
    for l in 1..7 {
        s += double_conv(e[l - 1], e[l]) / (1u64 << l) as f64;
    }
    for (l, &skip) in e.iter().take(6).enumerate() {
        let cin = skip + cfg.decoder_width;
        // The concatenation, the block, the head and its upsampled copy.
        s += (double_conv(cin, cfg.decoder_width) + cin as f64) / (1u64 << l) as f64;
        s += 4.0 * cfg.num_classes as f64;
    }
    s
}

/// Estimated bytes of one training step's activations for `batch` windows
/// padded to `frames`.
pub fn step_activation_bytes(cfg: &BackboneConfig, batch: usize, frames: usize) -> u64 {
    (ALPHA * 4.0 * batch as f64 * frames as f64 * kept_floats_per_frame(cfg)) as u64
}

/// Fails, before training, when a step on `batch` windows of `frames`
/// frames would need more memory than the system has available
/// (`available` bytes; `None` skips the check where the system does not say).
pub fn check_step_fits(
    cfg: &BackboneConfig,
    parameters: usize,
    batch: usize,
    frames: usize,
    available: Option<u64>,
) -> Result<()> {
    let Some(available) = available else {
        return Ok(());
    };
    let model = 16 * parameters as u64;
    let step = step_activation_bytes(cfg, batch, frames);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    if model + step > available {
        return Err(Error::invalid(format!(
            "a training step on {batch} window(s) of {frames} frames needs about {:.1} GiB \
             (activations {:.1} GiB, model and optimizer {:.2} GiB) but {:.1} GiB of memory \
             are available: lower `batch_size` or `max_frames`",
            gib(model + step),
            gib(step),
            gib(model),
            gib(available)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_scales_with_batch_and_frames_and_refuses_what_cannot_fit() {
        let cfg = BackboneConfig::C2fTcn(C2fConfig::reference(1024, 33));
        let s = kept_floats_per_frame(&cfg);
        // The input's im2col and the first blocks dominate: ~15k floats.
        assert!((12_000.0..20_000.0).contains(&s), "{s}");
        let one = step_activation_bytes(&cfg, 1, 600);
        assert_eq!(step_activation_bytes(&cfg, 4, 600), 4 * one);
        // 4 × 600 frames at D = 1024: ~0.7 GiB, as measured (BENCHMARKS.md).
        assert!((0.4..1.2).contains(&(4.0 * one as f64 / (1u64 << 30) as f64)));
        assert!(check_step_fits(&cfg, 5_000_000, 4, 600, Some(8 << 30)).is_ok());
        assert!(check_step_fits(&cfg, 5_000_000, 4, 600, None).is_ok());
        let err = check_step_fits(&cfg, 5_000_000, 8, 100_000, Some(8 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("8 window(s) of 100000 frames") && err.contains("`max_frames`"),
            "{err}"
        );
    }
}
