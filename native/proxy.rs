//! uvicorn's proxy headers (`--proxy-headers`, `--forwarded-allow-ips`): from a trusted peer,
//! `X-Forwarded-Proto` sets the scope's scheme and `X-Forwarded-For` its client, by uvicorn's
//! rules (`uvicorn/middleware/proxy_headers.py`).

use std::collections::HashSet;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::names::has_name;

/// Looked up by names made once (a `&str` would be parsed on every lookup).
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Up to this many trusted addresses, [`TrustedHosts::trusts_ip`] compares them one by one.
const SCANNED_HOSTS: usize = 16;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Default)]
pub struct TrustedHosts {
    always: bool,
    hosts: HashSet<IpAddr>,
    networks: Vec<IpNet>,
    /// Entries that are neither an address nor a network, compared as text.
    literals: HashSet<String>,
}

/// What the forwarding headers of a trusted peer changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub scheme: Option<&'static str>,
    pub client: Option<(String, u16)>,
}

impl TrustedHosts {
    /// A comma-separated list of addresses, networks (`10.0.0.0/8`) or `*`.
    pub fn parse(list: &str) -> Self {
        let mut trusted = Self::default();
        for item in list.split(',').map(str::trim) {
            if item == "*" && list.trim() == "*" {
                trusted.always = true;
            } else if item.contains('/') {
                match item.parse::<IpNet>() {
                    Ok(net) => trusted.networks.push(net),
                    Err(_) => {
                        trusted.literals.insert(item.to_owned());
                    }
                }
            } else {
                match item.parse::<IpAddr>() {
                    Ok(ip) => {
                        trusted.hosts.insert(ip);
                    }
                    Err(_) => {
                        trusted.literals.insert(item.to_owned());
                    }
                }
            }
        }
        trusted
    }

    fn trusts_ip(&self, ip: IpAddr) -> bool {
        // a few addresses (uvicorn's default is one): compared, cheaper than hashing per request
        let listed = if self.hosts.len() <= SCANNED_HOSTS {
            self.hosts.iter().any(|host| *host == ip)
        } else {
            self.hosts.contains(&ip)
        };
        self.always || listed || self.networks.iter().any(|n| n.contains(&ip))
    }

    fn trusts(&self, host: &str) -> bool {
        if self.always {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.trusts_ip(ip),
            Err(_) => !host.is_empty() && self.literals.contains(host),
        }
    }

    /// The scheme and client the headers give, when `peer` is trusted (a peer without an
    /// address, over a unix socket, only by `*`, as uvicorn's).
    pub fn forwarded(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        websocket: bool,
    ) -> Forwarded {
        let mut forwarded = Forwarded::default();
        let trusted = match peer {
            Some(IpAddr::V6(v6)) => {
                self.trusts_ip(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
            }
            Some(v4) => self.trusts_ip(v4),
            None => self.always,
        };
        if !trusted || !has_name(headers, &[&X_FORWARDED_PROTO, &X_FORWARDED_FOR]) {
            return forwarded;
        }
        // The last X-Forwarded-Proto counts, as in uvicorn's loop over the headers.
        if let Some(proto) = headers.get_all(X_FORWARDED_PROTO).iter().next_back() {
            let proto = String::from_utf8_lossy(proto.as_bytes());
            forwarded.scheme = match (proto.trim(), websocket) {
                ("http" | "ws", true) => Some("ws"),
                ("https" | "wss", true) => Some("wss"),
                ("http", false) => Some("http"),
                ("https", false) => Some("https"),
                ("ws", false) => Some("ws"),
                ("wss", false) => Some("wss"),
                _ => None,
            };
        }
        let values: Vec<String> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes().iter().map(|&b| char::from(b)).collect())
            .collect();
        if !values.is_empty() {
            let joined = values.join(", ");
            let (host, port) = self.client_address(&joined);
            if !host.is_empty() {
                forwarded.client = Some((host, port));
            }
        }
        forwarded
    }

    /// The first untrusted hop from the right, or the leftmost when all are trusted.
    fn client_address(&self, x_forwarded_for: &str) -> (String, u16) {
        let hops: Vec<&str> = x_forwarded_for.split(',').map(str::trim).collect();
        if !self.always {
            for hop in hops.iter().rev() {
                let (host, port) = host_port(hop);
                if !self.trusts(&host) {
                    return (host, port);
                }
            }
        }
        host_port(hops[0])
    }
}

/// `host`, `host:port` or `[v6]:port`; anything else is the host, port 0.
fn host_port(value: &str) -> (String, u16) {
    if let Some(rest) = value.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return (value.to_owned(), 0);
        };
        let (host, remainder) = (&rest[..end], &rest[end + 1..]);
        return match remainder.strip_prefix(':') {
            None if remainder.is_empty() => (host.to_owned(), 0),
            None => (value.to_owned(), 0),
            Some(port) => (host.to_owned(), port.parse().unwrap_or(0)),
        };
    }
    if value.matches(':').count() == 1 {
        let (host, port) = value.rsplit_once(':').unwrap_or((value, ""));
        return match port.parse() {
            Ok(port) => (host.to_owned(), port),
            Err(_) => (value.to_owned(), 0),
        };
    }
    (value.to_owned(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn untrusted_peer_changes_nothing() {
        let trusted = TrustedHosts::parse("10.0.0.1");
        let h = headers(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(trusted.forwarded(LOCAL, &h, false), Forwarded::default());
    }

    #[test]
    fn first_untrusted_hop_from_the_right() {
        let trusted = TrustedHosts::parse("127.0.0.1, 10.0.0.0/8");
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 2.2.2.2:81, 10.1.2.3")]);
        let got = trusted.forwarded(LOCAL, &h, false);
        assert_eq!(got.client, Some(("2.2.2.2".to_owned(), 81)));
    }

    #[test]
    fn all_trusted_gives_the_leftmost_and_star_trusts_all() {
        let trusted = TrustedHosts::parse("127.0.0.1,10.0.0.1");
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 127.0.0.1")]);
        assert_eq!(
            trusted.forwarded(LOCAL, &h, false).client,
            Some(("10.0.0.1".to_owned(), 0))
        );
        let star = TrustedHosts::parse("*");
        let h = headers(&[("x-forwarded-for", "[::1]:8080, 5.5.5.5")]);
        let ip = "8.8.8.8".parse().ok();
        assert_eq!(
            star.forwarded(ip, &h, false).client,
            Some(("::1".to_owned(), 8080))
        );
    }

    #[test]
    fn a_peer_without_address_is_trusted_only_by_star() {
        let h = headers(&[("x-forwarded-for", "5.5.5.5")]);
        let listed = TrustedHosts::parse("127.0.0.1,/tmp/app.sock");
        assert_eq!(listed.forwarded(None, &h, false), Forwarded::default());
        let star = TrustedHosts::parse("*");
        assert_eq!(
            star.forwarded(None, &h, false).client,
            Some(("5.5.5.5".to_owned(), 0))
        );
    }

    #[test]
    fn scheme_for_http_and_websockets() {
        let trusted = TrustedHosts::parse("127.0.0.1");
        let h = headers(&[("x-forwarded-proto", " https ")]);
        assert_eq!(trusted.forwarded(LOCAL, &h, false).scheme, Some("https"));
        assert_eq!(trusted.forwarded(LOCAL, &h, true).scheme, Some("wss"));
        let h = headers(&[("x-forwarded-proto", "ftp")]);
        assert_eq!(trusted.forwarded(LOCAL, &h, false).scheme, None);
    }
}
