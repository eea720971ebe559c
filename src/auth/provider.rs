//! The OpenID provider: discovery, the authorization request, the code
//! exchange, the refresh-token grant and ID token verification, on the
//! `openidconnect` crate.
//!
//! Discovery is lazy and retried: portcullis starts, and serves existing
//! sessions, while the provider is unreachable. The first login after the
//! provider comes back, or the background refresh, loads the metadata.
//!
//! The provider's signing keys come with the metadata. A token whose key is
//! not in the cached JWKS (the provider rotated its keys) triggers one reload
//! of discovery and JWKS, and verification is tried once more. Such reloads
//! start at most once per `jwks_refetch_cooldown`, so tokens with made-up key
//! ids cannot make portcullis hammer the provider.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IssuerUrl, Nonce, NonceVerifier, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadataWithLogout, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::keys::{CompactJws, JwsError, RefetchGate};
use crate::session::{unix_now, Identity};

/// Errors talking to the provider or verifying what it returned.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Discovery or JWKS could not be loaded.
    #[error("OpenID provider discovery failed: {0}")]
    Discovery(String),
    /// A call to the provider timed out.
    #[error("OpenID provider call timed out after {0:?}")]
    Timeout(Duration),
    /// The token endpoint rejected the code or could not be reached.
    #[error("token request failed: {0}")]
    TokenRequest(String),
    /// The provider rejected the authorization code, for example because it
    /// expired or was already redeemed (`invalid_grant`).
    #[error("the provider rejected the authorization code: {0}")]
    CodeRejected(String),
    /// The token response carried no ID token.
    #[error("the token response contains no ID token")]
    MissingIdToken,
    /// The ID token failed verification.
    #[error("ID token rejected: {0}")]
    InvalidIdToken(String),
    /// `email_verified` is not `true` and verified emails are required.
    #[error("the provider has not verified this account's email address")]
    EmailNotVerified,
    /// The provider rejected the refresh token (`invalid_grant`): it expired,
    /// was revoked, or was already redeemed.
    #[error("the provider rejected the refresh token: {0}")]
    RefreshRejected(String),
    /// A signed token other than an ID token (a logout token) failed
    /// signature verification.
    #[error("token signature rejected: {0}")]
    InvalidSignature(#[from] JwsError),
}

/// The `groups` claim, which providers send as a list or, rarely, as one
/// string.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupsClaim {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groups: Option<GroupsValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum GroupsValue {
    List(Vec<String>),
    One(String),
}

impl AdditionalClaims for GroupsClaim {}

impl GroupsClaim {
    fn into_groups(self) -> Vec<String> {
        match self.groups {
            Some(GroupsValue::List(groups)) => groups,
            Some(GroupsValue::One(group)) => vec![group],
            None => Vec::new(),
        }
    }
}

type IdTokenFields = openidconnect::IdTokenFields<
    GroupsClaim,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<IdTokenFields, CoreTokenType>;
type IdToken = openidconnect::IdToken<
    GroupsClaim,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type IdTokenClaims = openidconnect::IdTokenClaims<GroupsClaim, CoreGenderClaim>;
type OidcClient = openidconnect::Client<
    GroupsClaim,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Static settings of the provider client.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The issuer, exactly as it appears in ID tokens.
    pub issuer: String,
    /// This client's id.
    pub client_id: String,
    /// This client's secret at start; [`Provider::replace_client_secret`]
    /// changes the one in use.
    pub client_secret: String,
    /// `<public_url>/oauth2/callback`.
    pub redirect_uri: Url,
    /// Landing page after sign-out at the provider.
    pub post_logout_redirect_uri: Url,
    /// Scopes requested at login.
    pub scopes: Vec<String>,
    /// Reject accounts whose `email_verified` is not `true`.
    pub require_email_verified: bool,
    /// Tolerated clock difference for `exp` and `iat`.
    pub clock_leeway: Duration,
    /// Timeout of each call to the provider.
    pub http_timeout: Duration,
    /// Minimum time between two reloads of the keys caused by a token whose
    /// key is not in the cached JWKS.
    pub jwks_refetch_cooldown: Duration,
    /// CA certificates trusted besides the built-in webpki roots and the
    /// system store (`oidc.ca_file`).
    pub ca_certificates: Vec<reqwest::Certificate>,
}

