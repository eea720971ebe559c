//! Background retries of revocations that failed, so that a deprovisioned
//! user's sessions end within seconds of the session store coming back,
//! whether or not the SCIM client repeats its request.
//!
//! The queue lives in this process only: a restart loses it. The SCIM
//! response still reports the failure (503), so the client's own retry
//! remains the durable path.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{RevocationError, SessionRevoker, UserIdentifiers};
use crate::metrics::metrics;

/// Most Users waiting for a retry. A User is listed once however many of
/// its requests failed, and an entry is a few identifiers, so a full queue
/// stays in the low MiB.
pub const MAX_PENDING_REVOCATIONS: usize = 10_000;

/// Wait before the first retry; it doubles after each failure up to
/// [`RETRY_MAX_DELAY`].
const RETRY_MIN_DELAY: Duration = Duration::from_millis(250);

/// Longest wait between two retries while the store stays unreachable.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// Shortest interval between two warnings about failed retries; the
/// failures in between are counted in the next warning.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// One User whose sessions are still to be ended.
struct PendingRevocation {
    /// The SCIM `id`, for logs and to merge repeated failures.
    user_id: String,
    user: UserIdentifiers,
}

/// Revokes a User's sessions and, when that fails, keeps retrying in the
/// background (see [`run`](Self::run)) until it succeeds.
pub struct RevocationRetries {
    revoker: Arc<dyn SessionRevoker>,
    pending: Mutex<VecDeque<PendingRevocation>>,
    /// Wakes [`run`](Self::run) when the queue gets its first entry.
    wake: Notify,
    max_pending: usize,
}

impl RevocationRetries {
    /// Revokes through `revoker`, with room for
    /// [`MAX_PENDING_REVOCATIONS`] Users.
    pub fn new(revoker: Arc<dyn SessionRevoker>) -> Self {
        Self::with_max_pending(revoker, MAX_PENDING_REVOCATIONS)
    }

    /// Revokes through `revoker`, with room for `max_pending` Users.
    pub fn with_max_pending(revoker: Arc<dyn SessionRevoker>, max_pending: usize) -> Self {
        RevocationRetries {
            revoker,
            pending: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            max_pending,
        }
    }

    /// Ends the sessions of User `user_id` now. On failure the User is
    /// queued for [`run`](Self::run) to retry, and the error is returned so
    /// that the SCIM request can report it.
    pub async fn revoke(
        &self,
        user_id: &str,
        user: &UserIdentifiers,
    ) -> Result<usize, RevocationError> {
        let revoked = self.revoker.revoke_user(user).await;
        if revoked.is_err() {
            self.enqueue(user_id, user.clone());
        }
        revoked
    }

    /// Queues User `user_id` for a retry. A User already queued gets the
    /// new identifiers added to its entry. When the queue is full the User
    /// is dropped, logged and counted.
    pub fn enqueue(&self, user_id: &str, user: UserIdentifiers) {
        let mut pending = self.lock();
        if let Some(entry) = pending.iter_mut().find(|entry| entry.user_id == user_id) {
            entry.user.merge(user);
            return;
        }
        if pending.len() >= self.max_pending {
            drop(pending);
            metrics()
                .revocation_retries
                .with_label_values(&["dropped"])
                .inc();
            tracing::error!(
                user_id,
                max_pending = self.max_pending,
                "the revocation retry queue is full; this user's sessions end only when the SCIM client repeats its request or session.ttl passes"
            );
            return;
        }
        pending.push_back(PendingRevocation {
            user_id: user_id.to_owned(),
            user,
        });
        metrics()
            .revocation_retries_pending
            .set(pending.len() as i64);
        drop(pending);
        self.wake.notify_one();
    }

    /// Returns the number of Users waiting for a retry.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Retries the queued revocations, oldest first, until the future is
    /// dropped. After a failure it waits 250 ms, doubling up to 5 s, before
    /// the next attempt, and the wait starts again at 250 ms once the queue
    /// is empty.
    pub async fn run(&self) {
        let mut delay = RETRY_MIN_DELAY;
        let mut failures = FailureLog::default();
        loop {
            while self.pending() == 0 {
                self.wake.notified().await;
                delay = RETRY_MIN_DELAY;
            }
            tokio::time::sleep(delay).await;
            if self.retry_pending(&mut failures).await {
                delay = RETRY_MIN_DELAY;
            } else {
                delay = (delay * 2).min(RETRY_MAX_DELAY);
            }
        }
    }

    /// Retries every queued User once, stopping at the first failure,
    /// because the store is then most likely still unreachable. Returns
    /// true when the queue was emptied.
    async fn retry_pending(&self, failures: &mut FailureLog) -> bool {
        while let Some(entry) = self.take_first() {
            match self.revoker.revoke_user(&entry.user).await {
                Ok(ended) => {
                    metrics()
                        .revocation_retries
                        .with_label_values(&["success"])
                        .inc();
                    tracing::info!(
                        user_id = %entry.user_id,
                        sessions = ended,
                        "sessions of a deprovisioned user ended by a retry"
                    );
                }
                Err(error) => {
                    metrics()
                        .revocation_retries
                        .with_label_values(&["error"])
                        .inc();
                    let user_id = entry.user_id.clone();
                    self.enqueue(&entry.user_id, entry.user);
                    failures.record(&error, &user_id, self.pending());
                    return false;
                }
            }
        }
        true
    }

    /// Removes and returns the oldest entry. Taking it out while it is
    /// tried means that identifiers queued meanwhile form a new entry
    /// instead of being lost with this one.
    fn take_first(&self) -> Option<PendingRevocation> {
        let mut pending = self.lock();
        let first = pending.pop_front();
        metrics()
            .revocation_retries_pending
            .set(pending.len() as i64);
        first
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<PendingRevocation>> {
        // Every critical section is a single queue operation, so a panic
        // cannot leave the queue half-updated.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Rate limit of the warnings about failed retries.
#[derive(Default)]
struct FailureLog {
    last_logged: Option<Instant>,
    /// Failures since the last warning that were not logged.
    suppressed: u64,
}

impl FailureLog {
    fn record(&mut self, error: &RevocationError, user_id: &str, pending: usize) {
        if self
            .last_logged
            .is_some_and(|last| last.elapsed() < FAILURE_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            error = %error,
            user_id,
            pending,
            failures_not_logged = self.suppressed,
            "retrying to end the sessions of deprovisioned users failed; retrying again"
        );
        self.last_logged = Some(Instant::now());
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests;
