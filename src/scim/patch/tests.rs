use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::scim::error::ScimType;
use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn body(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP_URN], "Operations": operations})
}

fn patch_user(user: &Value, operations: Value) -> Result<Value, ScimError> {
    patch_resource(user, &body(operations), &USER_RESOURCE)
}

fn patch_group(group: &Value, operations: Value) -> Result<Value, ScimError> {
    patch_resource(group, &body(operations), &GROUP_RESOURCE)
}

fn user() -> Value {
    json!({
        "schemas": [CORE_USER],
        "id": "u-1",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"},
        "displayName": "Babs",
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"}
    })
}

fn group(members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|id| json!({"value": id})).collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g-1",
        "displayName": "Sales",
        "members": members
    })
}

fn member_ids(group: &Value) -> Vec<String> {
    group
        .get("members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|m| m["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn okta_pathless_deactivate_and_reactivate() {
    let deactivated = patch_user(
        &user(),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .expect("Okta deactivate applies");
    assert_eq!(
        deactivated["active"],
        json!(false),
        "active after deactivate"
    );
    assert_eq!(
        deactivated["userName"],
        json!("bjensen@example.com"),
        "other attributes kept"
    );
    let reactivated = patch_user(
        &deactivated,
        json!([{"op": "replace", "value": {"active": true}}]),
    )
    .expect("Okta reactivate applies");
    assert_eq!(
        reactivated["active"],
        json!(true),
        "active after reactivate"
    );
}

#[test]
fn entra_active_dialects() {
    let cases = [
        (
            json!({"op": "Replace", "path": "active", "value": "False"}),
            false,
        ),
        (
            json!({"op": "Replace", "path": "active", "value": "True"}),
            true,
        ),
        (
            json!({"op": "replace", "path": "active", "value": "false"}),
            false,
        ),
        (
            json!({"op": "Add", "path": "active", "value": "False"}),
            false,
        ),
        (
            json!({"op": "ADD", "path": "Active", "value": "TRUE"}),
            true,
        ),
        (
            json!({"op": "Replace", "path": "active", "value": false}),
            false,
        ),
        (
            json!({"op": "replace", "value": {"active": "False"}}),
            false,
        ),
        (
            json!({"op": "replace", "value": {"Active": "false"}}),
            false,
        ),
    ];
    for (operation, expected) in cases {
        let start = json!({"id": "u-1", "userName": "a", "active": !expected});
        let patched = patch_user(&start, json!([operation.clone()])).expect("Entra op applies");
        assert_eq!(
            patched["active"],
            json!(expected),
            "active after {operation}"
        );
    }
}

#[test]
fn capitalised_ops_on_members() {
    for (add, remove) in [("Add", "Remove"), ("ADD", "REMOVE"), ("add", "remove")] {
        let added = patch_group(
            &group(&["u1"]),
            json!([{"op": add, "path": "members", "value": [{"$ref": null, "value": "u2"}]}]),
        )
        .expect("member add applies");
        assert_eq!(member_ids(&added), ["u1", "u2"], "members after {add}");
        assert_eq!(
            added["members"][1],
            json!({"value": "u2"}),
            "null $ref dropped after {add}"
        );
        let removed = patch_group(
            &added,
            json!([{"op": remove, "path": "members", "value": [{"$ref": null, "value": "u2"}]}]),
        )
        .expect("member remove applies");
        assert_eq!(member_ids(&removed), ["u1"], "members after {remove}");
    }
}

#[test]
fn filtered_member_removal_then_readd() {
    let removed = patch_group(
        &group(&["u1", "u2"]),
        json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]),
    )
    .expect("filtered removal applies");
    assert_eq!(member_ids(&removed), ["u2"], "u1 removed");
    let readded = patch_group(
        &removed,
        json!([{"op": "add", "path": "members", "value": [{"value": "u1", "display": "a"}]}]),
    )
    .expect("re-add applies");
    assert_eq!(member_ids(&readded), ["u2", "u1"], "u1 back");
}

#[test]
fn okta_member_push_in_one_request() {
    let patched = patch_group(
        &group(&["89bb1940", "u2"]),
        json!([
            {"op": "remove", "path": "members[value eq \"89bb1940\"]"},
            {"op": "add", "path": "members", "value": [{"value": "23a35c27", "display": "test.user@okta.local"}]}
        ]),
    )
    .expect("Okta member push applies");
    assert_eq!(
        member_ids(&patched),
        ["u2", "23a35c27"],
        "members after push"
    );
    assert_eq!(
        patched["members"][1]["display"],
        json!("test.user@okta.local"),
        "display kept"
    );
}

#[test]
fn entra_remove_with_value_keeps_others() {
    let cases = [
        json!([{"value": "u2"}]),
        json!([{"$ref": null, "value": "u2"}]),
        json!({"value": "u2"}),
        json!("u2"),
    ];
    for value in cases {
        let patched = patch_group(
            &group(&["u1", "u2", "u3"]),
            json!([{"op": "Remove", "path": "members", "value": value.clone()}]),
        )
        .expect("remove with value applies");
        assert_eq!(
            member_ids(&patched),
            ["u1", "u3"],
            "members after removing {value}"
        );
    }
}

#[test]
fn remove_members_without_value_removes_all() {
    for operation in [
        json!({"op": "remove", "path": "members"}),
        json!({"op": "Remove", "path": "members", "value": null}),
    ] {
        let patched = patch_group(&group(&["u1", "u2"]), json!([operation.clone()]))
            .expect("remove all applies");
        assert!(
            patched.get("members").is_none(),
            "no members after {operation}"
        );
        assert_eq!(
            patched["displayName"],
            json!("Sales"),
            "group kept after {operation}"
        );
    }
    let unchanged = patch_group(
        &group(&["u1"]),
        json!([{"op": "remove", "path": "members", "value": []}]),
    )
    .expect("remove of an empty list applies");
    assert_eq!(
        member_ids(&unchanged),
        ["u1"],
        "an empty value list removes nothing"
    );
}

#[test]
fn okta_full_push_replaces_members() {
    let patched = patch_group(
        &group(&["u1", "u2"]),
        json!([{"op": "replace", "path": "members", "value": [
            {"value": "u2", "display": "b"},
            {"value": "u3", "display": "c"}
        ]}]),
    )
    .expect("full push applies");
    assert_eq!(
        patched["members"],
        json!([{"value": "u2", "display": "b"}, {"value": "u3", "display": "c"}]),
        "members are exactly the pushed set"
    );
}

#[test]
fn okta_group_rename_with_id() {
    let patched = patch_group(
        &group(&["u1"]),
        json!([{"op": "replace", "value": {"id": "g-1", "displayName": "Test SCIMv2"}}]),
    )
    .expect("rename with the same id applies");
    assert_eq!(patched["displayName"], json!("Test SCIMv2"), "renamed");
    assert_eq!(patched["id"], json!("g-1"), "id unchanged");
    assert_eq!(member_ids(&patched), ["u1"], "members unchanged");
    let error = patch_group(
        &group(&["u1"]),
        json!([{"op": "replace", "value": {"id": "other", "displayName": "X"}}]),
    )
    .expect_err("a different id is rejected");
    assert_eq!(
        error.scim_type,
        Some(ScimType::Mutability),
        "scimType for a changed id"
    );
}

#[test]
fn pathless_value_ignores_read_only_members() {
    let patched = patch_user(
        &user(),
        json!([{"op": "replace", "value": {
            "schemas": ["urn:x"],
            "meta": {"resourceType": "Other"},
            "groups": [{"value": "g-9"}],
            "unknownAttribute": 1,
            "nickName": "B"
        }}]),
    )
    .expect("read-only members are ignored");
    assert_eq!(patched["meta"], user()["meta"], "meta unchanged");
    assert!(patched.get("groups").is_none(), "groups not written");
    assert!(
        patched.get("unknownAttribute").is_none(),
        "unknown attribute not written"
    );
    assert_eq!(patched["schemas"], json!([CORE_USER]), "schemas unchanged");
    assert_eq!(
        patched["nickName"],
        json!("B"),
        "writable attribute applied"
    );
}

#[test]
fn entra_pathless_replace_with_dotted_and_urn_keys() {
    let patched = patch_user(
        &user(),
        json!([{"op": "replace", "value": {
            "displayName": "Bjfe",
            "name.givenName": "Kkom",
            "name.familyName": "Unua",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "m-1"
        }}]),
    )
    .expect("Entra flagged replace applies");
    assert_eq!(patched["displayName"], json!("Bjfe"), "displayName");
    assert_eq!(
        patched["name"]["givenName"],
        json!("Kkom"),
        "name.givenName"
    );
    assert_eq!(
        patched["name"]["familyName"],
        json!("Unua"),
        "name.familyName"
    );
    assert_eq!(
        patched["name"]["formatted"],
        json!("Ms. Barbara J Jensen"),
        "name.formatted kept"
    );
    assert_eq!(
        patched[ENTERPRISE]["employeeNumber"],
        json!("Aklq"),
        "employeeNumber"
    );
    assert_eq!(
        patched[ENTERPRISE]["manager"],
        json!({"value": "m-1"}),
        "manager"
    );
    assert_eq!(
        patched["schemas"],
        json!([CORE_USER, ENTERPRISE]),
        "extension listed in schemas"
    );
}

#[test]
fn entra_explicit_paths() {
    let operations = json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Jensen-Smith"},
        {"op": "Replace", "path": "userName", "value": "new@example.com"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701984"},
        {"op": "Add", "path": "addresses[type eq \"work\"].formatted", "value": "1 Main St"},
        {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"}
    ]);
    let patched = patch_user(&user(), operations).expect("Entra update applies");
    assert_eq!(
        patched["emails"],
        json!([{"value": "new@example.com", "type": "work", "primary": true}]),
        "work email changed in place"
    );
    assert_eq!(
        patched["name"]["familyName"],
        json!("Jensen-Smith"),
        "familyName"
    );
    assert_eq!(
        patched["name"]["givenName"],
        json!("Barbara"),
        "givenName kept"
    );
    assert_eq!(patched["userName"], json!("new@example.com"), "userName");
    assert_eq!(
        patched[ENTERPRISE]["employeeNumber"],
        json!("701984"),
        "employeeNumber"
    );
    assert_eq!(
        patched["addresses"],
        json!([{"type": "work", "formatted": "1 Main St", "streetAddress": "1 Main St", "locality": "Springfield"}]),
        "one work address built from three operations"
    );
}

#[test]
fn filtered_add_creates_missing_element() {
    let start = json!({"id": "u-1", "userName": "a"});
    let cases = [
        ("add", "emails[type eq \"work\"].value"),
        ("Replace", "emails[type eq \"work\"].value"),
        ("replace", "emails[TYPE eq \"work\"].value"),
    ];
    for (op, path) in cases {
        let patched = patch_user(&start, json!([{"op": op, "path": path, "value": "a@x"}]))
            .expect("filtered add on a user without emails applies");
        assert_eq!(
            patched["emails"],
            json!([{"type": "work", "value": "a@x"}]),
            "created by {op} {path}"
        );
    }
    let merged = patch_user(
        &start,
        json!([
            {"op": "add", "path": "emails[type eq \"work\"].value", "value": "a@x"},
            {"op": "add", "path": "emails[type eq \"work\"].primary", "value": "True"},
            {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}
        ]),
    )
    .expect("several sub-attribute operations apply");
    assert_eq!(
        merged["emails"],
        json!([{"type": "work", "value": "a@x", "primary": true}]),
        "merged email"
    );
    assert_eq!(
        merged["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555"}]),
        "created phone"
    );
    let whole = patch_user(
        &start,
        json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"value": "h@x"}}]),
    )
    .expect("filtered add of a whole value applies");
    assert_eq!(
        whole["emails"],
        json!([{"type": "home", "value": "h@x"}]),
        "created from an object"
    );
}

