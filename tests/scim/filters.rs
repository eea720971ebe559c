//! Filters over the handler (every operator, `and`/`or`/`not`, grouping,
//! value paths, URN-qualified attributes, `meta` dates, invalid filters),
//! `attributes` and `excludedAttributes`, and `POST .search`.

use std::time::Duration;

use http::Method;
use serde_json::{json, Value};

use crate::support::{
    assert_list, both_backends, filter_query, Backend, Fixture, ENTERPRISE, GROUP, SEARCH_REQUEST,
    USER,
};

/// Three users that differ in every attribute the filters below look at.
/// They are created in this order, a few milliseconds apart, so their
/// `meta.lastModified` values are ordered too.
fn people() -> [Value; 3] {
    [
        json!({
            "schemas": [USER, ENTERPRISE],
            "userName": "Alice@Example.com",
            "displayName": "Alice Liddell",
            "name": { "givenName": "Alice", "familyName": "Liddell" },
            "title": "Engineer",
            "externalId": "ext-alice",
            "active": true,
            "emails": [
                { "value": "alice@example.com", "type": "work", "primary": true },
                { "value": "alice@home.test", "type": "home" }
            ],
            ENTERPRISE: { "employeeNumber": "100", "department": "R&D", "manager": { "value": "mgr-1" } }
        }),
        json!({
            "schemas": [USER, ENTERPRISE],
            "userName": "bob@example.com",
            "displayName": "Bob Builder",
            "name": { "givenName": "Bob", "familyName": "Builder" },
            "title": "Manager",
            "externalId": "ext-bob",
            "active": false,
            "emails": [{ "value": "bob@example.com", "type": "work" }],
            ENTERPRISE: { "employeeNumber": "200", "department": "Sales" }
        }),
        json!({
            "schemas": [USER],
            "userName": "carol@other.test",
            "displayName": "Carol \"CJ\" O'Neil",
            "externalId": "EXT-carol",
            "active": true
        }),
    ]
}

/// The created people: `(id, userName, created user)` in creation order.
struct People {
    created: Vec<(String, String, Value)>,
}

