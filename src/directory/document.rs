//! The part of a SCIM document the directory understands: checking the
//! attributes it indexes, extracting their case-folded keys, and moving a
//! Group's `members` between the document and the membership table.
//!
//! SCIM attribute names are case-insensitive (RFC 7643 section 2.1), so the
//! attributes are found whatever the case of their names.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{DirectoryError, Lookup, ResourceKind};

/// A User document ready to store, with its index keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PreparedUser {
    /// The document without `id`, `meta` and `groups`.
    pub document: Value,
    /// `userName` case-folded, unique among users.
    pub user_name_key: String,
    /// `externalId` as sent, matched case-exact and unique among users.
    /// An empty `externalId` is stored as none, so it never clashes.
    pub external_id: Option<String>,
    /// `displayName` case-folded, not unique among users.
    pub display_name_key: Option<String>,
    /// Every distinct `emails[].value`, case-folded.
    pub email_keys: Vec<String>,
}

/// A Group document ready to store, with its index keys and members.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PreparedGroup {
    /// The document without `id`, `meta` and `members`.
    pub document: Value,
    /// `displayName` as sent, for [`super::Directory::groups_of_user`].
    pub display_name: String,
    /// `displayName` case-folded, unique among groups.
    pub display_name_key: String,
    /// `externalId` as sent, matched case-exact.
    pub external_id: Option<String>,
    /// The members in the order sent, without repeated ids.
    pub members: Vec<Member>,
}

/// One entry of a Group's `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// The member's user id.
    pub value: String,
    /// The `display` sub-attribute as sent.
    pub display: Option<String>,
    /// The `type` sub-attribute as sent, usually "User".
    pub member_type: Option<String>,
}

/// The maximum length in bytes of a value the directory indexes: a
/// `userName`, `displayName`, `externalId` or `emails[].value`. PostgreSQL
/// rejects a B-tree index entry over 2,704 bytes, and case folding makes a
/// string at most 1.5 times longer (`İ`, 2 bytes, folds to 3), so 1,024
/// bytes stay below it on both backends. An email address fits in 254
/// bytes (RFC 5321 §4.5.3.1.3 limits a path to 256).
pub(crate) const MAX_INDEXED_BYTES: usize = 1024;

/// Folds case for the case-insensitive indexes. Both backends store and
/// query keys folded here, so SQL's ASCII-only `lower()` is never involved.
pub(crate) fn fold_case(value: &str) -> String {
    value.to_lowercase()
}

/// Checks a User document and extracts its index keys.
pub(crate) fn prepare_user(document: Value) -> Result<PreparedUser, DirectoryError> {
    let mut attributes = into_object(document)?;
    check_no_nul(&attributes)?;
    remove_attribute(&mut attributes, "id");
    remove_attribute(&mut attributes, "meta");
    remove_attribute(&mut attributes, "groups");

    let user_name = indexed(required_string(&attributes, "userName")?, "userName")?;
    let user_name_key = fold_case(user_name);
    // An empty externalId identifies no one: session revocation and the
    // login match skip it, so the unique index must not count it either.
    let external_id = optional_indexed(&attributes, "externalId")?
        .filter(|external_id| !external_id.is_empty())
        .map(str::to_owned);
    let display_name_key = optional_indexed(&attributes, "displayName")?.map(fold_case);
    let email_keys = email_keys(&attributes)?;

    Ok(PreparedUser {
        document: Value::Object(attributes),
        user_name_key,
        external_id,
        display_name_key,
        email_keys,
    })
}

/// Checks a Group document and takes its `members` out of it.
pub(crate) fn prepare_group(document: Value) -> Result<PreparedGroup, DirectoryError> {
    let mut attributes = into_object(document)?;
    check_no_nul(&attributes)?;
    remove_attribute(&mut attributes, "id");
    remove_attribute(&mut attributes, "meta");
    let members = match remove_attribute(&mut attributes, "members") {
        Some(members) => parse_members(members)?,
        None => Vec::new(),
    };

    let display_name = indexed(required_string(&attributes, "displayName")?, "displayName")?;
    let display_name = display_name.to_owned();
    let display_name_key = fold_case(&display_name);
    let external_id = optional_indexed(&attributes, "externalId")?.map(str::to_owned);

    Ok(PreparedGroup {
        document: Value::Object(attributes),
        display_name,
        display_name_key,
        external_id,
        members,
    })
}

