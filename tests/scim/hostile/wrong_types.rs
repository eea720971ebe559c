//! Every wrong JSON type for every attribute and sub-attribute of the User,
//! Enterprise User and Group schemas, as `/Schemas` serves them, plus the
//! common attributes `id`, `externalId` and `meta` that RFC 7643 §3.1 keeps
//! out of `/Schemas`. Each wrong value goes through POST, PUT, PATCH with a
//! path and PATCH without one.
//!
//! A wrong type gets `400 invalidValue` and changes nothing, and the target
//! of a failed PUT or PATCH reads back byte for byte as before. A readOnly
//! attribute is ignored in POST and PUT bodies and in PATCH values without
//! a path (RFC 7644 §3.3 and §3.5.2), and a PATCH path naming one gets
//! `400 mutability`.
//!
//! Some values of another type are legal by design, so none is generated.
//! Entra sends booleans as `"true"` and `"false"`, and its `manager` as a
//! string, which stands for the `value` sub-attribute of a complex
//! attribute. PATCH also takes a single value for a multi-valued attribute.

use http::Method;
use serde_json::{json, Map, Value};

use super::{check_unchanged, directory_state, Failures, Outcome, INVALID_VALUE, MUTABILITY};
use crate::support::{both_backends, Backend, Fixture, ENTERPRISE, GROUP, PATCH_OP, USER};

both_backends!(wrong_types_rejected);

/// The `userName` of the User that PUT and PATCH cases change.
const TARGET_USER: &str = "target@example.com";
/// The `displayName` of the Group that PUT and PATCH cases change.
const TARGET_GROUP: &str = "Target";

/// An attribute or sub-attribute as `/Schemas` describes it.
#[derive(Debug, Clone)]
struct Attribute {
    name: String,
    kind: String,
    multi_valued: bool,
    required: bool,
    read_only: bool,
    sub_attributes: Vec<Attribute>,
}

impl Attribute {
    fn from_schema(definition: &Value) -> Attribute {
        let text = |name: &str| definition[name].as_str().unwrap_or_default().to_owned();
        Attribute {
            name: text("name"),
            kind: text("type"),
            multi_valued: definition["multiValued"] == json!(true),
            required: definition["required"] == json!(true),
            read_only: definition["mutability"] == json!("readOnly"),
            sub_attributes: definition["subAttributes"]
                .as_array()
                .map(|subs| subs.iter().map(Attribute::from_schema).collect())
                .unwrap_or_default(),
        }
    }

    fn simple(name: &str, kind: &str, read_only: bool) -> Attribute {
        Attribute {
            name: name.to_owned(),
            kind: kind.to_owned(),
            multi_valued: false,
            required: false,
            read_only,
            sub_attributes: Vec::new(),
        }
    }

    fn is_complex(&self) -> bool {
        self.kind == "complex"
    }

    fn sub_attribute(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes.iter().find(|sub| sub.name == name)
    }

    /// Tells whether a bare string stands for the `value` sub-attribute.
    fn takes_bare_string(&self) -> bool {
        self.sub_attribute("value")
            .is_some_and(|value| matches!(value.kind.as_str(), "string" | "reference" | "binary"))
    }
}

/// Returns the common attributes of RFC 7643 §3.1.
fn common_attributes() -> Vec<Attribute> {
    let mut meta = Attribute::simple("meta", "complex", true);
    meta.sub_attributes = vec![
        Attribute::simple("resourceType", "string", true),
        Attribute::simple("created", "dateTime", true),
        Attribute::simple("lastModified", "dateTime", true),
        Attribute::simple("location", "reference", true),
        Attribute::simple("version", "string", true),
    ];
    vec![
        Attribute::simple("id", "string", true),
        Attribute::simple("externalId", "string", false),
        meta,
    ]
}

/// Returns the values of a wrong type for a simple attribute of `kind`.
fn wrong_simple_values(kind: &str) -> Vec<(&'static str, Value)> {
    let mut values = vec![
        ("an array", json!(["x"])),
        ("an object", json!({ "x": "y" })),
    ];
    if kind != "boolean" {
        values.push(("a boolean", json!(true)));
    }
    if matches!(
        kind,
        "string" | "reference" | "binary" | "dateTime" | "boolean"
    ) {
        values.push(("a number", json!(42)));
    }
    match kind {
        "boolean" => values.push(("a string", json!("maybe"))),
        "dateTime" => values.push(("a string", json!("yesterday"))),
        "integer" | "decimal" => values.push(("a string", json!("many"))),
        _ => {}
    }
    values
}

