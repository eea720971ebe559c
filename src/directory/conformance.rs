//! The conformance suite every [`Directory`] backend must pass.
//!
//! Each test is an async function taking a [`Fixture`]. A backend's test
//! module runs all of them with [`conformance_tests!`], which expands to one
//! `#[tokio::test]` per function, so every backend runs the same checks and
//! a failure names the test and the backend's module.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Directory, DirectoryError, Lookup, Page, ResourceKind, StoredResource};
use crate::tokens::{self, TokenRecord};

/// A fresh, empty directory of one backend, and the backend-specific hooks
/// the suite needs.
#[async_trait]
pub(crate) trait Fixture: Send + Sync {
    /// Returns the directory under test.
    fn directory(&self) -> Arc<dyn Directory>;
    /// Inserts `count` users made by [`test_user`], in bulk.
    async fn insert_test_users(&self, count: usize);
    /// Returns the database's plan for the query that [`Directory::list`]
    /// runs for a User lookup.
    async fn list_query_plan(&self, lookup: &Lookup) -> String;
    /// Returns the backend's name, for printed measurements.
    fn backend(&self) -> &'static str;
}

/// Expands to one `#[tokio::test]` per conformance test, each opening its
/// fixture with `$open`, an async expression returning a [`Fixture`].
macro_rules! conformance_tests {
    ($open:expr) => {
        $crate::directory::conformance::conformance_tests!(@each $open;
            create_and_get_round_trip,
            group_round_trip,
            replace_round_trip,
            delete_round_trip,
            invalid_documents_rejected,
            indexed_values_up_to_limit,
            user_name_unique_case_insensitive,
            external_id_unique_for_users,
            empty_external_id_never_clashes,
            concurrent_external_id_one_success,
            display_name_unique_for_groups,
            lookups_follow_case_rules,
            email_index_follows_replace,
            paging_is_stable,
            next_page_survives_deletion,
            group_members_composed,
            groups_of_users_in_one_call,
            invalid_member_rejected,
            user_delete_removes_membership,
            version_checks,
            failed_write_leaves_data_unchanged,
            concurrent_creates_one_success,
            concurrent_membership_updates_lose_none,
            tokens_round_trip,
            ping_succeeds,
            lookup_in_100k_users_uses_index,
        );
    };
    (@each $open:expr; $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let fixture = $open.await;
                $crate::directory::conformance::$test(&fixture).await;
            }
        )+
    };
}
pub(crate) use conformance_tests;

/// Builds user number `n` of bulk inserts, `user{n}@example.com`.
pub(crate) fn test_user(n: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("user{n}@example.com"),
        "externalId": format!("ext-{n}"),
        "displayName": format!("User {n}"),
        "name": {"givenName": "User", "familyName": format!("{n}")},
        "emails": [{"value": format!("user{n}@example.com"), "type": "work", "primary": true}],
        "active": true
    })
}

fn user(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true
    })
}

fn group(display_name: &str, member_ids: &[&str]) -> Value {
    let members: Vec<Value> = member_ids.iter().map(|id| json!({"value": id})).collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": display_name,
        "members": members
    })
}

async fn create_user(directory: &dyn Directory, user_name: &str) -> StoredResource {
    directory
        .create(ResourceKind::User, user(user_name))
        .await
        .expect("create user")
}

async fn create_group(directory: &dyn Directory, name: &str, members: &[&str]) -> StoredResource {
    directory
        .create(ResourceKind::Group, group(name, members))
        .await
        .expect("create group")
}

async fn get(directory: &dyn Directory, kind: ResourceKind, id: &str) -> Option<StoredResource> {
    directory.get(kind, id).await.expect("get")
}

async fn lookup_ids(directory: &dyn Directory, kind: ResourceKind, lookup: Lookup) -> Vec<String> {
    let listing = directory
        .list(kind, Some(&lookup), None)
        .await
        .expect("list");
    let ids: Vec<String> = listing.resources.into_iter().map(|r| r.id).collect();
    assert_eq!(listing.total, ids.len() as u64, "total of {lookup:?}");
    ids
}

fn member_values(resource: &StoredResource) -> Vec<String> {
    resource.document["members"]
        .as_array()
        .expect("a Group document has members")
        .iter()
        .map(|member| member["value"].as_str().expect("member value").to_owned())
        .collect()
}

pub(crate) async fn create_and_get_round_trip(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let created = directory
        .create(
            ResourceKind::User,
            json!({
                "id": "client-chosen",
                "meta": {"resourceType": "User"},
                "userName": "Alice@Example.com",
                "name": {"givenName": "Alice"},
                "active": true
            }),
        )
        .await
        .expect("create user");

    let id = uuid::Uuid::parse_str(&created.id).expect("id is a UUID");
    assert_eq!(id.get_version_num(), 4);
    assert_eq!(created.kind, ResourceKind::User);
    assert_eq!(created.version, 1);
    assert_eq!(created.created, created.last_modified);
    assert_eq!(
        created.document,
        json!({"userName": "Alice@Example.com", "name": {"givenName": "Alice"}, "active": true})
    );

    let fetched = get(&*directory, ResourceKind::User, &created.id).await;
    assert_eq!(fetched.as_ref(), Some(&created));
    assert_eq!(
        get(&*directory, ResourceKind::Group, &created.id).await,
        None
    );
    assert_eq!(
        get(&*directory, ResourceKind::User, "no-such-id").await,
        None
    );
    assert_eq!(directory.count(ResourceKind::User).await.expect("count"), 1);
}

