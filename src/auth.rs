//! Who is on the other end of a connection.
//!
//! The app's authenticate hook turns the WebSocket upgrade request (headers,
//! query string, cookies) into an [`Identity`] once, at connect time. Routes
//! use it for scopes, initial values, validation and permission checks.

use std::collections::HashMap;

/// The authenticated caller of a connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    user_id: Option<i64>,
    name: Option<String>,
    claims: serde_json::Map<String, serde_json::Value>,
}

impl Identity {
    /// Nobody in particular. Accepted only when the router allows anonymous connections.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A signed-in user.
    pub fn user(id: i64) -> Self {
        Identity { user_id: Some(id), ..Self::default() }
    }

    /// Adds a display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds an app-defined claim (a role, a tenant id, ...).
    pub fn with_claim(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.claims.insert(key.into(), value.into());
        self
    }

    /// The user id, unless anonymous.
    pub fn user_id(&self) -> Option<i64> {
        self.user_id
    }

    /// The display name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// An app-defined claim.
    pub fn claim(&self, key: &str) -> Option<&serde_json::Value> {
        self.claims.get(key)
    }

    /// Whether this is the anonymous identity.
    pub fn is_anonymous(&self) -> bool {
        self.user_id.is_none()
    }
}

/// What the authenticate hook sees of the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct UpgradeRequest {
    headers: warp::http::HeaderMap,
    query: HashMap<String, String>,
}

impl UpgradeRequest {
    /// Builds one from the parts of an HTTP request.
    pub fn new(headers: warp::http::HeaderMap, query: HashMap<String, String>) -> Self {
        UpgradeRequest { headers, query }
    }

    /// A header, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The token of an `Authorization: Bearer <token>` header: for clients
    /// other than browsers (whose WebSocket API cannot set headers).
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// A query-string parameter (browsers cannot set headers on a WebSocket,
    /// so the JS client sends its token as `?token=`). URLs end up in the
    /// access logs of the server and of proxies: a token sent this way
    /// should be short-lived.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A cookie's value. A browser sends cookies with a handshake that any
    /// site's page opens: they are trusted here only because the server
    /// refuses foreign origins first (see [`crate::Origins`]).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The token from the `Authorization` header, else `?token=`, else the
    /// `wyrm_token` cookie (so it has the cookie's ambient authority: keep
    /// the origin check on).
    pub fn token(&self) -> Option<&str> {
        self.bearer_token().or_else(|| self.query("token")).or_else(|| self.cookie("wyrm_token"))
    }
}

/// Why an upgrade was refused. It is answered with HTTP 401 and never reaches
/// the WebSocket.
#[derive(Debug, Clone, thiserror::Error)]
#[error("authentication failed: {0}")]
pub struct AuthError(pub String);

impl AuthError {
    /// A refusal with a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        AuthError(reason.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources_in_order() {
        let mut headers = warp::http::HeaderMap::new();
        headers.insert("cookie", "a=1; wyrm_token=c00kie".parse().unwrap());
        let mut query = HashMap::new();
        query.insert("token".to_string(), "q".to_string());
        let req = UpgradeRequest::new(headers.clone(), query.clone());
        assert_eq!(req.token(), Some("q"));
        assert_eq!(UpgradeRequest::new(headers.clone(), HashMap::new()).token(), Some("c00kie"));
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(UpgradeRequest::new(headers, query).token(), Some("abc"));
    }
}