/// Returns the values of a wrong type for one value of a complex
/// attribute: one object.
fn wrong_complex_values(attribute: &Attribute) -> Vec<(&'static str, Value)> {
    let mut values = vec![("a number", json!(42)), ("a boolean", json!(true))];
    if !attribute.takes_bare_string() {
        values.push(("a string", json!("x")));
    }
    values
}

/// One attribute set to a value of a wrong type: where it sits, the value,
/// and the PATCH path that names it.
struct WrongValue {
    /// `attribute` or `attribute.sub`, for messages.
    label: String,
    /// The schema URN of an extension attribute.
    extension: Option<String>,
    /// The members to merge into a resource body or a path-less PATCH value.
    members: Map<String, Value>,
    /// The PATCH path and the value to send there, or `None` where no
    /// path names the slot.
    patch: Option<(String, Value)>,
    /// Whether a PATCH path may `add` to it, as to a multi-valued
    /// attribute.
    addable: bool,
    read_only: bool,
    /// Whether a POST or PUT body gets 400 here but PATCH accepts it,
    /// because PATCH takes a single value for a list.
    list_only_in_bodies: bool,
}

/// Builds the wrong values of one top-level attribute and its sub-attributes.
fn wrong_values_of(attribute: &Attribute, extension: Option<&str>) -> Vec<WrongValue> {
    let mut wrong_values = Vec::new();
    let qualified = |path: &str| match extension {
        Some(urn) => format!("{urn}:{path}"),
        None => path.to_owned(),
    };
    let wrong_value = |label: String, value: Value, patch: Option<(String, Value)>| WrongValue {
        label,
        extension: extension.map(str::to_owned),
        members: Map::from_iter([(attribute.name.clone(), value)]),
        patch,
        addable: attribute.multi_valued,
        read_only: attribute.read_only,
        list_only_in_bodies: false,
    };
    let whole_values: Vec<(&str, Value)> = match (attribute.is_complex(), attribute.multi_valued) {
        (false, false) => wrong_simple_values(&attribute.kind),
        (true, false) => {
            let mut values = wrong_complex_values(attribute);
            values.push(("an array", json!([{}])));
            values
        }
        (false, true) => wrong_simple_values(&attribute.kind)
            .into_iter()
            .map(|(label, value)| (label, json!([value])))
            .collect(),
        (true, true) => {
            let mut values: Vec<(&str, Value)> = wrong_complex_values(attribute)
                .into_iter()
                .map(|(label, value)| (label, json!([value])))
                .collect();
            values.push(("an array in the list", json!([[{}]])));
            values
        }
    };
    for (kind, value) in whole_values {
        let label = format!("{} as {kind}", attribute.name);
        let patch = Some((qualified(&attribute.name), value.clone()));
        wrong_values.push(wrong_value(label, value, patch));
    }
    if attribute.required {
        let label = format!("{} as null", attribute.name);
        let patch = Some((qualified(&attribute.name), Value::Null));
        wrong_values.push(wrong_value(label, Value::Null, patch));
    }
    if attribute.multi_valued {
        // A single value where POST and PUT need a list.
        for (kind, single) in [("one object", json!({})), ("a string", json!("x"))] {
            let mut entry = wrong_value(format!("{} as {kind}", attribute.name), single, None);
            entry.list_only_in_bodies = attribute.is_complex() || kind == "one object";
            wrong_values.push(entry);
        }
    }
    for sub in &attribute.sub_attributes {
        for (kind, value) in wrong_simple_values(&sub.kind) {
            let label = format!("{}.{} as {kind}", attribute.name, sub.name);
            let element = json!({ sub.name.clone(): value.clone() });
            let (member, path) = if attribute.multi_valued {
                (json!([element]), format!("{}.{}", attribute.name, sub.name))
            } else {
                (element, format!("{}.{}", attribute.name, sub.name))
            };
            let mut entry = wrong_value(label, member, Some((qualified(&path), value)));
            entry.read_only = attribute.read_only || sub.read_only;
            entry.addable = false;
            wrong_values.push(entry);
        }
    }
    wrong_values
}

