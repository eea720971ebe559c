//! Ending every session of one user at once.
//!
//! Each new session's storage key is added to index sets named after the
//! hashed identifiers of its user: the `sub` claim, the lower-cased `email`
//! and `preferred_username`, and the provider's `sid` when there is one.
//! [`Sessions::revoke`] takes one index set and deletes every session it
//! lists (see [`SessionStore::take_index`](super::SessionStore::take_index)
//! for what is atomic), then publishes the deleted keys so that every
//! replica drops its cached copies.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Session, Sessions, StoreError};

/// Namespace of the index sets in the store.
const INDEX_PREFIX: &str = "portcullis:index:";

/// Channel on which deleted session keys are published, one per line.
pub const REVOCATION_CHANNEL: &str = "portcullis:revocations";

/// First wait before subscribing again after a failure; it doubles up to
/// [`RESUBSCRIBE_MAX_DELAY`].
const RESUBSCRIBE_MIN_DELAY: Duration = Duration::from_millis(250);

/// Longest wait between two subscription attempts while Redis is down.
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(5);

/// The identifier whose sessions [`Sessions::revoke`] ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RevocationKey {
    /// Every session whose ID token had this `sub` claim (exact match).
    Subject(String),
    /// Every session whose `email` claim is this address, ignoring case.
    Email(String),
    /// Every session whose `preferred_username` claim is this name,
    /// ignoring case.
    PreferredUsername(String),
    /// Every session created from this provider session: the ID token's
    /// `sid` claim, as back-channel logout tokens carry it (exact match).
    ProviderSession(String),
}

impl RevocationKey {
    /// Returns a short name of the identifier kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RevocationKey::Subject(_) => "sub",
            RevocationKey::Email(_) => "email",
            RevocationKey::PreferredUsername(_) => "preferred_username",
            RevocationKey::ProviderSession(_) => "sid",
        }
    }

    /// Tells whether `session` is indexed under this identifier, compared as
    /// [`index_key`](Self::index_key) compares it.
    pub fn matches(&self, session: &Session) -> bool {
        let identity = &session.identity;
        let folded = |claim: &Option<String>, value: &str| {
            claim
                .as_deref()
                .is_some_and(|claim| claim.to_lowercase() == value.to_lowercase())
        };
        match self {
            RevocationKey::Subject(value) => identity.subject == *value,
            RevocationKey::Email(value) => folded(&identity.email, value),
            RevocationKey::PreferredUsername(value) => folded(&identity.preferred_username, value),
            RevocationKey::ProviderSession(value) => {
                session.provider_session_id.as_deref() == Some(value.as_str())
            }
        }
    }

    /// Returns the store key of this identifier's index set. The value is
    /// hashed, so the store's key names reveal no email address.
    fn index_key(&self) -> String {
        let value = match self {
            RevocationKey::Subject(value) | RevocationKey::ProviderSession(value) => value.clone(),
            RevocationKey::Email(value) | RevocationKey::PreferredUsername(value) => {
                value.to_lowercase()
            }
        };
        let digest = Sha256::digest(value.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{INDEX_PREFIX}{}:{hex}", self.kind())
    }
}

/// Returns the index sets a new session is added to.
pub(super) fn index_keys(session: &Session) -> Vec<String> {
    let identity = &session.identity;
    let mut keys = vec![RevocationKey::Subject(identity.subject.clone())];
    if let Some(email) = &identity.email {
        keys.push(RevocationKey::Email(email.clone()));
    }
    if let Some(name) = &identity.preferred_username {
        keys.push(RevocationKey::PreferredUsername(name.clone()));
    }
    if let Some(sid) = &session.provider_session_id {
        keys.push(RevocationKey::ProviderSession(sid.clone()));
    }
    keys.iter().map(RevocationKey::index_key).collect()
}

impl Sessions {
    /// Ends every session listed under `key` and returns how many there
    /// were. A session created at the same moment is either revoked or
    /// stays listed for the next revocation. Then every replica drops its
    /// cached copies. An error means that some or none of the sessions were
    /// deleted and the index still lists the rest, so the call may be
    /// repeated. Either way this replica's cached copies are gone, so a
    /// failed revocation never leaves them served here.
    pub async fn revoke(&self, key: RevocationKey) -> Result<usize, StoreError> {
        self.forget_cached(&key);
        let taken = self.store.take_index(&key.index_key()).await;
        crate::metrics::metrics().record_store("revoke", &taken);
        let removed = taken?;
        if removed.is_empty() {
            return Ok(0);
        }
        self.untrack_live(&removed).await;
        self.forget(&removed).await;
        crate::metrics::metrics()
            .sessions_ended
            .with_label_values(&["revoked"])
            .inc_by(removed.len() as u64);
        tracing::info!(
            index = key.kind(),
            sessions = removed.len(),
            "sessions revoked"
        );
        Ok(removed.len())
    }

