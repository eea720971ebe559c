//! Typed configuration: a TOML file, then `PORTCULLIS_<SECTION>__<KEY>`
//! environment overrides, then secrets read from files, then validation.
//!
//! Every error names the key it is about (`oidc.issuer: ...`), so
//! `portcullis check-config` can tell an operator exactly what to fix.
//! Unknown keys are rejected, whether they come from the file or from the
//! environment, because a misspelt key that is silently ignored leaves a
//! security setting at its default.

mod access;
mod ca_file;
mod de;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::session::store::redis_url::RedisTopology;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "PORTCULLIS_";

/// The top-level tables of the configuration.
const SECTIONS: &[&str] = &[
    "server",
    "upstream",
    "oidc",
    "session",
    "scim",
    "directory",
    "access",
    "log",
];

/// Errors while loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that was requested.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path} is not valid TOML: {message}")]
    Syntax {
        /// The file that was parsed.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown, has the wrong type or an invalid value.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted path of the key, such as `session.ttl`.
        key: String,
        /// The problem and the expected value.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// The whole configuration of one portcullis process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and the public address.
    pub server: ServerConfig,
    /// The dashboard that portcullis protects.
    pub upstream: UpstreamConfig,
    /// The OpenID provider.
    pub oidc: OidcConfig,
    /// Session storage and the session cookie.
    #[serde(default)]
    pub session: SessionConfig,
    /// The SCIM 2.0 provisioning endpoint.
    #[serde(default)]
    pub scim: ScimConfig,
    /// Where provisioned users, groups and API tokens are stored.
    #[serde(default)]
    pub directory: DirectoryConfig,
    /// Who may use the dashboard, and which paths are public.
    #[serde(default)]
    pub access: AccessConfig,
    /// Log output.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[server]`: listeners, public address and shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the proxy listener that browsers reach.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL browsers use to reach portcullis. Redirect URIs are built from
    /// it, never from request headers, so a client cannot steer them.
    pub public_url: Url,
    /// Address of the admin listener (`/livez`, `/readyz`); keep it off the
    /// public network.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Worker threads of the proxy listener.
    #[serde(default = "default_threads", deserialize_with = "de::number")]
    pub threads: usize,
    /// After SIGTERM, in-flight requests get this long to finish. Kubernetes
    /// sends SIGKILL 30 s after SIGTERM by default, so keep the sum of this and
    /// `shutdown_timeout` below the pod's `terminationGracePeriodSeconds`.
    #[serde(default = "default_grace_period", with = "humantime_serde")]
    pub grace_period: Duration,
    /// After the grace period, background tasks get this long to stop.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// After SIGTERM, readiness reports false at once but requests are still
    /// accepted this long, so load balancers that poll readiness stop
    /// sending traffic before the listener closes. The grace period starts
    /// after it. Kubernetes users can use a preStop sleep instead.
    #[serde(default, with = "humantime_serde")]
    pub drain_delay: Duration,
    /// An idle client connection is kept open this long between requests.
    /// It must exceed the idle timeout of any load balancer in front, or
    /// the balancer may send a request on a connection portcullis is closing.
    #[serde(default = "default_keepalive_timeout", with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Maximum time a client may take to send a whole request head, from
    /// the connection's start or, on a kept-alive connection, from the end
    /// of `keepalive_timeout`. A connection still sending its head then is
    /// closed, so clients that trickle header bytes cannot hold connections.
    #[serde(default = "default_request_header_timeout", with = "humantime_serde")]
    pub request_header_timeout: Duration,
    /// Largest accepted request head (request line and headers), in bytes;
    /// larger requests get 431.
    #[serde(
        default = "default_max_request_header_bytes",
        deserialize_with = "de::number"
    )]
    pub max_request_header_bytes: usize,
    /// Most client connections open at once on the proxy listener; 0 means
    /// no cap. A connection over it is closed at once, so a flood of idle
    /// connections cannot use up the file descriptors.
    #[serde(default = "default_max_connections", deserialize_with = "de::number")]
    pub max_connections: usize,
    /// Addresses or CIDR blocks of the proxies in front of portcullis (load
    /// balancers, ingress controllers). Only their `X-Forwarded-*` and
    /// `Forwarded` headers are passed on to the dashboard; other peers' are
    /// replaced. Redirect URIs never depend on these headers.
    #[serde(default, deserialize_with = "de::string_list")]
    pub trusted_proxies: Vec<String>,
}

/// `[upstream]`: the protected dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL of the dashboard, plain `http://host:port`.
    pub url: Url,
    /// Time allowed to open a TCP connection to the dashboard.
    #[serde(default = "default_upstream_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the dashboard's response head, and then between two
    /// reads of its body; a request that waits longer gets 504. Raise it for
    /// slow reports, long polls and idle WebSockets.
    #[serde(default = "default_upstream_read_timeout", with = "humantime_serde")]
    pub read_timeout: Duration,
}

