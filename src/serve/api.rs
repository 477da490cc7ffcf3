//! API v1 (DESIGN.md "Server API"): what the agents and admin scripts call.

use super::auth::machine_proof;
use super::enroll::{HelloOutcome, Refusal};
use super::plan::{action_for, build_plan, find_image, nonce, NoPlan};
use super::store::{now_ms, LogOutcome, MAX_LOG_PER_INSTALL};
use super::Server;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use lazare_proto::{
    Action, Event, Inventory, Next, NextAction, CHALLENGE_HEADER, SECRET_HEADER, SIGNATURE_HEADER,
};
use std::sync::Arc;

/// Inventories of PCs with many disks and partitions stay far below this.
pub const HELLO_LIMIT: usize = 256 * 1024;
pub const EVENT_LIMIT: usize = 16 * 1024;
/// A whole install log (dmesg included) in one upload.
pub const LOG_LIMIT: usize = 4 * 1024 * 1024;

/// An API failure, answered as `{"error": "..."}` with its status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{reason}")]
    Body { status: StatusCode, reason: String },
    #[error("unknown machine {0}: it must say hello first")]
    UnknownMachine(String),
    #[error("this call needs the admin token: header `Authorization: Bearer TOKEN`")]
    NoToken,
    #[error("wrong admin token")]
    WrongToken,
    #[error("{}", refusal_text(.0))]
    Machine(Refusal),
    #[error(transparent)]
    NoPlan(#[from] NoPlan),
    #[error("internal error; the server's log says more")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Body { status, .. } => *status,
            ApiError::UnknownMachine(_) => StatusCode::NOT_FOUND,
            ApiError::NoToken => StatusCode::UNAUTHORIZED,
            ApiError::WrongToken => StatusCode::FORBIDDEN,
            ApiError::Machine(r) => match r {
                Refusal::Unknown => StatusCode::NOT_FOUND,
                Refusal::NoProof => StatusCode::UNAUTHORIZED,
                Refusal::WrongProof | Refusal::NotEnrolled => StatusCode::FORBIDDEN,
                Refusal::Full => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::NoPlan(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn refusal_text(r: &Refusal) -> &'static str {
    match r {
        Refusal::Unknown => "unknown machine: it must say hello first",
        Refusal::NoProof => {
            "this machine is enrolled: the call must carry its secret \
             (`Authorization: Lazare-Machine SECRET`); if its disk was replaced, let it enrol \
             again on the dashboard"
        }
        Refusal::WrongProof => "wrong machine secret",
        Refusal::NotEnrolled => "this machine must say hello again to enrol",
        Refusal::Full => "the server holds too many machines: forget some on the dashboard",
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body too large".to_string()
        } else {
            r.body_text()
        };
        ApiError::Body { status, reason }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            eprintln!("lazare: error: {e:#}");
        }
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

pub fn router() -> Router<Arc<Server>> {
    Router::new()
        .route("/api/v1/hello", post(hello).layer(DefaultBodyLimit::max(HELLO_LIMIT)))
        .route("/api/v1/machines", get(list))
        .route("/api/v1/machines/{id}", get(detail))
        .route(
            "/api/v1/machines/{id}/events",
            post(event).layer(DefaultBodyLimit::max(EVENT_LIMIT)),
        )
        .route("/api/v1/machines/{id}/log", post(log).layer(DefaultBodyLimit::max(LOG_LIMIT)))
        .route("/api/v1/machines/{id}/next", get(next))
        .route(
            "/api/v1/machines/{id}/offline",
            post(super::offline::report).layer(DefaultBodyLimit::max(HELLO_LIMIT + LOG_LIMIT)),
        )
        .route("/api/v1/machines/{id}/reinstall", post(reinstall))
        .route("/api/v1/machines/{id}/accept", admin_order(MachineOrder::Accept))
        .route("/api/v1/machines/{id}/reenroll", admin_order(MachineOrder::Reenroll))
        .route("/api/v1/machines/{id}/forget", admin_order(MachineOrder::Forget))
        .route("/api/v1/enroll-window", post(enroll_window))
}

/// Runs store and file work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("worker task failed: {e}")))?
}

/// Machine ids are sha256 hex (see `Inventory::compute_machine_id`).
pub fn check_id(id: &str) -> Result<(), ApiError> {
    if lazare_proto::valid_machine_id(id) {
        Ok(())
    } else {
        Err(ApiError::BadRequest("machine id must be 64 lowercase hex characters".into()))
    }
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid {what} JSON: {e}")))
}

async fn hello(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let inv: Inventory = parse_json(&body?, "inventory")?;
    inv.validate().map_err(|e| ApiError::BadRequest(format!("invalid inventory: {e}")))?;
    let challenge = match headers.get(CHALLENGE_HEADER).map(|v| v.to_str()) {
        None => String::new(),
        Some(Ok(c)) if lazare_proto::valid_token_hex(c) => c.to_string(),
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "{CHALLENGE_HEADER} must be 32 to 128 lowercase hex characters"
            )))
        }
    };
    let proof = machine_proof(&headers);
    let answer = blocking(move || answer_hello(&s, &inv, proof.as_deref(), challenge)).await?;
    let mut resp = answer.body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let sig = HeaderValue::from_str(&answer.signature)
        .map_err(|e| anyhow::anyhow!("signature header: {e}"))?;
    headers.insert(SIGNATURE_HEADER, sig);
    if let Some(secret) = answer.new_secret {
        let v =
            HeaderValue::from_str(&secret).map_err(|e| anyhow::anyhow!("secret header: {e}"))?;
        headers.insert(SECRET_HEADER, v);
    }
    Ok(resp)
}

