//! Assembles the Pingora server from the settings: the proxy listener, the
//! admin listener and the provider discovery task, then runs it until
//! SIGTERM (graceful) or SIGINT (immediate).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::auth::login::rate_limit::LoginRateLimit;
use crate::auth::policy::AccessPolicy;
use crate::auth::provisioning::{AccessControl, SessionRevocation};
use crate::auth::{Auth, CookieSettings, Provider, ProviderSettings};
use crate::config::{Config, SessionConfig, SessionStoreKind, Settings};
use crate::directory::{Directory, LazyDirectory};
use crate::lifecycle::{ExitWhenIdle, Lifecycle, ShutdownSignals};
use crate::proxy::connections::{warn_if_descriptor_limit_low, ConnectionLimit, HeadLimits};
use crate::proxy::forwarded::ForwardedHeaders;
use crate::proxy::upstream::UpstreamAddress;
use crate::proxy::{Portcullis, ProxySettings};
use crate::scim::handler::{ScimService, ScimSettings};
use crate::scim::revoke::RevocationRetries;
use crate::session::{CookieCodec, MemoryStore, RedisStore, SessionStore, Sessions};

/// A failed discovery is retried after this long.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// Idle connections to the dashboard kept for reuse, across all worker
/// threads. Pingora's default of 128 is below the concurrency of a busy
/// proxy. Past it, each request that finds no idle connection opens one,
/// and the pool closes it again after the response. Idle connections stay
/// until the dashboard closes them, because an idle timeout here would cost
/// a timer per request.
const UPSTREAM_KEEPALIVE_POOL_SIZE: usize = 1024;

