//! core's errors as Python exceptions, with core's one-line messages:
//! files the OS refused → `OSError` (`FileNotFoundError`,
//! `PermissionError`), bad input or file content → `ValueError`, a tensor
//! failure → `RuntimeError`.

use pyo3::exceptions::{
    PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;
use syncseg_core::Error;

/// `e` as the Python exception a caller can catch.
pub fn to_py(e: Error) -> PyErr {
    let text = e.to_string();
    match &e {
        Error::Io { cause, .. } => match cause.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(text),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(text),
            _ => PyOSError::new_err(text),
        },
        Error::Format { .. } | Error::Invalid(_) => PyValueError::new_err(text),
        Error::Candle(_) => PyRuntimeError::new_err(text),
    }
}

/// A `ValueError` with `text`.
pub fn invalid(text: impl Into<String>) -> PyErr {
    PyValueError::new_err(text.into())
}

/// core's `Result` into a Python one.
pub trait OrPy<T> {
    /// The value, or core's error as a Python exception.
    fn or_py(self) -> pyo3::PyResult<T>;
}

impl<T> OrPy<T> for syncseg_core::Result<T> {
    fn or_py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
