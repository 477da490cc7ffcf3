//! API v1 (DESIGN.md "Server API"): what the agents and admin scripts call.

use super::plan::{build_plan, find_image, nonce, NoPlan};
use super::store::{now_ms, LogOutcome, MAX_LOG_PER_INSTALL};
use super::Server;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lazare_proto::{Event, Inventory, Next, NextAction, SIGNATURE_HEADER};
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
            ApiError::NoPlan(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
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
        .route("/api/v1/machines/{id}/reinstall", post(reinstall))
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

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid {what} JSON: {e}")))
}

async fn hello(
    State(s): State<Arc<Server>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let inv: Inventory = parse_json(&body?, "inventory")?;
    inv.validate().map_err(|e| ApiError::BadRequest(format!("invalid inventory: {e}")))?;
    let (body, signature) = blocking(move || answer_hello(&s, &inv)).await?;
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let sig =
        HeaderValue::from_str(&signature).map_err(|e| anyhow::anyhow!("signature header: {e}"))?;
    headers.insert(SIGNATURE_HEADER, sig);
    Ok(resp)
}

/// Records the machine (even when no image is ready, so the dashboard shows
/// it), then builds, checks and signs its plan.
fn answer_hello(s: &Server, inv: &Inventory) -> Result<(Vec<u8>, String), ApiError> {
    let rec = s.store.hello(inv, now_ms())?;
    let ram = inv.memory_bytes / lazare_proto::MIB;
    let profile = s.rules.pick_profile(inv).ok_or(NoPlan::NoRule { ram })?;
    let image = find_image(&s.data.images(), profile).inspect_err(|e| {
        eprintln!("lazare: hello from {}: {e}", &inv.machine_id[..12]);
    })?;
    let plan = build_plan(&s.rules, inv, rec.seq, &image, nonce()?)?;
    // The agent refuses a plan that fails this; better to fail here, loudly.
    plan.validate_for(&inv.machine_id).map_err(|e| anyhow::anyhow!("checking the plan: {e}"))?;
    s.store.set_plan(&inv.machine_id, &plan.hostname, &image.name)?;
    let body = serde_json::to_vec(&plan).map_err(|e| anyhow::anyhow!("encoding the plan: {e}"))?;
    let signature = s.key.sign(&body);
    eprintln!(
        "lazare: hello from {} ({}, {ram} MiB RAM, install #{}) → {} {}",
        plan.hostname,
        &inv.machine_id[..12],
        rec.install,
        image.name,
        image.file
    );
    Ok((body, signature))
}

async fn event(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    let ev: Event = parse_json(&body?, "event")?;
    if ev.percent.is_some_and(|p| p > 100) {
        return Err(ApiError::BadRequest("percent must be 0–100".into()));
    }
    blocking(move || match s.store.add_event(&id, &ev, now_ms())? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::UnknownMachine(id)),
    })
    .await
}

async fn log(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    let body = body?;
    // Kernel and tool output is not always valid UTF-8; keep what it says.
    let text = String::from_utf8_lossy(&body).into_owned();
    blocking(move || match s.store.add_log(&id, &text, now_ms())? {
        LogOutcome::Stored => Ok(StatusCode::NO_CONTENT),
        LogOutcome::UnknownMachine => Err(ApiError::UnknownMachine(id)),
        LogOutcome::Full => Err(ApiError::Body {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            reason: format!("the log of this install passed {MAX_LOG_PER_INSTALL} bytes"),
        }),
    })
    .await
}

async fn list(State(s): State<Arc<Server>>) -> Result<Response, ApiError> {
    let machines = blocking(move || Ok(s.store.machines()?)).await?;
    Ok(Json(machines).into_response())
}

async fn detail(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let m = blocking(move || s.store.machine(&id)?.ok_or(ApiError::UnknownMachine(id))).await?;
    Ok(Json(m).into_response())
}

async fn next(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
) -> Result<Json<Next>, ApiError> {
    check_id(&id)?;
    let pending =
        blocking(move || s.store.reinstall_pending(&id)?.ok_or(ApiError::UnknownMachine(id)))
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
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::NoToken)?;
    s.check_token(token)?;
    request_reinstall(s, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Shared by the API and the dashboard's button.
pub async fn request_reinstall(s: Arc<Server>, id: String) -> Result<(), ApiError> {
    blocking(move || match s.store.request_reinstall(&id, now_ms())? {
        true => {
            eprintln!("lazare: reinstall requested for {}", &id[..12]);
            Ok(())
        }
        false => Err(ApiError::UnknownMachine(id)),
    })
    .await
}
