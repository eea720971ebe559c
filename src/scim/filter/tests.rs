use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::scim::error::ScimType;
use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn parse(input: &str) -> Filter {
    parse_filter(input).expect("filter parses")
}

fn path(text: &str) -> AttrPath {
    parser::parse_attr_path(text).expect("valid attribute path")
}

fn compare(attribute: &str, op: CompareOp, value: FilterValue) -> Filter {
    Filter::Compare {
        path: path(attribute),
        op,
        value,
    }
}

fn string(text: &str) -> FilterValue {
    FilterValue::String(text.to_owned())
}

fn number(n: i64) -> FilterValue {
    FilterValue::Number(n.into())
}

#[test]
fn parse_every_operator() {
    for op in CompareOp::ALL {
        for keyword in [op.as_str().to_owned(), op.as_str().to_ascii_uppercase()] {
            let input = format!("title {keyword} \"x\"");
            let expected = compare("title", op, string("x"));
            assert_eq!(parse(&input), expected, "operator in {input:?}");
        }
    }
    let present = [
        ("title pr", "title"),
        ("title PR", "title"),
        ("name.givenName Pr", "name.givenName"),
    ];
    for (input, attribute) in present {
        assert_eq!(
            parse(input),
            Filter::Present(path(attribute)),
            "presence in {input:?}"
        );
    }
}

#[test]
fn parse_precedence() {
    let a = compare("a", CompareOp::Eq, number(1));
    let b = compare("b", CompareOp::Eq, number(2));
    let c = compare("c", CompareOp::Eq, number(3));
    let cases = [
        (
            "a eq 1 or b eq 2 and c eq 3",
            Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])]),
        ),
        (
            "a eq 1 and b eq 2 or c eq 3",
            Filter::Or(vec![Filter::And(vec![a.clone(), b.clone()]), c.clone()]),
        ),
        (
            "(a eq 1 or b eq 2) and c eq 3",
            Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()]),
        ),
        (
            "a eq 1 AND b eq 2 AND c eq 3",
            Filter::And(vec![a.clone(), b.clone(), c.clone()]),
        ),
        (
            "a eq 1 Or (b eq 2 or c eq 3)",
            Filter::Or(vec![a.clone(), b.clone(), c.clone()]),
        ),
        ("((a eq 1))", a.clone()),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(input), expected, "tree of {input:?}");
    }
}

#[test]
fn parse_not_and_groups() {
    let active = compare("active", CompareOp::Eq, FilterValue::Boolean(true));
    let title = Filter::Present(path("title"));
    let cases = [
        (
            "not (active eq true)",
            Filter::Not(Box::new(active.clone())),
        ),
        ("NOT(active eq true)", Filter::Not(Box::new(active.clone()))),
        (
            "not ( not (active eq true) )",
            Filter::Not(Box::new(Filter::Not(Box::new(active.clone())))),
        ),
        (
            "title pr and not (active eq true or title pr)",
            Filter::And(vec![
                title.clone(),
                Filter::Not(Box::new(Filter::Or(vec![active.clone(), title.clone()]))),
            ]),
        ),
        (
            "((title pr or (active eq true)) and (title pr))",
            Filter::And(vec![
                Filter::Or(vec![title.clone(), active.clone()]),
                title.clone(),
            ]),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(input), expected, "tree of {input:?}");
    }
}

#[test]
fn parse_value_paths() {
    let work = compare("type", CompareOp::Eq, string("work"));
    let cases = [
        (
            r#"emails[type eq "work" and value co "@x"]"#,
            Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(Filter::And(vec![
                    work.clone(),
                    compare("value", CompareOp::Co, string("@x")),
                ])),
            },
        ),
        (
            r#"emails[type eq "work"].value eq "a@x""#,
            Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(Filter::And(vec![
                    work.clone(),
                    compare("value", CompareOp::Eq, string("a@x")),
                ])),
            },
        ),
        (
            r#"emails[type eq "work"].value pr"#,
            Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(Filter::And(vec![
                    work.clone(),
                    Filter::Present(path("value")),
                ])),
            },
        ),
        (
            r#"members[value eq "u1"] or members[value eq "u2"]"#,
            Filter::Or(vec![
                Filter::ValuePath {
                    path: path("members"),
                    filter: Box::new(compare("value", CompareOp::Eq, string("u1"))),
                },
                Filter::ValuePath {
                    path: path("members"),
                    filter: Box::new(compare("value", CompareOp::Eq, string("u2"))),
                },
            ]),
        ),
        (
            r#"emails[not (type eq "work")]"#,
            Filter::ValuePath {
                path: path("emails"),
                filter: Box::new(Filter::Not(Box::new(work.clone()))),
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse(input), expected, "tree of {input:?}");
    }
}

