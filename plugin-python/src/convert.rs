//! Python values to and from JSON: keyword arguments become the fields of
//! core's serde structs (so their names, types and defaults are core's),
//! and reports come back as dicts.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

use crate::errors::invalid;

/// `value` (argument `name`) as JSON: None, bool, int, float, str,
/// `os.PathLike` (a path), and lists or tuples of those.
pub fn to_json(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() {
        return match value.extract::<i64>() {
            Ok(v) => Ok(Value::from(v)),
            Err(_) => {
                Ok(Value::from(value.extract::<u64>().map_err(|_| {
                    invalid(format!("`{name}` {value}: out of range"))
                })?))
            }
        };
    }
    if value.is_instance_of::<PyFloat>() {
        let v: f64 = value.extract()?;
        return serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| invalid(format!("`{name}` {v}: must be finite")));
    }
    if value.is_instance_of::<PyString>() {
        return Ok(Value::String(value.extract()?));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items: PyResult<Vec<Value>> = value
            .try_iter()?
            .map(|item| to_json(name, &item?))
            .collect();
        return Ok(Value::Array(items?));
    }
    if value.hasattr("__fspath__")? {
        let path: PathBuf = value.extract()?;
        return Ok(Value::String(path.to_string_lossy().into_owned()));
    }
    // NumPy scalars (np.int64, np.float32) convert through Python's own.
    if value.hasattr("item")? && value.hasattr("dtype")? {
        return to_json(name, &value.call_method0("item")?);
    }
    Err(PyTypeError::new_err(format!(
        "`{name}`: a {} is not an accepted value (give a str, path, number, bool, None or a list)",
        value.get_type().name()?
    )))
}

/// The keyword arguments as a JSON object.
pub fn kwargs_json(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Map<String, Value>> {
    let mut out = Map::new();
    if let Some(kwargs) = kwargs {
        for (k, v) in kwargs.iter() {
            let k: String = k.extract()?;
            let v = to_json(&k, &v)?;
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// `value` as a Python object (dicts, lists, str, int, float, bool, None).
pub fn to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any().unbind(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any().unbind(),
            _ => n
                .as_f64()
                .unwrap_or(f64::NAN)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// Parses the fields of `T` out of `args`, naming `job` in errors: serde's
/// "unknown field" / "missing field" read as arguments.
pub fn from_args<T: serde::de::DeserializeOwned>(
    job: &str,
    args: Map<String, Value>,
) -> PyResult<T> {
    serde_json::from_value(Value::Object(args)).map_err(|e| {
        let text = e
            .to_string()
            .replace("unknown field", "unknown argument")
            .replace("missing field", "missing argument");
        invalid(format!("{job}: {text}"))
    })
}

/// The names of `T`'s fields (what it serializes; `T::default()`).
pub fn field_names<T: serde::Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}
