//! Authentication: the OpenID provider client, the login flow (state, nonce,
//! PKCE S256, return-to), sign-out, and the session lookup that gates every
//! proxied request.

pub mod backchannel;
pub mod keys;
pub mod login;
pub mod policy;
pub mod provider;
pub mod provisioning;
pub mod redirect;
pub mod refresh;
pub mod sign_out;

use std::sync::Arc;

use http::HeaderMap;
use url::Url;

use crate::session::{CookieCodec, DecodedCookie, Session, SessionId, Sessions, StoreError};
use crate::web::cookies::{self, CookieAttributes};

pub use provider::{Provider, ProviderError, ProviderSettings};

/// Names and flags of the cookies portcullis sets.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// The session cookie.
    pub session_name: String,
    /// The login binding cookie, which ties a login flow to the browser that
    /// started it (RFC 6749 section 10.12).
    pub binding_name: String,
    /// Whether cookies carry `Secure`.
    pub secure: bool,
    /// `Max-Age` of the session cookie, in seconds.
    pub session_max_age: u64,
}

/// Path of the binding cookie. It is `/` rather than `/oauth2/` because a
/// login also starts from any dashboard page, and that request must see the
/// existing value so that logins in several tabs share it.
pub const BINDING_COOKIE_PATH: &str = "/";

/// A request's valid session.
#[derive(Debug)]
pub struct Authenticated {
    /// The session id from the cookie.
    pub id: SessionId,
    /// The session record, shared with the session cache.
    pub session: Arc<Session>,
    /// A fresh `Set-Cookie` when the cookie was signed by an older key.
    pub reissued_cookie: Option<String>,
}

/// Login, sign-out and session lookup.
pub struct Auth {
    provider: Arc<Provider>,
    sessions: Sessions,
    /// The cookie codec in use, which SIGHUP can replace.
    codec: std::sync::RwLock<Arc<CookieCodec>>,
    cookies: CookieSettings,
    public_url: Url,
    /// Access tokens expiring within this margin are refreshed first.
    refresh_margin: std::time::Duration,
    /// The `[access]` policy and the directory it consults at login.
    access: provisioning::AccessControl,
    /// The per-client limit on login starts, each of which stores a flow.
    login_limit: login::rate_limit::LoginRateLimit,
}

/// Default of [`Auth::with_refresh_margin`].
pub const DEFAULT_REFRESH_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

impl Auth {
    /// Bundles what the login flow and the session lookup need.
    pub fn new(
        provider: Arc<Provider>,
        sessions: Sessions,
        codec: CookieCodec,
        cookies: CookieSettings,
        public_url: Url,
    ) -> Self {
        Auth {
            provider,
            sessions,
            codec: std::sync::RwLock::new(Arc::new(codec)),
            cookies,
            public_url,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            access: provisioning::AccessControl::default(),
            login_limit: login::rate_limit::LoginRateLimit::disabled(),
        }
    }

    /// Sets the per-client limit on login starts; there is none by default.
    pub fn with_login_limit(mut self, limit: login::rate_limit::LoginRateLimit) -> Self {
        self.login_limit = limit;
        self
    }

    /// Sets the access policy and the directory it consults at login.
    pub fn with_access(mut self, access: provisioning::AccessControl) -> Self {
        self.access = access;
        self
    }

    /// Returns the cookie codec in use.
    fn codec(&self) -> Arc<CookieCodec> {
        self.codec
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts new cookie keys in use: `keys[0]` signs, and every key verifies.
    /// An empty list is ignored, because it would end every session.
    pub fn replace_cookie_keys(&self, keys: Vec<Vec<u8>>) {
        if keys.is_empty() {
            tracing::error!("the reloaded cookie key list is empty; the old keys stay in use");
            return;
        }
        let count = keys.len();
        *self
            .codec
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(CookieCodec::new(keys));
        tracing::info!(keys = count, "cookie keys replaced");
    }

    /// Sets how long before its expiry an access token is refreshed.
    pub fn with_refresh_margin(mut self, margin: std::time::Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The provider client.
    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// The session records.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The cookie names and flags.
    pub fn cookie_settings(&self) -> &CookieSettings {
        &self.cookies
    }

    /// Finds the request's session. Each value of the session cookie is tried
    /// in turn, because a browser may hold stale duplicates. `Ok(None)` means
    /// no valid session; `Err` means the store could not tell, and the session
    /// must not be treated as gone.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Authenticated>, StoreError> {
        for value in cookies::cookie_values(headers, &self.cookies.session_name) {
            let Some(decoded) = self.codec().decode(value) else {
                continue;
            };
            let id = decoded.session_id().clone();
            let Some(session) = self.sessions.load(&id).await? else {
                continue;
            };
            let Some(session) = self.refresh_if_due(&id, session).await? else {
                continue;
            };
            let reissued_cookie = match decoded {
                DecodedCookie::Current(_) => None,
                DecodedCookie::Rotated(_) => Some(self.session_cookie(&id)),
            };
            return Ok(Some(Authenticated {
                id,
                session,
                reissued_cookie,
            }));
        }
        Ok(None)
    }

    /// The `Set-Cookie` value carrying session `id`.
    fn session_cookie(&self, id: &SessionId) -> String {
        cookies::set_cookie(
            &self.cookies.session_name,
            &self.codec().encode(id),
            &CookieAttributes {
                path: "/",
                max_age: Some(self.cookies.session_max_age),
                secure: self.cookies.secure,
            },
        )
    }

    /// The `Set-Cookie` value deleting the session cookie.
    fn clear_session_cookie(&self) -> String {
        cookies::clear_cookie(&self.cookies.session_name, "/", self.cookies.secure)
    }
}
