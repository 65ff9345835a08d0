//! Which web pages may open a WebSocket: the `Origin` check at the upgrade.
//!
//! A browser sends the page's cookies with every WebSocket handshake to a
//! site, whichever site's page opened it, but it also sends that page's
//! `Origin` and a page cannot forge it. Checking the origin is therefore
//! what stops a foreign page from acting as the visitor through their
//! cookie (cross-site WebSocket hijacking). Clients other than browsers send
//! no `Origin`, and cannot borrow anyone's cookies either, so they pass.

use warp::http::HeaderMap;

/// Which web origins may open a socket. Checked at the upgrade, before the
/// authenticate hook runs; a refused upgrade is answered with HTTP 403.
///
/// A request without an `Origin` header (a client that is not a browser)
/// is always accepted. A request with one is accepted when its origin is
/// listed ([`Origins::allow`]), or, with same-origin allowed (the default),
/// when its host and port are the request's `Host`. `Origin: null` (sandboxed
/// frames, `file:` pages, some redirects) is refused unless `"null"` is
/// listed. [`Origins::any`] turns the check off.
///
/// The default, [`Origins::same_origin`], serves pages of the server's own
/// site. Behind a reverse proxy that rewrites `Host`, list the public origin.
///
/// ```
/// let origins = wyrmhole::Origins::same_origin().allow("https://app.example").allow("http://localhost:3000");
/// # let _ = origins;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Origins {
    same_origin: bool,
    any: bool,
    listed: Vec<Origin>,
}

impl Default for Origins {
    fn default() -> Self {
        Origins::same_origin()
    }
}

/// A parsed origin, `scheme://host:port`, lowercased, the port made explicit
/// (the scheme's default when absent), or the opaque origin `null`.
#[derive(Debug, Clone, PartialEq)]
enum Origin {
    Null,
    Tuple { scheme: String, host: String, port: Option<u16> },
}

impl Origins {
    /// Pages of the site that serves the socket (the `Origin`'s host and
    /// port equal the `Host` header's), and clients that send no `Origin`.
    /// The default.
    pub fn same_origin() -> Self {
        Origins { same_origin: true, any: false, listed: Vec::new() }
    }

    /// Only the origins then [`allow`](Origins::allow)ed, and clients that
    /// send no `Origin`: for a socket served on another host than its pages.
    pub fn listed() -> Self {
        Origins { same_origin: false, any: false, listed: Vec::new() }
    }

    /// Every origin, `null` included: no protection against a foreign page
    /// using a visitor's cookies. Only for apps whose authenticate hook
    /// reads nothing a browser sends by itself (a token in the query
    /// string, not a cookie).
    pub fn any() -> Self {
        Origins { same_origin: true, any: true, listed: Vec::new() }
    }

    /// Also accepts `origin`: `scheme://host` with an optional `:port`, as a
    /// browser sends it (`https://app.example`, `http://localhost:3000`), or
    /// `"null"`. Case and a trailing `/` do not matter; a default port may be
    /// given or left out.
    ///
    /// # Panics
    /// If `origin` is not of that form (a path, no scheme, a bad port).
    pub fn allow(mut self, origin: &str) -> Self {
        let parsed = Origin::parse(origin.strip_suffix('/').unwrap_or(origin))
            .unwrap_or_else(|| panic!("not an origin: {origin:?} (expected scheme://host[:port] or \"null\")"));
        if !self.listed.contains(&parsed) {
            self.listed.push(parsed);
        }
        self
    }

    /// Whether an upgrade with these headers may go on. More than one
    /// `Origin` header, or one that is not an origin, is refused.
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all("origin").iter();
        let Some(value) = values.next() else { return true };
        if self.any {
            return true;
        }
        if values.next().is_some() {
            return false;
        }
        let Some(origin) = value.to_str().ok().and_then(Origin::parse) else { return false };
        if self.listed.contains(&origin) {
            return true;
        }
        let host = headers.get("host").and_then(|h| h.to_str().ok());
        self.same_origin && host.is_some_and(|host| origin.is_host(host))
    }
}

impl Origin {
    fn parse(s: &str) -> Option<Origin> {
        if s.eq_ignore_ascii_case("null") {
            return Some(Origin::Null);
        }
        let (scheme, authority) = s.split_once("://")?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_authority(authority)?;
        let port = port.or_else(|| default_port(&scheme));
        Some(Origin::Tuple { scheme, host, port })
    }

