//! `syncseg-fuzz`: runs the fuzz campaigns (see the library's docs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use syncseg_fuzz::runner::{self, current, Campaign};
use syncseg_fuzz::targets;

/// Refuses any single allocation over [`CAP`]: every input is at most a
/// few hundred KiB, so a larger request means a loader sized memory from
/// an untrusted header. The refusal aborts the process (Rust's
/// out-of-memory path) after naming the target and mutant.
struct CappedAllocator;

static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);

fn oversize(size: usize) -> bool {
    if size <= CAP.load(Ordering::Relaxed) {
        return false;
    }
    // Nothing here may allocate: format into a stack buffer.
    let mut buf = [0u8; 256];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        for &b in s {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    let num = |v: u64, put: &mut dyn FnMut(&[u8])| {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        put(&digits[i..]);
    };
    put(b"syncseg-fuzz: ALLOCATION of ");
    num(size as u64, &mut put);
    put(b" bytes over the cap: target ");
    put(current::target().as_bytes());
    put(b" seed ");
    num(current::SEED.load(Ordering::SeqCst), &mut put);
    put(b" iteration ");
    num(current::ITERATION.load(Ordering::SeqCst), &mut put);
    put(b"; rebuild it with `syncseg-fuzz mutant`\n");
    #[cfg(unix)]
    // SAFETY: writing an initialised buffer to fd 2.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
    }
    true
}

// SAFETY: forwards to the system allocator; only refuses (returns null).
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if oversize(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if oversize(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if oversize(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

#[derive(Parser)]
#[command(about = "Mutation fuzzing of syncseg's parsers and loaders")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The targets.
    List,
    /// Fuzz targets (all by default) for a time or a number of mutants each.
    Run {
        /// Target names (repeatable); all when absent.
        #[arg(long)]
        target: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// At most this many mutants per target.
        #[arg(long)]
        iterations: Option<u64>,
        /// Mutation seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where panicking inputs are written.
        #[arg(long, default_value = "target/fuzz-findings")]
        findings: PathBuf,
        /// Regression inputs, `<dir>/<target>/*` (the repository's fuzz/corpus).
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Largest single allocation allowed, in MiB.
        #[arg(long, default_value_t = 256)]
        cap_mib: usize,
        /// One input running longer than this (seconds) is a hang.
        #[arg(long, default_value_t = 20)]
        hang_seconds: u64,
    },
    /// Feed one file to a target (to reproduce a finding).
    Repro {
        #[arg(long)]
        target: String,
        file: PathBuf,
        #[arg(long, default_value_t = 256)]
        cap_mib: usize,
    },
    /// Write mutant ITERATION of a campaign to a file (to reproduce an abort or a hang).
    Mutant {
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        iteration: u64,
        #[arg(long)]
        corpus: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn find(name: &str) -> Result<targets::Target, String> {
    targets::all()
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
            format!("unknown target '{name}' (targets: {})", names.join(", "))
        })
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::List => {
            for t in targets::all() {
                println!("{:<16} {}", t.name, t.about);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            target,
            seconds,
            iterations,
            seed,
            findings,
            corpus,
            cap_mib,
            hang_seconds,
        } => {
            let chosen = if target.is_empty() {
                targets::all()
            } else {
                target.iter().map(|n| find(n)).collect::<Result<_, _>>()?
            };
            if !(seconds.is_finite() && seconds >= 0.0) {
                return Err(format!(
                    "--seconds must be a non-negative number, got {seconds}"
                ));
            }
            let campaign = Campaign {
                seed,
                iterations,
                duration: Duration::from_secs_f64(seconds),
                findings,
                corpus,
                hang: Duration::from_secs(hang_seconds),
            };
            runner::quiet_panics();
            CAP.store(cap_mib.saturating_mul(1 << 20), Ordering::SeqCst);
            println!(
                "{:<16} {:>10} {:>8} {:>10} {:>7} {:>9}",
                "target", "executions", "seconds", "execs/s", "corpus", "findings"
            );
            let mut total = 0;
            for t in &chosen {
                let r = runner::run(t, &campaign).map_err(|e| format!("{}: {e}", t.name))?;
                println!(
                    "{:<16} {:>10} {:>8.1} {:>10.0} {:>7} {:>9}",
                    r.target,
                    r.executions,
                    r.seconds,
                    r.executions as f64 / r.seconds.max(1e-9),
                    r.corpus,
                    r.findings.len()
                );
                for f in &r.findings {
                    let at = f
                        .iteration
                        .map_or("corpus".into(), |i| format!("iteration {i}"));
                    println!(
                        "  PANIC ({at}, saved to {}): {}",
                        f.file.display(),
                        f.message
                    );
                }
                total += r.findings.len();
            }
            Ok(if total == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Repro {
            target,
            file,
            cap_mib,
        } => {
            let t = find(&target)?;
            let input = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            runner::quiet_panics();
            current::set_target(t.name);
            CAP.store(cap_mib.saturating_mul(1 << 20), Ordering::SeqCst);
            let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
            match runner::feed(&t, &input, scratch.path()) {
                Ok(()) => {
                    println!("{}: no panic", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(msg) => {
                    println!("{}: PANIC: {msg}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Mutant {
            target,
            seed,
            iteration,
            corpus,
            out,
        } => {
            let t = find(&target)?;
            let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
            let c = runner::corpus_of(&t, scratch.path(), corpus.as_deref());
            let m = runner::mutant(&t, &c, seed, iteration);
            std::fs::write(&out, m).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