/// `[oidc]`: the OpenID provider and this client's registration with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Issuer URL, exactly as the provider writes it in its ID tokens; the
    /// discovery document is read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Client id registered at the provider.
    pub client_id: String,
    /// Client secret; prefer `client_secret_file` or the
    /// `PORTCULLIS_OIDC__CLIENT_SECRET` environment variable.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// File whose contents (trailing newline trimmed) is the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Landing page after sign-out at the provider, which must list it as a
    /// sign-out redirect URI. Default: `server.public_url`.
    #[serde(default)]
    pub post_logout_redirect_uri: Option<Url>,
    /// Scopes requested at login; `openid` is always added.
    #[serde(default = "default_scopes", deserialize_with = "de::string_list")]
    pub scopes: Vec<String>,
    /// Reject ID tokens whose `email_verified` claim is not `true`.
    #[serde(default = "default_true", deserialize_with = "de::boolean")]
    pub require_email_verified: bool,
    /// Tolerated clock difference with the provider when checking `exp` and
    /// `iat`.
    #[serde(default = "default_clock_leeway", with = "humantime_serde")]
    pub clock_leeway: Duration,
    /// Timeout of each call to the provider (discovery, JWKS, token).
    #[serde(default = "default_oidc_timeout", with = "humantime_serde")]
    pub http_timeout: Duration,
    /// Minimum time between two reloads of the provider's keys caused by a
    /// token signed with a key id not in the cached JWKS. It bounds what
    /// tokens with made-up key ids can cost the provider.
    #[serde(default = "default_jwks_refetch_cooldown", with = "humantime_serde")]
    pub jwks_refetch_cooldown: Duration,
    /// The provider's metadata and keys are reloaded this often, so rotated
    /// keys are picked up even before a token signed by a new key arrives.
    #[serde(default = "default_jwks_refresh_interval", with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// PEM bundle of CA certificates that calls to the provider trust besides
    /// the built-in webpki roots and the system store, for a provider whose
    /// certificate chains to a private CA. Read at start only.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// The kind of session store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    /// Redis: shared by every replica, survives restarts of portcullis.
    Redis,
    /// This process's memory: one replica only, lost on restart.
    Memory,
}

/// `[session]`: session storage and the session cookie.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Session store.
    #[serde(default = "default_store")]
    pub store: SessionStoreKind,
    /// Redis URL: `redis://[[user]:password@]host[:port][/db]` for one
    /// server, `redis+sentinel://[[user]:password@]host[:port][,…]/master-name[/db]`
    /// for the master that Redis Sentinel names, or
    /// `redis+cluster://[[user]:password@]host[:port][,…]` for Redis Cluster.
    /// In a Sentinel URL the credentials before `@` are those of the master
    /// and replicas. The sentinels get the `sentinel_username` and
    /// `sentinel_password` query parameters, and no `AUTH` without them.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// File whose contents is the Redis URL, for URLs that carry a password.
    #[serde(default)]
    pub redis_url_file: Option<PathBuf>,
    /// Time allowed for one Redis command before the request gets 503.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// Name of the session cookie.
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// Mark cookies `Secure`. Turn off only for plain-HTTP trials on loopback.
    #[serde(default = "default_true", deserialize_with = "de::boolean")]
    pub cookie_secure: bool,
    /// Sessions end this long after login.
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// A session loaded from Redis is served from this process's memory for
    /// this long, so a burst of requests costs one Redis read. Revocations
    /// and sign-outs reach every replica's cache through Redis pub/sub, and
    /// the cache is bypassed while that subscription is down. Zero turns
    /// the cache off; at most 1 minute.
    #[serde(default = "default_session_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// A request refreshes the session's access token with the refresh token
    /// when the access token expires within this margin.
    #[serde(default = "default_refresh_margin", with = "humantime_serde")]
    pub refresh_margin: Duration,
    /// Keys that sign the session cookie, each at least 32 characters. The
    /// first signs; all verify. Empty means one random key per process start,
    /// which logs everyone out on restart.
    #[serde(default, deserialize_with = "de::string_list")]
    pub cookie_keys: Vec<String>,
    /// File with one cookie key per line, read in addition to `cookie_keys`.
    #[serde(default)]
    pub cookie_keys_file: Option<PathBuf>,
    /// Logins one client address may start per minute, earned evenly (one
    /// per second at 60). Each start stores a login flow for 10 minutes, so
    /// this bounds what one address adds to the store. 0 turns the limit
    /// off. The address is read through `server.trusted_proxies`, and an
    /// IPv6 client counts by its /64 prefix.
    #[serde(
        default = "default_login_starts_per_minute",
        deserialize_with = "de::number"
    )]
    pub login_starts_per_minute: usize,
    /// Logins one client address may start at once, before
    /// `login_starts_per_minute` paces it.
    #[serde(
        default = "default_login_starts_burst",
        deserialize_with = "de::number"
    )]
    pub login_starts_burst: usize,
    /// Maximum number of records (sessions, login flows, locks) in the
    /// in-memory store. When it is full, the oldest login flows are evicted.
    /// When only sessions and locks are left, logins get 503.
    #[serde(
        default = "default_memory_max_entries",
        deserialize_with = "de::number"
    )]
    pub memory_max_entries: usize,
    /// How often each replica counts the live sessions in the store for the
    /// `portcullis_sessions_active` gauge. Each count is one Redis script
    /// whose cost grows with the sessions that expired since the last one.
    #[serde(default = "default_active_count_interval", with = "humantime_serde")]
    pub active_count_interval: Duration,
}

