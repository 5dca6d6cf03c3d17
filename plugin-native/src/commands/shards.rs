//! `syncseg shards status OUT`: what the shards of a batch job (`features`,
//! `segment` or `predict` over a list) have done, from their manifests.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The output folder the shards wrote into (it holds `shards/`).
    dir: PathBuf,
    /// Print the summary as JSON instead.
    #[arg(long)]
    json: bool,
}

/// Prints the runs recorded under `dir`; fails (exit status 1) when a
/// video failed, is pending, or a shard never started.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let runs = syncseg_core::shard_status::status(&args.dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        for run in &runs {
            print!("{run}");
        }
    }
    let incomplete: Vec<&str> = runs
        .iter()
        .filter(|r| !r.is_complete())
        .map(|r| r.command.as_str())
        .collect();
    if !incomplete.is_empty() {
        anyhow::bail!(
            "{}: {} not complete (rerun the missing or failed shards; finished videos are kept)",
            args.dir.display(),
            incomplete.join(", ")
        );
    }
    Ok(())
}