impl People {
    async fn create(fixture: &Fixture) -> People {
        let mut created = Vec::new();
        for person in people() {
            let reply = fixture.post("/Users", &person).await;
            reply.expect_status(201, &format!("POST {person}"));
            let user_name = person["userName"]
                .as_str()
                .expect("every person has a userName")
                .to_owned();
            created.push((reply.id(), user_name, reply.body.clone()));
            // Timestamps are rendered in milliseconds, so keep them apart.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        People { created }
    }

    fn user(&self, user_name: &str) -> &Value {
        &self
            .created
            .iter()
            .find(|(_, name, _)| name == user_name)
            .unwrap_or_else(|| panic!("no person {user_name}"))
            .2
    }

    fn id(&self, user_name: &str) -> String {
        self.user(user_name)["id"]
            .as_str()
            .expect("created users have an id")
            .to_owned()
    }
}

/// Returns the sorted userNames of a list response.
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

const ALICE: &str = "Alice@Example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@other.test";

both_backends!(
    filter_operators,
    empty_external_id_filter,
    filtered_paging,
    non_ascii_user_name,
    filter_meta_dates,
    filter_group_members,
    invalid_filters_rejected,
    attribute_selection_get,
    attribute_selection_list_create,
    search_per_resource_type,
    search_at_root,
);

async fn filter_operators(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    People::create(&fixture).await;
    let employee_number = format!("{ENTERPRISE}:employeeNumber eq \"100\"");
    let manager = format!("{ENTERPRISE}:manager.value eq \"mgr-1\"");
    let department = format!("{ENTERPRISE}:department pr");
    let core_user_name = format!("{USER}:userName eq \"carol@other.test\"");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("userName eq \"bob@example.com\"", vec![BOB]),
        ("USERNAME EQ \"BOB@EXAMPLE.COM\"", vec![BOB]),
        ("userName ne \"bob@example.com\"", vec![ALICE, CAROL]),
        ("userName co \"EXAMPLE\"", vec![ALICE, BOB]),
        ("userName sw \"CAROL\"", vec![CAROL]),
        ("userName ew \"@example.com\"", vec![ALICE, BOB]),
        ("userName gt \"bob@example.com\"", vec![CAROL]),
        ("userName ge \"bob@example.com\"", vec![BOB, CAROL]),
        ("userName lt \"bob@example.com\"", vec![ALICE]),
        ("userName le \"bob@example.com\"", vec![ALICE, BOB]),
        ("title pr", vec![ALICE, BOB]),
        ("not (title pr)", vec![CAROL]),
        ("externalId eq \"ext-alice\"", vec![ALICE]),
        ("externalId eq \"EXT-ALICE\"", vec![]),
        ("active eq false", vec![BOB]),
        ("active eq true", vec![ALICE, CAROL]),
        (
            "title eq \"Engineer\" or title eq \"Manager\"",
            vec![ALICE, BOB],
        ),
        ("title pr and active eq true", vec![ALICE]),
        (
            "userName sw \"b\" or userName sw \"c\" and active eq false",
            vec![BOB],
        ),
        (
            "(userName sw \"b\" or userName sw \"c\") and active eq true",
            vec![CAROL],
        ),
        ("not (userName sw \"a\" or userName sw \"b\")", vec![CAROL]),
        (
            "emails[type eq \"work\" and value ew \"example.com\"]",
            vec![ALICE, BOB],
        ),
        ("emails[type eq \"home\"]", vec![ALICE]),
        (
            "emails[type eq \"work\"].value eq \"bob@example.com\"",
            vec![BOB],
        ),
        ("emails.value co \"home\"", vec![ALICE]),
        ("emails eq \"alice@home.test\"", vec![ALICE]),
        ("name.familyName eq \"builder\"", vec![BOB]),
        ("displayName eq \"Carol \\\"CJ\\\" O'Neil\"", vec![CAROL]),
        (&employee_number, vec![ALICE]),
        (&manager, vec![ALICE]),
        (&department, vec![ALICE, BOB]),
        (&core_user_name, vec![CAROL]),
        ("meta.resourceType eq \"User\"", vec![ALICE, BOB, CAROL]),
        (
            "userName eq \"bob@example.com\" or userName eq \"Alice@Example.com\"",
            vec![ALICE, BOB],
        ),
        ("not (userName eq \"bob@example.com\")", vec![ALICE, CAROL]),
        ("userName eq \"bob@example.com\" and active eq true", vec![]),
        ("externalId eq ext-bob", vec![BOB]),
        ("emails.value eq \"ALICE@HOME.TEST\"", vec![ALICE]),
        (
            "emails[type eq \"home\"].value eq \"bob@example.com\"",
            vec![],
        ),
        ("displayName eq \"alice liddell\"", vec![ALICE]),
    ];
    for (filter, expected) in cases {
        let target = format!("/Users{}", filter_query(filter, ""));
        let reply = fixture.get(&target).await;
        reply.expect_status(200, &format!("filter {filter}"));
        assert_eq!(
            user_names(&reply.body),
            expected,
            "filter {filter}: matching userNames"
        );
        assert_list(
            &reply.body,
            expected.len() as u64,
            1,
            &format!("filter {filter}"),
        );
    }
}

/// Users with an empty `externalId` do not clash in the unique index, and a
/// filter on the empty value still finds them.
async fn empty_external_id_filter(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    People::create(&fixture).await;
    let empty = ["dave@example.com", "erin@example.com"];
    for user_name in empty {
        let user = json!({ "schemas": [USER], "userName": user_name, "externalId": "" });
        let reply = fixture.post("/Users", &user).await;
        reply.expect_status(201, &format!("POST {user_name} with an empty externalId"));
        assert_eq!(reply.body["externalId"], json!(""), "stored as sent");
    }
    let filter = "externalId eq \"\"";
    let reply = fixture
        .get(&format!("/Users{}", filter_query(filter, "")))
        .await;
    reply.expect_status(200, &format!("filter {filter}"));
    assert_eq!(user_names(&reply.body), empty, "filter {filter}");
}

