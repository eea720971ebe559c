//! The User and Group endpoints: create, read, list and search, replace,
//! PATCH and delete, with `meta`, ETags, pagination and attribute
//! selection.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::attributes::select_attributes;
use super::discovery::{LIST_RESPONSE_URN, MAX_RESULTS};
use super::error::ScimError;
use super::filter::{index_lookup, matches, parse_filter, Filter, IndexedAttribute};
use super::handler::{directory_error, ScimRequest, ScimResponse, ScimSettings};
use super::patch::{apply_patch, coerce_resource, PatchOpKind, PatchRequest};
use super::revoke::{is_deactivated, RevocationError, RevocationRetries, UserIdentifiers};
use super::schema::{AttributeDef, Mutability, ResourceType, GROUP_RESOURCE, USER_RESOURCE};
use crate::directory::{Directory, DirectoryError, Lookup, Page, ResourceKind, StoredResource};

/// `schemas` URN of a `POST .search` body.
const SEARCH_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// Page size when a list request gives no `count`.
const DEFAULT_COUNT: u64 = 100;

/// A PATCH that keeps losing the race against concurrent writers is retried
/// this many times before the client is asked to retry.
const PATCH_ATTEMPTS: u32 = 25;

/// Longest pause between two PATCH attempts. The pause grows from 1 ms and
/// is randomised, so writers racing for one group spread out.
const PATCH_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_millis(200);

/// The parameters of a list or search request.
#[derive(Debug, Default)]
struct ListParams {
    filter: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// The attribute selection parameters of a single-resource request.
#[derive(Debug, Default)]
struct Selection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

/// The resource endpoints over a directory.
pub struct Resources {
    directory: Arc<dyn Directory>,
    settings: ScimSettings,
    /// Ends the sessions of deactivated and deleted users, retrying in the
    /// background after a failure; `None` leaves sessions alone.
    revocations: Option<Arc<RevocationRetries>>,
}

fn resource_type(kind: ResourceKind) -> &'static ResourceType {
    match kind {
        ResourceKind::User => &USER_RESOURCE,
        ResourceKind::Group => &GROUP_RESOURCE,
    }
}

impl Resources {
    /// Creates the endpoints.
    pub fn new(directory: Arc<dyn Directory>, settings: ScimSettings) -> Self {
        Resources {
            directory,
            settings,
            revocations: None,
        }
    }

    /// Ends the sessions of every User that a request deactivates or
    /// deletes through `revocations`.
    pub fn set_session_revocations(&mut self, revocations: Arc<RevocationRetries>) {
        self.revocations = Some(revocations);
    }

    /// `POST /Users`, `POST /Groups`.
    pub async fn create(
        &self,
        kind: ResourceKind,
        request: &ScimRequest<'_>,
    ) -> Result<ScimResponse, ScimError> {
        let body = json_body(request)?;
        let document = prepare_document(kind, &body)?;
        let stored = self
            .directory
            .create(kind, document)
            .await
            .map_err(directory_error)?;
        tracing::info!(resource = %kind, id = %stored.id, "SCIM resource created");
        let rendered = self.render(&stored, true).await?;
        let selection = selection_from_query(request.query);
        Ok(self
            .respond_with(StatusCode::CREATED, kind, &rendered, &selection)
            .with_header(http::header::LOCATION, self.location(kind, &stored.id)))
    }

