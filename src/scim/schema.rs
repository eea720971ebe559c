//! The schema registry. It defines the attributes of the core User schema,
//! the Enterprise User extension and the core Group schema (RFC 7643 §4),
//! and the common attributes `id`, `externalId` and `meta` (RFC 7643 §3.1).
//! It resolves attribute paths and renders the RFC 7643 §7 representation
//! served at `/Schemas`.
//!
//! Attribute names are case-insensitive (RFC 7643 §2.1), so every lookup here
//! ignores ASCII case and returns the definition, whose `name` is the
//! canonical spelling that documents are written with.

use serde_json::{json, Map, Value};

/// The URN of the core User schema (RFC 7643 §4.1).
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The URN of the Enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The URN of the core Group schema (RFC 7643 §4.2).
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The `schemas` URN of a schema representation (RFC 7643 §7).
pub const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The data type of an attribute (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    /// A sequence of Unicode characters.
    String,
    /// `true` or `false`.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
    /// An `xsd:dateTime` string, such as `2011-05-13T04:42:34Z`.
    DateTime,
    /// A URI referring to a resource.
    Reference,
    /// An object whose members are the sub-attributes.
    Complex,
    /// Base64-encoded binary data.
    Binary,
}

impl AttributeType {
    /// Returns the keyword used for `type` in a schema representation.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::String => "string",
            AttributeType::Boolean => "boolean",
            AttributeType::Decimal => "decimal",
            AttributeType::Integer => "integer",
            AttributeType::DateTime => "dateTime",
            AttributeType::Reference => "reference",
            AttributeType::Complex => "complex",
            AttributeType::Binary => "binary",
        }
    }
}

/// When and whether a client may change an attribute (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Only the service provider sets the value.
    ReadOnly,
    /// The client may set and change the value.
    ReadWrite,
    /// The client may set the value once, and never change it afterwards.
    Immutable,
    /// The client may set the value, but it is never returned.
    WriteOnly,
}

impl Mutability {
    /// Returns the keyword used for `mutability` in a schema representation.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute is included in a response (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Always, whatever `attributes` and `excludedAttributes` request.
    Always,
    /// Never, such as `password`.
    Never,
    /// Unless excluded by `excludedAttributes` or left out of `attributes`.
    Default,
    /// Only when named in `attributes`.
    Request,
}

impl Returned {
    /// Returns the keyword used for `returned` in a schema representation.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// The uniqueness rule the service provider enforces for a value
/// (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// No uniqueness is enforced.
    None,
    /// Unique among the resources of this service provider.
    Server,
    /// Globally unique.
    Global,
}

impl Uniqueness {
    /// Returns the keyword used for `uniqueness` in a schema representation.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// The definition of one attribute or sub-attribute with its
/// characteristics (RFC 7643 §2.2 and §7).
#[derive(Debug)]
pub struct AttributeDef {
    /// The canonical name, such as `userName` or `$ref`.
    pub name: &'static str,
    /// The data type, written `type` in the schema representation.
    pub kind: AttributeType,
    /// A human-readable description for the schema representation.
    pub description: &'static str,
    /// Whether the value is an array.
    pub multi_valued: bool,
    /// Whether a resource must have a value.
    pub required: bool,
    /// Whether string comparisons respect case.
    pub case_exact: bool,
    /// When a client may change the value.
    pub mutability: Mutability,
    /// When the value is included in responses.
    pub returned: Returned,
    /// The uniqueness rule.
    pub uniqueness: Uniqueness,
    /// Suggested values, such as `work` and `home` for `emails.type`.
    pub canonical_values: &'static [&'static str],
    /// Resource types a `reference` may point to, such as `User`.
    pub reference_types: &'static [&'static str],
    /// The sub-attributes of a `complex` attribute, empty otherwise.
    pub sub_attributes: &'static [AttributeDef],
}

impl AttributeDef {
    const fn new(name: &'static str, kind: AttributeType, description: &'static str) -> Self {
        AttributeDef {
            name,
            kind,
            description,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
        }
    }