#[test]
fn parse_urn_paths() {
    let cases = [
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m\"",
            Some(ENTERPRISE),
            "manager",
            Some("value"),
        ),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"m\"",
            Some("urn:ietf:params:scim:schemas:core:2.0:User"),
            "userName",
            None,
        ),
        ("name.givenName eq \"m\"", None, "name", Some("givenName")),
        ("members.$ref eq \"m\"", None, "members", Some("$ref")),
    ];
    for (input, urn, name, sub) in cases {
        let Filter::Compare { path, .. } = parse(input) else {
            panic!("{input:?} is not a comparison");
        };
        assert_eq!(path.urn.as_deref(), urn, "URN of {input:?}");
        assert_eq!(path.name, name, "name of {input:?}");
        assert_eq!(
            path.sub_attribute.as_deref(),
            sub,
            "sub-attribute of {input:?}"
        );
    }
}

#[test]
fn parse_literals() {
    let cases = [
        ("x eq true", FilterValue::Boolean(true)),
        ("x eq False", FilterValue::Boolean(false)),
        ("x eq null", FilterValue::Null),
        ("x eq 42", number(42)),
        ("x eq -7", number(-7)),
        (
            "x eq 2.5",
            FilterValue::Number(serde_json::Number::from_f64(2.5).expect("finite")),
        ),
        ("x eq jyoung", string("jyoung")),
        ("x eq alice@example.com", string("alice@example.com")),
        ("x eq 007", string("007")),
        ("x eq +5", string("+5")),
        ("x eq 1x", string("1x")),
        ("x eq inf", string("inf")),
        (
            r#"x eq "a \"quoted\" \\ value""#,
            string("a \"quoted\" \\ value"),
        ),
        (r#"x eq "caf\u00e9""#, string("café")),
        (r#"x eq "naïve""#, string("naïve")),
        (r#"x eq """#, string("")),
        (r#"x eq "true""#, string("true")),
    ];
    for (input, expected) in cases {
        let Filter::Compare { value, .. } = parse(input) else {
            panic!("{input:?} is not a comparison");
        };
        assert_eq!(value, expected, "literal of {input:?}");
    }
}

#[test]
fn invalid_filters() {
    let too_deep = format!(
        "{}a pr{}",
        "(".repeat(MAX_FILTER_DEPTH + 1),
        ")".repeat(MAX_FILTER_DEPTH + 1)
    );
    let too_deep_not = format!(
        "{}a pr{}",
        "not (".repeat(MAX_FILTER_DEPTH + 1),
        ")".repeat(MAX_FILTER_DEPTH + 1)
    );
    let too_long = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LENGTH));
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("only spaces", "   ".to_owned()),
        ("unclosed parenthesis", "(userName pr".to_owned()),
        ("extra closing parenthesis", "userName pr)".to_owned()),
        (
            "closing bracket for parenthesis",
            "(userName pr]".to_owned(),
        ),
        ("unknown operator", "userName xx \"a\"".to_owned()),
        ("operator missing", "userName".to_owned()),
        ("value missing", "userName eq".to_owned()),
        ("value is a parenthesis", "userName eq (".to_owned()),
        ("trailing garbage", "userName pr title".to_owned()),
        ("trailing value after pr", "userName pr \"x\"".to_owned()),
        ("dangling and", "userName pr and".to_owned()),
        ("leading or", "or userName pr".to_owned()),
        ("not without parentheses", "not userName pr".to_owned()),
        ("unterminated string", "userName eq \"abc".to_owned()),
        ("bad escape", r#"userName eq "\q""#.to_owned()),
        (
            "raw control character in string",
            "userName eq \"a\tb\"".to_owned(),
        ),
        (
            "unclosed value filter",
            "emails[type eq \"work\"".to_owned(),
        ),
        ("empty value filter", "emails[]".to_owned()),
        ("nested value filter", "emails[type[value pr]]".to_owned()),
        (
            "URN inside value filter",
            "emails[urn:x:type pr]".to_owned(),
        ),
        (
            "value filter after sub-attribute",
            "name.givenName[value pr]".to_owned(),
        ),
        (
            "bad sub-attribute after value filter",
            "emails[type pr].1x eq \"a\"".to_owned(),
        ),
        ("attribute starts with digit", "1abc pr".to_owned()),
        ("empty URN", ":userName pr".to_owned()),
        ("empty sub-attribute", "name. pr".to_owned()),
        ("starts with a quote", "\"userName\" eq \"a\"".to_owned()),
        ("too deep", too_deep),
        ("too deep with not", too_deep_not),
        ("too long", too_long),
    ];
    for (case, input) in cases {
        let error = parse_filter(&input).expect_err(case);
        assert_eq!(error.status, 400, "status for {case}");
        assert_eq!(
            error.scim_type,
            Some(ScimType::InvalidFilter),
            "scimType for {case}"
        );
        assert!(!error.detail.is_empty(), "detail for {case}");
    }
}

#[test]
fn limits_are_inclusive() {
    let deepest = format!(
        "{}a pr{}",
        "(".repeat(MAX_FILTER_DEPTH),
        ")".repeat(MAX_FILTER_DEPTH)
    );
    assert!(
        parse_filter(&deepest).is_ok(),
        "{MAX_FILTER_DEPTH} levels parse"
    );
    let prefix = "userName eq \"";
    let longest = format!(
        "{prefix}{}\"",
        "a".repeat(MAX_FILTER_LENGTH - prefix.len() - 1)
    );
    assert_eq!(longest.len(), MAX_FILTER_LENGTH, "test input length");
    assert!(
        parse_filter(&longest).is_ok(),
        "{MAX_FILTER_LENGTH} bytes parse"
    );
    let wide = vec!["a pr"; 400].join(" and ");
    assert!(
        parse_filter(&wide).is_ok(),
        "long and chains are not nesting"
    );
}

#[test]
fn error_messages_name_the_problem() {
    let cases = [
        ("userName xx \"a\"", "unknown operator \"xx\""),
        ("(userName pr", "the filter ends before the ')'"),
        ("userName pr title", "unexpected \"title\" at position 13"),
        ("", "the filter is empty"),
        (
            "not userName pr",
            "must be followed by a filter in parentheses",
        ),
    ];
    for (input, fragment) in cases {
        let error = parse_filter(input).expect_err("invalid filter");
        assert!(
            error.detail.contains(fragment),
            "detail {:?} of {input:?} mentions {fragment:?}",
            error.detail
        );
    }
}

#[test]
fn canonical_printing() {
    let cases = [
        ("userName Eq \"bjensen\"", "userName eq \"bjensen\""),
        ("externalId eq jyoung", "externalId eq \"jyoung\""),
        (
            "a eq 1 or (b eq 2 and c eq 3)",
            "a eq 1 or b eq 2 and c eq 3",
        ),
        ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
        ("NOT(a pr)", "not (a pr)"),
        (
            "emails[type eq \"work\"].value eq \"x\"",
            "emails[type eq \"work\" and value eq \"x\"]",
        ),
        ("title eq \"tab\\there\"", "title eq \"tab\\there\""),
        ("x eq TRUE", "x eq true"),
        ("x eq 1e3", "x eq 1000.0"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse(input).to_string(),
            expected,
            "canonical form of {input:?}"
        );
    }
}

#[test]
fn print_parse_stable() {
    let inputs = [
        "userName eq \"bjensen\"",
        "name.familyName co \"O'Malley\"",
        "userName sw \"J\"",
        "urn:ietf:params:scim:schemas:core:2.0:User:userName sw \"J\"",
        "title pr",
        "meta.lastModified gt \"2011-05-13T04:42:34Z\"",
        "meta.lastModified ge \"2011-05-13T04:42:34Z\"",
        "meta.lastModified lt \"2011-05-13T04:42:34Z\"",
        "meta.lastModified le \"2011-05-13T04:42:34Z\"",
        "title pr and userType eq \"Employee\"",
        "title pr or userType eq \"Intern\"",
        "schemas eq \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"",
        "userType eq \"Employee\" and (emails co \"example.com\" or emails.value co \"example.org\")",
        "userType ne \"Employee\" and not (emails co \"example.com\" or emails.value co \"example.org\")",
        "userType eq \"Employee\" and (emails.type eq \"work\")",
        "userType eq \"Employee\" and emails[type eq \"work\" and value co \"@example.com\"]",
        "emails[type eq \"work\" and value co \"@example.com\"] or ims[type eq \"xmpp\" and value co \"@foo.com\"]",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"26118915-6090-4610-87e4-49d8ca9f808d\"",
        "emails[type eq \"work\"].value eq \"a@b.c\"",
        "not (not (a pr) and (b pr or c pr))",
        "a eq 1 or b eq -2.5 and c eq null or d eq false",
        "x eq \"quote \\\" backslash \\\\ unicode \\u00e9 \\u2028\"",
        "meta.Created gt \"2024-01-01T00:00:00+01:00\"",
        "members[value eq \"u1\"] and displayName eq \"Sales\"",
        "active le 104185.94842096593",
        "x gt 1e-7 and y lt 18446744073709551615",
    ];
    for input in inputs {
        let first = parse(input);
        let printed = first.to_string();
        let second = parse(&printed);
        assert_eq!(
            second, first,
            "tree survives printing of {input:?} as {printed:?}"
        );
        assert_eq!(
            second.to_string(),
            printed,
            "printing is stable for {input:?}"
        );
    }
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "ExtId-1",
        "userName": "Alice@Example.com",
        "name": {"givenName": "Alice", "familyName": "Anderson"},
        "displayName": "Alice Anderson",
        "title": "",
        "active": true,
        "loginCount": 5,
        "emails": [
            {"value": "alice@work.example", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z"
        },
        ENTERPRISE: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "m-1", "displayName": "John Smith"}
        }
    })
}

