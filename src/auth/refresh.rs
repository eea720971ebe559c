//! Access-token refresh, done by one request per session at a time.
//!
//! A request whose session's access token expires within the refresh margin
//! redeems the refresh token before it is forwarded. Providers that rotate
//! refresh tokens accept each one once and revoke the whole grant when a
//! spent one comes back, so two requests (or two replicas) must never redeem
//! the same token. A lock in the session store makes that so:
//!
//! - The request that takes the lock (`SET NX PX` with a random value in
//!   Redis) reads the session again from the store, past any in-process
//!   cache, and redeems the token only if it still needs refreshing. The
//!   lock's lease is renewed while the token call runs, so a slow provider
//!   cannot make it lapse, and it is released with a compare-and-delete.
//! - Requests that find the lock taken poll it every [`POLL_INTERVAL`] for
//!   up to one lease, then read the session from the store and proceed with
//!   whatever it holds.
//!
//! `invalid_grant` (or a refreshed ID token that fails verification) ends
//! the session: the request then has none, so a navigation goes to login
//! and an API call gets 401. Any other failure (timeout, connection error,
//! 5xx) keeps the session and the request proceeds with the old tokens.
//!
//! The redeeming work runs in a task of its own, so a client that
//! disconnects mid-refresh cannot drop a rotated refresh token on the floor.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Auth, Provider, ProviderError};
use crate::session::{unix_now, Session, SessionId, SessionStore, Sessions, StoreError};

/// Lifetime of the refresh lock. The holder renews it every third of this,
/// so it lapses only when the holder died or lost the store.
pub const LOCK_LEASE: Duration = Duration::from_secs(10);

/// How often a request waiting for another's refresh checks the lock.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// After a refresh failed for a reason that may pass (the provider is down
/// or slow), no request of the session tries again for this long.
pub const RETRY_BACKOFF: Duration = Duration::from_secs(10);

/// Namespace of refresh locks in the session store.
const LOCK_PREFIX: &str = "portcullis:refresh-lock:";

/// Errors of the refresh step. Every one means the store could not tell, so
/// the request gets 503 and the session is kept.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The session store failed while locking or reading the session.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The task that redeemed the token panicked or was cancelled.
    #[error("refresh task failed: {0}")]
    Task(String),
}

impl From<RefreshError> for StoreError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::Store(error) => error,
            RefreshError::Task(message) => StoreError::Unavailable(message),
        }
    }
}

/// Tells whether `session` should be refreshed at `now` (seconds since the
/// Unix epoch): it has a refresh token, an access token that expires within
/// `margin`, and no retry backoff running. A session without a known expiry
/// is never refreshed.
pub fn needs_refresh(session: &Session, margin: Duration, now: u64) -> bool {
    let Some(expires_at) = session.access_token_expires_at else {
        return false;
    };
    let backing_off = session.refresh_not_before.is_some_and(|at| now < at);
    session.refresh_token.is_some()
        && !backing_off
        && expires_at <= now.saturating_add(margin.as_secs())
}

impl Auth {
    /// Refreshes the access token of session `id` when it is due, or waits
    /// for the request that does. Returns the session to use, or `None` when
    /// the session ended (the provider rejected the refresh token, or the
    /// session was signed out or revoked meanwhile).
    pub(crate) async fn refresh_if_due(
        &self,
        id: &SessionId,
        session: Arc<Session>,
    ) -> Result<Option<Arc<Session>>, RefreshError> {
        if !needs_refresh(&session, self.refresh_margin, unix_now()) {
            return Ok(Some(session));
        }
        let lock = RefreshLock::new(self.sessions.store().clone(), id);
        if !lock.try_acquire().await? {
            return self.wait_for_refresh(id, &lock, session).await;
        }
        let redeemer = Redeemer {
            provider: self.provider.clone(),
            sessions: self.sessions.clone(),
            margin: self.refresh_margin,
            id: id.clone(),
        };
        let refreshed = tokio::spawn(redeemer.run(lock))
            .await
            .map_err(|e| RefreshError::Task(e.to_string()))??;
        Ok(refreshed.map(Arc::new))
    }

