//! A scripted browser: one cookie jar, no automatic redirects, and a login
//! that walks the provider's HTML forms step by step.

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, LOCATION};
use reqwest::{Response, StatusCode, Url};

use super::portcullis::SESSION_COOKIE;
use super::ports::{IDP_HOST, PROXY_HOST};

/// The `Accept` header of a top-level navigation in a browser.
pub const NAVIGATION_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Time allowed for one request, so a hung server fails the test instead of
/// stalling the suite.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Most provider responses one login handles. A login through both forms
/// handles 7: four redirects, two forms and the redirect to the callback.
const MAX_PROVIDER_STEPS: usize = 16;

/// Password typed into the provider's login form, which accepts any.
const PASSWORD: &str = "x";

/// A browser with its own cookie jar, talking to one proxy and one provider.
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    proxy: Url,
    authorization_endpoint: Url,
}

impl Browser {
    /// Creates a browser with an empty cookie jar.
    pub fn new(proxy: &Url, authorization_endpoint: &Url) -> Self {
        Browser::trusting(proxy, authorization_endpoint, None)
    }

    /// Like [`Browser::new`], trusting `ca` besides the built-in roots, for
    /// a provider that serves HTTPS with a test certificate.
    pub fn trusting(
        proxy: &Url,
        authorization_endpoint: &Url,
        ca: Option<&reqwest::Certificate>,
    ) -> Self {
        let jar = Arc::new(Jar::default());
        let mut builder = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT);
        if let Some(ca) = ca {
            builder = builder.add_root_certificate(ca.clone());
        }
        let client = builder.build().expect("HTTP client builds");
        Browser {
            client,
            jar,
            proxy: proxy.clone(),
            authorization_endpoint: authorization_endpoint.clone(),
        }
    }

    /// Returns the HTTP client, which sends and stores this browser's cookies.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Returns the URL of `path` (with query) on the proxy.
    pub fn proxy_url(&self, path: &str) -> Url {
        self.proxy.join(path).expect("valid proxy path")
    }

    /// Returns the value of the session cookie that the jar sends to the proxy.
    pub fn session_cookie(&self) -> Option<String> {
        self.cookie(SESSION_COOKIE, &self.proxy)
    }

    /// Returns the value of cookie `name` that the jar sends to `url`.
    pub fn cookie(&self, name: &str, url: &Url) -> Option<String> {
        let header = self.jar.cookies(url)?;
        let line = header.to_str().expect("cookie header is ASCII").to_owned();
        line.split("; ")
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    /// Adds a cookie to the jar as if `url` had set it.
    pub fn add_cookie(&self, set_cookie: &str, url: &Url) {
        self.jar.add_cookie_str(set_cookie, url);
    }

    /// Navigates to `url` like a browser following a link: `GET` with an HTML
    /// `Accept` header, redirects not followed. Panics instead of sending when
    /// `url` is not on a test address, so a wrong redirect never leaves the
    /// machine.
    pub async fn navigate(&self, url: &Url) -> Response {
        assert_loopback(url);
        self.client
            .get(url.clone())
            .header(ACCEPT, NAVIGATION_ACCEPT)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
    }

    /// Sends a fetch-style `GET` with `Accept: application/json`.
    pub async fn fetch_json(&self, url: &Url) -> Response {
        self.client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
    }

    /// Signs in as `user` through the proxy `path` and returns the response
    /// of the page the login ends on.
    pub async fn login(&self, user: &str, path: &str) -> Response {
        let authorization = self.start_login(path).await;
        let callback = self.authorize_at_idp(&authorization, user).await;
        self.finish_login(&callback).await
    }

    /// Requests `path` without a session and returns the provider's
    /// authorization URL that the proxy redirects to.
    pub async fn start_login(&self, path: &str) -> Url {
        let url = self.proxy_url(path);
        let response = self.navigate(&url).await;
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "expected GET {url} without a session to redirect to the provider"
        );
        let location = redirect_target(&url, &response);
        assert!(
            location
                .as_str()
                .starts_with(self.authorization_endpoint.as_str()),
            "expected GET {url} to redirect to {}, got {location}",
            self.authorization_endpoint
        );
        location
    }

    /// Follows the provider's redirects from `authorization` and submits its
    /// login form (as `user`) and consent form when they appear. Returns the
    /// proxy callback URL that the provider finally redirects to.
    pub async fn authorize_at_idp(&self, authorization: &Url, user: &str) -> Url {
        let mut response = self.navigate(authorization).await;
        let mut current = authorization.clone();
        for _ in 0..MAX_PROVIDER_STEPS {
            let status = response.status();
            if status.is_redirection() {
                let next = redirect_target(&current, &response);
                if self.is_callback(&next) {
                    return next;
                }
                response = self.navigate(&next).await;
                current = next;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            assert_eq!(
                status,
                StatusCode::OK,
                "expected a form from the provider at {current}, got body:\n{body}"
            );
            let action = form_action(&current, &body);
            let fields: &[(&str, &str)] = if body.contains("name=\"login\"") {
                &[("prompt", "login"), ("login", user), ("password", PASSWORD)]
            } else if body.contains("value=\"consent\"") {
                &[("prompt", "consent")]
            } else {
                panic!("expected a login or consent form at {current}, got:\n{body}");
            };
            assert_loopback(&action);
            response = self
                .client
                .post(action.clone())
                .header(ACCEPT, NAVIGATION_ACCEPT)
                .form(fields)
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {action} failed: {e}"));
            current = action;
        }
        panic!("the provider did not redirect to the callback within {MAX_PROVIDER_STEPS} steps");
    }

    /// Opens the callback URL, expects a redirect back into the dashboard and
    /// follows it. Returns the response of the page the login ends on.
    pub async fn finish_login(&self, callback: &Url) -> Response {
        let response = self.navigate(callback).await;
        let status = response.status();
        let location = response.headers().get(LOCATION).cloned();
        if status != StatusCode::FOUND {
            let body = response.text().await.unwrap_or_default();
            panic!("expected the callback {callback} to redirect (302), got {status} with body:\n{body}");
        }
        let landing = resolve_location(callback, location.as_ref());
        assert_eq!(
            landing.origin(),
            self.proxy.origin(),
            "expected the callback to redirect within the proxy, got {landing}"
        );
        self.navigate(&landing).await
    }

    fn is_callback(&self, url: &Url) -> bool {
        url.origin() == self.proxy.origin() && url.path() == "/oauth2/callback"
    }
}

