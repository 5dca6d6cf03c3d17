//! `syncseg`: exo→ego temporal action segmentation from the command line.

mod commands;
mod progress;
mod video;

use clap::{CommandFactory, FromArgMatches};

/// mimalloc rather than the system allocator: candle allocates every op's
/// output afresh, and glibc served the large ones with new mappings whose
/// pages the kernel zeroes on first touch, so a C2F-TCN training step at
/// D = 1024 spent ~20 % of its time in page faults (151–184 ms per step
/// with glibc, 125–146 ms with mimalloc; BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Fixes candle's CPU thread count for the process: unset, candle
/// recomputes it on every matrix product, and its physical-core count
/// parses `/proc/cpuinfo` each time (~5 % of a C2F-TCN inference here).
/// The value is the one candle would compute; a user's RAYON_NUM_THREADS
/// is kept. Runs first, before any thread exists.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

fn main() -> std::process::ExitCode {
    pin_thread_count();
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
