//! The PATCH engine (RFC 7644 §3.5.2): applies a `PatchOp` message to a
//! resource document and returns the new document, or an error and no
//! change at all.
//!
//! Okta and Entra each speak their own dialect, and both are accepted:
//!
//! - `op` in any case (`add`, `Add`, `REPLACE`).
//! - `add` and `replace` without `path`, whose value's keys are plain
//!   (`active`), dotted (`name.givenName`), URN-qualified
//!   (`urn:…:enterprise:2.0:User:employeeNumber`) or a whole extension
//!   object. Complex attributes are merged, not replaced. `id` equal to the
//!   resource's own (Okta's group rename) and other readOnly attributes are
//!   ignored, and so are attributes no schema defines.
//! - Booleans as strings (`"False"`), coerced for boolean attributes.
//! - `add` on a single-valued attribute replaces it. `add` on a
//!   multi-valued attribute appends without duplicates. `replace` on a
//!   multi-valued attribute replaces the whole list.
//! - `remove` of `members` with a `value` list removes only those members,
//!   matched by `value`. Without a value it removes all.
//! - Value filters in paths (`members[value eq "id"]`,
//!   `emails[type eq "work"].value`). An `add` or `replace` whose filter
//!   matches nothing creates the element when the filter is a single
//!   `type eq "…"` comparison, as Entra expects, and fails with `noTarget`
//!   otherwise. Later operations with the same filter then update the
//!   created element.
//! - Entra's `manager` as a bare id string, stored as `{"value": id}`.
//!
//! Attribute names match the schema ignoring case, and the document is
//! written with the schema's canonical names (`UserName` becomes
//! `userName`).

mod index;
mod value;

use serde_json::{Map, Value};

use crate::scim::error::ScimError;
use crate::scim::filter::{
    matches_element, parse_value_filter, CompareOp, Filter, FilterValue, MAX_FILTER_LENGTH,
};
use crate::scim::schema::{
    get_ignore_case, take_ignore_case, AttributeDef, Container, Mutability, ResolvedAttribute,
    ResourceType, Schema,
};
use index::RemovalSet;
use value::{
    append_values, check_depth, coerce_multi, coerce_simple, describe, into_items, into_list,
    into_object, is_assigned, keep_single_primary, merge_complex, merge_sub_attribute,
};

/// The `schemas` URN a PATCH body must carry.
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The maximum number of operations in one PATCH request. A full Okta group
/// push of a large group sends one operation per changed member.
pub const MAX_OPERATIONS: usize = 1000;

/// The maximum nesting of arrays and objects in an operation's value or in
/// a POST or PUT body. The deepest valid value, a path-less value holding
/// an extension object with a complex attribute, nests 3 objects.
pub const MAX_VALUE_DEPTH: usize = 16;

/// The kind of a PATCH operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`: set a value or append to a multi-valued attribute.
    Add,
    /// `replace`: set a value or replace a multi-valued attribute.
    Replace,
    /// `remove`: clear a value or remove values from a list.
    Remove,
}

impl PatchOpKind {
    /// Parses an `op` member, ignoring ASCII case as Entra capitalises it.
    pub fn parse(op: &str) -> Option<Self> {
        [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(op))
    }

    /// Returns the lower-case keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Replace => "replace",
            PatchOpKind::Remove => "remove",
        }
    }
}

/// One element of `Operations`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// The operation.
    pub op: PatchOpKind,
    /// The target path, absent for a path-less `add` or `replace`.
    pub path: Option<String>,
    /// The value. `Some(Value::Null)` is an explicit null, `None` a missing
    /// member.
    pub value: Option<Value>,
}

/// A parsed `PatchOp` message.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, applied in order.
    pub operations: Vec<PatchOperation>,
}

