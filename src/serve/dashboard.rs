//! The dashboard: server-rendered HTML from `templates/`, no JavaScript, so
//! it works on the same old PCs it manages.

use super::api::{
    blocking, check_id, open_window, order, request_reinstall, ApiError, MachineOrder,
};
use super::auth::set_cookie;
use super::enroll::EnrollRule;
use super::store::{human_bytes, now_ms, rfc3339, MachineDetail, MachineSummary};
use super::Server;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
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
    env.add_template("dashboard_login.html", include_str!("../../templates/dashboard_login.html"))?;
    Ok(env)
}

/// The machine page shows the end of each install log; the whole log is
/// one link away (a looping agent's log must not make the page huge).
pub const LOG_TAIL: usize = 16 * 1024;

pub fn router() -> Router<Arc<Server>> {
    let small = || DefaultBodyLimit::max(4096);
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_page).post(login).layer(small()))
        .route("/logout", post(logout))
        .route("/enroll-window", post(window_form).layer(small()))
        .route("/machines/{id}", get(machine_page))
        .route("/machines/{id}/logs/{install}", get(whole_log))
        .route("/machines/{id}/{order}", post(order_form).layer(small()))
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
    /// `120 MiB from the room`, or empty.
    from_peers: String,
    install: u32,
    last_event: String,
    reinstall_pending: bool,
    accepted: bool,
    enrolled: bool,
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
        from_peers: m
            .from_peers
            .map(|b| format!("{} from the room", human_bytes(b)))
            .unwrap_or_default(),
        install: m.install,
        last_event,
        reinstall_pending: m.reinstall_pending,
        accepted: m.accepted,
        enrolled: m.enrolled,
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

/// Pages need the admin; a browser without the login cookie (or with one
/// from before a token rotation) goes to the login form.
fn login_needed(s: &Server, headers: &HeaderMap) -> Option<Response> {
    match s.admin(headers) {
        Ok(()) => None,
        Err(ApiError::NoToken | ApiError::WrongToken) => {
            Some(Redirect::to("/login").into_response())
        }
        Err(e) => Some(error_page(s, e)),
    }
}

/// A sentence on how new PCs are accepted right now.
fn enroll_state(s: &Server) -> Result<String, ApiError> {
    Ok(match s.rules.enroll {
        EnrollRule::Open => {
            "New PCs are accepted at once (enroll = \"open\" in lazare.toml).".into()
        }
        EnrollRule::Approve => {
            "Each new PC waits until you accept it on its page (enroll = \"approve\").".into()
        }
        EnrollRule::Window => match s.store.enroll_until()?.filter(|&u| u > now_ms()) {
            Some(u) => format!("New PCs are accepted until {}.", readable_time(&rfc3339(u))),
            None => "New PCs wait to be accepted: open a window below, or accept each on its page."
                .into(),
        },
    })
}

async fn index(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    if let Some(r) = login_needed(&s, &headers) {
        return r;
    }
    let s2 = s.clone();
    let result = blocking(move || Ok((s2.store.machines()?, enroll_state(&s2)?))).await.and_then(
        |(ms, enroll)| {
            let rows: Vec<Row> = ms.iter().map(row).collect();
            let counts = ["seen", "installing", "installed", "failed"]
                .map(|st| (st, rows.iter().filter(|r| r.status == st).count()));
            let waiting = rows.iter().filter(|r| !r.accepted).count();
            let window = s.rules.enroll == EnrollRule::Window;
            render(
                &s,
                "dashboard.html",
                context! { machines => rows, counts => counts, enroll => enroll,
                waiting => waiting, window => window, login => s.rules.login_help() },
            )
        },
    );
    result.map_or_else(|e| error_page(&s, e), IntoResponse::into_response)
}

/// The last `max` bytes of `text`, cut at a line start when one is near.
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let rest = &text[start..];
    rest.find('\n').map_or(rest, |n| &rest[n + 1..])
}

