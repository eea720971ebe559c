//! The dashboard's address. A host name is resolved when requests need it,
//! not once at start, so portcullis can start before the dashboard's
//! Service name exists and follows it when it moves.

use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a resolved address is used before the name is looked up again.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

/// Longest wait for one lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The dashboard's host and port, with the last address the host resolved
/// to.
#[derive(Debug)]
pub struct UpstreamAddress {
    host: String,
    port: u16,
    /// Set when the host is an IP address, which needs no lookup.
    fixed: Option<SocketAddr>,
    resolved: RwLock<Option<(SocketAddr, Instant)>>,
    /// Held while a lookup runs, so concurrent requests share it.
    lookup: tokio::sync::Mutex<()>,
}

impl UpstreamAddress {
    /// Creates the address of `host` (a name or an IP address, without
    /// brackets) and `port`.
    pub fn new(host: &str, port: u16) -> Self {
        let fixed = host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        UpstreamAddress {
            host: host.to_owned(),
            port,
            fixed,
            resolved: RwLock::new(None),
            lookup: tokio::sync::Mutex::new(()),
        }
    }

    /// Returns the address to connect to. A failed lookup falls back to the
    /// last address found, so a brief DNS outage does not take the
    /// dashboard away. It is an error only when the name never resolved.
    pub async fn resolve(&self) -> Result<SocketAddr, String> {
        if let Some(address) = self.fixed {
            return Ok(address);
        }
        if let Some(address) = self.fresh() {
            return Ok(address);
        }
        let _guard = self.lookup.lock().await;
        if let Some(address) = self.fresh() {
            return Ok(address);
        }
        let target = (self.host.as_str(), self.port);
        let found =
            match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(target)).await {
                Ok(Ok(mut addresses)) => addresses
                    .next()
                    .ok_or_else(|| format!("{} resolves to no address", self.host)),
                Ok(Err(error)) => Err(format!("cannot resolve {}: {error}", self.host)),
                Err(_) => Err(format!(
                    "resolving {} timed out after {LOOKUP_TIMEOUT:?}",
                    self.host
                )),
            };
        let mut resolved = self
            .resolved
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (found, *resolved) {
            (Ok(address), _) => {
                *resolved = Some((address, Instant::now()));
                Ok(address)
            }
            (Err(error), Some((previous, _))) => {
                tracing::warn!(error = %error, address = %previous, "dashboard name lookup failed; using the last address found");
                // Try again only after another full period.
                *resolved = Some((previous, Instant::now()));
                Ok(previous)
            }
            (Err(error), None) => Err(error),
        }
    }

    fn fresh(&self) -> Option<SocketAddr> {
        let resolved = *self
            .resolved
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        resolved
            .filter(|(_, at)| at.elapsed() < RESOLVED_FOR)
            .map(|(address, _)| address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_address_needs_no_lookup() {
        let address = UpstreamAddress::new("::1", 3000);
        assert_eq!(
            address.resolve().await,
            Ok("[::1]:3000".parse().expect("a socket address"))
        );
    }

    #[tokio::test]
    async fn name_resolves_when_needed() {
        let address = UpstreamAddress::new("localhost", 3000);
        let resolved = address.resolve().await.expect("localhost resolves");
        assert!(resolved.ip().is_loopback(), "got {resolved}");
        assert_eq!(resolved.port(), 3000);
    }

    #[tokio::test]
    async fn unknown_name_is_an_error() {
        let address = UpstreamAddress::new("no-such-host.invalid", 3000);
        let error = address
            .resolve()
            .await
            .expect_err("an .invalid name never resolves");
        assert!(error.contains("no-such-host.invalid"), "got {error}");
    }
}