    /// `GET /Users/{id}`, `GET /Groups/{id}`.
    pub async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
        query: Option<&str>,
    ) -> Result<ScimResponse, ScimError> {
        let stored = self.load(kind, id).await?;
        let rendered = self.render(&stored, true).await?;
        Ok(self.respond_with(
            StatusCode::OK,
            kind,
            &rendered,
            &selection_from_query(query),
        ))
    }

    /// `PUT /Users/{id}`, `PUT /Groups/{id}`: replaces every attribute.
    pub async fn replace(
        &self,
        kind: ResourceKind,
        id: &str,
        request: &ScimRequest<'_>,
    ) -> Result<ScimResponse, ScimError> {
        let body = json_body(request)?;
        let document = prepare_document(kind, &body)?;
        let expected = self.expected_version(kind, id, request.headers).await?;
        let previous = self.previous_user(kind, id).await;
        let stored = self
            .directory
            .replace(kind, id, document, expected)
            .await
            .map_err(directory_error)?;
        tracing::info!(resource = %kind, id = %stored.id, "SCIM resource replaced");
        if kind == ResourceKind::User {
            self.end_sessions_after_write(&stored.id, previous.as_ref(), &stored.document)
                .await?;
        }
        let rendered = self.render(&stored, true).await?;
        Ok(self.respond_with(
            StatusCode::OK,
            kind,
            &rendered,
            &selection_from_query(request.query),
        ))
    }

    /// `PATCH /Users/{id}`, `PATCH /Groups/{id}`. The operations apply to the
    /// version read. When a concurrent write got there first, the directory
    /// rejects the result and the PATCH is applied again to the new version.
    pub async fn patch(
        &self,
        kind: ResourceKind,
        id: &str,
        request: &ScimRequest<'_>,
    ) -> Result<ScimResponse, ScimError> {
        let body = json_body(request)?;
        let operations = PatchRequest::from_json(&body)?;
        check_value_removals(&operations, resource_type(kind))?;
        let condition = if_match(request.headers)?;
        for attempt in 0..PATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(patch_backoff(attempt)).await;
            }
            let current = self.load(kind, id).await?;
            if !condition.allows(current.version) {
                return Err(precondition_failed());
            }
            let mut patched = apply_patch(&current.document, &operations, resource_type(kind))?;
            strip_unstored(&mut patched);
            match self
                .directory
                .replace(kind, id, patched, Some(current.version))
                .await
            {
                Ok(stored) => {
                    tracing::info!(resource = %kind, id = %stored.id, "SCIM resource patched");
                    if kind == ResourceKind::User {
                        self.end_sessions_after_write(
                            &stored.id,
                            Some(&current.document),
                            &stored.document,
                        )
                        .await?;
                    }
                    return self.patch_response(kind, &stored, request.query).await;
                }
                Err(DirectoryError::VersionMismatch) => continue,
                Err(error) => return Err(directory_error(error)),
            }
        }
        tracing::warn!(resource = %kind, id, "PATCH gave up after repeated concurrent writes");
        Err(ScimError::new(
            503,
            None,
            "the resource is being modified concurrently; retry the request",
        ))
    }

    async fn patch_response(
        &self,
        kind: ResourceKind,
        stored: &StoredResource,
        query: Option<&str>,
    ) -> Result<ScimResponse, ScimError> {
        if kind == ResourceKind::Group && self.settings.group_patch_status == StatusCode::NO_CONTENT
        {
            return Ok(ScimResponse::empty(StatusCode::NO_CONTENT)
                .with_header(http::header::ETAG, etag(stored.version)));
        }
        let rendered = self.render(stored, true).await?;
        Ok(self.respond_with(
            StatusCode::OK,
            kind,
            &rendered,
            &selection_from_query(query),
        ))
    }

    /// Returns the version a replace must expect under `If-Match`: the one
    /// named, or, for a list of tags, the current version once it is
    /// checked against the list.
    async fn expected_version(
        &self,
        kind: ResourceKind,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<Option<i64>, ScimError> {
        let condition = if_match(headers)?;
        if condition == IfMatch::Any {
            return Ok(None);
        }
        if let Some(version) = condition.single() {
            return Ok(Some(version));
        }
        let current = self.load(kind, id).await?.version;
        if condition.allows(current) {
            Ok(Some(current))
        } else {
            Err(precondition_failed())
        }
    }

    /// `DELETE /Users/{id}`, `DELETE /Groups/{id}`. A User's sessions end
    /// before it is deleted, and when they cannot, the User stays and the
    /// response is 503, so that the client's retry completes the job. They
    /// are ended once more after the delete, for a login that came in
    /// between.
    pub async fn delete(
        &self,
        kind: ResourceKind,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<ScimResponse, ScimError> {
        let condition = if_match(headers)?;
        if condition != IfMatch::Any && !condition.allows(self.load(kind, id).await?.version) {
            return Err(precondition_failed());
        }
        let previous = if kind == ResourceKind::User && self.revocations.is_some() {
            self.directory
                .get(kind, id)
                .await
                .map_err(directory_error)?
        } else {
            None
        };
        let user = previous
            .as_ref()
            .map(|previous| UserIdentifiers::from_document(&previous.document));
        if let Some(user) = &user {
            self.end_sessions(id, user)
                .await
                .map_err(|_| sessions_not_ended_before_delete())?;
        }
        let deleted = self
            .directory
            .delete(kind, id)
            .await
            .map_err(directory_error)?;
        if !deleted {
            return Err(not_found(kind, id));
        }
        tracing::info!(resource = %kind, id, "SCIM resource deleted");
        if let Some(user) = &user {
            // A failure here is queued for the background retry and does
            // not fail the request: the user is gone, so no new login can
            // start, and the first revocation ended the older sessions.
            let _ = self.end_sessions(id, user).await;
        }
        Ok(ScimResponse::empty(StatusCode::NO_CONTENT))
    }

    /// Reads the stored User that a PUT is about to deactivate, so that its
    /// sessions end even when the PUT also changes its identifiers. A failed
    /// read only loses the old identifiers.
    async fn previous_user(&self, kind: ResourceKind, id: &str) -> Option<Value> {
        if kind != ResourceKind::User || self.revocations.is_none() {
            return None;
        }
        match self.directory.get(kind, id).await {
            Ok(found) => found.map(|stored| stored.document),
            Err(error) => {
                tracing::warn!(error = %error, id, "cannot read the user before deactivating it");
                None
            }
        }
    }

    /// Ends sessions after a write to User `id`: every session of a User that
    /// is now deactivated, under its old and new identifiers, and for an
    /// active User the sessions under identifiers the write took away.
    /// Sessions are indexed by the claims of the login, so after a rename
    /// a later deactivation could no longer find them; the user signs in
    /// again under the new identifiers instead.
    ///
    /// A write that repeats `active: false` revokes again, so a client's
    /// retry of a failed deactivation completes it. A failure is a 503:
    /// the write is stored, and the background retry keeps trying.
    async fn end_sessions_after_write(
        &self,
        id: &str,
        previous: Option<&Value>,
        stored: &Value,
    ) -> Result<(), ScimError> {
        let before = previous.map_or_else(UserIdentifiers::default, UserIdentifiers::from_document);
        let after = UserIdentifiers::from_document(stored);
        if is_deactivated(stored) {
            let mut user = after;
            user.merge(before);
            return self
                .end_sessions(id, &user)
                .await
                .map_err(|_| sessions_not_ended_after_write());
        }
        let dropped = before.without(&after);
        if dropped.is_empty() {
            return Ok(());
        }
        tracing::info!(
            user_id = id,
            "a User's identifiers changed; ending the sessions under the old ones"
        );
        self.end_sessions(id, &dropped)
            .await
            .map_err(|_| sessions_not_ended_after_write())
    }

    /// Ends the sessions of the deactivated or deleted User `id`. A failure
    /// is logged and queued for the background retry, and returned so the
    /// request can report it.
    async fn end_sessions(&self, id: &str, user: &UserIdentifiers) -> Result<(), RevocationError> {
        let Some(revocations) = &self.revocations else {
            return Ok(());
        };
        match revocations.revoke(id, user).await {
            Ok(ended) => {
                tracing::info!(
                    user_id = id,
                    sessions = ended,
                    "sessions of a deprovisioned user ended"
                );
                Ok(())
            }
            Err(error) => {
                tracing::error!(
                    error = %error,
                    user_id = id,
                    "cannot end the sessions of a deprovisioned user; retrying in the background"
                );
                Err(error)
            }
        }
    }

    /// `GET /Users?filter=...&startIndex=...&count=...`.
    pub async fn list_from_query(
        &self,
        kind: ResourceKind,
        query: Option<&str>,
    ) -> Result<ScimResponse, ScimError> {
        let mut params = ListParams::default();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "filter" => params.filter = Some(value),
                "startIndex" => params.start_index = Some(parse_integer("startIndex", &value)?),
                "count" => params.count = Some(parse_integer("count", &value)?),
                "attributes" => params.attributes = Some(value),
                "excludedAttributes" => params.excluded_attributes = Some(value),
                _ => {}
            }
        }
        self.list(kind, params).await
    }

    /// `POST /Users/.search` with a `SearchRequest` body (RFC 7644 §3.4.3).
    pub async fn list_from_search(
        &self,
        kind: ResourceKind,
        request: &ScimRequest<'_>,
    ) -> Result<ScimResponse, ScimError> {
        let params = search_params(request)?;
        self.list(kind, params).await
    }

    /// `POST /.search`: searches Users and Groups together. A filter that
    /// names an attribute one of the types lacks matches nothing of that
    /// type.
    pub async fn search_all(&self, request: &ScimRequest<'_>) -> Result<ScimResponse, ScimError> {
        let params = search_params(request)?;
        let (start_index, count) = page_window(&params);
        let filter = match params.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(parse_filter(text)?),
        };
        if let Some(filter) = &filter {
            // A filter that fits neither type is a client error, as it is
            // for /Users and /Groups, not an empty result.
            if let Err(error) = filter.validate(resource_type(ResourceKind::User)) {
                if filter.validate(resource_type(ResourceKind::Group)).is_err() {
                    return Err(error);
                }
            }
        }
        let mut matched = Vec::new();
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let resources = match &filter {
                Some(filter) if filter.validate(resource_type(kind)).is_err() => continue,
                Some(filter) => self.filtered_page(kind, filter, 1, u64::MAX).await?.0,
                None => self.all_rendered(kind).await?,
            };
            matched.extend(resources.into_iter().map(|resource| (kind, resource)));
        }
        let total = matched.len() as u64;
        let selection = Selection {
            attributes: params.attributes,
            excluded_attributes: params.excluded_attributes,
        };
        let page: Vec<Value> = matched
            .iter()
            .skip((start_index - 1) as usize)
            .take(count as usize)
            .map(|(kind, resource)| self.select(*kind, resource, &selection))
            .collect();
        Ok(list_response(page, total, start_index))
    }

    async fn list(
        &self,
        kind: ResourceKind,
        params: ListParams,
    ) -> Result<ScimResponse, ScimError> {
        let (start_index, count) = page_window(&params);
        let filter = match params.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let filter = parse_filter(text)?;
                filter.validate(resource_type(kind))?;
                Some(filter)
            }
        };
        let (page, total) = match &filter {
            None => self.unfiltered_page(kind, start_index, count).await?,
            Some(filter) => self.filtered_page(kind, filter, start_index, count).await?,
        };
        let selection = Selection {
            attributes: params.attributes,
            excluded_attributes: params.excluded_attributes,
        };
        let resources: Vec<Value> = page
            .iter()
            .map(|resource| self.select(kind, resource, &selection))
            .collect();
        Ok(list_response(resources, total, start_index))
    }

    /// Renders one page of every resource of a kind, paged by the directory.
    async fn unfiltered_page(
        &self,
        kind: ResourceKind,
        start_index: u64,
        count: u64,
    ) -> Result<(Vec<Value>, u64), ScimError> {
        let listing = self
            .directory
            .list(
                kind,
                None,
                Some(Page {
                    offset: start_index - 1,
                    limit: count,
                }),
            )
            .await
            .map_err(directory_error)?;
        let page = self.render_all(&listing.resources, true).await?;
        Ok((page, listing.total))
    }

    /// Renders every resource of a kind.
    async fn all_rendered(&self, kind: ResourceKind) -> Result<Vec<Value>, ScimError> {
        let listing = self
            .directory
            .list(kind, None, None)
            .await
            .map_err(directory_error)?;
        self.render_all(&listing.resources, true).await
    }

    /// Renders one page of the resources matching `filter`. An equality on an indexed
    /// attribute narrows the candidates in the directory; the whole filter
    /// is then evaluated on each candidate.
    async fn filtered_page(
        &self,
        kind: ResourceKind,
        filter: &Filter,
        start_index: u64,
        count: u64,
    ) -> Result<(Vec<Value>, u64), ScimError> {
        let lookup = index_lookup(filter, resource_type(kind)).and_then(|found| {
            Some(match found.attribute {
                IndexedAttribute::Id => Lookup::Id(found.value),
                IndexedAttribute::UserName => Lookup::UserName(found.value),
                // The index holds no User's empty externalId, so a filter on
                // it reads every User.
                IndexedAttribute::ExternalId
                    if kind == ResourceKind::User && found.value.is_empty() =>
                {
                    return None;
                }
                IndexedAttribute::ExternalId => Lookup::ExternalId(found.value),
                IndexedAttribute::DisplayName => Lookup::DisplayName(found.value),
                IndexedAttribute::EmailValue => Lookup::Email(found.value),
            })
        });
        // NOTE: a filter without such an equality scans every resource of
        // the kind. Okta and Entra always send one.
        let candidates = self
            .directory
            .list(kind, lookup.as_ref(), None)
            .await
            .map_err(directory_error)?;
        let needs_groups = filter.to_string().to_ascii_lowercase().contains("groups");
        let rendered = self.render_all(&candidates.resources, needs_groups).await?;
        let matched: Vec<(&StoredResource, Value)> = candidates
            .resources
            .iter()
            .zip(rendered)
            .filter(|(_, representation)| matches(filter, representation, resource_type(kind)))
            .collect();
        let total = matched.len() as u64;
        let window = matched
            .into_iter()
            .skip((start_index - 1) as usize)
            .take(count as usize);
        let page = if needs_groups {
            window.map(|(_, representation)| representation).collect()
        } else {
            let stored: Vec<&StoredResource> = window.map(|(stored, _)| stored).collect();
            self.render_all(stored, true).await?
        };
        Ok((page, total))
    }

    async fn load(&self, kind: ResourceKind, id: &str) -> Result<StoredResource, ScimError> {
        self.directory
            .get(kind, id)
            .await
            .map_err(directory_error)?
            .ok_or_else(|| not_found(kind, id))
    }

    /// Builds the SCIM representation of a stored resource: `id`,
    /// `schemas`, `meta` and, for Users when `with_groups`, the read-only
    /// `groups`.
    async fn render(&self, stored: &StoredResource, with_groups: bool) -> Result<Value, ScimError> {
        let groups = if stored.kind == ResourceKind::User && with_groups {
            self.directory
                .groups_of_user(&stored.id)
                .await
                .map_err(directory_error)?
        } else {
            Vec::new()
        };
        Ok(self.representation(stored, &groups))
    }

    /// Renders several resources, fetching the `groups` of all the Users
    /// among them in one directory call when `with_groups`.
    async fn render_all<'a>(
        &self,
        resources: impl IntoIterator<Item = &'a StoredResource>,
        with_groups: bool,
    ) -> Result<Vec<Value>, ScimError> {
        let resources: Vec<&StoredResource> = resources.into_iter().collect();
        let user_ids: Vec<String> = resources
            .iter()
            .filter(|stored| stored.kind == ResourceKind::User)
            .map(|stored| stored.id.clone())
            .collect();
        let mut groups = if with_groups && !user_ids.is_empty() {
            self.directory
                .groups_of_users(&user_ids)
                .await
                .map_err(directory_error)?
        } else {
            HashMap::new()
        };
        Ok(resources
            .into_iter()
            .map(|stored| {
                let of_user = groups.remove(&stored.id).unwrap_or_default();
                self.representation(stored, &of_user)
            })
            .collect())
    }

    /// Builds the representation from a stored resource and the groups of a
    /// User (empty for a Group, or when not wanted).
    fn representation(&self, stored: &StoredResource, groups: &[(String, String)]) -> Value {
        let mut document = match &stored.document {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        strip_unstored_map(&mut document);
        document.insert("id".to_owned(), Value::String(stored.id.clone()));
        let core = resource_type(stored.kind).schema.id;
        let schemas = document.entry("schemas").or_insert_with(|| json!([core]));
        if !schemas
            .as_array()
            .is_some_and(|list| list.iter().any(|s| s == core))
        {
            *schemas = json!([core]);
        }
        if stored.kind == ResourceKind::Group {
            self.add_member_refs(&mut document);
        }
        if !groups.is_empty() {
            let rendered: Vec<Value> = groups
                .iter()
                .map(|(id, name)| {
                    json!({
                        "value": id,
                        "display": name,
                        "$ref": self.location(ResourceKind::Group, id),
                        "type": "direct",
                    })
                })
                .collect();
            document.insert("groups".to_owned(), Value::Array(rendered));
        }
        document.insert(
            "meta".to_owned(),
            json!({
                "resourceType": stored.kind.as_str(),
                "created": stored.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "lastModified": stored.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "version": etag(stored.version),
                "location": self.location(stored.kind, &stored.id),
            }),
        );
        Value::Object(document)
    }

    /// Adds `$ref` to each member, which the directory does not store.
    fn add_member_refs(&self, document: &mut Map<String, Value>) {
        let Some(Value::Array(members)) = document.get_mut("members") else {
            return;
        };
        for member in members.iter_mut() {
            let Some(object) = member.as_object_mut() else {
                continue;
            };
            if let Some(id) = object.get("value").and_then(Value::as_str) {
                let location = self.location(ResourceKind::User, id);
                object.insert("$ref".to_owned(), Value::String(location));
            }
        }
    }

    fn select(&self, kind: ResourceKind, resource: &Value, selection: &Selection) -> Value {
        select_attributes(
            resource,
            resource_type(kind),
            selection.attributes.as_deref(),
            selection.excluded_attributes.as_deref(),
        )
    }

    fn respond_with(
        &self,
        status: StatusCode,
        kind: ResourceKind,
        rendered: &Value,
        selection: &Selection,
    ) -> ScimResponse {
        let version = rendered["meta"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ScimResponse::json(status, &self.select(kind, rendered, selection))
            .with_header(http::header::ETAG, version)
    }

    fn location(&self, kind: ResourceKind, id: &str) -> String {
        let endpoint = resource_type(kind).endpoint;
        format!("{}{endpoint}/{id}", self.settings.base_url)
    }
}

/// Reads a `SearchRequest` body (RFC 7644 §3.4.3).
fn search_params(request: &ScimRequest<'_>) -> Result<ListParams, ScimError> {
    let body = json_body(request)?;
    let Some(object) = body.as_object() else {
        return Err(ScimError::invalid_syntax(
            "the search request must be a JSON object",
        ));
    };
    let has_schema = object
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| schemas.iter().any(|s| s == SEARCH_REQUEST_URN));
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "the search request must list {SEARCH_REQUEST_URN} in schemas"
        )));
    }
    Ok(ListParams {
        filter: optional_string(object, "filter")?,
        start_index: optional_integer(object, "startIndex")?,
        count: optional_integer(object, "count")?,
        attributes: optional_list(object, "attributes")?,
        excluded_attributes: optional_list(object, "excludedAttributes")?,
    })
}

