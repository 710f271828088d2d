//! A tiny static file server on loopback: the embedded page ([`crate::WEB_FILES`]) at `/`, and
//! optional directories under their own prefixes (the tests mount `spec/vectors/` at
//! `/vectors/`). `GET` only, one request per connection, bounded reads; nothing else.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{BrowserError, WEB_FILES};

/// Longest request head read.
const MAX_HEAD: usize = 8192;
/// Time a client gets to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The running server; stops when dropped.
pub struct StaticServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StaticServer {
    /// Listens on `127.0.0.1:0`. `mounts` maps URL prefixes (`/vectors/`) to directories.
    pub async fn start(mounts: Vec<(String, PathBuf)>) -> Result<Self, BrowserError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| BrowserError::Start {
                what: "static server",
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| BrowserError::Start {
            what: "static server",
            reason: e.to_string(),
        })?;
        let mounts = Arc::new(mounts);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let mounts = Arc::clone(&mounts);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(READ_TIMEOUT * 2, serve(stream, &mounts)).await;
                });
            }
        });
        Ok(StaticServer { addr, task })
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("js") => "text/javascript; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

async fn serve(mut stream: TcpStream, mounts: &[(String, PathBuf)]) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            )
            .await;
        }
        let n = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return respond(&mut stream, "400 Bad Request", "text/plain", b"").await;
    };
    if method != "GET" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", b"").await;
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let path = if path == "/" { "/index.html" } else { path };
    if let Some((_, ty, body)) = WEB_FILES.iter().find(|(p, _, _)| *p == path) {
        return respond(&mut stream, "200 OK", ty, body.as_bytes()).await;
    }
    for (prefix, dir) in mounts {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            if rest.is_empty() || rest.contains("..") || rest.contains('\\') {
                break;
            }
            if let Ok(body) = tokio::fs::read(dir.join(rest)).await {
                return respond(&mut stream, "200 OK", content_type(rest), &body).await;
            }
        }
    }
    respond(&mut stream, "404 Not Found", "text/plain", b"not found").await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
