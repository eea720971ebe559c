use std::io::Write;

use super::*;

const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://dash.example.com"
admin_listen = "127.0.0.1:9090"

[upstream]
url = "http://127.0.0.1:3000"

[oidc]
issuer = "https://example.okta.com"
client_id = "abc"
client_secret = "s3cret"
"#;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write config");
    file
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let file = write(text);
    load_with_env(file.path(), &env(vars))
}

fn error_key(result: Result<Settings, ConfigError>) -> String {
    match result {
        Err(ConfigError::Invalid { key, .. }) => key,
        Err(other) => panic!("expected an invalid-key error, got {other}"),
        Ok(_) => panic!("expected an error, got a valid configuration"),
    }
}

#[test]
fn minimal_file_uses_defaults() {
    let settings = load_text(MINIMAL, &[]).expect("valid configuration");
    let config = &settings.config;
    assert_eq!(config.session.store, SessionStoreKind::Memory);
    assert_eq!(config.session.cookie_name, "_portcullis");
    assert!(config.session.cookie_secure);
    assert_eq!(config.session.ttl, Duration::from_secs(8 * 3600));
    assert_eq!(config.session.cache_ttl, Duration::from_secs(5));
    assert_eq!(config.oidc.scopes, ["openid", "email", "profile"]);
    assert_eq!(settings.client_secret, "s3cret");
    assert_eq!(settings.upstream_host, "127.0.0.1");
    assert_eq!(settings.upstream_port, 3000);
    assert_eq!(
        settings.scim_base_url.as_str(),
        "https://dash.example.com/scim/v2"
    );
    assert_eq!(settings.directory_url, "sqlite://portcullis.db");
    assert_eq!(config.scim.group_patch_status, 204);
    assert!(!config.access.require_provisioned_user);
    assert_eq!(config.access.provisioned_match_claim, MatchClaim::Email);
    assert!(config.access.allowed_groups.is_empty());
    assert!(config.access.allowed_email_domains.is_empty());
    assert!(config.access.public_paths.is_empty());
    assert_eq!(config.access.groups_source, GroupsSource::Token);
    assert_eq!(config.access.max_groups_header_bytes, 4096);
    assert_eq!(config.server.drain_delay, Duration::ZERO);
    assert_eq!(config.server.keepalive_timeout, Duration::from_secs(620));
    assert_eq!(config.server.max_request_header_bytes, 64 * 1024);
    assert!(settings.trusted_proxies.is_empty());
    assert_eq!(config.upstream.read_timeout, Duration::from_secs(60));
    assert_eq!(config.session.login_starts_per_minute, 60);
    assert_eq!(config.session.login_starts_burst, 60);
    assert_eq!(config.session.memory_max_entries, 100_000);
    assert_eq!(
        config.session.active_count_interval,
        Duration::from_secs(15)
    );
}

#[test]
fn login_limits_parse_and_are_checked() {
    let settings = load_text(
        MINIMAL,
        &[
            ("PORTCULLIS_SESSION__LOGIN_STARTS_PER_MINUTE", "0"),
            ("PORTCULLIS_SESSION__LOGIN_STARTS_BURST", "5"),
            ("PORTCULLIS_SESSION__MEMORY_MAX_ENTRIES", "100"),
        ],
    )
    .expect("0 turns the limit off, and 100 entries is the smallest store");
    let session = &settings.config.session;
    assert_eq!(session.login_starts_per_minute, 0);
    assert_eq!(session.login_starts_burst, 5);
    assert_eq!(session.memory_max_entries, 100);
    let cases = [
        ("PORTCULLIS_SESSION__LOGIN_STARTS_PER_MINUTE", "1000001"),
        ("PORTCULLIS_SESSION__LOGIN_STARTS_PER_MINUTE", "-1"),
        ("PORTCULLIS_SESSION__LOGIN_STARTS_BURST", "0"),
        ("PORTCULLIS_SESSION__LOGIN_STARTS_BURST", "1000001"),
        ("PORTCULLIS_SESSION__MEMORY_MAX_ENTRIES", "99"),
    ];
    for (variable, value) in cases {
        let expected = format!(
            "session.{}",
            variable
                .trim_start_matches("PORTCULLIS_SESSION__")
                .to_ascii_lowercase()
        );
        assert_eq!(
            error_key(load_text(MINIMAL, &[(variable, value)])),
            expected,
            "{variable}={value}"
        );
    }
}

