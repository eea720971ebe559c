//! The tokenizer and recursive-descent parser for filters.

use std::fmt;

use serde_json::Number;

use super::{AttrPath, CompareOp, Filter, FilterValue, MAX_FILTER_DEPTH, MAX_FILTER_LENGTH};
use crate::scim::error::ScimError;

/// Parses a filter, such as the `filter` query parameter of a list request.
///
/// Errors are `400 invalidFilter` with a message that names the problem and
/// its position, counted in bytes from 1.
pub fn parse_filter(input: &str) -> Result<Filter, ScimError> {
    parse(input, false)
}

/// Parses the filter inside the brackets of a value path, such as
/// `type eq "work"` in the PATCH path `emails[type eq "work"].value`. Its
/// attribute paths are sub-attribute names, and value paths cannot nest.
pub fn parse_value_filter(input: &str) -> Result<Filter, ScimError> {
    parse(input, true)
}

fn parse(input: &str, in_value_filter: bool) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LENGTH {
        return Err(ScimError::invalid_filter(format!(
            "the filter is {} bytes long, more than the maximum of {MAX_FILTER_LENGTH}",
            input.len()
        )));
    }
    if input.trim().is_empty() {
        return Err(ScimError::invalid_filter("the filter is empty"));
    }
    let tokens = tokenize(input)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        depth: 0,
    };
    let filter = parser.parse_or(in_value_filter)?;
    if let Some(token) = parser.peek() {
        return Err(ScimError::invalid_filter(format!(
            "unexpected {} at position {} after a complete filter",
            token.kind,
            token.offset + 1
        )));
    }
    // Printing quotes bare words and escapes control characters as
    // `\u00XX`, so the canonical form can be longer than the input. It is
    // held to the same limit, so that every accepted filter prints to text
    // that parses again.
    let canonical_length = filter.to_string().len();
    if canonical_length > MAX_FILTER_LENGTH {
        return Err(ScimError::invalid_filter(format!(
            "the filter is {canonical_length} bytes long with its values quoted and escaped, \
             more than the maximum of {MAX_FILTER_LENGTH}; send a shorter filter"
        )));
    }
    Ok(filter)
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    /// A decoded JSON string literal.
    Quoted(String),
    /// A run of characters up to whitespace, a bracket, a parenthesis or a
    /// quote: a keyword, an attribute path, a number or a bare value.
    Word(String),
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::LeftParen => f.write_str("'('"),
            TokenKind::RightParen => f.write_str("')'"),
            TokenKind::LeftBracket => f.write_str("'['"),
            TokenKind::RightBracket => f.write_str("']'"),
            TokenKind::Quoted(text) => {
                write!(f, "string {}", serde_json::Value::from(text.as_str()))
            }
            TokenKind::Word(word) => write!(f, "{word:?}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Byte offset in the input, for error messages.
    offset: usize,
}

fn tokenize(input: &str) -> Result<Vec<Token>, ScimError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(offset, c)) = chars.peek() {
        let kind = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '(' => TokenKind::LeftParen,
            ')' => TokenKind::RightParen,
            '[' => TokenKind::LeftBracket,
            ']' => TokenKind::RightBracket,
            '"' => {
                let end = string_end(input, offset)?;
                while chars.next_if(|&(index, _)| index <= end).is_some() {}
                tokens.push(Token {
                    kind: TokenKind::Quoted(decode_string(&input[offset..=end], offset)?),
                    offset,
                });
                continue;
            }
            _ => {
                let mut end = input.len();
                while let Some(&(index, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        end = index;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token {
                    kind: TokenKind::Word(input[offset..end].to_owned()),
                    offset,
                });
                continue;
            }
        };
        chars.next();
        tokens.push(Token { kind, offset });
    }
    Ok(tokens)
}

/// Returns the byte offset of the quote that closes the string starting at
/// `start`, skipping backslash escapes.
fn string_end(input: &str, start: usize) -> Result<usize, ScimError> {
    let bytes = input.as_bytes();
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return Ok(index),
            _ => index += 1,
        }
    }
    Err(ScimError::invalid_filter(format!(
        "the string starting at position {} has no closing quote",
        start + 1
    )))
}

/// Decodes a JSON string literal, quotes included.
fn decode_string(literal: &str, offset: usize) -> Result<String, ScimError> {
    serde_json::from_str(literal).map_err(|error| {
        ScimError::invalid_filter(format!(
            "invalid string literal at position {}: {error}",
            offset + 1
        ))
    })
}

#[derive(Clone, Copy)]
enum Junction {
    And,
    Or,
}

