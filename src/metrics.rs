//! Prometheus metrics: one process-wide [`Registry`] of portcullis's own,
//! rendered in the text format at `/metrics` on the admin listener. On
//! Linux the registry also contains the prometheus crate's process collector,
//! which reads `/proc/self` on each scrape for the standard `process_*`
//! families.
//!
//! Every label takes values from a small fixed set (route classes, status
//! classes, outcome names), never a path or a user id, so the number of
//! series stays bounded. Recording is an atomic add on a series that
//! `with_label_values` finds by hashing a few static strings.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Histogram buckets in seconds, from 1 ms (a local redirect) to 30 s (a
/// slow dashboard page or a provider call near its timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The metric families, all registered in one `Registry`.
pub struct Metrics {
    registry: Registry,
    /// Requests on the proxy listener by `route` and `status` class.
    pub requests: IntCounterVec,
    /// Request duration on the proxy listener by `route`.
    pub request_duration: HistogramVec,
    /// Time from choosing the dashboard peer to the end of its response, by
    /// `status` class.
    pub upstream_duration: HistogramVec,
    /// Finished logins by `outcome` (`success`, `denied`, `error`) and `reason`.
    pub logins: IntCounterVec,
    /// Logins not started because the client address had used up its
    /// allowance (`session.login_starts_per_minute`); each got 429.
    pub login_starts_rate_limited: IntCounter,
    /// Sessions created by a login.
    pub sessions_created: IntCounter,
    /// Sessions ended before they expired, by `reason`: `deleted` (sign-out,
    /// a new login, a rejected refresh) or `revoked` (per user).
    pub sessions_ended: IntCounterVec,
    /// Live sessions in the session store, counted across every replica
    /// (see [`crate::session::tally`]).
    pub sessions_active: IntGauge,
    /// Records in the in-memory session store (sessions, login flows,
    /// locks), or 0 with Redis.
    pub memory_store_entries: IntGauge,
    /// Login flows that the full in-memory store dropped before they expired,
    /// to make room for another record.
    pub memory_store_evictions: IntCounter,
    /// Client connections open on the proxy listener.
    pub connections_open: IntGauge,
    /// `server.max_connections`, 0 when there is no cap.
    pub connections_max: IntGauge,
    /// Client connections closed at once because the cap was reached.
    pub connections_rejected: IntCounter,
    /// Client connections closed because a request head took too long.
    pub request_header_timeouts: IntCounter,
    /// Session-store operations by `operation`.
    pub store_operations: IntCounterVec,
    /// Failed session-store operations by `operation`.
    pub store_errors: IntCounterVec,
    /// Token refreshes by `outcome`.
    pub token_refreshes: IntCounterVec,
    /// SCIM requests by `resource`, `method` and `status` class.
    pub scim_operations: IntCounterVec,
    /// Revocations by `source`: `deprovisioning` (a User deactivated or
    /// deleted through SCIM) ends all of a user's sessions, and
    /// `backchannel_logout` ends those a logout token names. The CLI's
    /// `user` commands run in their own process and are not counted here.
    pub revocations: IntCounterVec,
    /// Background retries of deprovisioning revocations that failed, by
    /// `outcome`: `success`, `error` (retried again later) and `dropped`
    /// (the retry queue was full).
    pub revocation_retries: IntCounterVec,
    /// Users whose sessions a failed deprovisioning revocation left alive
    /// and that the background retry has not ended yet.
    pub revocation_retries_pending: IntGauge,
    /// Fetches of the provider's discovery document with its JWKS (one
    /// fetch loads both), by `outcome`.
    pub provider_fetches: IntCounterVec,
    /// Always 1, with the crate version as the `version` label, so a query
    /// can tell which release each replica runs.
    pub build_info: IntGauge,
}

