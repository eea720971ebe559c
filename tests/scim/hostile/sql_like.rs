//! Values that look like SQL: quotes, comments, statements, and the `LIKE`
//! wildcards `%` and `_`, the escape `\` and the glob `*`. Stored as sent,
//! matched literally by `eq`, `co`, `sw` and `ew` filters, and ids of that
//! form find nothing. The directory changes only where a request
//! legitimately changed it.

use http::Method;
use serde_json::{json, Value};

use super::{check_unchanged, directory_state, run_case, Failures, Outcome, UNIQUENESS};
use crate::support::{
    both_backends, filter_query, sorted, Backend, Fixture, GROUP, SEARCH_REQUEST, USER,
};

both_backends!(sql_like_values);

const QUOTE_OR: &str = "' OR '1'='1";
const DROP_USERS: &str = "\"; DROP TABLE users; --";
const DROP_GROUPS: &str = "Robert'); DROP TABLE groups;--";
const PERCENT: &str = "%";
const UNDERSCORE: &str = "_";
const BACKSLASH: &str = "\\";
const STAR: &str = "*";
const INNER_PERCENT: &str = "a%b@example.com";
const INNER_UNDERSCORE: &str = "a_b@example.com";
/// Matched by `a_b` if `_` were a wildcard.
const LOOKS_LIKE_UNDERSCORE: &str = "axb@example.com";
/// Matched by `a%b` if `%` were a wildcard.
const LOOKS_LIKE_PERCENT: &str = "axyzb@example.com";
const PLAIN: &str = "plain@example.com";

/// The users, each with its `userName` also as its `externalId`,
/// `displayName` and email, so every indexed attribute contains the value.
const USER_NAMES: [&str; 12] = [
    QUOTE_OR,
    DROP_USERS,
    DROP_GROUPS,
    PERCENT,
    UNDERSCORE,
    BACKSLASH,
    STAR,
    INNER_PERCENT,
    INNER_UNDERSCORE,
    LOOKS_LIKE_UNDERSCORE,
    LOOKS_LIKE_PERCENT,
    PLAIN,
];

/// A group whose name is a statement.
const GROUP_NAME: &str = "'; DELETE FROM groups; --";

/// Returns `text` as a filter string literal.
fn literal(text: &str) -> String {
    Value::from(text).to_string()
}