/// `[scim]`: the SCIM 2.0 endpoint at `/scim/v2`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// Serve SCIM at `/scim/v2`. When off, those paths get 404 and are still
    /// never forwarded to the dashboard.
    #[serde(default = "default_true", deserialize_with = "de::boolean")]
    pub enabled: bool,
    /// External URL of the SCIM base, used for `meta.location` and `Location`
    /// headers. Default: `<server.public_url>/scim/v2`.
    #[serde(default)]
    pub base_url: Option<Url>,
    /// Status of a successful Group PATCH: 204 (no body, the default, because
    /// member lists can be large) or 200 (the group in the body).
    #[serde(
        default = "default_group_patch_status",
        deserialize_with = "de::number"
    )]
    pub group_patch_status: usize,
    /// Largest accepted request body, in bytes; larger requests get 413.
    #[serde(default = "default_scim_max_body", deserialize_with = "de::number")]
    pub max_body_bytes: usize,
}

impl Default for ScimConfig {
    fn default() -> Self {
        ScimConfig {
            enabled: true,
            base_url: None,
            group_patch_status: default_group_patch_status(),
            max_body_bytes: default_scim_max_body(),
        }
    }
}

/// The kind of directory backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryBackend {
    /// One SQLite file: the embedded default, for a single replica.
    Sqlite,
    /// PostgreSQL: shared by several replicas.
    Postgres,
}

/// `[directory]`: the store of provisioned users, groups and API tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Backend.
    #[serde(default = "default_directory_backend")]
    pub backend: DirectoryBackend,
    /// `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    /// Default: `sqlite://portcullis.db` in the working directory.
    #[serde(default)]
    pub url: Option<String>,
    /// File whose contents is the URL, for URLs that carry a password.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            backend: default_directory_backend(),
            url: None,
            url_file: None,
        }
    }
}

/// The ID token claim compared with a directory user's `userName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchClaim {
    /// `email`, Okta's usual `userName`.
    Email,
    /// `preferred_username`.
    PreferredUsername,
    /// `sub`, the provider's user id.
    Sub,
}

/// Where the groups forwarded in `X-Forwarded-Groups` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupsSource {
    /// The ID token's `groups` claim.
    Token,
    /// The provisioned user's group memberships in the directory.
    Scim,
    /// Both, the token's groups first.
    Both,
}

impl GroupsSource {
    /// Returns the value of `X-Forwarded-Groups-Source`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupsSource::Token => "token",
            GroupsSource::Scim => "scim",
            GroupsSource::Both => "both",
        }
    }
}

