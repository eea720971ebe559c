//! The Pingora `ProxyHttp` implementation. Each hook is a short table of
//! contents; the work happens in [`route`], [`identity`], the login flow in
//! [`crate::auth`] and the local responses in [`crate::web`].

pub mod backchannel;
pub mod connections;
pub mod forwarded;
pub mod identity;
pub mod request_id;
pub mod response_head;
pub mod route;
pub mod scim;
pub mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{HeaderMap, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource};

use crate::auth::login::store_unavailable_page;
use crate::auth::policy::Denial;
use crate::auth::provisioning::{access_denied_json, access_denied_page, ForwardedIdentity};
use crate::auth::{Auth, Authenticated};
use crate::lifecycle::{InFlight, Lifecycle};
use crate::scim::handler::ScimService;
use crate::session::store::LogLimiter;
use crate::session::Identity;
use crate::web::{cookies, LocalResponse};
use forwarded::ForwardedHeaders;
use route::Route;

/// The proxy service: one per process, shared by all worker threads.
pub struct Portcullis {
    auth: Arc<Auth>,
    scim: Option<Arc<ScimService>>,
    settings: ProxySettings,
    lifecycle: Arc<Lifecycle>,
}

/// The connection settings of the proxy listener and of the dashboard.
pub struct ProxySettings {
    /// Address of the dashboard.
    pub upstream: upstream::UpstreamAddress,
    /// Time allowed to open a connection to the dashboard.
    pub connect_timeout: Duration,
    /// Longest wait for each read from the dashboard.
    pub read_timeout: Duration,
    /// How long an idle client connection stays open, in whole seconds.
    pub keepalive_seconds: u64,
    /// Largest accepted request head, in bytes.
    pub max_request_header_bytes: usize,
    /// Which peers may set the `X-Forwarded-*` headers.
    pub forwarded: ForwardedHeaders,
}

/// Per-request state carried between the hooks.
pub struct RequestContext {
    started: Instant,
    /// The id of the access line and of `X-Request-Id`: generated, or a
    /// trusted proxy's.
    request_id: String,
    /// Counts the request as in flight, for graceful shutdown.
    _in_flight: InFlight,
    /// The address of the connection's peer.
    peer: Option<IpAddr>,
    /// The original client's address, read through trusted proxies.
    client_ip: Option<IpAddr>,
    route: Option<Route>,
    /// The normalised path without the query, for the access log and the
    /// SCIM metrics; `None` when the path was rejected.
    path: Option<String>,
    /// When `upstream_peer` ran, so the request was forwarded to the dashboard.
    upstream_started: Option<Instant>,
    identity: Option<Arc<Identity>>,
    /// The value of `X-Forwarded-Groups-Source` when `identity` is set.
    groups_source: Option<&'static str>,
    /// A re-issued session cookie to add to the upstream's response.
    set_cookie: Option<String>,
}

/// The outcome of routing in `request_filter`.
pub enum Decision {
    /// Forward to the dashboard.
    Forward,
    /// Respond locally with this response.
    Respond(LocalResponse),
    /// Pass to the SCIM handler; the string is the path below `/scim/v2`.
    Scim(String),
    /// Read the body and pass it to the back-channel logout handler.
    BackchannelLogout,
}

impl Portcullis {
    /// Creates the proxy for the dashboard at `upstream`; `scim` is `None`
    /// when SCIM is disabled.
    pub fn new(
        auth: Arc<Auth>,
        scim: Option<Arc<ScimService>>,
        settings: ProxySettings,
        lifecycle: Arc<Lifecycle>,
    ) -> Self {
        Portcullis {
            auth,
            scim,
            settings,
            lifecycle,
        }
    }

