//! Progress bars on stderr (hidden when stderr is not a terminal and in CI).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` items of `unit` with a message prefix.
pub fn bar(total: u64, prefix: &str, unit: &str) -> ProgressBar {
    let pb = if std::env::var_os("CI").is_some() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    let template = format!(
        "{{prefix:>12.bold}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}}, eta {{eta}})"
    );
    pb.set_style(
        ProgressStyle::with_template(&template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

/// Bars for an epoch loop: one over epochs (with validation and the run's
/// ETA), one over the steps of the current epoch (steps/s, the epoch's
/// running mean loss, the process's resident memory). When stderr is not a
/// terminal (a log file, `nohup`), one plain line per epoch instead.
pub struct EpochBars {
    multi: indicatif::MultiProgress,
    epochs: Option<ProgressBar>,
    steps: Option<ProgressBar>,
    prefix: String,
    /// The current epoch's loss sum and step count (the running mean).
    running: (f64, usize),
    /// Print a line per epoch (no terminal, not CI).
    lines: bool,
}

impl EpochBars {
    /// New bars labelled `prefix`.
    pub fn new(prefix: &str) -> Self {
        let multi = indicatif::MultiProgress::new();
        let ci = std::env::var_os("CI").is_some();
        if ci {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        EpochBars {
            multi,
            epochs: None,
            steps: None,
            prefix: prefix.to_string(),
            running: (0.0, 0),
            lines: !ci && !std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    /// Removes the bars.
    pub fn finish(&mut self) {
        for pb in [self.steps.take(), self.epochs.take()]
            .into_iter()
            .flatten()
        {
            pb.finish_and_clear();
        }
    }
}

/// The process's resident memory for a progress line ("" where unknown).
fn rss() -> String {
    syncseg_core::memory::usage()
        .map(|m| format!(" rss {}", syncseg_core::memory::mib(m.rss_bytes)))
        .unwrap_or_default()
}

impl syncseg_core::train::fit::Observer for EpochBars {
    fn step(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        let steps = self.steps.get_or_insert_with(|| {
            let pb = self.multi.add(bar(total as u64, "", "steps"));
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12.bold} [{bar:30}] {pos}/{len} steps {per_sec} {msg} (eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            pb
        });
        if done == 1 {
            steps.reset();
            steps.set_length(total as u64);
            steps.set_prefix(format!("epoch {epoch}"));
            self.running = (0.0, 0);
        }
        self.running.0 += loss as f64;
        self.running.1 += 1;
        steps.set_position(done as u64);
        // Reading /proc costs ~20 µs; a step costs milliseconds.
        steps.set_message(format!(
            "loss {loss:.4} (mean {:.4}){}",
            self.running.0 / self.running.1 as f64,
            rss()
        ));
    }

    fn epoch(&mut self, record: &syncseg_core::train::fit::EpochRecord, epochs: usize) {
        let prefix = self.prefix.clone();
        let pb = self
            .epochs
            .get_or_insert_with(|| self.multi.insert(0, bar(epochs as u64, &prefix, "epochs")));
        if pb.position() == 0 && record.epoch > 1 {
            // A resumed run: the ETA counts only the epochs left.
            pb.reset();
            pb.set_position(record.epoch as u64 - 1);
        }
        pb.set_position(record.epoch as u64);
        let val = match &record.val {
            Some(v) => format!(" val {:.1}{}", v.score, if record.best { " *" } else { "" }),
            None => String::new(),
        };
        let memory = record
            .memory
            .map(|m| {
                format!(
                    " rss {} (peak {})",
                    syncseg_core::memory::mib(m.rss_bytes),
                    syncseg_core::memory::mib(m.peak_rss_bytes)
                )
            })
            .unwrap_or_default();
        pb.set_message(format!("loss {:.4}{val}{memory}", record.train_loss));
        if self.lines {
            let left = (epochs - record.epoch) as f64 * record.seconds;
            eprintln!(
                "{prefix} epoch {}/{epochs}: loss {:.4}{val}, {} steps in {:.1} s ({:.2} steps/s){memory}, eta {}",
                record.epoch,
                record.train_loss,
                record.steps,
                record.seconds,
                record.steps as f64 / record.seconds.max(1e-9),
                indicatif::HumanDuration(std::time::Duration::from_secs_f64(left)),
            );
        }
        tracing::debug!(epoch = record.epoch, loss = record.train_loss, "epoch done");
    }
}

/// How the command line follows a pipeline job: "training on …" and the
/// saved model on stderr, epoch bars, a bar over videos, notes.
pub struct CliMonitor {
    /// The command's stages have their name before each line (`distill`).
    prefixed: bool,
    bars: Option<EpochBars>,
    /// The prefix of the bar over items, and the bar once the total is known.
    items: Option<(&'static str, Option<ProgressBar>)>,
}

impl CliMonitor {
    /// A monitor of `syncseg train` (one stage, lines without its name).
    pub fn train() -> Self {
        CliMonitor {
            prefixed: false,
            bars: None,
            items: None,
        }
    }

    /// A monitor of `syncseg distill` (lines name their stage).
    pub fn distill() -> Self {
        CliMonitor {
            prefixed: true,
            ..CliMonitor::train()
        }
    }

    /// A monitor of a job over videos (`predict`): a bar labelled `prefix`.
    pub fn items(prefix: &'static str) -> Self {
        CliMonitor {
            items: Some((prefix, None)),
            ..CliMonitor::train()
        }
    }
}

impl syncseg_core::train::fit::Observer for CliMonitor {
    fn step(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        if let Some(bars) = &mut self.bars {
            bars.step(epoch, done, total, loss);
        }
    }
    fn epoch(&mut self, record: &syncseg_core::train::fit::EpochRecord, epochs: usize) {
        if let Some(bars) = &mut self.bars {
            bars.epoch(record, epochs);
        }
    }
}

impl syncseg_core::pipeline::Monitor for CliMonitor {
    fn stage_started(&mut self, stage: &str, device: &str) {
        if self.prefixed {
            eprintln!("{stage}: training on {device}");
        } else {
            eprintln!("training on {device}");
        }
        self.bars = Some(EpochBars::new(stage));
    }

    fn stage_finished(&mut self, r: &syncseg_core::pipeline::StageReport) {
        if let Some(mut bars) = self.bars.take() {
            bars.finish();
        }
        let out = r.out.display();
        let name = &r.stage;
        match (r.best, self.prefixed) {
            (Some((score, epoch)), false) if r.validated => eprintln!(
                "best epoch {epoch} (validation F1@{{10,25,50}}+Edit+MoF = {score:.2}) saved to {out}"
            ),
            (_, false) => eprintln!("last epoch saved to {out} (no validation videos)"),
            (Some((score, epoch)), true) if r.validated => eprintln!(
                "{name}: saved {out} (epoch {epoch}, held-out loss {:.5})",
                -score
            ),
            (_, true) => eprintln!("{name}: saved {out} (last epoch; no held-out pairs)"),
        }
    }

    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }

    fn item_done(&mut self, done: usize, total: usize) {
        if let Some((prefix, pb)) = &mut self.items {
            let pb = pb.get_or_insert_with(|| bar(total as u64, prefix, "videos"));
            pb.set_position(done as u64);
            if done == total {
                pb.finish_and_clear();
            }
        }
    }
}