/// `[access]`: who may use the dashboard, and which paths are public.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Admit at login only identities that the directory holds as a User
    /// that is not `active: false`.
    #[serde(default, deserialize_with = "de::boolean")]
    pub require_provisioned_user: bool,
    /// The claim matched, ignoring case, against a directory user's
    /// `userName`. A user whose `externalId` equals `sub` matches too.
    #[serde(default = "default_match_claim")]
    pub provisioned_match_claim: MatchClaim,
    /// Groups that may use the dashboard; membership in any one of them is
    /// enough. Empty admits everyone.
    #[serde(default, deserialize_with = "de::string_list")]
    pub allowed_groups: Vec<String>,
    /// Email domains that may use the dashboard, compared ignoring case.
    /// Empty admits any email, or none.
    #[serde(default, deserialize_with = "de::string_list")]
    pub allowed_email_domains: Vec<String>,
    /// Paths forwarded without a session: exact paths such as `/healthz`, or
    /// prefixes ending in `/` such as `/static/`, matched on the normalised
    /// path.
    #[serde(default, deserialize_with = "de::string_list")]
    pub public_paths: Vec<String>,
    /// Where forwarded groups come from.
    #[serde(default = "default_groups_source")]
    pub groups_source: GroupsSource,
    /// Largest `X-Forwarded-Groups` value, in bytes; groups that do not fit
    /// are left out whole.
    #[serde(
        default = "default_max_groups_header_bytes",
        deserialize_with = "de::number"
    )]
    pub max_groups_header_bytes: usize,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            require_provisioned_user: false,
            provisioned_match_claim: default_match_claim(),
            allowed_groups: Vec::new(),
            allowed_email_domains: Vec::new(),
            public_paths: Vec::new(),
            groups_source: default_groups_source(),
            max_groups_header_bytes: default_max_groups_header_bytes(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// `[log]`: log format and verbosity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `portcullis=debug,info`; the
    /// `RUST_LOG` environment variable, when set, wins.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            store: default_store(),
            redis_url: None,
            redis_url_file: None,
            redis_timeout: default_redis_timeout(),
            cookie_name: default_cookie_name(),
            cookie_secure: true,
            ttl: default_session_ttl(),
            cache_ttl: default_session_cache_ttl(),
            refresh_margin: default_refresh_margin(),
            cookie_keys: Vec::new(),
            cookie_keys_file: None,
            login_starts_per_minute: default_login_starts_per_minute(),
            login_starts_burst: default_login_starts_burst(),
            memory_max_entries: default_memory_max_entries(),
            active_count_interval: default_active_count_interval(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_listen() -> String {
    "0.0.0.0:8080".to_owned()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9090".to_owned()
}
fn default_threads() -> usize {
    2
}
fn default_grace_period() -> Duration {
    Duration::from_secs(10)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_upstream_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_upstream_read_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_keepalive_timeout() -> Duration {
    Duration::from_secs(620)
}
fn default_request_header_timeout() -> Duration {
    Duration::from_secs(60)
}
/// Default of `server.max_connections`, a guess well above the load of one
/// replica.
fn default_max_connections() -> usize {
    10_000
}

fn default_max_request_header_bytes() -> usize {
    64 * 1024
}
fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_true() -> bool {
    true
}
fn default_clock_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_oidc_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_jwks_refetch_cooldown() -> Duration {
    Duration::from_secs(30)
}
fn default_jwks_refresh_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_refresh_margin() -> Duration {
    Duration::from_secs(60)
}
fn default_store() -> SessionStoreKind {
    SessionStoreKind::Memory
}
fn default_redis_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_cookie_name() -> String {
    "_portcullis".to_owned()
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(8 * 3600)
}
fn default_session_cache_ttl() -> Duration {
    Duration::from_secs(5)
}
/// Default of `session.login_starts_per_minute`. A person opens a few tabs
/// at once and then signs in, and 60 a minute also covers an office whose
/// users share one address and start their day together.
fn default_login_starts_per_minute() -> usize {
    60
}
fn default_login_starts_burst() -> usize {
    60
}
fn default_memory_max_entries() -> usize {
    crate::session::store::MEMORY_STORE_MAX_ENTRIES
}
fn default_active_count_interval() -> Duration {
    crate::session::tally::ACTIVE_COUNT_INTERVAL
}
fn default_group_patch_status() -> usize {
    204
}
fn default_scim_max_body() -> usize {
    1024 * 1024
}
fn default_directory_backend() -> DirectoryBackend {
    DirectoryBackend::Sqlite
}
fn default_match_claim() -> MatchClaim {
    MatchClaim::Email
}
fn default_groups_source() -> GroupsSource {
    GroupsSource::Token
}
fn default_max_groups_header_bytes() -> usize {
    4096
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}
fn default_log_level() -> String {
    "info".to_owned()
}

/// Shortest accepted `session.active_count_interval`, so that a typo
/// cannot make every replica count the sessions in a tight loop.
const MIN_ACTIVE_COUNT_INTERVAL: Duration = Duration::from_millis(100);

/// Longest accepted `session.cache_ttl`.
const MAX_SESSION_CACHE_TTL: Duration = Duration::from_secs(60);

/// Minimum length of a cookie signing key, in bytes.
const MIN_COOKIE_KEY_LEN: usize = 32;

/// The configuration after secrets were read and values checked, ready to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration as written, with overrides applied.
    pub config: Config,
    /// Resolved address of the proxy listener.
    pub listen: SocketAddr,
    /// Resolved address of the admin listener.
    pub admin_listen: SocketAddr,
    /// Host of the dashboard (a name or an IP address, without brackets),
    /// resolved when requests need it.
    pub upstream_host: String,
    /// Port of the dashboard.
    pub upstream_port: u16,
    /// The client secret, from the file or the configuration.
    pub client_secret: String,
    /// The certificates of `oidc.ca_file`; empty when it is not set.
    pub oidc_ca_certificates: Vec<reqwest::Certificate>,
    /// The Redis URL when the store is Redis.
    pub redis_url: Option<String>,
    /// Cookie signing keys, the signing key first; empty means generate one.
    pub cookie_keys: Vec<Vec<u8>>,
    /// External URL of the SCIM base, without a trailing slash.
    pub scim_base_url: Url,
    /// The directory URL, from the file or the configuration.
    pub directory_url: String,
    /// The parsed `server.trusted_proxies`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Reads `path`, applies the process environment's overrides, reads secret
/// files and validates the result.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, &env)
}

/// Like [`load`], with the environment given explicitly (for tests).
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut document: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: syntax_message(&text, &e),
    })?;
    let from_env = apply_env_overrides(&mut document, env)?;
    let config = parse_document(document, &from_env)?;
    validate(config)
}

