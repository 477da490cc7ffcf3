//! `lazare serve`: the install server. API v1 for the agents (DESIGN.md
//! "Server API"), the dashboard, and the images, from one data directory.

pub mod admin;
mod api;
mod auth;
mod config;
mod dashboard;
pub mod datadir;
mod enroll;
mod handout;
pub mod listen;
mod metrics;
pub mod offline;
mod plan;
mod room;
mod store;
mod tls;
mod tracker;
mod wol;

use anyhow::{Context, Result};
use api::ApiError;
use config::Rules;
use datadir::{DataDir, DB_FILE, RULES_FILE, TOKEN_FILE};
use enroll::{EnrollRule, FIRST_WINDOW_HOURS};
use lazare_proto::SigningKey;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use store::Store;

/// The project's default port: the agent assumes it when a URL has none.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8470";

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Directory for the signing key, admin token, rules (lazare.toml),
    /// database and images (created on first start).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Plain HTTP instead of HTTPS, for a server behind a TLS-terminating
    /// proxy or in a lab. CDs must then be built with an http:// URL.
    #[arg(long)]
    pub http: bool,
    /// Port of the room's tracker (plain HTTP, on the --listen address),
    /// where the PCs installing at the same time learn of each other to
    /// share the image. Default: the --listen port + 1 (8471), or any free
    /// port when --listen has port 0.
    #[arg(long, value_name = "PORT")]
    pub tracker_port: Option<u16>,
    /// No tracker: every PC downloads the image from this server alone.
    #[arg(long, conflicts_with = "tracker_port")]
    pub no_tracker: bool,
    /// The room's sharing engine (a static `lazare-share`, `make share`);
    /// default: $LAZARE_SHARE, beside this executable, /usr/lib/lazare, or
    /// the checkout's build. Without one the PCs do not share.
    #[arg(long, value_name = "PATH")]
    pub engine: Option<PathBuf>,
}

impl ServeArgs {
    /// Where the tracker listens, if it runs.
    fn tracker_addr(&self) -> Option<SocketAddr> {
        if self.no_tracker {
            return None;
        }
        let port = self.tracker_port.unwrap_or(match self.listen.port() {
            0 => 0,
            p => p.checked_add(1)?,
        });
        Some(SocketAddr::new(self.listen.ip(), port))
    }
}

