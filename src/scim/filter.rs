//! SCIM filters (RFC 7644 §3.4.2.2). This module has the syntax tree and a
//! parser with limits on length and nesting. Its printer's output parses
//! back to the same tree. The evaluator runs a filter over JSON resource
//! documents, and [`index_lookup`] finds an equality a directory index can
//! serve.
//!
//! The grammar, with keywords and attribute names case-insensitive:
//!
//! ```text
//! filter     = term *("or" term)
//! term       = factor *("and" factor)
//! factor     = "not" "(" filter ")" / "(" filter ")" / attrExp
//! attrExp    = attrPath "pr" / attrPath compareOp value
//!            / attrPath "[" valFilter "]" ["." subAttr compareOp value]
//! attrPath   = [schemaURN ":"] attrName ["." subAttr]
//! compareOp  = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "ge" / "lt" / "le"
//! value      = JSON string / JSON number / "true" / "false" / "null" / bareWord
//! ```
//!
//! `and` binds tighter than `or`. A bare word value, as in
//! `externalId eq jyoung` from Entra's documentation, is read as a string.
//! `emails[type eq "work"].value eq "x"` is read as
//! `emails[type eq "work" and value eq "x"]`, which means the same.

mod eval;
mod parser;

use std::fmt;

use serde_json::Number;

pub use eval::{index_lookup, matches, matches_element, IndexLookup, IndexedAttribute};
pub use eval::{parse_boolean, parse_instant};
pub use parser::{parse_filter, parse_value_filter};

/// The maximum length of a filter in bytes, both as sent and as printed
/// with bare words quoted. Okta and Entra send filters of well under 200
/// bytes, so this leaves room for hand-written queries.
pub const MAX_FILTER_LENGTH: usize = 4096;

/// The maximum nesting of parentheses, `not` and value filters. It keeps the
/// recursive-descent parser and the evaluator far from a stack overflow.
pub const MAX_FILTER_DEPTH: usize = 32;

/// An attribute path as written in a filter: an optional schema URN, the
/// attribute name and an optional sub-attribute name. Names keep the case
/// the client used, and resolution against a schema ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN before the last `:`, such as
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`.
    pub urn: Option<String>,
    /// The attribute name, such as `emails`.
    pub name: String,
    /// The sub-attribute name after `.`, such as `value`.
    pub sub_attribute: Option<String>,
}

impl AttrPath {
    /// Creates a path of a plain attribute name, without URN or
    /// sub-attribute.
    pub fn simple(name: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub_attribute: None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub_attribute {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains the value as a substring.
    Co,
    /// `sw`: starts with the value.
    Sw,
    /// `ew`: ends with the value.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// Every operator, in the order RFC 7644 lists them.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// Returns the lower-case keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Parses a keyword, ignoring ASCII case.
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(keyword))
    }

    /// Tells whether the operator orders values (`gt`, `ge`, `lt`, `le`).
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Tells whether the operator works on substrings (`co`, `sw`, `ew`).
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// A string, quoted or a bare word.
    String(String),
    /// A JSON number.
    Number(Number),
    /// `true` or `false`.
    Boolean(bool),
    /// `null`.
    Null,
}

impl fmt::Display for FilterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterValue::String(text) => {
                let quoted = serde_json::Value::String(text.clone()).to_string();
                f.write_str(&quoted)
            }
            FilterValue::Number(number) => write!(f, "{number}"),
            FilterValue::Boolean(flag) => write!(f, "{flag}"),
            FilterValue::Null => f.write_str("null"),
        }
    }
}

/// A parsed filter.
///
/// The parser never produces an `And` or `Or` with fewer than two terms,
/// and never nests `And` directly in `And` or `Or` in `Or`, so printing and
/// parsing again gives the same tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The literal compared against.
        value: FilterValue,
    },
    /// `path pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `not (filter)`.
    Not(Box<Filter>),
    /// Terms joined by `and`.
    And(Vec<Filter>),
    /// Terms joined by `or`.
    Or(Vec<Filter>),
    /// `path[filter]`: some value of a multi-valued complex attribute
    /// matches the inner filter, whose paths name sub-attributes.
    ValuePath {
        /// The multi-valued (or complex) attribute.
        path: AttrPath,
        /// The filter applied to each value.
        filter: Box<Filter>,
    },
}

impl fmt::Display for Filter {
    /// Prints the filter in canonical form: lower-case keywords, JSON string
    /// literals, single spaces, and parentheses only where `or` sits inside
    /// `and`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::And(terms) => {
                for (index, term) in terms.iter().enumerate() {
                    if index > 0 {
                        f.write_str(" and ")?;
                    }
                    match term {
                        Filter::Or(_) => write!(f, "({term})")?,
                        _ => write!(f, "{term}")?,
                    }
                }
                Ok(())
            }
            Filter::Or(terms) => {
                for (index, term) in terms.iter().enumerate() {
                    if index > 0 {
                        f.write_str(" or ")?;
                    }
                    write!(f, "{term}")?;
                }
                Ok(())
            }
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = super::error::ScimError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse_filter(input)
    }
}

#[cfg(test)]
mod tests;
