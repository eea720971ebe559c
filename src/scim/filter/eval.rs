//! Filter evaluation over JSON resource documents, schema validation of a
//! parsed filter, and the equality lookup a directory index can serve.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::{Number, Value};

use super::{AttrPath, CompareOp, Filter, FilterValue};
use crate::scim::error::ScimError;
use crate::scim::schema::{get_ignore_case, AttributeDef, AttributeType, Container, ResourceType};

/// The context that filter paths resolve in: a resource type at the top
/// level, or the sub-attributes of one complex attribute inside a value
/// filter.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource(&'a ResourceType),
    Element(&'static AttributeDef),
}

/// Tells whether a resource document matches a filter (RFC 7644 §3.4.2.2).
///
/// Attribute names ignore case. Strings compare ignoring case unless the
/// attribute is `caseExact` (such as `id` and `externalId`). A multi-valued
/// attribute matches when any of its values does, and `ne` matches when no
/// value is equal, so an absent attribute matches `ne`. `dateTime`
/// attributes such as `meta.lastModified` compare as instants. `pr` needs a
/// value that is not null, `""`, `[]` or `{}`. Comparisons between
/// different JSON types are false, and so are paths that name no attribute
/// of the resource type unless the document has a member of that name.
pub fn matches(filter: &Filter, resource: &Value, resource_type: &ResourceType) -> bool {
    evaluate(filter, Scope::Resource(resource_type), resource)
}

/// Tells whether one value of a multi-valued complex attribute, such as one
/// object of `emails`, matches the filter of a value path, such as
/// `type eq "work"`.
pub fn matches_element(filter: &Filter, element: &Value, attribute: &'static AttributeDef) -> bool {
    evaluate(filter, Scope::Element(attribute), element)
}

fn evaluate(filter: &Filter, scope: Scope<'_>, node: &Value) -> bool {
    match filter {
        Filter::And(terms) => terms.iter().all(|term| evaluate(term, scope, node)),
        Filter::Or(terms) => terms.iter().any(|term| evaluate(term, scope, node)),
        Filter::Not(inner) => !evaluate(inner, scope, node),
        Filter::Present(path) => {
            let (values, _) = lookup(scope, path, node, false);
            values.into_iter().any(is_present)
        }
        Filter::Compare { path, op, value } => {
            let (values, definition) = lookup(scope, path, node, true);
            compare_all(&values, definition, *op, value)
        }
        Filter::ValuePath { path, filter } => match scope {
            Scope::Resource(resource_type) => {
                evaluate_value_path(path, filter, resource_type, node)
            }
            Scope::Element(_) => false,
        },
    }
}

fn evaluate_value_path(
    path: &AttrPath,
    filter: &Filter,
    resource_type: &ResourceType,
    node: &Value,
) -> bool {
    let resolved = resource_type.resolve_parts(path.urn.as_deref(), &path.name, None);
    let Some(resolved) = resolved.filter(|r| r.attribute.is_complex()) else {
        return false;
    };
    let elements = flatten(resolved.attribute_value(node));
    elements
        .into_iter()
        .any(|element| evaluate(filter, Scope::Element(resolved.attribute), element))
}

/// Collects the values a path selects in a node, one level of arrays
/// flattened, with the definition of the attribute they belong to. With
/// `implicit_value`, a complex attribute without a sub-attribute in the path
/// stands for its `value` sub-attribute, so `emails co "@example.com"`
/// compares email addresses.
fn lookup<'v>(
    scope: Scope<'_>,
    path: &AttrPath,
    node: &'v Value,
    implicit_value: bool,
) -> (Vec<&'v Value>, Option<&'static AttributeDef>) {
    match scope {
        Scope::Element(parent) => {
            if path.urn.is_some() || path.sub_attribute.is_some() {
                return (Vec::new(), None);
            }
            let value = node
                .as_object()
                .and_then(|o| get_ignore_case(o, &path.name));
            (flatten(value), parent.sub_attribute(&path.name))
        }
        Scope::Resource(resource_type) => {
            let resolved = resource_type.resolve_parts(
                path.urn.as_deref(),
                &path.name,
                path.sub_attribute.as_deref(),
            );
            let Some(resolved) = resolved else {
                return (lookup_undefined(path, node), None);
            };
            let top = resolved.attribute_value(node);
            let attribute = resolved.attribute;
            match resolved.sub_attribute {
                Some(sub) => (sub_values(top, sub.name), Some(sub)),
                None if implicit_value && attribute.is_complex() => {
                    match attribute.sub_attribute("value") {
                        Some(value_sub) => (sub_values(top, value_sub.name), Some(value_sub)),
                        None => (flatten(top), Some(attribute)),
                    }
                }
                None => (flatten(top), Some(attribute)),
            }
        }
    }
}

