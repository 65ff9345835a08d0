//! CORS for the bundled JS client: a page on another origin may load
//! `/wyrmhole.js` (a module script, which browsers fetch in CORS mode) when
//! its origin is one the WebSocket accepts.
//!
//! One list, [`crate::Origins`], decides both: a page that may not open the
//! socket has no use for the client files, and one that may must be able to
//! load them. The files are public code, so this is about honesty (a refused
//! page fails at the script, saying so in its console) rather than secrecy.

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::origin::Origins;

/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Adds `Access-Control-Allow-Origin` (the request's own origin) to a reply
/// to an allowed page; `Vary: Origin` always, so a cache does not hand one
/// origin's answer to another.
pub(crate) fn allow(origins: &Origins, request: &HeaderMap, mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.append("vary", HeaderValue::from_static("origin"));
    if let Some(origin) = allowed_origin(origins, request) {
        headers.insert("access-control-allow-origin", origin);
    }
    response
}

/// `OPTIONS` on the client files: a CORS preflight. 204 with the allowed
/// method to an allowed origin; 403 to any other.
pub(crate) fn preflight(origins: Origins) -> BoxedFilter<(Response,)> {
    warp::options()
        .and(warp::header::headers_cloned())
        .map(move |headers: HeaderMap| {
            let Some(origin) = allowed_origin(&origins, &headers) else {
                return warp::reply::with_status("origin not allowed", StatusCode::FORBIDDEN).into_response();
            };
            let mut response = Response::new(Default::default());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let out = response.headers_mut();
            out.insert("access-control-allow-origin", origin);
            out.insert("access-control-allow-methods", HeaderValue::from_static("GET, OPTIONS"));
            if let Some(asked) = headers.get("access-control-request-headers") {
                out.insert("access-control-allow-headers", asked.clone());
            }
            out.insert("access-control-max-age", HeaderValue::from_static(PREFLIGHT_MAX_AGE));
            out.insert("vary", HeaderValue::from_static("origin"));
            response
        })
        .boxed()
}

/// The request's `Origin`, if the socket would accept a page of it. A
/// request without one is not a CORS request and needs no header.
fn allowed_origin(origins: &Origins, request: &HeaderMap) -> Option<HeaderValue> {
    let origin = request.get("origin")?;
    origins.admits(request).then(|| origin.clone())
}