    /// Routes one request. Login endpoints respond here, and everything else
    /// needs a valid session before it is forwarded.
    pub async fn decide(&self, request: &RequestHeader, ctx: &mut RequestContext) -> Decision {
        let path = match request_path(request).and_then(route::normalise_path) {
            Ok(path) => path,
            Err(error) if looks_like_scim(request) => {
                return Decision::Respond(scim::rejected_path(&error));
            }
            Err(error) => {
                return Decision::Respond(LocalResponse::page(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    &error.to_string(),
                    None,
                ))
            }
        };
        // A path with `;` parameters is never public: the normalised path
        // drops them, but the dashboard receives them and may route on them.
        let has_parameters = request_path(request).is_ok_and(|raw| raw.contains(';'));
        let route = match route::classify(&path) {
            Route::Upstream if !has_parameters && self.auth.access_policy().is_public(&path) => {
                Route::Public
            }
            route => route,
        };
        ctx.route = Some(route);
        // Only the SCIM route needs the path below here, so the path itself
        // moves into the context, for the access log, without a copy.
        let scim_subpath = (route == Route::Scim)
            .then(|| route::scim_subpath(&path).unwrap_or_default().to_owned());
        ctx.path = Some(path);
        let headers = &request.headers;
        let query = request.uri.query();
        match route {
            Route::LoginStart => {
                let target = start_target(query);
                let api_client = route::is_api_client(headers);
                let response = self
                    .auth
                    .start_login(headers, &target, ctx.client_ip, api_client)
                    .await;
                Decision::Respond(response)
            }
            Route::Callback => Decision::Respond(self.auth.finish_login(headers, query).await),
            Route::SignOut => {
                let api_client = route::is_api_client(headers);
                let response = self
                    .auth
                    .serve_sign_out(&request.method, headers, api_client)
                    .await;
                Decision::Respond(response)
            }
            Route::BackchannelLogout => Decision::BackchannelLogout,
            Route::UnknownOAuth2 => Decision::Respond(LocalResponse::page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such sign-in endpoint.",
                None,
            )),
            Route::Scim => Decision::Scim(scim_subpath.unwrap_or_default()),
            Route::Upstream => self.require_session(request, ctx).await,
            Route::Public => self.forward_public(request, ctx).await,
        }
    }

    /// Forwards a request for a public path. A valid session that the
    /// policy admits still sets the identity; without one the request goes
    /// on anonymously, with every identity header removed.
    async fn forward_public(&self, request: &RequestHeader, ctx: &mut RequestContext) -> Decision {
        match self.auth.authenticate(&request.headers).await {
            Ok(Some(authenticated)) => {
                if let Ok(forwarded) = self.auth.authorize(&authenticated.session) {
                    set_identity(ctx, forwarded);
                    ctx.set_cookie = authenticated.reissued_cookie;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %error, request_id = %ctx.request_id, "session store unavailable; public path forwarded without identity");
            }
        }
        Decision::Forward
    }

    async fn require_session(&self, request: &RequestHeader, ctx: &mut RequestContext) -> Decision {
        match self.auth.authenticate(&request.headers).await {
            Ok(Some(Authenticated {
                session,
                reissued_cookie,
                ..
            })) => match self.auth.authorize(&session) {
                Ok(forwarded) => {
                    set_identity(ctx, forwarded);
                    ctx.set_cookie = reissued_cookie;
                    Decision::Forward
                }
                Err(denial) => Decision::Respond(access_denied(request, &denial, &session)),
            },
            Ok(None) => Decision::Respond(self.unauthenticated(request, ctx.client_ip).await),
            Err(error) => {
                // During an outage every request fails the same way, so one
                // line per second, with the count of the others, is enough.
                static LOG_LIMIT: LogLimiter = LogLimiter::new(Duration::from_secs(1));
                if let Some(suppressed) = LOG_LIMIT.admit() {
                    tracing::error!(error = %error, suppressed, "session store unavailable");
                }
                Decision::Respond(if route::is_navigation(&request.method, &request.headers) {
                    store_unavailable_page()
                } else {
                    LocalResponse::json_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "session_store_unavailable",
                        "Sessions cannot be checked right now; retry shortly.",
                    )
                    .with_header(http::header::RETRY_AFTER, "2")
                })
            }
        }
    }

    /// A request without a valid session: a browser navigation starts a
    /// login that returns to the same page, unless `client` started too many
    /// logins; anything else gets 401.
    async fn unauthenticated(
        &self,
        request: &RequestHeader,
        client: Option<IpAddr>,
    ) -> LocalResponse {
        if route::is_navigation(&request.method, &request.headers) {
            let target = request
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            return self
                .auth
                .start_login(&request.headers, &target, client, false)
                .await;
        }
        LocalResponse::json_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "A valid session is required; sign in at /oauth2/start.",
        )
        .with_header(
            http::header::WWW_AUTHENTICATE,
            "Cookie realm=\"portcullis\"",
        )
    }

    /// Reads who sent the request: the peer, the original client behind
    /// trusted proxies, and a trusted proxy's request id, which then
    /// replaces the generated one.
    fn identify_client(&self, session: &Session, ctx: &mut RequestContext) {
        let forwarded = &self.settings.forwarded;
        let headers = &session.req_header().headers;
        ctx.peer = session
            .client_addr()
            .and_then(|addr| addr.as_inet())
            .map(SocketAddr::ip);
        ctx.client_ip = forwarded.client_ip(headers, ctx.peer);
        if let Some(id) = request_id::forwarded(headers, forwarded.is_trusted(ctx.peer)) {
            ctx.request_id = id;
        }
    }

    /// Prepares the request for the dashboard: identity headers are removed in
    /// every spelling and set from the verified session, `X-Request-Id` is
    /// set to the request id, and portcullis's own cookies are removed.
    pub fn prepare_upstream_request(&self, request: &mut RequestHeader, ctx: &RequestContext) {
        for name in identity::strip_identity_headers(&request.headers) {
            tracing::debug!(header = %name, request_id = %ctx.request_id, "removed client-sent identity header");
            request.remove_header(&name);
        }
        self.settings.forwarded.apply(request, ctx.peer);
        self.settings.forwarded.set_missing_host(request);
        request_id::set_on_request(request, &ctx.request_id);
        if let Some(identity) = &ctx.identity {
            for (name, value) in identity::identity_headers(identity) {
                // insert_header fails only for invalid names or values, and both were checked.
                let _ = request.insert_header(name, value);
            }
        }
        if let Some(source) = ctx.groups_source {
            // A static name and a static ASCII value cannot be invalid.
            let _ = request.insert_header(identity::GROUPS_SOURCE, source);
        }
        let settings = self.auth.cookie_settings();
        let names = [
            settings.session_name.as_str(),
            settings.binding_name.as_str(),
        ];
        let mut cookie_headers = HeaderMap::new();
        for value in request.headers.get_all(http::header::COOKIE) {
            cookie_headers.append(http::header::COOKIE, value.clone());
        }
        if cookies::remove_cookies(&mut cookie_headers, &names) {
            request.remove_header(&http::header::COOKIE);
            for value in cookie_headers.get_all(http::header::COOKIE) {
                // append_header fails only for invalid names or values, and both came from a valid header.
                let _ = request.append_header(http::header::COOKIE, value.clone());
            }
        }
    }
}