/// Errors while building the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The session store could not be set up.
    #[error("session store: {0}")]
    Store(#[from] crate::session::StoreError),
    /// The provider client could not be set up.
    #[error("OpenID provider: {0}")]
    Provider(#[from] crate::auth::ProviderError),
    /// The redirect URI could not be built from `server.public_url`.
    #[error("server.public_url: {0}")]
    PublicUrl(#[from] url::ParseError),
    /// A listen address is taken or not available on this host.
    #[error("{key}: cannot listen on {address}: {source}")]
    Listen {
        /// The configuration key of the address.
        key: &'static str,
        /// The address.
        address: std::net::SocketAddr,
        /// The error of the failed bind.
        source: std::io::Error,
    },
}

/// Checks that both listen addresses can be bound. Pingora binds them later
/// in its service threads, where a failure panics the thread and leaves the
/// process running without a listener.
fn check_listen_addresses(settings: &Settings) -> Result<(), StartError> {
    let addresses = [
        ("server.listen", settings.listen),
        ("server.admin_listen", settings.admin_listen),
    ];
    for (key, address) in addresses {
        std::net::TcpListener::bind(address).map_err(|source| StartError::Listen {
            key,
            address,
            source,
        })?;
    }
    Ok(())
}

/// Builds every service and runs the server; returns only on start-up
/// failure, because Pingora exits the process when it stops.
pub fn run(settings: Settings) -> Result<std::convert::Infallible, StartError> {
    check_listen_addresses(&settings)?;
    let config = &settings.config;
    let store: Arc<dyn SessionStore> = match config.session.store {
        SessionStoreKind::Memory => Arc::new(MemoryStore::with_max_entries(
            config.session.memory_max_entries,
        )),
        SessionStoreKind::Redis => Arc::new(RedisStore::new(
            settings.redis_url.as_deref().unwrap_or_default(),
            config.session.redis_timeout,
        )?),
    };
    if settings.cookie_keys.is_empty() {
        tracing::warn!("session.cookie_keys is empty: a random key is used, so sessions end when this process restarts");
    }
    let provider = Arc::new(Provider::new(provider_settings(&settings)?)?);
    let directory: Arc<dyn Directory> = Arc::new(LazyDirectory::new(
        config.directory.backend,
        settings.directory_url.clone(),
    ));
    let sessions =
        Sessions::new(store.clone(), config.session.ttl).with_cache_ttl(config.session.cache_ttl);
    let auth = Arc::new(
        Auth::new(
            provider.clone(),
            sessions.clone(),
            CookieCodec::new(settings.cookie_keys.clone()),
            CookieSettings {
                session_name: config.session.cookie_name.clone(),
                binding_name: format!("{}_login", config.session.cookie_name),
                secure: config.session.cookie_secure,
                session_max_age: config.session.ttl.as_secs(),
            },
            config.server.public_url.clone(),
        )
        .with_refresh_margin(config.session.refresh_margin)
        .with_access(access_control(config, &directory))
        .with_login_limit(login_limit(&config.session)),
    );
    let secret_reload = background_service(
        "secret reload",
        SecretReloadTask {
            config: config.clone(),
            auth: auth.clone(),
            provider: provider.clone(),
        },
    );

    let server_conf = ServerConf {
        threads: config.server.threads,
        upstream_keepalive_pool_size: UPSTREAM_KEEPALIVE_POOL_SIZE,
        grace_period_seconds: Some(whole_seconds(config.server.grace_period)),
        graceful_shutdown_timeout_seconds: Some(whole_seconds(config.server.shutdown_timeout)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();

    let revocation_retries = config.scim.enabled.then(|| {
        let revoker =
            SessionRevocation::new(sessions.clone(), config.access.provisioned_match_claim);
        Arc::new(RevocationRetries::new(Arc::new(revoker)))
    });
    let scim = revocation_retries.as_ref().map(|retries| {
        Arc::new(
            scim_service(&settings, directory.clone()).with_session_revocations(retries.clone()),
        )
    });
    let lifecycle = Lifecycle::new();
    let portcullis = Portcullis::new(
        auth,
        scim,
        ProxySettings {
            upstream: UpstreamAddress::new(&settings.upstream_host, settings.upstream_port),
            connect_timeout: config.upstream.connect_timeout,
            read_timeout: config.upstream.read_timeout,
            keepalive_seconds: whole_seconds(config.server.keepalive_timeout),
            max_request_header_bytes: config.server.max_request_header_bytes,
            forwarded: ForwardedHeaders::new(
                settings.trusted_proxies.clone(),
                &config.server.public_url,
            ),
        },
        lifecycle.clone(),
    );
    let max_connections = config.server.max_connections;
    warn_if_descriptor_limit_low(max_connections, UPSTREAM_KEEPALIVE_POOL_SIZE);
    let mut proxy = Service::new(
        "portcullis proxy".to_owned(),
        ConnectionLimit::new(
            pingora::proxy::http_proxy(&server.configuration, portcullis),
            max_connections,
            HeadLimits::new(
                config.server.request_header_timeout,
                config.server.keepalive_timeout,
            ),
        ),
    );
    proxy.add_tcp(&settings.listen.to_string());

    let mut admin = Service::new(
        "portcullis admin".to_owned(),
        HttpServer::new_app(AdminApp::new(
            store,
            provider.clone(),
            config.scim.enabled.then_some(directory),
            lifecycle.clone(),
            settings.listen,
        )),
    );
    admin.add_tcp(&settings.admin_listen.to_string());
    admin.threads = Some(1);

    let discovery = background_service(
        "oidc discovery",
        DiscoveryTask {
            provider,
            refresh_interval: config.oidc.jwks_refresh_interval,
        },
    );

    let active_sessions = background_service(
        "active sessions",
        ActiveSessionsTask {
            sessions: sessions.clone(),
            interval: config.session.active_count_interval,
        },
    );
    let revocations = background_service("session revocations", RevocationTask { sessions });

    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(revocations);
    server.add_service(active_sessions);
    if let Some(retries) = revocation_retries {
        server.add_service(background_service(
            "revocation retries",
            RevocationRetryTask { retries },
        ));
    }
    server.add_service(discovery);
    server.add_service(secret_reload);
    server.add_service(background_service(
        "exit when idle",
        ExitWhenIdle::new(lifecycle.clone()),
    ));
    tracing::info!(
        listen = %settings.listen,
        admin_listen = %settings.admin_listen,
        upstream = %config.upstream.url,
        issuer = %config.oidc.issuer,
        session_store = ?config.session.store,
        "portcullis starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(ShutdownSignals::new(lifecycle, config.server.drain_delay)),
    });
    // `run` returns once every service has stopped.
    crate::logging::flush();
    std::process::exit(0)
}

/// Rounds up to whole seconds, Pingora's unit, so "500ms" is not read as 0.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Builds the per-client limit on login starts from `[session]`.
fn login_limit(session: &SessionConfig) -> LoginRateLimit {
    // Validation keeps both values at most MAX_LOGIN_STARTS, far below
    // u32::MAX.
    let to_u32 = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
    LoginRateLimit::new(
        to_u32(session.login_starts_per_minute),
        to_u32(session.login_starts_burst),
    )
}

/// Builds the access policy. The directory is handed over only when the
/// policy consults it at login.
fn access_control(config: &Config, directory: &Arc<dyn Directory>) -> AccessControl {
    let policy = AccessPolicy::from_config(&config.access);
    let directory = policy.needs_directory().then(|| directory.clone());
    AccessControl { policy, directory }
}

fn scim_service(settings: &Settings, directory: Arc<dyn Directory>) -> ScimService {
    let scim = &settings.config.scim;
    let group_patch_status = if scim.group_patch_status == 200 {
        http::StatusCode::OK
    } else {
        http::StatusCode::NO_CONTENT
    };
    ScimService::new(
        directory,
        ScimSettings {
            base_url: settings
                .scim_base_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            group_patch_status,
            max_body_bytes: scim.max_body_bytes,
        },
    )
}

fn provider_settings(settings: &Settings) -> Result<ProviderSettings, url::ParseError> {
    let config = &settings.config;
    let public_url = &config.server.public_url;
    let mut scopes = config.oidc.scopes.clone();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    if let Some(path) = &config.oidc.ca_file {
        tracing::info!(
            path = %path.display(),
            certificates = settings.oidc_ca_certificates.len(),
            "trusting the CA certificates of oidc.ca_file for calls to the provider"
        );
    }
    Ok(ProviderSettings {
        issuer: config.oidc.issuer.clone(),
        client_id: config.oidc.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        redirect_uri: public_url.join("/oauth2/callback")?,
        post_logout_redirect_uri: match &config.oidc.post_logout_redirect_uri {
            Some(url) => url.clone(),
            None => public_url.clone(),
        },
        scopes,
        require_email_verified: config.oidc.require_email_verified,
        clock_leeway: config.oidc.clock_leeway,
        http_timeout: config.oidc.http_timeout,
        jwks_refetch_cooldown: config.oidc.jwks_refetch_cooldown,
        ca_certificates: settings.oidc_ca_certificates.clone(),
    })
}

/// Loads provider metadata at start, retries until it succeeds, then
/// reloads it every `refresh_interval`, so rotated signing keys are picked up
/// without a restart.
struct DiscoveryTask {
    provider: Arc<Provider>,
    refresh_interval: Duration,
}

#[async_trait]
impl BackgroundService for DiscoveryTask {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let delay = match self.provider.reload().await {
                Ok(_) => {
                    tracing::info!("OpenID provider metadata loaded");
                    self.refresh_interval
                }
                Err(error) => {
                    let text = error.to_string();
                    let hint = if text.contains("UnknownIssuer") {
                        "the provider's certificate chains to no trusted root: name its CA bundle in oidc.ca_file"
                    } else {
                        ""
                    };
                    tracing::warn!(error = %text, hint, retry_in_s = DISCOVERY_RETRY.as_secs(), "OpenID provider discovery failed");
                    DISCOVERY_RETRY
                }
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Follows the session revocations that every replica publishes, so this
/// replica's session cache drops a revoked or signed-out session as soon as
/// the message arrives.
struct RevocationTask {
    sessions: Sessions,
}

#[async_trait]
impl BackgroundService for RevocationTask {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = shutdown.changed() => {}
            () = self.sessions.follow_revocations() => {}
        }
    }
}

/// Counts the live sessions of every replica for `portcullis_sessions_active`
/// at start and then every `interval`, until shutdown.
struct ActiveSessionsTask {
    sessions: Sessions,
    interval: Duration,
}

#[async_trait]
impl BackgroundService for ActiveSessionsTask {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = shutdown.changed() => {}
            () = self.sessions.report_live(self.interval) => {}
        }
    }
}

/// Retries the deprovisioning revocations that failed, until shutdown.
struct RevocationRetryTask {
    retries: Arc<RevocationRetries>,
}

#[async_trait]
impl BackgroundService for RevocationRetryTask {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = shutdown.changed() => {}
            () = self.retries.run() => {}
        }
    }
}

/// Reads the client secret and the cookie keys again from their files on
/// SIGHUP, so a rotated Kubernetes Secret takes effect without a restart.
/// Pingora installs no SIGHUP handler, and without this listener the
/// signal's default action would end the process.
struct SecretReloadTask {
    config: Config,
    auth: Arc<Auth>,
    provider: Arc<Provider>,
}

#[async_trait]
impl BackgroundService for SecretReloadTask {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGHUP; secrets will not be reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                received = hangups.recv() => match received {
                    Some(()) => self.reload(),
                    None => return,
                },
            }
        }
    }
}

impl SecretReloadTask {
    /// Reads and checks every secret first, then puts them all in use, so
    /// when any of them is missing or invalid none changes.
    fn reload(&self) {
        let secrets = match crate::config::reload_secrets(&self.config) {
            Ok(secrets) => secrets,
            Err(error) => {
                tracing::error!(error = %error, "cannot reload secrets after SIGHUP; every old secret stays in use");
                return;
            }
        };
        if let Some(keys) = secrets.cookie_keys {
            self.auth.replace_cookie_keys(keys);
        }
        self.provider.replace_client_secret(secrets.client_secret);
        tracing::info!("secrets reloaded after SIGHUP");
    }
}