/// Returns the 1-based start index and page size of a list request:
/// `startIndex` below 1 means 1, a negative `count` means 0, and `count` is
/// capped at [`MAX_RESULTS`] (RFC 7644 §3.4.2.4).
fn page_window(params: &ListParams) -> (u64, u64) {
    let start_index = params.start_index.unwrap_or(1).max(1) as u64;
    let count = params
        .count
        .map_or(DEFAULT_COUNT, |count| count.max(0) as u64)
        .min(MAX_RESULTS);
    (start_index, count)
}

fn list_response(resources: Vec<Value>, total: u64, start_index: u64) -> ScimResponse {
    let body = json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
        "Resources": resources,
    });
    ScimResponse::json(StatusCode::OK, &body)
}

/// Rejects `remove` of the `value` sub-attribute of every element of a
/// multi-valued attribute (`members.value`, `emails.value`): it would leave
/// elements without a value, which for `members` silently empties the
/// group. Elements are removed with a filter instead, such as
/// `members[value eq "id"]`.
fn check_value_removals(
    request: &PatchRequest,
    resource_type: &ResourceType,
) -> Result<(), ScimError> {
    for operation in &request.operations {
        let Some(path) = operation.path.as_deref() else {
            continue;
        };
        if operation.op != PatchOpKind::Remove || path.contains('[') {
            continue;
        }
        let Some(resolved) = resource_type.resolve(path) else {
            continue;
        };
        let removes_values = resolved.attribute.multi_valued
            && resolved
                .sub_attribute
                .is_some_and(|sub| sub.name == "value");
        if removes_values {
            return Err(ScimError::invalid_path(format!(
                "remove {path} would leave elements without a value; remove elements with a filter such as {}[value eq \"…\"]",
                resolved.attribute.name
            )));
        }
    }
    Ok(())
}

