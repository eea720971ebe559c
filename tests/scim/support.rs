//! The fixture of the in-process SCIM tests: a [`ScimService`] over a fresh
//! directory of either backend, an API token, and helpers that send
//! requests and read the responses as JSON.

use std::str::FromStr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use portcullis::directory::postgres::PostgresDirectory;
use portcullis::directory::sqlite::SqliteDirectory;
use portcullis::directory::{Directory, ResourceKind, StoredResource};
use portcullis::scim::handler::{ScimRequest, ScimService, ScimSettings};
use portcullis::tokens::TokenRecord;
use serde_json::{json, Value};

use crate::postgres::PostgresSchema;

/// The external SCIM base URL the service is configured with. Every
/// `meta.location` and `Location` must start with it.
pub const BASE_URL: &str = "https://sso.example.test/scim/v2";

/// `schemas` URN of a list response.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// `schemas` URN of an error response.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// `schemas` URN of a PATCH request.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// `schemas` URN of a `.search` request.
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The core User schema.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The Enterprise User extension.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The directory backend a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `SqliteDirectory` on `sqlite::memory:`.
    Sqlite,
    /// `PostgresDirectory` in a fresh schema of the test server.
    Postgres,
}

/// Expands each scenario `async fn name(backend: Backend)` into a module
/// `name` with one test per backend, `name::sqlite` and `name::postgres`.
macro_rules! both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$scenario($crate::support::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$scenario($crate::support::Backend::Postgres).await;
                }
            }
        )*
    };
}
pub(crate) use both_backends;

/// A response, with the body parsed as JSON (`Value::Null` when empty).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers the handler set.
    pub headers: Vec<(HeaderName, String)>,
    /// The parsed body.
    pub body: Value,
    /// The body as sent, to compare two responses byte for byte.
    pub raw: Vec<u8>,
    /// Whether the response has a body at all.
    pub has_body: bool,
}

impl Reply {
    /// Returns the value of header `name`, if set.
    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Asserts the status, printing the body when it differs.
    pub fn expect_status(&self, expected: u16, request: &str) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "{request}: expected status {expected}, got body {}",
            self.body
        );
        self
    }

    /// Asserts that this is a SCIM error with status `status` (as a
    /// string), an optional `scimType`, and a non-empty `detail`.
    pub fn expect_error(&self, status: u16, scim_type: Option<&str>, request: &str) {
        self.expect_status(status, request);
        assert_eq!(
            self.body["schemas"],
            json!([ERROR]),
            "{request}: expected the Error schema in {}",
            self.body
        );
        assert_eq!(
            self.body["status"],
            json!(status.to_string()),
            "{request}: expected status as a string in {}",
            self.body
        );
        if let Some(scim_type) = scim_type {
            assert_eq!(
                self.body["scimType"],
                json!(scim_type),
                "{request}: expected scimType {scim_type} in {}",
                self.body
            );
        }
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.is_empty(),
            "{request}: expected a detail message in {}",
            self.body
        );
    }

    /// Returns the resource `id` of a successful response.
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an id in {}", self.body))
            .to_owned()
    }
}

/// A request to send: method, target (path below the base, with query),
/// headers and body.
pub struct Call {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Call {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_str(name).expect("valid header name"),
            HeaderValue::from_str(value).expect("valid header value"),
        );
        self
    }

    /// Removes every value of a header.
    pub fn without(mut self, name: &str) -> Self {
        self.headers.remove(name);
        self
    }

    /// Sets a raw body.
    pub fn raw_body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    /// Sets a JSON body.
    pub fn json(self, body: &Value) -> Self {
        self.raw_body(body.to_string().as_bytes())
    }

    /// Describes the request for assertion messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// The SCIM service over a fresh directory, with one valid token.
pub struct Fixture {
    /// The service under test.
    pub service: ScimService,
    /// The directory behind it, to check its state directly.
    pub directory: Arc<dyn Directory>,
    /// The plaintext of a valid API token.
    pub token: String,
    _schema: Option<PostgresSchema>,
}

impl Fixture {
    /// Opens a fresh directory with the default settings: Group PATCH
    /// returns 204, bodies up to 64 KiB.
    pub async fn new(backend: Backend) -> Fixture {
        Fixture::with_group_patch_status(backend, StatusCode::NO_CONTENT).await
    }

    /// Opens a fresh directory whose successful Group PATCHes return `status`.
    pub async fn with_group_patch_status(backend: Backend, status: StatusCode) -> Fixture {
        Fixture::with_settings(backend, status, 64 * 1024).await
    }

    /// Opens a fresh directory that accepts request bodies of up to
    /// `max_body_bytes`.
    pub async fn with_max_body_bytes(backend: Backend, max_body_bytes: usize) -> Fixture {
        Fixture::with_settings(backend, StatusCode::NO_CONTENT, max_body_bytes).await
    }

    async fn with_settings(
        backend: Backend,
        group_patch_status: StatusCode,
        max_body_bytes: usize,
    ) -> Fixture {
        let (directory, schema): (Arc<dyn Directory>, _) = match backend {
            Backend::Sqlite => {
                let directory = SqliteDirectory::open("sqlite::memory:")
                    .await
                    .expect("an in-memory SQLite directory opens");
                (Arc::new(directory), None)
            }
            Backend::Postgres => {
                let schema = PostgresSchema::create().await;
                let directory = PostgresDirectory::connect_with(schema.options())
                    .await
                    .expect("the PostgreSQL directory opens in a fresh schema");
                (Arc::new(directory), Some(schema))
            }
        };
        let (plaintext, record) = TokenRecord::generate("scim-tests");
        directory
            .insert_token(&record)
            .await
            .expect("the test token is stored");
        let settings = ScimSettings {
            base_url: BASE_URL.to_owned(),
            group_patch_status,
            max_body_bytes,
        };
        Fixture {
            service: ScimService::new(directory.clone(), settings),
            directory,
            token: plaintext.expose_secret().to_owned(),
            _schema: schema,
        }
    }

