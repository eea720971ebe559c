use serde_json::json;

use super::*;
use crate::directory::sqlite::SqliteDirectory;

fn identity(subject: &str, email: Option<&str>, username: Option<&str>) -> Identity {
    Identity {
        subject: subject.to_owned(),
        email: email.map(str::to_owned),
        preferred_username: username.map(str::to_owned),
        name: None,
        groups: Vec::new(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[test]
fn revocation_keys_per_claim() {
    let user = UserIdentifiers {
        user_names: strings(&["Alice@Example.test"]),
        emails: strings(&["alice@example.test", "a.l@example.test"]),
        external_ids: strings(&["00u1"]),
    };
    let cases = [
        (
            MatchClaim::Email,
            vec![
                RevocationKey::Email("Alice@Example.test".into()),
                RevocationKey::Email("alice@example.test".into()),
                RevocationKey::Email("a.l@example.test".into()),
                RevocationKey::Subject("00u1".into()),
            ],
        ),
        (
            MatchClaim::PreferredUsername,
            vec![
                RevocationKey::PreferredUsername("Alice@Example.test".into()),
                RevocationKey::Email("alice@example.test".into()),
                RevocationKey::Email("a.l@example.test".into()),
                RevocationKey::Subject("00u1".into()),
            ],
        ),
        (
            MatchClaim::Sub,
            vec![
                RevocationKey::Subject("Alice@Example.test".into()),
                RevocationKey::Email("alice@example.test".into()),
                RevocationKey::Email("a.l@example.test".into()),
                RevocationKey::Subject("00u1".into()),
            ],
        ),
    ];
    for (claim, expected) in cases {
        assert_eq!(revocation_keys(&user, claim), expected, "claim {claim:?}");
    }
    let same = UserIdentifiers {
        user_names: strings(&["bob@example.test"]),
        emails: strings(&["bob@example.test"]),
        external_ids: Vec::new(),
    };
    assert_eq!(
        revocation_keys(&same, MatchClaim::Email),
        [RevocationKey::Email("bob@example.test".into())],
        "a userName equal to an email is revoked once"
    );
}

async fn directory_with_users() -> SqliteDirectory {
    let directory = SqliteDirectory::open("sqlite::memory:")
        .await
        .expect("an in-memory SQLite directory opens");
    let users = [
        json!({"userName": "Alice@Example.test", "externalId": "00u-alice", "active": true}),
        json!({"userName": "carol@example.test", "active": false}),
        json!({"userName": "dave", "externalId": "00u-dave-old", "active": false}),
        json!({"userName": "dave@example.test", "externalId": "00u-dave"}),
    ];
    for user in users {
        directory
            .create(ResourceKind::User, user)
            .await
            .expect("the test user is created");
    }
    directory
}

#[tokio::test]
async fn find_user_matches_claim_or_external_id() {
    let directory = directory_with_users().await;
    let cases = [
        (
            identity("x", Some("alice@EXAMPLE.test"), None),
            MatchClaim::Email,
            Some("Alice@Example.test"),
        ),
        (
            identity("00u-alice", None, None),
            MatchClaim::Email,
            Some("Alice@Example.test"),
        ),
        (
            identity("x", Some("carol@example.test"), None),
            MatchClaim::Email,
            Some("carol@example.test"),
        ),
        (
            identity("00u-dave", Some("dave@example.test"), Some("dave")),
            MatchClaim::PreferredUsername,
            Some("dave@example.test"),
        ),
        (
            identity("x", Some("dave@example.test"), Some("dave")),
            MatchClaim::PreferredUsername,
            Some("dave"),
        ),
        (
            identity("alice@example.test", None, None),
            MatchClaim::Sub,
            Some("Alice@Example.test"),
        ),
        (
            identity("nobody", Some("nobody@example.test"), Some("nobody")),
            MatchClaim::Email,
            None,
        ),
        (
            identity("x", None, Some("Alice@Example.test")),
            MatchClaim::Email,
            None,
        ),
    ];
    for (who, claim, expected) in cases {
        let found = find_user(&directory, &who, claim)
            .await
            .expect("the directory lookup succeeds");
        let user_name = found
            .as_ref()
            .and_then(|user| user.document["userName"].as_str());
        assert_eq!(user_name, expected, "{who:?} by {claim:?}");
    }
}