#[test]
fn filtered_write_without_match_is_no_target() {
    let cases = [
        ("replace", "emails[value eq \"none@x\"].display"),
        ("add", "emails[type eq \"home\" and primary eq true].value"),
        ("replace", "emails[type ne \"work\"].value"),
        ("add", "members[value eq \"u9\"].display"),
    ];
    for (op, path) in cases {
        let resource = if path.starts_with("members") {
            group(&["u1"])
        } else {
            user()
        };
        let resource_type = if path.starts_with("members") {
            &GROUP_RESOURCE
        } else {
            &USER_RESOURCE
        };
        let error = patch_resource(
            &resource,
            &body(json!([{"op": op, "path": path, "value": "x"}])),
            resource_type,
        )
        .expect_err("no element matches");
        assert_eq!(
            error.scim_type,
            Some(ScimType::NoTarget),
            "scimType for {op} {path}"
        );
    }
}

#[test]
fn entra_manager_dialects() {
    let path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";
    let set = patch_user(
        &user(),
        json!([{"op": "Add", "path": path, "value": "m-1"}]),
    )
    .expect("bare manager id applies");
    assert_eq!(
        set[ENTERPRISE]["manager"],
        json!({"value": "m-1"}),
        "manager stored as an object"
    );
    assert_eq!(
        set["schemas"],
        json!([CORE_USER, ENTERPRISE]),
        "extension listed"
    );
    let object = patch_user(&set, json!([{"op": "Replace", "path": path, "value": {"value": "m-2", "displayName": "ignored"}}]))
        .expect("manager object applies");
    assert_eq!(
        object[ENTERPRISE]["manager"],
        json!({"value": "m-2"}),
        "manager replaced, readOnly displayName dropped"
    );
    let sub = patch_user(
        &object,
        json!([{"op": "replace", "path": format!("{path}.value"), "value": "m-3"}]),
    )
    .expect("manager.value applies");
    assert_eq!(
        sub[ENTERPRISE]["manager"],
        json!({"value": "m-3"}),
        "manager.value replaced"
    );
    let cleared = patch_user(
        &sub,
        json!([{"op": "Replace", "path": path, "value": {"value": ""}}]),
    )
    .expect("manager clear applies");
    assert!(cleared.get(ENTERPRISE).is_none(), "empty extension removed");
    assert_eq!(
        cleared["schemas"],
        json!([CORE_USER]),
        "extension no longer listed"
    );
    let removed =
        patch_user(&sub, json!([{"op": "remove", "path": path}])).expect("manager remove applies");
    assert!(removed.get(ENTERPRISE).is_none(), "manager removed");
}

