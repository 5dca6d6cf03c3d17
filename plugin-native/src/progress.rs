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

/// Bars for an epoch loop: one over epochs (with validation), one over the
/// steps of the current epoch.
pub struct EpochBars {
    multi: indicatif::MultiProgress,
    epochs: Option<ProgressBar>,
    steps: Option<ProgressBar>,
    prefix: String,
}

impl EpochBars {
    /// New bars labelled `prefix`.
    pub fn new(prefix: &str) -> Self {
        let multi = indicatif::MultiProgress::new();
        if std::env::var_os("CI").is_some() {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        EpochBars {
            multi,
            epochs: None,
            steps: None,
            prefix: prefix.to_string(),
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

impl syncseg_core::train::fit::Observer for EpochBars {
    fn step(&mut self, epoch: usize, done: usize, total: usize, loss: f32) {
        let steps = self
            .steps
            .get_or_insert_with(|| self.multi.add(bar(total as u64, "", "steps")));
        if done == 1 {
            steps.reset();
            steps.set_length(total as u64);
            steps.set_prefix(format!("epoch {epoch}"));
        }
        steps.set_position(done as u64);
        steps.set_message(format!("loss {loss:.4}"));
    }

    fn epoch(&mut self, record: &syncseg_core::train::fit::EpochRecord, epochs: usize) {
        let prefix = self.prefix.clone();
        let pb = self
            .epochs
            .get_or_insert_with(|| self.multi.insert(0, bar(epochs as u64, &prefix, "epochs")));
        pb.set_position(record.epoch as u64);
        let val = match &record.val {
            Some(v) => format!(" val {:.1}{}", v.score, if record.best { " *" } else { "" }),
            None => String::new(),
        };
        pb.set_message(format!("loss {:.4}{val}", record.train_loss));
        tracing::debug!(epoch = record.epoch, loss = record.train_loss, "epoch done");
    }
}
