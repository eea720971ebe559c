//! portcullis: an authentication sidecar on Cloudflare's Pingora that puts
//! OpenID Connect single sign-on in front of a web dashboard.
//!
//! # Layout
//!
//! | module | owns | called from |
//! | --- | --- | --- |
//! | [`config`] | TOML configuration, `PORTCULLIS_<SECTION>__<KEY>` overrides, secrets from files, validation | `main` |
//! | [`server`] | assembling the Pingora server: proxy and admin listeners, discovery and revocation tasks | `main` |
//! | [`proxy`] | the `ProxyHttp` hooks, path normalisation and routing, identity headers | Pingora, every phase |
//! | [`auth`] | OIDC discovery and signing keys (reloaded on an unknown `kid`), login (state, nonce, PKCE) with a per-client limit on login starts, callback, sign-out, back-channel logout, token refresh under a lock, session lookup, the `[access]` policy | `request_filter` |
//! | [`session`] | the `Session` model, the `SessionStore` trait (Redis: one server, Sentinel or Cluster; memory), the cookie codec, the session cache, per-user revocation and the count of live sessions | [`auth`], the SCIM handler |
//! | [`scim`] | SCIM 2.0: schemas, filters, PATCH, attribute selection, errors, and the handler of `/scim/v2` requests | `request_filter` (through [`proxy`]) |
//! | [`directory`] | the `Directory` trait for SCIM Users, Groups and API tokens, with SQLite and PostgreSQL backends | the SCIM handler, the CLI |
//! | [`tokens`] | API tokens: generation, SHA-256 hashes, constant-time verification | the SCIM handler, the CLI |
//! | [`web`] | cookie parsing, path normalisation and local responses (redirects, pages, JSON errors) | [`auth`], [`proxy`] |
//! | [`cli`] | the `token` and `user` administration commands | `main` |
//! | [`admin`] | `/livez`, `/readyz` and `/metrics` on the admin listener | Pingora admin service |
//! | [`metrics`] | the Prometheus registry: request, login, session-store, refresh, SCIM, revocation and provider-fetch families | the `logging` hook, [`auth`], [`session`], the admin `/metrics` |
//! | [`logging`] | `tracing` set-up, JSON or text, with Pingora's `log` records bridged in | `main` |
//!
//! A request on the proxy listener is classified on its normalised path in
//! `request_filter`: `/oauth2/*` is answered by [`auth`], `/scim/v2/*` by
//! [`scim`] with an API token and never forwarded; a path in
//! `access.public_paths` is forwarded without a session; anything else needs
//! a session that the access policy admits, or gets a redirect to the
//! provider (browser navigation) or 401 (API call).
//! `upstream_request_filter` then strips client-sent identity headers and
//! portcullis's cookies and sets the verified identity and the request id. Background services
//! reload the provider's metadata and keys, follow session revocations
//! published by other replicas, count the live sessions for the
//! `portcullis_sessions_active` gauge, and re-read secret files on SIGHUP.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod directory;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod scim;
pub mod server;
pub mod session;
pub mod tokens;
pub mod web;