#[test]
fn whole_extension_paths() {
    let added = patch_user(
        &user(),
        json!([{"op": "add", "path": ENTERPRISE, "value": {"Department": "Sales", "costCenter": "4130"}}]),
    )
    .expect("extension add applies");
    assert_eq!(
        added[ENTERPRISE],
        json!({"department": "Sales", "costCenter": "4130"}),
        "extension members"
    );
    let merged = patch_user(
        &added,
        json!([{"op": "replace", "value": {ENTERPRISE: {"division": "West"}}}]),
    )
    .expect("path-less extension merge applies");
    assert_eq!(
        merged[ENTERPRISE]["department"],
        json!("Sales"),
        "department kept"
    );
    assert_eq!(
        merged[ENTERPRISE]["division"],
        json!("West"),
        "division added"
    );
    let removed = patch_user(&merged, json!([{"op": "remove", "path": ENTERPRISE}]))
        .expect("extension remove applies");
    assert!(removed.get(ENTERPRISE).is_none(), "extension removed");
    assert_eq!(removed["schemas"], json!([CORE_USER]), "schemas updated");
}

#[test]
fn single_and_multi_valued_semantics() {
    let cases = [
        (
            "add on a single-valued attribute replaces",
            json!([{"op": "add", "path": "displayName", "value": "New"}]),
            "displayName",
            json!("New"),
        ),
        (
            "add appends to a multi-valued attribute",
            json!([{"op": "add", "path": "emails", "value": [{"value": "h@x", "type": "home"}]}]),
            "emails",
            json!([
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "h@x", "type": "home"}
            ]),
        ),
        (
            "add of an identical value is a no-op",
            json!([{"op": "add", "path": "emails", "value": [{"value": "bjensen@example.com", "type": "work", "primary": true}]}]),
            "emails",
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true}]),
        ),
        (
            "add of the same value and type updates it",
            json!([{"op": "add", "path": "emails", "value": [{"value": "bjensen@example.com", "type": "work", "display": "W"}]}]),
            "emails",
            json!([{"value": "bjensen@example.com", "type": "work", "display": "W"}]),
        ),
        (
            "replace replaces a multi-valued attribute",
            json!([{"op": "replace", "path": "emails", "value": [{"value": "h@x", "type": "home"}]}]),
            "emails",
            json!([{"value": "h@x", "type": "home"}]),
        ),
        (
            "a new primary value demotes the old one",
            json!([{"op": "add", "path": "emails", "value": [{"value": "h@x", "type": "home", "primary": true}]}]),
            "emails",
            json!([
                {"value": "bjensen@example.com", "type": "work", "primary": false},
                {"value": "h@x", "type": "home", "primary": true}
            ]),
        ),
        (
            "replace on a complex attribute merges",
            json!([{"op": "replace", "path": "name", "value": {"givenName": "B"}}]),
            "name",
            json!({"givenName": "B", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"}),
        ),
        (
            "path-less replace merges complex attributes",
            json!([{"op": "replace", "value": {"name": {"familyName": "J"}}}]),
            "name",
            json!({"givenName": "Barbara", "familyName": "J", "formatted": "Ms. Barbara J Jensen"}),
        ),
        (
            "replace of a missing attribute adds it",
            json!([{"op": "replace", "path": "title", "value": "Tour Guide"}]),
            "title",
            json!("Tour Guide"),
        ),
        (
            "remove of a sub-attribute keeps the others",
            json!([{"op": "remove", "path": "name.givenName"}]),
            "name",
            json!({"familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"}),
        ),
        (
            "filtered remove of a sub-attribute",
            json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
            "emails",
            json!([{"value": "bjensen@example.com", "type": "work"}]),
        ),
        (
            "replace of a filtered value merges it",
            json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"display": "Work"}}]),
            "emails",
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true, "display": "Work"}]),
        ),
        (
            "sub-attribute of a multi-valued attribute without filter",
            json!([{"op": "replace", "path": "emails.display", "value": "All"}]),
            "emails",
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true, "display": "All"}]),
        ),
        (
            "a single object for a multi-valued attribute",
            json!([{"op": "replace", "path": "emails", "value": {"value": "h@x"}}]),
            "emails",
            json!([{"value": "h@x"}]),
        ),
    ];
    for (case, operations, attribute, expected) in cases {
        let patched = patch_user(&user(), operations).expect(case);
        assert_eq!(patched[attribute], expected, "{case}");
    }
}