#[test]
fn trusted_proxies_accept_addresses_and_blocks() {
    let settings = load_text(
        MINIMAL,
        &[(
            "PORTCULLIS_SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.7 fd00::/8 10.1.0.0/16",
        )],
    )
    .expect("valid trusted proxies");
    let listed: Vec<String> = settings
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        listed,
        ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "10.1.0.0/16"]
    );
}

#[test]
fn access_section_parses() {
    let text = format!(
        "{MINIMAL}\n[access]\nrequire_provisioned_user = true\nprovisioned_match_claim = \"preferred_username\"\n\
         allowed_groups = [\"Dashboard Admins\", \"ops\"]\nallowed_email_domains = [\"Corp.example\"]\n\
         public_paths = [\"/healthz\", \"/static/\"]\ngroups_source = \"both\"\nmax_groups_header_bytes = 1024\n"
    );
    let settings = load_text(&text, &[]).expect("valid configuration");
    let access = &settings.config.access;
    assert!(access.require_provisioned_user, "require_provisioned_user");
    assert_eq!(
        access.provisioned_match_claim,
        MatchClaim::PreferredUsername,
        "provisioned_match_claim"
    );
    assert_eq!(
        access.allowed_groups,
        ["Dashboard Admins", "ops"],
        "allowed_groups"
    );
    assert_eq!(
        access.allowed_email_domains,
        ["Corp.example"],
        "allowed_email_domains"
    );
    assert_eq!(
        access.public_paths,
        ["/healthz", "/static/"],
        "public_paths"
    );
    assert_eq!(access.groups_source, GroupsSource::Both, "groups_source");
    assert_eq!(
        access.max_groups_header_bytes, 1024,
        "max_groups_header_bytes"
    );

    let from_env = load_text(
        MINIMAL,
        &[
            ("PORTCULLIS_ACCESS__ALLOWED_GROUPS", "admins,ops"),
            ("PORTCULLIS_ACCESS__GROUPS_SOURCE", "scim"),
            ("PORTCULLIS_ACCESS__PROVISIONED_MATCH_CLAIM", "sub"),
        ],
    )
    .expect("valid configuration");
    let access = &from_env.config.access;
    assert_eq!(
        access.allowed_groups,
        ["admins", "ops"],
        "groups from the environment"
    );
    assert_eq!(
        access.groups_source,
        GroupsSource::Scim,
        "source from the environment"
    );
    assert_eq!(
        access.provisioned_match_claim,
        MatchClaim::Sub,
        "claim from the environment"
    );
}