/// Formats a TOML syntax error with its line and column but without the
/// source line, which could show a secret.
fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message();
    let Some(span) = error.span() else {
        return message.to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}: {message}")
}

/// Keys whose values are secrets; their parse errors do not repeat the value.
const SECRET_KEYS: &[&str] = &[
    "oidc.client_secret",
    "session.redis_url",
    "session.cookie_keys",
    "directory.url",
];

/// Parses an already-merged TOML table into a [`Config`], naming the
/// offending key, and the environment variable when the value came from one.
fn parse_document(
    document: toml::Table,
    from_env: &[(String, String)],
) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(document)).map_err(|e| {
        let key = e.path().to_string();
        let mut message = e.inner().message().to_owned();
        if SECRET_KEYS.iter().any(|secret| key.starts_with(secret)) {
            message = "invalid value; it is not shown because this key holds a secret".to_owned();
        }
        if let Some((_, variable)) = from_env.iter().find(|(dotted, _)| *dotted == key) {
            message = format!("{message} (set by {variable})");
        }
        if key == "." {
            ConfigError::invalid("(top level)", message)
        } else {
            ConfigError::invalid(&key, message)
        }
    })
}

/// Sets `section.key` for every `PORTCULLIS_SECTION__KEY` variable. Values
/// are inserted as strings; typed fields parse them. Returns each dotted key
/// set with the variable that set it.
fn apply_env_overrides(
    document: &mut toml::Table,
    env: &[(String, String)],
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            if let Some(section) = SECTIONS.iter().find(|s| {
                rest.to_ascii_lowercase()
                    .strip_prefix(*s)
                    .is_some_and(|tail| tail.starts_with('_'))
            }) {
                return Err(ConfigError::invalid(
                    name,
                    format!(
                        "an override needs two underscores between section and key, as in PORTCULLIS_{}__<KEY>",
                        section.to_ascii_uppercase()
                    ),
                ));
            }
            continue;
        };
        let section = section.to_ascii_lowercase();
        let key = key.to_ascii_lowercase();
        let table = document
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(table) = table else {
            return Err(ConfigError::invalid(&section, "must be a table"));
        };
        table.insert(key.clone(), toml::Value::String(value.clone()));
        applied.push((format!("{section}.{key}"), name.clone()));
    }
    Ok(applied)
}

/// Reads secret files, resolves addresses and checks values that serde
/// cannot check alone.
fn validate(config: Config) -> Result<Settings, ConfigError> {
    let listen = resolve_address("server.listen", &config.server.listen)?;
    let admin_listen = resolve_address("server.admin_listen", &config.server.admin_listen)?;
    if listen == admin_listen {
        return Err(ConfigError::invalid(
            "server.admin_listen",
            "must differ from server.listen, because the admin endpoints must not be reachable on the proxy port",
        ));
    }
    validate_public_url(&config.server.public_url)?;
    if config.server.threads == 0 {
        return Err(ConfigError::invalid("server.threads", "must be at least 1"));
    }
    validate_limits(&config)?;
    let trusted_proxies = parse_trusted_proxies(&config.server.trusted_proxies)?;

    let (upstream_host, upstream_port) = validate_upstream_url(&config.upstream.url)?;
    validate_issuer(&config.oidc.issuer)?;
    if config.oidc.client_id.is_empty() {
        return Err(ConfigError::invalid("oidc.client_id", "must not be empty"));
    }
    let client_secret = read_client_secret(&config.oidc)?;
    validate_key_reloads(&config.oidc)?;
    let oidc_ca_certificates = match &config.oidc.ca_file {
        Some(path) => ca_file::read_ca_file("oidc.ca_file", path)?,
        None => Vec::new(),
    };

    let redis_url = read_redis_url(&config.session)?;
    let cookie_keys = read_cookie_keys(&config.session)?;
    validate_cookie_name(&config.session.cookie_name)?;
    if config.session.ttl < Duration::from_secs(60) {
        return Err(ConfigError::invalid("session.ttl", "must be at least 1m"));
    }
    if config.session.cache_ttl > MAX_SESSION_CACHE_TTL {
        return Err(ConfigError::invalid(
            "session.cache_ttl",
            "must be at most 1m, because a replica that misses a revocation serves the session this long",
        ));
    }
    if config.session.active_count_interval < MIN_ACTIVE_COUNT_INTERVAL {
        return Err(ConfigError::invalid(
            "session.active_count_interval",
            "must be at least 100ms",
        ));
    }
    validate_login_limits(&config.session)?;
    validate_log_level(&config.log.level)?;
    let scim_base_url = scim_base_url(&config)?;
    let directory_url = read_directory_url(&config.directory)?;
    access::validate_access(&config.access)?;

    Ok(Settings {
        config,
        listen,
        admin_listen,
        upstream_host,
        upstream_port,
        client_secret,
        oidc_ca_certificates,
        redis_url,
        cookie_keys,
        scim_base_url,
        directory_url,
        trusted_proxies,
    })
}

