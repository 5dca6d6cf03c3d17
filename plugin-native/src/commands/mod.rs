//! The subcommands of `syncseg`, one file each.

mod eval;
mod synth;

use clap::{Parser, Subcommand};

/// syncseg: temporal action segmentation that transfers from fixed (exo) to
/// head-mounted (ego) cameras without ego labels.
#[derive(Parser, Debug)]
#[command(name = "syncseg", version, about, long_about = None)]
pub struct Cli {
    /// More logging (-v info, -vv debug); SYNCSEG_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate the synthetic synchronized exo/ego benchmark (MS-TCN layout).
    Synth(synth::Args),
    /// Score per-frame predictions against ground truth (Edit, F1@{10,25,50}, MoF).
    Eval(eval::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synth(a) => synth::run(a),
        Command::Eval(a) => eval::run(a),
    }
}
