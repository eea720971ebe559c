use super::*;

#[test]
fn resolve_user_paths() {
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let cases = [
        ("userName", Some("userName")),
        ("USERNAME", Some("userName")),
        ("emails.value", Some("emails.value")),
        ("Name.GivenName", Some("name.givenName")),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            Some("userName"),
        ),
        (
            "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:name.familyName",
            Some("name.familyName"),
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
        ),
        (
            "department",
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
        ),
        ("id", Some("id")),
        ("externalId", Some("externalId")),
        ("meta.lastModified", Some("meta.lastModified")),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:meta.created",
            Some("meta.created"),
        ),
        ("members", None),
        ("userName.value", None),
        ("name.nope", None),
        (
            "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
            None,
        ),
        ("urn:unknown:displayName", None),
        (enterprise, None),
        ("", None),
        ("name.", None),
    ];
    for (path, expected) in cases {
        let resolved = USER_RESOURCE.resolve(path).map(|r| r.to_string());
        assert_eq!(resolved.as_deref(), expected, "path {path:?}");
    }
}

#[test]
fn resolve_group_paths() {
    let cases = [
        ("displayName", Some("displayName")),
        ("members.value", Some("members.value")),
        ("MEMBERS.$REF", Some("members.$ref")),
        (
            "urn:ietf:params:scim:schemas:core:2.0:Group:members.display",
            Some("members.display"),
        ),
        ("userName", None),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            None,
        ),
    ];
    for (path, expected) in cases {
        let resolved = GROUP_RESOURCE.resolve(path).map(|r| r.to_string());
        assert_eq!(resolved.as_deref(), expected, "path {path:?}");
    }
}

#[test]
fn resolve_reports_container() {
    let manager = USER_RESOURCE
        .resolve("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
        .expect("manager resolves");
    assert_eq!(
        manager.container,
        Container::Extension(&ENTERPRISE_USER_SCHEMA),
        "manager lives in the extension object"
    );
    assert!(manager.sub_attribute.is_none(), "no sub-attribute");
    let user_name = USER_RESOURCE
        .resolve("userName")
        .expect("userName resolves");
    assert_eq!(
        user_name.container,
        Container::Root,
        "userName is top-level"
    );
}

#[test]
fn resolve_parts_with_urn() {
    let cases = [
        (Some(USER_URN), "userName", None, Some("userName")),
        (
            Some(ENTERPRISE_USER_URN),
            "manager",
            Some("value"),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        ),
        (Some("urn:x"), "userName", None, None),
        (None, "emails", Some("type"), Some("emails.type")),
    ];
    for (urn, name, sub, expected) in cases {
        let resolved = USER_RESOURCE
            .resolve_parts(urn, name, sub)
            .map(|r| r.to_string());
        assert_eq!(
            resolved.as_deref(),
            expected,
            "parts {urn:?} {name:?} {sub:?}"
        );
    }
}

#[test]
fn extension_lookup_ignores_case() {
    let upper = ENTERPRISE_USER_URN.to_ascii_uppercase();
    assert!(USER_RESOURCE.extension(&upper).is_some(), "upper-case URN");
    assert!(
        GROUP_RESOURCE.extension(ENTERPRISE_USER_URN).is_none(),
        "groups have no extension"
    );
    assert!(
        find_schema(GROUP_URN).is_some(),
        "group schema is registered"
    );
    assert!(find_schema("urn:nope").is_none(), "unknown schema");
}

#[test]
fn user_attribute_characteristics() {
    type Case<'a> = (
        &'a str,
        AttributeType,
        bool,
        bool,
        bool,
        Mutability,
        Returned,
        Uniqueness,
    );
    let cases: [Case; 10] = [
        (
            "userName",
            AttributeType::String,
            false,
            true,
            false,
            Mutability::ReadWrite,
            Returned::Default,
            Uniqueness::Server,
        ),
        (
            "password",
            AttributeType::String,
            false,
            false,
            false,
            Mutability::WriteOnly,
            Returned::Never,
            Uniqueness::None,
        ),
        (
            "active",
            AttributeType::Boolean,
            false,
            false,
            false,
            Mutability::ReadWrite,
            Returned::Default,
            Uniqueness::None,
        ),
        (
            "emails",
            AttributeType::Complex,
            true,
            false,
            false,
            Mutability::ReadWrite,
            Returned::Default,
            Uniqueness::None,
        ),
        (
            "groups",
            AttributeType::Complex,
            true,
            false,
            false,
            Mutability::ReadOnly,
            Returned::Default,
            Uniqueness::None,
        ),
        (
            "profileUrl",
            AttributeType::Reference,
            false,
            false,
            false,
            Mutability::ReadWrite,
            Returned::Default,
            Uniqueness::None,
        ),
        (
            "x509Certificates.value",
            AttributeType::Binary,
            false,
            false,
            true,
            Mutability::ReadWrite,
            Returned::Default,
            Uniqueness::None,
        ),
        (
            "id",
            AttributeType::String,
            false,
            false,
            true,
            Mutability::ReadOnly,
            Returned::Always,
            Uniqueness::Server,
        ),
        (
            "externalId",
            AttributeType::String,
            false,
            false,
            true,
            Mutability::ReadWrite,
            Returned::Default,
            Uniqueness::None,
        ),
        (
            "meta.lastModified",
            AttributeType::DateTime,
            false,
            false,
            false,
            Mutability::ReadOnly,
            Returned::Default,
            Uniqueness::None,
        ),
    ];
    for (path, kind, multi, required, case_exact, mutability, returned, uniqueness) in cases {
        let def = USER_RESOURCE
            .resolve(path)
            .expect("attribute resolves")
            .leaf();
        assert_eq!(def.kind, kind, "type of {path}");
        assert_eq!(def.multi_valued, multi, "multiValued of {path}");
        assert_eq!(def.required, required, "required of {path}");
        assert_eq!(def.case_exact, case_exact, "caseExact of {path}");
        assert_eq!(def.mutability, mutability, "mutability of {path}");
        assert_eq!(def.returned, returned, "returned of {path}");
        assert_eq!(def.uniqueness, uniqueness, "uniqueness of {path}");
    }
}