    /// Drops this replica's cached sessions indexed under `key`, without
    /// the store. While the store is unreachable, other replicas serve
    /// their cached copies until the cache TTL ends, because the
    /// revocation cannot be published to them.
    pub fn forget_cached(&self, key: &RevocationKey) {
        let dropped = self
            .cache
            .invalidate_matching(|session| key.matches(session));
        if dropped > 0 {
            tracing::debug!(
                index = key.kind(),
                sessions = dropped,
                "cached sessions dropped"
            );
        }
    }

    /// Drops `keys` from this replica's cache and publishes them to the
    /// others. A failed publish is logged and not returned, because the
    /// records are already gone from the store: other replicas then serve
    /// their cached copies until the cache TTL ends.
    pub(super) async fn forget(&self, keys: &[String]) {
        self.cache.invalidate(keys.iter().map(String::as_str));
        if let Err(error) = self
            .store
            .publish(REVOCATION_CHANNEL, &keys.join("\n"))
            .await
        {
            tracing::warn!(
                error = %error,
                sessions = keys.len(),
                "cannot publish ended sessions; other replicas may serve them until their cache entries expire"
            );
        }
    }

    /// Keeps this replica's session cache in step with the revocations that
    /// every replica publishes. The cache serves sessions only while the
    /// subscription is up; after a lost connection it is emptied and the
    /// subscription retried with a growing delay. Returns at once when the
    /// cache is off, and when the store is private to this process, after
    /// turning the cache on. Otherwise it runs until the future is dropped.
    pub async fn follow_revocations(&self) {
        if !self.cache.is_enabled() {
            return;
        }
        let mut delay = RESUBSCRIBE_MIN_DELAY;
        let mut failures: u64 = 0;
        loop {
            match self.store.subscribe(REVOCATION_CHANNEL).await {
                Ok(None) => {
                    // Only this process changes a private store, and each
                    // change invalidates the cache directly.
                    self.cache.set_live(true);
                    tracing::info!(
                        "session cache on: the session store is private to this process"
                    );
                    return;
                }
                Ok(Some(mut subscription)) => {
                    self.cache.set_live(true);
                    tracing::info!("session cache on: following revocations");
                    delay = RESUBSCRIBE_MIN_DELAY;
                    failures = 0;
                    while let Some(message) = subscription.next_message().await {
                        self.cache.invalidate(message.lines());
                    }
                    self.cache.set_live(false);
                    tracing::warn!("session cache off: the revocation subscription was lost");
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(
                        error = %error,
                        failures,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot subscribe to session revocations"
                    );
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::session::test_redis::cluster::TestCluster;
    use crate::session::test_redis::sentinel::TestSentinel;
    use crate::session::test_redis::TestRedis;
    use crate::session::{unix_now, Identity, MemoryStore, RedisStore, SessionId};

    /// Builds a session of `subject` that ends in ten minutes.
    pub(crate) fn session_of(subject: &str, email: Option<&str>, sid: Option<&str>) -> Session {
        Session {
            identity: Identity {
                subject: subject.to_owned(),
                email: email.map(str::to_owned),
                preferred_username: Some(subject.to_owned()),
                name: None,
                groups: Vec::new(),
            },
            id_token: String::new(),
            access_token: String::new(),
            access_token_expires_at: None,
            refresh_not_before: None,
            refresh_token: None,
            provider_session_id: sid.map(str::to_owned),
            directory_groups: None,
            created_at: unix_now(),
            expires_at: unix_now() + 600,
        }
    }

    async fn exists(sessions: &Sessions, id: &SessionId) -> bool {
        sessions.load(id).await.expect("load").is_some()
    }

    #[tokio::test]
    async fn revoke_ends_only_that_users_sessions() {
        let sessions = Sessions::new(Arc::new(MemoryStore::new()), Duration::from_secs(600));
        let alice = session_of("alice", Some("alice@example.test"), Some("sid-1"));
        let first = sessions.create(&alice).await.expect("create");
        let second = sessions.create(&alice).await.expect("create");
        let bob = sessions
            .create(&session_of("bob", Some("bob@example.test"), Some("sid-2")))
            .await
            .expect("create");
        let cases = [
            (RevocationKey::ProviderSession("sid-unknown".into()), 0),
            (RevocationKey::Email("ALICE@example.TEST".into()), 2),
            (RevocationKey::Subject("alice".into()), 0),
            (RevocationKey::ProviderSession("sid-2".into()), 1),
        ];
        for (key, expected) in cases {
            let revoked = sessions.revoke(key.clone()).await.expect("revoke");
            assert_eq!(revoked, expected, "sessions ended by {key:?}");
        }
        assert!(
            !exists(&sessions, &first).await,
            "alice's first session ended"
        );
        assert!(
            !exists(&sessions, &second).await,
            "alice's second session ended"
        );
        assert!(
            !exists(&sessions, &bob).await,
            "bob's session ended by its sid"
        );
    }

    #[tokio::test]
    async fn update_never_revives_a_revoked_session() {
        let sessions = Sessions::new(Arc::new(MemoryStore::new()), Duration::from_secs(600));
        let alice = session_of("alice", None, None);
        let id = sessions.create(&alice).await.expect("create");
        assert!(
            sessions.update(&id, &alice).await.expect("update"),
            "a live session is updated"
        );
        sessions
            .revoke(RevocationKey::PreferredUsername("Alice".into()))
            .await
            .expect("revoke");
        assert!(
            !sessions.update(&id, &alice).await.expect("update"),
            "a revoked session is not written back"
        );
        assert!(
            !exists(&sessions, &id).await,
            "the revoked session stays gone"
        );
    }

    /// Returns a replica's sessions over the store at `url`, with the cache
    /// on.
    fn replica_over(url: &str) -> Sessions {
        let store = RedisStore::new(url, Duration::from_secs(1)).expect("valid URL");
        Sessions::new(Arc::new(store), Duration::from_secs(600))
            .with_cache_ttl(Duration::from_secs(30))
    }

    /// Replica B serves alice's session from its cache, replica A revokes
    /// it, and B stops serving it within a second. B must already follow
    /// revocations.
    async fn assert_revocation_reaches(a: &Sessions, b: &Sessions, case: &str) {
        let id = a
            .create(&session_of("alice", Some("alice@example.test"), None))
            .await
            .expect("create");
        assert!(
            exists(b, &id).await,
            "{case}: replica B loads alice's session"
        );
        assert_eq!(b.cache().len(), 1, "{case}: replica B cached the session");

        let revoked = a
            .revoke(RevocationKey::Email("alice@example.test".into()))
            .await
            .expect("revoke");
        assert_eq!(revoked, 1, "{case}: one session revoked");
        let revoked_at = Instant::now();
        while exists(b, &id).await {
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "{case}: replica B still served the revoked session after 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Two replicas over one Redis, and two over a Redis Cluster where they
    /// subscribe on different nodes.
    #[tokio::test]
    async fn revocation_reaches_other_replica_cache() {
        let (redis, cluster) = tokio::join!(TestRedis::start(), TestCluster::start());
        let cases = [
            ("redis", redis.url(), redis.url()),
            ("cluster", cluster.url_from(0), cluster.url_from(1)),
        ];
        for (case, url_a, url_b) in cases {
            let (a, b) = (replica_over(&url_a), replica_over(&url_b));
            let follower = b.clone();
            let listener = tokio::spawn(async move { follower.follow_revocations().await });
            wait_until_live(&b, true, Duration::from_secs(5), case).await;
            assert_revocation_reaches(&a, &b, case).await;
            listener.abort();
        }
    }

    /// Replica B follows revocations through Sentinel. The master dies, B
    /// subscribes again on the new master, and a revocation from replica A
    /// still reaches B's cache within a second.
    #[tokio::test]
    async fn revocations_follow_sentinel_failover() {
        let mut group = TestSentinel::start(3).await;
        group.wait_until_failover_ready().await;
        let (a, b) = (replica_over(&group.url()), replica_over(&group.url()));
        let follower = b.clone();
        let listener = tokio::spawn(async move { follower.follow_revocations().await });
        wait_until_live(&b, true, Duration::from_secs(5), "before the failover").await;

        group.kill_master();
        let killed_at = Instant::now();
        wait_until_live(&b, false, Duration::from_secs(2), "after the master died").await;
        wait_until_live(&b, true, Duration::from_secs(15), "on the new master").await;
        println!(
            "revocations followed again {} ms after the master was killed",
            killed_at.elapsed().as_millis()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while a.store().ping().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "replica A reached the new master within 5 s of replica B"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_revocation_reaches(&a, &b, "after the failover").await;
        listener.abort();
    }

    /// Waits until the cache of `sessions` is live (or not), for at most
    /// `limit`.
    async fn wait_until_live(sessions: &Sessions, live: bool, limit: Duration, case: &str) {
        let deadline = Instant::now() + limit;
        while sessions.cache().is_live() != live {
            assert!(
                Instant::now() < deadline,
                "{case}: cache live = {live} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn follower_resubscribes_after_restart() {
        let mut redis = TestRedis::start().await;
        let store = RedisStore::new(&redis.url(), Duration::from_secs(1)).expect("valid URL");
        let sessions = Sessions::new(Arc::new(store), Duration::from_secs(600))
            .with_cache_ttl(Duration::from_secs(30));
        let follower = sessions.clone();
        let listener = tokio::spawn(async move { follower.follow_revocations().await });
        wait_until_live(
            &sessions,
            true,
            Duration::from_secs(5),
            "first subscription",
        )
        .await;

        redis.kill();
        wait_until_live(
            &sessions,
            false,
            Duration::from_secs(2),
            "after Redis stopped",
        )
        .await;
        redis.restart().await;
        wait_until_live(
            &sessions,
            true,
            Duration::from_secs(8),
            "after Redis restarted",
        )
        .await;

        let id = sessions
            .create(&session_of("alice", Some("alice@example.test"), None))
            .await
            .expect("create after the restart");
        assert!(
            exists(&sessions, &id).await,
            "the session loads and is cached"
        );
        let other = Sessions::new(
            Arc::new(RedisStore::new(&redis.url(), Duration::from_secs(1)).expect("valid URL")),
            Duration::from_secs(600),
        );
        other
            .revoke(RevocationKey::Subject("alice".into()))
            .await
            .expect("revoke from another replica");
        let revoked_at = Instant::now();
        while exists(&sessions, &id).await {
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "the renewed subscription did not drop the revoked session within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        listener.abort();
    }

    /// Redis is paused, so the subscription looks alive and the cache
    /// keeps serving, while the revocation fails. The failed revocation
    /// must still drop this replica's cached copy.
    #[tokio::test]
    async fn failed_revoke_drops_cached_copy() {
        let redis = TestRedis::start().await;
        let sessions = replica_over(&redis.url());
        let follower = sessions.clone();
        let listener = tokio::spawn(async move { follower.follow_revocations().await });
        wait_until_live(&sessions, true, Duration::from_secs(5), "subscribed").await;
        let alice = sessions
            .create(&session_of("alice", Some("alice@example.test"), None))
            .await
            .expect("create");
        let bob = sessions
            .create(&session_of("bob", Some("bob@example.test"), None))
            .await
            .expect("create");
        assert!(exists(&sessions, &alice).await, "alice's session loads");
        assert!(exists(&sessions, &bob).await, "bob's session loads");

        redis.pause();
        let revoked = sessions
            .revoke(RevocationKey::Email("Alice@example.test".into()))
            .await;
        let alice_load = sessions.load(&alice).await;
        let bob_load = sessions.load(&bob).await;
        let live = sessions.cache().is_live();
        redis.resume();
        listener.abort();

        assert!(
            revoked.is_err(),
            "the revocation fails while Redis is paused"
        );
        assert!(live, "the paused subscription kept the cache serving");
        assert!(
            alice_load.is_err(),
            "alice's session is read from the paused store, not from the cache"
        );
        assert!(
            bob_load.is_ok_and(|session| session.is_some()),
            "bob's cached session is still served"
        );
    }

    #[test]
    fn index_keys_hash_and_fold_case() {
        let cases = [
            (
                RevocationKey::Email("Alice@Example.TEST".into()),
                RevocationKey::Email("alice@example.test".into()),
                true,
            ),
            (
                RevocationKey::PreferredUsername("ALICE".into()),
                RevocationKey::PreferredUsername("alice".into()),
                true,
            ),
            (
                RevocationKey::Subject("Alice".into()),
                RevocationKey::Subject("alice".into()),
                false,
            ),
            (
                RevocationKey::Subject("alice".into()),
                RevocationKey::PreferredUsername("alice".into()),
                false,
            ),
        ];
        for (first, second, same) in cases {
            assert_eq!(
                first.index_key() == second.index_key(),
                same,
                "{first:?} and {second:?}"
            );
        }
        let key = RevocationKey::Email("alice@example.test".into()).index_key();
        assert!(
            key.starts_with("portcullis:index:email:"),
            "index keys are namespaced by kind: {key}"
        );
        assert!(!key.contains("alice"), "index keys hide the value: {key}");
    }
}