pub(crate) async fn group_round_trip(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let member = create_user(&*directory, "member").await;
    let created = directory
        .create(
            ResourceKind::Group,
            json!({
                "displayName": "Admins",
                "externalId": "grp-1",
                "members": [{"value": member.id, "display": "member", "type": "User", "$ref": null}]
            }),
        )
        .await
        .expect("create group");

    assert_eq!(created.version, 1);
    assert_eq!(
        created.document,
        json!({
            "displayName": "Admins",
            "externalId": "grp-1",
            "members": [{"value": member.id, "display": "member", "type": "User"}]
        })
    );
    let fetched = get(&*directory, ResourceKind::Group, &created.id).await;
    assert_eq!(fetched.as_ref(), Some(&created));

    let empty = create_group(&*directory, "Empty", &[]).await;
    assert_eq!(empty.document["members"], json!([]));
    let without_members = directory
        .create(ResourceKind::Group, json!({"displayName": "No members"}))
        .await
        .expect("create group without members");
    assert_eq!(without_members.document["members"], json!([]));
}

pub(crate) async fn replace_round_trip(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let created = create_user(&*directory, "carol").await;
    tokio::time::sleep(Duration::from_millis(2)).await;

    let replaced = directory
        .replace(
            ResourceKind::User,
            &created.id,
            json!({"userName": "Carol", "active": false, "meta": {"version": "W/\"9\""}}),
            None,
        )
        .await
        .expect("replace user");
    assert_eq!(replaced.id, created.id);
    assert_eq!(replaced.version, 2);
    assert_eq!(replaced.created, created.created);
    assert!(replaced.last_modified > created.last_modified);
    assert_eq!(
        replaced.document,
        json!({"userName": "Carol", "active": false})
    );

    let fetched = get(&*directory, ResourceKind::User, &created.id).await;
    assert_eq!(fetched.as_ref(), Some(&replaced));

    let missing = directory
        .replace(ResourceKind::User, "no-such-id", user("x"), None)
        .await;
    assert!(
        matches!(missing, Err(DirectoryError::NotFound)),
        "{missing:?}"
    );
    let missing_versioned = directory
        .replace(ResourceKind::User, "no-such-id", user("x"), Some(1))
        .await;
    assert!(
        matches!(missing_versioned, Err(DirectoryError::NotFound)),
        "{missing_versioned:?}"
    );
    let wrong_kind = directory
        .replace(ResourceKind::Group, &created.id, group("g", &[]), None)
        .await;
    assert!(
        matches!(wrong_kind, Err(DirectoryError::NotFound)),
        "{wrong_kind:?}"
    );
}

pub(crate) async fn delete_round_trip(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let user = create_user(&*directory, "dave").await;
    let group = create_group(&*directory, "Ops", &[]).await;

    assert!(!directory
        .delete(ResourceKind::Group, &user.id)
        .await
        .expect("delete user id as group"));
    assert!(directory
        .delete(ResourceKind::User, &user.id)
        .await
        .expect("delete user"));
    assert_eq!(get(&*directory, ResourceKind::User, &user.id).await, None);
    assert!(!directory
        .delete(ResourceKind::User, &user.id)
        .await
        .expect("delete user twice"));

    assert!(directory
        .delete(ResourceKind::Group, &group.id)
        .await
        .expect("delete group"));
    assert_eq!(get(&*directory, ResourceKind::Group, &group.id).await, None);
    assert_eq!(directory.count(ResourceKind::User).await.expect("count"), 0);
    assert_eq!(
        directory.count(ResourceKind::Group).await.expect("count"),
        0
    );
}

pub(crate) async fn invalid_documents_rejected(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let cases = [
        (ResourceKind::User, json!({"displayName": "no userName"})),
        (ResourceKind::User, json!({"userName": ""})),
        (ResourceKind::User, json!("not an object")),
        (ResourceKind::Group, json!({"members": []})),
        (
            ResourceKind::Group,
            json!({"displayName": "g", "members": ["id"]}),
        ),
        (ResourceKind::User, json!({"userName": "nul\u{0}"})),
        (
            ResourceKind::User,
            json!({"userName": "u", "title": "a\u{0}b"}),
        ),
        (
            ResourceKind::Group,
            json!({"displayName": "g", "externalId": "\u{0}"}),
        ),
    ];
    for (kind, document) in cases {
        let result = directory.create(kind, document.clone()).await;
        assert!(
            matches!(result, Err(DirectoryError::InvalidDocument(_))),
            "{kind} {document}: {result:?}"
        );
    }
    assert_eq!(directory.count(ResourceKind::User).await.expect("count"), 0);
    assert_eq!(
        directory.count(ResourceKind::Group).await.expect("count"),
        0
    );
}

/// Returns `length` bytes of random hexadecimal digits and hyphens, which
/// PostgreSQL cannot compress below its index entry limit.
fn incompressible(length: usize) -> String {
    let mut text = String::new();
    while text.len() < length {
        text.push_str(&super::new_id());
    }
    text.truncate(length);
    text
}