/// Puts `members` back into a stored Group document.
pub(crate) fn compose_group(document: Value, members: Vec<Member>) -> Value {
    let mut attributes = match document {
        Value::Object(attributes) => attributes,
        // Stored documents are always objects; anything else is returned as
        // stored rather than dropped.
        other => return other,
    };
    let members = members.into_iter().map(member_to_json).collect();
    attributes.insert("members".to_owned(), Value::Array(members));
    Value::Object(attributes)
}

/// The SQL condition a lookup translates to: which indexed column equals
/// which parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Condition {
    /// Every resource of the kind.
    All,
    /// No resource of the kind can match, so no query is needed.
    Nothing,
    /// `column = value`, where the value is already case-folded if the
    /// column is.
    Equals(IndexedColumn, String),
}

/// The indexed columns a lookup can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IndexedColumn {
    /// `id`, case-exact.
    Id,
    /// `user_name_key`, case-folded.
    UserNameKey,
    /// `external_id`, case-exact.
    ExternalId,
    /// `display_name_key`, case-folded.
    DisplayNameKey,
    /// `user_emails.email_key`, case-folded.
    EmailKey,
}

/// Translates a lookup on a kind of resource into a condition.
pub(crate) fn lookup_condition(kind: ResourceKind, lookup: Option<&Lookup>) -> Condition {
    let Some(lookup) = lookup else {
        return Condition::All;
    };
    let (column, value) = match (kind, lookup) {
        (_, Lookup::Id(id)) => (IndexedColumn::Id, id.clone()),
        // The index contains no empty externalId of a User (see prepare_user).
        (ResourceKind::User, Lookup::ExternalId(id)) if id.is_empty() => {
            return Condition::Nothing;
        }
        (_, Lookup::ExternalId(id)) => (IndexedColumn::ExternalId, id.clone()),
        (_, Lookup::DisplayName(name)) => (IndexedColumn::DisplayNameKey, fold_case(name)),
        (ResourceKind::User, Lookup::UserName(name)) => {
            (IndexedColumn::UserNameKey, fold_case(name))
        }
        (ResourceKind::User, Lookup::Email(email)) => (IndexedColumn::EmailKey, fold_case(email)),
        (ResourceKind::Group, Lookup::UserName(_) | Lookup::Email(_)) => {
            return Condition::Nothing;
        }
    };
    // No stored value contains NUL, and PostgreSQL rejects a query
    // parameter that does.
    if value.contains('\0') {
        return Condition::Nothing;
    }
    Condition::Equals(column, value)
}

/// Rejects a document with a NUL character in a string or a member name.
/// PostgreSQL stores NUL in neither `text` nor `jsonb`, so both backends
/// reject it and accept the same documents.
fn check_no_nul(attributes: &Map<String, Value>) -> Result<(), DirectoryError> {
    for (name, value) in attributes {
        if name.contains('\0') || contains_nul(value) {
            return Err(DirectoryError::InvalidDocument(format!(
                "{name:?} contains a NUL character (\\u0000), which the directory cannot store"
            )));
        }
    }
    Ok(())
}

/// Tells whether a string or member name anywhere in `value` contains NUL,
/// without recursion.
fn contains_nul(value: &Value) -> bool {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) if text.contains('\0') => return true,
            Value::Array(items) => pending.extend(items),
            Value::Object(members) => {
                if members.keys().any(|key| key.contains('\0')) {
                    return true;
                }
                pending.extend(members.values());
            }
            _ => {}
        }
    }
    false
}

fn into_object(document: Value) -> Result<Map<String, Value>, DirectoryError> {
    match document {
        Value::Object(attributes) => Ok(attributes),
        other => Err(DirectoryError::InvalidDocument(format!(
            "expected a JSON object, got {}",
            json_type(&other)
        ))),
    }
}