#[test]
fn access_values_are_checked() {
    let cases = [
        ("unknown = 1", "access.unknown"),
        ("groups_source = \"ldap\"", "access.groups_source"),
        (
            "provisioned_match_claim = \"name\"",
            "access.provisioned_match_claim",
        ),
        (
            "require_provisioned_user = \"yes\"",
            "access.require_provisioned_user",
        ),
        ("allowed_groups = [\"\"]", "access.allowed_groups"),
        (
            "allowed_email_domains = [\"@corp.com\"]",
            "access.allowed_email_domains",
        ),
        (
            "allowed_email_domains = [\"a@corp.com\"]",
            "access.allowed_email_domains",
        ),
        (
            "allowed_email_domains = [\"\"]",
            "access.allowed_email_domains",
        ),
        (
            "allowed_email_domains = [\"corp .com\"]",
            "access.allowed_email_domains",
        ),
        ("public_paths = [\"healthz\"]", "access.public_paths"),
        ("public_paths = [\"/\"]", "access.public_paths"),
        ("public_paths = [\"//static/\"]", "access.public_paths"),
        (
            "public_paths = [\"/static/../admin\"]",
            "access.public_paths",
        ),
        ("public_paths = [\"/%73tatic/\"]", "access.public_paths"),
        ("public_paths = [\"/static;x/\"]", "access.public_paths"),
        ("public_paths = [\"/health?x=1\"]", "access.public_paths"),
        ("public_paths = [\"/oauth2/start\"]", "access.public_paths"),
        ("public_paths = [\"/oauth2/\"]", "access.public_paths"),
        ("public_paths = [\"/SCIM/v2/Users\"]", "access.public_paths"),
        (
            "max_groups_header_bytes = 0",
            "access.max_groups_header_bytes",
        ),
    ];
    for (line, expected_key) in cases {
        let text = format!("{MINIMAL}\n[access]\n{line}\n");
        let result = load_text(&text, &[]);
        assert!(result.is_err(), "line {line:?} was accepted");
        assert_eq!(error_key(result), expected_key, "line {line:?}");
    }
}

#[test]
fn environment_overrides_keys() {
    let settings = load_text(
        MINIMAL,
        &[
            ("PORTCULLIS_OIDC__CLIENT_SECRET", "from-env"),
            ("PORTCULLIS_SESSION__COOKIE_SECURE", "false"),
            ("PORTCULLIS_SESSION__TTL", "2h"),
            ("PORTCULLIS_OIDC__SCOPES", "openid email groups"),
            ("PORTCULLIS_SERVER__THREADS", "4"),
            ("PORTCULLIS_PROFILE", "ignored: not an override"),
            ("OTHER_VARIABLE", "ignored"),
        ],
    )
    .expect("valid configuration");
    assert_eq!(settings.client_secret, "from-env");
    assert!(!settings.config.session.cookie_secure);
    assert_eq!(settings.config.session.ttl, Duration::from_secs(7200));
    assert_eq!(settings.config.oidc.scopes, ["openid", "email", "groups"]);
    assert_eq!(settings.config.server.threads, 4);
}

#[test]
fn secrets_from_files() {
    let secret = write("file-secret\n");
    let keys = write(&format!("{}\n\n{}\n", "k".repeat(32), "j".repeat(40)));
    let text = MINIMAL.replace(
        "client_secret = \"s3cret\"",
        &format!(
            "client_secret_file = {:?}\n[session]\ncookie_keys_file = {:?}",
            secret.path(),
            keys.path()
        ),
    );
    let settings = load_text(&text, &[]).expect("valid configuration");
    assert_eq!(settings.client_secret, "file-secret");
    assert_eq!(settings.cookie_keys.len(), 2);
    assert_eq!(settings.cookie_keys[0], "k".repeat(32).into_bytes());
}