    const fn string(name: &'static str, description: &'static str) -> Self {
        AttributeDef::new(name, AttributeType::String, description)
    }

    const fn complex(
        name: &'static str,
        description: &'static str,
        sub_attributes: &'static [AttributeDef],
    ) -> Self {
        let mut def = AttributeDef::new(name, AttributeType::Complex, description);
        def.sub_attributes = sub_attributes;
        def
    }

    const fn reference(
        name: &'static str,
        description: &'static str,
        reference_types: &'static [&'static str],
    ) -> Self {
        let mut def = AttributeDef::new(name, AttributeType::Reference, description);
        def.reference_types = reference_types;
        def
    }

    const fn multi_valued(mut self) -> Self {
        self.multi_valued = true;
        self
    }

    const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    const fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }

    const fn mutability(mut self, mutability: Mutability) -> Self {
        self.mutability = mutability;
        self
    }

    const fn returned(mut self, returned: Returned) -> Self {
        self.returned = returned;
        self
    }

    const fn uniqueness(mut self, uniqueness: Uniqueness) -> Self {
        self.uniqueness = uniqueness;
        self
    }

    const fn canonical_values(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }

    /// Finds a sub-attribute by name, ignoring case.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|sub| sub.name.eq_ignore_ascii_case(name))
    }

    /// Tells whether the value is an object with sub-attributes.
    pub fn is_complex(&self) -> bool {
        self.kind == AttributeType::Complex
    }
}

/// A schema: a URN and the attributes it defines (RFC 7643 §7).
#[derive(Debug)]
pub struct Schema {
    /// The schema URN, such as [`USER_URN`].
    pub id: &'static str,
    /// A human-readable name, such as `User`.
    pub name: &'static str,
    /// A human-readable description.
    pub description: &'static str,
    /// The top-level attributes, without the common attributes.
    pub attributes: &'static [AttributeDef],
}

impl Schema {
    /// Finds a top-level attribute by name, ignoring case.
    pub fn attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
    }
}

// Sub-attributes shared by the multi-valued attributes of RFC 7643 §2.4.

const fn display_sub() -> AttributeDef {
    AttributeDef::string("display", "A label for display purposes.")
}

const fn type_sub(canonical_values: &'static [&'static str]) -> AttributeDef {
    AttributeDef::string("type", "The kind of value, such as 'work' or 'home'.")
        .canonical_values(canonical_values)
}

const fn primary_sub() -> AttributeDef {
    AttributeDef::new(
        "primary",
        AttributeType::Boolean,
        "Whether this is the preferred value. At most one value is primary.",
    )
}

static NAME_SUBS: [AttributeDef; 6] = [
    AttributeDef::string("formatted", "The full name, formatted for display."),
    AttributeDef::string(
        "familyName",
        "The family name, or last name in most Western languages.",
    ),
    AttributeDef::string(
        "givenName",
        "The given name, or first name in most Western languages.",
    ),
    AttributeDef::string("middleName", "The middle name or names."),
    AttributeDef::string("honorificPrefix", "The honorific prefix, such as 'Ms.'."),
    AttributeDef::string("honorificSuffix", "The honorific suffix, such as 'III'."),
];

static EMAIL_SUBS: [AttributeDef; 4] = [
    AttributeDef::string("value", "The email address."),
    display_sub(),
    type_sub(&["work", "home", "other"]),
    primary_sub(),
];

static PHONE_NUMBER_SUBS: [AttributeDef; 4] = [
    AttributeDef::string("value", "The phone number, preferably as a 'tel' URI."),
    display_sub(),
    type_sub(&["work", "home", "mobile", "fax", "pager", "other"]),
    primary_sub(),
];