    /// Waits while another request holds the lock, then reads the session
    /// from the store. When the lock outlives one lease, the request goes on
    /// with the session it already has.
    async fn wait_for_refresh(
        &self,
        id: &SessionId,
        lock: &RefreshLock,
        session: Arc<Session>,
    ) -> Result<Option<Arc<Session>>, RefreshError> {
        let max_polls = LOCK_LEASE.as_millis() / POLL_INTERVAL.as_millis();
        for _ in 0..max_polls {
            tokio::time::sleep(POLL_INTERVAL).await;
            if !lock.is_held().await? {
                return Ok(self.sessions.load_uncached(id).await?.map(Arc::new));
            }
        }
        tracing::warn!(
            waited_ms = LOCK_LEASE.as_millis() as u64,
            "token refresh by another request is still running; proceeding with the current tokens"
        );
        Ok(Some(session))
    }
}

/// Counts a refresh by outcome: `success`, `rejected` (the session ends)
/// or `error` (the session is kept and retried later).
fn record_refresh(outcome: &'static str) {
    crate::metrics::metrics()
        .token_refreshes
        .with_label_values(&[outcome])
        .inc();
}

/// The owned state of the lock holder, so it can run in its own task.
struct Redeemer {
    provider: Arc<Provider>,
    sessions: Sessions,
    margin: Duration,
    id: SessionId,
}

impl Redeemer {
    /// Refreshes under `lock` and releases it, whatever the outcome.
    async fn run(self, lock: RefreshLock) -> Result<Option<Session>, RefreshError> {
        let outcome = self.refresh_locked(&lock).await;
        if let Err(error) = lock.release().await {
            // The lease ends the lock anyway; waiters then wait for it.
            tracing::warn!(error = %error, "cannot release the token refresh lock");
        }
        outcome
    }

    async fn refresh_locked(&self, lock: &RefreshLock) -> Result<Option<Session>, RefreshError> {
        // Another replica may have refreshed since this request loaded the
        // session, so the decision is made again on the stored record.
        let Some(session) = self.sessions.load_uncached(&self.id).await? else {
            return Ok(None);
        };
        if !needs_refresh(&session, self.margin, unix_now()) {
            return Ok(Some(session));
        }
        let Some(refresh_token) = session.refresh_token.clone() else {
            return Ok(Some(session));
        };
        let call = self
            .provider
            .refresh(&refresh_token, &session.identity.subject);
        match renew_while(lock, call).await {
            Ok(tokens) => {
                record_refresh("success");
                self.store_refreshed(apply_tokens(session, tokens)).await
            }
            Err(error) => self.handle_failure(session, error).await,
        }
    }

    async fn store_refreshed(&self, session: Session) -> Result<Option<Session>, RefreshError> {
        if self.sessions.update(&self.id, &session).await? {
            tracing::info!(user = %session.identity.subject, "access token refreshed");
            Ok(Some(session))
        } else {
            tracing::info!(user = %session.identity.subject, "session ended while its token was refreshed");
            Ok(None)
        }
    }

    /// Ends the session when the provider rejected the refresh token for
    /// good, and keeps it on any other failure.
    async fn handle_failure(
        &self,
        session: Session,
        error: ProviderError,
    ) -> Result<Option<Session>, RefreshError> {
        let user = session.identity.subject.as_str();
        match error {
            ProviderError::RefreshRejected(_)
            | ProviderError::InvalidIdToken(_)
            | ProviderError::EmailNotVerified => {
                tracing::info!(user, error = %error, "token refresh rejected; ending the session");
                record_refresh("rejected");
                self.sessions.delete(&self.id).await?;
                Ok(None)
            }
            _ => {
                tracing::warn!(user, error = %error, retry_in_s = RETRY_BACKOFF.as_secs(), "token refresh failed; keeping the session");
                record_refresh("error");
                self.back_off(session).await
            }
        }
    }
}

impl Redeemer {
    /// Records that no refresh is to be tried for [`RETRY_BACKOFF`], so the
    /// requests that follow go on at once instead of each waiting for a
    /// provider that is down.
    async fn back_off(&self, mut session: Session) -> Result<Option<Session>, RefreshError> {
        session.refresh_not_before = Some(unix_now() + RETRY_BACKOFF.as_secs());
        if self.sessions.update(&self.id, &session).await? {
            Ok(Some(session))
        } else {
            Ok(None)
        }
    }
}

