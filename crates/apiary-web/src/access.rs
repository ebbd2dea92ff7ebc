//! Who may look and who may steer.
//!
//! - **The token.** With one set, every request, the event stream and the page included,
//!   must carry it: `Authorization: Bearer <token>`, or `?token=<token>` in the URL (a
//!   browser's `EventSource` cannot set headers, and the page is opened from a link).
//!   [`serve`](crate::serve) refuses to listen beyond loopback without one.
//! - **Loopback names only, without a token.** A page on another site that points its own
//!   name at 127.0.0.1 (DNS rebinding) still sends that name as `Host`: without a token,
//!   requests not addressed to `localhost` or a loopback address are refused (403).
//! - **Cross-site requests.** Controls are POSTs that must carry the header
//!   `X-Apiary-Request: 1`: a form or image on another site cannot set it, and a script on
//!   another origin that tries triggers a CORS preflight this server never grants. A POST
//!   whose `Origin` names another host, or that a browser marks `Sec-Fetch-Site: cross-site`,
//!   is refused too.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::routes::error;

/// The header every control request must carry.
pub const REQUEST_HEADER: &str = "x-apiary-request";

/// The access rules of one server.
#[derive(Clone)]
pub(crate) struct Access {
    pub(crate) token: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn token_of(request: &Request) -> Option<String> {
    if let Some(bearer) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_owned());
    }
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token").then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+`; anything malformed is kept as it is (and then simply does
/// not match the token).
fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1]).zip(hex(bytes[i + 2])),
            _ => None,
        };
        match (decoded, bytes[i]) {
            (Some((hi, lo)), _) => {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        host,
    ) {
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .split_once("://")
                .map_or(origin, |(_, rest)| rest)
                .trim_end_matches('/');
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// Whether a `Host` header names this machine by a loopback name or address (with or
/// without a port).
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:port
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The middleware: checks the token on every route, and the control header on POSTs.
pub(crate) async fn check(State(access): State<Access>, request: Request, next: Next) -> Response {
    if access.token.is_none() {
        // Without a token only loopback is served; a page elsewhere that points its own name
        // at 127.0.0.1 (DNS rebinding) still sends its own name as `Host`.
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !loopback_host(host) {
            return (
                StatusCode::FORBIDDEN,
                error(format!(
                    "host `{host}` is not loopback: without an access token the console answers only requests addressed to localhost"
                )),
            )
                .into_response();
        }
    }
    if let Some(expected) = &access.token {
        let given = token_of(&request);
        if !given.is_some_and(|g| same(g.as_bytes(), expected.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                error("access token missing or wrong"),
            )
                .into_response();
        }
    }
    if request.method() == Method::POST {
        if request
            .headers()
            .get(REQUEST_HEADER)
            .is_none_or(|v| v.as_bytes() != b"1")
        {
            return (
                StatusCode::FORBIDDEN,
                error("controls need the header `X-Apiary-Request: 1` (a guard against cross-site requests)"),
            )
                .into_response();
        }
        if cross_site(request.headers()) {
            return (
                StatusCode::FORBIDDEN,
                error("cross-site control requests are refused"),
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole_and_decode_from_the_query() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert_eq!(percent_decode("a%2Bb+c%zz%4"), "a+b c%zz%4");
    }

    #[test]
    fn only_loopback_hosts_pass_without_a_token() {
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for no in [
            "evil.example:8080",
            "",
            "10.0.0.1:80",
            "[::2]:1",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(no), "{no}");
        }
    }

    #[test]
    fn origins_of_other_hosts_are_cross_site() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(cross_site(&h));
    }
}