static IM_SUBS: [AttributeDef; 4] = [
    AttributeDef::string("value", "The instant messaging address."),
    display_sub(),
    type_sub(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    primary_sub(),
];

static PHOTO_SUBS: [AttributeDef; 4] = [
    AttributeDef::reference("value", "The URL of the image.", &["external"]),
    display_sub(),
    type_sub(&["photo", "thumbnail"]),
    primary_sub(),
];

static ADDRESS_SUBS: [AttributeDef; 8] = [
    AttributeDef::string(
        "formatted",
        "The full address, formatted for display or a mailing label.",
    ),
    AttributeDef::string(
        "streetAddress",
        "The street address: house number, street name, PO box and further lines.",
    ),
    AttributeDef::string("locality", "The city or locality."),
    AttributeDef::string("region", "The state or region."),
    AttributeDef::string("postalCode", "The postal code."),
    AttributeDef::string(
        "country",
        "The country as an ISO 3166-1 alpha-2 code, such as 'US'.",
    ),
    type_sub(&["work", "home", "other"]),
    primary_sub(),
];

static USER_GROUP_SUBS: [AttributeDef; 4] = [
    AttributeDef::string("value", "The id of the group.").mutability(Mutability::ReadOnly),
    AttributeDef::reference("$ref", "The URI of the Group resource.", &["User", "Group"])
        .mutability(Mutability::ReadOnly),
    AttributeDef::string("display", "The displayName of the group.")
        .mutability(Mutability::ReadOnly),
    AttributeDef::string(
        "type",
        "How the user belongs to the group: directly or through another group.",
    )
    .canonical_values(&["direct", "indirect"])
    .mutability(Mutability::ReadOnly),
];

static ENTITLEMENT_SUBS: [AttributeDef; 4] = [
    AttributeDef::string("value", "The entitlement."),
    display_sub(),
    type_sub(&[]),
    primary_sub(),
];

static ROLE_SUBS: [AttributeDef; 4] = [
    AttributeDef::string("value", "The role."),
    display_sub(),
    type_sub(&[]),
    primary_sub(),
];

static CERTIFICATE_SUBS: [AttributeDef; 4] = [
    AttributeDef::new(
        "value",
        AttributeType::Binary,
        "The DER-encoded certificate, base64-encoded.",
    )
    .case_exact(),
    display_sub(),
    type_sub(&[]),
    primary_sub(),
];

static USER_ATTRIBUTES: [AttributeDef; 21] = [
    AttributeDef::string(
        "userName",
        "The unique identifier the user signs in with, unique among all users.",
    )
    .required()
    .uniqueness(Uniqueness::Server),
    AttributeDef::complex(
        "name",
        "The components of the user's real name.",
        &NAME_SUBS,
    ),
    AttributeDef::string("displayName", "The name of the user as shown to end users."),
    AttributeDef::string("nickName", "The casual name of the user."),
    AttributeDef::reference(
        "profileUrl",
        "The URL of the user's online profile.",
        &["external"],
    ),
    AttributeDef::string("title", "The user's job title."),
    AttributeDef::string(
        "userType",
        "How the user relates to the organization, such as 'Employee' or 'Contractor'.",
    ),
    AttributeDef::string(
        "preferredLanguage",
        "The user's preferred language, in the format of the HTTP Accept-Language header.",
    ),
    AttributeDef::string(
        "locale",
        "The user's locale for dates, numbers and currencies, such as 'en-US'.",
    ),
    AttributeDef::string(
        "timezone",
        "The user's time zone in IANA Time Zone Database format, such as 'Europe/Paris'.",
    ),
    AttributeDef::new(
        "active",
        AttributeType::Boolean,
        "Whether the user's account is active.",
    ),
    AttributeDef::string(
        "password",
        "The user's clear-text password. It is accepted but never returned.",
    )
    .mutability(Mutability::WriteOnly)
    .returned(Returned::Never),
    AttributeDef::complex("emails", "Email addresses of the user.", &EMAIL_SUBS).multi_valued(),
    AttributeDef::complex(
        "phoneNumbers",
        "Phone numbers of the user.",
        &PHONE_NUMBER_SUBS,
    )
    .multi_valued(),
    AttributeDef::complex("ims", "Instant messaging addresses of the user.", &IM_SUBS)
        .multi_valued(),
    AttributeDef::complex("photos", "URLs of photos of the user.", &PHOTO_SUBS).multi_valued(),
    AttributeDef::complex(
        "addresses",
        "Physical mailing addresses of the user.",
        &ADDRESS_SUBS,
    )
    .multi_valued(),
    AttributeDef::complex(
        "groups",
        "Groups the user belongs to. Membership is changed through the Group resource.",
        &USER_GROUP_SUBS,
    )
    .multi_valued()
    .mutability(Mutability::ReadOnly),
    AttributeDef::complex(
        "entitlements",
        "Entitlements of the user.",
        &ENTITLEMENT_SUBS,
    )
    .multi_valued(),
    AttributeDef::complex("roles", "Roles of the user.", &ROLE_SUBS).multi_valued(),
    AttributeDef::complex(
        "x509Certificates",
        "X.509 certificates of the user.",
        &CERTIFICATE_SUBS,
    )
    .multi_valued(),
];

static MANAGER_SUBS: [AttributeDef; 3] = [
    AttributeDef::string("value", "The id of the manager's User resource."),
    AttributeDef::reference("$ref", "The URI of the manager's User resource.", &["User"]),
    AttributeDef::string("displayName", "The displayName of the manager.")
        .mutability(Mutability::ReadOnly),
];

static ENTERPRISE_USER_ATTRIBUTES: [AttributeDef; 6] = [
    AttributeDef::string(
        "employeeNumber",
        "The number or code the organization gives the user.",
    ),
    AttributeDef::string("costCenter", "The user's cost center."),
    AttributeDef::string("organization", "The user's organization."),
    AttributeDef::string("division", "The user's division."),
    AttributeDef::string("department", "The user's department."),
    AttributeDef::complex("manager", "The user's manager.", &MANAGER_SUBS),
];

static MEMBER_SUBS: [AttributeDef; 4] = [
    AttributeDef::string("value", "The id of the member's resource.")
        .mutability(Mutability::Immutable),
    AttributeDef::reference(
        "$ref",
        "The URI of the member's resource.",
        &["User", "Group"],
    )
    .mutability(Mutability::Immutable),
    AttributeDef::string("display", "The member's display name.").mutability(Mutability::Immutable),
    AttributeDef::string("type", "The kind of member.")
        .canonical_values(&["User", "Group"])
        .mutability(Mutability::Immutable),
];

// NOTE: RFC 7643 §4.2 calls `displayName` REQUIRED, while its own §8.7.1
// representation has `"required": false`. This registry follows §4.2,
// because Okta and Entra identify groups by `displayName`.
static GROUP_ATTRIBUTES: [AttributeDef; 2] = [
    AttributeDef::string(
        "displayName",
        "The name of the group as shown to end users.",
    )
    .required(),
    AttributeDef::complex("members", "Members of the group.", &MEMBER_SUBS).multi_valued(),
];

static META_SUBS: [AttributeDef; 5] = [
    AttributeDef::string(
        "resourceType",
        "The name of the resource type, such as 'User'.",
    )
    .case_exact()
    .mutability(Mutability::ReadOnly)
    .returned(Returned::Always),
    AttributeDef::new(
        "created",
        AttributeType::DateTime,
        "When the resource was created.",
    )
    .mutability(Mutability::ReadOnly),
    AttributeDef::new(
        "lastModified",
        AttributeType::DateTime,
        "When the resource was last changed.",
    )
    .mutability(Mutability::ReadOnly),
    AttributeDef::reference("location", "The URI of the resource.", &["uri"])
        .mutability(Mutability::ReadOnly),
    AttributeDef::string(
        "version",
        "The entity tag of the current version of the resource.",
    )
    .case_exact()
    .mutability(Mutability::ReadOnly),
];

/// The attributes every resource has whatever its schema (RFC 7643 §3.1).
/// They belong to no schema URN and are left out of `/Schemas`.
pub static COMMON_ATTRIBUTES: [AttributeDef; 3] = [
    AttributeDef::string(
        "id",
        "The service provider's stable, unique identifier of the resource.",
    )
    .case_exact()
    .mutability(Mutability::ReadOnly)
    .returned(Returned::Always)
    .uniqueness(Uniqueness::Server),
    AttributeDef::string(
        "externalId",
        "The provisioning client's identifier of the resource.",
    )
    .case_exact(),
    AttributeDef::complex(
        "meta",
        "Metadata that the service provider maintains.",
        &META_SUBS,
    )
    .mutability(Mutability::ReadOnly),
];

/// The core User schema (RFC 7643 §4.1).
pub static USER_SCHEMA: Schema = Schema {
    id: USER_URN,
    name: "User",
    description: "User Account",
    attributes: &USER_ATTRIBUTES,
};

/// The Enterprise User extension (RFC 7643 §4.3).
pub static ENTERPRISE_USER_SCHEMA: Schema = Schema {
    id: ENTERPRISE_USER_URN,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &ENTERPRISE_USER_ATTRIBUTES,
};

/// The core Group schema (RFC 7643 §4.2).
pub static GROUP_SCHEMA: Schema = Schema {
    id: GROUP_URN,
    name: "Group",
    description: "Group",
    attributes: &GROUP_ATTRIBUTES,
};

/// Every schema served at `/Schemas`, in the order they are listed.
pub static SCHEMAS: [&Schema; 3] = [&USER_SCHEMA, &ENTERPRISE_USER_SCHEMA, &GROUP_SCHEMA];

/// Finds a schema by URN, ignoring case.
pub fn find_schema(id: &str) -> Option<&'static Schema> {
    SCHEMAS
        .iter()
        .copied()
        .find(|schema| schema.id.eq_ignore_ascii_case(id))
}