/// Returns a random pause before PATCH attempt `attempt` (1-based retries).
fn patch_backoff(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let ceiling = std::time::Duration::from_millis(1 << attempt.min(8)).min(PATCH_MAX_BACKOFF);
    let millis = rand::thread_rng().gen_range(0..=ceiling.as_millis() as u64);
    std::time::Duration::from_millis(millis)
}

/// Parses and coerces a POST or PUT body into the document to store.
fn prepare_document(kind: ResourceKind, body: &Value) -> Result<Value, ScimError> {
    check_lists(body, resource_type(kind))?;
    let mut document = coerce_resource(body, resource_type(kind))?;
    strip_unstored(&mut document);
    let required = match kind {
        ResourceKind::User => "userName",
        ResourceKind::Group => "displayName",
    };
    let present = document
        .get(required)
        .and_then(Value::as_str)
        .is_some_and(|value| !value.trim().is_empty());
    if !present {
        return Err(ScimError::invalid_value(format!(
            "{required} is required and must be a non-empty string"
        )));
    }
    Ok(document)
}

/// Rejects a single value where a POST or PUT body needs a list: every
/// multi-valued attribute is a JSON array or null (RFC 7643 §2.4), at the top
/// level and inside extension objects. PATCH values stay lenient, because
/// clients send one member as an object there. A readOnly attribute such as
/// a User's `groups` is ignored whatever its value (RFC 7644 §3.3).
fn check_lists(body: &Value, resource_type: &ResourceType) -> Result<(), ScimError> {
    let Some(object) = body.as_object() else {
        return Ok(());
    };
    let needs_list = |attribute: &AttributeDef| {
        attribute.multi_valued && attribute.mutability != Mutability::ReadOnly
    };
    for (key, value) in object {
        if let Some(extension) = resource_type.extension(key) {
            if let Some(members) = value.as_object() {
                for (name, value) in members {
                    let multi = extension.attribute(name).is_some_and(needs_list);
                    require_list(multi, name, value)?;
                }
            }
            continue;
        }
        let multi = resource_type.resolve(key).is_some_and(|resolved| {
            resolved.sub_attribute.is_none() && needs_list(resolved.attribute)
        });
        require_list(multi, key, value)?;
    }
    Ok(())
}