async fn filtered_paging(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    People::create(&fixture).await;
    let target = format!(
        "/Users{}",
        filter_query("userName ew \"@example.com\"", "&startIndex=2&count=1")
    );
    let reply = fixture.get(&target).await;
    reply.expect_status(200, &target);
    assert_list(&reply.body, 2, 2, &target);
    assert_eq!(
        user_names(&reply.body),
        vec![BOB],
        "{target}: the second match"
    );
}

async fn non_ascii_user_name(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.user("Jürgen.Öztürk@Example.com").await;
    let target = format!(
        "/Users{}",
        filter_query("userName eq \"JÜRGEN.ÖZTÜRK@example.com\"", "")
    );
    let reply = fixture.get(&target).await;
    reply.expect_status(200, &target);
    assert_eq!(
        crate::support::resource_ids(&reply.body),
        vec![id],
        "{target}: expected the user whatever the case of its non-ASCII letters"
    );
    let duplicate = fixture
        .post(
            "/Users",
            &json!({ "schemas": [USER], "userName": "jürgen.öztürk@EXAMPLE.COM" }),
        )
        .await;
    duplicate.expect_error(
        409,
        Some("uniqueness"),
        "POST a userName differing only in the case of non-ASCII letters",
    );
}

async fn filter_meta_dates(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let people = People::create(&fixture).await;
    let alice_modified = people.user(ALICE)["meta"]["lastModified"]
        .as_str()
        .expect("meta.lastModified is a string")
        .to_owned();
    let carol_created = people.user(CAROL)["meta"]["created"]
        .as_str()
        .expect("meta.created is a string")
        .to_owned();
    let cases = [
        (
            format!("meta.lastModified gt \"{alice_modified}\""),
            vec![BOB, CAROL],
        ),
        (
            format!("meta.lastModified ge \"{alice_modified}\""),
            vec![ALICE, BOB, CAROL],
        ),
        (
            format!("meta.created lt \"{carol_created}\""),
            vec![ALICE, BOB],
        ),
        (
            "meta.lastModified gt \"2000-01-01T00:00:00Z\"".to_owned(),
            vec![ALICE, BOB, CAROL],
        ),
        (
            "meta.lastModified gt \"2999-01-01T00:00:00Z\"".to_owned(),
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let target = format!("/Users{}", filter_query(&filter, ""));
        let reply = fixture.get(&target).await;
        reply.expect_status(200, &format!("filter {filter}"));
        assert_eq!(
            user_names(&reply.body),
            expected,
            "filter {filter}: matching userNames"
        );
    }
}

async fn filter_group_members(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let people = People::create(&fixture).await;
    let alice = people.id(ALICE);
    let bob = people.id(BOB);
    let admins = fixture.group("Admins", &[&alice]).await;
    let staff = fixture.group("Staff", &[&alice, &bob]).await;
    let cases = [
        (format!("members.value eq \"{bob}\""), vec![staff.clone()]),
        (
            format!("members[value eq \"{alice}\"]"),
            vec![admins.clone(), staff.clone()],
        ),
        ("displayName eq \"admins\"".to_owned(), vec![admins.clone()]),
        ("displayName sw \"S\"".to_owned(), vec![staff.clone()]),
    ];
    for (filter, mut expected) in cases {
        expected.sort();
        let target = format!("/Groups{}", filter_query(&filter, ""));
        let reply = fixture.get(&target).await;
        reply.expect_status(200, &format!("filter {filter}"));
        let mut ids = crate::support::resource_ids(&reply.body);
        ids.sort();
        assert_eq!(ids, expected, "filter {filter}: matching groups");
    }

    let target = format!(
        "/Users{}",
        filter_query(&format!("groups.value eq \"{admins}\""), "")
    );
    let reply = fixture.get(&target).await;
    reply.expect_status(200, &target);
    assert_eq!(
        user_names(&reply.body),
        vec![ALICE],
        "filter on the read-only groups of a User"
    );
}

async fn invalid_filters_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    People::create(&fixture).await;
    let filters = [
        "userName eq",
        "userName zz \"x\"",
        "(userName eq \"x\"",
        "userName eq \"x\")",
        "userName eq \"x\" and",
        "userName eq \"x\" or or userName eq \"y\"",
        "noSuchAttribute eq \"x\"",
        "not userName eq \"x\"",
        "userName eq \"unterminated",
        "emails[type eq \"work\"",
        "active gt true",
        "name eq \"Alice\"",
        "emails[type eq \"work\"[value eq \"x\"]]",
        "urn:example:unknown:2.0:User:userName eq \"x\"",
        "meta.lastModified gt \"not-a-date\"",
        "meta.created ge \"2020-13-45T00:00:00Z\"",
        "meta.lastModified lt 20200101",
        "userName pr and meta.created eq \"2020-01-01\"",
    ];
    for filter in filters {
        let target = format!("/Users{}", filter_query(filter, ""));
        let reply = fixture.get(&target).await;
        reply.expect_error(400, Some("invalidFilter"), &format!("filter {filter}"));
    }
}