/// An extension schema that a resource type may use (RFC 7643 §6).
#[derive(Debug)]
pub struct SchemaExtension {
    /// The extension schema.
    pub schema: &'static Schema,
    /// Whether every resource of the type must include the extension.
    pub required: bool,
}

/// A resource type: its endpoint, core schema and extensions (RFC 7643 §6).
/// Attribute paths of filters, PATCH and `attributes` resolve against it.
#[derive(Debug)]
pub struct ResourceType {
    /// The name, which is also the `id` of the resource type, such as `User`.
    pub name: &'static str,
    /// The endpoint relative to the SCIM base URL, such as `/Users`.
    pub endpoint: &'static str,
    /// A human-readable description.
    pub description: &'static str,
    /// The core schema.
    pub schema: &'static Schema,
    /// The extension schemas.
    pub extensions: &'static [SchemaExtension],
}

/// The User resource type, with the optional Enterprise User extension.
pub static USER_RESOURCE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER_SCHEMA,
    extensions: &[SchemaExtension {
        schema: &ENTERPRISE_USER_SCHEMA,
        required: false,
    }],
};

/// The Group resource type.
pub static GROUP_RESOURCE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP_SCHEMA,
    extensions: &[],
};

/// Every resource type served at `/ResourceTypes`.
pub static RESOURCE_TYPES: [&ResourceType; 2] = [&USER_RESOURCE, &GROUP_RESOURCE];

