//! End-to-end tests of portcullis: the real binary between a real OpenID
//! provider and a real dashboard, driven by a scripted browser.
//!
//! Each test starts its own processes on free loopback ports (the provider on
//! 127.0.0.2, everything else on 127.0.0.1) and kills them when it ends, so
//! tests run in parallel and share nothing. They need `node` with the
//! packages of tests/fixtures (installed by scripts/setup.sh, or here by
//! `npm ci` when missing) and `redis-server` and `redis-cli` on the PATH.
//!
//! Run them with `cargo test --test e2e`; a failing test prints the logs of
//! its processes.

mod support;

mod access;
mod backchannel;
mod connections;
mod cookie_keys;
mod deprovisioning;
mod faults;
mod headers;
mod hostile_headers;
mod hostile_paths;
mod hostile_tokens;
mod keys;
mod lifecycle;
mod limits;
mod login;
mod login_floods;
mod observability;
mod okta_spec;
mod redirect_loops;
mod redis_topologies;
mod refresh;
mod request_ids;
mod revocation_outage;
mod scim_cli;
mod scim_conformance;
mod scim_limits;
mod scim_routing;
mod scim_scale;
mod session;
mod tls;
mod traffic;