#[test]
fn redis_url_forms_are_checked() {
    let accepted = [
        "redis://:pw@redis-master:6379/0",
        "redis+sentinel://:pw@sentinel-0:26379,sentinel-1:26379/mymaster/0",
        "redis+sentinel://sentinel:26379/mymaster?sentinel_password=pw",
        "redis+cluster://:pw@node-0:6379,node-1:6379,node-2:6379",
    ];
    for url in accepted {
        let vars = [
            ("PORTCULLIS_SESSION__STORE", "redis"),
            ("PORTCULLIS_SESSION__REDIS_URL", url),
        ];
        let settings = load_text(MINIMAL, &vars).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(settings.redis_url.as_deref(), Some(url), "{url} is kept");
    }

    let rejected = [
        ("rediss://:hunter2@redis:6379", "TLS"),
        ("redis+sentinel://:hunter2@sentinel:26379", "master name"),
        ("redis+sentinel://:hunter2@sentinel:26379/m/x", "database"),
        ("redis+cluster://:hunter2@node-0:6379/1", "database 0"),
        ("redis+cluster://:hunter2@node-0:x", "invalid port"),
        ("memcached://:hunter2@cache:11211", "redis+sentinel://"),
        ("redis+cluster://:hunter2@node-0:6379 ", "whitespace"),
        (
            "redis+sentinel://:hunter2@s:26379/my%20master",
            "master name",
        ),
        ("redis+sentinel://:hunter2@s:26379/a#b", "master name"),
        (
            "redis+sentinel://s:26379/m?sentinel_password=",
            "sentinel_password",
        ),
        (
            "redis+sentinel://:hunter2@s:26379/m/99999999999",
            "database",
        ),
        ("redis://:hunter2@127.0.0.1:99999", "invalid port"),
        ("redis://:hun/ter2@host:6379", "percent-encode"),
        ("redis://:hunter2@/0", "names no host"),
        ("redis://:hunter2@h1,h2/mymaster", "redis+cluster://"),
        ("", "is empty"),
    ];
    for (url, expected) in rejected {
        let vars = [
            ("PORTCULLIS_SESSION__STORE", "redis"),
            ("PORTCULLIS_SESSION__REDIS_URL", url),
        ];
        let error = load_text(MINIMAL, &vars).expect_err(url);
        let message = error.to_string();
        assert!(
            message.starts_with("session.redis_url: "),
            "{url}: the error names the key: {message}"
        );
        assert!(
            message.contains(expected),
            "{url}: expected {expected:?} in {message}"
        );
        assert!(
            !message.contains("hunter2"),
            "{url}: the error shows the password: {message}"
        );
    }

    let file = write("redis+sentinel://:hunter2@s-0:26379,s-1:26379/mymaster \t\r\n");
    let text = format!(
        "{MINIMAL}\n[session]\nstore = \"redis\"\nredis_url_file = {:?}\n",
        file.path()
    );
    let settings = load_text(&text, &[]).expect("trailing whitespace in the file is trimmed");
    assert_eq!(
        settings.redis_url.as_deref(),
        Some("redis+sentinel://:hunter2@s-0:26379,s-1:26379/mymaster"),
        "the URL from the file without its trailing whitespace"
    );

    let file = write("redis+cluster://:hunter2@node-0:6379/3\n");
    let text = format!(
        "{MINIMAL}\n[session]\nstore = \"redis\"\nredis_url_file = {:?}\n",
        file.path()
    );
    assert_eq!(
        error_key(load_text(&text, &[])),
        "session.redis_url_file",
        "an invalid URL read from a file names the file's key"
    );
}