impl PatchRequest {
    /// Parses a PATCH body. `schemas` must contain [`PATCH_OP_URN`], else
    /// the error is `400 invalidSyntax`. Member names ignore case, so
    /// `operations` and `Operations` both work.
    pub fn from_json(body: &Value) -> Result<Self, ScimError> {
        let Some(body) = body.as_object() else {
            return Err(ScimError::invalid_syntax(
                "the PATCH body must be a JSON object",
            ));
        };
        let has_patch_schema = get_ignore_case(body, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|schemas| {
                schemas
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|schema| schema.eq_ignore_ascii_case(PATCH_OP_URN))
            });
        if !has_patch_schema {
            return Err(ScimError::invalid_syntax(format!(
                "the PATCH body's schemas must contain {PATCH_OP_URN}"
            )));
        }
        let Some(operations) = get_ignore_case(body, "Operations").and_then(Value::as_array) else {
            return Err(ScimError::invalid_syntax(
                "the PATCH body needs an Operations array",
            ));
        };
        if operations.len() > MAX_OPERATIONS {
            return Err(ScimError::invalid_value(format!(
                "the PATCH body has {} operations, more than the maximum of {MAX_OPERATIONS}",
                operations.len()
            )));
        }
        let operations = operations
            .iter()
            .enumerate()
            .map(|(index, operation)| {
                parse_operation(operation).map_err(|error| in_operation(index, error))
            })
            .collect::<Result<_, _>>()?;
        Ok(PatchRequest { operations })
    }
}

fn parse_operation(operation: &Value) -> Result<PatchOperation, ScimError> {
    let Some(members) = operation.as_object() else {
        return Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
    };
    let op_text = get_ignore_case(members, "op").and_then(Value::as_str);
    let Some(op) = op_text.and_then(PatchOpKind::parse) else {
        return Err(ScimError::invalid_syntax(format!(
            "op must be add, replace or remove, not {}",
            get_ignore_case(members, "op").map_or("missing".to_owned(), describe)
        )));
    };
    let path = match get_ignore_case(members, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) => Some(path.clone()),
        Some(other) => {
            return Err(ScimError::invalid_path(format!(
                "path must be a string, not {}",
                describe(other)
            )))
        }
    };
    let value = get_ignore_case(members, "value").cloned();
    if let Some(value) = &value {
        check_depth(value, MAX_VALUE_DEPTH)?;
    }
    Ok(PatchOperation { op, path, value })
}

/// Prefixes an error's detail with the 1-based operation number.
fn in_operation(index: usize, error: ScimError) -> ScimError {
    ScimError {
        detail: format!("operation {}: {}", index + 1, error.detail),
        ..error
    }
}

/// Parses and applies a PATCH body in one step.
pub fn patch_resource(
    resource: &Value,
    body: &Value,
    resource_type: &ResourceType,
) -> Result<Value, ScimError> {
    apply_patch(resource, &PatchRequest::from_json(body)?, resource_type)
}

/// Applies the operations in order to a copy of the resource and returns
/// the copy. On any error the resource is left as it was, so the request
/// is atomic. A required attribute that the resource had cannot be
/// removed, and the `schemas` list follows the extensions in use.
pub fn apply_patch(
    resource: &Value,
    request: &PatchRequest,
    resource_type: &ResourceType,
) -> Result<Value, ScimError> {
    let Some(original) = resource.as_object() else {
        return Err(ScimError::invalid_syntax(
            "the resource must be a JSON object",
        ));
    };
    let mut document = original.clone();
    for (index, operation) in request.operations.iter().enumerate() {
        apply_operation(&mut document, operation, resource_type)
            .map_err(|error| in_operation(index, error))?;
    }
    check_required_kept(original, &document, resource_type)?;
    sync_schemas(&mut document, resource_type);
    Ok(Value::Object(document))
}

/// Coerces a POST or PUT body the way a path-less `replace` would. Names
/// become canonical, `"True"` becomes `true`, a bare `manager` id becomes
/// `{"value": id}`, and dotted and URN-qualified keys are placed. ReadOnly
/// attributes (`id`, `meta`, `groups`) are dropped because the server sets
/// them, and undefined attributes are dropped too. `schemas` must be a list
/// of strings, and is kept as sent plus any extension in use.
pub fn coerce_resource(body: &Value, resource_type: &ResourceType) -> Result<Value, ScimError> {
    let Some(members) = body.as_object() else {
        return Err(ScimError::invalid_syntax(
            "the resource must be a JSON object",
        ));
    };
    check_depth(body, MAX_VALUE_DEPTH)?;
    let mut document = Map::new();
    match get_ignore_case(members, "schemas") {
        None | Some(Value::Null) => {}
        Some(Value::Array(schemas)) if schemas.iter().all(Value::is_string) => {
            document.insert("schemas".to_owned(), Value::Array(schemas.clone()));
        }
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "schemas must be a list of schema URNs, such as [\"{}\"]",
                resource_type.schema.id
            )))
        }
    }
    apply_members(&mut document, members, PatchOpKind::Replace, resource_type)?;
    sync_schemas(&mut document, resource_type);
    Ok(Value::Object(document))
}