/// The metadata and client built from discovery.
struct Discovered {
    /// The discovery document, kept so a new client secret can be put in
    /// use without fetching it again.
    metadata: ProviderMetadataWithLogout,
    client: OidcClient,
    end_session_endpoint: Option<EndSessionUrl>,
    /// The provider's signing keys, also held inside `client`.
    jwks: CoreJsonWebKeySet,
    loaded_at: Instant,
}

/// A started authorization request: where to send the browser and the
/// secrets to keep until the callback.
pub struct AuthorizationRequest {
    /// The provider's authorization URL with all parameters.
    pub url: Url,
    /// The `state` parameter.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
}

/// The verified result of a completed login.
pub struct LoginResult {
    /// The identity of the signed-in user.
    pub identity: Identity,
    /// The raw ID token.
    pub id_token: String,
    /// The access token.
    pub access_token: String,
    /// When the access token expires (from `expires_in`), seconds since the
    /// Unix epoch.
    pub access_token_expires_at: Option<u64>,
    /// The refresh token, if issued.
    pub refresh_token: Option<String>,
    /// The `sid` claim, if present.
    pub provider_session_id: Option<String>,
}

/// The result of a refresh-token grant.
pub struct RefreshedTokens {
    /// The new access token.
    pub access_token: String,
    /// When the new access token expires, seconds since the Unix epoch.
    pub access_token_expires_at: Option<u64>,
    /// A new refresh token when the provider rotates them; `None` means the
    /// old one stays valid.
    pub refresh_token: Option<String>,
    /// A new ID token when the provider sent one, verified and naming the
    /// same subject.
    pub id_token: Option<String>,
}

/// Whether an ID token must carry the login's `nonce`. An ID token from a
/// refresh-token grant has none to check (OpenID Connect Core 1.0, 12.2).
#[derive(Clone, Copy)]
enum NonceCheck<'a> {
    Expected(&'a Nonce),
    NotChecked,
}

impl NonceVerifier for NonceCheck<'_> {
    fn verify(self, nonce: Option<&Nonce>) -> Result<(), String> {
        match self {
            NonceCheck::Expected(expected) => expected.verify(nonce),
            NonceCheck::NotChecked => Ok(()),
        }
    }
}

/// The OpenID provider client with its discovered metadata.
pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// Held while discovery loads, so concurrent callers share one load.
    discovery_lock: tokio::sync::Mutex<()>,
    refetch_gate: RefetchGate,
    /// The client secret in use, which SIGHUP can replace.
    client_secret: RwLock<String>,
    /// On-demand key reloads so far, for tests and logs.
    key_refetches: AtomicU64,
    /// When the provider was last probed, and whether it responded.
    last_probe: std::sync::Mutex<Option<(Instant, bool)>>,
    /// Held while a probe runs, so concurrent logins share one.
    probe_lock: tokio::sync::Mutex<()>,
}

/// How long the outcome of a reachability probe is reused.
const PROBE_REUSE: Duration = Duration::from_secs(10);