impl Metrics {
    /// Creates every family and registers it in a new registry.
    fn new() -> Self {
        let registry = Registry::new();
        let metrics = Metrics {
            requests: counter_vec(
                &registry,
                "portcullis_requests_total",
                "Requests on the proxy listener by route class and status class.",
                &["route", "status"],
            ),
            request_duration: histogram_vec(
                &registry,
                "portcullis_request_duration_seconds",
                "Time from the request's arrival to the end of its response, by route class.",
                &["route"],
            ),
            upstream_duration: histogram_vec(
                &registry,
                "portcullis_upstream_duration_seconds",
                "Time from connecting to the dashboard to the end of its response, by status class.",
                &["status"],
            ),
            logins: counter_vec(
                &registry,
                "portcullis_logins_total",
                "Finished logins by outcome and reason.",
                &["outcome", "reason"],
            ),
            login_starts_rate_limited: counter(
                &registry,
                "portcullis_login_starts_rate_limited_total",
                "Logins not started, with 429, because the client address started too many (session.login_starts_per_minute).",
            ),
            sessions_created: counter(
                &registry,
                "portcullis_sessions_created_total",
                "Sessions created by a login.",
            ),
            sessions_ended: counter_vec(
                &registry,
                "portcullis_sessions_ended_total",
                "Sessions ended before they expired, by reason.",
                &["reason"],
            ),
            sessions_active: gauge(
                &registry,
                "portcullis_sessions_active",
                "Live sessions of all replicas together, counted in the session store every 15 s by default; aggregate replicas with max(), not sum().",
            ),
            memory_store_entries: gauge(
                &registry,
                "portcullis_memory_store_entries",
                "Records (sessions, login flows, locks) in the in-memory session store, or 0 with Redis.",
            ),
            memory_store_evictions: counter(
                &registry,
                "portcullis_memory_store_evictions_total",
                "Login flows the full in-memory session store dropped, oldest first, to make room.",
            ),
            connections_open: gauge(
                &registry,
                "portcullis_connections_open",
                "Client connections open on the proxy listener.",
            ),
            connections_max: gauge(
                &registry,
                "portcullis_connections_max",
                "The cap on client connections (server.max_connections), 0 when there is none.",
            ),
            connections_rejected: counter(
                &registry,
                "portcullis_connections_rejected_total",
                "Client connections closed at once because server.max_connections were open.",
            ),
            request_header_timeouts: counter(
                &registry,
                "portcullis_request_header_timeouts_total",
                "Client connections closed because a request head was not complete within server.request_header_timeout.",
            ),
            store_operations: counter_vec(
                &registry,
                "portcullis_session_store_operations_total",
                "Session-store operations by operation.",
                &["operation"],
            ),
            store_errors: counter_vec(
                &registry,
                "portcullis_session_store_errors_total",
                "Failed session-store operations by operation.",
                &["operation"],
            ),
            token_refreshes: counter_vec(
                &registry,
                "portcullis_token_refreshes_total",
                "Token refreshes by outcome.",
                &["outcome"],
            ),
            scim_operations: counter_vec(
                &registry,
                "portcullis_scim_operations_total",
                "SCIM requests by resource, method and status class.",
                &["resource", "method", "status"],
            ),
            revocations: counter_vec(
                &registry,
                "portcullis_revocations_total",
                "Session revocations by source.",
                &["source"],
            ),
            revocation_retries: counter_vec(
                &registry,
                "portcullis_revocation_retries_total",
                "Background retries of failed deprovisioning revocations, by outcome.",
                &["outcome"],
            ),
            revocation_retries_pending: gauge(
                &registry,
                "portcullis_revocation_retries_pending",
                "Users whose sessions a failed deprovisioning revocation left alive, waiting for a retry.",
            ),
            provider_fetches: counter_vec(
                &registry,
                "portcullis_provider_fetches_total",
                "Fetches of the OpenID provider's discovery document and JWKS, by outcome.",
                &["outcome"],
            ),
            build_info: build_info(&registry),
            registry,
        };
        register_process_collector(&metrics.registry);
        metrics.initialise_series();
        metrics
    }