/// The signed plan, and the machine's secret when this hello enrolled it.
struct HelloAnswer {
    body: Vec<u8>,
    signature: String,
    new_secret: Option<String>,
}

/// Records the machine (even when no image is ready, so the dashboard shows
/// it), then builds, checks and signs its plan. A PC not accepted yet gets a
/// `wait` plan without the users' password hashes; an installed PC booted
/// again from a CD or stick left in gets `local` (start the installed
/// system), which counts no install.
fn answer_hello(
    s: &Server,
    inv: &Inventory,
    proof: Option<&str>,
    challenge: String,
) -> Result<HelloAnswer, ApiError> {
    let action = action_for(&s.rules, s.store.standing(&inv.machine_id)?, inv);
    let local = action == Action::Local;
    let (rec, accepted, new_secret) =
        match s.store.hello(inv, now_ms(), proof, s.rules.enroll, local)? {
            HelloOutcome::In { rec, accepted, new_secret } => (rec, accepted, new_secret),
            HelloOutcome::Refused(r) => {
                eprintln!(
                    "lazare: hello for {} refused: {}",
                    &inv.machine_id[..12],
                    refusal_text(&r)
                );
                return Err(r.into());
            }
        };
    let ram = inv.memory_bytes / lazare_proto::MIB;
    let profile = s.rules.pick_profile(inv).ok_or(NoPlan::NoRule { ram })?;
    let image = find_image(&s.data.images(), profile).inspect_err(|e| {
        eprintln!("lazare: hello from {}: {e}", &inv.machine_id[..12]);
    })?;
    let mut plan = build_plan(&s.rules, inv, rec.seq, &image, nonce()?, action)?;
    plan.challenge = challenge;
    if image.torrent.is_some() {
        plan.setup.room = s.room.clone();
    }
    if !accepted {
        plan.action = Action::Wait;
        for u in &mut plan.setup.users {
            u.password_hash = None;
        }
    }
    // The agent refuses a plan that fails this; better to fail here, loudly.
    plan.validate_for(&inv.machine_id).map_err(|e| anyhow::anyhow!("checking the plan: {e}"))?;
    s.store.set_plan(&inv.machine_id, &plan.hostname, &image.name)?;
    let body = serde_json::to_vec(&plan).map_err(|e| anyhow::anyhow!("encoding the plan: {e}"))?;
    let signature = s.key.sign(&body);
    let waits = if accepted { "" } else { " (waits to be accepted)" };
    eprintln!(
        "lazare: hello from {} ({}, {ram} MiB RAM, install #{}) → {} {} {}{waits}",
        plan.hostname,
        &inv.machine_id[..12],
        rec.install,
        action_name(action),
        image.name,
        image.file
    );
    Ok(HelloAnswer { body, signature, new_secret })
}

fn action_name(a: lazare_proto::Action) -> &'static str {
    match a {
        lazare_proto::Action::Install => "install",
        lazare_proto::Action::Inventory => "inventory",
        lazare_proto::Action::Wait => "wait",
        lazare_proto::Action::Local => "local (already installed: start it)",
    }
}

async fn event(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let ev: Event = parse_json(&body?, "event")?;
    if ev.percent.is_some_and(|p| p > 100) {
        return Err(ApiError::BadRequest("percent must be 0–100".into()));
    }
    as_machine(s, id, &headers, move |s, id| match s.store.add_event(&id, &ev, now_ms())? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::UnknownMachine(id)),
    })
    .await
}

/// Runs `f` off the async workers once `id` is a machine id and the
/// request proves it comes from that machine (its secret, or the answer to
/// the hello's challenge).
async fn as_machine<T: Send + 'static>(
    s: Arc<Server>,
    id: String,
    headers: &HeaderMap,
    f: impl FnOnce(&Server, String) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    check_id(&id)?;
    let proof = machine_proof(headers);
    blocking(move || {
        s.store.check_machine(&id, proof.as_deref())??;
        f(&s, id)
    })
    .await
}

