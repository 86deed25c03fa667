//! The headers the server puts on every response, as uvicorn does: `date` (`--date-header`),
//! then `server: uvicorn` (`--server-header`) and each `--header NAME:VALUE`, before the app's
//! own headers. The `date` value is formatted once per second per I/O thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{DATE, SERVER};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::errors::EngineError;

/// A listener's response defaults (`Engine.listen`'s `date_header` and `default_headers`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DefaultHeaders {
    /// Whether a `date` header comes first (else none at all: hyper's own is off too).
    pub date: bool,
    /// `server` and the `--header` pairs, in uvicorn's order.
    pub fixed: Vec<(HeaderName, HeaderValue)>,
}

impl DefaultHeaders {
    /// From the pairs Python computed (names lower-cased there, as uvicorn encodes them).
    pub fn new(date: bool, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self, EngineError> {
        let mut fixed = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(&name)
                .map_err(|_| EngineError::HeaderName(String::from_utf8_lossy(&name).into()))?;
            let value = HeaderValue::from_bytes(&value)
                .map_err(|_| EngineError::HeaderValue(String::from_utf8_lossy(&value).into()))?;
            fixed.push((name, value));
        }
        Ok(Self { date, fixed })
    }

    /// Whether a map made by [`Self::seeded`] holds what [`Self::apply`] would give once the
    /// answer's own headers are added: true when every fixed default is `server` (a name the
    /// engine's middleware never sets, so their `insert`s cannot replace a default).
    pub fn seeds(&self) -> bool {
        self.fixed.iter().all(|(name, _)| *name == SERVER)
    }

    /// A map holding the defaults, in [`Self::apply`]'s order, with room for `room` more
    /// headers: an answer built on it needs no `apply` (when [`Self::seeds`]), which would move
    /// every header out and back.
    pub fn seeded(&self, room: usize) -> HeaderMap {
        let mut headers =
            HeaderMap::with_capacity(room + self.fixed.len() + usize::from(self.date));
        if self.date {
            headers.insert(DATE, now());
        }
        for (name, value) in &self.fixed {
            headers.append(name.clone(), value.clone());
        }
        headers
    }

    /// Brings the `date` of a copy of a map made by [`Self::seeded`] to the current second.
    pub fn restamp(&self, headers: &mut HeaderMap) {
        if !self.date {
            return;
        }
        // the first header (no lookup by name)
        if let Some((name, value)) = headers.iter_mut().next() {
            if name == DATE {
                *value = now();
            }
        }
    }

    /// Puts the defaults before `headers` (uvicorn writes its defaults first, then the app's
    /// headers; a name set by both is sent twice, as uvicorn sends it).
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.date && self.fixed.is_empty() {
            return;
        }
        let done = MOVED.try_with(|moved| self.refill(headers, &mut moved.borrow_mut()));
        if done.is_err() {
            self.refill(headers, &mut Vec::new()); // this thread is exiting
        }
    }

    /// `apply` in place: a `HeaderMap` cannot put names before its own, so its pairs are moved
    /// out (into `moved`, a buffer kept by the thread) and back after the defaults. The map
    /// keeps its allocations: none is made when it has room for the defaults.
    fn refill(&self, headers: &mut HeaderMap, moved: &mut Vec<(HeaderName, HeaderValue)>) {
        let mut last: Option<HeaderName> = None;
        for (name, value) in headers.drain() {
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                moved.push((name.clone(), value));
            }
        }
        headers.clear(); // drained already; this resets its hashing state too
        headers.reserve(moved.len() + self.fixed.len() + 1);
        if self.date {
            headers.insert(DATE, now());
        }
        for (name, value) in &self.fixed {
            headers.append(name.clone(), value.clone());
        }
        for (name, value) in moved.drain(..) {
            headers.append(name, value);
        }
        if moved.capacity() > MOVED_CAPACITY {
            moved.shrink_to(MOVED_CAPACITY);
        }
    }
}

/// The thread's buffer of moved pairs is shrunk back to this after a response with more.
const MOVED_CAPACITY: usize = 64;