fn require_list(multi_valued: bool, name: &str, value: &Value) -> Result<(), ScimError> {
    if multi_valued && !matches!(value, Value::Array(_) | Value::Null) {
        return Err(ScimError::invalid_value(format!(
            "{name} is multi-valued and must be a JSON array"
        )));
    }
    Ok(())
}

/// Removes what the server computes or never keeps: `id`, `meta`, a User's
/// `groups`, and `password`, which portcullis does not use for sign-in.
fn strip_unstored(document: &mut Value) {
    if let Value::Object(map) = document {
        strip_unstored_map(map);
    }
}

fn strip_unstored_map(map: &mut Map<String, Value>) {
    for name in ["id", "meta", "groups", "password"] {
        map.remove(name);
    }
}

fn json_body(request: &ScimRequest<'_>) -> Result<Value, ScimError> {
    check_content_type(request.headers)?;
    if request.body.is_empty() {
        return Err(ScimError::invalid_syntax("the request body is empty"));
    }
    serde_json::from_slice(request.body)
        .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))
}

/// Accepts `application/scim+json` and `application/json`, with or without
/// parameters, and a missing `Content-Type`.
fn check_content_type(headers: &HeaderMap) -> Result<(), ScimError> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/scim+json" || media_type == "application/json" {
        Ok(())
    } else {
        Err(ScimError::new(
            415,
            None,
            format!("unsupported Content-Type {media_type:?}; send application/scim+json"),
        ))
    }
}

