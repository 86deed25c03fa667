//! Looking for a non-standard header name in a request: a map lookup hashes such a name byte
//! by byte, while the names of a request of a few headers are compared faster.

use http::{HeaderMap, HeaderName};

/// Whether a request has a header of one of these (non-standard) names. A custom name is
/// hashed byte by byte for a lookup; the names of a request of a few headers are compared
/// faster.
pub fn has_name(headers: &HeaderMap, names: &[&HeaderName]) -> bool {
    if headers.keys_len() > SCAN_LIMIT {
        return names.iter().any(|name| headers.contains_key(*name));
    }
    headers.keys().any(|key| names.contains(&key))
}

/// Up to this many header names, [`has_name`] compares them rather than hashing its own.
const SCAN_LIMIT: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SYNTHETIC: HeaderName = HeaderName::from_static("x-fastrapi-synthetic-host");
    const TEST_CLIENT: HeaderName = HeaderName::from_static("x-fastrapi-testclient");

    #[test]
    fn a_name_is_found_scanned_or_hashed() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        assert!(has_name(&headers, &[&HeaderName::from_static("x-a")]));
        assert!(!has_name(&headers, &[&SYNTHETIC]));
        for i in 0..SCAN_LIMIT {
            headers.append(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from(i),
            );
        }
        headers.append(SYNTHETIC, HeaderValue::from_static("1"));
        assert!(headers.keys_len() > SCAN_LIMIT);
        assert!(has_name(&headers, &[&SYNTHETIC]));
        assert!(has_name(&headers, &[&TEST_CLIENT, &SYNTHETIC]));
        assert!(!has_name(&headers, &[&TEST_CLIENT]));
    }
}
