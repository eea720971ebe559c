//! Deserializers that accept a value either in its TOML type or as a string,
//! because environment overrides always arrive as strings. Their errors say
//! what was expected and what was found.

use serde::de::{Deserializer, Error};
use serde::Deserialize;

/// Describes a TOML value's type for an error message.
fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("the string {text:?}"),
        toml::Value::Integer(number) => format!("the integer {number}"),
        toml::Value::Float(number) => format!("the number {number}"),
        toml::Value::Boolean(flag) => format!("{flag}"),
        toml::Value::Datetime(_) => "a date".to_owned(),
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

/// Accepts `true`/`false` or the strings `"true"`/`"false"`.
pub fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let value = toml::Value::deserialize(deserializer)?;
    let parsed = match &value {
        toml::Value::Boolean(flag) => Some(*flag),
        toml::Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| {
        D::Error::custom(format!(
            "expected true or false, found {}",
            describe(&value)
        ))
    })
}

/// Accepts a non-negative integer or a string holding one.
pub fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = toml::Value::deserialize(deserializer)?;
    let parsed = match &value {
        toml::Value::Integer(number) => usize::try_from(*number).ok(),
        toml::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        D::Error::custom(format!(
            "expected a non-negative integer, found {}",
            describe(&value)
        ))
    })
}

/// Accepts a list of strings, or one string whose items are separated by
/// commas or whitespace (`"openid email"`, `"a,b"`).
pub fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = toml::Value::deserialize(deserializer)?;
    match &value {
        toml::Value::String(text) => Ok(text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                toml::Value::String(text) => Ok(text.clone()),
                other => Err(D::Error::custom(format!(
                    "expected a list of strings, found {} in the list",
                    describe(other)
                ))),
            })
            .collect(),
        other => Err(D::Error::custom(format!(
            "expected a list of strings, found {}",
            describe(other)
        ))),
    }
}
