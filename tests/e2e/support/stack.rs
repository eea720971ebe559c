//! One test's own set of processes: provider, dashboard, optional Redis and
//! portcullis, on fresh ports and in a fresh temporary folder.

use reqwest::Url;
use tempfile::TempDir;

use super::browser::Browser;
use super::fixtures::{Idp, Upstream};
use super::portcullis::{Portcullis, PortcullisConfig, Store};
use super::ports::{free_port, PROXY_HOST};
use super::redis::RedisServer;

/// Where the stack keeps sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    /// In portcullis's memory.
    Memory,
    /// In a redis-server started for the test.
    Redis,
}

/// Every process of one test. Fields drop in order, so portcullis stops
/// first and the folder with the logs goes last.
pub struct Stack {
    /// The proxy under test.
    pub portcullis: Portcullis,
    /// The dashboard, kept running for as long as the stack.
    _upstream: Upstream,
    /// The OpenID provider.
    pub idp: Idp,
    /// Redis, when the stack uses it.
    pub redis: Option<RedisServer>,
    /// Configuration, logs and Redis data.
    _dir: TempDir,
}

impl Stack {
    /// Starts a stack with in-memory sessions.
    pub async fn start() -> Stack {
        Stack::start_with(SessionStore::Memory).await
    }

    /// Starts a stack whose sessions are kept in `store`.
    pub async fn start_with(store: SessionStore) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-e2e-")
            .tempdir()
            .expect("a temporary folder can be created");
        let proxy_port = free_port(PROXY_HOST);
        let admin_port = free_port(PROXY_HOST);
        let proxy_origin =
            Url::parse(&format!("http://{PROXY_HOST}:{proxy_port}/")).expect("valid proxy URL");

        let redis = match store {
            SessionStore::Memory => None,
            SessionStore::Redis => Some(RedisServer::start(dir.path()).await),
        };
        let (idp, upstream) = tokio::join!(
            Idp::start(dir.path(), &proxy_origin),
            Upstream::start(dir.path())
        );
        let config = PortcullisConfig {
            proxy_port,
            admin_port,
            upstream: upstream.url.clone(),
            issuer: idp.issuer.clone(),
            store: match &redis {
                None => Store::Memory,
                Some(redis) => Store::Redis(redis.url()),
            },
        };
        let portcullis = Portcullis::start(dir.path(), &config).await;
        Stack {
            portcullis,
            _upstream: upstream,
            idp,
            redis,
            _dir: dir,
        }
    }

    /// Creates a browser with an empty cookie jar.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.portcullis.proxy, &self.idp.authorization_endpoint)
    }

    /// Creates a browser and signs it in as `user` through `/`.
    pub async fn signed_in(&self, user: &str) -> Browser {
        let browser = self.browser();
        let landing = browser.login(user, "/").await;
        assert_eq!(
            landing.status(),
            reqwest::StatusCode::OK,
            "expected {user}'s login to end on the dashboard with 200"
        );
        assert!(
            browser.session_cookie().is_some(),
            "expected a session cookie after {user}'s login"
        );
        browser
    }

    /// Returns the URL of `path` on the proxy listener.
    pub fn proxy_url(&self, path: &str) -> Url {
        self.portcullis.proxy_url(path)
    }

    /// Returns the URL of `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> Url {
        self.portcullis.admin_url(path)
    }
}
