//! The three forms of `session.redis_url` and the Redis topology each names.
//!
//! | form | topology |
//! | --- | --- |
//! | `redis://[[user]:password@]host[:port][/db]` | one server, read by the redis crate (which also reads `unix://` socket URLs) |
//! | `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master-name[/db][?sentinel_username=…&sentinel_password=…]` | the master that Redis Sentinel names; the hosts are sentinels, default port 26379 |
//! | `redis+cluster://[[user]:password@]host[:port][,host[:port]…]` | Redis Cluster; the hosts are seed nodes, default port 6379 |
//!
//! In a Sentinel URL the user and password before `@` are those of the data
//! nodes (the master and its replicas). Sentinels often run without a
//! password, or with one of their own, and a sentinel without a password
//! rejects `AUTH`, so the sentinels get credentials only from the
//! `sentinel_username` and `sentinel_password` query parameters. In a
//! Cluster URL the credentials apply to every node. User names, passwords and
//! parameter values are percent-decoded, so `@`, `:`, `/`, `?`, `&`, `,` and
//! `%` in them must be written `%40`, `%3A`, `%2F`, `%3F`, `%26`, `%2C` and
//! `%25`.
//!
//! Errors never repeat any part of the URL, because a mistyped URL can put
//! part of a password where a host or a path is expected.

use std::fmt;

use percent_encoding::percent_decode_str;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

/// Port of a sentinel when its host has none.
const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// Port of a cluster node, or of a standalone server, when its host has
/// none.
const DEFAULT_CLUSTER_PORT: u16 = 6379;

/// Highest database number: Redis reads its `databases` setting as a C
/// `int`, and `SELECT` accepts an index below it. The default is 16
/// databases (0 to 15), which the server then enforces.
const MAX_DATABASE: i64 = i32::MAX as i64;

/// The Redis deployment that a `session.redis_url` names.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// One server, standalone or the fixed address of a master.
    Standalone(ConnectionInfo),
    /// A master found through Redis Sentinel.
    Sentinel(SentinelTopology),
    /// Redis Cluster.
    Cluster(ClusterTopology),
}

/// A user name and password for `AUTH`, either of which may be absent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The ACL user; `None` means the `default` user.
    pub username: Option<String>,
    /// The password; `None` sends no `AUTH`.
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// Returns the connection settings that send these credentials and
    /// select database `db`.
    pub fn redis_settings(&self, db: i64) -> RedisConnectionInfo {
        let mut settings = RedisConnectionInfo::default().set_db(db);
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        settings
    }
}

/// The sentinels and the name of the master to request from them.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelTopology {
    /// The sentinels, asked in this order.
    pub sentinels: Vec<ConnectionAddr>,
    /// The name under which the sentinels monitor the master
    /// (`sentinel monitor <name> …`).
    pub master_name: String,
    /// The database selected on the master.
    pub db: i64,
    /// Credentials for the master and replicas.
    pub data_credentials: Credentials,
    /// Credentials for the sentinels.
    pub sentinel_credentials: Credentials,
}

impl SentinelTopology {
    /// Returns the connection settings of each sentinel.
    pub fn sentinel_connections(&self) -> Vec<ConnectionInfo> {
        connection_infos(&self.sentinels, &self.sentinel_credentials, 0)
    }
}

/// The seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterTopology {
    /// Nodes to learn the cluster's slot map from; any reachable one is
    /// enough.
    pub nodes: Vec<ConnectionAddr>,
    /// Credentials for every node.
    pub credentials: Credentials,
}

impl ClusterTopology {
    /// Returns the connection settings of each seed node.
    pub fn node_connections(&self) -> Vec<ConnectionInfo> {
        connection_infos(&self.nodes, &self.credentials, 0)
    }
}