#[test]
fn removals_unassign() {
    let cases = [
        (
            "remove a simple attribute",
            json!([{"op": "remove", "path": "displayName"}]),
            "displayName",
        ),
        (
            "remove a complex attribute",
            json!([{"op": "remove", "path": "name"}]),
            "name",
        ),
        (
            "remove a multi-valued attribute",
            json!([{"op": "remove", "path": "emails"}]),
            "emails",
        ),
        (
            "remove the last filtered value",
            json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
            "emails",
        ),
        (
            "replace with null",
            json!([{"op": "replace", "path": "displayName", "value": null}]),
            "displayName",
        ),
        (
            "path-less null",
            json!([{"op": "replace", "value": {"displayName": null}}]),
            "displayName",
        ),
        (
            "replace with an empty list",
            json!([{"op": "replace", "path": "emails", "value": []}]),
            "emails",
        ),
        (
            "remove every sub-attribute",
            json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}, {"op": "remove", "path": "name.formatted"}]),
            "name",
        ),
    ];
    for (case, operations, attribute) in cases {
        let patched = patch_user(&user(), operations).expect(case);
        assert!(
            patched.get(attribute).is_none(),
            "{attribute} unassigned: {case}"
        );
    }
    let unmatched = patch_user(
        &user(),
        json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
    )
    .expect("a filtered remove without a match is a no-op");
    assert_eq!(unmatched, user(), "nothing removed");
}

