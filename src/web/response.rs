//! Responses that portcullis writes itself: redirects, readable pages for
//! browsers and JSON errors for API clients.
//!
//! Pingora skips `response_filter` for responses written in
//! `request_filter`, so every local response carries its own security
//! headers here, and always a `Content-Length`, so the client connection can
//! be reused.

use bytes::Bytes;
use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The security headers that [`LocalResponse::to_header`] sets by default
/// and that a response may set to another value.
const SECURITY_HEADERS: [&str; 4] = [
    "cache-control",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
];

/// A response portcullis writes without calling the upstream.
#[derive(Debug, Clone)]
pub struct LocalResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers besides `Content-Type` and `Content-Length`; `Set-Cookie` may
    /// repeat. One of the security headers listed here replaces the default
    /// value of [`LocalResponse::to_header`].
    pub headers: Vec<(http::HeaderName, String)>,
    /// `Content-Type` of the body, if there is one.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Bytes,
}

impl LocalResponse {
    /// Builds a `302 Found` to `location`.
    pub fn redirect(location: &str) -> Self {
        LocalResponse {
            status: StatusCode::FOUND,
            headers: vec![(http::header::LOCATION, location.to_owned())],
            content_type: None,
            body: Bytes::new(),
        }
    }

    /// Builds a response with a JSON body.
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        LocalResponse {
            status,
            headers: Vec::new(),
            content_type: Some("application/json"),
            body: Bytes::from(body.to_string()),
        }
    }

    /// Builds a JSON error for API clients: `{"error": code, "message": message}`.
    pub fn json_error(status: StatusCode, code: &str, message: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "error": code, "message": message }),
        )
    }

    /// Builds a small readable HTML page for browsers, with an optional link.
    pub fn page(
        status: StatusCode,
        title: &str,
        message: &str,
        link: Option<(&str, &str)>,
    ) -> Self {
        LocalResponse {
            status,
            headers: Vec::new(),
            content_type: Some("text/html; charset=utf-8"),
            body: Bytes::from(render_page(title, message, link)),
        }
    }

    /// Builds a page whose one button POSTs an empty form to `action`, a
    /// path on this origin.
    pub fn form_page(
        status: StatusCode,
        title: &str,
        message: &str,
        action: &str,
        button: &str,
    ) -> Self {
        let form = format!(
            "<form method=\"post\" action=\"{}\"><button type=\"submit\">{}</button></form>",
            escape_html(action),
            escape_html(button)
        );
        LocalResponse {
            status,
            headers: Vec::new(),
            content_type: Some("text/html; charset=utf-8"),
            body: Bytes::from(render_html(title, message, &form)),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: http::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a `Set-Cookie` header; several may be added.
    pub fn with_cookie(self, set_cookie: String) -> Self {
        self.with_header(http::header::SET_COOKIE, set_cookie)
    }

    /// Converts the response into a Pingora response header.
    pub fn to_header(&self) -> pingora::Result<ResponseHeader> {
        let mut header = ResponseHeader::build(self.status, Some(self.headers.len() + 8))?;
        header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        header.insert_header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
        // The URL of a callback carries the authorization code; it must not
        // leak to other sites through Referer.
        header.insert_header(http::header::REFERRER_POLICY, "no-referrer")?;
        header.insert_header(http::header::X_FRAME_OPTIONS, "DENY")?;
        if let Some(content_type) = self.content_type {
            header.insert_header(http::header::CONTENT_TYPE, content_type)?;
            header.insert_header(
                http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            )?;
        }
        header.insert_header(http::header::CONTENT_LENGTH, self.body.len().to_string())?;
        for (name, value) in &self.headers {
            if SECURITY_HEADERS.contains(&name.as_str()) {
                header.insert_header(name.clone(), value.as_str())?;
            } else {
                header.append_header(name.clone(), value.as_str())?;
            }
        }
        Ok(header)
    }

    /// Writes the response to the client.
    pub async fn send(self, session: &mut Session) -> pingora::Result<()> {
        let header = self.to_header()?;
        let is_head = session.req_header().method == http::Method::HEAD;
        let body_follows = !self.body.is_empty() && !is_head;
        session
            .write_response_header(Box::new(header), !body_follows)
            .await?;
        if body_follows {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

fn render_page(title: &str, message: &str, link: Option<(&str, &str)>) -> String {
    let link = link
        .map(|(href, text)| {
            format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(href),
                escape_html(text)
            )
        })
        .unwrap_or_default();
    render_html(title, message, &link)
}

/// Renders the page around `extra`, HTML that is already escaped.
fn render_html(title: &str, message: &str, extra: &str) -> String {
    let title = escape_html(title);
    let message = escape_html(message);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}</style></head>\
<body><h1>{title}</h1><p>{message}</p>{extra}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_escapes_its_text() {
        let response = LocalResponse::page(
            StatusCode::BAD_REQUEST,
            "<t>",
            "a & \"b\"",
            Some(("/x?a=1&b=\"2\"", "go")),
        );
        let body = std::str::from_utf8(&response.body).expect("utf-8");
        assert!(body.contains("&lt;t&gt;"));
        assert!(body.contains("a &amp; &quot;b&quot;"));
        assert!(body.contains("href=\"/x?a=1&amp;b=&quot;2&quot;\""));
    }

    #[test]
    fn header_has_length_and_security_headers() {
        let response = LocalResponse::json_error(StatusCode::UNAUTHORIZED, "x", "y")
            .with_cookie("a=1".into())
            .with_cookie("b=2".into());
        let header = response.to_header().expect("valid header");
        assert_eq!(header.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            header.headers[http::header::CONTENT_LENGTH],
            response.body.len().to_string().as_str()
        );
        assert_eq!(header.headers[http::header::CACHE_CONTROL], "no-store");
        assert_eq!(
            header
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .count(),
            2
        );
    }
}
