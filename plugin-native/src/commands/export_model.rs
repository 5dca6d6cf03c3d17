//! `syncseg export-model`: a model directory as one file, for browsers and
//! editor plugins (`Segmenter.load(bytes)`, `syncseg_model_load(path)`).

use std::path::PathBuf;

use candle_core::Device;
use syncseg_core::model::SegModel;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model directory.
    #[arg(long)]
    model: PathBuf,
    /// The bundle to write (one safetensors file with the config inside).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = SegModel::load(&args.model, &Device::Cpu)?;
    model.save_bundle(&args.out)?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({:.1} MiB{})",
        args.out.display(),
        size as f64 / (1024.0 * 1024.0),
        if model.adapter.is_some() {
            ", with feature adapter"
        } else {
            ""
        }
    );
    Ok(())
}