fn apply_operation(
    document: &mut Map<String, Value>,
    operation: &PatchOperation,
    resource_type: &ResourceType,
) -> Result<(), ScimError> {
    let Some(path) = &operation.path else {
        if operation.op == PatchOpKind::Remove {
            return Err(ScimError::no_target("remove needs a path"));
        }
        let Value::Object(members) = required_value(operation)? else {
            return Err(ScimError::invalid_value(format!(
                "{} without a path needs an object of attributes as its value",
                operation.op.as_str()
            )));
        };
        return apply_members(document, members, operation.op, resource_type);
    };
    match parse_target(path, resource_type)? {
        Target::Extension(schema) => apply_to_extension(document, schema, operation, resource_type),
        Target::Attribute { resolved, filter } => {
            check_writable(&resolved)?;
            let value = match operation.op {
                PatchOpKind::Remove => operation.value.as_ref(),
                _ => Some(required_value(operation)?),
            };
            let change = Change {
                op: operation.op,
                resolved,
                filter: filter.as_ref(),
                value,
            };
            change.apply(document)
        }
    }
}

fn required_value(operation: &PatchOperation) -> Result<&Value, ScimError> {
    operation.value.as_ref().ok_or_else(|| {
        ScimError::invalid_syntax(format!("{} needs a value", operation.op.as_str()))
    })
}

fn apply_to_extension(
    document: &mut Map<String, Value>,
    schema: &'static Schema,
    operation: &PatchOperation,
    resource_type: &ResourceType,
) -> Result<(), ScimError> {
    if operation.op == PatchOpKind::Remove {
        take_ignore_case(document, schema.id);
        return Ok(());
    }
    let mut wrapper = Map::new();
    wrapper.insert(schema.id.to_owned(), required_value(operation)?.clone());
    apply_members(document, &wrapper, operation.op, resource_type)
}

/// Applies the members of a path-less `add` or `replace` value, or of a
/// POST or PUT body, one attribute at a time.
fn apply_members(
    document: &mut Map<String, Value>,
    members: &Map<String, Value>,
    op: PatchOpKind,
    resource_type: &ResourceType,
) -> Result<(), ScimError> {
    for (key, value) in members {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(schema) = resource_type.extension(key) {
            apply_extension_members(document, schema, value, op, resource_type)?;
            continue;
        }
        // NOTE: keys that name no attribute of the schema are ignored, as
        // Okta and Entra send attributes of their own default mappings.
        let Some(resolved) = resource_type.resolve(key) else {
            continue;
        };
        apply_member(document, resolved, value, op)?;
    }
    Ok(())
}

fn apply_extension_members(
    document: &mut Map<String, Value>,
    schema: &'static Schema,
    value: &Value,
    op: PatchOpKind,
    resource_type: &ResourceType,
) -> Result<(), ScimError> {
    match value {
        Value::Null => {
            take_ignore_case(document, schema.id);
            Ok(())
        }
        Value::Object(inner) => {
            for (key, value) in inner {
                let qualified = format!("{}:{key}", schema.id);
                if let Some(resolved) = resource_type.resolve(&qualified) {
                    apply_member(document, resolved, value, op)?;
                }
            }
            Ok(())
        }
        other => Err(ScimError::invalid_value(format!(
            "the value of {} must be an object of its attributes, not {}",
            schema.id,
            describe(other)
        ))),
    }
}

/// Applies one attribute of a path-less value. ReadOnly attributes are
/// skipped, except that `id` may not differ from the resource's own.
fn apply_member(
    document: &mut Map<String, Value>,
    resolved: ResolvedAttribute,
    value: &Value,
    op: PatchOpKind,
) -> Result<(), ScimError> {
    if is_read_only(&resolved) {
        let changes_id = resolved.attribute.name == "id"
            && get_ignore_case(document, "id").is_some_and(|current| current != value);
        if changes_id {
            return Err(ScimError::mutability(format!(
                "id is readOnly and cannot change to {}",
                describe(value)
            )));
        }
        return Ok(());
    }
    let change = Change {
        op,
        resolved,
        filter: None,
        value: Some(value),
    };
    change.apply(document)
}