#[test]
fn evaluate_user_filters() {
    let document = user();
    let cases = [
        ("userName eq \"alice@example.com\"", true),
        ("userName eq \"ALICE@EXAMPLE.COM\"", true),
        ("USERNAME EQ \"alice@example.com\"", true),
        ("urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"alice@example.com\"", true),
        ("userName eq \"bob@example.com\"", false),
        ("id eq \"2819c223-7f76-453a-919d-413861904646\"", true),
        ("id eq \"2819C223-7F76-453A-919D-413861904646\"", false),
        ("externalId eq \"ExtId-1\"", true),
        ("externalId eq \"extid-1\"", false),
        ("externalId eq ExtId-1", true),
        ("name.givenName sw \"ali\"", true),
        ("Name.FamilyName ew \"SON\"", true),
        ("displayName co \"ce an\"", true),
        ("displayName co \"bob\"", false),
        ("userName gt \"a\"", true),
        ("userName lt \"B\"", true),
        ("userName ge \"alice@example.com\"", true),
        ("userName le \"alice@example.co\"", false),
        ("emails.value eq \"alice@home.example\"", true),
        ("emails eq \"ALICE@WORK.EXAMPLE\"", true),
        ("emails co \"home\"", true),
        ("emails[type eq \"work\"].value eq \"alice@work.example\"", true),
        ("emails[type eq \"WORK\"].value eq \"alice@home.example\"", false),
        ("emails[type eq \"home\" and primary eq true]", false),
        ("emails[type eq \"work\" and primary eq true]", true),
        ("emails[not (type eq \"work\")]", true),
        ("emails[type eq \"other\"]", false),
        ("emails.type eq \"home\"", true),
        ("emails pr", true),
        ("title pr", false),
        ("nickName pr", false),
        ("x509Certificates pr", false),
        ("name pr", true),
        ("title ne \"boss\"", true),
        ("nickName ne \"x\"", true),
        ("emails.type ne \"home\"", false),
        ("nickName eq null", true),
        ("nickName ne null", false),
        ("userName eq null", false),
        ("active eq true", true),
        ("active eq false", false),
        ("active ne false", true),
        ("not (active eq false)", true),
        ("active eq \"True\"", true),
        ("meta.lastModified gt \"2011-05-13T04:42:33Z\"", true),
        ("meta.lastModified gt \"2011-05-13T04:42:34Z\"", false),
        ("meta.lastModified ge \"2011-05-13T04:42:34Z\"", true),
        ("meta.lastModified eq \"2011-05-13T06:42:34+02:00\"", true),
        ("meta.lastModified lt \"2011-05-13T06:42:35+02:00\"", true),
        ("meta.lastModified le \"2011-05-13T04:42:33.999Z\"", false),
        ("meta.created lt \"2011-01-01T00:00:00Z\"", true),
        ("meta.lastModified gt \"not a date\"", false),
        ("meta.lastModified lt \"not a date\"", true),
        ("meta.resourceType eq \"user\"", false),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m-1\"", true),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"701984\"", true),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department eq \"tour operations\"", true),
        ("department eq \"TOUR OPERATIONS\"", true),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq \"m-1\"", true),
        ("loginCount gt 3", true),
        ("loginCount le 4", false),
        ("loginCount eq 5.0", true),
        ("loginCount eq \"5\"", false),
        ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984", true),
        ("userName eq \"x\" or active eq true", true),
        ("userName eq \"x\" and active eq true", false),
        ("(userName eq \"x\" or emails co \"work\") and active eq true", true),
        ("missing eq \"x\"", false),
        ("urn:unknown:schema:thing pr", false),
    ];
    for (input, expected) in cases {
        let filter = parse(input);
        assert_eq!(
            matches(&filter, &document, &USER_RESOURCE),
            expected,
            "{input}"
        );
    }
}