pub(crate) async fn indexed_values_up_to_limit(fixture: &dyn Fixture) {
    use super::document::MAX_INDEXED_BYTES;
    let directory = fixture.directory();
    let at_limit = incompressible(MAX_INDEXED_BYTES);
    // 'İ' is 2 bytes and folds to 3, so the folded key is 1.5 times longer.
    let growing = "İ".repeat(MAX_INDEXED_BYTES / 2);
    for long in [&at_limit, &growing] {
        let user = json!({
            "userName": long,
            "displayName": long,
            "externalId": long,
            "emails": [{"value": long}],
        });
        let created = directory.create(ResourceKind::User, user).await;
        assert!(
            created.is_ok(),
            "a user with values of the limit: {created:?}"
        );
        let group = json!({"displayName": long, "externalId": long});
        let created = directory.create(ResourceKind::Group, group).await;
        assert!(
            created.is_ok(),
            "a group with values of the limit: {created:?}"
        );
    }

    let over_limit = incompressible(MAX_INDEXED_BYTES + 1);
    let cases = [
        (ResourceKind::User, json!({"userName": over_limit})),
        (
            ResourceKind::User,
            json!({"userName": "u", "emails": [{"value": over_limit}]}),
        ),
        (ResourceKind::Group, json!({"displayName": over_limit})),
    ];
    for (kind, document) in cases {
        let result = directory.create(kind, document).await;
        assert!(
            matches!(result, Err(DirectoryError::InvalidDocument(_))),
            "{kind} with a value of {} bytes: {result:?}",
            MAX_INDEXED_BYTES + 1
        );
    }
    assert_eq!(directory.count(ResourceKind::User).await.expect("count"), 2);
    assert_eq!(
        directory.count(ResourceKind::Group).await.expect("count"),
        2
    );
}

pub(crate) async fn user_name_unique_case_insensitive(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let bob = create_user(&*directory, "Bob@Example.com").await;

    let duplicate = directory
        .create(ResourceKind::User, user("BOB@example.COM"))
        .await;
    assert!(
        matches!(
            duplicate,
            Err(DirectoryError::Conflict {
                attribute: "userName"
            })
        ),
        "{duplicate:?}"
    );

    let found = directory
        .list(
            ResourceKind::User,
            Some(&Lookup::UserName("bob@EXAMPLE.com".to_owned())),
            None,
        )
        .await
        .expect("list");
    assert_eq!(found.total, 1);
    assert_eq!(found.resources[0].document["userName"], "Bob@Example.com");

    let carol = create_user(&*directory, "carol").await;
    let rename = directory
        .replace(ResourceKind::User, &carol.id, user("bob@example.com"), None)
        .await;
    assert!(
        matches!(
            rename,
            Err(DirectoryError::Conflict {
                attribute: "userName"
            })
        ),
        "{rename:?}"
    );

    let recase = directory
        .replace(ResourceKind::User, &bob.id, user("bob@example.com"), None)
        .await
        .expect("a user may change the case of its own userName");
    assert_eq!(recase.document["userName"], "bob@example.com");
}

pub(crate) async fn display_name_unique_for_groups(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    create_group(&*directory, "Admins", &[]).await;

    let duplicate = directory
        .create(ResourceKind::Group, group("ADMINS", &[]))
        .await;
    assert!(
        matches!(
            duplicate,
            Err(DirectoryError::Conflict {
                attribute: "displayName"
            })
        ),
        "{duplicate:?}"
    );

    let ops = create_group(&*directory, "Ops", &[]).await;
    let rename = directory
        .replace(ResourceKind::Group, &ops.id, group("admins", &[]), None)
        .await;
    assert!(
        matches!(
            rename,
            Err(DirectoryError::Conflict {
                attribute: "displayName"
            })
        ),
        "{rename:?}"
    );

    // Users' displayName is not unique.
    for user_name in ["first", "second"] {
        directory
            .create(
                ResourceKind::User,
                json!({"userName": user_name, "displayName": "Same Name"}),
            )
            .await
            .expect("users may share a displayName");
    }
}

pub(crate) async fn lookups_follow_case_rules(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let alice = directory
        .create(
            ResourceKind::User,
            json!({
                "userName": "Alice",
                "externalId": "Ext-A",
                "displayName": "Team Member",
                "emails": [
                    {"value": "Alice@Work.example", "type": "work"},
                    {"value": "alice@home.example", "type": "home"}
                ]
            }),
        )
        .await
        .expect("create alice")
        .id;
    let bob = directory
        .create(
            ResourceKind::User,
            json!({
                "userName": "bob",
                "externalId": "ext-a",
                "displayName": "TEAM member",
                "emails": [{"value": "bob@work.example"}]
            }),
        )
        .await
        .expect("create bob")
        .id;
    let admins = directory
        .create(
            ResourceKind::Group,
            json!({"displayName": "Admins", "externalId": "G-1"}),
        )
        .await
        .expect("create group")
        .id;

    use Lookup::*;
    use ResourceKind::{Group, User};
    let cases: Vec<(ResourceKind, Lookup, Vec<&String>)> = vec![
        (User, UserName("ALICE".into()), vec![&alice]),
        (User, UserName("alic".into()), vec![]),
        (User, ExternalId("Ext-A".into()), vec![&alice]),
        (User, ExternalId("ext-a".into()), vec![&bob]),
        (User, ExternalId("EXT-A".into()), vec![]),
        (User, DisplayName("team MEMBER".into()), vec![&alice, &bob]),
        (User, Email("ALICE@work.EXAMPLE".into()), vec![&alice]),
        (User, Email("alice@home.example".into()), vec![&alice]),
        (User, Email("bob@work.example".into()), vec![&bob]),
        (User, Email("nobody@work.example".into()), vec![]),
        (User, Id(alice.clone()), vec![&alice]),
        (User, Id(alice.to_uppercase()), vec![]),
        (User, Id(admins.clone()), vec![]),
        (Group, DisplayName("admins".into()), vec![&admins]),
        (Group, ExternalId("G-1".into()), vec![&admins]),
        (Group, ExternalId("g-1".into()), vec![]),
        (Group, UserName("Alice".into()), vec![]),
        (Group, Email("alice@home.example".into()), vec![]),
        (Group, Id(admins.clone()), vec![&admins]),
        (Group, Id(alice.clone()), vec![]),
        (User, UserName("Alice\u{0}".into()), vec![]),
        (User, Email("\u{0}".into()), vec![]),
        (Group, ExternalId("G-1\u{0}".into()), vec![]),
    ];
    for (kind, lookup, expected) in cases {
        let ids = lookup_ids(&*directory, kind, lookup.clone()).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids, expected, "{kind} {lookup:?}");
    }
}

