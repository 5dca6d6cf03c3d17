//! The one closeness rule of the conformance and parity tests: a backend's
//! tensor matches the reference when its largest error, relative to the
//! reference's largest magnitude (floored), is within a bound.
//!
//! One meaning of "1e-4 relative" for every op, network, gradient and
//! backend: `max |got − want| ≤ rel · max(max |want|, floor)`. Scaling by
//! the tensor's own range (not element by element) is what float
//! accumulation error follows: a sum of many terms is off by a multiple of
//! the terms' magnitude, not of the (possibly cancelling) result's.

/// `max |got − want| ≤ rel · max(max |want|, floor)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The bound on the relative error.
    pub rel: f32,
    /// The smallest magnitude errors are relative to (a tensor of zeros
    /// is compared absolutely at `rel · floor`).
    pub floor: f32,
}

impl Tolerance {
    /// Backends against the reference (candle, PyTorch): 1e-4.
    pub const PARITY: Tolerance = Tolerance {
        rel: 1e-4,
        floor: 1e-6,
    };

    /// Within `rel` of the reference's largest magnitude, and absolutely
    /// (`rel`) where the reference is smaller than 1: a kernel against its
    /// f64 CPU reference.
    pub const fn relative(rel: f32) -> Tolerance {
        Tolerance { rel, floor: 1.0 }
    }

    /// The relative error of `got` against `want` (∞ if their lengths
    /// differ or either holds a NaN or infinity).
    pub fn error(&self, got: &[f32], want: &[f32]) -> f32 {
        if got.len() != want.len() {
            return f32::INFINITY;
        }
        // f32::max ignores NaN: a NaN anywhere is an infinite error.
        if got.iter().chain(want).any(|v| !v.is_finite()) {
            return f32::INFINITY;
        }
        let scale = want.iter().fold(self.floor, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
        err / scale
    }

    /// `Err` naming `what` and the error when `got` is not within the bound.
    pub fn check(&self, got: &[f32], want: &[f32], what: &str) -> Result<f32, String> {
        let e = self.error(got, want);
        if e <= self.rel {
            Ok(e)
        } else if got.len() != want.len() {
            Err(format!(
                "{what}: {} values, the reference {}",
                got.len(),
                want.len()
            ))
        } else {
            Err(format!("{what}: relative error {e:.2e} > {:.0e}", self.rel))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_to_the_largest_magnitude() {
        let t = Tolerance::PARITY;
        assert!(t.check(&[1.0, 100.0], &[1.005, 100.0], "x").is_ok());
        assert!(t.check(&[1.0, 1.0], &[1.005, 1.0], "x").is_err());
        assert!(t.check(&[0.0], &[0.0], "zeros").is_ok());
        assert!(t.check(&[f32::NAN], &[0.0], "nan").is_err());
        assert!(t
            .check(&[1.0], &[1.0, 2.0], "len")
            .unwrap_err()
            .contains("1 values"));
    }
}