/// The machine `id` for an admin's page; else the page to answer instead:
/// the login page, or the error page for a bad or unknown id.
async fn machine_for_page(
    s: &Arc<Server>,
    headers: &HeaderMap,
    id: String,
) -> Result<MachineDetail, Response> {
    if let Some(r) = login_needed(s, headers) {
        return Err(r);
    }
    let s2 = s.clone();
    let found = async {
        check_id(&id)?;
        blocking(move || s2.store.machine(&id)?.ok_or(ApiError::UnknownMachine(id))).await
    };
    found.await.map_err(|e| error_page(s, e))
}

async fn machine_page(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let m = match machine_for_page(&s, &headers, id).await {
        Ok(m) => m,
        Err(page) => return page,
    };
    let logs: Vec<_> = m
        .logs
        .iter()
        .rev() // newest install first
        .map(|l| {
            let shown = tail(&l.text, LOG_TAIL);
            context! {
                install => l.install, text => shown, cut => shown.len() < l.text.len(),
                bytes => l.text.len(),
            }
        })
        .collect();
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
        .map_or_else(|e| error_page(&s, e), IntoResponse::into_response)
}

/// One install's whole log, as plain text.
async fn whole_log(
    State(s): State<Arc<Server>>,
    Path((id, install)): Path<(String, u32)>,
    headers: HeaderMap,
) -> Response {
    let m = match machine_for_page(&s, &headers, id).await {
        Ok(m) => m,
        Err(page) => return page,
    };
    match m.logs.into_iter().find(|l| l.install == install) {
        Some(log) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], log.text).into_response()
        }
        None => error_page(
            &s,
            ApiError::Body { status: StatusCode::NOT_FOUND, reason: "no such install log".into() },
        ),
    }
}

async fn login_page(State(s): State<Arc<Server>>) -> Response {
    render(&s, "dashboard_login.html", context! {})
        .map_or_else(|e| error_page(&s, e), IntoResponse::into_response)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// The token travels once, in the form's body; the browser then keeps it in
/// an HttpOnly cookie (no script can read it) that is never sent from
/// another site's page (SameSite=Strict), so no other page can post our
/// forms with it.
async fn login(
    State(s): State<Arc<Server>>,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let result = form
        .map_err(|e| ApiError::BadRequest(e.body_text()))
        .and_then(|Form(f)| s.check_token(&f.token).map(|()| f.token));
    match result {
        Ok(token) => {
            let mut resp = Redirect::to("/").into_response();
            resp.headers_mut().insert(header::SET_COOKIE, set_cookie(Some(token.trim())));
            resp
        }
        Err(e) => error_page(&s, e),
    }
}

async fn logout() -> Response {
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(header::SET_COOKIE, set_cookie(None));
    resp
}

/// The buttons of a machine's page.
async fn order_form(
    State(s): State<Arc<Server>>,
    Path((id, what)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = login_needed(&s, &headers) {
        return r;
    }
    let result = async {
        check_id(&id)?;
        match what.as_str() {
            "reinstall" => request_reinstall(s.clone(), id.clone()).await?,
            "accept" => order(s.clone(), id.clone(), MachineOrder::Accept).await?,
            "reenroll" => order(s.clone(), id.clone(), MachineOrder::Reenroll).await?,
            "forget" => {
                order(s.clone(), id.clone(), MachineOrder::Forget).await?;
                return Ok("/".to_string());
            }
            _ => {
                let status = StatusCode::NOT_FOUND;
                return Err(ApiError::Body { status, reason: "no such page or API call".into() });
            }
        }
        Ok::<_, ApiError>(format!("/machines/{id}"))
    }
    .await;
    match result {
        // 303: the browser follows with a GET, so a reload does not re-post.
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => error_page(&s, e),
    }
}

#[derive(Deserialize)]
struct WindowForm {
    hours: u32,
}

async fn window_form(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    form: Result<Form<WindowForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Some(r) = login_needed(&s, &headers) {
        return r;
    }
    let result = async {
        let Form(f) = form.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        open_window(s.clone(), f.hours).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => error_page(&s, e),
    }
}