/// Joins terms with `and` or `or`, flattening terms of the same junction so
/// the tree does not depend on redundant parentheses.
fn join(terms: Vec<Filter>, junction: Junction) -> Filter {
    let mut flat = Vec::with_capacity(terms.len());
    for term in terms {
        match (junction, term) {
            (Junction::And, Filter::And(inner)) | (Junction::Or, Filter::Or(inner)) => {
                flat.extend(inner)
            }
            (_, term) => flat.push(term),
        }
    }
    if flat.len() == 1 {
        if let Some(only) = flat.pop() {
            return only;
        }
    }
    match junction {
        Junction::And => Filter::And(flat),
        Junction::Or => Filter::Or(flat),
    }
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    /// The current nesting of parentheses, `not` and value filters.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn peek_kind(&self, ahead: usize) -> Option<&TokenKind> {
        self.tokens
            .get(self.position + ahead)
            .map(|token| &token.kind)
    }

    fn next_token(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        if token.is_some() {
            self.position += 1;
        }
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek_kind(0), Some(TokenKind::Word(word)) if word.eq_ignore_ascii_case(keyword))
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(ScimError::invalid_filter(format!(
                "the filter nests parentheses, 'not' and value filters more than {MAX_FILTER_DEPTH} levels deep"
            )));
        }
        Ok(())
    }

    fn expect_close(&mut self, close: TokenKind, opened_at: usize) -> Result<(), ScimError> {
        match self.next_token() {
            Some(token) if token.kind == close => {
                self.depth -= 1;
                Ok(())
            }
            Some(token) => Err(ScimError::invalid_filter(format!(
                "expected {close} to close the bracket at position {}, found {} at position {}",
                opened_at + 1,
                token.kind,
                token.offset + 1
            ))),
            None => Err(ScimError::invalid_filter(format!(
                "the filter ends before the {close} that closes the bracket at position {}",
                opened_at + 1
            ))),
        }
    }

    fn parse_or(&mut self, in_value_filter: bool) -> Result<Filter, ScimError> {
        let mut terms = vec![self.parse_and(in_value_filter)?];
        while self.peek_keyword("or") {
            self.position += 1;
            terms.push(self.parse_and(in_value_filter)?);
        }
        Ok(join(terms, Junction::Or))
    }

    fn parse_and(&mut self, in_value_filter: bool) -> Result<Filter, ScimError> {
        let mut terms = vec![self.parse_factor(in_value_filter)?];
        while self.peek_keyword("and") {
            self.position += 1;
            terms.push(self.parse_factor(in_value_filter)?);
        }
        Ok(join(terms, Junction::And))
    }

    fn parse_factor(&mut self, in_value_filter: bool) -> Result<Filter, ScimError> {
        let Some(token) = self.peek().cloned() else {
            return Err(ScimError::invalid_filter(
                "the filter ends where an attribute, '(' or 'not' was expected",
            ));
        };
        match token.kind {
            TokenKind::Word(word) if word.eq_ignore_ascii_case("not") => {
                let paren_offset = match self.tokens.get(self.position + 1) {
                    Some(next) if next.kind == TokenKind::LeftParen => next.offset,
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                            "'not' at position {} must be followed by a filter in parentheses, as in not (active eq true)",
                            token.offset + 1
                        )))
                    }
                };
                self.position += 2;
                self.enter()?;
                let inner = self.parse_or(in_value_filter)?;
                self.expect_close(TokenKind::RightParen, paren_offset)?;
                Ok(Filter::Not(Box::new(inner)))
            }
            TokenKind::LeftParen => {
                self.position += 1;
                self.enter()?;
                let inner = self.parse_or(in_value_filter)?;
                self.expect_close(TokenKind::RightParen, token.offset)?;
                Ok(inner)
            }
            TokenKind::Word(word) => {
                self.position += 1;
                self.parse_attribute_expression(&word, token.offset, in_value_filter)
            }
            other => Err(ScimError::invalid_filter(format!(
                "expected an attribute, '(' or 'not' at position {}, found {other}",
                token.offset + 1
            ))),
        }
    }

    fn parse_attribute_expression(
        &mut self,
        word: &str,
        offset: usize,
        in_value_filter: bool,
    ) -> Result<Filter, ScimError> {
        let path = parse_attr_path(word).map_err(|reason| {
            ScimError::invalid_filter(format!(
                "invalid attribute path {word:?} at position {}: {reason}",
                offset + 1
            ))
        })?;
        if in_value_filter && (path.urn.is_some() || path.sub_attribute.is_some()) {
            return Err(ScimError::invalid_filter(format!(
                "inside a value filter, {word:?} at position {} must be a plain sub-attribute name such as \"type\"",
                offset + 1
            )));
        }
        let bracket_offset = match self.peek() {
            Some(token) if token.kind == TokenKind::LeftBracket => token.offset,
            _ => return self.parse_comparison(path),
        };
        if in_value_filter {
            return Err(ScimError::invalid_filter(format!(
                "value filters cannot be nested, as at position {}",
                bracket_offset + 1
            )));
        }
        if path.sub_attribute.is_some() {
            return Err(ScimError::invalid_filter(format!(
                "a value filter must follow an attribute, not the sub-attribute path {word:?}"
            )));
        }
        self.position += 1;
        self.enter()?;
        let mut inner = self.parse_or(true)?;
        self.expect_close(TokenKind::RightBracket, bracket_offset)?;
        if let Some(sub_name) = self.peek_sub_attribute() {
            self.position += 1;
            if !is_attribute_name(&sub_name) {
                return Err(ScimError::invalid_filter(format!(
                    "invalid sub-attribute name {sub_name:?} after the value filter of {path}"
                )));
            }
            let comparison = self.parse_comparison(AttrPath::simple(sub_name))?;
            inner = join(vec![inner, comparison], Junction::And);
        }
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(inner),
        })
    }

    /// Returns the sub-attribute of a `].sub` continuation, without the dot.
    fn peek_sub_attribute(&self) -> Option<String> {
        match self.peek_kind(0) {
            Some(TokenKind::Word(word)) => word.strip_prefix('.').map(str::to_owned),
            _ => None,
        }
    }

    fn parse_comparison(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let Some(token) = self.next_token() else {
            return Err(ScimError::invalid_filter(format!(
                "the filter ends after {path}, where an operator such as eq or pr was expected"
            )));
        };
        let TokenKind::Word(keyword) = &token.kind else {
            return Err(ScimError::invalid_filter(format!(
                "expected an operator after {path} at position {}, found {}",
                token.offset + 1,
                token.kind
            )));
        };
        if keyword.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(keyword) else {
            return Err(ScimError::invalid_filter(format!(
                "unknown operator {keyword:?} after {path} at position {}: use eq, ne, co, sw, ew, gt, ge, lt, le or pr",
                token.offset + 1
            )));
        };
        let value = match self.next_token().map(|token| (token.kind, token.offset)) {
            Some((TokenKind::Quoted(text), _)) => FilterValue::String(text),
            Some((TokenKind::Word(word), _)) => bare_value(&word),
            Some((other, offset)) => {
                return Err(ScimError::invalid_filter(format!(
                    "expected a value after {path} {op} at position {}, found {other}",
                    offset + 1
                )))
            }
            None => {
                return Err(ScimError::invalid_filter(format!(
                    "the filter ends after {path} {op}, where a value was expected"
                )))
            }
        };
        Ok(Filter::Compare { path, op, value })
    }
}

