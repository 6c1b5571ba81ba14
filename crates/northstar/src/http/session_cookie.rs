//! The session cookie: `__Host-northstar_session` over HTTPS (HttpOnly,
//! Secure, SameSite=Lax, Path=/), `northstar_session` without `Secure` when
//! the public URL is plain-HTTP loopback (development only).

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::config::HttpSettings;

const SECURE_NAME: &str = "__Host-northstar_session";
const DEV_NAME: &str = "northstar_session";

fn name(settings: &HttpSettings) -> &'static str {
    if settings.secure_cookies {
        SECURE_NAME
    } else {
        DEV_NAME
    }
}

/// The session token the request carries, if any.
pub fn read(headers: &HeaderMap, settings: &HttpSettings) -> Option<String> {
    let wanted = name(settings);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == wanted)
        .map(|cookie| cookie.value().to_owned())
}

fn build(settings: &HttpSettings, value: String, max_age: CookieDuration) -> HeaderValue {
    let cookie = Cookie::build((name(settings), value))
        .http_only(true)
        .secure(settings.secure_cookies)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(max_age)
        .build();
    // A cookie built from a base64url token and fixed attributes is always a
    // valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// `Set-Cookie` for a new session.
pub fn set(settings: &HttpSettings, token: String) -> HeaderValue {
    let max_age =
        CookieDuration::seconds(i64::try_from(settings.session_max.as_secs()).unwrap_or(i64::MAX));
    build(settings, token, max_age)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear(settings: &HttpSettings) -> HeaderValue {
    build(settings, String::new(), CookieDuration::ZERO)
}
