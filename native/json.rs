//! JSON bytes for plain Python data, exactly as FastAPI renders an endpoint's return value
//! without a response model: `json.dumps(jsonable_encoder(obj), ensure_ascii=False,
//! allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")`.
//!
//! Only exact `dict` (with `str` keys), `list`, `tuple`, `str`, `int`, `float`, `bool` and
//! `None` are rendered here; for those `jsonable_encoder` returns an equal structure (it drops
//! dict keys starting with `_sa`, which are left to Python too). Anything else — a subclass, a
//! model, a non-finite float, a huge int, a string with lone surrogates, very deep nesting —
//! returns `None`, and the caller takes FastAPI's own path, which then behaves as stock FastAPI
//! does (including its errors).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Deeper nesting is left to Python (whose recursion limit then decides, as in stock FastAPI).
const MAX_DEPTH: usize = 128;

/// The JSON bytes of `obj`, or `None` when `obj` is not plain data (see the module docs).
#[pyfunction]
pub fn dumps_plain<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(128);
    if write_value(obj, &mut out, 0) {
        Some(PyBytes::new(py, &out))
    } else {
        None
    }
}

fn write_value(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if obj.is_none() {
        out.extend_from_slice(b"null");
        return true;
    }
    if obj.is_exact_instance_of::<PyString>() {
        return obj
            .cast::<PyString>()
            .ok()
            .and_then(|s| s.to_str().ok())
            .map(|s| write_str(s, out))
            .is_some();
    }
    if obj.is_exact_instance_of::<PyBool>() {
        out.extend_from_slice(if obj.is_truthy().unwrap_or(false) {
            b"true"
        } else {
            b"false"
        });
        return true;
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(value) => {
                out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
                true
            }
            Err(_) => false,
        };
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        let value = obj.cast::<PyFloat>().map(|f| f.value()).unwrap_or(f64::NAN);
        return write_float(value, out);
    }
    if obj.is_exact_instance_of::<PyDict>() {
        let Ok(dict) = obj.cast::<PyDict>() else {
            return false;
        };
        out.push(b'{');
        let mut first = true;
        for (key, value) in dict.iter() {
            if !key.is_exact_instance_of::<PyString>() {
                return false;
            }
            let Ok(key) = key.cast::<PyString>() else {
                return false;
            };
            let Ok(key) = key.to_str() else { return false };
            if key.starts_with("_sa") {
                return false; // jsonable_encoder drops these: let it
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(key, out);
            out.push(b':');
            if !write_value(&value, out, depth + 1) {
                return false;
            }
        }
        out.push(b'}');
        return true;
    }
    if obj.is_exact_instance_of::<PyList>() {
        let Ok(list) = obj.cast::<PyList>() else {
            return false;
        };
        return write_items(list.iter(), out, depth);
    }
    if obj.is_exact_instance_of::<PyTuple>() {
        let Ok(tuple) = obj.cast::<PyTuple>() else {
            return false;
        };
        return write_items(tuple.iter(), out, depth);
    }
    false
}

fn write_items<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    out: &mut Vec<u8>,
    depth: usize,
) -> bool {
    out.push(b'[');
    let mut first = true;
    for item in items {
        if !first {
            out.push(b',');
        }
        first = false;
        if !write_value(&item, out, depth + 1) {
            return false;
        }
    }
    out.push(b']');
    true
}

/// A JSON string as `json.dumps(..., ensure_ascii=False)` writes it.
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            _ => None,
        };
        if let Some(escape) = escape {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(escape);
            start = i + 1;
        } else if b < 0x20 {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `float.__repr__`: the shortest digits that round-trip, in fixed notation when the decimal
/// exponent is in [-4, 16), else as `d.ddde+XX`. Non-finite values are not JSON (`allow_nan`
/// is off): `false`, so Python raises its own error.
fn write_float(value: f64, out: &mut Vec<u8>) -> bool {
    if !value.is_finite() {
        return false;
    }
    write_float_repr(value, out);
    true
}

/// The shortest round-trip digits of a finite `value` (ryu's, as Python's repr picks them)
/// and its decimal exponent: `value = ±0.d1d2… × 10^(exponent + 1)`. Zero has no digits.
fn shortest_digits(value: f64, digits: &mut [u8; 24]) -> (usize, i32) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value.abs()).as_bytes();
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
        Some(at) => {
            let exponent = std::str::from_utf8(&text[at + 1..])
                .ok()
                .and_then(|e| e.parse::<i32>().ok())
                .unwrap_or(0);
            (&text[..at], exponent)
        }
        None => (text, 0),
    };
    let point = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let mut count = 0;
    let mut first_at: Option<usize> = None; // index in mantissa's digits of the first non-zero
    let mut index = 0;
    for &b in mantissa {
        if b == b'.' {
            continue;
        }
        if first_at.is_none() && b != b'0' {
            first_at = Some(index);
        }
        if first_at.is_some() && count < digits.len() {
            digits[count] = b;
            count += 1;
        }
        index += 1;
    }
    while count > 0 && digits[count - 1] == b'0' {
        count -= 1;
    }
    let Some(first_at) = first_at else {
        return (0, 0);
    };
    (count, point as i32 - 1 - first_at as i32 + exponent)
}

fn write_float_repr(value: f64, out: &mut Vec<u8>) {
    if value.is_sign_negative() {
        out.push(b'-');
    }
    let mut buffer = [0u8; 24];
    let (count, exponent) = shortest_digits(value, &mut buffer);
    if count == 0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    let digits = &buffer[..count];
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-point) as usize));
            out.extend_from_slice(digits);
        } else if point as usize >= count {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', point as usize - count));
            out.extend_from_slice(b".0");
        } else {
            let (whole, fraction) = digits.split_at(point as usize);
            out.extend_from_slice(whole);
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
    } else {
        out.push(digits[0]);
        if count > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.extend_from_slice(if exponent < 0 { b"e-" } else { b"e+" });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(magnitude).as_bytes());
    }
}

#[cfg(test)]
fn python_float_repr(value: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_float_repr(value, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dumps_plain, m)?)
}

#[cfg(test)]
mod tests {
    use super::python_float_repr;

    #[test]
    fn floats_print_as_python_repr() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (1.25, "1.25"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (9999999999999998.0, "9999999999999998.0"),
            (2.5e-308, "2.5e-308"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-3.25, "-3.25"),
            (100.0, "100.0"),
            (0.3, "0.3"),
            (2.0 / 3.0, "0.6666666666666666"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value), expected, "{value:e}");
        }
    }
}