/// The location of an attribute in a resource document: the top level
/// (core and common attributes) or the object named by an extension URN.
#[derive(Debug, Clone, Copy)]
pub enum Container {
    /// The top level of the document.
    Root,
    /// The object stored under the extension schema's URN.
    Extension(&'static Schema),
}

impl PartialEq for Container {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Container::Root, Container::Root) => true,
            (Container::Extension(a), Container::Extension(b)) => a.id == b.id,
            _ => false,
        }
    }
}

impl Eq for Container {}

/// An attribute path resolved against a resource type: the container, the
/// attribute and, for `name.givenName` style paths, the sub-attribute.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttribute {
    /// The location of the attribute in a document.
    pub container: Container,
    /// The top-level attribute.
    pub attribute: &'static AttributeDef,
    /// The sub-attribute, when the path names one.
    pub sub_attribute: Option<&'static AttributeDef>,
}

impl ResolvedAttribute {
    /// Returns the definition the path ends at: the sub-attribute if there
    /// is one, else the attribute.
    pub fn leaf(&self) -> &'static AttributeDef {
        self.sub_attribute.unwrap_or(self.attribute)
    }

    /// Returns the object the attribute is stored in, if the document has it.
    pub fn container_of<'a>(&self, document: &'a Value) -> Option<&'a Map<String, Value>> {
        let root = document.as_object()?;
        match self.container {
            Container::Root => Some(root),
            Container::Extension(schema) => get_ignore_case(root, schema.id)?.as_object(),
        }
    }

    /// Returns the attribute's value in the document, ignoring the
    /// sub-attribute.
    pub fn attribute_value<'a>(&self, document: &'a Value) -> Option<&'a Value> {
        get_ignore_case(self.container_of(document)?, self.attribute.name)
    }
}