/// Tells whether a JSON pointer resolves in `value`.
fn has(value: &Value, pointer: &str) -> bool {
    value.pointer(pointer).is_some()
}

async fn attribute_selection_get(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let people = People::create(&fixture).await;
    let alice = people.id(ALICE);
    let extension = format!("/{ENTERPRISE}");
    let employee_number = format!("/{ENTERPRISE}/employeeNumber");
    let department = format!("/{ENTERPRISE}/department");
    // (query, JSON pointers that must be present, pointers that must not)
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            "attributes=userName".to_owned(),
            vec!["/id", "/userName", "/schemas"],
            vec!["/displayName", "/emails", "/name", "/title"],
        ),
        (
            "attributes=USERNAME".to_owned(),
            vec!["/id", "/userName"],
            vec!["/displayName"],
        ),
        (
            "attributes=name.givenName".to_owned(),
            vec!["/id", "/name/givenName"],
            vec!["/name/familyName", "/userName"],
        ),
        (
            "attributes=emails.value".to_owned(),
            vec!["/emails/0/value"],
            vec!["/emails/0/type", "/userName"],
        ),
        (
            "attributes=userName,title".to_owned(),
            vec!["/userName", "/title"],
            vec!["/emails"],
        ),
        (
            "excludedAttributes=emails,name".to_owned(),
            vec!["/id", "/userName", "/title"],
            vec!["/emails", "/name"],
        ),
        (
            "excludedAttributes=id".to_owned(),
            vec!["/id", "/userName"],
            vec![],
        ),
        (
            format!("attributes={ENTERPRISE}:employeeNumber"),
            vec!["/id", &employee_number],
            vec![&department, "/userName"],
        ),
        (
            format!("excludedAttributes={ENTERPRISE}"),
            vec!["/id", "/userName"],
            vec![&extension],
        ),
        (
            "excludedAttributes=name.familyName".to_owned(),
            vec!["/name/givenName"],
            vec!["/name/familyName"],
        ),
    ];
    for (query, present, absent) in cases {
        let target = format!("/Users/{alice}?{query}");
        let reply = fixture.get(&target).await;
        reply.expect_status(200, &target);
        for pointer in present {
            assert!(
                has(&reply.body, pointer),
                "{target}: expected {pointer} in {}",
                reply.body
            );
        }
        for pointer in absent {
            assert!(
                !has(&reply.body, pointer),
                "{target}: expected no {pointer} in {}",
                reply.body
            );
        }
    }
}

