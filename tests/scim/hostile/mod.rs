//! Hostile input, as tables of cases: huge and deeply nested bodies,
//! pathological filters and PATCH paths, values that look like SQL, every
//! wrong JSON type for every attribute, and duplicate `userName`s.
//!
//! Every case states its outcome: a success status, or a SCIM error with
//! its status and `scimType`. A failed request must leave the directory as
//! it was. Each table prints its number of cases (`--nocapture` shows it).
//!
//! | module | table |
//! | --- | --- |
//! | [`bodies`] | nesting to 100,000 levels, long strings, 10,000 members, bodies at and over the size limit |
//! | [`filters`] | deep, long and malformed filters in `GET ?filter=` and `.search`, and PATCH value paths |
//! | [`sql_like`] | SQL fragments and `LIKE` wildcards in values and filter literals |
//! | [`wrong_types`] | each wrong JSON type for every attribute of the served schemas, by POST, PUT and PATCH |
//! | [`duplicates`] | a `userName` taken by create, replace and PATCH, in any case, freed by delete |

use std::time::{Duration, Instant};

use portcullis::directory::{ResourceKind, StoredResource};
use serde_json::json;

use crate::support::{Call, Fixture, Reply, ERROR};

mod bodies;
mod duplicates;
mod filters;
mod sql_like;
mod wrong_types;

/// The body limit of the tables whose bodies reach it: the default of
/// `scim.max_body_bytes`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The maximum length of an error's `detail`. A detail may quote a
/// filter, which has at most 4,096 bytes, but never a whole body.
const MAX_DETAIL_BYTES: usize = 8 * 1024;

/// The outcome a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success with this status.
    Success(u16),
    /// A SCIM error with this status and, where RFC 7644 defines one for
    /// the failure, this `scimType`.
    Error(u16, Option<&'static str>),
}

/// `400` with `scimType` `invalidValue`.
pub const INVALID_VALUE: Outcome = Outcome::Error(400, Some("invalidValue"));
/// `400` with `scimType` `invalidSyntax`.
pub const INVALID_SYNTAX: Outcome = Outcome::Error(400, Some("invalidSyntax"));
/// `400` with `scimType` `invalidFilter`.
pub const INVALID_FILTER: Outcome = Outcome::Error(400, Some("invalidFilter"));
/// `400` with `scimType` `invalidPath`.
pub const INVALID_PATH: Outcome = Outcome::Error(400, Some("invalidPath"));
/// `400` with `scimType` `mutability`.
pub const MUTABILITY: Outcome = Outcome::Error(400, Some("mutability"));
/// `409` with `scimType` `uniqueness`.
pub const UNIQUENESS: Outcome = Outcome::Error(409, Some("uniqueness"));
/// `413`, which RFC 7644 §3.12 gives no `scimType`.
pub const TOO_LARGE: Outcome = Outcome::Error(413, None);

impl Outcome {
    /// Checks that `reply` has this outcome: the status and, for an error,
    /// a SCIM error body with this `scimType` (or none) and a `detail`.
    pub fn verify(self, reply: &Reply) -> Result<(), String> {
        let (status, scim_type) = match self {
            Outcome::Success(status) => (status, None),
            Outcome::Error(status, scim_type) => (status, scim_type),
        };
        let body = || truncated(&reply.body.to_string());
        if reply.status.as_u16() != status {
            return Err(format!(
                "expected status {status}, got {} with {}",
                reply.status,
                body()
            ));
        }
        if !self.is_error() {
            return Ok(());
        }
        let shape_ok = reply.body["schemas"] == json!([ERROR])
            && reply.body["status"] == json!(status.to_string())
            && reply.body["detail"].as_str().is_some_and(|d| !d.is_empty());
        if !shape_ok {
            return Err(format!("expected a SCIM error body, got {}", body()));
        }
        let detail_length = reply.body["detail"].as_str().map_or(0, str::len);
        if detail_length > MAX_DETAIL_BYTES {
            return Err(format!(
                "expected a detail of at most {MAX_DETAIL_BYTES} bytes, got {detail_length}: {}",
                body()
            ));
        }
        if reply.body.get("scimType").and_then(|t| t.as_str()) != scim_type {
            return Err(format!("expected scimType {scim_type:?}, got {}", body()));
        }
        Ok(())
    }

    /// Tells whether the request is expected to fail.
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Error(..))
    }
}

/// Shortens a response body for a failure message.
fn truncated(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((index, _)) => format!("{}… ({} bytes)", &text[..index], text.len()),
        None => text.to_owned(),
    }
}

/// The numbers of Users and Groups and every stored resource.
pub type DirectoryState = (u64, u64, Vec<StoredResource>);

/// Returns the state of the directory, to compare it before and after a
/// failed request.
pub async fn directory_state(fixture: &Fixture) -> DirectoryState {
    let users = fixture
        .directory
        .count(ResourceKind::User)
        .await
        .expect("the directory counts users");
    let groups = fixture
        .directory
        .count(ResourceKind::Group)
        .await
        .expect("the directory counts groups");
    (users, groups, fixture.snapshot().await)
}

/// Checks that the directory is in state `before`: the same counts and
/// every resource the same, version included.
pub async fn check_unchanged(fixture: &Fixture, before: &DirectoryState) -> Result<(), String> {
    let after = directory_state(fixture).await;
    if (after.0, after.1) != (before.0, before.1) {
        return Err(format!(
            "expected {} users and {} groups, found {} and {}",
            before.0, before.1, after.0, after.1
        ));
    }
    if after.2 != before.2 {
        return Err("expected every stored resource unchanged".to_owned());
    }
    Ok(())
}

/// The failures of a table, reported together once every case has run.
#[derive(Default)]
pub struct Failures {
    lines: Vec<String>,
}

impl Failures {
    /// Records the failure of `request`, if `result` is one.
    pub fn record(&mut self, request: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.lines.push(format!("{request}: {message}"));
        }
    }

    /// Fails the test with every recorded failure, out of `cases`.
    pub fn assert_none(self, table: &str, cases: usize) {
        assert!(
            self.lines.is_empty(),
            "{table}: {} of {cases} cases failed:\n{}",
            self.lines.len(),
            self.lines.join("\n")
        );
    }
}

/// The maximum time one case may take. Every case takes well under a
/// second in a debug build on 2 cores, where work quadratic in the size of
/// a body took about 50 s for 10,000 group members.
const MAX_CASE_TIME: Duration = Duration::from_secs(10);

/// Sends a case and checks its outcome, its time and, when it fails, that
/// the directory is unchanged.
pub async fn run_case(fixture: &Fixture, call: Call, outcome: Outcome) -> Result<(), String> {
    let before = if outcome.is_error() {
        Some(directory_state(fixture).await)
    } else {
        None
    };
    let started = Instant::now();
    let reply = fixture.send(call).await;
    let elapsed = started.elapsed();
    outcome.verify(&reply)?;
    if elapsed > MAX_CASE_TIME {
        return Err(format!(
            "took {elapsed:?}, more than {MAX_CASE_TIME:?}, which suggests work quadratic in the input"
        ));
    }
    match before {
        Some(before) => check_unchanged(fixture, &before).await,
        None => Ok(()),
    }
}

/// Returns `length` characters of pseudo-random hexadecimal digits. Unlike
/// a run of one letter, PostgreSQL cannot compress them below its index
/// size limit.
pub fn incompressible(length: usize, seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..length)
        .map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from_digit((state % 16) as u32, 16).expect("a digit below 16")
        })
        .collect()
}
