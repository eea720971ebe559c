//! SCIM filters, as in a list request's `filter` parameter and inside a
//! PATCH path's brackets. Parsing never panics. A parsed filter prints to
//! text that parses back to the same tree and prints the same way again.
//! Validating, evaluating and index planning of a parsed filter never panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis::scim::error::ScimError;
use portcullis::scim::filter::{
    index_lookup, matches, matches_element, parse_filter, parse_value_filter, Filter,
};
use portcullis::scim::schema::{GROUP_RESOURCE, USER_RESOURCE, USER_SCHEMA};
use serde_json::{json, Value};

static USER: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "ExtId-1",
        "userName": "Alice@Example.com",
        "name": {"givenName": "Alice", "familyName": "Anderson"},
        "displayName": "Alice Anderson",
        "title": "",
        "active": true,
        "emails": [
            {"value": "alice@work.example", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z"
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "m-1", "displayName": "John Smith"}
        }
    })
});

static GROUP: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g-1",
        "displayName": "Sales",
        "members": [{"value": "u1", "display": "Alice"}, {"value": "u2"}]
    })
});

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = parse_filter(input) {
        check_reprint(&filter, input, parse_filter);
        let _ = filter.validate(&USER_RESOURCE);
        let _ = filter.validate(&GROUP_RESOURCE);
        let _ = matches(&filter, &USER, &USER_RESOURCE);
        let _ = matches(&filter, &GROUP, &GROUP_RESOURCE);
        let _ = index_lookup(&filter, &USER_RESOURCE);
        let _ = index_lookup(&filter, &GROUP_RESOURCE);
    }
    if let Ok(filter) = parse_value_filter(input) {
        check_reprint(&filter, input, parse_value_filter);
        let emails = USER_SCHEMA
            .attribute("emails")
            .expect("the User schema defines emails");
        let _ = filter.validate_value_filter(emails);
        for email in USER["emails"].as_array().into_iter().flatten() {
            let _ = matches_element(&filter, email, emails);
        }
    }
});

/// Checks that `filter`, parsed from `input`, prints to text that `parse`
/// reads back as the same tree and that prints the same way again.
fn check_reprint(filter: &Filter, input: &str, parse: fn(&str) -> Result<Filter, ScimError>) {
    let printed = filter.to_string();
    let reparsed = match parse(&printed) {
        Ok(reparsed) => reparsed,
        Err(error) => panic!("{printed:?}, printed from {input:?}, does not parse: {error:?}"),
    };
    assert_eq!(
        &reparsed, filter,
        "{printed:?}, printed from {input:?}, parses to another tree"
    );
    assert_eq!(
        reparsed.to_string(),
        printed,
        "{printed:?}, from {input:?}, prints differently after a reparse"
    );
}