/// A resource type under test: its endpoint, the id of the resource that
/// PUT and PATCH change, and its wrong values.
struct ResourceUnderTest {
    endpoint: &'static str,
    target: String,
    wrong_values: Vec<WrongValue>,
}

/// Reads the attributes of the schema `urn` from a `/Schemas` response.
fn schema_attributes(schemas: &Value, urn: &str) -> Vec<Attribute> {
    let schema = schemas["Resources"]
        .as_array()
        .and_then(|resources| resources.iter().find(|schema| schema["id"] == json!(urn)))
        .unwrap_or_else(|| panic!("expected /Schemas to serve {urn}"));
    schema["attributes"]
        .as_array()
        .unwrap_or_else(|| panic!("expected attributes in {urn}"))
        .iter()
        .map(Attribute::from_schema)
        .collect()
}

/// Builds a POST or PUT body: `base`, with the members of `wrong` at the top
/// level or in its extension object.
fn body_with(base: &Value, wrong: &WrongValue) -> Value {
    let mut body = base.clone();
    let object = body.as_object_mut().expect("base bodies are objects");
    match &wrong.extension {
        Some(urn) => {
            object.insert(urn.clone(), Value::Object(wrong.members.clone()));
            object.insert("schemas".to_owned(), json!([USER, urn]));
        }
        None => object.extend(wrong.members.clone()),
    }
    body
}

/// Returns the value of a path-less PATCH that sets the wrong value.
fn pathless_value(wrong: &WrongValue) -> Value {
    match &wrong.extension {
        Some(urn) => json!({ urn.clone(): Value::Object(wrong.members.clone()) }),
        None => Value::Object(wrong.members.clone()),
    }
}

/// A request of the table with its expected outcome.
struct Request {
    method: Method,
    description: String,
    body: Value,
    outcome: Outcome,
    /// Whether it targets the existing resource, whose representation must
    /// not change when it fails.
    changes_target: bool,
}

/// Returns wrong values of `schemas`, which must be a list of URN strings
/// (RFC 7643 §3). They go in POST and PUT bodies only, because PATCH
/// ignores `schemas` in a value.
fn wrong_schemas() -> Vec<WrongValue> {
    [
        ("a number", json!(42)),
        ("a string", json!(USER)),
        ("an object", json!({ "x": "y" })),
        ("a list of numbers", json!([42])),
        ("a list of lists", json!([[USER]])),
    ]
    .into_iter()
    .map(|(kind, value)| WrongValue {
        label: format!("schemas as {kind}"),
        extension: None,
        members: Map::from_iter([("schemas".to_owned(), value)]),
        patch: None,
        addable: false,
        read_only: false,
        list_only_in_bodies: true,
    })
    .collect()
}

/// Returns the requests that send `wrong`: a POST of `new_body`, a PUT
/// of `target_body`, and PATCHes of the target, whose success status is
/// `patch_status`.
fn requests_of(
    wrong: &WrongValue,
    new_body: &Value,
    target_body: &Value,
    patch_status: u16,
) -> Vec<Request> {
    let ignored = |status| Outcome::Success(status);
    let body_outcome = |status| {
        if wrong.read_only {
            ignored(status)
        } else {
            INVALID_VALUE
        }
    };
    let mut requests = vec![
        Request {
            method: Method::POST,
            description: format!("POST with {}", wrong.label),
            body: body_with(new_body, wrong),
            outcome: body_outcome(201),
            changes_target: false,
        },
        Request {
            method: Method::PUT,
            description: format!("PUT with {}", wrong.label),
            body: body_with(target_body, wrong),
            outcome: body_outcome(200),
            changes_target: true,
        },
    ];
    if wrong.list_only_in_bodies {
        return requests;
    }
    let patch = |operations: Value| json!({ "schemas": [PATCH_OP], "Operations": operations });
    requests.push(Request {
        method: Method::PATCH,
        description: format!("PATCH without a path with {}", wrong.label),
        body: patch(json!([{ "op": "replace", "value": pathless_value(wrong) }])),
        outcome: body_outcome(patch_status),
        changes_target: true,
    });
    if let Some((path, value)) = &wrong.patch {
        let ops: &[&str] = if wrong.addable {
            &["replace", "add"]
        } else {
            &["replace"]
        };
        for op in ops {
            requests.push(Request {
                method: Method::PATCH,
                description: format!("PATCH {op} {path} with {}", wrong.label),
                body: patch(json!([{ "op": op, "path": path, "value": value }])),
                outcome: if wrong.read_only {
                    MUTABILITY
                } else {
                    INVALID_VALUE
                },
                changes_target: true,
            });
        }
    }
    requests
}