/// Returns the path of the request target as the client sent it. Only the
/// origin form (`/path?query`) is accepted, because the raw target is what
/// the dashboard receives: a target such as `x/../admin` or an absolute URL
/// could be read there as a path that routing never saw.
fn request_path(request: &RequestHeader) -> Result<&str, route::PathError> {
    let raw = std::str::from_utf8(request.raw_path())
        .map_err(|_| route::PathError::ForbiddenCharacter)?;
    if !raw.starts_with('/') {
        return Err(route::PathError::NotAbsolute);
    }
    Ok(raw.split('?').next().unwrap_or(raw))
}

fn set_identity(ctx: &mut RequestContext, forwarded: ForwardedIdentity) {
    ctx.identity = Some(Arc::new(forwarded.identity));
    ctx.groups_source = Some(forwarded.groups_source);
}

/// The 403 for a session whose identity the policy no longer admits, for
/// example after `access.allowed_groups` changed.
fn access_denied(
    request: &RequestHeader,
    denial: &Denial,
    session: &crate::session::Session,
) -> LocalResponse {
    tracing::debug!(user = %session.identity.subject, reason = %denial, "request denied by the access policy");
    if route::is_navigation(&request.method, &request.headers) {
        access_denied_page(denial)
    } else {
        access_denied_json(denial)
    }
}