/// The target of a PATCH path.
enum Target {
    /// A whole extension object, such as
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`.
    Extension(&'static Schema),
    /// An attribute or sub-attribute, with the value filter if the path
    /// has one.
    Attribute {
        resolved: ResolvedAttribute,
        filter: Option<Filter>,
    },
}

/// Parses a PATCH path: `attrPath` or `attrPath[valFilter]` with an
/// optional `.subAttr` after the filter (RFC 7644 §3.5.2).
fn parse_target(path: &str, resource_type: &ResourceType) -> Result<Target, ScimError> {
    let path = path.trim();
    if path.is_empty() {
        return Err(ScimError::invalid_path("path is empty"));
    }
    if path.len() > MAX_FILTER_LENGTH {
        return Err(ScimError::invalid_path(format!(
            "path is {} bytes long, more than the maximum of {MAX_FILTER_LENGTH}",
            path.len()
        )));
    }
    let (head, filter_text, sub_name) = split_value_path(path)?;
    if filter_text.is_none() {
        if let Some(schema) = resource_type.extension(head) {
            return Ok(Target::Extension(schema));
        }
    }
    let Some(resolved) = resource_type.resolve(head) else {
        return Err(ScimError::invalid_path(format!(
            "{head:?} is not an attribute of the {} resource",
            resource_type.name
        )));
    };
    match filter_text {
        None => Ok(Target::Attribute {
            resolved,
            filter: None,
        }),
        Some(filter_text) => filtered_target(resolved, head, filter_text, sub_name),
    }
}

/// Builds the target of `head[filter_text].sub_name` once `head` resolved.
fn filtered_target(
    resolved: ResolvedAttribute,
    head: &str,
    filter_text: &str,
    sub_name: Option<&str>,
) -> Result<Target, ScimError> {
    let attribute = resolved.attribute;
    if resolved.sub_attribute.is_some() || !attribute.is_complex() || !attribute.multi_valued {
        return Err(ScimError::invalid_path(format!(
            "a value filter needs a multi-valued complex attribute such as emails, not {head:?}"
        )));
    }
    let filter = parse_value_filter(filter_text)
        .and_then(|filter| filter.validate_value_filter(attribute).map(|()| filter))
        .map_err(|error| ScimError::invalid_path(error.detail))?;

    let sub_attribute = match sub_name {
        Some(name) => Some(attribute.sub_attribute(name).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "{name:?} is not a sub-attribute of {}",
                attribute.name
            ))
        })?),
        None => None,
    };
    Ok(Target::Attribute {
        resolved: ResolvedAttribute {
            sub_attribute,
            ..resolved
        },
        filter: Some(filter),
    })
}

/// Splits `head[filter].sub` into its three parts, finding the `]` that
/// closes the filter outside of string literals.
fn split_value_path(path: &str) -> Result<(&str, Option<&str>, Option<&str>), ScimError> {
    let Some(open) = path.find('[') else {
        return Ok((path, None, None));
    };
    let bytes = path.as_bytes();
    let mut index = open + 1;
    let mut in_string = false;
    let close = loop {
        match bytes.get(index) {
            None => {
                return Err(ScimError::invalid_path(format!(
                    "the value filter in {path:?} has no closing ']'"
                )))
            }
            Some(b'\\') if in_string => index += 1,
            Some(b'"') => in_string = !in_string,
            Some(b']') if !in_string => break index,
            Some(_) => {}
        }
        index += 1;
    };
    let rest = &path[close + 1..];
    let sub_name = if rest.is_empty() {
        None
    } else {
        Some(
            rest.strip_prefix('.')
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    ScimError::invalid_path(format!(
                        "unexpected {rest:?} after the value filter in {path:?}"
                    ))
                })?,
        )
    };
    Ok((&path[..open], Some(&path[open + 1..close]), sub_name))
}

fn is_read_only(resolved: &ResolvedAttribute) -> bool {
    resolved.attribute.mutability == Mutability::ReadOnly
        || resolved
            .sub_attribute
            .is_some_and(|sub| sub.mutability == Mutability::ReadOnly)
}

fn check_writable(resolved: &ResolvedAttribute) -> Result<(), ScimError> {
    if is_read_only(resolved) {
        return Err(ScimError::mutability(format!(
            "{resolved} is readOnly and cannot be changed"
        )));
    }
    Ok(())
}

/// One resolved change to one attribute.
struct Change<'a> {
    op: PatchOpKind,
    resolved: ResolvedAttribute,
    filter: Option<&'a Filter>,
    /// The operation's value. Always present for `add` and `replace`.
    value: Option<&'a Value>,
}

impl Change<'_> {
    /// Takes the attribute's current value out of the document, computes
    /// the new one and writes it back under the canonical name, or leaves
    /// it out when it ends up unassigned.
    fn apply(&self, document: &mut Map<String, Value>) -> Result<(), ScimError> {
        let creates = self.op != PatchOpKind::Remove;
        let Some(container) = container_mut(document, &self.resolved, creates) else {
            return Ok(());
        };
        let attribute = self.resolved.attribute;
        let current = take_ignore_case(container, attribute.name);
        let updated = match (self.op, self.filter) {
            (PatchOpKind::Remove, None) => self.remove(current),
            (PatchOpKind::Remove, Some(filter)) => self.remove_filtered(current, filter),
            (_, None) => self.write(current)?,
            (_, Some(filter)) => self.write_filtered(current, filter)?,
        };
        if let Some(updated) = updated.filter(is_assigned) {
            container.insert(attribute.name.to_owned(), updated);
        }
        Ok(())
    }

    fn value(&self) -> &Value {
        self.value.unwrap_or(&Value::Null)
    }

    fn write(&self, current: Option<Value>) -> Result<Option<Value>, ScimError> {
        let attribute = self.resolved.attribute;
        let value = self.value();
        match (attribute.multi_valued, self.resolved.sub_attribute) {
            (false, None) if attribute.is_complex() => {
                let mut object = into_object(current, attribute);
                merge_complex(&mut object, attribute, value)?;
                Ok(Some(Value::Object(object)))
            }
            (false, None) => coerce_simple(attribute, value),
            (false, Some(sub)) => {
                let mut object = into_object(current, attribute);
                merge_sub_attribute(&mut object, attribute, sub, value)?;
                Ok(Some(Value::Object(object)))
            }
            (true, None) => {
                let incoming = coerce_multi(attribute, value)?;
                let mut items = match self.op {
                    PatchOpKind::Add => into_items(current, attribute),
                    _ => Vec::new(),
                };
                let written = append_values(&mut items, incoming);
                keep_single_primary(&mut items, &written);
                Ok(Some(Value::Array(items)))
            }
            (true, Some(sub)) => {
                // Without a filter, a path such as `emails.display` sets the
                // sub-attribute on every value, or creates one value.
                let mut items = into_items(current, attribute);
                if items.is_empty() {
                    items.push(Value::Object(Map::new()));
                }
                for item in &mut items {
                    if let Some(object) = item.as_object_mut() {
                        merge_sub_attribute(object, attribute, sub, value)?;
                    }
                }
                items.retain(is_assigned);
                Ok(Some(Value::Array(items)))
            }
        }
    }

    fn write_filtered(
        &self,
        current: Option<Value>,
        filter: &Filter,
    ) -> Result<Option<Value>, ScimError> {
        let attribute = self.resolved.attribute;
        let mut items = into_items(current, attribute);
        let mut matched: Vec<usize> = (0..items.len())
            .filter(|&index| matches_element(filter, &items[index], attribute))
            .collect();
        if matched.is_empty() {
            let Some(type_value) = single_type_equality(filter, attribute) else {
                return Err(ScimError::no_target(format!(
                    "no value of {} matches [{filter}]",
                    self.resolved.attribute.name
                )));
            };
            let mut created = Map::new();
            created.insert("type".to_owned(), Value::String(type_value.to_owned()));
            items.push(Value::Object(created));
            matched.push(items.len() - 1);
        }
        for &index in &matched {
            let Some(object) = items[index].as_object_mut() else {
                continue;
            };
            match self.resolved.sub_attribute {
                Some(sub) => merge_sub_attribute(object, attribute, sub, self.value())?,
                None => merge_complex(object, attribute, self.value())?,
            }
        }
        keep_single_primary(&mut items, &matched);
        items.retain(is_assigned);
        Ok(Some(Value::Array(items)))
    }

    fn remove(&self, current: Option<Value>) -> Option<Value> {
        let attribute = self.resolved.attribute;
        match (self.resolved.sub_attribute, self.value) {
            (None, Some(selection)) if attribute.multi_valued && !selection.is_null() => {
                let entries = into_list(Some(selection.clone()));
                let selected = RemovalSet::new(&entries);
                let mut items = into_items(current, attribute);
                items.retain(|item| !selected.selects(item));
                Some(Value::Array(items))
            }
            (None, _) => None,
            (Some(sub), _) if attribute.multi_valued => {
                let mut items = into_items(current, attribute);
                for item in &mut items {
                    if let Some(object) = item.as_object_mut() {
                        take_ignore_case(object, sub.name);
                    }
                }
                items.retain(is_assigned);
                Some(Value::Array(items))
            }
            (Some(sub), _) => {
                let mut object = into_object(current, attribute);
                take_ignore_case(&mut object, sub.name);
                Some(Value::Object(object))
            }
        }
    }

    fn remove_filtered(&self, current: Option<Value>, filter: &Filter) -> Option<Value> {
        let attribute = self.resolved.attribute;
        let mut items = into_items(current, attribute);
        match self.resolved.sub_attribute {
            None => items.retain(|item| !matches_element(filter, item, attribute)),
            Some(sub) => {
                for item in &mut items {
                    if matches_element(filter, item, attribute) {
                        if let Some(object) = item.as_object_mut() {
                            take_ignore_case(object, sub.name);
                        }
                    }
                }
                items.retain(is_assigned);
            }
        }
        Some(Value::Array(items))
    }
}

/// Returns `x` when the filter is exactly `type eq "x"` and the attribute
/// has a `type` sub-attribute.
fn single_type_equality<'f>(filter: &'f Filter, attribute: &AttributeDef) -> Option<&'f str> {
    attribute.sub_attribute("type")?;
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: FilterValue::String(value),
        } if path.urn.is_none()
            && path.sub_attribute.is_none()
            && path.name.eq_ignore_ascii_case("type") =>
        {
            Some(value)
        }
        _ => None,
    }
}

/// Returns the object an attribute is stored in. An extension object is
/// renamed to its canonical URN and, with `create`, made when missing.
fn container_mut<'d>(
    document: &'d mut Map<String, Value>,
    resolved: &ResolvedAttribute,
    create: bool,
) -> Option<&'d mut Map<String, Value>> {
    let schema = match resolved.container {
        Container::Root => return Some(document),
        Container::Extension(schema) => schema,
    };
    let object = match take_ignore_case(document, schema.id) {
        Some(Value::Object(object)) => object,
        _ if create => Map::new(),
        _ => return None,
    };
    document.insert(schema.id.to_owned(), Value::Object(object));
    document.get_mut(schema.id).and_then(Value::as_object_mut)
}

/// Rejects a result that lost a required top-level attribute the resource
/// had, such as `userName`.
fn check_required_kept(
    original: &Map<String, Value>,
    document: &Map<String, Value>,
    resource_type: &ResourceType,
) -> Result<(), ScimError> {
    for attribute in resource_type
        .schema
        .attributes
        .iter()
        .filter(|a| a.required)
    {
        let assigned = |object: &Map<String, Value>| {
            get_ignore_case(object, attribute.name).is_some_and(is_assigned)
        };
        if assigned(original) && !assigned(document) {
            return Err(ScimError::invalid_value(format!(
                "{} is required and cannot be removed",
                attribute.name
            )));
        }
    }
    Ok(())
}

/// Drops empty extension objects and keeps `schemas` in step with the
/// extensions present (RFC 7643 §3: `schemas` lists every extension a
/// resource uses).
fn sync_schemas(document: &mut Map<String, Value>, resource_type: &ResourceType) {
    for extension in resource_type.extensions {
        let urn = extension.schema.id;
        let present = get_ignore_case(document, urn)
            .is_some_and(|value| value.as_object().is_some_and(|object| !object.is_empty()));
        if !present {
            take_ignore_case(document, urn);
        }
        let listed = get_ignore_case(document, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|schemas| {
                schemas
                    .iter()
                    .any(|schema| schema.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
            });
        if present == listed {
            continue;
        }
        let mut schemas = into_list(take_ignore_case(document, "schemas"));
        if present {
            schemas.push(Value::String(urn.to_owned()));
        } else {
            schemas.retain(|schema| !schema.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)));
        }
        document.insert("schemas".to_owned(), Value::Array(schemas));
    }
}

#[cfg(test)]
mod tests;