pub(crate) async fn email_index_follows_replace(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let erin = directory
        .create(
            ResourceKind::User,
            json!({"userName": "erin", "emails": [{"value": "old@example.com"}]}),
        )
        .await
        .expect("create erin");
    let email = |address: &str| Lookup::Email(address.to_owned());

    directory
        .replace(
            ResourceKind::User,
            &erin.id,
            json!({"userName": "erin", "emails": [{"value": "New@Example.com"}]}),
            None,
        )
        .await
        .expect("replace erin");
    let old = lookup_ids(&*directory, ResourceKind::User, email("old@example.com")).await;
    assert!(old.is_empty(), "{old:?}");
    let new = lookup_ids(&*directory, ResourceKind::User, email("new@example.com")).await;
    assert_eq!(new, vec![erin.id.clone()]);

    directory
        .delete(ResourceKind::User, &erin.id)
        .await
        .expect("delete erin");
    let deleted = lookup_ids(&*directory, ResourceKind::User, email("new@example.com")).await;
    assert!(deleted.is_empty(), "{deleted:?}");
}

pub(crate) async fn paging_is_stable(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(create_user(&*directory, &format!("page{n}")).await.id);
    }
    // A write does not move a resource in the order.
    directory
        .replace(ResourceKind::User, &ids[1], user("page1-renamed"), None)
        .await
        .expect("replace");

    let all = directory
        .list(ResourceKind::User, None, None)
        .await
        .expect("list all");
    let all_ids: Vec<String> = all.resources.iter().map(|r| r.id.clone()).collect();
    assert_eq!(all_ids, ids);
    assert_eq!(all.total, 5);

    let cases: [(u64, u64, &[String]); 5] = [
        (0, 2, &ids[0..2]),
        (2, 2, &ids[2..4]),
        (4, 2, &ids[4..5]),
        (10, 2, &[]),
        (0, 0, &[]),
    ];
    for (offset, limit, expected) in cases {
        let page = directory
            .list(ResourceKind::User, None, Some(Page { offset, limit }))
            .await
            .expect("list page");
        let page_ids: Vec<String> = page.resources.iter().map(|r| r.id.clone()).collect();
        assert_eq!(page_ids, expected, "offset {offset} limit {limit}");
        assert_eq!(page.total, 5, "total at offset {offset} limit {limit}");
    }

    directory
        .delete(ResourceKind::User, &ids[2])
        .await
        .expect("delete");
    let newest = create_user(&*directory, "page5").await.id;
    let after = directory
        .list(ResourceKind::User, None, None)
        .await
        .expect("list after delete");
    let after_ids: Vec<String> = after.resources.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        after_ids,
        vec![
            ids[0].clone(),
            ids[1].clone(),
            ids[3].clone(),
            ids[4].clone(),
            newest
        ]
    );
}

/// A client that reads page after page sees every resource once, even
/// when one it already read is deleted between two pages (where `OFFSET`
/// alone would skip the first resource of the next page).
pub(crate) async fn next_page_survives_deletion(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(create_user(&*directory, &format!("next{n}")).await.id);
    }
    let read_page = |offset: u64| {
        let directory = directory.clone();
        async move {
            let page = directory
                .list(ResourceKind::User, None, Some(Page { offset, limit: 2 }))
                .await
                .expect("list page");
            page.resources
                .iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        }
    };

    assert_eq!(read_page(0).await, ids[0..2]);
    directory
        .delete(ResourceKind::User, &ids[0])
        .await
        .expect("delete a user already read");
    assert_eq!(read_page(2).await, ids[2..4]);
    assert_eq!(read_page(4).await, ids[4..6]);
}

