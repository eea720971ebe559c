//! One sequence of requests that try to give a second user a `userName`
//! that is taken: by POST, PUT and PATCH, with a path, without one as
//! Entra sends it, URN-qualified, in other letter cases and in non-ASCII
//! case variants. Each gets `409 uniqueness` and changes nothing, until
//! deleting the holder frees the name.

use http::Method;
use serde_json::{json, Value};

use super::{check_unchanged, directory_state, Failures, Outcome, UNIQUENESS};
use crate::support::{both_backends, filter_query, Backend, Fixture, PATCH_OP, USER};

both_backends!(duplicate_user_names);

/// The name every case fights over.
const TAKEN: &str = "dup@example.com";
/// A taken name with non-ASCII letters.
const TAKEN_UMLAUT: &str = "Ärger@example.com";
/// The name of the second user, which the cases try to rename.
const OTHER: &str = "other@example.com";

/// The user a step targets.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// The user whose `userName` is `TAKEN`.
    Holder,
    /// The second user.
    Other,
}

/// One request of the sequence.
enum Step {
    Post(Value),
    Put(Who, Value),
    Patch(Who, Value),
    Delete(Who),
}

fn user(user_name: &str) -> Value {
    json!({ "schemas": [USER], "userName": user_name })
}

fn operations(operations: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": operations })
}

fn rename(op: &str, path: &str, user_name: &str) -> Value {
    operations(json!([{ "op": op, "path": path, "value": user_name }]))
}

fn steps() -> Vec<(&'static str, Step, Outcome)> {
    use Step::{Delete, Patch, Post, Put};
    use Who::{Holder, Other};
    let user_name_urn = format!("{USER}:userName");
    let ok = Outcome::Success(200);
    vec![
        ("POST the taken name", Post(user(TAKEN)), UNIQUENESS),
        (
            "POST it upper-cased",
            Post(user("DUP@EXAMPLE.COM")),
            UNIQUENESS,
        ),
        (
            "POST it in mixed case",
            Post(user("Dup@Example.Com")),
            UNIQUENESS,
        ),
        (
            "POST a non-ASCII name lower-cased",
            Post(user("ärger@example.com")),
            UNIQUENESS,
        ),
        (
            "POST a non-ASCII name upper-cased",
            Post(user("ÄRGER@EXAMPLE.COM")),
            UNIQUENESS,
        ),
        (
            "POST it under a URN-qualified key",
            Post(json!({ "schemas": [USER], user_name_urn.clone(): "DUP@example.com" })),
            UNIQUENESS,
        ),
        (
            "POST it under an upper-case attribute name",
            Post(json!({ "schemas": [USER], "USERNAME": "dup@example.com" })),
            UNIQUENESS,
        ),
        (
            "PUT the other user to it",
            Put(Other, user(TAKEN)),
            UNIQUENESS,
        ),
        (
            "PUT the other user to it upper-cased",
            Put(Other, user("DUP@EXAMPLE.COM")),
            UNIQUENESS,
        ),
        (
            "PUT the other user to the non-ASCII name",
            Put(Other, user("ärger@EXAMPLE.com")),
            UNIQUENESS,
        ),
        (
            "PATCH replace userName",
            Patch(Other, rename("replace", "userName", "Dup@example.com")),
            UNIQUENESS,
        ),
        (
            "PATCH add userName",
            Patch(Other, rename("add", "userName", TAKEN)),
            UNIQUENESS,
        ),
        (
            "PATCH Replace with Entra's capital",
            Patch(Other, rename("Replace", "userName", TAKEN)),
            UNIQUENESS,
        ),
        (
            "PATCH a URN-qualified path",
            Patch(Other, rename("replace", &user_name_urn, "DUP@example.com")),
            UNIQUENESS,
        ),
        (
            "PATCH without a path, as Entra sends it",
            Patch(
                Other,
                operations(
                    json!([{ "op": "Replace", "value": { "userName": "DUP@example.com" } }]),
                ),
            ),
            UNIQUENESS,
        ),
        (
            "PATCH without a path and a URN-qualified key",
            Patch(
                Other,
                operations(json!([{ "op": "add", "value": { user_name_urn.clone(): TAKEN } }])),
            ),
            UNIQUENESS,
        ),
        (
            "PATCH a displayName, then the taken name",
            Patch(
                Other,
                operations(json!([
                    { "op": "replace", "path": "displayName", "value": "Changed?" },
                    { "op": "replace", "path": "userName", "value": TAKEN }
                ])),
            ),
            UNIQUENESS,
        ),
        (
            "PATCH a free name, then the taken one",
            Patch(
                Other,
                operations(json!([
                    { "op": "replace", "path": "userName", "value": "free@example.com" },
                    { "op": "replace", "path": "userName", "value": TAKEN }
                ])),
            ),
            UNIQUENESS,
        ),
        (
            "PATCH the taken name, then back to its own",
            Patch(
                Other,
                operations(json!([
                    { "op": "replace", "path": "userName", "value": TAKEN },
                    { "op": "replace", "path": "userName", "value": OTHER }
                ])),
            ),
            ok,
        ),
        (
            "PUT the holder to its own name upper-cased",
            Put(Holder, user("DUP@EXAMPLE.COM")),
            ok,
        ),
        (
            "POST the name after the holder's case change",
            Post(user(TAKEN)),
            UNIQUENESS,
        ),
        (
            "PATCH the holder back to its name",
            Patch(Holder, rename("replace", "userName", TAKEN)),
            ok,
        ),
        ("DELETE the holder", Delete(Holder), Outcome::Success(204)),
        (
            "PATCH the other user to the freed name",
            Patch(Other, rename("replace", "userName", "DUP@example.com")),
            ok,
        ),
        (
            "POST the name the other user took",
            Post(user(TAKEN)),
            UNIQUENESS,
        ),
        (
            "DELETE the other user",
            Delete(Other),
            Outcome::Success(204),
        ),
        (
            "POST the name once more freed",
            Post(user(TAKEN)),
            Outcome::Success(201),
        ),
    ]
}

