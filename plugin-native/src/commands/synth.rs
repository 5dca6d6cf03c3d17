//! `syncseg synth`: write the synthetic synchronized benchmark.

use std::path::PathBuf;

use anyhow::Context;
use syncseg_core::synth::{Generator, Preset, SynthConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (must not exist, or be empty).
    #[arg(long)]
    out: PathBuf,
    /// Size of the benchmark: small (seconds) or paper (Assembly101 split sizes).
    #[arg(long, default_value = "small", value_parser = parse_preset)]
    preset: Preset,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Feature dimension D (default: 64 for small, 256 for paper; up to 4096).
    #[arg(long)]
    dim: Option<usize>,
}

/// `--preset` for clap.
pub(crate) fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse().map_err(|e: syncseg_core::Error| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = SynthConfig::preset(args.preset, args.seed, args.dim)?;
    let gen = Generator::new(cfg)?;
    let pb = crate::progress::bar(gen.len() as u64, "synth", "recordings");
    gen.write(&args.out, |done, _| pb.set_position(done as u64))
        .with_context(|| format!("writing the benchmark to {}", args.out.display()))?;
    pb.finish_and_clear();
    eprintln!(
        "wrote {} recordings ({} classes) to {}",
        gen.len(),
        gen.class_names().len(),
        args.out.display()
    );
    Ok(())
}
