//! The HTTP endpoints an orchestrator or load balancer polls: `/healthz`
//! (the process is up and serving HTTP), `/readyz` (it should be sent new
//! clients: the database answers, Redis is connected when the app uses it,
//! and it is not draining), and the metrics path when the app asked for one
//! (see [`crate::metrics`]). Separate from the WebSocket endpoint because
//! their callers are machines that speak plain HTTP and read status codes.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::connection::AppCore;
use crate::error::Error;

/// How long the readiness check waits for the database.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`, `GET /readyz`, and `GET <metrics_path>` when set.
pub(crate) fn filter(core: Arc<AppCore>, metrics_path: Option<String>) -> BoxedFilter<(Response,)> {
    let healthz =
        warp::path("healthz").and(warp::path::end()).map(|| json_reply(StatusCode::OK, &json!({"status": "ok"})));
    let ready_core = core.clone();
    let readyz = warp::path("readyz").and(warp::path::end()).then(move || {
        let core = ready_core.clone();
        async move {
            let (ready, checks) = readiness(&core).await;
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            json_reply(status, &json!({"ready": ready, "checks": checks}))
        }
    });
    let probes = warp::get().and(healthz.or(readyz).unify());
    match metrics_path {
        None => probes.boxed(),
        Some(path) => {
            let metrics = warp::get().and(warp::path::full()).and_then(move |full: warp::path::FullPath| {
                let core = core.clone();
                let wanted = full.as_str() == path;
                async move {
                    if !wanted {
                        return Err(warp::reject::not_found());
                    }
                    let levels = crate::metrics::Levels {
                        connections_open: core.open_connections(),
                        outbox_peak_bytes: core.outbox_peak_bytes(),
                        draining: core.stop.stopping(),
                    };
                    let text = core.metrics.render(&core.router, &levels);
                    Ok(warp::reply::with_header(text, "content-type", crate::metrics::CONTENT_TYPE).into_response())
                }
            });
            probes.or(metrics).unify().boxed()
        }
    }
}

fn json_reply(status: StatusCode, body: &serde_json::Value) -> Response {
    let reply = warp::reply::with_header(body.to_string(), "content-type", "application/json");
    let reply = warp::reply::with_header(reply, "cache-control", "no-store");
    warp::reply::with_status(reply, status).into_response()
}

/// Whether this process should get new clients, and each check's answer:
/// `"ok"`, or what failed.
async fn readiness(core: &AppCore) -> (bool, serde_json::Value) {
    let mut ready = true;
    let mut checks = serde_json::Map::new();
    let mut check = |name: &str, result: Result<(), String>| {
        ready &= result.is_ok();
        checks.insert(name.into(), json!(result.err().unwrap_or_else(|| "ok".into())));
    };
    check("draining", if core.stop.stopping() { Err("draining".into()) } else { Ok(()) });
    let db = core.router.db.read(|conn| conn.batch_execute("SELECT 1").map_err(|e| Error::Unavailable(e.to_string())));
    let db = match tokio::time::timeout(DB_CHECK_TIMEOUT, db).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", DB_CHECK_TIMEOUT.as_millis())),
    };
    check("database", db);
    if let Some(link) = core.router.fanout.broker_link() {
        check("redis", if link.connected() { Ok(()) } else { Err("not connected".into()) });
    }
    (ready, serde_json::Value::Object(checks))
}