    /// Creates the series a dashboard alerts on, at 0, so a rate over them
    /// exists before the first event.
    fn initialise_series(&self) {
        for outcome in ["success", "rejected", "error"] {
            self.token_refreshes.with_label_values(&[outcome]);
        }
        for outcome in ["success", "error"] {
            self.provider_fetches.with_label_values(&[outcome]);
        }
        self.logins.with_label_values(&["success", "none"]);
        for operation in [
            "create", "load", "update", "delete", "revoke", "track", "count",
        ] {
            self.store_operations.with_label_values(&[operation]);
            self.store_errors.with_label_values(&[operation]);
        }
        for reason in ["deleted", "revoked"] {
            self.sessions_ended.with_label_values(&[reason]);
        }
        for source in ["deprovisioning", "backchannel_logout"] {
            self.revocations.with_label_values(&[source]);
        }
        for outcome in ["success", "error", "dropped"] {
            self.revocation_retries.with_label_values(&[outcome]);
        }
    }

    /// Renders every family in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %error, "failed to encode metrics");
        }
        String::from_utf8(buffer).expect("the text encoder writes UTF-8")
    }

    /// Records one finished request on the proxy listener.
    pub fn record_request(&self, route: &str, status: u16, duration: Duration) {
        self.requests
            .with_label_values(&[route, status_class(status)])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(duration.as_secs_f64());
    }

    /// Records a request forwarded to the dashboard. `duration` runs from
    /// choosing the upstream peer, before the connection, to the end of the
    /// response.
    pub fn record_upstream(&self, status: u16, duration: Duration) {
        self.upstream_duration
            .with_label_values(&[status_class(status)])
            .observe(duration.as_secs_f64());
    }

    /// Records one SCIM request. `subpath` is the normalised path below
    /// `/scim/v2`.
    pub fn record_scim(&self, subpath: &str, method: &http::Method, status: u16) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            _ => "other",
        };
        self.scim_operations
            .with_label_values(&[scim_resource(subpath), method, status_class(status)])
            .inc();
    }

    /// Counts one session-store operation and, when it failed, one error.
    pub fn record_store<T, E>(&self, operation: &str, result: &Result<T, E>) {
        self.store_operations.with_label_values(&[operation]).inc();
        if result.is_err() {
            self.store_errors.with_label_values(&[operation]).inc();
        }
    }
}

/// Returns the process-wide metrics, created on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Returns the status class label (`1xx` to `5xx`) of a status code, or
/// `none` when no response was written.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// Returns the SCIM resource label of a path below `/scim/v2`: one of the
/// endpoints of RFC 7644 section 3.2, or `other`.
pub fn scim_resource(subpath: &str) -> &'static str {
    let first = subpath.trim_start_matches('/').split('/').next();
    match first.map(str::to_ascii_lowercase).as_deref() {
        Some("users") => "Users",
        Some("groups") => "Groups",
        Some("serviceproviderconfig") => "ServiceProviderConfig",
        Some("schemas") => "Schemas",
        Some("resourcetypes") => "ResourceTypes",
        Some("bulk") => "Bulk",
        Some("me") => "Me",
        Some("") | None => "root",
        Some(_) => "other",
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("static name and help are valid");
    registry
        .register(Box::new(counter.clone()))
        .expect("each family is registered once");
    counter
}

/// Creates `portcullis_build_info`, set to 1 with the crate version as a
/// constant label.
fn build_info(registry: &Registry) -> IntGauge {
    let options = Opts::new(
        "portcullis_build_info",
        "Always 1; the version label is the portcullis release.",
    )
    .const_label("version", env!("CARGO_PKG_VERSION"));
    let gauge = IntGauge::with_opts(options).expect("static name, help and label are valid");
    registry
        .register(Box::new(gauge.clone()))
        .expect("each family is registered once");
    gauge.set(1);
    gauge
}

