use super::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn policy(configure: impl FnOnce(&mut AccessConfig)) -> AccessPolicy {
    let mut config = AccessConfig::default();
    configure(&mut config);
    AccessPolicy::from_config(&config)
}

#[test]
fn email_domain_forms() {
    let cases = [
        ("alice@corp.com", Some("corp.com")),
        ("A@CORP.COM", Some("CORP.COM")),
        ("a.b+tag@sub.corp.com", Some("sub.corp.com")),
        ("a@evil.com@corp.com", None),
        ("@corp.com", None),
        ("a@", None),
        ("@", None),
        ("", None),
        ("corp.com", None),
        ("a b@corp.com", None),
        ("a@corp.com\n", None),
        ("a@@corp.com", None),
    ];
    for (email, expected) in cases {
        assert_eq!(email_domain(email), expected, "email {email:?}");
    }
}

#[test]
fn email_domain_policy() {
    let allowed = policy(|c| c.allowed_email_domains = strings(&["Corp.com"]));
    let cases = [
        (Some("alice@corp.com"), Ok(())),
        (Some("A@CORP.COM"), Ok(())),
        (Some("a@evil.com@corp.com"), Err(Denial::InvalidEmail)),
        (Some("@corp.com"), Err(Denial::InvalidEmail)),
        (Some("a@"), Err(Denial::InvalidEmail)),
        (Some("a@sub.corp.com"), Err(Denial::EmailDomainNotAllowed)),
        (Some("a@corp.com.evil"), Err(Denial::EmailDomainNotAllowed)),
        (Some("a@evilcorp.com"), Err(Denial::EmailDomainNotAllowed)),
        (None, Err(Denial::MissingEmail)),
    ];
    for (email, expected) in cases {
        assert_eq!(allowed.check_email(email), expected, "email {email:?}");
    }
    let open = policy(|_| {});
    assert_eq!(
        open.check_email(None),
        Ok(()),
        "no domain list admits a missing email"
    );
    assert_eq!(
        open.check_email(Some("a@evil.com@corp.com")),
        Ok(()),
        "no domain list checks nothing"
    );
}

#[test]
fn allowed_groups_any_of() {
    let admins = policy(|c| c.allowed_groups = strings(&["admins", "ops"]));
    let cases: [(&[&str], Result<(), Denial>); 5] = [
        (&["admins", "engineering"], Ok(())),
        (&["engineering", "ops"], Ok(())),
        (&["engineering"], Err(Denial::NotInAllowedGroup)),
        (&[], Err(Denial::NotInAllowedGroup)),
        (&["Admins"], Err(Denial::NotInAllowedGroup)),
    ];
    for (groups, expected) in cases {
        assert_eq!(
            admins.check_groups(&strings(groups)),
            expected,
            "groups {groups:?}"
        );
    }
    let everyone = policy(|_| {});
    assert_eq!(
        everyone.check_groups(&[]),
        Ok(()),
        "an empty list admits everyone"
    );
}

#[test]
fn check_tests_email_first() {
    let both = policy(|c| {
        c.allowed_groups = strings(&["admins"]);
        c.allowed_email_domains = strings(&["corp.com"]);
    });
    assert_eq!(
        both.check(Some("bob@other.com"), &strings(&["engineering"])),
        Err(Denial::EmailDomainNotAllowed),
        "the email is checked before the groups"
    );
    assert_eq!(
        both.check(Some("bob@corp.com"), &strings(&["engineering"])),
        Err(Denial::NotInAllowedGroup),
        "a good domain still needs an allowed group"
    );
    assert_eq!(
        both.check(Some("alice@corp.com"), &strings(&["admins"])),
        Ok(()),
        "domain and group both allowed"
    );
}

#[test]
fn public_path_matching() {
    let cases = [
        ("/healthz", "/healthz", true),
        ("/healthz", "/healthz/", false),
        ("/healthz", "/healthzx", false),
        ("/healthz", "/healthz/x", false),
        ("/healthz", "/Healthz", false),
        ("/static/", "/static/", true),
        ("/static/", "/static/app.js", true),
        ("/static/", "/static/css/site.css", true),
        ("/static/", "/static", false),
        ("/static/", "/staticx/app.js", false),
        ("/static/", "/other/static/app.js", false),
        ("/static/", "/STATIC/app.js", false),
    ];
    for (entry, path, expected) in cases {
        assert_eq!(
            public_path_matches(entry, path),
            expected,
            "entry {entry:?}, path {path:?}"
        );
    }
    let public = policy(|c| c.public_paths = strings(&["/healthz", "/static/"]));
    assert!(
        public.is_public("/static/a.js"),
        "a prefix entry matches below it"
    );
    assert!(!public.is_public("/"), "the root is not public");
}

#[test]
fn effective_groups_by_source() {
    let token = strings(&["admins", "engineering"]);
    let directory = strings(&["engineering", "scim-team"]);
    let cases = [
        (GroupsSource::Token, strings(&["admins", "engineering"])),
        (GroupsSource::Scim, strings(&["engineering", "scim-team"])),
        (
            GroupsSource::Both,
            strings(&["admins", "engineering", "scim-team"]),
        ),
    ];
    for (source, expected) in cases {
        let chosen = policy(|c| c.groups_source = source);
        assert_eq!(
            chosen.effective_groups(&token, Some(&directory)),
            expected,
            "groups_source {source:?}"
        );
    }
    let scim = policy(|c| c.groups_source = GroupsSource::Scim);
    assert!(
        scim.effective_groups(&token, None).is_empty(),
        "scim without a directory user forwards no groups"
    );
}

#[test]
fn groups_cap_drops_whole_groups() {
    let groups = strings(&["admins", "engineering", "ops", "a-very-long-group-name"]);
    let cases = [
        (
            100,
            strings(&["admins", "engineering", "ops", "a-very-long-group-name"]),
            0,
        ),
        (22, strings(&["admins", "engineering", "ops"]), 1),
        (18, strings(&["admins", "engineering"]), 2),
        (10, strings(&["admins", "ops"]), 2),
        (6, strings(&["admins"]), 3),
        (5, strings(&["ops"]), 3),
        (2, Vec::new(), 4),
    ];
    for (max_bytes, kept, dropped) in cases {
        let header = cap_groups(&groups, max_bytes);
        assert_eq!(header.kept, kept, "kept groups with {max_bytes} bytes");
        assert_eq!(
            header.dropped, dropped,
            "dropped groups with {max_bytes} bytes"
        );
        assert!(
            header.kept.join(",").len() <= max_bytes,
            "the header fits in {max_bytes} bytes"
        );
    }
}

#[test]
fn directory_needed_only_when_used() {
    let cases = [
        (false, GroupsSource::Token, false),
        (true, GroupsSource::Token, true),
        (false, GroupsSource::Scim, true),
        (false, GroupsSource::Both, true),
    ];
    for (require, source, expected) in cases {
        let chosen = policy(|c| {
            c.require_provisioned_user = require;
            c.groups_source = source;
        });
        assert_eq!(
            chosen.needs_directory(),
            expected,
            "require_provisioned_user {require}, groups_source {source:?}"
        );
    }
}