/// Looks a path up by name alone, for members no schema defines.
fn lookup_undefined<'v>(path: &AttrPath, node: &'v Value) -> Vec<&'v Value> {
    let Some(root) = node.as_object() else {
        return Vec::new();
    };
    let container = match &path.urn {
        Some(urn) => get_ignore_case(root, urn).and_then(Value::as_object),
        None => Some(root),
    };
    let top = container.and_then(|c| get_ignore_case(c, &path.name));
    match &path.sub_attribute {
        Some(sub) => sub_values(top, sub),
        None => flatten(top),
    }
}

fn flatten(value: Option<&Value>) -> Vec<&Value> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    }
}

fn sub_values<'v>(top: Option<&'v Value>, sub: &str) -> Vec<&'v Value> {
    flatten(top)
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|object| flatten(get_ignore_case(object, sub)))
        .collect()
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare_all(
    values: &[&Value],
    definition: Option<&AttributeDef>,
    op: CompareOp,
    literal: &FilterValue,
) -> bool {
    let kind = definition.map_or(AttributeType::String, |d| d.kind);
    let case_exact = definition.is_some_and(|d| d.case_exact);
    if *literal == FilterValue::Null {
        let unassigned = values.iter().all(|value| value.is_null());
        return match op {
            CompareOp::Eq => unassigned,
            CompareOp::Ne => !unassigned,
            _ => false,
        };
    }
    if op == CompareOp::Ne {
        return !values
            .iter()
            .any(|value| compare_one(value, kind, case_exact, CompareOp::Eq, literal));
    }
    values
        .iter()
        .any(|value| compare_one(value, kind, case_exact, op, literal))
}

fn compare_one(
    value: &Value,
    kind: AttributeType,
    case_exact: bool,
    op: CompareOp,
    literal: &FilterValue,
) -> bool {
    match (value, literal) {
        (Value::String(actual), FilterValue::String(expected)) => {
            if kind == AttributeType::DateTime && !op.is_substring() {
                if let (Some(actual), Some(expected)) =
                    (parse_instant(actual), parse_instant(expected))
                {
                    return ordering_matches(op, actual.cmp(&expected));
                }
            }
            compare_strings(actual, expected, case_exact, op)
        }
        (Value::String(actual), FilterValue::Number(expected)) if kind == AttributeType::String => {
            compare_strings(actual, &expected.to_string(), case_exact, op)
        }
        (Value::Number(actual), FilterValue::Number(expected)) => {
            compare_numbers(actual, expected).is_some_and(|ordering| ordering_matches(op, ordering))
        }
        (Value::Bool(actual), FilterValue::Boolean(expected)) => {
            op == CompareOp::Eq && actual == expected
        }
        (Value::Bool(actual), FilterValue::String(expected)) if kind == AttributeType::Boolean => {
            op == CompareOp::Eq && parse_boolean(expected) == Some(*actual)
        }
        _ => false,
    }
}

fn compare_strings(actual: &str, expected: &str, case_exact: bool, op: CompareOp) -> bool {
    let (actual, expected) = if case_exact {
        (actual.to_owned(), expected.to_owned())
    } else {
        (actual.to_lowercase(), expected.to_lowercase())
    };
    match op {
        CompareOp::Co => actual.contains(&expected),
        CompareOp::Sw => actual.starts_with(&expected),
        CompareOp::Ew => actual.ends_with(&expected),
        _ => ordering_matches(op, actual.cmp(&expected)),
    }
}

