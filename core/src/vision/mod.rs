//! Frame features from raw video frames: a DINOv2 vision transformer (the
//! paper's features are the CLS token of ViT-L/14) and its preprocessing.
//!
//! * [`preprocess`] — RGB frame → resized, center-cropped, normalised
//!   `[3, S, S]` tensor, as the sync paper's release (`Resize(224)`,
//!   `CenterCrop(224)`, `Normalize(0.5, 0.5)`) or with ImageNet statistics;
//! * [`pos_embed`] — the checkpoint's position embeddings resized to the
//!   input's patch grid (bicubic, as DINOv2);
//! * [`vit`] — the transformer and its weight loading (the public DINOv2
//!   checkpoints' layout, or Hugging Face's `Dinov2Model` layout).
//!
//! Decoding video is the caller's: the CLI pipes frames from `ffmpeg`, a
//! browser hands over `VideoFrame`s.

pub mod pos_embed;
pub mod preprocess;
pub mod vit;

pub use preprocess::{Normalization, Preprocess};
pub use vit::{vit_forward, vit_specs, Mlp, Vit, VitConfig};

#[cfg(test)]
mod tests;
