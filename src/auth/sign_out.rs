//! `/oauth2/sign_out`, safe against cross-site requests.
//!
//! The session cookie is `SameSite=Lax`, so a browser sends it on a
//! top-level GET from any site: a link or a redirect elsewhere could sign
//! the user out. A GET therefore ends the session only when the browser
//! marks it as coming from this origin or from the user (`Sec-Fetch-Site: same-origin`
//! or `none`). Any other GET gets a confirmation page whose form POSTs here,
//! and a POST ends the session only when its `Origin` is this origin.

use http::{HeaderMap, Method, StatusCode};
use url::Url;

use super::login::START_PATH;
use super::Auth;
use crate::web::LocalResponse;

/// Path of the sign-out endpoint, also the action of the confirmation form.
pub const SIGN_OUT_PATH: &str = "/oauth2/sign_out";

/// The outcome of a request to [`SIGN_OUT_PATH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOutDecision {
    /// The request comes from this origin or from the user: end the session.
    SignOut,
    /// A GET that may come from another site: ask the user to confirm.
    Confirm,
    /// A POST from another origin: 403, and the session stays.
    Forbidden,
    /// Neither GET, HEAD nor POST: 405.
    MethodNotAllowed,
}

/// Decides what a sign-out request gets. `public_origin` is the ASCII
/// serialisation of `server.public_url`'s origin, such as
/// `https://dash.example.com`, which browsers send as `Origin`.
pub fn decide_sign_out(
    method: &Method,
    headers: &HeaderMap,
    public_origin: &str,
) -> SignOutDecision {
    let fetch_site = header_text(headers, "sec-fetch-site");
    match *method {
        Method::GET => match fetch_site {
            Some(site)
                if site.eq_ignore_ascii_case("same-origin")
                    || site.eq_ignore_ascii_case("none") =>
            {
                SignOutDecision::SignOut
            }
            _ => SignOutDecision::Confirm,
        },
        // HEAD must not change state, so it gets the confirmation's head.
        Method::HEAD => SignOutDecision::Confirm,
        Method::POST => {
            let same_origin = header_text(headers, "origin")
                .is_some_and(|origin| origin.eq_ignore_ascii_case(public_origin));
            let same_site_fetch =
                fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("same-origin"));
            if same_origin || same_site_fetch {
                SignOutDecision::SignOut
            } else {
                SignOutDecision::Forbidden
            }
        }
        _ => SignOutDecision::MethodNotAllowed,
    }
}

/// Returns the single value of header `name` as text; `None` when it is
/// missing, repeated or not visible ASCII.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok().map(str::trim)
}

/// The way the session ended.
enum SignedOut {
    /// The browser goes on to the provider's `end_session_endpoint`.
    AtProvider(Url),
    /// The provider has no `end_session_endpoint`, or there was no session.
    Locally,
}

impl Auth {
    /// Serves [`SIGN_OUT_PATH`]. `api_client` is set for fetch and XHR
    /// calls, which get JSON rather than pages and redirects.
    pub async fn serve_sign_out(
        &self,
        method: &Method,
        headers: &HeaderMap,
        api_client: bool,
    ) -> LocalResponse {
        let public_origin = self.public_url.origin().ascii_serialization();
        match decide_sign_out(method, headers, &public_origin) {
            SignOutDecision::SignOut => self.sign_out(headers, api_client).await,
            SignOutDecision::Confirm if api_client => LocalResponse::json_error(
                StatusCode::FORBIDDEN,
                "sign_out_not_confirmed",
                "Sign out with POST /oauth2/sign_out from this origin.",
            ),
            SignOutDecision::Confirm => confirm_page(),
            SignOutDecision::Forbidden => {
                tracing::info!(origin = ?header_text(headers, "origin"), "sign-out from another origin rejected");
                forbidden(api_client)
            }
            SignOutDecision::MethodNotAllowed => LocalResponse::json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Sign out with GET or POST.",
            )
            .with_header(http::header::ALLOW, "GET, HEAD, POST"),
        }
    }

    /// Ends the session: deletes it, clears the cookie and sends the browser
    /// to the provider's `end_session_endpoint` when there is one.
    async fn sign_out(&self, headers: &HeaderMap, api_client: bool) -> LocalResponse {
        let signed_out = match self.end_session(headers).await {
            Ok(signed_out) => signed_out,
            Err(page) => return page,
        };
        let response = match (signed_out, api_client) {
            (SignedOut::AtProvider(url), false) => LocalResponse::redirect(url.as_str()),
            (SignedOut::Locally, false) => signed_out_page(),
            (SignedOut::AtProvider(url), true) => signed_out_json(Some(&url)),
            (SignedOut::Locally, true) => signed_out_json(None),
        };
        response.with_cookie(self.clear_session_cookie())
    }

    /// Deletes the request's session, if it has one. A store failure
    /// becomes the page to show, and the session stays.
    async fn end_session(&self, headers: &HeaderMap) -> Result<SignedOut, LocalResponse> {
        let current = match self.authenticate(headers).await {
            Ok(current) => current,
            Err(error) => {
                tracing::error!(error = %error, "cannot read session at sign-out");
                return Err(super::login::store_unavailable_page());
            }
        };
        let Some(current) = current else {
            return Ok(SignedOut::Locally);
        };
        if let Err(error) = self.sessions.delete(&current.id).await {
            tracing::error!(error = %error, "cannot delete session at sign-out");
            return Err(super::login::store_unavailable_page());
        }
        tracing::info!(user = %current.session.identity.subject, "signed out");
        Ok(
            match self
                .provider
                .end_session_url(&current.session.id_token)
                .await
            {
                Some(url) => SignedOut::AtProvider(url),
                None => SignedOut::Locally,
            },
        )
    }
}