#[test]
fn every_rfc_user_attribute_is_defined() {
    let names = [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ];
    for name in names {
        assert!(
            USER_SCHEMA.attribute(name).is_some(),
            "User attribute {name}"
        );
    }
    let subs = [
        "formatted",
        "familyName",
        "givenName",
        "middleName",
        "honorificPrefix",
        "honorificSuffix",
    ];
    for sub in subs {
        assert!(
            USER_RESOURCE.resolve(&format!("name.{sub}")).is_some(),
            "name.{sub}"
        );
    }
    let enterprise = [
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager",
    ];
    for name in enterprise {
        assert!(
            ENTERPRISE_USER_SCHEMA.attribute(name).is_some(),
            "enterprise attribute {name}"
        );
    }
    for sub in ["value", "$ref", "displayName"] {
        assert!(
            USER_RESOURCE.resolve(&format!("manager.{sub}")).is_some(),
            "manager.{sub}"
        );
    }
    for sub in ["value", "$ref", "display", "type"] {
        assert!(
            GROUP_RESOURCE.resolve(&format!("members.{sub}")).is_some(),
            "members.{sub}"
        );
    }
}

#[test]
fn definitions_are_consistent() {
    let all = SCHEMAS
        .iter()
        .flat_map(|schema| schema.attributes.iter())
        .chain(COMMON_ATTRIBUTES.iter());
    for attribute in all {
        assert!(
            !attribute.description.is_empty(),
            "description of {}",
            attribute.name
        );
        assert_eq!(
            attribute.is_complex(),
            !attribute.sub_attributes.is_empty(),
            "complex attributes and only they have sub-attributes: {}",
            attribute.name
        );
        for sub in attribute.sub_attributes {
            assert!(
                !sub.is_complex(),
                "{}.{} is not complex",
                attribute.name,
                sub.name
            );
            assert!(
                !sub.description.is_empty(),
                "description of {}.{}",
                attribute.name,
                sub.name
            );
            if sub.kind == AttributeType::Reference {
                assert!(
                    !sub.reference_types.is_empty(),
                    "referenceTypes of {}.{}",
                    attribute.name,
                    sub.name
                );
            }
        }
        if attribute.kind == AttributeType::Reference {
            assert!(
                !attribute.reference_types.is_empty(),
                "referenceTypes of {}",
                attribute.name
            );
        }
    }
}