#[test]
fn evaluate_group_filters() {
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "g1",
        "displayName": "Sales Team",
        "members": [{"value": "u1", "display": "Alice"}, {"value": "u2"}]
    });
    let cases = [
        ("displayName eq \"sales team\"", true),
        ("members[value eq \"u2\"]", true),
        ("members[value eq \"u3\"]", false),
        ("members.value eq \"u1\"", true),
        ("members.display pr", true),
        ("members[value eq \"u2\" and display pr]", false),
        ("members eq \"u1\"", true),
    ];
    for (input, expected) in cases {
        let filter = parse(input);
        assert_eq!(
            matches(&filter, &group, &GROUP_RESOURCE),
            expected,
            "{input}"
        );
    }
}

#[test]
fn evaluate_element_filter() {
    let emails = USER_RESOURCE
        .resolve("emails")
        .expect("emails defined")
        .attribute;
    let element = json!({"value": "a@x", "type": "Work"});
    let cases = [
        ("type eq \"work\"", true),
        ("type eq \"home\"", false),
        ("value ew \"@X\"", true),
        ("primary pr", false),
    ];
    for (input, expected) in cases {
        let filter = parse_value_filter(input).expect("value filter parses");
        assert_eq!(
            matches_element(&filter, &element, emails),
            expected,
            "{input}"
        );
    }
}

