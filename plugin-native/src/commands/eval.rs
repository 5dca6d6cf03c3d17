//! `syncseg eval`: the TAS metrics over folders of per-frame label files:
//! the flags of [`syncseg_core::pipeline::evaluate`].

use std::path::PathBuf;

use syncseg_core::pipeline::{EvaluateInputs, EvaluateOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of ground-truth files `<video>.txt` (one label per frame).
    #[arg(long)]
    gt: PathBuf,
    /// Folder of predictions with the same file names.
    #[arg(long)]
    pred: PathBuf,
    /// Score only these videos (a split bundle); default: every file in --gt.
    #[arg(long)]
    videos: Option<PathBuf>,
    /// A background label: removed from segment lists, kept in MoF (repeatable).
    #[arg(long = "background", value_name = "LABEL")]
    background: Vec<String>,
    /// Delete frames whose ground truth is background before scoring (the
    /// sync paper's release protocol).
    #[arg(long)]
    drop_background_frames: bool,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let inputs = EvaluateInputs {
        gt: args.gt,
        pred: args.pred,
        videos: args.videos,
    };
    let options = EvaluateOptions {
        background: args.background,
        drop_background_frames: args.drop_background_frames,
    };
    let scores = syncseg_core::pipeline::evaluate(&inputs, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&scores)?);
    } else {
        print!(
            "{}",
            syncseg_core::report::scores_table(&[("prediction", &scores)])
        );
    }
    Ok(())
}