/// The page that asks a browser arriving from elsewhere to confirm. Its
/// form's POST must carry this origin in `Origin`, which browsers replace
/// with `null` under the default `no-referrer` policy of local responses.
/// Without it the POST would rely on `Sec-Fetch-Site` alone, which older
/// browsers (Safari before 16.4) do not send. `same-origin` still keeps the
/// page's URL from other sites.
fn confirm_page() -> LocalResponse {
    LocalResponse::form_page(
        StatusCode::OK,
        "Sign out?",
        "Confirm that you want to sign out.",
        SIGN_OUT_PATH,
        "Sign out",
    )
    .with_header(http::header::REFERRER_POLICY, "same-origin")
}

fn forbidden(api_client: bool) -> LocalResponse {
    let message = "Sign-out requests from other sites are rejected. Sign out from the dashboard.";
    if api_client {
        LocalResponse::json_error(StatusCode::FORBIDDEN, "cross_origin_sign_out", message)
    } else {
        LocalResponse::page(StatusCode::FORBIDDEN, "Sign-out rejected", message, None)
    }
}

fn signed_out_page() -> LocalResponse {
    LocalResponse::page(
        StatusCode::OK,
        "Signed out",
        "You have signed out.",
        Some((START_PATH, "Sign in again")),
    )
}

/// `{"signed_out": true, "end_session_url": ...}`: an API client that wants
/// the provider's sign-out too sends the browser to `end_session_url`.
fn signed_out_json(end_session_url: Option<&Url>) -> LocalResponse {
    LocalResponse::json(
        StatusCode::OK,
        &serde_json::json!({
            "signed_out": true,
            "end_session_url": end_session_url.map(Url::as_str),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://dash.example.com";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().expect("valid header value"));
        }
        headers
    }

    /// A case name, the method, the request headers and the expected decision.
    type Case = (
        &'static str,
        Method,
        &'static [(&'static str, &'static str)],
        SignOutDecision,
    );

    #[test]
    fn sign_out_decisions() {
        use SignOutDecision::{Confirm, Forbidden, MethodNotAllowed, SignOut};
        let cases: [Case; 16] = [
            (
                "GET same-origin",
                Method::GET,
                &[("sec-fetch-site", "same-origin")],
                SignOut,
            ),
            (
                "GET typed by the user",
                Method::GET,
                &[("sec-fetch-site", "none")],
                SignOut,
            ),
            (
                "GET same-origin upper case",
                Method::GET,
                &[("sec-fetch-site", "Same-Origin")],
                SignOut,
            ),
            (
                "GET cross-site",
                Method::GET,
                &[("sec-fetch-site", "cross-site")],
                Confirm,
            ),
            (
                "GET same-site",
                Method::GET,
                &[("sec-fetch-site", "same-site")],
                Confirm,
            ),
            ("GET without Sec-Fetch-Site", Method::GET, &[], Confirm),
            (
                "GET with repeated Sec-Fetch-Site",
                Method::GET,
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("sec-fetch-site", "cross-site"),
                ],
                Confirm,
            ),
            (
                "GET with Origin only",
                Method::GET,
                &[("origin", ORIGIN)],
                Confirm,
            ),
            (
                "HEAD same-origin",
                Method::HEAD,
                &[("sec-fetch-site", "same-origin")],
                Confirm,
            ),
            (
                "POST from this origin",
                Method::POST,
                &[("origin", ORIGIN)],
                SignOut,
            ),
            (
                "POST same-origin without Origin",
                Method::POST,
                &[("sec-fetch-site", "same-origin")],
                SignOut,
            ),
            (
                "POST from another origin",
                Method::POST,
                &[
                    ("origin", "https://evil.example"),
                    ("sec-fetch-site", "cross-site"),
                ],
                Forbidden,
            ),
            (
                "POST from an opaque origin",
                Method::POST,
                &[("origin", "null")],
                Forbidden,
            ),
            (
                "POST from a subdomain",
                Method::POST,
                &[
                    ("origin", "https://a.dash.example.com"),
                    ("sec-fetch-site", "same-site"),
                ],
                Forbidden,
            ),
            ("POST without Origin", Method::POST, &[], Forbidden),
            (
                "DELETE",
                Method::DELETE,
                &[("origin", ORIGIN)],
                MethodNotAllowed,
            ),
        ];
        for (name, method, pairs, expected) in cases {
            assert_eq!(
                decide_sign_out(&method, &headers(pairs), ORIGIN),
                expected,
                "case {name}"
            );
        }
    }

    #[test]
    fn confirm_page_posts_to_sign_out() {
        let page = confirm_page();
        let body = std::str::from_utf8(&page.body).expect("utf-8");
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            body.contains("<form method=\"post\" action=\"/oauth2/sign_out\">"),
            "form missing: {body}"
        );
        assert!(body.contains("<button type=\"submit\">Sign out</button>"));
    }

    #[test]
    fn confirm_page_lets_form_send_origin() {
        let header = confirm_page().to_header().expect("valid header");
        let policies: Vec<_> = header
            .headers
            .get_all(http::header::REFERRER_POLICY)
            .iter()
            .collect();
        assert_eq!(
            policies,
            ["same-origin"],
            "a no-referrer policy makes the form's POST send Origin: null"
        );
    }
}
