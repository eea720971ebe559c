//! Coercion and merging of attribute values against their definitions:
//! the part of PATCH shared with POST and PUT bodies.

use serde_json::{Map, Number, Value};

use super::index::ListIndex;
use crate::scim::error::ScimError;
use crate::scim::filter::{parse_boolean, parse_instant};
use crate::scim::schema::{take_ignore_case, AttributeDef, AttributeType, Mutability};

/// Tells whether a value counts as assigned. RFC 7643 §2.5 makes null and
/// an empty array equivalent to an absent attribute, and an empty object is
/// treated the same way here.
pub(super) fn is_assigned(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        _ => true,
    }
}

/// Coerces a value of a simple attribute or sub-attribute to its type.
/// Strings `"True"` and `"False"` in any case become booleans, as Entra
/// sends them, and numeric strings become numbers for `integer` and
/// `decimal`. Returns `None` for null.
pub(super) fn coerce_simple(
    definition: &AttributeDef,
    value: &Value,
) -> Result<Option<Value>, ScimError> {
    let coerced = match (definition.kind, value) {
        (_, Value::Null) => return Ok(None),
        (AttributeType::Boolean, Value::Bool(_)) => Some(value.clone()),
        (AttributeType::Boolean, Value::String(text)) => parse_boolean(text).map(Value::Bool),
        (
            AttributeType::String | AttributeType::Reference | AttributeType::Binary,
            Value::String(_),
        ) => Some(value.clone()),
        (AttributeType::DateTime, Value::String(text)) => {
            parse_instant(text).map(|_| value.clone())
        }
        (AttributeType::Integer, Value::Number(number)) if number.is_i64() || number.is_u64() => {
            Some(value.clone())
        }
        (AttributeType::Integer, Value::String(text)) => {
            text.trim().parse::<i64>().ok().map(Value::from)
        }
        (AttributeType::Decimal, Value::Number(_)) => Some(value.clone()),
        (AttributeType::Decimal, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number),
        _ => None,
    };
    match coerced {
        Some(coerced) => Ok(Some(coerced)),
        None => Err(ScimError::invalid_value(format!(
            "{} must be {}, not {}",
            definition.name,
            expected_kind(definition.kind),
            describe(value)
        ))),
    }
}

fn expected_kind(kind: AttributeType) -> &'static str {
    match kind {
        AttributeType::String => "a string",
        AttributeType::Boolean => "a boolean (true or false)",
        AttributeType::Decimal => "a number",
        AttributeType::Integer => "an integer",
        AttributeType::DateTime => "a date and time such as \"2011-05-13T04:42:34Z\"",
        AttributeType::Reference => "a URI string",
        AttributeType::Complex => "an object",
        AttributeType::Binary => "a base64 string",
    }
}

/// Describes a JSON value for an error message without echoing long data.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) if text.chars().count() <= 40 => format!("the string {value}"),
        Value::String(_) => "a long string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Merges a value into a complex attribute's object: listed sub-attributes
/// are replaced and the others are kept (RFC 7644 §3.5.2.3). Null or `""`
/// for a sub-attribute removes it, which is how Entra clears a manager
/// (`{"value": ""}`). A bare scalar stands for the `value` sub-attribute,
/// as Entra sends `manager`. Unknown and readOnly sub-attributes are
/// ignored. Null for the whole value clears the object.
pub(super) fn merge_complex(
    object: &mut Map<String, Value>,
    attribute: &AttributeDef,
    value: &Value,
) -> Result<(), ScimError> {
    match value {
        Value::Null => {
            object.clear();
            Ok(())
        }
        Value::Object(members) => {
            for (key, member) in members {
                let Some(sub) = attribute.sub_attribute(key) else {
                    continue;
                };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                merge_sub_attribute(object, attribute, sub, member)?;
            }
            Ok(())
        }
        Value::Array(_) => Err(ScimError::invalid_value(format!(
            "{} takes one object, not an array",
            attribute.name
        ))),
        scalar => match attribute.sub_attribute("value") {
            Some(value_sub) => merge_sub_attribute(object, attribute, value_sub, scalar),
            None => Err(ScimError::invalid_value(format!(
                "{} is a complex attribute and takes an object, not {}",
                attribute.name,
                describe(scalar)
            ))),
        },
    }
}

