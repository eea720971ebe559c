//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5 and §3.9):
//! which attributes of a resource a response shows.
//!
//! With `attributes`, a response has only the named attributes and
//! sub-attributes plus those whose `returned` is `always` (`id`,
//! `meta.resourceType`) and `schemas`. With `excludedAttributes`, it has
//! the default set less the named ones, and `always` attributes stay. When
//! a request gives both, the response has the `attributes` set less the
//! excluded ones.
//! `returned: never` attributes, such as `password`, never appear, and
//! `returned: request` attributes appear only when named in `attributes`.
//! Names are comma-separated, case-insensitive, and may be URN-qualified,
//! name a sub-attribute (`name.givenName`) or a whole extension.

use serde_json::{Map, Value};

use crate::scim::schema::{AttributeDef, Container, ResourceType, Returned, Schema};

/// One entry of an `attributes` or `excludedAttributes` list.
#[derive(Debug, Clone, Copy)]
enum Selector {
    /// A whole extension, named by its URN.
    Extension(&'static Schema),
    /// An attribute, or one of its sub-attributes.
    Attribute {
        container: Container,
        attribute: &'static str,
        sub_attribute: Option<&'static str>,
    },
}

impl Selector {
    /// Tells whether the selector names the attribute (or sub-attribute)
    /// in the container. Naming an attribute covers all its
    /// sub-attributes.
    fn covers(
        &self,
        container: Container,
        attribute: &AttributeDef,
        sub: Option<&AttributeDef>,
    ) -> bool {
        match *self {
            Selector::Extension(schema) => container == Container::Extension(schema),
            Selector::Attribute {
                container: selected_container,
                attribute: selected,
                sub_attribute,
            } => {
                let same_attribute = selected_container == container && selected == attribute.name;
                match sub_attribute {
                    None => same_attribute,
                    Some(selected_sub) => {
                        same_attribute && sub.is_some_and(|s| s.name == selected_sub)
                    }
                }
            }
        }
    }
}

/// A parsed pair of `attributes` and `excludedAttributes` parameters for
/// one resource type.
#[derive(Debug, Clone)]
pub struct AttributeSelection {
    resource_type: &'static ResourceType,
    /// The `attributes` list, or `None` for the default set.
    included: Option<Vec<Selector>>,
    excluded: Vec<Selector>,
}

impl AttributeSelection {
    /// Parses the two query parameters. An absent or empty parameter has no
    /// effect, and names that match no attribute are ignored.
    pub fn parse(
        attributes: Option<&str>,
        excluded_attributes: Option<&str>,
        resource_type: &'static ResourceType,
    ) -> Self {
        let included = attributes
            .filter(|list| !list.trim().is_empty())
            .map(|list| parse_list(list, resource_type));
        let excluded = excluded_attributes
            .map(|list| parse_list(list, resource_type))
            .unwrap_or_default();
        AttributeSelection {
            resource_type,
            included,
            excluded,
        }
    }

    /// Returns the resource with only the selected attributes. Members
    /// that no schema defines are kept unless `attributes` is given.
    pub fn apply(&self, resource: &Value) -> Value {
        let Some(root) = resource.as_object() else {
            return resource.clone();
        };
        let mut projected = Map::new();
        for (key, value) in root {
            let selected = if key.eq_ignore_ascii_case("schemas") {
                Some(value.clone())
            } else if let Some(schema) = self.resource_type.extension(key) {
                self.project_extension(schema, value)
            } else if let Some(attribute) = self.resource_type.root_attribute(key) {
                self.project(Container::Root, attribute, value)
            } else {
                self.included.is_none().then(|| value.clone())
            };
            if let Some(selected) = selected {
                projected.insert(key.clone(), selected);
            }
        }
        Value::Object(projected)
    }

    fn project_extension(&self, schema: &'static Schema, value: &Value) -> Option<Value> {
        let Some(members) = value.as_object() else {
            return self.included.is_none().then(|| value.clone());
        };
        let mut projected = Map::new();
        for (key, value) in members {
            let selected = match schema.attribute(key) {
                Some(attribute) => self.project(Container::Extension(schema), attribute, value),
                None => self.included.is_none().then(|| value.clone()),
            };
            if let Some(selected) = selected {
                projected.insert(key.clone(), selected);
            }
        }
        (!projected.is_empty()).then_some(Value::Object(projected))
    }