#[test]
fn validate_against_schema() {
    let valid = [
        "userName eq \"a\"",
        "emails[type eq \"work\"].value eq \"x\"",
        "meta.lastModified gt \"2011-05-13T04:42:34Z\"",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m\"",
        "active eq true and not (title pr)",
        "emails co \"x\"",
        "name pr",
        "meta.created ge \"2024-01-01T00:00:00+01:00\"",
        "meta.lastModified eq null",
        "meta.lastModified sw \"2024-\"",
    ];
    for input in valid {
        assert_eq!(
            parse(input).validate(&USER_RESOURCE),
            Ok(()),
            "{input} is valid"
        );
    }
    let invalid = [
        "nope eq \"a\"",
        "name.nope eq \"a\"",
        "emails[nope eq \"a\"]",
        "userName[value eq \"a\"]",
        "active gt true",
        "active co \"t\"",
        "name eq \"a\"",
        "urn:x:userName eq \"a\"",
        "members pr",
        "meta.lastModified gt \"not-a-date\"",
        "meta.created ge \"2020-13-45T00:00:00Z\"",
        "meta.lastModified eq \"2020-01-01\"",
        "meta.lastModified lt 1589000000",
        "meta.created ne true",
        "not (meta.lastModified le \"yesterday\")",
    ];
    for input in invalid {
        let error = parse(input).validate(&USER_RESOURCE).expect_err(input);
        assert_eq!(
            error.scim_type,
            Some(ScimType::InvalidFilter),
            "scimType for {input}"
        );
    }
}

