//! The upstream's JSON echo of the request it received.

use reqwest::{Response, StatusCode};
use serde::Deserialize;

/// What the dashboard received: `upstream.mjs` replies with this to every
/// request under `/echo/` and to requests that do not ask for HTML.
#[derive(Debug, Deserialize)]
pub struct Echo {
    /// Request method.
    pub method: String,
    /// Request target, with the query string.
    pub path: String,
    /// Headers in the order, spelling and number they arrived in.
    pub headers: Vec<(String, String)>,
    /// Length of the request body.
    pub body_bytes: u64,
    /// Hex SHA-256 of the request body.
    pub body_sha256: String,
}

impl Echo {
    /// Reads the echo from `response`, which must be a 200 from the upstream.
    pub async fn read(response: Response) -> Echo {
        let status = response.status();
        let url = response.url().clone();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::OK,
            "expected the upstream's echo for {url}, got body:\n{body}"
        );
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("expected a JSON echo for {url} ({e}), got:\n{body}"))
    }

    /// Returns every value of header `name`, compared without regard to case.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Returns the only value of header `name`, and panics when the header is
    /// missing or repeated.
    pub fn single(&self, name: &str) -> &str {
        let values = self.values(name);
        assert_eq!(
            values.len(),
            1,
            "expected exactly one {name} header at the upstream, got {values:?} in {:?}",
            self.headers
        );
        values[0]
    }
}
