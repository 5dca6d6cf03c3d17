//! `--device cpu|wgpu|auto`: where a model (and the ViT) runs.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use syncseg_core::features::Features;
use syncseg_core::model::SegModel;
use syncseg_core::pipeline::{CpuEngine, Engine, Segmenter, Trained, Trainer};
use syncseg_core::predict::{predict, Prediction};
use syncseg_core::train::adam::AdamConfig;
use syncseg_core::train::objective::Objective;
use syncseg_core::vision::Vit;
use syncseg_shaders::train::WgpuStepper;
use syncseg_shaders::vit::DEFAULT_BATCH;
use syncseg_shaders::{Gpu, WgpuSegmenter, WgpuVit};

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

impl DeviceChoice {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Auto => "auto",
        }
    }
}

/// A model ready to segment on one backend.
pub enum Runner<'m> {
    Cpu(&'m SegModel),
    Wgpu(Box<WgpuSegmenter>),
}

/// The device `choice` stands for: `None` is the CPU. `wgpu` without an
/// adapter is an error; `auto` falls back to the CPU and says so.
pub fn open_gpu(choice: DeviceChoice) -> anyhow::Result<Option<Arc<Gpu>>> {
    let open = || -> syncseg_shaders::Result<Arc<Gpu>> {
        let gpu = pollster::block_on(Gpu::new())?;
        tracing::info!("GPU: {}", gpu.describe());
        Ok(Arc::new(gpu))
    };
    match choice {
        DeviceChoice::Cpu => Ok(None),
        DeviceChoice::Wgpu => Ok(Some(
            open().map_err(|e| anyhow::anyhow!("--device wgpu: {e}"))?,
        )),
        DeviceChoice::Auto => match open() {
            Ok(gpu) => Ok(Some(gpu)),
            Err(e) => {
                tracing::warn!("--device auto: no usable GPU ({e}); running on the CPU");
                Ok(None)
            }
        },
    }
}

/// The stepper `choice` stands for when training `model`'s `vars` under
/// `objective`. `gpu_unsupported` names why this run cannot train on the
/// GPU (an objective without device kernels): an error for `wgpu`, the CPU
/// for `auto`. `auto` trains on a hardware GPU only: on a software adapter
/// (lavapipe) candle's CPU path is faster.
pub fn trainer(
    choice: DeviceChoice,
    model: &SegModel,
    trained: Trained,
    vars: Vec<(String, Var)>,
    objective: &dyn Objective,
    adam: AdamConfig,
    gpu_unsupported: Option<&str>,
) -> anyhow::Result<Trainer> {
    let cpu = |vars: Vec<(String, Var)>| -> anyhow::Result<Trainer> {
        Ok(CpuEngine::trainer(vars, objective, adam)?)
    };
    let gpu = match (choice, gpu_unsupported) {
        (DeviceChoice::Cpu, _) => return cpu(vars),
        (DeviceChoice::Wgpu, Some(why)) => anyhow::bail!("--device wgpu: {why}"),
        (DeviceChoice::Auto, Some(why)) => {
            eprintln!("--device auto: training on the CPU ({why})");
            return cpu(vars);
        }
        (_, None) => match open_gpu(choice)? {
            None => return cpu(vars),
            Some(gpu) if choice == DeviceChoice::Auto && gpu.is_software() => {
                eprintln!(
                    "--device auto: {} is a software adapter; training on the CPU",
                    gpu.describe()
                );
                return cpu(vars);
            }
            Some(gpu) => gpu,
        },
    };
    let device = gpu.describe();
    let stepper = match trained {
        Trained::Network => WgpuStepper::new(gpu, model, adam),
        Trained::Adapter => WgpuStepper::adapter(gpu, model, adam),
    }
    .map_err(|e| anyhow::anyhow!("--device {}: {e}", choice.name()))?;
    Ok(Trainer {
        stepper: Box::new(stepper),
        device,
    })
}

impl<'m> Runner<'m> {
    /// Opens `choice` for `model`; logs the adapter's name.
    pub fn open(choice: DeviceChoice, model: &'m SegModel) -> anyhow::Result<Self> {
        Self::on(open_gpu(choice)?, model)
    }

