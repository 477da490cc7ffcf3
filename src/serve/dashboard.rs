//! The dashboard: server-rendered HTML from `templates/`, no JavaScript, so
//! it works on the same old PCs it manages.

use super::api::{blocking, check_id, request_reinstall, ApiError};
use super::store::{human_bytes, MachineDetail, MachineSummary};
use super::Server;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::{context, Environment};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The templates, compiled in so the binary is self-contained; the files in
/// `templates/` stay plain HTML a volunteer can read and change.
pub fn templates() -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    env.add_template("dashboard_base.html", include_str!("../../templates/dashboard_base.html"))?;
    env.add_template("dashboard.html", include_str!("../../templates/dashboard.html"))?;
    env.add_template(
        "dashboard_machine.html",
        include_str!("../../templates/dashboard_machine.html"),
    )?;
    env.add_template("dashboard_error.html", include_str!("../../templates/dashboard_error.html"))?;
    Ok(env)
}

pub fn router() -> Router<Arc<Server>> {
    Router::new()
        .route("/", get(index))
        .route("/machines/{id}", get(machine_page))
        .route("/machines/{id}/reinstall", post(reinstall_form).layer(DefaultBodyLimit::max(4096)))
}

/// One machine as the pages show it: every value already a string.
#[derive(Serialize)]
struct Row {
    id: String,
    short_id: String,
    hostname: String,
    status: String,
    first_seen: String,
    last_seen: String,
    cpu: String,
    ram: String,
    firmware: String,
    disks: Vec<String>,
    nics: Vec<String>,
    image: String,
    install: u32,
    last_event: String,
    reinstall_pending: bool,
}

fn row(m: &MachineSummary) -> Row {
    let h = &m.hardware;
    let last_event = m.last_event.as_ref().map_or(String::new(), |e| {
        let pct = e.percent.map(|p| format!(" {p}%")).unwrap_or_default();
        format!("{}{pct}: {}", json_name(&e.phase), e.message)
    });
    Row {
        id: m.id.clone(),
        short_id: m.id[..12.min(m.id.len())].to_string(),
        hostname: if m.hostname.is_empty() { "(no plan yet)".into() } else { m.hostname.clone() },
        status: json_name(&m.status),
        first_seen: readable_time(&m.first_seen),
        last_seen: readable_time(&m.last_seen),
        cpu: format!("{} × {}", h.cpus, h.cpu),
        ram: human_bytes(h.memory_bytes),
        firmware: json_name(&h.firmware).to_uppercase(),
        disks: h.disks.clone(),
        nics: h.nics.clone(),
        image: m.image.clone().unwrap_or_default(),
        install: m.install,
        last_event,
        reinstall_pending: m.reinstall_pending,
    }
}

fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// `2026-11-23T14:15:03Z` → `2026-11-23 14:15:03 UTC`.
fn readable_time(t: &str) -> String {
    match t.strip_suffix('Z') {
        Some(t) => format!("{} UTC", t.replace('T', " ")),
        None => t.to_string(),
    }
}

fn render(s: &Server, name: &str, ctx: minijinja::Value) -> Result<Html<String>, ApiError> {
    let tmpl = s.templates.get_template(name).map_err(anyhow::Error::from)?;
    Ok(Html(tmpl.render(ctx).map_err(anyhow::Error::from)?))
}

/// Errors on the HTML side are pages, not JSON.
fn error_page(s: &Server, err: ApiError) -> Response {
    let status = err.status();
    if let ApiError::Internal(e) = &err {
        eprintln!("lazare: error: {e:#}");
    }
    let ctx = context! { status => status.as_u16(), message => err.to_string() };
    match render(s, "dashboard_error.html", ctx) {
        Ok(html) => (status, html).into_response(),
        Err(_) => (status, err.to_string()).into_response(),
    }
}

async fn index(State(s): State<Arc<Server>>) -> Response {
    let s2 = s.clone();
    let result = blocking(move || Ok(s2.store.machines()?)).await.and_then(|ms| {
        let rows: Vec<Row> = ms.iter().map(row).collect();
        let counts = ["seen", "installing", "installed", "failed"]
            .map(|st| (st, rows.iter().filter(|r| r.status == st).count()));
        render(&s, "dashboard.html", context! { machines => rows, counts => counts })
    });
    result.map_or_else(|e| error_page(&s, e), IntoResponse::into_response)
}

async fn machine_page(State(s): State<Arc<Server>>, Path(id): Path<String>) -> Response {
    let s2 = s.clone();
    let result = async {
        check_id(&id)?;
        let m: MachineDetail =
            blocking(move || s2.store.machine(&id)?.ok_or(ApiError::UnknownMachine(id))).await?;
        let mut logs = m.logs.clone();
        logs.reverse(); // newest install first
        let events: Vec<_> = m
            .events
            .iter()
            .rev()
            .map(|e| {
                context! {
                    time => readable_time(&e.time), install => e.install,
                    phase => json_name(&e.phase), percent => e.percent, message => e.message,
                }
            })
            .collect();
        let ctx = context! {
            m => row(&m.summary), events => events, logs => logs,
            boot_device => m.inventory.boot_device, agent_version => m.inventory.agent_version,
            dmi => m.inventory.dmi,
        };
        render(&s, "dashboard_machine.html", ctx)
    }
    .await;
    result.map_or_else(|e| error_page(&s, e), IntoResponse::into_response)
}

#[derive(Deserialize)]
struct ReinstallForm {
    token: String,
}

/// The button's form carries the token in its body (never in the URL, so it
/// stays out of logs and history); a forged cross-site form cannot know it.
async fn reinstall_form(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    form: Result<Form<ReinstallForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let result = async {
        check_id(&id)?;
        let Form(form) = form.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        s.check_token(&form.token)?;
        request_reinstall(s.clone(), id.clone()).await?;
        Ok::<_, ApiError>(id)
    }
    .await;
    match result {
        // 303: the browser follows with a GET, so a reload does not re-post.
        Ok(id) => Redirect::to(&format!("/machines/{id}")).into_response(),
        Err(e) => error_page(&s, e),
    }
}
