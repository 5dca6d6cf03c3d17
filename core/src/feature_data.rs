//! Where a feature matrix's values live: in memory, or in place in a
//! memory-mapped `.npy` file.
//!
//! A mapped file is read by the kernel on demand and its pages are evicted
//! under memory pressure, so a dataset larger than RAM trains: only the
//! windows in use need to be resident, and pages shared by several runs
//! are held once. Every reader sees a `&[f32]` either way; writing to a
//! mapped matrix first copies it into memory (copy on write).
//!
//! A mapped file must not be truncated or rewritten in place while it is
//! used (the kernel would fault the process); syncseg itself only ever
//! replaces files by renaming, which leaves a mapping valid.

use std::ops::{Deref, DerefMut};
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

/// The `D × T` values of a [`crate::features::Features`].
#[derive(Clone)]
pub enum FeatureData {
    /// Values owned in memory.
    Owned(Vec<f32>),
    /// `len` values at byte `offset` of a read-only mapping of a file.
    #[cfg(not(target_arch = "wasm32"))]
    Mapped {
        /// The whole file.
        map: Arc<memmap2::Mmap>,
        /// Byte offset of the first value (a multiple of 4).
        offset: usize,
        /// Number of values.
        len: usize,
    },
}

impl FeatureData {
    /// Whether the values are read in place from a file.
    pub fn is_mapped(&self) -> bool {
        !matches!(self, FeatureData::Owned(_))
    }

    /// The values as a vector (a copy when mapped).
    pub fn into_vec(self) -> Vec<f32> {
        match self {
            FeatureData::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            mapped => mapped.to_vec(),
        }
    }

    /// `len` little-endian f32 values at `offset` of `map`, or `None` when
    /// they are not where an `f32` slice can point (misaligned, out of the
    /// file, or a big-endian host).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn mapped(map: Arc<memmap2::Mmap>, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len.checked_mul(4)?)?;
        if cfg!(target_endian = "big") || end > map.len() {
            return None;
        }
        bytemuck::try_cast_slice::<u8, f32>(&map[offset..end]).ok()?;
        Some(FeatureData::Mapped { map, offset, len })
    }
}

impl Deref for FeatureData {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            FeatureData::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            FeatureData::Mapped { map, offset, len } => {
                // Checked when the mapping was made (alignment, bounds).
                bytemuck::cast_slice(&map[*offset..*offset + *len * 4])
            }
        }
    }
}

impl DerefMut for FeatureData {
    fn deref_mut(&mut self) -> &mut [f32] {
        if self.is_mapped() {
            *self = FeatureData::Owned(self.to_vec());
        }
        match self {
            FeatureData::Owned(v) => v,
            #[cfg(not(target_arch = "wasm32"))]
            FeatureData::Mapped { .. } => unreachable!("copied into memory above"),
        }
    }
}

impl<'a> IntoIterator for &'a FeatureData {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<Vec<f32>> for FeatureData {
    fn from(v: Vec<f32>) -> Self {
        FeatureData::Owned(v)
    }
}

impl std::fmt::Debug for FeatureData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = if self.is_mapped() { "mapped" } else { "owned" };
        write!(f, "FeatureData({place}, {} values)", self.len())
    }
}

impl PartialEq for FeatureData {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl PartialEq<Vec<f32>> for FeatureData {
    fn eq(&self, other: &Vec<f32>) -> bool {
        **self == other[..]
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn map_of(bytes: &[u8]) -> (tempfile::NamedTempFile, Arc<memmap2::Mmap>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        // SAFETY: the temporary file is not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(f.as_file()).unwrap() };
        (f, Arc::new(map))
    }

    #[test]
    fn mapped_values_read_and_copy_on_write() {
        let mut bytes = vec![0u8; 8];
        for v in [1.5f32, -2.0, 3.25] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let (_file, map) = map_of(&bytes);
        let mut data = FeatureData::mapped(map.clone(), 8, 3).unwrap();
        assert!(data.is_mapped());
        assert_eq!(data, vec![1.5, -2.0, 3.25]);
        let copy = data.clone();
        data[1] = 7.0;
        assert!(!data.is_mapped());
        assert_eq!(data, vec![1.5, 7.0, 3.25]);
        // The file and other users of the mapping are untouched.
        assert_eq!(copy, vec![1.5, -2.0, 3.25]);
        // Out of the file or misaligned: refused, not mapped.
        assert!(FeatureData::mapped(map.clone(), 8, 4).is_none());
        assert!(FeatureData::mapped(map, 6, 1).is_none());
    }
}