/// Longest accepted `server.drain_delay`.
const MAX_DRAIN_DELAY: Duration = Duration::from_secs(600);

/// Pingora reads request heads of at most 1 MiB - 1 byte, whatever is set.
const MAX_REQUEST_HEADER_LIMIT: usize = 1_048_575;

/// Checks the timeouts and sizes that a zero or a huge value would break.
fn validate_limits(config: &Config) -> Result<(), ConfigError> {
    let header_bytes = config.server.max_request_header_bytes;
    if !(1024..=MAX_REQUEST_HEADER_LIMIT).contains(&header_bytes) {
        return Err(ConfigError::invalid(
            "server.max_request_header_bytes",
            format!("must be between 1024 and {MAX_REQUEST_HEADER_LIMIT}"),
        ));
    }
    if config.server.keepalive_timeout < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            "server.keepalive_timeout",
            "must be at least 1s",
        ));
    }
    if config.server.request_header_timeout < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            "server.request_header_timeout",
            "must be at least 1s",
        ));
    }
    if config.upstream.connect_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "upstream.connect_timeout",
            "must be more than 0s",
        ));
    }
    if config.server.drain_delay > MAX_DRAIN_DELAY {
        return Err(ConfigError::invalid(
            "server.drain_delay",
            "must be at most 10m; the process does not stop while it lasts",
        ));
    }
    if config.upstream.read_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "upstream.read_timeout",
            "must be more than 0s",
        ));
    }
    Ok(())
}

/// Largest accepted `session.login_starts_per_minute` and
/// `session.login_starts_burst`.
pub const MAX_LOGIN_STARTS: usize = 1_000_000;

/// Smallest accepted `session.memory_max_entries`.
const MIN_MEMORY_MAX_ENTRIES: usize = 100;

/// Checks the login-start limit and the size of the in-memory store.
fn validate_login_limits(session: &SessionConfig) -> Result<(), ConfigError> {
    if session.login_starts_per_minute > MAX_LOGIN_STARTS {
        return Err(ConfigError::invalid(
            "session.login_starts_per_minute",
            format!("must be at most {MAX_LOGIN_STARTS}; 0 turns the limit off"),
        ));
    }
    if !(1..=MAX_LOGIN_STARTS).contains(&session.login_starts_burst) {
        return Err(ConfigError::invalid(
            "session.login_starts_burst",
            format!("must be between 1 and {MAX_LOGIN_STARTS}; set session.login_starts_per_minute = 0 to turn the limit off"),
        ));
    }
    if session.memory_max_entries < MIN_MEMORY_MAX_ENTRIES {
        return Err(ConfigError::invalid(
            "session.memory_max_entries",
            format!("must be at least {MIN_MEMORY_MAX_ENTRIES}"),
        ));
    }
    Ok(())
}

/// Parses `server.trusted_proxies`: CIDR blocks, or single addresses. A
/// block with host bits set (`10.0.0.1/8`) is rejected rather than widened
/// silently, because it is usually a typo for a single address.
fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    const KEY: &str = "server.trusted_proxies";
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            let net = entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::invalid(
                        KEY,
                        format!(
                            "{entry:?} is not an IP address or a CIDR block such as 10.0.0.0/8"
                        ),
                    )
                })?;
            if net.trunc() != net {
                return Err(ConfigError::invalid(
                    KEY,
                    format!(
                        "{entry:?} has host bits set; write {} for the block or the address alone",
                        net.trunc()
                    ),
                ));
            }
            Ok(net)
        })
        .collect()
}