/// Registers the collector of the standard `process_*` families: CPU time,
/// resident and virtual memory, open and maximum file descriptors, threads
/// and the start time. It reads `/proc`, so it exists on Linux only.
fn register_process_collector(registry: &Registry) {
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("the process families are registered once");
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("static name and help are valid");
    registry
        .register(Box::new(gauge.clone()))
        .expect("each family is registered once");
    gauge
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("static name and labels are valid");
    registry
        .register(Box::new(counter.clone()))
        .expect("each family is registered once");
    counter
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let options = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let histogram = HistogramVec::new(options, labels).expect("static name and labels are valid");
    registry
        .register(Box::new(histogram.clone()))
        .expect("each family is registered once");
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_every_family() {
        let metrics = Metrics::new();
        // A vector family is rendered only once it has a series.
        metrics.record_request("upstream", 200, Duration::from_millis(3));
        metrics.record_upstream(200, Duration::from_millis(2));
        metrics
            .logins
            .with_label_values(&["denied", "policy"])
            .inc();
        metrics.sessions_ended.with_label_values(&["deleted"]).inc();
        metrics.record_store("get", &Err::<(), ()>(()));
        metrics.record_scim("/Users/7", &http::Method::PATCH, 204);
        metrics
            .revocations
            .with_label_values(&["deprovisioning"])
            .inc();

        let text = metrics.render();
        let families = [
            "portcullis_requests_total",
            "portcullis_request_duration_seconds",
            "portcullis_upstream_duration_seconds",
            "portcullis_logins_total",
            "portcullis_login_starts_rate_limited_total",
            "portcullis_sessions_created_total",
            "portcullis_sessions_ended_total",
            "portcullis_sessions_active",
            "portcullis_memory_store_entries",
            "portcullis_memory_store_evictions_total",
            "portcullis_connections_open",
            "portcullis_connections_max",
            "portcullis_connections_rejected_total",
            "portcullis_request_header_timeouts_total",
            "portcullis_session_store_operations_total",
            "portcullis_session_store_errors_total",
            "portcullis_token_refreshes_total",
            "portcullis_scim_operations_total",
            "portcullis_revocations_total",
            "portcullis_revocation_retries_total",
            "portcullis_revocation_retries_pending",
            "portcullis_provider_fetches_total",
            "portcullis_build_info",
        ];
        for family in families {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "family {family} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn build_info_carries_version() {
        let text = Metrics::new().render();
        let line = format!(
            "portcullis_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&line), "line {line} missing from:\n{text}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn render_lists_process_families() {
        let text = Metrics::new().render();
        let families = [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_threads", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ];
        for (family, kind) in families {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "family {family} of type {kind} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn render_shows_labels_and_values() {
        let metrics = Metrics::new();
        metrics.record_request("scim", 404, Duration::from_millis(1));
        metrics.record_scim("/users", &http::Method::GET, 200);
        let text = metrics.render();
        let lines = [
            r#"portcullis_requests_total{route="scim",status="4xx"} 1"#,
            r#"portcullis_scim_operations_total{method="GET",resource="Users",status="2xx"} 1"#,
            r#"portcullis_request_duration_seconds_count{route="scim"} 1"#,
        ];
        for line in lines {
            assert!(text.contains(line), "line {line} missing from:\n{text}");
        }
    }

    #[test]
    fn status_classes() {
        let cases = [
            (0, "none"),
            (101, "1xx"),
            (200, "2xx"),
            (302, "3xx"),
            (401, "4xx"),
            (599, "5xx"),
            (600, "none"),
        ];
        for (status, expected) in cases {
            assert_eq!(status_class(status), expected, "status {status}");
        }
    }

    #[test]
    fn scim_resources() {
        let cases = [
            ("", "root"),
            ("/", "root"),
            ("/Users", "Users"),
            ("/users/42", "Users"),
            ("/Groups/g/extra", "Groups"),
            ("/ServiceProviderConfig", "ServiceProviderConfig"),
            ("/Schemas/urn:x", "Schemas"),
            ("/ResourceTypes", "ResourceTypes"),
            ("/Bulk", "Bulk"),
            ("/Me", "Me"),
            ("/alice@example.com", "other"),
        ];
        for (subpath, expected) in cases {
            assert_eq!(scim_resource(subpath), expected, "subpath {subpath:?}");
        }
    }
}
