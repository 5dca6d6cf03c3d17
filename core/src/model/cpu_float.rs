//! The element types syncseg's own CPU ops ([`super::cpu_conv`],
//! [`super::batch_norm_op`]) run in: f32 for models, f64 for the
//! finite-difference gradient checks.

use candle_core::{CpuStorage, Layout};

/// f32 or f64 inside a candle CPU storage.
pub(crate) trait CpuFloat:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + 'static
{
    /// 1.
    const ONE: Self;
    /// Widened, for accumulation.
    fn to_f64(self) -> f64;
    /// Narrowed back.
    fn from_f64(x: f64) -> Self;
    /// The storage's elements, if it holds this type.
    fn slice(s: &CpuStorage) -> candle_core::Result<&[Self]>;
    /// A storage of these elements.
    fn storage(v: Vec<Self>) -> CpuStorage;
}

macro_rules! cpu_float {
    ($t:ty, $variant:ident) => {
        impl CpuFloat for $t {
            const ONE: $t = 1.0;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(x: f64) -> $t {
                x as $t
            }
            fn slice(s: &CpuStorage) -> candle_core::Result<&[$t]> {
                match s {
                    CpuStorage::$variant(v) => Ok(v),
                    _ => candle_core::bail!("syncseg's CPU ops take f32 or f64, all of one type"),
                }
            }
            fn storage(v: Vec<$t>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
        }
    };
}
cpu_float!(f32, F32);
cpu_float!(f64, F64);

/// The contiguous elements of an op's argument `what`.
pub(crate) fn contiguous<'a, T: CpuFloat>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&T::slice(s)?[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// `$body` (a `Vec<$T>`) with the type alias `$T` set to the element type
/// of `$storage` (f64, else f32), as a storage.
macro_rules! in_element_type {
    ($storage:expr, $T:ident => $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F64(_) => {
                type $T = f64;
                <$T as $crate::model::cpu_float::CpuFloat>::storage($body)
            }
            _ => {
                type $T = f32;
                <$T as $crate::model::cpu_float::CpuFloat>::storage($body)
            }
        }
    };
}
pub(crate) use in_element_type;
