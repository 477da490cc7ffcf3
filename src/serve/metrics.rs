//! `GET /metrics`: Prometheus text for the admin (the same token as the
//! machine API): image bytes sent over HTTP(S) and by the room's seeds over
//! BitTorrent, hellos, machines by status,
//! the PCs announcing to the room's tracker, and request latencies by kind.
//! Counters live in atomics, so counting costs a request nothing
//! measurable; the machine counts are read from SQLite at scrape.

use super::Server;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Upper bounds of the latency buckets, in seconds (a hello signs a plan
/// in well under 5 ms; an image download takes minutes).
const BUCKETS: [f64; 8] = [0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0, 600.0];

/// Which part of the server a request went to.
#[derive(Clone, Copy)]
enum Kind {
    Api,
    Images,
    Dashboard,
}
const KINDS: [(Kind, &str); 3] =
    [(Kind::Api, "api"), (Kind::Images, "images"), (Kind::Dashboard, "dashboard")];

#[derive(Default)]
struct Histogram {
    /// Cumulative counts per bucket (the last is +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// The sum of the observations, in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, secs: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.buckets[BUCKETS.len()].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    image_bytes: AtomicU64,
    hellos: AtomicU64,
    latency: [Histogram; 3],
    /// What the room's seeds sent the PCs over BitTorrent, one per seed.
    seeds_sent: Vec<Arc<AtomicU64>>,
}

impl Metrics {
    /// Counters that also count what the server's seeds send.
    pub fn with_seeds(seeds_sent: Vec<Arc<AtomicU64>>) -> Metrics {
        Metrics { seeds_sent, ..Metrics::default() }
    }
}

fn kind_of(path: &str) -> Kind {
    if path.starts_with("/api/") {
        Kind::Api
    } else if path.starts_with("/images/") {
        Kind::Images
    } else {
        Kind::Dashboard
    }
}

/// Times every request; counts hellos, and the image bytes as the body
/// frames go out (a download cut short counts what was sent). An image's
/// latency is to its response head: the body streams for minutes.
pub async fn count(State(server): State<Arc<Server>>, req: Request, next: Next) -> Response {
    let kind = kind_of(req.uri().path());
    if req.method() == Method::POST && req.uri().path() == "/api/v1/hello" {
        server.metrics.hellos.fetch_add(1, Ordering::Relaxed);
    }
    let start = Instant::now();
    let resp = next.run(req).await;
    server.metrics.latency[kind as usize].observe(start.elapsed().as_secs_f64());
    if !matches!(kind, Kind::Images) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let counted = body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            server.metrics.image_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        frame
    });
    Response::from_parts(parts, Body::new(counted))
}

/// The scrape, for the admin.
pub async fn scrape(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Err(e) = server.admin(&headers) {
        return e.into_response();
    }
    let machines = match server.store.machines() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("lazare: metrics: {e:#}");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let peers = server.tracker.as_ref().map(|t| t.peers_known(Instant::now()));
    let text = render(&server.metrics, machines.iter().map(|m| m.status), peers);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn render(
    m: &Metrics,
    statuses: impl Iterator<Item = lazare_proto::MachineStatus>,
    peers: Option<usize>,
) -> String {
    use lazare_proto::MachineStatus::*;
    let mut o = String::new();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(o, "# HELP lazare_image_bytes_sent_total Image bytes sent, by protocol.");
    let _ = writeln!(o, "# TYPE lazare_image_bytes_sent_total counter");
    let _ =
        writeln!(o, "lazare_image_bytes_sent_total{{protocol=\"http\"}} {}", load(&m.image_bytes));
    if peers.is_some() {
        let seeds: u64 = m.seeds_sent.iter().map(|a| load(a)).sum();
        let _ = writeln!(o, "lazare_image_bytes_sent_total{{protocol=\"bittorrent\"}} {seeds}");
    }
    if let Some(n) = peers {
        let _ = writeln!(o, "# HELP lazare_room_peers PCs announcing to the room's tracker now.");
        let _ = writeln!(o, "# TYPE lazare_room_peers gauge");
        let _ = writeln!(o, "lazare_room_peers {n}");
    }
    let _ = writeln!(o, "# HELP lazare_hellos_total Hellos received (POST /api/v1/hello).");
    let _ = writeln!(o, "# TYPE lazare_hellos_total counter");
    let _ = writeln!(o, "lazare_hellos_total {}", load(&m.hellos));
    let mut counts = [0u64; 4];
    for s in statuses {
        counts[match s {
            Seen => 0,
            Installing => 1,
            Installed => 2,
            Failed => 3,
        }] += 1;
    }
    let _ = writeln!(o, "# HELP lazare_machines Machines known, by install status.");
    let _ = writeln!(o, "# TYPE lazare_machines gauge");
    for (s, n) in [Seen, Installing, Installed, Failed].into_iter().zip(counts) {
        let _ = writeln!(o, "lazare_machines{{status=\"{}\"}} {n}", super::store::status_name(s));
    }
    let _ = writeln!(o, "# HELP lazare_request_seconds Request latency to the response head.");
    let _ = writeln!(o, "# TYPE lazare_request_seconds histogram");
    for (kind, name) in KINDS {
        let h = &m.latency[kind as usize];
        for (i, le) in BUCKETS.iter().enumerate() {
            let n = load(&h.buckets[i]);
            let _ = writeln!(o, "lazare_request_seconds_bucket{{kind=\"{name}\",le=\"{le}\"}} {n}");
        }
        let total = load(&h.buckets[BUCKETS.len()]);
        let _ = writeln!(o, "lazare_request_seconds_bucket{{kind=\"{name}\",le=\"+Inf\"}} {total}");
        let sum = load(&h.sum_us) as f64 / 1e6;
        let _ = writeln!(o, "lazare_request_seconds_sum{{kind=\"{name}\"}} {sum}");
        let _ = writeln!(o, "lazare_request_seconds_count{{kind=\"{name}\"}} {total}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use lazare_proto::MachineStatus;

    #[test]
    fn buckets_are_cumulative_and_statuses_counted() {
        let m = Metrics::with_seeds(vec![Arc::new(AtomicU64::new(5)), Arc::new(AtomicU64::new(7))]);
        m.latency[Kind::Api as usize].observe(0.003);
        m.latency[Kind::Api as usize].observe(0.2);
        m.hellos.fetch_add(2, Ordering::Relaxed);
        let text =
            render(&m, [MachineStatus::Installed, MachineStatus::Installed].into_iter(), Some(3));
        assert!(text.contains("lazare_request_seconds_bucket{kind=\"api\",le=\"0.005\"} 1\n"));
        assert!(text.contains("lazare_request_seconds_bucket{kind=\"api\",le=\"0.5\"} 2\n"));
        assert!(text.contains("lazare_request_seconds_bucket{kind=\"api\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("lazare_request_seconds_count{kind=\"images\"} 0\n"));
        assert!(text.contains("lazare_machines{status=\"installed\"} 2\n"));
        assert!(text.contains("lazare_machines{status=\"failed\"} 0\n"));
        assert!(text.contains("lazare_hellos_total 2\n"));
        assert!(text.contains("lazare_room_peers 3\n"));
        assert!(text.contains("lazare_image_bytes_sent_total{protocol=\"bittorrent\"} 12\n"));
    }
}