fn compare_numbers(actual: &Number, expected: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (actual.as_i64(), expected.as_i64()) {
        return Some(a.cmp(&b));
    }
    actual.as_f64()?.partial_cmp(&expected.as_f64()?)
}

fn ordering_matches(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// Parses an `xsd:dateTime` with an offset, such as `2011-05-13T04:42:34Z`.
pub fn parse_instant(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok()
}

/// Reads `"true"` and `"false"` in any case, as Entra sends booleans.
pub fn parse_boolean(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

impl Filter {
    /// Checks every path against a resource type and every operator against
    /// the attribute's type, so an unsupported filter gets
    /// `400 invalidFilter` rather than an empty result. Rejects unknown
    /// attributes, ordering and substring operators on boolean and binary
    /// attributes, comparisons of a complex attribute without a `value`
    /// sub-attribute, and value filters on simple attributes.
    pub fn validate(&self, resource_type: &ResourceType) -> Result<(), ScimError> {
        validate_in(self, Scope::Resource(resource_type))
    }

    /// Checks the filter of a value path, such as `type eq "work"` in
    /// `emails[type eq "work"]`, against the sub-attributes of `attribute`,
    /// with the same rules as [`Filter::validate`].
    pub fn validate_value_filter(&self, attribute: &'static AttributeDef) -> Result<(), ScimError> {
        validate_in(self, Scope::Element(attribute))
    }
}

fn validate_in(filter: &Filter, scope: Scope<'_>) -> Result<(), ScimError> {
    match filter {
        Filter::And(terms) | Filter::Or(terms) => {
            terms.iter().try_for_each(|term| validate_in(term, scope))
        }
        Filter::Not(inner) => validate_in(inner, scope),
        Filter::Present(path) => definition_of(scope, path).map(|_| ()),
        Filter::Compare { path, op, value } => {
            let mut definition = definition_of(scope, path)?;
            if definition.is_complex() {
                definition = definition.sub_attribute("value").ok_or_else(|| {
                    ScimError::invalid_filter(format!(
                        "{path} is a complex attribute: compare one of its sub-attributes, such as {path}.{}",
                        definition.sub_attributes.first().map_or("value", |s| s.name)
                    ))
                })?;
            }
            let unordered = matches!(
                definition.kind,
                AttributeType::Boolean | AttributeType::Binary
            );
            if unordered && (op.is_ordering() || op.is_substring()) {
                return Err(ScimError::invalid_filter(format!(
                    "the operator {op} is not supported on the {} attribute {path}",
                    definition.kind.as_str()
                )));
            }
            if definition.kind == AttributeType::DateTime && !op.is_substring() {
                check_instant(path, value)?;
            }
            Ok(())
        }
        Filter::ValuePath { path, filter } => {
            let Scope::Resource(_) = scope else {
                return Err(ScimError::invalid_filter("value filters cannot be nested"));
            };
            let definition = definition_of(scope, path)?;
            if !definition.is_complex() || path.sub_attribute.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "{path}[...] needs a complex attribute such as emails"
                )));
            }
            validate_in(filter, Scope::Element(definition))
        }
    }
}

/// Rejects a comparison of a dateTime attribute with a value that is not an
/// `xsd:dateTime` (RFC 7644 §3.4.2.2), which would otherwise match nothing or
/// compare as text. `null` stays allowed, as for every attribute.
fn check_instant(path: &AttrPath, value: &FilterValue) -> Result<(), ScimError> {
    let valid = match value {
        FilterValue::String(text) => parse_instant(text).is_some(),
        FilterValue::Null => true,
        FilterValue::Number(_) | FilterValue::Boolean(_) => false,
    };
    if valid {
        return Ok(());
    }
    Err(ScimError::invalid_filter(format!(
        "{path} is a dateTime attribute: compare it with a date and time such as \"2011-05-13T04:42:34Z\", not {value}"
    )))
}