    fn project(
        &self,
        container: Container,
        attribute: &'static AttributeDef,
        value: &Value,
    ) -> Option<Value> {
        if !attribute.is_complex() {
            return self
                .selected(container, attribute, None)
                .then(|| value.clone());
        }
        match value {
            Value::Array(items) => {
                let projected: Vec<Value> = items
                    .iter()
                    .filter_map(|item| self.project_complex(container, attribute, item))
                    .collect();
                (!projected.is_empty()).then_some(Value::Array(projected))
            }
            item => self.project_complex(container, attribute, item),
        }
    }

    fn project_complex(
        &self,
        container: Container,
        attribute: &'static AttributeDef,
        item: &Value,
    ) -> Option<Value> {
        let Some(members) = item.as_object() else {
            return self
                .selected(container, attribute, None)
                .then(|| item.clone());
        };
        let mut projected = Map::new();
        for (key, value) in members {
            let sub = attribute.sub_attribute(key);
            if sub.is_none() && attribute.returned == Returned::Never {
                continue;
            }
            if self.selected(container, attribute, sub) {
                projected.insert(key.clone(), value.clone());
            }
        }
        (!projected.is_empty()).then_some(Value::Object(projected))
    }

    /// Decides one attribute or sub-attribute by its `returned`
    /// characteristic and the two lists.
    fn selected(
        &self,
        container: Container,
        attribute: &AttributeDef,
        sub: Option<&AttributeDef>,
    ) -> bool {
        let returned = match sub {
            _ if attribute.returned == Returned::Never => Returned::Never,
            Some(sub) => sub.returned,
            None => attribute.returned,
        };
        match returned {
            Returned::Never => return false,
            Returned::Always => return true,
            Returned::Default | Returned::Request => {}
        }
        let excluded = self
            .excluded
            .iter()
            .any(|s| s.covers(container, attribute, sub));
        match &self.included {
            Some(included) => {
                !excluded && included.iter().any(|s| s.covers(container, attribute, sub))
            }
            None => !excluded && returned != Returned::Request,
        }
    }
}

fn parse_list(list: &str, resource_type: &ResourceType) -> Vec<Selector> {
    // NOTE: unknown names are ignored rather than rejected with
    // invalidPath, because RFC 7644 §3.9 defines no error for them.
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .filter_map(|name| {
            if let Some(schema) = resource_type.extension(name) {
                return Some(Selector::Extension(schema));
            }
            let resolved = resource_type.resolve(name)?;
            Some(Selector::Attribute {
                container: resolved.container,
                attribute: resolved.attribute.name,
                sub_attribute: resolved.sub_attribute.map(|sub| sub.name),
            })
        })
        .collect()
}

/// Parses the two parameters and applies them to one resource.
pub fn select_attributes(
    resource: &Value,
    resource_type: &'static ResourceType,
    attributes: Option<&str>,
    excluded_attributes: Option<&str>,
) -> Value {
    AttributeSelection::parse(attributes, excluded_attributes, resource_type).apply(resource)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "id": "u-1",
            "externalId": "e-1",
            "userName": "bjensen",
            "password": "s3cret",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@x", "type": "work"}, {"value": "h@x", "type": "home"}],
            "customMember": 1,
            "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z", "location": "https://x/Users/u-1"},
            ENTERPRISE: {"department": "Sales", "manager": {"value": "m-1", "displayName": "Boss"}}
        })
    }

    #[test]
    fn default_projection_hides_password() {
        let mut expected = user();
        expected.as_object_mut().map(|o| o.remove("password"));
        assert_eq!(
            select_attributes(&user(), &USER_RESOURCE, None, None),
            expected,
            "default set"
        );
        assert_eq!(
            select_attributes(&user(), &USER_RESOURCE, Some(" "), Some("")),
            expected,
            "empty parameters"
        );
    }

    #[test]
    fn attributes_parameter() {
        let minimal = |extra: Value| {
            let mut base = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "id": "u-1",
                "meta": {"resourceType": "User"}
            });
            for (key, value) in extra.as_object().expect("object").clone() {
                base[key] = value;
            }
            base
        };
        let cases = [
            ("userName", minimal(json!({"userName": "bjensen"}))),
            ("USERNAME", minimal(json!({"userName": "bjensen"}))),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName",
                minimal(json!({"userName": "bjensen"})),
            ),
            (
                "userName, externalId",
                minimal(json!({"userName": "bjensen", "externalId": "e-1"})),
            ),
            (
                "name.givenName",
                minimal(json!({"name": {"givenName": "Barbara"}})),
            ),
            (
                "emails.value",
                minimal(json!({"emails": [{"value": "b@x"}, {"value": "h@x"}]})),
            ),
            (
                "emails",
                minimal(
                    json!({"emails": [{"value": "b@x", "type": "work"}, {"value": "h@x", "type": "home"}]}),
                ),
            ),
            ("password", minimal(json!({}))),
            ("nope", minimal(json!({}))),
            ("meta.created", {
                let mut m = minimal(json!({}));
                m["meta"]["created"] = json!("2024-01-01T00:00:00Z");
                m
            }),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                minimal(json!({ENTERPRISE: {"manager": {"value": "m-1", "displayName": "Boss"}}})),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                minimal(json!({ENTERPRISE: {"manager": {"value": "m-1"}}})),
            ),
            (
                "department",
                minimal(json!({ENTERPRISE: {"department": "Sales"}})),
            ),
            (
                ENTERPRISE,
                minimal(
                    json!({ENTERPRISE: {"department": "Sales", "manager": {"value": "m-1", "displayName": "Boss"}}}),
                ),
            ),
        ];
        for (attributes, expected) in cases {
            let projected = select_attributes(&user(), &USER_RESOURCE, Some(attributes), None);
            assert_eq!(projected, expected, "attributes={attributes}");
        }
    }

    #[test]
    fn excluded_attributes_parameter() {
        let without = |remove: &[&str]| {
            let mut expected = user();
            let object = expected.as_object_mut().expect("object");
            object.remove("password");
            for key in remove {
                object.remove(*key);
            }
            expected
        };
        let mut no_value = without(&[]);
        no_value["emails"] = json!([{"type": "work"}, {"type": "home"}]);
        let mut no_manager = without(&[]);
        no_manager[ENTERPRISE] = json!({"department": "Sales"});
        let mut no_created = without(&[]);
        no_created["meta"] = json!({"resourceType": "User", "location": "https://x/Users/u-1"});
        let mut meta_kept = without(&[]);
        meta_kept["meta"] = json!({"resourceType": "User"});
        let cases = [
            ("emails", without(&["emails"])),
            ("Emails,NAME", without(&["emails", "name"])),
            ("id,schemas", without(&[])),
            ("emails.value", no_value),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                no_manager,
            ),
            (ENTERPRISE, without(&[ENTERPRISE])),
            ("meta.created", no_created),
            ("meta", meta_kept),
        ];
        for (excluded, expected) in cases {
            let projected = select_attributes(&user(), &USER_RESOURCE, None, Some(excluded));
            assert_eq!(projected, expected, "excludedAttributes={excluded}");
        }
    }

    #[test]
    fn excluded_members_on_groups() {
        let group = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "g-1",
            "displayName": "Sales",
            "members": [{"value": "u-1"}],
            "meta": {"resourceType": "Group"}
        });
        let projected = select_attributes(&group, &GROUP_RESOURCE, None, Some("members"));
        assert!(projected.get("members").is_none(), "members excluded");
        assert_eq!(projected["displayName"], json!("Sales"), "displayName kept");
        assert_eq!(projected["id"], json!("g-1"), "id kept");
        let only_name = select_attributes(&group, &GROUP_RESOURCE, Some("displayName"), None);
        assert!(
            only_name.get("members").is_none(),
            "members left out of attributes=displayName"
        );
    }

    #[test]
    fn attributes_and_exclusions_together() {
        let projected = select_attributes(
            &user(),
            &USER_RESOURCE,
            Some("name,emails"),
            Some("name.familyName"),
        );
        assert_eq!(
            projected["name"],
            json!({"givenName": "Barbara"}),
            "name less the excluded familyName"
        );
        assert!(projected.get("emails").is_some(), "emails included");
        assert!(projected.get("userName").is_none(), "userName not included");
    }
}
