use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::auth::provisioning::SessionRevocation;
use crate::config::MatchClaim;
use crate::session::revocation::tests::session_of;
use crate::session::test_redis::TestRedis;
use crate::session::{MemoryStore, RedisStore, SessionId, Sessions};

fn identifiers(email: &str) -> UserIdentifiers {
    UserIdentifiers {
        user_names: vec![email.to_owned()],
        emails: vec![email.to_owned()],
        external_ids: Vec::new(),
    }
}

fn revocation_over(sessions: &Sessions) -> Arc<dyn SessionRevoker> {
    Arc::new(SessionRevocation::new(sessions.clone(), MatchClaim::Email))
}

#[test]
fn queue_merges_and_is_bounded() {
    let sessions = Sessions::new(Arc::new(MemoryStore::new()), Duration::from_secs(600));
    let retries = RevocationRetries::with_max_pending(revocation_over(&sessions), 2);
    retries.enqueue("u1", identifiers("a@example.test"));
    retries.enqueue("u1", identifiers("a.new@example.test"));
    assert_eq!(retries.pending(), 1, "a User is queued once");
    retries.enqueue("u2", identifiers("b@example.test"));
    retries.enqueue("u3", identifiers("c@example.test"));
    assert_eq!(retries.pending(), 2, "a full queue drops the new User");

    let first = retries.take_first().expect("u1 is queued");
    assert_eq!(first.user_id, "u1", "oldest first");
    assert_eq!(
        first.user.emails,
        ["a@example.test", "a.new@example.test"],
        "the repeated failure added its identifiers"
    );
}

async fn is_live(sessions: &Sessions, id: &SessionId) -> bool {
    sessions
        .load_uncached(id)
        .await
        .expect("Redis answers")
        .is_some()
}

/// Redis is paused, so the revocation fails and is queued. Once Redis
/// runs again, the background retry ends the session without another
/// call.
#[tokio::test]
async fn retry_ends_sessions_after_outage() {
    let redis = TestRedis::start().await;
    let store = RedisStore::new(&redis.url(), Duration::from_millis(500)).expect("valid URL");
    let sessions = Sessions::new(Arc::new(store), Duration::from_secs(600));
    let alice = sessions
        .create(&session_of("alice", Some("alice@example.test"), None))
        .await
        .expect("create");
    let bob = sessions
        .create(&session_of("bob", Some("bob@example.test"), None))
        .await
        .expect("create");
    let retries = Arc::new(RevocationRetries::new(revocation_over(&sessions)));

    redis.pause();
    let revoked = retries
        .revoke("u-alice", &identifiers("alice@example.test"))
        .await;
    let runner = Arc::clone(&retries);
    let background = tokio::spawn(async move { runner.run().await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pending_during_outage = retries.pending();
    redis.resume();
    let resumed = Instant::now();

    assert!(
        revoked.is_err(),
        "the revocation fails while Redis is paused"
    );
    assert_eq!(pending_during_outage, 1, "the failed revocation is queued");
    while retries.pending() > 0 || is_live(&sessions, &alice).await {
        assert!(
            resumed.elapsed() < Duration::from_secs(8),
            "the retry did not end alice's session within 8 s of Redis resuming"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "retry ended the session {} ms after Redis resumed",
        resumed.elapsed().as_millis()
    );
    assert!(is_live(&sessions, &bob).await, "bob's session stays");
    background.abort();
}