/// Tells whether a request is for the SCIM endpoint, before routing has
/// run: its normalised path is below `/scim/v2`, or its path was rejected
/// and [`looks_like_scim`].
fn is_scim_request(request: &RequestHeader) -> bool {
    match request_path(request).and_then(route::normalise_path) {
        Ok(path) => route::scim_subpath(&path).is_some(),
        Err(_) => looks_like_scim(request),
    }
}

/// Tells whether a request whose path was rejected was meant for SCIM, so
/// the client gets SCIM JSON rather than an HTML page.
fn looks_like_scim(request: &RequestHeader) -> bool {
    let raw = request.raw_path();
    raw.len() >= 5 && raw[..5].eq_ignore_ascii_case(b"/scim")
}

/// Reads the target of `/oauth2/start?rd=...`, which the login flow validates.
fn start_target(query: Option<&str>) -> String {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "rd")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| "/".to_owned())
}

/// Maps a proxying error to the status the client gets: 504 when the
/// dashboard was too slow, 502 when it failed otherwise.
fn failure_status(error: &Error) -> StatusCode {
    use pingora::ErrorType;
    match (error.esource(), error.etype()) {
        (
            ErrorSource::Upstream,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
        ) => StatusCode::GATEWAY_TIMEOUT,
        (ErrorSource::Upstream, _) => StatusCode::BAD_GATEWAY,
        (ErrorSource::Downstream, _) => StatusCode::BAD_REQUEST,
        (ErrorSource::Internal | ErrorSource::Unset, _) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Builds the error page for a browser, SCIM JSON for a SCIM client, or
/// JSON for another API client.
fn failure_response(
    request: &RequestHeader,
    status: StatusCode,
    route: Option<Route>,
) -> LocalResponse {
    let (title, message, code) = match status {
        StatusCode::GATEWAY_TIMEOUT => (
            "Dashboard timed out",
            "The dashboard behind this sign-in took too long to answer. Try again in a moment.",
            "upstream_timeout",
        ),
        StatusCode::BAD_GATEWAY => (
            "Dashboard unavailable",
            "The dashboard behind this sign-in did not answer. Try again in a moment.",
            "upstream_unavailable",
        ),
        _ => (
            "Request failed",
            "The request could not be completed.",
            "request_failed",
        ),
    };
    if route == Some(Route::Scim) {
        scim::error_response(status, message)
    } else if route::is_navigation(&request.method, &request.headers) {
        LocalResponse::page(status, title, message, None)
    } else {
        LocalResponse::json_error(status, code, message)
    }
}

/// Counts the bytes of a request head as it arrived: the request line and
/// each header line with its separators.
fn request_head_bytes(request: &RequestHeader) -> usize {
    let line = request.method.as_str().len() + request.raw_path().len() + "  HTTP/1.1\r\n".len();
    let headers: usize = request
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
        .sum();
    line + headers
}

/// Builds the 431 for a request whose head exceeds `limit`, the value of
/// `server.max_request_header_bytes`.
fn header_too_large(request: &RequestHeader, limit: usize) -> LocalResponse {
    if is_scim_request(request) {
        return scim::error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!("the request head is larger than the limit of {limit} bytes"),
        );
    }
    let message =
        "The request headers are too large. Clearing this site's cookies usually fixes it.";
    if route::is_navigation(&request.method, &request.headers) {
        LocalResponse::page(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request headers too large",
            message,
            None,
        )
    } else {
        LocalResponse::json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_too_large",
            message,
        )
    }
}

/// Records the request in the process-wide metrics.
fn record_metrics(session: &Session, ctx: &RequestContext, status: u16) {
    let metrics = crate::metrics::metrics();
    let route = ctx.route.map_or("invalid", Route::label);
    metrics.record_request(route, status, ctx.started.elapsed());
    if let Some(upstream_started) = ctx.upstream_started {
        metrics.record_upstream(status, upstream_started.elapsed());
    }
    if ctx.route == Some(Route::Scim) {
        let subpath = ctx.path.as_deref().and_then(route::scim_subpath);
        metrics.record_scim(
            subpath.unwrap_or_default(),
            &session.req_header().method,
            status,
        );
    }
}