#[test]
fn canonical_names_are_written() {
    let start = json!({"id": "u-1", "UserName": "a", "NAME": {"GivenName": "A"}});
    let patched = patch_user(
        &start,
        json!([
            {"op": "replace", "path": "USERNAME", "value": "b"},
            {"op": "add", "path": "Name.FamilyName", "value": "B"},
            {"op": "add", "value": {"DisplayName": "D", "Emails": [{"Value": "e@x", "Primary": "true"}]}}
        ]),
    )
    .expect("case-insensitive names apply");
    let expected = json!({
        "id": "u-1",
        "userName": "b",
        "name": {"givenName": "A", "familyName": "B"},
        "displayName": "D",
        "emails": [{"value": "e@x", "primary": true}]
    });
    assert_eq!(patched, expected, "canonical names");
}

#[test]
fn writes_password() {
    let patched = patch_user(
        &user(),
        json!([{"op": "replace", "value": {"password": "s3cret"}}]),
    )
    .expect("password sync applies");
    assert_eq!(
        patched["password"],
        json!("s3cret"),
        "writeOnly password stored"
    );
}

#[test]
fn invalid_requests() {
    let too_many: Vec<Value> = (0..=MAX_OPERATIONS)
        .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
        .collect();
    let mut deep = json!("x");
    for _ in 0..=MAX_VALUE_DEPTH {
        deep = json!([deep]);
    }
    let cases = [
        ("body is not an object", json!([]), ScimType::InvalidSyntax),
        (
            "schemas missing",
            json!({"Operations": []}),
            ScimType::InvalidSyntax,
        ),
        (
            "wrong schema",
            json!({"schemas": ["urn:x"], "Operations": []}),
            ScimType::InvalidSyntax,
        ),
        (
            "Operations missing",
            json!({"schemas": [PATCH_OP_URN]}),
            ScimType::InvalidSyntax,
        ),
        (
            "unknown op",
            body(json!([{"op": "copy", "path": "title"}])),
            ScimType::InvalidSyntax,
        ),
        (
            "op missing",
            body(json!([{"path": "title", "value": "x"}])),
            ScimType::InvalidSyntax,
        ),
        (
            "operation not an object",
            body(json!(["add"])),
            ScimType::InvalidSyntax,
        ),
        (
            "path not a string",
            body(json!([{"op": "add", "path": 5, "value": "x"}])),
            ScimType::InvalidPath,
        ),
        (
            "value missing",
            body(json!([{"op": "add", "path": "title"}])),
            ScimType::InvalidSyntax,
        ),
        (
            "too many operations",
            body(Value::Array(too_many)),
            ScimType::InvalidValue,
        ),
        (
            "value too deep",
            body(json!([{"op": "add", "path": "title", "value": deep}])),
            ScimType::InvalidValue,
        ),
    ];
    for (case, request, scim_type) in cases {
        let error = patch_resource(&user(), &request, &USER_RESOURCE).expect_err(case);
        assert_eq!(error.status, 400, "status for {case}");
        assert_eq!(error.scim_type, Some(scim_type), "scimType for {case}");
    }
}