/// Reads an unquoted value: `true`, `false` and `null` in any case, a JSON
/// number, or else the word itself as a string.
fn bare_value(word: &str) -> FilterValue {
    if word.eq_ignore_ascii_case("true") {
        FilterValue::Boolean(true)
    } else if word.eq_ignore_ascii_case("false") {
        FilterValue::Boolean(false)
    } else if word.eq_ignore_ascii_case("null") {
        FilterValue::Null
    } else if let Some(number) = parse_number(word) {
        FilterValue::Number(number)
    } else {
        FilterValue::String(word.to_owned())
    }
}

/// Parses a word in JSON number syntax. Floats go through the standard
/// library's correctly rounded parser, so a printed float parses back to
/// the same value.
fn parse_number(word: &str) -> Option<Number> {
    serde_json::from_str::<Number>(word).ok()?;
    if let Ok(integer) = word.parse::<i64>() {
        return Some(integer.into());
    }
    if let Ok(unsigned) = word.parse::<u64>() {
        return Some(unsigned.into());
    }
    Number::from_f64(word.parse::<f64>().ok()?)
}

/// Splits `[urn ":"] name ["." sub]`. Attribute names contain no `:`, so
/// the URN is everything before the last `:`, whatever dots it contains.
pub(crate) fn parse_attr_path(text: &str) -> Result<AttrPath, String> {
    let (urn, rest) = match text.rfind(':') {
        Some(index) => (Some(&text[..index]), &text[index + 1..]),
        None => (None, text),
    };
    if urn.is_some_and(str::is_empty) {
        return Err("the schema URN before ':' is empty".to_owned());
    }
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    if !is_attribute_name(name) {
        return Err(format!(
            "{name:?} is not an attribute name (a letter, then letters, digits, '-' or '_')"
        ));
    }
    if let Some(sub) = sub {
        if !is_attribute_name(sub) {
            return Err(format!("{sub:?} is not a sub-attribute name"));
        }
    }
    Ok(AttrPath {
        urn: urn.map(str::to_owned),
        name: name.to_owned(),
        sub_attribute: sub.map(str::to_owned),
    })
}

/// Tells whether `name` is an RFC 7643 attribute name: a letter followed by
/// letters, digits, `-` and `_`, or a `$` name such as `$ref`.
pub(crate) fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '$');
    first_valid && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$'))
}