#[test]
fn invalid_values_name_their_key() {
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (format!("{MINIMAL}\nunknown = 1"), vec![], "oidc.unknown"),
        (format!("unknown = 1\n{MINIMAL}"), vec![], "unknown"),
        (
            MINIMAL.replace("[upstream]", "[upstream]\nurll = \"x\""),
            vec![],
            "upstream.urll",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_OIDC__CLIENT_SECRETT", "x")],
            "oidc.client_secrett",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_OIDC_CLIENT_SECRET", "x")],
            "PORTCULLIS_OIDC_CLIENT_SECRET",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__TTL", "soon")],
            "session.ttl",
        ),
        (
            MINIMAL.to_owned(),
            vec![(
                "PORTCULLIS_SERVER__TRUSTED_PROXIES",
                "10.0.0.0/8, lb.example",
            )],
            "server.trusted_proxies",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SERVER__TRUSTED_PROXIES", "10.0.0.0/33")],
            "server.trusted_proxies",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SERVER__TRUSTED_PROXIES", "10.0.0.1/8")],
            "server.trusted_proxies",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_UPSTREAM__CONNECT_TIMEOUT", "0s")],
            "upstream.connect_timeout",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SERVER__DRAIN_DELAY", "11m")],
            "server.drain_delay",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SERVER__MAX_REQUEST_HEADER_BYTES", "100")],
            "server.max_request_header_bytes",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SERVER__MAX_REQUEST_HEADER_BYTES", "2000000")],
            "server.max_request_header_bytes",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SERVER__KEEPALIVE_TIMEOUT", "0s")],
            "server.keepalive_timeout",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_UPSTREAM__READ_TIMEOUT", "0s")],
            "upstream.read_timeout",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__TTL", "10s")],
            "session.ttl",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__COOKIE_SECURE", "maybe")],
            "session.cookie_secure",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__CACHE_TTL", "2m")],
            "session.cache_ttl",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__ACTIVE_COUNT_INTERVAL", "10ms")],
            "session.active_count_interval",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__STORE", "disk")],
            "session.store",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__STORE", "redis")],
            "session.redis_url",
        ),
        (
            MINIMAL.to_owned(),
            vec![
                ("PORTCULLIS_SESSION__STORE", "redis"),
                ("PORTCULLIS_SESSION__REDIS_URL", "http://x"),
            ],
            "session.redis_url",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__COOKIE_KEYS", "short")],
            "session.cookie_keys",
        ),
        (
            MINIMAL.to_owned(),
            vec![("PORTCULLIS_SESSION__COOKIE_NAME", "a b")],
            "session.cookie_name",
        ),
        (
            MINIMAL.replace("\"127.0.0.1:8080\"", "\"nonsense\""),
            vec![],
            "server.listen",
        ),
        (
            MINIMAL.replace("127.0.0.1:9090", "127.0.0.1:8080"),
            vec![],
            "server.admin_listen",
        ),
        (
            MINIMAL.replace("https://dash.example.com", "https://dash.example.com/app"),
            vec![],
            "server.public_url",
        ),
        (
            MINIMAL.replace("https://dash.example.com", "ftp://dash"),
            vec![],
            "server.public_url",
        ),
        (
            MINIMAL.replace("http://127.0.0.1:3000", "https://127.0.0.1:3000"),
            vec![],
            "upstream.url",
        ),
        (
            MINIMAL.replace("https://example.okta.com", "not a url"),
            vec![],
            "oidc.issuer",
        ),
        (
            MINIMAL.replace("client_id = \"abc\"", "client_id = \"\""),
            vec![],
            "oidc.client_id",
        ),
        (
            MINIMAL.replace("client_secret = \"s3cret\"", ""),
            vec![],
            "oidc.client_secret",
        ),
        (
            MINIMAL.replace(
                "[oidc]",
                "[oidc]\nclient_secret_file = \"/nonexistent/secret\"",
            ),
            vec![],
            "oidc.client_secret_file",
        ),
        (
            MINIMAL.replace("[server]", "[server]\nthreads = 0"),
            vec![],
            "server.threads",
        ),
    ];
    for (text, vars, expected_key) in cases {
        assert_eq!(
            error_key(load_text(&text, &vars)),
            expected_key,
            "vars {vars:?}"
        );
    }
}

#[test]
fn missing_section_is_reported() {
    let text = MINIMAL.replace("[upstream]\nurl = \"http://127.0.0.1:3000\"", "");
    let error = load_text(&text, &[]).expect_err("an error");
    assert!(error.to_string().contains("upstream"), "{error}");
}

#[test]
fn syntax_error_is_reported() {
    let error = load_text("[server\n", &[]).expect_err("an error");
    assert!(matches!(error, ConfigError::Syntax { .. }), "{error}");
}

#[test]
fn example_files_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["config/portcullis.example.toml", "config/quickstart.toml"] {
        let path = root.join(name);
        let vars = env(&[("PORTCULLIS_OIDC__CLIENT_SECRET", "from-env")]);
        if let Err(error) = load_with_env(&path, &vars) {
            panic!("{name}: {error}");
        }
    }
}