fn filter_cases() -> Vec<(String, Vec<&'static str>)> {
    let on_every_index = |op: &str, text: &str| {
        ["userName", "externalId", "displayName", "emails.value"]
            .map(|attribute| format!("{attribute} {op} {}", literal(text)))
    };
    let mut cases: Vec<(String, Vec<&'static str>)> = Vec::new();
    for (op, text, expected) in [
        ("eq", PERCENT, vec![PERCENT]),
        ("co", PERCENT, vec![PERCENT, INNER_PERCENT]),
        ("sw", PERCENT, vec![PERCENT]),
        ("ew", PERCENT, vec![PERCENT]),
        ("co", "a%b", vec![INNER_PERCENT]),
        ("sw", "a%", vec![INNER_PERCENT]),
        ("eq", UNDERSCORE, vec![UNDERSCORE]),
        ("co", UNDERSCORE, vec![UNDERSCORE, INNER_UNDERSCORE]),
        ("co", "a_b", vec![INNER_UNDERSCORE]),
        ("ew", "_b@example.com", vec![INNER_UNDERSCORE]),
        ("eq", BACKSLASH, vec![BACKSLASH]),
        ("co", BACKSLASH, vec![BACKSLASH]),
        ("eq", STAR, vec![STAR]),
        ("co", STAR, vec![STAR]),
        ("eq", QUOTE_OR, vec![QUOTE_OR]),
        ("eq", "x' OR '1'='1", vec![]),
        ("co", "'", vec![QUOTE_OR, DROP_GROUPS]),
        ("eq", DROP_USERS, vec![DROP_USERS]),
        ("co", "\"", vec![DROP_USERS]),
        ("ew", "--", vec![DROP_USERS, DROP_GROUPS]),
        ("co", "; DROP TABLE", vec![DROP_USERS, DROP_GROUPS]),
        ("eq", "1' OR 1=1 --", vec![]),
        ("eq", "%%", vec![]),
        ("co", "%_", vec![]),
    ] {
        for filter in on_every_index(op, text) {
            cases.push((filter, expected.clone()));
        }
    }
    let percent = literal(PERCENT);
    let star = literal(STAR);
    cases.push((
        format!("userName eq {star} or userName eq {percent}"),
        vec![STAR, PERCENT],
    ));
    cases.push((
        format!("userName pr and not (userName co {percent})"),
        USER_NAMES
            .into_iter()
            .filter(|name| !name.contains('%'))
            .collect(),
    ));
    cases.push((
        format!("emails[value co {percent} and type eq \"work\"]"),
        vec![PERCENT, INNER_PERCENT],
    ));
    cases
}

/// Returns the `userName`s of a list response, sorted.
fn user_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["Resources"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .filter_map(|resource| resource["userName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Checks that `reply` is a list of exactly the users `expected`.
fn check_matches(reply: &crate::support::Reply, expected: &[&str]) -> Result<(), String> {
    Outcome::Success(200).verify(reply)?;
    let found = user_names(&reply.body);
    if found == sorted(expected) {
        Ok(())
    } else {
        Err(format!("expected {expected:?}, found {found:?}"))
    }
}

async fn sql_like_values(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let mut failures = Failures::default();
    let mut requests = 0;

    let mut ids = Vec::new();
    for user_name in USER_NAMES {
        let body = json!({
            "schemas": [USER],
            "userName": user_name,
            "externalId": user_name,
            "displayName": user_name,
            "emails": [{ "value": user_name, "type": "work" }],
        });
        requests += 1;
        let reply = fixture.post("/Users", &body).await;
        let request = format!("POST /Users with userName {user_name:?}");
        let stored_as_sent = Outcome::Success(201).verify(&reply).and_then(|()| {
            for attribute in ["userName", "externalId", "displayName"] {
                if reply.body[attribute] != json!(user_name) {
                    return Err(format!(
                        "expected {attribute} stored as sent in {}",
                        reply.body
                    ));
                }
            }
            Ok(())
        });
        failures.record(&request, stored_as_sent);
        ids.push(reply.id());
    }
    let group = fixture.group(GROUP_NAME, &[&ids[0]]).await;
    let created = directory_state(&fixture).await;

    let cases = filter_cases();
    for (filter, expected) in &cases {
        requests += 2;
        let reply = fixture
            .get(&format!("/Users{}", filter_query(filter, "")))
            .await;
        failures.record(
            &format!("GET /Users with {filter}"),
            check_matches(&reply, expected),
        );
        let search = json!({ "schemas": [SEARCH_REQUEST], "filter": filter });
        let reply = fixture.post("/Users/.search", &search).await;
        failures.record(
            &format!("POST /Users/.search with {filter}"),
            check_matches(&reply, expected),
        );
    }
    requests += 1;
    let groups = fixture
        .get(&format!(
            "/Groups{}",
            filter_query(&format!("displayName eq {}", literal(GROUP_NAME)), "")
        ))
        .await;
    let found_group = Outcome::Success(200).verify(&groups).and_then(|()| {
        match groups.body["Resources"][0]["id"].as_str() {
            Some(id) if id == group && groups.body["totalResults"] == json!(1) => Ok(()),
            _ => Err(format!("expected only group {group} in {}", groups.body)),
        }
    });
    failures.record("GET /Groups with displayName eq a statement", found_group);

    // Ids shaped like SQL name no resource, whatever the method.
    let not_found = Outcome::Error(404, None);
    for id in [
        QUOTE_OR,
        "1 OR 1=1",
        "%",
        "_",
        "*",
        "1; DROP TABLE users",
        "\\",
    ] {
        for (method, kind) in [
            (Method::GET, "Users"),
            (Method::DELETE, "Users"),
            (Method::DELETE, "Groups"),
            (Method::PUT, "Users"),
            (Method::PATCH, "Groups"),
        ] {
            requests += 1;
            let target = format!("/{kind}/{id}");
            let mut call = fixture.call(method.clone(), &target);
            call = match method {
                Method::PUT => {
                    call.json(&json!({ "schemas": [USER], "userName": "put@example.com" }))
                }
                Method::PATCH => call.json(&json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{ "op": "replace", "path": "displayName", "value": "x" }],
                })),
                _ => call,
            };
            let request = format!("{method} {target}");
            failures.record(&request, run_case(&fixture, call, not_found).await);
        }
    }

    // Writes of SQL-shaped values change only their target.
    requests += 1;
    let rename = json!([{ "op": "replace", "path": "userName", "value": "%" }]);
    let reply = fixture.patch(&format!("/Users/{}", ids[11]), rename).await;
    failures.record(
        "PATCH a userName to a taken \"%\"",
        UNIQUENESS.verify(&reply),
    );
    requests += 1;
    let group_body = json!({ "schemas": [GROUP], "displayName": "'; DELETE FROM groups; --" });
    let reply = fixture.post("/Groups", &group_body).await;
    failures.record(
        "POST a group named like an existing statement",
        UNIQUENESS.verify(&reply),
    );
    failures.record(
        "the directory after every read and rejected write",
        check_unchanged(&fixture, &created).await,
    );

    requests += 1;
    let statement = "'); UPDATE users SET document = '{}'; --";
    let set_title = json!([{ "op": "replace", "path": "title", "value": statement }]);
    let reply = fixture
        .patch(&format!("/Users/{}", ids[11]), set_title)
        .await;
    let title_set = Outcome::Success(200).verify(&reply).and_then(|()| {
        if reply.body["title"] == json!(statement) {
            Ok(())
        } else {
            Err(format!(
                "expected the title stored as sent in {}",
                reply.body
            ))
        }
    });
    failures.record("PATCH a title that is a statement", title_set);
    let after = directory_state(&fixture).await;
    let others_unchanged = after
        .2
        .iter()
        .filter(|resource| resource.id != ids[11])
        .eq(created.2.iter().filter(|resource| resource.id != ids[11]));
    if !others_unchanged || (after.0, after.1) != (created.0, created.1) {
        failures.record(
            "the directory after one PATCH",
            Err("expected every other resource unchanged".to_owned()),
        );
    }

    println!("SQL-like values: {requests} requests on {backend:?}");
    failures.assert_none("SQL-like values", requests);
}
