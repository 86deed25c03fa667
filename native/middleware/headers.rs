//! The response headers the layers edit, as one interface over two representations: the
//! engine's `HeaderMap` (the native tier) and an ASGI message's raw `[(name, value)]` list
//! (the layers run inside the app's Python middleware), edited as Starlette's
//! `MutableHeaders` edits it so every Python middleware outside sees the list stock would send.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Starlette's `MutableHeaders` operations the layers use (names are lower case).
pub trait HeaderList {
    /// The first value of `name`.
    fn first(&self, name: &str) -> Option<&[u8]>;
    /// Every value of `name`, in order (`getlist`).
    fn all(&self, name: &str) -> Vec<&[u8]>;
    /// `headers[name] = value`: replaces the first value in place, drops the others, or
    /// appends.
    fn set(&mut self, name: HeaderName, value: HeaderValue);
    /// `headers.append(name, value)`.
    fn append(&mut self, name: HeaderName, value: HeaderValue);
    /// `del headers[name]` (every value; nothing when absent).
    fn remove(&mut self, name: &str);
}

impl HeaderList for HeaderMap {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(HeaderValue::as_bytes)
    }

    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    }

    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert(name, value);
    }

    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        HeaderMap::append(self, name, value);
    }

    fn remove(&mut self, name: &str) {
        HeaderMap::remove(self, name);
    }
}

/// An ASGI message's `headers`: raw pairs in the app's order, names as the app wrote them
/// (Starlette matches a lower-cased name against them byte for byte).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawHeaders(pub Vec<(Vec<u8>, Vec<u8>)>);

impl HeaderList for RawHeaders {
    fn first(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    fn all(&self, name: &str) -> Vec<&[u8]> {
        let name = name.as_bytes();
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
            .collect()
    }

    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        let key = name.as_str().as_bytes();
        let mut found = self.0.iter().enumerate().filter(|(_, (k, _))| k == key);
        match found.next().map(|(index, _)| index) {
            Some(index) => {
                let mut seen = 0usize;
                self.0.retain(|(k, _)| {
                    let keep = k != key || seen == 0;
                    seen += usize::from(k == key);
                    keep
                });
                self.0[index] = (key.to_vec(), value.as_bytes().to_vec());
            }
            None => self.0.push((key.to_vec(), value.as_bytes().to_vec())),
        }
    }

    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.0
            .push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
    }

    fn remove(&mut self, name: &str) {
        let name = name.as_bytes();
        self.0.retain(|(key, _)| key != name);
    }
}

impl From<&HeaderMap> for RawHeaders {
    /// The list a response built from `headers` sends, in the map's order.
    fn from(headers: &HeaderMap) -> Self {
        Self(
            headers
                .iter()
                .map(|(name, value)| (name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawHeaders {
        RawHeaders(
            pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn set_is_mutable_headers_setitem() {
        let mut headers = raw(&[("vary", "a"), ("x", "1"), ("vary", "b"), ("Vary", "c")]);
        headers.set(http::header::VARY, HeaderValue::from_static("a, b, Origin"));
        assert_eq!(
            headers,
            raw(&[("vary", "a, b, Origin"), ("x", "1"), ("Vary", "c")])
        );
        headers.set(http::header::CONTENT_LENGTH, HeaderValue::from(3));
        assert_eq!(headers.0.last().unwrap().0, b"content-length");
        headers.remove("x");
        assert_eq!(headers.first("x"), None);
        assert_eq!(headers.all("vary"), [&b"a, b, Origin"[..]]);
    }
}
