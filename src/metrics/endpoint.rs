//! The scrape endpoint: `GET /metrics` on a listener of its own
//! (`--metrics-listen`), so dashboards never share a port or a limit with the
//! actor API.
//!
//! HTTP/1.1 on hyper directly: one route does not need a framework. It is
//! bounded like every other listener: a client has [`HEADER_TIMEOUT`] to send
//! its request head and at most [`MAX_CONNECTIONS`] are served at once (more
//! wait in the kernel's backlog), so a slow or greedy scraper cannot hold
//! the process's memory or file descriptors.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use log::debug;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Metrics;

/// How long a client may take to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrape connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// OpenMetrics' text format, which the encoder writes and Prometheus asks for.
const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus' classic text format, for every other client.
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

type Body = http_body_util::Full<bytes::Bytes>;

/// Serves scrapes of `metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: &'static Metrics) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: the next accept may work.
                debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _permit = permit;
            let service =
                service_fn(
                    move |request| async move { Ok::<_, Infallible>(answer(&request, metrics)) },
                );
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!("metrics: connection ended: {e}");
            }
        });
    }
}

fn answer(request: &Request<Incoming>, metrics: &Metrics) -> Response<Body> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") if wants_open_metrics(request) => {
            (StatusCode::OK, OPEN_METRICS, metrics.encode())
        }
        (&Method::GET, "/metrics") => (StatusCode::OK, CLASSIC, metrics.encode_classic()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".to_owned(),
        ),
    };
    let mut response = Response::new(Body::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Whether the client lists OpenMetrics among what it accepts, as
/// Prometheus does; anything else gets the classic format every client reads.
fn wants_open_metrics(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}
