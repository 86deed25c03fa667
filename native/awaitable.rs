//! Awaitables built in Rust: a value that is already known is returned without an asyncio
//! future and without waking the event loop.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

/// An awaitable that completes immediately with its value.
#[pyclass(frozen, module = "fastrapi_compat._native")]
pub struct Ready {
    value: Py<PyAny>,
}

impl Ready {
    pub fn new_py(py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        Ok(Py::new(py, Ready { value })?.into_any())
    }

    pub fn none(py: Python<'_>) -> PyResult<Py<PyAny>> {
        Self::new_py(py, py.None())
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<()> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

    #[pyo3(signature = (typ, value=None, _tb=None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let exc = match value {
            Some(v) if !v.is_none() => v.clone(),
            _ => typ.clone(),
        };
        Err(PyErr::from_value(exc))
    }

    fn close(&self) {}
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Ready>()
}