async fn duplicate_user_names(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let holder = fixture.user(TAKEN).await;
    let other = fixture.user(OTHER).await;
    fixture.user(TAKEN_UMLAUT).await;
    fixture.group("Both", &[&holder, &other]).await;
    let target = |who: Who| match who {
        Who::Holder => format!("/Users/{holder}"),
        Who::Other => format!("/Users/{other}"),
    };

    let steps = steps();
    let mut failures = Failures::default();
    for (name, step, outcome) in &steps {
        let (call, changed) = match step {
            Step::Post(body) => (fixture.call(Method::POST, "/Users").json(body), None),
            Step::Put(who, body) => (
                fixture.call(Method::PUT, &target(*who)).json(body),
                Some(target(*who)),
            ),
            Step::Patch(who, body) => (
                fixture.call(Method::PATCH, &target(*who)).json(body),
                Some(target(*who)),
            ),
            Step::Delete(who) => (fixture.call(Method::DELETE, &target(*who)), None),
        };
        let request = format!("{name} ({})", call.describe());
        let before = directory_state(&fixture).await;
        let changed_before = match &changed {
            Some(path) => fixture.get(path).await.raw,
            None => Vec::new(),
        };
        let reply = fixture.send(call).await;
        let mut result = outcome.verify(&reply);
        if result.is_ok() && outcome.is_error() {
            result = check_unchanged(&fixture, &before).await;
        }
        if let (Ok(()), true, Some(path)) = (&result, outcome.is_error(), &changed) {
            if fixture.get(path).await.raw != changed_before {
                result = Err("expected the target to read back byte for byte as before".to_owned());
            }
        }
        failures.record(&request, result);
    }

    let filter = format!("userName eq \"{TAKEN}\"");
    let holders = fixture
        .get(&format!("/Users{}", filter_query(&filter, "")))
        .await;
    let one_holder = match holders.body["totalResults"].as_u64() {
        Some(1) => Ok(()),
        _ => Err(format!(
            "expected exactly one holder of the name in {}",
            holders.body
        )),
    };
    failures.record("the holders of the name at the end", one_holder);
    println!("duplicate userNames: {} steps on {backend:?}", steps.len());
    failures.assert_none("duplicate userNames", steps.len());
}