/// A deserializer that records the field names a derived `Deserialize`
/// requests, and then fails, so a test can list the keys of a section.
struct FieldNames(Vec<&'static str>);

/// The error [`FieldNames`] ends with.
#[derive(Debug)]
struct Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl serde::de::Error for Recorded {
    fn custom<T: std::fmt::Display>(_message: T) -> Self {
        Recorded
    }
}

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = Recorded;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        self.0.extend_from_slice(fields);
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Returns the keys of the section that `T` deserializes.
fn section_keys<'de, T: serde::Deserialize<'de>>() -> Vec<&'static str> {
    let mut recorder = FieldNames(Vec::new());
    let _ = T::deserialize(&mut recorder);
    recorder.0
}

/// Returns `(section, key)` for every key the file sets or shows commented
/// out as `# key = value`.
fn documented_keys(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let setting = line.strip_prefix("# ").unwrap_or(line);
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        if key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            keys.push((section.clone(), key.to_owned()));
        }
    }
    keys
}

#[test]
fn example_file_shows_every_key() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/portcullis.example.toml");
    let text = std::fs::read_to_string(&path).expect("the example file is readable");
    let documented = documented_keys(&text);
    let sections = [
        ("server", section_keys::<ServerConfig>()),
        ("upstream", section_keys::<UpstreamConfig>()),
        ("oidc", section_keys::<OidcConfig>()),
        ("session", section_keys::<SessionConfig>()),
        ("scim", section_keys::<ScimConfig>()),
        ("directory", section_keys::<DirectoryConfig>()),
        ("access", section_keys::<AccessConfig>()),
        ("log", section_keys::<LogConfig>()),
    ];
    let mut section_names: Vec<&str> = sections.iter().map(|(name, _)| *name).collect();
    section_names.sort_unstable();
    let mut config_sections = section_keys::<Config>();
    config_sections.sort_unstable();
    assert_eq!(section_names, config_sections, "sections checked here");
    for (section, keys) in sections {
        assert!(!keys.is_empty(), "[{section}] has keys");
        for key in keys {
            assert!(
                documented.iter().any(|(s, k)| s == section && k == key),
                "config/portcullis.example.toml does not show {section}.{key}"
            );
        }
    }
}

#[test]
fn errors_never_show_secret_values() {
    let unterminated = MINIMAL.replace("\"s3cret\"", "\"TOPSECRET-VALUE");
    let error = load_text(&unterminated, &[]).expect_err("a syntax error");
    assert!(!error.to_string().contains("TOPSECRET"), "{error}");
    assert!(error.to_string().contains("line "), "{error}");

    let wrong_type = MINIMAL.replace("\"s3cret\"", "424242");
    let error = load_text(&wrong_type, &[]).expect_err("a type error");
    assert!(!error.to_string().contains("424242"), "{error}");
    assert_eq!(error_key(load_text(&wrong_type, &[])), "oidc.client_secret");
}

#[test]
fn override_errors_name_the_variable() {
    let error = load_text(MINIMAL, &[("PORTCULLIS_SESSION__TTL", "soon")]).expect_err("an error");
    assert!(
        error.to_string().contains("PORTCULLIS_SESSION__TTL"),
        "{error}"
    );
}

#[test]
fn wrong_types_get_clear_messages() {
    let cases = [
        ("PORTCULLIS_SERVER__THREADS", "-1", "non-negative integer"),
        ("PORTCULLIS_SESSION__COOKIE_SECURE", "1", "true or false"),
    ];
    for (variable, value, expected) in cases {
        let error = load_text(MINIMAL, &[(variable, value)]).expect_err("an error");
        assert!(error.to_string().contains(expected), "{variable}: {error}");
    }
    let list = MINIMAL.replace("[oidc]", "[oidc]\nscopes = [1]");
    let error = load_text(&list, &[]).expect_err("an error");
    assert!(error.to_string().contains("list of strings"), "{error}");
    let level = load_text(MINIMAL, &[("PORTCULLIS_LOG__LEVEL", "verbose!!")]);
    assert_eq!(error_key(level), "log.level");
}

