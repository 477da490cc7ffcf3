//! The HTTP side of `fetch`. On loopback, for the agent: `GET /image`
//! streams the torrent's file in order from a byte offset (librqbit's file
//! stream asks the swarm for the pieces under the reader first and waits
//! for them), `GET /stats` says where the bytes came from. On the LAN, for
//! the room's other PCs: `GET /lazare-share.zst`, this engine as the agent
//! fetched it ([`serve_file`]), so the server sends it to a few PCs and
//! not to each.

use std::convert::Infallible;
use std::future::Future;
use std::io::SeekFrom;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use librqbit::ManagedTorrent;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

type Resp = Response<http_body_util::combinators::BoxBody<Bytes, std::io::Error>>;

/// Open `/image` streams at once. Each librqbit file stream holds one of the
/// session's 8 blocking permits, which piece writes to disk also take: more
/// streams than permits would stall the download for good. The agent reads
/// one stream (two while it reconnects); the engine's own prefetch reader
/// (prefetch.rs) holds one more.
const MAX_STREAMS: usize = 4;
/// Bytes read from the file stream per body frame.
const FRAME: usize = 256 * 1024;
/// A stream waiting for a piece looks again this often. librqbit wakes a
/// waiting stream when its piece completes, and at 40 PCs that wake-up was
/// missed: streams sat on a piece the engine had (14 of 17 pieces on disk,
/// the stream at the 6th) until the agent gave up after 30 s and asked
/// again, which read on at once (`make bench-room`, issue 15).
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn serve(listener: TcpListener, torrent: Arc<ManagedTorrent>, server: Option<IpAddr>) {
    let streams = Arc::new(Semaphore::new(MAX_STREAMS));
    loop {
        let (conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("lazare-share: http accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let torrent = torrent.clone();
        let streams = streams.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let torrent = torrent.clone();
                let streams = streams.clone();
                async move { Ok::<_, Infallible>(answer(req, &torrent, &streams, server).await) }
            });
            // A reader that goes away mid-body is not an error of ours.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn), svc)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    torrent: &Arc<ManagedTorrent>,
    streams: &Arc<Semaphore>,
    server: Option<IpAddr>,
) -> Resp {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/image" => image(&req, torrent, streams).await,
        "/stats" => stats(torrent, server),
        _ => text(StatusCode::NOT_FOUND, "no such path\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes())).map_err(|e| match e {}).boxed(),
    );
    *r.status_mut() = status;
    r
}

/// `Range: bytes=N-` (or `N-M`): where the reader starts and stops.
fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => len.checked_sub(1)?,
        e => e.parse::<u64>().ok()?.min(len.checked_sub(1)?),
    };
    (start <= end).then_some((start, end + 1))
}

async fn image(
    req: &Request<Incoming>,
    torrent: &Arc<ManagedTorrent>,
    streams: &Arc<Semaphore>,
) -> Resp {
    let Ok(permit) = streams.clone().try_acquire_owned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "too many open streams\n");
    };
    let mut stream = match torrent.clone().stream(0).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lazare-share: opening the file stream: {e:#}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "the torrent cannot be streamed\n");
        }
    };
    let len = torrent.stats().total_bytes;
    let range = req.headers().get(RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len),
        Some(r) => match parse_range(r, len) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => return text(StatusCode::RANGE_NOT_SATISFIABLE, "bad range\n"),
        },
    };
    if let Err(e) = stream.seek(SeekFrom::Start(start)).await {
        eprintln!("lazare-share: seeking the file stream to {start}: {e}");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "seek failed\n");
    }
    let body = ReadBody::new(Box::pin(stream), end - start, permit);
    let mut r = Response::new(body.boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    r
}

/// Uploads of the engine at once; the tracker sends a PC at most 3.
const MAX_FILE_UPLOADS: usize = 4;

