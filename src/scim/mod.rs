//! SCIM 2.0 provisioning (RFC 7643 and RFC 7644), free of Pingora, HTTP and
//! storage: pure functions over `serde_json::Value` documents as Okta and
//! Microsoft Entra send them.
//!
//! # Layout
//!
//! | module | owns |
//! | --- | --- |
//! | [`error`] | [`ScimError`](error::ScimError) and the RFC 7644 §3.12 error body |
//! | [`schema`] | attribute definitions of User, Enterprise User and Group, path lookup, the `/Schemas` representation |
//! | [`filter`] | the RFC 7644 §3.4.2.2 filter parser, printer and evaluator, and the equality lookup a directory index can serve |
//! | [`patch`] | the RFC 7644 §3.5.2 PATCH engine, with the Okta and Entra dialects, and value coercion for POST and PUT bodies |
//! | [`attributes`] | `attributes` and `excludedAttributes` projection (RFC 7644 §3.9) |
//! | [`revoke`] | the [`SessionRevoker`](revoke::SessionRevoker) through which deactivating or deleting a User ends its sessions |
//!
//! The protocol handler (request routing, the `Directory` calls, list
//! responses and pagination) and the discovery endpoints
//! (`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`) are built on
//! these modules in `handler.rs` and `discovery.rs` beside them.

pub mod attributes;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod handler;
pub mod patch;
pub mod resources;
pub mod revoke;
pub mod schema;