fn connection_infos(
    addresses: &[ConnectionAddr],
    credentials: &Credentials,
    db: i64,
) -> Vec<ConnectionInfo> {
    addresses
        .iter()
        .map(|address| {
            address
                .clone()
                .into_connection_info()
                .expect("a TCP address always converts to connection settings")
                .set_redis_settings(credentials.redis_settings(db))
        })
        .collect()
}

/// A `session.redis_url` that cannot be used. The message never contains
/// the URL or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    /// An empty URL, or one of only whitespace.
    #[error("is empty")]
    Empty,
    /// Whitespace or a control character anywhere, often a trailing space
    /// or newline.
    #[error("contains whitespace or a control character; remove it, or write a space in a user name or password as %20")]
    Whitespace,
    /// The scheme is none of the supported ones.
    #[error("must start with redis://, redis+sentinel://, redis+cluster:// or unix://")]
    UnknownScheme,
    /// A TLS scheme, which this build cannot connect with.
    #[error("uses TLS (rediss://), which this build of portcullis does not support; use a redis:// URL on a trusted network")]
    Tls,
    /// A standalone URL that the redis crate rejects, for none of the
    /// reasons that have their own variant.
    #[error("is not a valid redis:// URL; the form is redis://[[user]:password@]host[:port][/db]")]
    InvalidStandalone,
    /// A `redis://` URL with a comma-separated host list.
    #[error("lists several hosts, which redis:// does not accept; use redis+sentinel://host,host/master-name for Sentinel or redis+cluster://host,host for Cluster")]
    SeveralHosts,
    /// An `@` after the first `/`, `?` or `#`: a user name or password
    /// contains one of these unescaped, so the URL ends early.
    #[error("has an @ after a / ? or #, so the user name or password contains one of them unescaped; percent-encode / as %2F, ? as %3F and # as %23")]
    UnescapedUserinfo,
    /// A port that is not a number from 1 to 65535.
    #[error("has an invalid port in address number {0} of the host list; a port is a number from 1 to 65535")]
    InvalidPort(usize),
    /// No host before the path.
    #[error("names no host")]
    MissingHost,
    /// A host in the comma-separated list is empty or malformed.
    #[error("address number {0} in the host list is not a valid host[:port]; a / @ : ? or , in a user name or password must be percent-encoded")]
    InvalidHost(usize),
    /// A user name, password or parameter value with a bad `%` escape.
    #[error(
        "contains a user name, password or parameter value that is not valid percent-encoded UTF-8"
    )]
    InvalidEncoding,
    /// A master name outside the character set that Sentinel accepts.
    #[error("has an invalid Sentinel master name: Sentinel accepts only letters, digits and . - _ in it")]
    InvalidMasterName,
    /// A Sentinel URL without the master name.
    #[error("needs the Sentinel master name as its path, as in redis+sentinel://sentinel-0:26379/mymaster")]
    MissingMasterName,
    /// A database that is not an integer from 0 to 2147483647, or a
    /// path with more segments than `/master-name/db`.
    #[error("has an invalid database: after the master name only a database number from 0 to 2147483647 may follow, as in /mymaster/0 (Redis has 16 databases unless its databases setting says otherwise)")]
    InvalidDatabase,
    /// A `redis://` database number outside 0 to 2147483647.
    #[error("has an invalid database: it must be a number from 0 to 2147483647 (Redis has 16 databases unless its databases setting says otherwise)")]
    DatabaseOutOfRange,
    /// A Cluster URL with a path other than `/` or `/0`.
    #[error("has a path, but Redis Cluster has only database 0; remove the path")]
    ClusterDatabase,
    /// A `sentinel_username` or `sentinel_password` without a value.
    #[error("has an empty sentinel_username or sentinel_password parameter; give it a value, or remove it when the sentinels need no credentials")]
    EmptyParameter,
    /// A query parameter that the form does not know.
    #[error("has an unknown query parameter; a Sentinel URL accepts sentinel_username and sentinel_password, a Cluster URL none")]
    UnknownParameter,
}

