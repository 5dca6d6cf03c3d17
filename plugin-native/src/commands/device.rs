//! `--device cpu|wgpu|auto`: where a model runs.

use std::sync::Arc;

use syncseg_core::features::Features;
use syncseg_core::model::SegModel;
use syncseg_core::predict::{predict, Prediction};
use syncseg_shaders::{Gpu, WgpuSegmenter};

/// The backend asked for on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// candle on the CPU.
    #[default]
    Cpu,
    /// The WGSL kernels on a wgpu adapter (Vulkan, Metal, DX12); an error if there is none.
    Wgpu,
    /// The GPU when there is one, else the CPU (and says so).
    Auto,
}

/// A model ready to segment on one backend.
pub enum Runner<'m> {
    Cpu(&'m SegModel),
    Wgpu(Box<WgpuSegmenter>),
}

impl<'m> Runner<'m> {
    /// Opens `choice` for `model`; logs the adapter's name.
    pub fn open(choice: DeviceChoice, model: &'m SegModel) -> anyhow::Result<Self> {
        let gpu = || -> syncseg_shaders::Result<Runner<'m>> {
            let gpu = pollster::block_on(Gpu::new())?;
            tracing::info!("GPU: {}", gpu.describe());
            Ok(Runner::Wgpu(Box::new(WgpuSegmenter::new(
                Arc::new(gpu),
                model,
            )?)))
        };
        match choice {
            DeviceChoice::Cpu => Ok(Runner::Cpu(model)),
            DeviceChoice::Wgpu => Ok(gpu().map_err(|e| anyhow::anyhow!("--device wgpu: {e}"))?),
            DeviceChoice::Auto => match gpu() {
                Ok(r) => Ok(r),
                Err(e) => {
                    tracing::warn!("--device auto: no usable GPU ({e}); running on the CPU");
                    Ok(Runner::Cpu(model))
                }
            },
        }
    }

    /// Ensemble probabilities and labels of one video.
    pub fn predict(&mut self, features: &Features) -> anyhow::Result<Prediction> {
        match self {
            Runner::Cpu(m) => Ok(predict(m, features)?),
            Runner::Wgpu(s) => Ok(s.predict_blocking(features)?),
        }
    }

    /// "cpu" or the adapter's description.
    pub fn describe(&self) -> String {
        match self {
            Runner::Cpu(_) => "cpu".into(),
            Runner::Wgpu(s) => s.gpu().describe(),
        }
    }
}
