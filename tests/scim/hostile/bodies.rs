//! Huge and deeply nested JSON bodies for POST, PUT, PATCH and `.search`:
//! arrays and objects nested 10 to 100,000 levels, strings up to 2 MB,
//! 10,000 array elements, object members and operations, and bodies at and
//! over `scim.max_body_bytes`. Legal input succeeds, and everything else
//! gets a SCIM error, never a 500 or a crash.

use http::Method;

use super::{
    incompressible, run_case, Failures, Outcome, INVALID_PATH, INVALID_SYNTAX, INVALID_VALUE,
    MAX_BODY_BYTES, TOO_LARGE,
};
use crate::support::{
    both_backends, Backend, Fixture, ENTERPRISE, GROUP, PATCH_OP, SEARCH_REQUEST, USER,
};

/// The `userName` of the User that PUT and PATCH cases change.
const TARGET_USER: &str = "target@example.com";

/// The `displayName` of the Group that PUT and PATCH cases change.
const TARGET_GROUP: &str = "Target";

both_backends!(hostile_bodies);

/// Where a case sends its body.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// `/Users`.
    Users,
    /// `/Users/{id}` of the target user.
    User,
    /// `/Groups`.
    Groups,
    /// `/Groups/{id}` of the target group.
    Group,
    /// `/Users/.search`.
    UserSearch,
    /// `/.search`.
    RootSearch,
}

/// One request of the table: a raw body, so it can be invalid JSON or too
/// deep for `serde_json::Value`.
struct Case {
    name: String,
    method: Method,
    target: Target,
    body: Vec<u8>,
    outcome: Outcome,
}

/// Returns `depth` nested JSON arrays around `1`.
fn nested_arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// Returns `depth` nested JSON objects, each with one member `a`, around `1`.
fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

/// Builds the cases, giving every create that succeeds a name of its own.
struct Table {
    cases: Vec<Case>,
    created: usize,
}

impl Table {
    /// Returns a fresh `userName` or group `displayName`.
    fn fresh_name(&mut self) -> String {
        self.created += 1;
        format!("body{}@example.com", self.created)
    }

    fn push(
        &mut self,
        name: impl Into<String>,
        method: Method,
        target: Target,
        body: String,
        outcome: Outcome,
    ) {
        self.cases.push(Case {
            name: name.into(),
            method,
            target,
            body: body.into_bytes(),
            outcome,
        });
    }

    /// Adds a `POST /Users` of a new user with the raw members `extra`.
    fn post_user(&mut self, name: &str, extra: &str, outcome: Outcome) {
        let body = format!(
            r#"{{"schemas":["{USER}"],"userName":"{}",{extra}}}"#,
            self.fresh_name()
        );
        self.push(name, Method::POST, Target::Users, body, outcome);
    }