#[test]
fn index_lookups() {
    let user_cases = [
        (
            "userName eq \"Alice@x\"",
            Some((IndexedAttribute::UserName, "Alice@x")),
        ),
        ("USERNAME eq \"a\"", Some((IndexedAttribute::UserName, "a"))),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"a\"",
            Some((IndexedAttribute::UserName, "a")),
        ),
        ("id eq \"42\"", Some((IndexedAttribute::Id, "42"))),
        (
            "externalId eq jyoung",
            Some((IndexedAttribute::ExternalId, "jyoung")),
        ),
        (
            "displayName eq \"A\"",
            Some((IndexedAttribute::DisplayName, "A")),
        ),
        (
            "emails.value eq \"a@x\"",
            Some((IndexedAttribute::EmailValue, "a@x")),
        ),
        (
            "emails eq \"a@x\"",
            Some((IndexedAttribute::EmailValue, "a@x")),
        ),
        (
            "emails[value eq \"a@x\"]",
            Some((IndexedAttribute::EmailValue, "a@x")),
        ),
        (
            "emails[type eq \"work\"].value eq \"a@x\"",
            Some((IndexedAttribute::EmailValue, "a@x")),
        ),
        (
            "emails[type eq \"work\" and value eq \"a@x\"]",
            Some((IndexedAttribute::EmailValue, "a@x")),
        ),
        (
            "active eq true and userName eq \"a\"",
            Some((IndexedAttribute::UserName, "a")),
        ),
        (
            "userName eq \"a\" and (title pr or nickName pr)",
            Some((IndexedAttribute::UserName, "a")),
        ),
        ("userName eq \"a\" or userName eq \"b\"", None),
        ("not (userName eq \"a\")", None),
        ("userName ne \"a\"", None),
        ("userName sw \"a\"", None),
        ("userName eq 5", None),
        ("emails.type eq \"work\"", None),
        ("emails[type eq \"work\"]", None),
        ("emails[value eq \"a\" or type eq \"work\"]", None),
        ("title eq \"a\"", None),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"1\"",
            None,
        ),
    ];
    for (input, expected) in user_cases {
        let lookup = index_lookup(&parse(input), &USER_RESOURCE);
        let expected = expected.map(|(attribute, value)| IndexLookup {
            attribute,
            value: value.to_owned(),
        });
        assert_eq!(lookup, expected, "lookup for {input}");
    }
    let group = index_lookup(&parse("displayName eq \"Sales\""), &GROUP_RESOURCE);
    assert_eq!(
        group.map(|l| l.attribute),
        Some(IndexedAttribute::DisplayName),
        "group displayName"
    );
}

#[test]
fn indexed_attribute_case_rules() {
    let cases = [
        (IndexedAttribute::Id, true, "id"),
        (IndexedAttribute::UserName, false, "userName"),
        (IndexedAttribute::ExternalId, true, "externalId"),
        (IndexedAttribute::DisplayName, false, "displayName"),
        (IndexedAttribute::EmailValue, false, "emails.value"),
    ];
    for (attribute, case_exact, path) in cases {
        assert_eq!(
            attribute.case_exact(),
            case_exact,
            "caseExact of {attribute:?}"
        );
        assert_eq!(attribute.path(), path, "path of {attribute:?}");
        let schema_rule = USER_RESOURCE
            .resolve(path)
            .expect("indexed path resolves")
            .leaf()
            .case_exact;
        assert_eq!(
            schema_rule, case_exact,
            "index rule follows the schema for {path}"
        );
    }
}

fn attribute_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "userName",
        "title",
        "emails.value",
        "name.givenName",
        "active",
        "meta.lastModified",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "$ref",
    ])
    .prop_map(str::to_owned)
}

fn sub_attribute_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["value", "type", "primary", "display"]).prop_map(str::to_owned)
}

fn literal() -> impl Strategy<Value = FilterValue> {
    prop_oneof![
        any::<String>().prop_map(FilterValue::String),
        any::<i64>().prop_map(|n| FilterValue::Number(n.into())),
        (-1.0e6f64..1.0e6).prop_map(|f| FilterValue::Number(
            serde_json::Number::from_f64(f).expect("finite float")
        )),
        any::<bool>().prop_map(FilterValue::Boolean),
        Just(FilterValue::Null),
    ]
}