async fn log(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body = body?;
    // Kernel and tool output is not always valid UTF-8; keep what it says.
    let text = String::from_utf8_lossy(&body).into_owned();
    as_machine(s, id, &headers, move |s, id| match s.store.add_log(&id, &text, now_ms())? {
        LogOutcome::Stored => Ok(StatusCode::NO_CONTENT),
        LogOutcome::UnknownMachine => Err(ApiError::UnknownMachine(id)),
        LogOutcome::Full => Err(ApiError::Body {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            reason: format!("the log of this install passed {MAX_LOG_PER_INSTALL} bytes"),
        }),
        LogOutcome::ServerFull => Err(ApiError::Body {
            status: StatusCode::INSUFFICIENT_STORAGE,
            reason: "the server holds too many logs: forget old machines".into(),
        }),
    })
    .await
}

async fn list(State(s): State<Arc<Server>>, headers: HeaderMap) -> Result<Response, ApiError> {
    s.admin(&headers)?;
    let machines = blocking(move || Ok(s.store.machines()?)).await?;
    Ok(Json(machines).into_response())
}

async fn detail(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    s.admin(&headers)?;
    check_id(&id)?;
    let m = blocking(move || s.store.machine(&id)?.ok_or(ApiError::UnknownMachine(id))).await?;
    Ok(Json(m).into_response())
}

/// Asked by the installed system's `lazare-next` at boot, with the machine
/// secret it keeps: a stranger can neither order a reinstall nor learn one.
async fn next(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Next>, ApiError> {
    let pending = as_machine(s, id, &headers, |s, id| {
        s.store.reinstall_pending(&id)?.ok_or(ApiError::UnknownMachine(id))
    })
    .await?;
    let action = if pending { NextAction::Reinstall } else { NextAction::None };
    Ok(Json(Next { action }))
}

async fn reinstall(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    s.admin(&headers)?;
    request_reinstall(s, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the admin may do to one machine, from the API, the dashboard or the CLI.
#[derive(Debug, Clone, Copy)]
pub enum MachineOrder {
    Accept,
    Reenroll,
    Forget,
}

pub async fn order(s: Arc<Server>, id: String, what: MachineOrder) -> Result<(), ApiError> {
    blocking(move || {
        let known = match what {
            MachineOrder::Accept => s.store.accept(&id)?,
            MachineOrder::Reenroll => s.store.reenroll(&id)?,
            MachineOrder::Forget => s.store.forget(&id)?,
        };
        if known {
            eprintln!("lazare: {what:?} {}", &id[..12]);
            Ok(())
        } else {
            Err(ApiError::UnknownMachine(id))
        }
    })
    .await
}

/// The POST handler of one admin order: the same checks for each.
fn admin_order(what: MachineOrder) -> MethodRouter<Arc<Server>> {
    post(
        move |State(s): State<Arc<Server>>, Path(id): Path<String>, headers: HeaderMap| async move {
            check_id(&id)?;
            s.admin(&headers)?;
            order(s, id, what).await?;
            Ok::<_, ApiError>(StatusCode::NO_CONTENT)
        },
    )
}

#[derive(serde::Deserialize)]
pub struct WindowRequest {
    pub hours: u32,
}

/// Opens (or with 0 closes) the window in which new PCs are accepted.
async fn enroll_window(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    s.admin(&headers)?;
    let req: WindowRequest = parse_json(&body?, "window")?;
    let until = open_window(s, req.hours).await?;
    Ok(Json(serde_json::json!({ "until": super::store::rfc3339(until) })).into_response())
}

/// Longest window one call opens: a week.
pub const MAX_WINDOW_HOURS: u32 = 24 * 7;

pub async fn open_window(s: Arc<Server>, hours: u32) -> Result<i64, ApiError> {
    if hours > MAX_WINDOW_HOURS {
        return Err(ApiError::BadRequest(format!("at most {MAX_WINDOW_HOURS} hours")));
    }
    blocking(move || Ok(s.store.open_window(now_ms(), hours)?)).await
}

/// Shared by the API and the dashboard's button.
pub async fn request_reinstall(s: Arc<Server>, id: String) -> Result<(), ApiError> {
    blocking(move || match s.store.request_reinstall(&id, now_ms())? {
        true => {
            eprintln!("lazare: reinstall requested for {}", &id[..12]);
            super::wol::wake_machine(&s, &id);
            Ok(())
        }
        false => Err(ApiError::UnknownMachine(id)),
    })
    .await
}