impl RedisTopology {
    /// Reads `url` in one of the forms in the module documentation.
    pub fn from_url(url: &str) -> Result<RedisTopology, RedisUrlError> {
        if url.trim().is_empty() {
            return Err(RedisUrlError::Empty);
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RedisUrlError::Whitespace);
        }
        let (scheme, rest) = url.split_once("://").ok_or(RedisUrlError::UnknownScheme)?;
        match scheme.to_ascii_lowercase().as_str() {
            "redis+sentinel" => parse_sentinel(rest).map(RedisTopology::Sentinel),
            "redis+cluster" => parse_cluster(rest).map(RedisTopology::Cluster),
            "rediss" | "rediss+sentinel" | "rediss+cluster" | "valkeys" => Err(RedisUrlError::Tls),
            _ => parse_standalone(url).map(RedisTopology::Standalone),
        }
    }
}

fn parse_standalone(url: &str) -> Result<ConnectionInfo, RedisUrlError> {
    let info = redis::parse_redis_url(url)
        .and_then(|parsed| parsed.into_connection_info().ok())
        .ok_or_else(|| diagnose_standalone(url))?;
    if !(0..=MAX_DATABASE).contains(&info.redis_settings().db()) {
        return Err(RedisUrlError::DatabaseOutOfRange);
    }
    Ok(info)
}

/// Finds out why the redis crate rejected `url`, for a message more useful
/// than its own, which can repeat the URL.
fn diagnose_standalone(url: &str) -> RedisUrlError {
    let Some((scheme, rest)) = url.split_once("://") else {
        return RedisUrlError::UnknownScheme;
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" | "valkey" => {}
        "unix" | "redis+unix" | "valkey+unix" => return RedisUrlError::InvalidStandalone,
        _ => return RedisUrlError::UnknownScheme,
    }
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let parts = split_url(rest);
    if parts.path.contains('@') || parts.query.is_some_and(|query| query.contains('@')) {
        return RedisUrlError::UnescapedUserinfo;
    }
    if parts.hosts.contains(',') {
        return RedisUrlError::SeveralHosts;
    }
    match parse_hosts(parts.hosts, DEFAULT_CLUSTER_PORT) {
        Err(error) => error,
        Ok(_) => RedisUrlError::InvalidStandalone,
    }
}

/// The parts of `[userinfo@]hosts[/path][?query]`, split but not decoded.
struct UrlParts<'a> {
    userinfo: Option<&'a str>,
    hosts: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

fn split_url(rest: &str) -> UrlParts<'_> {
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    UrlParts {
        userinfo,
        hosts,
        path,
        query,
    }
}

fn parse_sentinel(rest: &str) -> Result<SentinelTopology, RedisUrlError> {
    let parts = split_url(rest);
    let sentinels = parse_hosts(parts.hosts, DEFAULT_SENTINEL_PORT)?;
    let data_credentials = parse_userinfo(parts.userinfo)?;

    let mut segments = parts.path.trim_start_matches('/').split('/');
    let master_name = decode(segments.next().unwrap_or_default())?;
    if master_name.is_empty() {
        return Err(RedisUrlError::MissingMasterName);
    }
    if !is_valid_master_name(&master_name) {
        return Err(RedisUrlError::InvalidMasterName);
    }
    let db = match segments.next() {
        None | Some("") => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| (0..=MAX_DATABASE).contains(db))
            .ok_or(RedisUrlError::InvalidDatabase)?,
    };
    if segments.any(|segment| !segment.is_empty()) {
        return Err(RedisUrlError::InvalidDatabase);
    }

    let mut sentinel_credentials = Credentials::default();
    for (name, value) in parse_query(parts.query)? {
        let known = matches!(name.as_str(), "sentinel_username" | "sentinel_password");
        if known && value.is_empty() {
            return Err(RedisUrlError::EmptyParameter);
        }
        match name.as_str() {
            "sentinel_username" => sentinel_credentials.username = Some(value),
            "sentinel_password" => sentinel_credentials.password = Some(value),
            _ => return Err(RedisUrlError::UnknownParameter),
        }
    }
    Ok(SentinelTopology {
        sentinels,
        master_name,
        db,
        data_credentials,
        sentinel_credentials,
    })
}

