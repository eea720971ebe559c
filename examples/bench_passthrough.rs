//! A bare Pingora reverse proxy for the benchmark in `scripts/bench.sh`: no
//! authentication, no header rewriting, no access log and no metrics, with
//! the same Pingora version, worker threads and upstream keepalive pool as
//! portcullis. It shows how much of portcullis's cost per request is
//! Pingora's own.
//!
//! ```text
//! cargo run --release --example bench_passthrough -- 127.0.0.1:8081 127.0.0.1:3000
//! ```
//!
//! The first argument is the listen address, the second the upstream. It
//! runs until SIGINT or SIGTERM.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use async_trait::async_trait;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;

/// Worker threads, as `server.threads` defaults to in portcullis.
const THREADS: usize = 2;

/// The same pool size as portcullis sets.
const UPSTREAM_KEEPALIVE_POOL_SIZE: usize = 1024;

struct Passthrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = arguments.as_slice() else {
        bail!("usage: bench_passthrough LISTEN_ADDRESS UPSTREAM_ADDRESS");
    };
    let upstream: SocketAddr = upstream
        .parse()
        .with_context(|| format!("UPSTREAM_ADDRESS must be host:port, got {upstream:?}"))?;

    let conf = ServerConf {
        threads: THREADS,
        upstream_keepalive_pool_size: UPSTREAM_KEEPALIVE_POOL_SIZE,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, Passthrough { upstream });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