/// Awaits `call` while renewing `lock` every third of the lease.
async fn renew_while<T>(lock: &RefreshLock, call: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(call);
    let mut renewals = tokio::time::interval(LOCK_LEASE / 3);
    renewals.tick().await;
    loop {
        tokio::select! {
            result = &mut call => return result,
            _ = renewals.tick() => lock.renew().await,
        }
    }
}

/// Puts the refreshed tokens into `session`. The identity stays as the login
/// set it; a new ID token replaces the old one for `id_token_hint`.
fn apply_tokens(mut session: Session, tokens: super::provider::RefreshedTokens) -> Session {
    session.access_token = tokens.access_token;
    session.access_token_expires_at = tokens.access_token_expires_at;
    session.refresh_not_before = None;
    if let Some(refresh_token) = tokens.refresh_token {
        session.refresh_token = Some(refresh_token);
    }
    if let Some(id_token) = tokens.id_token {
        session.id_token = id_token;
    }
    session
}

/// The refresh lock of one session: a store key named after the hash of the
/// session id, containing a random value that only its holder has.
struct RefreshLock {
    store: Arc<dyn SessionStore>,
    key: String,
    token: String,
}

impl RefreshLock {
    fn new(store: Arc<dyn SessionStore>, id: &SessionId) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"portcullis refresh lock v1\0");
        hasher.update(id.as_bytes());
        let mut token = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut token);
        RefreshLock {
            store,
            key: format!("{LOCK_PREFIX}{}", hex(&hasher.finalize())),
            token: hex(&token),
        }
    }

    async fn try_acquire(&self) -> Result<bool, StoreError> {
        self.store
            .try_lock(&self.key, &self.token, LOCK_LEASE)
            .await
    }

    async fn is_held(&self) -> Result<bool, StoreError> {
        Ok(self.store.get(&self.key).await?.is_some())
    }

    async fn renew(&self) {
        match self
            .store
            .extend_lock(&self.key, &self.token, LOCK_LEASE)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!("token refresh lock lapsed while the token call ran"),
            Err(error) => tracing::warn!(error = %error, "cannot renew the token refresh lock"),
        }
    }

    async fn release(&self) -> Result<bool, StoreError> {
        self.store.unlock(&self.key, &self.token).await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Identity;

    fn session(expires_in: Option<u64>, refresh_token: Option<&str>) -> Session {
        let now = unix_now();
        Session {
            identity: Identity {
                subject: "alice".to_owned(),
                email: None,
                preferred_username: None,
                name: None,
                groups: Vec::new(),
            },
            id_token: String::new(),
            access_token: "at".to_owned(),
            access_token_expires_at: expires_in.map(|seconds| now + seconds),
            refresh_not_before: None,
            refresh_token: refresh_token.map(str::to_owned),
            provider_session_id: None,
            directory_groups: None,
            created_at: now,
            expires_at: now + 3600,
        }
    }

    #[test]
    fn refresh_due_cases() {
        let margin = Duration::from_secs(60);
        let cases = [
            (Some(3600), Some("rt"), false, "far from expiry"),
            (Some(61), Some("rt"), false, "just outside the margin"),
            (Some(60), Some("rt"), true, "at the margin"),
            (Some(0), Some("rt"), true, "expiring now"),
            (Some(10), None, false, "no refresh token"),
            (None, Some("rt"), false, "no known expiry"),
        ];
        for (expires_in, refresh_token, expected, case) in cases {
            let session = session(expires_in, refresh_token);
            assert_eq!(
                needs_refresh(&session, margin, unix_now()),
                expected,
                "case {case:?}"
            );
        }
    }

    #[test]
    fn expired_token_is_due() {
        let mut expired = session(Some(0), Some("rt"));
        expired.access_token_expires_at = Some(unix_now() - 100);
        assert!(
            needs_refresh(&expired, Duration::from_secs(60), unix_now()),
            "an access token expired 100 s ago is due"
        );
    }

    #[test]
    fn backoff_delays_refresh() {
        let now = unix_now();
        let mut failed = session(Some(0), Some("rt"));
        failed.refresh_not_before = Some(now + 10);
        let margin = Duration::from_secs(60);
        assert!(
            !needs_refresh(&failed, margin, now),
            "no refresh while the backoff runs"
        );
        assert!(
            needs_refresh(&failed, margin, now + 10),
            "refresh again once the backoff is over"
        );
    }
}
