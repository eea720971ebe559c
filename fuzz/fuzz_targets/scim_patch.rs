//! The SCIM PATCH engine and the POST/PUT body coercion, on any JSON
//! document. Neither panics. A successful PATCH keeps the readOnly `id`,
//! `meta` and `groups` and the required `userName` or `displayName` of the
//! resource. A coerced body has no readOnly attribute.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis::scim::patch::{coerce_resource, patch_resource};
use portcullis::scim::schema::{ResourceType, GROUP_RESOURCE, USER_RESOURCE};
use serde_json::{json, Value};

static USER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "u-1",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen"},
        "displayName": "Babs",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@home.example", "type": "home"}
        ],
        "groups": [{"value": "g-1", "display": "Sales"}],
        "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "m-1"}
        }
    })
});

static GROUP: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g-1",
        "displayName": "Sales",
        "members": [{"value": "u1", "display": "Alice"}, {"value": "u2"}],
        "meta": {"resourceType": "Group", "created": "2024-01-01T00:00:00Z"}
    })
});

const READ_ONLY: [&str; 3] = ["id", "meta", "groups"];

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check_patch(&USER, &body, &USER_RESOURCE, "userName");
    check_patch(&GROUP, &body, &GROUP_RESOURCE, "displayName");
    check_coerce(&body, &USER_RESOURCE);
    check_coerce(&body, &GROUP_RESOURCE);
});

fn check_patch(resource: &Value, body: &Value, resource_type: &ResourceType, required: &str) {
    let Ok(patched) = patch_resource(resource, body, resource_type) else {
        return;
    };
    for name in READ_ONLY {
        assert_eq!(
            patched.get(name),
            resource.get(name),
            "{body} changed the readOnly {name}"
        );
    }
    assert!(
        patched.get(required).is_some_and(|value| !value.is_null()),
        "{body} removed the required {required}: {patched}"
    );
}

fn check_coerce(body: &Value, resource_type: &ResourceType) {
    let Ok(coerced) = coerce_resource(body, resource_type) else {
        return;
    };
    for name in READ_ONLY {
        assert!(
            coerced.get(name).is_none(),
            "coercing {body} kept the readOnly {name}: {coerced}"
        );
    }
}