    /// Starts a request with `Authorization: Bearer <token>` and
    /// `Content-Type: application/scim+json`.
    pub fn call(&self, method: Method, target: &str) -> Call {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", self.token)).expect("token is ASCII"),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
        Call {
            method,
            target: target.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// Sends a request to the service.
    pub async fn send(&self, call: Call) -> Reply {
        let (path, query) = match call.target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (call.target.as_str(), None),
        };
        let request = ScimRequest {
            method: &call.method,
            path,
            query,
            headers: &call.headers,
            body: &call.body,
        };
        let response = self.service.handle(&request).await;
        let has_body = response.body.is_some();
        let body = match &response.body {
            None => Value::Null,
            Some(bytes) if bytes.is_empty() => Value::Null,
            Some(bytes) => serde_json::from_slice(bytes).unwrap_or_else(|error| {
                panic!(
                    "{}: the response body is not JSON ({error}): {}",
                    call.describe(),
                    String::from_utf8_lossy(bytes)
                )
            }),
        };
        Reply {
            status: response.status,
            headers: response.headers,
            body,
            raw: response
                .body
                .map(|bytes| bytes.to_vec())
                .unwrap_or_default(),
            has_body,
        }
    }

    /// `GET target`.
    pub async fn get(&self, target: &str) -> Reply {
        self.send(self.call(Method::GET, target)).await
    }

    /// `DELETE target`.
    pub async fn delete(&self, target: &str) -> Reply {
        self.send(self.call(Method::DELETE, target)).await
    }

    /// `POST target` with a JSON body.
    pub async fn post(&self, target: &str, body: &Value) -> Reply {
        self.send(self.call(Method::POST, target).json(body)).await
    }

    /// `PUT target` with a JSON body.
    pub async fn put(&self, target: &str, body: &Value) -> Reply {
        self.send(self.call(Method::PUT, target).json(body)).await
    }

    /// `PATCH target` with a `PatchOp` body holding `operations`.
    pub async fn patch(&self, target: &str, operations: Value) -> Reply {
        let body = json!({ "schemas": [PATCH_OP], "Operations": operations });
        self.send(self.call(Method::PATCH, target).json(&body))
            .await
    }

    /// Creates a user through `POST /Users` and returns its id.
    pub async fn create_user(&self, body: Value) -> String {
        let reply = self.post("/Users", &body).await;
        reply.expect_status(201, &format!("POST /Users {body}"));
        reply.id()
    }

    /// Creates a minimal active user named `user_name` and returns its id.
    pub async fn user(&self, user_name: &str) -> String {
        self.create_user(json!({
            "schemas": [USER],
            "userName": user_name,
            "active": true,
        }))
        .await
    }

    /// Creates a group with `members` and returns its id.
    pub async fn group(&self, display_name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
        let body = json!({ "schemas": [GROUP], "displayName": display_name, "members": members });
        let reply = self.post("/Groups", &body).await;
        reply.expect_status(201, &format!("POST /Groups {body}"));
        reply.id()
    }

    /// Returns the member ids of group `id`, sorted, read over SCIM.
    pub async fn member_ids(&self, id: &str) -> Vec<String> {
        let reply = self.get(&format!("/Groups/{id}")).await;
        reply.expect_status(200, &format!("GET /Groups/{id}"));
        let mut ids: Vec<String> = reply.body["members"]
            .as_array()
            .map(|members| {
                members
                    .iter()
                    .filter_map(|member| member["value"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Returns every User and Group as stored, to compare the directory
    /// before and after a failed request.
    pub async fn snapshot(&self) -> Vec<StoredResource> {
        let mut resources = Vec::new();
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let listing = self
                .directory
                .list(kind, None, None)
                .await
                .expect("the directory lists resources");
            resources.extend(listing.resources);
        }
        resources
    }
}

/// Returns `?filter=<filter>` with the filter percent-encoded, followed by
/// `extra` (`&count=…`), for a list URL.
pub fn filter_query(filter: &str, extra: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    format!("?filter={encoded}{extra}")
}

/// Returns the ids of the `Resources` of a list response, in order.
pub fn resource_ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .filter_map(|resource| resource["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Returns `ids` sorted, for comparing sets of ids.
pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
    ids.sort();
    ids
}

/// Asserts the shape of a list response: the schema, integer counts, and
/// `itemsPerPage` equal to the number of resources returned.
pub fn assert_list(list: &Value, total: u64, start_index: u64, request: &str) {
    assert_eq!(
        list["schemas"],
        json!([LIST_RESPONSE]),
        "{request}: expected the ListResponse schema in {list}"
    );
    for field in ["totalResults", "itemsPerPage", "startIndex"] {
        assert!(
            list[field].is_u64(),
            "{request}: expected {field} to be a JSON integer in {list}"
        );
    }
    assert_eq!(
        list["totalResults"],
        json!(total),
        "{request}: totalResults in {list}"
    );
    assert_eq!(
        list["startIndex"],
        json!(start_index),
        "{request}: startIndex in {list}"
    );
    let returned = list["Resources"].as_array().map_or(0, Vec::len);
    assert_eq!(
        list["itemsPerPage"],
        json!(returned),
        "{request}: itemsPerPage must count the resources returned in {list}"
    );
}