#[test]
fn render_user_schema() {
    let rendered = render_schema(&USER_SCHEMA, "https://sso.example.com/scim/v2/");
    assert_eq!(rendered["schemas"], json!([SCHEMA_URN]), "schemas");
    assert_eq!(rendered["id"], json!(USER_URN), "id");
    assert_eq!(rendered["name"], json!("User"), "name");
    assert_eq!(
        rendered["meta"]["resourceType"],
        json!("Schema"),
        "meta.resourceType"
    );
    assert_eq!(
        rendered["meta"]["location"],
        json!("https://sso.example.com/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"),
        "meta.location"
    );
    let attributes = rendered["attributes"].as_array().expect("attributes array");
    assert_eq!(attributes.len(), 21, "User attribute count");
    let user_name = &attributes[0];
    let expected = json!({
        "name": "userName",
        "type": "string",
        "multiValued": false,
        "description": USER_ATTRIBUTES[0].description,
        "required": true,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "server",
    });
    assert_eq!(user_name, &expected, "userName representation");
    let emails = attributes
        .iter()
        .find(|a| a["name"] == "emails")
        .expect("emails rendered");
    assert_eq!(emails["multiValued"], json!(true), "emails is multi-valued");
    let type_sub = emails["subAttributes"]
        .as_array()
        .expect("emails sub-attributes")
        .iter()
        .find(|a| a["name"] == "type")
        .expect("emails.type rendered");
    assert_eq!(
        type_sub["canonicalValues"],
        json!(["work", "home", "other"]),
        "emails.type canonical values"
    );
    let password = attributes
        .iter()
        .find(|a| a["name"] == "password")
        .expect("password rendered");
    assert_eq!(
        password["mutability"],
        json!("writeOnly"),
        "password mutability"
    );
    assert_eq!(password["returned"], json!("never"), "password returned");
    assert!(
        attributes.iter().all(|a| a["name"] != "id"),
        "common attributes are not listed"
    );
}

#[test]
fn render_omits_absent_characteristics() {
    let rendered = render_attribute(&USER_ATTRIBUTES[0]);
    for key in ["canonicalValues", "referenceTypes", "subAttributes"] {
        assert!(rendered.get(key).is_none(), "userName has no {key}");
    }
    let manager = render_attribute(
        ENTERPRISE_USER_SCHEMA
            .attribute("manager")
            .expect("manager defined"),
    );
    let reference = &manager["subAttributes"][1];
    assert_eq!(reference["name"], json!("$ref"), "manager.$ref");
    assert_eq!(
        reference["referenceTypes"],
        json!(["User"]),
        "manager.$ref referenceTypes"
    );
    assert_eq!(
        manager["subAttributes"][2]["mutability"],
        json!("readOnly"),
        "manager.displayName"
    );
}

#[test]
fn render_group_and_extension() {
    let group = render_schema(&GROUP_SCHEMA, "http://127.0.0.1:8080/scim/v2");
    let members = &group["attributes"][1];
    assert_eq!(members["name"], json!("members"), "members rendered second");
    let member_subs: Vec<&str> = members["subAttributes"]
        .as_array()
        .expect("members sub-attributes")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        member_subs,
        ["value", "$ref", "display", "type"],
        "members sub-attributes"
    );
    let enterprise = render_schema(&ENTERPRISE_USER_SCHEMA, "http://127.0.0.1:8080/scim/v2");
    assert_eq!(enterprise["id"], json!(ENTERPRISE_USER_URN), "extension id");
    assert_eq!(
        enterprise["attributes"].as_array().map(Vec::len),
        Some(6),
        "extension attribute count"
    );
}

#[test]
fn case_insensitive_members() {
    let mut object = Map::new();
    object.insert("UserName".to_owned(), json!("a"));
    object.insert("userName".to_owned(), json!("b"));
    object.insert("title".to_owned(), json!("t"));
    assert_eq!(
        get_ignore_case(&object, "userName"),
        Some(&json!("b")),
        "exact match wins"
    );
    assert_eq!(
        get_ignore_case(&object, "TITLE"),
        Some(&json!("t")),
        "other case"
    );
    assert_eq!(get_ignore_case(&object, "missing"), None, "missing key");
    assert_eq!(
        take_ignore_case(&mut object, "username"),
        Some(json!("a")),
        "first match taken"
    );
    assert!(!object.contains_key("UserName"), "UserName removed");
    assert!(!object.contains_key("userName"), "userName removed");
    assert_eq!(object.len(), 1, "other members stay");
}
