//! Who may do what: the admin (token, as a Bearer header for scripts or as
//! the login cookie for the dashboard) and the machines (their enrolment
//! secret). Also the headers every answer carries so the dashboard cannot
//! be framed or made to run injected script.

use super::api::ApiError;
use super::datadir::{self, TOKEN_FILE};
use super::enroll::Refusal;
use super::Server;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

/// The dashboard's login cookie. It holds the admin token itself: rotating
/// the token logs every browser out.
pub const COOKIE: &str = "lazare_admin";

/// No script at all, styles only from the page, forms only to this server,
/// never inside a frame.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Added to every answer.
pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// The login cookie's value, if the browser sent one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

impl Server {
    /// Checks a token against the file, read on every check so `lazare admin
    /// rotate-token` takes effect on a running server.
    pub fn check_token(&self, token: &str) -> Result<(), ApiError> {
        if token.trim().is_empty() {
            return Err(ApiError::NoToken);
        }
        let path = self.data.path(TOKEN_FILE);
        let current = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        // Digests, not the secrets, are compared: no early exit on the token.
        if datadir::token_digest(token) == datadir::token_digest(&current) {
            Ok(())
        } else {
            Err(ApiError::WrongToken)
        }
    }

    /// The admin, by Bearer header or login cookie.
    pub fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let token = bearer(headers).or_else(|| cookie(headers)).ok_or(ApiError::NoToken)?;
        self.check_token(token)
    }
}

/// The machine secret of an `Authorization: Lazare-Machine <secret>` header.
pub fn machine_proof(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    lazare_proto::parse_machine_auth(value).map(str::to_string)
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::Machine(r)
    }
}

/// `Set-Cookie` for a login (`Some(token)`) or a logout.
pub fn set_cookie(token: Option<&str>) -> HeaderValue {
    let value = match token {
        Some(t) => format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("lazare_admin="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; lazare_admin=abc; b=2"));
        assert_eq!(cookie(&h), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("lazare_adminx=abc"));
        assert_eq!(cookie(&h), None);
    }
}