/// Checks a `tracing` filter. A bare word is read by `tracing` as a target
/// name, so a misspelt level would silently log nothing: every directive
/// without `=` must be a level.
fn validate_log_level(filter: &str) -> Result<(), ConfigError> {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let misspelt = filter.split(',').map(str::trim).find(|directive| {
        !directive.contains('=')
            && !directive.contains('[')
            && !LEVELS.contains(&directive.to_ascii_lowercase().as_str())
    });
    let parsed = tracing_subscriber::EnvFilter::try_new(filter);
    if misspelt.is_some() || parsed.is_err() {
        return Err(ConfigError::invalid(
            "log.level",
            format!(
                "invalid filter {filter:?}; use a level (trace, debug, info, warn, error, off) or directives such as \"portcullis=debug,info\""
            ),
        ));
    }
    Ok(())
}

fn validate_key_reloads(oidc: &OidcConfig) -> Result<(), ConfigError> {
    if oidc.jwks_refetch_cooldown < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            "oidc.jwks_refetch_cooldown",
            "must be at least 1s, because it limits how often tokens with unknown key ids reach the provider",
        ));
    }
    if oidc.jwks_refresh_interval < Duration::from_secs(10) {
        return Err(ConfigError::invalid(
            "oidc.jwks_refresh_interval",
            "must be at least 10s",
        ));
    }
    Ok(())
}

fn scim_base_url(config: &Config) -> Result<Url, ConfigError> {
    const KEY: &str = "scim.base_url";
    if !matches!(config.scim.group_patch_status, 200 | 204) {
        return Err(ConfigError::invalid(
            "scim.group_patch_status",
            "must be 200 or 204",
        ));
    }
    if config.scim.max_body_bytes < 1024 {
        return Err(ConfigError::invalid(
            "scim.max_body_bytes",
            "must be at least 1024",
        ));
    }
    let url = match &config.scim.base_url {
        Some(url) => url.clone(),
        None => config
            .server
            .public_url
            .join("/scim/v2")
            .map_err(|e| ConfigError::invalid(KEY, e.to_string()))?,
    };
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(ConfigError::invalid(
            KEY,
            "must be an http or https URL without a query",
        ));
    }
    Ok(url)
}

fn read_directory_url(directory: &DirectoryConfig) -> Result<String, ConfigError> {
    let url = match (&directory.url, &directory.url_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "directory.url_file",
                "set either directory.url or directory.url_file, not both",
            ))
        }
        (Some(url), None) => url.clone(),
        (None, Some(path)) => read_secret_file("directory.url_file", path)?,
        (None, None) => match directory.backend {
            DirectoryBackend::Sqlite => "sqlite://portcullis.db".to_owned(),
            DirectoryBackend::Postgres => {
                return Err(ConfigError::invalid(
                    "directory.url",
                    "missing; directory.backend = \"postgres\" needs a postgres:// URL",
                ))
            }
        },
    };
    let expected = match directory.backend {
        DirectoryBackend::Sqlite => &["sqlite:"][..],
        DirectoryBackend::Postgres => &["postgres://", "postgresql://"][..],
    };
    if !expected.iter().any(|prefix| url.starts_with(prefix)) {
        // The URL may carry a password, so it is not echoed.
        return Err(ConfigError::invalid(
            "directory.url",
            format!(
                "must start with {} for this directory.backend",
                expected.join(" or ")
            ),
        ));
    }
    Ok(url)
}

fn resolve_address(key: &str, address: &str) -> Result<SocketAddr, ConfigError> {
    address
        .to_socket_addrs()
        .map_err(|e| ConfigError::invalid(key, format!("invalid address {address:?}: {e}")))?
        .next()
        .ok_or_else(|| ConfigError::invalid(key, format!("{address:?} resolves to no address")))
}

fn validate_public_url(url: &Url) -> Result<(), ConfigError> {
    const KEY: &str = "server.public_url";
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(KEY, "must be an http or https URL"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            KEY,
            "must be an origin such as https://dashboard.example.com, without a path, query or fragment",
        ));
    }
    Ok(())
}