/// Serves `file` at `GET /<its name>` to whoever asks: the room's PCs take
/// the engine from each other (the tracker's `/engine` says from whom).
/// Nothing is trusted: the PC checks it against the sha256 its signed plan
/// pins before running it.
pub async fn serve_file(listener: TcpListener, file: std::path::PathBuf) {
    let name = file.file_name().map(|n| format!("/{}", n.to_string_lossy())).unwrap_or_default();
    let uploads = Arc::new(Semaphore::new(MAX_FILE_UPLOADS));
    let file = Arc::new(file);
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let (file, name, uploads) = (file.clone(), name.clone(), uploads.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (file, name, uploads) = (file.clone(), name.clone(), uploads.clone());
                async move {
                    Ok::<_, Infallible>(
                        if req.method() != Method::GET || req.uri().path() != name {
                            text(StatusCode::NOT_FOUND, "no such path\n")
                        } else {
                            whole_file(&file, &uploads).await
                        },
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn), svc)
                .await;
        });
    }
}

async fn whole_file(file: &std::path::Path, uploads: &Arc<Semaphore>) -> Resp {
    let Ok(permit) = uploads.clone().try_acquire_owned() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "too many uploads\n");
    };
    let opened = match tokio::fs::File::open(file).await {
        Ok(f) => f.metadata().await.map(|m| (f, m.len())),
        Err(e) => Err(e),
    };
    let (f, len) = match opened {
        Ok(v) => v,
        Err(e) => {
            eprintln!("lazare-share: opening {}: {e}", file.display());
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file\n");
        }
    };
    let body = ReadBody::new(Box::pin(f), len, permit);
    let mut r = Response::new(body.boxed());
    let h = r.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r
}

/// A file from the reader's position, `left` bytes, frame by frame.
struct ReadBody {
    stream: Pin<Box<dyn AsyncRead + Send + Sync>>,
    left: u64,
    buf: Vec<u8>,
    /// While the reader waits: polls it again every [`RECHECK`].
    recheck: Pin<Box<tokio::time::Sleep>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl ReadBody {
    fn new(
        stream: Pin<Box<dyn AsyncRead + Send + Sync>>,
        left: u64,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> ReadBody {
        let recheck = Box::pin(tokio::time::sleep(RECHECK));
        ReadBody { stream, left, buf: vec![0; FRAME], recheck, _permit: permit }
    }
}

impl Body for ReadBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let want = this.buf.len().min(usize::try_from(this.left).unwrap_or(usize::MAX));
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match this.stream.as_mut().poll_read(cx, &mut rb) {
            Poll::Pending => {
                if this.recheck.as_mut().poll(cx).is_ready() {
                    this.recheck.as_mut().reset(tokio::time::Instant::now() + RECHECK);
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file stream ended early",
                    );
                    return Poll::Ready(Some(Err(e)));
                }
                this.left -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(rb.filled())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

/// Byte counts from librqbit's torrent stats: `from_server` is what came
/// from the server's seed (`server`, the tracker's host), `from_peers` the
/// rest of what was downloaded and hash-checked in this run (from the
/// room's other PCs), `uploaded` what peers took from us, `peers` the live
/// peer connections, `have` the bytes in good pieces.
fn stats(torrent: &Arc<ManagedTorrent>, server: Option<IpAddr>) -> Resp {
    let s = torrent.stats();
    let (checked, peers) = s
        .live
        .as_ref()
        .map_or((0, 0), |l| (l.snapshot.downloaded_and_checked_bytes, l.snapshot.peer_stats.live));
    let from_server = crate::swarm::fetched_from(torrent, server);
    let json = serde_json::json!({
        "from_peers": checked.saturating_sub(from_server),
        "from_server": from_server,
        "uploaded": s.uploaded_bytes,
        "peers": peers,
        "have": s.progress_bytes,
        "total": s.total_bytes,
        "finished": s.finished,
    });
    let mut r =
        Response::new(Full::new(Bytes::from(json.to_string())).map_err(|e| match e {}).boxed());
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Some((0, 10)));
        assert_eq!(parse_range("bytes=4-", 10), Some((4, 10)));
        assert_eq!(parse_range("bytes=4-5", 10), Some((4, 6)));
        assert_eq!(parse_range("bytes=4-99", 10), Some((4, 10)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=-5", 10), None);
        assert_eq!(parse_range("items=0-", 10), None);
        assert_eq!(parse_range("bytes=0-", 0), None);
    }
}
