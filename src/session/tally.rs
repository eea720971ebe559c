//! The count of live sessions behind the `portcullis_sessions_active` gauge.
//!
//! The store keeps an expiring set (a Redis sorted set, or a map in memory)
//! of the storage keys of live sessions, each until its session ends. A
//! login adds its key, and a sign-out or a revocation removes the keys it
//! deleted. A session's end is fixed at login, because a token refresh
//! keeps `expires_at`, so an update changes nothing here. Every replica
//! counts the one shared set, so each reports the count of all replicas.
//!
//! Keeping the tally never fails a request: an error is counted in
//! `portcullis_session_store_errors_total{operation="track"}` and logged at
//! most once a minute. So the count can be off in two ways. A session whose
//! add failed is never counted. A key stays counted until its session would
//! have ended when its removal failed, when a failed revocation deleted it
//! without returning it, or when, in Redis Cluster, a revocation deleted it
//! while its login was still storing it.

use std::time::Duration;

use super::{Sessions, StoreError};
use crate::metrics::metrics;
use crate::session::store::LogLimiter;

/// Store key of the expiring set of live session keys.
const LIVE_SESSIONS_SET: &str = "portcullis:live_sessions";

/// Default interval between two counts, `session.active_count_interval`.
pub const ACTIVE_COUNT_INTERVAL: Duration = Duration::from_secs(15);

/// Errors of the tally are logged at most this often.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Sessions {
    /// Adds the session stored under `key`, which ends after `lifetime`, to
    /// the tally.
    pub(super) async fn track_live(&self, key: &str, lifetime: Duration) {
        let added = self
            .store
            .add_expiring(LIVE_SESSIONS_SET, key, lifetime)
            .await;
        record_track("add", &added);
    }

    /// Removes the sessions stored under `keys` from the tally.
    pub(super) async fn untrack_live(&self, keys: &[String]) {
        let removed = self.store.remove_expiring(LIVE_SESSIONS_SET, keys).await;
        record_track("remove", &removed);
    }

    /// Counts the live sessions of every replica.
    pub async fn count_live(&self) -> Result<u64, StoreError> {
        let counted = self.store.count_expiring(LIVE_SESSIONS_SET).await;
        metrics().record_store("count", &counted);
        counted
    }

    /// Sets `portcullis_sessions_active` now and then every `interval`,
    /// until the future is dropped. A failed count keeps the previous value.
    pub async fn report_live(&self, interval: Duration) {
        static LOG_LIMIT: LogLimiter = LogLimiter::new(ERROR_LOG_INTERVAL);
        loop {
            match self.count_live().await {
                Ok(count) => {
                    let count = i64::try_from(count).unwrap_or(i64::MAX);
                    metrics().sessions_active.set(count);
                }
                Err(error) => {
                    if let Some(suppressed) = LOG_LIMIT.admit() {
                        tracing::warn!(
                            error = %error,
                            suppressed,
                            "cannot count the active sessions; portcullis_sessions_active keeps its previous value"
                        );
                    }
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// Counts one tally update and logs a failed one, at most once per
/// [`ERROR_LOG_INTERVAL`].
fn record_track(change: &'static str, result: &Result<(), StoreError>) {
    static LOG_LIMIT: LogLimiter = LogLimiter::new(ERROR_LOG_INTERVAL);
    metrics().record_store("track", result);
    let Err(error) = result else {
        return;
    };
    if let Some(suppressed) = LOG_LIMIT.admit() {
        tracing::warn!(
            error = %error,
            change,
            suppressed,
            "cannot update the count of active sessions; the session itself is unaffected"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::session::revocation::tests::session_of;
    use crate::session::test_redis::TestRedis;
    use crate::session::{MemoryStore, RedisStore, RevocationKey, SessionStore};

    fn sessions_over(store: Arc<dyn SessionStore>) -> Sessions {
        Sessions::new(store, Duration::from_secs(600))
    }

    #[tokio::test]
    async fn count_follows_login_sign_out_and_revocation() {
        let redis = TestRedis::start().await;
        let redis_store = RedisStore::new(&redis.url(), Duration::from_secs(1)).expect("valid URL");
        let cases: [(&str, Arc<dyn SessionStore>); 2] = [
            ("memory", Arc::new(MemoryStore::new())),
            ("redis", Arc::new(redis_store)),
        ];
        for (name, store) in cases {
            let sessions = sessions_over(store.clone());
            let count = || sessions.count_live();
            let alice = sessions
                .create(&session_of("alice", Some("alice@example.test"), None))
                .await
                .expect("create");
            sessions
                .create(&session_of("bob", Some("bob@example.test"), None))
                .await
                .expect("create");
            sessions
                .create(&session_of("bob", Some("bob@example.test"), None))
                .await
                .expect("create");
            store
                .put_evictable(
                    "portcullis:flow:x",
                    b"flow".to_vec(),
                    Duration::from_secs(60),
                )
                .await
                .expect("a login flow is stored");
            assert_eq!(count().await.expect("count"), 3, "{name}: three sessions");

            sessions.delete(&alice).await.expect("delete");
            assert_eq!(count().await.expect("count"), 2, "{name}: alice signed out");
            sessions.delete(&alice).await.expect("delete again");
            assert_eq!(
                count().await.expect("count"),
                2,
                "{name}: a second sign-out changes nothing"
            );

            let revoked = sessions
                .revoke(RevocationKey::Subject("bob".into()))
                .await
                .expect("revoke");
            assert_eq!(revoked, 2, "{name}: both of bob's sessions revoked");
            assert_eq!(count().await.expect("count"), 0, "{name}: none left");
        }
    }

    #[tokio::test]
    async fn count_drops_expired_sessions() {
        let sessions = sessions_over(Arc::new(MemoryStore::new()));
        let mut short = session_of("alice", None, None);
        short.expires_at = crate::session::unix_now() + 1;
        sessions.create(&short).await.expect("create");
        sessions
            .create(&session_of("bob", None, None))
            .await
            .expect("create");
        assert_eq!(sessions.count_live().await.expect("count"), 2);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            sessions.count_live().await.expect("count"),
            1,
            "alice's session left the count when it ended"
        );
    }

    /// The set's key contains a string, so every tally command fails with
    /// `WRONGTYPE` while the session commands work.
    #[tokio::test]
    async fn tally_error_never_fails_a_login() {
        let redis = TestRedis::start().await;
        let mut occupy = redis::cmd("SET");
        occupy.arg(LIVE_SESSIONS_SET).arg("not a sorted set");
        redis.query::<()>(&occupy).await;
        let store = RedisStore::new(&redis.url(), Duration::from_secs(1)).expect("valid URL");
        let sessions = sessions_over(Arc::new(store));
        let errors = || metrics().store_errors.with_label_values(&["track"]).get();
        let errors_before = errors();

        let id = sessions
            .create(&session_of("alice", None, None))
            .await
            .expect("the login succeeds although the tally fails");
        assert!(
            sessions.load(&id).await.expect("load").is_some(),
            "the session is stored"
        );
        sessions
            .delete(&id)
            .await
            .expect("the sign-out succeeds although the tally fails");
        assert!(
            errors() >= errors_before + 2,
            "the failed add and remove are counted as store errors"
        );
        assert!(
            sessions.count_live().await.is_err(),
            "the count reports the error"
        );
    }
}