    /// Adds a `PUT` of the target user with the raw members `extra`.
    fn put_user(&mut self, name: &str, extra: &str, outcome: Outcome) {
        let body = format!(r#"{{"schemas":["{USER}"],"userName":"{TARGET_USER}",{extra}}}"#);
        self.push(name, Method::PUT, Target::User, body, outcome);
    }

    /// Adds a `PATCH` of `target` with the raw JSON array `operations`.
    fn patch(&mut self, name: &str, target: Target, operations: &str, outcome: Outcome) {
        let body = format!(r#"{{"schemas":["{PATCH_OP}"],"Operations":{operations}}}"#);
        self.push(name, Method::PATCH, target, body, outcome);
    }

    /// Adds a `POST /Groups` of a new group with the raw members `extra`.
    fn post_group(&mut self, name: &str, extra: &str, outcome: Outcome) {
        let body = format!(
            r#"{{"schemas":["{GROUP}"],"displayName":"{}",{extra}}}"#,
            self.fresh_name()
        );
        self.push(name, Method::POST, Target::Groups, body, outcome);
    }

    /// Adds a `POST .search` at `target` with the raw members `extra`.
    fn search(&mut self, name: &str, target: Target, extra: &str, outcome: Outcome) {
        let body = format!(r#"{{"schemas":["{SEARCH_REQUEST}"],{extra}}}"#);
        self.push(name, Method::POST, target, body, outcome);
    }
}

fn cases(member_id: &str) -> Vec<Case> {
    let mut table = Table {
        cases: Vec::new(),
        created: 0,
    };
    nesting_cases(&mut table);
    long_string_cases(&mut table);
    many_member_cases(&mut table, member_id);
    size_limit_cases(&mut table);
    syntax_cases(&mut table);
    table.cases
}

/// Arrays and objects nested 10 levels (legal in an attribute that no
/// schema defines, which is dropped), 100 levels (deeper than the 16 a
/// resource may have), and 1,000 and 100,000 levels (deeper than the JSON
/// parser goes).
fn nesting_cases(table: &mut Table) {
    let created = Outcome::Success(201);
    let ok = Outcome::Success(200);
    // (depth, POST, PUT and PATCH, .search)
    let depths = [
        (10, created, ok, ok),
        (100, INVALID_VALUE, INVALID_VALUE, ok),
        (1_000, INVALID_SYNTAX, INVALID_SYNTAX, INVALID_SYNTAX),
        (100_000, INVALID_SYNTAX, INVALID_SYNTAX, INVALID_SYNTAX),
    ];
    for (depth, create, change, search) in depths {
        for (shape, nested) in [
            ("arrays", nested_arrays(depth)),
            ("objects", nested_objects(depth)),
        ] {
            let extra = format!(r#""x-nested":{nested}"#);
            let name = format!("an unknown attribute of {shape} nested {depth} deep");
            table.post_user(&name, &extra, create);
            table.put_user(&name, &extra, change);
            table.post_group(&name, &extra, create);
            let operations = format!(r#"[{{"op":"add","value":{{{extra}}}}}]"#);
            table.patch(&name, Target::User, &operations, change);
            table.search(&name, Target::UserSearch, &extra, search);
        }
    }
    let deep = nested_arrays(100);
    table.post_user(
        "name.givenName of arrays nested 100 deep",
        &format!(r#""name":{{"givenName":{deep}}}"#),
        INVALID_VALUE,
    );
    table.put_user(
        "the enterprise manager of arrays nested 100 deep",
        &format!(r#""{ENTERPRISE}":{{"manager":{deep}}}"#),
        INVALID_VALUE,
    );
    table.patch(
        "a name.givenName value of arrays nested 100 deep",
        Target::User,
        &format!(r#"[{{"op":"replace","path":"name.givenName","value":{deep}}}]"#),
        INVALID_VALUE,
    );
    table.patch(
        "an emails value of objects nested 100 deep",
        Target::User,
        &format!(
            r#"[{{"op":"add","path":"emails","value":{}}}]"#,
            nested_objects(100)
        ),
        INVALID_VALUE,
    );
    table.patch(
        "a members value of arrays nested 100,000 deep",
        Target::Group,
        &format!(
            r#"[{{"op":"add","path":"members","value":{}}}]"#,
            nested_arrays(100_000)
        ),
        INVALID_SYNTAX,
    );
    table.push(
        "100,000 unclosed '['",
        Method::POST,
        Target::Users,
        "[".repeat(100_000),
        INVALID_SYNTAX,
    );
    table.push(
        "a userName of 100,000 unclosed '{'",
        Method::PUT,
        Target::User,
        format!(r#"{{"userName":{}"#, "{".repeat(100_000)),
        INVALID_SYNTAX,
    );
    table.push(
        "100,000 '}'",
        Method::PATCH,
        Target::User,
        "}".repeat(100_000),
        INVALID_SYNTAX,
    );
    table.push(
        "arrays nested 600,000 deep, over the body limit",
        Method::POST,
        Target::Users,
        nested_arrays(600_000),
        TOO_LARGE,
    );
}

/// Strings up to the body limit. The attributes the directory indexes
/// (`userName`, `displayName`, `externalId`, `emails.value`) take at most
/// 1,024 bytes, and the others any length.
fn long_string_cases(table: &mut Table) {
    let at_limit = incompressible(1_024, 1);
    let over_limit = incompressible(1_025, 2);
    let huge = incompressible(900_000, 3);
    let long = incompressible(100_000, 4);

    table.push(
        "a userName of 1,024 bytes",
        Method::POST,
        Target::Users,
        format!(r#"{{"schemas":["{USER}"],"userName":"{at_limit}"}}"#),
        Outcome::Success(201),
    );
    table.push(
        "a userName of 1,025 bytes",
        Method::POST,
        Target::Users,
        format!(r#"{{"schemas":["{USER}"],"userName":"{over_limit}"}}"#),
        INVALID_VALUE,
    );
    table.push(
        "a userName of 512 'İ', 1,024 bytes that grow when folded",
        Method::POST,
        Target::Users,
        format!(
            r#"{{"schemas":["{USER}"],"userName":"{}"}}"#,
            "İ".repeat(512)
        ),
        Outcome::Success(201),
    );
    table.push(
        "a userName of 600 'é', 1,200 bytes",
        Method::POST,
        Target::Users,
        format!(
            r#"{{"schemas":["{USER}"],"userName":"{}"}}"#,
            "é".repeat(600)
        ),
        INVALID_VALUE,
    );
    table.push(
        "a userName of 900,000 bytes",
        Method::POST,
        Target::Users,
        format!(r#"{{"schemas":["{USER}"],"userName":"{huge}"}}"#),
        INVALID_VALUE,
    );
    table.put_user(
        "a displayName of 100,000 bytes",
        &format!(r#""displayName":"{long}""#),
        INVALID_VALUE,
    );
    table.put_user(
        "an externalId of 100,000 bytes",
        &format!(r#""externalId":"{long}""#),
        INVALID_VALUE,
    );
    table.post_user(
        "an email of 100,000 bytes",
        &format!(r#""emails":[{{"value":"{long}"}}]"#),
        INVALID_VALUE,
    );
    table.post_user(
        "an email of 1,024 bytes",
        &format!(r#""emails":[{{"value":"{at_limit}"}}]"#),
        Outcome::Success(201),
    );
    table.push(
        "a group displayName of 100,000 bytes",
        Method::POST,
        Target::Groups,
        format!(r#"{{"schemas":["{GROUP}"],"displayName":"{long}"}}"#),
        INVALID_VALUE,
    );
    table.push(
        "a group externalId of 100,000 bytes",
        Method::PUT,
        Target::Group,
        format!(
            r#"{{"schemas":["{GROUP}"],"displayName":"{TARGET_GROUP}","externalId":"{long}"}}"#
        ),
        INVALID_VALUE,
    );
    table.patch(
        "an op of 900,000 bytes",
        Target::User,
        &format!(r#"[{{"op":"{huge}","path":"title","value":"x"}}]"#),
        INVALID_SYNTAX,
    );
    table.patch(
        "a path that is an array of 10,000 strings",
        Target::User,
        &format!(
            r#"[{{"op":"replace","path":[{}],"value":"x"}}]"#,
            repeated(10_000, |n| format!(r#""title{n}""#))
        ),
        INVALID_PATH,
    );
    table.patch(
        "an enterprise extension value of 900,000 bytes",
        Target::User,
        &format!(r#"[{{"op":"replace","path":"{ENTERPRISE}","value":"{huge}"}}]"#),
        INVALID_VALUE,
    );
    table.patch(
        "an id of 900,000 bytes without a path",
        Target::User,
        &format!(r#"[{{"op":"replace","value":{{"id":"{huge}"}}}}]"#),
        Outcome::Success(200),
    );
    table.post_user(
        "a title of 900,000 bytes",
        &format!(r#""title":"{huge}""#),
        Outcome::Success(201),
    );
    table.post_user(
        "an unknown attribute name of 900,000 bytes",
        &format!(r#""{huge}":1"#),
        Outcome::Success(201),
    );
    table.patch(
        "a userName replaced by 100,000 bytes",
        Target::User,
        &format!(r#"[{{"op":"replace","path":"userName","value":"{long}"}}]"#),
        INVALID_VALUE,
    );
    table.patch(
        "an email of 100,000 bytes added",
        Target::User,
        &format!(r#"[{{"op":"add","path":"emails","value":[{{"value":"{long}"}}]}}]"#),
        INVALID_VALUE,
    );
    table.patch(
        "a group renamed to 100,000 bytes without a path",
        Target::Group,
        &format!(r#"[{{"op":"replace","value":{{"displayName":"{long}"}}}}]"#),
        INVALID_VALUE,
    );
    table.patch(
        "a title of 900,000 bytes",
        Target::User,
        &format!(r#"[{{"op":"replace","path":"title","value":"{huge}"}}]"#),
        Outcome::Success(200),
    );
    table.push(
        "a userName of 2,000,000 bytes, over the body limit",
        Method::POST,
        Target::Users,
        format!(
            r#"{{"schemas":["{USER}"],"userName":"{}"}}"#,
            incompressible(2_000_000, 5)
        ),
        TOO_LARGE,
    );
}

/// Joins `count` copies of `item(n)` with commas.
fn repeated(count: usize, item: impl Fn(usize) -> String) -> String {
    (0..count).map(item).collect::<Vec<_>>().join(",")
}

/// 10,000 array elements, object members, emails, group members and PATCH
/// operations, and one body with every User attribute.
fn many_member_cases(table: &mut Table, member_id: &str) {
    table.post_user(
        "an unknown attribute of 10,000 array elements",
        &format!(r#""x-many":[{}]"#, repeated(10_000, |n| n.to_string())),
        Outcome::Success(201),
    );
    table.post_user(
        "an unknown attribute of 10,000 object members",
        &format!(
            r#""x-many":{{{}}}"#,
            repeated(10_000, |n| format!(r#""k{n}":{n}"#))
        ),
        Outcome::Success(201),
    );
    table.post_user(
        "50,000 unknown attributes",
        &repeated(50_000, |n| format!(r#""k{n}":{n}"#)),
        Outcome::Success(201),
    );
    table.post_user(
        "100,000 unknown attributes, over the body limit",
        &repeated(100_000, |n| format!(r#""unknown{n}":{n}"#)),
        TOO_LARGE,
    );
    table.post_user(
        "10,000 emails",
        &format!(
            r#""emails":[{}]"#,
            repeated(10_000, |n| format!(r#"{{"value":"e{n}@example.com"}}"#))
        ),
        Outcome::Success(201),
    );
    table.put_user(
        "10,000 emails given as numbers",
        &format!(r#""emails":[{}]"#, repeated(10_000, |n| n.to_string())),
        INVALID_VALUE,
    );
    table.post_group(
        "10,000 copies of one member",
        &format!(
            r#""members":[{}]"#,
            repeated(10_000, |_| format!(r#"{{"value":"{member_id}"}}"#))
        ),
        Outcome::Success(201),
    );
    table.post_group(
        "10,000 members that are no users",
        &format!(
            r#""members":[{}]"#,
            repeated(10_000, |n| format!(
                r#"{{"value":"00000000-0000-4000-8000-{n:012}"}}"#
            ))
        ),
        INVALID_VALUE,
    );
    table.patch(
        "10,000 added members that are no users",
        Target::Group,
        &format!(
            r#"[{{"op":"add","path":"members","value":[{}]}}]"#,
            repeated(10_000, |n| format!(r#"{{"value":"missing-{n}"}}"#))
        ),
        INVALID_VALUE,
    );
    let title_operation = |n: usize| format!(r#"{{"op":"replace","path":"title","value":"t{n}"}}"#);
    table.patch(
        "1,000 operations",
        Target::User,
        &format!("[{}]", repeated(1_000, title_operation)),
        Outcome::Success(200),
    );
    table.patch(
        "1,001 operations",
        Target::User,
        &format!("[{}]", repeated(1_001, title_operation)),
        INVALID_VALUE,
    );
    table.patch(
        "10,000 operations",
        Target::User,
        &format!("[{}]", repeated(10_000, title_operation)),
        INVALID_VALUE,
    );
    table.patch(
        "100,000 operations, over the body limit",
        Target::User,
        &format!("[{}]", repeated(100_000, title_operation)),
        TOO_LARGE,
    );
    table.search(
        "10,000 attributes to return",
        Target::RootSearch,
        &format!(
            r#""attributes":[{}]"#,
            repeated(10_000, |n| format!(r#""a{n}""#))
        ),
        Outcome::Success(200),
    );
    table.post_user(
        "every attribute of the User schemas",
        EVERY_USER_ATTRIBUTE,
        Outcome::Success(201),
    );
}

/// Every writable attribute of the core User schema and the Enterprise
/// User extension, each with a legal value.
const EVERY_USER_ATTRIBUTE: &str = r#"
    "name": {"formatted": "Ms. Ada B. Lovelace III", "familyName": "Lovelace",
             "givenName": "Ada", "middleName": "B.", "honorificPrefix": "Ms.",
             "honorificSuffix": "III"},
    "displayName": "Ada Lovelace", "nickName": "Ada",
    "profileUrl": "https://example.com/ada", "title": "Analyst",
    "userType": "Employee", "preferredLanguage": "en-GB", "locale": "en-GB",
    "timezone": "Europe/London", "active": true, "password": "not stored",
    "externalId": "ext-ada",
    "emails": [{"value": "ada@example.com", "display": "Ada", "type": "work", "primary": true}],
    "phoneNumbers": [{"value": "tel:+44-20-0000-0000", "display": "office", "type": "work", "primary": true}],
    "ims": [{"value": "ada", "display": "Ada", "type": "xmpp", "primary": true}],
    "photos": [{"value": "https://example.com/ada.png", "display": "Ada", "type": "photo", "primary": true}],
    "addresses": [{"formatted": "1 Main St", "streetAddress": "1 Main St", "locality": "London",
                   "region": "London", "postalCode": "N1", "country": "GB", "type": "work", "primary": true}],
    "entitlements": [{"value": "e", "display": "E", "type": "t", "primary": true}],
    "roles": [{"value": "r", "display": "R", "type": "t", "primary": true}],
    "x509Certificates": [{"value": "TUlJ", "display": "C", "type": "t", "primary": true}],
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
        "employeeNumber": "1", "costCenter": "c", "organization": "o", "division": "d",
        "department": "r", "manager": {"value": "m", "$ref": "https://example.com/m"}}
"#;

/// Bodies padded with spaces to exactly the limit, and one byte over it.
fn size_limit_cases(table: &mut Table) {
    let padded = |body: String, size: usize| {
        let padding = size.saturating_sub(body.len());
        format!("{body}{}", " ".repeat(padding))
    };
    let user = format!(r#"{{"schemas":["{USER}"],"userName":"exactly.at.limit@example.com"}}"#);
    table.push(
        "a body of exactly the limit",
        Method::POST,
        Target::Users,
        padded(user.clone(), MAX_BODY_BYTES),
        Outcome::Success(201),
    );
    let over = |body: String| padded(body, MAX_BODY_BYTES + 1);
    table.push(
        "a body one byte over the limit",
        Method::POST,
        Target::Users,
        over(user),
        TOO_LARGE,
    );
    table.push(
        "a body one byte over the limit",
        Method::PUT,
        Target::User,
        over(format!(
            r#"{{"schemas":["{USER}"],"userName":"{TARGET_USER}"}}"#
        )),
        TOO_LARGE,
    );
    table.push(
        "a body one byte over the limit",
        Method::PATCH,
        Target::Group,
        over(format!(r#"{{"schemas":["{PATCH_OP}"],"Operations":[]}}"#)),
        TOO_LARGE,
    );
    table.push(
        "a body one byte over the limit",
        Method::POST,
        Target::RootSearch,
        over(format!(r#"{{"schemas":["{SEARCH_REQUEST}"]}}"#)),
        TOO_LARGE,
    );
    table.push(
        "a body of 900,000 spaces",
        Method::POST,
        Target::Users,
        " ".repeat(900_000),
        INVALID_SYNTAX,
    );
}

/// Bodies that are not JSON, or JSON that contains what no attribute can.
fn syntax_cases(table: &mut Table) {
    table.cases.push(Case {
        name: "invalid UTF-8 in a userName".to_owned(),
        method: Method::POST,
        target: Target::Users,
        body: [
            format!(r#"{{"schemas":["{USER}"],"userName":"a"#).as_bytes(),
            b"\xff\xfe",
            br#"b"}"#,
        ]
        .concat(),
        outcome: INVALID_SYNTAX,
    });
    table.post_user(
        "a lone surrogate escape in the title",
        r#""title":"\ud800""#,
        INVALID_SYNTAX,
    );
    table.post_user("a number out of range", r#""x-big":1e400"#, INVALID_SYNTAX);
    table.post_user(
        "an integer of 40 digits in an unknown attribute",
        r#""x-big":1234567890123456789012345678901234567890"#,
        Outcome::Success(201),
    );
    table.push(
        "a byte order mark before the JSON",
        Method::POST,
        Target::Users,
        format!("\u{feff}{{\"schemas\":[\"{USER}\"],\"userName\":\"bom@example.com\"}}"),
        INVALID_SYNTAX,
    );
    table.push(
        "text after the JSON",
        Method::PUT,
        Target::User,
        format!(r#"{{"schemas":["{USER}"],"userName":"{TARGET_USER}"}} {{}}"#),
        INVALID_SYNTAX,
    );
    table.push(
        "100,000 spaces before the JSON",
        Method::POST,
        Target::Users,
        format!(
            r#"{}{{"schemas":["{USER}"],"userName":"spaced@example.com"}}"#,
            " ".repeat(100_000)
        ),
        Outcome::Success(201),
    );
    table.post_user(
        "a NUL escape in the title",
        r#""title":"a\u0000b""#,
        INVALID_VALUE,
    );
    table.push(
        "a NUL escape in the userName",
        Method::POST,
        Target::Users,
        format!(r#"{{"schemas":["{USER}"],"userName":"nul\u0000@example.com"}}"#),
        INVALID_VALUE,
    );
    table.push(
        "a NUL escape in the schemas",
        Method::PUT,
        Target::User,
        format!(r#"{{"schemas":["{USER}","\u0000"],"userName":"{TARGET_USER}"}}"#),
        INVALID_VALUE,
    );
    table.patch(
        "a NUL escape in an email type",
        Target::User,
        r#"[{"op":"add","path":"emails","value":[{"value":"x@example.com","type":"\u0000"}]}]"#,
        INVALID_VALUE,
    );
    table.post_group(
        "a NUL escape in the group externalId",
        r#""members":[],"externalId":"\u0000""#,
        INVALID_VALUE,
    );
    table.post_user(
        "control characters other than NUL in the title",
        r#""title":"\u0001\u0007\u001b[31m\r\n""#,
        Outcome::Success(201),
    );
}

async fn hostile_bodies(backend: Backend) {
    let fixture = Fixture::with_max_body_bytes(backend, MAX_BODY_BYTES).await;
    let user = fixture.user(TARGET_USER).await;
    let group = fixture.group(TARGET_GROUP, &[&user]).await;
    let cases = cases(&user);
    println!("hostile bodies: {} cases on {backend:?}", cases.len());

    let mut failures = Failures::default();
    for case in &cases {
        let target = match case.target {
            Target::Users => "/Users".to_owned(),
            Target::User => format!("/Users/{user}"),
            Target::Groups => "/Groups".to_owned(),
            Target::Group => format!("/Groups/{group}"),
            Target::UserSearch => "/Users/.search".to_owned(),
            Target::RootSearch => "/.search".to_owned(),
        };
        let request = format!(
            "{} {target} with {} ({} bytes)",
            case.method,
            case.name,
            case.body.len()
        );
        let call = fixture
            .call(case.method.clone(), &target)
            .raw_body(&case.body);
        failures.record(&request, run_case(&fixture, call, case.outcome).await);
    }
    failures.assert_none("hostile bodies", cases.len());
}
