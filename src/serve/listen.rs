//! The accept loop. `axum::serve` has no header-read timeout and no limit
//! on connections: 50 half-open connections were still held after 45 s. Here
//! each connection needs a permit (at most [`MAX_CONNECTIONS`]) and must
//! send its request headers within [`HEADER_READ_TIMEOUT`].

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Both ends of a request's connection, in every request's extensions:
/// the tracker names the server the way each PC reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAddrs {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// 40 PCs of a room with a few requests each, the dashboard, and headroom.
pub const MAX_CONNECTIONS: usize = 256;
/// A PC on a slow LAN sends its headers in well under a second.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection (plain TCP here; any stream, e.g. TLS, works).
pub async fn serve_connection<IO>(io: IO, app: axum::Router)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    // Errors here are a client's (reset, timeout, bad request): nothing to report.
    let _ = conn.await;
}

/// Accepts until `shutdown` completes; with `tls`, each connection's
/// handshake runs first, in its task and under its permit.
pub async fn run(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        // Waiting for a permit before accepting leaves extra clients in the
        // kernel's queue instead of holding memory for them here.
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            s = listener.accept() => match s {
                Ok((s, remote)) => match s.local_addr() {
                    Ok(local) => (s, ConnAddrs { local, remote }),
                    Err(_) => continue,
                },
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    eprintln!("lazare: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (stream, addrs) = stream;
        let (app, tls) = (app.clone().layer(axum::Extension(addrs)), tls.clone());
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Some(stream) = super::tls::handshake(&acceptor, stream).await {
                        serve_connection(stream, app).await;
                    }
                }
                None => serve_connection(stream, app).await,
            }
            drop(permit);
        });
    }
}