pub(crate) async fn group_members_composed(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let one = create_user(&*directory, "one").await.id;
    let two = create_user(&*directory, "two").await.id;
    let three = create_user(&*directory, "three").await.id;

    let admins = directory
        .create(
            ResourceKind::Group,
            json!({
                "displayName": "Admins",
                "members": [
                    {"value": two, "display": "Two", "type": "User"},
                    {"value": one}
                ]
            }),
        )
        .await
        .expect("create admins");
    let expected_members =
        json!([{"value": two, "display": "Two", "type": "User"}, {"value": one}]);
    assert_eq!(admins.document["members"], expected_members);
    let fetched = get(&*directory, ResourceKind::Group, &admins.id)
        .await
        .expect("admins exists");
    assert_eq!(fetched.document["members"], expected_members);

    let ops = create_group(&*directory, "Ops", &[&one]).await;
    let groups = directory.groups_of_user(&one).await.expect("groups of one");
    assert_eq!(
        groups,
        vec![
            (admins.id.clone(), "Admins".to_owned()),
            (ops.id.clone(), "Ops".to_owned())
        ]
    );

    directory
        .replace(
            ResourceKind::Group,
            &admins.id,
            group("Admins", &[&three]),
            None,
        )
        .await
        .expect("replace members");
    let replaced = get(&*directory, ResourceKind::Group, &admins.id)
        .await
        .expect("admins exists");
    assert_eq!(member_values(&replaced), vec![three.clone()]);
    let groups = directory.groups_of_user(&one).await.expect("groups of one");
    assert_eq!(groups, vec![(ops.id.clone(), "Ops".to_owned())]);

    let listed = directory
        .list(ResourceKind::Group, None, None)
        .await
        .expect("list groups");
    let listed_members: Vec<Vec<String>> = listed.resources.iter().map(member_values).collect();
    assert_eq!(listed_members, vec![vec![three], vec![one]]);
}

pub(crate) async fn groups_of_users_in_one_call(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let one = create_user(&*directory, "one").await.id;
    let two = create_user(&*directory, "two").await.id;
    let alone = create_user(&*directory, "alone").await.id;
    let admins = create_group(&*directory, "Admins", &[&one, &two]).await;
    let ops = create_group(&*directory, "Ops", &[&one]).await;

    let ids = vec![
        one.clone(),
        two.clone(),
        alone.clone(),
        "no-such-id".to_owned(),
    ];
    let groups = directory
        .groups_of_users(&ids)
        .await
        .expect("groups of several users");
    assert_eq!(
        groups.get(&one),
        Some(&vec![
            (admins.id.clone(), "Admins".to_owned()),
            (ops.id.clone(), "Ops".to_owned())
        ]),
        "user one is in both groups, in creation order"
    );
    assert_eq!(
        groups.get(&two),
        Some(&vec![(admins.id.clone(), "Admins".to_owned())]),
        "user two is in Admins only"
    );
    assert!(!groups.contains_key(&alone), "a user in no group is absent");
    assert_eq!(groups.len(), 2, "only users with groups are keyed");
    assert!(
        directory
            .groups_of_users(&[])
            .await
            .expect("an empty list")
            .is_empty(),
        "no ids give an empty map"
    );
}

pub(crate) async fn invalid_member_rejected(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let one = create_user(&*directory, "one").await.id;

    let created = directory
        .create(ResourceKind::Group, group("Admins", &[&one, "missing-id"]))
        .await;
    match created {
        Err(DirectoryError::InvalidMember(id)) => assert_eq!(id, "missing-id"),
        other => panic!("expected InvalidMember, got {other:?}"),
    }
    assert_eq!(
        directory.count(ResourceKind::Group).await.expect("count"),
        0
    );
    assert!(directory
        .groups_of_user(&one)
        .await
        .expect("groups of one")
        .is_empty());

    let admins = create_group(&*directory, "Admins", &[&one]).await;
    let replaced = directory
        .replace(
            ResourceKind::Group,
            &admins.id,
            group("Renamed", &[&one, "missing-id"]),
            None,
        )
        .await;
    assert!(
        matches!(replaced, Err(DirectoryError::InvalidMember(_))),
        "{replaced:?}"
    );
    let unchanged = get(&*directory, ResourceKind::Group, &admins.id).await;
    assert_eq!(unchanged.as_ref(), Some(&admins));

    // A Group id is not a user id.
    let nested = directory
        .create(ResourceKind::Group, group("Nested", &[&admins.id]))
        .await;
    assert!(
        matches!(nested, Err(DirectoryError::InvalidMember(_))),
        "{nested:?}"
    );
}

pub(crate) async fn user_delete_removes_membership(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let one = create_user(&*directory, "Leaver@Example.com").await.id;
    let two = create_user(&*directory, "stayer").await.id;
    let admins = create_group(&*directory, "Admins", &[&one, &two]).await;
    let other = create_group(&*directory, "Other", &[&two]).await;

    assert!(directory
        .delete(ResourceKind::User, &one)
        .await
        .expect("delete one"));

    let after = get(&*directory, ResourceKind::Group, &admins.id)
        .await
        .expect("admins exists");
    assert_eq!(member_values(&after), vec![two.clone()]);
    assert_eq!(after.version, admins.version + 1);
    assert!(after.last_modified >= admins.last_modified);
    let untouched = get(&*directory, ResourceKind::Group, &other.id)
        .await
        .expect("other exists");
    assert_eq!(untouched.version, other.version);
    assert!(directory
        .groups_of_user(&one)
        .await
        .expect("groups of one")
        .is_empty());

    let reused = directory
        .create(ResourceKind::User, user("leaver@example.com"))
        .await;
    assert!(
        reused.is_ok(),
        "a deleted userName is free again: {reused:?}"
    );
}