/// Finds the key of an attribute, ignoring the case of its name.
fn attribute_key(attributes: &Map<String, Value>, name: &str) -> Option<String> {
    attributes
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

fn attribute<'a>(attributes: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let key = attribute_key(attributes, name)?;
    attributes.get(&key)
}

fn remove_attribute(attributes: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let key = attribute_key(attributes, name)?;
    attributes.remove(&key)
}

fn required_string<'a>(
    attributes: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, DirectoryError> {
    match optional_string(attributes, name)? {
        Some(value) if !value.trim().is_empty() => Ok(value),
        Some(_) => Err(DirectoryError::InvalidDocument(format!(
            "{name} must not be empty"
        ))),
        None => Err(DirectoryError::InvalidDocument(format!(
            "{name} is required"
        ))),
    }
}

/// Returns an optional string attribute that the directory indexes.
fn optional_indexed<'a>(
    attributes: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, DirectoryError> {
    optional_string(attributes, name)?
        .map(|value| indexed(value, name))
        .transpose()
}

/// Checks the length of a value the directory indexes.
fn indexed<'a>(value: &'a str, name: &str) -> Result<&'a str, DirectoryError> {
    if value.len() > MAX_INDEXED_BYTES {
        return Err(DirectoryError::InvalidDocument(format!(
            "{name} is {} bytes long, more than the maximum of {MAX_INDEXED_BYTES}",
            value.len()
        )));
    }
    Ok(value)
}

/// Returns a string attribute; a missing attribute and `null` are both
/// unassigned (RFC 7643 section 2.5).
fn optional_string<'a>(
    attributes: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, DirectoryError> {
    match attribute(attributes, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(DirectoryError::InvalidDocument(format!(
            "{name} must be a string, got {}",
            json_type(other)
        ))),
    }
}

