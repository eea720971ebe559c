//! One test's own set of processes: provider, dashboard, optional Redis and
//! portcullis, on fresh ports and in a fresh temporary folder.

use reqwest::Url;
use tempfile::TempDir;

use super::browser::Browser;
use super::fixtures::{Idp, IdpTls, Upstream};
use super::portcullis::{Portcullis, PortcullisConfig, Store};
use super::ports::{free_port, PROXY_HOST};
use super::redis::RedisServer;
use super::redis_cluster::RedisCluster;
use super::redis_sentinel::SentinelGroup;

/// Where the stack keeps sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionStore {
    /// In portcullis's memory.
    #[default]
    Memory,
    /// In a redis-server started for the test.
    Redis,
    /// In a Sentinel group started for the test, through a
    /// `redis+sentinel://` URL.
    Sentinel,
    /// In a three-master Redis Cluster started for the test, through a
    /// `redis+cluster://` URL.
    Cluster,
}

/// What a test's stack differs in from the default one.
#[derive(Default)]
pub struct StackOptions {
    /// Where sessions are kept.
    pub store: SessionStore,
    /// Extra `IDP_*` variables of the provider (tests/fixtures/README.md).
    pub idp_env: Vec<(&'static str, String)>,
    /// Register portcullis's `/oauth2/backchannel_logout` at the provider.
    pub backchannel_logout: bool,
    /// Environment variables of portcullis, such as
    /// `PORTCULLIS_<SECTION>__<KEY>` overrides.
    pub env: Vec<(&'static str, String)>,
    /// Serve the provider over HTTPS with this certificate.
    pub idp_tls: Option<IdpTls>,
    /// Wait only for `/livez` at start, for a test whose portcullis never
    /// becomes ready.
    pub skip_readiness: bool,
}

/// Every process of one test. Fields drop in order, so portcullis stops
/// first and the folder with the logs goes last.
pub struct Stack {
    /// The proxy under test.
    pub portcullis: Portcullis,
    /// The dashboard.
    pub upstream: Upstream,
    /// The OpenID provider.
    pub idp: Idp,
    /// Redis, when the stack uses one server.
    pub redis: Option<RedisServer>,
    /// The Sentinel group, when the stack uses one.
    pub sentinel: Option<SentinelGroup>,
    /// The Redis Cluster, when the stack uses one.
    pub cluster: Option<RedisCluster>,
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
        Stack::start_with_options(StackOptions {
            store,
            ..StackOptions::default()
        })
        .await
    }

    /// Starts a stack with in-memory sessions and these
    /// `PORTCULLIS_<SECTION>__<KEY>` overrides.
    pub async fn start_with_env(env: &[(&'static str, &str)]) -> Stack {
        Stack::start_with_options(StackOptions {
            env: env
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned()))
                .collect(),
            ..StackOptions::default()
        })
        .await
    }

    /// Starts a stack as `options` describe.
    pub async fn start_with_options(options: StackOptions) -> Stack {
        let store = options.store;
        let dir = tempfile::Builder::new()
            .prefix("portcullis-e2e-")
            .tempdir()
            .expect("a temporary folder can be created");
        let proxy_port = free_port(PROXY_HOST);
        let admin_port = free_port(PROXY_HOST);
        let proxy_origin =
            Url::parse(&format!("http://{PROXY_HOST}:{proxy_port}/")).expect("valid proxy URL");

        let (mut redis, mut sentinel, mut cluster) = (None, None, None);
        match store {
            SessionStore::Memory => {}
            SessionStore::Redis => redis = Some(RedisServer::start(dir.path()).await),
            SessionStore::Sentinel => sentinel = Some(SentinelGroup::start(dir.path()).await),
            SessionStore::Cluster => cluster = Some(RedisCluster::start(dir.path()).await),
        }
        let mut idp_env: Vec<(&str, &str)> = options
            .idp_env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let backchannel_uri = format!("{proxy_origin}oauth2/backchannel_logout");
        if options.backchannel_logout {
            idp_env.push(("IDP_BACKCHANNEL_LOGOUT_URI", &backchannel_uri));
        }
        let (idp, upstream) = tokio::join!(
            Idp::start_with_tls(
                dir.path(),
                &proxy_origin,
                &idp_env,
                options.idp_tls.as_ref()
            ),
            Upstream::start(dir.path())
        );
        let config = PortcullisConfig {
            proxy_port,
            admin_port,
            upstream: upstream.url.clone(),
            issuer: idp.issuer.clone(),
            store: store_setting(redis.as_ref(), sentinel.as_ref(), cluster.as_ref()),
        };
        let env: Vec<(&str, &str)> = options.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let portcullis = if options.skip_readiness {
            Portcullis::start_live(dir.path(), &config, &env).await
        } else {
            Portcullis::start_with_env(dir.path(), &config, &env).await
        };
        Stack {
            portcullis,
            upstream,
            idp,
            redis,
            sentinel,
            cluster,
            _dir: dir,
        }
    }

    /// Returns the session store setting of every portcullis process of the
    /// stack.
    fn store(&self) -> Store {
        store_setting(
            self.redis.as_ref(),
            self.sentinel.as_ref(),
            self.cluster.as_ref(),
        )
    }

    /// Starts a second portcullis process with the same configuration (and
    /// so the same session store and cookie key) on its own ports, in the
    /// subfolder `name` of the stack's folder. The provider accepts no
    /// logins through it; it serves sessions made through the first.
    pub async fn start_replica(&self, name: &str, env: &[(&str, &str)]) -> Portcullis {
        let dir = self._dir.path().join(name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let config = PortcullisConfig {
            proxy_port: free_port(PROXY_HOST),
            admin_port: free_port(PROXY_HOST),
            upstream: self.upstream.url.clone(),
            issuer: self.idp.issuer.clone(),
            store: self.store(),
        };
        Portcullis::start_with_env(&dir, &config, env).await
    }

    /// Creates a browser with an empty cookie jar.
    pub fn browser(&self) -> Browser {
        Browser::trusting(
            &self.portcullis.proxy,
            &self.idp.authorization_endpoint,
            self.idp.ca.as_ref(),
        )
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

    /// Returns the value of the sample `series` (name and labels exactly as
    /// rendered) at `/metrics`, or `None` when it is not listed.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.portcullis.metric(series).await
    }
}

/// Returns the store setting for whichever Redis deployment is given, or
/// the in-memory store when none is.
fn store_setting(
    redis: Option<&RedisServer>,
    sentinel: Option<&SentinelGroup>,
    cluster: Option<&RedisCluster>,
) -> Store {
    let url = redis
        .map(RedisServer::url)
        .or_else(|| sentinel.map(SentinelGroup::url))
        .or_else(|| cluster.map(RedisCluster::url));
    url.map_or(Store::Memory, Store::Redis)
}