pub(crate) async fn version_checks(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let created = create_user(&*directory, "frank").await;

    let second = directory
        .replace(ResourceKind::User, &created.id, user("frank2"), Some(1))
        .await
        .expect("replace at version 1");
    assert_eq!(second.version, 2);

    let stale = directory
        .replace(ResourceKind::User, &created.id, user("frank3"), Some(1))
        .await;
    assert!(
        matches!(stale, Err(DirectoryError::VersionMismatch)),
        "{stale:?}"
    );
    let current = get(&*directory, ResourceKind::User, &created.id).await;
    assert_eq!(current.as_ref(), Some(&second));

    let third = directory
        .replace(ResourceKind::User, &created.id, user("frank3"), None)
        .await
        .expect("replace without a version");
    assert_eq!(third.version, 3);

    let group = create_group(&*directory, "Versioned", &[]).await;
    let renamed = directory
        .replace(ResourceKind::Group, &group.id, group_doc_renamed(), Some(1))
        .await
        .expect("replace group at version 1");
    assert_eq!(renamed.version, 2);
    let stale_group = directory
        .replace(ResourceKind::Group, &group.id, group_doc_renamed(), Some(1))
        .await;
    assert!(
        matches!(stale_group, Err(DirectoryError::VersionMismatch)),
        "{stale_group:?}"
    );
}

fn group_doc_renamed() -> Value {
    group("Versioned renamed", &[])
}

pub(crate) async fn failed_write_leaves_data_unchanged(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    directory
        .create(
            ResourceKind::User,
            json!({"userName": "taken", "emails": [{"value": "taken@example.com"}]}),
        )
        .await
        .expect("create taken");
    let grace = directory
        .create(
            ResourceKind::User,
            json!({"userName": "grace", "emails": [{"value": "grace@example.com"}]}),
        )
        .await
        .expect("create grace");

    let conflict = directory
        .replace(
            ResourceKind::User,
            &grace.id,
            json!({"userName": "TAKEN", "emails": [{"value": "grace2@example.com"}]}),
            None,
        )
        .await;
    assert!(
        matches!(conflict, Err(DirectoryError::Conflict { .. })),
        "{conflict:?}"
    );
    let unchanged = get(&*directory, ResourceKind::User, &grace.id).await;
    assert_eq!(unchanged.as_ref(), Some(&grace));
    let new_email = lookup_ids(
        &*directory,
        ResourceKind::User,
        Lookup::Email("grace2@example.com".to_owned()),
    )
    .await;
    assert!(new_email.is_empty(), "{new_email:?}");
    let old_email = lookup_ids(
        &*directory,
        ResourceKind::User,
        Lookup::Email("grace@example.com".to_owned()),
    )
    .await;
    assert_eq!(old_email, vec![grace.id.clone()]);

    let invalid = directory
        .replace(ResourceKind::User, &grace.id, json!({"emails": []}), None)
        .await;
    assert!(
        matches!(invalid, Err(DirectoryError::InvalidDocument(_))),
        "{invalid:?}"
    );
    let unchanged = get(&*directory, ResourceKind::User, &grace.id).await;
    assert_eq!(unchanged.as_ref(), Some(&grace));
    assert_eq!(directory.count(ResourceKind::User).await.expect("count"), 2);
}

/// Returns `text` with the letters whose position bit is set in `mask`
/// upper-cased, so different masks give different case variants.
fn case_variant(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(position, character)| {
            if position < 64 && mask & (1 << position) != 0 {
                character.to_ascii_uppercase()
            } else {
                character
            }
        })
        .collect()
}

/// Returns a User document with `user_name` and `external_id`.
fn user_with_external_id(user_name: &str, external_id: &str) -> Value {
    let mut document = user(user_name);
    document["externalId"] = json!(external_id);
    document
}

fn is_external_id_conflict(result: &Result<StoredResource, DirectoryError>) -> bool {
    matches!(
        result,
        Err(DirectoryError::Conflict {
            attribute: "externalId"
        })
    )
}

pub(crate) async fn external_id_unique_for_users(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let create = |user_name: &str, external_id: &str| {
        directory.create(
            ResourceKind::User,
            user_with_external_id(user_name, external_id),
        )
    };
    let alice = create("alice", "00u-1").await.expect("create alice");

    let duplicate = create("bob", "00u-1").await;
    assert!(
        is_external_id_conflict(&duplicate),
        "a second User with externalId 00u-1: {duplicate:?}"
    );
    let other_case = create("carol", "00U-1").await;
    assert!(
        other_case.is_ok(),
        "externalId is compared exactly, so 00U-1 is another value: {other_case:?}"
    );
    for user_name in ["dave", "erin"] {
        let without = directory.create(ResourceKind::User, user(user_name)).await;
        assert!(
            without.is_ok(),
            "Users without an externalId never clash: {without:?}"
        );
    }
    let group = directory
        .create(
            ResourceKind::Group,
            json!({"displayName": "Admins", "externalId": "00u-1"}),
        )
        .await;
    assert!(
        group.is_ok(),
        "a Group may share a User's externalId: {group:?}"
    );

    let frank = create("frank", "00u-2").await.expect("create frank");
    let takeover = directory
        .replace(
            ResourceKind::User,
            &frank.id,
            user_with_external_id("frank", "00u-1"),
            None,
        )
        .await;
    assert!(
        is_external_id_conflict(&takeover),
        "a replace that takes alice's externalId: {takeover:?}"
    );
    assert_eq!(
        lookup_ids(
            &*directory,
            ResourceKind::User,
            Lookup::ExternalId("00u-1".into())
        )
        .await,
        std::slice::from_ref(&alice.id),
        "only alice has externalId 00u-1"
    );

    directory
        .delete(ResourceKind::User, &alice.id)
        .await
        .expect("delete alice");
    let reused = create("grace", "00u-1").await;
    assert!(
        reused.is_ok(),
        "a deleted User frees its externalId: {reused:?}"
    );
}

