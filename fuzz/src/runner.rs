//! A campaign: the corpus first, then mutants, each fed to the target
//! under `catch_unwind`, with a watchdog for hangs. Blind mutation (no
//! coverage feedback: that needs instrumentation, i.e. a nightly
//! toolchain), made deep by format-aware targets and dictionaries.
//!
//! Mutant `i` of a campaign with seed `s` is a pure function of `(s, i)`
//! and the corpus, so `syncseg-fuzz mutant --seed s --iter i` rebuilds any
//! input that killed the process (an abort cannot be caught in-process).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;

use crate::mutate::Mutator;
use crate::targets::Target;

/// What the process is feeding right now, for the watchdog and the
/// allocation cap's message (both run where nothing can be allocated or
/// passed in).
pub mod current {
    use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

    static NAME: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    static NAME_LEN: AtomicUsize = AtomicUsize::new(0);
    /// The iteration being fed (`u64::MAX` for a corpus input).
    pub static ITERATION: AtomicU64 = AtomicU64::new(0);
    /// The campaign seed.
    pub static SEED: AtomicU64 = AtomicU64::new(0);

    /// Records the target's name.
    pub fn set_target(name: &'static str) {
        NAME_LEN.store(name.len(), Ordering::SeqCst);
        NAME.store(name.as_ptr() as *mut u8, Ordering::SeqCst);
    }

    /// The target's name (empty before the first).
    pub fn target() -> &'static str {
        let p = NAME.load(Ordering::SeqCst);
        if p.is_null() {
            return "";
        }
        let len = NAME_LEN.load(Ordering::SeqCst);
        // SAFETY: `p`/`len` come from a `&'static str` in `set_target`.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(p, len)) }
    }
}

/// Settings of a campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Seed of the mutations.
    pub seed: u64,
    /// Stop after this many mutants…
    pub iterations: Option<u64>,
    /// …or after this long, whichever comes first.
    pub duration: Duration,
    /// Where inputs that panicked are written.
    pub findings: PathBuf,
    /// Extra inputs (`<corpus>/<target>/*`): earlier findings kept as
    /// regressions.
    pub corpus: Option<PathBuf>,
    /// A single input running longer than this is a hang.
    pub hang: Duration,
}

/// One input that panicked.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Mutant number, or `None` for a corpus input.
    pub iteration: Option<u64>,
    /// The panic message and location.
    pub message: String,
    /// Where the input was saved.
    pub file: PathBuf,
}

/// The outcome of a campaign on one target.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Inputs fed (corpus and mutants).
    pub executions: u64,
    /// Wall time.
    pub seconds: f64,
    /// Corpus size.
    pub corpus: usize,
    /// Distinct panics (by location), first input of each.
    pub findings: Vec<Finding>,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook with one that records the message instead of
/// printing it (thousands of expected-to-be-caught panics would flood the
/// log); the report prints each distinct one.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "(non-string payload)".to_string()
        };
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{at}: {msg}")));
    }));
}

/// Feeds one input; `Err` holds the panic's location and message.
pub fn feed(target: &Target, input: &[u8], scratch: &Path) -> Result<(), String> {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match catch_unwind(AssertUnwindSafe(|| (target.run)(input, scratch))) {
        Ok(()) => Ok(()),
        Err(_) => Err(LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic without a message".into())),
    }
}

/// The corpus of `target`: its seeds, then the files of `extra/<name>/`.
pub fn corpus_of(target: &Target, scratch: &Path, extra: Option<&Path>) -> Vec<Vec<u8>> {
    let mut corpus = (target.seeds)(scratch);
    if let Some(dir) = extra.map(|d| d.join(target.name)) {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            corpus.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
        }
    }
    corpus
}

/// Mutant `iteration` of a campaign seeded `seed` over `corpus`.
pub fn mutant(target: &Target, corpus: &[Vec<u8>], seed: u64, iteration: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(iteration);
    let m = Mutator {
        corpus,
        dictionary: target.dictionary,
        max_len: target.max_len,
    };
    m.mutate(
        &corpus[(iteration % corpus.len() as u64) as usize],
        &mut rng,
    )
}

/// Runs a campaign on `target`.
pub fn run(target: &Target, campaign: &Campaign) -> std::io::Result<Report> {
    current::set_target(target.name);
    current::SEED.store(campaign.seed, Ordering::SeqCst);
    let scratch = tempfile::tempdir()?;
    let corpus = corpus_of(target, scratch.path(), campaign.corpus.as_deref());
    if corpus.is_empty() {
        return Err(std::io::Error::other(format!(
            "{}: no seed inputs (is tests/fixtures/ beside fuzz/?)",
            target.name
        )));
    }
    let started = Instant::now();
    let watchdog = Watchdog::start(campaign.hang);
    let mut report = Report {
        target: target.name,
        executions: 0,
        seconds: 0.0,
        corpus: corpus.len(),
        findings: Vec::new(),
    };
    let mut record =
        |iteration: Option<u64>, input: &[u8], message: String| -> std::io::Result<()> {
            let site = message.split(": ").next().unwrap_or("").to_string();
            if report.findings.iter().any(|f| f.message.starts_with(&site)) {
                return Ok(());
            }
            std::fs::create_dir_all(&campaign.findings)?;
            let tag = iteration.map_or("corpus".to_string(), |i| i.to_string());
            let file = campaign
                .findings
                .join(format!("{}-{}-{tag}.bin", target.name, campaign.seed));
            std::fs::write(&file, input)?;
            report.findings.push(Finding {
                iteration,
                message,
                file,
            });
            Ok(())
        };
    for input in &corpus {
        current::ITERATION.store(u64::MAX, Ordering::SeqCst);
        watchdog.begin();
        let outcome = feed(target, input, scratch.path());
        watchdog.end();
        report.executions += 1;
        if let Err(msg) = outcome {
            record(None, input, msg)?;
        }
    }
    let mut i = 0u64;
    while campaign.iterations.is_none_or(|n| i < n) && started.elapsed() < campaign.duration {
        let input = mutant(target, &corpus, campaign.seed, i);
        current::ITERATION.store(i, Ordering::SeqCst);
        watchdog.begin();
        let outcome = feed(target, &input, scratch.path());
        watchdog.end();
        report.executions += 1;
        if let Err(msg) = outcome {
            record(Some(i), &input, msg)?;
        }
        i += 1;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Aborts the process when one input runs longer than the hang limit,
/// naming the target and the mutant (a hang cannot be caught otherwise).
struct Watchdog {
    started_ms: &'static AtomicU64,
    stop: &'static AtomicBool,
    origin: Instant,
}

impl Watchdog {
    fn start(limit: Duration) -> Self {
        let started_ms: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let origin = Instant::now();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                let s = started_ms.load(Ordering::SeqCst);
                if s != 0 && origin.elapsed().as_millis() as u64 > s + limit.as_millis() as u64 {
                    eprintln!(
                        "syncseg-fuzz: HANG: target {} seed {} iteration {} ran over {:?}; rebuild it with `syncseg-fuzz mutant`",
                        current::target(),
                        current::SEED.load(Ordering::SeqCst),
                        current::ITERATION.load(Ordering::SeqCst),
                        limit
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog {
            started_ms,
            stop,
            origin,
        }
    }

    fn begin(&self) {
        // +1: 0 means "idle".
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        self.started_ms.store(now, Ordering::SeqCst);
    }

    fn end(&self) {
        self.started_ms.store(0, Ordering::SeqCst);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
