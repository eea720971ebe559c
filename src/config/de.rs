//! Deserializers that accept a value either in its TOML type or as a string,
//! because environment overrides always arrive as strings.

use serde::de::{Deserializer, Error};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrString {
    Bool(bool),
    String(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrString {
    List(Vec<String>),
    String(String),
}

/// Accepts `true`/`false` or the strings `"true"`/`"false"`.
pub fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match BoolOrString::deserialize(deserializer)? {
        BoolOrString::Bool(value) => Ok(value),
        BoolOrString::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(D::Error::custom(format!(
                "expected true or false, found {text:?}"
            ))),
        },
    }
}

/// Accepts a non-negative integer or a string holding one.
pub fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    let value = match NumberOrString::deserialize(deserializer)? {
        NumberOrString::Number(value) => value,
        NumberOrString::String(text) => text.trim().parse().map_err(|_| {
            D::Error::custom(format!("expected a non-negative integer, found {text:?}"))
        })?,
    };
    usize::try_from(value).map_err(|_| D::Error::custom("number is too large"))
}

/// Accepts a list of strings, or one string whose items are separated by
/// commas or whitespace (`"openid email"`, `"a,b"`).
pub fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::String(text) => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}
