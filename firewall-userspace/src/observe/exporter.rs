//! `fwctl exporter`: the counters over HTTP for Prometheus. A scrape is one GET, one
//! snapshot and one response on a connection that then closes; a hand-written HTTP/1.1
//! responder is enough for that and keeps a web framework out of a firewall's binary.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::{metrics, Snapshot};

/// A request head larger than this is not a scrape.
const MAX_HEAD: usize = 8192;
/// A client that sends nothing for this long loses its connection.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    BadRequest,
}

fn route(head: &str) -> Route {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => return Route::MethodNotAllowed,
    };
    // Prometheus may add parameters; none of them changes what is served.
    match target.split('?').next().unwrap_or_default() {
        "/metrics" => Route::Metrics { body },
        "/" => Route::Index { body },
        _ => Route::NotFound,
    }
}

fn response(status: &str, content_type: &str, body: &str, send_body: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if send_body {
        out.push_str(body);
    }
    out.into_bytes()
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
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream).await {
                            log::debug!("connection: {e:#}");
                        }
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

async fn handle(mut stream: TcpStream) -> Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .context("request timed out")??;
    let reply = match route(&head) {
        Route::Metrics { body } => {
            // The lock may be held by a change in progress: wait for it off the event loop.
            let scraped =
                tokio::task::spawn_blocking(|| Snapshot::sample().map(|s| metrics::render(&s)))
                    .await
                    .context("scrape task")?;
            match scraped {
                Ok(page) => response("200 OK", metrics::CONTENT_TYPE, &page, body),
                Err(e) => {
                    eprintln!("fwctl exporter: scrape failed: {e:#}");
                    let text = format!("scrape failed: {e:#}\n");
                    response("500 Internal Server Error", "text/plain", &text, body)
                }
            }
        }
        Route::Index { body } => response("200 OK", "text/plain; charset=utf-8", INDEX, body),
        Route::NotFound => response("404 Not Found", "text/plain", "not found\n", true),
        Route::MethodNotAllowed => response(
            "405 Method Not Allowed",
            "text/plain",
            "GET or HEAD\n",
            true,
        ),
        Route::BadRequest => response("400 Bad Request", "text/plain", "bad request\n", true),
    };
    stream.write_all(&reply).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Reads up to the blank line that ends the request head; a GET has no body to wait for.
async fn read_head(stream: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        anyhow::ensure!(buf.len() <= MAX_HEAD, "request head over {MAX_HEAD} bytes");
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let get = |target: &str| route(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(get("/metrics"), Route::Metrics { body: true });
        assert_eq!(get("/metrics?name[]=x"), Route::Metrics { body: true });
        assert_eq!(get("/"), Route::Index { body: true });
        assert_eq!(get("/metricsx"), Route::NotFound);
        assert_eq!(
            route("HEAD /metrics HTTP/1.0\r\n\r\n"),
            Route::Metrics { body: false }
        );
        assert_eq!(
            route("POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route("GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(""), Route::BadRequest);
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let r = String::from_utf8(response("200 OK", "text/plain", "abc", true)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 3\r\n") && r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nabc"), "{r}");
        let head = String::from_utf8(response("200 OK", "text/plain", "abc", false)).unwrap();
        assert!(head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
    }
}