/// Checks the dashboard's URL and returns its host and port. A host name is
/// not resolved here: the name of a Kubernetes Service may not exist yet
/// when portcullis starts, and `check-config` must work outside the cluster.
fn validate_upstream_url(url: &Url) -> Result<(String, u16), ConfigError> {
    const KEY: &str = "upstream.url";
    if url.scheme() != "http" {
        return Err(ConfigError::invalid(
            KEY,
            "must be a plain http:// URL; portcullis reaches the dashboard inside the pod or cluster network",
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| ConfigError::invalid(KEY, "has no host"))?;
    if url.path() != "/" || url.query().is_some() {
        return Err(ConfigError::invalid(
            KEY,
            "must be an origin such as http://127.0.0.1:3000, without a path or query; request paths are forwarded as they arrive",
        ));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_owned(), port))
}

fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let url = Url::parse(issuer)
        .map_err(|e| ConfigError::invalid("oidc.issuer", format!("invalid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            "oidc.issuer",
            "must be an http or https URL",
        ));
    }
    Ok(())
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// The secrets that can change while portcullis runs.
#[derive(Debug, Clone)]
pub struct ReloadableSecrets {
    /// The client secret, from `oidc.client_secret` or its file.
    pub client_secret: String,
    /// Cookie signing keys, the signing key first. `None` when none are
    /// configured: the process then signs with a random key, and replacing
    /// it would end every session.
    pub cookie_keys: Option<Vec<Vec<u8>>>,
}

/// Reads the client secret and the cookie keys again, from their files when
/// `config` names files, with the same checks as at start. Used on SIGHUP,
/// where configured keys must not turn into an empty list: that would end
/// every session.
pub fn reload_secrets(config: &Config) -> Result<ReloadableSecrets, ConfigError> {
    let client_secret = read_client_secret(&config.oidc)?;
    let session = &config.session;
    let keys_configured = !session.cookie_keys.is_empty() || session.cookie_keys_file.is_some();
    let cookie_keys = read_cookie_keys(session)?;
    if keys_configured && cookie_keys.is_empty() {
        return Err(ConfigError::invalid(
            "session.cookie_keys_file",
            "contains no key; write at least one key to the file",
        ));
    }
    Ok(ReloadableSecrets {
        client_secret,
        cookie_keys: keys_configured.then_some(cookie_keys),
    })
}

fn read_client_secret(oidc: &OidcConfig) -> Result<String, ConfigError> {
    let secret = match (&oidc.client_secret, &oidc.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "oidc.client_secret_file",
                "set either oidc.client_secret or oidc.client_secret_file, not both",
            ))
        }
        (Some(secret), None) => secret.clone(),
        (None, Some(path)) => read_secret_file("oidc.client_secret_file", path)?,
        (None, None) => {
            return Err(ConfigError::invalid(
                "oidc.client_secret",
                "missing; set it, oidc.client_secret_file, or PORTCULLIS_OIDC__CLIENT_SECRET",
            ))
        }
    };
    if secret.is_empty() {
        return Err(ConfigError::invalid(
            "oidc.client_secret",
            "must not be empty",
        ));
    }
    Ok(secret)
}

fn read_redis_url(session: &SessionConfig) -> Result<Option<String>, ConfigError> {
    let (key, url) = match (&session.redis_url, &session.redis_url_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "session.redis_url_file",
                "set either session.redis_url or session.redis_url_file, not both",
            ))
        }
        (Some(url), None) => ("session.redis_url", Some(url.clone())),
        // A secret file often ends in a newline or a space that an editor
        // or `echo` added; no valid URL ends in whitespace.
        (None, Some(path)) => (
            "session.redis_url_file",
            Some(
                read_secret_file("session.redis_url_file", path)?
                    .trim_end_matches(|c: char| c.is_ascii_whitespace())
                    .to_owned(),
            ),
        ),
        (None, None) => ("session.redis_url", None),
    };
    match (session.store, url) {
        (SessionStoreKind::Memory, _) => Ok(None),
        (SessionStoreKind::Redis, None) => Err(ConfigError::invalid(
            key,
            "missing; session.store = \"redis\" needs a Redis URL",
        )),
        (SessionStoreKind::Redis, Some(url)) => {
            // The error names what is wrong but never repeats the URL, which
            // can contain a password.
            RedisTopology::from_url(&url)
                .map_err(|error| ConfigError::invalid(key, error.to_string()))?;
            Ok(Some(url))
        }
    }
}

fn read_cookie_keys(session: &SessionConfig) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut keys: Vec<(String, String)> = session
        .cookie_keys
        .iter()
        .map(|key| ("session.cookie_keys".to_owned(), key.clone()))
        .collect();
    if let Some(path) = &session.cookie_keys_file {
        let text = read_secret_file("session.cookie_keys_file", path)?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(|line| ("session.cookie_keys_file".to_owned(), line.to_owned())),
        );
    }
    keys.into_iter()
        .map(|(key, value)| {
            if value.len() < MIN_COOKIE_KEY_LEN {
                Err(ConfigError::invalid(
                    &key,
                    format!("every key must be at least {MIN_COOKIE_KEY_LEN} characters long"),
                ))
            } else {
                Ok(value.into_bytes())
            }
        })
        .collect()
}

fn validate_cookie_name(name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "session.cookie_name",
            "must be non-empty and use only letters, digits, '_', '-' and '.'",
        ))
    }
}

#[cfg(test)]
mod tests;