fn parse_cluster(rest: &str) -> Result<ClusterTopology, RedisUrlError> {
    let parts = split_url(rest);
    let nodes = parse_hosts(parts.hosts, DEFAULT_CLUSTER_PORT)?;
    let credentials = parse_userinfo(parts.userinfo)?;
    if !matches!(parts.path, "" | "/" | "/0") {
        return Err(RedisUrlError::ClusterDatabase);
    }
    if !parse_query(parts.query)?.is_empty() {
        return Err(RedisUrlError::UnknownParameter);
    }
    Ok(ClusterTopology { nodes, credentials })
}

/// Tells whether Sentinel accepts `name` as a master name. The
/// sentinel.conf that Redis ships (7.0) limits it to A-z, 0-9 and `.-_`.
fn is_valid_master_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
}

/// Reads `user:password`, `:password` or `user`.
fn parse_userinfo(userinfo: Option<&str>) -> Result<Credentials, RedisUrlError> {
    let Some(userinfo) = userinfo else {
        return Ok(Credentials::default());
    };
    let (username, password) = match userinfo.split_once(':') {
        Some((username, password)) => (username, Some(password)),
        None => (userinfo, None),
    };
    let username = decode(username)?;
    Ok(Credentials {
        username: (!username.is_empty()).then_some(username),
        password: password.map(decode).transpose()?,
    })
}

/// Reads a comma-separated list of `host[:port]`, with IPv6 addresses in
/// brackets.
fn parse_hosts(hosts: &str, default_port: u16) -> Result<Vec<ConnectionAddr>, RedisUrlError> {
    if hosts.is_empty() {
        return Err(RedisUrlError::MissingHost);
    }
    hosts
        .split(',')
        .enumerate()
        .map(|(index, entry)| parse_host(entry, default_port, index + 1))
        .collect()
}

/// Reads entry number `number` of a host list.
fn parse_host(
    entry: &str,
    default_port: u16,
    number: usize,
) -> Result<ConnectionAddr, RedisUrlError> {
    let invalid_host = RedisUrlError::InvalidHost(number);
    let (host, port) = if let Some(bracketed) = entry.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(invalid_host.clone())?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or(invalid_host.clone())?),
            ),
        }
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
    if !valid_host {
        return Err(invalid_host);
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or(RedisUrlError::InvalidPort(number))?,
    };
    Ok(ConnectionAddr::Tcp(host.to_owned(), port))
}