/// Writes the access log line. The path is the normalised one, so neither
/// the query string (which can carry an authorization code) nor a rejected
/// raw path reaches the log.
fn log_access(session: &Session, error: Option<&Error>, ctx: &RequestContext, status: u16) {
    let request = session.req_header();
    let user = ctx.identity.as_ref().map(|i| i.subject.as_str());
    tracing::info!(
        target: crate::logging::ACCESS_TARGET,
        request_id = %ctx.request_id,
        method = %request.method,
        path = ctx.path.as_deref().unwrap_or("-"),
        client = ctx.client_ip.map(|ip| ip.to_string()),
        status,
        duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        route = ctx.route.map_or("invalid", Route::label),
        user,
        error = error.map(|e| e.to_string()),
        "request"
    );
}

/// Lets the client send its next HTTP/1.1 request before it has read this
/// response (RFC 9112 section 9.3.2). Pingora 0.9 leaves this off by
/// default, and then a request that arrived in the same read as the one
/// before it is dropped and the connection closed, although the response
/// carried `Connection: keep-alive`. With it on, Pingora keeps those bytes and
/// serves the requests one after another, in order.
fn allow_pipelining(session: &mut Session) {
    if let pingora::protocols::http::ServerSession::H1(http1) = &mut *session.downstream_session {
        http1.set_pipelining_enabled(true);
    }
}

/// Maximum bytes of the `Host` value in Pingora's error lines: a DNS name
/// has at most 253 characters and a port adds at most 6.
const SUMMARY_MAX_HOST_BYTES: usize = 260;

/// Describes a request for Pingora's error lines: the method, the
/// normalised path of the access line (`-` when it was rejected or not read
/// yet), the `Host` and the request id. The raw target is left out because
/// its query string can carry an authorization code or an API key.
fn summarise_request(request: &RequestHeader, ctx: &RequestContext) -> String {
    let host = request
        .headers
        .get(http::header::HOST)
        .map(|value| value.as_bytes())
        .or_else(|| request.uri.host().map(str::as_bytes))
        .unwrap_or(b"-");
    let host = &host[..host.len().min(SUMMARY_MAX_HOST_BYTES)];
    format!(
        "{} {}, Host: {}, request_id: {}",
        request.method,
        ctx.path.as_deref().unwrap_or("-"),
        host.escape_ascii(),
        ctx.request_id
    )
}

/// Writes a local response with the request id in `X-Request-Id`. Pingora
/// skips `response_filter` for these, so the header is added here.
async fn send_local(
    session: &mut Session,
    response: LocalResponse,
    ctx: &RequestContext,
) -> pingora::Result<()> {
    response
        .with_header(request_id::HEADER, ctx.request_id.as_str())
        .send(session)
        .await
}

#[async_trait]
impl ProxyHttp for Portcullis {
    type CTX = RequestContext;

