//! Pathological filters in `GET /Users?filter=`, `POST /Users/.search` and
//! `POST /.search`: 10,000 nested parentheses, `not` chains, 5,000 `or`
//! terms, long attribute paths and literals, unterminated strings and
//! escapes, NUL and control characters. And PATCH paths with the same
//! kinds of value filters. The parser limits filters to 4,096 bytes and 32
//! levels of nesting, so none of them reaches a stack overflow.

use http::Method;
use serde_json::{json, Value};

use super::{
    run_case, Failures, Outcome, INVALID_FILTER, INVALID_PATH, INVALID_VALUE, MAX_BODY_BYTES,
};
use crate::support::{
    both_backends, filter_query, sorted, Backend, Fixture, PATCH_OP, SEARCH_REQUEST, USER,
};

both_backends!(hostile_filters, hostile_patch_paths);

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";

/// The filter that selects Alice alone.
const ALICE_FILTER: &str = r#"userName eq "alice@example.com""#;

/// What a filter is expected to do: select these `userName`s, or fail.
enum Expect {
    Matches(Vec<&'static str>),
    Fails(Outcome),
}

/// Returns `filter` wrapped in `depth` pairs of parentheses.
fn in_parentheses(depth: usize, filter: &str) -> String {
    format!("{}{filter}{}", "(".repeat(depth), ")".repeat(depth))
}

/// Returns `filter` wrapped in `depth` `not (…)`.
fn negated(depth: usize, filter: &str) -> String {
    format!("{}{filter}{}", "not (".repeat(depth), ")".repeat(depth))
}

/// Returns `count` `userName` equalities that match nobody, then Alice's,
/// joined with `junction`.
fn joined(count: usize, junction: &str) -> String {
    let mut terms: Vec<String> = (0..count)
        .map(|n| format!(r#"userName eq "nobody{n}""#))
        .collect();
    terms.push(ALICE_FILTER.to_owned());
    terms.join(junction)
}

fn filter_cases() -> Vec<(String, String, Expect)> {
    use Expect::{Fails, Matches};
    let everyone_else = || Matches(vec![BOB, CAROL]);
    let invalid = || Fails(INVALID_FILTER);
    let long_literal = "a".repeat(4_000);
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "1 pair of parentheses",
            in_parentheses(1, ALICE_FILTER),
            Matches(vec![ALICE]),
        ),
        (
            "32 nested parentheses",
            in_parentheses(32, ALICE_FILTER),
            Matches(vec![ALICE]),
        ),
        (
            "33 nested parentheses",
            in_parentheses(33, ALICE_FILTER),
            invalid(),
        ),
        (
            "1,000 nested parentheses",
            in_parentheses(1_000, ALICE_FILTER),
            invalid(),
        ),
        (
            "10,000 nested parentheses",
            in_parentheses(10_000, ALICE_FILTER),
            invalid(),
        ),
        ("10,000 unclosed parentheses", "(".repeat(10_000), invalid()),
        ("10,000 closing parentheses", ")".repeat(10_000), invalid()),
        (
            "2,000 nested empty parentheses",
            in_parentheses(2_000, ""),
            invalid(),
        ),
        ("15 nested not", negated(15, ALICE_FILTER), everyone_else()),
        (
            "32 nested not",
            negated(32, ALICE_FILTER),
            Matches(vec![ALICE]),
        ),
        ("33 nested not", negated(33, ALICE_FILTER), invalid()),
        (
            "10,000 nested not",
            negated(10_000, ALICE_FILTER),
            invalid(),
        ),
        (
            "1,000 not without parentheses",
            format!("{}{ALICE_FILTER}", "not ".repeat(1_000)),
            invalid(),
        ),
        (
            "500 not( without spaces",
            format!("{}{ALICE_FILTER}{}", "not(".repeat(500), ")".repeat(500)),
            invalid(),
        ),
        ("100 or terms", joined(100, " or "), Matches(vec![ALICE])),
        ("5,000 or terms", joined(5_000, " or "), invalid()),
        ("100 and terms", joined(100, " and "), Matches(vec![])),
        ("5,000 and terms", joined(5_000, " and "), invalid()),
        ("5,000 bare or", "or ".repeat(5_000), invalid()),
        (
            "value filter in 33 parentheses",
            format!("emails[{}]", in_parentheses(33, r#"type eq "work""#)),
            invalid(),
        ),
        (
            "1,000 nested value filters",
            format!(
                "{}type eq \"work\"{}",
                "emails[".repeat(1_000),
                "]".repeat(1_000)
            ),
            invalid(),
        ),
        (
            "1,000 closing brackets",
            format!("emails[type eq \"work\"{}", "]".repeat(1_000)),
            invalid(),
        ),
        (
            "an attribute name of 4,000 bytes",
            format!("{} pr", "a".repeat(4_000)),
            invalid(),
        ),
        (
            "an attribute name of 10,000 bytes",
            format!("{} pr", "a".repeat(10_000)),
            invalid(),
        ),
        (
            "a sub-attribute name of 4,000 bytes",
            format!("name.{} pr", "b".repeat(4_000)),
            invalid(),
        ),
        (
            "a schema URN of 1,000 parts",
            format!("urn:{}{ALICE_FILTER}", "x:".repeat(1_000)),
            invalid(),
        ),
        (
            "1,000 dots in a path",
            format!("userName{} pr", ".".repeat(1_000)),
            invalid(),
        ),
        (
            "an eq literal of 4,000 bytes",
            format!(r#"userName eq "{long_literal}""#),
            Matches(vec![]),
        ),
        (
            "a co literal of 4,000 bytes",
            format!(r#"userName co "{long_literal}""#),
            Matches(vec![]),
        ),
        (
            "an email literal of 4,000 bytes",
            format!(r#"emails.value eq "{long_literal}""#),
            Matches(vec![]),
        ),
        (
            "a string without its closing quote",
            r#"userName eq "alice@example.com"#.to_owned(),
            invalid(),
        ),
        (
            "an escaped closing quote",
            r#"userName eq "alice@example.com\""#.to_owned(),
            invalid(),
        ),
        (
            "a lone backslash",
            r#"userName eq "\"#.to_owned(),
            invalid(),
        ),
        (
            "a short unicode escape",
            r#"userName eq "\u00""#.to_owned(),
            invalid(),
        ),
        (
            "an unknown escape",
            r#"userName eq "\q""#.to_owned(),
            invalid(),
        ),
        (
            "a lone surrogate escape",
            r#"userName eq "\ud800""#.to_owned(),
            invalid(),
        ),
        (
            "3,000 escaped backslashes",
            format!(r#"userName eq "{}""#, r"\\".repeat(1_500)),
            Matches(vec![]),
        ),
        (
            "1,000 escaped quotes",
            format!(r#"userName eq "{}""#, r#"\""#.repeat(1_000)),
            Matches(vec![]),
        ),
        (
            "a unicode escape of a letter",
            r#"userName eq "\u0061lice@example.com""#.to_owned(),
            Matches(vec![ALICE]),
        ),
        (
            "a NUL escape",
            r#"userName eq "\u0000""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a NUL escape after a userName",
            r#"userName eq "alice@example.com\u0000""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a NUL escape in an id",
            r#"id eq "\u0000""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a NUL escape in an externalId",
            r#"externalId eq "\u0000""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a NUL escape in a displayName",
            r#"displayName eq "\u0000""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a NUL escape in an email",
            r#"emails.value eq "\u0000""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a NUL escape in a value filter",
            r#"emails[value eq "\u0000"]"#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a NUL escape in a co literal",
            r#"userName co "\u0000""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "a raw NUL in a string",
            "userName eq \"a\0b\"".to_owned(),
            invalid(),
        ),
        (
            "a raw NUL between tokens",
            "userName\0eq \"alice@example.com\"".to_owned(),
            invalid(),
        ),
        (
            "a raw NUL after the filter",
            format!("{ALICE_FILTER}\0"),
            invalid(),
        ),
        ("a raw NUL alone", "\0".to_owned(), invalid()),
        (
            "a raw control character in a string",
            "userName eq \"\u{1}\"".to_owned(),
            invalid(),
        ),
        (
            "an escaped control character",
            r#"userName eq "\u0001""#.to_owned(),
            Matches(vec![]),
        ),
        (
            "an escape sequence after the filter",
            format!("{ALICE_FILTER}\u{1b}[0m"),
            invalid(),
        ),
        (
            "tabs and newlines between tokens",
            "userName\teq\r\n\"alice@example.com\"\n".to_owned(),
            Matches(vec![ALICE]),
        ),
        (
            "a line separator between tokens",
            "userName\u{2028}eq\u{2028}\"alice@example.com\"".to_owned(),
            Matches(vec![ALICE]),
        ),
        (
            "no-break spaces between tokens",
            "userName\u{a0}eq\u{a0}\"alice@example.com\"".to_owned(),
            Matches(vec![ALICE]),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, filter, expect)| (name.to_owned(), filter, expect))
        .collect()
}

/// Returns the `userName`s (or, for groups, `displayName`s) of a list
/// response, sorted.
fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["Resources"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .filter_map(|resource| {
                    resource["userName"]
                        .as_str()
                        .or(resource["displayName"].as_str())
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn hostile_filters(backend: Backend) {
    // `.search` bodies with 5,000 terms are larger than the 64 KiB of
    // `Fixture::new`.
    let fixture = Fixture::with_max_body_bytes(backend, MAX_BODY_BYTES).await;
    for user_name in [ALICE, BOB, CAROL] {
        fixture
            .create_user(json!({
                "schemas": [USER],
                "userName": user_name,
                "emails": [{ "value": user_name, "type": "work" }],
            }))
            .await;
    }
    fixture.group("Admins", &[]).await;
    let cases = filter_cases();
    let mut failures = Failures::default();
    let mut requests = 0;

    for (name, filter, expect) in &cases {
        let search = json!({ "schemas": [SEARCH_REQUEST], "filter": filter });
        let calls = [
            (
                format!("GET /Users with {name}"),
                fixture.call(Method::GET, &format!("/Users{}", filter_query(filter, ""))),
            ),
            (
                format!("POST /Users/.search with {name}"),
                fixture.call(Method::POST, "/Users/.search").json(&search),
            ),
            (
                format!("POST /.search with {name}"),
                fixture.call(Method::POST, "/.search").json(&search),
            ),
        ];
        for (request, call) in calls {
            requests += 1;
            let result = match expect {
                Expect::Fails(outcome) => run_case(&fixture, call, *outcome).await,
                Expect::Matches(expected) => {
                    let reply = fixture.send(call).await;
                    Outcome::Success(200).verify(&reply).and_then(|()| {
                        let found = names(&reply.body);
                        if found == sorted(expected) {
                            Ok(())
                        } else {
                            Err(format!("expected {expected:?}, found {found:?}"))
                        }
                    })
                }
            };
            failures.record(&request, result);
        }
    }

    // A query string that is not UTF-8 once decoded.
    for (name, query) in [
        ("a filter of invalid UTF-8", "?filter=%FF%FE"),
        ("a filter of a lone percent sign", "?filter=%"),
    ] {
        requests += 1;
        let call = fixture.call(Method::GET, &format!("/Users{query}"));
        let request = format!("GET /Users with {name}");
        failures.record(&request, run_case(&fixture, call, INVALID_FILTER).await);
    }
    println!(
        "hostile filters: {} filters, {requests} requests on {backend:?}",
        cases.len()
    );
    failures.assert_none("hostile filters", requests);
}

/// PATCH paths with deep, long and malformed value filters, against a user
/// with one work email.
async fn hostile_patch_paths(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture
        .create_user(json!({
            "schemas": [USER],
            "userName": ALICE,
            "emails": [{ "value": ALICE, "type": "work", "primary": true }],
        }))
        .await;
    let target = format!("/Users/{user}");
    let work = r#"type eq "work""#;
    let ok = Outcome::Success(200);
    let or_chain = (0..100)
        .map(|n| format!(r#"type eq "t{n}""#))
        .chain([work.to_owned()])
        .collect::<Vec<_>>()
        .join(" or ");
    // (case, op, path, outcome)
    let cases: Vec<(&str, &str, String, Outcome)> = vec![
        (
            "32 nested parentheses",
            "replace",
            format!("emails[{}].display", in_parentheses(32, work)),
            ok,
        ),
        (
            "33 nested parentheses",
            "replace",
            format!("emails[{}].display", in_parentheses(33, work)),
            INVALID_PATH,
        ),
        (
            "1,000 nested parentheses",
            "replace",
            format!("emails[{}].display", in_parentheses(1_000, work)),
            INVALID_PATH,
        ),
        (
            "33 nested not",
            "replace",
            format!("emails[{}].display", negated(33, work)),
            INVALID_PATH,
        ),
        (
            "100 or terms",
            "replace",
            format!("emails[{or_chain}].display"),
            ok,
        ),
        (
            "a literal of 5,000 bytes",
            "replace",
            format!(r#"emails[type eq "{}"].display"#, "w".repeat(5_000)),
            INVALID_PATH,
        ),
        (
            "no closing bracket",
            "replace",
            format!("emails[{work}"),
            INVALID_PATH,
        ),
        (
            "an escaped closing quote",
            "replace",
            r#"emails[type eq "work\"].display"#.to_owned(),
            INVALID_PATH,
        ),
        (
            "a bracket inside the literal",
            "replace",
            r#"emails[type eq "wo]rk"].display"#.to_owned(),
            ok,
        ),
        (
            "a NUL escape in the literal",
            "replace",
            r#"emails[type eq "\u0000"].display"#.to_owned(),
            INVALID_VALUE,
        ),
        (
            "a raw NUL in the literal",
            "replace",
            "emails[type eq \"\0\"].display".to_owned(),
            INVALID_PATH,
        ),
        (
            "a percent sign that matches nothing",
            "remove",
            r#"emails[value co "%"]"#.to_owned(),
            ok,
        ),
        (
            "two value filters",
            "replace",
            format!("emails[{work}][type eq \"home\"]"),
            INVALID_PATH,
        ),
        (
            "two sub-attributes",
            "replace",
            format!("emails[{work}].value.display"),
            INVALID_PATH,
        ),
        (
            "a nested value filter",
            "replace",
            format!("emails[emails[{work}]]"),
            INVALID_PATH,
        ),
        (
            "a sub-attribute of 4,000 bytes",
            "replace",
            format!("emails[{work}].{}", "v".repeat(4_000)),
            INVALID_PATH,
        ),
        (
            "a path of 10,000 bytes",
            "replace",
            "a".repeat(10_000),
            INVALID_PATH,
        ),
        (
            "a raw NUL in the attribute",
            "replace",
            "emai\0ls".to_owned(),
            INVALID_PATH,
        ),
        (
            "a schema URN of 1,000 parts",
            "replace",
            format!("urn:{}userName", "x:".repeat(1_000)),
            INVALID_PATH,
        ),
        (
            "1,000 dots",
            "replace",
            format!("emails{}", ".".repeat(1_000)),
            INVALID_PATH,
        ),
        (
            "a Group attribute",
            "remove",
            r#"members[value eq "x"]"#.to_owned(),
            INVALID_PATH,
        ),
    ];
    let mut failures = Failures::default();
    for (case, op, path, outcome) in &cases {
        let operation = if *op == "remove" {
            json!({ "op": op, "path": path })
        } else {
            json!({ "op": op, "path": path, "value": "Work address" })
        };
        let body = json!({ "schemas": [PATCH_OP], "Operations": [operation] });
        let call = fixture.call(Method::PATCH, &target).json(&body);
        let request = format!("PATCH {target} {op} with {case}");
        failures.record(&request, run_case(&fixture, call, *outcome).await);
    }
    println!("hostile PATCH paths: {} cases on {backend:?}", cases.len());
    failures.assert_none("hostile PATCH paths", cases.len());
}