    /// `model` on `gpu`, or on the CPU for `None`.
    pub fn on(gpu: Option<Arc<Gpu>>, model: &'m SegModel) -> anyhow::Result<Self> {
        Ok(match gpu {
            None => Runner::Cpu(model),
            Some(gpu) => Runner::Wgpu(Box::new(WgpuSegmenter::new(gpu, model)?)),
        })
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

impl Segmenter for Runner<'_> {
    fn predict(&mut self, features: &Features) -> syncseg_core::Result<Prediction> {
        Runner::predict(self, features).map_err(|e| syncseg_core::Error::invalid(format!("{e:#}")))
    }
    fn describe(&self) -> String {
        Runner::describe(self)
    }
}

/// The pipeline's engine for `--device`: the training steps and the
/// predictions of core's jobs run where `choice` says.
#[derive(Clone, Copy, Debug)]
pub struct DeviceEngine(pub DeviceChoice);

impl Engine for DeviceEngine {
    fn check_cpu_only(&mut self, why: &str) -> syncseg_core::Result<()> {
        match self.0 {
            DeviceChoice::Wgpu => Err(syncseg_core::Error::invalid(format!(
                "--device wgpu: {why}"
            ))),
            _ => Ok(()),
        }
    }

    fn trainer(
        &mut self,
        model: &SegModel,
        trained: Trained,
        vars: Vec<(String, Var)>,
        objective: &dyn Objective,
        adam: AdamConfig,
        cpu_only: Option<&str>,
    ) -> syncseg_core::Result<Trainer> {
        trainer(self.0, model, trained, vars, objective, adam, cpu_only)
            .map_err(|e| syncseg_core::Error::invalid(format!("{e:#}")))
    }

    fn segmenter<'m>(
        &mut self,
        model: &'m SegModel,
    ) -> syncseg_core::Result<Box<dyn Segmenter + 'm>> {
        let runner = Runner::open(self.0, model)
            .map_err(|e| syncseg_core::Error::invalid(format!("{e:#}")))?;
        Ok(Box::new(runner))
    }
}

/// A DINOv2 ViT ready to embed frames on one backend.
pub enum FrameEncoder {
    Cpu(Vit),
    Wgpu(WgpuVit),
}

impl FrameEncoder {
    /// `vit` on `gpu`, or on the CPU for `None`.
    pub fn on(gpu: Option<Arc<Gpu>>, vit: Vit) -> anyhow::Result<Self> {
        Ok(match gpu {
            None => FrameEncoder::Cpu(vit),
            Some(gpu) => FrameEncoder::Wgpu(WgpuVit::new(gpu, &vit)?),
        })
    }

    /// The ViT's input side in pixels.
    pub fn image_size(&self) -> usize {
        match self {
            FrameEncoder::Cpu(v) => v.image_size(),
            FrameEncoder::Wgpu(v) => v.image_size(),
        }
    }

    /// The feature width.
    pub fn dim(&self) -> usize {
        match self {
            FrameEncoder::Cpu(v) => v.config().dim,
            FrameEncoder::Wgpu(v) => v.config().dim,
        }
    }

    /// Frames per forward pass.
    pub fn batch(&self) -> anyhow::Result<usize> {
        match self {
            FrameEncoder::Cpu(_) => Ok(DEFAULT_BATCH),
            FrameEncoder::Wgpu(v) => Ok(v.batch_that_fits(DEFAULT_BATCH)?),
        }
    }

    /// CLS features `[n, D]` (row-major) of `n` preprocessed images.
    pub fn embed(&mut self, images: &[f32], n: usize) -> anyhow::Result<Vec<f32>> {
        match self {
            FrameEncoder::Cpu(vit) => {
                let s = vit.image_size();
                let x = Tensor::from_slice(images, (n, 3, s, s), &Device::Cpu)?;
                Ok(vit.forward(&x)?.flatten_all()?.to_vec1::<f32>()?)
            }
            FrameEncoder::Wgpu(vit) => Ok(pollster::block_on(vit.embed(images))?),
        }
    }

    /// "cpu" or the adapter's description.
    pub fn describe(&self) -> String {
        match self {
            FrameEncoder::Cpu(_) => "cpu".into(),
            FrameEncoder::Wgpu(v) => v.gpu().describe(),
        }
    }
}
