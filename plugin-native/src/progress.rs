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