fn leaf(names: BoxedStrategy<String>) -> impl Strategy<Value = Filter> {
    let op = prop::sample::select(CompareOp::ALL.to_vec());
    prop_oneof![
        (names.clone(), op, literal()).prop_map(|(name, op, value)| Filter::Compare {
            path: parser::parse_attr_path(&name).expect("generated path is valid"),
            op,
            value,
        }),
        names.prop_map(|name| Filter::Present(
            parser::parse_attr_path(&name).expect("generated path is valid")
        )),
    ]
}

fn combine(inner: impl Strategy<Value = Filter> + Clone) -> impl Strategy<Value = Filter> {
    prop_oneof![
        prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
        prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
        inner.prop_map(|f| Filter::Not(Box::new(f))),
    ]
}

fn element_filter() -> impl Strategy<Value = Filter> {
    leaf(sub_attribute_name().boxed()).prop_recursive(3, 12, 3, combine)
}

fn generated_filter() -> impl Strategy<Value = Filter> {
    let value_path = (
        prop::sample::select(vec!["emails", "members", "addresses"]),
        element_filter(),
    )
        .prop_map(|(name, filter)| Filter::ValuePath {
            path: AttrPath::simple(name),
            filter: Box::new(filter),
        });
    prop_oneof![leaf(attribute_name().boxed()), value_path].prop_recursive(4, 24, 3, combine)
}

#[test]
fn canonical_form_over_limit_rejected() {
    // Each bare `b` gains two quotes when printed: 3,996 bytes sent,
    // 4,796 printed.
    let bare_words = vec!["a eq b"; 400].join(" or ");
    assert!(bare_words.len() <= MAX_FILTER_LENGTH, "test input length");
    // A raw control character in a bare word prints as a 6-byte escape.
    let control_characters = format!("a eq b{}", "\u{1}".repeat(1000));
    assert!(
        control_characters.len() <= MAX_FILTER_LENGTH,
        "test input length"
    );
    for (case, input) in [
        ("bare words", bare_words),
        ("control characters", control_characters),
    ] {
        let error = parse_filter(&input).expect_err(case);
        assert_eq!(
            error.scim_type,
            Some(ScimType::InvalidFilter),
            "scimType for {case}"
        );
        assert!(
            error.detail.contains("quoted and escaped"),
            "detail for {case}: {}",
            error.detail
        );
    }
}

#[test]
fn filter_near_limit_reprints() {
    let input = vec!["a eq b"; 340].join(" or ");
    let filter = parse(&input);
    let printed = filter.to_string();
    assert!(printed.len() <= MAX_FILTER_LENGTH, "printed length");
    assert_eq!(parse(&printed), filter, "reparse of the printed filter");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parser_never_panics(input in any::<String>()) {
        let _ = parse_filter(&input);
        let _ = parse_value_filter(&input);
    }

    #[test]
    fn parser_never_panics_on_filter_like_input(
        input in r#"([a-z.:$\[\]() "\\]|eq|and|or|not|pr|true|null|[0-9]){0,60}"#
    ) {
        if let Ok(filter) = parse_filter(&input) {
            let again = parse_filter(&filter.to_string()).expect("printed filter parses");
            prop_assert_eq!(again, filter, "reparse of {:?}", input);
        }
    }

    #[test]
    fn printing_is_stable(filter in generated_filter()) {
        let printed = filter.to_string();
        let parsed = parse_filter(&printed).expect("printed filter parses");
        prop_assert_eq!(parsed.to_string(), printed.clone(), "printing of {:?}", printed);
        let reparsed = parse_filter(&parsed.to_string()).expect("reprinted filter parses");
        prop_assert_eq!(reparsed, parsed, "tree of {:?}", printed);
    }

    #[test]
    fn evaluation_never_panics(filter in generated_filter()) {
        let _ = matches(&filter, &user(), &USER_RESOURCE);
        let _ = filter.validate(&USER_RESOURCE);
        let _ = index_lookup(&filter, &USER_RESOURCE);
    }
}