pub(crate) async fn empty_external_id_never_clashes(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let mut ids = Vec::new();
    for user_name in ["alice", "bob"] {
        let created = directory
            .create(ResourceKind::User, user_with_external_id(user_name, ""))
            .await;
        let created = created.unwrap_or_else(|error| {
            panic!("an empty externalId counts as none, so {user_name} is created: {error:?}")
        });
        assert_eq!(
            created.document["externalId"],
            json!(""),
            "the document keeps the value as sent"
        );
        ids.push(created.id);
    }
    let carol = create_user(&*directory, "carol").await;
    let replaced = directory
        .replace(
            ResourceKind::User,
            &carol.id,
            user_with_external_id("carol", ""),
            None,
        )
        .await;
    assert!(
        replaced.is_ok(),
        "a replace to an empty externalId: {replaced:?}"
    );
    assert_eq!(
        lookup_ids(
            &*directory,
            ResourceKind::User,
            Lookup::ExternalId(String::new())
        )
        .await,
        Vec::<String>::new(),
        "an empty externalId identifies no User"
    );

    let groups = [
        json!({"displayName": "Admins", "externalId": ""}),
        json!({"displayName": "Readers", "externalId": ""}),
    ];
    for group in groups {
        let created = directory.create(ResourceKind::Group, group).await;
        assert!(created.is_ok(), "Groups never clash: {created:?}");
    }
}

pub(crate) async fn concurrent_external_id_one_success(fixture: &dyn Fixture) {
    const WRITERS: u64 = 20;
    let directory = fixture.directory();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let directory = Arc::clone(&directory);
        let document = user_with_external_id(&format!("writer{writer}"), "00u-race");
        tasks.push(tokio::spawn(async move {
            directory.create(ResourceKind::User, document).await
        }));
    }

    let mut successes = 0;
    let mut conflicts = 0;
    for task in tasks {
        let result = task.await.expect("create task completes");
        if result.is_ok() {
            successes += 1;
        } else if is_external_id_conflict(&result) {
            conflicts += 1;
        } else {
            panic!("a racing create failed with {result:?}");
        }
    }
    assert_eq!(successes, 1, "one create wins");
    assert_eq!(conflicts, WRITERS - 1, "every other create is a conflict");
}

pub(crate) async fn concurrent_creates_one_success(fixture: &dyn Fixture) {
    const WRITERS: u64 = 50;
    let directory = fixture.directory();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let directory = Arc::clone(&directory);
        let user_name = case_variant("race.condition@example.com", writer);
        tasks.push(tokio::spawn(async move {
            directory.create(ResourceKind::User, user(&user_name)).await
        }));
    }

    let mut successes = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("create task completes") {
            Ok(_) => successes += 1,
            Err(DirectoryError::Conflict {
                attribute: "userName",
            }) => conflicts += 1,
            Err(other) => panic!("a racing create failed with {other:?}"),
        }
    }
    assert_eq!(successes, 1);
    assert_eq!(conflicts, WRITERS - 1);
    assert_eq!(directory.count(ResourceKind::User).await.expect("count"), 1);
}

/// Adds `member` to a group the way the PATCH handler does: read, modify,
/// replace at the version read, and retry when another writer won.
async fn add_member_with_retry(directory: &dyn Directory, group_id: &str, member: &str) {
    const MAX_ATTEMPTS: usize = 100;
    for _ in 0..MAX_ATTEMPTS {
        let current = get(directory, ResourceKind::Group, group_id)
            .await
            .expect("group exists");
        let mut document = current.document.clone();
        document["members"]
            .as_array_mut()
            .expect("a Group document has members")
            .push(json!({"value": member}));
        match directory
            .replace(
                ResourceKind::Group,
                group_id,
                document,
                Some(current.version),
            )
            .await
        {
            Ok(_) => return,
            Err(DirectoryError::VersionMismatch) => tokio::task::yield_now().await,
            Err(other) => panic!("adding a member failed with {other:?}"),
        }
    }
    panic!("adding {member} lost {MAX_ATTEMPTS} races in a row");
}

pub(crate) async fn concurrent_membership_updates_lose_none(fixture: &dyn Fixture) {
    const WRITERS: usize = 8;
    let directory = fixture.directory();
    let group = create_group(&*directory, "Crowded", &[]).await;
    let mut members = Vec::new();
    for n in 0..WRITERS {
        members.push(create_user(&*directory, &format!("crowd{n}")).await.id);
    }

    let mut tasks = Vec::new();
    for member in &members {
        let directory = Arc::clone(&directory);
        let group_id = group.id.clone();
        let member = member.clone();
        tasks.push(tokio::spawn(async move {
            add_member_with_retry(&*directory, &group_id, &member).await;
        }));
    }
    for task in tasks {
        task.await.expect("membership task completes");
    }

    let after = get(&*directory, ResourceKind::Group, &group.id)
        .await
        .expect("group exists");
    let mut stored = member_values(&after);
    stored.sort();
    members.sort();
    assert_eq!(stored, members);
    assert_eq!(after.version, 1 + WRITERS as i64);
}