    /// Whether this is an http(s) origin whose host and port are `host`'s
    /// (a `Host` header; without a port, the origin scheme's default). The
    /// scheme is not compared: `Host` does not carry it, and TLS may end at
    /// a proxy in front of the server.
    fn is_host(&self, host: &str) -> bool {
        let Origin::Tuple { scheme, host: origin_host, port } = self else { return false };
        if scheme != "http" && scheme != "https" {
            return false;
        }
        match split_authority(host) {
            Some((host, host_port)) => host == *origin_host && host_port.or_else(|| default_port(scheme)) == *port,
            None => false,
        }
    }
}

/// `host[:port]` (an IPv6 host in brackets) → lowercased host and port.
/// `None` if there is anything else (a path, user info, a bad port): hosts
/// in origins and `Host` headers are ASCII (punycode), so that is all a
/// browser sends.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
                return None;
            }
            let port = if after.is_empty() { None } else { Some(after.strip_prefix(':')?) };
            (format!("[{inside}]"), port)
        }
        None => {
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_') {
                return None;
            }
            (host.to_owned(), port)
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert("origin", o.parse().unwrap());
        }
        if let Some(host) = host {
            h.insert("host", host.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_by_default() {
        let o = Origins::default();
        assert!(o.admits(&headers(None, Some("a.example"))), "no Origin: not a browser");
        assert!(o.admits(&headers(Some("https://a.example"), Some("a.example"))));
        assert!(o.admits(&headers(Some("http://a.example"), Some("a.example:80"))));
        assert!(o.admits(&headers(Some("https://A.Example:8443"), Some("a.example:8443"))));
        assert!(o.admits(&headers(Some("http://[::1]:8000"), Some("[::1]:8000"))));
        assert!(!o.admits(&headers(Some("https://evil.example"), Some("a.example"))));
        assert!(!o.admits(&headers(Some("https://a.example.evil.example"), Some("a.example"))));
        assert!(!o.admits(&headers(Some("http://a.example:8001"), Some("a.example:8000"))));
        assert!(!o.admits(&headers(Some("https://a.example"), Some("a.example:80"))), "443 is not 80");
        assert!(!o.admits(&headers(Some("null"), Some("a.example"))));
        assert!(!o.admits(&headers(Some("https://a.example"), None)), "no Host: nothing to compare");
        assert!(!o.admits(&headers(Some("chrome-extension://a.example"), Some("a.example"))));
        assert!(!o.admits(&headers(Some("https://a.example/path"), Some("a.example"))));
        assert!(!o.admits(&headers(Some("garbage"), Some("garbage"))));
    }

    #[test]
    fn listed_origins() {
        let o = Origins::listed().allow("https://App.example/").allow("http://localhost:3000").allow("null");
        assert!(o.admits(&headers(Some("https://app.example"), Some("api.example"))));
        assert!(o.admits(&headers(Some("https://app.example:443"), Some("api.example"))));
        assert!(o.admits(&headers(Some("http://localhost:3000"), Some("api.example"))));
        assert!(o.admits(&headers(Some("null"), Some("api.example"))));
        assert!(!o.admits(&headers(Some("http://app.example"), Some("api.example"))), "scheme differs");
        assert!(!o.admits(&headers(Some("http://localhost:3001"), Some("api.example"))));
        assert!(!o.admits(&headers(Some("https://api.example"), Some("api.example"))), "same-origin is off");
        assert!(o.admits(&headers(None, Some("api.example"))));
    }

    #[test]
    fn several_origin_headers_are_refused() {
        let mut h = headers(Some("https://a.example"), Some("a.example"));
        h.append("origin", "https://a.example".parse().unwrap());
        assert!(!Origins::default().admits(&h));
        assert!(Origins::any().admits(&h));
    }

    #[test]
    fn any_admits_everything() {
        assert!(Origins::any().admits(&headers(Some("null"), Some("a.example"))));
        assert!(Origins::any().admits(&headers(Some("https://evil.example"), Some("a.example"))));
    }

    #[test]
    #[should_panic(expected = "not an origin")]
    fn a_path_is_not_an_origin() {
        let _ = Origins::listed().allow("https://app.example/login");
    }

    #[test]
    fn authorities() {
        assert_eq!(split_authority("A.example:80"), Some(("a.example".into(), Some(80))));
        assert_eq!(split_authority("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(split_authority("a.example:"), None);
        assert_eq!(split_authority("a.example:99999"), None);
        assert_eq!(split_authority("user@a.example"), None);
        assert_eq!(split_authority("[::1]x"), None);
        assert_eq!(split_authority(""), None);
    }
}