async fn wrong_types_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let schemas = fixture.get("/Schemas").await;
    schemas.expect_status(200, "GET /Schemas");

    let user = fixture
        .create_user(json!({
            "schemas": [USER, ENTERPRISE],
            "userName": TARGET_USER,
            "name": { "givenName": "Tess" },
            "emails": [{ "value": TARGET_USER, "type": "work", "primary": true }],
            ENTERPRISE: { "department": "QA", "manager": { "value": "m-1" } },
        }))
        .await;
    let group = fixture.group(TARGET_GROUP, &[&user]).await;

    let mut user_wrong_values = wrong_schemas();
    for attribute in schema_attributes(&schemas.body, USER)
        .iter()
        .chain(&common_attributes())
    {
        user_wrong_values.extend(wrong_values_of(attribute, None));
    }
    for attribute in &schema_attributes(&schemas.body, ENTERPRISE) {
        user_wrong_values.extend(wrong_values_of(attribute, Some(ENTERPRISE)));
    }
    let mut group_wrong_values = wrong_schemas();
    for attribute in schema_attributes(&schemas.body, GROUP)
        .iter()
        .chain(&common_attributes())
    {
        group_wrong_values.extend(wrong_values_of(attribute, None));
    }
    let resources = [
        ResourceUnderTest {
            endpoint: "/Users",
            target: user,
            wrong_values: user_wrong_values,
        },
        ResourceUnderTest {
            endpoint: "/Groups",
            target: group,
            wrong_values: group_wrong_values,
        },
    ];

    let mut failures = Failures::default();
    let mut count = 0;
    let mut created = 0;
    for resource in &resources {
        let is_user = resource.endpoint == "/Users";
        let target_body = if is_user {
            json!({ "schemas": [USER], "userName": TARGET_USER })
        } else {
            json!({ "schemas": [GROUP], "displayName": TARGET_GROUP })
        };
        let target = format!("{}/{}", resource.endpoint, resource.target);
        for wrong in &resource.wrong_values {
            created += 1;
            let new_body = if is_user {
                json!({ "schemas": [USER], "userName": format!("new{created}@example.com") })
            } else {
                json!({ "schemas": [GROUP], "displayName": format!("New {created}") })
            };
            let patch_status = if is_user { 200 } else { 204 };
            for request in requests_of(wrong, &new_body, &target_body, patch_status) {
                count += 1;
                let path = if request.method == Method::POST {
                    resource.endpoint.to_owned()
                } else {
                    target.clone()
                };
                let description = format!("{} {}", request.description, path);
                let result = send_checked(&fixture, &path, &target, request).await;
                failures.record(&description, result);
            }
        }
    }
    println!("wrong types: {count} requests on {backend:?}");
    failures.assert_none("wrong types", count);
}

/// Sends one request and checks its outcome, and that a failure changed
/// neither the directory nor the target's representation.
async fn send_checked(
    fixture: &Fixture,
    path: &str,
    target: &str,
    request: Request,
) -> Result<(), String> {
    let before = directory_state(fixture).await;
    let target_before = fixture.get(target).await.raw;
    let call = fixture.call(request.method, path).json(&request.body);
    let reply = fixture.send(call).await;
    request.outcome.verify(&reply)?;
    if !request.outcome.is_error() {
        return Ok(());
    }
    check_unchanged(fixture, &before).await?;
    if request.changes_target && fixture.get(target).await.raw != target_before {
        return Err("expected the target to read back byte for byte as before".to_owned());
    }
    Ok(())
}