fn email_keys(attributes: &Map<String, Value>) -> Result<Vec<String>, DirectoryError> {
    let emails = match attribute(attributes, "emails") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(emails)) => emails,
        Some(other) => {
            return Err(DirectoryError::InvalidDocument(format!(
                "emails must be an array, got {}",
                json_type(other)
            )))
        }
    };
    let mut keys: Vec<String> = Vec::with_capacity(emails.len());
    let mut seen = HashSet::with_capacity(emails.len());
    for email in emails {
        let value = match email {
            Value::Object(email) => optional_string(email, "value")?
                .map(|value| indexed(value, "emails[].value"))
                .transpose()?,
            other => {
                return Err(DirectoryError::InvalidDocument(format!(
                    "emails entries must be objects, got {}",
                    json_type(other)
                )))
            }
        };
        if let Some(key) = value.map(fold_case) {
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

fn parse_members(members: Value) -> Result<Vec<Member>, DirectoryError> {
    let entries = match members {
        Value::Null => return Ok(Vec::new()),
        Value::Array(entries) => entries,
        other => {
            return Err(DirectoryError::InvalidDocument(format!(
                "members must be an array, got {}",
                json_type(&other)
            )))
        }
    };
    let mut members: Vec<Member> = Vec::with_capacity(entries.len());
    let mut seen = HashSet::with_capacity(entries.len());
    for entry in entries {
        let member = parse_member(entry)?;
        // A repeated id is the same membership; the first entry wins.
        if seen.insert(member.value.clone()) {
            members.push(member);
        }
    }
    Ok(members)
}

fn parse_member(entry: Value) -> Result<Member, DirectoryError> {
    let Value::Object(attributes) = entry else {
        return Err(DirectoryError::InvalidDocument(format!(
            "members entries must be objects, got {}",
            json_type(&entry)
        )));
    };
    let value = required_string(&attributes, "value")
        .map_err(|_| DirectoryError::InvalidDocument("members[].value is required".to_owned()))?;
    Ok(Member {
        value: value.to_owned(),
        display: optional_string(&attributes, "display")?.map(str::to_owned),
        member_type: optional_string(&attributes, "type")?.map(str::to_owned),
    })
}

fn member_to_json(member: Member) -> Value {
    let mut entry = Map::new();
    entry.insert("value".to_owned(), Value::String(member.value));
    if let Some(display) = member.display {
        entry.insert("display".to_owned(), Value::String(display));
    }
    if let Some(member_type) = member.member_type {
        entry.insert("type".to_owned(), Value::String(member_type));
    }
    Value::Object(entry)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prepare_user_extracts_keys() {
        let prepared = prepare_user(json!({
            "id": "client-sent",
            "meta": {"resourceType": "User"},
            "groups": [{"value": "g"}],
            "UserName": "Alice@Example.COM",
            "externalId": "Ext-1",
            "displayName": "Alice Ä",
            "emails": [
                {"value": "Alice@Example.com", "primary": true},
                {"value": "ALICE@example.com"},
                {"type": "home"},
                {"value": "a@home.example"}
            ]
        }))
        .expect("valid user");

        assert_eq!(prepared.user_name_key, "alice@example.com");
        assert_eq!(prepared.external_id.as_deref(), Some("Ext-1"));
        assert_eq!(prepared.display_name_key.as_deref(), Some("alice ä"));
        assert_eq!(
            prepared.email_keys,
            vec!["alice@example.com".to_owned(), "a@home.example".to_owned()]
        );
        assert_eq!(prepared.document["UserName"], "Alice@Example.COM");
        assert!(prepared.document.get("id").is_none());
        assert!(prepared.document.get("meta").is_none());
        assert!(prepared.document.get("groups").is_none());
    }

    #[test]
    fn prepare_user_rejects_invalid_documents() {
        let cases = [
            ("not an object", json!(["userName"])),
            ("missing userName", json!({"displayName": "x"})),
            ("null userName", json!({"userName": null})),
            ("empty userName", json!({"userName": "  "})),
            ("numeric userName", json!({"userName": 7})),
            (
                "numeric externalId",
                json!({"userName": "a", "externalId": 7}),
            ),
            (
                "emails not array",
                json!({"userName": "a", "emails": "a@x"}),
            ),
            (
                "email entry not object",
                json!({"userName": "a", "emails": ["a@x"]}),
            ),
            (
                "email value not string",
                json!({"userName": "a", "emails": [{"value": 1}]}),
            ),
            ("NUL in userName", json!({"userName": "a\u{0}b"})),
            (
                "userName over the indexed limit",
                json!({"userName": "u".repeat(MAX_INDEXED_BYTES + 1)}),
            ),
            (
                "displayName over the indexed limit",
                json!({"userName": "a", "displayName": "é".repeat(MAX_INDEXED_BYTES / 2 + 1)}),
            ),
            (
                "externalId over the indexed limit",
                json!({"userName": "a", "externalId": "e".repeat(MAX_INDEXED_BYTES + 1)}),
            ),
            (
                "email over the indexed limit",
                json!({"userName": "a", "emails": [{"value": "m".repeat(MAX_INDEXED_BYTES + 1)}]}),
            ),
            (
                "NUL deep in an attribute",
                json!({"userName": "a", "addresses": [{"locality": ["\u{0}"]}]}),
            ),
            (
                "NUL in a member name",
                json!({"userName": "a", "name": {"given\u{0}Name": "x"}}),
            ),
            (
                "NUL in an attribute name",
                json!({"userName": "a", "x\u{0}": 1}),
            ),
        ];
        for (case, document) in cases {
            let result = prepare_user(document);
            assert!(
                matches!(result, Err(DirectoryError::InvalidDocument(_))),
                "{case}: {result:?}"
            );
        }
    }

    #[test]
    fn prepare_group_takes_members_out() {
        let prepared = prepare_group(json!({
            "displayName": "Admins",
            "externalId": "e",
            "members": [
                {"value": "u1", "display": "One", "$ref": null},
                {"value": "u2", "type": "User"},
                {"value": "u1", "display": "repeated"}
            ]
        }))
        .expect("valid group");

        assert_eq!(prepared.display_name, "Admins");
        assert_eq!(prepared.display_name_key, "admins");
        assert_eq!(prepared.external_id.as_deref(), Some("e"));
        assert!(prepared.document.get("members").is_none());
        assert_eq!(
            prepared.members,
            vec![
                Member {
                    value: "u1".to_owned(),
                    display: Some("One".to_owned()),
                    member_type: None,
                },
                Member {
                    value: "u2".to_owned(),
                    display: None,
                    member_type: Some("User".to_owned()),
                },
            ]
        );
    }

    #[test]
    fn prepare_group_rejects_invalid_documents() {
        let cases = [
            ("missing displayName", json!({"members": []})),
            (
                "members not array",
                json!({"displayName": "g", "members": {}}),
            ),
            (
                "member not object",
                json!({"displayName": "g", "members": ["u1"]}),
            ),
            (
                "member without value",
                json!({"displayName": "g", "members": [{"display": "d"}]}),
            ),
            (
                "member value number",
                json!({"displayName": "g", "members": [{"value": 1}]}),
            ),
            (
                "displayName over the indexed limit",
                json!({"displayName": "g".repeat(MAX_INDEXED_BYTES + 1)}),
            ),
            (
                "externalId over the indexed limit",
                json!({"displayName": "g", "externalId": "e".repeat(MAX_INDEXED_BYTES + 1)}),
            ),
            (
                "NUL in a member display",
                json!({"displayName": "g", "members": [{"value": "u1", "display": "\u{0}"}]}),
            ),
        ];
        for (case, document) in cases {
            let result = prepare_group(document);
            assert!(
                matches!(result, Err(DirectoryError::InvalidDocument(_))),
                "{case}: {result:?}"
            );
        }
    }

    #[test]
    fn prepare_group_accepts_null_members() {
        let prepared =
            prepare_group(json!({"displayName": "g", "members": null})).expect("valid group");
        assert!(prepared.members.is_empty());
    }

    #[test]
    fn compose_group_restores_members() {
        let members = vec![Member {
            value: "u1".to_owned(),
            display: Some("One".to_owned()),
            member_type: Some("User".to_owned()),
        }];
        let composed = compose_group(json!({"displayName": "g"}), members);
        assert_eq!(
            composed,
            json!({
                "displayName": "g",
                "members": [{"value": "u1", "display": "One", "type": "User"}]
            })
        );
    }

    #[test]
    fn lookup_condition_folds_case_where_needed() {
        use IndexedColumn::*;
        let cases = [
            (
                ResourceKind::User,
                Lookup::Id("AbC".into()),
                Condition::Equals(Id, "AbC".into()),
            ),
            (
                ResourceKind::User,
                Lookup::UserName("AbC".into()),
                Condition::Equals(UserNameKey, "abc".into()),
            ),
            (
                ResourceKind::User,
                Lookup::ExternalId("AbC".into()),
                Condition::Equals(ExternalId, "AbC".into()),
            ),
            (
                ResourceKind::Group,
                Lookup::DisplayName("AbC".into()),
                Condition::Equals(DisplayNameKey, "abc".into()),
            ),
            (
                ResourceKind::User,
                Lookup::Email("A@B.c".into()),
                Condition::Equals(EmailKey, "a@b.c".into()),
            ),
            (
                ResourceKind::Group,
                Lookup::UserName("a".into()),
                Condition::Nothing,
            ),
            (
                ResourceKind::Group,
                Lookup::Email("a@b".into()),
                Condition::Nothing,
            ),
            (
                ResourceKind::User,
                Lookup::UserName("a\u{0}".into()),
                Condition::Nothing,
            ),
            (
                ResourceKind::Group,
                Lookup::Id("\u{0}".into()),
                Condition::Nothing,
            ),
        ];
        for (kind, lookup, expected) in cases {
            assert_eq!(
                lookup_condition(kind, Some(&lookup)),
                expected,
                "{kind} {lookup:?}"
            );
        }
        assert_eq!(lookup_condition(ResourceKind::User, None), Condition::All);
    }
}
