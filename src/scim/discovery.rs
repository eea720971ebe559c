//! The discovery endpoints of RFC 7644 §4: `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`. Conformance tools such as scim2-tester
//! decide what to test from these documents, so each one states exactly
//! what the handler supports.

use serde_json::{json, Value};

use super::schema::{render_schema, ResourceType, RESOURCE_TYPES, SCHEMAS};

/// `schemas` URN of a list response.
pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

const SERVICE_PROVIDER_CONFIG_URN: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// Maximum page size of a list response, whatever `count` requests.
pub const MAX_RESULTS: u64 = 1000;

/// Builds the `/ServiceProviderConfig` document. `max_body_bytes` is the
/// configured request body limit.
pub fn service_provider_config(base_url: &str, max_body_bytes: usize) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_URN],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": format!(
                "An API token created with `portcullis token create`, sent as `Authorization: Bearer <token>`. Request bodies are limited to {max_body_bytes} bytes."
            ),
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        },
    })
}

/// Renders one resource type (RFC 7643 §6).
pub fn render_resource_type(resource_type: &ResourceType, base_url: &str) -> Value {
    let extensions: Vec<Value> = resource_type
        .extensions
        .iter()
        .map(|extension| json!({ "schema": extension.schema.id, "required": extension.required }))
        .collect();
    let mut rendered = json!({
        "schemas": [RESOURCE_TYPE_URN],
        "id": resource_type.name,
        "name": resource_type.name,
        "endpoint": resource_type.endpoint,
        "description": resource_type.description,
        "schema": resource_type.schema.id,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{base_url}/ResourceTypes/{}", resource_type.name),
        },
    });
    if !extensions.is_empty() {
        rendered["schemaExtensions"] = Value::Array(extensions);
    }
    rendered
}

/// Builds `/ResourceTypes` as a list response.
pub fn resource_types(base_url: &str) -> Value {
    list_of(
        RESOURCE_TYPES
            .iter()
            .map(|resource_type| render_resource_type(resource_type, base_url))
            .collect(),
    )
}

/// Finds one resource type by its id (`User`, `Group`).
pub fn resource_type(id: &str, base_url: &str) -> Option<Value> {
    RESOURCE_TYPES
        .iter()
        .find(|resource_type| resource_type.name == id)
        .map(|resource_type| render_resource_type(resource_type, base_url))
}

/// Builds `/Schemas` as a list response.
pub fn schemas(base_url: &str) -> Value {
    list_of(
        SCHEMAS
            .iter()
            .map(|schema| render_schema(schema, base_url))
            .collect(),
    )
}

/// Finds one schema by its URN.
pub fn schema(id: &str, base_url: &str) -> Option<Value> {
    SCHEMAS
        .iter()
        .find(|schema| schema.id == id)
        .map(|schema| render_schema(schema, base_url))
}

/// Wraps complete results (no paging) in a list response.
fn list_of(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://sso.example.com/scim/v2";

    #[test]
    fn resource_types_list_both() {
        let listed = resource_types(BASE);
        assert_eq!(listed["totalResults"], 2);
        let user = &listed["Resources"][0];
        assert_eq!(user["endpoint"], "/Users");
        assert_eq!(
            user["schemaExtensions"][0]["schema"],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        );
        assert_eq!(
            user["meta"]["location"],
            "https://sso.example.com/scim/v2/ResourceTypes/User"
        );
        assert!(listed["Resources"][1].get("schemaExtensions").is_none());
    }

    #[test]
    fn schema_lookup_by_urn() {
        assert!(schema("urn:ietf:params:scim:schemas:core:2.0:Group", BASE).is_some());
        assert!(schema("urn:example:unknown", BASE).is_none());
        assert_eq!(schemas(BASE)["totalResults"], 3);
    }

    #[test]
    fn service_provider_config_states_features() {
        let config = service_provider_config(BASE, 1024);
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(config["bulk"]["supported"], false);
        assert_eq!(config["sort"]["supported"], false);
        assert_eq!(config["filter"]["maxResults"], MAX_RESULTS);
    }
}
