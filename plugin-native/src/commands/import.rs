//! `syncseg import`: a reference PyTorch C2F-TCN checkpoint → model directory.

use std::path::PathBuf;

use candle_core::Device;
use syncseg_core::labels::Mapping;
use syncseg_core::model::{BackboneConfig, SegModel};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A state dict saved with `torch.save` by the reference code.
    #[arg(long)]
    pth: PathBuf,
    /// Output model directory.
    #[arg(long)]
    out: PathBuf,
    /// Class names (mapping.txt or mapping.csv); default class0, class1, …
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Window length the model was trained on (the sync release: 600).
    #[arg(long, default_value_t = 600)]
    window_frames: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let classes = match &args.mapping {
        Some(p) => Some(Mapping::read(p)?.names().to_vec()),
        None => None,
    };
    let mut model = SegModel::import_pth(&args.pth, classes, &Device::Cpu)?;
    model.meta.window_frames = args.window_frames.max(1);
    model.save(&args.out)?;
    let shape = match &model.meta.backbone {
        BackboneConfig::C2fTcn(c) => format!("widths {:?}/{}", c.encoder_widths, c.decoder_width),
        BackboneConfig::MsTcn(c) => format!(
            "{} maps, {} + {} × {} layers",
            c.f_maps, c.layers_pg, c.refinements, c.layers_r
        ),
    };
    let b = &model.meta.backbone;
    eprintln!(
        "imported {} (D={}, K={}, {shape}) to {}",
        b.kind(),
        b.input_dim(),
        b.num_classes(),
        args.out.display()
    );
    Ok(())
}