pub(crate) async fn tokens_round_trip(fixture: &dyn Fixture) {
    let directory = fixture.directory();
    let (plaintext, record) = TokenRecord::generate("okta-production");
    directory.insert_token(&record).await.expect("insert token");

    let found = directory
        .find_token(&record.hash)
        .await
        .expect("find token");
    assert_eq!(found.as_ref(), Some(&record));
    assert_eq!(directory.find_token("0000").await.expect("find"), None);
    let duplicate = directory.insert_token(&record).await;
    assert!(
        matches!(duplicate, Err(DirectoryError::Conflict { .. })),
        "{duplicate:?}"
    );

    let verified = tokens::verify(&*directory, plaintext.expose_secret())
        .await
        .expect("verify")
        .expect("a stored token verifies");
    assert_eq!(verified.id, record.id);
    let stored = directory
        .find_token(&record.hash)
        .await
        .expect("find token")
        .expect("token exists");
    assert_eq!(stored.last_used, verified.last_used);
    assert!(stored.last_used.is_some());

    let (_, second) = TokenRecord::generate("entra");
    directory
        .insert_token(&second)
        .await
        .expect("insert second");
    let listed: Vec<String> = directory
        .list_tokens()
        .await
        .expect("list tokens")
        .into_iter()
        .map(|token| token.id)
        .collect();
    assert_eq!(listed, vec![record.id.clone(), second.id.clone()]);

    assert!(directory.revoke_token(&record.id).await.expect("revoke"));
    let revoked_at = directory
        .find_token(&record.hash)
        .await
        .expect("find")
        .expect("token exists")
        .revoked;
    assert!(revoked_at.is_some());
    assert!(directory
        .revoke_token(&record.id)
        .await
        .expect("revoke again"));
    let revoked_again_at = directory
        .find_token(&record.hash)
        .await
        .expect("find")
        .expect("token exists")
        .revoked;
    assert_eq!(revoked_again_at, revoked_at);
    assert!(!directory
        .revoke_token("tok_missing")
        .await
        .expect("revoke missing"));

    let after_revoke = tokens::verify(&*directory, plaintext.expose_secret())
        .await
        .expect("verify");
    assert_eq!(after_revoke, None);
}

pub(crate) async fn ping_succeeds(fixture: &dyn Fixture) {
    fixture.directory().ping().await.expect("ping");
}

/// The 100,000-user tests of the backends take turns, so that one's bulk
/// insert does not slow down the other's timed lookups.
static LARGE_TEST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Latency percentiles of one round of lookups.
#[derive(Debug, Clone, Copy)]
struct LookupTimings {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// Times `lookups` case-insensitive userName lookups spread over the users
/// made by [`test_user`], checking each finds exactly its user.
async fn time_user_name_lookups(
    directory: &dyn Directory,
    users: usize,
    lookups: usize,
) -> LookupTimings {
    let mut timings = Vec::with_capacity(lookups);
    for lookup in 0..lookups {
        // A prime stride spreads the lookups over the table; upper case
        // exercises the case folding.
        let n = (lookup * 7919) % users;
        let user_name = format!("USER{n}@EXAMPLE.COM");
        let started = Instant::now();
        let found = directory
            .list(
                ResourceKind::User,
                Some(&Lookup::UserName(user_name)),
                Some(Page {
                    offset: 0,
                    limit: 100,
                }),
            )
            .await
            .expect("lookup");
        timings.push(started.elapsed());
        assert_eq!(found.total, 1, "user{n}");
        assert_eq!(
            found.resources[0].document["userName"],
            format!("user{n}@example.com")
        );
    }
    timings.sort();
    LookupTimings {
        p50: timings[lookups / 2],
        p99: timings[lookups * 99 / 100],
        max: timings[lookups - 1],
    }
}

pub(crate) async fn lookup_in_100k_users_uses_index(fixture: &dyn Fixture) {
    const USERS: usize = 100_000;
    const LOOKUPS: usize = 200;
    // Other tests share the machine's cores, so a round whose p99 misses
    // the limit is measured again before the test fails.
    const ROUNDS: usize = 3;
    const P99_LIMIT: Duration = Duration::from_millis(20);
    let _turn = LARGE_TEST.lock().await;
    let directory = fixture.directory();

    let started = Instant::now();
    fixture.insert_test_users(USERS).await;
    let insert_time = started.elapsed();
    assert_eq!(
        directory.count(ResourceKind::User).await.expect("count"),
        USERS as u64
    );
    println!(
        "{} directory: inserted {USERS} users in {insert_time:?}",
        fixture.backend()
    );

    let user_name_plan = fixture
        .list_query_plan(&Lookup::UserName("user1@example.com".to_owned()))
        .await;
    assert!(
        user_name_plan.contains("users_user_name_key"),
        "{user_name_plan}"
    );
    let email_plan = fixture
        .list_query_plan(&Lookup::Email("user1@example.com".to_owned()))
        .await;
    assert!(email_plan.contains("user_emails_email_key"), "{email_plan}");

    let mut best_p99 = Duration::MAX;
    for round in 1..=ROUNDS {
        let timings = time_user_name_lookups(&*directory, USERS, LOOKUPS).await;
        println!(
            "{} directory: userName lookup among {USERS} users, round {round}, \
             {LOOKUPS} lookups: p50 {:?}, p99 {:?}, max {:?}",
            fixture.backend(),
            timings.p50,
            timings.p99,
            timings.max
        );
        best_p99 = best_p99.min(timings.p99);
        if best_p99 < P99_LIMIT {
            break;
        }
    }
    assert!(
        best_p99 < P99_LIMIT,
        "the best p99 of a userName lookup is {best_p99:?}, over {P99_LIMIT:?}"
    );
}