impl std::fmt::Display for ResolvedAttribute {
    /// Formats the canonical path, URN-qualified for extension attributes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Container::Extension(schema) = self.container {
            write!(f, "{}:", schema.id)?;
        }
        f.write_str(self.attribute.name)?;
        if let Some(sub) = self.sub_attribute {
            write!(f, ".{}", sub.name)?;
        }
        Ok(())
    }
}

impl ResourceType {
    /// Finds one of this type's extension schemas by its exact URN,
    /// ignoring case.
    pub fn extension(&self, urn: &str) -> Option<&'static Schema> {
        self.extensions
            .iter()
            .map(|extension| extension.schema)
            .find(|schema| schema.id.eq_ignore_ascii_case(urn))
    }

    /// Finds the core schema or an extension schema by URN, ignoring case.
    pub fn schema_by_urn(&self, urn: &str) -> Option<&'static Schema> {
        if self.schema.id.eq_ignore_ascii_case(urn) {
            return Some(self.schema);
        }
        self.extension(urn)
    }

    /// Finds a top-level attribute of the core schema or a common attribute,
    /// ignoring case. Extension attributes are not searched.
    pub fn root_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.schema.attribute(name).or_else(|| {
            COMMON_ATTRIBUTES
                .iter()
                .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
        })
    }

    /// Resolves an attribute path such as `emails.value`, `Name.GivenName`
    /// or `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
    ///
    /// A schema URN itself contains `:` and `.`, so the longest registered
    /// URN that prefixes the path (followed by `:`) is split off first. A
    /// path without a URN is looked up in the core schema and the common
    /// attributes, then in the extensions. Returns `None` for an unknown
    /// attribute or URN, and for a sub-attribute of a simple attribute.
    pub fn resolve(&self, path: &str) -> Option<ResolvedAttribute> {
        let (schema, rest) = match self.split_schema_urn(path) {
            Some((schema, rest)) => (Some(schema), rest),
            None if path.contains(':') => return None,
            None => (None, path),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        self.resolve_in(schema, name, sub)
    }

    /// Resolves a path given as its parts: an optional schema URN, the
    /// attribute name and an optional sub-attribute name.
    pub fn resolve_parts(
        &self,
        urn: Option<&str>,
        name: &str,
        sub: Option<&str>,
    ) -> Option<ResolvedAttribute> {
        let schema = match urn {
            Some(urn) => Some(self.schema_by_urn(urn)?),
            None => None,
        };
        self.resolve_in(schema, name, sub)
    }

    fn split_schema_urn<'p>(&self, path: &'p str) -> Option<(&'static Schema, &'p str)> {
        let candidates =
            std::iter::once(self.schema).chain(self.extensions.iter().map(|e| e.schema));
        let mut best: Option<(&'static Schema, &'p str)> = None;
        for schema in candidates {
            let id_len = schema.id.len();
            let prefix_matches = path
                .get(..id_len)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(schema.id));
            if !prefix_matches || path.as_bytes().get(id_len) != Some(&b':') {
                continue;
            }
            if best.is_none_or(|(current, _)| current.id.len() < id_len) {
                best = Some((schema, &path[id_len + 1..]));
            }
        }
        best
    }

    fn resolve_in(
        &self,
        schema: Option<&'static Schema>,
        name: &str,
        sub: Option<&str>,
    ) -> Option<ResolvedAttribute> {
        let (container, attribute) = match schema {
            Some(schema) if schema.id == self.schema.id => {
                (Container::Root, self.root_attribute(name)?)
            }
            Some(schema) => (Container::Extension(schema), schema.attribute(name)?),
            None => self.find_unqualified(name)?,
        };
        let sub_attribute = match sub {
            Some(sub) => Some(attribute.sub_attribute(sub)?),
            None => None,
        };
        Some(ResolvedAttribute {
            container,
            attribute,
            sub_attribute,
        })
    }

    fn find_unqualified(&self, name: &str) -> Option<(Container, &'static AttributeDef)> {
        if let Some(attribute) = self.root_attribute(name) {
            return Some((Container::Root, attribute));
        }
        self.extensions.iter().find_map(|extension| {
            let attribute = extension.schema.attribute(name)?;
            Some((Container::Extension(extension.schema), attribute))
        })
    }
}