    fn new_ctx(&self) -> RequestContext {
        RequestContext {
            started: Instant::now(),
            request_id: request_id::generate(),
            _in_flight: self.lifecycle.start_request(),
            peer: None,
            client_ip: None,
            route: None,
            path: None,
            upstream_started: None,
            identity: None,
            groups_source: None,
            set_cookie: None,
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestContext,
    ) -> pingora::Result<()> {
        connections::request_head_read();
        allow_pipelining(session);
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
    ) -> pingora::Result<bool> {
        self.identify_client(session, ctx);
        // Once SIGTERM has arrived every response closes its connection, so
        // clients reconnect to a replica that is not stopping.
        let stopping = self.lifecycle.is_draining() || session.is_process_shutting_down();
        // Pingora has already applied the client's wish: `Connection:
        // close`, or an HTTP/1.0 request without `Connection: keep-alive`,
        // turned keep-alive off. Only the timeout of a connection the client
        // keeps is set here, because `set_keepalive` would re-enable it for
        // HTTP/1.0.
        let client_keeps = session.get_keepalive().is_some();
        let keepalive = (client_keeps && !stopping).then_some(self.settings.keepalive_seconds);
        session.set_keepalive(keepalive);
        let head_bytes = request_head_bytes(session.req_header());
        if head_bytes > self.settings.max_request_header_bytes {
            tracing::debug!(request_id = %ctx.request_id, head_bytes, "request head too large");
            // Pingora closes a connection whose request it did not read to
            // the end, so the client must be told.
            session.set_keepalive(None);
            let limit = self.settings.max_request_header_bytes;
            let response = header_too_large(session.req_header(), limit);
            send_local(session, response, ctx).await?;
            return Ok(true);
        }
        let response = match self.decide(session.req_header(), ctx).await {
            Decision::Forward => return Ok(false),
            Decision::Respond(response) => response,
            Decision::BackchannelLogout => backchannel::serve(session, &self.auth).await,
            Decision::Scim(subpath) => {
                scim::serve_scim(session, self.scim.as_deref(), &subpath).await
            }
        };
        send_local(session, response, ctx).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestContext,
    ) -> pingora::Result<Box<HttpPeer>> {
        ctx.upstream_started = Some(Instant::now());
        let address = self.settings.upstream.resolve().await.map_err(|message| {
            tracing::error!(error = %message, request_id = %ctx.request_id, "cannot resolve the dashboard's address");
            let mut error = Error::new_up(pingora::ErrorType::ConnectNoRoute);
            error.set_context(message);
            error
        })?;
        let mut peer = HttpPeer::new(address, false, String::new());
        peer.options.connection_timeout = Some(self.settings.connect_timeout);
        peer.options.read_timeout = Some(self.settings.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestContext,
    ) -> pingora::Result<()> {
        self.prepare_upstream_request(upstream_request, ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestContext,
    ) -> pingora::Result<()> {
        // SIGTERM may have arrived while the dashboard worked on this
        // request; the connection then closes after it, so say so.
        if self.lifecycle.is_draining() || session.is_process_shutting_down() {
            session.set_keepalive(None);
        }
        response_head::remove_hop_by_hop(upstream_response);
        let request = session.req_header();
        let framing =
            response_head::frame_for_http10(request.version, &request.method, upstream_response);
        if framing == response_head::Http10Framing::UntilClose {
            session.set_keepalive(None);
        }
        if let Some(cookie) = ctx.set_cookie.take() {
            upstream_response.append_header(http::header::SET_COOKIE, cookie)?;
        }
        // Replaces any id of the dashboard's, so the client sees the one in
        // the access line.
        upstream_response.insert_header(request_id::HEADER, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut RequestContext,
    ) -> FailToProxy {
        let status = failure_status(error);
        if session.response_written().is_none() {
            // The connection is closed after this response, so the client
            // must be told not to send another request on it.
            session.set_keepalive(None);
            let response = failure_response(session.req_header(), status, ctx.route);
            if let Err(write_error) = send_local(session, response, ctx).await {
                tracing::debug!(error = %write_error, request_id = %ctx.request_id, "cannot write error page");
            }
        }
        FailToProxy {
            error_code: status.as_u16(),
            can_reuse_downstream: false,
        }
    }

    /// Keeps Pingora's ERROR line for a failed request only when portcullis
    /// or the dashboard failed. A client that sent a malformed body or went
    /// away is no fault of the server, so its access line alone names it.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestContext, error: &Error) -> bool {
        let client_caused = *error.esource() == ErrorSource::Downstream;
        if client_caused {
            tracing::debug!(error = %error, request_id = %ctx.request_id, "request failed on the client's side");
        }
        client_caused
    }

    /// Replaces Pingora's description of the request in its error lines,
    /// which shows the query string, with [`summarise_request`].
    fn request_summary(&self, session: &Session, ctx: &RequestContext) -> String {
        summarise_request(session.req_header(), ctx)
    }

    async fn logging(
        &self,
        session: &mut Session,
        error: Option<&Error>,
        ctx: &mut RequestContext,
    ) {
        let status = session
            .response_written()
            .map_or(0, |response| response.status.as_u16());
        record_metrics(session, ctx, status);
        log_access(session, error, ctx, status);
        connections::response_finished();
    }
}
