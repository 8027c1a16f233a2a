//! `fwctl exporter`: the counters over HTTP for Prometheus, served by hyper (HTTP/1.1).
//! The exporter faces the network, so it bounds what a client can cost: a request head
//! must arrive within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD`] bytes, a connection lives at
//! most [`CONNECTION_TIMEOUT`], at most [`MAX_CONNECTIONS`] are served at once (the next
//! wait in the kernel's accept queue), and a scrape holds fwctl's lock only while it reads
//! the counters, before any byte goes to the client.

use std::{convert::Infallible, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    body::Incoming,
    header::{HeaderValue, ALLOW, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

use super::{metrics, Snapshot};

/// A request head larger than this is not a scrape (hyper answers 431 or closes).
const MAX_HEAD: usize = 8192;
/// A client that has not sent its whole request head by then loses its connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Whatever a client does, its connection ends after this (a reader that never reads).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once (each idle one costs a small task until HEAD_TIMEOUT); under
/// the default limit of 1024 open files.
const MAX_CONNECTIONS: usize = 512;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// GET (or HEAD: the same head without a body) /metrics.
    Metrics {
        body: bool,
    },
    Index {
        body: bool,
    },
    NotFound,
    MethodNotAllowed,
}

fn route(method: &Method, path: &str) -> Route {
    let body = match *method {
        Method::GET => true,
        Method::HEAD => false,
        _ => return Route::MethodNotAllowed,
    };
    // Prometheus may add parameters; none of them changes what is served (the path
    // comes without the query).
    match path {
        "/metrics" => Route::Metrics { body },
        "/" => Route::Index { body },
        _ => Route::NotFound,
    }
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    send_body: bool,
) -> Response<Full<Bytes>> {
    let length = body.len();
    let mut r = Response::new(Full::new(if send_body {
        Bytes::from(body)
    } else {
        Bytes::new()
    }));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // HEAD says how long GET's body would be.
    headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(length));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    r
}

const INDEX: &str = "fwctl exporter: the firewall's counters are at /metrics\n";

/// Serves until killed. Each scrape takes the namespace's lock only while it reads.
pub fn serve(listen: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr()?;
        eprintln!("fwctl exporter: serving http://{local}/metrics");
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            // A slot before accepting: past the limit, clients wait in the accept queue
            // instead of costing a task and a socket each.
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .context("connection slots")?;
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        let conn = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEAD_TIMEOUT)
                            .max_buf_size(MAX_HEAD)
                            .keep_alive(false)
                            // As Prometheus' own exporters write them.
                            .title_case_headers(true)
                            .serve_connection(TokioIo::new(stream), service_fn(handle));
                        match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                            Ok(Err(e)) => log::debug!("connection: {e}"),
                            Err(_) => {
                                log::debug!("connection: over {CONNECTION_TIMEOUT:?}, closed")
                            }
                            Ok(Ok(())) => {}
                        }
                        drop(slot);
                    });
                }
                // Out of file descriptors and the like: wait, do not spin or die.
                Err(e) => {
                    eprintln!("fwctl exporter: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match route(req.method(), req.uri().path()) {
        Route::Metrics { body } => {
            // The lock may be held by a change in progress: wait for it off the event
            // loop. The page is whole before the first byte is sent.
            let scraped =
                tokio::task::spawn_blocking(|| Snapshot::sample().map(|s| metrics::render(&s)))
                    .await;
            match scraped {
                Ok(Ok(page)) => response(StatusCode::OK, metrics::CONTENT_TYPE, page, body),
                Ok(Err(e)) => {
                    eprintln!("fwctl exporter: scrape failed: {e:#}");
                    let text = format!("scrape failed: {e:#}\n");
                    response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", text, body)
                }
                Err(e) => {
                    eprintln!("fwctl exporter: scrape task: {e}");
                    let text = "scrape failed\n".to_string();
                    response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", text, body)
                }
            }
        }
        Route::Index { body } => response(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            INDEX.to_string(),
            body,
        ),
        Route::NotFound => response(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".into(),
            true,
        ),
        Route::MethodNotAllowed => response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET or HEAD\n".into(),
            true,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        assert_eq!(
            route(&Method::GET, "/metrics"),
            Route::Metrics { body: true }
        );
        assert_eq!(route(&Method::GET, "/"), Route::Index { body: true });
        assert_eq!(route(&Method::GET, "/metricsx"), Route::NotFound);
        assert_eq!(
            route(&Method::HEAD, "/metrics"),
            Route::Metrics { body: false }
        );
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
    }

    #[test]
    fn head_says_the_length_without_the_body() {
        let r = response(StatusCode::OK, "text/plain", "abc".into(), false);
        assert_eq!(r.headers()[hyper::header::CONTENT_LENGTH], "3");
        let r = response(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "x".into(),
            true,
        );
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