/// A self-signed P-256 CA certificate, valid until 2126, made with
/// `openssl req -x509` for these tests. Its private key was discarded.
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBrDCCAVGgAwIBAgIUBLz9OgPt0giS6iDEh24Qj9qNsVgwCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXcG9ydGN1bGxpcyB1bml0LXRlc3QgQ0EwIBcNMjYxMjA1MDYx
NjIyWhgPMjEyNjExMTEwNjE2MjJaMCIxIDAeBgNVBAMMF3BvcnRjdWxsaXMgdW5p
dC10ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEY3mzWXB9OKaWMfOU
vMcM0BcMYh9ybWZVWjr4D3kQIJW6DHOWhAsEgvgWdSKL0n4TbnWcaMkZHxRIsyPk
rt+JgKNjMGEwHQYDVR0OBBYEFCObmaoDbMl4NCm9OXF6UgrvjO1xMB8GA1UdIwQY
MBaAFCObmaoDbMl4NCm9OXF6UgrvjO1xMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0P
AQH/BAQDAgEGMAoGCCqGSM49BAMCA0kAMEYCIQDKzOPhJVbtfMC494Wewm3YF4eB
23TELafgEIQeBuccLgIhAIIc3AiNYsHTXuJuV1KDMJPIZ9QUMpjb9ZxFiNHkJxb9
-----END CERTIFICATE-----
";

fn with_ca_file(path: &std::path::Path) -> String {
    MINIMAL.replace(
        "[oidc]",
        &format!("[oidc]\nca_file = \"{}\"", path.display()),
    )
}

#[test]
fn ca_file_unset_adds_no_certificates() {
    let settings = load_text(MINIMAL, &[]).expect("valid");
    assert!(settings.oidc_ca_certificates.is_empty());
}

#[test]
fn ca_file_bundle_is_read() {
    let bundle = write(&format!("{TEST_CA_PEM}{TEST_CA_PEM}"));
    let settings = load_text(&with_ca_file(bundle.path()), &[]).expect("valid");
    assert_eq!(settings.oidc_ca_certificates.len(), 2);
}

#[test]
fn ca_file_from_environment() {
    let bundle = write(TEST_CA_PEM);
    let path = bundle.path().display().to_string();
    let settings = load_text(MINIMAL, &[("PORTCULLIS_OIDC__CA_FILE", &path)]).expect("valid");
    assert_eq!(settings.oidc_ca_certificates.len(), 1);
}

#[test]
fn ca_file_errors_name_key_and_cause() {
    let not_der =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
    let cases = [
        (
            "plain text",
            "not a certificate\n",
            "contains no PEM certificate",
        ),
        (
            "only a key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "contains no PEM certificate",
        ),
        ("bad base64", bad_base64, "is not a valid PEM bundle"),
        ("not DER", not_der, "is not a valid CA certificate"),
    ];
    for (case, contents, expected) in cases {
        let file = write(contents);
        let error = load_text(&with_ca_file(file.path()), &[]).expect_err(case);
        let message = error.to_string();
        assert!(message.starts_with("oidc.ca_file: "), "{case}: {message}");
        assert!(message.contains(expected), "{case}: {message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "{case}: expected the path in {message}"
        );
    }
}

#[test]
fn ca_file_missing_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let error = load_text(&with_ca_file(&missing), &[]).expect_err("missing file");
    let message = error.to_string();
    assert!(
        message.starts_with("oidc.ca_file: cannot read "),
        "{message}"
    );
    assert!(message.contains("missing.pem"), "{message}");
}