fn assert_loopback(url: &Url) {
    let host = url.host_str().unwrap_or_default();
    let test_hosts = [PROXY_HOST.to_string(), IDP_HOST.to_string()];
    assert!(
        test_hosts.iter().any(|test_host| test_host == host),
        "expected a URL on {test_hosts:?}, got {url}"
    );
}

/// Resolves the `Location` of a redirect `response` to a request for `base`.
pub fn redirect_target(base: &Url, response: &Response) -> Url {
    resolve_location(base, response.headers().get(LOCATION))
}

fn resolve_location(base: &Url, location: Option<&HeaderValue>) -> Url {
    let location = location
        .unwrap_or_else(|| panic!("expected a Location header on the response to {base}"))
        .to_str()
        .expect("Location is ASCII");
    base.join(location)
        .unwrap_or_else(|e| panic!("Location {location:?} is not a URL reference: {e}"))
}

/// Reads the `action` of the first form in `html`, resolved against `page`.
fn form_action(page: &Url, html: &str) -> Url {
    let form = html
        .find("<form")
        .map(|start| &html[start..])
        .unwrap_or_else(|| panic!("expected a form at {page}, got:\n{html}"));
    let action = form
        .split_once("action=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(action, _)| action.replace("&amp;", "&"))
        .unwrap_or_else(|| panic!("the form at {page} has no action:\n{form}"));
    page.join(&action)
        .unwrap_or_else(|e| panic!("form action {action:?} is not a URL reference: {e}"))
}

/// Returns the `Set-Cookie` headers of `headers` that set cookie `name`.
pub fn set_cookies_named<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}=");
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter(|value| value.starts_with(&prefix))
        .collect()
}