/// Renders the RFC 7643 §7 representation of a schema, as served at
/// `/Schemas` and `/Schemas/{id}`. `base_url` is the external SCIM base URL
/// without a trailing slash, such as `https://sso.example.com/scim/v2`.
pub fn render_schema(schema: &Schema, base_url: &str) -> Value {
    let attributes: Vec<Value> = schema.attributes.iter().map(render_attribute).collect();
    json!({
        "schemas": [SCHEMA_URN],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": attributes,
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base_url.trim_end_matches('/'), schema.id),
        },
    })
}

/// Renders one attribute definition with all its characteristics.
/// `canonicalValues`, `referenceTypes` and `subAttributes` appear only when
/// they apply, because Entra rejects `null` members in discovery responses.
pub fn render_attribute(attribute: &AttributeDef) -> Value {
    let mut rendered = json!({
        "name": attribute.name,
        "type": attribute.kind.as_str(),
        "multiValued": attribute.multi_valued,
        "description": attribute.description,
        "required": attribute.required,
        "caseExact": attribute.case_exact,
        "mutability": attribute.mutability.as_str(),
        "returned": attribute.returned.as_str(),
        "uniqueness": attribute.uniqueness.as_str(),
    });
    let Some(object) = rendered.as_object_mut() else {
        return rendered;
    };

    if !attribute.canonical_values.is_empty() {
        object.insert(
            "canonicalValues".to_owned(),
            json!(attribute.canonical_values),
        );
    }
    if !attribute.reference_types.is_empty() {
        object.insert(
            "referenceTypes".to_owned(),
            json!(attribute.reference_types),
        );
    }
    if attribute.is_complex() {
        let subs: Vec<Value> = attribute
            .sub_attributes
            .iter()
            .map(render_attribute)
            .collect();
        object.insert("subAttributes".to_owned(), Value::Array(subs));
    }
    rendered
}

/// Returns the value of `key` in a JSON object, ignoring ASCII case. An
/// exact match wins over a match in another case.
pub fn get_ignore_case<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// Removes every member whose name equals `key` ignoring ASCII case and
/// returns the value of the exact match, or else of one other match.
pub fn take_ignore_case(object: &mut Map<String, Value>, key: &str) -> Option<Value> {
    let mut found = object.remove(key);
    let others: Vec<String> = object
        .keys()
        .filter(|candidate| candidate.eq_ignore_ascii_case(key))
        .cloned()
        .collect();
    for other in others {
        let value = object.remove(&other);
        if found.is_none() {
            found = value;
        }
    }
    found
}

#[cfg(test)]
mod tests;
