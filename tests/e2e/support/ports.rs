//! Loopback addresses and free ports.

use std::net::{IpAddr, Ipv4Addr, TcpListener};

/// Address of portcullis, the upstream and Redis.
pub const PROXY_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// Address of the OpenID provider. It differs from [`PROXY_HOST`] because
/// cookie jars ignore the port, so the provider's cookies must not mix with
/// the proxy's.
pub const IDP_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Returns a port that was free on `host` a moment ago: the kernel picks it
/// for a listener bound to port 0, which is then closed.
///
/// NOTE: another process can take the port between this call and the
/// service's own bind. The kernel picks ephemeral ports at random, so a clash
/// between parallel tests is unlikely, and it shows as a start-up failure
/// with the service's log.
pub fn free_port(host: IpAddr) -> u16 {
    let listener = TcpListener::bind((host, 0))
        .unwrap_or_else(|e| panic!("cannot bind an ephemeral port on {host}: {e}"));
    listener
        .local_addr()
        .expect("a bound listener has a local address")
        .port()
}