async fn attribute_selection_list_create(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let people = People::create(&fixture).await;

    let target = "/Users?attributes=userName&count=10";
    let list = fixture.get(target).await;
    list.expect_status(200, target);
    for resource in list.body["Resources"].as_array().into_iter().flatten() {
        assert!(
            has(resource, "/id") && has(resource, "/userName"),
            "{target}: expected id and userName in {resource}"
        );
        assert!(
            !has(resource, "/displayName"),
            "{target}: expected no displayName in {resource}"
        );
    }

    let target = "/Users?excludedAttributes=emails";
    let list = fixture.get(target).await;
    for resource in list.body["Resources"].as_array().into_iter().flatten() {
        assert!(
            !has(resource, "/emails"),
            "{target}: expected no emails in {resource}"
        );
    }

    let target = format!("/Users/{}?attributes=userName", people.id(BOB));
    let patched = fixture
        .patch(
            &target,
            json!([{ "op": "replace", "path": "title", "value": "Lead" }]),
        )
        .await;
    patched.expect_status(200, &format!("PATCH {target}"));
    assert!(
        has(&patched.body, "/userName") && !has(&patched.body, "/title"),
        "PATCH {target}: expected only the selected attributes in {}",
        patched.body
    );

    let created = fixture
        .post(
            "/Users?attributes=userName",
            &json!({ "schemas": [USER], "userName": "dave@example.com", "displayName": "Dave" }),
        )
        .await;
    created.expect_status(201, "POST /Users?attributes=userName");
    assert!(
        has(&created.body, "/id") && has(&created.body, "/userName"),
        "POST with attributes: expected id and userName in {}",
        created.body
    );
    assert!(
        !has(&created.body, "/displayName"),
        "POST with attributes: expected no displayName in {}",
        created.body
    );
}

async fn search_per_resource_type(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    People::create(&fixture).await;
    let body = json!({
        "schemas": [SEARCH_REQUEST],
        "filter": "title pr",
        "startIndex": 1,
        "count": 1,
        "attributes": ["userName"]
    });
    let reply = fixture.post("/Users/.search", &body).await;
    reply.expect_status(200, "POST /Users/.search");
    assert_list(&reply.body, 2, 1, "POST /Users/.search");
    let found = &reply.body["Resources"][0];
    assert!(
        has(found, "/userName") && !has(found, "/title"),
        "expected only the selected attributes in {found}"
    );

    let excluded = json!({
        "schemas": [SEARCH_REQUEST],
        "filter": "userName eq \"bob@example.com\"",
        "excludedAttributes": ["emails"]
    });
    let reply = fixture.post("/Users/.search", &excluded).await;
    assert_eq!(
        user_names(&reply.body),
        vec![BOB],
        "POST /Users/.search with a filter"
    );
    assert!(
        !has(&reply.body["Resources"][0], "/emails"),
        "expected excludedAttributes applied in {}",
        reply.body
    );

    let no_schema = fixture
        .post("/Users/.search", &json!({ "filter": "title pr" }))
        .await;
    no_schema.expect_error(400, None, "POST /Users/.search without schemas");

    let bad_filter = fixture
        .post(
            "/Users/.search",
            &json!({ "schemas": [SEARCH_REQUEST], "filter": "title zz 1" }),
        )
        .await;
    bad_filter.expect_error(
        400,
        Some("invalidFilter"),
        "POST /Users/.search with an invalid filter",
    );
}

async fn search_at_root(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let people = People::create(&fixture).await;
    let admins = fixture.group("Admins", &[]).await;
    let body = json!({
        "schemas": [SEARCH_REQUEST],
        "filter": "displayName sw \"A\""
    });
    let reply = fixture.post("/.search", &body).await;
    reply.expect_status(200, "POST /.search");
    assert_list(&reply.body, 2, 1, "POST /.search");
    let mut found: Vec<(String, String)> = reply.body["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|resource| {
            (
                resource["meta"]["resourceType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                resource["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("Group".to_owned(), admins),
            ("User".to_owned(), people.id(ALICE))
        ],
        "POST /.search: expected the group and the user whose displayName starts with A"
    );
    assert!(
        reply.body["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|resource| resource["schemas"] == json!([GROUP])),
        "POST /.search: expected the Group schema on the group"
    );

    let paged = json!({ "schemas": [SEARCH_REQUEST], "startIndex": 2, "count": 2 });
    let reply = fixture.post("/.search", &paged).await;
    assert_list(&reply.body, 4, 2, "POST /.search startIndex 2 count 2");

    let get = fixture.send(fixture.call(Method::GET, "/.search")).await;
    get.expect_error(405, None, "GET /.search");
}