/// Everything a request handler needs.
pub struct Server {
    data: DataDir,
    store: Store,
    rules: Rules,
    key: SigningKey,
    templates: minijinja::Environment<'static>,
    /// Where it listens: the LANs Wake-on-LAN packets go to (wol.rs).
    listen: SocketAddr,
    /// Counters for `GET /metrics`.
    metrics: metrics::Metrics,
    /// The room's tracker, when it runs.
    tracker: Option<Arc<tracker::Tracker>>,
    /// What plans say of the room, when the tracker and the engine are there.
    room: Option<lazare_proto::Room>,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: &ServeArgs) -> Result<()> {
    let data = DataDir::new(&args.data);
    data.create()?;
    // Images an older lazare added get their chunk index now: a plan
    // carries the index hash, so an image without one is not offered.
    for w in crate::image::chunks::ensure_all(&data.images()) {
        eprintln!("lazare: warning: {w}");
    }
    let (key, new_key) = data.load_or_create_key()?;
    let (token, new_token) = data.load_or_create_token()?;
    let rules = Rules::load_or_create(&data.path(RULES_FILE))?;
    let store = Store::open(&data.path(DB_FILE))?;
    if store.created {
        // The first day needs no extra step (see `EnrollRule::Window`).
        store.open_window(store::now_ms(), FIRST_WINDOW_HOURS)?;
    }
    let enroll = enroll_line(rules.enroll, store.enroll_until()?);
    let templates = dashboard::templates().context("loading the dashboard templates")?;
    let public = key.public();
    // Made before the key moves into the server state; the key is the TLS key.
    let tls = if args.http { None } else { Some(tls::acceptor(&key)?) };
    let running = match args.tracker_addr() {
        None => None,
        Some(addr) => Some(room::start(addr, args.engine.as_deref(), &data.images()).await?),
    };
    let server = Arc::new(Server {
        store,
        rules,
        key,
        templates,
        data: data.clone(),
        listen: args.listen,
        metrics: metrics::Metrics::with_seeds(
            running
                .as_ref()
                .and_then(|r| r.seeds.as_ref())
                .map(|s| s.sent.clone())
                .unwrap_or_default(),
        ),
        tracker: running.as_ref().map(|r| r.tracker.clone()),
        room: running.as_ref().and_then(|r| r.room.clone()),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the listening address")?;
    println!("{enroll}");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let banner = Banner { scheme, addr, tracker: running.as_ref().map(|r| r.addr), new_key };
    print_banner(&data, &banner, &public, new_token.then_some(token.as_str()));
    let stop = tokio::sync::watch::channel(()).0;
    let seeds = running.map(|r| {
        let mut stopped = stop.subscribe();
        let done = async move {
            let _ = stopped.changed().await;
        };
        tokio::spawn(listen::run(r.listener, tracker::router(r.tracker), None, done));
        r.seeds
    });
    listen::run(listener, app(server), tls, shutdown_signal()).await;
    drop(stop);
    // The seeds end with the server (kill_on_drop).
    drop(seeds);
    println!("lazare serve: stopped");
    Ok(())
}

fn app(server: Arc<Server>) -> axum::Router {
    let images = tower_http::services::ServeDir::new(server.data.images());
    // A PC that dies mid-upload must not hold a request open for ever; image
    // downloads are exempt (minutes on a 10 Mbit/s card are normal).
    let timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        std::time::Duration::from_secs(120),
    );
    axum::Router::new()
        .merge(api::router().merge(dashboard::router()).layer(timeout))
        // ServeDir answers Range requests (206) and refuses paths leaving the directory.
        .nest_service("/images", images)
        .route("/metrics", axum::routing::get(metrics::scrape))
        .fallback(|| async {
            let status = axum::http::StatusCode::NOT_FOUND;
            ApiError::Body { status, reason: "no such page or API call".into() }
        })
        // Routes without their own limit (dashboard forms, admin calls) get a small one.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::map_response(auth::security_headers))
        .layer(axum::middleware::from_fn_with_state(server.clone(), metrics::count))
        .with_state(server)
}

/// How new PCs are accepted right now, for the banner.
fn enroll_line(rule: EnrollRule, until: Option<i64>) -> String {
    let how = "open a window on the dashboard or with `lazare admin enroll --data DIR --hours N`";
    match rule {
        EnrollRule::Open => "new PCs: accepted at their first hello (enroll = \"open\")".into(),
        EnrollRule::Approve => "new PCs: each waits to be accepted on the dashboard".into(),
        EnrollRule::Window => match until.filter(|&u| u > store::now_ms()) {
            Some(u) => format!("new PCs: accepted until {} UTC; later, {how}", store::rfc3339(u)),
            None => format!("new PCs: wait to be accepted; {how}"),
        },
    }
}

/// What the start banner tells of the listeners.
struct Banner<'a> {
    scheme: &'a str,
    addr: SocketAddr,
    tracker: Option<SocketAddr>,
    new_key: bool,
}

fn print_banner(
    data: &DataDir,
    b: &Banner,
    public: &lazare_proto::PublicKey,
    new_token: Option<&str>,
) {
    let Banner { scheme, addr, new_key, .. } = *b;
    let shown = if addr.ip().is_unspecified() {
        format!("{scheme}://<this server's address>:{}", addr.port())
    } else {
        format!("{scheme}://{addr}")
    };
    println!("lazare serve: data in {}", data.root.display());
    if new_key {
        println!("new signing key created in {}", data.root.display());
    }
    println!("listening on {scheme}://{addr}");
    println!("dashboard: {shown}/");
    match b.tracker {
        Some(t) => println!("room tracker: http://{t}/announce"),
        None => println!("room tracker: none (--no-tracker): each PC downloads from this server"),
    }
    println!("public key: {public}");
    if scheme == "https" {
        // The certificate is self-signed: browsers warn once; scripts pin.
        println!(
            "TLS: a self-signed certificate for the public key; pin it with curl -k --pinnedpubkey '{}'",
            public.tls_pin()
        );
    } else {
        println!("plain HTTP (--http): build CDs with an http:// server URL");
    }
    match new_token {
        Some(token) => println!(
            "admin token (shown once, kept in {}): {token}",
            data.path(TOKEN_FILE).display()
        ),
        None => println!("admin token: in {}", data.path(TOKEN_FILE).display()),
    }
    println!(
        "log in: open {shown}/login and paste the admin token; scripts send \
         `Authorization: Bearer TOKEN`; a new token: lazare admin rotate-token --data {}",
        data.root.display()
    );
    println!("rules: {}", data.path(RULES_FILE).display());
    println!("images: {}", data.images().display());
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lazare: warning: cannot watch SIGTERM: {e}");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