impl Provider {
    /// Creates the client; nothing is fetched until first use.
    pub fn new(settings: ProviderSettings) -> Result<Self, ProviderError> {
        // Redirects are not followed, so a provider cannot point portcullis
        // at an internal address (openidconnect's advice against SSRF).
        // The provider's certificate may chain to a webpki root, to a root of
        // the system store or to a certificate of `ca_certificates`.
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.http_timeout);
        for certificate in &settings.ca_certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
        let http = builder.build().map_err(|e| {
            ProviderError::Discovery(format!("cannot build HTTP client: {}", error_chain(&e)))
        })?;
        Ok(Provider {
            refetch_gate: RefetchGate::new(settings.jwks_refetch_cooldown),
            client_secret: RwLock::new(settings.client_secret.clone()),
            settings,
            http,
            discovered: RwLock::new(None),
            discovery_lock: tokio::sync::Mutex::new(()),
            key_refetches: AtomicU64::new(0),
            last_probe: std::sync::Mutex::new(None),
            probe_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Tells whether the provider responds, so a login is not sent to a
    /// provider that is down. It fetches the discovery document, which
    /// portcullis must reach anyway, at most once per [`PROBE_REUSE`]: a
    /// response below 500 within `oidc.http_timeout` counts as up.
    pub async fn is_reachable(&self) -> bool {
        if let Some(reachable) = self.recent_probe() {
            return reachable;
        }
        let _guard = self.probe_lock.lock().await;
        if let Some(reachable) = self.recent_probe() {
            return reachable;
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let reachable = match self.http.get(&url).send().await {
            Ok(response) if response.status().is_server_error() => {
                tracing::warn!(status = %response.status(), "OpenID provider probe failed");
                false
            }
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "OpenID provider probe failed");
                false
            }
        };
        *self
            .last_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), reachable));
        reachable
    }

    fn recent_probe(&self) -> Option<bool> {
        let last = *self
            .last_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.filter(|(at, _)| at.elapsed() < PROBE_REUSE)
            .map(|(_, reachable)| reachable)
    }

    /// Returns the static settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// Tells whether discovery has succeeded at least once.
    pub fn is_discovered(&self) -> bool {
        self.current().is_some()
    }

    /// Time since the metadata was last loaded, if it was.
    pub fn metadata_age(&self) -> Option<Duration> {
        self.current().map(|d| d.loaded_at.elapsed())
    }

    fn client_secret(&self) -> String {
        self.client_secret
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `secret` in use as the client secret for every later token
    /// request. The client is rebuilt from the discovery document already
    /// loaded, so this cannot fail. Before the first discovery only the
    /// secret is stored, and discovery builds the client with it.
    pub fn replace_client_secret(&self, secret: String) {
        // The discovery slot is locked first, here and in
        // `fetch_discovered`, so a discovery running at the same time
        // cannot store a client built with the old secret.
        let mut discovered = self
            .discovered
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.client_secret() == secret {
            return;
        }
        *self
            .client_secret
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = secret;
        if let Some(current) = discovered.as_ref() {
            let client = self.build_client(current.metadata.clone());
            *discovered = Some(Arc::new(Discovered {
                metadata: current.metadata.clone(),
                client,
                end_session_endpoint: current.end_session_endpoint.clone(),
                jwks: current.jwks.clone(),
                loaded_at: current.loaded_at,
            }));
        }
        tracing::info!("client secret replaced");
    }

    /// Builds the OpenID client from `metadata` with the client secret in use.
    fn build_client(&self, metadata: ProviderMetadataWithLogout) -> OidcClient {
        OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.client_secret())),
        )
        .set_redirect_uri(RedirectUrl::from_url(self.settings.redirect_uri.clone()))
    }

    /// Number of key reloads caused by unknown keys since start.
    pub fn key_refetches(&self) -> u64 {
        self.key_refetches.load(Ordering::Relaxed)
    }

    fn current(&self) -> Option<Arc<Discovered>> {
        self.discovered
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Returns the discovered metadata, loading it first if needed. Concurrent
    /// callers share one discovery request.
    async fn discovered(&self) -> Result<Arc<Discovered>, ProviderError> {
        if let Some(found) = self.current() {
            return Ok(found);
        }
        let _guard = self.discovery_lock.lock().await;
        if let Some(found) = self.current() {
            return Ok(found);
        }
        self.load().await
    }

    /// Loads discovery metadata and JWKS again and replaces the cached copy.
    pub async fn reload(&self) -> Result<(), ProviderError> {
        self.load().await.map(drop)
    }

    /// Fetches discovery metadata and JWKS, counting the outcome.
    async fn load(&self) -> Result<Arc<Discovered>, ProviderError> {
        let loaded = self.fetch_discovered().await;
        let outcome = if loaded.is_ok() { "success" } else { "error" };
        crate::metrics::metrics()
            .provider_fetches
            .with_label_values(&[outcome])
            .inc();
        loaded
    }

    async fn fetch_discovered(&self) -> Result<Arc<Discovered>, ProviderError> {
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| ProviderError::Discovery(format!("invalid issuer: {e}")))?;
        let timeout = self.settings.http_timeout;
        let metadata = tokio::time::timeout(
            timeout * 2,
            ProviderMetadataWithLogout::discover_async(issuer, &self.http),
        )
        .await
        .map_err(|_| ProviderError::Timeout(timeout * 2))?
        .map_err(|e| ProviderError::Discovery(error_chain(&e)))?;
        let end_session_endpoint = metadata.additional_metadata().end_session_endpoint.clone();
        let jwks = metadata.jwks().clone();
        let mut discovered = self
            .discovered
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = Arc::new(Discovered {
            client: self.build_client(metadata.clone()),
            metadata,
            end_session_endpoint,
            jwks,
            loaded_at: Instant::now(),
        });
        *discovered = Some(found.clone());
        Ok(found)
    }

    /// Builds an authorization request with PKCE S256, `state` and `nonce`.
    pub async fn authorization_request(&self) -> Result<AuthorizationRequest, ProviderError> {
        let discovered = self.discovered().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = discovered.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(AuthorizationRequest {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges an authorization code and verifies the ID token against the
    /// provider's keys, the issuer, the audience, the time claims and `nonce`.
    pub async fn complete_login(
        &self,
        code: String,
        pkce_verifier: String,
        nonce: &str,
    ) -> Result<LoginResult, ProviderError> {
        let discovered = self.discovered().await?;
        let request = discovered
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| ProviderError::TokenRequest(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier));
        let response = request
            .request_async(&self.http)
            .await
            .map_err(|error| match &error {
                RequestTokenError::ServerResponse(response) => {
                    ProviderError::CodeRejected(response.error().to_string())
                }
                _ => ProviderError::TokenRequest(error_chain(&error)),
            })?;
        let id_token = response.id_token().ok_or(ProviderError::MissingIdToken)?;
        let nonce = Nonce::new(nonce.to_owned());
        let claims = self
            .verify_id_token(id_token, NonceCheck::Expected(&nonce))
            .await?;
        let identity = self.identity_from_claims(&claims)?;
        Ok(LoginResult {
            identity,
            id_token: id_token.to_string(),
            access_token: response.access_token().secret().clone(),
            access_token_expires_at: expires_at(&response),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            provider_session_id: session_id_claim(&id_token.to_string()),
        })
    }

    /// Redeems `refresh_token` at the token endpoint. A new ID token in the
    /// response is verified and must name the same `subject`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<RefreshedTokens, ProviderError> {
        let discovered = self.discovered().await?;
        let refresh_token = RefreshToken::new(refresh_token.to_owned());
        let response = discovered
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(|e| ProviderError::TokenRequest(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(refresh_error)?;
        let id_token = match response.id_token() {
            Some(token) => Some(self.verify_refreshed_id_token(token, subject).await?),
            None => None,
        };
        Ok(RefreshedTokens {
            access_token: response.access_token().secret().clone(),
            access_token_expires_at: expires_at(&response),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            id_token,
        })
    }

    async fn verify_refreshed_id_token(
        &self,
        id_token: &IdToken,
        subject: &str,
    ) -> Result<String, ProviderError> {
        let claims = self
            .verify_id_token(id_token, NonceCheck::NotChecked)
            .await?;
        if claims.subject().as_str() != subject {
            return Err(ProviderError::InvalidIdToken(
                "the refreshed ID token names another subject".to_owned(),
            ));
        }
        Ok(id_token.to_string())
    }

    /// Verifies an ID token. When its key is not in the cached JWKS, the keys
    /// are reloaded (at most once per cooldown) and verification is tried
    /// once more.
    async fn verify_id_token(
        &self,
        id_token: &IdToken,
        nonce: NonceCheck<'_>,
    ) -> Result<IdTokenClaims, ProviderError> {
        let discovered = self.discovered().await?;
        match self.check_id_token(&discovered, id_token, nonce) {
            Err(error) if is_unknown_key(&error) => {
                self.refetch_keys().await;
                let discovered = self.discovered().await?;
                self.check_id_token(&discovered, id_token, nonce)
            }
            other => other,
        }
        .map_err(|e| ProviderError::InvalidIdToken(e.to_string()))
    }

    fn check_id_token(
        &self,
        discovered: &Discovered,
        id_token: &IdToken,
        nonce: NonceCheck<'_>,
    ) -> Result<IdTokenClaims, ClaimsVerificationError> {
        let leeway = chrono_leeway(self.settings.clock_leeway);
        let verifier = discovered
            .client
            .id_token_verifier()
            .set_time_fn(move || chrono::Utc::now() - leeway)
            .set_issue_time_verifier_fn(move |issued_at| {
                if issued_at > chrono::Utc::now() + leeway {
                    Err(format!("issued in the future ({issued_at})"))
                } else {
                    Ok(())
                }
            });
        id_token.claims(&verifier, nonce).cloned()
    }

    fn identity_from_claims(&self, claims: &IdTokenClaims) -> Result<Identity, ProviderError> {
        if self.settings.require_email_verified && claims.email_verified() != Some(true) {
            return Err(ProviderError::EmailNotVerified);
        }
        Ok(Identity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            groups: claims.additional_claims().clone().into_groups(),
        })
    }

    /// Verifies the signature of a compact JWS other than an ID token (a
    /// logout token) with the provider's keys, reloading them once per
    /// cooldown when the key is unknown. Returns the payload; its claims are
    /// not checked here.
    pub async fn verify_signed_token(&self, token: &str) -> Result<Vec<u8>, ProviderError> {
        let jws = CompactJws::parse(token)?;
        let discovered = self.discovered().await?;
        match jws.verify(&discovered.jwks) {
            Err(JwsError::NoMatchingKey | JwsError::InvalidSignature) => {
                self.refetch_keys().await;
                let discovered = self.discovered().await?;
                Ok(jws.verify(&discovered.jwks)?.to_vec())
            }
            other => Ok(other?.to_vec()),
        }
    }

    /// Reloads discovery and keys unless a reload started within the
    /// cooldown. Callers that arrive while a reload runs wait for it, so they
    /// retry with the new keys.
    async fn refetch_keys(&self) {
        let _guard = self.discovery_lock.lock().await;
        if !self.refetch_gate.try_start(Instant::now()) {
            tracing::debug!(
                "signing key not in the cached JWKS; reload skipped inside the cooldown"
            );
            return;
        }
        self.key_refetches.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "signing key not in the cached JWKS; reloading the provider's metadata and keys"
        );
        if let Err(error) = self.load().await {
            tracing::warn!(error = %error, "cannot reload the provider's keys");
        }
    }

    /// Builds the provider's `end_session_endpoint` URL with `id_token_hint`,
    /// `client_id` and `post_logout_redirect_uri`, when the provider has one.
    pub async fn end_session_url(&self, id_token: &str) -> Option<Url> {
        let discovered = self.discovered().await.ok()?;
        let endpoint = discovered.end_session_endpoint.as_ref()?;
        let mut url = endpoint.url().clone();
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token)
            .append_pair("client_id", &self.settings.client_id)
            .append_pair(
                "post_logout_redirect_uri",
                self.settings.post_logout_redirect_uri.as_str(),
            );
        Some(url)
    }
}