/// Sets or removes one sub-attribute of a complex value. An immutable
/// sub-attribute that already has a value cannot change.
pub(super) fn merge_sub_attribute(
    object: &mut Map<String, Value>,
    attribute: &AttributeDef,
    sub: &AttributeDef,
    value: &Value,
) -> Result<(), ScimError> {
    let current = take_ignore_case(object, sub.name);
    let clears = value.is_null() || value.as_str() == Some("");
    let updated = if clears {
        None
    } else {
        coerce_simple(sub, value)?
    };
    if sub.mutability == Mutability::Immutable {
        if let Some(current) = &current {
            if updated.as_ref() != Some(current) {
                return Err(ScimError::mutability(format!(
                    "{}.{} is immutable and already set to {current}",
                    attribute.name, sub.name
                )));
            }
        }
    }
    if let Some(updated) = updated {
        object.insert(sub.name.to_owned(), updated);
    }
    Ok(())
}

/// Coerces the value of a multi-valued attribute to a list of values. A
/// single value counts as a list of one. Values that end up empty, such as
/// `{"$ref": null}`, are dropped.
pub(super) fn coerce_multi(
    attribute: &AttributeDef,
    value: &Value,
) -> Result<Vec<Value>, ScimError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut coerced = Vec::with_capacity(items.len());
    for item in items {
        if attribute.is_complex() {
            let mut object = Map::new();
            merge_complex(&mut object, attribute, item)?;
            if !object.is_empty() {
                coerced.push(Value::Object(object));
            }
        } else if let Some(value) = coerce_simple(attribute, item)? {
            coerced.push(value);
        }
    }
    Ok(coerced)
}

/// Appends values to a multi-valued attribute (RFC 7644 §3.5.2.1). A value
/// already present is not added twice. A complex value with the same
/// `value` and `type` as an existing one replaces it, so adding a member
/// again with a new `display` keeps one entry. Returns the indexes of the
/// values written.
pub(super) fn append_values(items: &mut Vec<Value>, incoming: Vec<Value>) -> Vec<usize> {
    let mut index = ListIndex::new(items);
    let mut written = Vec::with_capacity(incoming.len());
    for value in incoming {
        if let Some(position) = index.find_equal(items, &value) {
            written.push(position);
            continue;
        }
        match index.find_same_identity(items, &value) {
            Some(position) => {
                index.replace(items, position, value);
                written.push(position);
            }
            None => written.push(index.push(items, value)),
        }
    }
    written
}

/// Keeps `primary: true` on at most one value (RFC 7643 §2.4): the last of
/// the values just written that has it. Other values get `primary: false`.
pub(super) fn keep_single_primary(items: &mut [Value], written: &[usize]) {
    let is_primary = |item: &Value| item.get("primary") == Some(&Value::Bool(true));
    let Some(&keep) = written
        .iter()
        .rev()
        .find(|&&index| items.get(index).is_some_and(is_primary))
    else {
        return;
    };
    for (index, item) in items.iter_mut().enumerate() {
        if index != keep && is_primary(item) {
            if let Some(object) = item.as_object_mut() {
                object.insert("primary".to_owned(), Value::Bool(false));
            }
        }
    }
}

/// Rejects values nested deeper than `limit` arrays and objects, checked
/// without recursion.
pub(super) fn check_depth(value: &Value, limit: usize) -> Result<(), ScimError> {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(members) => Box::new(members.values()),
            _ => continue,
        };
        if depth >= limit {
            return Err(ScimError::invalid_value(format!(
                "the value nests arrays and objects more than {limit} levels deep"
            )));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

/// Converts a value to a list: null is empty and a single value is a list
/// of one.
pub(super) fn into_list(value: Option<Value>) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
    }
}

/// Converts the current value of a multi-valued attribute to a list, with
/// the sub-attribute names of complex values made canonical.
pub(super) fn into_items(current: Option<Value>, attribute: &AttributeDef) -> Vec<Value> {
    let mut items = into_list(current);
    for item in &mut items {
        if let Some(object) = item.as_object_mut() {
            canonicalise_keys(object, attribute);
        }
    }
    items
}

/// Converts the current value of a complex attribute to its object, with
/// canonical sub-attribute names. A value of another type is dropped.
pub(super) fn into_object(current: Option<Value>, attribute: &AttributeDef) -> Map<String, Value> {
    let mut object = match current {
        Some(Value::Object(object)) => object,
        _ => Map::new(),
    };
    canonicalise_keys(&mut object, attribute);
    object
}

/// Renames members that match a sub-attribute in another case, such as
/// `GivenName`, to the canonical name.
fn canonicalise_keys(object: &mut Map<String, Value>, attribute: &AttributeDef) {
    let misnamed: Vec<&'static str> = object
        .keys()
        .filter_map(|key| attribute.sub_attribute(key).filter(|sub| sub.name != key))
        .map(|sub| sub.name)
        .collect();
    for name in misnamed {
        if let Some(value) = take_ignore_case(object, name) {
            object.insert(name.to_owned(), value);
        }
    }
}