/// Reads `name=value&…`, percent-decoding both. A `+` stays a `+`, unlike
/// in HTML forms, so that a password containing `+` needs no escape.
fn parse_query(query: Option<&str>) -> Result<Vec<(String, String)>, RedisUrlError> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(text: &str) -> Result<String, RedisUrlError> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| RedisUrlError::InvalidEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> ConnectionAddr {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }

    fn sentinel(url: &str) -> SentinelTopology {
        match RedisTopology::from_url(url) {
            Ok(RedisTopology::Sentinel(topology)) => topology,
            other => panic!("expected a Sentinel topology, got {other:?}"),
        }
    }

    fn cluster(url: &str) -> ClusterTopology {
        match RedisTopology::from_url(url) {
            Ok(RedisTopology::Cluster(topology)) => topology,
            other => panic!("expected a Cluster topology, got {other:?}"),
        }
    }

    #[test]
    fn sentinel_url_full_form() {
        let topology = sentinel(
            "redis+sentinel://app:p%40ss%2Fw:rd@s1:26380,s2,[::1]:26381/my%2Dmaster/3?sentinel_password=s%2Bp&sentinel_username=watch",
        );
        assert_eq!(
            topology.sentinels,
            [tcp("s1", 26380), tcp("s2", 26379), tcp("::1", 26381)],
            "hosts, with the default Sentinel port where none is given"
        );
        assert_eq!(topology.master_name, "my-master");
        assert_eq!(topology.db, 3);
        assert_eq!(
            sentinel("redis+sentinel://s1/my_master.v2/2147483647").db,
            2147483647,
            "the largest database Redis can be configured for"
        );
        assert_eq!(
            topology.data_credentials,
            Credentials {
                username: Some("app".into()),
                password: Some("p@ss/w:rd".into()),
            },
            "the userinfo is for the data nodes, split at the first colon"
        );
        assert_eq!(
            topology.sentinel_credentials,
            Credentials {
                username: Some("watch".into()),
                password: Some("s+p".into()),
            },
            "the query parameters are for the sentinels"
        );
    }

    #[test]
    fn sentinel_url_short_forms() {
        let cases = [
            ("redis+sentinel://s1/mymaster", 0, None, None),
            ("redis+sentinel://s1/mymaster/", 0, None, None),
            ("REDIS+SENTINEL://s1/mymaster/0", 0, None, None),
            ("redis+sentinel://:pw@s1/mymaster/1", 1, None, Some("pw")),
            ("redis+sentinel://user@s1/mymaster", 0, Some("user"), None),
            (
                "redis+sentinel://a:b+c@s1/mymaster",
                0,
                Some("a"),
                Some("b+c"),
            ),
        ];
        for (url, db, username, password) in cases {
            let topology = sentinel(url);
            assert_eq!(topology.master_name, "mymaster", "{url}: master name");
            assert_eq!(topology.db, db, "{url}: database");
            assert_eq!(
                topology.data_credentials.username.as_deref(),
                username,
                "{url}: user"
            );
            assert_eq!(
                topology.data_credentials.password.as_deref(),
                password,
                "{url}: password"
            );
            assert_eq!(
                topology.sentinel_credentials,
                Credentials::default(),
                "{url}: no sentinel credentials"
            );
        }
    }

    #[test]
    fn cluster_url_forms() {
        let topology = cluster("redis+cluster://:secret@n1:7000,n2,10.0.0.3:7002/");
        assert_eq!(
            topology.nodes,
            [tcp("n1", 7000), tcp("n2", 6379), tcp("10.0.0.3", 7002)],
            "hosts, with the default Redis port where none is given"
        );
        assert_eq!(topology.credentials.password.as_deref(), Some("secret"));
        assert_eq!(topology.credentials.username, None);
        assert_eq!(cluster("redis+cluster://n1/0").nodes, [tcp("n1", 6379)]);
    }

    #[test]
    fn standalone_urls_go_to_the_redis_crate() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://:pw@redis-master:6379/2",
            "redis://h/2147483647",
            "unix:///run/redis.sock",
        ] {
            assert!(
                matches!(
                    RedisTopology::from_url(url),
                    Ok(RedisTopology::Standalone(_))
                ),
                "{url} is a standalone URL"
            );
        }
    }

    #[test]
    fn invalid_urls_are_rejected() {
        let cases = [
            ("http://x", RedisUrlError::UnknownScheme),
            ("127.0.0.1:6379", RedisUrlError::UnknownScheme),
            ("rediss://h:6379", RedisUrlError::Tls),
            ("rediss+sentinel://h/m", RedisUrlError::Tls),
            ("redis+sentinel:///mymaster", RedisUrlError::MissingHost),
            ("redis+sentinel://s1", RedisUrlError::MissingMasterName),
            ("redis+sentinel://s1/", RedisUrlError::MissingMasterName),
            ("redis+sentinel://s1,/m", RedisUrlError::InvalidHost(2)),
            ("redis+sentinel://s1:0/m", RedisUrlError::InvalidPort(1)),
            ("redis+sentinel://s1:x/m", RedisUrlError::InvalidPort(1)),
            (
                "redis+sentinel://s1,s2:99999/m",
                RedisUrlError::InvalidPort(2),
            ),
            ("redis+sentinel://s!1/m", RedisUrlError::InvalidHost(1)),
            ("redis+sentinel://[::1/m", RedisUrlError::InvalidHost(1)),
            ("redis+sentinel://s1/m/x", RedisUrlError::InvalidDatabase),
            ("redis+sentinel://s1/m/-1", RedisUrlError::InvalidDatabase),
            ("redis+sentinel://s1/m/0/x", RedisUrlError::InvalidDatabase),
            (
                "redis+sentinel://s1/m?password=x",
                RedisUrlError::UnknownParameter,
            ),
            ("redis+sentinel://:%ff@s1/m", RedisUrlError::InvalidEncoding),
            ("redis+cluster://n1/1", RedisUrlError::ClusterDatabase),
            (
                "redis+cluster://n1?sentinel_password=x",
                RedisUrlError::UnknownParameter,
            ),
            ("redis+cluster://", RedisUrlError::MissingHost),
            (
                "redis+cluster://n1:7000,n2:7001 ",
                RedisUrlError::Whitespace,
            ),
            ("redis+sentinel://s1/mymaster\t", RedisUrlError::Whitespace),
            ("redis+sentinel://s1/my master", RedisUrlError::Whitespace),
            (
                "redis+sentinel://s1/my%20master",
                RedisUrlError::InvalidMasterName,
            ),
            (
                "redis+sentinel://s1/my#master",
                RedisUrlError::InvalidMasterName,
            ),
            (
                "redis+sentinel://s1/my%3Fmaster",
                RedisUrlError::InvalidMasterName,
            ),
            (
                "redis+sentinel://s1/my%2Fmaster",
                RedisUrlError::InvalidMasterName,
            ),
            (
                "redis+sentinel://s1/mymaster?sentinel_password=",
                RedisUrlError::EmptyParameter,
            ),
            (
                "redis+sentinel://s1/mymaster?sentinel_username=&sentinel_password=x",
                RedisUrlError::EmptyParameter,
            ),
            (
                "redis+sentinel://s1/mymaster/99999999999",
                RedisUrlError::InvalidDatabase,
            ),
            ("", RedisUrlError::Empty),
            ("  ", RedisUrlError::Empty),
            ("redis://:pw@127.0.0.1:99999", RedisUrlError::InvalidPort(1)),
            ("redis://h:abc", RedisUrlError::InvalidPort(1)),
            (
                "redis://:Hun/ter2@host:6379",
                RedisUrlError::UnescapedUserinfo,
            ),
            (
                "redis://:Hun?ter2@host:6379",
                RedisUrlError::UnescapedUserinfo,
            ),
            ("redis://:pw@/0", RedisUrlError::MissingHost),
            ("redis://h1,h2/mymaster", RedisUrlError::SeveralHosts),
            ("redis://h/99999999999", RedisUrlError::DatabaseOutOfRange),
            ("redis://h/-1", RedisUrlError::DatabaseOutOfRange),
        ];
        for (url, expected) in cases {
            let error = RedisTopology::from_url(url).expect_err(url);
            assert_eq!(error, expected, "{url}");
        }
    }

    /// A password with an unescaped `/` ends the host list early, so the
    /// rest of the password lands where a port or path is read; the error
    /// must not show it.
    #[test]
    fn errors_never_show_the_password() {
        let url = "redis+sentinel://:hunter2/secret@s1:26379/mymaster";
        let message = RedisTopology::from_url(url)
            .expect_err("an unescaped slash breaks the URL")
            .to_string();
        assert!(
            !message.contains("hunter2") && !message.contains("secret"),
            "the message shows part of the password: {message}"
        );
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let credentials = Credentials {
            username: Some("app".into()),
            password: Some("hunter2".into()),
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app"), "{shown}");
    }
}
