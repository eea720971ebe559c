//! Loopback addresses and free ports.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

use rand::Rng;

/// Address of portcullis, the upstream and Redis.
pub const PROXY_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// Address of the OpenID provider. It differs from [`PROXY_HOST`] because
/// cookie jars ignore the port, so the provider's cookies must not mix with
/// the proxy's.
pub const IDP_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Lowest port handed out; ports below it are left to system services.
const LOWEST_PORT: u16 = 10_000;

/// Attempts to find a free port before the test fails.
const ATTEMPTS: usize = 1_000;

/// Returns a port that was free on `host` a moment ago and that this test
/// process has not handed out before.
///
/// The port lies below the kernel's ephemeral range, so neither an outgoing
/// connection nor a service that binds port 0 can take it between this call
/// and the service's own bind. Services started one after another each get
/// their own port, which asking the kernel for port 0 does not promise once
/// the probing listener is closed.
pub fn free_port(host: IpAddr) -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut handed_out = HANDED_OUT
        .get_or_init(Mutex::default)
        .lock()
        .expect("no test panics while holding the port list");
    let end = ephemeral_range_start();
    let mut rng = rand::thread_rng();
    for _ in 0..ATTEMPTS {
        let port = rng.gen_range(LOWEST_PORT..end);
        if !handed_out.contains(&port) && TcpListener::bind((host, port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("found no free port on {host} in {LOWEST_PORT}..{end} in {ATTEMPTS} attempts");
}

/// Returns the first port of the kernel's ephemeral range (32768 when the
/// setting cannot be read).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .filter(|start| *start > LOWEST_PORT + 1_000)
        .unwrap_or(32_768)
}
