//! `syncseg`: exo→ego temporal action segmentation from the command line.

mod commands;
mod progress;
mod video;

use clap::{CommandFactory, FromArgMatches};

fn main() -> std::process::ExitCode {
    let matches = commands::Cli::command().get_matches();
    let cli = commands::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.verbose);
    let flags = commands::flags_of(&matches);
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: the context chain joined by ": ", with the options
            // core names (`max_frames`) as this command's flags (--max-frames).
            let text = syncseg_core::pipeline::rename_options(&format!("{err:#}"), |name| {
                let flag = name.replace('_', "-");
                flags.contains(&flag).then(|| format!("--{flag}"))
            });
            eprintln!("error: {text}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,syncseg=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYNCSEG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