thread_local! {
    /// The pairs [`DefaultHeaders::apply`] moves out of a map and back (empty between calls).
    static MOVED: RefCell<Vec<(HeaderName, HeaderValue)>> = const { RefCell::new(Vec::new()) };
    /// The `date` value of the current second on this thread.
    static DATE_CACHE: RefCell<(u64, Option<HeaderValue>)> = const { RefCell::new((0, None)) };
}

/// The current `date` header value (IMF-fixdate, as uvicorn's `formatdate(usegmt=True)`).
fn now() -> HeaderValue {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        match &cache.1 {
            Some(value) if cache.0 == second => value.clone(),
            _ => {
                let value = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                *cache = (second, Some(value.clone()));
                value
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_first_in_order_and_the_apps_follow() {
        let defaults = DefaultHeaders::new(
            true,
            vec![
                (b"server".to_vec(), b"uvicorn".to_vec()),
                (b"x-a".to_vec(), b" b".to_vec()),
            ],
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.append("content-type", HeaderValue::from_static("text/plain"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.append("server", HeaderValue::from_static("app"));
        defaults.apply(&mut headers);
        let got: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(got[0].0, "date");
        assert!(got[0].1.ends_with(" GMT"), "{got:?}");
        assert_eq!(
            got[1..],
            [
                ("server".into(), "uvicorn".into()),
                ("server".into(), "app".into()),
                ("x-a".into(), " b".into()),
                ("content-type".into(), "text/plain".into()),
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
            ]
        );
    }

    #[test]
    fn a_reused_map_holds_nothing_of_the_last_response() {
        let defaults =
            DefaultHeaders::new(false, vec![(b"server".to_vec(), b"uvicorn".to_vec())]).unwrap();
        let mut first = HeaderMap::new();
        for i in 0..20 {
            first.append("x-old", HeaderValue::from(i));
        }
        defaults.apply(&mut first);
        assert_eq!(first.len(), 21);
        let mut second = HeaderMap::new();
        second.append("content-type", HeaderValue::from_static("text/plain"));
        defaults.apply(&mut second);
        let got: Vec<(String, String)> = second
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("server".into(), "uvicorn".into()),
                ("content-type".into(), "text/plain".into()),
            ]
        );
    }

    #[test]
    fn a_seeded_map_is_what_apply_gives() {
        let defaults =
            DefaultHeaders::new(true, vec![(b"server".to_vec(), b"uvicorn".to_vec())]).unwrap();
        assert!(defaults.seeds());
        let answer = [("vary", "Origin"), ("content-length", "2"), ("x-b", "1")];
        let mut applied = HeaderMap::new();
        let mut seeded = defaults.seeded(answer.len());
        for (name, value) in answer {
            applied.insert(name, HeaderValue::from_static(value));
            seeded.insert(name, HeaderValue::from_static(value));
        }
        defaults.apply(&mut applied);
        let pairs = |map: &HeaderMap| -> Vec<(String, Vec<u8>)> {
            map.iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect()
        };
        let (seeded, applied) = (pairs(&seeded), pairs(&applied));
        // the `date` values may straddle a second
        assert_eq!(
            (&seeded[0].0, &applied[0].0),
            (&"date".into(), &"date".into())
        );
        assert_eq!(seeded[1..], applied[1..]);
        let other = DefaultHeaders::new(false, vec![(b"x-a".to_vec(), b"1".to_vec())]).unwrap();
        assert!(!other.seeds());
    }

    #[test]
    fn nothing_to_add_leaves_the_headers_alone() {
        let mut headers = HeaderMap::new();
        headers.append("a", HeaderValue::from_static("1"));
        DefaultHeaders::default().apply(&mut headers);
        assert_eq!(headers.len(), 1);
    }

    #[test]
    fn invalid_names_are_refused() {
        assert!(DefaultHeaders::new(false, vec![(b"a b".to_vec(), b"x".to_vec())]).is_err());
        assert!(DefaultHeaders::new(false, vec![(b"a".to_vec(), b"x\r\n".to_vec())]).is_err());
    }
}
