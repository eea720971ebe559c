//! The admin listener: `/livez`, `/readyz` and `/metrics`, on a port of their own so the
//! proxy port never answers them (there they are ordinary dashboard paths).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::auth::Provider;
use crate::directory::Directory;
use crate::lifecycle::Lifecycle;
use crate::session::SessionStore;

/// Serves the probes and the metrics.
pub struct AdminApp {
    store: Arc<dyn SessionStore>,
    provider: Arc<Provider>,
    directory: Option<Arc<dyn Directory>>,
    lifecycle: Arc<Lifecycle>,
    /// Where the proxy listener accepts connections, seen from this host.
    proxy_address: SocketAddr,
}

/// Longest wait for the proxy listener to accept a probe connection.
const PROXY_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

impl AdminApp {
    /// Creates the app over what it checks: the session store, the provider
    /// and, when SCIM is enabled, the directory, and that the proxy
    /// listener at `proxy_listen` accepts connections. Readiness also turns
    /// false once SIGTERM has arrived.
    pub fn new(
        store: Arc<dyn SessionStore>,
        provider: Arc<Provider>,
        directory: Option<Arc<dyn Directory>>,
        lifecycle: Arc<Lifecycle>,
        proxy_listen: SocketAddr,
    ) -> Self {
        AdminApp {
            store,
            provider,
            directory,
            lifecycle,
            proxy_address: reachable_address(proxy_listen),
        }
    }

    /// Checks readiness: the session store and the directory answer, and
    /// provider discovery has succeeded. Returns the failed checks.
    async fn failed_checks(&self) -> Vec<&'static str> {
        let mut failed = Vec::new();
        if let Err(error) = self.store.ping().await {
            tracing::warn!(error = %error, "readiness: session store unavailable");
            failed.push("session_store");
        }
        if let Some(directory) = &self.directory {
            if let Err(error) = directory.ping().await {
                tracing::warn!(error = %error, "readiness: directory unavailable");
                failed.push("directory");
            }
        }
        if !self.provider.is_discovered() {
            failed.push("oidc_discovery");
        }
        // Pingora binds each service's listener when the service starts, so
        // the admin listener can answer before the proxy port accepts.
        let connect = tokio::net::TcpStream::connect(self.proxy_address);
        if !matches!(
            tokio::time::timeout(PROXY_PROBE_TIMEOUT, connect).await,
            Ok(Ok(_))
        ) {
            failed.push("proxy_listener");
        }
        failed
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/livez" => json(StatusCode::OK, serde_json::json!({ "status": "ok" })),
            "/readyz" if self.lifecycle.is_draining() => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "status": "shutting_down" }),
            ),
            "/readyz" => {
                let failed = self.failed_checks().await;
                if failed.is_empty() {
                    json(StatusCode::OK, serde_json::json!({ "status": "ready" }))
                } else {
                    json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({ "status": "not_ready", "failed": failed }),
                    )
                }
            }
            "/metrics" => metrics_text(),
            _ => json(
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "not_found" }),
            ),
        }
    }
}

/// Returns an address that reaches a listener bound to `listen`: loopback
/// for an unspecified address such as `0.0.0.0`.
fn reachable_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// Renders the metrics in the Prometheus text exposition format 0.0.4.
fn metrics_text() -> Response<Vec<u8>> {
    let body = crate::metrics::metrics().render().into_bytes();
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static status and headers form a valid response")
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = body.to_string().into_bytes();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static status and headers form a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_address_is_probed_on_loopback() {
        let cases = [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:8080", "[::1]:8080"),
            ("10.1.2.3:8080", "10.1.2.3:8080"),
        ];
        for (listen, expected) in cases {
            let listen: SocketAddr = listen.parse().expect("a socket address");
            let expected: SocketAddr = expected.parse().expect("a socket address");
            assert_eq!(reachable_address(listen), expected, "listen {listen}");
        }
    }
}