#[test]
fn invalid_operations() {
    let manager_name = format!("{ENTERPRISE}:manager.displayName");
    let cases = [
        (
            "remove without path",
            json!({"op": "remove"}),
            ScimType::NoTarget,
        ),
        (
            "unknown attribute",
            json!({"op": "add", "path": "nope", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "unknown sub-attribute",
            json!({"op": "add", "path": "name.nope", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "unknown schema",
            json!({"op": "add", "path": "urn:x:y:title", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "empty path",
            json!({"op": "add", "path": "", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "bad value filter",
            json!({"op": "add", "path": "emails[type eq]", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "unclosed value filter",
            json!({"op": "add", "path": "emails[type eq \"work\"", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "garbage after value filter",
            json!({"op": "add", "path": "emails[type eq \"work\"]x", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "unknown sub-attribute after filter",
            json!({"op": "add", "path": "emails[type eq \"work\"].nope", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "unknown sub-attribute in filter",
            json!({"op": "add", "path": "emails[nope eq \"work\"].value", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "value filter on a simple attribute",
            json!({"op": "add", "path": "userName[value eq \"x\"]", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "value filter on a single complex attribute",
            json!({"op": "add", "path": "name[givenName eq \"x\"]", "value": "x"}),
            ScimType::InvalidPath,
        ),
        (
            "id by path",
            json!({"op": "replace", "path": "id", "value": "u-1"}),
            ScimType::Mutability,
        ),
        (
            "meta by path",
            json!({"op": "replace", "path": "meta.lastModified", "value": "2024-01-01T00:00:00Z"}),
            ScimType::Mutability,
        ),
        (
            "groups by path",
            json!({"op": "add", "path": "groups", "value": [{"value": "g"}]}),
            ScimType::Mutability,
        ),
        (
            "readOnly sub-attribute",
            json!({"op": "add", "path": manager_name, "value": "x"}),
            ScimType::Mutability,
        ),
        (
            "boolean not a boolean",
            json!({"op": "replace", "path": "active", "value": "maybe"}),
            ScimType::InvalidValue,
        ),
        (
            "string not a string",
            json!({"op": "replace", "path": "title", "value": 5}),
            ScimType::InvalidValue,
        ),
        (
            "object for a simple attribute",
            json!({"op": "replace", "path": "title", "value": {"a": 1}}),
            ScimType::InvalidValue,
        ),
        (
            "array for a complex attribute",
            json!({"op": "replace", "path": "name", "value": [{"givenName": "x"}]}),
            ScimType::InvalidValue,
        ),
        (
            "path-less value not an object",
            json!({"op": "replace", "value": "x"}),
            ScimType::InvalidValue,
        ),
        (
            "extension value not an object",
            json!({"op": "replace", "value": {ENTERPRISE: "x"}}),
            ScimType::InvalidValue,
        ),
        (
            "remove a required attribute",
            json!({"op": "remove", "path": "userName"}),
            ScimType::InvalidValue,
        ),
        (
            "null a required attribute",
            json!({"op": "replace", "value": {"userName": null}}),
            ScimType::InvalidValue,
        ),
    ];
    for (case, operation, scim_type) in cases {
        let error = patch_user(&user(), json!([operation])).expect_err(case);
        assert_eq!(error.status, 400, "status for {case}");
        assert_eq!(
            error.scim_type,
            Some(scim_type),
            "scimType for {case}: {}",
            error.detail
        );
    }
}

#[test]
fn immutable_member_values() {
    let error = patch_group(
        &group(&["u1"]),
        json!([{"op": "replace", "path": "members[value eq \"u1\"].value", "value": "u2"}]),
    )
    .expect_err("member value cannot change");
    assert_eq!(error.scim_type, Some(ScimType::Mutability), "scimType");
    let same = patch_group(
        &group(&["u1"]),
        json!([{"op": "replace", "path": "members[value eq \"u1\"].value", "value": "u1"}]),
    )
    .expect("writing the same member value applies");
    assert_eq!(member_ids(&same), ["u1"], "member unchanged");
    let display = patch_group(
        &group(&["u1"]),
        json!([{"op": "add", "path": "members[value eq \"u1\"].display", "value": "Alice"}]),
    )
    .expect("an unset immutable sub-attribute can be set");
    assert_eq!(
        display["members"],
        json!([{"value": "u1", "display": "Alice"}]),
        "display set once"
    );
}

#[test]
fn errors_name_the_operation_and_keep_the_input() {
    let original = user();
    let error = patch_user(
        &original,
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "nope", "value": "x"}
        ]),
    )
    .expect_err("second operation fails");
    assert!(
        error.detail.starts_with("operation 2: "),
        "detail {:?} names the operation",
        error.detail
    );
    assert_eq!(original, user(), "input unchanged");
}

#[test]
fn group_patches() {
    let renamed = patch_group(
        &group(&["u1"]),
        json!([{"op": "Replace", "path": "displayName", "value": "Renamed"}]),
    )
    .expect("Entra rename applies");
    assert_eq!(renamed["displayName"], json!("Renamed"), "displayName");
    let external = patch_group(
        &group(&[]),
        json!([{"op": "replace", "value": {"externalId": "ext-9"}}]),
    )
    .expect("path-less externalId applies");
    assert_eq!(external["externalId"], json!("ext-9"), "externalId");
    let duplicate = patch_group(
        &group(&["u1"]),
        json!([{"op": "add", "path": "members", "value": [{"value": "u1", "display": "Alice"}]}]),
    )
    .expect("adding a present member applies");
    assert_eq!(
        duplicate["members"],
        json!([{"value": "u1", "display": "Alice"}]),
        "no duplicate member"
    );
    let validator = patch_group(
        &group(&["u1"]),
        json!([
            {"op": "add", "path": "members", "value": [{"value": "u2"}]},
            {"op": "remove", "path": "members[value eq \"u2\"]"}
        ]),
    )
    .expect("add then remove in one request applies");
    assert_eq!(
        member_ids(&validator),
        ["u1"],
        "members after add then remove"
    );
}

#[test]
fn coerce_post_bodies() {
    let body = json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "id": "client-chosen",
        "UserName": "UserName123",
        "Active": "True",
        "displayName": "BobIsAmazing",
        "password": "placeholder",
        "groups": [],
        "roles": [],
        "meta": {"resourceType": "User"},
        "externalId": "${refObjectId}",
        "name": {"formatted": "Ryan Leenay", "familyName": "Leenay", "givenName": "Ryan"},
        "emails": [{"Primary": "true", "type": "work", "value": "Test@contoso.com"}],
        "misspelledAttribute": "ignored",
        ENTERPRISE: {"Department": "Dept", "Manager": {"Value": "m-1", "displayName": "ignored"}}
    });
    let coerced = coerce_resource(&body, &USER_RESOURCE).expect("POST body coerces");
    let expected = json!({
        "schemas": [CORE_USER, ENTERPRISE],
        "userName": "UserName123",
        "active": true,
        "displayName": "BobIsAmazing",
        "password": "placeholder",
        "externalId": "${refObjectId}",
        "name": {"formatted": "Ryan Leenay", "familyName": "Leenay", "givenName": "Ryan"},
        "emails": [{"primary": true, "type": "work", "value": "Test@contoso.com"}],
        ENTERPRISE: {"department": "Dept", "manager": {"value": "m-1"}}
    });
    assert_eq!(coerced, expected, "coerced body");
}

#[test]
fn coerce_adds_extension_schema_and_rejects_bad_values() {
    let coerced = coerce_resource(
        &json!({"schemas": [CORE_USER], "userName": "a", ENTERPRISE: {"manager": "m-1"}}),
        &USER_RESOURCE,
    )
    .expect("body coerces");
    assert_eq!(
        coerced["schemas"],
        json!([CORE_USER, ENTERPRISE]),
        "extension listed"
    );
    assert_eq!(
        coerced[ENTERPRISE]["manager"],
        json!({"value": "m-1"}),
        "bare manager wrapped"
    );
    let cases = [
        json!({"userName": "a", "active": "yes"}),
        json!({"userName": 5}),
        json!("not an object"),
        json!({"userName": "a", "schemas": CORE_USER}),
        json!({"userName": "a", "schemas": [CORE_USER, 7]}),
        json!({"userName": "a", "schemas": {"id": CORE_USER}}),
    ];
    for body in cases {
        let error = coerce_resource(&body, &USER_RESOURCE).expect_err("invalid body");
        assert_eq!(error.status, 400, "status for {body}");
    }
}

#[test]
fn patch_request_parsing() {
    let request = PatchRequest::from_json(&json!({
        "schemas": ["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],
        "operations": [
            {"OP": "Add", "Path": "title", "Value": "x"},
            {"op": "remove", "path": null},
            {"op": "replace", "value": null}
        ]
    }))
    .expect("case-insensitive members parse");
    let expected = vec![
        PatchOperation {
            op: PatchOpKind::Add,
            path: Some("title".to_owned()),
            value: Some(json!("x")),
        },
        PatchOperation {
            op: PatchOpKind::Remove,
            path: None,
            value: None,
        },
        PatchOperation {
            op: PatchOpKind::Replace,
            path: None,
            value: Some(Value::Null),
        },
    ];
    assert_eq!(request.operations, expected, "operations");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-zA-Z0-9@. ]{0,8}".prop_map(Value::from),
        prop::sample::select(vec!["True", "false", "", "u1", "work"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "value",
                    "type",
                    "display",
                    "primary",
                    "givenName",
                    "active",
                    "id",
                    "members",
                    "emails",
                    "name.givenName",
                    ENTERPRISE,
                ])
                .prop_map(str::to_owned),
                inner,
                0..4,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn patch_path() -> impl Strategy<Value = Option<String>> {
    let known = prop::sample::select(vec![
        "members",
        "members[value eq \"u1\"]",
        "members[value eq \"u1\"].display",
        "emails",
        "emails[type eq \"work\"].value",
        "emails[type eq \"work\"]",
        "name.givenName",
        "name",
        "active",
        "id",
        "meta",
        "groups",
        ENTERPRISE,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "emails[",
        "emails]",
        "emails[type eq \"x\"].",
        "[]",
        "..",
        "urn:",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        Just(None),
        known.prop_map(Some),
        any::<String>().prop_map(Some),
        r#"[a-zA-Z.:\[\]" ]{0,24}"#.prop_map(Some),
    ]
}

fn op_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["add", "Add", "REPLACE", "replace", "Remove", "remove"])
            .prop_map(str::to_owned),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn patch_never_panics(
        operations in prop::collection::vec((op_name(), patch_path(), prop::option::of(json_value())), 1..4)
    ) {
        let operations: Vec<Value> = operations
            .into_iter()
            .map(|(op, path, value)| {
                let mut operation = serde_json::Map::new();
                operation.insert("op".to_owned(), Value::from(op));
                if let Some(path) = path {
                    operation.insert("path".to_owned(), Value::from(path));
                }
                if let Some(value) = value {
                    operation.insert("value".to_owned(), value);
                }
                Value::Object(operation)
            })
            .collect();
        let request = body(Value::Array(operations));
        let _ = patch_resource(&user(), &request, &USER_RESOURCE);
        let _ = patch_resource(&group(&["u1", "u2"]), &request, &GROUP_RESOURCE);
    }

    #[test]
    fn coerce_never_panics(value in json_value()) {
        let _ = coerce_resource(&value, &USER_RESOURCE);
        let _ = coerce_resource(&value, &GROUP_RESOURCE);
    }
}
