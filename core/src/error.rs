//! The one error type of syncseg-core.
//!
//! Every variant renders as a single line that names the file or argument at
//! fault and what is wrong with it, because that line is what a CLI user sees.

use std::path::{Path, PathBuf};

/// Errors returned by syncseg-core.
///
/// The causes (the OS's text, candle's message) are part of each variant's
/// one line and deliberately *not* exposed as `source()`: a caller that
/// prints the chain (`anyhow`'s `{:#}`) would otherwise print them twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused to read or write a file.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// A file was read but its content is not what the format requires.
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong, e.g. "line 12: label 'x' is not in the mapping".
        msg: String,
    },
    /// An argument or an in-memory value is unusable (shape mismatch, empty input, ...).
    #[error("{0}")]
    Invalid(String),
    /// A tensor operation failed inside candle.
    #[error("tensor error: {0}")]
    Candle(candle_core::Error),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            cause: source,
        }
    }

    /// A content error in the file `path`.
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// An invalid argument or value.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// What `anyhow`'s `{:#}` prints: the error, then each source.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            out.push_str(": ");
            out.push_str(&s.to_string());
            next = s.source();
        }
        out
    }

    #[test]
    fn causes_are_printed_once() {
        let os = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = os.to_string();
        let e = Error::io("/x/model.json", os);
        assert_eq!(chain(&e), format!("/x/model.json: {text}"));
        let c = Error::from(candle_core::Error::Msg("bad shape".into()));
        assert_eq!(chain(&c), "tensor error: bad shape");
    }
}