/// Tells whether an ID token failed because no cached key verifies it: its
/// `kid` is unknown, or a key under a reused `kid` was replaced.
fn is_unknown_key(error: &ClaimsVerificationError) -> bool {
    matches!(
        error,
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey | SignatureVerificationError::CryptoError(_)
        )
    )
}

/// Maps a failed refresh-token grant: the provider's `invalid_grant` means
/// the session cannot be refreshed again; anything else (timeouts,
/// connection errors, 5xx, other error codes) may pass.
fn refresh_error<RE>(
    error: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> ProviderError
where
    RE: std::error::Error + 'static,
{
    match &error {
        RequestTokenError::ServerResponse(response)
            if *response.error() == CoreErrorResponseType::InvalidGrant =>
        {
            ProviderError::RefreshRejected(response.error().to_string())
        }
        _ => ProviderError::TokenRequest(error_chain(&error)),
    }
}

/// The expiry of the response's access token, from `expires_in`.
fn expires_at(response: &TokenResponse) -> Option<u64> {
    response
        .expires_in()
        .map(|lifetime| unix_now().saturating_add(lifetime.as_secs()))
}

fn chrono_leeway(leeway: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(leeway).unwrap_or(chrono::TimeDelta::seconds(60))
}

/// Reads the `sid` claim from an ID token whose signature was already
/// verified. `openidconnect` has no accessor for it.
fn session_id_claim(jwt: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sid")?.as_str().map(str::to_owned)
}

/// Formats an error with its sources, because `openidconnect` and reqwest put
/// the useful part (the HTTP status, the provider's `error`, the TLS failure)
/// in the cause.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