/// The versions an `If-Match` header allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IfMatch {
    /// No header, or `*`: any version.
    Any,
    /// A list of weak or strong tags of versions (RFC 9110 §13.1.1).
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Tells whether `version` satisfies the condition.
    fn allows(&self, version: i64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&version),
        }
    }

    /// The one version a replace may expect, when the condition names one.
    fn single(&self) -> Option<i64> {
        match self {
            IfMatch::Versions(versions) if versions.len() == 1 => Some(versions[0]),
            _ => None,
        }
    }
}

/// Reads `If-Match`: `*`, or a comma-separated list of `W/"<version>"` or
/// `"<version>"` tags. A malformed header is a 400.
fn if_match(headers: &HeaderMap) -> Result<IfMatch, ScimError> {
    let Some(value) = headers.get(http::header::IF_MATCH) else {
        return Ok(IfMatch::Any);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(IfMatch::Any);
    }
    text.split(',')
        .map(|tag| {
            let tag = tag.trim();
            let opaque = tag.strip_prefix("W/").unwrap_or(tag);
            opaque
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .and_then(|inner| inner.parse::<i64>().ok())
                .ok_or_else(|| {
                    ScimError::invalid_value(format!(
                        "If-Match {text:?} is not a list of entity tags such as W/\"3\""
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(IfMatch::Versions)
}

/// Builds the 503 of a DELETE whose revocation failed, so the User was kept.
fn sessions_not_ended_before_delete() -> ScimError {
    ScimError::new(
        503,
        None,
        "the user's sessions could not be ended because the session store is unavailable, so the user was not deleted; retry the request",
    )
}

/// Builds the 503 of a stored PUT or PATCH whose revocation failed.
fn sessions_not_ended_after_write() -> ScimError {
    ScimError::new(
        503,
        None,
        "the change was stored, but the user's sessions could not be ended yet because the session store is unavailable; retry the request",
    )
}

fn precondition_failed() -> ScimError {
    directory_error(DirectoryError::VersionMismatch)
}

/// Formats a version as a weak entity tag.
fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

fn not_found(kind: ResourceKind, id: &str) -> ScimError {
    ScimError::not_found(format!("{kind} {id:?} not found"))
}

fn selection_from_query(query: Option<&str>) -> Selection {
    let mut selection = Selection::default();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "attributes" => selection.attributes = Some(value.into_owned()),
            "excludedAttributes" => selection.excluded_attributes = Some(value.into_owned()),
            _ => {}
        }
    }
    selection
}

fn parse_integer(name: &str, value: &str) -> Result<i64, ScimError> {
    value
        .trim()
        .parse()
        .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer, got {value:?}")))
}

fn optional_string(object: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
    }
}

fn optional_integer(object: &Map<String, Value>, name: &str) -> Result<Option<i64>, ScimError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
        Some(_) => Err(ScimError::invalid_value(format!(
            "{name} must be an integer"
        ))),
    }
}

/// Reads `attributes` or `excludedAttributes` of a search request, a list of
/// strings, as the comma-separated form of the query parameter.
fn optional_list(object: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must list strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|names| Some(names.join(","))),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(ScimError::invalid_value(format!(
            "{name} must be a list of strings"
        ))),
    }
}