fn definition_of(scope: Scope<'_>, path: &AttrPath) -> Result<&'static AttributeDef, ScimError> {
    let definition = match scope {
        Scope::Resource(resource_type) => resource_type
            .resolve_parts(
                path.urn.as_deref(),
                &path.name,
                path.sub_attribute.as_deref(),
            )
            .map(|resolved| resolved.leaf()),
        Scope::Element(parent) if path.urn.is_none() && path.sub_attribute.is_none() => {
            parent.sub_attribute(&path.name)
        }
        Scope::Element(_) => None,
    };
    definition.ok_or_else(|| match scope {
        Scope::Resource(resource_type) => ScimError::invalid_filter(format!(
            "{path} is not an attribute of the {} resource",
            resource_type.name
        )),
        Scope::Element(parent) => {
            ScimError::invalid_filter(format!("{path} is not a sub-attribute of {}", parent.name))
        }
    })
}

/// An attribute a directory can index for equality lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedAttribute {
    /// `id`, compared exactly.
    Id,
    /// `userName`, compared ignoring case.
    UserName,
    /// `externalId`, compared exactly.
    ExternalId,
    /// `displayName`, compared ignoring case.
    DisplayName,
    /// Any `emails.value`, compared ignoring case.
    EmailValue,
}

impl IndexedAttribute {
    /// Tells whether the index must compare values exactly rather than
    /// ignoring case, following the attribute's `caseExact`.
    pub fn case_exact(self) -> bool {
        matches!(self, IndexedAttribute::Id | IndexedAttribute::ExternalId)
    }

    /// Returns the attribute path, such as `emails.value`.
    pub fn path(self) -> &'static str {
        match self {
            IndexedAttribute::Id => "id",
            IndexedAttribute::UserName => "userName",
            IndexedAttribute::ExternalId => "externalId",
            IndexedAttribute::DisplayName => "displayName",
            IndexedAttribute::EmailValue => "emails.value",
        }
    }
}

/// An equality condition that every resource matching a filter satisfies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLookup {
    /// The indexed attribute.
    pub attribute: IndexedAttribute,
    /// The string it must equal, exactly or ignoring case according to
    /// [`IndexedAttribute::case_exact`].
    pub value: String,
}

/// Finds an equality on an indexed attribute that the filter requires: the
/// filter is, or is an `and` containing, `id`, `userName`, `externalId`,
/// `displayName` or `emails.value` `eq` a string. `emails[value eq "x"]`
/// and `emails[type eq "work"].value eq "x"` count as `emails.value`.
///
/// The directory fetches the candidates with the lookup and must still run
/// [`matches()`] on each, because the rest of the filter is not checked.
pub fn index_lookup(filter: &Filter, resource_type: &ResourceType) -> Option<IndexLookup> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: FilterValue::String(value),
        } => {
            let resolved = resource_type.resolve_parts(
                path.urn.as_deref(),
                &path.name,
                path.sub_attribute.as_deref(),
            )?;
            if resolved.container != Container::Root {
                return None;
            }
            let sub = resolved.sub_attribute.map(|sub| sub.name);
            let attribute = match (resolved.attribute.name, sub) {
                ("id", None) => IndexedAttribute::Id,
                ("userName", None) => IndexedAttribute::UserName,
                ("externalId", None) => IndexedAttribute::ExternalId,
                ("displayName", None) => IndexedAttribute::DisplayName,
                ("emails", None | Some("value")) => IndexedAttribute::EmailValue,
                _ => return None,
            };
            Some(IndexLookup {
                attribute,
                value: value.clone(),
            })
        }
        Filter::And(terms) => terms
            .iter()
            .find_map(|term| index_lookup(term, resource_type)),
        Filter::ValuePath { path, filter } => {
            let resolved = resource_type.resolve_parts(path.urn.as_deref(), &path.name, None)?;
            if resolved.container != Container::Root || resolved.attribute.name != "emails" {
                return None;
            }
            let value = element_value_equality(filter)?;
            Some(IndexLookup {
                attribute: IndexedAttribute::EmailValue,
                value,
            })
        }
        _ => None,
    }
}

/// Finds `value eq "x"` in a value filter, alone or inside an `and`.
fn element_value_equality(filter: &Filter) -> Option<String> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: FilterValue::String(value),
        } if path.name.eq_ignore_ascii_case("value") => Some(value.clone()),
        Filter::And(terms) => terms.iter().find_map(element_value_equality),
        _ => None,
    }
}
