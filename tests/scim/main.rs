//! In-process tests of the SCIM endpoint: requests go straight to
//! `ScimService::handle`, without Pingora or a socket, over a real
//! directory.
//!
//! Every scenario runs twice, as `<scenario>::sqlite` on an in-memory
//! SQLite directory and as `<scenario>::postgres` in a fresh schema of the
//! PostgreSQL server at `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). The PostgreSQL tests fail,
//! and never skip, when that server is unreachable.
//!
//! | module | covers |
//! | --- | --- |
//! | [`okta`] | the requests Okta sends: credentials test, create, import, profile push, deactivation, Group Push |
//! | [`entra`] | the requests Microsoft Entra sends: capitalised ops, string booleans, dotted and URN keys, member removal |
//! | [`known_bugs`] | bugs other SCIM servers shipped, one test each |
//! | [`filters`] | filter operators and grammar, attribute selection, `.search` |
//! | [`discovery`] | discovery endpoints, `meta`, ETags and `If-Match` |
//! | [`auth`] | bearer-token authentication failures |
//! | [`bad_input`] | malformed bodies and media types, and that they change nothing |
//! | [`concurrency`] | racing creates and membership updates |
//! | [`hostile`] | tables of hostile input: huge bodies, pathological filters, SQL-like values, wrong types, duplicate `userName`s |
//!
//! Run them with `cargo test --test scim`.

// The e2e crate uses all of this shared module, and this crate only part of it.
#[allow(dead_code)]
#[path = "../shared/postgres.rs"]
mod postgres;
mod support;

mod auth;
mod bad_input;
mod concurrency;
mod discovery;
mod entra;
mod filters;
mod hostile;
mod known_bugs;
mod okta;
